"""``rsmamba predict``: pipeline overhead, memory against scene size, and MONAI, in one run.

    python bench/predict.py            # (a)+(c) on 2048^2, (b) on 5000^2 and 20000^2
    python bench/predict.py --quick    # (a)+(c) on 1024^2, (b) on 2000^2 and 6000^2
    python bench/predict.py --parts ac # only (a)+(c) (or --parts b); other results in the JSON are kept

(a) end-to-end ``predict_raster`` (read GeoTIFF, normalise, forward, blend, write the class COG)
    time vs. the same network's forward alone on the same windows pre-loaded in RAM, same
    batches: ratio = forward-only time / end-to-end time (1.0 = I/O and stitching fully hidden).
(b) peak RSS (VmHWM of a fresh child process) predicting 3-band scenes of two sizes with a cheap
    conv net: memory must not grow with the scene.
(c) MONAI ``sliding_window_inference`` (gaussian, same windows, whole image in RAM) vs. rsmamba
    with gaussian blending (no edge-aware weights, as MONAI): same probabilities to tolerance,
    and time ratio rsmamba / MONAI (rsmamba's time includes reading and writing the files).
Times are the best of two alternating runs (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import print_table, result_path, run_measured, write_result  # noqa: E402
from tile import make_raster  # noqa: E402

WINDOW, OVERLAP, BATCH = 256, 32, 4


def medium_net() -> torch.nn.Module:
    """A conv net heavy enough that compute matters, as a real segmentation model's does."""
    torch.manual_seed(0)
    c = 32
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, c, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(c, c, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(c, c, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(c, 6, 1),
    ).eval()


CHEAP_NET = "torch.manual_seed(0); net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1)).eval()"


def forward_only(src_path: Path, net: torch.nn.Module) -> float:
    """Seconds for the network alone over the same windows and batches, inputs already in RAM."""
    from rsmamba.predict.model import LoadedModel, Predictor
    from rsmamba.raster.normalize import compute_stats, normalize
    from rsmamba.raster.source import AlignedSource
    from rsmamba.raster.windows import WindowGrid

    with AlignedSource(src_path) as src:
        stats, _ = compute_stats(src)
        grid = WindowGrid(src.width, src.height, WINDOW, OVERLAP)
        batches = []
        for _, windows in grid.rows():
            for i in range(0, len(windows), BATCH):
                batches.append(np.stack([normalize(src.read_image(w), stats) for w in windows[i:i + BATCH]]))
    predictor = Predictor(LoadedModel(net))
    predictor(batches[0])  # warm-up
    t0 = time.perf_counter()
    for b in batches:
        predictor(b)
    return time.perf_counter() - t0


def end_to_end(src_path: Path, out: Path, net: torch.nn.Module, probabilities: bool) -> float:
    from rsmamba.predict import predict_raster
    from rsmamba.predict.model import LoadedModel, _default_classes

    t0 = time.perf_counter()
    predict_raster(src_path, out, model=LoadedModel(net, classes=_default_classes(6)), window=WINDOW,
                   overlap=OVERLAP, batch_size=BATCH, blend="gaussian", edge_aware=False,
                   probabilities=out.with_name("probs.tif") if probabilities else None, overwrite=True)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--parts", default="ac,b", help="which measurements: ac, b or ac,b")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    scene = 1024 if args.quick else 2048
    sizes = (2000, 6000) if args.quick else (5000, 20000)
    work = Path(tempfile.mkdtemp(prefix="rsmamba-bench-predict-"))
    previous = result_path("predict", args.quick)
    result: dict = json.loads(previous.read_text()) if previous.exists() and parts != {"ac", "b"} else {}
    result.pop("machine", None)
    result.update({"window": WINDOW, "overlap": OVERLAP, "batch": BATCH, "threads": torch.get_num_threads()})
    try:
        if "ac" in parts:
            src = work / f"scene_{scene}.tif"
            make_raster(src, scene)
            net = medium_net()
            have_monai = importlib.util.find_spec("monai") is not None
            if not have_monai:
                print("MONAI is not installed (pip install -e '.[bench]'): skipping the comparison with "
                      "MONAI's sliding_window_inference (c)")
            t_fwd, t_e2e, t_e2e_p, t_monai = [], [], [], []
            for _ in range(2):
                t_fwd.append(forward_only(src, net))
                t_e2e.append(end_to_end(src, work / "classes.tif", net, probabilities=False))
                t_e2e_p.append(end_to_end(src, work / "classes.tif", net, probabilities=True))
                if have_monai:
                    dt, monai_probs = monai_run(src, net)
                    t_monai.append(dt)
            with rasterio.open(work / "probs.tif") as ds:
                ours = ds.read().astype(np.float32) / 254
            if not have_monai:  # (c) is skipped: nothing to compare against (rows and keys dropped below)
                monai_probs, t_monai = ours, [1.0]
            diff = np.abs(ours - monai_probs)
            agree = float((ours.argmax(0) == monai_probs.argmax(0)).mean())
            fwd, e2e, e2e_p, mon = min(t_fwd), min(t_e2e), min(t_e2e_p), min(t_monai)
            mpix = scene * scene / 1e6
            rows_a = [
                {"run": "forward only (RAM)", "seconds": fwd, "mpix_per_s": mpix / fwd},
                {"run": "rsmamba end-to-end", "seconds": e2e, "mpix_per_s": mpix / e2e},
                {"run": "rsmamba + probabilities", "seconds": e2e_p, "mpix_per_s": mpix / e2e_p},
                {"run": "MONAI sliding_window", "seconds": mon, "mpix_per_s": mpix / mon},
            ][:4 if have_monai else 3]
            print(f"scene {scene}x{scene}, window {WINDOW}, overlap {OVERLAP}, batch {BATCH}, "
                  f"torch threads {torch.get_num_threads()}")
            print_table(rows_a, ["run", "seconds", "mpix_per_s"])
            result.update({
                "scene": scene, "timings": rows_a,
                "all_times": {"forward": t_fwd, "e2e": t_e2e, "e2e_probabilities": t_e2e_p,
                                                                  "monai": t_monai},
                "a_throughput_ratio": fwd / e2e, "c_time_ratio_rsmamba_over_monai": e2e_p / mon,
                "c_time_ratio_class_output_only_over_monai": e2e / mon,
                "c_max_abs_prob_diff": float(diff.max()), "c_mean_abs_prob_diff": float(diff.mean()),
                "c_argmax_agreement": agree,
            })
            if not have_monai:
                result["all_times"].pop("monai")
                for key in [k for k in result if k.startswith("c_")]:
                    result.pop(key)
            print(f"(a) end-to-end / forward-only throughput: {fwd / e2e:.3f}  (target >= 0.9)")
            if have_monai:
                print(f"(c) rsmamba / MONAI time: {e2e / mon:.3f} (class COG), {e2e_p / mon:.3f} (class + probability "
                      f"COGs)  (target <= 1); "
                      f"probabilities max |diff| "
                      f"{diff.max():.4f}, mean {diff.mean():.5f}; argmax agreement {agree:.5f}")
            src.unlink()

        if "b" in parts:
            _, base_rss = run_measured(f"import torch, rsmamba.predict\n{CHEAP_NET}")
            rows_b = []
            for size in sizes:
                src = work / f"mem_{size}.tif"
                make_raster(src, size)
                out = work / f"mem_{size}_classes.tif"
                code = (f"import torch\nfrom rsmamba.predict import predict_raster\nfrom rsmamba.predict.model import "
                        f"LoadedModel, _default_classes\n{CHEAP_NET}\n"
                        f"predict_raster({str(src)!r}, {str(out)!r}, model=LoadedModel(net, classes=_default_classes(6)),"
                        f" window=512, overlap=64, batch_size={BATCH})\n")
                dt, rss = run_measured(code)
                rows_b.append({"size": f"{size}x{size}", "seconds": dt, "mpix_per_s": size * size / dt / 1e6,
                               "peak_rss_mib": rss, "raster_mib": size * size * 3 / 2**20})
                src.unlink()
                out.unlink()
            growth = rows_b[-1]["peak_rss_mib"] / rows_b[0]["peak_rss_mib"]
            print_table(rows_b, ["size", "seconds", "mpix_per_s", "peak_rss_mib", "raster_mib"])
            print(f"(b) import-only baseline {base_rss:.0f} MiB; largest / smallest peak RSS {growth:.3f} "
                  f"(target <= 1.2); largest below 2 GiB: {rows_b[-1]['peak_rss_mib'] < 2048}")
            result.update({"memory": rows_b, "b_import_baseline_rss_mib": base_rss, "b_rss_growth_ratio": growth,
                           "b_largest_below_2GiB": rows_b[-1]["peak_rss_mib"] < 2048})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {write_result('predict', result, quick=args.quick)}")


if __name__ == "__main__":
    main()
