"""sanet-serve's model core: SA-ResNet, checkpoints, compilation, preprocessing, labels.

Plain PyTorch; never imports the web layer.
"""

from model.checkpoint import Checkpoint, CheckpointInfo, load_checkpoint
from model.compile import BACKENDS, CompiledModel, compile_model, resolve_backend, resolve_device
from model.engine import EngineBuild, EngineReport, build_engine
from model.errors import (
    ArchMismatchError,
    Bf16AgreementError,
    Bf16UnsupportedError,
    CalibrationError,
    CheckpointError,
    CheckpointNotFoundError,
    EngineError,
    ImageDecodeError,
    ImageError,
    ImageTooLargeError,
    Int8AgreementError,
    ModelError,
    NotACheckpointError,
    ShapeMismatchError,
    UnknownBackendError,
    UnknownDeviceError,
    UnknownModelError,
    UnknownPrecisionError,
    UnsafeCheckpointError,
)
from model.folding import fold_model
from model.labels import IMAGENET_CLASSES
from model.postprocess import Prediction, labels_for, probabilities, top_k
from model.preprocess import preprocess
from model.sa_layer import ShuffleAttention
from model.sanet import (
    SANet,
    arch_of,
    count_parameters,
    create_model,
    list_models,
    random_init,
    sanet50,
    sanet101,
    sanet152,
)

__all__ = [
    "BACKENDS",
    "IMAGENET_CLASSES",
    "ArchMismatchError",
    "Bf16AgreementError",
    "Bf16UnsupportedError",
    "CalibrationError",
    "Checkpoint",
    "CheckpointError",
    "CheckpointInfo",
    "CheckpointNotFoundError",
    "CompiledModel",
    "EngineBuild",
    "EngineError",
    "EngineReport",
    "ImageDecodeError",
    "ImageError",
    "ImageTooLargeError",
    "Int8AgreementError",
    "ModelError",
    "NotACheckpointError",
    "Prediction",
    "SANet",
    "ShapeMismatchError",
    "ShuffleAttention",
    "UnknownBackendError",
    "UnknownDeviceError",
    "UnknownModelError",
    "UnknownPrecisionError",
    "UnsafeCheckpointError",
    "arch_of",
    "build_engine",
    "compile_model",
    "count_parameters",
    "create_model",
    "fold_model",
    "labels_for",
    "list_models",
    "load_checkpoint",
    "preprocess",
    "probabilities",
    "random_init",
    "resolve_backend",
    "resolve_device",
    "sanet50",
    "sanet101",
    "sanet152",
    "top_k",
]
