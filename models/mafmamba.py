"""MAFMamba: ResNet-18 + Adaptive Multi-scale Mamba Blocks, MSCAF skips, GLMamba + ASF decoder.

No public code exists; this follows the paper (seed 003). Every choice the paper leaves open
is written down in ``docs/mafmamba-choices.md``; ``docs/models.md`` maps each paper module to
its code. Widths come from the paper (ResNet-18's 64/128/256/512, 16 weight channels) and from
UNetFormer, whose FRH and head the paper reuses (decoder width 64); they are not tuned to a count.

* Encoder (progressive): stem -> layer1 -> AMMB_1 -> layer2 -> AMMB_2 -> layer3 -> AMMB_3 ->
  layer4 -> AMMB_4; each AMMB's output is the next residual block's input ("an AMMB is inserted
  after each residual block"). AMMB_i = e_i + VSSBlocks(MSAF_i(...)), where MSAF_i fuses every
  level: the AMMB outputs of the earlier stages, the current e_i and, for the not-yet-computed
  lower-resolution levels, a look-ahead through the plain residual blocks (``lookahead=True``;
  see the docs for why). Lower-resolution inputs are aligned by a strided 3x3 conv then
  bilinear upsampling, as the paper says.
* MSCAF: pairwise efficient (linear) cross-attention among the AMMB outputs of stages 1-3;
  each stage concatenates itself with what it read from the others, 1x1 conv.
* Decoder: 1x1 to ``decode_channels`` at stage 4, GLMamba; ASF with the MSCAF output of stage
  3, GLMamba; ASF with stage 2, GLMamba; ASF with stage 1 (ASF fuses all three MSCAF outputs);
  Feature Refinement Head (spatial + channel refinement); segmentation head; bilinear to the
  input size.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from rsmamba.models.layers import (
    CBAM, ConvBNReLU, CoordinateAttention, FeatureRefinementHead, SeparableConvBN, at_least_one, efficient_attention,
    per_stage,
)
from rsmamba.models.registry import register_model
from rsmamba.models.resnet import ResNet
from rsmamba.models.vss import VSSBlocks

PAPER = "MAFMamba: multi-scale adaptive fusion visual Mamba for remote sensing segmentation (seed 003)"


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    return x if x.shape[-2:] == size else F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class MSAF(nn.Module):
    """Multi-scale Adaptive Fusion towards stage ``target``.

    Align: 1x1 conv then bilinear down for higher resolutions, 1x1 conv for the target's own,
    a strided 3x3 conv-BN-ReLU then bilinear up for lower resolutions (the paper's wording).
    Weight features: depthwise-separable conv + BN + ReLU, 1x1 to ``weight_channels``.
    Coordinate attention on their concatenation gives one map per scale; softmax across
    scales; weighted sum; 3x3 conv-BN-ReLU.
    """

    def __init__(self, channels: list[int], target: int, weight_channels: int = 16, lower_stride: int = 2) -> None:
        super().__init__()
        c = channels[target]
        self.target = target
        self.align = nn.ModuleList(
            ConvBNReLU(ch, c, 3, stride=lower_stride) if j > target else nn.Conv2d(ch, c, 1, bias=False)
            for j, ch in enumerate(channels)
        )
        self.weight_feats = nn.ModuleList(
            nn.Sequential(SeparableConvBN(c, c, 3), nn.Conv2d(c, weight_channels, 1)) for _ in channels
        )
        n = len(channels)
        self.coord_attention = CoordinateAttention(weight_channels * n, out_channels=n, reduction=8)
        self.fuse = ConvBNReLU(c, c, 3)

    def forward(self, feats: list[Tensor]) -> Tensor:
        size = feats[self.target].shape[-2:]
        aligned = [_resize(align(f), size) for align, f in zip(self.align, feats)]
        weights = self.coord_attention(torch.cat([w(a) for w, a in zip(self.weight_feats, aligned)], dim=1))
        weights = weights.softmax(dim=1)
        fused = sum(weights[:, j : j + 1] * a for j, a in enumerate(aligned))
        return self.fuse(fused)  # type: ignore[arg-type]


class AMMB(nn.Module):
    """Adaptive Multi-scale Mamba Block: MSAF -> VSSBlocks, plus the stage's own feature."""

    def __init__(self, channels: list[int], target: int, depth: int, d_state: int, weight_channels: int = 16) -> None:
        super().__init__()
        self.msaf = MSAF(channels, target, weight_channels)
        self.vss = VSSBlocks(channels[target], depth, d_state, channel_first=True)

    def forward(self, feats: list[Tensor], target: int) -> Tensor:
        return feats[target] + self.vss(self.msaf(feats))


class MSCAF(nn.Module):
    """Multi-Scale Cross-Attention Fusion among three stages (efficient attention, linear cost).

    For every ordered pair (i <- j): q = 1x1(f_i) and k = 1x1(f_j) with C_i / ``reduction``
    channels, v = 1x1(f_j) with C_i channels; f_i' = ConvBNReLU1x1(concat(f_i, out_ij, out_ik)).
    """

    def __init__(self, channels: list[int], reduction: int = 8, heads: int = 1) -> None:
        super().__init__()
        self.heads = heads
        n = len(channels)
        self.pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
        self.q = nn.ModuleDict()
        self.k = nn.ModuleDict()
        self.v = nn.ModuleDict()
        for i, j in self.pairs:
            dk = max(channels[i] // reduction, heads)
            self.q[f"{i}{j}"] = nn.Conv2d(channels[i], dk, 1)
            self.k[f"{i}{j}"] = nn.Conv2d(channels[j], dk, 1)
            self.v[f"{i}{j}"] = nn.Conv2d(channels[j], channels[i], 1)
        self.fuse = nn.ModuleList(ConvBNReLU(c * n, c, 1) for c in channels)

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        gathered: list[list[Tensor]] = [[f] for f in feats]
        for i, j in self.pairs:
            key = f"{i}{j}"
            b, _, h, w = feats[i].shape
            out = efficient_attention(
                self.q[key](feats[i]).flatten(2), self.k[key](feats[j]).flatten(2), self.v[key](feats[j]).flatten(2), self.heads
            )
            gathered[i].append(out.reshape(b, -1, h, w))
        return [fuse(torch.cat(parts, dim=1)) for fuse, parts in zip(self.fuse, gathered)]


class GLMamba(nn.Module):
    """Global-Local Mamba block.

    Local: 1x1 bottleneck expanding x``expand`` (conv-BN-ReLU), dilated pyramid (rates 1, 2, 3, 6;
    3x3 conv-BN-ReLU each), concat, 1x1. Global: VSSBlocks. Fusion: GAP of the concat, two 1x1
    convs (ReLU between) to 2 logits, softmax weights; CBAM; depthwise-separable conv-BN; residual.
    """

    def __init__(self, dim: int, depth: int, d_state: int, expand: int = 2, rates: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        hidden = dim * expand
        self.bottleneck = ConvBNReLU(dim, hidden, 1)
        self.pyramid = nn.ModuleList(ConvBNReLU(hidden, dim, 3, dilation=r) for r in rates)
        self.local_proj = nn.Conv2d(dim * len(rates), dim, 1, bias=False)
        self.vss = VSSBlocks(dim, depth, d_state, channel_first=True)
        self.weights = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(2 * dim, dim // 4, 1), nn.ReLU(inplace=True), nn.Conv2d(dim // 4, 2, 1)
        )
        self.cab = CBAM(dim, reduction=4)
        self.proj = SeparableConvBN(dim, dim, 3, act=False)

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.bottleneck(x)
        local = self.local_proj(torch.cat([conv(hidden) for conv in self.pyramid], dim=1))
        glob = self.vss(x)
        w = self.weights(torch.cat([local, glob], dim=1)).softmax(dim=1)
        fused = w[:, :1] * local + w[:, 1:] * glob
        return x + self.proj(self.cab(fused))


class ASF(nn.Module):
    """Adaptive Scale Fusion: two softmax pixel-weight maps between the upsampled low-resolution
    decoder map and the (1x1-projected) high-resolution skip, then 3x3 conv-BN-ReLU."""

    def __init__(self, skip_channels: int, dim: int) -> None:
        super().__init__()
        self.skip_proj = nn.Conv2d(skip_channels, dim, 1, bias=False)
        self.attention = nn.Sequential(ConvBNReLU(2 * dim, dim // 2, 3), nn.Conv2d(dim // 2, 2, 1))
        self.post = ConvBNReLU(dim, dim, 3)

    def forward(self, low: Tensor, skip: Tensor) -> Tensor:
        high = self.skip_proj(skip)
        low = _resize(low, high.shape[-2:])
        w = self.attention(torch.cat([low, high], dim=1)).softmax(dim=1)
        return self.post(w[:, :1] * low + w[:, 1:] * high)


class MAFMamba(nn.Module):
    """MAFMamba. ``forward(image) -> logits (B, num_classes, H, W)``."""

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 6,
        resnet_width: int = 64,
        resnet_depth: int = 18,
        encoder_depths: tuple[int, int, int, int] = (2, 2, 2, 2),
        decode_channels: int = 64,
        decoder_depth: int = 1,
        d_state: int = 16,
        mscaf_reduction: int = 8,
        weight_channels: int = 16,
        lookahead: bool = True,
        dropout: float = 0.1,
        frh_norm: str = "between",
    ) -> None:
        """``frh_norm``: where the refinement head's projection normalises, ``between`` its depthwise and
        pointwise convolutions (UNetFormer's SeparableConvBN) or ``after`` them (rsmamba before 2026-12-05:
        its checkpoints load with it, :func:`rsmamba.checkpoint.legacy_model_kwargs`)."""
        super().__init__()
        if frh_norm not in ("between", "after"):
            raise ValueError(f"frh_norm {frh_norm!r}: 'between' or 'after'")
        encoder_depths = per_stage("encoder_depths", encoder_depths, 4)  # one AMMB per ResNet stage
        weight_channels = at_least_one("weight_channels", weight_channels)
        # resnet_depth: 18 is the paper's model; its Table 6 also reports ResNet-50 (108.55 G).
        self.backbone = ResNet(resnet_depth, in_chans, resnet_width)
        ch = self.backbone.channels
        self.lookahead = lookahead
        self.input_multiple = 32  # five stride-2 steps (stem conv, max-pool, layers 2-4)
        self.fixed_input_size: tuple[int, int] | None = None
        # AMMB_i fuses all four levels with the look-ahead, else the levels 1..i computed so far.
        self.ammb = nn.ModuleList(
            AMMB(ch if lookahead else ch[: i + 1], i, encoder_depths[i], d_state, weight_channels) for i in range(4)
        )
        self.mscaf = MSCAF(ch[:3], mscaf_reduction)
        d = decode_channels
        self.pre_conv = ConvBNReLU(ch[3], d, 1, act="none")
        self.gl4 = GLMamba(d, decoder_depth, d_state)
        self.asf3 = ASF(ch[2], d)
        self.gl3 = GLMamba(d, decoder_depth, d_state)
        self.asf2 = ASF(ch[1], d)
        self.gl2 = GLMamba(d, decoder_depth, d_state)
        self.asf1 = ASF(ch[0], d)
        self.frh = FeatureRefinementHead(  # UNetFormer's FRH without its skip input (ASF fused stage 1)
            d, proj=SeparableConvBN(d, d, 3, act=False, norm_between=frh_norm == "between"),
            pre=ConvBNReLU(d, d, 3, act="relu6"))
        self.segmentation_head = nn.Sequential(
            ConvBNReLU(d, d, 3, act="relu6"), nn.Dropout2d(dropout), nn.Conv2d(d, num_classes, 1, bias=False)
        )

    def encode(self, image: Tensor) -> list[Tensor]:
        """The four AMMB outputs (strides 4, 8, 16, 32), each AMMB feeding the next residual block."""
        stages = self.backbone.stages()
        x = self.backbone.stem(image)
        outs: list[Tensor] = []
        for i, (stage, ammb) in enumerate(zip(stages, self.ammb)):
            e = stage(x)
            levels = [*outs, e]
            if self.lookahead:  # plain residual blocks give the lower-resolution levels not computed yet
                ahead = e
                for later in stages[i + 1 :]:
                    ahead = later(ahead)
                    levels.append(ahead)
            x = ammb(levels, i)
            outs.append(x)
        return outs

    def forward(self, image: Tensor) -> Tensor:
        h, w = image.shape[-2:]
        feats = self.encode(image)
        s1, s2, s3 = self.mscaf(feats[:3])
        x = self.gl4(self.pre_conv(feats[3]))
        x = self.gl3(self.asf3(x, s3))
        x = self.gl2(self.asf2(x, s2))
        x = self.segmentation_head(self.frh(self.asf1(x, s1)))
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


_TINY: dict[str, Any] = dict(
    resnet_width=8, encoder_depths=(1, 1, 1, 1), decode_channels=16, decoder_depth=1, d_state=4, mscaf_reduction=4, dropout=0.0
)


@register_model("mafmamba", task="segmentation", inputs="image", paper=PAPER, in_chans=3, num_classes=6)
def mafmamba(**kwargs: Any) -> MAFMamba:
    """Paper preset: ResNet-18 (``resnet_depth=50``: the paper's Table 6 variant), AMMB VSS depths (2,2,2,2)
    (not in the paper), decoder width 64 (UNetFormer)."""
    return MAFMamba(**kwargs)


@register_model("mafmamba_tiny", task="segmentation", inputs="image", paper=PAPER, in_chans=3, num_classes=6)
def mafmamba_tiny(**kwargs: Any) -> MAFMamba:
    """Tiny preset for tests and CPU demos (ResNet-18 at width 8, one VSS block everywhere)."""
    return MAFMamba(**{**_TINY, **kwargs})


# The paper reports 29.39 M parameters and 56.19 "GFLOPs" without an input size. Its own tables fix the
# convention: thop MACs at 1024 x 1024 (its AfaMamba row is 4 x the thop count at 512^2 printed in
# AfaMamba's code; its ResNet-50 row adds what the backbone swap costs at 1024^2). Our preset does not
# match it (151.76 GMACs at 1024^2): see docs/models.md and bench/mafmamba_macs.py.
from rsmamba.models.registry import register_paper_preset  # noqa: E402

register_paper_preset("mafmamba", inputs={"image": (1, 3, 1024, 1024)}, reported_params=29.39e6,
                      reported_gflops=56.19, count_style="all")
