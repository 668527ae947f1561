"""The supervisor: the ``sanet-serve`` process that owns the pod's process tree.

It binds the HTTP port (and holds the gRPC port) once, makes the run directory (the engine's
socket, the metrics files, the slot lock) and the shared slot ring, then forks

- one **engine** process (``service/engine/process.py``): the batcher and the compiled models;
- ``SANET_WORKERS`` **front-end** processes (``service/front/process.py``): HTTP and gRPC, body
  checks, decode and crop into the ring.

Both children's modules are imported before anything is forked: a missing package (a wheel
left out of an image) stops the supervisor with one line and no child started. Each child
gets SIGTERM when the supervisor dies, however it dies, so no engine is left holding a GPU.

It restarts a front end that dies (the engine frees the dead one's slots); one that keeps
dying at start (QUICK_DEATHS times in a row) ends the tree with exit 1. If the engine
dies, the front ends answer 503 and the supervisor ends the tree and exits 1, so the
orchestrator restarts the pod: a crashed engine (a CUDA fault, an out-of-memory kill) is
not trusted to come back in place. SIGTERM or SIGINT drains: the front ends stop taking
requests and finish the admitted ones, then the engine stops, then the supervisor exits 0.
A second signal ends everything at once (exit 1).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from service.config import Settings
from service.ipc.slots import SlotRing
from service.process import die_with_parent, set_process_name

log = logging.getLogger("service.supervisor")

#: a front end that dies within this many seconds of its start counts as crash-looping
#: and is restarted after a growing pause (up to MAX_BACKOFF_S)
STABLE_S, MAX_BACKOFF_S = 10.0, 5.0
#: a front end that died this many times in a row within STABLE_S of its start will not
#: come up (a broken image, a port it cannot use): the tree exits 1 instead of looping
QUICK_DEATHS = 5
STOP_GRACE_S = 10.0


class BindError(RuntimeError):
    """A port could not be bound (in use, no permission): a one-line error and exit 1."""


class StartError(RuntimeError):
    """The tree cannot start (a child's module does not import): a one-line error, exit 1."""


def import_children() -> tuple[Callable[..., int], Callable[..., int]]:
    """The engine's and the front end's entry points, imported in the supervisor (after the
    metrics directory is set, before any fork); a failure is one line naming the module."""
    try:
        from service.engine import process as engine
        from service.front import process as frontend
    except ImportError as exc:
        missing = exc.name or str(exc)
        raise StartError(f"cannot import the server's modules: {missing} is missing") from exc
    except Exception as exc:  # a package that is there but broken fails the same way
        raise StartError(
            f"cannot import the server's modules: {type(exc).__name__}: {exc}"
        ) from exc
    return engine.main, frontend.main


def bind_http(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=4096)
    except OSError as exc:
        raise BindError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def hold_grpc_port(host: str, port: int) -> socket.socket | None:
    """Bind (not listen) the gRPC port with SO_REUSEPORT: the front ends' gRPC servers share
    it, and a port already taken by another program fails here, at start."""
    if not port:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    guard = socket.socket(family, socket.SOCK_STREAM)
    guard.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        guard.bind((host, port))
    except OSError as exc:
        guard.close()
        raise BindError(f"cannot listen on {host}:{port} (gRPC): {exc.strerror or exc}") from None
    return guard


def _child(
    name: str, parent: int, drop: tuple[socket.socket, ...], entry: Callable[..., int], *args: Any
) -> None:
    """What a forked process runs first: close the inherited sockets it must not hold,
    default signals, its name, then its entry point."""
    for sock in drop:
        sock.close()
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C: the supervisor decides
    die_with_parent(parent)
    set_process_name(name)
    sys.exit(entry(*args))


def _drain(wake: socket.socket) -> None:
    """Empty the signal wake-up socket (each signal writes a byte)."""
    try:
        while wake.recv(64):
            pass
    except BlockingIOError:
        pass


class Supervisor:
    """Starts, watches and stops the engine and the front ends (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.workers = settings.front_end_count()
        self.ctx = multiprocessing.get_context("fork")
        self.run_dir = Path(tempfile.mkdtemp(prefix="sanet-"))
        self.fronts: dict[int, BaseProcess] = {}
        self.started: dict[int, float] = {}
        self.quick: dict[int, int] = {}  # deaths in a row within STABLE_S of the start
        self.signals: list[int] = []
        self.exit_code = 0

    def run(self) -> int:
        """Serve until stopped; the exit status of the whole tree."""
        s = self.settings
        try:
            listener = bind_http(s.host, s.port)
            grpc_guard = self.grpc_guard = hold_grpc_port(s.host, s.grpc_port)
            metrics_dir = self.run_dir / "metrics"
            metrics_dir.mkdir()
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
            self.ring = SlotRing(s.max_queue + s.max_batch_size, self.run_dir / "slots.lock")
            self.listener = listener
            set_process_name("sanet-serve")
            self.engine_main, self.front_main = import_children()
            try:
                self._start_engine()
                for i in range(self.workers):
                    self._start_front(i)
            except BaseException:
                self._kill_all()
                raise
            log.info(
                "sanet-serve on http://%s:%d: engine %d, %d front ends, %d slots, models=%s",
                s.host, s.port, self.engine.pid, self.workers, self.ring.n,
                ",".join(str(m) for m in s.models),
            )  # fmt: skip
            self._watch()
            if grpc_guard is not None:
                grpc_guard.close()
            return self.exit_code
        finally:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    # -- children ---------------------------------------------------------------------------
    def _start_engine(self) -> None:
        # Not the listening sockets: a copy of the HTTP one held by the engine would keep the
        # socket (and its backlog) alive after the front ends closed theirs, to be reset when
        # the engine exits; the engine answers neither protocol.
        drop = tuple(sock for sock in (self.listener, self.grpc_guard) if sock is not None)
        args: tuple[Any, ...] = ("sanet-engine", os.getpid(), drop, self.engine_main)
        args += (self.settings, self.ring, self.run_dir / "engine.sock")
        self.engine = self.ctx.Process(target=_child, args=args, name="sanet-engine")
        self.engine.start()

    def _start_front(self, i: int) -> None:
        args: tuple[Any, ...] = (f"sanet-front-{i}", os.getpid(), (), self.front_main)
        args += (self.settings, self.ring)
        args += (self.listener, self.run_dir / "engine.sock", i)
        proc = self.ctx.Process(target=_child, args=args, name=f"front-{i}")
        proc.start()
        self.fronts[i], self.started[i] = proc, time.monotonic()

    def _kill_all(self) -> None:
        """SIGKILL every child started so far (a start that failed half-way)."""
        started = [*self.fronts.values(), *([self.engine] if hasattr(self, "engine") else [])]
        for proc in started:
            if proc.is_alive():
                proc.kill()
            proc.join(STOP_GRACE_S)

    # -- the watch loop ---------------------------------------------------------------------
    def _watch(self) -> None:
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        signal.set_wakeup_fd(wake_w.fileno())
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: self.signals.append(signum))
        try:
            while True:
                handles: list[Any] = [self.engine.sentinel, wake_r]
                handles += [p.sentinel for p in self.fronts.values()]
                wait(handles, timeout=1.0)
                _drain(wake_r)
                if self.signals or not self.engine.is_alive():
                    break
                if not self._restart_dead_fronts():
                    break
            self._stop(wake_r)
        finally:
            signal.set_wakeup_fd(-1)
            wake_r.close()
            wake_w.close()

    def _restart_dead_fronts(self) -> bool:
        """Restart the front ends that died; False when one keeps dying at start."""
        from prometheus_client import multiprocess

        for i, proc in list(self.fronts.items()):
            if proc.is_alive():
                continue
            assert proc.pid is not None
            multiprocess.mark_process_dead(proc.pid)  # its live gauges leave the sum
            lived = time.monotonic() - self.started[i]
            self.quick[i] = 0 if lived > STABLE_S else self.quick.get(i, 0) + 1
            if self.quick[i] >= QUICK_DEATHS:
                log.critical(
                    "front end %d died %d times within %.0fs of its start (last exit %s); "
                    "stopping the service", i, self.quick[i], STABLE_S, proc.exitcode,
                )  # fmt: skip
                self.exit_code = 1
                return False
            pause = min(MAX_BACKOFF_S, 0.05 * 2 ** self.quick[i]) if self.quick[i] else 0.0
            log.error(
                "front end %d (pid %d) exited with %s; restarting in %.2fs",
                i, proc.pid, proc.exitcode, pause,
            )  # fmt: skip
            time.sleep(pause)
            self._start_front(i)
        return True

    def _stop(self, wake: socket.socket) -> None:
        """Drain the front ends, then stop the engine (see the module docstring)."""
        if not self.engine.is_alive():
            log.critical("the engine exited with %s; stopping the service", self.engine.exitcode)
            self.exit_code = 1
        elif not self.signals:
            log.info("stopping: a front end cannot start")
        else:
            log.info("received %s: draining", signal.Signals(self.signals[0]).name)
        self.listener.close()  # the front ends hold their own copies until they exit
        grace = self.settings.drain_timeout_s + STOP_GRACE_S
        fronts = list(self.fronts.values())
        self._signal_and_wait(fronts, grace, wake)
        if any(p.exitcode for p in fronts):
            self.exit_code = 1
        if self.engine.is_alive():
            self._signal_and_wait([self.engine], grace, wake)
            if self.engine.exitcode:
                self.exit_code = 1
        log.info("stopped (exit %d)", self.exit_code)

    def _signal_and_wait(self, procs: list[BaseProcess], grace: float, wake: socket.socket) -> None:
        """SIGTERM ``procs``, wait up to ``grace`` s; a second signal or the end of the grace
        kills what is left."""
        seen = len(self.signals)
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGTERM)
        ends = time.monotonic() + grace
        while any(p.is_alive() for p in procs):
            left = ends - time.monotonic()
            if left <= 0 or len(self.signals) > max(seen, 1):
                log.warning("killing what is left of the tree")
                self.exit_code = 1
                for p in procs:
                    if p.is_alive():
                        p.kill()
                break
            wait([p.sentinel for p in procs if p.is_alive()] + [wake], timeout=min(left, 1.0))
            _drain(wake)
        for p in procs:
            p.join(STOP_GRACE_S)
