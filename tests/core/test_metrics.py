"""Metrics against hand-computed values and independent implementations (sklearn, torchmetrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, jaccard_score, precision_score, recall_score

from rsmamba.metrics import (
    ConfusionMeter,
    binary_change_scores,
    cohen_kappa,
    confusion_matrix,
    fromto_labels,
    scd_scores_from_hist,
    segmentation_scores,
    semantic_change_scores_7class,
    semantic_change_scores_fromto,
)


def test_segmentation_scores_hand_computed() -> None:
    hist = np.array([[3, 1], [2, 4]])  # hist[label, pred]
    s = segmentation_scores(hist)
    assert s["per_class"]["1"]["iou"] == pytest.approx(4 / 7)
    assert s["per_class"]["0"]["iou"] == pytest.approx(3 / 6)
    assert s["miou"] == pytest.approx((4 / 7 + 0.5) / 2)
    assert s["oa"] == pytest.approx(0.7)
    assert s["kappa"] == pytest.approx(0.4)  # po 0.7, pe (4*5 + 6*5)/100
    assert s["per_class"]["1"]["precision"] == pytest.approx(4 / 5)
    assert s["per_class"]["1"]["recall"] == pytest.approx(4 / 6)


def test_undefined_scores_are_none_not_zero() -> None:
    """A class never predicted had precision 0 ('every prediction wrong' of no prediction); a building-free
    tile scored with the background excluded had mIoU 0.0 for a perfect map."""
    hist = np.array([[5, 0, 0], [3, 0, 0], [0, 0, 2]])  # class 1 in the reference, never predicted
    s = segmentation_scores(hist)
    assert s["per_class"]["1"] == {"iou": 0.0, "precision": None, "recall": 0.0, "f1": 0.0, "support": 3}
    hist = np.array([[5, 0], [2, 0]]).T  # class 1 predicted twice, absent from the reference
    assert segmentation_scores(hist)["per_class"]["1"]["recall"] is None
    perfect = segmentation_scores(np.array([[9, 0], [0, 0]]), ["background", "building"], exclude=[0])
    assert perfect["miou"] is None and perfect["mf1"] is None and perfect["oa"] == 1.0
    assert perfect["kappa"] is None  # chance agreement 1: kappa 0/0, not 'no better than chance' (0.0 was said)
    assert cohen_kappa(np.array([[9, 0], [0, 0]])) == 0.0  # SCanNet's convention where SeK needs a number


def test_ignore_and_valid_mask_are_left_out() -> None:
    label = np.array([0, 1, 255, 1, 2])
    pred = np.array([0, 1, 1, 0, 2])
    valid = np.array([1, 1, 1, 1, 0], bool)
    hist = confusion_matrix(label, pred, 3, valid=valid)
    assert hist.sum() == 3 and hist[1, 0] == 1 and hist[2].sum() == 0


def test_exclusion_keeps_oa_but_changes_means() -> None:
    hist = np.array([[5, 0, 0], [0, 5, 0], [3, 3, 0]])
    s_all = segmentation_scores(hist)
    s_ex = segmentation_scores(hist, exclude=[2])
    assert s_ex["oa"] == s_all["oa"] == pytest.approx(10 / 16)
    assert s_ex["miou"] == pytest.approx((5 / 8 + 5 / 8) / 2)
    assert s_all["miou"] == pytest.approx((5 / 8 + 5 / 8 + 0) / 3)
    # a class given twice ('evaluate --exclude 2,2') is left out once: it was said twice, 'means without 2, 2' (QA)
    assert segmentation_scores(hist, exclude=[2, 2])["excluded_from_means"] == ["2"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_segmentation_agrees_with_sklearn_and_torchmetrics(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 5
    label = rng.integers(0, n, 2000)
    pred = np.where(rng.random(2000) < 0.6, label, rng.integers(0, n, 2000))
    s = segmentation_scores(confusion_matrix(label, pred, n))
    assert s["oa"] == pytest.approx(accuracy_score(label, pred))
    assert s["kappa"] == pytest.approx(cohen_kappa_score(label, pred))
    assert s["miou"] == pytest.approx(jaccard_score(label, pred, average="macro"))
    assert s["mf1"] == pytest.approx(f1_score(label, pred, average="macro"))
    per = [s["per_class"][str(i)] for i in range(n)]
    np.testing.assert_allclose([p["precision"] for p in per], precision_score(label, pred, average=None))
    np.testing.assert_allclose([p["recall"] for p in per], recall_score(label, pred, average=None))
    from torchmetrics.functional.classification import multiclass_cohen_kappa, multiclass_jaccard_index

    t_label, t_pred = torch.from_numpy(label), torch.from_numpy(pred)
    assert s["kappa"] == pytest.approx(float(multiclass_cohen_kappa(t_pred, t_label, n)), abs=1e-6)
    assert s["miou"] == pytest.approx(float(multiclass_jaccard_index(t_pred, t_label, n)), abs=1e-6)


def test_meter_accumulates_batches() -> None:
    rng = np.random.default_rng(3)
    label = rng.integers(0, 3, (4, 8, 8))
    pred = rng.integers(0, 3, (4, 8, 8))
    meter = ConfusionMeter(3)
    for b in range(4):
        meter.update(torch.from_numpy(label[b]), torch.from_numpy(pred[b]))
    np.testing.assert_array_equal(meter.hist, confusion_matrix(label, pred, 3))


def test_scd_scores_hand_computed() -> None:
    hist = np.array([[5, 1, 0], [2, 3, 1], [0, 1, 2]])  # hist[pred, label]
    s = scd_scores_from_hist(hist)
    kappa_n0 = (0.5 - 0.41) / 0.59
    assert s["kappa_n0"] == pytest.approx(kappa_n0)
    assert s["iou_change"] == pytest.approx(0.7)
    assert s["miou"] == pytest.approx((5 / 8 + 0.7) / 2)
    assert s["sek"] == pytest.approx(kappa_n0 * math.exp(0.7) / math.e)
    assert s["fscd"] == pytest.approx(10 / 17)


def test_scd_scores_with_nothing_to_count_are_none_not_zero() -> None:
    """SCanNet divides 0 by 0 there (NaN): a perfect 'no change' answer scored SeK 0, Fscd 0, mIoU 0.5."""
    from rsmamba.metrics import scd_score

    nothing_changed = scd_scores_from_hist(np.array([[50, 0], [0, 0]]))
    for key in ("sek", "fscd", "miou", "iou_change", "sc_precision", "sc_recall"):
        assert nothing_changed[key] is None, key
    assert nothing_changed["oa"] == 1.0 and nothing_changed["iou_nochange"] == 1.0 and scd_score(nothing_changed) is None
    none_predicted = scd_scores_from_hist(np.array([[40, 10], [0, 0]]))  # 10 changed, none found
    assert none_predicted["sc_precision"] is None and none_predicted["sc_recall"] == 0.0
    assert none_predicted["fscd"] is None and none_predicted["sek"] == 0.0  # IoU 0, kappa 0: SeK 0 is a score


def _kappa_sklearn(hist: np.ndarray) -> float:
    i, j = np.nonzero(hist)
    return cohen_kappa_score(i, j, sample_weight=hist[i, j])


@pytest.mark.parametrize("seed", [0, 1])
def test_scd_agrees_with_independent_computation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (2, 16, 16)
    ls1, ls2 = rng.integers(0, 6, shape), rng.integers(0, 6, shape)
    lch = rng.random(shape) < 0.4
    ps1 = np.where(rng.random(shape) < 0.7, ls1, rng.integers(0, 6, shape))
    ps2 = np.where(rng.random(shape) < 0.7, ls2, rng.integers(0, 6, shape))
    pch = np.where(rng.random(shape) < 0.8, lch, ~lch)
    s = semantic_change_scores_7class(ps1, ps2, pch, ls1, ls2, lch)
    # Independent: pixel lists of both time points, sklearn for kappa, scipy for the harmonic mean.
    p = np.concatenate([np.where(pch, ps1 + 1, 0).ravel(), np.where(pch, ps2 + 1, 0).ravel()])
    t = np.concatenate([np.where(lch, ls1 + 1, 0).ravel(), np.where(lch, ls2 + 1, 0).ravel()])
    keep = ~((p == 0) & (t == 0))
    kappa_n0 = cohen_kappa_score(p[keep], t[keep])
    iou_change = jaccard_score(t > 0, p > 0)
    iou_nochange = jaccard_score(t == 0, p == 0)
    both = (p > 0) & (t > 0) & (p == t)
    fscd = stats.hmean([both.sum() / (p > 0).sum(), both.sum() / (t > 0).sum()])
    assert s["kappa_n0"] == pytest.approx(kappa_n0)
    assert s["sek"] == pytest.approx(kappa_n0 * math.exp(iou_change - 1))
    assert s["miou"] == pytest.approx((iou_change + iou_nochange) / 2)
    assert s["fscd"] == pytest.approx(fscd)
    assert s["oa"] == pytest.approx((p == t).mean())
    assert _kappa_sklearn(np.array(s["hist"])) == pytest.approx(cohen_kappa(np.array(s["hist"])))


def test_fromto_variant_has_37_classes_and_differs() -> None:
    rng = np.random.default_rng(5)
    shape = (32, 32)
    ls1, ls2 = rng.integers(0, 6, shape), rng.integers(0, 6, shape)
    lch = rng.random(shape) < 0.5
    ps1 = np.where(rng.random(shape) < 0.6, ls1, rng.integers(0, 6, shape))
    ps2 = np.where(rng.random(shape) < 0.6, ls2, rng.integers(0, 6, shape))
    codes = fromto_labels(ls1, ls2, lch)
    assert codes.max() <= 36 and codes.min() == 0
    a = semantic_change_scores_fromto(ps1, ps2, lch, ls1, ls2, lch)
    b = semantic_change_scores_7class(ps1, ps2, lch, ls1, ls2, lch)
    assert a["variant"].startswith("changemamba-37") and b["variant"].startswith("scannet-7")
    assert a["iou_change"] == pytest.approx(b["iou_change"])  # same binary change
    assert a["fscd"] < b["fscd"]  # a from-to pair needs both dates right
    perfect = semantic_change_scores_fromto(ls1, ls2, lch, ls1, ls2, lch)
    assert perfect["sek"] == pytest.approx(1.0) and perfect["fscd"] == pytest.approx(1.0)


def test_binary_change_scores_match_sklearn() -> None:
    rng = np.random.default_rng(7)
    label = rng.integers(0, 2, 500)
    pred = np.where(rng.random(500) < 0.7, label, 1 - label)
    s = binary_change_scores(label, pred)
    assert s["f1"] == pytest.approx(f1_score(label, pred))
    assert s["iou"] == pytest.approx(jaccard_score(label, pred))


def test_binary_change_scores_with_nothing_to_count_are_none_as_evaluate_has_them() -> None:
    """A perfect 'no change' answer scored change F1, IoU and kappa 0.0 in training and train --test, null in
    evaluate; with change to find and none found, F1 and recall are 0 and precision (0/0) is None."""
    nothing = binary_change_scores(np.zeros(50, int), np.zeros(50, int))
    assert nothing["f1"] is None and nothing["iou"] is None and nothing["kappa"] is None and nothing["oa"] == 1.0
    missed = binary_change_scores(np.r_[np.ones(5, int), np.zeros(45, int)], np.zeros(50, int))
    assert missed["f1"] == 0.0 and missed["recall"] == 0.0 and missed["precision"] is None
