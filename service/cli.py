"""``sanet-serve`` (also ``python -m service``): flags onto Settings, then the supervisor.

The supervisor (``service/supervisor.py``) runs the engine and the front-end processes.
SIGTERM/SIGINT drain: /readyz and new requests answer 503 at once while admitted requests
finish (up to SANET_DRAIN_TIMEOUT_S); then the tree exits 0. A second signal forces the exit.
Nothing that records metrics is imported here: the supervisor sets up prometheus-client's
multiprocess mode before its children import it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from service.config import Settings
from service.logs import configure_logging
from service.supervisor import BindError, StartError, Supervisor

log = logging.getLogger("service")

#: settings never taken from the command line (process listings show flags)
_ENV_ONLY = {"api_keys"}


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
    try:
        return Supervisor(settings).run()
    except (BindError, StartError) as exc:
        sys.stderr.write(f"sanet-serve: {exc}\n")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
