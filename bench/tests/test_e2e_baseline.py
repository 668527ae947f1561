"""The user's alternative (``bench/e2e/baseline.py``) is a fair equivalent, and
``bench.e2e.run`` runs.

One tiny ``bench.e2e.run`` spawns sanet-serve and the baseline in both engines on the same
checkpoint (the tiny SA-ResNet in the authors' layout) and asks each for the top-5 of the
same photos: the baseline runs the authors' graph exported unfolded, sanet-serve the folded
one, so their answers agree to float rounding, not bit for bit.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from model.cpu import has_bf16
from testing.app import ARCH
from testing.ci import skip_or_fail
from testing.paths import SAMPLES

PHOTOS = [SAMPLES / "coffee.jpg", SAMPLES / "chelsea.jpg"]
JPEG = {"Content-Type": "image/jpeg"}
ATOL = 2e-4  # probabilities: folded vs unfolded graph, and one engine against another
BASELINES = ("baseline-onnxruntime", "baseline-openvino")


@pytest.fixture(scope="module", autouse=True)
def _litserve() -> None:
    if importlib.util.find_spec("litserve") is None:
        skip_or_fail("litserve is not installed (the dev extra: pip install -e '.[dev]')")


def test_baseline_answers_as_sanet_serve_and_the_bench_runs(
    checkpoint: Path, tmp_path: Path
) -> None:
    """A tiny bench.e2e.run: sanet-serve (OpenVINO fp32, and bf16 where the CPU has it) and
    the baseline in both engines, on the same checkpoint; every server's top-5 for two photos
    agree with sanet-fp32's, every level answered."""
    from bench.e2e import run as e2e

    out = tmp_path / "e2e.json"
    argv = ["--arch", ARCH, "--weights", str(checkpoint), "--cache-dir", str(tmp_path / "c")]
    sanet = ["sanet-fp32", *(["sanet-bf16"] if has_bf16() else [])]  # bf16: where the CPU has it
    argv += ["--configs", *sanet, *BASELINES, "--images", *map(str, PHOTOS)]
    argv += ["--rounds", "1", "--no-prime", "--duration", "0.4", "--warmup", "0.2", "--settle", "0"]
    argv += ["--min-requests", "1"]
    argv += ["--concurrency", "1", "2", "--idle-seconds", "0.5", "--idle-limit", "1000"]
    argv += ["--server-env", "SANET_BACKEND=openvino", "--out", str(out)]
    assert e2e.main(argv) == 0
    result = json.loads(out.read_text())

    for photo in PHOTOS:
        ours = result["answers"][photo.name]["sanet-fp32"]
        for baseline in BASELINES:
            theirs = result["answers"][photo.name][baseline]
            assert [p["label"] for p in theirs] == [p["label"] for p in ours], (photo, baseline)
            assert [p["probability"] for p in theirs] == pytest.approx(
                [p["probability"] for p in ours], abs=ATOL
            )
    configs = (*sanet, *BASELINES)
    assert {(r["config"], r["level"]) for r in result["runs"]} == {
        (c, level) for c in configs for level in (1, 2)
    }
    assert all(r["ok"] > 0 and not r["errors"] for r in result["runs"])
    assert all(r["memory_after"]["rss_mb"] > 0 for r in result["runs"])
    same = {(c["config"], c["against"]): c for c in result["comparisons"]}[
        "sanet-fp32", "same engine"
    ]
    assert same["throughput_baseline"] == same["p50_baseline"] == "baseline-openvino"
    run = {(r["config"], r["level"]): r for r in result["runs"]}  # one round: no median
    ours, theirs = run["sanet-fp32", 2], run["baseline-openvino", 2]  # throughput: top level
    assert same["throughput_ratio"] == pytest.approx(ours["images_per_s"] / theirs["images_per_s"])
    ours, theirs = run["sanet-fp32", 1], run["baseline-openvino", 1]  # latency: level 1
    p50s = ours["latency_ms"]["p50"] / theirs["latency_ms"]["p50"]
    assert same["p50_ratio"] == pytest.approx(p50s)
    assert result["machine"]["flags"].keys() == {
        "avx2",
        "avx512f",
        "avx512_vnni",
        "avx512_bf16",
        "amx",
    }


def test_baseline_rejects_what_it_cannot_decode(tmp_path: Path) -> None:
    from fastapi import HTTPException

    from bench.e2e.baseline import AuthorsClassifier, Options

    api = AuthorsClassifier(Options(ARCH, None, "onnxruntime", 1, tmp_path), 8, 0.005)
    with pytest.raises(HTTPException) as info:
        api.decode_request(b"not an image")
    assert info.value.status_code == 400
    assert api.decode_request((SAMPLES / "coffee.jpg").read_bytes()).shape == (3, 224, 224)
