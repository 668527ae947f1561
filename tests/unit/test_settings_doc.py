"""docs/settings.md is what the Settings object renders: a new or changed setting is documented."""

from __future__ import annotations

from testing.settings_doc import COMMAND, DOC, render


def test_settings_doc_is_current() -> None:
    current = DOC.read_text() if DOC.exists() else ""
    assert current == render(), f"docs/settings.md is stale: run `{COMMAND}` (or `make docs`)"
