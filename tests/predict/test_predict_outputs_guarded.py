"""Outputs that GDAL would write wrongly without a word: creation options that alter values or the
grid, an output that is a VRT input's source, an alpha band stored first."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp

from rsmamba.checkpoint import save_checkpoint
from rsmamba.cli import main
from rsmamba.errors import InputError
from rsmamba.predict import predict_raster
from tests.helpers.predict_models import tiny_rgb_checkpoint
from tests.helpers.rasters import random_image, write_raster


@pytest.fixture
def checkpoint(tmp_path):
    return save_checkpoint(tmp_path / "m.pt", tiny_rgb_checkpoint())


@pytest.mark.parametrize(("co", "needle"), [
    ({"COMPRESS": "LERC", "MAX_Z_ERROR": "3"}, "--co COMPRESS=LERC: lossy"),
    ({"NBITS": "1"}, "--co NBITS=1: would change the class values or the grid"),
    ({"TARGET_SRS": "EPSG:4326"}, "--co TARGET_SRS=EPSG:4326: would change"),
    ({"LEVEL": "99"}, "--co LEVEL=99: deflate takes levels 1..12"),
    # GDAL left deflate 0 or 13..22 at its default 6, and applied no LZMA level, without a word
    ({"LEVEL": "0"}, "--co LEVEL=0: deflate takes levels 1..12"),
    ({"LEVEL": "9", "COMPRESS": "LZMA"}, "--co LEVEL=9: lzma takes no level here"),
    ({"LEVEL": "23", "COMPRESS": "ZSTD"}, "--co LEVEL=23: zstd takes levels 1..22"),
    ({"BLOCKSIZE": "100"}, "--co BLOCKSIZE=100: must be a multiple of 16"),
    # overviews of nodata, exit 0, GDAL's 'Error when compressing' lines even under -q
    ({"OVERVIEW_PREDICTOR": "3"}, "--co OVERVIEW_PREDICTOR=3: the floating-point predictor is for float data"),
    ({"PREDICTOR": "FLOATING_POINT"}, "--co PREDICTOR=FLOATING_POINT: the floating-point predictor"),
    ({"OVERVIEW_RESAMPLING": "AVERAGE"}, "rsmamba builds the overviews itself"),
    ({"BIGTIFF": "maybe"}, "--co BIGTIFF=maybe: must be YES, NO, IF_NEEDED or IF_SAFER"),
    ({"OVERVIEW_COUNT": "abc"}, "--co OVERVIEW_COUNT=abc: must be an integer"),
])
def test_creation_options_that_alter_the_output_are_refused_before_any_compute(tmp_path, checkpoint, co,
                                                                               needle) -> None:
    image = write_raster(tmp_path / "img.tif", random_image(40, 50))
    with pytest.raises(InputError, match=needle):
        predict_raster(image, tmp_path / "out.tif", model=checkpoint, co=co)
    assert not (tmp_path / "out.tif").exists()


def test_lossless_creation_options_write_the_same_classes(tmp_path, checkpoint) -> None:
    image = write_raster(tmp_path / "img.tif", random_image(40, 50))
    predict_raster(image, tmp_path / "a.tif", model=checkpoint, window=32, overlap=8)
    predict_raster(image, tmp_path / "b.tif", model=checkpoint, window=32, overlap=8,
                   co={"COMPRESS": "ZSTD", "LEVEL": "9", "BLOCKSIZE": "256"})
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        assert b.profile["compress"] == "zstd" and b.transform == a.transform
        np.testing.assert_array_equal(a.read(), b.read())


def test_an_output_named_like_a_vrt_inputs_source_is_refused_even_with_overwrite(tmp_path, checkpoint,
                                                                                   capsys) -> None:
    source = write_raster(tmp_path / "ortho.tif", random_image(40, 50))
    before = source.read_bytes()
    vrt = tmp_path / "ortho.vrt"
    rasterio.shutil.copy(source, vrt, driver="VRT")
    code = main(["predict", str(vrt), "-o", str(source), "--overwrite", "--model", str(checkpoint)])
    assert code == 2 and "is the input" in capsys.readouterr().err
    assert source.read_bytes() == before


def test_an_alpha_band_stored_first_is_the_mask_not_red(tmp_path, checkpoint) -> None:
    rgb = random_image(40, 50)
    plain = write_raster(tmp_path / "rgb.tif", rgb)
    alpha = np.full((1, 40, 50), 255, np.uint8)
    alpha[:, :, :10] = 0
    argb = write_raster(tmp_path / "argb.tif", np.concatenate([alpha, rgb]))
    with rasterio.open(argb, "r+") as ds:
        ds.colorinterp = (ColorInterp.alpha, ColorInterp.red, ColorInterp.green, ColorInterp.blue)
    predict_raster(plain, tmp_path / "a.tif", model=checkpoint, window=32, overlap=8)
    predict_raster(argb, tmp_path / "b.tif", model=checkpoint, window=32, overlap=8)
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        want, got = a.read(1), b.read(1)
    assert (got[:, :10] == 255).all()  # nodata where alpha is 0
    # the model sees the same RGB: equal away from the windows that touch the masked columns
    np.testing.assert_array_equal(got[:, 32:], want[:, 32:])
    with pytest.raises(InputError, match="expects 3 image bands"):  # --bands counts the file's bands, alpha too
        predict_raster(argb, tmp_path / "c.tif", model=checkpoint, bands=[1, 2, 3, 4])


@pytest.mark.parametrize("shape", [(1, 1), (1, 40)])
def test_a_one_pixel_wide_output_has_no_overview_level(tmp_path, checkpoint, shape) -> None:
    """Its 'overview' was the same size again: an invalid COG to rio-cogeo."""
    image = write_raster(tmp_path / "img.tif", random_image(*shape))
    predict_raster(image, tmp_path / "out.tif", model=checkpoint)
    with rasterio.open(tmp_path / "out.tif") as out:
        assert out.overviews(1) == [] and out.shape == shape
