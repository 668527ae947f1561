"""``sanet-serve`` (also ``python -m service``): flags onto Settings, then one uvicorn worker.

SIGTERM/SIGINT drain: /readyz and new requests answer 503 at once while queued and in-flight
requests finish (up to SANET_DRAIN_TIMEOUT_S); then uvicorn shuts down and the process exits 0.
A second signal forces the exit.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

import uvicorn
from pydantic import ValidationError

from service.app import create_app
from service.config import Settings
from service.http_server import server_config
from service.lifecycle import Lifecycle
from service.logs import configure_logging

log = logging.getLogger("service")

#: settings never taken from the command line (process listings show flags)
_ENV_ONLY = {"api_keys"}


class DrainingServer(uvicorn.Server):
    """uvicorn.Server whose first exit signal drains the app before the usual shutdown."""

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.exit_code = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None

    async def serve(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not calling super(): it re-raises the signal after shutdown (exit status 143).
        if self._drain is not None or self._loop is None:
            self.force_exit = self.should_exit = True
            return
        log.info("received %s: draining", signal.Signals(sig).name)
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._drain is None:
            self._drain = asyncio.create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        await self.lifecycle.drain(self.lifecycle.settings.drain_timeout_s)
        self.should_exit = True

    def fail(self) -> None:
        """Startup failed: stop serving and exit non-zero."""
        self.exit_code = 1
        self.should_exit = True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sanet-serve",
        description="Serve SA-Net image classification over HTTP.",
        epilog="Every flag also reads from SANET_<NAME>; flags win. "
        "SANET_API_KEYS is environment-only.",
    )
    for name, field in Settings.model_fields.items():
        if name in _ENV_ONLY:
            continue
        flag = "--" + name.replace("_", "-")
        env = f"SANET_{name.upper()}"
        help_text = f"{field.description or ''} [{env}]".strip()
        if field.annotation is bool:
            parser.add_argument(flag, dest=name, action="store_const", const=True, help=help_text)
        else:
            parser.add_argument(flag, dest=name, metavar=name.upper(), help=help_text)
    return parser


def load_settings(argv: Sequence[str] | None = None) -> Settings:
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    return Settings(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load_settings(argv)
    except ValidationError as exc:
        sys.stderr.write(f"sanet-serve: invalid settings\n{exc}\n")
        return 2
    configure_logging(settings.log_level, settings.log_json)
    app = create_app(settings)
    config = server_config(app, settings)
    lifecycle: Lifecycle = app.state.lifecycle
    server = DrainingServer(config, lifecycle)
    lifecycle.on_fatal = server.fail
    log.info(
        "sanet-serve on http://%s:%d models=%s",
        settings.host,
        settings.port,
        ",".join(str(m) for m in settings.models),
    )
    server.run()
    return server.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
