"""The real app over real HTTP: uvicorn on a free 127.0.0.1 port in a background thread.

The model is the tiny SA-ResNet ``sanet_tiny`` loaded from a checkpoint that a fixture writes
in the authors' layout; its fc layer is scaled so that different photos give clearly
different probability vectors (a random-init net answers nearly the same for everything).
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
import uvicorn
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

import model
from service.app import create_app
from service.config import Settings
from service.lifecycle import Lifecycle
from tests.net import free_port

ARCH = "sanet_tiny"
BASE_SETTINGS: dict[str, Any] = {
    "backend": "torchscript",
    "device": "cpu",
    "max_batch_size": 4,
    "max_delay_ms": 2,
    "max_queue": 64,
    "max_images_per_request": 8,
    "max_body_bytes": 2 * 2**20,
    "max_pixels": 4_000_000,
    "preprocess_workers": 2,
    "drain_timeout_s": 5,
}


def write_checkpoint(path: Path, seed: int = 0) -> Path:
    """The tiny network in the authors' layout, its fc scaled to separate the test photos."""
    torch.manual_seed(seed)
    net = model.create_model(ARCH)
    with torch.no_grad():
        net.fc.weight.mul_(60.0)
    return model.save_authors_checkpoint(net, path, ARCH)


def image_bytes(i: int, fmt: str = "JPEG", size: tuple[int, int] = (96, 80)) -> bytes:
    """A distinct photo-like image per ``i``: colour gradient plus a block pattern."""
    w, h = size
    hue = [(i * 67) % 256, (i * 131 + 40) % 256, (i * 29 + 90) % 256]
    img = Image.new("RGB", size, (hue[0], hue[1], hue[2]))
    px = img.load()
    assert px is not None
    step = 4 + i % 7
    for y in range(0, h, 2):
        for x in range(0, w, 2):
            on = ((x // step) + (y // step) + i) % 2
            px[x, y] = (hue[0] * on, (x * 255) // w, (y * 255) // h)
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


class Running:
    """A started app: its base URL, lifecycle (for fault injection) and an httpx client."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.client = httpx.Client(base_url=self.url, timeout=30)

    @property
    def life(self) -> Lifecycle:
        life: Lifecycle = self.app.state.lifecycle
        return life

    def start(self, ready_within: float = 60) -> Running:
        self.thread.start()
        deadline = time.monotonic() + ready_within
        while time.monotonic() < deadline and self.thread.is_alive():
            if self.life.phase.value == "failed":
                break
            try:
                if self.client.get("/readyz").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the app did not become ready (phase {self.life.phase.value})")

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(15)

    def metric(self, name: str, **labels: str) -> float:
        """One sample of /metrics (0.0 when absent)."""
        for family in text_string_to_metric_families(self.client.get("/metrics").text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return 0.0


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "sa_tiny.pth.tar")


@pytest.fixture(scope="session")
def serve(checkpoint: Path) -> Iterator[Callable[..., Any]]:
    """``with serve(**overrides) as running:`` a fresh app on its own port."""

    @contextmanager
    def _serve(**overrides: Any) -> Iterator[Running]:
        opts = {**BASE_SETTINGS, "models": f"{ARCH}={checkpoint}", **overrides}
        running = Running(Settings(**opts)).start()
        try:
            yield running
        finally:
            running.stop()

    yield _serve


@pytest.fixture(scope="session")
def api(serve: Callable[..., Any]) -> Iterator[Running]:
    """The shared app for tests that do not disturb it."""
    with serve() as running:
        yield running


class Gate:
    """Wraps a compiled model so a test can hold the inference worker inside a batch."""

    def __init__(self, inner: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.inner = inner
        self.open = threading.Event()
        self.open.set()
        self.entered = threading.Event()
        self.batches: list[int] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        self.entered.set()
        assert self.open.wait(30)
        return self.inner(x)

    def hold(self) -> None:
        self.entered.clear()
        self.open.clear()


def gate(running: Running) -> Gate:
    runtime = running.life.runtimes[ARCH]
    g = Gate(runtime.compiled)
    runtime.compiled = g
    return g
