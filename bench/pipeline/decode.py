"""Decoding large JPEGs: the exact eval transform against ``SANET_JPEG_DRAFT`` (DCT scaling).

Each sample photo is upscaled (Lanczos) to phone-camera and smaller sizes and saved as a
quality-92 JPEG; both paths of ``model.preprocess`` are timed interleaved (median of
``--rounds``), and the drafted tensor is compared with the exact one in 8-bit levels.

    python -m bench.pipeline.decode [--rounds 9] [--sizes 4032x3024 1600x1200 800x600]
"""

from __future__ import annotations

import argparse
import functools
import io
from pathlib import Path

from PIL import Image

from bench.common import machine, markdown_table, median, timed, write_json
from model.preprocess import STD, preprocess
from testing.paths import SAMPLES


def jpeg(photo: Path, size: tuple[int, int]) -> bytes:
    img = Image.open(photo).convert("RGB").resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def timed_ms(data: bytes, draft: bool) -> float:
    return 1000 * timed(functools.partial(preprocess, data, jpeg_draft=draft))


def measure(data: bytes, rounds: int) -> dict[str, float]:
    exact_ms, draft_ms = [], []
    for _ in range(rounds):  # interleaved, so machine noise hits both alike
        exact_ms.append(timed_ms(data, False))
        draft_ms.append(timed_ms(data, True))
    levels = (preprocess(data) - preprocess(data, jpeg_draft=True)).abs() * 255 * min(STD)
    return {
        "exact_ms": median(exact_ms),
        "draft_ms": median(draft_ms),
        "mean_levels": levels.mean().item(),
        "p99_levels": levels.flatten().quantile(0.99).item(),
        "max_levels": levels.max().item(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--sizes", nargs="+", default=["4032x3024", "1600x1200", "800x600"])
    p.add_argument("--photos", nargs="+", type=Path, default=sorted(SAMPLES.glob("*.jpg")))
    args = p.parse_args(argv)
    rows, runs = [], []
    for photo in args.photos:
        for spec in args.sizes:
            w, h = (int(v) for v in spec.split("x"))
            run = {"photo": photo.name, "size": spec, **measure(jpeg(photo, (w, h)), args.rounds)}
            runs.append(run)
            rows.append(
                [photo.name, spec, f"{run['exact_ms']:.1f}", f"{run['draft_ms']:.1f}"]
                + [f"{run[k]:.2f}" for k in ("mean_levels", "p99_levels", "max_levels")]
            )
    headers = ["photo", "size", "exact ms", "draft ms", "mean levels", "p99 levels", "max levels"]
    print(markdown_table(headers, rows))
    print(write_json("decode.json", {"machine": machine(), "runs": runs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
