"""Closed-loop load from Debian's ``hey`` (a Go client that costs the machine little): what
the data-path benchmarks and the overload test share."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Run:
    """One hey run: each answered request's status and latency (s), and the wall time."""

    statuses: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    sent: int = 0

    def count(self, status: int) -> int:
        return sum(1 for s in self.statuses if s == status)

    def rate(self, status: int = 200) -> float:
        return self.count(status) / self.wall_s if self.wall_s else 0.0

    def p(self, q: float, status: int) -> float | None:
        """The ``q`` quantile (0..1) of the latencies of answers with ``status``."""
        lat = sorted(t for t, s in zip(self.latencies, self.statuses, strict=True) if s == status)
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None

    @property
    def errors(self) -> int:
        """Requests without an answer (timeouts, resets)."""
        return self.sent - len(self.statuses) if self.sent else 0


def hey(url: str, body: Path, concurrency: int, *, n: int = 0, seconds: float = 0) -> Run:
    """POST ``body`` (image/jpeg) with ``concurrency`` workers, ``n`` requests or for
    ``seconds``; every answer parsed from hey's CSV."""
    exe = shutil.which("hey")
    if exe is None:
        raise SystemExit("hey is not installed (Debian: apt-get install hey)")
    cmd = [exe, "-m", "POST", "-T", "image/jpeg", "-D", str(body), "-c", str(concurrency)]
    cmd += ["-t", "30", "-o", "csv"]
    n = max(n, concurrency) // concurrency * concurrency if n else 0  # hey: n // c per worker
    cmd += ["-n", str(n)] if n else ["-z", f"{seconds}s"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    run = Run(sent=n)
    for row in csv.DictReader(io.StringIO(out)):
        latency, offset = float(row["response-time"]), float(row["offset"])
        run.statuses.append(int(row["status-code"]))
        run.latencies.append(latency)
        run.wall_s = max(run.wall_s, offset + latency)
    return run
