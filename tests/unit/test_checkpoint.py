"""Checkpoint loading: the authors' layout, prefixes, and every refusal with a typed error."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import pytest
import torch

from model import (
    ArchMismatchError,
    CheckpointNotFoundError,
    NotACheckpointError,
    ShapeMismatchError,
    UnsafeCheckpointError,
    arch_of,
    load_checkpoint,
)
from testing.checkpoints import random_authors_checkpoint, random_net


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_authors_layout(tmp_path: Path) -> None:
    path, net = random_authors_checkpoint(tmp_path / "sa_tiny.pth.tar", "sanet_tiny", seed=1)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"epoch", "arch", "state_dict", "best_acc", "optimizer"}
    assert all(k.startswith("module.") for k in raw["state_dict"])
    loaded, info = load_checkpoint(path)
    _same_weights(loaded, net)
    assert info.arch == "sanet_tiny" == arch_of(loaded)
    assert info.num_classes == 1000 and info.epoch == 100
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not loaded.training


@pytest.mark.parametrize("prefix", ["", "_orig_mod.", "module._orig_mod."])
def test_plain_and_prefixed_state_dicts(tmp_path: Path, prefix: str) -> None:
    net = random_net("sanet_tiny", seed=2, num_classes=10)
    path = tmp_path / "plain.pt"
    torch.save({prefix + k: v for k, v in net.state_dict().items()}, path)
    loaded, info = load_checkpoint(path)
    _same_weights(loaded, net)
    assert info.num_classes == 10


def test_sanet50_keys_infer_arch(tmp_path: Path) -> None:
    with torch.device("meta"):
        from model import create_model

        state = create_model("sanet50").state_dict()
    real = {f"module.{k}": torch.zeros(v.shape, dtype=v.dtype) for k, v in state.items()}
    path = tmp_path / "sa_resnet50.pth.tar"
    torch.save(
        {"epoch": 1, "arch": "sa_resnet50", "state_dict": real, "best_acc": 0.0, "optimizer": {}},
        path,
    )
    assert load_checkpoint(path).info.arch == "sanet50"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="nope"):
        load_checkpoint(tmp_path / "nope.pth.tar")


@pytest.mark.parametrize("content", [b"", b"hello, I am text", os.urandom(4096)])
def test_not_a_checkpoint(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.pth.tar"
    path.write_bytes(content)
    with pytest.raises(NotACheckpointError):
        load_checkpoint(path)


def test_checkpoint_without_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "meta.pt"
    torch.save({"epoch": 3, "arch": "x"}, path)
    with pytest.raises(NotACheckpointError, match="state_dict"):
        load_checkpoint(path)


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_unsafe_pickle_is_refused_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth.tar"
    with path.open("wb") as fh:
        pickle.dump({"state_dict": {"x": _Evil(str(marker))}}, fh)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(path)
    assert not marker.exists()
    zipped = tmp_path / "evil_zip.pth.tar"
    torch.save({"state_dict": {"x": _Evil(str(marker))}}, zipped)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(zipped)
    assert not marker.exists()


def test_keys_of_another_arch_are_named(tmp_path: Path) -> None:
    path, _ = random_authors_checkpoint(tmp_path / "tiny.pth.tar", "sanet_tiny")
    with pytest.raises(ArchMismatchError) as err:
        load_checkpoint(path, arch="sanet50")
    assert "layer1.1.conv1.weight" in err.value.missing
    assert f"{len(err.value.missing)} missing keys" in str(err.value)
    assert err.value.missing[0] in str(err.value)


def test_unknown_keys_are_named(tmp_path: Path) -> None:
    net = random_net("sanet_tiny")
    state = dict(net.state_dict())
    state["head.extra"] = torch.zeros(3)
    del state["layer4.0.sa.cweight"]
    path = tmp_path / "odd.pt"
    torch.save(state, path)
    with pytest.raises(ArchMismatchError) as err:
        load_checkpoint(path)
    assert err.value.unexpected == ["head.extra"]
    assert err.value.missing == ["layer4.0.sa.cweight"]


def test_wrong_shapes(tmp_path: Path) -> None:
    state = dict(random_net("sanet_tiny").state_dict())
    state["layer2.0.sa.gn.weight"] = torch.ones(5)
    path = tmp_path / "shapes.pt"
    torch.save(state, path)
    with pytest.raises(ShapeMismatchError, match=r"layer2\.0\.sa\.gn\.weight"):
        load_checkpoint(path)


def test_missing_num_batches_tracked_is_tolerated(tmp_path: Path) -> None:
    net = random_net("sanet_tiny")
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.pt"
    torch.save(state, path)
    _same_weights(load_checkpoint(path).net, net)
