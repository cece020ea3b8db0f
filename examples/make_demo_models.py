"""Rebuild the shipped models from domain-randomised synthetic scenes, with fixed seeds, and write their cards.

    python examples/make_demo_models.py image   [--out rsmamba/data]   # image-only segmentation
    python examples/make_demo_models.py dsm     [--out rsmamba/data]   # image+DSM segmentation

Recipe (each step seeded): draw ``--scenes`` training styles (:func:`rsmamba.synth.style.training_style`,
never the held-out family) at GSDs drawn from ``TRAIN_GSD``, render one scene per style, lay them side
by side into one mosaic, tile it into chips, train ``examples/train_demo.yaml`` with ``--model``, then
measure the best checkpoint with ``rsmamba predict`` + ``rsmamba evaluate`` on fresh scenes of the
training families and of the held-out family (:func:`measure`, also used by ``bench/cards.py``) and
write ``demo_image_model.md`` / ``demo_model.md`` from those numbers.

On 2 CPU cores (shared with other jobs) each stage below took about 15 minutes (training dominates).

The shipped image-only model is two stages, each starting from the previous checkpoint (stage 1
started from the image+DSM demo model of commit ab9a2b7; today's ``demo_model.pt`` also has instance
outputs, whose head rows ``--init`` leaves out, so a rerun starts from other weights):

    python examples/make_demo_models.py image --scenes 8 --size 320 --chip 64 --epochs 6 --lr 0.001 \
        --init rsmamba/data/demo_model.pt --out stage1          # the image+DSM demo model, DSM channel dropped
    python examples/make_demo_models.py image --scenes 8 --size 384 --chip 128 --epochs 6 --lr 0.001 \
        --init stage1/demo_image_model.pt                       # larger chips: more context per window
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TRAIN_GSD = (0.2, 0.6)  # metres; the cards are measured at 0.25 and 0.5
SCENE_SEED0 = 20_000  # training scenes: seeds SCENE_SEED0 + i; evaluation scenes use other seeds (EVAL_SEED0)
EVAL_SEED0 = 90_000
NAMES = {"image": "demo_image_model", "dsm": "demo_model"}


def training_mosaic(work: Path, *, scenes: int, size: int, with_dsm: bool, seed0: int = SCENE_SEED0) -> dict[str, Path]:
    """One raster of ``scenes`` styled scenes side by side (ortho, labels, DSM): one tile run, one chip folder."""
    import rasterio
    from affine import Affine

    from rsmamba.classes import IGNORE_INDEX
    from rsmamba.synth import DSM_NODATA, generate_scene
    from rsmamba.synth.style import training_style

    rng = np.random.default_rng(seed0)
    orthos, labels, dsms, styles = [], [], [], []
    for i in range(scenes):
        gsd = float(np.round(rng.uniform(*TRAIN_GSD), 3))
        style = training_style(seed0 + i, gsd)
        scene = generate_scene(size, seed=seed0 + i, gsd=gsd, style=style)
        orthos.append(scene.t1.ortho), labels.append(scene.t1.labels), dsms.append(scene.t1.dsm)
        styles.append({"seed": seed0 + i, "family": style.family.value, "gsd": gsd})
    work.mkdir(parents=True, exist_ok=True)
    transform = Affine(0.25, 0, 500_000.0, 0, -0.25, 5_000_000.0)  # a mosaic of pixels; the GSD is nominal
    common = {"driver": "GTiff", "crs": "EPSG:32632", "transform": transform, "height": size, "width": size * scenes,
              "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
    paths = {"ortho": work / "ortho.tif", "labels": work / "labels.tif"}
    with rasterio.open(paths["ortho"], "w", count=3, dtype="uint8", **common) as dst:
        dst.write(np.concatenate(orthos, axis=2))
    with rasterio.open(paths["labels"], "w", count=1, dtype="uint8", nodata=IGNORE_INDEX, **common) as dst:
        dst.write(np.concatenate(labels, axis=1)[None])
    if with_dsm:
        paths["dsm"] = work / "dsm.tif"
        with rasterio.open(paths["dsm"], "w", count=1, dtype="float32", nodata=DSM_NODATA, **common) as dst:
            dst.write(np.concatenate(dsms, axis=1)[None])
    (work / "styles.json").write_text(json.dumps(styles, indent=1))
    return paths


def measure(model: str | Path, *, family: str, gsd: float, size: int, seed: int, with_dsm: bool, work: Path,
            window: int = 128, overlap: int = 32) -> dict[str, float]:
    """Predict + evaluate one fresh styled scene: building IoU, object F1 @ IoU 0.5, mIoU, seconds."""
    from rsmamba.evaluate import evaluate_rasters
    from rsmamba.predict import predict_raster
    from rsmamba.synth import write_scene
    from rsmamba.synth.style import draw_style

    t0 = time.time()
    scene_dir = work / f"{family}_{gsd}_{size}_{seed}"
    scene = write_scene(scene_dir, size=size, seed=seed, gsd=gsd, style=draw_style(seed, family, gsd), overwrite=True)
    pred = predict_raster(scene["ortho_t1"], scene_dir / "pred.tif", dsm=scene["dsm_t1"] if with_dsm else None,
                          model=model, window=window, overlap=overlap, overwrite=True).outputs["classes"]
    metrics = evaluate_rasters(pred, scene["labels_t1"], scene_dir / "eval" / "metrics.json",
                               buildings=scene["buildings_t1"], image=scene["ortho_t1"], min_object_pixels=16)
    b, objects = metrics["per_class"]["building"], metrics["buildings"]
    return {"building_iou": round(b["iou"], 4), "object_f1": round(objects["f1"], 4),
            "object_precision": round(objects["precision"], 4), "object_recall": round(objects["recall"], 4),
            "miou": round(metrics["miou"], 4), "seconds": round(time.time() - t0, 1)}


# What the cards show: (family, GSD); training families are the ones the model saw (fresh scenes, unseen seeds).
CARD_ROWS = [("suburban", 0.25), ("overcast", 0.5), ("heldout-nordic", 0.25), ("heldout-nordic", 0.5)]


def card_rows(model: Path, with_dsm: bool, size: int, work: Path, rows=CARD_ROWS) -> list[dict]:
    out = []
    for i, (family, gsd) in enumerate(rows):
        m = measure(model, family=family, gsd=gsd, size=size, seed=EVAL_SEED0 + i, with_dsm=with_dsm, work=work)
        out.append({"family": family, "gsd": gsd, "size": size, "seed": EVAL_SEED0 + i, **m})
        print(json.dumps(out[-1]), flush=True)
    return out


def write_card(path: Path, *, kind: str, model_name: str, best_epoch: int, args, seconds: float, rows: list[dict],
               styles: list[dict]) -> str:
    families = sorted({s["family"] for s in styles})
    table = "\n".join(
        f"| {r['family']}{' (held out)' if r['family'].startswith('heldout') else ''} | {r['gsd']} | {r['size']} | "
        f"{r['building_iou']:.3f} | {r['object_f1']:.3f} | {r['miou']:.3f} |" for r in rows)
    init_arg = f" --init {args.init.relative_to(ROOT) if args.init.is_absolute() and ROOT in args.init.parents else args.init}" if args.init else ""
    inputs = "RGB orthophoto + DSM" if kind == "dsm" else "RGB orthophoto only (no DSM)"
    card = f"""# rsmamba {'image+DSM' if kind == 'dsm' else 'image-only'} demo model

- Model: `{model_name}`, input: {inputs}; checkpoint by validation mIoU (epoch {best_epoch}).
- Default of `rsmamba predict` {'with `--dsm`' if kind == 'dsm' else 'without `--dsm`'}.
- Data: {args.scenes} synthetic scenes of {args.size} px, one domain-randomised style each
  (`rsmamba.synth.style.training_style(seed)`, seeds {SCENE_SEED0}..{SCENE_SEED0 + args.scenes - 1}, families
  {', '.join(families)}; GSD drawn from {TRAIN_GSD[0]}-{TRAIN_GSD[1]} m), epoch-1 labels, chips of {args.chip} px
  (90 % train / 10 % val blocks).
- Command: `python examples/make_demo_models.py {kind} --scenes {args.scenes} --size {args.size} --chip {args.chip} --epochs {args.epochs} --lr {args.lr}{init_arg}`
  (config `examples/train_demo.yaml`, model `{model_name}`), {seconds:.0f} s on this machine (2 shared CPU cores).
{('- ' + args.note + chr(10)) if args.note else ''}- Held-out style family `heldout-nordic` (blue/teal roofs, setts or dark asphalt, striped crops, cool cast):
  never drawn for training (`rsmamba.synth.style.check_training_style` refuses it).

Measured on fresh scenes (seeds never used for training) with `rsmamba predict --window 128 --overlap 32` and
`rsmamba evaluate` (objects >= 16 px); re-measure with `python bench/cards.py`:

| style family | GSD (m) | size (px) | building IoU | building object F1 @ IoU 0.5 | mIoU |
|---|---|---|---|---|---|
{table}

Synthetic data only: it shows the pipeline end to end; it is not a model for real imagery.
"""
    path.write_text(card)
    return card


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=sorted(NAMES), help="image: image-only segmentation; dsm: image+DSM segmentation")
    ap.add_argument("--model", default="cmtunet_tiny", help="registry name (a Mamba model of the zoo)")
    ap.add_argument("--scenes", type=int, default=12, help="training scenes (one style each)")
    ap.add_argument("--size", type=int, default=384, help="training scene size (pixels)")
    ap.add_argument("--chip", type=int, default=64, help="chip size (pixels)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--init", type=Path, default=None,
                    help="start from this checkpoint (e.g. rsmamba/data/demo_model.pt: its DSM channel is dropped for 'image')")
    ap.add_argument("--lr", type=float, default=0.002)
    ap.add_argument("--note", default="", help="a line added to the card (e.g. how the --init checkpoint was made)")
    ap.add_argument("--eval-size", type=int, default=512, help="side of each card scene (pixels)")
    ap.add_argument("--out", type=Path, default=ROOT / "rsmamba" / "data")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()

    from rsmamba.checkpoint import load_checkpoint
    from rsmamba.tile import tile_scene
    from rsmamba.train import train

    with_dsm = args.kind == "dsm"
    work = args.work or Path(tempfile.mkdtemp(prefix=f"rsmamba-{args.kind}-"))
    t0 = time.time()
    mosaic = training_mosaic(work / "mosaic", scenes=args.scenes, size=args.size, with_dsm=with_dsm)
    tile_scene(mosaic["ortho"], work / "chips", dsm=mosaic.get("dsm"), labels=mosaic["labels"], size=args.chip,
               split=(0.9, 0.1, 0.0), block=args.chip, overwrite=True)
    overrides = [f"data.root={work / 'chips'}", f"out={work / 'run'}", f"model.name={args.model}", "model.kwargs={}",
                 f"train.epochs={args.epochs}", "augment.photometric=0.2", f"optim.lr={args.lr}"]
    if args.init:
        overrides.append(f"model.init={args.init}")
    result = train(ROOT / "examples" / "train_demo.yaml", overrides)
    seconds = time.time() - t0
    rows = card_rows(result.best, with_dsm, args.eval_size, work / "eval")
    args.out.mkdir(parents=True, exist_ok=True)
    name = NAMES[args.kind]
    shutil.copy(result.best, args.out / f"{name}.pt")
    ckpt = load_checkpoint(result.best)
    styles = json.loads((work / "mosaic" / "styles.json").read_text())
    card = write_card(args.out / f"{name}.md", kind=args.kind, model_name=ckpt["model"],
                      best_epoch=ckpt["metrics"]["epoch"], args=args, seconds=seconds, rows=rows, styles=styles)
    (work / f"{name}.json").write_text(json.dumps({"rows": rows, "train_seconds": round(seconds)}, indent=1))
    print(card)


if __name__ == "__main__":
    main()
