"""Overviews of the outputs (rsmamba.engine.overviews): GDAL's mode and average rules, computed in NumPy."""

from __future__ import annotations

import itertools
import shutil

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling

from rsmamba.engine.overviews import build_overviews, mean_2x2, mode_2x2, overview_path

NODATA = 255


def reference_mode(block: list[int], nodata: int = NODATA) -> int:
    """The rule, written plainly: most votes (nodata does not vote); a tie goes to the value whose
    last occurrence in row-major order comes first; nothing voting gives nodata."""
    best, best_key = nodata, None
    for v in set(block) - {nodata}:
        key = (block.count(v), -max(i for i, x in enumerate(block) if x == v))
        if best_key is None or key > best_key:
            best, best_key = v, key
    return best


@pytest.mark.parametrize("values", [[0, 1, 2, NODATA], [0, 14, 7, NODATA], [0, 20, 200, NODATA]],
                         ids=["table", "table-edge", "labels-above-14"])
def test_mode_2x2_every_block_of_three_values_and_nodata(values):
    """Labels 0..14 go through the 16-bit table, others through the comparisons: both are the rule."""
    blocks = list(itertools.product(values, repeat=4))
    a = np.zeros((2, 2 * len(blocks)), np.uint8)
    for i, b in enumerate(blocks):
        a[:, 2 * i:2 * i + 2] = np.array(b, np.uint8).reshape(2, 2)
    got = mode_2x2(a, NODATA)[0]
    assert got.tolist() == [reference_mode(list(b)) for b in blocks]


def test_odd_edges_are_partial_blocks():
    a = np.array([[1, 2, 3], [1, 4, 3], [5, 5, 6]], np.uint8)
    # blocks: [[1,2],[1,4]] -> 1; [[3,pad],[3,pad]] -> 3; [[5,5],pad] -> 5; [[6,pad],pad] -> 6
    assert mode_2x2(a, NODATA).tolist() == [[1, 3], [5, 6]]


def _write(path, a):
    a = a if a.ndim == 3 else a[None]
    profile = {"driver": "GTiff", "width": a.shape[2], "height": a.shape[1], "count": a.shape[0], "dtype": "uint8",
               "nodata": NODATA, "tiled": True, "blockxsize": 256, "blockysize": 256,
               "crs": "EPSG:32632", "transform": rasterio.Affine(0.5, 0, 500000, 0, -0.5, 5000000)}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(a)


def _equal_gdal(tmp_path, a, method: str, resampling: Resampling) -> None:
    """Our levels of ``a`` by ``method`` equal GDAL's ``resampling`` overviews, level by level."""
    ours, gdal = tmp_path / "ours.tif", tmp_path / "gdal.tif"
    _write(ours, a)
    shutil.copy(ours, gdal)
    factors = [2, 4, 8]
    build_overviews(ours, factors, NODATA, method)
    with rasterio.open(gdal, "r+") as dst:
        dst.build_overviews(factors, resampling)
    for level in range(len(factors)):
        assert overview_path(ours, level + 1).is_file()  # external levels, chained: X.ovr, X.ovr.ovr, ...
        with rasterio.open(ours, OVERVIEW_LEVEL=level) as x, rasterio.open(gdal, OVERVIEW_LEVEL=level) as y:
            assert x.shape == y.shape
            np.testing.assert_array_equal(x.read(), y.read())
    with rasterio.open(ours) as src:
        assert src.overviews(1) == factors
        assert src.tags(ns="rio_overview")["resampling"] == method


def test_overviews_equal_gdal_mode_on_even_rasters(tmp_path):
    rng = np.random.default_rng(3)
    # Few classes and patches: ties, runs and nodata everywhere; 1536 rows span two row blocks.
    a = rng.integers(0, 3, (1536, 512)).astype(np.uint8)
    a[rng.random(a.shape) < 0.15] = NODATA
    a[:200, :200] = 1
    _equal_gdal(tmp_path, a, "mode", Resampling.mode)


def test_odd_raster_levels_cascade_by_partial_blocks(tmp_path):
    rng = np.random.default_rng(5)
    a = rng.integers(0, 4, (301, 259)).astype(np.uint8)
    path = tmp_path / "odd.tif"
    _write(path, a)
    build_overviews(path, [2, 4], NODATA, "mode")
    expect = mode_2x2(a, NODATA)
    with rasterio.open(path, OVERVIEW_LEVEL=0) as level0, rasterio.open(path, OVERVIEW_LEVEL=1) as level1:
        np.testing.assert_array_equal(level0.read(1), expect)
        np.testing.assert_array_equal(level1.read(1), mode_2x2(expect, NODATA))


def test_factors_must_be_successive_powers_of_two(tmp_path):
    path = tmp_path / "x.tif"
    _write(path, np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="2, 4, 8"):
        build_overviews(path, [2, 8], NODATA)


def test_mean_2x2_rounds_half_up_and_skips_nodata():
    a = np.array([[1, 2, 0, NODATA, NODATA, NODATA],
                  [3, 4, 1, NODATA, NODATA, 7]], np.uint8)
    # (1+2+3+4)/4 = 2.5 -> 3; (0+1)/2 = 0.5 -> 1; all nodata -> nodata; one voter -> itself
    assert mean_2x2(a, NODATA).tolist() == [[3, 1, 7]]
    assert mean_2x2(np.array([[NODATA, NODATA], [NODATA, NODATA]], np.uint8), NODATA).tolist() == [[NODATA]]
    assert mean_2x2(np.array([[10, 11, 12]], np.uint8), NODATA).tolist() == [[11, 12]]  # odd edges: partial blocks


def test_average_overviews_equal_gdal_on_even_rasters(tmp_path):
    rng = np.random.default_rng(4)
    a = rng.integers(0, 255, (3, 1536, 512)).astype(np.uint8)  # probabilities: 0-254, 255 nodata
    a[:, rng.random(a.shape[1:]) < 0.2] = NODATA
    _equal_gdal(tmp_path, a, "average", Resampling.average)


def test_row_blocks_bound_memory_and_keep_the_cascade(tmp_path, monkeypatch):
    """Blocks of a few rows (as on a very wide raster) give the same levels as one block."""
    import rsmamba.engine.overviews as ov

    assert ov.block_rows(100_000, 6) == 110 and ov.block_rows(7, 1) == ov.ROWS_PER_BLOCK
    assert ov.block_rows(10**9, 3) == 2
    rng = np.random.default_rng(8)
    a = rng.integers(0, 5, (2, 203, 131)).astype(np.uint8)
    whole, small = tmp_path / "whole.tif", tmp_path / "small.tif"
    _write(whole, a)
    _write(small, a)
    build_overviews(whole, [2, 4], NODATA, "average")
    monkeypatch.setattr(ov, "BLOCK_BYTES", 131 * 2 * 6)  # 6 rows at a time
    build_overviews(small, [2, 4], NODATA, "average")
    for level in (0, 1):
        with rasterio.open(whole, OVERVIEW_LEVEL=level) as x, rasterio.open(small, OVERVIEW_LEVEL=level) as y:
            np.testing.assert_array_equal(x.read(), y.read())
