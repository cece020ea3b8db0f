"""The shipped demo model: building IoU >= 0.8 on a fresh synthetic scene it has never seen."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.rasters import ROOT

DEMO = ROOT / "rsmamba" / "data" / "demo_model.pt"


@pytest.mark.slow
@pytest.mark.skipif(not DEMO.exists(), reason="demo model not built yet (python examples/make_demo_model.py)")
def test_demo_model_finds_buildings_on_unseen_scene(tmp_path: Path) -> None:
    from rsmamba.evaluate import evaluate_rasters
    from rsmamba.synth import write_scene
    from rsmamba.predict import predict_raster

    # 512 px = 128 m: enough buildings for a stable IoU (a 256 px scene holds one or two)
    scene = write_scene(tmp_path / "fresh", size=512, seed=4242, gsd=0.25)
    pred = predict_raster(scene["ortho_t1"], tmp_path / "pred.tif", dsm=scene["dsm_t1"], model=DEMO, window=128, overlap=32).outputs["classes"]
    metrics = evaluate_rasters(pred, scene["labels_t1"], tmp_path / "m.json")
    assert metrics["per_class"]["building"]["iou"] >= 0.8


def test_demo_config_is_valid() -> None:
    from rsmamba.train import load_config

    cfg = load_config(ROOT / "examples" / "train_demo.yaml", ["data.root=somewhere"])
    assert cfg["data"]["root"] == "somewhere" and cfg["train"]["epochs"] >= 1
