"""Settings: SANET_* environment, CLI flags on top, validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

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
        {"max_queue": 4, "max_images_per_request": 8},
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
    assert spec.name == "sanet50" and spec.checkpoint is not None
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
