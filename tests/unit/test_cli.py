"""``python -m model``: info, predict and a TorchScript export that runs without this package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from model import IMAGENET_CLASSES, preprocess
from testing.checkpoints import random_authors_checkpoint
from testing.paths import REPO, SAMPLES

COFFEE = SAMPLES / "coffee.jpg"


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def test_labels() -> None:
    assert len(IMAGENET_CLASSES) == 1000
    assert IMAGENET_CLASSES[0] == "tench" and IMAGENET_CLASSES[281] == "tabby"


def test_info() -> None:
    result = run("-m", "model", "info", "sanet50")
    assert result.returncode == 0, result.stderr
    assert "25,557,740" in result.stdout and "(SA: 708)" in result.stdout


def test_predict_with_weights(tmp_path: Path) -> None:
    ckpt, _ = random_authors_checkpoint(tmp_path / "tiny.pth.tar", "sanet_tiny")
    result = run("-m", "model", "predict", str(COFFEE), "--weights", str(ckpt), "--top-k", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].endswith("coffee.jpg") and len(lines) == 4
    assert "RANDOMLY" not in result.stderr


def test_predict_without_weights_warns_loudly() -> None:
    result = run("-m", "model", "predict", str(COFFEE), "--arch", "sanet_tiny")
    assert result.returncode == 0, result.stderr
    assert "RANDOMLY INITIALISED" in result.stderr


def test_predict_bad_checkpoint_is_an_error_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth.tar"
    bad.write_bytes(b"junk")
    result = run("-m", "model", "predict", str(COFFEE), "--weights", str(bad))
    assert result.returncode == 2 and "not a torch checkpoint" in result.stderr


def test_export_torchscript_runs_without_the_package(tmp_path: Path) -> None:
    ckpt, net = random_authors_checkpoint(tmp_path / "tiny.pth.tar", "sanet_tiny", seed=4)
    out = tmp_path / "tiny.ts"
    result = run(
        "-m",
        "model",
        "export",
        "--weights",
        str(ckpt),
        "--format",
        "torchscript",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    batch = preprocess(COFFEE.read_bytes()).unsqueeze(0)
    torch.save(batch, tmp_path / "batch.pt")
    code = (
        "import sys; sys.modules['model'] = None; sys.modules['service'] = None\n"
        "import torch\n"
        f"m = torch.jit.load({str(out)!r})\n"
        f"x = torch.load({str(tmp_path / 'batch.pt')!r})\n"
        f"torch.save(m(x), {str(tmp_path / 'out.pt')!r})\n"
    )
    standalone = run("-c", code, cwd=tmp_path)
    assert standalone.returncode == 0, standalone.stderr
    with torch.inference_mode():
        expected = net(batch)
    assert (torch.load(tmp_path / "out.pt") - expected).abs().max().item() <= 1e-4


def test_export_onnx_runs_in_onnxruntime(tmp_path: Path) -> None:
    import onnxruntime as ort

    ckpt, net = random_authors_checkpoint(tmp_path / "tiny.pth.tar", "sanet_tiny", seed=6)
    out = tmp_path / "tiny.onnx"
    result = run(
        "-m", "model", "export", "--weights", str(ckpt), "--format", "onnx", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    batch = torch.stack([preprocess(COFFEE.read_bytes())] * 3)  # dynamic batch axis
    (logits,) = session.run(None, {session.get_inputs()[0].name: batch.numpy()})
    with torch.inference_mode():
        expected = net(batch)
    assert (torch.from_numpy(logits) - expected).abs().max().item() <= 1e-4
