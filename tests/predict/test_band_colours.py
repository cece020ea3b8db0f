"""A delivery's declared band order (GDAL colour interpretation) is how its bands are read."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch
from rasterio.enums import ColorInterp

from rsmamba.change import detect_change
from rsmamba.engine.model import LoadedModel, default_classes
from rsmamba.errors import InputError
from rsmamba.predict import predict_raster
from tests.helpers.rasters import random_image, write_raster

RGB = ("red", "green", "blue")


class RedMinusBlue(torch.nn.Module):
    """Class 1 where red exceeds blue: any band swap shows."""

    def forward(self, x):
        d = x[:, :1] - x[:, 2:3]
        return torch.cat([-d, d, -d - 9, -d - 9], 1)


def _declared(path, data: np.ndarray, colours) -> None:
    write_raster(path, data)
    with rasterio.open(path, "r+") as ds:
        ds.colorinterp = [ColorInterp[c] for c in colours]


def _classes(path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def _model(colours=RGB) -> LoadedModel:
    return LoadedModel(RedMinusBlue(), classes=default_classes(4), bands=[1, 2, 3], colours=colours)


@pytest.mark.parametrize("order,stored", [(("blue", "green", "red"), [2, 1, 0]),
                                          (("undefined", "red", "green", "blue"), [3, 0, 1, 2])])
def test_a_declared_band_order_is_read_by_colour(tmp_path, order, stored) -> None:
    rgb = random_image(64, 64, bands=3, seed=2)
    write_raster(tmp_path / "rgb.tif", rgb)
    data = np.stack([rgb[i] if i < 3 else rgb[0] // 2 for i in stored])
    _declared(tmp_path / "other.tif", data, order)
    predict_raster(tmp_path / "rgb.tif", tmp_path / "a.tif", model=_model(), window=64)
    predict_raster(tmp_path / "other.tif", tmp_path / "b.tif", model=_model(), window=64)
    assert np.array_equal(_classes(tmp_path / "a.tif"), _classes(tmp_path / "b.tif"))
    assert 0.2 < (_classes(tmp_path / "a.tif") == 1).mean() < 0.8


def test_a_model_without_recorded_colours_refuses_a_reordered_image_and_takes_bands(tmp_path) -> None:
    rgb = random_image(64, 64, bands=3, seed=2)
    _declared(tmp_path / "bgr.tif", rgb[::-1].copy(), ("blue", "green", "red"))
    with pytest.raises(InputError, match=r"pass --bands 3,2,1 to read red, green, blue, or --bands 1,2,3"):
        predict_raster(tmp_path / "bgr.tif", tmp_path / "b.tif", model=_model(None), window=64)
    write_raster(tmp_path / "rgb.tif", rgb)
    predict_raster(tmp_path / "rgb.tif", tmp_path / "a.tif", model=_model(None), window=64)  # RGB: as before
    predict_raster(tmp_path / "bgr.tif", tmp_path / "b.tif", model=_model(None), window=64, bands=[3, 2, 1])
    assert np.array_equal(_classes(tmp_path / "a.tif"), _classes(tmp_path / "b.tif"))


def test_tile_keeps_the_declared_colours_and_training_records_them(tmp_path) -> None:
    from rsmamba.tile import tile_scene

    rgb = random_image(64, 64, bands=3, seed=2)
    _declared(tmp_path / "bgr.tif", rgb[::-1].copy(), ("blue", "green", "red"))
    labels = write_raster(tmp_path / "labels.tif", (rgb[0] > 128).astype(np.uint8))
    tile_scene(tmp_path / "bgr.tif", tmp_path / "chips", labels=labels, size=32, split=(0.5, 0.5, 0.0), block=32)
    assert json.loads((tmp_path / "chips" / "tiling.json").read_text())["colours"] == ["blue", "green", "red"]
    chip = next((tmp_path / "chips" / "images").glob("*.tif"))
    with rasterio.open(chip) as ds:  # GDAL's 3-band Byte default would have declared band 1 red
        assert [c.name for c in ds.colorinterp] == ["blue", "green", "red"]
    from rsmamba.checkpoint import load_checkpoint
    from rsmamba.train import train

    result = train({"data": {"root": str(tmp_path / "chips"), "batch_size": 1}, "out": str(tmp_path / "run"),
                    "model": {"name": "fcn_baseline", "kwargs": {"width": 4}}, "train": {"epochs": 1},
                    "tensorboard": False}, progress=False)
    assert load_checkpoint(result.last)["bands"]["colours"] == ["blue", "green", "red"]


def test_change_reads_a_second_date_in_the_first_dates_colour_order(tmp_path) -> None:
    from tests.change.test_change_resume import Diff

    t1 = random_image(64, 64, bands=3, seed=2)
    write_raster(tmp_path / "t1.tif", t1)
    _declared(tmp_path / "t2.tif", t1[::-1].copy(), ("blue", "green", "red"))  # the same scene, stored BGR
    summary = detect_change(tmp_path / "t1.tif", tmp_path / "t2.tif", tmp_path / "c.tif",
                            model=LoadedModel(Diff(), inputs="t1+t2"), window=64, force=True)
    assert summary.changed_fraction == 0.0 and any("colour order" in w for w in summary.warnings)
