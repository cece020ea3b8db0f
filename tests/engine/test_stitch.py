"""The streamed row-buffer stitcher equals a whole-image accumulation, for any grid."""

from __future__ import annotations

import numpy as np
from rasterio.windows import Window
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsmamba.engine.blend import BLEND_MODES, window_weights
from rsmamba.engine.stitch import RowStitcher
from rsmamba.raster.windows import WindowGrid


def window_probs(window, classes: int) -> np.ndarray:
    """Deterministic pseudo-probabilities per window (different windows disagree, as real ones do)."""
    seed = int(window.col_off) * 100_003 + int(window.row_off)
    p = np.random.default_rng(seed).random((classes, int(window.height), int(window.width)), dtype=np.float32)
    return p / p.sum(axis=0, keepdims=True)


def whole_image_reference(grid: WindowGrid, classes: int, mode: str, crop: int) -> tuple[np.ndarray, np.ndarray]:
    acc = np.zeros((classes, grid.height, grid.width), np.float64)
    wsum = np.zeros((grid.height, grid.width), np.float64)
    for w in grid:
        sl = (slice(w.row_off, w.row_off + w.height), slice(w.col_off, w.col_off + w.width))
        p, wt = window_probs(w, classes), window_weights(w, grid.width, grid.height, mode, crop)
        if mode == "none":
            mask = wt > 0
            acc[(slice(None), *sl)][:, mask] = p[:, mask]
            wsum[sl][mask] = 1.0
        else:
            acc[(slice(None), *sl)] += p * wt
            wsum[sl] += wt
    return acc / np.where(wsum > 0, wsum, 1), wsum > 0


def streamed(grid: WindowGrid, classes: int, mode: str, crop: int) -> tuple[np.ndarray, np.ndarray, int]:
    stitcher = RowStitcher(grid.width, grid.height, classes, grid.window_height, overwrite=mode == "none")
    parts, valids, rows_seen = [], [], 0
    for row, windows in grid.rows():
        done = stitcher.advance(row)
        if done is not None:
            assert done.row == rows_seen  # rows come out in order, none skipped or repeated
            rows_seen += done.probs.shape[1]
            parts.append(done.probs)
            valids.append(done.valid)
        for w in windows:
            stitcher.add(w, window_probs(w, classes), window_weights(w, grid.width, grid.height, mode, crop))
    done = stitcher.finish()
    parts.append(done.probs)
    valids.append(done.valid)
    rows_seen += done.probs.shape[1]
    return np.concatenate(parts, axis=1), np.concatenate(valids), rows_seen


@settings(max_examples=40, deadline=None)
@given(
    width=st.integers(1, 90), height=st.integers(1, 90), size=st.integers(4, 40),
    overlap_frac=st.floats(0, 0.9), mode=st.sampled_from(BLEND_MODES), use_crop=st.booleans(),
    classes=st.integers(1, 4),
)
def test_streamed_equals_whole_image(width, height, size, overlap_frac, mode, use_crop, classes) -> None:
    overlap = min(size - 1, int(size * overlap_frac))
    crop = overlap // 2 if use_crop else 0
    grid = WindowGrid(width, height, size, overlap)
    ref, ref_valid = whole_image_reference(grid, classes, mode, crop)
    got, valid, rows = streamed(grid, classes, mode, crop)
    assert rows == height
    assert got.shape == (classes, height, width)
    assert valid.all() and ref_valid.all()  # every pixel keeps a positive weight, crop included
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_stitcher_memory_is_one_window_band() -> None:
    stitcher = RowStitcher(20_000, 1_000_000, 6, 512)
    assert stitcher.acc.shape == (6, 512, 20_000)  # independent of the raster height


def test_windows_out_of_order_are_refused() -> None:
    grid = WindowGrid(50, 50, 20, 5)
    stitcher = RowStitcher(50, 50, 2, 20)
    stitcher.advance(30)
    w = next(iter(grid))  # row 0: already flushed
    with pytest.raises(ValueError, match="row by row"):
        stitcher.add(w, window_probs(w, 2), np.ones((20, 20), np.float32))


@pytest.mark.parametrize("mode", ["hann", "gaussian", "spline"])
def test_weights_fall_towards_inner_borders_and_stay_flat_on_raster_edges(mode) -> None:
    from rasterio.windows import Window

    inner = window_weights(Window(10, 10, 32, 32), 100, 100, mode)
    assert inner[16, 16] > 0.9 and inner[16, 0] < 0.2 and inner.min() > 0
    corner = window_weights(Window(0, 0, 32, 32), 100, 100, mode)
    assert corner[0, 0] == pytest.approx(corner[16, 16])  # no other window can cover the raster corner
    assert corner[31, 31] < 0.2
    cropped = window_weights(Window(10, 10, 32, 32), 100, 100, mode, crop=4)
    assert (cropped[:4] == 0).all() and (cropped[:, -4:] == 0).all() and cropped[16, 16] > 0.9


@settings(max_examples=30, deadline=None)
@given(
    width=st.integers(1, 120), height=st.integers(1, 60), size=st.integers(4, 40), overlap_frac=st.floats(0, 0.9),
    strip_width=st.integers(1, 50), mode=st.sampled_from(["hann", "none"]),
)
def test_column_strips_give_the_same_blend(width, height, size, overlap_frac, strip_width, mode) -> None:
    """Strips recompute the windows crossing their borders; every pixel still gets every window."""
    from rsmamba.engine.stitch import column_strips

    overlap = min(size - 1, int(size * overlap_frac))
    grid = WindowGrid(width, height, size, overlap)
    ref, _ = whole_image_reference(grid, 2, mode, 0)
    got = np.full_like(ref, np.nan)
    strips = column_strips(grid.col_offsets, grid.window_width, width, strip_width)
    assert strips[0].x0 == 0 and strips[-1].x1 == width
    for strip in strips:
        stitcher = RowStitcher(strip.right - strip.left, height, 2, grid.window_height, overwrite=mode == "none",
                                   col_off=strip.left, out_cols=(strip.x0, strip.x1))
        parts = []
        for row in grid.row_offsets:
            parts.append(stitcher.advance(row))
            for c in strip.col_offsets:
                w = Window(c, row, grid.window_width, grid.window_height)
                stitcher.add(w, window_probs(w, 2), window_weights(w, width, height, mode))
        parts.append(stitcher.finish())
        for part in filter(None, parts):
            assert part.col == strip.x0 and part.probs.shape[2] == strip.x1 - strip.x0
            got[:, part.row:part.row + part.probs.shape[1], strip.x0:strip.x1] = part.probs
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("width,window,strips,windows", [(5000, 5000, 1, 1), (12000, 5000, 3, 5), (9000, 512, 3, 26)])
def test_a_window_wider_than_the_strips_is_computed_once_per_strip_not_split(width, window, strips, windows) -> None:
    """A 5000 px window over 4096 px strips ran (and was counted) twice for one window of work."""
    from rsmamba.engine.run import plan_strips

    grid = WindowGrid(width, 600, window, 128)
    planned = plan_strips(grid, width, 4096)
    assert len(planned) == strips and planned[-1].x1 == width
    assert all(s.x1 - s.x0 >= min(window, width) or s is planned[-1] for s in planned)
    assert sum(len(s.col_offsets) for s in planned) == windows
