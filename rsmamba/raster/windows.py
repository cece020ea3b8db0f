"""The window grid shared by tiling, prediction and vectorizing.

Windows step by ``size - overlap``; the last window on each axis is shifted back so it ends
exactly on the raster edge. No row or column is ever dropped, no window reaches outside the
raster, and the count per axis is the minimum that covers it with that stride.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from rsmamba.errors import InputError


def sample_windows(width: int, height: int, max_pixels: int, window: int = 256) -> list[Window]:
    """A regular lattice of windows holding about ``max_pixels`` pixels, or the whole raster."""
    if width * height <= max_pixels:
        return [Window(0, 0, width, height)]
    per_axis = max(1, int(np.sqrt(max_pixels / (window * window))))
    cols = np.linspace(0, max(0, width - window), per_axis).astype(int)
    rows = np.linspace(0, max(0, height - window), per_axis).astype(int)
    return [Window(int(c), int(r), min(window, width), min(window, height)) for r in rows for c in cols]


def axis_offsets(length: int, size: int, stride: int) -> list[int]:
    """Start offsets along one axis of ``length`` pixels for windows of ``size`` and ``stride``.

    A raster shorter than ``size`` gets one window of its own length at offset 0.
    """
    if length <= 0:
        raise InputError(f"raster axis has {length} pixels")
    if size <= 0 or stride <= 0:
        raise InputError(f"window size ({size}) and stride ({stride}) must be positive")
    if length <= size:
        return [0]
    count = math.ceil((length - size) / stride) + 1
    offsets = [i * stride for i in range(count - 1)]
    offsets.append(length - size)
    return offsets


@dataclass(frozen=True)
class WindowGrid:
    """Overlapping windows over a ``height`` x ``width`` raster, in row-major order."""

    width: int
    height: int
    size: int
    overlap: int = 0

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise InputError(f"raster is empty ({self.width} x {self.height} pixels)")
        if self.size <= 0:
            raise InputError(f"window size must be positive, got {self.size}")
        if not 0 <= self.overlap < self.size:
            raise InputError(f"overlap must be in [0, size), got overlap={self.overlap} for size={self.size}")

    @property
    def stride(self) -> int:
        return self.size - self.overlap

    @property
    def row_offsets(self) -> list[int]:
        return axis_offsets(self.height, self.size, self.stride)

    @property
    def col_offsets(self) -> list[int]:
        return axis_offsets(self.width, self.size, self.stride)

    @property
    def window_height(self) -> int:
        return min(self.size, self.height)

    @property
    def window_width(self) -> int:
        return min(self.size, self.width)

    @property
    def shape(self) -> tuple[int, int]:
        """Windows per column and per row: (n_rows, n_cols)."""
        return len(self.row_offsets), len(self.col_offsets)

    def __len__(self) -> int:
        rows, cols = self.shape
        return rows * cols

    def __iter__(self) -> Iterator[Window]:
        for row in self.row_offsets:
            for col in self.col_offsets:
                yield Window(col, row, self.window_width, self.window_height)

    def rows(self) -> Iterator[tuple[int, list[Window]]]:
        """Windows grouped by row offset, top to bottom (what a streaming stitcher consumes)."""
        cols = self.col_offsets
        for row in self.row_offsets:
            yield row, [Window(col, row, self.window_width, self.window_height) for col in cols]
