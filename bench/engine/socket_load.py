"""The engine process driven straight over its Unix socket, with the null model.

No HTTP and no decode: a small client says ``Hello`` and keeps N one-image ``Submit``s in
flight (each image one slot of the ring), sending a new one for each answer. It reports
requests/s and the engine process's CPU per request and per image, read from
``/proc/<pid>/stat`` over the measured window. The client shares the machine's cores.

    python -m bench.engine.socket_load --inflight 1 8 64 128 --seconds 4

The client frames messages itself (a 4-byte length, then the pickled message), so it also
drives an engine of another checkout for a before/after comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import pickle
import signal
import struct
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import machine, markdown_table, write_json
from bench.proctree import cpu_seconds

_LEN = struct.Struct("<I")


@dataclass(frozen=True)
class Point:
    """One measured load: ``inflight`` one-image requests kept in flight."""

    inflight: int
    seconds: float
    requests: int
    engine_cpu_s: float

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.engine_cpu_s / max(self.requests, 1)


def start_engine(workdir: Path, max_batch: int, slots: int) -> tuple[int, Path, Any]:
    """Fork an engine process serving the null model; its pid, socket and slot ring."""
    os.environ.setdefault("SANET_BACKEND", "null")
    from service.config import Settings
    from service.engine.process import main
    from service.ipc.slots import SlotRing

    settings = Settings(backend="null", max_batch_size=max_batch, max_delay_ms=0)
    ring = SlotRing(slots, workdir / "slots.lock")
    sock = workdir / "engine.sock"
    pid = os.fork()
    if pid == 0:  # the engine
        logging.basicConfig(level=logging.WARNING)
        os._exit(main(settings, ring, sock))
    return pid, sock, (settings.default_model, ring)


class Client:
    """One front end's connection, speaking the wire with its own framing."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._buf = bytearray()

    def send(self, messages: list[Any]) -> None:
        out: list[bytes] = []
        for m in messages:
            body = pickle.dumps(m, protocol=pickle.HIGHEST_PROTOCOL)
            out += (_LEN.pack(len(body)), body)
        self.writer.write(b"".join(out))

    async def receive(self) -> list[Any]:
        """Every whole message that has arrived (at least one)."""
        while True:
            data = await self.reader.read(2**20)
            if not data:
                raise ConnectionError("the engine closed the connection")
            self._buf += data
            out: list[Any] = []
            pos = 0
            while len(self._buf) - pos >= 4:
                (n,) = _LEN.unpack_from(self._buf, pos)
                if len(self._buf) - pos - 4 < n:
                    break
                out.append(pickle.loads(self._buf[pos + 4 : pos + 4 + n]))
                pos += 4 + n
            del self._buf[:pos]
            if out:
                return out


async def drive(sock: Path, pid: int, model: str, inflight: int, seconds: float) -> Point:
    """Keep ``inflight`` requests going for a warm-up second, then measure ``seconds``."""
    from service.ipc import messages as wire

    client = Client(*await _connect(sock))
    client.send([wire.Hello(os.getpid())])
    while not any(getattr(m, "ready", False) for m in await client.receive()):
        pass
    far = time.monotonic() + 3600
    client.send([wire.Submit(i, model, ((i,),), far) for i in range(inflight)])
    count, t0, cpu0, start = 0, 0.0, 0.0, time.monotonic()
    while True:
        answered = [m.rid for m in await client.receive() if hasattr(m, "rid")]
        now = time.monotonic()
        if not t0 and now - start >= 1.0:
            t0, cpu0, count = now, cpu_seconds(pid), 0
        elif t0 and now - t0 >= seconds:
            point = Point(inflight, now - t0, count, cpu_seconds(pid) - cpu0)
            break
        count += len(answered)
        client.send([wire.Submit(rid, model, ((rid % inflight,),), far) for rid in answered])
    client.writer.close()
    return point


async def _connect(sock: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    give_up = time.monotonic() + 60
    while True:
        try:
            return await asyncio.open_unix_connection(str(sock))
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > give_up:
                raise
            await asyncio.sleep(0.05)


def run(inflight: list[int], seconds: float) -> list[Point]:
    with tempfile.TemporaryDirectory(prefix="sanet-engine-bench-") as tmp:
        pid, sock, (model, _ring) = start_engine(Path(tmp), max(inflight), max(inflight))
        try:
            return [asyncio.run(drive(sock, pid, model, n, seconds)) for n in inflight]
        finally:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)


def table(points: list[Point]) -> str:
    rows = [
        (
            p.inflight,
            f"{p.per_s:,.0f}",
            f"{p.cpu_ms_per_request:.3f}",
            f"{p.cpu_ms_per_request:.3f}",
        )
        for p in points
    ]
    headers = ("in flight", "req/s (= img/s)", "engine CPU ms/request", "engine CPU ms/image")
    return markdown_table(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inflight", type=int, nargs="+", default=[1, 8, 64, 128])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--out", default="engine_socket.json")
    args = parser.parse_args()
    points = run(args.inflight, args.seconds)
    print(table(points))
    payload = {"machine": machine(), "points": [asdict(p) | {"per_s": p.per_s} for p in points]}
    if args.out:
        print(f"wrote {write_json(args.out, payload)}")


if __name__ == "__main__":
    main()
