"""Every setting of the service: one typed object read from ``SANET_*`` environment variables.

Built by the CLI (flags override the environment) or by tests, then passed to
``create_app(settings)``; nothing here runs at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from model.export_cache import default_cache_dir
from service.host import available_cores, cuda_expected, default_workers
from service.model_spec import ModelSpec

_DEFAULT_MAX_IMAGES = 32


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _cuda_default(value: Any) -> dict[str, Any]:
    """A field's default when SANET_DEVICE=cuda (the field's own default is the cpu one)."""
    return {"cuda_default": value}


def _on_cuda(device: object) -> bool:
    """The service will run on cuda: asked for, or ``auto`` on a host with a usable GPU."""
    name = str(device or "auto").strip().lower()
    return name == "cuda" or (name == "auto" and cuda_expected())


def _device_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Unset (or ``auto``) fields that have a cuda default get it when the device is cuda
    (``SANET_DEVICE=cuda``, or ``auto`` on a GPU host); else the field's own default."""
    cuda = _on_cuda(data.get("device"))
    out = dict(data)
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra
        if not isinstance(extra, dict) or "cuda_default" not in extra:
            continue
        value = out.get(name)
        if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
            out[name] = extra["cuda_default"] if cuda else field.default
    return out


def _images_fit_queue(data: dict[str, Any]) -> dict[str, Any]:
    """Unset, the per-request cap follows the queue: lowering SANET_MAX_QUEUE alone works."""
    if data.get("max_images_per_request") is None:
        queue = data.get("max_queue")
        cap = _DEFAULT_MAX_IMAGES
        if queue is not None and str(queue).strip().isdigit():
            cap = max(1, min(cap, int(queue)))
        data = {**data, "max_images_per_request": cap}
    return data


class Settings(BaseSettings):
    """sanet-serve settings; the field name upper-cased with ``SANET_`` is the variable."""

    model_config = SettingsConfigDict(env_prefix="SANET_", extra="ignore", frozen=True)

    models: Annotated[list[ModelSpec], NoDecode] = Field(
        default_factory=lambda: [ModelSpec("sanet50")],
        description="Comma list of 'name=arch:checkpoint' (or 'arch=checkpoint', 'arch'); "
        "the first is the default.",
    )
    host: str = Field(default="127.0.0.1", description="Interface to bind (0.0.0.0 in containers).")
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port.")
    grpc_port: int = Field(
        default=8001, ge=0, le=65535, description="TCP port of KServe v2 gRPC (0 disables)."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="Inference device; auto takes cuda when available (with the cuda defaults).",
    )
    backend: Literal[
        "auto", "eager", "torchscript", "onnxruntime", "openvino", "triton", "inductor", "null"
    ] = Field(
        default="auto",
        description="Compile backend; auto measures the engines on this machine once (cpu: "
        "torchscript, onnxruntime, openvino; cuda: torchscript, triton, inductor) and caches "
        "the choice. triton (cuda) and inductor pin an SA route. null (benchmarks only) runs no "
        "network: every image gets the same uniform vector, so a benchmark measures HTTP, "
        "decode, crop and the hand-off alone.",
    )
    precision: Literal["fp32", "fp16", "bf16", "int8"] = Field(
        default="fp32",
        json_schema_extra=_cuda_default("fp16"),
        description="Inference precision: fp16 cuda; bf16 cuda or AVX512_BF16/AMX cpu; int8 cpu.",
    )
    calibration_dir: Path | None = Field(
        default=None, description="Folder of representative images; int8 and bf16 gates."
    )
    int8_min_agreement: float = Field(
        default=0.99, ge=0, le=1, description="Least int8/fp32 top-1 agreement (held out); 0: off."
    )
    bf16_min_agreement: float = Field(
        default=0.99, ge=0, le=1, description="Least bf16/fp32 top-1 agreement (cpu); 0: off."
    )
    threads: int | None = Field(
        default=None, ge=1, description="Intra-op threads for inference (unset: torch default)."
    )
    workers: Literal["auto"] | Annotated[int, Field(ge=1, le=64)] = Field(
        default="auto",
        description="Front-end processes (HTTP, gRPC, decode and crop). auto: on a GPU, the "
        "cores less two (at most 16); on the CPU, one per 8 cores (1 to 4), since inference "
        "takes the cores there.",
    )
    preprocess_workers: int = Field(
        default_factory=default_workers,
        ge=1,
        le=64,
        description="Threads of each front end that decode and crop images.",
    )
    decode_nice: int = Field(
        default=0,
        ge=0,
        le=19,
        description="Per-thread nice of the decode threads below the event loop. Higher: "
        "faster 503s under overload, less goodput (docs/performance.md); 0: the same.",
    )
    cache_dir: Path | None = Field(
        default_factory=default_cache_dir,
        description="Where compiled models (ONNX exports) are cached by weights sha256.",
    )
    max_batch_size: int = Field(
        default=8,
        ge=1,
        le=512,
        json_schema_extra=_cuda_default(128),
        description="Most images in one batch (cuda: captured as CUDA graphs of 1, 2, 4, ... "
        "up to it; a batch runs padded up to the next).",
    )
    max_delay_ms: float = Field(
        default=5.0,
        ge=0,
        le=10_000,
        json_schema_extra=_cuda_default(2.0),
        description="Longest a partial batch waits for company, from its oldest request; "
        "auto (or unset): the device's default. Only a batch that follows a busy one waits.",
    )
    max_queue: int = Field(
        default=128,
        ge=1,
        json_schema_extra=_cuda_default(512),
        description="Most images admitted and waiting on the device, all models together "
        "(the shared-memory slots are this plus one batch); then 503. The cuda default "
        "holds 256 single-image clients twice over.",
    )
    timeout_ms: int = Field(
        default=10_000, ge=1, description="Default request deadline (X-Request-Timeout-Ms wins)."
    )
    max_body_bytes: int = Field(default=20 * 2**20, ge=1024, description="Largest body in bytes.")
    max_pixels: int = Field(default=50_000_000, ge=1, description="Largest image, in pixels.")
    jpeg_draft: bool = Field(
        default=False,
        description="Opt-in: decode large JPEGs scaled down in the DCT (faster, not the exact "
        "eval transform; docs/performance.md).",
    )
    max_images_per_request: int = Field(
        default=_DEFAULT_MAX_IMAGES,
        ge=1,
        description="Most images in one request (default: min(32, SANET_MAX_QUEUE)).",
    )
    large_image_pixels: int = Field(
        default=16_000_000,
        ge=1,
        description="Images above this many pixels count as large (see max_large_decodes).",
    )
    max_large_decodes: int = Field(
        default=2, ge=1, description="Most large images decoded at once; memory is trimmed after."
    )
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        description="Longest request line plus headers, in bytes; then 431.",
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Time a request's headers may take from its first byte; then the "
        "connection is closed.",
    )
    keep_alive_timeout_s: float = Field(
        default=5.0, gt=0, description="Idle keep-alive connections are closed after this."
    )
    max_connections: int = Field(
        default=512, ge=1, description="Most open connections; the next one gets 503 and closes."
    )
    max_discard_bytes: int = Field(
        default=16 * 2**20,
        ge=0,
        description="After an answer sent before the body was read (413, 503, ...), how much "
        "of the body is read and discarded so the client can read the answer; then close.",
    )
    discard_timeout_s: float = Field(
        default=2.0, ge=0, description="Longest that discarding an unread body may take."
    )
    explain: Literal["off", "lazy", "eager"] = Field(
        default="lazy",
        description="Explanations (POST /explain): off; lazy, the first one builds the fp32 "
        "network they need beside the inference thread (classifications go on meanwhile); "
        "eager, at start (docs/model.md gives its memory).",
    )
    explain_queue: int = Field(
        default=4,
        ge=1,
        description="Most images waiting in each model's explanation lane (also the most in "
        "one explanation request); then 503 queue_full. Explanations run only when no "
        "classification waits, one image at a time.",
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma list of accepted API keys; empty disables auth.",
    )
    drain_timeout_s: float = Field(
        default=20.0, ge=0, description="On SIGTERM, how long queued and in-flight work may take."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Log level."
    )
    log_json: bool = Field(default=False, description="One JSON object per log line.")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("models", mode="before")
    @classmethod
    def _parse_models(cls, value: Any) -> Any:
        value = _split_commas(value)
        if isinstance(value, list):
            return [ModelSpec.parse(v) if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = _images_fit_queue(_device_defaults(data))
        return data

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if not self.models:
            raise ValueError("SANET_MODELS names no model")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"SANET_MODELS names a model twice: {names}")
        if self.max_queue < self.max_images_per_request:
            raise ValueError(
                f"SANET_MAX_IMAGES_PER_REQUEST={self.max_images_per_request} cannot fit in "
                f"SANET_MAX_QUEUE={self.max_queue}: lower it or leave it unset"
            )
        return self

    def front_end_count(self) -> int:
        """``workers``, with ``auto`` resolved from the cores and the device."""
        if self.workers != "auto":
            return int(self.workers)
        cores = available_cores()
        if _on_cuda(self.device):
            return max(1, min(16, cores - 2))
        return max(1, min(4, cores // 8))

    @property
    def default_model(self) -> str:
        return self.models[0].name

    def api_key_values(self) -> list[str]:
        return [k.get_secret_value() for k in self.api_keys if k.get_secret_value()]
