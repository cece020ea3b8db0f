"""The streaming pipeline: a reader thread, the model on the calling thread, a writer thread.

Reading and normalising windows, running the network, and rendering/compressing finished rows
each take real time; with bounded queues between them the network never waits on disk and
memory stays fixed (``prefetch`` batches in flight, one row slice in the stitcher).

Batches are a pure function of the window grid and its column strips (:func:`grid_batches`): each
strip's windows in row-major order are cut into runs of ``batch_size`` (a batch may end one grid row
and start the next, so every batch is full), whatever the row slice or the row a resumed run starts
at. A network's float results can depend on the batch a window is in (kernel choice by batch size,
reduction order); with fixed batches every window is computed in the same batch, in the same
position, by the same forward call in every run, so row slices and resumes reproduce a one-pass run
bit for bit by construction. (The strips are fixed by the raster's width: ``plan_strips``.)
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from rasterio.windows import Window

from rsmamba.engine.blend import window_weights
from rsmamba.engine.stitch import FinishedRows, RowStitcher, Strip
from rsmamba.engine.writer import ScratchWriter
from rsmamba.raster.windows import WindowGrid

_DONE = object()


@dataclass
class WindowBatch:
    """One fixed batch of the grid (see :func:`grid_batches`), ready for the network."""

    strip: int
    rows: list[int]  # grid row offsets this batch brings for the strip, in order (empty: none)
    windows: list[Window]  # windows with at least one valid pixel (the others contribute nothing)
    x: np.ndarray | None  # (B, C, h, w) float32
    valid: np.ndarray | None  # (B, h, w) bool
    used: list[int]  # indices into ``windows`` of the windows the strip blends (the others are dropped)


_HEAP_LIMITED = False
MMAP_THRESHOLD = 8 << 20  # bytes; see limit_heap_growth
TRIM_THRESHOLD = 1 << 30  # bytes; see limit_heap_growth


def limit_heap_growth() -> bool:
    """glibc's malloc for the pipeline: big buffers mapped and unmapped, the heap kept (once per process).

    The pipeline allocates and frees big arrays continually (batches, row slices, rendered rows)
    on three threads. glibc's default raises its mmap threshold after the first large free, so
    later buffers come from per-thread heaps that fragment and never shrink: peak RSS grew with
    the scene (1082 MiB at 4096², 1371 MiB at 8192² with a near-free model). A fixed mmap
    threshold and two arenas keep it flat. The threshold is 8 MiB, not lower: every buffer above it
    is a fresh mapping whose pages the kernel faults in and zeroes on first touch, and a batch's
    arrays (3-6 MiB for 4 x 256² windows) are allocated and freed continually: at 1 MiB those
    page faults took half the CPU time of a near-free-model run, while peak RSS stays flat; at 32
    MiB, or with no mapping at all, a near-free run peaked 1.4-1.5x higher (unmapped, growing with
    the scene: 1104 MiB at 4096², 1416 MiB at 20000²).
    The freed heap is not given back (``M_TRIM_THRESHOLD`` 1 GiB instead of 128 KiB): the default
    handed the top of the heap back after nearly every forward pass, and the kernel faulted it in
    again for the next one -- half the CPU time of the image-only model's ``predict`` (the one shipped before 2026-12-05) was
    the kernel's. Kept, a 2048² ortho ran 1.25x faster for 6 % more peak memory, and a near-free
    run's peak stayed flat (742 MiB at 4096², 858 MiB at 20000²; ``bench/predict.py --parts heap,b``).
    A setting the user made (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``,
    ``MALLOC_ARENA_MAX``, ``GLIBC_TUNABLES``) is left alone, as is every C library but glibc.
    Returns whether this call set anything.
    """
    global _HEAP_LIMITED
    if _HEAP_LIMITED:
        return False
    _HEAP_LIMITED = True
    import ctypes
    import os
    import sys

    if not sys.platform.startswith("linux") or "malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no mallopt: another C library, its own policy
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8  # <malloc.h>
    settings = [(m_mmap_threshold, MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_"),
                (m_trim_threshold, TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_"), (m_arena_max, 2, "MALLOC_ARENA_MAX")]
    took = [mallopt(option, value) == 1 for option, value, env in settings if env not in os.environ]
    return bool(took) and all(took)


class _Worker(threading.Thread):
    """A daemon thread that keeps its exception for the caller to re-raise."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def first_grid_row(grid: WindowGrid, first_row: int) -> int:
    """Offset of the first grid row that still contributes to raster rows >= ``first_row``."""
    return next(r for r in grid.row_offsets if r + grid.window_height > first_row)


def grid_batches(grid: WindowGrid, strip: Strip, batch_size: int, first_row: int = 0, end_row: int | None = None
                 ) -> Iterator[tuple[list[Window], list[bool]]]:
    """The batches a strip runs for grid rows ``[first_row, end_row)``: a pure function of the grid and the strip.

    The strip's windows in row-major order are cut into runs of ``batch_size`` from the first; a row
    slice or a resumed run runs every run holding one of its windows, whole, and drops the others
    (``False`` in the flags), so each window meets the network in the same batch, in the same forward
    call, as in a one-pass run with these strips. (Runs over the whole grid's rows made every strip of a
    wide scene compute up to ``batch_size - 1`` windows of its neighbour per grid row: 31 % more network
    passes for a 20000 px scene at batch 4, 69 % at batch 8.)
    """
    row_offs, cols = grid.row_offsets, list(strip.col_offsets)
    n = len(cols)
    needed = {ri * n + ci for ri, r in enumerate(row_offs) if r >= first_row and (end_row is None or r < end_row)
              for ci in range(n)}
    total = len(row_offs) * n
    for j in sorted({k // batch_size for k in needed}):
        ks = range(j * batch_size, min(total, (j + 1) * batch_size))
        yield ([Window(cols[k % n], row_offs[k // n], grid.window_width, grid.window_height) for k in ks],
               [k in needed for k in ks])


class WeightCache:
    """Window weights depend only on which raster edges a window touches: compute each kind once.

    ``batch(windows)`` gives the (B, h, w) weights of a batch on ``device``, the 8 most recent
    cached by the kinds of their windows (consecutive batches of a grid repeat a few patterns).
    """

    def __init__(self, width: int, height: int, mode: str, crop: int, edge_aware: bool = True,
                 device: str | torch.device = "cpu") -> None:
        self.width, self.height, self.mode, self.crop, self.edge_aware = width, height, mode, crop, edge_aware
        self.device = torch.device(device)
        self._cache: dict[tuple, np.ndarray] = {}
        self._batches: dict[tuple, torch.Tensor] = {}

    def _key(self, w: Window) -> tuple:
        c, r, ww, hh = int(w.col_off), int(w.row_off), int(w.width), int(w.height)
        return (c == 0, c + ww >= self.width, r == 0, r + hh >= self.height, ww, hh)

    def __call__(self, w: Window) -> np.ndarray:
        key = self._key(w)
        if key not in self._cache:
            self._cache[key] = window_weights(w, self.width, self.height, self.mode, self.crop, self.edge_aware)
        return self._cache[key]

    def batch(self, windows: list[Window]) -> torch.Tensor:
        key = tuple(self._key(w) for w in windows)
        if key in self._batches:
            self._batches[key] = self._batches.pop(key)  # most recently used last
        else:
            if len(self._batches) >= 8:  # each is B x h x w float32 (4 MiB for 4 x 512²): keep few
                self._batches.pop(next(iter(self._batches)))
            self._batches[key] = torch.from_numpy(np.stack([self(w) for w in windows])).to(self.device)
        return self._batches[key]


def run_pipeline(
    *,
    grid: WindowGrid,
    strips: list[Strip],
    read_window: Callable[[Window], tuple[np.ndarray, np.ndarray]],
    predict: Callable[[np.ndarray], np.ndarray],
    new_stitcher: Callable[[Strip, int], RowStitcher],
    writer: ScratchWriter,
    weights: WeightCache,
    batch_size: int = 4,
    prefetch: int = 4,
    first_strip: int = 0,
    first_row: int = 0,
    rows: tuple[int, int] | None = None,
    on_rows: Callable[[int], None] | None = None,
    pointwise_read: bool = False,
) -> None:
    """Predict every window of every strip from ``(first_strip, first_row)`` on, and write it.

    ``read_window(window) -> (x (C,h,w) float32, valid (h,w) bool)`` runs on the reader thread,
    ``predict`` (a NumPy batch -> (B, K, h, w) probabilities, a tensor on the model's device or
    an array) and the blending on the calling thread (where torch has its thread pool), rendering
    and writing on the writer thread. Batches are :func:`grid_batches`. ``new_stitcher(strip, start_row)`` gives each strip its accumulator.
    ``rows=(y0, y1)`` restricts the work to the windows that reach raster rows ``[y0, y1)``; the
    windows, batches, weights and summation order of those rows are the same as in a whole-scene
    run, so a scene split into row slices gives the same bytes. ``on_rows(pixels)`` is called as
    output pixels are finished (progress bars). ``pointwise_read=True`` says ``read_window``
    treats every pixel alone (no per-window normalisation): a batch is then read and normalised
    as one region spanning its windows, not window by window.
    """
    y0, y1 = rows if rows is not None else (0, None)
    limit_heap_growth()

    def start_row(strip_index: int) -> int:
        return max(y0, first_row if strip_index == first_strip else 0)

    stop = threading.Event()
    batches: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    finished: queue.Queue = queue.Queue(maxsize=1)  # each item holds a whole row slice

    def reader() -> None:
        ww, wh = grid.window_width, grid.window_height
        try:
            for strip in strips[first_strip:]:
                start = first_grid_row(grid, start_row(strip.index))
                for run, flags in grid_batches(grid, strip, batch_size, start, y1):
                    chunk, xs, valids, used = [], [], [], []
                    spans = {}
                    if pointwise_read:  # one read per grid row of the run; its windows are views into it
                        for row in dict.fromkeys(int(w.row_off) for w in run):
                            c0 = min(int(w.col_off) for w in run if w.row_off == row)
                            c1 = max(int(w.col_off) for w in run if w.row_off == row) + ww
                            spans[row] = (c0, *read_window(Window(c0, row, c1 - c0, wh)))
                    for w, flag in zip(run, flags):
                        if pointwise_read:
                            c0, span_x, span_valid = spans[int(w.row_off)]
                            cols = slice(int(w.col_off) - c0, int(w.col_off) - c0 + ww)
                            x, valid = span_x[:, :, cols], span_valid[:, cols]
                        else:
                            x, valid = read_window(w)
                        if valid.any():
                            if flag:
                                used.append(len(chunk))
                            chunk.append(w)
                            xs.append(x)
                            valids.append(valid)
                    rows_of = list(dict.fromkeys(int(w.row_off) for w, flag in zip(run, flags) if flag))
                    batch = WindowBatch(strip.index, rows_of, chunk, np.stack(xs) if xs else None,
                                        np.stack(valids) if valids else None, used)
                    if not _put(batches, batch, stop):
                        return
        finally:
            _put(batches, _DONE, stop)

    def write() -> None:
        try:
            while True:
                item = finished.get()
                if item is _DONE:
                    break
                writer.write(*item)
            writer.close()
        except BaseException:
            stop.set()  # a failed write (a full disk) stops the reader and the model loop too
            raise

    read_thread = _Worker(reader, "rsmamba-reader")
    write_thread = _Worker(write, "rsmamba-writer")
    read_thread.start()
    write_thread.start()

    def emit(rows: FinishedRows | None, strip: int) -> None:
        if rows is None:
            return
        if not _put(finished, (rows, strip), stop) or write_thread.error is not None:
            write_thread.join()  # stopped: it is ending with its error
            raise write_thread.error or RuntimeError("writer stopped")
        if on_rows is not None:
            on_rows(rows.height * rows.width)

    def next_batch() -> object:
        """The reader's next batch; a writer or reader that died stops the wait with its error."""
        while True:
            try:
                return batches.get(timeout=0.1)
            except queue.Empty:
                if stop.is_set() and not write_thread.is_alive():
                    raise write_thread.error or RuntimeError("writer stopped")
                if not read_thread.is_alive() and batches.empty():
                    raise read_thread.error or RuntimeError("reader stopped")

    completed = False
    current: int | None = None
    strip_index: int | None = None
    stitcher: RowStitcher | None = None
    try:
        while True:
            batch = next_batch()
            if batch is _DONE:
                break
            if write_thread.error is not None:
                raise write_thread.error
            if batch.strip != strip_index:
                if stitcher is not None:
                    emit(stitcher.finish(), strip_index)
                strip_index, current = batch.strip, None
                stitcher = new_stitcher(strips[batch.strip], first_grid_row(grid, start_row(batch.strip)))
            probs = valid = None
            if batch.x is not None and batch.used:
                probs = predict(batch.x)
                device = stitcher.device
                probs = probs.to(device) if isinstance(probs, torch.Tensor) else torch.from_numpy(probs).to(device)
                valid = torch.from_numpy(batch.valid).to(device)
            for row in batch.rows:  # the grid rows this batch reaches, in order
                if row != current:
                    if current is not None:
                        emit(stitcher.advance(row), strip_index)
                    current = row
                mine = [i for i in batch.used if int(batch.windows[i].row_off) == row]
                if probs is None or not mine:
                    continue
                part = slice(mine[0], mine[-1] + 1)
                if len(mine) < part.stop - part.start:
                    part = torch.tensor(mine, device=probs.device)
                windows = [batch.windows[i] for i in mine]
                stitcher.add_batch(windows, probs[part].float(), weights.batch(windows), valid[part])
        if read_thread.error is not None:
            raise read_thread.error
        if stitcher is not None:
            emit(stitcher.finish(), strip_index)
        completed = True
    finally:
        stop.set()  # the reader stops at its next put
        read_thread.join()
        # The writer finishes what it already has (complete tile rows stay valid for --resume);
        # after a failure its last partial tile row is discarded by not calling close().
        if not completed:
            writer.close = lambda: None  # type: ignore[method-assign]
        while True:
            try:
                finished.put(_DONE, timeout=0.1)
                break
            except queue.Full:
                if not write_thread.is_alive():
                    break
        write_thread.join()
    if write_thread.error is not None:
        raise write_thread.error
