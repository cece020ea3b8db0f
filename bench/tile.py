"""Peak RSS and time of ``rsmamba tile`` as the scene grows (memory must not grow with it).

    python bench/tile.py            # 5000^2 and 20000^2, 3-band uint8, 512 px chips
    python bench/tile.py --quick    # 2000^2 and 6000^2

Each raster is generated block by block into a tiled, compressed GeoTIFF (bounded memory),
then tiled in a fresh subprocess whose peak RSS is measured alone. Baselines in the same
run: the peak RSS of a bare interpreter importing the same modules, and the raster's size.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import print_table, run_measured, write_result  # noqa: E402


def make_raster(path: Path, size: int, block: int = 1024) -> None:
    """A textured 3-band uint8 scene written one block row at a time."""
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 3, "dtype": "uint8",
               "crs": "EPSG:32632", "transform": from_origin(500000, 5000000, 0.25, 0.25),
               "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate", "BIGTIFF": "IF_SAFER"}
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, size, block):
            h = min(block, size - row)
            yy, xx = np.mgrid[row:row + h, 0:size]
            base = (np.sin(xx / 37.0) * np.cos(yy / 53.0) * 60 + 120).astype(np.int16)
            noise = rng.integers(-20, 20, size=(3, h, size), dtype=np.int16)
            dst.write(np.clip(base[None] + noise, 0, 255).astype(np.uint8), window=Window(0, row, size, h))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--chip", type=int, default=512)
    args = parser.parse_args()
    sizes = (2000, 6000) if args.quick else (5000, 20000)
    work = Path(tempfile.mkdtemp(prefix="rsmamba-bench-tile-"))
    rows = []
    try:
        base_t, base_rss = run_measured("import rsmamba.tile, rsmamba.cli")
        for size in sizes:
            src = work / f"scene_{size}.tif"
            make_raster(src, size)
            out = work / f"chips_{size}"
            code = (f"from rsmamba.tile import tile_scene\n"
                    f"s = tile_scene({str(src)!r}, {str(out)!r}, size={args.chip}, overlap=0)\n"
                    f"print(s.describe())")
            dt, rss = run_measured(code)
            n_chips = sum(1 for _ in (out / "images").iterdir())
            rows.append({"size": f"{size}x{size}", "pixels": size * size, "chips": n_chips, "seconds": dt,
                         "mpix_per_s": size * size / dt / 1e6, "peak_rss_mib": rss,
                         "raster_mib": size * size * 3 / 2**20})
            shutil.rmtree(out)
            src.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    growth = rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"]
    print_table(rows, ["size", "chips", "seconds", "mpix_per_s", "peak_rss_mib", "raster_mib"])
    print(f"import-only baseline peak RSS: {base_rss:.0f} MiB; largest/smallest peak RSS ratio: {growth:.3f}")
    limit_ok = rows[-1]["peak_rss_mib"] < 1024
    print(f"peak RSS of the largest scene below 1 GiB: {limit_ok}")
    path = write_result("tile", {"rows": rows, "import_baseline_rss_mib": base_rss, "rss_growth_ratio": growth,
                                 "largest_below_1GiB": limit_ok, "chip": args.chip}, quick=args.quick)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
