"""Row bands are reused once the writer is done with them, and never while it still holds them."""

from __future__ import annotations

import numpy as np
import torch

from rsmamba.engine.blend import window_weights
from rsmamba.engine.stitch import RowStitcher
from rsmamba.raster.windows import WindowGrid


def run(grid: WindowGrid, classes: int, hold: bool) -> tuple[np.ndarray, set[int]]:
    """Stream ``grid`` through a stitcher; ``hold`` keeps every finished block alive to the end (as
    a slow writer would). Returns the blended probabilities and the band buffers used."""
    stitcher = RowStitcher(grid.width, grid.height, classes, grid.window_height)
    out = np.zeros((classes, grid.height, grid.width), np.float32)
    held, buffers, current = [], set(), None

    def take(rows) -> None:
        if rows is not None:
            out[:, rows.row:rows.row + rows.height] = rows.probs  # a copy: the band may be reused after
            if hold:
                held.append((rows, rows.probs))

    for w in grid:
        if w.row_off != current:
            if current is not None:
                take(stitcher.advance(int(w.row_off)))
            current = int(w.row_off)
        buffers.add(stitcher.acc.data_ptr())
        seed = int(w.col_off) * 7919 + int(w.row_off)
        p = torch.from_numpy(np.random.default_rng(seed).random((1, classes, w.height, w.width), dtype=np.float32))
        wt = torch.from_numpy(window_weights(w, grid.width, grid.height, "hann")[None])
        stitcher.add_batch([w], p, wt)
    take(stitcher.finish())
    for rows, copy in held:  # blocks held while later rows were blended are unchanged
        np.testing.assert_array_equal(rows.probs, copy)
    return out, buffers


def test_bands_are_reused_only_when_released() -> None:
    grid = WindowGrid(300, 900, 64, 16)
    released, reused = run(grid, 4, hold=False)
    held, fresh = run(grid, 4, hold=True)
    np.testing.assert_array_equal(released, held)  # reuse changes no value
    assert len(fresh) == len(grid.row_offsets)  # every grid row had its own band
    assert len(reused) < len(fresh) // 2  # released bands were taken again
