"""Time and peak RSS of the synthetic scene generator as the scene grows.

    python bench/synth.py            # 1024^2 and 2048^2 (the issue asks for 2048^2 in seconds)
    python bench/synth.py --quick    # 512^2 and 1024^2
    python bench/synth.py --sizes 4096

Each run is a fresh subprocess (imports done before the clock starts) so that peak RSS is the
generator's own. Baseline in the same run, same size: the irreducible floor of writing the
same orthophoto, i.e. drawing its sensor noise and writing one 3-band deflate GeoTIFF. The ratio
generate-and-write / floor is what to compare between machines; seconds are noisy on shared CPUs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import print_table, write_result  # noqa: E402

PRELUDE = (
    "import numpy as np, rasterio, tempfile, shapely, pyproj, geopandas\n"
    "import rsmamba.synth as S\n"
    "from rasterio.transform import from_origin\n"
)


GENERATE = "scene = S.generate_scene({size}, seed=1, gsd=0.25)"
WRITE = "d = tempfile.mkdtemp(); S.write_scene(d, size={size}, seed=1, gsd=0.25)"
FLOOR = (
    "d = tempfile.mkdtemp()\n"
    "rng = np.random.default_rng(0)\n"
    "img = np.clip(128 + 6 * rng.standard_normal((3, {size}, {size}), dtype=np.float32), 1, 255).astype(np.uint8)\n"
    "prof = dict(driver='GTiff', width={size}, height={size}, count=3, dtype='uint8', crs='EPSG:32632',\n"
    "            transform=from_origin(0, 0, 0.25, 0.25), compress='deflate', predictor=2, tiled=True, interleave='pixel')\n"
    "with rasterio.open(d + '/x.tif', 'w', **prof) as f: f.write(img)"
)


def measure(body: str, size: int) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of ``body`` alone, peak RSS MiB of the process) in a fresh interpreter.

    CPU seconds are the better 'on one core' figure on a shared machine: waiting for a core is not counted.
    """
    import subprocess

    code = PRELUDE + "import time\nt0, c0 = time.perf_counter(), time.process_time()\n" + body.format(size=size) + "\nprint('TIMED', time.perf_counter() - t0, time.process_time() - c0)\n"
    wrapper = (
        f"exec(compile({code!r}, '<bench>', 'exec'))\n"
        "rss = [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0] / 1024\n"
        "print('RSS', rss)\n"
    )
    out = subprocess.run([sys.executable, "-c", wrapper], check=True, capture_output=True, text=True).stdout
    _, seconds, cpu = [ln for ln in out.splitlines() if ln.startswith("TIMED ")][-1].split()
    rss = float([ln for ln in out.splitlines() if ln.startswith("RSS ")][-1].split()[1])
    return float(seconds), float(cpu), rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="*")
    args = parser.parse_args()
    sizes = args.sizes or ([512, 1024] if args.quick else [1024, 2048])
    rows = []
    for size in sizes:
        floor, floor_cpu, _ = measure(FLOOR, size)
        gen, gen_cpu, gen_rss = measure(GENERATE, size)
        write, write_cpu, write_rss = measure(WRITE, size)
        rows.append({
            "size": size, "generate_s": gen, "generate_cpu_s": gen_cpu, "generate_and_write_s": write,
            "generate_and_write_cpu_s": write_cpu, "floor_s": floor, "floor_cpu_s": floor_cpu,
            "ratio_to_floor": write / floor, "cpu_ratio_to_floor": write_cpu / floor_cpu, "peak_rss_mib": max(gen_rss, write_rss),
        })
    print_table(rows, ["size", "generate_s", "generate_cpu_s", "generate_and_write_s", "generate_and_write_cpu_s",
                       "floor_s", "floor_cpu_s", "ratio_to_floor", "cpu_ratio_to_floor", "peak_rss_mib"])
    path = write_result("synth", {"rows": rows, "gsd": 0.25, "baseline": "noise + one 3-band deflate GeoTIFF of the same size"},
                        quick=args.quick)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
