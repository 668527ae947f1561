"""The real app over real HTTP, and a gate to hold its inference worker.

``Running`` is ``create_app(settings)`` under uvicorn in a thread (``servers.InThread``);
the tiny SA-ResNet it serves comes from ``checkpoints.separating_tiny_checkpoint``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from service.app import create_app
from service.config import Settings
from service.http_server import server_config
from testing.metrics import read_metric
from testing.servers import InThread

if TYPE_CHECKING:
    from service.lifecycle import Lifecycle

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
    "grpc_port": 0,  # tests that speak gRPC give a free port
}


class Running(InThread):
    """A started app: its URL, settings, lifecycle (for fault injection) and an httpx client."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        app = create_app(settings)
        super().__init__(
            app,
            failed=self._start_failed,
            config=lambda app, **options: server_config(app, settings, **options),
        )

    @property
    def life(self) -> Lifecycle:
        """The app's lifecycle: ``.phase``, ``.begin_drain()``, ``.models[name]``."""
        life: Lifecycle = self.app.state.lifecycle
        return life

    def _start_failed(self) -> bool:
        life = getattr(self.app.state, "lifecycle", None)
        return life is not None and life.phase.value == "failed"

    def served(self, name: str = ARCH) -> Any:
        """The ``ServedModel`` called ``name`` (its ``.engine`` may be swapped by a test)."""
        return self.life.models[name]

    def metric(self, name: str, **labels: str) -> float:
        """One sample of /metrics (0.0 when absent)."""
        return read_metric(self.client, name, **labels)

    def start(self, ready_within: float = 60) -> Running:
        super().start(ready_within)
        return self

    def __enter__(self) -> Running:
        return self.start()


class Gate:
    """Wraps a model engine so a test can hold the inference worker inside a batch."""

    def __init__(self, inner: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.inner = inner
        self.open = threading.Event()
        self.open.set()
        self.entered = threading.Event()
        self.batches: list[int] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        self.entered.set()
        assert self.open.wait(30), "the gate was never opened"
        return self.inner(x)

    def hold(self) -> None:
        """Close the gate: the next batch enters (``entered`` is set) and waits there."""
        self.entered.clear()
        self.open.clear()


def gate(running: Running, name: str = ARCH) -> Gate:
    """Put a ``Gate`` in front of the engine of model ``name``; it starts open."""
    served = running.served(name)
    g = Gate(served.engine)
    served.engine = g
    return g
