"""The real process: start-up, SIGTERM drain and exit status, configuration errors."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support.checkpoints import separating_tiny_checkpoint
from tests.support.images import image_bytes
from tests.support.metrics import read_metric
from tests.support.servers import Spawned
from tests.support.waiting import poll

FAST = ("--backend", "torchscript", "--device", "cpu")
Launch = Callable[..., Spawned]


def _multipart(url: str, n: int) -> httpx.Response:
    files = [("file", (f"{i}.jpg", image_bytes(i), "image/jpeg")) for i in range(n)]
    with httpx.Client(base_url=url, timeout=120) as client:
        return client.post("/classify", files=files)


def test_sigterm_drains_in_flight_work_then_exits_zero(launch: Launch) -> None:
    proc = launch(
        "--models", "sanet50", "--max-batch-size", "1", "--drain-timeout-s", "60",
        "--timeout-ms", "120000", *FAST,
    )  # fmt: skip
    proc.wait_ready()
    n_requests = 6
    with ThreadPoolExecutor(n_requests) as pool:
        pending = [pool.submit(_multipart, proc.url, 4) for _ in range(n_requests)]
        poll(
            lambda: read_metric(proc.client, "sanet_inflight_requests") >= n_requests,
            30,
            f"{n_requests} requests in flight",
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
        answers = [f.result() for f in pending]
    refused = [a.text for a in answers if a.status_code != 200]
    assert not refused, refused
    assert all(len(a.json()["results"]) == 4 for a in answers)
    assert proc.wait() == 0, proc.log
    assert "draining" in proc.log


def test_random_init_warns_and_reports_it(launch: Launch) -> None:
    proc = launch("--models", "sanet_tiny", "--max-batch-size", "2", *FAST, module=True)
    proc.wait_ready()
    info = proc.client.get("/v1/models").json()["models"][0]
    assert info["weights"] == {"source": "random-init", "path": None, "sha256": None}
    assert "NO CHECKPOINT" in proc.log
    assert "warmed up batch size 2/2" in proc.log
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
