"""Overviews of the output rasters, computed in NumPy as 2 x 2 reductions, written as ``.ovr`` files.

Why: GDAL's ``mode`` resampling is a generic per-window histogram; for a 4096² class raster it
took 0.36 s of a 1.9 s near-free-model predict (``bench/predict.py --parts ceiling``), longer than
all the blending. A 2 x 2 mode over uint8 labels is a few vectorised comparisons. Each level is
computed from the one below it (as GDAL cascades), in row blocks, so memory stays bounded.

The levels are a chain of external overview files: ``X.ovr`` (factor 2), ``X.ovr.ovr`` (4), ...
GDAL reads an ``.ovr`` file's own overviews as further levels of ``X``, and the COG driver copies
them (``OVERVIEWS=FORCE_USE_EXISTING``). Each level is a plain tiled GeoTIFF, any band count.
(Filling the levels in the writer thread as rows arrived was measured and dropped: the opens and
writes of the level files on that thread slowed the pipeline by more than the 0.09 s it took
off the end of a 4096² near-free-model run.)

``mode`` (class rasters) is GDAL's rule: nodata pixels do not vote; among the others the value
with the most votes wins, and on a tie the value whose votes were complete first in row-major
order (its last occurrence comes earliest); all nodata gives nodata. ``average`` (probabilities)
is GDAL's too: the mean of the pixels that are not nodata, rounded half up. On rasters of even
size both equal GDAL's pixel for pixel; at an odd edge GDAL stretches its windows over the whole
row (a ratio of 65/33, say), while here the last block is a partial 2 x 2 one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import Affine
from rasterio.windows import Window

__all__ = ["mode_2x2", "mean_2x2", "reduce_2x2", "overview_path", "overview_paths", "remove_levels",
           "build_overviews"]

ROWS_PER_BLOCK = 1024  # at most this many rows of the finer level read at a time (even) ...
BLOCK_BYTES = 64 << 20  # ... and at most this many bytes (all bands): bounded memory on any raster


def block_rows(width: int, count: int) -> int:
    """Rows of a ``width`` x ``count``-band uint8 level read at once: even, >= 2, within both bounds."""
    return max(2, min(ROWS_PER_BLOCK, BLOCK_BYTES // max(1, width * count)) // 2 * 2)


def _mode_2x2_rule(a: np.ndarray, nodata: int) -> np.ndarray:
    """(H, W) uint8 -> (ceil(H/2), ceil(W/2)) uint8: the mode of each 2 x 2 block, by GDAL's rule.

    Odd edges are padded with ``nodata`` (which does not vote), as GDAL's partial edge blocks.
    """
    h, w = a.shape
    if h % 2 or w % 2:
        a = np.pad(a, ((0, h % 2), (0, w % 2)), constant_values=nodata)
    a, b, c, d = a[0::2, 0::2], a[0::2, 1::2], a[1::2, 0::2], a[1::2, 1::2]  # row-major within the block
    va, vb, vc = a != nodata, b != nodata, c != nodata
    ab, ac, ad = (a == b) & va, (a == c) & va, (a == d) & va  # equal and voting
    bc, bd, cd = (b == c) & vb, (b == d) & vb, (c == d) & vc
    # No pair: every voter has one vote, the first voter wins (nodata if none votes).
    out = np.where(va, a, np.where(vb, b, np.where(vc, c, d)))
    a_pair = ab | ac | ad
    b_pair = ~a_pair & (bc | bd)
    np.copyto(out, a, where=a_pair)  # a has the most votes, or ties and completes first ...
    np.copyto(out, b, where=b_pair | (ad & bc & ~ab))  # ... except a==d, b==c: b's pair completes at c
    np.copyto(out, c, where=~a_pair & ~b_pair & cd)
    return out


_TABLES: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _mode_tables(nodata: int) -> tuple[np.ndarray, np.ndarray]:
    """(digit, mode): ``digit`` maps labels 0..14 to themselves, ``nodata`` to 15 and any other value
    to 255; ``mode`` holds the rule's answer for every 2 x 2 block of digits, indexed by the block's
    16-bit key (see :func:`mode_2x2`). Built by :func:`_mode_2x2_rule` itself: the rule by construction."""
    if nodata not in _TABLES:
        digit = np.full(256, 255, np.uint8)
        digit[:15] = np.arange(15)
        digit[nodata] = 15
        codes = np.arange(1 << 16, dtype=np.uint32)
        a, c, b, d = ((codes >> shift) & 15 for shift in (0, 4, 8, 12))  # the key's layout
        blocks = np.empty((2, 2 * codes.size), np.uint8)
        for rows, cols, v in ((0, 0, a), (0, 1, b), (1, 0, c), (1, 1, d)):
            blocks[rows, cols::2] = np.where(v == 15, nodata, v)
        _TABLES[nodata] = (digit, _mode_2x2_rule(blocks, nodata)[0])
    return _TABLES[nodata]


def mode_2x2(a: np.ndarray, nodata: int) -> np.ndarray:
    """(H, W) uint8 -> (ceil(H/2), ceil(W/2)) uint8: the mode of each 2 x 2 block, by GDAL's rule.

    Odd edges are padded with ``nodata`` (which does not vote), as GDAL's partial edge blocks.
    Class rasters hold few labels: when every label is below 15, each block's labels, as 4-bit
    digits, make a 16-bit key into a table of the rule's answers (two byte pairs read as one
    little-endian uint16 per row: a few passes over the data instead of a dozen, about 3x faster);
    any other raster takes the rule's vectorised comparisons.
    """
    h, w = a.shape
    if h % 2 or w % 2:
        a = np.pad(a, ((0, h % 2), (0, w % 2)), constant_values=nodata)
    if a.size == 0 or nodata <= 14:
        return _mode_2x2_rule(a, nodata)
    digit, table = _mode_tables(nodata)
    m = digit[a]
    if int(m.max()) > 15:  # a label above 14
        return _mode_2x2_rule(a, nodata)
    top = np.ascontiguousarray(m[0::2]).view("<u2")  # a | b << 8 for each block
    bottom = np.ascontiguousarray(m[1::2]).view("<u2")  # c | d << 8
    return table[top | (bottom << np.uint16(4))]


def mean_2x2(a: np.ndarray, nodata: int) -> np.ndarray:
    """(H, W) uint8 -> (ceil(H/2), ceil(W/2)) uint8: the rounded mean of each 2 x 2 block's non-nodata pixels.

    Integer arithmetic: ``(2 * sum + n) // (2 * n)`` is ``round(sum / n)`` with halves up, exactly.
    Odd edges are padded with ``nodata`` (which does not count); all nodata gives nodata.
    """
    h, w = a.shape
    if h % 2 or w % 2:
        a = np.pad(a, ((0, h % 2), (0, w % 2)), constant_values=nodata)
    total = np.zeros((a.shape[0] // 2, a.shape[1] // 2), np.int32)
    count = np.zeros_like(total)
    for part in (a[0::2, 0::2], a[0::2, 1::2], a[1::2, 0::2], a[1::2, 1::2]):
        votes = part != nodata
        total += np.where(votes, part, 0)
        count += votes
    out = (2 * total + count) // np.maximum(2 * count, 1)
    out[count == 0] = nodata
    return out.astype(np.uint8)


REDUCERS = {"mode": mode_2x2, "average": mean_2x2}


def reduce_2x2(a: np.ndarray, nodata: int, method: str) -> np.ndarray:
    """(count, H, W) uint8 -> (count, ceil(H/2), ceil(W/2)): each band by ``method`` (mode or average)."""
    reduce = REDUCERS[method]
    return np.stack([reduce(band, nodata) for band in a])


def overview_path(path: str | os.PathLike[str], level: int) -> Path:
    """The file of overview ``level`` (1: factor 2, 2: factor 4, ...) of ``path``."""
    return Path(str(path) + ".ovr" * level)


MAX_LEVELS = 16  # factor 2**16, the deepest overview_factors gives


def overview_paths(path: str | os.PathLike[str]) -> list[Path]:
    """Every overview file ``path`` can have (most do not exist): for cleanup."""
    return [overview_path(path, level) for level in range(1, MAX_LEVELS + 1)]


def remove_levels(path: str | os.PathLike[str]) -> None:
    """Delete ``path``'s overview files."""
    for p in overview_paths(path):
        with contextlib.suppress(FileNotFoundError):
            os.remove(p)


def _level_profile(base: dict, factor: int) -> dict:
    profile = dict(base)
    profile.update(width=-(-int(base["width"]) // factor), height=-(-int(base["height"]) // factor),
                   transform=base["transform"] * Affine.scale(factor, factor), BIGTIFF="IF_SAFER", sparse_ok=True)
    return profile


def build_overviews(path: str | os.PathLike[str], factors: list[int], nodata: int, method: str = "mode") -> None:
    """Give the uint8 GeoTIFF at ``path`` overview files at ``factors`` (2, 4, 8, ...), by ``method``.

    Each level is made from the level below, read and written in blocks of rows (bounded memory).
    Level files already there (a killed run's, a larger raster's) are removed first: GDAL would
    take any ``.ovr`` in the chain as a level.
    """
    factors = sorted(factors)
    if any(f != 2 ** (i + 1) for i, f in enumerate(factors)):
        raise ValueError(f"overviews need factors 2, 4, 8, ...; got {factors}")
    remove_levels(path)
    with rasterio.open(path) as src:
        base = {**src.profile, "driver": "GTiff"}
    for level, factor in enumerate(factors, start=1):
        with rasterio.open(overview_path(path, level - 1) if level > 1 else path) as src, \
                rasterio.open(overview_path(path, level), "w", **_level_profile(base, factor)) as out:
            rows = block_rows(src.width, src.count)
            for r0 in range(0, src.height, rows):
                n = min(rows, src.height - r0)
                block = reduce_2x2(src.read(window=Window(0, r0, src.width, n)), nodata, method)
                out.write(block, window=Window(0, r0 // 2, block.shape[2], block.shape[1]))
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(ns="rio_overview", resampling=method)
