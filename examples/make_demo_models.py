"""Rebuild the shipped models from domain-randomised synthetic scenes, with fixed seeds, and write their cards.

    python examples/make_demo_models.py image   [--out demo_models]   # image-only segmentation
    python examples/make_demo_models.py dsm     [--out demo_models]   # image+DSM segmentation
    python examples/make_demo_models.py change  [--out demo_models]   # semantic change (mambafcs_tiny)

``--out rsmamba/data`` replaces the shipped model and card; the default folder leaves them as they are.

Recipe (each step seeded): draw ``--scenes`` training styles (:func:`rsmamba.synth.style.training_style`,
never the held-out family) at GSDs drawn from ``TRAIN_GSD``, render one scene per style, lay them side
by side into one mosaic (for ``change`` both epochs and the change raster), tile it into chips, train
``examples/train_demo.yaml`` with ``--model``, then measure the best checkpoint on fresh scenes of the
training families and of the held-out family (:func:`measure` with ``rsmamba predict`` + ``rsmamba
evaluate``, :func:`measure_change` with ``rsmamba change``; both also used by ``bench/cards.py``) and
write ``demo_image_model.md`` / ``demo_model.md`` / ``demo_change_model.md`` from those numbers.

The 30-minute recipes. Options left out take the kind's recipe (``RECIPES``), one stage each with fixed seeds:

    python examples/make_demo_models.py dsm      # = --scenes 2048 --size 256 --chip 256 --epochs 11 --lr 0.002
                                                 #   --init town --eval-size 1024

is stage 1 of the shipped image+DSM model (``--out rsmamba/data``). ``--init town`` first trains ``examples/make_demo_model.py``'s
model of one town in the generator's own look (``TOWN``, 340 s), then the styled mosaic, with instance targets
(``INSTANCE_TARGETS``) and a terraced share per scene (``TERRACED``), trains the instance outputs too. 2000 s to its
checkpoint and 33.5 minutes with its card on 2 CPU cores; held out building IoU 0.958 / 0.921 at 0.25 / 0.5 m
(three 1024 px scenes each, bench/results/cards-dsm-30min-pooled.json), house F1 0.957 on the terraced towns of
``bench/instances.py``; bench/results/dsm-recipe.json, ``one_stage_30_minutes``. It ran on 2026-12-05, when scale
augmentation resampled labels 0.475 px up-left of their images (fixed since in ``rsmamba.augment``); its maps sat
half a pixel south-east. Stage 2, a fine-tune with the fix (1826 s with its card, on a machine about 4x slower):

    python examples/make_demo_models.py dsm --init rsmamba/data/demo_model.pt --scenes 512 --epochs 4 --lr 0.0005 \
        --out rsmamba/data

held out building IoU 0.970 / 0.945 (bench/results/cards-dsm-finetune-pooled.json), house F1 0.966, one-pass
offsets within 0.16 px (bench/results/halfpixel.json). A rerun of stage 1 today has the fix from the start.

    python examples/make_demo_models.py image    # = --scenes 2048 --size 256 --chip 256 --epochs 14 --lr 0.002
                                                 #   --init rsmamba/data/demo_model.pt --ground-textures --eval-size 1024

is the shipped image-only model: from the image+DSM model above (stage 1, as shipped until 2026-12-06; its DSM channel and instance rows dropped), on
styles drawn with the ground texture bank (``--ground-textures``, :data:`rsmamba.synth.style.GROUND_TEXTURES`:
textured streets and meadows, so that texture alone does not mean building). 1889 s to its checkpoint and 32
minutes with its card; held out building IoU 0.912 / 0.903 at 0.25 / 0.5 m (three 1024 px scenes each,
bench/results/cards-image-ground-pooled.json). Without the bank the same recipe took 1854 s and scored 0.855 / 0.839
there, at about the same level on the selection rows (bench/results/image-stages.json, ``one_stage_30_minutes``
and ``one_stage_30_minutes_no_ground_textures``). With ``--world-features`` as well (their first version, commit 62b0470:
halls, ponds, hipped roofs, dense cores, building lean; 1943 s) it was lower on five of the six selection rows and was not kept
(``one_stage_30_minutes_world_features_not_kept``).

    python examples/make_demo_models.py change   # = --scenes 192 --default-scenes 32 --size 256 --chip 64
                                                 #   --epochs 12 --lr 0.002 --eval-size 2048 (random weights)

is the shipped change model: 1386 s to its calibrated checkpoint and 24.5 minutes with its card; held out, three
2048 px pairs pooled per GSD, change-polygon F1 0.884 / 0.865 with precision 0.884 / 0.833
(bench/results/cards-change-12ep-pooled.json; 0.914 / 0.873 with the code of 2026-12-07,
cards-change-shipped-heldout-pooled.json); 0.816 on the calibration pairs pooled, where the four-stage model
it replaced scored 0.795 (bench/results/change-stages.json, ``one_stage_30_minutes``). With 6 epochs (844 s,
``one_stage_6_epochs``) it scored 0.765 there. It ran on 2026-12-05, before the label-sampling fix; two reruns on
2026-12-07 (2028 s to the calibrated checkpoint on that day's machine) trained two other models, whose masks lie
closer to the truth but which were not better everywhere on change polygons (0.859 and 0.837 on the calibration pairs against
the shipped model's 0.846 that day, both lower held out at 0.5 m; ``label_fix_retrains_not_shipped``, its card).

All three shipped models are these one-stage recipes. The image-only model shipped until 2026-12-05 was the
ten-stage recipe below (10079 s on 2 CPU cores; each stage took 4 to 35 minutes). It scored higher on the
selection rows, but over three held-out scenes per GSD it scored 0.814 / 0.848 (bench/results/cards-image-shipped-pooled.json).
Its image-only stages started from the image+DSM model shipped before 2026-12-05 (one terraced town,
``bench/instances.py``; bench/results/dsm-recipe.json).

That model was ten stages, each starting from the previous checkpoint (stage 1
started from the image+DSM demo model of commit ab9a2b7; today's ``demo_model.pt`` also has instance
outputs, whose head rows ``--init`` leaves out, so a rerun starts from other weights; the stages predate the
ground texture bank, so a rerun adds ``--no-ground-textures`` to each):

    python examples/make_demo_models.py image --scenes 8 --size 320 --chip 64 --epochs 6 --lr 0.001 \
        --init rsmamba/data/demo_model.pt --out stage1          # the image+DSM demo model, DSM channel dropped
    python examples/make_demo_models.py image --scenes 8 --size 384 --chip 128 --epochs 6 --lr 0.001 \
        --init stage1/demo_image_model.pt --out stage2          # larger chips: more context per window
    python examples/make_demo_models.py image --scenes 24 --size 512 --chip 128 --epochs 30 --lr 0.002 \
        --init stage2/demo_image_model.pt --eval-size 1024 --out stage3
    python examples/make_demo_models.py image --scenes 32 --size 512 --chip 128 --epochs 30 --lr 0.001 \
        --init stage3/demo_image_model.pt --eval-size 1024 --out stage4
    python examples/make_demo_models.py image --scenes 128 --size 256 --chip 128 --epochs 24 --lr 0.001 \
        --init stage4/demo_image_model.pt --eval-size 1024 --out stage5   # many small scenes: more styles per pixel
    python examples/make_demo_models.py image --scenes 512 --size 256 --chip 128 --epochs 20 --lr 0.001 \
        --init stage5/demo_image_model.pt --eval-size 1024 --out stage6
    python examples/make_demo_models.py image --scenes 1024 --size 256 --chip 128 --epochs 16 --lr 0.0007 \
        --init stage6/demo_image_model.pt --eval-size 1024 --out stage7
    python examples/make_demo_models.py image --scenes 1536 --size 256 --chip 128 --epochs 8 --lr 0.0005 \
        --init stage7/demo_image_model.pt --eval-size 1024 --out stage8   # 2069 s on 2 cores shared with a test run
    python examples/make_demo_models.py image --scenes 2048 --size 256 --chip 128 --epochs 6 --lr 0.0004 \
        --init stage8/demo_image_model.pt --eval-size 1024 --out stage9       # 1311 s on 2 cores
    python examples/make_demo_models.py image --scenes 2048 --size 256 --chip 256 --epochs 6 --lr 0.0003 \
        --init stage9/demo_image_model.pt --eval-size 1024   # 791 s: whole 256 px scenes as chips

Stages 5-9 each scored higher than the stage before on every selection row (building IoU of the training
families and the default style at two seeds; never the held-out family) at ``--window 128 --overlap 32``
(their cards: add ``--window 128/32``); stage 10 did at 512/128, the image-only model's own window
(bench/results/image-stages.json). A tenth stage of 4096 scenes (5 epochs, lr 0.0003) did not, and was not kept.
``--colour`` and ``--channel-shuffle`` (augment.colour, augment.channel_shuffle) make hue an unreliable
cue, as ``--grayscale`` (augment.grayscale) does; stages with them after stage 4 (0.3, 0.5 and 0.1, 0.2)
and with ``--grayscale 0.25`` after stage 9 were measured and not shipped (bench/results/image-candidates.json).

The change model shipped until 2026-12-05 was four stages of ``change`` (styled epoch pairs, plus pairs in the generator's
default style, as the example scene, from stage 2 on), the first from the change model shipped before
(``examples/make_demo_change_model.py``, one default-style pair):

    python examples/make_demo_models.py change --scenes 16 --size 384 --chip 64 --epochs 25 --lr 0.001 \
        --init <the previous demo_change_model.pt> --eval-size 1024 --out stage1
    python examples/make_demo_models.py change --scenes 16 --default-scenes 6 --size 384 --chip 64 --epochs 10 \
        --lr 0.0005 --init stage1/demo_change_model.pt --eval-size 1024 --out stage2
    python examples/make_demo_models.py change --scenes 96 --default-scenes 16 --size 256 --chip 64 --epochs 6 \
        --lr 0.0005 --init stage2/demo_change_model.pt --eval-size 2048 --out stage3   # many small pairs
    python examples/make_demo_models.py change --scenes 192 --default-scenes 32 --size 256 --chip 64 --epochs 6 \
        --lr 0.0003 --init stage3/demo_change_model.pt --eval-size 2048    # about 27 minutes on 2 cores

Each shipped checkpoint carries its own window (``WINDOWS``; ``--window`` overrides), which ``rsmamba
predict`` / ``change`` use when the user gives none, and which the cards and the change calibration are
measured at. ``window`` only stamps a checkpoint (``--window``, ``--tta``, ``--gsd``), e.g. one trained by ``bench/instances.py``.

``change`` ends by calibrating (:func:`calibrate_change`): the threshold on p(change) and the minimum
change-polygon area with the best pooled change-polygon F1 over fresh pairs of the training families and
the default style (``calibration_rows``, never the held-out family) travel in the checkpoint; ``rsmamba
change`` uses the threshold and records the area on its raster, which ``rsmamba vectorize`` then takes as
its ``--min-area`` (``calibrate`` does only that step for ``--init``). Of the four-stage model, stage 4 was kept over stage 2
on those pairs, family by family, and on the test pairs (bench/results/change-stages.json).
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
NAMES = {"image": "demo_image_model", "dsm": "demo_model", "change": "demo_change_model"}
# Each shipped model's own window (window, overlap), stored in its checkpoint ("inference"): what
# rsmamba predict / change run it at when no --window is given, chosen on the selection rows (never
# the held-out family). image+DSM (256 px chips): 512/128 higher than 256/64 on four of its six selection
# rows, 128/32 lower on average by 0.014 (bench/results/dsm-windows.json). Change: the calibration pairs' pooled F1 was 0.757
# at 128/32 against 0.756 at 512/128 (threshold 0.5 there), so the recipe's window was kept. Image-only
# (one pass): 512/128 higher than 256/64 on four of six, 128/32 lower on all six (bench/results/image-stages.json,
# one_stage_30_minutes.window_selection_one_pass).
WINDOWS = {"image": (512, 128), "dsm": (512, 128), "change": (128, 32)}
# Each shipped model's own test-time augmentation (rsmamba.engine.tta spec; absent: plain), stored beside its
# window and chosen on the same six selection rows (bench/results/tta-selection.json): D4 when it scores higher
# than plain on all six and by at least 0.01 building IoU on average, for its eight passes per window.
# Image-only: higher on all six by 0.012-0.049 (mean 0.028; image-stages.json). Image+DSM: higher on all six
# but by 0.005 on average, so it runs plain. Change: calibrated (threshold, area) without TTA, so plain.
TTAS = {"image": "d4"}
# What make_demo_models.py KIND runs when an option is not given: each kind's 30-minute recipe on 2 CPU
# cores, one stage with fixed seeds (GENERIC for a kind without one). The image-only recipe starts from
# the shipped image+DSM model (its DSM channel and instance rows dropped); see the docstring.
GENERIC = dict(scenes=12, default_scenes=0, size=384, chip=64, epochs=12, lr=0.002, init=None, eval_size=512,
               ground_textures=False, world_features=False)
RECIPES: dict[str, dict] = {
    "image": dict(scenes=2048, size=256, chip=256, epochs=14, lr=0.002, eval_size=1024, ground_textures=True,
                  init=str(ROOT / "rsmamba" / "data" / "demo_model.pt")),
    "change": dict(scenes=192, default_scenes=32, size=256, chip=64, epochs=12, lr=0.002, eval_size=2048),
    "dsm": dict(scenes=2048, size=256, chip=256, epochs=11, lr=0.002, eval_size=1024, init="town"),
}
# --init town (the image+DSM recipe's): first train examples/make_demo_model.py's model of one town in the
# generator's own look with these options (about 6 minutes on 2 cores), then start from it.
TOWN = dict(model="cmtunet_tiny", epochs=40, size=1536, chip=64)
# The image+DSM model's instance outputs (issue #17: p(interior), p(contact), which vectorize --instances
# splits terraces with): targets from each scene's building ids, widths in pixels of the mosaic. At the
# training GSDs (0.2-0.6 m) 4 px of contact is 0.8-2.4 m each side of a party wall; the single-town model
# had 6 px at 0.25 m (1.5 m). Each styled scene lays out a share of its buildings, drawn from TERRACED, as
# terraced rows and perimeter blocks of touching houses, so that there are party walls to learn.
INSTANCE_TARGETS = {"contact_px": 4, "border_px": 3}
TERRACED = (0.0, 0.75)
CHANGE_MIN_AREA_M2 = 30.0  # the smallest synthetic building is 8 m x 8 m: change polygons under half of that are speckle
CHANGE_RATE = 0.3  # share of buildings demolished and added in the change model's training scenes


def training_mosaic(work: Path, *, scenes: int, size: int, with_dsm: bool, seed0: int = SCENE_SEED0,
                    with_t2: bool = False, change_rate: float | None = None, default_scenes: int = 0,
                    terraced: tuple[float, float] | None = None, with_instances: bool = False,
                    ground_textures: bool = False, world_features: bool = False) -> dict[str, Path]:
    """One raster of ``scenes`` styled scenes side by side (ortho, labels, DSM): one tile run, one chip folder.

    ``with_t2`` adds the second epoch (``ortho_t2``, ``labels_t2``) and the ``change`` raster, for the
    change model; ``change_rate`` is passed to the generator (None: its default). ``default_scenes``
    more scenes in the generator's default style (what ``rsmamba synth`` and the example scene show)
    follow the styled ones, at 0.25 m, seeds continuing after them. ``terraced`` (low, high): each styled
    scene lays out a share of its buildings as terraced rows and perimeter blocks, drawn from that range
    (from a generator of its own, so the scenes of a mosaic without it stay as they were).
    ``with_instances`` adds ``instances``: each pixel's building id, unique across the mosaic (0: none),
    from which tile makes the interior/contact targets of the instance outputs. ``ground_textures``
    draws each styled scene with the ground texture bank (``training_style(..., ground=True)``),
    ``world_features`` with the world features (halls, ponds, parking lots, hipped roofs, dense cores, building lean).
    """
    import rasterio
    from affine import Affine

    from rsmamba.classes import IGNORE_INDEX
    from rsmamba.synth import DSM_NODATA, generate_scene
    from rsmamba.synth.style import training_style

    rng = np.random.default_rng(seed0)
    terraced_rng = np.random.default_rng([seed0, 0x7E4])
    orthos, labels, dsms, styles, ids = [], [], [], [], []
    orthos2, labels2, changes = [], [], []
    extra = {} if change_rate is None else {"change_rate": change_rate}
    plan = []  # (seed, GSD, style or None for the default style, family, terraced share)
    for i in range(scenes):
        gsd = float(np.round(rng.uniform(*TRAIN_GSD), 3))
        style = training_style(seed0 + i, gsd, ground=ground_textures, world=world_features)
        share = float(np.round(terraced_rng.uniform(*terraced), 2)) if terraced else 0.0
        plan.append((seed0 + i, gsd, style, style.family.value, share))
    plan += [(seed, 0.25, None, "default", 0.0) for seed in range(seed0 + scenes, seed0 + scenes + default_scenes)]
    next_id = 0
    for seed, gsd, style, family, share in plan:
        scene = generate_scene(size, seed=seed, gsd=gsd, style=style, terraced=share, **extra)
        orthos.append(scene.t1.ortho), labels.append(scene.t1.labels), dsms.append(scene.t1.dsm)
        if with_instances:  # ids made unique across the mosaic: two scenes' buildings are never one
            ids.append(np.where(scene.t1.instances > 0, scene.t1.instances.astype(np.int64) + next_id, 0))
            next_id = max(next_id, int(ids[-1].max()))
        if with_t2:
            orthos2.append(scene.t2.ortho), labels2.append(scene.t2.labels), changes.append(scene.change)
        styles.append({"seed": seed, "family": family, "gsd": gsd, **({"terraced": share} if share else {})})
    scenes = len(plan)
    work.mkdir(parents=True, exist_ok=True)
    transform = Affine(0.25, 0, 500_000.0, 0, -0.25, 5_000_000.0)  # a mosaic of pixels; the GSD is nominal
    common = {"driver": "GTiff", "crs": "EPSG:32632", "transform": transform, "height": size, "width": size * scenes,
              "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
    paths = {"ortho": work / "ortho.tif", "labels": work / "labels.tif"}
    with rasterio.open(paths["ortho"], "w", count=3, dtype="uint8", **common) as dst:
        dst.write(np.concatenate(orthos, axis=2))
    with rasterio.open(paths["labels"], "w", count=1, dtype="uint8", nodata=IGNORE_INDEX, **common) as dst:
        dst.write(np.concatenate(labels, axis=1)[None])
    if with_t2:
        paths.update(ortho_t2=work / "ortho_t2.tif", labels_t2=work / "labels_t2.tif", change=work / "change.tif")
        with rasterio.open(paths["ortho_t2"], "w", count=3, dtype="uint8", **common) as dst:
            dst.write(np.concatenate(orthos2, axis=2))
        for key, arrays in (("labels_t2", labels2), ("change", changes)):
            with rasterio.open(paths[key], "w", count=1, dtype="uint8", nodata=IGNORE_INDEX, **common) as dst:
                dst.write(np.concatenate(arrays, axis=1)[None])
    if with_instances:
        paths["instances"] = work / "instances.tif"
        with rasterio.open(paths["instances"], "w", count=1, dtype="uint32", **common) as dst:
            dst.write(np.concatenate(ids, axis=1).astype(np.uint32)[None])
    if with_dsm:
        paths["dsm"] = work / "dsm.tif"
        with rasterio.open(paths["dsm"], "w", count=1, dtype="float32", nodata=DSM_NODATA, **common) as dst:
            dst.write(np.concatenate(dsms, axis=1)[None])
    (work / "styles.json").write_text(json.dumps(styles, indent=1))
    return paths


def card_cell(value: float | None) -> str:
    """A card table's cell: 3 decimals, n/a for a score with nothing to count (as the CLI prints it)."""
    return "n/a" if value is None else f"{value:.3f}"


def card_score(value: float | None) -> float | None:
    """A score for a card, 4 decimals; None (0/0: nothing predicted or nothing to find) stays None."""
    return None if value is None else round(value, 4)


def scene_style(seed: int, family: str, gsd: float):
    """The style of an evaluation scene: ``family`` drawn with ``seed``, or None (the generator's default
    style, as ``rsmamba synth`` and the example scene) for ``family == "default"``."""
    from rsmamba.synth.style import draw_style

    return None if family == "default" else draw_style(seed, family, gsd)


def measure(model: str | Path, *, family: str, gsd: float, size: int, seed: int, with_dsm: bool, work: Path,
            window: int | None = None, overlap: int | None = None, tta: bool | str | None = None) -> dict[str, float]:
    """Predict + evaluate one fresh styled scene: building IoU, object F1 @ IoU 0.5, mIoU, seconds.

    ``tta`` is ``rsmamba predict --tta`` (e.g. ``"d4"``: eight passes per window, softmax averaged; False:
    plain); ``window``/``overlap``/``tta`` None: the model's own, as ``rsmamba predict`` without options.

    Two object scores: ``object_f1`` counts the connected building regions of the class raster
    (>= 16 px, so speckle counts too), ``footprint_f1`` the footprint layer a user delivers, made as
    the README shows (``vectorize --classes building --min-area 30m2 --regularize``, plus
    ``--instances`` with its default seed options when the model has instance outputs; before
    2026-12-07 the cards passed ``--seed-threshold 0.9 --min-seed 1m2``, which split more detached
    houses at 0.5 m: ``bench/seed_options.py``).
    """
    import rasterio

    from rsmamba.errors import InputError
    from rsmamba.evaluate import evaluate_rasters
    from rsmamba.predict import predict_raster
    from rsmamba.synth import write_scene
    from rsmamba.vectorize import vectorize_raster
    from rsmamba.vectorize.instances import instance_bands

    t0 = time.time()
    scene_dir = work / f"{family}_{gsd}_{size}_{seed}"
    scene = write_scene(scene_dir, size=size, seed=seed, gsd=gsd, style=scene_style(seed, family, gsd), overwrite=True)
    probs = scene_dir / "probs.tif"
    summary = predict_raster(scene["ortho_t1"], scene_dir / "pred.tif", dsm=scene["dsm_t1"] if with_dsm else None,
                             model=model, window=window, overlap=overlap, probabilities=probs, tta=tta, overwrite=True)
    pred = summary.outputs["classes"]
    metrics = evaluate_rasters(pred, scene["labels_t1"], scene_dir / "eval" / "metrics.json",
                               buildings=scene["buildings_t1"], image=scene["ortho_t1"], min_object_pixels=16,
                               overwrite=True)
    with rasterio.open(probs) as p:
        try:
            instances = bool(instance_bands(p))
        except InputError:  # a model without instance outputs
            instances = False
    footprints = scene_dir / "footprints.gpkg"
    vectorize_raster(pred, footprints, classes=["building"], min_area="30m2", regularize=True,
                     probabilities=probs if instances else None, instances=instances, overwrite=True)
    fp = evaluate_rasters(pred, scene["labels_t1"], scene_dir / "eval_footprints" / "metrics.json",
                          buildings=scene["buildings_t1"], footprints=footprints, overwrite=True)["buildings"]
    b, objects = metrics["per_class"]["building"], metrics["buildings"]
    return {"window": f"{summary.window}/{summary.overlap}", "tta_passes": summary.tta_views,
            "building_iou": card_score(b["iou"]),
            "object_f1": card_score(objects["f1"]),
            "object_precision": card_score(objects["precision"]), "object_recall": card_score(objects["recall"]),
            "footprint_f1": card_score(fp["f1"]), "footprint_precision": card_score(fp["precision"]),
            "footprint_recall": card_score(fp["recall"]), "footprint_instances": instances,
            "miou": card_score(metrics["miou"]), "seconds": round(time.time() - t0, 1)}


def measure_change(model: str | Path | None, *, family: str, gsd: float, size: int, seed: int,
                   work: Path, tta: bool | str | None = None, window: int | None = None, overlap: int | None = None
                   ) -> dict[str, float]:
    """A change model (None: the shipped one) on one fresh styled scene pair: change-polygon F1 @ IoU 0.5.

    ``tta`` is ``rsmamba change --tta`` (D4, both epochs turned alike; ``"rot180"``: ``--tta-rot180``; False: plain); ``window``/``overlap``/
    ``tta`` None: the model's own, as ``rsmamba change`` without options.
    """
    from rsmamba.change import detect_change
    from rsmamba.change.evaluate import change_polygon_f1
    from rsmamba.synth import write_scene

    t0 = time.time()
    scene_dir = work / f"{family}_{gsd}_{size}_{seed}"
    scene = write_scene(scene_dir, size=size, seed=seed, gsd=gsd, style=scene_style(seed, family, gsd), overwrite=True)
    out = scene_dir / "change.pred.tif"
    summary = detect_change(scene["ortho_t1"], scene["ortho_t2"], out, model=model, semantic=True, window=window,
                            overlap=overlap, tta=tta, overwrite=True)
    min_area = summary.min_area_m2 or CHANGE_MIN_AREA_M2  # what rsmamba vectorize takes for this raster
    s = change_polygon_f1(out, scene["building_changes"], min_area_m2=min_area, work_dir=scene_dir)
    return {"window": f"{summary.window}/{summary.overlap}", "min_area_m2": min_area, "change_f1": card_score(s["f1"]), "change_precision": card_score(s["precision"]),
            "change_recall": card_score(s["recall"]), "change_tp": s["tp"], "change_predicted": s["predicted"],
            "change_reference": s["reference"], "change_threshold": summary.threshold,
            "seconds": round(time.time() - t0, 1)}


# The change threshold is chosen on scenes of the training families and the default style (never the
# held-out family), with seeds of their own: neither training nor the cards' scenes.
CALIBRATION_SEED0 = 95_000
CALIBRATION_THRESHOLDS = (0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2)
# Minimum change-polygon areas (m2), chosen with the threshold: from half the smallest synthetic building
# (8 m x 8 m) to all of it. Travels in the checkpoint to the change raster (tag CHANGE_MIN_AREA_M2), which
# rsmamba vectorize takes as its --min-area for that raster unless one is given.
CALIBRATION_MIN_AREAS = (30.0, 36.0, 40.0, 44.0, 48.0, 52.0, 56.0, 60.0, 64.0)
CALIBRATION_REPEATS = 2  # scenes per (training family, GSD): a 1024 px pair holds 10-50 changed buildings
CALIBRATION_DEFAULT_SCENES = 8


def calibration_rows() -> list[tuple[str, float, int]]:
    """(family, GSD, seed) of the calibration scenes: each training family at 0.25 and 0.5 m, and default-style."""
    from rsmamba.synth.style import TRAIN_FAMILIES

    rows = [(f.value, gsd) for f in TRAIN_FAMILIES for gsd in (0.25, 0.5)] * CALIBRATION_REPEATS
    rows += [("default", 0.25)] * CALIBRATION_DEFAULT_SCENES
    return [(family, gsd, CALIBRATION_SEED0 + i) for i, (family, gsd) in enumerate(rows)]


def threshold_scores(model: str | Path, *, family: str, gsd: float, size: int, seed: int, work: Path,
                     thresholds=CALIBRATION_THRESHOLDS, min_areas=CALIBRATION_MIN_AREAS,
                     window: tuple[int, int] = WINDOWS["change"]) -> dict[tuple[float, float], dict]:
    """Change-polygon counts at each (threshold, minimum polygon area) on one fresh pair: one change run,
    thresholds on its p(change), one vectorisation per threshold."""
    import rasterio

    from rsmamba.change import detect_change
    from rsmamba.change.evaluate import change_polygon_scores
    from rsmamba.synth import write_scene

    scene_dir = work / f"{family}_{gsd}_{size}_{seed}"
    scene = write_scene(scene_dir, size=size, seed=seed, gsd=gsd, style=scene_style(seed, family, gsd), overwrite=True)
    pred, prob = scene_dir / "change.pred.tif", scene_dir / "change.prob.tif"
    detect_change(scene["ortho_t1"], scene["ortho_t2"], pred, model=model, semantic=True, window=window[0],
                  overlap=window[1], probabilities=prob, overwrite=True)
    with rasterio.open(pred) as ds:
        change = ds.read(1)
    with rasterio.open(prob) as ds:
        p = ds.read(1)  # round(p(change) x 254)
    out = {}
    for t in thresholds:
        candidate = scene_dir / f"change_{t}.tif"
        shutil.copy(pred, candidate)
        with rasterio.open(candidate, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:  # a work file
            ds.write(np.where(change == 255, 255, p > t * 254).astype(np.uint8), 1)
        by_area = change_polygon_scores(candidate, scene["building_changes"], min_areas_m2=tuple(min_areas),
                                        work_dir=scene_dir)
        for area, s in by_area.items():
            out[(t, area)] = {"tp": s["tp"], "predicted": s["predicted"], "reference": s["reference"]}
    return out


def pooled_f1(counts: list[dict]) -> dict:
    """Change-polygon F1, precision and recall of summed counts (scenes hold few changes: pool, do not average)."""
    tp, pred, ref = (sum(c[k] for c in counts) for k in ("tp", "predicted", "reference"))
    return {"f1": round(2 * tp / max(pred + ref, 1), 4), "precision": round(tp / max(pred, 1), 4),
            "recall": round(tp / max(ref, 1), 4), "tp": tp, "predicted": pred, "reference": ref}


def choose_threshold(per_scene: list[dict[tuple[float, float], dict]]) -> tuple[tuple[float, float], dict]:
    """The (threshold, minimum polygon area) with the best pooled F1; ties: the threshold nearest 0.5 (the
    uncalibrated argmax), then the smallest area (the fewest polygons dropped)."""
    table = {key: pooled_f1([scene[key] for scene in per_scene]) for key in per_scene[0]}
    best = max(table, key=lambda key: (table[key]["f1"], -abs(key[0] - 0.5), -key[1]))
    return best, table


def calibrate_change(checkpoint: Path, out: Path, *, size: int, work: Path,
                     window: tuple[int, int] = WINDOWS["change"], train_gsd: tuple[float, float] | None = None
                     ) -> dict:
    """Write ``out``: ``checkpoint`` plus ``calibration.change_threshold`` chosen on :func:`calibration_rows`,
    and ``window`` as its own window (``inference``).

    ``window`` (window, overlap) is what users will run, since the blended p(change) that the
    threshold cuts depends on the window.
    """
    from rsmamba.checkpoint import load_checkpoint, save_checkpoint

    if out.resolve() == checkpoint.resolve():
        raise SystemExit(f"calibrate: --out must not be the input checkpoint ({checkpoint})")
    measured = checkpoint
    if train_gsd is not None:  # measured as shipped: run/best.pt records the training mosaic's one grid (0.25 m),
        # and each 0.5 m calibration pair warned that it was 'outside the 0.25 m model was trained at'
        work.mkdir(parents=True, exist_ok=True)
        measured = work / "calibrating.pt"
        with_inference(checkpoint, measured, window, None, train_gsd)
    per_scene = []
    for family, gsd, seed in calibration_rows():
        per_scene.append(threshold_scores(measured, family=family, gsd=gsd, size=size, seed=seed, work=work,
                                          window=window))
        print(json.dumps({"family": family, "gsd": gsd, "seed": seed,
                          **{f"{t:g}/{a:g}": pooled_f1([c])["f1"] for (t, a), c in per_scene[-1].items()
                             if a == min(CALIBRATION_MIN_AREAS)}}), flush=True)
    (threshold, min_area), table = choose_threshold(per_scene)
    ckpt = load_checkpoint(checkpoint)
    pooled: dict[str, dict] = {}
    for (t, a), row in table.items():
        pooled.setdefault(f"{t:g}", {})[f"{a:g}"] = row
    ckpt["calibration"] = {
        "change_threshold": threshold,
        "min_area_m2": min_area,
        "chosen_on": (f"best pooled change-polygon F1 @ IoU 0.5 over thresholds x minimum polygon areas "
                      f"({', '.join(f'{a:g}' for a in CALIBRATION_MIN_AREAS)} m2) on "
                      f"{len(per_scene)} fresh {size} px pairs of the training families and the default style "
                      f"(seeds {CALIBRATION_SEED0}..{CALIBRATION_SEED0 + len(per_scene) - 1}), "
                      f"window {window[0]}, overlap {window[1]}"),
        "pooled": pooled,  # threshold -> minimum area -> pooled counts
    }
    ckpt["inference"] = {"window": window[0], "overlap": window[1]}
    if train_gsd is not None:  # the pixel sizes it was trained at (see with_inference)
        ckpt["gsd_m"] = [float(train_gsd[0]), float(train_gsd[1])]
    for key in ("format", "created", "rsmamba_version"):
        ckpt.pop(key, None)
    save_checkpoint(out, ckpt)
    return ckpt["calibration"]


# What the cards show: (family, GSD); training families are the ones the model saw (fresh scenes, unseen seeds).
CARD_ROWS = [("suburban", 0.25), ("overcast", 0.5), ("heldout-nordic", 0.25), ("heldout-nordic", 0.5)]


def with_inference(checkpoint: Path, out: Path, window: tuple[int, int], tta: str | None = None,
                   gsd: tuple[float, float] | None = None) -> None:
    """Write ``out``: ``checkpoint`` with ``window`` (window, overlap) and ``tta`` (None: plain) as its own
    (``inference``), and ``gsd`` (finest, coarsest pixel size in metres it was trained at; None: keep the
    checkpoint's) as ``gsd_m``, which predict and change warn against."""
    from rsmamba.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(checkpoint)
    ckpt["inference"] = {"window": window[0], "overlap": window[1], **({"tta": tta} if tta else {})}
    if gsd is not None:
        ckpt["gsd_m"] = [float(gsd[0]), float(gsd[1])]
    for key in ("format", "created", "rsmamba_version"):
        ckpt.pop(key, None)
    save_checkpoint(out, ckpt)


def card_rows(model: Path, kind: str, size: int, work: Path, rows=CARD_ROWS, window: tuple[int, int] | None = None
              ) -> list[dict]:
    """The card's rows; ``window`` (window, overlap) of the predict or change runs (None: the model's own)."""
    window = window or (None, None)
    out = []
    for i, (family, gsd) in enumerate(rows):
        if kind == "change":
            m = measure_change(model, family=family, gsd=gsd, size=size, seed=EVAL_SEED0 + i, work=work,
                               window=window[0], overlap=window[1])
        else:
            m = measure(model, family=family, gsd=gsd, size=size, seed=EVAL_SEED0 + i, with_dsm=kind == "dsm",
                        work=work, window=window[0], overlap=window[1])
        out.append({"family": family, "gsd": gsd, "size": size, "seed": EVAL_SEED0 + i, **m})
        print(json.dumps(out[-1]), flush=True)
    return out


def write_card(path: Path, *, kind: str, model_name: str, best_epoch: int, args, seconds: float, rows: list[dict],
               styles: list[dict], window: tuple[int, int] = (512, 128), tta: str | None = None) -> str:
    families = sorted({s["family"] for s in styles})
    held = lambda r: " (held out)" if r["family"].startswith("heldout") else ""  # noqa: E731
    init_arg = f" --init {args.init.relative_to(ROOT) if args.init.is_absolute() and ROOT in args.init.parents else args.init}" if args.init else ""
    if getattr(args, "town", False):
        init_arg = " --init town"
    aug_args = "".join(f" --{name} {value}" for name, value in (("colour", args.colour),
                       ("channel-shuffle", args.channel_shuffle), ("grayscale", args.grayscale),
                       ("default-scenes", args.default_scenes), ("ema", args.ema),
                       ("seed0", args.seed0 if args.seed0 != SCENE_SEED0 else 0)) if value)
    ground, world = bool(getattr(args, "ground_textures", False)), bool(getattr(args, "world_features", False))
    aug_args += (" --ground-textures" if ground else "") + (" --world-features" if world else "")
    call = ", ".join(["seed"] + (["ground=True"] if ground else []) + (["world=True"] if world else []))
    extras = " and ".join((["the ground texture bank (textured streets and meadows)"] if ground else [])
                          + (["the world features (halls, ponds, parking lots, hipped roofs, dense cores, building lean)"] if world else []))
    style_call = f"training_style({call})`" + (f", with {extras}" if extras else "")
    title = {"dsm": "image+DSM", "image": "image-only", "change": "semantic change"}[kind]
    if kind == "change":
        what = (f"- Model: `{model_name}`, input: two RGB orthophotos (t1, t2); checkpoint by validation change F1 "
                f"(epoch {best_epoch}).\n- Default of `rsmamba change`.")
        data = "both epochs' labels and the change raster (`change_rate` " + f"{CHANGE_RATE})"
        header = ("| style family | GSD (m) | size (px) | change-polygon F1 @ IoU 0.5 | precision | recall |\n"
                  "|---|---|---|---|---|---|")
        table = "\n".join(f"| {r['family']}{held(r)} | {r['gsd']} | {r['size']} | {card_cell(r['change_f1'])} | "
                          f"{card_cell(r['change_precision'])} | {card_cell(r['change_recall'])} |" for r in rows)
        min_area = rows[0].get("min_area_m2", CHANGE_MIN_AREA_M2) if rows else CHANGE_MIN_AREA_M2
        how = (f"with `rsmamba change --semantic` at its own window ({window[0]}/{window[1]}), change polygons of at "
               f"least {min_area:g} m² (calibrated with the threshold; `rsmamba vectorize`'s default for the "
               "change raster) against the added and demolished buildings")
    else:
        inputs = "RGB orthophoto + DSM" if kind == "dsm" else "RGB orthophoto only (no DSM)"
        what = (f"- Model: `{model_name}`, input: {inputs}; checkpoint by validation mIoU (epoch {best_epoch}).\n"
                f"- Default of `rsmamba predict` {'with `--dsm`' if kind == 'dsm' else 'without `--dsm`'}.")
        data = "epoch-1 labels"
        if kind == "dsm":
            data += (f" and instance targets (interior, contact: {INSTANCE_TARGETS['contact_px']} px each side of a "
                     f"party wall, border {INSTANCE_TARGETS['border_px']} px) from each scene's building ids, a share "
                     f"of terraced rows and perimeter blocks drawn from {TERRACED[0]}-{TERRACED[1]} per scene")
            what += ("\n- Instance outputs `p(interior)`, `p(contact)` after the class bands of `predict --probabilities`: "
                     "`vectorize --instances` splits terraces into houses with them.")
        header = ("| style family | GSD (m) | size (px) | building IoU | object F1 @ IoU 0.5 (raster regions) | "
                  "footprint F1 @ IoU 0.5 | mIoU |\n|---|---|---|---|---|---|---|")
        table = "\n".join(f"| {r['family']}{held(r)} | {r['gsd']} | {r['size']} | {card_cell(r['building_iou'])} | "
                          f"{card_cell(r['object_f1'])} | {card_cell(r['footprint_f1'])} | {card_cell(r['miou'])} |" for r in rows)
        own_tta = f" and test-time augmentation `{tta}` (its own; `--no-tta` for one pass)" if tta else ""
        how = (f"with `rsmamba predict` at its own window ({window[0]}/{window[1]}){own_tta} and `rsmamba evaluate`: object F1 of the class "
               "raster's building regions (>= 16 px) and of the footprint layer `rsmamba vectorize --classes building "
               "--min-area 30m2 --regularize` delivers (with `--instances` for a model with instance outputs)")
    town_line = (f"- `--init town`: first {TOWN['epochs']} epochs of `{TOWN['model']}` on one {TOWN['size']} px town in the "
                 f"generator's own look (`examples/make_demo_model.py`, chips of {TOWN['chip']} px), then the above from "
                 "it; the seconds include both.\n" if getattr(args, "town", False) else "")
    card = f"""# rsmamba {title} demo model

{what}
- Data: {args.scenes} synthetic scenes of {args.size} px, one domain-randomised style each
  (`rsmamba.synth.style.{style_call}, seeds {args.seed0}..{args.seed0 + args.scenes - 1}, families
  {', '.join(families)}; GSD drawn from {TRAIN_GSD[0]}-{TRAIN_GSD[1]} m), {data}, chips of {args.chip} px
  (90 % train / 10 % val blocks).
- Command: `python examples/make_demo_models.py {kind} --model {model_name} --scenes {args.scenes} --size {args.size} --chip {args.chip} --epochs {args.epochs} --lr {args.lr}{init_arg}{aug_args} --eval-size {args.eval_size}`
  (config `examples/train_demo.yaml`), {seconds:.0f} s on this machine (2 shared CPU cores).
{town_line}{('- ' + args.note + chr(10)) if args.note else ''}- Held-out style family `heldout-nordic` (blue/teal roofs, setts or dark asphalt, striped crops, cool cast):
  never drawn for training (`rsmamba.synth.style.check_training_style` refuses it).

Measured on fresh scenes (seeds never used for training) {how}; re-measure with `python bench/cards.py`:

{header}
{table}

Synthetic data only: it shows the pipeline end to end; it is not a model for real imagery.
"""
    path.write_text(card)
    return card


class UsageError(Exception):
    """Options that cannot make a model (said in one line, exit 2, as argparse says its own)."""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog=Path(__file__).name, description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=sorted(NAMES) + ["calibrate", "window"],
                    help="image: image-only segmentation; dsm: image+DSM segmentation; change: semantic change "
                         "(trained, then calibrated); calibrate: only choose the change threshold of --init; "
                         "window: only store --window (and --tta) in --init (written to --out: a .pt file, or a folder for the same name)")
    ap.add_argument("--model", default=None,
                    help="registry name (a Mamba model of the zoo); default cmtunet_tiny, mambafcs_tiny for change")
    ap.add_argument("--scenes", type=int, default=None, help="training scenes (one style each)")
    ap.add_argument("--default-scenes", type=int, default=None,
                    help="more training scenes in the generator's default style (as the example scene), at 0.25 m")
    ap.add_argument("--size", type=int, default=None, help="training scene size (pixels)")
    ap.add_argument("--chip", type=int, default=None, help="chip size (pixels)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--init", default=None,
                    help="start from this checkpoint (e.g. rsmamba/data/demo_model.pt: its DSM channel is dropped for "
                         "'image'), or none: from random weights")
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--colour", type=float, default=0.0,
                    help="augment.colour: per-channel gain/bias jitter of the spectral bands (0: off)")
    ap.add_argument("--channel-shuffle", type=float, default=0.0,
                    help="augment.channel_shuffle: probability of permuting the spectral bands (0: off)")
    ap.add_argument("--grayscale", type=float, default=0.0,
                    help="augment.grayscale: probability of replacing the spectral bands by their mean (0: off)")
    ap.add_argument("--ground-textures", action=argparse.BooleanOptionalAction, default=None,
                    help="draw the training styles with the ground texture bank (rsmamba.synth.style.GROUND_TEXTURES: "
                         "textured streets and meadows); the image recipe's default")
    ap.add_argument("--world-features", action=argparse.BooleanOptionalAction, default=None,
                    help="draw the training styles with the world features (rsmamba.synth.style.WORLD: halls, ponds, "
                         "parking lots, hipped roofs, dense cores, building lean)")
    ap.add_argument("--seed0", type=int, default=SCENE_SEED0,
                    help="first training-scene seed (scenes use seed0 + i; keep below the evaluation seeds, 90000)")
    ap.add_argument("--ema", type=float, default=0.0,
                    help="train.ema: decay of an exponential moving average of the weights, validated and saved "
                         "instead of the raw weights (0: off)")
    ap.add_argument("--note", default="", help="a line added to the card (e.g. how the --init checkpoint was made)")
    ap.add_argument("--eval-size", type=int, default=None, help="side of each card scene (pixels)")
    ap.add_argument("--window", "--card-window", default=None,
                    help="window/overlap the model is run at: stored in the shipped checkpoint (rsmamba predict's / "
                         "change's default for it), used for the change calibration and the card "
                         f"(default: {', '.join(f'{k} {w}/{o}' for k, (w, o) in WINDOWS.items())})")
    ap.add_argument("--tta", default=None,
                    help="test-time augmentation stored in the shipped checkpoint (an rsmamba.engine.tta spec, or none; "
                         f"default: {', '.join(f'{k} {v}' for k, v in TTAS.items())}, none for the others); "
                         "for window: none unless given")
    ap.add_argument("--gsd", default=None,
                    help="window only: the finest/coarsest pixel size in metres the model was trained at, e.g. "
                         "0.2/0.6, stored as gsd_m (predict and change warn on images far outside it); default: keep "
                         "the checkpoint's (training records its chips' pixel size; make_demo_models stores TRAIN_GSD)")
    ap.add_argument("--calibration-size", type=int, default=1024, help="side of each change-calibration scene (pixels)")
    ap.add_argument("--out", type=Path, default=Path("demo_models"),
                    help="folder of the checkpoint and its card (rsmamba/data: replaces the shipped model)")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args(argv)
    from rsmamba.errors import RsmambaError, one_line

    try:
        run(args)
    except (RsmambaError, UsageError) as exc:  # the user's options, as rsmamba's CLI says them: one line, exit 2
        ap.exit(2, f"{ap.prog}: error: {one_line(str(exc))}\n")


def check_scene_sizes(option: str, size: int, gsds: list[float]) -> None:
    """Refuse ``size`` (pixels per side) for scenes drawn at ``gsds``, as ``rsmamba synth`` would refuse them."""
    from rsmamba.errors import InputError, one_line
    from rsmamba.synth.generate import check_scene_options

    for gsd in sorted(set(gsds)):
        try:
            check_scene_options(size, gsd, 32632, "rgb", None)
        except InputError as exc:
            raise UsageError(f"{option} {size}: its scenes at {gsd:g} m cannot be drawn: {one_line(str(exc))}") from None


def run(args: argparse.Namespace) -> None:
    """:func:`main` after its options are parsed."""
    for key, value in {**GENERIC, **RECIPES.get(args.kind, {})}.items():  # the kind's recipe, unless given
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.town = args.init == "town"
    if args.town and args.kind not in ("dsm", "image"):
        raise UsageError("--init town: the town model reads RGB + DSM; it starts the dsm (or image) recipe only")
    args.init = None if args.init in (None, "none", "town") else Path(args.init)
    if args.out.exists() and not args.out.is_dir() and not (args.kind == "window" and args.out.suffix == ".pt"):
        # (said at the end, after the whole training run, as a FileExistsError traceback)
        raise UsageError(f"--out {args.out}: a file stands there; --out is the folder of the checkpoint and its card")

    from rsmamba.checkpoint import load_checkpoint
    from rsmamba.tile import tile_scene
    from rsmamba.train import train

    window = (tuple(int(v) for v in args.window.split("/")) if args.window
              else WINDOWS.get(args.kind, WINDOWS["change"]))
    tta = TTAS.get(args.kind) if args.tta is None else (None if args.tta == "none" else args.tta)
    with_dsm, change = args.kind == "dsm", args.kind == "change"
    args.model = args.model or ("mambafcs_tiny" if change else "cmtunet_tiny")
    work = args.work or Path(tempfile.mkdtemp(prefix=f"rsmamba-{args.kind}-"))
    if args.kind == "calibrate":
        if args.init is None:
            raise UsageError("calibrate needs --init CHECKPOINT (a change model)")
        args.out.mkdir(parents=True, exist_ok=True)
        calibration = calibrate_change(args.init, args.out / f"{NAMES['change']}.pt", size=args.calibration_size,
                                       work=work / "calibrate", window=window)
        print(json.dumps(calibration, indent=1))
        return
    if args.kind == "window":
        if args.init is None:
            raise UsageError("window needs --init CHECKPOINT")
        target = args.out if args.out.suffix == ".pt" else args.out / args.init.name
        if target.resolve() == args.init.resolve():
            raise UsageError(f"window: --out must not be the input checkpoint ({args.init})")
        target.parent.mkdir(parents=True, exist_ok=True)
        tta = None if args.tta in (None, "none") else args.tta
        gsd = tuple(float(v) for v in args.gsd.split("/")) if args.gsd else None
        with_inference(args.init, target, window, tta, gsd)
        print(f"{target}: window {window[0]}, overlap {window[1]}, test-time augmentation {tta or 'none'}"
              + (f", trained at {gsd[0]:g}" + (f"-{gsd[1]:g}" if gsd[1] != gsd[0] else "") + " m" if gsd else ""))
        return
    t0 = time.time()
    if args.scenes < 0 or args.default_scenes < 0 or args.scenes + args.default_scenes < 1:
        raise UsageError(f"--scenes {args.scenes} --default-scenes {args.default_scenes}: at least one training scene")
    for key in ("size", "chip", "epochs", "eval_size"):
        if getattr(args, key) < 1:
            raise UsageError(f"--{key.replace('_', '-')} {getattr(args, key)}: must be at least 1")
    if args.chip > args.size:
        raise UsageError(f"--chip {args.chip} is larger than a training scene (--size {args.size}): "
                         "no chip to train on")
    if not 0 <= args.seed0 or args.seed0 + args.scenes + args.default_scenes > EVAL_SEED0:
        raise UsageError(f"--seed0 {args.seed0}: training seeds must stay below the evaluation seeds ({EVAL_SEED0})")
    # the card's (and the change calibration's) scenes are drawn after the whole training run: a size they
    # cannot have is refused now (it was refused by write_scene after training, and the run was lost) (QA)
    check_scene_sizes("--eval-size", args.eval_size, [gsd for _, gsd in CARD_ROWS])
    if change:
        check_scene_sizes("--calibration-size", args.calibration_size, [gsd for _, gsd, _ in calibration_rows()])
    if args.town:
        from make_demo_model import town_model  # examples/, beside this script

        args.init, town_seconds = town_model(work / "town", **TOWN)
        print(f"town model: {args.init} ({town_seconds:.0f} s)", flush=True)
    mosaic = training_mosaic(work / "mosaic", scenes=args.scenes, size=args.size, with_dsm=with_dsm, with_t2=change,
                             seed0=args.seed0, change_rate=CHANGE_RATE if change else None,
                             default_scenes=args.default_scenes, terraced=TERRACED if with_dsm else None,
                             with_instances=with_dsm, ground_textures=args.ground_textures,
                             world_features=args.world_features)
    tile_scene(mosaic["ortho"], work / "chips", dsm=mosaic.get("dsm"), labels=mosaic["labels"], size=args.chip,
               t2=mosaic.get("ortho_t2"), labels_t2=mosaic.get("labels_t2"), change=mosaic.get("change"),
               instance_targets=mosaic.get("instances"), **(INSTANCE_TARGETS if with_dsm else {}),
               split=(0.9, 0.1, 0.0), block=args.chip, overwrite=True)
    overrides = [f"data.root={work / 'chips'}", f"out={work / 'run'}", f"model.name={args.model}", "model.kwargs={}",
                 f"train.epochs={args.epochs}", "augment.photometric=0.2", f"optim.lr={args.lr}",
                 f"augment.colour={args.colour}", f"augment.channel_shuffle={args.channel_shuffle}",
                 f"augment.grayscale={args.grayscale}"] + ([f"train.ema={args.ema}"] if args.ema else [])
    if change:
        overrides.append("train.metric=change_f1")
    if with_dsm:  # the instance outputs, trained on the mosaic's targets
        overrides.append("model.instances=[interior, contact]")
    if args.init:
        overrides.append(f"model.init={args.init}")
    result = train(ROOT / "examples" / "train_demo.yaml", overrides)
    shipped = work / "shipped.pt"  # the model's own window travels in the checkpoint
    if change:  # and the threshold on p(change), chosen on training-family scenes at that window
        calibrate_change(result.best, shipped, size=args.calibration_size, work=work / "calibrate", window=window,
                         train_gsd=TRAIN_GSD)
    else:
        with_inference(result.best, shipped, window, tta, TRAIN_GSD)
    seconds = time.time() - t0
    rows = card_rows(shipped, args.kind, args.eval_size, work / "eval", window=window)
    args.out.mkdir(parents=True, exist_ok=True)
    name = NAMES[args.kind]
    shutil.copy(shipped, args.out / f"{name}.pt")
    ckpt = load_checkpoint(result.best)
    styles = json.loads((work / "mosaic" / "styles.json").read_text())
    card = write_card(args.out / f"{name}.md", kind=args.kind, model_name=ckpt["model"],
                      best_epoch=ckpt["metrics"]["epoch"], args=args, seconds=seconds, rows=rows, styles=styles,
                      window=window, tta=tta)
    (work / f"{name}.json").write_text(json.dumps({"rows": rows, "train_seconds": round(seconds)}, indent=1))
    print(card)


if __name__ == "__main__":
    main()
