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


def sample_windows(width: int, height: int, max_pixels: int, window: int = 256,
                   min_per_axis: int = 1) -> list[Window]:
    """A regular lattice of windows holding about ``max_pixels`` pixels, or the whole raster.

    ``min_per_axis``: at least this many windows along each axis, made smaller to keep the budget
    (down to 16 px). Input checks ask for :data:`CHECK_PER_AXIS`: four windows of 256 px would sit in
    the four corners, and a fill value or a DSM void in the middle of a scene would go unseen.
    """
    if width * height <= max_pixels:
        return [Window(0, 0, width, height)]
    per_axis = max(1, min_per_axis, int(np.sqrt(max_pixels / (window * window))))
    size = max(16, min(window, int(np.sqrt(max_pixels) / per_axis)))
    w, h = min(size, width), min(size, height)
    cols = np.unique(np.linspace(0, width - w, per_axis).astype(int))
    rows = np.unique(np.linspace(0, height - h, per_axis).astype(int))
    return [Window(int(c), int(r), w, h) for r in rows for c in cols]


CHECK_PER_AXIS = 8  # windows along each axis for the input checks (sample_windows)


def area_sample_windows(width: int, height: int, max_pixels: int, per_axis: int = 16) -> list[Window]:
    """Windows at the centres of a ``per_axis`` x ``per_axis`` grid of equal cells: each stands for the same
    area, so shares read from them estimate the raster's (:func:`sample_windows` reaches both edges, which the
    checks want, and over-weights them: a DSM covering 45.0 % of a scene read as 47.1 %, one covering 47.0 % as
    50 %). About ``max_pixels`` pixels; the whole raster when it is smaller."""
    if width * height <= max_pixels:
        return [Window(0, 0, width, height)]
    size = max(16, int(np.sqrt(max_pixels) / per_axis))
    w, h = min(size, width), min(size, height)

    def starts(extent: int, side: int) -> np.ndarray:
        centres = (np.arange(per_axis) + 0.5) * extent / per_axis
        return np.unique(np.clip(np.round(centres - side / 2), 0, extent - side).astype(int))

    return [Window(int(c), int(r), w, h) for r in starts(height, h) for c in starts(width, w)]


def window_extent(window: Window, transform) -> tuple[float, float, float, float]:
    """(min x, min y, max x, max y) of a window's footprint on the ground, from its four corners.

    ``rasterio.windows.bounds`` gives corners (0, h) and (w, 0) as (left, bottom, right, top): on a
    south-up or mirrored grid min > max, and on a rotated or sheared one the box misses the corners
    (a manifest's chip box 11 m short, label polygons near a chip's corner never burnt)."""
    c0, r0 = window.col_off, window.row_off
    c1, r1 = c0 + window.width, r0 + window.height
    xs, ys = zip(*(transform * (c, r) for c, r in ((c0, r0), (c1, r0), (c0, r1), (c1, r1))))
    return min(xs), min(ys), max(xs), max(ys)


def raster_extent(width: int, height: int, transform) -> tuple[float, float, float, float]:
    """(min x, min y, max x, max y) of a whole raster's footprint (:func:`window_extent`); a dataset's
    ``.bounds`` is two corners, wrong on rotated, south-up and mirrored grids."""
    return window_extent(Window(0, 0, width, height), transform)


def footprint(width: int, height: int, transform, steps: int = 8) -> list[tuple[float, float]]:
    """The outline of a raster (its four edges, ``steps`` points each) in its CRS: for coverage and
    overlap, exact on rotated grids and bendable into another CRS."""
    edge = np.linspace(0.0, 1.0, steps, endpoint=False)
    cols = np.concatenate([edge * width, np.full(steps, width), (1 - edge) * width, np.zeros(steps)])
    rows = np.concatenate([np.zeros(steps), edge * height, np.full(steps, height), (1 - edge) * height])
    return [transform * (float(c), float(r)) for c, r in zip(cols, rows)]


PASSES_SAID = 16  # windows over each pixel above which predict, change and tile say what the overlap costs


def passes_per_pixel(size: int, overlap: int) -> float:
    """About how many windows of ``size`` px at ``overlap`` cover each pixel: (size / stride) squared."""
    return (size / (size - overlap)) ** 2


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


def block_spans(length: int, size: int) -> list[tuple[int, int]]:
    """Non-overlapping [start, stop) spans along one axis, from the shared WindowGrid offsets.

    WindowGrid shifts its last window back to end on the raster edge; here that window is
    clipped to start where the previous one stopped, so every pixel is in exactly one block.
    """
    grid = WindowGrid(width=length, height=1, size=size)
    spans: list[tuple[int, int]] = []
    stop = 0
    for offset in grid.col_offsets:
        start = max(offset, stop)
        stop = min(offset + size, length)
        if stop > start:
            spans.append((start, stop))
    return spans


def block_windows(width: int, height: int, size: int) -> Iterator[Window]:
    """The :func:`block_spans` blocks of a ``height`` x ``width`` raster, row by row: each pixel in one block."""
    cols = block_spans(width, size)
    for r0, r1 in block_spans(height, size):
        for c0, c1 in cols:
            yield Window(c0, r0, c1 - c0, r1 - r0)
