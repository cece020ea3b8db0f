"""Scale-out: throughput with 1 and 2 Dask workers, per-task overhead, and one scene in row slices.

    python bench/scale.py            # 8 scenes of 1024^2, a 3072^2 scene in 4 row slices
    python bench/scale.py --quick    # 4 scenes of 512^2, a 2048^2 scene in 4 row slices

All in one run, so the ratios compare like with like on this (noisy, shared) machine:
(a) many scenes with the shipped demo model (image + DSM): in this process (torch on every
    core), a LocalCluster of 1 worker, and of 2 workers. Each local worker gets cores / workers
    torch threads; the "1 thread" rows pin every worker to one thread, which isolates the
    scaling of the distributed layer from torch's own intra-op threading.
    Scaling ratio = throughput(2 workers) / throughput(1 worker). Throughput is measured on a
    warm cluster (started, model loaded in every worker by one warm-up scene each); the start
    and warm-up are reported apart (``startup_s``), since a campaign pays them once.
(b) per-task overhead: a job that copies a 1-byte file, run 1 and 1 + N times; the difference
    over N is the cost of one task (scheduling, pickling, result handling, the atomic check).
(c) one large scene: ``predict_raster`` in this process vs. ``predict_slices`` on 2 workers
    (4 slices, so both workers get the same share); time ratio, the windows the slices compute
    over those of one pass (slice borders run twice), and whether the class COGs are byte-identical.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import print_table, write_result  # noqa: E402

from rsmamba.jobs import Job, plan_jobs  # noqa: E402
from rsmamba.jobs.run import local_cluster, run_jobs  # noqa: E402
from rsmamba.predict.many import predict_job  # noqa: E402
from rsmamba.synth import write_scene  # noqa: E402

CORES = len(os.sched_getaffinity(0))


def make_scenes(root: Path, n: int, size: int) -> list[Path]:
    images = []
    for seed in range(n):
        paths = write_scene(root / f"s{seed}", size=size, seed=100 + seed, gsd=0.25)
        image = root / f"scene{seed}.tif"
        paths["ortho_t1"].rename(image)
        paths["dsm_t1"].rename(root / f"scene{seed}_dsm.tif")
        images.append(image)
    return images


def run_scenes(images: list[Path], out: Path, scheduler: str | None) -> float:
    """Seconds to predict every scene (fresh output folder, nothing skipped)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    jobs = plan_jobs(images, out)
    t0 = time.perf_counter()
    results = run_jobs(predict_job, jobs, kwargs={"model": None, "dsm_template": "{dir}/{stem}_dsm.tif"},
                       scheduler=scheduler, progress=False)
    dt = time.perf_counter() - t0
    assert all(r.status == "done" for r in results), results
    return dt


@contextlib.contextmanager
def warm_cluster(workers: int, threads: int | None, warmup: Path) -> Iterator[tuple[str, float]]:
    """A LocalCluster as ``run_jobs(scheduler="local")`` starts it, every worker's model loaded."""
    from dask.distributed import Client

    t0 = time.perf_counter()
    with local_cluster(workers, 1, threads) as cluster, Client(cluster) as client:
        client.run(_warm_up, str(warmup), str(warmup.parent / "warm"))
        yield cluster.scheduler_address, time.perf_counter() - t0


def _warm_up(image: str, out_dir: str) -> None:
    """On a worker: one scene, so the model sits in the worker's cache (and numba is compiled)."""
    out = Path(out_dir) / f"{os.getpid()}.tif"
    predict_job(Path(image), out, model=None, dsm_template="{dir}/{stem}_dsm.tif")


def task_overhead(root: Path, n: int, scheduler: str | None) -> dict:
    """Per-task cost from the difference of 1 + n tasks and 1 task (the same cluster for both)."""
    src = root / "one_byte"
    src.write_bytes(b"x")

    def timed(count: int) -> float:
        out = root / f"noop_{'dask' if scheduler else 'local'}_{count}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        jobs = [Job((src,), out / f"{i}.bin") for i in range(count)]
        t0 = time.perf_counter()
        run_jobs(shutil.copyfile, jobs, scheduler=scheduler, progress=False)
        return time.perf_counter() - t0

    one, many = timed(1), timed(1 + n)
    return {"mode": "in-process" if scheduler is None else "dask 2 workers (warm)", "tasks": n,
            "t_1_task_s": one, f"t_{1 + n}_tasks_s": many, "per_task_ms": (many - one) / n * 1000}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_large_scene(root: Path, size: int, slice_rows: int, warmup: Path) -> dict:
    from rsmamba.predict import predict_raster
    from rsmamba.predict.slices import predict_slices

    paths = write_scene(root / "large", size=size, seed=7, gsd=0.25)
    torch.set_num_threads(CORES)
    t0 = time.perf_counter()
    windows = {"window": 512, "overlap": 128}  # as documented (also the demo model's own window since 2026-12-05)
    predict_raster(paths["ortho_t1"], root / "large_single.tif", dsm=paths["dsm_t1"], **windows)
    single = time.perf_counter() - t0
    with warm_cluster(2, None, warmup) as (address, _):
        t0 = time.perf_counter()
        summary = predict_slices(paths["ortho_t1"], root / "large_slices.tif", dsm=paths["dsm_t1"],
                                slice_rows=slice_rows, scheduler=address, progress=False, **windows)
        sliced = time.perf_counter() - t0
    return {"size": size, "slices": len(summary.slices), "slice_rows": slice_rows, "single_process_s": single,
            "slices_2_workers_s": sliced, "time_ratio_slices_over_single": sliced / single,
            "window_ratio": summary.window_ratio, "slice_jobs_s": summary.compute_seconds, "assemble_s": summary.assemble_seconds,
            "slice_job_seconds": [round(r.seconds, 2) for r in summary.results],
            "byte_identical": sha(root / "large_single.tif") == sha(root / "large_slices.tif")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    n, size, large, slice_rows, noop = (4, 512, 2048, 512, 40) if args.quick else (8, 1024, 3072, 768, 100)
    root = Path(tempfile.mkdtemp(prefix="rsmamba-bench-scale-"))
    try:
        images = make_scenes(root, n, size)
        mpix = n * size * size / 1e6
        warmup = make_scenes(root / "warmup", 1, 256)[0]
        torch.set_num_threads(CORES)
        t0 = time.perf_counter()
        predict_job(warmup, root / "warm_in_process.tif", model=None, dsm_template="{dir}/{stem}_dsm.tif")
        rows = [{"mode": "in-process", "workers": 0, "startup_s": time.perf_counter() - t0}]
        rows[0]["wall_s"] = run_scenes(images, root / "out", None)
        configs = [("dask 1 worker", 1, None), ("dask 2 workers", 2, None), ("dask 1 worker, 1 thread", 1, 1),
                   ("dask 2 workers, 1 thread each", 2, 1)]
        for name, workers, threads in configs:
            with warm_cluster(workers, threads, warmup) as (address, startup):
                rows.append({"mode": name, "workers": workers, "startup_s": startup,
                             "wall_s": run_scenes(images, root / "out", address)})
            print(f"{name}: {rows[-1]['wall_s']:.1f} s (+ {startup:.1f} s start)", flush=True)
        for r in rows:
            r["scenes"], r["mpix_per_s"] = n, mpix / r["wall_s"]
        by = {r["mode"]: r for r in rows}
        for r in rows:
            r["vs_in_process"] = r["mpix_per_s"] / by["in-process"]["mpix_per_s"]
        scaling = {
            "two_over_one_worker": by["dask 2 workers"]["mpix_per_s"] / by["dask 1 worker"]["mpix_per_s"],
            "two_over_one_worker_1_thread": (by["dask 2 workers, 1 thread each"]["mpix_per_s"]
                                             / by["dask 1 worker, 1 thread"]["mpix_per_s"]),
        }
        print(f"\n(a) {n} scenes of {size}^2 px, demo model, {CORES} cores")
        print_table(rows, ["mode", "scenes", "startup_s", "wall_s", "mpix_per_s", "vs_in_process"])
        print(f"scaling 2 workers / 1 worker: {scaling['two_over_one_worker']:.2f} "
              f"(1 thread per worker: {scaling['two_over_one_worker_1_thread']:.2f})")

        overhead = [task_overhead(root, noop, None)]
        with warm_cluster(2, None, warmup) as (address, _):
            overhead.append(task_overhead(root, noop, address))
        print("\n(b) per-task overhead (1-byte copy jobs)")
        print_table(overhead, ["mode", "tasks", "t_1_task_s", "per_task_ms"])

        large_row = one_large_scene(root, large, slice_rows, warmup)
        print(f"\n(c) one {large}^2 scene")
        print_table([large_row], ["size", "slices", "window_ratio", "single_process_s", "slices_2_workers_s", "slice_jobs_s",
                                  "assemble_s", "time_ratio_slices_over_single", "byte_identical"])
        path = write_result("scale-quick" if args.quick else "scale", {
            "scenes": rows, "scaling": scaling, "task_overhead": overhead, "one_large_scene": large_row,
            "note": "wall_s on warm clusters (startup_s apart); machine shared and noisy",
        })
        print(f"\nwrote {path}")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
