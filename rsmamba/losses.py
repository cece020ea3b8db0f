"""Losses of the papers: CE (ignore index, class weights), soft CE, Dice, Lovász-softmax, SeK.

Every loss takes logits ``(B, C, H, W)`` and integer targets ``(B, H, W)`` where
``ignore_index`` marks pixels without a label; those pixels contribute nothing (not even to a
denominator), so nodata borders never pull the model toward any class.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from rsmamba.classes import IGNORE_INDEX
from rsmamba.errors import InputError


def _valid_probs(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C) softmax probabilities and (N,) targets of the labelled pixels only."""
    c = logits.shape[1]
    probs = logits.softmax(1).permute(0, 2, 3, 1).reshape(-1, c)
    flat = target.reshape(-1)
    keep = flat != ignore_index
    return probs[keep], flat[keep].long()


def _number_problem(value: object, what: str, above_zero: bool = False) -> str | None:
    """Why a loss option is no finite number >= 0 (> 0), or None: text passed the dry run, then failed at the first
    batch with a traceback; a negative scale turned a loss into one the run maximised."""
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 or (
            above_zero and value == 0):
        return f"{what} must be a number {'> 0' if above_zero else '>= 0'}, got {value!r}"
    return None


def _raise_problems(*problems: str | None) -> None:
    if any(problems):
        raise InputError([p for p in problems if p])


class CrossEntropy(nn.Module):
    """Cross-entropy with ignore index, optional class weights and label smoothing ("soft CE")."""

    def __init__(self, weight: Sequence[float] | None = None, ignore_index: int = IGNORE_INDEX, smoothing: float = 0.0):
        super().__init__()
        problems = []
        if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not 0 <= smoothing < 1:
            problems.append(f"loss ce: smoothing must be in [0, 1), got {smoothing!r}")
        if weight is not None and not (isinstance(weight, (list, tuple)) and weight and all(
                isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0 for w in weight)):
            problems.append(f"loss ce: class_weights must be a list of numbers >= 0, one per class, got {weight!r}")
        elif weight is not None and not any(weight):  # the loss 0/0: NaN at the first step, blamed on the rate
            problems.append(f"loss ce: class_weights are all 0, so no pixel counts; give the classes trained on a "
                            f"weight > 0, got {weight!r}")
        if problems:  # else torch's error at the first batch
            raise InputError(problems)
        self.register_buffer("weight", torch.tensor(weight, dtype=torch.float32) if weight is not None else None)
        self.ignore_index = ignore_index
        self.smoothing = smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        labelled = target != self.ignore_index
        if labelled.sum() == 0:
            return logits.sum() * 0.0
        if self.weight is not None and self.weight[target[labelled].long()].sum() == 0:
            # a batch of classes weighted 0 only (and no label): torch's weighted mean is 0/0, NaN, and the run
            # stopped as diverged, blamed on optim.lr; these pixels count nothing, as the weights say
            return logits.sum() * 0.0
        return F.cross_entropy(logits, target.long(), weight=self.weight, ignore_index=self.ignore_index,
                               label_smoothing=self.smoothing)


class SoftCrossEntropy(nn.Module):
    """CE against soft targets ``(B, C, H, W)`` (e.g. mixed or smoothed labels); the all-zero pixels are ignored."""

    def forward(self, logits: torch.Tensor, soft_target: torch.Tensor) -> torch.Tensor:
        mass = soft_target.sum(1)
        keep = mass > 0
        if not keep.any():
            return logits.sum() * 0.0
        per_pixel = -(soft_target * logits.log_softmax(1)).sum(1)
        return per_pixel[keep].mean()


class DiceLoss(nn.Module):
    """Multi-class soft Dice, averaged over classes present in the batch (labels or predictions)."""

    def __init__(self, ignore_index: int = IGNORE_INDEX, smooth: float = 1.0):
        super().__init__()
        _raise_problems(_number_problem(smooth, "loss dice: smooth"))
        self.ignore_index = ignore_index
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probs, t = _valid_probs(logits, target, self.ignore_index)
        if t.numel() == 0:
            return logits.sum() * 0.0
        onehot = F.one_hot(t, logits.shape[1]).float()
        inter = (probs * onehot).sum(0)
        union = probs.sum(0) + onehot.sum(0)
        dice = (2 * inter + self.smooth) / (union + self.smooth)
        return 1 - dice.mean()


def _lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. sorted errors (Berman et al. 2018)."""
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    jaccard = 1 - intersection / union
    if gt_sorted.numel() > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


class LovaszSoftmax(nn.Module):
    """Lovász-softmax: a convex surrogate of the per-class IoU, averaged over present classes."""

    def __init__(self, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probs, t = _valid_probs(logits, target, self.ignore_index)
        if t.numel() == 0:
            return logits.sum() * 0.0
        losses = []
        for c in range(logits.shape[1]):
            fg = (t == c).to(probs.dtype)
            if fg.sum() == 0:
                continue
            errors = (fg - probs[:, c]).abs()
            errors_sorted, perm = torch.sort(errors, descending=True)
            losses.append(torch.dot(errors_sorted, _lovasz_grad(fg[perm])))
        return torch.stack(losses).mean() if losses else logits.sum() * 0.0


class SeKLoss(nn.Module):
    """Mamba-FCS's differentiable SeK surrogate over changed pixels (the authors' ``utils_func/loss.py``).

    Per date, a soft confusion matrix (summed softmax probabilities per reference class) gives a soft
    kappa and a soft mIoU weighted per class by ``1 / log(count + 1)``, normalised (rare classes
    count more; a class absent from the batch's changed pixels gets the largest weight, as in the
    authors' code). With both dates (``logits2``/``target2``) kappa and mIoU are averaged over them
    first; then ``sek = kappa * exp(1.5 * mIoU)`` and the loss is ``-log(sek) - 0.5 * log(mIoU)``,
    clamped at 0. A kappa at or below 0 is held at the floor (the authors' log would be NaN there).

    Unchanged pixels are left out through ``change`` (0 = unchanged) and ``ignore_index``, never by
    class id: in rsmamba's change datasets every semantic id is a real class (SECOND's water is 0).
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX, eps: float = 1e-6):
        super().__init__()
        _raise_problems(_number_problem(eps, "loss sek: eps", above_zero=True))
        self.ignore_index = ignore_index
        self.eps = eps

    def _kappa_miou(self, logits: torch.Tensor, target: torch.Tensor,
                    change: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor] | None:
        t = target.clone()
        if change is not None:
            t[change == 0] = self.ignore_index
        probs, tv = _valid_probs(logits, t, self.ignore_index)
        if tv.numel() == 0:
            return None
        onehot = F.one_hot(tv, logits.shape[1]).to(probs.dtype)
        conf = onehot.t() @ probs  # conf[label, pred], soft
        total = conf.sum()
        po = conf.diagonal().sum() / total
        pe = (conf.sum(1) * conf.sum(0)).sum() / total**2
        kappa = (po - pe) / (1 - pe + self.eps)
        inter = conf.diagonal()
        union = conf.sum(0) + conf.sum(1) - inter
        weights = 1 / torch.log(onehot.sum(0) + 1 + self.eps)
        miou = (weights / weights.sum() * inter / (union + self.eps)).sum()
        return kappa, miou

    def forward(self, logits: torch.Tensor, target: torch.Tensor, change: torch.Tensor | None = None,
                logits2: torch.Tensor | None = None, target2: torch.Tensor | None = None) -> torch.Tensor:
        parts = [self._kappa_miou(logits, target, change)]
        if logits2 is not None and target2 is not None:
            parts.append(self._kappa_miou(logits2, target2, change))
        parts = [p for p in parts if p is not None]
        if not parts:
            return logits.sum() * 0.0
        kappa = torch.stack([k for k, _ in parts]).mean()
        miou = torch.stack([m for _, m in parts]).mean()
        sek = (kappa * torch.exp(1.5 * miou)).clamp_min(0.0)
        return (-torch.log(sek + self.eps) - 0.5 * torch.log(miou + self.eps)).clamp_min(0.0)


class MambaFCSObjective(nn.Module):
    """The Mamba-FCS training objective on a change model's outputs (``change``, ``sem1``, ``sem2``)::

        change_ce * CE(change) + semantic_ce * (CE(sem1) + CE(sem2))
        + lovasz * (Lovasz(sem1) + Lovasz(sem2) + Lovasz(change))
        + similarity * MSE(softmax(sem1), softmax(sem2)) with changed pixels zeroed
        + sek * SeK(sem1, sem2) over changed pixels (kappa and mIoU averaged over the dates)

    Defaults follow the authors' script as read in /work notes (CE_cd + 0.5 CE_sem + 0.5 Lovasz
    + 0.05 similarity + 0.5 SeK). Semantic targets carry 255 on unchanged pixels, so CE, Lovasz
    and SeK see changed pixels only; the similarity term asks both dates to agree where nothing
    changed. Each weight is a config value (``loss: {name: mambafcs, sek: 0.5, ...}``).
    """

    takes_outputs = True

    def __init__(self, ignore_index: int = IGNORE_INDEX, change_ce: float = 1.0, semantic_ce: float = 0.5,
                 lovasz: float = 0.5, similarity: float = 0.05, sek: float = 0.5):
        super().__init__()
        self.w = {"change_ce": change_ce, "semantic_ce": semantic_ce, "lovasz": lovasz, "similarity": similarity,
                  "sek": sek}
        _raise_problems(*(_number_problem(v, f"loss mambafcs: {k}") for k, v in self.w.items()))
        self.ce = CrossEntropy(ignore_index=ignore_index)
        self.lovasz = LovaszSoftmax(ignore_index=ignore_index)
        self.sek = SeKLoss(ignore_index=ignore_index)

    def terms(self, out: dict[str, torch.Tensor], change: torch.Tensor, mask1: torch.Tensor,
              mask2: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each unweighted term, for logging and for tests against hand computations."""
        s1, s2, cd = out["sem1"], out["sem2"], out["change"]
        unchanged = (change == 0).reshape(-1)
        p1 = s1.softmax(1).permute(0, 2, 3, 1).reshape(-1, s1.shape[1])[unchanged]
        p2 = s2.softmax(1).permute(0, 2, 3, 1).reshape(-1, s2.shape[1])[unchanged]
        return {
            "change_ce": self.ce(cd, change),
            "semantic_ce": self.ce(s1, mask1) + self.ce(s2, mask2),
            "lovasz": self.lovasz(s1, mask1) + self.lovasz(s2, mask2) + self.lovasz(cd, change),
            # the authors' MSE over every pixel and class, changed pixels zeroed (not a mean over unchanged ones)
            "similarity": ((p1 - p2) ** 2).sum() / (change.numel() * s1.shape[1]),
            "sek": self.sek(s1, mask1, change, s2, mask2),
        }

    def forward(self, out: dict[str, torch.Tensor], change: torch.Tensor, mask1: torch.Tensor,
                mask2: torch.Tensor) -> torch.Tensor:
        return sum(self.w[k] * v for k, v in self.terms(out, change, mask1, mask2).items())


class CombinedLoss(nn.Module):
    """A weighted sum of losses, built from config entries like ``{"name": "dice", "weight": 0.5}``."""

    def __init__(self, parts: list[tuple[float, nn.Module]]):
        super().__init__()
        self.weights = [w for w, _ in parts]
        self.parts = nn.ModuleList([m for _, m in parts])

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(w * m(logits, target) for w, m in zip(self.weights, self.parts))


LOSSES = {"ce": CrossEntropy, "dice": DiceLoss, "lovasz": LovaszSoftmax, "sek": SeKLoss, "mambafcs": MambaFCSObjective}


def build_loss(spec: str | list | dict, ignore_index: int = IGNORE_INDEX) -> nn.Module:
    """A loss from a config value: ``"ce"``, ``{"name": "ce", "weight": [...class weights]}``, or a list of
    ``{"name", "scale", ...}`` entries summed with their ``scale``."""
    items = spec if isinstance(spec, list) else [spec]
    parts = []
    problems = []
    for item in items:
        if not isinstance(item, (str, dict)):  # (a number: a TypeError traceback)
            problems.append(f"loss {item!r}: expected a loss name or {{name: ..., options}}")
            continue
        item = {"name": item} if isinstance(item, str) else dict(item)
        name = item.pop("name", None)
        scale = item.pop("scale", 1.0)
        if isinstance(scale, str):
            try:  # YAML 1.1 reads 1e-1 (no dot) as text, as the config's numbers
                scale = float(scale)
            except ValueError:
                pass
        if problem := _number_problem(scale, f"loss {name}: scale"):
            problems.append(problem)
        if name not in LOSSES:
            problems.append(f"unknown loss {name!r}; known: {', '.join(LOSSES)}")
            continue
        if name == "mambafcs" and len(items) > 1:
            problems.append("loss 'mambafcs' is a whole objective; give it alone (its weights are its keys)")
            continue
        if name == "ce" and "class_weights" in item:
            item["weight"] = item.pop("class_weights")
        takes = [k for k in inspect.signature(LOSSES[name]).parameters if k != "ignore_index"]
        if unknown := [k for k in item if k not in takes]:  # (was TypeError's 'CrossEntropy.__init__() got ...')
            options = ", ".join("class_weights" if k == "weight" else k for k in takes) or "no options"
            problems.append(f"loss {name}: unknown option{'s' * (len(unknown) > 1)} "
                            f"{', '.join(map(repr, unknown))} (it takes {options})")
            continue
        try:
            parts.append((scale, LOSSES[name](ignore_index=ignore_index, **item)))
        except TypeError as exc:
            problems.append(f"loss {name!r}: {exc}")
        except InputError as exc:  # each loss's own option checks, listed with the others
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    return parts[0][1] if len(parts) == 1 and parts[0][0] == 1.0 else CombinedLoss(parts)
