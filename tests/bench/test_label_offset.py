"""bench/label_offset.py's old label mode: scale augmentation's labels as resampled before be50afb, only while
asked, and counted (no training here: the benchmark itself takes about 10 minutes)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import rsmamba.augment as augment
from tests.helpers.scripts import load_script


def _scaled(mask: torch.Tensor) -> torch.Tensor:
    """The mask through scale augmentation at factor 1.25 (no flips, no turns)."""
    return augment.Augment(flips=False, rot90=False, scale=(1.25, 1.25))({"mask": mask.clone()})["mask"]


def test_old_label_mode_resamples_labels_with_nearest_and_restores() -> None:
    bench = load_script("bench/label_offset.py", "bench_label_offset")
    mask = torch.arange(64, dtype=torch.uint8).reshape(8, 8)
    old = F.interpolate(mask[None, None].float(), size=(10, 10), mode="nearest")[0, 0, 1:9, 1:9].to(torch.uint8)
    now = _scaled(mask)
    assert not torch.equal(now, old)  # the two modes differ on this mask: the check below means something
    with bench.old_label_mode() as calls:
        assert torch.equal(_scaled(mask), old)
        assert calls["patched"] == 1  # the label, not the image (bilinear)
    assert torch.equal(_scaled(mask), now)
    with pytest.raises(RuntimeError), bench.old_label_mode():
        raise RuntimeError("a failed fine-tune")
    assert torch.equal(_scaled(mask), now)  # restored after an error too


def test_arguments_and_label_modes() -> None:
    bench = load_script("bench/label_offset.py", "bench_label_offset")
    assert bench.parse_args(["--quick"]).quick and not bench.parse_args([]).quick
    assert bench.LABEL_MODES == {"now": "nearest-exact", "old": "nearest"}
