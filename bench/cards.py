"""The table of the model cards, re-measured in one run: style family x GSD x shipped model.

    python bench/cards.py                      # the cards' rows (training families + held-out, 0.25/0.5 m)
    python bench/cards.py --size 1024          # the issue's acceptance size (slow on a shared CPU)
    python bench/cards.py --quick              # one small held-out scene per model (a smoke run)
    python bench/cards.py --models image+dsm --checkpoint run/best.pt   # a candidate in place of the shipped model
    python bench/cards.py --models change --size 2048 --repeats 2 --rows default:0.25,heldout-nordic:0.25
    python bench/cards.py --models image --size 1024 --tta d4   # as rsmamba predict --tta: 8 passes per window
    python bench/cards.py --models image --size 1024 --tta none   # as rsmamba predict --no-tta
    python bench/cards.py --models image+dsm --size 1024 --window 512/128   # another window than the model's own

For each (family, GSD) a fresh scene (seed from ``--seed``, never a training seed) is rendered with
:func:`rsmamba.synth.style.draw_style`, then each shipped model is run as a user would:

- ``image``: ``rsmamba predict ortho_t1.tif`` (no DSM: the image-only default) -> ``rsmamba evaluate``;
- ``image+dsm``: ``rsmamba predict ortho_t1.tif --dsm dsm_t1.tif`` -> ``rsmamba evaluate``;
- ``change``: ``rsmamba change ortho_t1.tif ortho_t2.tif --semantic`` -> change-polygon F1 @ IoU 0.5.

Columns: building IoU, building object F1 @ IoU 0.5 of the class raster's regions (objects >= 16 px)
and of the delivered footprint layer (``footprint_f1``: ``vectorize --min-area 30m2 --regularize``, with
``--instances`` for a model with instance outputs; see :func:`make_demo_models.measure`), change-polygon
F1 and precision. Family ``default`` is the generator's default style (``rsmamba synth``, the example
scene). ``--repeats K`` measures every row on K scenes (seeds ``seed + 1000 k``) and adds pooled rows:
change-polygon counts summed over the scenes (one scene of a family holds 10-30 changed buildings at
1024 px, so one scene's F1 moves by 0.1 with two polygons), other scores averaged. Writes ``bench/results/cards.json`` (``cards-quick.json`` for ``--quick``). Run this
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
from make_demo_models import CARD_ROWS, measure, measure_change, pooled_f1  # noqa: E402

ROWS = CARD_ROWS  # (family, GSD) of the cards' tables


def pooled(rows: list[dict]) -> list[dict]:
    """One row per (family, GSD, model) over its scenes: change counts summed, other scores averaged."""
    out = []
    for key in dict.fromkeys((r["family"], r["gsd"], r["model"]) for r in rows):
        mine = [r for r in rows if (r["family"], r["gsd"], r["model"]) == key]
        row = {"family": key[0], "held_out": mine[0]["held_out"], "gsd": key[1], "size": mine[0]["size"],
               "seed": "pooled", "model": key[2], "scenes": len(mine)}
        if "change_tp" in mine[0]:
            counts = [{c: r[f"change_{c}"] for c in ("tp", "predicted", "reference")} for r in mine]
            row.update({f"change_{k}": v for k, v in pooled_f1(counts).items()})
            if "change_threshold" in mine[0]:
                row["change_threshold"] = mine[0]["change_threshold"]
        else:
            for name in ("building_iou", "object_f1", "footprint_f1", "miou"):
                row[name] = round(sum(r[name] for r in mine) / len(mine), 4)
        row["seconds"] = round(sum(r["seconds"] for r in mine), 1)
        out.append(row)
    return out


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
                    help="a candidate checkpoint measured in place of the shipped one (of the one model in --models)")
    ap.add_argument("--tta", default=None,
                    help="predict with this test-time augmentation: d4 (rsmamba predict --tta), flip (--tta-flip), "
                         "rot180 (--tta-rot180), none (--no-tta); change rows take d4, rot180 or none (rsmamba change --tta / "
                         "--tta-rot180 / --no-tta); "
                         "default: each model's own, as rsmamba predict / change without these options")
    ap.add_argument("--repeats", type=int, default=1, help="scenes per row (seeds seed + 1000 k), pooled")
    ap.add_argument("--window", default=None,
                    help="window/overlap of the predict and change runs (default: each model's own, as rsmamba "
                         "predict / change without --window)")
    args = ap.parse_args()
    rows_spec = [("heldout-nordic", 0.5)] if args.quick else ROWS
    if args.rows:
        rows_spec = [(f, float(g)) for f, g in (r.split(":") for r in args.rows.split(","))]
    size = 256 if args.quick else args.size
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    window, overlap = (int(v) for v in args.window.split("/")) if args.window else (None, None)
    work = args.work or Path(tempfile.mkdtemp(prefix="rsmamba-cards-"))
    if args.checkpoint is not None and len(models) != 1:
        ap.error("--checkpoint replaces one model: pass one name in --models")
    if args.tta not in (None, "d4", "rot180", "none") and "change" in models:
        ap.error("change rows take --tta d4, rot180 or none only (rsmamba change --tta / --tta-rot180 / --no-tta)")
    tta = None if args.tta is None else (False if args.tta == "none" else args.tta)  # None: the model's own
    rows = []
    for i, (family, gsd) in enumerate(rows_spec):
        base = args.seed + (ROWS.index((family, gsd)) if (family, gsd) in ROWS else i)  # a row's scene, whatever the selection
        for k in range(max(1, args.repeats)):
            seed = base + 1000 * k
            for model in models:
                row = {"family": family, "held_out": family.startswith("heldout"), "gsd": gsd, "size": size,
                       "seed": seed, "model": model}
                if args.checkpoint is not None:
                    row["checkpoint"] = str(args.checkpoint)
                if args.tta:
                    row["tta"] = args.tta
                if model == "change":
                    row.update(measure_change(args.checkpoint, family=family, gsd=gsd, size=size, seed=seed,
                                              work=work / "change", tta=True if tta == "d4" else tta,
                                              window=window,
                                              overlap=overlap))
                else:
                    row.update(measure(args.checkpoint, family=family, gsd=gsd, size=size, seed=seed,
                                       with_dsm=model == "image+dsm", work=work / model, tta=tta,
                                       window=window, overlap=overlap))
                rows.append(row)
                print(row, flush=True)
    if args.repeats > 1:
        rows += pooled(rows)
    print_table(rows, ["family", "gsd", "size", "model", "tta_passes", "building_iou", "object_f1", "footprint_f1", "change_f1",
                       "change_precision", "change_threshold", "seconds"])
    path = write_result(args.result, {"rows": rows, "models": models}, quick=args.quick)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
