"""The GPU check: scan backends and ``rsmamba predict`` per paper model, timed on one CUDA device.

    python bench/gpu.py                      # what bench/gpu.sh runs after installing and testing
    python bench/gpu.py --quick              # L = 4096 only, 1024^2 scene
    python bench/gpu.py --tests-log LOG      # fold the equality tests' pytest summary into the JSON

Without a CUDA device (or with RSMAMBA_GPU_CHECK_SIMULATE_NO_GPU=1) it says so, writes nothing
and exits 0: a results file holds measured numbers or "not measured", never made-up ones.

Scan: b=2, d=768 (4 directions x d_inner 192), d_state 16, L = 4096 and 16384, float32 inputs,
softplus/D/z on, forward and forward+backward; every available backend of triton, chunked and
mamba_ssm, timed with CUDA events (median of --reps after a warm-up that also compiles), and its
max relative error against chunked (against reference at L = 4096). Triton is also timed with
other channel-block sizes, since the best one depends on the GPU.

Predict: ``predict_raster`` (the library behind ``rsmamba predict``; ``detect_change`` for the
change model) on a synthetic scene, 512 x 512 windows, overlap 128, batch 4, untrained weights,
in float32, autocast float16 (``--amp``) and bfloat16 weights+activations; MPix/s over the
whole call (reading, stitching and writing included) and peak GPU memory. The schema is in
bench/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "gpu.json"
SCHEMA = 1
PAPER_MODELS = ["cmtunet", "fmtunet", "mafmamba", "mambaseg", "mambafcs"]
PRECISIONS = ["fp32", "amp-fp16", "bf16"]
TRITON_BLOCKS = [4, 8, 16, 32]  # fixed channel blocks also timed for the Triton scan (default: adaptive)


def gpu_available() -> tuple[bool, str]:
    """(usable, why not). The simulation switch lets CPU-only CI walk the no-GPU path."""
    if os.environ.get("RSMAMBA_GPU_CHECK_SIMULATE_NO_GPU", "0") not in ("", "0"):
        return False, "RSMAMBA_GPU_CHECK_SIMULATE_NO_GPU is set"
    if not torch.cuda.is_available():
        return False, "torch.cuda.is_available() is False"
    return True, ""


def environment() -> dict[str, Any]:
    from rsmamba.kernels.selective_scan import mamba_ssm_scan_fn, triton_scan_module

    def version(name: str) -> str | None:
        try:
            from importlib.metadata import version as v

            return v(name)
        except Exception:
            return None

    props = torch.cuda.get_device_properties(0)
    return {
        "gpu": props.name,
        "gpu_memory_gib": round(props.total_memory / 2**30, 1),
        "multiprocessors": props.multi_processor_count,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "triton": version("triton"),
        "triton_imports": triton_scan_module() is not None,
        "mamba_ssm": version("mamba-ssm") if mamba_ssm_scan_fn() is not None else None,
        "causal_conv1d": version("causal-conv1d"),
        "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


DEVICE = "cuda"  # --device cpu: a smoke run of this script's own code on CPU, never a result


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def _cuda_time(fn, reps: int) -> float:
    """Median seconds of ``fn()`` over ``reps`` runs after one warm-up (which also compiles)."""
    fn()
    _sync()
    times = []
    for _ in range(reps):
        if DEVICE != "cuda":
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
            continue
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return statistics.median(times)


def _scan_inputs(b: int, d: int, n: int, length: int) -> dict[str, torch.Tensor]:
    g = torch.Generator(device=DEVICE).manual_seed(0)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, device=DEVICE)

    return {
        "u": r(b, d, length), "delta": r(b, d, length) * 0.5 - 2.0, "A": -torch.exp(r(d, n) * 0.5),
        "B": r(b, n, length), "C": r(b, n, length), "D": r(d), "z": r(b, d, length), "delta_bias": r(d) * 0.1,
    }


def bench_scan(lengths: list[int], reps: int, batch: int = 2, channels: int = 768, d_state: int = 16) -> list[dict]:
    from rsmamba.kernels.selective_scan import selective_scan

    names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]
    rows = []
    for length in lengths:
        x = _scan_inputs(batch, channels, d_state, length)
        backends = [b for b in ("triton", "chunked", "mamba_ssm") if _runs_here(b, x["u"])]
        oracle = "reference" if length <= 4096 else "chunked"
        with torch.no_grad():
            y_oracle = selective_scan(*(x[k] for k in names), delta_softplus=True, backend=oracle)
        configs = [(b, None) for b in backends]
        if "triton" in backends:
            configs += [("triton", bd) for bd in TRITON_BLOCKS]
        for backend, block_d in configs:
            for mode in ("fwd", "fwd+bwd"):
                row = {"L": length, "batch": batch, "channels": channels, "d_state": d_state, "backend": backend,
                       "mode": mode, "block_d": block_d}
                try:
                    with _triton_block(block_d):
                        tensors = [x[k].clone().requires_grad_(mode == "fwd+bwd") for k in names]

                        def run() -> torch.Tensor:
                            if mode == "fwd":
                                with torch.no_grad():
                                    return selective_scan(*tensors, delta_softplus=True, backend=backend)
                            y = selective_scan(*tensors, delta_softplus=True, backend=backend)
                            y.sum().backward()
                            return y

                        row["seconds"] = _cuda_time(run, reps)
                        if mode == "fwd":
                            y = run().float()
                            err = (y - y_oracle).abs().max() / y_oracle.abs().max()
                            row["max_rel_err"] = float(err)
                            row["err_against"] = oracle
                except Exception as exc:  # one backend failing must not hide the others
                    row["error"] = f"{type(exc).__name__}: {exc}"[:500]
                rows.append(row)
                print(f"scan L={length} {backend}{'' if block_d is None else f'(block_d={block_d})'} {mode}: "
                      f"{row.get('seconds', row.get('error'))}", flush=True)
        del x
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
    return rows


def _runs_here(backend: str, u: torch.Tensor) -> bool:
    from rsmamba.kernels.selective_scan import resolve_backend

    try:
        return resolve_backend(backend, u) == backend
    except ValueError:
        return False


class _triton_block:
    """Temporarily set the Triton scan's channel block (None: leave the default)."""

    def __init__(self, block_d: int | None) -> None:
        self.block_d = block_d

    def __enter__(self) -> None:
        from rsmamba.kernels import scan_triton

        self.saved = scan_triton.MAX_BLOCK_D, scan_triton.ADAPT_BLOCK_D
        if self.block_d is not None:
            scan_triton.MAX_BLOCK_D, scan_triton.ADAPT_BLOCK_D = self.block_d, False

    def __exit__(self, *exc: Any) -> None:
        from rsmamba.kernels import scan_triton

        scan_triton.MAX_BLOCK_D, scan_triton.ADAPT_BLOCK_D = self.saved


def scan_summary(rows: list[dict]) -> dict[str, Any]:
    """The acceptance ratios at the longest L, forward: triton vs mamba_ssm and vs chunked."""
    longest = max((r["L"] for r in rows), default=None)

    def sec(backend: str) -> float | None:
        for r in rows:
            if r["L"] == longest and r["mode"] == "fwd" and r["backend"] == backend and r["block_d"] is None:
                return r.get("seconds")
        return None

    tri, chunked, ssm = sec("triton"), sec("chunked"), sec("mamba_ssm")
    out: dict[str, Any] = {"L": longest}
    if tri and chunked:
        out["triton_speedup_over_chunked"] = chunked / tri
        out["triton_at_least_10x_chunked"] = chunked / tri >= 10
    if tri and ssm:
        out["triton_time_over_mamba_ssm"] = tri / ssm
        out["triton_within_2x_mamba_ssm"] = tri / ssm <= 2
    elif tri:
        out["triton_within_2x_mamba_ssm"] = "mamba_ssm not importable"
    return out


class _Bf16(torch.nn.Module):
    """Runs a network in bfloat16 (weights and activations) and hands float32 back to predict.

    The network is held unregistered, already on the device and in eval mode: predict hashes the
    state dict through numpy (which has no bfloat16), so the wrapper shows it no weights.
    """

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "inner", module.to(DEVICE, torch.bfloat16).eval())

    def forward(self, *xs: torch.Tensor) -> Any:
        return _to_float(self.inner(*(x.to(torch.bfloat16) for x in xs)))


def _to_float(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.float()
    if isinstance(out, dict):
        return {k: _to_float(v) for k, v in out.items()}
    if isinstance(out, (list, tuple)):
        return type(out)(_to_float(v) for v in out)
    return out


def _write_dsm(path: Path, size: int) -> None:
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    yy, xx = np.mgrid[0:size, 0:size]
    dsm = (np.sin(xx / 50.0) * np.cos(yy / 70.0) * 10 + 100).astype("float32")
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "float32",
               "crs": "EPSG:32632", "transform": from_origin(500000, 5000000, 0.25, 0.25), "tiled": True,
               "blockxsize": 256, "blockysize": 256}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(dsm, 1)


def _predict_once(name: str, precision: str, scenes: dict[str, Path], out: Path, size: int) -> None:
    from rsmamba.models import model_info

    info = model_info(name)
    kwargs = {"window": 512, "overlap": 128, "batch_size": 4, "device": DEVICE}
    if info.task == "segmentation":
        from rsmamba.predict import predict_raster
        from rsmamba.engine.model import load_model

        has_dsm = info.inputs == "image+dsm"
        loaded = load_model(name, image_count=3, has_dsm=has_dsm)
        if precision == "bf16":
            loaded = dataclasses.replace(loaded, module=_Bf16(loaded.module))
        predict_raster(scenes["t1"], out, dsm=scenes["dsm"] if has_dsm else None, model=loaded,
                       amp=precision == "amp-fp16", **kwargs)
    else:
        from rsmamba.change.api import detect_change, load_change_model

        loaded = load_change_model(name, image_count=3)
        if precision == "bf16":
            loaded = dataclasses.replace(loaded, module=_Bf16(loaded.module))
        detect_change(scenes["t1"], scenes["t2"], out, model=loaded, semantic=info.task == "semantic-change",
                      force=True, amp=precision == "amp-fp16", **kwargs)


def bench_predict(models: list[str], size: int, deadline: float = float("inf"), on_row=None) -> list[dict]:
    sys.path.insert(0, str(HERE))
    from tile import make_raster

    from rsmamba.kernels.selective_scan import resolve_backend

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        scenes = {}
        for tag, edge in (("warm", 512), ("big", size)):
            make_raster(tmp_path / f"t1_{tag}.tif", edge)
            make_raster(tmp_path / f"t2_{tag}.tif", edge)  # same texture: the change model only needs a pair
            _write_dsm(tmp_path / f"dsm_{tag}.tif", edge)
            scenes[tag] = {k: tmp_path / f"{k}_{tag}.tif" for k in ("t1", "t2", "dsm")}
        backend = resolve_backend(None, torch.zeros(1, device=DEVICE))
        for name in models:
            for precision in PRECISIONS:
                row: dict[str, Any] = {"model": name, "precision": precision, "window": 512, "overlap": 128,
                                       "batch": 4, "scene_px": size, "scan_backend": backend}
                if time.perf_counter() > deadline:
                    row["skipped"] = "time budget (--budget) spent"
                    rows.append(row)
                    if on_row is not None:
                        on_row(row)
                    continue
                try:
                    _predict_once(name, precision, scenes["warm"], tmp_path / "warm.tif", 512)  # compile, cudnn
                    _sync()
                    if DEVICE == "cuda":
                        torch.cuda.reset_peak_memory_stats()
                    t0 = time.perf_counter()
                    _predict_once(name, precision, scenes["big"], tmp_path / f"{name}_{precision}.tif", size)
                    _sync()
                    seconds = time.perf_counter() - t0
                    row.update(seconds=seconds, mpix_per_s=size * size / 1e6 / seconds)
                    if DEVICE == "cuda":
                        row["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
                except Exception as exc:
                    row["error"] = f"{type(exc).__name__}: {exc}"[:500]
                    traceback.print_exc()
                rows.append(row)
                if on_row is not None:
                    on_row(row)
                print(f"predict {name} {precision}: {row.get('mpix_per_s', row.get('error'))}", flush=True)
                if DEVICE == "cuda":
                    torch.cuda.empty_cache()
    return rows


def parse_pytest_log(path: Path | None) -> dict[str, Any] | None:
    """passed/failed/skipped counts from a pytest log's closing line."""
    if path is None or not path.is_file():
        return None
    text = path.read_text(errors="replace")
    lines = [ln for ln in text.splitlines() if re.search(r"\d+ (passed|failed|error)", ln)]
    summary = {"log_tail": text[-2000:]}
    if lines:
        last = lines[-1]
        for key in ("passed", "failed", "skipped", "error", "errors"):
            m = re.search(rf"(\d+) {key}\b", last)
            if m:
                summary[key] = int(m.group(1))
        summary["line"] = last.strip("= ")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--quick", action="store_true", help="L = 4096 only and a 1024^2 scene")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--models", default=",".join(PAPER_MODELS))
    parser.add_argument("--scene", type=int, default=None, help="scene edge in pixels (default 2048, quick 1024)")
    parser.add_argument("--skip-predict", action="store_true")
    parser.add_argument("--tests-log", type=Path, default=None)
    parser.add_argument("--install-log", type=Path, default=None)
    parser.add_argument("--lengths", default=None, help="scan lengths, comma-separated (default 4096,16384)")
    parser.add_argument("--channels", type=int, default=768)
    parser.add_argument("--budget", type=float, default=300.0,
                        help="seconds after which the remaining predict runs are skipped (and marked so)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="cpu: smoke-test this script on CPU (status 'cpu-smoke', not a measurement)")
    args = parser.parse_args(argv)

    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda":
        ok, why = gpu_available()
        if not ok:
            print(f"no GPU: {why}; nothing measured, {args.out} left as it is")
            return 0
    elif args.out.resolve() == DEFAULT_OUT.resolve():
        parser.error("--device cpu is a smoke test: give --out elsewhere than the results file")

    started = time.perf_counter()
    final_status = "measured" if DEVICE == "cuda" else "cpu-smoke"
    result: dict[str, Any] = {"schema": SCHEMA, "status": "partial",
                              "environment": environment() if DEVICE == "cuda" else {"device": "cpu"}}

    def save() -> None:  # after every stage: a run cut short by its time limit still leaves its numbers
        result["seconds_total"] = time.perf_counter() - started
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        tmp.replace(args.out)

    if args.install_log is not None and args.install_log.is_file():
        result["install"] = args.install_log.read_text(errors="replace")[-2000:]
    result["tests"] = parse_pytest_log(args.tests_log)
    lengths = [int(v) for v in args.lengths.split(",")] if args.lengths else [4096] if args.quick else [4096, 16384]
    result["scan"] = bench_scan(lengths, args.reps, channels=args.channels)
    result["scan_summary"] = scan_summary(result["scan"])
    result["predict"] = []
    save()
    size = args.scene or (1024 if args.quick else 2048)
    if not args.skip_predict:
        bench_predict(args.models.split(","), size, started + args.budget, on_row=lambda row: (
            result["predict"].append(row), save()))
    result["status"] = final_status
    save()
    print(json.dumps(result["scan_summary"], indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
