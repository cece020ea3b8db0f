"""The shipped demo change model finds added and demolished buildings on an epoch pair it never saw."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsmamba.engine.model import DEMO_CHANGE_MODEL


@pytest.mark.slow
@pytest.mark.skipif(not DEMO_CHANGE_MODEL.exists(), reason="demo change model not built (examples/make_demo_change_model.py)")
def test_demo_change_model_polygon_f1_on_unseen_pair(tmp_path: Path) -> None:
    from rsmamba.change import detect_change
    from rsmamba.change.evaluate import change_polygon_f1
    from rsmamba.synth import write_scene

    # a seed used neither for training (21) nor for the model card's held-out pair (24680)
    pair = write_scene(tmp_path / "pair", size=768, seed=13579, gsd=0.25, change_rate=0.3)
    out = tmp_path / "change.tif"
    detect_change(pair["ortho_t1"], pair["ortho_t2"], out, semantic=True, window=128, overlap=32)
    scores = change_polygon_f1(out, pair["building_changes"], min_area_m2=30, work_dir=tmp_path)
    assert scores["reference"] >= 8
    assert scores["f1"] >= 0.8, scores
