"""Window grid properties: full coverage, inside the raster, minimal count for the stride."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsmamba.errors import InputError
from rsmamba.raster.windows import WindowGrid, axis_offsets


@settings(max_examples=200, deadline=None)
@given(
    width=st.integers(1, 500),
    height=st.integers(1, 500),
    size=st.integers(8, 300),
    overlap_frac=st.floats(0, 0.95),
)
def test_grid_covers_every_pixel_inside_and_minimal(width: int, height: int, size: int, overlap_frac: float) -> None:
    overlap = min(int(size * overlap_frac), size - 1)
    grid = WindowGrid(width, height, size, overlap)
    hits = np.zeros((height, width), dtype=np.int32)
    for w in grid:
        assert w.col_off >= 0 and w.row_off >= 0
        assert w.col_off + w.width <= width and w.row_off + w.height <= height
        hits[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width] += 1
    assert hits.min() >= 1
    stride = size - overlap
    for length, offsets in ((width, grid.col_offsets), (height, grid.row_offsets)):
        # any covering of `length` by windows of `size` stepping at most `stride` needs this many
        minimal = 1 if length <= size else math.ceil((length - size) / stride) + 1
        assert len(offsets) == minimal
        assert all(b - a <= stride for a, b in zip(offsets, offsets[1:]))
    assert len(grid) == len(list(grid))


def test_edge_window_is_shifted_back_not_dropped() -> None:
    assert axis_offsets(600, 512, 256) == [0, 88]
    assert axis_offsets(1000, 256, 256) == [0, 256, 512, 744]


@pytest.mark.parametrize("args", [(0, 10, 4, 0), (10, 10, 0, 0), (10, 10, 4, 4), (10, 10, 4, -1)])
def test_bad_grids_are_input_errors(args) -> None:
    with pytest.raises(InputError):
        WindowGrid(*args)


def test_check_samples_spread_over_the_raster_within_the_budget() -> None:
    from rsmamba.raster.windows import CHECK_PER_AXIS, sample_windows

    wins = sample_windows(20000, 12000, 1 << 18, min_per_axis=CHECK_PER_AXIS)
    assert len(wins) == CHECK_PER_AXIS**2 and sum(w.width * w.height for w in wins) <= 1 << 18
    starts = sorted({w.col_off for w in wins})
    assert starts[0] == 0 and starts[-1] + wins[0].width == 20000 and len(starts) == CHECK_PER_AXIS
    assert max(b - a for a, b in zip(starts, starts[1:])) < 20000 / (CHECK_PER_AXIS - 2)  # interior too
    assert sample_windows(20000, 12000, 1 << 18) == sample_windows(20000, 12000, 1 << 18, 256)  # stats: as before
    assert len(sample_windows(300, 20000, 1 << 18, min_per_axis=CHECK_PER_AXIS)) == CHECK_PER_AXIS**2
