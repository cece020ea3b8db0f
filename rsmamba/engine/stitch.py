"""The row-buffer accumulator: bounded memory whatever the scene height.

Windows arrive grid row by grid row, top to bottom. A grid row starting at ``r`` covers rows
``[r, r + window)``; once the next grid row starts at ``r'``, no later window touches rows
``< r'``, so they are final. The accumulator therefore only ever holds ``window`` rows of
weight-summed class probabilities (float32, C x window x W) plus the weight sum and a validity
mask. The band is a torch tensor on the model's device, so blending runs where the network
does. Wide rasters are processed in column strips (:func:`column_strips`), each with its own
band over the strip plus the windows reaching into it, so memory depends on neither the raster
height nor its width: only on window size, strip width and class count.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import torch
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
    """Rows ``[row, row + n)`` of columns ``[col, col + W)``, final, still on the model's device.

    ``acc`` holds weight-summed class probabilities and ``wsum`` the summed weights, not yet
    divided: the class raster is ``argmax(acc)`` (dividing every class by the same positive
    weight cannot change it), so only layers that need probabilities pay for the division.
    """

    row: int
    col: int
    acc: torch.Tensor  # (C, n, W) float32, weight-summed probabilities
    wsum: torch.Tensor  # (n, W) float32
    valid: torch.Tensor  # (n, W) bool: input valid and at least one window with weight > 0

    @property
    def height(self) -> int:
        return int(self.acc.shape[1])

    @property
    def width(self) -> int:
        return int(self.acc.shape[2])

    def normalized(self) -> torch.Tensor:
        """(C, n, W) weight-normalised probabilities; 0 where nothing contributed."""
        return torch.where(self.wsum > 0, self.acc / torch.where(self.wsum > 0, self.wsum, 1.0), 0.0)

    @property
    def probs(self) -> np.ndarray:
        """:meth:`normalized` as a NumPy array on the host."""
        return self.normalized().cpu().numpy()

    def rows(self, start: int, stop: int) -> FinishedRows:
        """Rows ``[start, stop)`` of this block (offsets relative to ``row``), as views."""
        return FinishedRows(self.row + start, self.col, self.acc[:, start:stop], self.wsum[start:stop],
                            self.valid[start:stop])


def _as_tensor(a: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    return a.to(device) if isinstance(a, torch.Tensor) else torch.as_tensor(a, device=device)


def host_view(t: torch.Tensor) -> np.ndarray | torch.Tensor:
    """A CPU tensor as a NumPy view of the same memory; any other tensor as itself.

    The blending is a few elementwise passes per window. On a CPU, NumPy runs them on the calling
    pipeline thread, while torch would fan each one out to its intra-op pool: with the cores
    shared (the model's forward, the reader and the writer threads, other processes) those pool
    barriers made the same additions up to 40x slower. The two share the operator syntax used
    here (slices, ``+=``, ``*=``, ``|=``, boolean masks), so one code path serves both.
    """
    return t.numpy() if t.device.type == "cpu" else t


def zeros(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if device.type == "cpu":  # calloc'd pages, no fill pass
        return torch.from_numpy(np.zeros(shape, dtype=torch.empty(0, dtype=dtype).numpy().dtype))
    return torch.zeros(shape, dtype=dtype, device=device)


class RowStitcher:
    """Accumulates weighted window probabilities for a band of rows; hands out finished rows.

    The band lives on ``device`` (the model's), so on a GPU the blending never leaves it; on a
    CPU it is updated through NumPy views (:func:`host_view`).
    ``overwrite=True`` is the "no blending" mode: a later window replaces earlier values where
    its weight is positive instead of being averaged with them.
    """

    def __init__(self, width: int, height: int, num_classes: int, band_height: int, *, overwrite: bool = False,
                 col_off: int = 0, out_cols: tuple[int, int] | None = None, device: str | torch.device = "cpu"):
        """``width`` columns starting at raster column ``col_off``; emits raster columns ``out_cols``."""
        self.width, self.height, self.num_classes = width, height, num_classes
        self.col_off = col_off
        lo, hi = out_cols if out_cols is not None else (col_off, col_off + width)
        self.out = slice(lo - col_off, hi - col_off)
        self.band_height = min(band_height, height)
        self.overwrite = overwrite
        self.device = torch.device(device)
        self.base = 0  # raster row held at accumulator row 0
        self._arrays: tuple[np.ndarray, ...] | None = None  # the CPU band's NumPy memory
        self._spares: list[tuple[np.ndarray, ...]] = []  # retired CPU bands, reusable once unreferenced
        self.acc, self.wsum, self.valid = self._new_band()

    @torch.inference_mode()
    def _new_band(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        shape = (self.band_height, self.width)
        if self.device.type != "cpu":
            return (zeros((self.num_classes, *shape), torch.float32, self.device),
                    zeros(shape, torch.float32, self.device), zeros(shape, torch.bool, self.device))
        arrays = self._reusable()
        if arrays is None:  # calloc'd pages, no fill pass
            arrays = (np.zeros((self.num_classes, *shape), np.float32), np.zeros(shape, np.float32),
                      np.zeros(shape, bool))
        self._arrays = arrays
        acc, wsum, valid = arrays
        return torch.from_numpy(acc), torch.from_numpy(wsum), torch.from_numpy(valid)

    def _reusable(self) -> tuple[np.ndarray, ...] | None:
        """A retired band that nothing references any more (the writer is done with it), zeroed.

        A fresh band for every grid row (25 MiB for 6 classes x 256 x 4096) made the kernel fault
        in and zero thousands of pages per row, more CPU than the blending itself. A band's NumPy
        arrays are referenced by the tensors (and views) made from them; when only the spare list
        holds them (reference count 2: the tuple and ``getrefcount``'s argument), they are free.
        """
        for i, arrays in enumerate(self._spares):
            if all(sys.getrefcount(arrays[k]) <= 2 for k in range(len(arrays))):
                del self._spares[i]
                for a in arrays:
                    a.fill(0)
                return arrays
        return None

    def _retire(self) -> None:
        """Keep the current CPU band for reuse (at most two spares: bounded memory)."""
        if self._arrays is not None:
            self._spares.append(self._arrays)
            self._arrays = None
            del self._spares[:-2]

    @property
    def nbytes(self) -> int:
        return (self.num_classes * 4 + 5) * self.band_height * self.width

    def start_at(self, row: int) -> None:
        """Begin accumulating at raster row ``row`` without emitting anything (used by resume)."""
        self.base = row
        self._retire()
        self.acc, self.wsum, self.valid = self._new_band()

    def _slices(self, window: Window, h: int, w: int) -> tuple[slice, slice]:
        r0 = int(window.row_off) - self.base
        c0 = int(window.col_off) - self.col_off
        if r0 < 0 or r0 + h > self.band_height:
            raise ValueError(f"window rows {window.row_off}..{window.row_off + h} outside the band "
                             f"{self.base}..{self.base + self.band_height}; windows must come row by row")
        return slice(r0, r0 + h), slice(c0, c0 + w)

    @torch.inference_mode()
    def add(self, window: Window, probs, weights, valid=None) -> None:
        """Add one window's (C, h, w) probabilities with (h, w) weights and (h, w) validity."""
        self.add_batch([window], _as_tensor(probs, self.device)[None], _as_tensor(weights, self.device)[None],
                       None if valid is None else _as_tensor(valid, self.device)[None])

    @torch.inference_mode()
    def add_batch(self, windows: list[Window], probs: torch.Tensor, weights: torch.Tensor,
                  valid: torch.Tensor | None = None) -> None:
        """Add a batch: (B, C, h, w) probabilities, (B, h, w) weights, (B, h, w) validity (or None).

        The weighting is one operation for the whole batch; the windows are then summed into the
        band in the order given (the order fixes the floating-point sum, so it is the grid order).
        ``probs`` is overwritten.
        """
        h, w = probs.shape[2:]
        band_acc, band_wsum, band_valid = host_view(self.acc), host_view(self.wsum), host_view(self.valid)
        probs, weights = host_view(probs), host_view(weights)
        if self.overwrite:
            for i, window in enumerate(windows):
                rs, cs = self._slices(window, h, w)
                mask = weights[i] > 0
                acc = band_acc[:, rs, cs]
                acc[:, mask] = probs[i][:, mask]
                band_wsum[rs, cs][mask] = 1.0
        else:
            probs *= weights[:, None]
            for i, window in enumerate(windows):
                rs, cs = self._slices(window, h, w)
                band_acc[:, rs, cs] += probs[i]
                band_wsum[rs, cs] += weights[i]
        for i, window in enumerate(windows):
            rs, cs = self._slices(window, h, w)
            if valid is None:
                band_valid[rs, cs] = True
            else:
                band_valid[rs, cs] |= host_view(valid[i])

    @torch.inference_mode()
    def advance(self, row: int) -> FinishedRows | None:
        """Rows before ``row`` are final: hand them out and start a band at ``row``.

        The finished rows keep the old band's memory (no copy); the rows the next windows still
        reach are copied into a fresh band.
        """
        n = min(row, self.base + self.band_height) - self.base
        if n <= 0:
            return None
        out = self._finish(n)
        keep = self.band_height - n
        self._retire()
        acc, wsum, valid = self._new_band()
        if keep > 0:
            host_view(acc)[:, :keep] = host_view(self.acc)[:, n:]
            host_view(wsum)[:keep] = host_view(self.wsum)[n:]
            host_view(valid)[:keep] = host_view(self.valid)[n:]
        self.acc, self.wsum, self.valid = acc, wsum, valid
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
        valid = host_view(self.valid[:n, self.out]) & (host_view(wsum) > 0)
        return FinishedRows(self.base, self.out.start + self.col_off, acc, wsum,
                            torch.from_numpy(valid) if isinstance(valid, np.ndarray) else valid)
