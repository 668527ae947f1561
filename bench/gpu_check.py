"""bench/gpu.sh's first step: every server module imports, torch is the host's and sees CUDA.

    python -m bench.gpu_check --device cuda --site /tmp/site --rows OUT/rows.jsonl

One line either way (and one JSON row); exit 1 with a line that names what is missing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path


def import_failures(modules: list[str]) -> dict[str, list[str]]:
    """{what is missing or broken: [modules that failed on it]}."""
    failed: dict[str, list[str]] = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            failed.setdefault(exc.name or str(exc), []).append(name)
        except Exception as exc:  # a package that is there but broken
            failed.setdefault(f"{type(exc).__name__}: {exc}", []).append(name)
    return failed


def torch_problems(device: str, site: str | None) -> list[str]:
    try:
        import torch
    except ImportError:
        return ["torch does not import"]
    problems = []
    if site and str(Path(torch.__file__).resolve()).startswith(str(Path(site).resolve())):
        problems.append(f"torch comes from the carried wheels ({torch.__file__})")
    if device == "cuda" and not torch.cuda.is_available():
        problems.append(f"torch.cuda.is_available() is False (torch {torch.__version__})")
    return problems


def check(device: str, site: str | None) -> tuple[bool, str]:
    from bench.gpu_wheels import server_modules

    modules = server_modules()
    failed = import_failures(modules)
    problems = [f"{what} (needed by {', '.join(mods[:3])})" for what, mods in failed.items()]
    problems += torch_problems(device, site)
    if problems:
        return False, "preflight: missing " + "; ".join(problems)
    import torch

    gpu = torch.cuda.get_device_name() if device == "cuda" else "none (dry run)"
    return True, f"preflight: {len(modules)} modules import; torch {torch.__version__}; gpu {gpu}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--site", default=None, help="where the carried wheels are installed")
    p.add_argument("--rows", type=Path, default=None, help="append the result as a JSON line")
    args = p.parse_args(argv)
    ok, line = check(args.device, args.site)
    print(line, flush=True)
    if args.rows:
        with args.rows.open("a") as f:
            f.write(json.dumps({"step": "preflight", "ok": ok, "line": line}) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
