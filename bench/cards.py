"""The table of the model cards, re-measured in one run: style family x GSD x shipped model.

    python bench/cards.py                      # the cards' rows (training families + held-out, 0.25/0.5 m)
    python bench/cards.py --size 1024          # the issue's acceptance size (slow on a shared CPU)
    python bench/cards.py --quick              # one small held-out scene per model (a smoke run)
    python bench/cards.py --models image+dsm --checkpoint run/best.pt   # a candidate in place of the shipped model

For each (family, GSD) a fresh scene (seed from ``--seed``, never a training seed) is rendered with
:func:`rsmamba.synth.style.draw_style`, then each shipped model is run as a user would:

- ``image``: ``rsmamba predict ortho_t1.tif`` (no DSM: the image-only default) -> ``rsmamba evaluate``;
- ``image+dsm``: ``rsmamba predict ortho_t1.tif --dsm dsm_t1.tif`` -> ``rsmamba evaluate``;
- ``change``: ``rsmamba change ortho_t1.tif ortho_t2.tif --semantic`` -> change-polygon F1 @ IoU 0.5.

Columns: building IoU, building object F1 @ IoU 0.5 of the class raster's regions (objects >= 16 px)
and of the delivered footprint layer (``footprint_f1``: ``vectorize --min-area 30m2 --regularize``, with
``--instances`` for a model with instance outputs; see :func:`make_demo_models.measure`), change-polygon
F1 and precision. Writes ``bench/results/cards.json`` (``cards-quick.json`` for ``--quick``). Run this
after any change to ``rsmamba.synth``, ``rsmamba.synth.style`` or the training recipe
(``examples/make_demo_models.py``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from _util import print_table, write_result  # noqa: E402
from make_demo_models import CARD_ROWS, measure, measure_change  # noqa: E402

ROWS = CARD_ROWS  # (family, GSD) of the cards' tables


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512, help="scene side in pixels (the issue asks for >= 1024)")
    ap.add_argument("--seed", type=int, default=90_000, help="first scene seed (row i uses seed + i)")
    ap.add_argument("--models", default="image,image+dsm,change", help="comma-separated: image, image+dsm, change")
    ap.add_argument("--quick", action="store_true", help="one 256 px held-out scene at 0.5 m per model")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--rows", default=None, help="instead of the cards' rows: 'family:gsd,...', e.g. heldout-nordic:0.5")
    ap.add_argument("--result", default="cards", help="name of the JSON under bench/results/")
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="a candidate segmentation checkpoint measured in place of the shipped one (image or image+dsm)")
    args = ap.parse_args()
    rows_spec = [("heldout-nordic", 0.5)] if args.quick else ROWS
    if args.rows:
        rows_spec = [(f, float(g)) for f, g in (r.split(":") for r in args.rows.split(","))]
    size = 256 if args.quick else args.size
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    work = args.work or Path(tempfile.mkdtemp(prefix="rsmamba-cards-"))
    rows = []
    for i, (family, gsd) in enumerate(rows_spec):
        seed = args.seed + (ROWS.index((family, gsd)) if (family, gsd) in ROWS else i)  # a row's scene, whatever the selection
        for model in models:
            row = {"family": family, "held_out": family.startswith("heldout"), "gsd": gsd, "size": size,
                   "seed": seed, "model": model}
            if args.checkpoint is not None and model != "change":
                row["checkpoint"] = str(args.checkpoint)
            if model == "change":
                row.update(measure_change(None, family=family, gsd=gsd, size=size, seed=seed, work=work / "change"))
            else:
                row.update(measure(args.checkpoint, family=family, gsd=gsd, size=size, seed=seed, with_dsm=model == "image+dsm",
                                   work=work / model))
            rows.append(row)
            print(row, flush=True)
    print_table(rows, ["family", "gsd", "size", "model", "building_iou", "object_f1", "footprint_f1", "change_f1",
                       "change_precision", "seconds"])
    path = write_result(args.result, {"rows": rows, "models": models}, quick=args.quick)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
