"""VMamba's cross scan: an image as four 1-D sequences, and their sum back into an image.

The sequences are, in VMamba's order (``csm_triton.py``): row-major, column-major, row-major
flipped, column-major flipped, so every pixel sees the whole image in four directions. The
fused Triton kernel (:mod:`rsmamba.kernels.scan_triton`) reads these orders without copying.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["cross_merge", "cross_scan"]


def cross_scan(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, 4, C, H*W): row-major, column-major, and both flipped."""
    row = x.flatten(2)
    col = x.transpose(2, 3).flatten(2)
    return torch.stack([row, col, row.flip(-1), col.flip(-1)], dim=1)


def cross_merge(ys: Tensor) -> Tensor:
    """(B, 4, C, H, W) scan outputs -> (B, C, H*W): undo each scan's order and sum.

    The adjoint of :func:`cross_scan`, not its inverse: ``cross_merge(cross_scan(x)) == 4 x``."""
    b, k, c, h, w = ys.shape
    ys = ys.reshape(b, k, c, h * w)
    ys = ys[:, 0:2] + ys[:, 2:4].flip(-1)
    col = ys[:, 1].reshape(b, c, w, h).transpose(2, 3).reshape(b, c, h * w)
    return ys[:, 0] + col
