"""Predict and change warn when an image's pixels are far from those the model was trained at
(checkpoint ``gsd_m``; rsmamba.raster.validate.check_gsd): the shipped image-only model, trained on
0.2-0.6 m, loses 0.2-0.3 building IoU a third outside that range (bench/results/gsd-range.json)."""

from __future__ import annotations

import pytest

from rsmamba.checkpoint import load_checkpoint, save_checkpoint
from rsmamba.engine.model import DEMO_CHANGE_MODEL, DEMO_IMAGE_MODEL, DEMO_MODEL
from rsmamba.predict import predict_raster
from rsmamba.raster.validate import GSD_TOLERANCE
from rsmamba.synth import write_scene
from tests.helpers.predict_models import tiny_rgb_checkpoint
from tests.helpers.rasters import ROOT


def _gsd_warnings(summary) -> list[str]:
    return [w for w in summary.warnings if "pixels of" in w]


def test_a_landsat_scene_through_the_orthophoto_model_is_warned(tmp_path) -> None:
    summary = predict_raster(ROOT / "examples" / "olinda" / "L7_ETMs.tif", tmp_path / "p.tif", tta=False)
    (warning,) = _gsd_warnings(summary)
    assert "pixels of 28.5 m, outside the 0.2-0.6 m model" in warning and "demo_image_model.pt" in warning


@pytest.mark.parametrize("gsd, warned", [(0.25, False), (0.6 * GSD_TOLERANCE * 0.99, False),
                                         (0.6 * GSD_TOLERANCE * 1.02, True), (0.2 / GSD_TOLERANCE * 0.98, True)])
def test_the_warning_starts_past_the_tolerance(tmp_path, gsd, warned) -> None:
    payload = tiny_rgb_checkpoint()
    ranged = save_checkpoint(tmp_path / "ranged.pt", {**payload, "gsd_m": [0.2, 0.6]})
    unknown = save_checkpoint(tmp_path / "unknown.pt", payload)
    scene = write_scene(tmp_path / "g", size=256, seed=1, gsd=gsd)
    summary = predict_raster(scene["ortho_t1"], tmp_path / "p.tif", model=ranged, window=128)
    assert bool(_gsd_warnings(summary)) is warned
    plain = predict_raster(scene["ortho_t1"], tmp_path / "plain.tif", model=unknown, window=128)
    assert not _gsd_warnings(plain)  # a checkpoint that records no pixel size: nothing to compare


def test_change_warns_too(tmp_path) -> None:
    from rsmamba.change import detect_change

    pair = write_scene(tmp_path / "pair", size=128, seed=2, gsd=1.0)
    summary = detect_change(pair["ortho_t1"], pair["ortho_t2"], tmp_path / "c.tif")
    assert any("pixels of 1 m, outside the 0.2-0.6 m model" in w for w in summary.warnings)


def test_the_shipped_models_record_what_they_were_trained_at() -> None:
    """The styled scenes of the recipes (make_demo_models.TRAIN_GSD): 0.2-0.6 m for all three."""
    assert load_checkpoint(DEMO_IMAGE_MODEL)["gsd_m"] == [0.2, 0.6]
    assert load_checkpoint(DEMO_CHANGE_MODEL)["gsd_m"] == [0.2, 0.6]
    assert load_checkpoint(DEMO_MODEL)["gsd_m"] == [0.2, 0.6]


def test_a_scene_in_degrees_is_checked_too(tmp_path) -> None:
    """The README's 28.5 m Landsat scene warped to EPSG:4326 ran through the orthophoto model unwarned."""
    import rasterio
    from rasterio.warp import calculate_default_transform, reproject

    from rsmamba.raster.source import AlignedSource
    from rsmamba.raster.validate import check_gsd

    with rasterio.open(ROOT / "examples" / "olinda" / "L7_ETMs.tif") as src:
        transform, w, h = calculate_default_transform(src.crs, "EPSG:4326", src.width, src.height, *src.bounds)
        profile = {**src.profile, "crs": "EPSG:4326", "transform": transform, "width": w, "height": h}
        with rasterio.open(tmp_path / "l7_4326.tif", "w", **profile) as dst:
            for band in range(1, src.count + 1):
                reproject(rasterio.band(src, band), rasterio.band(dst, band))
    with AlignedSource(tmp_path / "l7_4326.tif") as src:
        (warning,) = check_gsd(src, (0.2, 0.6), "image", "demo")
    assert "pixels of 28" in warning and "outside the 0.2-0.6 m model" in warning
