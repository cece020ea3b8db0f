"""bench/cards.py's pooled rows: change-polygon counts summed over a row's scenes, not F1s averaged."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.scripts import load_script


def _load_cards():
    return load_script("bench/cards.py", "bench_cards")


def test_pooled_change_rows_sum_the_counts_and_segmentation_rows_average() -> None:
    cards = _load_cards()
    base = {"family": "default", "held_out": False, "gsd": 0.25, "size": 1024, "model": "change"}
    rows = [  # scene F1s 1.0 and 0.5: their mean (0.75) is not the pooled score
        {**base, "seed": 1, "change_tp": 2, "change_predicted": 2, "change_reference": 2, "seconds": 1.0},
        {**base, "seed": 2, "change_tp": 6, "change_predicted": 18, "change_reference": 6, "seconds": 2.0},
        {**base, "model": "image", "seed": 1, "building_iou": 0.8, "object_f1": 0.6, "footprint_f1": 0.7,
         "miou": 0.5, "seconds": 1.0},
        {**base, "model": "image", "seed": 2, "building_iou": 0.6, "object_f1": 0.4, "footprint_f1": 0.5,
         "miou": 0.3, "seconds": 1.0},
    ]
    change, image = cards.pooled(rows)
    assert change["scenes"] == 2 and change["seed"] == "pooled"
    assert (change["change_tp"], change["change_predicted"], change["change_reference"]) == (8, 20, 8)
    assert change["change_precision"] == 0.4 and change["change_recall"] == 1.0
    assert change["change_f1"] == pytest.approx(2 * 0.4 / 1.4, abs=1e-4)
    assert image["building_iou"] == pytest.approx(0.7) and image["footprint_f1"] == pytest.approx(0.6)


def test_the_default_family_is_the_generators_default_style() -> None:
    _load_cards()
    from make_demo_models import scene_style

    assert scene_style(5, "default", 0.25) is None
    assert scene_style(5, "suburban", 0.25).family.value == "suburban"


def test_measure_predicts_with_the_requested_test_time_augmentation(tmp_path: Path, monkeypatch) -> None:
    """``bench/cards.py --tta d4`` measures what ``rsmamba predict --tta`` delivers, not the plain pass."""
    _load_cards()
    import rsmamba.predict
    from make_demo_models import measure

    passes = []
    original = rsmamba.predict.predict_raster

    def recording(*args, **kwargs):
        summary = original(*args, **kwargs)
        passes.append(summary.tta_views)
        return summary

    monkeypatch.setattr(rsmamba.predict, "predict_raster", recording)
    for tta in (False, "flip", "d4"):
        row = measure(None, family="heldout-nordic", gsd=0.5, size=128, seed=90_003, with_dsm=False,
                      work=tmp_path / str(tta), tta=tta)
        assert 0 <= row["building_iou"] <= 1
    assert passes == [1, 4, 8]  # flip: identity, left-right, up-down and both (GeoSeg)


def test_measure_change_passes_test_time_augmentation_to_change(tmp_path: Path, monkeypatch) -> None:
    _load_cards()
    import rsmamba.change
    from make_demo_models import measure_change

    seen = []
    original = rsmamba.change.detect_change

    def recording(*args, **kwargs):
        seen.append(kwargs["tta"])
        return original(*args, **kwargs)

    monkeypatch.setattr(rsmamba.change, "detect_change", recording)
    rows = [measure_change(None, family="heldout-nordic", gsd=0.5, size=128, seed=90_003, work=tmp_path / str(tta),
                           tta=tta) for tta in (False, True)]
    assert seen == [False, True] and all(0 <= r["change_f1"] <= 1 for r in rows)
