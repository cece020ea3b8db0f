"""End to end on synthetic scenes: synth -> tile -> train -> predict (held-out scene) -> evaluate.

The held-out scene is a different seed, never tiled or seen in training. The bar is stated here:
mIoU at least 3x that of the trivial baseline (majority class everywhere) and building IoU > 0.5.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from rsmamba.evaluate import evaluate_rasters
from rsmamba.synth import write_scene
from rsmamba.tile import tile_scene
from rsmamba.train import train
from rsmamba.predict import predict_raster


@pytest.mark.slow
def test_synth_tile_train_predict_evaluate(tmp_path: Path) -> None:
    seen = write_scene(tmp_path / "seen", size=192, seed=1, gsd=0.5)
    held = write_scene(tmp_path / "held", size=128, seed=2, gsd=0.5)
    chips = tmp_path / "chips"
    tile_scene(seen["ortho_t1"], chips, dsm=seen["dsm_t1"], labels=seen["labels_t1"], size=32, block=32,
               split=(0.85, 0.15, 0.0))
    result = train({"data": {"root": str(chips), "batch_size": 4}, "out": str(tmp_path / "run"),
                    "model": {"name": "fcn_baseline", "kwargs": {"width": 12}}, "optim": {"lr": 0.01},
                    "train": {"epochs": 8}, "tensorboard": False}, progress=False)
    pred = predict_raster(held["ortho_t1"], tmp_path / "pred.tif", dsm=held["dsm_t1"], model=result.best, window=64, overlap=16).outputs["classes"]
    metrics = evaluate_rasters(pred, held["labels_t1"], tmp_path / "eval" / "metrics.json",
                               buildings=held["buildings_t1"], image=held["ortho_t1"])
    with rasterio.open(held["labels_t1"]) as src:
        ref = src.read(1)
    counts = np.bincount(ref[ref != 255], minlength=6)
    trivial = counts.max() / counts.sum() / (counts > 0).sum()
    assert metrics["miou"] > 3 * trivial, (metrics["miou"], trivial)
    assert metrics["per_class"]["building"]["iou"] > 0.5
    assert "buildings" in metrics and metrics["buildings"]["reference"] > 0
