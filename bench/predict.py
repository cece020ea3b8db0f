"""``rsmamba predict``: pipeline ceiling, pipeline overhead, MONAI, and memory, in one run.

    python bench/predict.py                  # everything: ceiling 4096², (a)+(c) 2048², (b) below
    python bench/predict.py --quick          # small sizes; writes results/predict-quick.json
    python bench/predict.py --parts ceiling  # any of ceiling, ac, b, heap (comma-separated); other results kept

(ceiling) the pipeline alone: ``predict_raster`` with a near-free model (a channel gather, no
    network) on a 4096² 3-band scene of land-cover-like patches, against reading the same
    windows alone (GeoTIFF decode only). Target >= 25 MPix/s for the near-free model. The CPU
    seconds of each (all threads of the process) are recorded too: on a shared machine the load
    stretches wall times, while the CPU time is the work the pipeline does.
(a) end-to-end ``predict_raster`` (read GeoTIFF, normalise, forward, blend, write the class COG)
    time vs. the same network's forward alone on the same windows pre-loaded in RAM, same
    batches: ratio = forward-only time / end-to-end time (1.0 = I/O and stitching fully hidden).
(c) MONAI ``sliding_window_inference`` (gaussian, same windows, whole image in RAM) vs. rsmamba
    with gaussian blending (no edge-aware weights, as MONAI): same probabilities to tolerance,
    and time ratio rsmamba / MONAI (rsmamba's time includes reading and writing the files).
    Skipped, with a note, when MONAI is not installed (``pip install 'rsmamba[bench]'``).
(heap) ``rsmamba predict`` with the freed heap kept for the next batch (``limit_heap_growth``, as the
    command runs) against glibc's default trimming: time, kernel time and peak RSS of each, in fresh processes.
(b) peak RSS (VmHWM of a fresh child process) of ``predict_raster`` against scene size, and the
    ``--dry-run`` memory estimate (another fresh child) against it: a near-free model reading
    image + DSM (4 channels) at ``--mem-sizes``, and the shipped demo model (CMT-UNet + DSM,
    512 px windows) at ``--demo-sizes``. Scenes are written on the fly (uncompressed tiled
    GeoTIFFs, a synthetic town tiled to size) and deleted after.
Each part runs in a fresh process, under the malloc settings ``predict_raster`` makes
(``limit_heap_growth``): the heap an earlier part grew would otherwise speed up a later part's forward passes.
Times are the best of ``--repeat`` (2) alternating runs; the load average (the machine may be shared) is
recorded with every part, and every target is a ratio within the same run. The process runs under the
OpenMP wait policy ``rsmamba predict`` sets for itself (``passive_openmp_waits``, recorded in the JSON),
so forward-only, MONAI and rsmamba are all measured as the command line runs them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rsmamba.engine.options import passive_openmp_waits

PASSIVE_OPENMP = passive_openmp_waits()  # before torch loads, as 'rsmamba predict' does

import numpy as np  # noqa: E402
import rasterio  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import RESULTS, print_table, write_result  # noqa: E402
from tile import make_raster  # noqa: E402

WINDOW, OVERLAP, BATCH = 256, 32, 4
REPEAT = 2  # alternating repetitions; the best time of each counts (--repeat)


def medium_net() -> torch.nn.Module:
    """A conv net heavy enough that compute matters, as a real segmentation model's does."""
    torch.manual_seed(0)
    c = 32
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, c, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(c, c, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(c, c, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(c, 6, 1),
    ).eval()


class Gather(torch.nn.Module):
    """The near-free model: 6 "logits" gathered from the input channels, no computation."""

    def __init__(self, in_chans: int = 3, classes: int = 6) -> None:
        super().__init__()
        self.register_buffer("index", torch.arange(classes) % in_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(1, self.index)


NEAR_FREE = ("class Gather(torch.nn.Module):\n"
             "    def __init__(self, c):\n"
             "        super().__init__(); self.register_buffer('index', torch.arange(6) % c)\n"
             "    def forward(self, x):\n"
             "        return x.index_select(1, self.index)\n")


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def make_patch_scene(path: Path, size: int, block: int = 1024, cell: int = 48) -> None:
    """A 3-band uint8 scene of land-cover-like patches (each a dominant band) with pixel noise.

    A class map of such a scene is made of regions, as a segmentation's is, so its compression
    and overview costs are those of a real map (white noise would compress several times worse).
    """
    from rasterio.transform import from_origin

    profile = {"driver": "GTiff", "width": size, "height": size, "count": 3, "dtype": "uint8",
               "crs": "EPSG:32632", "transform": from_origin(500000, 5000000, 0.25, 0.25),
               "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate", "BIGTIFF": "IF_SAFER"}
    rng = np.random.default_rng(0)
    cells = rng.integers(40, 200, size=(3, size // cell + 1, size // cell + 1)).astype(np.int16)
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, size, block):
            h = min(block, size - row)
            base = cells[:, np.arange(row, row + h) // cell][:, :, np.arange(size) // cell]
            noise = rng.integers(-8, 8, size=(3, h, size), dtype=np.int16)
            dst.write(np.clip(base + noise, 0, 255).astype(np.uint8), window=rasterio.windows.Window(0, row, size, h))


def make_town(work: Path, size: int, tile: int = 1024) -> tuple[Path, Path]:
    """Ortho (3-band uint8) + DSM (float32) of ``size``², a synthetic town of ``tile``² repeated.

    Written uncompressed, tiled, block row by block row: a 20000² pair takes seconds and bounded
    memory; the pixels are a real scene's (buildings, trees, roads), so the demo model sees data
    like its training data.
    """
    from rsmamba.synth import generate_scene

    scene = generate_scene(tile, seed=0)
    ortho_tile, dsm_tile = scene.t1.ortho, scene.t1.dsm.astype(np.float32)
    paths = (work / f"town_{size}.tif", work / f"town_{size}_dsm.tif")
    base = {"driver": "GTiff", "width": size, "height": size, "crs": "EPSG:32632",
            "transform": rasterio.transform.from_origin(500000, 5000000, 0.25, 0.25), "tiled": True,
            "blockxsize": 256, "blockysize": 256, "BIGTIFF": "YES"}
    for path, arr in zip(paths, (ortho_tile, dsm_tile[None])):
        with rasterio.open(path, "w", count=arr.shape[0], dtype=arr.dtype, **base) as dst:
            reps = -(-size // tile)
            for row in range(0, size, tile):
                h = min(tile, size - row)
                band = np.tile(arr[:, :h], (1, 1, reps))[:, :, :size]
                dst.write(band, window=rasterio.windows.Window(0, row, size, h))
    return paths


def child(code: str) -> dict:
    """Run ``code`` in a fresh Python; it sets ``result`` (a dict); return it with the child's
    wall time and peak RSS (VmHWM of its own address space) in MiB."""
    wrapper = (
        "import json, time\n"
        "t0 = time.perf_counter()\nresult = {}\n"
        f"exec(compile({code!r}, '<bench>', 'exec'))\n"
        "result['seconds'] = time.perf_counter() - t0\n"
        "result['peak_rss_mib'] = [int(l.split()[1]) for l in open('/proc/self/status') "
        "if l.startswith('VmHWM')][0] / 1024\n"
        "print('BENCH', json.dumps(result))\n"
    )
    out = subprocess.run([sys.executable, "-c", wrapper], check=True, capture_output=True, text=True)
    return json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("BENCH ")][-1][6:])


def read_only(src_path: Path) -> float:
    """Seconds to read (decode) every window of the grid, nothing else."""
    from rsmamba.raster.source import AlignedSource
    from rsmamba.raster.windows import WindowGrid

    t0 = time.perf_counter()
    with AlignedSource(src_path) as src:
        for _, windows in WindowGrid(src.width, src.height, WINDOW, OVERLAP).rows():
            for w in windows:
                src.read_image(w)
    return time.perf_counter() - t0


def near_free_run(src_path: Path, out: Path) -> float:
    from rsmamba.predict import predict_raster
    from rsmamba.engine.model import LoadedModel, default_classes

    t0 = time.perf_counter()
    predict_raster(src_path, out, model=LoadedModel(Gather(), classes=default_classes(6)), window=WINDOW,
                   overlap=OVERLAP, batch_size=BATCH, blend="gaussian", edge_aware=False, overwrite=True)
    return time.perf_counter() - t0


def forward_only(src_path: Path, net: torch.nn.Module) -> float:
    """Seconds for the network alone over the same windows and batches, inputs already in RAM."""
    from rsmamba.engine.model import LoadedModel, Predictor
    from rsmamba.raster.normalize import compute_stats, normalize
    from rsmamba.raster.source import AlignedSource
    from rsmamba.raster.windows import WindowGrid

    with AlignedSource(src_path) as src:
        stats, _ = compute_stats(src)
        grid = WindowGrid(src.width, src.height, WINDOW, OVERLAP)
        windows = list(grid)  # row-major, cut into runs of BATCH: the engine's batches (grid_batches)
        batches = [np.stack([normalize(src.read_image(w), stats) for w in windows[i:i + BATCH]])
                   for i in range(0, len(windows), BATCH)]
    predictor = Predictor(LoadedModel(net))
    predictor(batches[0])  # warm-up
    t0 = time.perf_counter()
    for b in batches:
        predictor(b)
    return time.perf_counter() - t0


def end_to_end(src_path: Path, out: Path, net: torch.nn.Module, probabilities: bool) -> float:
    from rsmamba.predict import predict_raster
    from rsmamba.engine.model import LoadedModel, default_classes

    t0 = time.perf_counter()
    predict_raster(src_path, out, model=LoadedModel(net, classes=default_classes(6)), window=WINDOW,
                   overlap=OVERLAP, batch_size=BATCH, blend="gaussian", edge_aware=False, overwrite=True,
                   probabilities=out.with_name("probs.tif") if probabilities else None)
    return time.perf_counter() - t0


def monai_run(src_path: Path, net: torch.nn.Module) -> tuple[float, np.ndarray]:
    from monai.inferers import sliding_window_inference

    from rsmamba.raster.normalize import compute_stats, normalize
    from rsmamba.raster.source import AlignedSource

    with AlignedSource(src_path) as src:
        stats, _ = compute_stats(src)
        x = torch.from_numpy(normalize(src.read_image(rasterio.windows.Window(0, 0, src.width, src.height)), stats))
    t0 = time.perf_counter()
    with torch.inference_mode():
        probs = sliding_window_inference(
            x[None], (WINDOW, WINDOW), BATCH, lambda t: torch.softmax(net(t), 1), overlap=OVERLAP / WINDOW,
            mode="gaussian", sigma_scale=0.125,
        )
    return time.perf_counter() - t0, probs[0].numpy()


def part_ceiling(work: Path, size: int) -> dict:
    src = work / f"patches_{size}.tif"
    make_patch_scene(src, size)
    at_start = load()
    t_read, t_free, cpu_read, cpu_free = [], [], [], []
    for _ in range(REPEAT):  # CPU seconds (all threads of this process) alongside: a shared machine's
        c0 = time.process_time()  # load stretches wall times, not the work done
        t_read.append(read_only(src))
        c1 = time.process_time()
        t_free.append(near_free_run(src, work / "free.tif"))
        cpu_read.append(c1 - c0)
        cpu_free.append(time.process_time() - c1)
    mpix = size * size / 1e6
    read, free = min(t_read), min(t_free)
    rows = [{"run": "read windows only", "seconds": read, "mpix_per_s": mpix / read, "cpu_seconds": min(cpu_read)},
            {"run": "predict, near-free model", "seconds": free, "mpix_per_s": mpix / free,
             "cpu_seconds": min(cpu_free)}]
    print(f"(ceiling) scene {size}x{size}, window {WINDOW}, overlap {OVERLAP}, batch {BATCH}; load {at_start}")
    print_table(rows, ["run", "seconds", "mpix_per_s", "cpu_seconds"])
    print(f"(ceiling) near-free model {mpix / min(cpu_free):.1f} MPix per CPU second")
    print(f"(ceiling) near-free model {mpix / free:.1f} MPix/s (target >= 25), {read / free:.3f} of the read-only "
          f"speed; load {at_start} -> {load()}")
    src.unlink()
    return {"ceiling": {"scene": size, "timings": rows, "all_times": {"read": t_read, "near_free": t_free},
                        "all_cpu_seconds": {"read": cpu_read, "near_free": cpu_free},
                        "near_free_mpix_per_s": mpix / free, "near_free_over_read_only": read / free,
                        "near_free_mpix_per_cpu_s": mpix / min(cpu_free),
                        "load_average": [at_start, load()]}}


def part_ac(work: Path, scene: int) -> dict:
    try:
        import monai  # noqa: F401
        have_monai = True
    except ImportError:
        have_monai = False
        print("(c) skipped: MONAI is not installed (pip install 'rsmamba[bench]')")
    src = work / f"scene_{scene}.tif"
    make_raster(src, scene)
    net = medium_net()
    at_start = load()
    t_fwd, t_e2e, t_e2e_p, t_monai = [], [], [], []
    for _ in range(REPEAT):
        t_fwd.append(forward_only(src, net))
        t_e2e.append(end_to_end(src, work / "classes.tif", net, probabilities=False))
        t_e2e_p.append(end_to_end(src, work / "classes.tif", net, probabilities=True))
        if have_monai:
            dt, monai_probs = monai_run(src, net)
            t_monai.append(dt)
    fwd, e2e, e2e_p = min(t_fwd), min(t_e2e), min(t_e2e_p)
    mpix = scene * scene / 1e6
    rows_a = [
        {"run": "forward only (RAM)", "seconds": fwd, "mpix_per_s": mpix / fwd},
        {"run": "rsmamba end-to-end", "seconds": e2e, "mpix_per_s": mpix / e2e},
        {"run": "rsmamba + probabilities", "seconds": e2e_p, "mpix_per_s": mpix / e2e_p},
    ]
    result = {"scene": scene, "all_times": {"forward": t_fwd, "e2e": t_e2e, "e2e_probabilities": t_e2e_p,
                                            "monai": t_monai},
              "a_throughput_ratio": fwd / e2e, "a_throughput_ratio_probabilities": fwd / e2e_p}
    if have_monai:
        mon = min(t_monai)
        rows_a.append({"run": "MONAI sliding_window", "seconds": mon, "mpix_per_s": mpix / mon})
        with rasterio.open(work / "probs.tif") as ds:
            ours = ds.read().astype(np.float32) / 254
        diff = np.abs(ours - monai_probs)
        agree = float((ours.argmax(0) == monai_probs.argmax(0)).mean())
        result.update({
            "c_time_ratio_rsmamba_over_monai": e2e_p / mon, "c_time_ratio_class_output_only_over_monai": e2e / mon,
            "c_max_abs_prob_diff": float(diff.max()), "c_mean_abs_prob_diff": float(diff.mean()),
            "c_argmax_agreement": agree,
        })
    print(f"(a,c) scene {scene}x{scene}, window {WINDOW}, overlap {OVERLAP}, batch {BATCH}, "
          f"torch threads {torch.get_num_threads()}; load {at_start}")
    print_table(rows_a, ["run", "seconds", "mpix_per_s"])
    print(f"(a) end-to-end / forward-only throughput: {fwd / e2e:.3f} (target >= 0.95); "
          f"with probabilities {fwd / e2e_p:.3f}")
    if have_monai:
        print(f"(c) rsmamba / MONAI time: {e2e / mon:.3f} (class COG, target <= 0.9), {e2e_p / mon:.3f} (class + "
              f"probability COGs, target <= 1.0); probabilities max |diff| {diff.max():.4f}, mean {diff.mean():.5f}; "
              f"argmax agreement {agree:.5f}")
    result.update({"timings": rows_a, "load_average": [at_start, load()]})
    src.unlink()
    return result


PREDICT_CHILD = """
from rsmamba.engine.options import passive_openmp_waits
passive_openmp_waits()  # as 'rsmamba predict' runs
import torch
from rsmamba.predict import predict_raster
from rsmamba.engine.model import LoadedModel, default_classes
{model}
summary = predict_raster({src!r}, {out!r}, dsm={dsm!r}, model=model, window=512, overlap=128, dry_run={dry_run},
                         overwrite=True)
result['estimate_mib'] = summary.memory_bytes / 2**20
"""


def part_memory(work: Path, sizes: list[int], demo_sizes: list[int]) -> dict:
    """Peak RSS and the dry-run estimate, per model and scene size."""
    near_free = NEAR_FREE + "model = LoadedModel(Gather(4), classes=default_classes(6), uses_dsm=True, in_chans=4)"
    cases = [("near-free + DSM", size, near_free) for size in sizes]
    cases += [("demo model + DSM", size, "model = None") for size in demo_sizes]
    rows, at_start = [], load()
    for name, size, model in cases:
        src, dsm = make_town(work, size)
        out = work / f"mem_{size}_classes.tif"
        kw = {"model": model, "src": str(src), "out": str(out), "dsm": str(dsm)}
        estimate = child(PREDICT_CHILD.format(dry_run=True, **kw))["estimate_mib"]
        run = child(PREDICT_CHILD.format(dry_run=False, **kw))
        rows.append({"model": name, "size": f"{size}x{size}", "seconds": run["seconds"],
                     "mpix_per_s": size * size / run["seconds"] / 1e6, "peak_rss_mib": run["peak_rss_mib"],
                     "dry_run_estimate_mib": estimate, "estimate_over_peak": estimate / run["peak_rss_mib"]})
        for path in (src, dsm, out):
            path.unlink(missing_ok=True)
        print("(b)", json.dumps(rows[-1]), flush=True)
    print(f"(b) peak RSS and --dry-run estimate; load {at_start}")
    print_table(rows, ["model", "size", "seconds", "mpix_per_s", "peak_rss_mib", "dry_run_estimate_mib",
                       "estimate_over_peak"])
    result = {"memory": rows, "load_average": [at_start, load()]}
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == name]
        if len(mine) > 1:
            growth = mine[-1]["peak_rss_mib"] / mine[0]["peak_rss_mib"]
            result[f"b_rss_growth_{name}"] = growth
            print(f"(b) {name}: peak RSS {mine[-1]['size']} / {mine[0]['size']} = {growth:.3f} (target < 1.10)")
    worst = max(abs(r["estimate_over_peak"] - 1) for r in rows)
    result["b_worst_estimate_error"] = worst
    print(f"(b) worst |dry-run estimate / peak - 1| = {worst:.3f} (target <= 0.25)")
    return result


HEAP_CHILD = """
import resource
from rsmamba.cli import main
assert main(['-q', 'predict', {src!r}, '-o', {out!r}, '--overwrite']) == 0
usage = resource.getrusage(resource.RUSAGE_SELF)
result.update(user_seconds=usage.ru_utime, system_seconds=usage.ru_stime)
"""


def part_heap(work: Path, size: int) -> dict:
    """``rsmamba predict`` (the shipped image-only model, its own window and TTA) as it runs (the freed heap
    kept, ``limit_heap_growth``) against glibc's default trimming (``MALLOC_TRIM_THRESHOLD_`` set to
    its default 128 KiB, which the command leaves alone): wall, kernel and user seconds, peak RSS."""
    from rsmamba.synth import generate_scene

    src, out = work / f"heap_{size}.tif", work / "heap_classes.tif"
    scene = generate_scene(size, seed=3)
    with rasterio.open(src, "w", driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs="EPSG:32632",
                       transform=rasterio.transform.from_origin(500000, 5000000, 0.25, 0.25), tiled=True,
                       blockxsize=256, blockysize=256, compress="deflate") as dst:
        dst.write(scene.t1.ortho)
    at_start, runs = load(), {"kept": [], "trimmed (glibc default)": []}
    for _ in range(REPEAT):
        for name, env in (("kept", {}), ("trimmed (glibc default)", {"MALLOC_TRIM_THRESHOLD_": "131072"})):
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            try:
                runs[name].append(child(HEAP_CHILD.format(src=str(src), out=str(out))))
            finally:
                for k, v in saved.items():
                    os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    rows = []
    for name, results in runs.items():
        best = min(results, key=lambda r: r["seconds"])
        rows.append({"heap": name, "seconds": best["seconds"], "system_seconds": best["system_seconds"],
                     "user_seconds": best["user_seconds"], "peak_rss_mib": best["peak_rss_mib"]})
    speedup = rows[1]["seconds"] / rows[0]["seconds"]
    memory = rows[0]["peak_rss_mib"] / rows[1]["peak_rss_mib"]
    print(f"(heap) rsmamba predict, shipped image-only model, {size}x{size}; load {at_start}")
    print_table(rows, ["heap", "seconds", "system_seconds", "user_seconds", "peak_rss_mib"])
    print(f"(heap) trimmed / kept time {speedup:.2f}x; peak RSS kept / trimmed {memory:.3f}")
    src.unlink()
    return {"heap": {"scene": size, "timings": rows, "all_times": {k: [r["seconds"] for r in v] for k, v in runs.items()},
                     "trimmed_over_kept_time": speedup, "kept_over_trimmed_peak_rss": memory,
                     "load_average": [at_start, load()]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--parts", default="ceiling,ac,b,heap",
                        help="which measurements: ceiling, ac, b, heap (comma-separated)")
    parser.add_argument("--heap-size", type=int, help="scene size for heap (default 2048, --quick 1024)")
    parser.add_argument("--scene", type=int, help="scene size for (a)+(c) (default 2048, --quick 1024)")
    parser.add_argument("--ceiling-size", type=int, help="scene size for the ceiling (default 4096, --quick 2048)")
    parser.add_argument("--mem-sizes", help="near-free sizes for (b), e.g. 4096,20000 (--quick 1024,4096)")
    parser.add_argument("--demo-sizes", help="demo-model sizes for (b), e.g. 1024,2048 (--quick: 1024)")
    parser.add_argument("--repeat", type=int, default=2, help="alternating repetitions of each timing (best counts)")
    args = parser.parse_args()
    global REPEAT
    REPEAT = max(1, args.repeat)
    parts = [p for p in ("ceiling", "ac", "b", "heap") if p in args.parts.split(",")]
    if len(parts) > 1:  # each part in a fresh process: the allocator's state (a heap a previous part grew
        for part in parts:  # and kept) changes forward-pass times, and a part must not depend on the others
            argv = [a for i, a in enumerate(sys.argv[1:]) if a != "--parts" and sys.argv[i] != "--parts"
                    and not a.startswith("--parts=")]
            subprocess.run([sys.executable, __file__, *argv, "--parts", part], check=True)
        return
    from rsmamba.engine.pipeline import limit_heap_growth

    limit_heap_growth()  # as predict_raster does before its first batch: forward-only and MONAI run under it too
    scene = args.scene or (1024 if args.quick else 2048)
    ceiling = args.ceiling_size or (2048 if args.quick else 4096)
    mem = args.mem_sizes if args.mem_sizes is not None else ("1024,4096" if args.quick else "4096,20000")
    demo = args.demo_sizes if args.demo_sizes is not None else ("1024" if args.quick else "1024,2048")
    sizes = [int(v) for v in mem.split(",") if v]
    demo = [int(v) for v in demo.split(",") if v]
    name = "predict-quick" if args.quick else "predict"
    work = Path(tempfile.mkdtemp(prefix="rsmamba-bench-predict-"))
    previous = RESULTS / f"{name}.json"
    result: dict = json.loads(previous.read_text()) if previous.exists() else {}
    for stale in ("machine", "b_rss_growth_ratio", "b_import_baseline_rss_mib", "b_largest_below_2GiB"):
        result.pop(stale, None)  # keys of earlier versions of this benchmark
    result.update({"window": WINDOW, "overlap": OVERLAP, "batch": BATCH, "threads": torch.get_num_threads(),
                   "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "") if PASSIVE_OPENMP else "default",
                   "each_part_in_a_fresh_process": True})
    try:
        if "ceiling" in parts:
            result.update(part_ceiling(work, ceiling))
        if "ac" in parts:
            result.update(part_ac(work, scene))
        if "b" in parts:
            result.update(part_memory(work, sizes, demo))
        if "heap" in parts:
            result.update(part_heap(work, args.heap_size or (1024 if args.quick else 2048)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {write_result(name, result)}")


if __name__ == "__main__":
    main()
