"""A delivery's declared band order (GDAL colour interpretation) is how its bands are read."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch
from rasterio.enums import ColorInterp
from rasterio.windows import Window

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


def test_each_library_run_says_and_records_the_bands_it_read_by_colour(tmp_path, caplog) -> None:
    """A notebook's second predict_raster of a BGR ortho logged nothing (the memory of shown warnings was the
    process's), and no summary recorded the reorder: a batch or notebook had no trace of it."""
    rgb = random_image(64, 64, bands=3, seed=2)
    _declared(tmp_path / "bgr.tif", rgb[::-1].copy(), ("blue", "green", "red"))
    for run in range(2):
        caplog.clear()
        with caplog.at_level("WARNING", logger="rsmamba"):
            summary = predict_raster(tmp_path / "bgr.tif", tmp_path / f"p{run}.tif", model=_model(), window=64)
        said = [r.getMessage() for r in caplog.records if "read as red, green, blue (bands 3,2,1)" in r.getMessage()]
        assert len(said) == 1 and any(w == said[0] for w in summary.warnings)
    t2 = tmp_path / "t2.tif"
    _declared(t2, rgb, RGB)
    model = LoadedModel(RedOnlyDiff(), inputs="t1+t2", bands=[1, 2, 3], colours=RGB, in_chans=3)
    summary = detect_change(tmp_path / "bgr.tif", t2, tmp_path / "c.tif", model=model, window=64, force=True)
    assert any("read as red, green, blue (bands 3,2,1)" in w for w in summary.warnings)


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
    assert summary.changed_fraction == 0.0
    # each date's order said as its own: "another colour order than t1's (blue, green, red)" named t2's (QA)
    assert any("declare the colours blue, green, red, another order than t1's (red, green, blue); read by colour"
               in w for w in summary.warnings), summary.warnings


def test_a_second_dates_colour_warning_names_the_first_dates_colours_as_its_file_declares_them(tmp_path) -> None:
    """change bgr_t1.tif rgb_t2.tif (t1 read 3,2,1 for an RGB model) warned 't2 ...: its bands declare the colours
    red, green, blue, another order than t1's (red, green, blue)': t1's as read, the same as t2's."""
    from rsmamba.raster.source import AlignedSource

    scene = random_image(32, 32, bands=3, seed=4)
    _declared(tmp_path / "t1.tif", scene[::-1].copy(), ("blue", "green", "red"))
    _declared(tmp_path / "t2.tif", scene, ("red", "green", "blue"))
    with AlignedSource(tmp_path / "t1.tif", t2=tmp_path / "t2.tif", bands=[3, 2, 1]) as src:
        said = [w for w in src.warnings if "another order" in w]
        np.testing.assert_array_equal(src.read_t2(Window(0, 0, 32, 32)), src.read_image(Window(0, 0, 32, 32)))
    assert len(said) == 1 and ("its bands declare the colours red, green, blue, another order than t1's (blue, green, "
                               "red); read by colour, as t1's (bands 1,2,3)") in said[0], said


class RedOnlyDiff(torch.nn.Module):
    """Change where the dates' first channel (red, for an RGB model) differs."""

    def forward(self, t1, t2):
        d = (t1[:, :1] - t2[:, :1]).abs()
        return {"change": torch.cat([1.0 - d, d - 1.0], 1) * 4}


@pytest.mark.parametrize("t1_order,t2_order,bands", [("bgr", "rgb", None), ("bgr", "bgr", None), ("bgr", "rgb", [3, 2, 1]),
                                                       ("rgb", "bgr", None), ("none", "bgr", None), ("none", "bgr", [1, 2, 3])])
def test_change_reads_both_dates_in_the_models_colour_order(tmp_path, t1_order, t2_order, bands) -> None:
    """A BGR t1 went to an RGB change model as is (IoU 0.76 -> 0.28), and --bands turned t2's colour matching off;
    a t1 declaring no colours (gray, undefined) left a BGR t2 read by position: 39 % change for 3 %."""
    before = random_image(64, 64, bands=3, seed=2)
    before[0, 20:40, 20:40] = 0
    after = before.copy()
    after[0, 20:40, 20:40] = 255  # red changed in a block, green and blue not
    paths = []
    for name, data, order in (("t1", before, t1_order), ("t2", after, t2_order)):
        stored = data[::-1].copy() if order == "bgr" else data
        _declared(tmp_path / f"{name}.tif", stored, ("blue", "green", "red") if order == "bgr" else
                  ("gray", "undefined", "undefined") if order == "none" else RGB)
        paths.append(tmp_path / f"{name}.tif")
    model = LoadedModel(RedOnlyDiff(), inputs="t1+t2", bands=[1, 2, 3], colours=RGB, in_chans=3)
    summary = detect_change(*paths, tmp_path / "c.tif", model=model, window=64, force=True, bands=bands)
    with rasterio.open(tmp_path / "c.tif") as ds:
        changed = ds.read(1) == 1
    assert changed[22:38, 22:38].all() and not changed[:15].any()  # the red block, read as red on both dates
    assert summary.changed_fraction == pytest.approx(changed.mean(), abs=0.02)


def test_a_second_date_in_another_colour_order_is_said_once_as_t2(tmp_path, caplog) -> None:
    """A model recording its colours and a BGR t2 beside an RGB t1: two warnings, the first calling t2 'image t2.tif'."""
    data = random_image(64, 64, bands=3, seed=2)
    _declared(tmp_path / "t1.tif", data, RGB)
    _declared(tmp_path / "t2.tif", data[::-1].copy(), ("blue", "green", "red"))
    model = LoadedModel(RedOnlyDiff(), inputs="t1+t2", bands=[1, 2, 3], colours=RGB, in_chans=3)
    with caplog.at_level("WARNING"):
        summary = detect_change(tmp_path / "t1.tif", tmp_path / "t2.tif", tmp_path / "c.tif", model=model, window=64,
                                force=True)
    assert summary.changed_fraction == 0.0
    said = [w for w in summary.warnings if "t2.tif" in w]
    assert len(said) == 1 and said[0].startswith("t2 "), said
    logged = [r.getMessage() for r in caplog.records if "t2.tif" in r.getMessage()]
    assert len(logged) == 1 and logged[0].startswith("t2 "), logged


def test_a_four_band_model_reads_its_recorded_colours_nir_too(tmp_path) -> None:
    """A model recording red, green, blue, nir read a NIR,R,G,B image by position: nir as red, silently."""
    rgbn = random_image(64, 64, bands=4, seed=3)
    _declared(tmp_path / "rgbn.tif", rgbn, ("red", "green", "blue", "nir"))
    _declared(tmp_path / "nrgb.tif", rgbn[[3, 0, 1, 2]].copy(), ("nir", "red", "green", "blue"))
    model = LoadedModel(RedMinusBlue(), classes=default_classes(4), bands=[1, 2, 3, 4],
                        colours=("red", "green", "blue", "nir"))
    predict_raster(tmp_path / "rgbn.tif", tmp_path / "a.tif", model=model, window=64)
    predict_raster(tmp_path / "nrgb.tif", tmp_path / "b.tif", model=model, window=64)
    assert np.array_equal(_classes(tmp_path / "a.tif"), _classes(tmp_path / "b.tif"))


def test_a_reordered_four_band_second_date_is_matched_band_for_band(tmp_path) -> None:
    """t1 R,G,B,NIR and t2 NIR,R,G,B: t2 was read as bands 2,3,4,4 (blue twice, NIR dropped)."""
    from rsmamba.raster.source import AlignedSource

    rgbn = random_image(32, 32, bands=4, seed=3)
    _declared(tmp_path / "t1.tif", rgbn, ("red", "green", "blue", "nir"))
    _declared(tmp_path / "t2.tif", rgbn[[3, 0, 1, 2]].copy(), ("nir", "red", "green", "blue"))
    with AlignedSource(tmp_path / "t1.tif", t2=tmp_path / "t2.tif") as src:
        window = rasterio.windows.Window(0, 0, 32, 32)
        assert np.array_equal(src.read_t2(window), src.read_image(window))


def test_an_irrg_image_is_refused_though_its_nir_band_is_undefined(tmp_path) -> None:
    """NIR, red, green declared undefined, red, green (GDAL before 3.10 has no nir) went through an RGB model by
    position, NIR as red (34 % of the map as the RGB run); as a second date beside an RGB t1, 52 % 'change' for 3 %."""
    rgb = random_image(64, 64, bands=3, seed=2)
    irrg = np.stack([rgb[0] // 2 + 100, rgb[0], rgb[1]])
    for name, colours in (("undefined", ("undefined", "red", "green")), ("nir", ("nir", "red", "green"))):
        _declared(tmp_path / f"irrg_{name}.tif", irrg, colours)
        with pytest.raises(InputError, match=r"its bands declare the colours .*red, green; model .* reads red, green, blue"):
            predict_raster(tmp_path / f"irrg_{name}.tif", tmp_path / "p.tif", model=_model(), window=64)
        _declared(tmp_path / "t1.tif", rgb, RGB)
        model = LoadedModel(RedOnlyDiff(), inputs="t1+t2", bands=[1, 2, 3], colours=RGB, in_chans=3)
        with pytest.raises(InputError, match=rf"^t2 .*irrg_{name}.tif: its bands declare the colours"):
            detect_change(tmp_path / "t1.tif", tmp_path / f"irrg_{name}.tif", tmp_path / "c.tif", model=model,
                          window=64, force=True)
    _declared(tmp_path / "gray.tif", rgb, ("gray", "undefined", "undefined"))  # no order declared: by position
    predict_raster(tmp_path / "gray.tif", tmp_path / "g.tif", model=_model(), window=64)


def test_a_models_file_band_numbers_give_way_to_its_colours(tmp_path, caplog) -> None:
    """A checkpoint's bands are those of the file it was tiled from: an ARGB ortho's 2, 3, 4, or tile --bands 4,1,2.
    Read by position they refused every 3-band image declaring the same colours, the model's own training ortho
    too ('has 3 bands, but the model reads bands [2, 3, 4]')."""
    rgb = random_image(64, 64, bands=3, seed=2)
    _declared(tmp_path / "rgb.tif", rgb, RGB)
    _declared(tmp_path / "bgr.tif", rgb[::-1].copy(), ("blue", "green", "red"))
    alpha = np.full((1, 64, 64), 255, np.uint8)
    _declared(tmp_path / "argb.tif", np.concatenate([alpha, rgb]), ("alpha", "red", "green", "blue"))
    model = LoadedModel(RedMinusBlue(), classes=default_classes(4), bands=[2, 3, 4], colours=RGB)  # tiled from ARGB
    predict_raster(tmp_path / "argb.tif", tmp_path / "a.tif", model=model, window=64)
    _declared(tmp_path / "undef.tif", rgb, ("undefined",) * 3)  # no colours declared: by position, bands 1, 2, 3
    for name in ("rgb", "bgr", "undef"):
        predict_raster(tmp_path / f"{name}.tif", tmp_path / f"{name}_p.tif", model=model, window=64)
        assert np.array_equal(_classes(tmp_path / "a.tif"), _classes(tmp_path / f"{name}_p.tif"))
    nir = (rgb[0] // 2 + 100).astype(np.uint8)  # tile --bands 4,1,2 of an RGBN ortho: nir, red, green
    irrg = LoadedModel(RedMinusBlue(), classes=default_classes(4), bands=[4, 1, 2], colours=("nir", "red", "green"))
    _declared(tmp_path / "irrg.tif", np.stack([nir, rgb[0], rgb[1]]), ("nir", "red", "green"))
    _declared(tmp_path / "rgbn.tif", np.stack([rgb[0], rgb[1], rgb[2], nir]), ("red", "green", "blue", "nir"))
    predict_raster(tmp_path / "irrg.tif", tmp_path / "i.tif", model=irrg, window=64)
    predict_raster(tmp_path / "rgbn.tif", tmp_path / "n.tif", model=irrg, window=64)
    assert np.array_equal(_classes(tmp_path / "i.tif"), _classes(tmp_path / "n.tif"))


def test_too_few_bands_name_the_models_colours_not_an_impossible_bands_choice(tmp_path) -> None:
    rgb = random_image(64, 64, bands=3, seed=2)
    _declared(tmp_path / "rgb.tif", rgb, RGB)
    model = LoadedModel(RedMinusBlue(), classes=default_classes(4), bands=[1, 2, 3, 4],
                        colours=("red", "green", "blue", "nir"))
    with pytest.raises(InputError, match=r"rgb.tif: has 3 bands, but the model reads 4 \(red, green, blue, nir\); "
                                         r"give an image of those bands, or use a model trained on 3 bands$"):
        predict_raster(tmp_path / "rgb.tif", tmp_path / "p.tif", model=model, window=64)


def test_a_gray_model_fed_a_colour_band_says_so(tmp_path, caplog) -> None:
    """A panchromatic model (colour gray) read band 1 of a BGR image, blue, with 'those it was trained on'."""
    rgb = random_image(64, 64, bands=3, seed=2)
    _declared(tmp_path / "bgr.tif", rgb[::-1].copy(), ("blue", "green", "red"))

    class First(torch.nn.Module):
        def forward(self, x):
            return torch.cat([x[:, :1], -x[:, :1]], 1)

    model = LoadedModel(First(), classes=default_classes(2), bands=[1], colours=("gray",))
    summary = predict_raster(tmp_path / "bgr.tif", tmp_path / "p.tif", model=model, window=64)
    assert any("the model reads bands 1, by position (blue as declared): the model records no colour for its band "
               "(gray)" in w for w in summary.warnings)


def test_change_reads_the_models_bands_of_an_rgbn_pair_as_of_an_nrgb_one(tmp_path) -> None:
    """An RGBN pair was refused ('expects 3 bands per epoch, the epochs have 4') where the same pixels stored
    NIR first were read by colour."""
    before = random_image(64, 64, bands=4, seed=2)
    before[0, 20:40, 20:40] = 0
    after = before.copy()
    after[0, 20:40, 20:40] = 255
    model = LoadedModel(RedOnlyDiff(), inputs="t1+t2", bands=[1, 2, 3], colours=RGB, in_chans=3)
    maps, said = [], []
    for name, order, colours in (("rgbn", [0, 1, 2, 3], ("red", "green", "blue", "nir")),
                                 ("nrgb", [3, 0, 1, 2], ("nir", "red", "green", "blue"))):
        _declared(tmp_path / f"{name}1.tif", before[order].copy(), colours)
        _declared(tmp_path / f"{name}2.tif", after[order].copy(), colours)
        summary = detect_change(tmp_path / f"{name}1.tif", tmp_path / f"{name}2.tif", tmp_path / f"{name}.tif",
                                model=model, window=64, force=True)
        maps.append(_classes(tmp_path / f"{name}.tif"))
        said.append(any("4 bands; the model reads bands 1,2,3 of each date" in w for w in summary.warnings))
    assert np.array_equal(*maps) and maps[0][22:38, 22:38].all()
    assert said == [True, False]  # the RGBN pair's subset is said; the NRGB pair's reading by colour has its own note
