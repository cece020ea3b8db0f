"""Which shipped model predict runs without --model: image-only without a DSM, image+DSM with one."""

from __future__ import annotations

from pathlib import Path

import pytest

import rsmamba.engine.model as engine_model
from tests.helpers.rasters import ROOT

# Reduced held-out row of the card (rsmamba/data/demo_image_model.md: 0.885 at 1024 px as predict runs it by
# default, its own window 512/128 and D4, 0.903 over three scenes; this 384 px scene at 0.5 m measured 0.884,
# and 0.844 with --no-tta): the bar for building IoU.
HELD_OUT_IOU = 0.85


def test_default_model_depends_on_the_dsm(tmp_path: Path, monkeypatch) -> None:
    image_only = tmp_path / "demo_image_model.pt"
    image_only.write_bytes(b"placeholder")
    monkeypatch.setattr(engine_model, "DEMO_IMAGE_MODEL", image_only)
    assert engine_model.default_model_path("predict", has_dsm=False) == image_only
    assert engine_model.default_model_path("predict", has_dsm=True) == engine_model.DEMO_MODEL
    assert engine_model.default_model_path("change", has_dsm=False) == engine_model.DEMO_CHANGE_MODEL
    monkeypatch.setattr(engine_model, "DEMO_IMAGE_MODEL", tmp_path / "missing.pt")
    assert engine_model.default_model_path("predict", has_dsm=False) == engine_model.DEMO_MODEL


def test_the_image_only_model_is_shipped_small() -> None:
    path = ROOT / "rsmamba" / "data" / "demo_image_model.pt"
    assert path.is_file() and path.stat().st_size < 8 * 2**20
    from rsmamba.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    assert not (ckpt.get("bands") or {}).get("dsm") and ckpt["model_kwargs"]["in_chans"] == 3


@pytest.mark.slow
def test_image_only_default_on_the_held_out_style(tmp_path: Path) -> None:
    """The cards' held-out row, reduced: a 384 px held-out-style scene at 0.5 m, no DSM, default model."""
    from rsmamba.evaluate import evaluate_rasters
    from rsmamba.predict import predict_raster
    from rsmamba.synth import write_scene
    from rsmamba.synth.style import held_out_style

    scene = write_scene(tmp_path / "held", size=384, seed=90_003, gsd=0.5, style=held_out_style(90_003, 0.5))
    summary = predict_raster(scene["ortho_t1"], tmp_path / "pred.tif")  # the model's window and TTA, as the card
    assert summary.tta_views == 8 and summary.tta_source == "the model's"
    assert "demo_image_model.pt" in summary.describe()
    metrics = evaluate_rasters(summary.outputs["classes"], scene["labels_t1"], tmp_path / "m.json")
    assert metrics["per_class"]["building"]["iou"] >= HELD_OUT_IOU


def test_an_image_with_more_bands_than_the_model_reads_says_which_it_reads(tmp_path: Path, caplog) -> None:
    """An RGB + NIR ortho and the RGB default: bands 1-3 run, and the user is told so."""
    from rsmamba.predict.api import resolve_model
    from rsmamba.runlog import run_scope
    from tests.helpers.rasters import random_image, write_raster

    path = write_raster(tmp_path / "rgbn.tif", random_image(16, 16, bands=4), res=0.25)
    with run_scope(), caplog.at_level("WARNING", logger="rsmamba"):
        _, chosen, _ = resolve_model(path, None, None, None, allow_geographic_mix=False)
        assert chosen == [1, 2, 3]
        _, chosen, _ = resolve_model(path, None, None, [2, 3, 4], allow_geographic_mix=False)  # chosen: no word
        assert chosen == [2, 3, 4]
    said = [r.getMessage() for r in caplog.records if "the model reads" in r.getMessage()]
    assert said == [f"image {path}: 4 bands; the model reads bands 1,2,3, those it was trained on "
                    "(--bands chooses others)"]
    # six bands declaring no colours (a Landsat scene: blue, green, red first): not 'those it was trained on' (QA)
    landsat = write_raster(tmp_path / "l7.tif", random_image(16, 16, bands=6), res=0.25)
    caplog.clear()
    with run_scope(), caplog.at_level("WARNING", logger="rsmamba"):
        _, chosen, _ = resolve_model(landsat, None, None, None, allow_geographic_mix=False)
    said = [r.getMessage() for r in caplog.records if "the model reads" in r.getMessage()]
    assert chosen == [1, 2, 3] and said == [
        f"image {landsat}: 6 bands; the model reads bands 1,2,3, by position, as its red, green, blue: the image "
        "declares no band colours (a Landsat scene stores blue, green, red as bands 1, 2, 3: --bands 3,2,1) (--bands "
        "chooses others)"]
