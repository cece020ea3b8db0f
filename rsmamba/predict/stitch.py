"""The row-band accumulator: bounded memory whatever the scene height.

Windows arrive grid row by grid row, top to bottom. A grid row starting at ``r`` covers rows
``[r, r + window)``; once the next grid row starts at ``r'``, no later window touches rows
``< r'``, so they are final. The accumulator therefore only ever holds ``window`` rows of
weight-summed class probabilities (float32, C x window x W) plus the weight sum and a validity
mask. Wide rasters are processed in column strips (:func:`column_strips`), each with its own
band over the strip plus the windows reaching into it, so memory depends on neither the raster
height nor its width: only on window size, strip width and class count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window


@dataclass(frozen=True)
class Strip:
    """Output columns ``[x0, x1)`` and the window column offsets whose windows reach into them."""

    index: int
    x0: int
    x1: int
    col_offsets: tuple[int, ...]
    window_width: int

    @property
    def left(self) -> int:  # first accumulator column
        return self.col_offsets[0]

    @property
    def right(self) -> int:  # one past the last accumulator column
        return self.col_offsets[-1] + self.window_width


def column_strips(grid_col_offsets: list[int], window_width: int, width: int, strip_width: int) -> list[Strip]:
    """Split the output columns into strips; each keeps every grid window that overlaps it.

    A window crossing a strip border is computed for both strips (the cost of flat memory); the
    blend of every pixel is unchanged because each strip sees all windows covering its pixels.
    """
    strips, x0 = [], 0
    while x0 < width:
        x1 = min(width, x0 + strip_width)
        cols = tuple(c for c in grid_col_offsets if c < x1 and c + window_width > x0)
        strips.append(Strip(len(strips), x0, x1, cols, window_width))
        x0 = x1
    return strips


@dataclass
class FinishedRows:
    """Rows ``[row, row + probs.shape[1])`` of columns ``[col, col + probs.shape[2])``, final."""

    row: int
    col: int
    probs: np.ndarray  # (C, n, W) float32, weight-normalised; 0 where nothing contributed
    valid: np.ndarray  # (n, W) bool: input valid and at least one window with weight > 0


class RowBandStitcher:
    """Accumulates weighted window probabilities for a band of rows; hands out finished rows.

    ``overwrite=True`` is the "no blending" mode: a later window replaces earlier values where
    its weight is positive instead of being averaged with them.
    """

    def __init__(self, width: int, height: int, num_classes: int, band_height: int, *, overwrite: bool = False,
                 col_off: int = 0, out_cols: tuple[int, int] | None = None):
        """``width`` columns starting at raster column ``col_off``; emits raster columns ``out_cols``."""
        self.width, self.height, self.num_classes = width, height, num_classes
        self.col_off = col_off
        lo, hi = out_cols if out_cols is not None else (col_off, col_off + width)
        self.out = slice(lo - col_off, hi - col_off)
        self.band_height = min(band_height, height)
        self.overwrite = overwrite
        self.base = 0  # raster row held at accumulator row 0
        self.acc = np.zeros((num_classes, self.band_height, width), dtype=np.float32)
        self.wsum = np.zeros((self.band_height, width), dtype=np.float32)
        self.valid = np.zeros((self.band_height, width), dtype=bool)

    @property
    def nbytes(self) -> int:
        return self.acc.nbytes + self.wsum.nbytes + self.valid.nbytes

    def start_at(self, row: int) -> None:
        """Begin accumulating at raster row ``row`` without emitting anything (used by resume)."""
        self.base = row
        self.acc[:] = 0
        self.wsum[:] = 0
        self.valid[:] = False

    def add(self, window: Window, probs: np.ndarray, weights: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add one window's (C, h, w) probabilities with (h, w) weights and (h, w) validity."""
        r0 = int(window.row_off) - self.base
        c0 = int(window.col_off) - self.col_off
        h, w = probs.shape[1:]
        if r0 < 0 or r0 + h > self.band_height:
            raise ValueError(f"window rows {window.row_off}..{window.row_off + h} outside the band "
                             f"{self.base}..{self.base + self.band_height}; windows must come row by row")
        acc = self.acc[:, r0:r0 + h, c0:c0 + w]
        wsum = self.wsum[r0:r0 + h, c0:c0 + w]
        if self.overwrite:
            mask = weights > 0
            acc[:, mask] = probs[:, mask]
            wsum[mask] = 1.0
        else:
            np.multiply(probs, weights, out=probs)  # in place: the caller's array is not reused
            acc += probs
            wsum += weights
        if valid is not None:
            self.valid[r0:r0 + h, c0:c0 + w] |= valid
        else:
            self.valid[r0:r0 + h, c0:c0 + w] = True

    def advance(self, row: int) -> FinishedRows | None:
        """Rows before ``row`` are final: return them normalised and shift the band down."""
        n = min(row, self.base + self.band_height) - self.base
        if n <= 0:
            return None
        out = self._finish(n)
        keep = self.band_height - n
        if keep > 0:
            self.acc[:, :keep] = self.acc[:, n:]
            self.wsum[:keep] = self.wsum[n:]
            self.valid[:keep] = self.valid[n:]
        self.acc[:, keep:] = 0
        self.wsum[keep:] = 0
        self.valid[keep:] = False
        self.base = row
        return out

    def finish(self) -> FinishedRows | None:
        """All remaining rows (call once every window has been added)."""
        n = min(self.height - self.base, self.band_height)
        if n <= 0:
            return None
        out = self._finish(n)
        self.base += n
        return out

    def _finish(self, n: int) -> FinishedRows:
        acc, wsum = self.acc[:, :n, self.out], self.wsum[:n, self.out]
        covered = wsum > 0
        probs = np.divide(acc, wsum, out=np.zeros_like(acc), where=covered)
        return FinishedRows(self.base, self.out.start + self.col_off, probs, self.valid[:n, self.out] & covered)
