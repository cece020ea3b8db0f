"""Whether scale augmentation's old label resampling made the shipped image+DSM model's half-pixel offset.

    python bench/label_offset.py            # 6 training scenes, two 8-epoch fine-tunes, 2 test scenes (about 10 minutes on 2 cores)
    python bench/label_offset.py --quick    # 2 training scenes, 1 epoch each, the example scene only

The model shipped until 2026-12-06 (``--checkpoint``; today's is its fine-tune with the fix) put its one-pass maps
about half a pixel south-east of the truth (``bench/halfpixel.py``). It was
trained when ``augment.scale`` resampled labels with torch's ``"nearest"`` (0.475 px up-left of their image on
average), since ``"nearest-exact"``. This fine-tunes it twice from ``rsmamba/data/demo_model.pt`` with
``examples/train_demo.yaml`` (lr 0.001, seed 0, both heads) on 24 chips of 256 px cut from 6 synthetic 512 px
scenes with terraced rows: once with the labels as the code samples them now, once with the old mode (patched
in this process: no product option brings the bug back). Same seed, same augmentation draws; only the label
mode differs. Each model (shipped, both fine-tunes) then predicts the example scene and a fresh suburban one
(``bench/halfpixel.py``'s scenes) in one pass at the shipped model's window 512/128; the table gives the median
building offset (rows south, columns east, px) and building IoU. Writes ``bench/results/label_offset.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import rasterio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import print_table, write_result  # noqa: E402
from halfpixel import BUILDING, SCENES, building_offsets, scene_paths  # noqa: E402

SHIPPED = ROOT / "rsmamba" / "data" / "demo_model.pt"
CONFIG = ROOT / "examples" / "train_demo.yaml"
# training scenes: (style, GSD m); synth seeds 30001.. in this order, 512 px, 30 % terraced, instance ids
TRAIN_SCENES = [("suburban:101", 0.25), ("mediterranean:102", 0.3), ("industrial:103", 0.4),
                ("overcast:104", 0.5), ("suburban:105", 0.35), ("mediterranean:106", 0.25)]
WINDOW, OVERLAP = 512, 128  # the shipped model's own; the fine-tunes store their chips' 256/64
LABEL_MODES = {"now": "nearest-exact", "old": "nearest"}


@contextlib.contextmanager
def old_label_mode() -> Iterator[dict[str, int]]:
    """Scale augmentation resamples labels with ``"nearest"`` (before be50afb) while inside; yields a count of
    the label rescales it changed, so a run that never rescaled a label cannot pass for the old mode."""
    import rsmamba.augment as augment

    original = augment._rescale
    calls = {"patched": 0}

    def rescale(t, factor, mode, fill):
        if mode == "nearest-exact":
            mode = "nearest"
            calls["patched"] += 1
        return original(t, factor, mode, fill)

    augment._rescale = rescale
    try:
        yield calls
    finally:
        augment._rescale = original


def make_chips(folder: Path, count: int) -> list[Path]:
    """The first ``count`` training scenes, each cut into 256 px chips with instance targets (all train)."""
    from rsmamba.synth import write_scene
    from rsmamba.synth.style import parse_style
    from rsmamba.tile import tile_scene

    roots = []
    for i, (style, gsd) in enumerate(TRAIN_SCENES[:count]):
        scene = write_scene(folder / f"s{i}", size=512, seed=30001 + i, gsd=gsd, style=parse_style(style, gsd),
                            terraced=0.3, instances=True)
        root = folder / f"c{i}"
        tile_scene(scene["ortho_t1"], root, dsm=scene["dsm_t1"], labels=scene["labels_t1"],
                   instance_targets=scene["instances_t1"], contact_px=4, border_px=3, size=256, split=(1.0, 0.0, 0.0))
        roots.append(root)
    return roots


def fine_tune(chips: list[Path], out: Path, epochs: int, label_mode: str, start: Path = SHIPPED) -> dict:
    """Fine-tune ``start`` (the shipped model) on ``chips``; its labels scaled with ``LABEL_MODES[label_mode]``."""
    from rsmamba.train import train

    overrides = [f"data.root={json.dumps([str(c) for c in chips])}", "model.instances=[interior, contact]",
                 f"model.init={json.dumps(str(start))}", f"train.epochs={epochs}", "optim.lr=0.001",
                 "train.seed=0", f"out={json.dumps(str(out))}"]
    start = time.perf_counter()
    with old_label_mode() if label_mode == "old" else contextlib.nullcontext({"patched": 0}) as calls:
        train(str(CONFIG), overrides, progress=False, overwrite=True)
    if label_mode == "old" and not calls["patched"]:
        raise SystemExit("label_offset: the old label mode was never used (no label was rescaled)")
    return {"checkpoint": out / "last.pt", "seconds": round(time.perf_counter() - start, 1),
            "old_mode_label_rescales": calls["patched"]}


def measure(model: Path, paths: dict, out: Path) -> dict:
    """One pass at 512/128: median building offset and building IoU against the scene's labels."""
    from rsmamba.predict import predict_raster

    with rasterio.open(paths["labels"]) as src:
        truth = src.read(1) == BUILDING
    predict_raster(paths["ortho"], out, dsm=paths["dsm"], model=model, window=WINDOW, overlap=OVERLAP, tta=False,
                   progress=False, overwrite=True)
    with rasterio.open(out) as src:
        pred = src.read(1) == BUILDING
    south, east, n = building_offsets(truth, pred)
    return {"offset_south_px": round(south, 3), "offset_east_px": round(east, 3), "buildings": n,
            "building_iou": round(float((truth & pred).sum() / (truth | pred).sum()), 4)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 training scenes, 1 epoch, the example scene only")
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED,
                        help="the model fine-tuned (default: the shipped one; the one this experiment was run on, "
                             "shipped until 2026-12-06: git show e59eef0~1:rsmamba/data/demo_model.pt > before.pt)")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    n_scenes, epochs = (2, 1) if args.quick else (len(TRAIN_SCENES), 8)
    rows, runs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        chips = make_chips(tmp / "train", n_scenes)
        models = {"shipped": {"checkpoint": args.checkpoint}}
        for mode in LABEL_MODES:
            models[f"fine-tune, labels {mode}"] = runs[mode] = fine_tune(chips, tmp / f"run-{mode}", epochs, mode,
                                                                         args.checkpoint)
        for name, seed, style, gsd, size in SCENES[:1] if args.quick else SCENES[:2]:
            paths = scene_paths(name, seed, style, gsd, size, tmp / "test")
            for model, info in models.items():
                rows.append({"model": model, "scene": name, "gsd": gsd,
                             **measure(info["checkpoint"], paths, tmp / "pred.tif")})
    print_table(rows, ["model", "scene", "gsd", "offset_south_px", "offset_east_px", "buildings", "building_iou"])
    fine_tunes = {mode: {"label_mode": LABEL_MODES[mode], "seconds": r["seconds"],
                         "old_mode_label_rescales": r["old_mode_label_rescales"]} for mode, r in runs.items()}
    path = write_result("label_offset", {
        "rows": rows, "fine_tunes": fine_tunes, "training_scenes": n_scenes, "epochs": epochs,
        "recipe": f"examples/train_demo.yaml --init {args.checkpoint}, optim.lr=0.001, train.seed=0, "
                  "model.instances=[interior, contact]; chips 256 px, split 1,0,0",
        "predict": f"one pass (tta=False), window {WINDOW}, overlap {OVERLAP}",
        "command": "python bench/label_offset.py" + (" --quick" if args.quick else "")}, quick=args.quick)
    print(f"-> {path}")


if __name__ == "__main__":
    main()
