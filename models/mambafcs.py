"""Mamba-FCS: bi-temporal semantic change detection with a Siamese VMamba encoder.

Built from the paper (seed 002) and a read of ``Buddhi19/MambaFCS`` (ChangeMamba lineage).

- One VMamba encoder shared by both dates (VMamba-B "0229": dims 128..1024, depths 2-2-15-2).
- Change decoder, deepest stage first: JSF fuses the two dates with their FFT log-amplitude
  spectra and ``|t1 - t2|`` (``fuse_layer_*``: spatial-frequency fusion, ECA channel gate, 7x7
  spatial gate); then upsample-add, a ResBlock-SE and one VSS block per stage. The per-stage
  change features are kept as *change maps*.
- Two semantic decoders (one per date) with change-guided attention: every stage's features are
  multiplied by ``sigmoid(change map)`` of that stage before the same upsample/ResBlock/VSS path.
- CGA is bidirectional by default (``cga="bidirectional"``), as the paper says ("change
  probabilities actively guide semantic refinement (and vice versa)"): the finest change
  features are in turn gated by ``sigmoid(|s1 - s2|)``, the disagreement of the two dates'
  finest semantic features, before the change head. Parameter-free, so the authors' state
  dicts still load. The authors' code has the change -> semantic direction only:
  ``cga="change_to_semantic"`` reproduces it (the shipped demo checkpoint uses the default).
- Heads: a change head (2 classes) and one semantic head shared by both dates
  (``PyramidFusion`` multi-scale blocks), upsampled to the input size.

Module names follow the authors' (``encoder``, ``decoder_bcd``, ``decoder_T1``, ``decoder_T2``,
``main_clf_cd``, ``aux_clf``; inside, ``fuse_layer_i``, ``st_block_ij``, ``smooth_layer_i``,
``down_sample_i``), so their state dicts load with :func:`rsmamba.models.weights.load_authors_state_dict`. Their
``FFT_Fusion`` also builds a cross-attention that its forward never calls; it is kept (as
``cross_attn``) only so their checkpoints load and parameter counts match.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from rsmamba.models.layers import ConvBNReLU
from rsmamba.models.ss2d import Permute, VSSBlock
from rsmamba.models.registry import register_paper_preset
from rsmamba.models.registry import register_model
from rsmamba.models.vmamba import VMAMBA_CONFIGS, VMambaBackbone

__all__ = ["MambaFCS", "PAPER_INPUTS"]

# SECOND crops as the authors trained (batch 2 at 512; counted at batch 1).
PAPER_INPUTS = {"t1": (1, 3, 512, 512), "t2": (1, 3, 512, 512)}


class LinearSqueezeExcitation(nn.Module):
    """SE with ``nn.Linear`` layers (``squeeze``/``excitation``), as the authors' decoder has it;
    :class:`rsmamba.models.layers.SqueezeExcitation` is the 1x1-conv form."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.excitation = nn.Sequential(nn.Linear(channels, channels // reduction), nn.ReLU(inplace=True),
                                        nn.Linear(channels // reduction, channels), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        b, c = x.shape[:2]
        return x * self.excitation(self.squeeze(x).view(b, c)).view(b, c, 1, 1)


class ResBlock(nn.Module):
    """Basic residual block with squeeze-excitation (the decoders' "smooth" layers)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.se = LinearSqueezeExcitation(channels)

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(self.se(out) + x)


class _ChannelAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        # channels // reduction is 0 for the 2-class head, as in the authors' code: the gate is
        # then sigmoid(bias). Kept for checkpoint compatibility; silence torch's zero-size warning.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self.fc = nn.Sequential(nn.Linear(channels, channels // reduction), nn.ReLU(),
                                    nn.Linear(channels // reduction, channels), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        b, c = x.shape[:2]
        return (self.fc(x.mean((2, 3))) + self.fc(x.amax((2, 3)))).view(b, c, 1, 1)


class _SpatialAttention(nn.Module):
    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.conv(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))


class PyramidFusion(nn.Module):
    """1x1 / 3x3 / depth-wise 5x5 branches, channel + spatial attention, 1x1 fusion, residual."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        self.branch1 = ConvBNReLU(in_channels, out_channels, 1, bias=True)
        self.branch3 = ConvBNReLU(in_channels, out_channels, 3, bias=True)
        self.branch5 = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 5, padding=2, groups=in_channels),
            nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels), nn.ReLU(),
        )
        self.channel_att = _ChannelAttention(out_channels * 3)
        self.spatial_att = _SpatialAttention()
        self.final_conv = ConvBNReLU(out_channels * 3, out_channels, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        combined = torch.cat([self.branch1(x), self.branch3(x), self.branch5(x)], dim=1)
        weighted = combined * self.channel_att(combined)
        weighted = weighted * self.spatial_att(weighted)
        return self.final_conv(weighted) + self.shortcut(x)


class ChannelGate(nn.Module):
    """ECA: a 1-D convolution across pooled channels, kernel size from log2(C)."""

    def __init__(self, channels: int, gamma: int = 2, b: int = 1):
        super().__init__()
        k = int(abs((math.log2(channels) + b) / gamma))
        k = k if k % 2 else k + 1
        self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(F.adaptive_avg_pool2d(x, 1).flatten(2).transpose(1, 2))  # (B, 1, C)
        return x * torch.sigmoid(y).transpose(1, 2).unsqueeze(-1)


class SpatialGate(nn.Module):
    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.conv(torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1)))


class FFTBranch(nn.Module):
    """log(1 + |FFT2|) amplitude of each channel, projected by 1x1 conv-BN-ReLU (same H x W)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                  nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        amp = torch.log1p(torch.abs(torch.fft.fft2(x.float(), norm="ortho"))).to(x.dtype)
        return self.proj(amp)


class _UnusedCrossAttention(nn.Module):
    """Parameters of the authors' never-called ``FFT_Fusion.cross_attn`` (checkpoint compatibility)."""

    def __init__(self, dim: int):
        super().__init__()
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)


class JointSpatialFrequencyFusion(nn.Module):
    """JSF (the authors' ``FFT_Fusion``): [t1, fft(t1), t2, fft(t2), |t1-t2|] -> C, then ECA and spatial gates."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.fft_pre = FFTBranch(in_channels, in_channels)
        self.fft_post = FFTBranch(in_channels, in_channels)
        self.reduce_conv = nn.Conv2d(5 * in_channels, in_channels, 1, bias=False)
        self.reduce_bn = nn.BatchNorm2d(in_channels)
        self.reduce_relu = nn.ReLU(inplace=True)
        self.ch_gate = ChannelGate(in_channels)
        self.sp_gate = SpatialGate()
        self.cross_attn = _UnusedCrossAttention(in_channels)

    def forward(self, pre: Tensor, post: Tensor) -> Tensor:
        cat = torch.cat([pre, self.fft_pre(pre), post, self.fft_post(post), (pre - post).abs()], dim=1)
        fused = self.reduce_relu(self.reduce_bn(self.reduce_conv(cat)))
        return self.sp_gate(self.ch_gate(fused))


def change_guided_attention(features: Tensor, change_map: Tensor) -> Tensor:
    """CGA: semantic features gated by the sigmoid of the change features of the same stage."""
    return features * torch.sigmoid(change_map)


def semantic_guided_attention(change: Tensor, sem1: Tensor, sem2: Tensor) -> Tensor:
    """CGA's reverse direction: change features gated by how much the two dates' semantics disagree."""
    return change * torch.sigmoid((sem1 - sem2).abs())


CGA_MODES = ("bidirectional", "change_to_semantic")


def _vss(dim: int, channel_first: bool, block_kwargs: dict[str, Any]) -> nn.Sequential:
    # The authors wrap each decoder VSS block in permutes when the encoder is channel-last.
    return nn.Sequential(
        nn.Identity() if channel_first else Permute(0, 2, 3, 1),
        VSSBlock(dim, drop_path=0.1, channel_first=channel_first, **block_kwargs),
        nn.Identity() if channel_first else Permute(0, 3, 1, 2),
    )


def _upsample_add(x: Tensor, y: Tensor) -> Tensor:
    return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=False) + y


class ChangeDecoder(nn.Module):
    def __init__(self, dims: list[int], channel_first: bool, block_kwargs: dict[str, Any]):
        super().__init__()
        d1, d2, d3, d4 = dims
        self.st_block_41 = _vss(d4, channel_first, block_kwargs)
        self.st_block_31 = _vss(d3, channel_first, block_kwargs)
        self.st_block_21 = _vss(d2, channel_first, block_kwargs)
        self.st_block_11 = _vss(d1, channel_first, block_kwargs)
        self.fuse_layer_1 = JointSpatialFrequencyFusion(d4)
        self.fuse_layer_2 = JointSpatialFrequencyFusion(d3)
        self.fuse_layer_3 = JointSpatialFrequencyFusion(d2)
        self.fuse_layer_4 = JointSpatialFrequencyFusion(d1)
        self.down_sample_1 = PyramidFusion(d4, d3)
        self.down_sample_2 = PyramidFusion(d3, d2)
        self.down_sample_3 = PyramidFusion(d2, d1)
        self.smooth_layer_3 = ResBlock(d3)
        self.smooth_layer_2 = ResBlock(d2)
        self.smooth_layer_1 = ResBlock(d1)

    def forward(self, pre: list[Tensor], post: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """Returns the finest change features and the change maps finest-first (stage 1..4)."""
        p4 = self.st_block_41(self.fuse_layer_1(pre[3], post[3]))
        c4 = p4
        p3 = self.smooth_layer_3(_upsample_add(self.down_sample_1(p4), self.fuse_layer_2(pre[2], post[2])))
        p3 = c3 = self.st_block_31(p3)
        p2 = self.smooth_layer_2(_upsample_add(self.down_sample_2(p3), self.fuse_layer_3(pre[1], post[1])))
        p2 = c2 = self.st_block_21(p2)
        p1 = self.smooth_layer_1(_upsample_add(self.down_sample_3(p2), self.fuse_layer_4(pre[0], post[0])))
        p1 = c1 = self.st_block_11(p1)
        return p1, [c1, c2, c3, c4]


class SemanticDecoder(nn.Module):
    def __init__(self, dims: list[int], channel_first: bool, block_kwargs: dict[str, Any]):
        super().__init__()
        d1, d2, d3, d4 = dims
        self.st_block_4_semantic = _vss(d4, channel_first, block_kwargs)
        self.st_block_3_semantic = _vss(d3, channel_first, block_kwargs)
        self.st_block_2_semantic = _vss(d2, channel_first, block_kwargs)
        self.st_block_1_semantic = _vss(d1, channel_first, block_kwargs)
        self.down_sample_1 = PyramidFusion(d4, d3)
        self.down_sample_2 = PyramidFusion(d3, d2)
        self.down_sample_3 = PyramidFusion(d2, d1)
        self.smooth_layer_3_semantic = ResBlock(d3)
        self.smooth_layer_2_semantic = ResBlock(d2)
        self.smooth_layer_1_semantic = ResBlock(d1)
        self.smooth_layer_0_semantic = ResBlock(d1)

    def forward(self, feats: list[Tensor], change_maps: list[Tensor]) -> Tensor:
        f = [change_guided_attention(x, c) for x, c in zip(feats, change_maps)]
        p4 = self.down_sample_1(self.st_block_4_semantic(f[3]))
        p3 = self.st_block_3_semantic(self.smooth_layer_3_semantic(_upsample_add(p4, f[2])))
        p2 = self.st_block_2_semantic(self.smooth_layer_2_semantic(_upsample_add(self.down_sample_2(p3), f[1])))
        p1 = self.st_block_1_semantic(self.smooth_layer_1_semantic(_upsample_add(self.down_sample_3(p2), f[0])))
        return self.smooth_layer_0_semantic(p1)


class MambaFCS(nn.Module):
    """``forward(t1, t2) -> {"change": (B,2,H,W), "sem1": (B,C,H,W), "sem2": (B,C,H,W)}`` logits."""

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 7,
        backbone: str = "vmamba_base_0229",
        cga: str = "bidirectional",
        unchanged_row: bool = False,
        **backbone_overrides: Any,
    ):
        super().__init__()
        if cga not in CGA_MODES:
            raise ValueError(f"cga must be one of {CGA_MODES}, not {cga!r}")
        self.cga = cga
        self.input_multiple = 32  # four stride-2 stages after the stride-4 stem; no fixed size
        self.fixed_input_size: tuple[int, int] | None = None
        cfg = {**VMAMBA_CONFIGS[backbone], **backbone_overrides}
        self.in_chans, self.num_classes = in_chans, num_classes
        self.encoder = VMambaBackbone(in_chans=in_chans, **cfg)
        dims = self.encoder.dims
        cf = self.encoder.channel_first
        block_kwargs = dict(
            ssm_d_state=cfg["ssm_d_state"], ssm_ratio=cfg["ssm_ratio"], ssm_dt_rank=cfg.get("ssm_dt_rank", "auto"),
            ssm_conv=cfg["ssm_conv"], ssm_conv_bias=cfg["ssm_conv_bias"], forward_type=cfg["forward_type"],
            mlp_ratio=cfg["mlp_ratio"],
        )
        self.decoder_bcd = ChangeDecoder(dims, cf, block_kwargs)
        self.decoder_T1 = SemanticDecoder(dims, cf, block_kwargs)
        self.decoder_T2 = SemanticDecoder(dims, cf, block_kwargs)
        self.main_clf_cd = PyramidFusion(dims[0], 2)
        # unchanged_row: the authors' SECOND head, num_classes + 1 outputs whose row 0 is SECOND's "unchanged"
        # (never a target: their loss ignores label 0); its rows mix inside the head, so it is kept whole and
        # forward returns rows 1.. only (rsmamba.train.authors maps their weights to it)
        self.unchanged_row = bool(unchanged_row)
        self.aux_clf = PyramidFusion(dims[0], num_classes + self.unchanged_row)

    def forward(self, t1: Tensor, t2: Tensor) -> dict[str, Tensor]:
        size = t1.shape[-2:]
        pre, post = self.encoder(t1), self.encoder(t2)
        change, change_maps = self.decoder_bcd(pre, post)
        sem1 = self.decoder_T1(pre, change_maps)
        sem2 = self.decoder_T2(post, change_maps)
        if self.cga == "bidirectional":
            change = semantic_guided_attention(change, sem1, sem2)

        def up(x: Tensor) -> Tensor:
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

        first = int(self.unchanged_row)
        return {"change": up(self.main_clf_cd(change)), "sem1": up(self.aux_clf(sem1)[:, first:]),
                "sem2": up(self.aux_clf(sem2)[:, first:])}


@register_model("mambafcs", task="semantic-change", inputs="t1+t2", paper="Mamba-FCS (seed 002)",
                in_chans=3, num_classes=7)
def mambafcs(**kwargs: Any) -> MambaFCS:
    """Paper configuration: VMamba-B 0229 Siamese encoder, SECOND's 7 classes."""
    return MambaFCS(**kwargs)


@register_model("mambafcs_tiny", task="semantic-change", inputs="t1+t2", paper="Mamba-FCS (seed 002), tiny",
                in_chans=3, num_classes=7)
def mambafcs_tiny(**kwargs: Any) -> MambaFCS:
    """Same structure, tiny widths, one block per stage: for tests and CPU demos."""
    kwargs.setdefault("backbone", "vmamba_test_cl")
    return MambaFCS(**kwargs)


# The paper gives no parameter count; the authors' module definitions hold 206,148,071 (their state dict's
# tensors, which ours loads).
register_paper_preset("mambafcs", inputs=PAPER_INPUTS, code_params=206_148_071)
