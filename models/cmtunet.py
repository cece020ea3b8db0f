"""CMT-UNet (XUE-YYC/CMT-UNet): a ResNet branch and a VMamba branch fused at every stage,
decoded by a UNetFormer decoder whose convolutions are wavelet convolutions.

Structure, as in the authors' module definitions (not their README):

* CNN branch: ResNet-50 (paper) stages at strides 4..32.
* VSS branch: 7x7 stride-2 stem (48 ch, InstanceNorm), 2x2 patch embedding to 96 ch, four
  VSS layers (SS2D v0) of depths (2, 2, 9, 2), Haar-wavelet downsampling between them.
* Fusion per stage: window attention on the CNN feature whose local branch reads the VSS
  feature (:class:`~rsmamba.models.window_attention.GlobalLocalAttention`) + MLP; the fused map
  feeds the next ResNet stage and the decoder.
* Decoder: UNetFormer (width 64) with global-local attention + ECA blocks, weighted fusion of
  skips, Feature Refinement Head; its 3x3 ConvBNReLUs are depthwise WTConvs.

Three options follow the seed (the authors' README), which describes more than their code:

* ``msaa`` (default True): the three skips pass through MSAA (multi-scale attention over the
  1x, 1/2x, 1/4x skips, as in CM-UNet / FMTUNet) before the decoder. The authors' code has an
  ``MSAA.py`` that nothing imports.
* ``rcm`` (default True): a Region-aware Convolution Module after each stage's fusion, whose
  rectangular cross-scale attention (row and column context of the VSS feature, strip
  convolutions) calibrates the CNN feature. The seed names RCM and credits it with 3.7 mIoU but
  does not define it, and the authors' code has no RCM: ours follows the published RCM of
  CGRSeg (rectangular self-calibration), with the attention read from the VSS branch.
* ``wavelet`` (default ``"db4"``, the seed's ``WAVELET_TYPE``): the WTConv wavelet; the authors'
  code uses db1 (Haar). No parameter depends on it.

``msaa=False, rcm=False, wavelet="haar"`` is the structure of the authors' module definitions (the shipped
demo checkpoints use our defaults: MSAA and RCM, db4).

``forward(image)``; a DSM is passed as an extra band (``in_chans``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from rsmamba.models.layers import ECA, MSAA, FeatureRefinementHead, per_stage
from rsmamba.models.registry import register_model
from rsmamba.models.resnet import ResNet
from rsmamba.models.vmamba import vmamba_init
from rsmamba.models.vss import VSSBlocks
from rsmamba.models.wavelet import WAVELETS, HaarDownsample, SeparableWTConv2d, WTConv2d
from rsmamba.models.window_attention import GlobalLocalAttention

PAPER = "CMT-UNet: CNN-Mamba-Transformer UNet (XUE-YYC/CMT-UNet)"


class WTConvBNReLU(nn.Sequential):
    """The authors' ConvBNReLU: a depthwise WTConv (k=3), BatchNorm, ReLU6 (channels unchanged)."""

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__(WTConv2d(channels, kernel_size), nn.BatchNorm2d(channels), nn.ReLU6())


class ConvMlp(nn.Module):
    """1x1-conv MLP with ReLU6."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.ReLU6()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DecoderBlock(nn.Module):
    """UNetFormer block: BN -> (global-local attention + ECA) -> residual, BN -> MLP -> residual."""

    def __init__(self, dim: int, num_heads: int, window_size: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = GlobalLocalAttention(dim, num_heads, window_size)
        self.eca = ECA(3)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm1(x)
        x = x + self.attn(y) + self.eca(y)
        return x + self.mlp(self.norm2(x))


class FusionBlock(nn.Module):
    """CNN x VSS fusion: window attention from the CNN feature, local branch from the VSS one."""

    def __init__(self, dim: int, ssm_dim: int, num_heads: int, window_size: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.normx = nn.BatchNorm2d(dim)
        self.normy = nn.BatchNorm2d(ssm_dim)
        self.attn = GlobalLocalAttention(dim, num_heads, window_size, local_channels=ssm_dim)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        x = x + self.attn(self.normx(x), self.normy(y))
        return x + self.mlp(self.norm2(x))


class RCM(nn.Module):
    """Region-aware Convolution Module with rectangular cross-scale attention (after CGRSeg's RCM).

    The VSS feature, projected to the CNN width, is pooled along rows and along columns; their
    broadcast sum (a rectangular, image-scale context) goes through a 1xk and a kx1 depthwise
    strip convolution (BN + ReLU between) and a sigmoid. That map gates a depthwise 3x3 (pixel
    scale) of the CNN feature; BN, a 1x1 MLP and a residual follow.
    """

    def __init__(self, dim: int, ssm_dim: int, kernel_size: int = 11, mlp_ratio: float = 1.0) -> None:
        super().__init__()
        self.proj_y = nn.Conv2d(ssm_dim, dim, 1, bias=False)
        self.strip_w = nn.Conv2d(dim, dim, (1, kernel_size), padding=(0, kernel_size // 2), groups=dim)
        self.strip_norm = nn.BatchNorm2d(dim)
        self.strip_h = nn.Conv2d(dim, dim, (kernel_size, 1), padding=(kernel_size // 2, 0), groups=dim)
        self.local = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, max(int(dim * mlp_ratio), 1))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        y = self.proj_y(y)
        context = y.mean(dim=2, keepdim=True) + y.mean(dim=3, keepdim=True)  # (B, C, H, W) by broadcast
        attention = torch.sigmoid(self.strip_h(F.relu(self.strip_norm(self.strip_w(context)))))
        return x + self.mlp(self.norm(attention * self.local(x)))


def weighted_sum(pre_conv: nn.Module, weights: Tensor, x: Tensor, skip: Tensor) -> Tensor:
    """UNetFormer's fusion: upsample x to the skip, ReLU-normalised weighted sum with the projected skip."""
    x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
    w = F.relu(weights)
    w = w / (w.sum() + 1e-8)
    return w[0] * pre_conv(skip) + w[1] * x


class WeightedFusion(nn.Module):
    """UNetFormer WF: upsample x2, ReLU-normalised weighted sum with the 1x1-projected skip, WTConvBNReLU."""

    def __init__(self, skip_channels: int, channels: int) -> None:
        super().__init__()
        self.pre_conv = nn.Conv2d(skip_channels, channels, 1, bias=False)
        self.weights = nn.Parameter(torch.ones(2))
        self.post_conv = WTConvBNReLU(channels)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.post_conv(weighted_sum(self.pre_conv, self.weights, x, skip))


class FusedRefinementHead(FeatureRefinementHead):
    """UNetFormer FRH as CMT-UNet's last decoder stage: weighted fusion with the skip, then the
    refinement head with wavelet convolutions (WTConvBNReLU first, separable WTConv projection)."""

    def __init__(self, skip_channels: int, channels: int) -> None:
        super().__init__(channels, proj=SeparableWTConv2d(channels, channels, 3), pre=WTConvBNReLU(channels))
        self.pre_conv = nn.Conv2d(skip_channels, channels, 1, bias=False)
        self.weights = nn.Parameter(torch.ones(2))

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(weighted_sum(self.pre_conv, self.weights, x, skip))


class UNetFormerDecoder(nn.Module):
    """Decoder of UNetFormer with CMT-UNet's wavelet convolutions; logits at 1/4 of the input."""

    def __init__(
        self, encoder_channels: list[int], channels: int, num_heads: int, window_size: int, num_classes: int, dropout: float
    ) -> None:
        super().__init__()
        self.pre_conv = nn.Sequential(nn.Conv2d(encoder_channels[-1], channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.b4 = DecoderBlock(channels, num_heads, window_size)
        self.p3 = WeightedFusion(encoder_channels[-2], channels)
        self.b3 = DecoderBlock(channels, num_heads, window_size)
        self.p2 = WeightedFusion(encoder_channels[-3], channels)
        self.b2 = DecoderBlock(channels, num_heads, window_size)
        self.p1 = FusedRefinementHead(encoder_channels[-4], channels)
        self.segmentation_head = nn.Sequential(
            WTConvBNReLU(channels), nn.Dropout2d(dropout), nn.Conv2d(channels, num_classes, 1, bias=False)
        )

    def forward(self, feats: list[Tensor]) -> Tensor:
        res1, res2, res3, res4 = feats
        x = self.b4(self.pre_conv(res4))
        x = self.b3(self.p3(x, res3))
        x = self.b2(self.p2(x, res2))
        return self.segmentation_head(self.p1(x, res1))


class VSSEncoder(nn.Module):
    """The VSS branch: conv stem, patch embedding, VSS layers with Haar downsampling."""

    def __init__(self, in_chans: int, stem_channels: int, dims: list[int], depths: list[int], drop_path: float) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, stem_channels, 7, 2, 3), nn.InstanceNorm2d(stem_channels, affine=True)
        )
        self.patch_embed = nn.Conv2d(stem_channels, dims[0], 2, 2)
        self.patch_norm = nn.LayerNorm(dims[0])
        total = sum(depths)
        rates = [drop_path * i / max(total - 1, 1) for i in range(total)]  # linear stochastic depth
        self.layers = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            start = sum(depths[:i])
            self.layers.append(VSSBlocks(dim, depth, drop_path=rates[start : start + depth]))
            if i < len(dims) - 1:
                self.downsamples.append(HaarDownsample(dim))
        self.apply(vmamba_init)  # the authors' VSSMEncoder does (SwinUMamba.py): Linear std 0.02, LayerNorm 1/0

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.patch_norm(self.patch_embed(self.stem(x)).permute(0, 2, 3, 1))
        outs = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            outs.append(x.permute(0, 3, 1, 2).contiguous())
            if i < len(self.downsamples):
                x = self.downsamples[i](x)
        return outs


class CMTUNet(nn.Module):
    """CMT-UNet. ``forward(image) -> logits (B, num_classes, H, W)``."""

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 6,
        resnet_depth: int = 50,
        resnet_width: int = 64,
        stem_channels: int = 48,
        vss_dims: tuple[int, ...] = (96, 192, 384, 768),
        vss_depths: tuple[int, ...] = (2, 2, 9, 2),
        fusion_heads: int = 16,
        decode_channels: int = 64,
        decoder_heads: int = 8,
        window_size: int = 8,
        dropout: float = 0.1,
        drop_path: float = 0.2,
        msaa: bool = True,
        rcm: bool = True,
        wavelet: str = "db4",
    ) -> None:
        super().__init__()
        self.input_multiple = 32  # ResNet and VSS branches both reach stride 32; windows pad inside
        self.fixed_input_size: tuple[int, int] | None = None
        self.backbone = ResNet(resnet_depth, in_chans, resnet_width)
        channels = self.backbone.channels
        vss_dims = per_stage("vss_dims", vss_dims, len(channels))  # one VSS stage fused into each ResNet stage
        vss_depths = per_stage("vss_depths", vss_depths, len(channels))
        self.vss_encoder = VSSEncoder(in_chans, stem_channels, list(vss_dims), list(vss_depths), drop_path)
        self.fuse = nn.ModuleList(
            FusionBlock(c, s, fusion_heads, window_size) for c, s in zip(channels, vss_dims)
        )
        self.rcm = nn.ModuleList(RCM(c, s) for c, s in zip(channels, vss_dims)) if rcm else None
        self.msaa = nn.ModuleList(MSAA(sum(channels[:3]), c) for c in channels[:3]) if msaa else None
        self.decoder = UNetFormerDecoder(channels, decode_channels, decoder_heads, window_size, num_classes, dropout)
        if wavelet not in WAVELETS:
            raise ValueError(f"wavelet must be one of {WAVELETS}, not {wavelet!r}")
        for module in self.modules():  # every WTConv (decoder and fusion projections) uses it
            if isinstance(module, WTConv2d):
                module.wavelet = wavelet

    def forward(self, image: Tensor) -> Tensor:
        h, w = image.shape[-2:]
        ph, pw = (-h) % self.input_multiple, (-w) % self.input_multiple
        if ph or pw:  # both branches reach stride 32 (a 130 px crop met 33 vs 32 there): pad, crop the logits
            image = F.pad(image, (0, pw, 0, ph), mode="replicate")
        vss_feats = self.vss_encoder(image)
        x = self.backbone.stem(image)
        feats = []
        for i, (stage, fuse, y) in enumerate(zip(self.backbone.stages(), self.fuse, vss_feats)):
            x = fuse(stage(x), y)
            if self.rcm is not None:
                x = self.rcm[i](x, y)
            feats.append(x)
        if self.msaa is not None:
            skips = feats[:3]
            feats = [m(skips, s.shape[-2:]) for m, s in zip(self.msaa, skips)] + feats[3:]
        logits = self.decoder(feats)
        logits = F.interpolate(logits, size=(h + ph, w + pw), mode="bilinear", align_corners=False)
        return logits[..., :h, :w]


_TINY: dict[str, Any] = dict(
    resnet_depth=18,
    resnet_width=8,
    stem_channels=8,
    vss_dims=(8, 16, 32, 64),
    vss_depths=(1, 1, 1, 1),
    fusion_heads=2,
    decode_channels=16,
    decoder_heads=2,
    window_size=4,
    dropout=0.0,
    drop_path=0.0,
)


@register_model("cmtunet", task="segmentation", inputs="image", paper=PAPER, in_chans=3, num_classes=6)
def cmtunet(**kwargs: Any) -> CMTUNet:
    """Seed preset: ResNet-50 + VSS (96..768, depths 2-2-9-2), decoder width 64, MSAA, RCM, db4 WTConv."""
    return CMTUNet(**kwargs)


@register_model("cmtunet_tiny", task="segmentation", inputs="image", paper=PAPER, in_chans=3, num_classes=6)
def cmtunet_tiny(**kwargs: Any) -> CMTUNet:
    """Tiny preset for tests and CPU demos (ResNet-18 at width 8, one VSS block per stage)."""
    return CMTUNet(**{**_TINY, **kwargs})


def authors_parameter_count(model: nn.Module) -> int:
    """Parameters as the authors' code holds them: theirs keeps the two Haar filter banks of every
    WTConv2d as (frozen) ``nn.Parameter``s, 2 x (4C x 1 x 2 x 2); ours computes them in closed form."""
    frozen = sum(32 * m.base_conv.in_channels for m in model.modules() if isinstance(m, WTConv2d))
    return sum(p.numel() for p in model.parameters()) + frozen


# The paper gives no parameter count. The authors' module definitions hold 135,460,007 (their frozen Haar
# filters included, see authors_parameter_count); inputs as their RS3Mamba-lineage recipe: 256 px crops.
from rsmamba.models.registry import register_paper_preset  # noqa: E402

register_paper_preset("cmtunet", inputs={"image": (1, 3, 256, 256)}, code_params=135_460_007,
                      overrides=dict(msaa=False, rcm=False, wavelet="haar"))
