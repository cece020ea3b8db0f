"""Shared helpers for the hybrid-model tests: a learnable synthetic batch and an overfit loop."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F


def synthetic_chips(n: int = 4, size: int = 32, classes: int = 3, bands: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Blocky label maps (8x8 cells) and images whose colour depends on the class, plus noise."""
    g = torch.Generator().manual_seed(seed)
    cells = torch.randint(0, classes, (n, 1, size // 8, size // 8), generator=g).float()
    labels = F.interpolate(cells, scale_factor=8, mode="nearest").long()[:, 0]
    colours = torch.randn(classes, bands, generator=g)
    images = colours[labels].permute(0, 3, 1, 2) + 0.3 * torch.randn(n, bands, size, size, generator=g)
    return images, labels


def overfit(model: nn.Module, forward: Callable[[nn.Module], torch.Tensor], labels: torch.Tensor, max_steps: int = 300) -> tuple[float, float, int]:
    """Train until the loss falls below 10 % of its start; returns (first, last, steps).

    Runs on one thread: these models are many small ops, and on a shared 2-core machine a
    second thread only adds contention (10x slower observed)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _overfit(model, forward, labels, max_steps)
    finally:
        torch.set_num_threads(threads)


def _overfit(model: nn.Module, forward: Callable[[nn.Module], torch.Tensor], labels: torch.Tensor, max_steps: int) -> tuple[float, float, int]:
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    first = last = float("nan")
    for step in range(max_steps):
        loss = F.cross_entropy(forward(model), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        last = loss.item()
        if step == 0:
            first = last
        elif last < 0.1 * first:
            return first, last, step + 1
    return first, last, max_steps


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def same_output_on_backends(model: nn.Module, forward: Callable[[nn.Module], torch.Tensor], monkeypatch, backends=("reference", "chunked")) -> None:  # type: ignore[no-untyped-def]
    """The model gives the same logits whichever selective-scan backend runs (set by env var)."""
    model.eval()
    outs = []
    with torch.no_grad():
        for backend in backends:
            monkeypatch.setenv("RSMAMBA_SCAN_BACKEND", backend)
            outs.append(forward(model))
    for other in outs[1:]:
        assert torch.allclose(outs[0], other, atol=1e-4, rtol=1e-4)
