"""The real process: start-up, SIGTERM drain and exit status, configuration errors."""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.api.conftest import image_bytes, write_checkpoint

FAST = ("--backend", "torchscript", "--device", "cpu")


def _multipart(url: str, n: int) -> httpx.Response:
    files = [("file", (f"{i}.jpg", image_bytes(i), "image/jpeg")) for i in range(n)]
    with httpx.Client(base_url=url, timeout=120) as client:
        return client.post("/classify", files=files)


def _inflight(client: httpx.Client) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("sanet_inflight_requests "):
            return float(line.split()[1])
    return 0.0


def test_sigterm_drains_in_flight_work_then_exits_zero(launch: Any) -> None:
    proc = launch("--models", "sanet50", "--max-batch-size", "1", "--drain-timeout-s", "60", *FAST)
    proc.wait_ready()
    n_requests = 6
    with ThreadPoolExecutor(n_requests) as pool:
        pending = [pool.submit(_multipart, proc.url, 4) for _ in range(n_requests)]
        end = time.monotonic() + 30
        while _inflight(proc.client) < n_requests:
            assert time.monotonic() < end
            time.sleep(0.01)
        proc.terminate()
        time.sleep(0.2)
        ready = proc.client.get("/readyz")
        assert ready.status_code == 503 and ready.json() == {"status": "draining"}
        late = proc.client.post(
            "/classify", content=image_bytes(0), headers={"Content-Type": "image/jpeg"}
        )
        assert late.status_code == 503
        assert late.json()["error"]["code"] == "draining"
        answers = [f.result() for f in pending]
    assert [a.status_code for a in answers] == [200] * n_requests
    assert all(len(a.json()["results"]) == 4 for a in answers)
    assert proc.wait() == 0, proc.log
    assert "draining" in proc.log


def test_random_init_warns_and_reports_it(launch: Any) -> None:
    proc = launch("--models", "sanet_tiny", "--max-batch-size", "2", *FAST, module=True)
    proc.wait_ready()
    info = proc.client.get("/v1/models").json()["models"][0]
    assert info["weights"] == {"source": "random-init", "path": None, "sha256": None}
    assert "NO CHECKPOINT" in proc.log
    assert "warmed up batch size 2/2" in proc.log
    proc.terminate()
    assert proc.wait() == 0, proc.log


def test_settings_from_environment_with_checkpoint_and_keys(launch: Any, tmp_path: Path) -> None:
    ckpt = write_checkpoint(tmp_path / "tiny.pth.tar")
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


def test_invalid_settings_exit_2(launch: Any) -> None:
    proc = launch("--max-batch-size", "0")
    assert proc.wait() == 2
    assert "max_batch_size" in proc.log


def test_unloadable_checkpoint_exits_non_zero(launch: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth.tar"
    bad.write_bytes(b"not a checkpoint")
    proc = launch("--models", f"sanet_tiny={bad}", *FAST)
    assert proc.wait() == 1, proc.log
    assert "startup failed" in proc.log
