"""Per-raster normalisation statistics.

Statistics are computed once per raster (or given, e.g. from a checkpoint) and applied
identically to every window: per-tile heuristics make the same ground look different from
one tile to the next (geoai's "divide by 255 if max > 1.5" is the cautionary tale).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from rasterio.windows import Window

from rsmamba.errors import InputError
from rsmamba.raster.windows import sample_windows

if TYPE_CHECKING:
    from rsmamba.raster.source import AlignedSource


@dataclass(frozen=True)
class BandStats:
    """Per-band statistics over valid pixels; ``pixels``: how many values each band's were computed on, so the
    statistics of several chip folders pool as the union of their pixels would (rsmamba.datasets.folders)."""

    mean: list[float]
    std: list[float]
    minimum: list[float]
    maximum: list[float]
    pixels: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[float]]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> BandStats:
        return cls(**{k: [float(v) for v in data[k]] for k in ("mean", "std", "minimum", "maximum")})


class StatsAccumulator:
    """Streaming sums for mean/std/min/max per band (float64, so large rasters stay exact enough)."""

    def __init__(self, bands: int) -> None:
        self.n = np.zeros(bands)
        self.s = np.zeros(bands)
        self.s2 = np.zeros(bands)
        self.lo = np.full(bands, np.inf)
        self.hi = np.full(bands, -np.inf)

    def add(self, data: np.ndarray, valid: np.ndarray) -> None:
        every = bool(valid.all())  # then the masked copy is the band in C order: skip the mask
        for b in range(data.shape[0]):
            v = (data[b].ravel() if every else data[b][valid]).astype(np.float64)
            if data.dtype.kind == "f":  # integers are always finite
                v = v[np.isfinite(v)]
            if v.size:
                self.n[b] += v.size
                self.s[b] += v.sum()
                self.s2[b] += np.square(v).sum()
                self.lo[b] = min(self.lo[b], v.min())
                self.hi[b] = max(self.hi[b], v.max())

    def result(self, what: str) -> BandStats:
        if np.any(self.n == 0):
            raise InputError(f"{what}: no valid pixels to compute statistics from (all nodata?)")
        mean = self.s / self.n
        std = np.sqrt(np.maximum(self.s2 / self.n - mean**2, 0.0))
        std = np.where(std > 0, std, 1.0)
        return BandStats(mean.tolist(), std.tolist(), self.lo.tolist(), self.hi.tolist(), [int(n) for n in self.n])


STATS_SAMPLE_PIXELS = 2_000_000  # pixels of a scene that :func:`compute_stats` reads (the whole scene if smaller)


def within_mask(window: Window, region: np.ndarray) -> np.ndarray:
    """(h, w) bool: the pixels of ``window`` inside any of the ``region`` windows, given as rows of
    (row_off, col_off, height, width)."""
    r0, c0 = int(window.row_off), int(window.col_off)
    h, w = int(window.height), int(window.width)
    mask = np.zeros((h, w), bool)
    top, left = np.maximum(region[:, 0] - r0, 0), np.maximum(region[:, 1] - c0, 0)
    bottom = np.minimum(region[:, 0] + region[:, 2] - r0, h)
    right = np.minimum(region[:, 1] + region[:, 3] - c0, w)
    for i in np.nonzero((bottom > top) & (right > left))[0]:
        mask[top[i]:bottom[i], left[i]:right[i]] = True
    return mask


def compute_stats(src: AlignedSource, max_pixels: int = STATS_SAMPLE_PIXELS,
                  within: list[Window] | None = None) -> tuple[BandStats, BandStats | None]:
    """Image (and DSM) statistics over valid pixels of a lattice of sample windows.

    ``within``: only the pixels inside these windows count (the training chips: statistics of the val and
    test areas went into the model's normalisation); where the lattice holds none of their valid pixels,
    the windows themselves are sampled (about ``max_pixels`` of them)."""
    region = (np.array([(int(w.row_off), int(w.col_off), int(w.height), int(w.width)) for w in within])
              if within else None)
    stats = _stats(src, sample_windows(src.width, src.height, max_pixels), region)
    if stats is None:  # the lattice missed the region (a few small training blocks in a large scene)
        step = max(1, math.ceil(sum(int(w.width) * int(w.height) for w in within) / max_pixels))
        stats = _stats(src, list(within)[::step], None)
    return stats


def _stats(src: AlignedSource, windows: list[Window],
           region: np.ndarray | None) -> tuple[BandStats, BandStats | None] | None:
    """:func:`compute_stats` over ``windows``, counting pixels inside ``region`` only (None: all); None when
    the region held no valid pixel of them."""
    image_acc = StatsAccumulator(src.count)
    dsm_acc = StatsAccumulator(1) if src.has_dsm else None
    image_alone = with_dsm = 0  # the image's own valid pixels, and of them those with a height
    for window in windows:
        inside = within_mask(window, region) if region is not None else None
        if inside is not None and not inside.any():
            continue
        heights = src.read_dsm(window) if dsm_acc is not None else None
        valid = src.read_valid(window, heights)
        if inside is not None:
            valid &= inside
        image_acc.add(src.read_image(window), valid)
        if dsm_acc is not None:
            dsm_acc.add(heights[None], valid)
        if not valid.any():  # what left the window without a valid pixel: said if nothing else is valid
            own = src.read_image_valid(window)
            image_alone += int(own.sum())
            with_dsm += int((own & ~np.isnan(heights)).sum()) if heights is not None else int(own.sum())
    if region is not None and not image_acc.n.all():
        return None
    if not image_acc.n.all() and image_alone:  # the image has data: the DSM (or t2) has none there
        if with_dsm == 0:
            raise InputError(f"DSM {src.dsm_path}: no height where the image {src.image_path} has data (all nodata, "
                             "or no pixel of it over the image's data)")
        raise InputError(f"t2 {src.t2_path}: no valid pixel where the image {src.image_path} has data (all nodata, "
                         "or no pixel of it over the image's data)")
    image_stats = image_acc.result(f"image {src.image_path}")
    dsm_stats = dsm_acc.result("DSM") if dsm_acc is not None else None
    return image_stats, dsm_stats


def normalize(array: np.ndarray, stats: BandStats) -> np.ndarray:
    """(C, h, w) raw values -> float32 z-scores with the raster's statistics."""
    mean = np.asarray(stats.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(stats.std, dtype=np.float32)[:, None, None]
    if array.shape[0] != mean.shape[0]:
        raise InputError(f"normalisation expects {mean.shape[0]} bands, got {array.shape[0]}")
    out = array.astype(np.float32)  # in place from here: the same float32 operations, no temporaries
    out -= mean
    out /= std
    return out


def blank_invalid(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(C, h, w) network input with every channel 0 where ``valid`` is False (in place): the one rule by which
    pixels without data reach the network, in training (:mod:`rsmamba.datasets.chips`) as in predict and change.
    ``valid``: the image valid and, with a DSM, a height there; of a change pair, both dates valid. A DSM hole
    kept its image bands in training while predict gave the network 0 there, an input it had never seen."""
    if not valid.all():
        x[:, ~valid] = 0.0
    return x


DSM_MODES = ("zscore", "minmax-window", "minmax-scene", "ground-relative")
SCENE_RANGE_ROWS = 512  # rows per read of :func:`dsm_range`: bounded memory on any scene


def dsm_range(read_dsm: Callable[[Window], np.ndarray], width: int, height: int) -> tuple[float, float]:
    """(lowest, highest) finite height of a whole DSM, read in strips of rows: every pixel, not a sample,
    as FMTUNet's authors scale each tile by its own min and max (``minmax-scene``)."""
    lo, hi = np.inf, -np.inf
    for row in range(0, height, SCENE_RANGE_ROWS):
        d = read_dsm(Window(0, row, width, min(SCENE_RANGE_ROWS, height - row)))
        d = d[np.isfinite(d)]
        if d.size:
            lo, hi = min(lo, float(d.min())), max(hi, float(d.max()))
    return (lo, hi) if lo <= hi else (0.0, 0.0)


def normalize_dsm(dsm: np.ndarray, valid: np.ndarray, norm: dict) -> np.ndarray:
    """One window of DSM heights -> network input, as ``norm["mode"]`` says (the same in training and predict).

    - ``zscore``: (z - mean) / std with per-raster statistics: absolute elevations, so a scene on
      other ground (a few metres higher) shifts every value;
    - ``minmax-window``: (z - min) / (max - min) within the window;
    - ``minmax-scene``: (z - min) / (max - min) with the whole scene's (tile's) ``minimum`` and ``maximum``
      in ``norm`` (FMTUNet's per-tile min-max; :func:`dsm_range`), the same for every window of it;
    - ``ground-relative``: (z - p2) / scale, p2 the window's 2nd percentile (about the ground), a
      normalised-DSM approximation independent of absolute elevation and nearly of window size.
    NaN (no data) becomes 0.
    """
    mode = norm.get("mode", "zscore")
    d = dsm.astype(np.float32)
    finite = np.isfinite(d)
    v = d[finite & valid]
    if mode == "zscore":
        out = (d - float(norm["mean"])) / (float(norm["std"]) or 1.0)
    elif mode == "minmax-window":
        lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)
        out = (d - lo) / (hi - lo) if hi > lo else np.zeros_like(d)
    elif mode == "minmax-scene":
        lo, hi = float(norm["minimum"]), float(norm["maximum"])
        out = (d - lo) / (hi - lo) if hi > lo else np.zeros_like(d)
    elif mode == "ground-relative":
        lo = float(np.percentile(v, 2)) if v.size else 0.0
        out = (d - lo) / float(norm.get("scale", 10.0))
    else:
        raise InputError(f"unknown DSM normalisation {mode!r}; choose one of {', '.join(DSM_MODES)}")
    out[~finite] = 0.0
    return out
