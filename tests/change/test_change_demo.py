"""The shipped demo change model finds added and demolished buildings on an epoch pair it never saw."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsmamba.engine.model import DEMO_CHANGE_MODEL


@pytest.mark.slow
@pytest.mark.skipif(not DEMO_CHANGE_MODEL.exists(), reason="demo change model not built (examples/make_demo_change_model.py)")
def test_demo_change_model_polygon_f1_on_unseen_pairs(tmp_path: Path) -> None:
    """Pooled over three pairs: one 768 px pair holds about 15 changed buildings, so one polygon moves its F1 by 0.03."""
    from rsmamba.change import detect_change
    from rsmamba.change.evaluate import change_polygon_f1
    from rsmamba.synth import write_scene

    counts = {"tp": 0, "predicted": 0, "reference": 0}
    for seed in (13579, 13580, 13581):  # used neither for training (20000+) nor for the cards (90000+, 95000+)
        pair = write_scene(tmp_path / f"pair{seed}", size=768, seed=seed, gsd=0.25, change_rate=0.3)
        out = tmp_path / f"change{seed}.tif"
        detect_change(pair["ortho_t1"], pair["ortho_t2"], out, semantic=True, window=128, overlap=32)
        scores = change_polygon_f1(out, pair["building_changes"], min_area_m2=30, work_dir=tmp_path / f"w{seed}")
        for key in counts:
            counts[key] += scores[key]
    assert counts["reference"] >= 30
    f1 = 2 * counts["tp"] / (counts["predicted"] + counts["reference"])
    assert f1 >= 0.8, counts
