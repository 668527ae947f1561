"""Write ``docs/settings.md`` from the Settings object (``service/config.py``).

    python -m testing.settings_doc --write      # or: make docs
    python -m testing.settings_doc > docs/settings.md

``tests/unit/test_settings_doc.py`` fails while the file differs from what this renders, so
a new or changed setting reaches the docs in the same change. The output does not depend on
the machine: a default computed at start-up is described, not evaluated.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Callable
from typing import Any

import annotated_types
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from service.config import Settings
from testing.paths import REPO

DOC = REPO / "docs" / "settings.md"
COMMAND = "python -m testing.settings_doc --write"
#: defaults computed at start-up, by the name of the function that computes them
COMPUTED = {
    "default_workers": "min(4, CPU cores)",
    "default_cache_dir": "`$XDG_CACHE_HOME/sanet-serve` (else `~/.cache/sanet-serve`)",
}
HEADER = f"""# Settings

Every setting is an environment variable `SANET_<NAME>` read once at start-up into one typed
object (`service/config.py`, pydantic-settings); a bad value stops the service with a message
that names it. `sanet-serve --help` lists the command-line flags that override them.

Generated from that object by `{COMMAND}` (or `make docs`): run it after
changing a setting; `tests/unit/test_settings_doc.py` fails while this file is stale.

A default marked "(cuda: ...)" is the one the service takes on a GPU: with `SANET_DEVICE=cuda`,
or with `auto` on a host where a GPU is visible and torch is built for CUDA.

| Variable | Type | Default | What it does |
|---|---|---|---|
"""


def type_name(annotation: Any) -> str:
    """A reader's name for a field type: ``one of a, b``, ``comma list``, ``int, optional``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:  # Annotated[int, Field(ge=1)]: the type, then its limits
        limits = bounds(FieldInfo.from_annotation(annotation))
        return type_name(args[0]) + (f" ({limits})" if limits else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin is list:
        return "comma list"
    if origin in (typing.Union, types.UnionType):
        named = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(named) + (", optional" if type(None) in args else "")
    names = {"SecretStr": "secret", "Path": "path", "bool": "true/false"}
    name = getattr(annotation, "__name__", str(annotation))
    return names.get(name, name)


def bounds(field: FieldInfo) -> str:
    """The numeric limits of a field, as ``>= 1, <= 64``."""
    signs = {
        annotated_types.Gt: (">", "gt"),
        annotated_types.Ge: (">=", "ge"),
        annotated_types.Lt: ("<", "lt"),
        annotated_types.Le: ("<=", "le"),
    }
    parts = []
    for rule in field.metadata:
        for kind, (sign, attr) in signs.items():
            if isinstance(rule, kind):
                parts.append(f"{sign} {getattr(rule, attr)}")
    return ", ".join(parts)


def default(field: FieldInfo) -> str:
    """The default as it would be written in the environment (computed ones described)."""
    factory: Callable[..., Any] | None = field.default_factory
    if factory is not None:
        name = getattr(factory, "__name__", "")
        if name in COMPUTED:
            return COMPUTED[name]
        if isinstance(factory, types.FunctionType) and name != "<lambda>":
            doc = (factory.__doc__ or "").strip().splitlines()
            return doc[0] if doc else f"computed at start-up (`{name}()`)"
        value = factory()  # a lambda or a type: a constant, the same on every machine
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, list):
        value = ",".join(map(str, value))
    if value is None or value == "":
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    return f"`{value}`"


def row(name: str, field: FieldInfo) -> str:
    kind = type_name(field.annotation)
    limits = bounds(field)
    kind = f"{kind} ({limits})" if limits else kind
    description = (field.description or "").replace("|", "\\|")
    return f"| `SANET_{name.upper()}` | {kind} | {default(field)}{on_cuda(field)} | {description} |"


def on_cuda(field: FieldInfo) -> str:
    """The default that SANET_DEVICE=cuda brings instead (service.config's cuda_default)."""
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "cuda_default" in extra:
        return f" (cuda: `{extra['cuda_default']}`)"
    return ""


def render() -> str:
    """The whole of ``docs/settings.md``."""
    rows = [row(name, field) for name, field in Settings.model_fields.items()]
    return HEADER + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {DOC.relative_to(REPO)}")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
