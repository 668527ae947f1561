"""Reading /classify bodies: a streaming size limit, then raw / multipart / base64-JSON images.

JSON comes in two shapes: ours, ``{"images": ["<base64>", ...]}``, and KServe v1's
``{"instances": [...]}`` where each instance is base64 or TF Serving's binary object
``{"b64": "<base64>"}``; base64 may also be a ``data:`` URL."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from typing import Any, NamedTuple

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request

from service import errors

#: media types of a raw one-image body: every format the decoder reads (model/preprocess.py)
IMAGE_TYPES = (
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "image/bmp",
    "image/tiff",
    "image/avif",
    "image/heic",
    "image/heif",
)
RAW_TYPES = frozenset(
    {
        *IMAGE_TYPES,
        "image/jpg",
        "image/pjpeg",
        "image/x-ms-bmp",
        "image/heic-sequence",
        "image/heif-sequence",
        "application/octet-stream",
    }
)
MULTIPART = "multipart/form-data"
JSON = "application/json"
FILE_FIELD = b"file"
#: the JSON bodies accepted, as error messages name them
JSON_SHAPES = (
    '{"images": ["<base64>", ...]} or {"instances": ["<base64>" or {"b64": "<base64>"}, ...]}'
)


async def read_body(
    request: Request, limit: int, deadline: float, stop: asyncio.Event | None = None
) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` bytes.

    Content-Length is checked before reading; the running count while reading covers chunked
    uploads and lying headers, so an oversized upload is never buffered whole. The read ends
    at the request's ``deadline`` (monotonic; 408) and when ``stop`` is set (the service
    drains: 503), so a slow upload neither outlives its deadline nor holds the drain.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise errors.BadRequest("invalid Content-Length")
        if int(declared) > limit:
            raise errors.BodyTooLarge(f"the body is larger than {limit} bytes")
    reader = asyncio.ensure_future(_read(request, limit))
    waits: set[asyncio.Future[Any]] = {reader}
    stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
    if stopper is not None:
        waits.add(stopper)
    try:
        left = deadline - time.monotonic()
        await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
    if reader.done() and not reader.cancelled():
        return reader.result()
    if stopper is not None and stopper.done() and not stopper.cancelled():
        raise errors.Draining()
    raise errors.RequestTimeout()


async def _read(request: Request, limit: int) -> bytes:
    buf = bytearray()
    try:
        async for chunk in request.stream():
            buf += chunk
            if len(buf) > limit:
                raise errors.BodyTooLarge(f"the body is larger than {limit} bytes")
    except ClientDisconnect as exc:
        raise errors.ClientClosed() from exc
    return bytes(buf)


class Media(NamedTuple):
    """A request's Content-Type, parsed once: the lower-case type and its parameters."""

    type: str
    params: dict[bytes, bytes]


def media_type(request: Request) -> Media:
    """The request's media type, or 415 before reading a body that could never be parsed."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    media = Media(ctype.decode("latin-1").lower(), params)
    _check_media_type(media.type)
    return media


def _check_media_type(ctype: str) -> None:
    if ctype not in RAW_TYPES and ctype not in (MULTIPART, JSON):
        raise errors.UnsupportedMediaType(
            f"unsupported Content-Type {ctype[:64]!r}; accepted: {', '.join(IMAGE_TYPES)}, "
            f"application/octet-stream (one image), {MULTIPART} ('file' parts), "
            f"{JSON} ({JSON_SHAPES})"
        )


def split_images(media: Media, body: bytes, max_images: int) -> list[bytes]:
    """The encoded images of a body, in request order (decoding happens later)."""
    if media.type == MULTIPART:
        images = _multipart_files(body, media.params.get(b"boundary", b""), max_images)
    elif media.type == JSON:
        images = _json_images(body, max_images)
    else:
        images = [body]
    if not images:
        raise errors.NoImages()
    return images


def _too_many(max_images: int) -> errors.ServiceError:
    return errors.TooManyImages(f"at most {max_images} images per request")


class _FileCollector:
    """python-multipart callbacks that keep the bytes of every part named ``file``."""

    def __init__(self, max_images: int) -> None:
        self.max_images = max_images
        self.files: list[bytes] = []
        self.ended = False
        self._field = bytearray()
        self._value = bytearray()
        self._name: bytes | None = None
        self._data: bytearray | None = None

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _begin(self) -> None:
        self._name, self._data = None, bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if bytes(self._field).lower() == b"content-disposition":
            self._name = parse_options_header(bytes(self._value))[1].get(b"name")
        self._field.clear()
        self._value.clear()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._name == FILE_FIELD and self._data is not None:
            self._data += data[start:end]

    def _part_end(self) -> None:
        if self._name == FILE_FIELD and self._data is not None:
            if len(self.files) >= self.max_images:
                raise _too_many(self.max_images)
            self.files.append(bytes(self._data))
        self._data = None

    def _end(self) -> None:
        self.ended = True


def _multipart_files(body: bytes, boundary: bytes, max_images: int) -> list[bytes]:
    if not boundary:
        raise errors.MalformedMultipart("multipart/form-data without a boundary")
    collector = _FileCollector(max_images)
    try:
        parser = MultipartParser(boundary, collector.callbacks())
        parser.write(body)
        parser.finalize()
    except (MultipartParseError, ValueError) as exc:
        raise errors.MalformedMultipart() from exc
    if not collector.ended:
        raise errors.MalformedMultipart("the multipart body ends before its closing boundary")
    return collector.files


def _json_images(body: bytes, max_images: int) -> list[bytes]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.BadRequest("the body is not valid JSON") from exc
    key = _images_key(doc)
    items = doc[key]
    if len(items) > max_images:
        raise _too_many(max_images)
    if key == "images":
        return [_b64(item, f"images[{i}]") for i, item in enumerate(items)]
    return [_instance(item, f"instances[{i}]") for i, item in enumerate(items)]


def _images_key(doc: Any) -> str:
    """Which of the two shapes ``doc`` is: its key holding the list of images."""
    keys = [k for k in ("images", "instances") if isinstance(doc, dict) and k in doc]
    if len(keys) != 1:
        both = " (not both)" if len(keys) == 2 else ""
        raise errors.BadRequest(f"expected a JSON object {JSON_SHAPES}{both}")
    if not isinstance(doc[keys[0]], list):
        raise errors.BadRequest(f"{keys[0]} is not a list; expected {JSON_SHAPES}")
    return keys[0]


def _instance(item: Any, where: str) -> bytes:
    """A KServe v1 instance: base64 itself, or TF Serving's binary object ``{"b64": ...}``."""
    if not isinstance(item, dict):
        return _b64(item, where)
    if set(item) != {"b64"}:
        raise errors.BadRequest(f'{where} is an object other than {{"b64": "<base64>"}}')
    return _b64(item["b64"], f"{where}.b64")


def _b64(item: Any, where: str) -> bytes:
    if not isinstance(item, str):
        raise errors.InvalidBase64(f"{where} is not a base64 string")
    if item.startswith("data:"):  # data URL: data:image/png;base64,....
        item = item.partition(",")[2]
    try:
        return base64.b64decode("".join(item.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise errors.InvalidBase64(f"{where} is not valid base64") from exc
