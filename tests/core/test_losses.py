"""Losses: ignore index really ignored, agreement with reference formulas, and they train."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rsmamba.errors import InputError
from rsmamba.losses import CrossEntropy, DiceLoss, LovaszSoftmax, SeKLoss, SoftCrossEntropy, build_loss


def _batch(seed: int = 0, c: int = 4):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, c, 8, 8, generator=g)
    target = torch.randint(0, c, (2, 8, 8), generator=g)
    return logits, target


@pytest.mark.parametrize("loss", [CrossEntropy(), DiceLoss(), LovaszSoftmax(), SeKLoss()])
def test_ignored_pixels_do_not_matter(loss) -> None:
    logits, target = _batch(1)
    target[:, :3] = 255
    other = logits.clone()
    other[:, :, :3] = torch.randn_like(other[:, :, :3]) * 10
    assert torch.allclose(loss(logits, target), loss(other, target), atol=1e-6)


def test_ce_weights_match_torch_and_soft_ce_matches_onehot() -> None:
    logits, target = _batch(2)
    w = [1.0, 2.0, 0.5, 1.0]
    ref = F.cross_entropy(logits, target, weight=torch.tensor(w))
    assert torch.allclose(CrossEntropy(weight=w)(logits, target), ref)
    onehot = F.one_hot(target, 4).permute(0, 3, 1, 2).float()
    assert torch.allclose(SoftCrossEntropy()(logits, onehot), F.cross_entropy(logits, target), atol=1e-6)


def test_lovasz_binary_matches_hand_value() -> None:
    # Two pixels, perfect one-hot predictions -> zero loss; fully wrong -> 1 per class.
    target = torch.tensor([[[0, 1]]])
    right = torch.tensor([[[[50.0, -50.0]], [[-50.0, 50.0]]]])
    assert float(LovaszSoftmax()(right, target)) == pytest.approx(0.0, abs=1e-6)
    assert float(LovaszSoftmax()(-right, target)) == pytest.approx(1.0, abs=1e-6)


def test_dice_perfect_is_zero() -> None:
    target = torch.randint(0, 3, (1, 6, 6))
    logits = F.one_hot(target, 3).permute(0, 3, 1, 2).float() * 100
    assert float(DiceLoss(smooth=0.0)(logits, target)) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("spec", ["ce", "dice", "lovasz", [{"name": "ce"}, {"name": "dice", "scale": 0.5}]])
def test_losses_decrease_when_optimised(spec) -> None:
    logits, target = _batch(3)
    logits = logits.requires_grad_(True)
    loss_fn = build_loss(spec)
    opt = torch.optim.Adam([logits], lr=0.2)
    first = float(loss_fn(logits, target).detach())
    for _ in range(40):
        opt.zero_grad()
        loss = loss_fn(logits, target)
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first
    assert (logits.argmax(1) == target).float().mean() > 0.9


def test_sek_loss_prefers_correct_changed_pixels() -> None:
    target = torch.randint(1, 7, (1, 8, 8))
    change = torch.ones_like(target)
    good = F.one_hot(target, 7).permute(0, 3, 1, 2).float() * 5
    bad = torch.roll(good, 1, dims=1)
    sek = SeKLoss()
    assert float(sek(good, target, change)) < float(sek(bad, target, change))
    assert float(sek(good, target, change)) >= 0


def test_unknown_loss_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown loss"):
        build_loss([{"name": "focal"}, {"name": "ce"}])


def test_sek_loss_counts_water_coded_zero() -> None:
    """SECOND codes water as 0 (after unchanged is taken out): an all-water changed patch with wrong
    predictions must cost something (it used to be exactly 0 because class 0 was ignored)."""
    target = torch.zeros(1, 4, 4, dtype=torch.long)  # all water
    change = torch.ones_like(target)
    wrong = torch.zeros(1, 6, 4, 4)
    wrong[:, 3] = 5.0  # confidently "tree"
    right = torch.zeros(1, 6, 4, 4)
    right[:, 0] = 5.0
    loss = SeKLoss()(wrong, target, change)
    assert float(loss) > 0
    # Unchanged pixels (change == 0) are left out whatever their label.
    assert float(SeKLoss()(wrong, target, torch.zeros_like(target))) == 0.0


def _np_softmax(x: np.ndarray) -> np.ndarray:  # (C, N)
    e = np.exp(x - x.max(0, keepdims=True))
    return e / e.sum(0, keepdims=True)


def _np_ce(logits: np.ndarray, t: np.ndarray) -> float:
    keep = t != 255
    p = _np_softmax(logits.reshape(logits.shape[0], -1))[:, keep.ravel()]
    return float(-np.log(p[t[keep], np.arange(keep.sum())]).mean())


def _np_lovasz(logits: np.ndarray, t: np.ndarray) -> float:
    keep = (t != 255).ravel()
    p = _np_softmax(logits.reshape(logits.shape[0], -1))[:, keep]
    tv = t.ravel()[keep]
    out = []
    for c in range(logits.shape[0]):
        fg = (tv == c).astype(float)
        if fg.sum() == 0:
            continue
        err = np.abs(fg - p[c])
        order = np.argsort(-err, kind="stable")
        g = fg[order]
        inter, union = g.sum() - np.cumsum(g), g.sum() + np.cumsum(1 - g)
        jac = 1 - inter / union
        jac[1:] = jac[1:] - jac[:-1]
        out.append(float(err[order] @ jac))
    return float(np.mean(out))


def _np_kappa_miou(logits: np.ndarray, t: np.ndarray, change: np.ndarray) -> tuple[float, float]:
    keep = ((t != 255) & (change != 0)).ravel()
    p = _np_softmax(logits.reshape(logits.shape[0], -1))[:, keep].T
    onehot = np.eye(logits.shape[0])[t.ravel()[keep]]
    conf = onehot.T @ p
    total = conf.sum()
    po, pe = np.trace(conf) / total, (conf.sum(1) * conf.sum(0)).sum() / total**2
    inter = np.diag(conf)
    w = 1 / np.log(onehot.sum(0) + 1 + 1e-6)  # the authors' 1 / log(freq + 1), rare classes weigh more
    return (po - pe) / (1 - pe + 1e-6), float((w / w.sum() * inter / (conf.sum(0) + conf.sum(1) - inter + 1e-6)).sum())


def _np_sek(l1: np.ndarray, t1: np.ndarray, l2: np.ndarray, t2: np.ndarray, change: np.ndarray) -> float:
    """Kappa and mIoU of both dates averaged first, then combined (the authors' loss.py)."""
    (k1, m1), (k2, m2) = _np_kappa_miou(l1, t1, change), _np_kappa_miou(l2, t2, change)
    kappa, miou = (k1 + k2) / 2, (m1 + m2) / 2
    sek = max(kappa * np.exp(1.5 * miou), 0.0)
    return max(-np.log(sek + 1e-6) - 0.5 * np.log(miou + 1e-6), 0.0)


def test_mambafcs_objective_matches_a_hand_computation_on_4x4() -> None:
    from rsmamba.losses import MambaFCSObjective

    g = np.random.default_rng(3)
    change = np.array([[0, 0, 1, 1], [0, 1, 1, 1], [0, 0, 0, 1], [1, 1, 0, 0]])
    m1 = np.where(change == 1, g.integers(0, 3, (4, 4)), 255)
    m2 = np.where(change == 1, (m1 + 1) % 3, 255)
    out_np = {"change": g.normal(size=(2, 4, 4)), "sem1": g.normal(size=(3, 4, 4)), "sem2": g.normal(size=(3, 4, 4))}
    unchanged = (change == 0).ravel()
    p1 = _np_softmax(out_np["sem1"].reshape(3, -1))[:, unchanged]
    p2 = _np_softmax(out_np["sem2"].reshape(3, -1))[:, unchanged]
    hand = {
        "change_ce": _np_ce(out_np["change"], change),
        "semantic_ce": _np_ce(out_np["sem1"], m1) + _np_ce(out_np["sem2"], m2),
        "lovasz": _np_lovasz(out_np["sem1"], m1) + _np_lovasz(out_np["sem2"], m2) + _np_lovasz(out_np["change"], change),
        "similarity": float(((p1 - p2) ** 2).sum() / (16 * 3)),  # over all 16 pixels x 3 classes, changed zeroed
        "sek": _np_sek(out_np["sem1"], m1, out_np["sem2"], m2, change),
    }
    weights = {"change_ce": 1.0, "semantic_ce": 0.5, "lovasz": 0.5, "similarity": 0.05, "sek": 0.5}
    objective = MambaFCSObjective()
    out = {k: torch.from_numpy(v[None]).double() for k, v in out_np.items()}
    args = (torch.from_numpy(change[None]), torch.from_numpy(m1[None]), torch.from_numpy(m2[None]))
    terms = objective.terms(out, *args)
    for k, v in hand.items():
        assert float(terms[k]) == pytest.approx(v, rel=1e-6, abs=1e-9), k
    assert hand["sek"] > 0 and hand["similarity"] > 0
    assert float(objective(out, *args)) == pytest.approx(sum(weights[k] * hand[k] for k in hand), rel=1e-6)
    custom = build_loss({"name": "mambafcs", "sek": 2.0, "similarity": 0.0})
    assert float(custom(out, *args)) == pytest.approx(
        sum({**weights, "sek": 2.0, "similarity": 0.0}[k] * hand[k] for k in hand), rel=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_ce_batch_of_zero_weighted_classes_only_is_zero_not_nan(smoothing) -> None:
    """class_weights 0 on a class: a batch holding only it (and no-label pixels) has nothing to count. torch's
    weighted mean was 0/0 = NaN, and train stopped the run as diverged, blaming the learning rate (QA)."""
    logits, _ = _batch(3)
    logits.requires_grad_(True)
    target = torch.full((2, 8, 8), 255)
    target[0, :2] = 3  # class 3, weighted 0
    loss = CrossEntropy(weight=[1.0, 1.0, 1.0, 0.0], smoothing=smoothing)(logits, target)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))
    target[1, :1] = 2  # one weighted pixel: torch's value, unchanged
    want = F.cross_entropy(logits, target, weight=torch.tensor([1.0, 1.0, 1.0, 0.0]), ignore_index=255,
                           label_smoothing=smoothing)
    assert torch.equal(CrossEntropy(weight=[1.0, 1.0, 1.0, 0.0], smoothing=smoothing)(logits, target), want)


def test_an_unknown_loss_option_is_named_with_the_options_it_takes() -> None:
    """A typo (class_weight) was TypeError's 'CrossEntropy.__init__() got an unexpected keyword argument', naming
    a class and not the options the docs list (QA)."""
    with pytest.raises(InputError) as caught:
        build_loss([{"name": "ce", "class_weight": [1, 2]}, {"name": "dice", "smoth": 1}, {"name": "lovasz", "x": 1}])
    assert caught.value.problems == [
        "loss ce: unknown option 'class_weight' (it takes class_weights, smoothing)",
        "loss dice: unknown option 'smoth' (it takes smooth)",
        "loss lovasz: unknown option 'x' (it takes no options)"]
    assert isinstance(build_loss({"name": "ce", "class_weights": [1, 2], "smoothing": 0.1}), CrossEntropy)
