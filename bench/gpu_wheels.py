"""``make gpu-wheels``: the exact cp312 wheel set a GPU host needs for ``bench/gpu.sh``.

    python -m bench.gpu_wheels --dest .whl     # derive, write .whl/expected.txt, download
    python -m bench.gpu_wheels --print         # only show the set
    python -m bench.gpu_wheels --files .whl    # (on the GPU host) the wheel files to install

The host brings its own python3.12, torch (CUDA build) and triton. The set is derived, not
listed by hand: every module of ``service`` and the modules gpu.sh runs are imported in a
fresh interpreter; the distributions of what that imported are the roots, less torch's own
dependency closure (it comes with the host's torch) and this project (the host runs the
working tree); the set is the roots' requirement
closure (``importlib.metadata``, markers evaluated for CPython 3.12 on x86_64 Linux), never
torch, triton or nvidia-*, each at the version installed in this environment (the lock).
``--files`` maps ``expected.txt`` to the files in the folder and refuses a torch, triton or
nvidia-* wheel, so nothing carried can hide the host's CUDA torch.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

#: the modules bench/gpu.sh runs besides the server (tests/cuda imports testing.fixtures)
RUN_MODULES = (
    "bench.gpu_check",
    "bench.gpu_model",
    "bench.gpu_summary",
    "bench.http.load",
    "testing.fixtures",
    "tests.cuda.test_cuda_routes",
)
#: the GPU host's interpreter, for requirement markers
TARGET = {
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "extra": "",
}
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "any")
EXPECTED = "expected.txt"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def host_owned(name: str) -> bool:
    """torch, triton and the nvidia-* CUDA wheels: the GPU host's own, never carried."""
    name = canonical(name)
    return name in ("torch", "triton") or name.startswith(("nvidia-", "pytorch-triton"))


def local(name: str) -> bool:
    """This project, or anything installed from a folder: the host runs the tree."""
    if canonical(name) == canonical(_project_name()):
        return True
    try:
        text = md.distribution(name).read_text("direct_url.json")
    except md.PackageNotFoundError:
        return False
    return text is not None and "dir_info" in json.loads(text)


def _project_name() -> str:
    import tomllib

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    return str(tomllib.loads(pyproject.read_text())["project"]["name"])


def server_modules() -> list[str]:
    """Every module of ``service`` (its folders are namespace packages: found by file) and
    the ones gpu.sh runs; ``__main__`` left out (importing it serves)."""
    root = Path(__file__).resolve().parent.parent
    names = []
    for path in sorted((root / "service").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] != "__main__":
            names.append(".".join(parts))
    return [*names, *RUN_MODULES]


def imported_top_levels(modules: Iterable[str]) -> set[str]:
    """Top-level names in ``sys.modules`` of a fresh interpreter that imported ``modules``."""
    code = (
        "import importlib, json, sys\n"
        "for m in sys.argv[1:]: importlib.import_module(m)\n"
        "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *modules], check=True, capture_output=True, text=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def requirements(dist: str) -> list[str]:
    """``dist``'s requirements that apply on the target (no extras), canonical names."""
    from packaging.requirements import Requirement

    out = []
    for text in md.requires(dist) or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate(TARGET):
            out.append(canonical(req.name))
    return out


def closure(roots: Iterable[str], stop: Callable[[str], bool]) -> set[str]:
    """``roots`` and everything they require, not going into (nor keeping) ``stop`` names."""
    seen: set[str] = set()
    todo = [canonical(r) for r in roots if not stop(r)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += [r for r in requirements(name) if not stop(r) and r not in seen]
        except md.PackageNotFoundError:
            seen.discard(name)  # required on the target only; reported by wheel_set
    return seen


def wheel_set() -> dict[str, str]:
    """{distribution: installed version} of the set (see the module docstring)."""
    by_module = md.packages_distributions()
    tops = imported_top_levels(server_modules())
    dists = {canonical(d) for top in tops for d in by_module.get(top, [])}
    torch_side = closure(["torch"], lambda n: False)
    roots = {d for d in dists if d not in torch_side and not host_owned(d) and not local(d)}
    return {name: md.version(name) for name in sorted(closure(roots, host_owned))}


def wheel_files(folder: Path) -> list[Path]:
    """The wheels of ``folder/expected.txt``, one file each; SystemExit naming what is wrong."""
    wanted = [line.split("==") for line in (folder / EXPECTED).read_text().split()]
    files = {}
    for path in folder.glob("*.whl"):
        name, version = path.name.split("-")[:2]
        files[(canonical(name), version)] = path
    problems = [f"{n} is the host's own, never carried" for n, _ in wanted if host_owned(n)]
    problems += [
        f"{n}=={v} has no wheel"
        for n, v in wanted
        if (canonical(n), v) not in files and not host_owned(n)
    ]
    if problems:
        raise SystemExit(f"{folder}: " + "; ".join(problems))
    return [files[(canonical(n), v)] for n, v in wanted]


def download(pins: dict[str, str], dest: Path) -> int:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / EXPECTED).write_text("".join(f"{n}=={v}\n" for n, v in pins.items()))
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--python-version", "3.12", "--implementation", "cp", "-d", str(dest)]
    cmd += [arg for p in PLATFORMS for arg in ("--platform", p)]
    return subprocess.run([*cmd, *(f"{n}=={v}" for n, v in pins.items())]).returncode


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_wheels", description=__doc__)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dest", type=Path, help="derive the set and download it here")
    mode.add_argument("--print", action="store_true", help="derive the set and print it")
    mode.add_argument("--files", type=Path, help="the wheel files of this folder's set")
    args = p.parse_args(argv)
    if args.files:
        print(" ".join(str(f) for f in wheel_files(args.files)))
        return 0
    pins = wheel_set()
    if args.print:
        print("\n".join(f"{n}=={v}" for n, v in pins.items()))
        return 0
    return download(pins, args.dest)


if __name__ == "__main__":
    sys.exit(main())
