"""model/artefact_cache.py with fake builders: heal, fall back, clear orphans by lock."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from model.artefact_cache import CORRUPT_SUFFIX, PARTIAL_PREFIX, ArtefactCache

GOOD = b"artefact"


def _build(path: Path) -> None:
    path.write_bytes(GOOD)


def _load(path: Path) -> bytes:
    data = path.read_bytes()
    if data != GOOD:
        raise ValueError("truncated")
    return data


def test_builds_once_then_loads(tmp_path: Path) -> None:
    built: list[Path] = []
    cache = ArtefactCache(tmp_path)

    def build(path: Path) -> None:
        built.append(path)
        _build(path)

    assert cache.load_or_build("a.bin", build, _load) == GOOD
    assert cache.load_or_build("a.bin", build, _load) == GOOD
    assert len(built) == 1 and built[0].name.startswith(PARTIAL_PREFIX)
    assert not list(tmp_path.glob(PARTIAL_PREFIX + "*"))


def test_corrupt_file_is_moved_aside_and_rebuilt_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a.bin").write_bytes(GOOD[:3])
    with caplog.at_level(logging.WARNING):
        assert ArtefactCache(tmp_path).load_or_build("a.bin", _build, _load) == GOOD
    assert (tmp_path / ("a.bin" + CORRUPT_SUFFIX)).read_bytes() == GOOD[:3]
    assert "rebuilding once" in caplog.text


def test_a_rebuild_that_fails_to_load_raises(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"bad")
    with pytest.raises(ValueError):
        ArtefactCache(tmp_path).load_or_build("a.bin", lambda p: p.write_bytes(b"bad"), _load)


def test_unwritable_dir_falls_back_to_a_private_temp_dir(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")  # a file where the dir should be: as unwritable as it gets for root
    with caplog.at_level(logging.WARNING):
        cache = ArtefactCache(blocker / "cache")
    assert cache.private and cache.folder.is_dir()
    assert cache.load_or_build("a.bin", _build, _load) == GOOD
    assert "not writable" in caplog.text


_MAKE_PARTIAL = """
import sys
from pathlib import Path
from model.artefact_cache import partial_path
partial_path(Path(sys.argv[1]), ".onnx").write_bytes(b"half")
print("made", flush=True)
sys.stdin.read()  # hold the lock until told to go
"""


def test_partials_of_dead_processes_are_removed_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", _MAKE_PARTIAL, str(tmp_path)], input="", text=True, check=True
    )
    assert dead.returncode == 0
    live = subprocess.Popen(
        [sys.executable, "-c", _MAKE_PARTIAL, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert live.stdout is not None and live.stdout.readline().strip() == "made"
        assert len(list(tmp_path.glob(PARTIAL_PREFIX + "*"))) == 2
        ArtefactCache(tmp_path)
        left = list(tmp_path.glob(PARTIAL_PREFIX + "*"))
        assert [p.name.split("-")[1] for p in left] == [str(live.pid)]
    finally:
        live.communicate("", timeout=30)
