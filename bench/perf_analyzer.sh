#!/usr/bin/env bash
# Triton's perf_analyzer (PyPI perf-analyzer 2.60.0, a C++ binary that needs glibc >= 2.38) on a
# Debian 12 machine: runs it inside a Debian trixie chroot built once with debootstrap (about
# 2 minutes, kept under /var/tmp). Needs root. Every argument is passed to perf_analyzer; an
# --input-data FILE is copied into the chroot first. The chroot shares this machine's network,
# so 127.0.0.1 is the local server.
#   bench/perf_analyzer.sh -m sanet50 -u 127.0.0.1:8000 -i http \
#       --input-data input.json --concurrency-range 1:8:2 --measurement-interval 3000
# input.json for one JPEG: {"data": [{"IMAGE": {"content": [{"b64": "<base64>"}], "shape": [1]}}]}
set -euo pipefail
ROOT=${PA_CHROOT:-/var/tmp/perf-analyzer-trixie}
PA=/opt/pa/perf_analyzer/bin/perf_analyzer
if [ ! -x "$ROOT/usr/bin/env" ]; then
  command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
  echo "building a Debian trixie chroot in $ROOT (once)" >&2
  # the Debian mirror this machine's apt already uses (first URIs: line of its deb822 sources)
  mirror=$(awk -F': *' 'tolower($1)=="uris" {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $1}')
  [ -n "$mirror" ] || mirror=$(awk '$1=="deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  [ -n "$mirror" ] || { echo "no Debian mirror found in the apt sources" >&2; exit 1; }
  debootstrap --variant=minbase trixie "$ROOT" "$mirror" >/dev/null
fi
if [ ! -x "$ROOT$PA" ]; then
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_38_x86_64 -d "$tmp" "perf-analyzer==2.60.0" >&2
  mkdir -p "$ROOT/opt/pa"
  python3 -m zipfile -e "$tmp"/perf_analyzer-*.whl "$ROOT/opt/pa"
  chmod +x "$ROOT$PA"
  rm -rf "$tmp"
fi
args=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--input-data" ] && [ -f "${2:-}" ]; then
    cp "$2" "$ROOT/opt/input-data.json"; args+=("$1" /opt/input-data.json); shift 2
  else
    args+=("$1"); shift
  fi
done
exec chroot "$ROOT" "$PA" "${args[@]}"
