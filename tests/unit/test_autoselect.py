"""``auto`` by measurement: a fake clock decides, the decision is cached and reused."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from model import build_engine, engine, random_init
from model.autoselect import Candidate, choose, decision_path, score
from model.compile import CompiledModel
from model.errors import EngineError


class FakeClock:
    """A clock that only moves when a fake engine 'runs'."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fake_engine(
    name: str, ms_per_image: dict[int, float], clock: FakeClock, built: list[str]
) -> Candidate:
    def run(batch: torch.Tensor) -> torch.Tensor:
        clock.now += ms_per_image[batch.shape[0]] * batch.shape[0] / 1000
        return torch.zeros(batch.shape[0], 10)

    def build() -> CompiledModel:
        built.append(name)
        return CompiledModel(run, name, "cpu", "fp32", True, 10)

    return Candidate(name, build)


def candidates(clock: FakeClock, built: list[str]) -> list[Candidate]:
    return [
        fake_engine("torchscript", {1: 50, 8: 40}, clock, built),
        fake_engine("onnxruntime", {1: 45, 8: 30}, clock, built),  # fastest overall
        fake_engine("openvino", {1: 40, 8: 45}, clock, built),  # fastest at batch 1 only
    ]


def test_fastest_by_score_and_cached(tmp_path: Path) -> None:
    clock, built = FakeClock(), []
    decision = tmp_path / "d.json"
    compiled, choice = choose(
        candidates(clock, built), batches=[1, 8], rounds=2, decision_file=decision, timer=clock
    )
    assert compiled.backend == choice.backend == "onnxruntime"
    assert choice.source == "measured" and sorted(built) == [
        "onnxruntime",
        "openvino",
        "torchscript",
    ]
    assert abs(choice.timings_ms["openvino"]["1"] - 40) < 1e-6
    assert abs(choice.timings_ms["onnxruntime"]["8"] - 240) < 1e-6
    assert score(choice.timings_ms["onnxruntime"]) < score(choice.timings_ms["openvino"])
    assert decision.is_file()
    built.clear()  # a restart: only the winner is built, nothing is timed
    before = clock.now
    compiled, again = choose(
        candidates(clock, built), batches=[1, 8], decision_file=decision, timer=clock
    )
    assert (again.backend, again.source, built, clock.now) == (
        "onnxruntime",
        "cached",
        ["onnxruntime"],
        before,
    )
    assert again.timings_ms == choice.timings_ms


def test_other_machine_or_engine_measures_again(tmp_path: Path) -> None:
    base = {"cpu": {"model": "AMD EPYC", "flags": ["avx2"]}, "engines": {"openvino": "2026.4.1"}}
    other_cpu = {**base, "cpu": {"model": "Intel Xeon", "flags": ["avx2", "avx512f"]}}
    other_ov = {**base, "engines": {"openvino": "2027.0"}}
    paths = {decision_path(tmp_path, "k", f) for f in (base, other_cpu, other_ov)}
    assert len(paths) == 3
    assert decision_path(tmp_path, "k", base) != decision_path(tmp_path, "k2", base)  # weights


def test_unknown_cached_backend_is_measured(tmp_path: Path) -> None:
    decision = tmp_path / "d.json"
    decision.write_text('{"backend": "tensorrt", "timings_ms": {}}')
    clock, built = FakeClock(), []
    _, choice = choose(candidates(clock, built), batches=[1], decision_file=decision, timer=clock)
    assert choice.source == "measured" and choice.backend == "openvino"


def test_build_engine_auto_real_engines(tmp_path: Path) -> None:
    net = random_init("sanet_tiny")
    kwargs = {"device": "cpu", "cache_dir": tmp_path, "cache_key": "tiny", "max_batch_size": 2}
    compiled, report = build_engine(net, "auto", **kwargs)
    assert report.decision == "measured" and report.backend == compiled.backend
    assert {"torchscript", "onnxruntime"} <= set(report.timings_ms)
    assert report.cache_files and Path(report.cache_files[0]).is_file()
    again, cached = build_engine(net, "auto", **kwargs)
    assert (cached.decision, cached.backend) == ("cached", report.backend)
    x = torch.randn(2, 3, 224, 224)
    torch.testing.assert_close(again(x), compiled(x), atol=1e-4, rtol=1e-4)
    fixed = build_engine(net, "onnxruntime", **kwargs).report
    assert (fixed.backend, fixed.decision, fixed.requested) == (
        "onnxruntime",
        "fixed",
        "onnxruntime",
    )


def test_a_candidate_that_raises_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    """One route fails to build, another fails on its first (warm-up) call: both are left
    out with a log line each and the fastest of the rest is served."""
    clock, built, fed = FakeClock(), [], []

    def broken_build() -> CompiledModel:
        raise RuntimeError("no C compiler for the launcher")

    def broken_run(batch: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("inductor failed")

    def recording(batch: torch.Tensor) -> torch.Tensor:
        fed.append(batch.dtype)
        clock.now += 0.01 * batch.shape[0]
        return torch.zeros(batch.shape[0], 10)

    field = [
        Candidate("triton", broken_build),
        Candidate(
            "inductor", lambda: CompiledModel(broken_run, "inductor", "cpu", "fp32", True, 10)
        ),
        Candidate(
            "eager",
            lambda: CompiledModel(recording, "eager", "cpu", "fp32", True, 10, run_uint8=recording),
        ),
        *candidates(clock, built)[:1],
    ]
    with caplog.at_level(logging.WARNING, logger="model.autoselect"):
        compiled, choice = choose(field, batches=[1, 8], rounds=2, timer=clock)
    assert set(choice.timings_ms) == {"eager", "torchscript"}
    assert compiled.backend == choice.backend == "eager"
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 2 and "triton" in dropped[0] and "inductor" in dropped[1]
    assert fed and set(fed) == {torch.uint8}  # timed on what the service feeds


def test_no_candidate_left_is_an_engine_error() -> None:
    def broken() -> CompiledModel:
        raise RuntimeError("nothing builds")

    with pytest.raises(EngineError, match="no candidate"):
        choose([Candidate("triton", broken)], batches=[1])


def test_build_engine_serves_with_the_candidates_that_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real CPU auto path with a candidate forced to fail (an engine name that cannot
    compile): the service's build_engine still returns a working engine."""
    monkeypatch.setattr(engine, "available_cpu_backends", lambda _p: ["torchscript", "no-such"])
    net = random_init("sanet_tiny")
    compiled, report = build_engine(net, "auto", device="cpu", max_batch_size=2)
    assert report.backend == compiled.backend == "torchscript"
    crops = torch.zeros(2, 224, 224, 3, dtype=torch.uint8)
    assert compiled(crops).shape == (2, 1000)
