"""VMamba's original visual state-space layer (SS2D "v0"), as CMT-UNet and MAFMamba use it.

v0 = in_proj to (x, z), depthwise conv + SiLU on x, four-direction cross scan, selective scan,
sum, LayerNorm, gate by SiLU(z), out_proj; a block is LayerNorm + SS2D + residual, no MLP.
Built from :mod:`rsmamba.models.ss2d` (``forward_type="v0"``, ``mlp_ratio=0``), whose scans go
through :func:`rsmamba.kernels.selective_scan`, so the CPU and CUDA backends need no change here.
Parameter layout and counts are VMamba's (``x_proj_weight``, ``dt_projs_*``, ``A_logs``, ``Ds``).
"""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from rsmamba.models.ss2d import VSSBlock


class VSSBlocks(nn.Module):
    """``depth`` v0 VSS blocks, no downsampling, on a channels-last map.

    ``channel_first=True`` takes and returns (B, C, H, W) (the blocks still run channels-last).
    VMamba's stage with its downsampling is :class:`rsmamba.models.ss2d.VSSLayer`.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        d_state: int = 16,
        drop_path: float | list[float] = 0.0,
        channel_first: bool = False,
    ) -> None:
        super().__init__()
        rates = drop_path if isinstance(drop_path, list) else [drop_path] * depth
        self.blocks = nn.ModuleList(
            VSSBlock(hidden_dim=dim, drop_path=rates[i], ssm_d_state=d_state, forward_type="v0", mlp_ratio=0.0)
            for i in range(depth)
        )
        self.channel_first = channel_first

    def forward(self, x: Tensor) -> Tensor:
        if self.channel_first:
            x = x.permute(0, 2, 3, 1)
        for blk in self.blocks:
            x = blk(x)
        return x.permute(0, 3, 1, 2).contiguous() if self.channel_first else x
