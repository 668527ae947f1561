#!/usr/bin/env bash
# Smoke test of the container image (`make docker-smoke`): build it, run it with host
# networking and a read-only root filesystem, wait for the HEALTHCHECK to report healthy,
# classify samples/coffee.jpg, check the process is not root, stop it.
#
# Needs a Docker engine. On machines without one (no registry either), start the sandbox
# first:  eval "$(deploy/sandbox/container-sandbox.sh up)"
# Torch comes from the CPU wheel index, or from a local CPU wheel when one is found in
# $TORCH_WHEEL_DIR or pip's find-links (it is copied to deploy/wheels/, which git ignores).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${SMOKE_IMAGE:-sanet-serve:smoke}"
MODELS="${SMOKE_MODELS:-sanet_tiny}"
HEALTHY_TIMEOUT_S="${SMOKE_TIMEOUT_S:-300}"
PORT="${SMOKE_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"

log() { echo "docker-smoke: $*"; }
die() { log "FAIL: $*"; exit 1; }

command -v docker >/dev/null || die "docker not found (see the comment at the top of $0)"
docker info >/dev/null 2>&1 || die "no Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-unset})"

# A local CPU torch wheel, if this machine keeps one (offline CI machines do).
find_cpu_wheel() {
  local dirs=("${TORCH_WHEEL_DIR:-}")
  dirs+=($(pip3 config list 2>/dev/null | sed -n "s/.*find-links='\(.*\)'/\1/p" | tr ' ' '\n'))
  for dir in "${dirs[@]}"; do
    [ -d "$dir" ] || continue
    ls "$dir"/torch-*+cpu-cp311-*.whl 2>/dev/null | sort | tail -n 1
  done | head -n 1
}

build_args=()
wheel="$(find_cpu_wheel || true)"
rm -f deploy/wheels/*.whl
if [ -n "$wheel" ]; then
  version="$(basename "$wheel" | cut -d- -f2)"
  log "using local wheel $(basename "$wheel") (torch $version)"
  cp -p "$wheel" deploy/wheels/  # -p keeps the mtime, so the build cache hits
  build_args=(--build-arg "TORCH_INDEX=https://pypi.org/simple" --build-arg "TORCH_VERSION=$version")
fi

log "building $IMAGE"
start=$(date +%s)
docker build --network host -t "$IMAGE" "${build_args[@]}" .
rm -f deploy/wheels/*.whl  # only the build needs it
log "built in $(( $(date +%s) - start ))s, size $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"

run_start=$(date +%s)
cid="$(docker run -d --network host --read-only --tmpfs /tmp \
  -e SANET_HOST=127.0.0.1 -e "SANET_PORT=$PORT" -e "SANET_MODELS=$MODELS" "$IMAGE")"
cleanup() {
  docker logs "$cid" 2>&1 | tail -n 8 | sed 's/^/  container: /' || true
  docker rm -f "$cid" >/dev/null 2>&1 || true
}
trap cleanup EXIT
log "container ${cid:0:12} on 127.0.0.1:$PORT, models=$MODELS"

deadline=$(( $(date +%s) + HEALTHY_TIMEOUT_S ))
while :; do
  health="$(docker inspect -f '{{.State.Status}}/{{.State.Health.Status}}' "$cid")"
  case "$health" in
    running/healthy) break ;;
    running/*) ;;
    *) die "container is $health" ;;
  esac
  [ "$(date +%s)" -lt "$deadline" ] || die "not healthy after ${HEALTHY_TIMEOUT_S}s ($health)"
  sleep 2
done
log "healthy $(( $(date +%s) - run_start ))s after docker run"

answer="$(curl -fsS --max-time 60 -H 'Content-Type: image/jpeg' \
  --data-binary @samples/coffee.jpg "http://127.0.0.1:$PORT/classify?top_k=3")"
log "classify coffee.jpg -> $answer"
python3 -c 'import json,sys; r=json.loads(sys.argv[1]); assert len(r["results"][0]["predictions"]) == 3' \
  "$answer" || die "unexpected /classify answer"

uid="$(docker exec "$cid" id -u)"
[ "$uid" != "0" ] || die "the service runs as root"
log "process runs as uid $uid"

stop_start=$(date +%s)
docker stop -t 40 "$cid" >/dev/null
log "stopped in $(( $(date +%s) - stop_start ))s (exit code $(docker inspect -f '{{.State.ExitCode}}' "$cid"))"
log "OK"
