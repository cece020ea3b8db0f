"""Individual buildings in terraced blocks: instance outputs vs the semantic-mask baseline (issue #17).

One run, one model: a small image+DSM segmentation model (default ``cmtunet_tiny``) with instance outputs
(``model.instances: [interior, contact]``) is trained on one synthetic town with terraced rows and
perimeter blocks (or ``--checkpoint`` is scored as it is), then predicts towns it has not seen
(other seeds: one for validation, ``--test-towns`` for the score, 2048 px each, about 190 houses
a town). From the same prediction two footprint layers are made and scored against the individual
houses:

- baseline: ``vectorize --regularize`` of the class raster (one polygon per building region: a
  terrace is one polygon);
- instances: ``vectorize --instances --regularize`` with the instance probabilities; its
  ``--seed-threshold`` is chosen on a third town (validation: neither trained on nor scored).

Both are scored with ``evaluate --buildings houses.gpkg --footprints ...`` (object precision,
recall, F1 at IoU 0.5, merged and split errors), and also against the blocks (touching houses
dissolved), where the baseline should do well. Object counts are summed over the test towns (pooled
precision, recall, F1) and each town's F1 is listed. Prints a table, writes ``results/instances.json``.

    python bench/instances.py            # about 16 minutes on 2 cores (50 epochs of cmtunet_tiny on a 2048 px town)
    python bench/instances.py --init demo --keep   # as measured for the shipped demo model (see its card)
    python bench/instances.py --quick    # a smoke run (tiny scenes, 1 epoch), results/instances-quick.json
    python bench/instances.py --skip-train --keep   # re-score with the model of a kept work folder
    python bench/instances.py --checkpoint rsmamba/data/demo_model.pt   # score the shipped model (about 3 minutes)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import geopandas as gpd
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import print_table, write_result  # noqa: E402

from rsmamba.cli import main  # noqa: E402


def _run(args: list[str]) -> None:
    code = main([str(a) for a in args])
    if code != 0:
        raise SystemExit(f"rsmamba {' '.join(map(str, args))}: exit {code}")


def _blocks(houses: Path, out: Path) -> int:
    """Touching houses dissolved into blocks (what a semantic mask can at best deliver)."""
    frame = gpd.read_file(houses)
    merged = shapely.get_parts(shapely.union_all(frame.geometry.buffer(0.01).to_numpy()))
    blocks = gpd.GeoDataFrame({"block": range(len(merged))}, geometry=list(merged), crs=frame.crs)
    out.unlink(missing_ok=True)
    blocks.to_file(out)
    return len(blocks)


def _score(work: Path, pred: Path, reference: Path, footprints: Path, name: str) -> dict:
    out = work / f"eval_{name}.json"
    _run(["evaluate", pred, reference, "--burn", "1", "--buildings", reference, "--footprints", footprints,
          "-o", out, "--overwrite"])
    b = json.loads(out.read_text())["buildings"]
    return {k: b[k] for k in ("precision", "recall", "f1", "tp", "predicted", "reference", "merged",
                              "merged_buildings", "split", "split_parts")}


def _pool(scores: list[dict]) -> dict:
    """Object counts summed over towns; precision, recall and F1 of the sums."""
    keys = ("tp", "predicted", "reference", "merged", "merged_buildings", "split", "split_parts")
    out = {k: sum(s[k] for s in scores) for k in keys}
    out["precision"] = out["tp"] / out["predicted"] if out["predicted"] else 0.0
    out["recall"] = out["tp"] / out["reference"] if out["reference"] else 0.0
    p, r = out["precision"], out["recall"]
    out["f1"] = 2 * p * r / (p + r) if p + r else 0.0
    return out


def _vectorize(work: Path, scene: Path, model: Path, name: str, thresholds: list[tuple[float, str]]) -> dict:
    """Predict ``scene`` and write the baseline and one instance layer per seed threshold."""
    pred, probs = work / f"{name}_pred.tif", work / f"{name}_probs.tif"
    _run(["predict", scene / "ortho_t1.tif", "--dsm", scene / "dsm_t1.tif", "--model", model, "-o", pred,
          "--probabilities", probs, "--window", 256, "--overlap", 64, "--overwrite"])
    common = ["--classes", "building", "--min-area", "8m2", "--regularize", "--probabilities", probs, "--overwrite"]
    out = {"pred": pred, "baseline": work / f"{name}_baseline.gpkg"}
    _run(["vectorize", pred, *common, "-o", out["baseline"]])
    for t, seed in thresholds:
        out[(t, seed)] = work / f"{name}_instances_{t}_{seed}.gpkg"
        _run(["vectorize", pred, *common, "--instances", "--seed-threshold", t, "--min-seed", seed,
              "-o", out[(t, seed)]])
    return out


THRESHOLDS = [(t, seed) for t in (0.5, 0.7, 0.9) for seed in ("1m2", "4m2", "16m2")]


def main_bench() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    ap.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / ".work" / "instances")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--train-size", type=int, default=None)
    ap.add_argument("--test-size", type=int, default=None, help="validation and test town size (default 2048)")
    ap.add_argument("--test-towns", type=int, default=3, help="unseen test towns (seeds 2903, 2904, ...), scored pooled")
    ap.add_argument("--model", default="cmtunet_tiny", help="registry name (the shipped image+DSM model's)")
    ap.add_argument("--init", default=None, help="model.init: a checkpoint to start from (default: from scratch)")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--contact-px", type=int, default=6,
                    help="tile --contact-px: 6 (1.5 m at 0.25 m) suits the stride-4 decoders; at 3 they did not learn contacts")
    ap.add_argument("--border-px", type=int, default=4, help="tile --border-px")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--skip-train", action="store_true", help="reuse the scenes and model of a kept work folder")
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="score this checkpoint (e.g. the shipped rsmamba/data/demo_model.pt); no training town, no training")
    args = ap.parse_args()
    if args.checkpoint is not None:
        args.skip_train = True
    train_size = args.train_size or (512 if args.quick else 2048)
    test_size = args.test_size or (256 if args.quick else 2048)
    epochs = args.epochs or (1 if args.quick else 50)
    work = args.work
    if work.exists() and not args.skip_train:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_seed, val_seed = 1701, 3301
    tr, va = work / "train", work / "val"
    tests = [(work / f"test{k}", 2903 + k) for k in range(args.test_towns)]
    scenes = [(va, test_size, val_seed), *((f, test_size, s) for f, s in tests)]
    if args.checkpoint is None:
        scenes.insert(0, (tr, train_size, train_seed))
    for folder, size, seed in scenes:
        if not (folder / "scene.json").exists():
            _run(["synth", "-o", folder, "--size", size, "--seed", seed, "--terraced", "0.75", "--instances"])
    if not args.skip_train:
        _run(["tile", tr / "ortho_t1.tif", "--dsm", tr / "dsm_t1.tif", "--labels", tr / "labels_t1.tif",
              "--instance-targets", tr / "buildings_t1.gpkg", "--contact-px", args.contact_px, "--border-px", args.border_px, "-o", work / "chips", "--size", 128, "--overlap", 0,
              "--split-block", 256, "--split", "0.9,0.1,0"])
    config = {
        "data": {"root": str(work / "chips"), "batch_size": 8},
        "model": {"name": args.model, "kwargs": {"width": args.width} if args.model == "fcn_baseline" else {},
                  "instances": ["interior", "contact"], "init": args.init},
        "optim": {"lr": 3e-3, "weight_decay": 1e-4},
        "schedule": {"name": "cosine"},
        "augment": {"flips": True, "rot90": True},
        "train": {"epochs": epochs, "seed": 0, "metric": "miou"},
        "out": str(work / "run"), "tensorboard": False,
    }
    import yaml

    train_seconds = None
    if not args.skip_train:
        (work / "train.yaml").write_text(yaml.safe_dump(config))
        t_train = time.perf_counter()
        _run(["train", "--config", work / "train.yaml"])
        train_seconds = round(time.perf_counter() - t_train, 1)
    elif args.checkpoint is None:
        config = yaml.safe_load((work / "train.yaml").read_text())
        epochs = config["train"]["epochs"]
    model = args.checkpoint or work / "run" / "best.pt"
    # The seed threshold: the best house-level F1 on the validation town.
    val = _vectorize(work, va, model, "val", THRESHOLDS)
    val_f1 = {t: _score(work, val["pred"], va / "buildings_t1.gpkg", val[t], f"val_{t[0]}_{t[1]}")["f1"]
              for t in THRESHOLDS}
    threshold = max(THRESHOLDS, key=lambda t: val_f1[t])  # the first best: lowest threshold, smallest seed
    methods = (("semantic mask (baseline)", "baseline"),
               (f"instances (--seed-threshold {threshold[0]} --min-seed {threshold[1]})", threshold))
    pooled = {m: {"house": [], "block": []} for _, m in methods}
    towns = []
    for k, (folder, seed) in enumerate(tests):
        test = _vectorize(work, folder, model, f"test{k}", [threshold])
        houses, blocks = folder / "buildings_t1.gpkg", work / f"blocks{k}.gpkg"
        n_blocks = _blocks(houses, blocks)
        frame = gpd.read_file(houses)
        town = {"scene_seed": seed, "size": test_size, "houses": len(frame),
                "terrace_houses": int((frame["shape"] == "terrace").sum()), "blocks": n_blocks}
        for name, m in methods:
            house = _score(work, test["pred"], houses, test[m], f"test{k}_houses_{name.split()[0]}")
            block = _score(work, test["pred"], blocks, test[m], f"test{k}_blocks_{name.split()[0]}")
            pooled[m]["house"].append(house)
            pooled[m]["block"].append(block)
            town[f"house_f1_{name.split()[0]}"] = round(house["f1"], 4)
        towns.append(town)
    rows = []
    for name, m in methods:
        house, block = _pool(pooled[m]["house"]), _pool(pooled[m]["block"])
        rows.append({"method": name, "house_f1": round(house["f1"], 4), "house_precision": round(house["precision"], 4),
                     "house_recall": round(house["recall"], 4), "polygons": house["predicted"],
                     "merged": house["merged"], "split": house["split"], "block_f1": round(block["f1"], 4),
                     "per_town_house_f1": [round(h["f1"], 4) for h in pooled[m]["house"]],
                     "house": house, "block": block})
    print_table(rows, ["method", "house_f1", "house_precision", "house_recall", "polygons", "merged", "split",
                       "block_f1", "per_town_house_f1"])
    result = {
        "what": "house-level object F1 @ IoU 0.5 pooled over unseen synthetic towns with terraced blocks; one model, "
                "footprints from the class raster (baseline) and with --instances, in the same run",
        "train": ({"checkpoint": str(args.checkpoint)} if args.checkpoint else
                  {"scene_seed": train_seed, "size": train_size, "model": config["model"]["name"],
                   "epochs": epochs, "seconds": train_seconds, "config": config}),
        "validation": {"scene_seed": val_seed, "size": test_size,
                       "house_f1_by_seed_threshold_and_min_seed": {f"{t} {s}": f for (t, s), f in val_f1.items()},
                       "chosen": {"seed_threshold": threshold[0], "min_seed": threshold[1]}},
        "test": towns,
        "rows": rows, "seconds": round(time.perf_counter() - t0, 1),
    }
    path = write_result("instances", result, quick=args.quick)
    print(f"wrote {path}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main_bench()
