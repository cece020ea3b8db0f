"""The COG that ``finalize`` writes: TIFF tags other readers trust, and the ``--co`` options honoured
(rsmamba.engine.writer)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rio_cogeo.cogeo import cog_validate

from rsmamba.engine.writer import (NODATA, OutputLayer, create_scratch, creation_options, finalize,
                                  overview_factors, scratch_profile)

PHOTOMETRIC, PREDICTOR, EXTRA_SAMPLES, COMPRESSION = 262, 317, 338, 259
MINISBLACK, RGB, PALETTE = 1, 2, 3
DEFLATE_CODES, LZW = (8, 32946), 5


def tiff_directories(path: Path) -> list[dict[int, tuple[int, ...]]]:
    """Every IFD's SHORT and LONG tags as read straight from the file (classic TIFF and BigTIFF):
    what a reader that does not know GDAL's metadata sees."""
    data = path.read_bytes()
    order = "<" if data[:2] == b"II" else ">"
    big = struct.unpack(order + "H", data[2:4])[0] == 43
    head, entry, count_fmt, offset_fmt = (16, 20, "Q", "Q") if big else (8, 12, "H", "I")
    offset = struct.unpack(order + offset_fmt, data[8:16] if big else data[4:8])[0]
    directories = []
    while offset:
        n_size = struct.calcsize(count_fmt)
        (n,) = struct.unpack(order + count_fmt, data[offset:offset + n_size])
        tags: dict[int, tuple[int, ...]] = {}
        for i in range(n):
            start = offset + n_size + i * entry
            tag, kind = struct.unpack(order + "HH", data[start:start + 4])
            (count,) = struct.unpack(order + ("Q" if big else "I"), data[start + 4:start + (12 if big else 8)])
            value_at = start + (12 if big else 8)
            size = {3: 2, 4: 4, 16: 8}.get(kind)
            if size is None:
                continue
            field = count * size
            if field > (8 if big else 4):
                (value_at,) = struct.unpack(order + offset_fmt, data[value_at:value_at + (8 if big else 4)])
            code = {3: "H", 4: "I", 16: "Q"}[kind]
            tags[tag] = struct.unpack(order + code * count, data[value_at:value_at + field])
        directories.append(tags)
        end = offset + n_size + n * entry
        (offset,) = struct.unpack(order + offset_fmt, data[end:end + (8 if big else 4)])
    return directories


def _layer(tmp_path: Path, count: int, colormap: bool = False, size: int = 700) -> tuple[OutputLayer, np.ndarray]:
    layer = OutputLayer(f"l{count}", tmp_path / f"l{count}.tif", count, render=lambda rows: None,
                        resampling=Resampling.mode,
                        colormap={0: (0, 0, 0, 255), 1: (255, 0, 0, 255)} if colormap else None,
                        descriptions=[f"band{i}" for i in range(count)])
    profile = scratch_profile({"crs": "EPSG:32632", "transform": from_origin(500000, 5000000, 0.5, 0.5),
                               "width": size, "height": size})
    create_scratch([layer], profile)
    values = np.random.default_rng(count).integers(0, 4, (count, size, size), dtype=np.uint8)
    with rasterio.open(layer.scratch, "r+") as dst:
        dst.write(values)
    return layer, values


@pytest.mark.parametrize("count", [3, 4, 6])
def test_several_bands_are_tagged_grey_values_not_rgb_or_alpha(tmp_path, count):
    """GTiff tags 3 or 4 Byte bands RGB (and a 4th alpha) unless told: a semantic change raster read as a
    colour composite, a 4-class probability raster with class 4 as transparency outside GDAL."""
    layer, values = _layer(tmp_path, count)
    out = finalize(layer, co=None)
    assert cog_validate(str(out))[0], cog_validate(str(out))
    directories = tiff_directories(out)
    assert len(directories) >= 2  # the image and its overviews
    for ifd in directories:
        assert ifd[PHOTOMETRIC] == (MINISBLACK,)
        assert all(v == 0 for v in ifd.get(EXTRA_SAMPLES, ())), ifd.get(EXTRA_SAMPLES)  # 0: no meaning, not alpha
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(), values)
        assert ds.descriptions == tuple(f"band{i}" for i in range(count)) and ds.nodata == NODATA
        assert ds.crs == "EPSG:32632" and ds.transform == from_origin(500000, 5000000, 0.5, 0.5)
    assert not layer.scratch.exists()


def test_one_band_keeps_its_colour_table(tmp_path):
    layer, values = _layer(tmp_path, 1, colormap=True)
    out = finalize(layer)
    assert cog_validate(str(out))[0]
    assert tiff_directories(out)[0][PHOTOMETRIC] == (PALETTE,)
    with rasterio.open(out) as ds:
        assert ds.colormap(1)[1] == (255, 0, 0, 255)
        np.testing.assert_array_equal(ds.read(), values)


def test_user_creation_options_reach_the_file(tmp_path):
    """``--co`` takes the COG driver's names; each is applied as the COG driver would."""
    layer, values = _layer(tmp_path, 3, size=1100)
    co = {"BLOCKSIZE": "256", "PREDICTOR": "YES", "OVERVIEW_COUNT": "1", "STATISTICS": "YES",
          "OVERVIEW_COMPRESS": "LZW", "BIGTIFF": "YES"}
    out = finalize(layer, co=co)
    assert cog_validate(str(out))[0], cog_validate(str(out))
    first, *overviews = tiff_directories(out)
    assert first[PREDICTOR] == (2,) and first[COMPRESSION][0] in DEFLATE_CODES
    assert len(overviews) == 1 and overviews[0][COMPRESSION] == (LZW,)
    assert out.read_bytes()[2:4] in (b"+\x00", b"\x00+")  # BigTIFF
    with rasterio.open(out) as ds:
        assert ds.block_shapes[0] == (256, 256) and ds.overviews(1) == [2]
        assert float(ds.tags(1)["STATISTICS_MAXIMUM"]) == values[0].max()
        np.testing.assert_array_equal(ds.read(), values)
    plain_layer, _ = _layer(tmp_path / "plain", 3, size=1100)
    plain = tiff_directories(finalize(plain_layer))
    assert PREDICTOR not in plain[0] or plain[0][PREDICTOR] == (1,)  # our default: no predictor
    assert len(plain) == 1 + len(overview_factors(1100, 1100)) == 4  # without OVERVIEW_COUNT: 2, 4 and 8


def test_level_is_the_codecs_own_level():
    """The COG driver's LEVEL is GTiff's ZLEVEL (deflate), ZSTD_LEVEL or LZMA_PRESET."""
    from rsmamba.engine.writer import cog_as_gtiff

    assert cog_as_gtiff(creation_options("deflate"), 1)[0]["ZLEVEL"] == 5
    assert cog_as_gtiff(creation_options("zstd", {"LEVEL": "9"}), 1)[0]["ZSTD_LEVEL"] == "9"
    assert "ZLEVEL" not in cog_as_gtiff(creation_options("lzw", {"LEVEL": "9"}), 1)[0]



def test_a_raster_one_pixel_wide_is_a_valid_cog(tmp_path):
    """Its overviews were 1 x 2500 (decimation 1 across): rio-cogeo's 'Invalid Decimation 1 for overview level 0'."""
    assert overview_factors(1, 5000) == [] and overview_factors(2, 5000) != []
    layer = OutputLayer("thin", tmp_path / "thin.tif", 1, render=lambda rows: None, resampling=Resampling.mode)
    create_scratch([layer], scratch_profile({"crs": "EPSG:32632", "transform": from_origin(500000, 5000000, 0.5, 0.5),
                                             "width": 1, "height": 3000}))
    out = finalize(layer)
    assert cog_validate(str(out))[0], cog_validate(str(out))
