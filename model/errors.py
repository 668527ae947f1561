"""Typed, HTTP-agnostic errors raised by the model core.

The service maps these to HTTP statuses in one place; nothing here knows about HTTP.
"""

from __future__ import annotations


class ModelError(Exception):
    """Base class of every error the model core raises on purpose."""


class ImageError(ModelError):
    """An image could not be turned into a model input."""


class ImageDecodeError(ImageError):
    """Empty, truncated, undecodable or unsupported image data."""


class ImageTooLargeError(ImageError):
    """The image header announces more pixels than the configured limit."""

    def __init__(self, pixels: int, limit: int) -> None:
        super().__init__(f"image has {pixels} pixels, the limit is {limit}")
        self.pixels = pixels
        self.limit = limit


class CheckpointError(ModelError):
    """A checkpoint file could not be loaded into a network."""


class CheckpointNotFoundError(CheckpointError):
    """The checkpoint path does not exist or is not a file."""


class NotACheckpointError(CheckpointError):
    """The file is not a torch checkpoint holding a state_dict."""


class UnsafeCheckpointError(CheckpointError):
    """The pickle needs globals outside the weights-only allow-list; it was not executed."""


class ArchMismatchError(CheckpointError):
    """The checkpoint's keys belong to another architecture."""

    def __init__(self, message: str, missing: list[str], unexpected: list[str]) -> None:
        super().__init__(message)
        self.missing = missing
        self.unexpected = unexpected


class ShapeMismatchError(CheckpointError):
    """Keys match, but some tensor shapes do not."""

    def __init__(
        self, message: str, mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]
    ):
        super().__init__(message)
        self.mismatched = mismatched


class UnknownModelError(ModelError):
    """An architecture or backend name that the registry does not know."""


class UnknownDeviceError(ModelError):
    """A device name other than ``auto``, ``cpu`` or ``cuda``, or ``cuda`` without a GPU."""


class UnknownBackendError(ModelError):
    """A compile backend the model core does not know, or one that does not run on the device."""


class UnknownPrecisionError(ModelError):
    """A precision the model core does not know, or one that does not run on the device."""


class EngineError(ModelError):
    """The requested inference engine or precision cannot be built as asked."""


class CalibrationError(EngineError):
    """INT8 was asked for without a usable set of calibration images."""


class Int8AgreementError(EngineError):
    """The INT8 model disagrees with fp32 too often on the held-out calibration images."""

    def __init__(self, agreement: float, minimum: float, held_out: int) -> None:
        super().__init__(
            f"INT8 model agrees with fp32 on top-1 for {agreement:.1%} of {held_out} held-out "
            f"calibration images, below the required {minimum:.1%}: serve fp32, add more "
            "representative calibration images, or lower SANET_INT8_MIN_AGREEMENT "
            "(0 disables the check)"
        )
        self.agreement = agreement
        self.minimum = minimum
        self.held_out = held_out


class Bf16UnsupportedError(EngineError):
    """bf16 was asked for on a CPU without native bf16 arithmetic (AVX512_BF16 or AMX)."""


class Bf16AgreementError(EngineError):
    """The bf16 model disagrees with fp32 too often on the calibration images."""

    def __init__(self, agreement: float, minimum: float, images: int) -> None:
        super().__init__(
            f"bf16 model agrees with fp32 on top-1 for {agreement:.1%} of {images} calibration "
            f"images, below the required {minimum:.1%}: serve fp32, or lower "
            "SANET_BF16_MIN_AGREEMENT (0 disables the check)"
        )
        self.agreement = agreement
        self.minimum = minimum
        self.images = images


class ExplainError(ModelError):
    """An explanation was asked for something the network cannot explain (a bad target)."""
