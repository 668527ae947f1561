"""The real process: start-up, SIGTERM drain and exit status, configuration errors."""

from __future__ import annotations

import hashlib
import queue
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from testing.checkpoints import separating_tiny_checkpoint
from testing.ci import skip_or_fail
from testing.images import image_bytes
from testing.metrics import read_metric
from testing.ports import free_port
from testing.servers import Spawned
from testing.v2 import image_input
from testing.waiting import poll

FAST = ("--backend", "torchscript", "--device", "cpu")
Launch = Callable[..., Spawned]


def _multipart(url: str, n: int) -> httpx.Response:
    files = [("file", (f"{i}.jpg", image_bytes(i), "image/jpeg")) for i in range(n)]
    with httpx.Client(base_url=url, timeout=120) as client:
        return client.post("/classify", files=files)


class Grpc:
    """A tritonclient gRPC client on ``port`` that keeps its async calls' outcomes."""

    def __init__(self, port: int) -> None:
        try:
            import tritonclient.grpc as grpcclient
        except ImportError:
            skip_or_fail("tritonclient[grpc] is not installed")
        self.port, self.lib = port, grpcclient
        self.client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
        self.done: queue.Queue[tuple[Any, Any]] = queue.Queue()
        self.sent = 0

    def _images(self, n: int) -> Any:
        return image_input(self.lib, [image_bytes(i) for i in range(n)])

    def send(self, calls: int, images: int) -> None:
        for _ in range(calls):
            self.client.async_infer(
                "sanet50",
                [self._images(images)],
                callback=lambda result, error: self.done.put((result, error)),
            )
        self.sent += calls

    def refused_now(self) -> str:
        """The status of a new call (it must fail)."""
        from tritonclient.utils import InferenceServerException

        try:
            self.client.infer("sanet50", [self._images(1)])
        except InferenceServerException as exc:
            return str(exc.status())
        return "admitted"

    def answers(self) -> list[Any]:
        """The shape of every call's PROBABILITIES, or its error."""
        out = []
        for _ in range(self.sent):
            result, error = self.done.get(timeout=120)
            out.append(error or result.as_numpy("PROBABILITIES").shape)
        self.client.close()
        return out


def test_sigterm_drains_in_flight_work_then_exits_zero(launch: Launch) -> None:
    """HTTP and KServe v2 gRPC requests in flight both finish; new ones of both are refused."""
    grpc = Grpc(free_port())
    proc = launch(
        "--models", "sanet50", "--max-batch-size", "1", "--drain-timeout-s", "60",
        "--timeout-ms", "120000", "--grpc-port", str(grpc.port), *FAST,
    )  # fmt: skip
    proc.wait_ready()
    n_requests = 4  # 4 x 4 + 2 x 2 images: the drain has minutes on a busy machine
    with ThreadPoolExecutor(n_requests) as pool:
        pending = [pool.submit(_multipart, proc.url, 4) for _ in range(n_requests)]
        grpc.send(2, images=2)
        poll(
            lambda: read_metric(proc.client, "sanet_inflight_requests") >= n_requests + 2,
            30,
            f"{n_requests} + 2 requests in flight",
        )
        proc.terminate()
        poll(
            lambda: proc.client.get("/readyz").status_code == 503,
            10,
            "readiness to turn off after SIGTERM",
        )
        assert proc.client.get("/readyz").json() == {"status": "draining"}
        late = proc.client.post(
            "/classify", content=image_bytes(0), headers={"Content-Type": "image/jpeg"}
        )
        assert late.status_code == 503
        assert late.json()["error"]["code"] == "draining"
        assert grpc.refused_now() == "StatusCode.UNAVAILABLE"
        answers = [f.result() for f in pending]
    refused = [a.text for a in answers if a.status_code != 200]
    assert not refused, refused
    assert all(len(a.json()["results"]) == 4 for a in answers)
    assert grpc.answers() == [(2, 1000), (2, 1000)]
    assert proc.wait() == 0, proc.log
    assert "draining" in proc.log


def test_random_init_warns_and_reports_it(launch: Launch) -> None:
    proc = launch("--models", "sanet_tiny", "--max-batch-size", "2", *FAST, module=True)
    proc.wait_ready()
    info = proc.client.get("/v1/models").json()["models"][0]
    assert info["weights"] == {"source": "random-init", "path": None, "sha256": None}
    assert "NO CHECKPOINT" in proc.log
    assert "warmed up batch size 2 (2 sizes)" in proc.log  # torchscript: every size
    proc.terminate()
    assert proc.wait() == 0, proc.log


def test_settings_from_environment_with_checkpoint_and_keys(launch: Launch, tmp_path: Path) -> None:
    ckpt = separating_tiny_checkpoint(tmp_path / "tiny.pth.tar")
    env = {
        "SANET_MODELS": f"sanet_tiny={ckpt}",
        "SANET_API_KEYS": "s3cret",
        "SANET_MAX_BATCH_SIZE": "2",
        "SANET_LOG_JSON": "true",
    }
    proc = launch(*FAST, env=env)
    proc.wait_ready()
    assert proc.client.get("/v1/models").status_code == 401
    info = proc.client.get("/v1/models", headers={"X-API-Key": "s3cret"}).json()["models"][0]
    assert info["weights"]["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    proc.terminate()
    assert proc.wait() == 0
    assert '"level": "info"' in proc.log and "s3cret" not in proc.log


def test_invalid_settings_exit_2(launch: Launch) -> None:
    proc = launch("--max-batch-size", "0")
    assert proc.wait() == 2
    assert "max_batch_size" in proc.log


def test_unloadable_checkpoint_exits_non_zero(launch: Launch, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth.tar"
    bad.write_bytes(b"not a checkpoint")
    proc = launch("--models", f"sanet_tiny={bad}", *FAST)
    assert proc.wait() == 1, proc.log
    assert "startup failed" in proc.log


def test_a_port_in_use_is_a_one_line_error(launch: Launch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = launch("--port", str(port))  # a flag wins over SANET_PORT
        assert proc.wait(60) == 1, proc.log
    errors = [line for line in proc.log.splitlines() if line.startswith("sanet-serve:")]
    assert len(errors) == 1 and f":{port}" in errors[0], proc.log
    assert "Traceback" not in proc.log and "terminate called" not in proc.log
