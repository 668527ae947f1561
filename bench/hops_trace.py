"""Run ``sanet-serve`` from a checkout with every forked child tracing calls between modules.

``python bench/hops_trace.py CHECKOUT OUT FLAG``: the checkout's ``service.cli.main`` runs as
usual. Each forked process (engine, front ends) gets a profile hook in every thread. While
the file FLAG exists (looked at every 20 ms), each call into a module of the checkout's
``service/`` or ``model/`` whose nearest calling frame in those folders is another module
adds the edge (caller, callee), first occurrence only, in order. When FLAG goes away the
process writes its edges to ``OUT/<pid>.json``. ``bench/hops.py`` drives it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

CHECK_S = 0.02
_FOLDERS = ("service", "model")


class Tracer:
    """Edges between the checkout's modules, recorded while the flag file exists."""

    def __init__(self, checkout: Path, out: Path, flag: Path) -> None:
        self.root, self.out, self.flag = str(checkout.resolve()) + os.sep, out, flag
        self.names: dict[str, str | None] = {}
        self.edges: dict[tuple[str, str], None] = {}
        self.on, self.next_check = False, 0.0

    def module(self, filename: str) -> str | None:
        """``service.front.job`` for CHECKOUT/service/front/job.py; None outside the folders."""
        name = self.names.get(filename, "")
        if name == "":
            rel = filename[len(self.root) :] if filename.startswith(self.root) else ""
            top = rel.split(os.sep, 1)[0]
            name = rel.removesuffix(".py").replace(os.sep, ".") if top in _FOLDERS else None
            self.names[filename] = name
        return name

    def hook(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        now = time.monotonic()
        if now >= self.next_check:
            self.next_check = now + CHECK_S
            self._toggle(self.flag.exists())
        if self.on:
            self._record(frame)

    def _toggle(self, on: bool) -> None:
        if self.on and not on:
            rows = [list(edge) for edge in self.edges]
            (self.out / f"{os.getpid()}.json").write_text(json.dumps(rows))
            self.edges = {}
        self.on = on

    def _record(self, frame: FrameType) -> None:
        callee = self.module(frame.f_code.co_filename)
        if callee is None:
            return
        back = frame.f_back
        while back is not None:
            caller = self.module(back.f_code.co_filename)
            if caller is not None:
                if caller != callee:
                    self.edges.setdefault((caller, callee), None)
                return
            back = back.f_back

    def install(self) -> None:
        """This thread and every thread started after it."""
        self.next_check = 0.0
        sys.setprofile(self.hook)
        threading.setprofile(self.hook)


def main() -> None:
    checkout, out, flag = (Path(arg) for arg in sys.argv[1:4])
    sys.path[0] = str(checkout.resolve())  # not bench/, whose http/ would hide the stdlib's
    sys.argv = ["sanet-serve"]
    tracer = Tracer(checkout, out, flag)
    os.register_at_fork(after_in_child=tracer.install)
    from service.cli import main as serve

    serve()


if __name__ == "__main__":
    main()
