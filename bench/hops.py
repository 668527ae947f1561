"""How many modules one ``/classify`` passes through, in the front end and the engine.

``python -m bench.hops [--checkout DIR]`` serves the checkout (default: this one) with the
null engine and one front end under ``bench/hops_trace.py``, sends two warm-up requests,
records the calls between the checkout's ``service/`` and ``model/`` modules during a quiet
window and during one ``/classify`` of ``samples/coffee.jpg``, and prints the request's edges
(first call from one module into another, in order, less those of the quiet window) per
process, the modules they touch and the hops (modules touched less one, a request's path
being a chain through them). Run it on two checkouts to compare layouts.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from testing.paths import REPO, SAMPLES
from testing.servers import Spawned, spawned

WINDOW_S = 0.5
JPEG = {"Content-Type": "image/jpeg"}
Edges = dict[int, list[tuple[str, str]]]


def _window(server: Spawned, folder: Path, flag: Path, body: bytes | None) -> Edges:
    """The edges each process recorded while ``flag`` existed (one request if ``body``)."""
    for old in folder.glob("*.json"):
        old.unlink()
    flag.touch()
    time.sleep(WINDOW_S)
    if body is not None:
        server.client.post("/classify", content=body, headers=JPEG).raise_for_status()
        time.sleep(WINDOW_S)
    flag.unlink()
    time.sleep(WINDOW_S * 2)
    files = folder.glob("*.json")
    return {int(p.stem): [tuple(e) for e in json.loads(p.read_text())] for p in files}


def trace(checkout: Path, image: Path) -> Edges:
    """The edges of one request, per pid, less those of a quiet window."""
    with tempfile.TemporaryDirectory() as tmp:
        folder, flag = Path(tmp) / "edges", Path(tmp) / "on"
        folder.mkdir()
        cmd = [sys.executable, str(REPO / "bench" / "hops_trace.py"), str(checkout), str(folder)]
        env = {
            "SANET_BACKEND": "null",
            "SANET_MODELS": "sanet_tiny",
            "SANET_WORKERS": "1",
            "SANET_LOG_LEVEL": "warning",
        }
        body = image.read_bytes()
        with spawned([*cmd, str(flag)], Path(tmp) / "log", env, ready_within=300) as server:
            for _ in range(2):
                server.client.post("/classify", content=body, headers=JPEG).raise_for_status()
            quiet = _window(server, folder, flag, None)
            busy = _window(server, folder, flag, body)
    return {pid: [e for e in edges if e not in quiet.get(pid, [])] for pid, edges in busy.items()}


def report(edges: Edges) -> dict[str, Any]:
    """Edges, modules touched (service / model) and hops, over every process."""
    pairs = [edge for rows in edges.values() for edge in rows]
    modules = sorted({name for edge in pairs for name in edge})
    return {
        "edges": len(pairs),
        "modules": len(modules),
        "service_modules": sum(m.startswith("service.") for m in modules),
        "model_modules": sum(m.startswith("model.") for m in modules),
        "hops": max(len(modules) - 1, 0),
        "per_process": {str(pid): [" -> ".join(e) for e in rows] for pid, rows in edges.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, default=REPO)
    parser.add_argument("--image", type=Path, default=SAMPLES / "coffee.jpg")
    args = parser.parse_args()
    print(json.dumps(report(trace(args.checkout, args.image)), indent=1))


if __name__ == "__main__":
    main()
