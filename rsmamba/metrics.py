"""Segmentation and semantic-change metrics, computed from confusion matrices.

Everything is accumulated as an integer confusion matrix first (so results are exact and can be
summed across batches, tiles and processes), then turned into scores. Conventions follow the
papers' evaluation code so our numbers compare with theirs:

- segmentation (GeoSeg ``tools/metric.py``): ``hist[label, pred]``; IoU = tp/(tp+fp+fn),
  F1 = 2PR/(P+R), OA = trace/sum; on Vaihingen/Potsdam mIoU/mF1 exclude Clutter (OA does not).
  One difference: a class that is predicted but not in the reference, or in the reference but
  never predicted, has F1 0 here (its Dice) and counts in mF1; GeoSeg's ``nanmean`` (and mmseg's)
  leaves it out of mF1, so with such a class our mF1 is the lower. mIoU and OA agree.
- semantic change (SCanNet / Mamba-FCS ``SCDD_eval_all``): ``hist[pred, label]`` over both time
  points, class 0 = no change; ``SeK = kappa_n0 * exp(IoU_change) / e``; Fscd = harmonic mean of
  the semantic-change precision and recall. :func:`semantic_change_scores_7class` is that 7-class
  (per time point) form; :func:`semantic_change_scores_fromto` is ChangeMamba's later 37-class
  "from-to" form, which gives different numbers, so each is named for what it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import sys
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported only by callers that pass tensors: evaluate stays light
    import torch

from rsmamba.classes import IGNORE_INDEX


def confusion_matrix(
    label: np.ndarray | torch.Tensor,
    pred: np.ndarray | torch.Tensor,
    num_classes: int,
    ignore_index: int | None = IGNORE_INDEX,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """``hist[label, pred]`` pixel counts (int64) over valid pixels.

    Pixels whose label is ``ignore_index`` or outside ``[0, num_classes)``, or where ``valid`` is
    False, are left out: nodata must never count as a correct or wrong prediction.
    """
    torch_module = sys.modules.get("torch")  # a tensor can only come from a loaded torch
    if torch_module is not None and isinstance(label, torch_module.Tensor):
        label = label.detach().cpu().numpy()
    if torch_module is not None and isinstance(pred, torch_module.Tensor):
        pred = pred.detach().cpu().numpy()
    label = np.asarray(label).reshape(-1).astype(np.int64)
    pred = np.asarray(pred).reshape(-1).astype(np.int64)
    if label.shape != pred.shape:
        raise ValueError(f"label and prediction differ in size: {label.size} vs {pred.size}")
    keep = (label >= 0) & (label < num_classes) & (pred >= 0) & (pred < num_classes)
    if ignore_index is not None:
        keep &= label != ignore_index
    if valid is not None:
        keep &= np.asarray(valid).reshape(-1).astype(bool)
    return np.bincount(num_classes * label[keep] + pred[keep], minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def cohen_kappa(hist: np.ndarray) -> float:
    """Cohen's kappa of a confusion matrix (0 when empty or when chance agreement is 1, as SCanNet's SeK
    needs it); :func:`kappa_or_none` for a reported score."""
    kappa = kappa_or_none(hist)
    return 0.0 if kappa is None else kappa


def kappa_or_none(hist: np.ndarray) -> float | None:
    """Cohen's kappa, None where it is 0/0: no pixel, or chance agreement 1 (both maps one and the same
    class: a perfect building-free tile is not 'no better than chance')."""
    hist = np.asarray(hist, dtype=np.float64)
    total = hist.sum()
    if total == 0:
        return None
    po = np.trace(hist) / total
    pe = float(hist.sum(1) @ hist.sum(0)) / total**2
    if pe == 1:
        return None
    return float((po - pe) / (1 - pe))


def segmentation_scores(
    hist: np.ndarray, class_names: Sequence[str] | None = None, exclude: Sequence[int] = ()
) -> dict[str, Any]:
    """Per-class IoU/precision/recall/F1 and their means, OA and kappa from ``hist[label, pred]``.

    ``exclude`` lists class ids left out of the means (e.g. Clutter on Vaihingen/Potsdam, as the
    benchmark reports); OA and kappa always use every class. Classes absent from both label and
    prediction have undefined scores: they are reported as None and left out of the means; so is a
    precision with nothing predicted and a recall with nothing to find (the F1 of a missed class is 0).
    """
    hist = np.asarray(hist, dtype=np.int64)
    n = hist.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    tp = np.diag(hist).astype(np.float64)
    fp = hist.sum(0) - tp
    fn = hist.sum(1) - tp
    iou = _safe_div(tp, tp + fp + fn)
    precision = _safe_div(tp, tp + fp)
    recall = _safe_div(tp, tp + fn)
    f1 = _safe_div(2 * tp, 2 * tp + fp + fn)  # = 2PR/(P+R) where both are defined; 0 for a missed class
    present = (tp + fp + fn) > 0
    in_mean = present & ~np.isin(np.arange(n), list(exclude))
    per_class = {}
    for i in range(n):
        # precision of a class never predicted, recall of a class not in the reference: 0/0, not 0
        per_class[names[i]] = (
            {"iou": float(iou[i]), "precision": float(precision[i]) if tp[i] + fp[i] else None,
             "recall": float(recall[i]) if tp[i] + fn[i] else None, "f1": float(f1[i]),
             "support": int(hist[i].sum())}
            if present[i] else {"iou": None, "precision": None, "recall": None, "f1": None, "support": 0}
        )
    total = hist.sum()
    return {  # None: no class left to average (e.g. a building-free tile scored with the background excluded)
        "miou": float(iou[in_mean].mean()) if in_mean.any() else None,
        "mf1": float(f1[in_mean].mean()) if in_mean.any() else None,
        "oa": float(np.trace(hist) / total) if total else 0.0,
        "kappa": kappa_or_none(hist),
        "excluded_from_means": [names[i] for i in dict.fromkeys(exclude) if i < n],  # each once ('--exclude 1,1')
        "per_class": per_class,
        "pixels": int(total),
    }


# --- semantic change ---------------------------------------------------------------------------


def scd_histogram(pred: np.ndarray, label: np.ndarray, num_classes: int, ignore_index: int | None = IGNORE_INDEX) -> np.ndarray:
    """``hist[pred, label]`` as SCanNet's ``fast_hist`` (note: transposed w.r.t. segmentation)."""
    return confusion_matrix(label, pred, num_classes, ignore_index).T


def scd_scores_from_hist(hist: np.ndarray) -> dict[str, float | None]:
    """SeK, Fscd, mIoU (change/no-change), kappa_n0 and OA from ``hist[pred, label]`` (0 = no change).

    A line-by-line equivalent of SCanNet's ``SCDD_eval_all`` (which Mamba-FCS reuses), its kappa too
    (0 for an empty matrix or a chance agreement of 1, as its ``cal_kappa``). Where SCanNet divides 0 by 0
    (NaN: the IoU of a class neither map holds, a precision with no change predicted, a recall with none to
    find) the score is None, and so is what is made of it: a perfect "no change" answer has no SeK; it
    scored SeK 0, Fscd 0, mIoU 0.5.
    """
    hist = np.asarray(hist, dtype=np.float64)
    c2 = np.zeros((2, 2))
    c2[0, 0] = hist[0, 0]
    c2[0, 1] = hist.sum(1)[0] - hist[0, 0]
    c2[1, 0] = hist.sum(0)[0] - hist[0, 0]
    c2[1, 1] = hist[1:, 1:].sum()
    hist_n0 = hist.copy()
    hist_n0[0, 0] = 0
    kappa_n0 = cohen_kappa(hist_n0)
    union = c2.sum(1) + c2.sum(0) - np.diag(c2)
    iu = [float(c2[i, i] / union[i]) if union[i] > 0 else None for i in (0, 1)]
    sek = kappa_n0 * math.exp(iu[1]) / math.e if iu[1] is not None else None
    total = hist.sum()
    change_pred = total - hist.sum(1)[0]
    change_label = total - hist.sum(0)[0]
    sc_tp = np.trace(hist[1:, 1:])
    precision = float(sc_tp / change_pred) if change_pred > 0 else None
    recall = float(sc_tp / change_label) if change_label > 0 else None
    fscd = (None if precision is None or recall is None else  # scipy's hmean, as SCanNet: 0 if either is
            2 * precision * recall / (precision + recall) if precision > 0 and recall > 0 else 0.0)
    return {
        "sek": None if sek is None else float(sek), "fscd": fscd,
        "miou": None if None in iu else (iu[0] + iu[1]) / 2, "iou_change": iu[1], "iou_nochange": iu[0],
        "kappa_n0": float(kappa_n0), "sc_precision": precision, "sc_recall": recall,
        "oa": float(np.trace(hist) / total) if total else None,
    }


def scd_score(scores: dict[str, float | None]) -> float | None:
    """SCanNet's overall score, 0.3 mIoU + 0.7 SeK; None where either is."""
    if scores.get("miou") is None or scores.get("sek") is None:
        return None
    return 0.3 * scores["miou"] + 0.7 * scores["sek"]


def _masked_semantics(sem: np.ndarray, change: np.ndarray) -> np.ndarray:
    """Land-cover ids shifted to 1.. where changed, 0 where unchanged (the SECOND label form)."""
    return np.where(np.asarray(change) > 0, np.asarray(sem).astype(np.int64) + 1, 0)


def semantic_change_scores_7class(
    pred_sem1: np.ndarray, pred_sem2: np.ndarray, pred_change: np.ndarray,
    label_sem1: np.ndarray, label_sem2: np.ndarray, label_change: np.ndarray | None = None,
    num_landcover: int = 6,
) -> dict[str, Any]:
    """Mamba-FCS / SCanNet SCD metrics: per-time-point (1 + ``num_landcover``)-class histograms.

    Inputs are land-cover ids ``0..num_landcover-1`` and binary change maps. Predictions are zeroed
    where the predicted change is 0, labels where the reference change is 0 (when
    ``label_change`` is None, the reference is "changed where the two label maps differ").
    Both time points are accumulated into one histogram, as the authors' evaluation does.
    """
    hist = semantic_change_hist_7class(pred_sem1, pred_sem2, pred_change, label_sem1, label_sem2, label_change,
                                       num_landcover)
    return {**semantic_change_scores_of_hist(hist), "hist": hist.tolist()}


def semantic_change_hist_7class(
    pred_sem1: np.ndarray, pred_sem2: np.ndarray, pred_change: np.ndarray,
    label_sem1: np.ndarray, label_sem2: np.ndarray, label_change: np.ndarray | None = None,
    num_landcover: int = 6,
) -> np.ndarray:
    """The histogram :func:`semantic_change_scores_7class` scores: counts, so the sum over a scene's blocks is the
    scene's (``evaluate`` reads it block by block)."""
    n = num_landcover + 1
    if label_change is None:
        label_change = np.asarray(label_sem1) != np.asarray(label_sem2)
    hist = np.zeros((n, n), dtype=np.int64)
    for ps, ls in ((pred_sem1, label_sem1), (pred_sem2, label_sem2)):
        hist += scd_histogram(_masked_semantics(ps, pred_change), _masked_semantics(ls, label_change), n, None)
    return hist


def semantic_change_scores_of_hist(hist: np.ndarray) -> dict[str, Any]:
    """The scores of a :func:`semantic_change_hist_7class` histogram, named by its variant."""
    return {"variant": f"scannet-{hist.shape[0]}class-per-time", **scd_scores_from_hist(hist)}


def fromto_labels(sem1: np.ndarray, sem2: np.ndarray, change: np.ndarray, num_landcover: int = 6) -> np.ndarray:
    """ChangeMamba's "from-to" classes: 0 = no change, 1 + from * K + to otherwise (K*K + 1 classes)."""
    k = num_landcover
    code = 1 + np.asarray(sem1).astype(np.int64) * k + np.asarray(sem2).astype(np.int64)
    return np.where(np.asarray(change) > 0, code, 0)


def semantic_change_scores_fromto(
    pred_sem1: np.ndarray, pred_sem2: np.ndarray, pred_change: np.ndarray,
    label_sem1: np.ndarray, label_sem2: np.ndarray, label_change: np.ndarray | None = None,
    num_landcover: int = 6,
) -> dict[str, Any]:
    """The later ChangeMamba form: one histogram over the K*K+1 "from-to" classes (37 for K = 6)."""
    if label_change is None:
        label_change = np.asarray(label_sem1) != np.asarray(label_sem2)
    n = num_landcover**2 + 1
    hist = scd_histogram(fromto_labels(pred_sem1, pred_sem2, pred_change, num_landcover),
                         fromto_labels(label_sem1, label_sem2, label_change, num_landcover), n, None)
    return {"variant": f"changemamba-{n}class-fromto", **scd_scores_from_hist(hist)}


def binary_change_scores(label: np.ndarray, pred: np.ndarray, ignore_index: int | None = IGNORE_INDEX) -> dict[str, float]:
    """Change detection scores (precision, recall, F1, IoU of the change class, OA, kappa)."""
    return binary_change_scores_from_hist(confusion_matrix(label, pred, 2, ignore_index))


def binary_change_scores_from_hist(hist: np.ndarray) -> dict[str, float]:
    """:func:`binary_change_scores` of an accumulated 2x2 confusion matrix ``hist[label, pred]``.

    A score with nothing to count is None, as ``evaluate`` has it: a perfect "no change" answer scored change F1,
    IoU and kappa 0.0 in training and ``train --test``, and null in ``evaluate``."""
    scores = segmentation_scores(hist, ["no_change", "change"])
    change = scores["per_class"]["change"]
    return {"f1": change["f1"], "iou": change["iou"], "precision": change["precision"], "recall": change["recall"],
            "oa": scores["oa"], "kappa": scores["kappa"], "miou": scores["miou"]}


class ConfusionMeter:
    """Accumulates ``hist[label, pred]`` over batches; ``reduce`` sums it across DDP processes."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.hist = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, label: torch.Tensor | np.ndarray, pred: torch.Tensor | np.ndarray) -> None:
        self.hist += confusion_matrix(label, pred, self.num_classes, self.ignore_index)

    def reduce(self) -> None:
        import torch
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            t = torch.from_numpy(self.hist.copy())
            dist.all_reduce(t)
            self.hist = t.numpy()

    def scores(self, class_names: Sequence[str] | None = None, exclude: Sequence[int] = ()) -> dict[str, Any]:
        return segmentation_scores(self.hist, class_names, exclude)
