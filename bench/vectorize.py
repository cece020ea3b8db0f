"""Time and peak RSS of ``rsmamba vectorize`` against a whole-raster ``features.shapes``.

    python bench/vectorize.py            # 5000^2, 10000^2, 20000^2 (~100k buildings at 20000^2)
    python bench/vectorize.py --quick    # 2000^2 and 4000^2
    python bench/vectorize.py --all-classes   # every class: the ground too, one polygon across the
                                              # scene with a hole per building (vectorize_all.json)

The class raster (0 = ground, 1 = building; rotated rectangles and L-shapes, one per 63 px
cell, so ~100k at 20000^2, many straddling the 2048 px blocks) is generated strip by strip
into a tiled GeoTIFF, so the generator stays in bounded memory. Each run is a fresh
subprocess whose own peak RSS (VmHWM) is measured. Baseline in the same run and on the same
raster: ``rasterio.features.shapes`` on the whole raster with a building mask, each feature
turned into a shapely polygon (no output written; ours writes a GeoPackage).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio import features
from rasterio.transform import from_origin
from rasterio.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import print_table, run_measured, write_result  # noqa: E402

CELL = 63


def buildings_in_cell_row(cell_row: int, n_cols: int, seed: int = 0) -> list:
    """Buildings of one row of cells, in pixel coordinates; the same whatever strip asks."""
    rng = np.random.default_rng([seed, cell_row])
    w = rng.uniform(12, 36, n_cols)
    h = rng.uniform(10, 30, n_cols)
    ang = rng.uniform(0, np.pi, n_cols)
    cx = (np.arange(n_cols) + 0.5) * CELL + rng.uniform(-8, 8, n_cols)
    cy = (cell_row + 0.5) * CELL + rng.uniform(-8, 8, n_cols)
    ell = rng.random(n_cols) < 0.3
    polys = []
    for i in range(n_cols):
        c, s = np.cos(ang[i]), np.sin(ang[i])
        rot = np.array([[c, -s], [s, c]])
        rects = [(-w[i] / 2, -h[i] / 2, w[i] / 2, h[i] / 2)]
        if ell[i]:  # a wing on one side: an L-shaped building
            rects.append((-w[i] / 2, h[i] / 2 - 1, -w[i] / 2 + w[i] / 3, h[i] / 2 + h[i] / 3))
        for x0, y0, x1, y1 in rects:
            local = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])
            polys.append(shapely.Polygon(local @ rot.T + [cx[i], cy[i]]))
    return polys


def make_raster(path: Path, size: int, strip: int = 512) -> int:
    """Write the class raster strip by strip; return the number of cells (buildings)."""
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "uint8",
               "crs": "EPSG:32632", "transform": from_origin(500000, 5000000, 0.25, 0.25), "nodata": 255,
               "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate", "BIGTIFF": "IF_SAFER"}
    n_cols = size // CELL
    with rasterio.open(path, "w", **profile) as dst:
        for r0 in range(0, size, strip):
            r1 = min(size, r0 + strip)
            polys = []
            for cr in range(max(0, r0 // CELL - 1), min(size // CELL, r1 // CELL + 1)):
                polys += buildings_in_cell_row(cr, n_cols)
            arr = features.rasterize(((p, 1) for p in polys), out_shape=(r1 - r0, size),
                                     transform=Affine.translation(0, r0), fill=0, dtype="uint8") if polys else \
                np.zeros((r1 - r0, size), "uint8")
            dst.write(arr[None], window=Window(0, r0, size, r1 - r0))
    return n_cols * (size // CELL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", type=str, default="", help="comma-separated raster sizes")
    parser.add_argument("--block", type=int, default=2048)
    parser.add_argument("--no-baseline-above", type=int, default=20000, help="skip the whole-raster baseline above this size")
    parser.add_argument("--all-classes", action="store_true",
                        help="vectorize every class (ground and buildings), against shapes of every value")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([2000, 4000] if args.quick else [5000, 10000, 20000])
    work = Path(tempfile.mkdtemp(prefix="rsmamba-bench-vectorize-"))
    rows = []
    classes = None if args.all_classes else ["building"]
    mask = "a != 255" if args.all_classes else "a == 1"
    try:
        base_t, base_rss = run_measured("import rsmamba.vectorize, rsmamba.cli")
        for size in sizes:
            src = work / f"classes_{size}.tif"
            cells = make_raster(src, size)
            out = work / f"buildings_{size}.gpkg"
            ours = (f"from rsmamba.vectorize import vectorize_raster\n"
                    f"s = vectorize_raster({str(src)!r}, {str(out)!r}, classes={classes!r}, block_size={args.block})\n"
                    f"print(s.describe())")
            dt, rss = run_measured(ours)
            import pyogrio

            n_ours = pyogrio.read_info(out)["features"]
            row = {"size": f"{size}x{size}", "polygons" if args.all_classes else "buildings": n_ours, "cells": cells,
                   "seconds": dt, "peak_rss_mib": rss}
            if size <= args.no_baseline_above:
                whole = (f"import rasterio, shapely\nfrom rasterio import features\n"
                         f"with rasterio.open({str(src)!r}) as s: a = s.read(1)\n"
                         f"n = sum(1 for g, v in features.shapes(a, mask={mask}, connectivity=4) if shapely.geometry.shape(g))\n"
                         f"print(n)")
                bt, brss = run_measured(whole)
                row.update({"shapes_seconds": bt, "shapes_peak_rss_mib": brss,
                            "time_ratio": dt / bt, "rss_ratio": rss / brss})
            rows.append(row)
            out.unlink()
            src.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    growth = rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"]
    print_table(rows, ["size", "polygons" if args.all_classes else "buildings", "seconds", "peak_rss_mib", "shapes_seconds", "shapes_peak_rss_mib",
                       "time_ratio", "rss_ratio"])
    print(f"import-only peak RSS: {base_rss:.0f} MiB; ours largest/smallest peak RSS: {growth:.2f} "
          f"for {rows[-1]['size']} vs {rows[0]['size']} ({(int(sizes[-1]) / int(sizes[0])) ** 2:.0f}x the pixels)")
    path = write_result("vectorize_all" if args.all_classes else "vectorize", {"rows": rows, "import_baseline_rss_mib": base_rss, "rss_growth_ratio": growth,
                                      "block": args.block}, quick=args.quick)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
