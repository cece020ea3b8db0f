"""Fills and collars an ortho does not declare: refused with the right advice, or said before they are mapped."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from rsmamba.change import detect_change
from rsmamba.engine.model import LoadedModel, default_classes
from rsmamba.errors import InputError
from rsmamba.predict import predict_raster
from tests.helpers.predict_models import TinyConv
from tests.helpers.rasters import ROOT, write_raster

SCENE = ROOT / "examples" / "scene"


def _crop(path, size: int = 256) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as ds:
        return ds.read(window=((0, size), (0, size))), {"transform": ds.transform, "crs": ds.crs}


def _model(norm: dict | None = None) -> LoadedModel:
    return LoadedModel(TinyConv(num_classes=4).eval(), classes=default_classes(4), image_norm=norm)


def test_an_undeclared_black_collar_is_said_and_a_declared_one_is_nodata(tmp_path) -> None:
    """A mosaic's 0,0,0 collar with no nodata: 11 000 px of it came out building along the seams, unsaid."""
    img, geo = _crop(SCENE / "ortho.tif")
    img[:, :, :40] = 0  # 16 % of the image
    collar = write_raster(tmp_path / "collar.tif", img, **geo)
    summary = predict_raster(collar, tmp_path / "p.tif", model=_model(), window=128, overlap=32)
    said = [w for w in summary.warnings if "are 0 in every band" in w]
    assert len(said) == 1 and "gdal_edit.py -a_nodata 0" in said[0]
    declared = write_raster(tmp_path / "declared.tif", img, nodata=0, **geo)
    summary = predict_raster(declared, tmp_path / "d.tif", model=_model(), window=128, overlap=32)
    assert not [w for w in summary.warnings if "every band" in w]
    with rasterio.open(tmp_path / "d.tif") as ds:
        assert (ds.read(1)[:, :40] == ds.nodata).all()
    clean, _ = _crop(SCENE / "ortho.tif")
    summary = predict_raster(write_raster(tmp_path / "clean.tif", clean, **geo), tmp_path / "c.tif", model=_model(),
                             window=128, overlap=32)
    assert not [w for w in summary.warnings if "every band" in w]  # dark shadows are not a collar


def test_change_says_an_undeclared_collar_on_either_date(tmp_path) -> None:
    t1, geo = _crop(SCENE / "ortho.tif")
    t2, _ = _crop(SCENE / "ortho_t2.tif")
    t2[:, :, -60:] = 0
    from tests.change.test_change_resume import Diff

    summary = detect_change(write_raster(tmp_path / "t1.tif", t1, **geo), write_raster(tmp_path / "t2.tif", t2, **geo),
                            tmp_path / "c.tif", model=LoadedModel(Diff(), inputs="t1+t2"), window=128, force=True)
    assert [w for w in summary.warnings if w.startswith("t2 ") and "are 0 in every band" in w]


def test_an_undeclared_float_fill_is_refused_with_nodata_advice_not_a_rescale(tmp_path) -> None:
    """gdal_translate -scale on a -9999 fill squeezes every real pixel into 249..255: the advice is to declare it."""
    img, geo = _crop(SCENE / "ortho.tif")
    img = img.astype(np.float32)
    img[:, :, :10] = -9999
    path = write_raster(tmp_path / "f.tif", img, **geo)
    norm = {"mean": [100.0, 100.0, 100.0], "std": [30.0, 30.0, 30.0], "dtype": "uint8", "minimum": [0.0] * 3,
            "maximum": [255.0] * 3}
    with pytest.raises(InputError) as info:
        predict_raster(path, tmp_path / "p.tif", model=_model(norm), window=128, overlap=32)
    assert "gdal_edit.py -a_nodata -9999" in str(info.value) and "gdal_translate" not in str(info.value)


def test_an_image_declaring_a_scale_and_offset_is_told_to_unscale(tmp_path) -> None:
    """uint16 = 2 * value + 100 with GDAL scale 0.5, offset -50: -scale (a min-max stretch) is not the declared map."""
    img, geo = _crop(SCENE / "ortho.tif")
    path = write_raster(tmp_path / "s.tif", (img.astype(np.uint16) * 2 + 100), **geo)
    with rasterio.open(path, "r+") as ds:
        ds.scales, ds.offsets = [0.5] * 3, [-50.0] * 3
    norm = {"mean": [100.0, 100.0, 100.0], "std": [30.0, 30.0, 30.0], "dtype": "uint8"}
    with pytest.raises(InputError, match=r"declares a GDAL scale 0.5 and offset -50: unscale it \(gdal_translate "
                                         r"-unscale -ot Byte IN OUT\)"):
        predict_raster(path, tmp_path / "p.tif", model=_model(norm), window=128, overlap=32)


def test_tile_says_an_undeclared_collar_too(tmp_path) -> None:
    from rsmamba.tile import tile_scene

    img, geo = _crop(SCENE / "ortho.tif")
    img[:, :, :40] = 0
    summary = tile_scene(write_raster(tmp_path / "collar.tif", img, **geo), tmp_path / "chips", size=64,
                         split=(1.0, 0.0, 0.0), block=64)
    assert [w for w in summary.warnings if "are 0 in every band" in w]


def test_snow_or_water_inside_a_scene_is_no_collar(tmp_path) -> None:
    """8 % of a winter ortho saturated to 255 in every band was called a collar, with advice to declare it nodata."""
    img, geo = _crop(SCENE / "ortho.tif")
    img[:, 60:200, 60:200] = 255  # a saturated snowfield (30 %), not reaching the edge
    summary = predict_raster(write_raster(tmp_path / "snow.tif", img, **geo), tmp_path / "p.tif", model=_model(),
                             window=128, overlap=32)
    assert not [w for w in summary.warnings if "every band" in w]


def test_a_missing_sheet_inside_a_mosaic_is_said(tmp_path) -> None:
    """A black block away from the edge (a failed sheet) passed once the warning asked for the edge."""
    img, geo = _crop(SCENE / "ortho.tif")
    img[:, 70:190, 70:190] = 0
    summary = predict_raster(write_raster(tmp_path / "hole.tif", img, **geo), tmp_path / "p.tif", model=_model(),
                             window=128, overlap=32)
    assert [w for w in summary.warnings if "are 0 in every band" in w]


@pytest.mark.parametrize("factor", [16, 1])  # 12-bit data in UInt16, 8-bit values in UInt16
def test_a_lower_bit_depth_in_the_training_dtype_is_refused(tmp_path, factor) -> None:
    """A model of full-range 16-bit imagery took 12-bit data stored as UInt16 without a word (the same dtype, and
    the mean only 2 training stds off): mIoU 0.20 for 0.78. Its values all lie in the bottom eighth of the
    training range with a sixteenth of its spread; the advice names the training type, not Byte."""
    img, geo = _crop(SCENE / "ortho.tif")
    path = write_raster(tmp_path / "low.tif", img.astype(np.uint16) * factor, **geo)
    full = img.astype(np.float64) * 257
    norm = {"mean": full.mean(axis=(1, 2)).tolist(), "std": full.std(axis=(1, 2)).tolist(), "dtype": "uint16",
            "minimum": [0.0] * 3, "maximum": [65535.0] * 3}
    with pytest.raises(InputError, match=r"values on another scale .*gdal_translate -ot UInt16 -scale"):
        predict_raster(path, tmp_path / "p.tif", model=_model(norm), window=128, overlap=32)
    ok = write_raster(tmp_path / "full.tif", (img.astype(np.uint16) * 257), **geo)
    predict_raster(ok, tmp_path / "ok.tif", model=_model(norm), window=128, overlap=32)  # its own scale: mapped
