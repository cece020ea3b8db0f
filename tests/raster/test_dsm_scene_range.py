"""data.dsm_mode minmax-scene: every window of a tile or scene scaled by the whole DSM's min and max (FMTUNet)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from rasterio.windows import Window

from rsmamba.engine.model import LoadedModel
from rsmamba.predict import predict_raster
from rsmamba.raster.normalize import dsm_range, normalize_dsm
from tests.helpers.rasters import random_image, write_raster


def test_the_range_is_every_pixels_not_a_samples() -> None:
    heights = np.linspace(10, 90, 1200 * 50, dtype=np.float32).reshape(1200, 50)
    heights[1111, 7] = 250.0  # one roof in a strip the first 512 rows never see
    heights[3, 3] = np.nan
    assert dsm_range(lambda w: heights[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width], 50, 1200) \
        == (10.0, 250.0)
    out = normalize_dsm(heights[:2], np.ones((2, 50), bool), {"mode": "minmax-scene", "minimum": 10.0, "maximum": 250.0})
    np.testing.assert_allclose(out, np.nan_to_num((heights[:2] - 10) / 240), rtol=1e-6)


class TallIsBuilding(torch.nn.Module):
    """Class 1 where the normalised DSM (the last channel) exceeds one half, else 0."""

    def forward(self, x):
        d = x[:, -1:]
        return torch.cat([(0.5 - d) * 40, (d - 0.5) * 40, *[torch.full_like(d, -50.0)] * 4], 1)


def test_predict_scales_every_window_by_the_scenes_range(tmp_path) -> None:
    """Per window, a flat window's own min-max stretches noise to 0..1 (half of it 'tall'); per scene, only
    the pixels above the scene's mid-height are."""
    heights = np.tile(np.linspace(0, 100, 256, dtype=np.float32), (256, 1))  # west 0 m .. east 100 m
    image = write_raster(tmp_path / "img.tif", random_image(256, 256))
    dsm = write_raster(tmp_path / "dsm.tif", heights)
    for mode in ("minmax-scene", "minmax-window"):
        model = LoadedModel(TallIsBuilding(), bands=[1, 2, 3], uses_dsm=True, dsm_norm={"mode": mode})
        predict_raster(image, tmp_path / f"{mode}.tif", dsm=dsm, model=model, window=64, overlap=16)
    import rasterio

    with rasterio.open(tmp_path / "minmax-scene.tif") as ds:
        np.testing.assert_array_equal(ds.read(1), (heights > 50).astype(np.uint8))
    with rasterio.open(tmp_path / "minmax-window.tif") as ds:
        assert (ds.read(1) != (heights > 50)).mean() > 0.2  # each window's own halves


def test_benchmark_tiles_and_chips_take_their_own_scenes_range(tmp_path) -> None:
    import tests.helpers.layout_fixtures as F
    from rsmamba.datasets.benchmark import open_datasets
    from rsmamba.errors import InputError
    from rsmamba.tile import tile_scene
    from rsmamba.train.config import load_config

    root = F.isprs(tmp_path / "v", "vaihingen", size=(24, 24))
    d = load_config("fmtunet_vaihingen", [f"data.root={root}", "data.crop=8", "data.samples_per_epoch=4"])["data"]
    assert d["dsm_mode"] == "minmax-scene"
    train_ds, _ = open_datasets(d, use_dsm=True)
    import rasterio

    import warnings

    for i, pair in enumerate(train_ds.pairs):
        with warnings.catch_warnings():  # the benchmark's tiles carry no georeferencing
            warnings.simplefilter("ignore")
            with rasterio.open(pair.dsm) as ds:
                whole = ds.read(1).astype(np.float32)
        assert train_ds.dsm_ranges[i] == (float(whole.min()), float(whole.max()))
    sample = train_ds[0]["image"][-1]  # a crop's DSM channel: by its tile's range, not its own
    assert float(sample.min()) >= 0 and float(sample.max()) <= 1

    heights = np.tile(np.linspace(20, 60, 64, dtype=np.float32), (64, 1))
    image = write_raster(tmp_path / "img.tif", random_image(64, 64))
    tile_scene(image, tmp_path / "chips", dsm=write_raster(tmp_path / "dsm.tif", heights), size=32,
               split=(1.0, 0.0, 0.0), block=32)
    meta = json.loads((tmp_path / "chips" / "tiling.json").read_text())
    assert meta["dsm_range"] == [20.0, 60.0]
    from rsmamba.datasets.chips import read_tiling

    info = read_tiling(tmp_path / "chips")
    assert info.normalization("minmax-scene")["dsm"] | {} == {"mode": "minmax-scene", "mean": info.dsm_mean,
                                                              "std": info.dsm_std, "minimum": 20.0, "maximum": 60.0}
    meta.pop("dsm_range")
    (tmp_path / "chips" / "tiling.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="re-run 'rsmamba tile'"):
        read_tiling(tmp_path / "chips").normalization("minmax-scene")


def test_a_benchmark_dsm_tile_declaring_nodata_or_a_scale_reads_heights(tmp_path) -> None:
    """The crops read the tile unmasked: a declared -9999 entered the network as -1122 after minmax-scene,
    while the tile's range left it out; a tile in decimetres (GDAL scale 0.1) trained in raw units."""
    import warnings

    import rasterio

    import tests.helpers.layout_fixtures as F
    from rsmamba.datasets.benchmark import open_datasets
    from rsmamba.train.config import load_config

    root = F.isprs(tmp_path / "v", "vaihingen", size=(24, 24))
    d = load_config("fmtunet_vaihingen", [f"data.root={root}", "data.crop=24", "data.samples_per_epoch=1"])["data"]
    metres, _ = open_datasets(d, use_dsm=True)
    with warnings.catch_warnings():  # the benchmark's tiles carry no georeferencing
        warnings.simplefilter("ignore")
        for pair in metres.pairs:
            with rasterio.open(pair.dsm) as ds:
                heights, profile = ds.read(1), ds.profile
            heights[5:8, 5:8] = -9999
            with rasterio.open(pair.dsm, "w", **{**profile, "dtype": "float32", "nodata": -9999}) as ds:
                ds.write(np.where(heights == -9999, -9999, heights * 10).astype(np.float32), 1)
                ds.scales = [0.1]
    voided, _ = open_datasets(d, use_dsm=True)
    for before, after in zip(metres.dsm_ranges, voided.dsm_ranges):
        np.testing.assert_allclose(after, before, rtol=1e-5)  # in metres, the void left out
    dsm = voided[0]["image"][-1]
    assert float(dsm.min()) >= 0 and float(dsm.max()) <= 1 and (dsm[5:8, 5:8] == 0).all()  # no data: 0, not -1122
