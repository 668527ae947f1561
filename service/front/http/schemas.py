"""Response bodies of the HTTP API (docs/api.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Prediction(BaseModel):
    class_index: int
    label: str
    probability: float


class ImageResult(BaseModel):
    predictions: list[Prediction]


class ClassifyResponse(BaseModel):
    model: str
    results: list[ImageResult] = Field(description="One entry per image, in request order.")
    timing_ms: dict[str, float] = Field(
        description="preprocess, queue, inference and total, in milliseconds."
    )


class ExplainResult(BaseModel):
    predictions: list[Prediction]
    target: int = Field(description="The class explained.")
    map: list[list[float]] = Field(description="7x7 map in [0, 1] over the 224x224 crop.")
    overlay_png: str = Field(description="base64 PNG: the map coloured over the crop.")


class ExplainResponse(BaseModel):
    model: str
    method: str = Field(description="gradcam or sa.")
    results: list[ExplainResult] = Field(description="One entry per image, in request order.")
    timing_ms: dict[str, float]


class WeightsInfo(BaseModel):
    source: str = Field(description="'checkpoint' or 'random-init'.")
    path: str | None = None
    sha256: str | None = None


class BatchingInfo(BaseModel):
    max_batch_size: int
    max_delay_ms: float
    max_queue: int


class ModelInfo(BaseModel):
    name: str
    arch: str
    default: bool
    parameters: int
    num_classes: int
    weights: WeightsInfo
    device: str
    precision: str
    backend: str
    fused_sa: bool = Field(description="SA runs in the fused CPU kernel (model/fused.py)")
    engine: dict[str, Any] | None = Field(None, description="model.EngineReport: auto, int8, bf16")
    batching: BatchingInfo
    input_size: list[int]


class ModelsResponse(BaseModel):
    default: str
    models: list[ModelInfo]


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
