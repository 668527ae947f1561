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
