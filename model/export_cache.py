"""Where compiled artefacts live: the ONNX export, OpenVINO files, INT8 models, `auto` choices.

Everything is keyed by a caller-given ``cache_key`` (arch + weights sha256 + torch version,
see :func:`cache_key`), so the service and ``python -m model quantize`` find the same files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model.artefact_cache import ArtefactCache, partial_path
from model.cpu import cpuinfo
from model.onnx_backend import EXPORT_VERSION, export_onnx
from model.sanet import RANDOM_INIT_SEED  # random-init weights repeat, so their cache key does

RANDOM_INIT_TAG = f"random{RANDOM_INIT_SEED}"
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8")


def cache_key(arch: str, weights_sha256: str | None) -> str:
    """The key the service uses for ``arch`` with these weights (None: random init)."""
    return f"{arch}-{weights_sha256 or RANDOM_INIT_TAG}-torch{torch.__version__}"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/sanet-serve`` (or ``~/.cache/sanet-serve``), as the service uses."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "sanet-serve"


def onnx_path(cache_dir: str | Path, key: str) -> Path:
    return Path(cache_dir) / f"{key}-v{EXPORT_VERSION}.onnx"


def _parse_onnx(path: Path) -> Path:
    """Check that a cached export is a whole ONNX model (a truncated file fails to parse)."""
    import onnx

    onnx.load(str(path), load_external_data=False)
    return path


def cached_onnx(module: nn.Module, cache_dir: str | Path, key: str) -> Path:
    """The export of ``module`` under ``cache_dir``: made once, rebuilt once if the cached
    copy is corrupt, in a private temp dir if ``cache_dir`` is not writable; older export
    versions are dropped. Every engine (onnxruntime, OpenVINO, INT8) starts from this file."""
    cache = ArtefactCache(cache_dir)
    path = cache.load_or_build(
        onnx_path(cache.folder, key).name,
        build=lambda tmp: export_onnx(module, tmp),
        load=_parse_onnx,
    )
    for stale in cache.folder.glob(f"{key}-v*.onnx"):
        if stale != path:
            stale.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def onnx_file(module: nn.Module, cache_dir: str | Path | None, key: str | None) -> Iterator[Path]:
    """An ONNX file of ``module``: the cached one, or a temporary export without a cache."""
    if cache_dir is not None and key:
        yield cached_onnx(module, cache_dir, key)
        return
    with tempfile.TemporaryDirectory(prefix="sanet-onnx-") as tmp:
        yield export_onnx(module, Path(tmp) / "model.onnx")


def cpu_info() -> dict[str, Any]:
    """CPU model name and the instruction-set flags that change which engine wins."""
    name, flags = cpuinfo()
    name = name or platform.processor() or "unknown"
    return {"model": name, "cores": os.cpu_count(), "flags": [f for f in CPU_FLAGS if f in flags]}


def engine_versions() -> dict[str, str]:
    """Versions of every engine a choice may depend on (absent ones as '-')."""
    out: dict[str, str] = {"torch": str(torch.__version__)}
    for dist in ("onnxruntime", "openvino", "nncf"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "-"
    return out


def digest(payload: Any) -> str:
    """Short stable hash of a JSON-able value (names cache files)."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_json_atomic(path: Path, payload: Any) -> None:
    tmp = partial_path(path.parent, ".json")  # a dead writer's partial is removed at start
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
