"""Losses: ignore index really ignored, agreement with reference formulas, and they train."""

from __future__ import annotations

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
