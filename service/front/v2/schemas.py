"""The JSON of KServe v2 over HTTP (request header part, metadata and answers)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Parameters = dict[str, Any]


class V2Input(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(max_length=128)
    datatype: str = Field(max_length=16)
    shape: list[int] = Field(max_length=8)
    parameters: Parameters = Field(default_factory=dict)
    data: list[Any] | None = None


class V2RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(max_length=128)
    parameters: Parameters = Field(default_factory=dict)


class V2InferRequest(BaseModel):
    """``{"id", "parameters", "inputs": [...], "outputs": [...]}``; data inline or binary."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(default="", max_length=256)
    parameters: Parameters = Field(default_factory=dict)
    inputs: list[V2Input] = Field(max_length=8)
    outputs: list[V2RequestedOutput] = Field(default_factory=list, max_length=8)


class V2Output(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    parameters: Parameters | None = None
    data: list[Any] | None = None


class V2InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: Parameters = Field(default_factory=dict)
    outputs: list[V2Output]


class V2TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]


class V2ConfigTensor(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    data_type: str
    dims: list[int]


class V2ModelConfig(BaseModel):
    """Triton's model configuration in its JSON form (``model_config.proto``)."""

    model_config = ConfigDict(extra="allow")

    name: str
    platform: str
    backend: str
    max_batch_size: int
    input: list[V2ConfigTensor]
    output: list[V2ConfigTensor]
    dynamic_batching: dict[str, Any]
    instance_group: list[dict[str, Any]]


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class V2Error(BaseModel):
    error: str


INFER_EXAMPLE = {
    "id": "42",
    "inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": ["<base64 JPEG>"]}],
    "outputs": [{"name": "PROBABILITIES", "parameters": {"classification": 3}}],
}
