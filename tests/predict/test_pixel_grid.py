"""``--pixel-grid``: benchmark tiles without georeferencing (Vaihingen's TIFFs, SECOND's PNGs) predicted on
their pixel grid, so that the sliding-window evaluation the README describes (predict, then evaluate
--layout) runs on the benchmarks as published. Without the flag such an image stays refused."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from rsmamba.cli import main
from rsmamba.errors import InputError
from rsmamba.predict import predict_raster
from rsmamba.raster.source import AlignedSource
from tests.helpers.layout_fixtures import isprs, second
from rsmamba.checkpoint import save_checkpoint
from tests.helpers.predict_models import register_test_models, tiny_rgb_checkpoint
from tests.helpers.rasters import write_raster


def _plain(path: Path, array: np.ndarray) -> Path:
    """A TIFF with no CRS and no transform, as the Vaihingen tiles come."""
    arr = array if array.ndim == 3 else array[None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                           dtype=arr.dtype) as dst:
            dst.write(arr)
    return path


def _read(path: Path) -> tuple[np.ndarray, object, object]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            return ds.read(), ds.crs, ds.transform


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    register_test_models()
    return save_checkpoint(tmp_path / "m.pt", tiny_rgb_checkpoint())


def test_a_tile_without_georeferencing_is_refused_with_the_way_out(tmp_path, checkpoint) -> None:
    image = _plain(tmp_path / "top.tif", np.random.default_rng(0).integers(0, 255, (3, 40, 48), dtype=np.uint8))
    with pytest.raises(InputError, match="no georeferencing.*--pixel-grid"):
        predict_raster(image, tmp_path / "out.tif", model=checkpoint, window=32, overlap=8)
    assert not (tmp_path / "out.tif").exists()


def test_pixel_grid_predicts_as_the_same_pixels_georeferenced(tmp_path, checkpoint) -> None:
    pixels = np.random.default_rng(1).integers(0, 255, (3, 70, 90), dtype=np.uint8)
    plain = _plain(tmp_path / "top.tif", pixels)
    placed = write_raster(tmp_path / "placed.tif", pixels)
    predict_raster(plain, tmp_path / "plain_out.tif", model=checkpoint, window=32, overlap=8, pixel_grid=True,
                   probabilities=tmp_path / "plain_p.tif")
    predict_raster(placed, tmp_path / "placed_out.tif", model=checkpoint, window=32, overlap=8,
                   probabilities=tmp_path / "placed_p.tif")
    ours, crs, transform = _read(tmp_path / "plain_out.tif")
    theirs, their_crs, _ = _read(tmp_path / "placed_out.tif")
    assert crs is None and transform.is_identity and their_crs is not None
    np.testing.assert_array_equal(ours, theirs)
    # the probabilities tell a picture turned upside down (the identity's e = +1 read as south up) from this one
    probabilities = _read(tmp_path / "plain_p.tif")[0]
    assert len(np.unique(probabilities)) > 10
    np.testing.assert_array_equal(probabilities, _read(tmp_path / "placed_p.tif")[0])


def test_pixel_grid_pairs_a_dsm_of_the_image_size_pixel_by_pixel(tmp_path) -> None:
    rng = np.random.default_rng(2)
    image = _plain(tmp_path / "top.tif", rng.integers(0, 255, (3, 30, 40), dtype=np.uint8))
    heights = rng.uniform(250.0, 290.0, (30, 40)).astype(np.float32)
    dsm = _plain(tmp_path / "dsm.tif", heights)
    with AlignedSource(image, dsm, pixel_grid=True) as src:
        assert src.crs is None and src.has_dsm
        np.testing.assert_array_equal(src.read_dsm(Window(0, 0, 40, 30)), heights)
        np.testing.assert_array_equal(src.read_dsm(Window(5, 7, 11, 13)), heights[7:20, 5:16])


def test_pixel_grid_refuses_what_cannot_be_paired(tmp_path) -> None:
    rng = np.random.default_rng(3)
    image = _plain(tmp_path / "top.tif", rng.integers(0, 255, (3, 30, 40), dtype=np.uint8))
    small = _plain(tmp_path / "small.tif", np.ones((20, 40), np.float32))
    placed_dsm = write_raster(tmp_path / "placed_dsm.tif", np.ones((30, 40), np.float32))
    placed_image = write_raster(tmp_path / "placed.tif", rng.integers(0, 255, (3, 30, 40), dtype=np.uint8))
    labels = tmp_path / "labels.gpkg"
    import geopandas as gpd
    from shapely.geometry import box

    gpd.GeoDataFrame({"class": [1]}, geometry=[box(0, 0, 10, 10)], crs="EPSG:32632").to_file(labels)
    cases = [
        ((image, small), "20 px.*the image 40 x 30 px"),
        ((image, placed_dsm), "it is georeferenced and the image is not"),
        ((placed_image, small), "it has no georeferencing and the image has"),
    ]
    for (img, dsm), message in cases:
        with pytest.raises(InputError, match=message):
            AlignedSource(img, dsm, pixel_grid=True)
    with pytest.raises(InputError, match="vector layer cannot be placed"):
        AlignedSource(image, labels=labels, pixel_grid=True)


def test_cli_predicts_a_vaihingen_tile_and_evaluate_scores_it_in_its_layout(tmp_path, capsys) -> None:
    root = isprs(tmp_path / "Vaihingen", "vaihingen", (64, 64))
    top = root / "top" / "top_mosaic_09cm_area1.tif"
    gt = root / "ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE" / "top_mosaic_09cm_area1.tif"
    assert main(["predict", str(top), "-o", str(tmp_path / "p.tif"), "--no-tta"]) == 2
    assert "--pixel-grid" in capsys.readouterr().err
    assert main(["predict", str(top), "-o", str(tmp_path / "p.tif"), "--no-tta", "--pixel-grid"]) == 0
    assert "without georeferencing" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "p.tif"), str(gt), "--layout", "isprs", "-o", str(tmp_path / "m.json")]) == 0
    scored = json.loads((tmp_path / "m.json").read_text())
    assert scored["pixels"] == 64 * 64 and np.sum(scored["confusion_matrix"]["matrix"]) == 64 * 64


def test_cli_change_on_second_pngs(tmp_path, capsys) -> None:
    root = second(tmp_path / "SECOND", n=2, size=64)
    im1, im2 = root / "test" / "im1", root / "test" / "im2"
    out = tmp_path / "change"
    assert main(["change", str(im1 / "*.png"), str(im2 / "*.png"), "-o", str(out), "--pixel-grid", "--semantic",
                 "--no-tta"]) == 0
    for name in ("00000", "00001"):
        bands, crs, transform = _read(out / f"{name}.tif")
        assert bands.shape == (3, 64, 64) and crs is None and transform.is_identity
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(out / f"{name}.tif") as ds:  # no polygon area in m2 on a pixel grid
                assert not any("MIN_AREA" in key for key in ds.tags())


def test_synthetic_change_pairs_keep_the_unchanged_pixels(tmp_path) -> None:
    """SECOND fakes: an unchanged block is the same pixels on both dates (it was another random scene, so a
    change model learnt labels no image supported, and co-registration found 28-79 px shifts)."""
    root = second(tmp_path / "SECOND", n=1, size=64)
    img1, img2, label1, label2 = (_read(root / "train" / d / "00000.png")[0]
                                  for d in ("im1", "im2", "label1", "label2"))
    unchanged = (label1 == 255).all(axis=0) & (label2 == 255).all(axis=0)  # SECOND: white is no change
    assert 0.2 < unchanged.mean() < 0.9
    np.testing.assert_array_equal(img1[:, unchanged], img2[:, unchanged])
    assert (img1[:, ~unchanged] != img2[:, ~unchanged]).any(axis=0).mean() > 0.9
