"""Peak memory of ``vectorize --instances`` as the raster grows (issue #17): block-wise stays bounded.

Writes, window by window, a class raster and a predict-style probability raster (p(background),
p(building), p(interior), p(contact)) holding a regular grid of terraces (four touching houses
each, contact ridges on the party walls), then runs ``vectorize --instances`` (``--regularize``
with ``--regularize``: per polygon, slower, no more memory) in a
fresh process per size and reports its wall time and peak RSS, beside the number of houses found
(which must be four per terrace).

    python bench/instances_memory.py                       # 4096 and 20000 px
    python bench/instances_memory.py --sizes 2048 8192     # other sizes
    python bench/instances_memory.py --every 4             # a terrace in every 4th cell per axis (16x fewer houses)
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import print_table, run_measured, write_result  # noqa: E402

PERIOD_R, PERIOD_C = 64, 120  # one terrace per 64 x 120 px cell
HOUSE_W, DEPTH, N_HOUSES, WALL = 24, 40, 4, 3


def _pattern(r0: int, c0: int, h: int, w: int, every: int = 1) -> tuple[np.ndarray, ...]:
    """Class and probability rows ``[r0, r0 + h)``: a terrace in every ``every``-th cell of each axis."""
    rows, cols = np.arange(r0, r0 + h)[:, None], np.arange(c0, c0 + w)[None, :]
    rr, cc = rows % PERIOD_R, cols % PERIOD_C
    occupied = ((rows // PERIOD_R) % every == 0) & ((cols // PERIOD_C) % every == 0)
    inside = occupied & (rr >= 8) & (rr < 8 + DEPTH) & (cc >= 8) & (cc < 8 + N_HOUSES * HOUSE_W)
    local = cc - 8
    to_wall = np.minimum(local % HOUSE_W, HOUSE_W - 1 - local % HOUSE_W)
    party = inside & (to_wall < WALL) & (local >= WALL) & (local < N_HOUSES * HOUSE_W - WALL)
    edge = np.minimum(np.minimum(rr - 8, 8 + DEPTH - 1 - rr), np.minimum(local, N_HOUSES * HOUSE_W - 1 - local))
    interior = inside & ~party & (edge >= 2)
    cls = inside.astype(np.uint8)
    building = np.where(inside, 230, 20).astype(np.uint8)
    return cls, np.stack([254 - building, building, np.where(interior, 240, 10).astype(np.uint8),
                          np.where(party, 235, 5).astype(np.uint8)])


def write_rasters(folder: Path, size: int, every: int = 1) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    transform = Affine(0.25, 0.0, 500000.0, 0.0, -0.25, 5000000.0)
    common = {"driver": "GTiff", "width": size, "height": size, "crs": "EPSG:32632", "transform": transform,
              "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate", "BIGTIFF": "YES",
              "nodata": 255, "dtype": "uint8"}
    cls_path, prob_path = folder / "classes.tif", folder / "probs.tif"
    with rasterio.open(cls_path, "w", count=1, **common) as cls_dst, \
            rasterio.open(prob_path, "w", count=4, **common) as prob_dst:
        cls_dst.update_tags(CLASS_NAMES='["background", "building"]')
        for i, d in enumerate(["p(background)", "p(building)", "p(interior)", "p(contact)"], start=1):
            prob_dst.set_band_description(i, d)
        prob_dst.update_tags(SCALE="1/254")
        for r0 in range(0, size, 1024):
            h = min(1024, size - r0)
            cls, prob = _pattern(r0, 0, h, size, every)
            cls_dst.write(cls[None], window=Window(0, r0, size, h))
            prob_dst.write(prob, window=Window(0, r0, size, h))
    return cls_path, prob_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 20000])
    ap.add_argument("--every", type=int, default=1,
                    help="a terrace in every N-th cell of each axis (1: the dense grid, 208k houses at 20000 px)")
    ap.add_argument("--regularize", action="store_true", help="also regularise (per polygon; slower, same memory)")
    ap.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / ".work" / "instances_memory")
    args = ap.parse_args()
    rows = []
    for size in args.sizes:
        folder = args.work / str(size)
        shutil.rmtree(folder, ignore_errors=True)
        cls_path, prob_path = write_rasters(folder, size, args.every)
        out = folder / "houses.gpkg"
        code = (f"from rsmamba.vectorize.api import vectorize_raster\n"
                f"s = vectorize_raster({str(cls_path)!r}, {str(out)!r}, classes=['building'], "
                f"probabilities={str(prob_path)!r}, instances=True, regularize={args.regularize}, block_size=2048)\n")
        seconds, rss = run_measured(code)
        import pyogrio

        houses = int(pyogrio.read_info(out)["features"])
        cells = -(-size // (PERIOD_R * args.every)) * -(-size // (PERIOD_C * args.every))
        full = len(range(0, size // PERIOD_R, args.every)) * len(range(0, size // PERIOD_C, args.every))
        rows.append({"size": size, "every": args.every, "houses": houses, "terraces_whole": full, "terrace_cells": cells,
                     "seconds": round(seconds, 1), "peak_rss_mib": round(rss, 1)})
        shutil.rmtree(folder, ignore_errors=True)
    print_table(rows, ["size", "every", "houses", "terraces_whole", "terrace_cells", "seconds", "peak_rss_mib"])
    name = "instances_memory" if args.every == 1 else f"instances_memory-every{args.every}"
    path = write_result(name, {"what": f"vectorize --instances{' --regularize' if args.regularize else ''}"
                                                      ", block 2048, peak RSS of the child process", "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
