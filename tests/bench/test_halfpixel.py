"""bench/halfpixel.py's measure: the median offset of each true building's centroid from the predicted
pixels around it, in pixels (rows south, columns east)."""

from __future__ import annotations

import numpy as np

from tests.helpers.scripts import load_script


def test_building_offsets_find_a_known_shift() -> None:
    bench = load_script("bench/halfpixel.py", "bench_halfpixel")
    truth = np.zeros((60, 60), bool)
    truth[5:15, 5:17] = truth[30:42, 20:30] = truth[45:55, 40:52] = True
    shifted = np.roll(truth, (1, 2), axis=(0, 1))  # one pixel south, two east
    south, east, n = bench.building_offsets(truth, shifted)
    assert (south, east, n) == (1.0, 2.0, 3)
    assert bench.building_offsets(truth, truth)[:2] == (0.0, 0.0)
    assert bench.building_offsets(truth, np.zeros_like(truth))[2] == 0  # nothing found: nothing measured


def test_change_rows_measure_each_model_on_each_pair(tmp_path, monkeypatch) -> None:
    """--change: one row per (pair, model, TTA plan), the change mask's offset and IoU against the pair's change
    raster; a plan given twice scores alike (no randomness)."""
    bench = load_script("bench/halfpixel.py", "bench_halfpixel")
    monkeypatch.setattr(bench, "CHANGE_SCENES", [("small", 5, "suburban:1", 0.25, 384)])
    rows = bench.change_rows(["shipped"], quick=False, folder=tmp_path, plans=("none", "rot180", "none"))
    assert [(r["scene"], r["model"], r["tta"]) for r in rows] == [("small", "shipped", "none"),
                                                                  ("small", "shipped", "rot180"),
                                                                  ("small", "shipped", "none")]
    scores = [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert scores[0] == scores[2] and scores[0] != scores[1]  # the half turn moves the mask
    assert rows[0]["buildings"] >= 1 and 0.3 < rows[0]["change_iou"] <= 1.0  # two changed buildings, found
