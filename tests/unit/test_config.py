"""Settings: SANET_* environment, CLI flags on top, validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service import config
from service.cli import build_parser, load_settings
from service.config import ModelSpec, Settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SANET_MODELS", "SANET_PORT", "SANET_API_KEYS"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.models == [ModelSpec("sanet50")]
    assert s.default_model == "sanet50"
    assert s.port == 8000
    assert s.api_key_values() == []
    assert s.device == "auto" and s.backend == "auto" and s.precision == "fp32"
    assert s.int8_min_agreement == s.bf16_min_agreement == 0.99


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANET_MODELS", " sanet101=/w/sa101.pth.tar , sanet_tiny ")
    monkeypatch.setenv("SANET_MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("SANET_API_KEYS", "a,b")
    monkeypatch.setenv("SANET_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("SANET_LOG_JSON", "true")
    monkeypatch.setenv("SANET_PRECISION", "bf16")
    monkeypatch.setenv("SANET_BF16_MIN_AGREEMENT", "0")
    s = Settings()
    assert s.precision == "bf16" and s.bf16_min_agreement == 0
    assert s.models == [ModelSpec("sanet101", Path("/w/sa101.pth.tar")), ModelSpec("sanet_tiny")]
    assert s.default_model == "sanet101"
    assert s.max_batch_size == 8
    assert s.api_key_values() == ["a", "b"]
    assert "'a'" not in repr(s)  # secrets stay out of logs
    assert s.log_level == "debug" and s.log_json is True


@pytest.mark.parametrize(
    "overrides",
    [
        {"models": ""},
        {"models": "sanet50,sanet50"},
        {"models": "sanet50="},
        {"models": "ft=sanet50:"},
        {"models": "bad name=sanet50"},
        {"models": "a=sanet50,a=sanet101"},
        {"max_batch_size": 0},
        {"port": 70000},
        {"device": "tpu"},
        {"precision": "int4"},
        {"bf16_min_agreement": 1.5},
        {"max_delay_ms": -1},
    ],
)
def test_invalid(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**overrides)  # type: ignore[arg-type]


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANET_PORT", "9000")
    monkeypatch.setenv("SANET_MAX_DELAY_MS", "7")
    s = load_settings(
        ["--port", "9100", "--models", "sanet_tiny", "--log-json", "--cache-dir", "/tmp/c"]
    )
    assert s.port == 9100
    assert s.max_delay_ms == 7
    assert s.models == [ModelSpec("sanet_tiny")]
    assert s.log_json is True
    assert s.cache_dir == Path("/tmp/c")


def test_every_setting_but_api_keys_has_a_flag() -> None:
    text = build_parser().format_help()
    missing = {f for f in Settings.model_fields if "--" + f.replace("_", "-") not in text}
    assert missing == {"api_keys"}


def test_model_spec_round_trip() -> None:
    spec = ModelSpec.parse("sanet50=~/w.pth.tar")
    assert spec.name == "sanet50" and spec.checkpoint == Path.home() / "w.pth.tar"
    assert str(spec) == f"sanet50={Path.home() / 'w.pth.tar'}"
    assert str(ModelSpec.parse("sanet50")) == "sanet50"


@pytest.mark.parametrize(
    ("entry", "name", "arch", "checkpoint"),
    [
        ("sanet50", "sanet50", "sanet50", None),
        ("sanet50=/w/sa.pth.tar", "sanet50", "sanet50", "/w/sa.pth.tar"),
        ("birds=sanet50:/w/birds.pth", "birds", "sanet50", "/w/birds.pth"),
        ("big=sanet101", "big", "sanet101", None),
        ("sanet50=sanet50:/w/c:v2.pth", "sanet50", "sanet50", "/w/c:v2.pth"),
    ],
)
def test_model_entries_name_the_model_apart_from_its_arch(
    entry: str, name: str, arch: str, checkpoint: str | None
) -> None:
    spec = ModelSpec.parse(entry)
    assert (spec.name, spec.arch) == (name, arch)
    assert spec.checkpoint == (Path(checkpoint) if checkpoint else None)
    assert ModelSpec.parse(str(spec)) == spec


def test_two_checkpoints_of_one_arch_can_be_served_side_by_side() -> None:
    s = Settings(models="sanet50=/w/sa50.pth.tar,birds=sanet50:/w/birds.pth")
    assert [m.name for m in s.models] == ["sanet50", "birds"]
    assert {m.arch for m in s.models} == {"sanet50"}
    assert s.default_model == "sanet50"


def test_lowering_the_queue_alone_lowers_the_per_request_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SANET_MAX_QUEUE", "4")
    assert load_settings([]).max_images_per_request == 4
    assert load_settings(["--max-queue", "2"]).max_images_per_request == 2
    assert Settings(max_queue=500).max_images_per_request == 32


def test_only_an_explicit_contradiction_is_an_error() -> None:
    with pytest.raises(ValidationError, match="SANET_MAX_IMAGES_PER_REQUEST=8"):
        Settings(max_queue=4, max_images_per_request=8)


def test_cuda_brings_its_own_defaults() -> None:
    cpu, cuda = Settings(device="cpu"), Settings(device="cuda")
    assert (cpu.precision, cpu.max_batch_size, cpu.max_delay_ms, cpu.max_queue) == (
        "fp32",
        8,
        5.0,
        128,
    )
    assert (cuda.precision, cuda.max_batch_size, cuda.max_delay_ms) == ("fp16", 128, 2.0)
    assert 64 <= cuda.max_batch_size <= 128
    assert cuda.max_queue >= 256  # 256 single-image clients each hold one slot


@pytest.mark.parametrize("gpu", [True, False])
def test_auto_device_takes_the_cuda_defaults_on_a_gpu_host(
    monkeypatch: pytest.MonkeyPatch, gpu: bool
) -> None:
    monkeypatch.setattr(config, "cuda_expected", lambda: gpu)
    auto = Settings(device="auto")
    want = Settings(device="cuda" if gpu else "cpu")
    got = (auto.precision, auto.max_batch_size, auto.max_delay_ms, auto.max_queue)
    assert got == (want.precision, want.max_batch_size, want.max_delay_ms, want.max_queue)


def test_explicit_values_win_over_cuda_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANET_DEVICE", "cuda")
    monkeypatch.setenv("SANET_PRECISION", "bf16")
    monkeypatch.setenv("SANET_MAX_DELAY_MS", "auto")
    s = load_settings(["--max-batch-size", "64"])
    assert (s.precision, s.max_batch_size, s.max_delay_ms, s.max_queue) == ("bf16", 64, 2.0, 512)
    assert Settings(device="cpu", max_delay_ms="auto").max_delay_ms == 5.0  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["triton", "inductor"])
def test_sa_routes_can_be_pinned(backend: str) -> None:
    assert Settings(device="cuda", backend=backend).backend == backend  # type: ignore[arg-type]
