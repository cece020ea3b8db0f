"""Build the shipped demo model: synth scenes -> tile -> train -> evaluate on an unseen scene -> card.

    python examples/make_demo_model.py [--model NAME] [--epochs N] [--out rsmamba/data]

Writes ``demo_model.pt`` (best checkpoint) and ``demo_model.md`` (data, command, metrics) into
``--out``. The held-out scene uses a seed never used for training.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from rsmamba.checkpoint import load_checkpoint
from rsmamba.evaluate import evaluate_rasters
from rsmamba.synth import write_scene
from rsmamba.tile import tile_scene
from rsmamba.train import train
from rsmamba.predict import predict_raster

ROOT = Path(__file__).resolve().parents[1]


def town_model(work: Path, *, model: str | None = None, epochs: int | None = None, size: int = 512,
               chip: int = 64) -> tuple[Path, float]:
    """Train on one synthetic town in the generator's own look (``write_scene(size, seed=11, gsd=0.25)``):
    the best checkpoint and the seconds it took. Also the first step of the image+DSM recipe
    (``make_demo_models.py dsm``), which starts from it."""
    t0 = time.time()
    seen = write_scene(work / "scene", size=size, seed=11, gsd=0.25, overwrite=True)
    tile_scene(seen["ortho_t1"], work / "chips", dsm=seen["dsm_t1"], labels=seen["labels_t1"], size=chip,
               split=(0.9, 0.1, 0.0), block=chip, overwrite=True)
    overrides = [f"data.root={work / 'chips'}", f"out={work / 'run'}"]
    if model:
        overrides += [f"model.name={model}", "model.kwargs={}"]  # the config's kwargs are its model's
    if epochs:
        overrides.append(f"train.epochs={epochs}")
    result = train(ROOT / "examples" / "train_demo.yaml", overrides)
    return result.best, time.time() - t0


def card_score(value: float | None) -> str:
    """A card's score: 4 decimals, n/a where it is 0/0 (a one-class tile's kappa, no building found)."""
    return "n/a" if value is None else f"{value:.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="registry name (default: the config's)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--size", type=int, default=512, help="training scene size (pixels)")
    ap.add_argument("--chip", type=int, default=64, help="chip size (pixels)")
    ap.add_argument("--out", type=Path, default=ROOT / "rsmamba" / "data")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="rsmamba-demo-"))
    t0 = time.time()
    best, _ = town_model(work, model=args.model, epochs=args.epochs, size=args.size, chip=args.chip)
    held = write_scene(work / "held", size=256, seed=12345, gsd=0.25)
    pred = predict_raster(held["ortho_t1"], work / "held_pred.tif", dsm=held["dsm_t1"], model=best, window=128, overlap=32).outputs["classes"]
    metrics = evaluate_rasters(pred, held["labels_t1"], work / "eval" / "metrics.json",
                               buildings=held["buildings_t1"], image=held["ortho_t1"], min_object_pixels=16)
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copy(best, args.out / "demo_model.pt")
    building = metrics["per_class"]["building"]
    ckpt = load_checkpoint(best)
    model_name, best_epoch = ckpt["model"], ckpt["metrics"]["epoch"]
    card = f"""# rsmamba demo model

- Model: `{model_name}` (checkpoint `best.pt` by validation mIoU, epoch {best_epoch})
- Data: one synthetic scene from `rsmamba.synth.write_scene(size={args.size}, seed=11, gsd=0.25)`
  (ortho_t1 RGB + dsm_t1, ISPRS classes), tiled at {args.chip} px (90 % train / 10 % val blocks).
- Command: `python examples/make_demo_model.py {' '.join(f'--{k} {v}' for k, v in (('model', args.model), ('epochs', args.epochs), ('size', args.size), ('chip', args.chip)) if v)}`
  (config `examples/train_demo.yaml`), {time.time() - t0:.0f} s on this machine (CPU).
- Held-out scene (never seen): `write_scene(size=256, seed=12345, gsd=0.25)`.

| metric (held-out scene) | value |
|---|---|
| building IoU | {building['iou']:.4f} |
| building F1 | {building['f1']:.4f} |
| building objects F1 @ IoU 0.5 (objects >= 16 px) | {card_score(metrics['buildings']['f1'])} |
| mIoU (6 classes) | {metrics['miou']:.4f} |
| OA | {metrics['oa']:.4f} |
| kappa | {card_score(metrics['kappa'])} |

Synthetic data only: it shows the pipeline end to end; it is not a model for real imagery.
"""
    (args.out / "demo_model.md").write_text(card)
    print(card)


if __name__ == "__main__":
    main()
