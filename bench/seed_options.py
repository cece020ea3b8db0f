"""``vectorize --instances`` seed options per GSD: footprint F1 of the shipped image+DSM model, counts pooled.

The README's instance example passes ``--seed-threshold 0.9 --min-seed 1m2``, chosen by ``bench/instances.py`` on
a terraced validation town at 0.25 m. The model cards' scenes (``make_demo_models.measure``: fresh styled scenes of
``bench/cards.py``'s rows, mostly detached houses) are scored here at each pair of a grid, from one prediction per
scene (``predict --probabilities``), with ``vectorize --classes building --min-area 30m2 --regularize --instances``
and ``evaluate --buildings --footprints`` (F1 at IoU 0.5, counts pooled per GSD; ``split``: houses in several
polygons). Prints a table, writes ``results/seed_options.json``.

    python bench/seed_options.py              # 8 scenes of 1024 px (two seeds per row), about 3 minutes on 2 cores
    python bench/seed_options.py --repeats 1  # one seed per row
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from _util import print_table, write_result  # noqa: E402
from make_demo_models import scene_style  # noqa: E402

from rsmamba.evaluate import evaluate_rasters  # noqa: E402
from rsmamba.predict import predict_raster  # noqa: E402
from rsmamba.synth import write_scene  # noqa: E402
from rsmamba.vectorize import vectorize_raster  # noqa: E402

ROWS = [("suburban", 0.25, 90000), ("heldout-nordic", 0.25, 90002), ("overcast", 0.5, 90001),
        ("heldout-nordic", 0.5, 90003)]  # bench/cards.py's rows and seeds (its --repeats adds 1000 k)
THRESHOLDS = (0.5, 0.7, 0.9)
MIN_SEEDS = ("1m2", "2m2", "4m2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2, help="scenes per row (seeds seed + 1000 k)")
    ap.add_argument("--size", type=int, default=1024)
    args = ap.parse_args()
    pool: dict[tuple, list[int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for (family, gsd, base), k in itertools.product(ROWS, range(args.repeats)):
            seed = base + 1000 * k
            d = Path(tmp) / f"{family}_{gsd}_{seed}"
            scene = write_scene(d, size=args.size, seed=seed, gsd=gsd, style=scene_style(seed, family, gsd))
            predict_raster(scene["ortho_t1"], d / "pred.tif", dsm=scene["dsm_t1"], probabilities=d / "probs.tif")
            for t, m in itertools.product(THRESHOLDS, MIN_SEEDS):
                fp = d / f"fp_{t}_{m}.gpkg"
                vectorize_raster(d / "pred.tif", fp, classes=["building"], min_area="30m2", regularize=True,
                                 probabilities=d / "probs.tif", instances=True, seed_threshold=t, min_seed=m)
                b = evaluate_rasters(d / "pred.tif", scene["labels_t1"], d / f"ev_{t}_{m}" / "m.json",
                                     buildings=scene["buildings_t1"], footprints=fp)["buildings"]
                acc = pool.setdefault((gsd, t, m), [0, 0, 0, 0])
                for i, key in enumerate(("tp", "predicted", "reference", "split")):
                    acc[i] += b[key]
            print(f"{family} {gsd} m seed {seed}: done", flush=True)
    rows = []
    for (gsd, t, m), (tp, predicted, reference, split) in sorted(pool.items()):
        p, r = tp / predicted, tp / reference
        rows.append({"gsd": gsd, "seed_threshold": t, "min_seed": m, "f1": round(2 * p * r / (p + r), 3),
                     "precision": round(p, 3), "recall": round(r, 3), "tp": tp, "predicted": predicted,
                     "reference": reference, "split": split})
    print_table(rows, ["gsd", "seed_threshold", "min_seed", "f1", "precision", "recall", "reference", "split"])
    path = write_result("seed_options", {"rows": rows, "scenes": [list(r) for r in ROWS], "repeats": args.repeats,
                                         "size": args.size, "model": "rsmamba/data/demo_model.pt (image+DSM)",
                                         "command": "python bench/seed_options.py"})
    print(f"-> {path}")


if __name__ == "__main__":
    main()
