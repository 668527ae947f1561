"""Load the authors' SA-Net checkpoints (and plain or ``torch.compile``d state_dicts).

A checkpoint is untrusted input: it is read with ``weights_only=True``, so a pickle that
needs arbitrary globals is refused before anything in it runs.
"""

from __future__ import annotations

import hashlib
import pickletools
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from model.errors import (
    ArchMismatchError,
    CheckpointNotFoundError,
    NotACheckpointError,
    ShapeMismatchError,
    UnsafeCheckpointError,
)
from model.sanet import arch_spec, create_model, list_models

_PREFIXES = ("module.", "_orig_mod.")
_OPTIONAL_SUFFIX = "num_batches_tracked"


@dataclass(frozen=True)
class CheckpointInfo:
    """Where a network's weights came from."""

    path: str
    sha256: str
    arch: str
    num_classes: int
    epoch: int | None = None
    best_acc: float | None = None


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _read(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for garbage; classify below
        if _is_valid_pickle(path):
            raise UnsafeCheckpointError(
                f"{path}: refused, the pickle needs code outside the weights-only allow-list"
            ) from None
        raise NotACheckpointError(f"{path}: not a torch checkpoint ({exc!s:.120})") from None


def _is_valid_pickle(path: Path) -> bool:
    """True when the file (or a torch zip's data.pkl) is a well-formed pickle stream.

    Parsing opcodes never executes them. A well-formed pickle that the weights-only
    unpickler refused needs forbidden globals: that is an unsafe checkpoint, not garbage.
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.endswith("data.pkl")]
                data = zf.read(names[0]) if names else b""
        else:
            data = path.read_bytes()
        ops = list(pickletools.genops(data))
    except Exception:
        return False
    return bool(ops) and ops[-1][0].name == "STOP"


def _extract_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise NotACheckpointError(f"{path}: holds no state_dict")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise NotACheckpointError(f"{path}: state_dict entries are not name -> tensor")
    return {_strip(k): v for k, v in obj.items()}


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


@cache
def _expected(arch: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the architecture with 1000 classes, built on the meta device."""
    with torch.device("meta"):
        net = create_model(arch)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def _required(keys: set[str] | dict[str, Any]) -> set[str]:
    return {k for k in keys if not k.endswith(_OPTIONAL_SUFFIX)}


def infer_arch(state: dict[str, torch.Tensor]) -> str:
    """The registry architecture whose parameter names equal the state_dict's."""
    have = _required(state)
    best, best_diff = list_models()[0], None
    for arch in list_models():
        want = _required(_expected(arch))
        if want == have:
            return arch
        diff = len(want ^ have)
        if best_diff is None or diff < best_diff:
            best, best_diff = arch, diff
    raise _mismatch(best, state, "matches no known architecture; closest")


def _mismatch(arch: str, state: dict[str, torch.Tensor], what: str) -> ArchMismatchError:
    want, have = _required(_expected(arch)), _required(state)
    missing, unexpected = sorted(want - have), sorted(have - want)
    message = (
        f"checkpoint {what} is {arch!r}: {len(missing)} missing keys {missing[:5]}, "
        f"{len(unexpected)} unexpected keys {unexpected[:5]}"
    )
    return ArchMismatchError(message, missing, unexpected)


def _check_shapes(arch: str, state: dict[str, torch.Tensor], num_classes: int) -> None:
    want = dict(_expected(arch))
    want["fc.weight"] = (num_classes, want["fc.weight"][1])
    want["fc.bias"] = (num_classes,)
    bad = [(k, want[k], tuple(v.shape)) for k, v in state.items() if tuple(v.shape) != want[k]]
    if bad:
        shown = ", ".join(f"{k}: expected {w}, got {g}" for k, w, g in bad[:5])
        raise ShapeMismatchError(f"{len(bad)} tensors have the wrong shape: {shown}", bad)


def load_state_dict(net: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Strict load that tolerates only absent ``num_batches_tracked`` buffers."""
    full = dict(net.state_dict())
    full.update(state)
    net.load_state_dict(full, strict=True)


class Checkpoint(NamedTuple):
    """A checkpoint's network (eval mode) and where its weights came from:
    ``net, info = load_checkpoint(path)``."""

    net: nn.Module
    info: CheckpointInfo


def load_checkpoint(path: str | Path, arch: str | None = None) -> Checkpoint:
    """Build the network a checkpoint file describes and load its weights (eval mode).

    Accepts the authors' ``.pth.tar`` dicts (``module.`` keys), plain state_dicts and
    ``_orig_mod.`` prefixes. Returns the network and its :class:`CheckpointInfo`.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint not found: {path}")
    raw = _read(path)
    state = _extract_state_dict(raw, path)
    if arch is None:
        arch = infer_arch(state)
    else:
        arch_spec(arch)
        if _required(state) != _required(_expected(arch)):
            raise _mismatch(arch, state, "does not match the requested architecture, which")
    num_classes = int(state["fc.weight"].shape[0])
    _check_shapes(arch, state, num_classes)
    net = create_model(arch, num_classes)
    load_state_dict(net, state)
    meta = raw if isinstance(raw, dict) else {}
    info = CheckpointInfo(
        path=str(path.resolve()),
        sha256=sha256_of(path),
        arch=arch,
        num_classes=num_classes,
        epoch=_number(meta.get("epoch"), int),
        best_acc=_number(meta.get("best_acc", meta.get("best_acc1")), float),
    )
    return Checkpoint(net.eval(), info)


def _number(value: Any, kind: type) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    return kind(value) if isinstance(value, int | float) else None
