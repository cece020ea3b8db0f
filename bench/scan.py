"""Selective-scan backends against the sequential ``reference``, on vision-sized shapes.

    python bench/scan.py            # b=2, d=768 (4 directions x d_inner 192), N in {1, 16}, L in {1024, 4096, 16384}
    python bench/scan.py --quick    # L in {1024, 4096}, N=16 only at 4096

For every shape and backend: forward time, forward+backward time (under autograd, the way
training calls it), speed-up over ``reference`` measured in the same run (the machine is
shared and noisy: ratios, not seconds, are the result), and max relative error against it.
At L=16384 the reference is timed on ``--ref-channels`` channels and scaled linearly to the
full width (reported as ``reference_scaled_from_channels`` in the JSON); errors there are
measured on those channels.

Compute floor: the exp and multiply-add counts of the scan divided by this machine's measured
throughput of torch's vectorised ``exp`` and ``addcmul`` on large tensors, and the fraction of
it the fastest backend achieves (floor / time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from rsmamba.kernels.selective_scan import available_backends, selective_scan

RESULTS = Path(__file__).resolve().parent / "results"
# Per (b, d, L, N) element: forward = 1 exp + 4 mul/FMA (delta*A, delta*u*B, state update,
# output); backward = 2 exp (recompute, reverse) + 14 mul/FMA (3 recompute + 11 adjoint).
OPS = {"fwd": (1, 4), "fwd+bwd": (3, 18)}


def _inputs(b: int, d: int, n: int, length: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "u": torch.randn(b, d, length, generator=g),
        "delta": torch.randn(b, d, length, generator=g) * 0.5 - 2.0,  # softplus -> ~0.1, as trained Mamba
        "A": -torch.exp(torch.randn(d, n, generator=g) * 0.5),
        "B": torch.randn(b, n, length, generator=g),
        "C": torch.randn(b, n, length, generator=g),
        "D": torch.randn(d, generator=g),
        "z": torch.randn(b, d, length, generator=g),
        "delta_bias": torch.randn(d, generator=g) * 0.1,
    }


def _run(x: dict[str, torch.Tensor], backend: str, backward: bool) -> tuple[float, torch.Tensor]:
    names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]
    tensors = [x[k].clone().requires_grad_(backward) for k in names]
    start = time.perf_counter()
    y = selective_scan(*tensors, delta_softplus=True, backend=backend)
    if backward:
        y.sum().backward()
    return time.perf_counter() - start, y.detach()


def _time(x: dict[str, torch.Tensor], backend: str, backward: bool, reps: int) -> tuple[float, torch.Tensor]:
    times, y = [], None
    for _ in range(reps):
        t, y = _run(x, backend, backward)
        times.append(t)
    return statistics.median(times), y


def _slice_channels(x: dict[str, torch.Tensor], channels: int) -> dict[str, torch.Tensor]:
    out = dict(x)
    for k in ("u", "delta", "z"):
        out[k] = x[k][:, :channels].contiguous()
    for k in ("A", "D", "delta_bias"):
        out[k] = x[k][:channels].contiguous()
    return out


def measure_floor() -> dict[str, float]:
    """Throughput (elements/s) of torch's vectorised exp and addcmul on 2**24-element tensors."""
    a = -torch.rand(1 << 24)
    b, out = torch.rand(1 << 24), torch.empty(1 << 24)
    rates = {}
    for name, fn in (("exp", lambda: torch.exp(a, out=out)), ("fma", lambda: torch.addcmul(out, a, b, out=out))):
        fn()
        best = min(_wall(fn) for _ in range(5))
        rates[name] = a.numel() / best
    return rates


def _wall(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--channels", type=int, default=768, help="4 directions x d_inner 192")
    parser.add_argument("--ref-channels", type=int, default=192, help="reference width at L >= 16384")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        shapes = [(1, 1024), (16, 1024), (16, 4096)]
    else:
        shapes = [(n, length) for length in (1024, 4096, 16384) for n in (1, 16)]
    backends = [b for b in available_backends(torch.zeros(1)) if b != "reference"]
    rates = measure_floor()
    b, d = args.batch, args.channels
    rows, records = [], []
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("scan-quick.json" if args.quick else "scan.json")
    meta = {"machine": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
            "exp_per_s": rates["exp"], "fma_per_s": rates["fma"], "ops_per_element": OPS,
            "load_average_at_start": list(os.getloadavg())}  # fmt: skip
    for n, length in shapes:
        x = _inputs(b, d, n, length)
        ref_channels = d if length < 16384 else min(d, args.ref_channels)
        x_ref = _slice_channels(x, ref_channels)
        for mode in ("fwd", "fwd+bwd"):
            backward = mode == "fwd+bwd"
            t_ref, y_ref = _time(x_ref, "reference", backward, 1)
            t_ref_full = t_ref * d / ref_channels
            n_exp, n_fma = (c * b * d * length * n for c in OPS[mode])
            floor = n_exp / rates["exp"] + n_fma / rates["fma"]
            for backend in backends:
                _run(_slice_channels(x, 8), backend, backward)  # warm-up: numba compiles or loads its cache
                t, _ = _time(x, backend, backward, args.reps if length <= 4096 else 1)
                _, y_sub = _run(x_ref, backend, False)
                err = float((y_sub - y_ref).abs().max() / y_ref.abs().max())
                record = {
                    "batch": b, "channels": d, "d_state": n, "length": length, "mode": mode,
                    "backend": backend, "seconds": t, "reference_seconds": t_ref_full,
                    "reference_scaled_from_channels": ref_channels if ref_channels != d else None,
                    "speedup": t_ref_full / t, "max_rel_error": err,
                    "floor_seconds": floor, "floor_fraction": floor / t,
                }  # fmt: skip
                records.append(record)
                out.write_text(json.dumps({"meta": meta, "results": records}, indent=1))  # partial runs count too
                rows.append(
                    f"{n:>3} {length:>6} {mode:>8} {backend:>8} {t:9.3f} {t_ref_full:9.2f}"
                    f"{'*' if ref_channels != d else ' '} {t_ref_full / t:8.1f}x {err:9.1e} {floor:8.3f} {floor / t:6.2f}"
                )
                print(rows[-1], flush=True)
    header = f"{'N':>3} {'L':>6} {'mode':>8} {'backend':>8} {'seconds':>9} {'ref s':>9}  {'speedup':>9} {'max rel':>9} {'floor s':>8} {'frac':>6}"
    print("\n" + header)
    print("\n".join(rows))
    print(f"(* reference timed on {args.ref_channels} channels, scaled to {d})")
    print(f"torch exp {rates['exp'] / 1e9:.2f} G/s, addcmul {rates['fma'] / 1e9:.2f} G/s, threads {torch.get_num_threads()}")
    meta["load_average_at_end"] = list(os.getloadavg())
    out.write_text(json.dumps({"meta": meta, "results": records}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
