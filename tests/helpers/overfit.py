"""Shared helper for the models' overfitting tests (not collected: no test_ prefix)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import Tensor


def smooth_field(generator: torch.Generator, n: int, size: int) -> Tensor:
    """(n, 1, size, size) random field constant on 4x4 blocks: classes form blobs a stride-4 encoder can resolve."""
    noise = torch.randn(n, 1, size // 4, size // 4, generator=generator)
    return torch.nn.functional.interpolate(noise, size=(size, size), mode="nearest")


@contextmanager
def single_thread():
    """One intra-op thread: on a shared 2-core machine, thread spin-waits cost more than they give."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def overfit(model: torch.nn.Module, loss_fn: Callable[[], Tensor], steps: int, lr: float = 5e-3) -> tuple[float, float]:
    """Adam on one fixed batch; returns (first loss, best loss) and stops once it fell by 95 %."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    first = best = None
    with single_thread():
        for _ in range(steps):
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            opt.step()
            value = float(loss.detach())
            first = value if first is None else first
            best = value if best is None else min(best, value)
            if best < 0.05 * first:
                break
    return first, best
