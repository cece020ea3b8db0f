"""The VMamba backbone (hierarchical VSS encoder) with the configurations our systems use.

Layout and parameter names follow VMamba's ``Backbone_VSSM`` (``patch_embed.*``,
``layers.{i}.blocks.*``, ``layers.{i}.downsample.*``, ``outnorm{i}``), so ImageNet checkpoints
of VMamba load through ``model.pretrained`` (:mod:`rsmamba.pretrained`, strict, with a report).
Nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn as nn
from torch import Tensor

from rsmamba.models.layers import per_stage
from rsmamba.models.ss2d import LayerNorm2d, Permute, VSSLayer

__all__ = ["VMAMBA_CONFIGS", "VMambaBackbone", "make_patch_embed", "vmamba_init"]

# name -> keyword arguments of VMambaBackbone
VMAMBA_CONFIGS: dict[str, dict[str, Any]] = {
    # VMamba-T v2 "0230s" as MambaSeg builds it (channel-first, LN2d, d_state 1, ratio 1.0).
    "vmamba_tiny_s1l8": dict(
        depths=(2, 2, 8, 2), dims=96, ssm_d_state=1, ssm_ratio=1.0, ssm_conv=3, ssm_conv_bias=False,
        forward_type="v05_noz", mlp_ratio=4.0, drop_path_rate=0.2, channel_first=True,
    ),
    # VMamba-B v2 "0229" as Mamba-FCS builds it (vssm_base_224.yaml: channel-last "ln").
    "vmamba_base_0229": dict(
        depths=(2, 2, 15, 2), dims=128, ssm_d_state=1, ssm_ratio=2.0, ssm_conv=3, ssm_conv_bias=False,
        forward_type="v3noz", mlp_ratio=4.0, drop_path_rate=0.6, channel_first=False,
    ),
    # Tiny CPU/test presets: same structure, a few thousand times cheaper.
    "vmamba_test_cf": dict(
        depths=(1, 1, 1, 1), dims=(16, 24, 32, 48), ssm_d_state=1, ssm_ratio=1.0, ssm_conv=3,
        ssm_conv_bias=False, forward_type="v05_noz", mlp_ratio=2.0, drop_path_rate=0.0, channel_first=True,
    ),
    "vmamba_test_cl": dict(
        depths=(1, 1, 1, 1), dims=(16, 24, 32, 48), ssm_d_state=1, ssm_ratio=2.0, ssm_conv=3,
        ssm_conv_bias=False, forward_type="v3noz", mlp_ratio=2.0, drop_path_rate=0.0, channel_first=False,
    ),
}


def make_patch_embed(in_chans: int, embed_dim: int, patch_size: int = 4, channel_first: bool = True) -> nn.Sequential:
    """VMamba's "v2" stem: two stride-2 3x3 convolutions with norms (indices kept as in VMamba)."""
    stride = patch_size // 2
    norm = LayerNorm2d if channel_first else nn.LayerNorm
    ident = nn.Identity
    return nn.Sequential(
        nn.Conv2d(in_chans, embed_dim // 2, kernel_size=stride + 1, stride=stride, padding=1),
        ident() if channel_first else Permute(0, 2, 3, 1),
        norm(embed_dim // 2),
        ident() if channel_first else Permute(0, 3, 1, 2),
        nn.GELU(),
        nn.Conv2d(embed_dim // 2, embed_dim, kernel_size=stride + 1, stride=stride, padding=1),
        ident() if channel_first else Permute(0, 2, 3, 1),
        norm(embed_dim),
    )


class VMambaBackbone(nn.Module):
    """Four VSS stages at strides 4, 8, 16, 32; returns the normalised stage outputs (B, C_i, H_i, W_i).

    ``forward_stages`` exposes the stage loop for fusion models (MambaSeg) that need to act
    between the blocks and the downsampling of each stage.
    """

    def __init__(
        self,
        in_chans: int = 3,
        patch_size: int = 4,
        depths: Sequence[int] = (2, 2, 9, 2),
        dims: int | Sequence[int] = 96,
        ssm_d_state: int = 16,
        ssm_ratio: float = 2.0,
        ssm_dt_rank: Any = "auto",
        ssm_conv: int = 3,
        ssm_conv_bias: bool = True,
        ssm_init: str = "v0",
        forward_type: str = "v2",
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.1,
        downsample_version: str = "v3",
        channel_first: bool = True,
        out_indices: Sequence[int] = (0, 1, 2, 3),
    ):
        super().__init__()
        depths = per_stage("depths", depths, 4)  # the decoders of MambaSeg and Mamba-FCS take four stages
        n = len(depths)
        dims = [int(dims * 2**i) for i in range(n)] if isinstance(dims, int) else [
            int(d) for d in per_stage("dims", dims, n)]
        self.dims = dims
        self.channel_first = channel_first
        self.out_indices = tuple(out_indices)
        self.patch_embed = make_patch_embed(in_chans, dims[0], patch_size, channel_first)
        total = sum(depths)  # python floats: the model can be built on the meta device
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.layers = nn.ModuleList()
        for i in range(n):
            self.layers.append(VSSLayer(
                dims[i], depths[i], drop_path=rates[sum(depths[:i]) : sum(depths[: i + 1])],
                downsample=downsample_version if i < n - 1 else None,
                out_dim=dims[i + 1] if i < n - 1 else None, channel_first=channel_first,
                ssm_d_state=ssm_d_state, ssm_ratio=ssm_ratio, ssm_dt_rank=ssm_dt_rank, ssm_conv=ssm_conv,
                ssm_conv_bias=ssm_conv_bias, ssm_init=ssm_init, forward_type=forward_type, mlp_ratio=mlp_ratio,
            ))
        norm = LayerNorm2d if channel_first else nn.LayerNorm
        for i in self.out_indices:
            self.add_module(f"outnorm{i}", norm(dims[i]))
        self.apply(vmamba_init)

    def to_channel_first(self, x: Tensor) -> Tensor:
        return x if self.channel_first else x.permute(0, 3, 1, 2).contiguous()

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.patch_embed(x)
        outs = []
        for i, layer in enumerate(self.layers):
            o = layer.blocks(x)
            x = layer.downsample(o)
            if i in self.out_indices:
                outs.append(self.to_channel_first(getattr(self, f"outnorm{i}")(o)))
        return outs


def vmamba_init(m: nn.Module) -> None:
    """VMamba's init (``module.apply(vmamba_init)``): truncated-normal Linear weights (std 0.02), zero
    biases, unit norms. SS2D's own parameters (A_logs, dt_projs_*) keep the Mamba initialisation set in SS2D."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)

