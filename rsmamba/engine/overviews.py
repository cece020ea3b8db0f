"""Mode overviews of a class raster, computed in NumPy and written into GDAL's overview levels.

Why: GDAL's ``mode`` resampling is a generic per-window histogram; for a 4096² class raster it
took 0.36 s of a 1.9 s near-free-model predict (``bench/predict.py --parts ceiling``), longer than
all the blending. A 2 x 2 mode over uint8 labels is a few vectorised comparisons. Each level is
computed from the one below it (as GDAL cascades), in row blocks, so memory stays bounded.

The rule is GDAL's: nodata pixels do not vote; among the others the value with the most votes
wins, and on a tie the value whose votes were complete first in row-major order (its last
occurrence comes earliest); all nodata gives nodata. On rasters of even size the result equals
GDAL's ``mode`` pixel for pixel; at an odd edge GDAL stretches its windows over the whole row
(a ratio of 65/33, say), while here the last block is a partial 2 x 2 one.
"""

from __future__ import annotations

import os

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

__all__ = ["mode_2x2", "build_mode_overviews"]

ROWS_PER_BLOCK = 1024  # rows of the finer level read at a time (even): bounded memory on any raster


def mode_2x2(a: np.ndarray, nodata: int) -> np.ndarray:
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


def build_mode_overviews(path: str | os.PathLike[str], factors: list[int], nodata: int) -> None:
    """Give the single-band uint8 GeoTIFF at ``path`` overviews at ``factors`` (powers of two), by mode.

    GDAL allocates the levels (cheap nearest resampling), then each level is overwritten with
    the 2 x 2 mode of the level below, read and written in blocks of rows.
    """
    factors = sorted(factors)
    if any(f != 2 ** (i + 1) for i, f in enumerate(factors)):
        raise ValueError(f"mode overviews need factors 2, 4, 8, ...; got {factors}")
    with rasterio.open(path, "r+") as dst:
        dst.build_overviews(factors, Resampling.nearest)
        dst.update_tags(ns="rio_overview", resampling=Resampling.mode.name)
    for level in range(len(factors)):
        src_opts = {} if level == 0 else {"OVERVIEW_LEVEL": level - 1}
        with rasterio.open(path, **src_opts) as src, rasterio.open(path, "r+", OVERVIEW_LEVEL=level) as out:
            for r0 in range(0, src.height, ROWS_PER_BLOCK):
                n = min(ROWS_PER_BLOCK, src.height - r0)
                block = mode_2x2(src.read(1, window=Window(0, r0, src.width, n)), nodata)
                rows = min(block.shape[0], out.height - r0 // 2)
                out.write(block[:rows, : out.width], 1, window=Window(0, r0 // 2, out.width, rows))
