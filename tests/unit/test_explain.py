"""Explanations mean something: on a task where the answer is where a square is, the maps
peak on the square; on random weights they are finite and in [0, 1]; bad targets are refused."""

from __future__ import annotations

import logging
from io import BytesIO

import numpy as np
import pytest
import torch
from PIL import Image

from model.cli import main as model_cli
from model.errors import ExplainError
from model.explain import Explainer, overlay_png
from model.preprocess import crop, normalize
from model.sanet import random_init
from testing.localization import peak_in_square, squares, train_squares
from testing.paths import SAMPLES

log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def trained() -> Explainer:
    return Explainer(train_squares())


@pytest.fixture(scope="module")
def held_out() -> tuple[torch.Tensor, torch.Tensor, list]:
    return squares(100, seed=1)


def _hit_rate(explainer: Explainer, held_out: tuple, method: str) -> float:
    x, y, boxes = held_out
    found = explainer.explain(x, method)
    assert [e.target for e in found] == y.tolist(), "the tiny network did not learn the task"
    return sum(peak_in_square(e.heatmap, b) for e, b in zip(found, boxes, strict=True)) / len(boxes)


def test_gradcam_peaks_on_the_square_in_at_least_90_percent(trained, held_out) -> None:
    rate = _hit_rate(trained, held_out, "gradcam")
    log.info("gradcam: peak on the square in %.0f%% of held-out images", 100 * rate)
    assert rate >= 0.9, f"gradcam peak on the square in only {rate:.0%}"


def test_sa_gate_is_reported_and_mostly_on_the_square(trained, held_out) -> None:
    rate = _hit_rate(trained, held_out, "sa")
    log.info("sa: peak on the square in %.0f%% of held-out images", 100 * rate)
    assert rate > 0.5, f"the SA gate peaks on the square in only {rate:.0%}"


@pytest.mark.parametrize("method", ["gradcam", "sa"])
def test_random_network_maps_on_samples_are_finite_and_in_unit_range(method) -> None:
    explainer = Explainer(random_init("sanet_tiny", num_classes=10))
    crops = [crop(p.read_bytes()) for p in sorted(SAMPLES.glob("*.jpg"))]
    batch = normalize(torch.from_numpy(np.stack(crops)))
    for e in explainer.explain(batch, method):
        assert e.heatmap.shape == (7, 7)
        assert torch.isfinite(e.heatmap).all()
        assert float(e.heatmap.min()) >= 0.0 and float(e.heatmap.max()) <= 1.0


def test_an_explicit_target_is_explained_and_a_bad_one_refused(trained, held_out) -> None:
    x = held_out[0][:2]
    assert [e.target for e in trained.explain(x, "gradcam", [3, 0])] == [3, 0]
    with pytest.raises(ExplainError, match="target 4"):
        trained.explain(x, "gradcam", [4, None])
    with pytest.raises(ExplainError, match="unknown method"):
        trained.explain(x, "lime")


def test_overlay_is_a_png_of_the_crop_size_coloured_where_the_map_is_hot() -> None:
    grey = np.full((224, 224, 3), 128, np.uint8)
    heat = torch.zeros(7, 7)
    heat[0, 0] = 1.0
    png = Image.open(BytesIO(overlay_png(grey, heat)))
    assert png.format == "PNG" and png.size == (224, 224)
    pixels = np.asarray(png.convert("RGB")).astype(int)
    hot, cold = pixels[5, 5], pixels[200, 200]
    assert hot[0] > hot[2] and cold[2] > cold[0], (hot, cold)


def test_cli_writes_the_overlay(tmp_path, capsys) -> None:
    out = tmp_path / "coffee.sa.png"
    argv = ["explain", str(SAMPLES / "coffee.jpg"), "--arch", "sanet_tiny", "--method", "sa"]
    assert model_cli([*argv, "--out", str(out), "--top-k", "1"]) == 0
    assert Image.open(out).size == (224, 224)
    assert "wrote" in capsys.readouterr().out
