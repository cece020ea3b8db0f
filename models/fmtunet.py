"""FMTUNet (nssnveban/FMTUNet): optical + DSM segmentation, an edit of FTransUNet.

* Two ResNetV2-50 streams (StdConv + GroupNorm): optical and DSM.
* Synergistic Mamba Fusion (SMF) at four points (root, block1, block2, block3): SE recalibration,
  then :class:`JointMambaFusion` — the two modalities side by side and stacked, subsampled 2x,
  scanned in four directions by four 1-D Mambas. Its output replaces the optical stream only.
* Global Modeling Module: ViT-B on 1x1 patches of both streams at 1/16 (12 layers, 768-d);
  layers 4-9 are Hybrid Deformable Attention blocks (self-attention per modality mixed with a
  deformable cross-attention by a learned gate). Output tokens x + y.
* Decoder: conv to 512, three MSAA skip fusions, four upsampling blocks (256, 128, 64, 16), 3x3 head.

``forward(image, aux)`` with ``aux`` the DSM (B, dsm_chans, H, W) or (B, H, W).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from rsmamba.models.mamba1d import Mamba
from rsmamba.models.deformable import DeformableCrossAttention
from rsmamba.models.layers import MSAA, ConvBNReLU, SqueezeExcitation, per_stage
from rsmamba.models.registry import register_model
from rsmamba.models.resnet import ResNetV2

PAPER = "FMTUNet: Mamba-Transformer fusion of optical and DSM data (nssnveban/FMTUNet)"


class JointMambaFusion(nn.Module):
    """SMF core: four directional 1-D Mamba scans over the two modalities laid out jointly.

    Both maps are subsampled by 2; the horizontal layout puts them side by side (h, 2w), the
    vertical one stacks them (2h, w). Forward/backward scans of each layout go through their own
    Mamba (the backward ones on every second token, linearly re-interpolated, as the authors do).
    Merged back per modality, upsampled, and ``a_enh + b_enh + a + b`` is returned.
    """

    def __init__(self, channels: int, d_state: int = 16, d_conv: int = 4, expand: int = 2) -> None:
        super().__init__()
        self.mamba_layers = nn.ModuleList(Mamba(channels, d_state=d_state, d_conv=d_conv, expand=expand) for _ in range(4))

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        _, c, h, w = a.shape
        a2, b2 = a[:, :, ::2, ::2], b[:, :, ::2, ::2]
        h2, w2 = a2.shape[-2:]
        horizontal = torch.cat([a2, b2], dim=3).flatten(2).transpose(1, 2)  # (B, L, C) row-major over (h2, 2w2)
        vertical = torch.cat([a2, b2], dim=2).transpose(2, 3).flatten(2).transpose(1, 2)  # column-major (2h2, w2)
        outs = []
        for i, seq in enumerate((horizontal, horizontal.flip(1), vertical, vertical.flip(1))):
            if i in (1, 3):  # backward scans on every second token, re-interpolated to full length
                length = seq.shape[1]
                y = self.mamba_layers[i](seq[:, ::2])
                y = F.interpolate(y.transpose(1, 2), size=length, mode="linear", align_corners=False).transpose(1, 2)
            else:
                y = self.mamba_layers[i](seq)
            outs.append(y)
        hor = (outs[0] + outs[1].flip(1)).transpose(1, 2).reshape(-1, c, h2, 2 * w2)
        ver = (outs[2] + outs[3].flip(1)).transpose(1, 2).reshape(-1, c, w2, 2 * h2).transpose(2, 3)
        a_enh = hor[..., :w2] + ver[:, :, :h2]
        b_enh = hor[..., w2:] + ver[:, :, h2:]
        joint = F.interpolate(a_enh + b_enh, size=(h, w), mode="bilinear", align_corners=False)
        return joint + a + b


class SEFusion(nn.Module):
    """One SE per modality (``se_rgb``, ``se_depth``), as SqueezeAndExciteFusionAdd."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.se_rgb = SqueezeExcitation(channels, 16)
        self.se_depth = SqueezeExcitation(channels, 16)


class DualResNetV2(nn.Module):
    """Optical and DSM ResNetV2 streams with SMF at the root and after each block.

    At the root and the last block both SE outputs mix the modalities (x' = SE_rgb(x)+SE_d(y),
    y' = SE_rgb(y)+SE_d(x)); after blocks 1-2 each modality gets its own SE. Returns the fused
    optical 1/16 map, the DSM 1/16 map and the skips [block2, block1, root].
    """

    def __init__(self, in_chans: int, dsm_chans: int, units: tuple[int, ...], width: int, pool_padding: int = 1) -> None:
        super().__init__()
        self.optical = ResNetV2(in_chans, units, width, pool_padding)
        self.dsm = ResNetV2(dsm_chans, units, width, pool_padding)
        chans = self.optical.channels
        self.se = nn.ModuleList(SEFusion(ch) for ch in chans)
        self.joint_mamba = nn.ModuleList(JointMambaFusion(ch) for ch in chans)

    def _fuse(self, i: int, x: Tensor, y: Tensor, cross: bool) -> Tensor:
        se = self.se[i]
        if cross:
            x_se = se.se_rgb(x) + se.se_depth(y)
            y_se = se.se_rgb(y) + se.se_depth(x)
        else:
            x_se, y_se = se.se_rgb(x), se.se_depth(y)
        return self.joint_mamba[i](x_se, y_se)

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        x, y = self.optical.root(x), self.dsm.root(y)
        x = self._fuse(0, x, y, cross=True)
        skips = [x]
        x, y = self.optical.pool(x), self.dsm.pool(y)
        last = len(self.optical.body) - 1
        for i, (bx, by) in enumerate(zip(self.optical.body, self.dsm.body)):
            x, y = bx(x), by(y)
            x = self._fuse(i + 1, x, y, cross=(i == last))
            if i < last:
                skips.append(_zero_fill(x, skips[0].shape[-2:], 2 ** (i + 1)))
        return x, y, skips[::-1]


def _zero_fill(x: Tensor, root_size: tuple[int, int], factor: int) -> Tensor:
    """TransUNet's fix for an unpadded max-pool: zero-fill a skip at the bottom/right up to root/factor."""
    h, w = -(-root_size[0] // factor), -(-root_size[1] // factor)
    if x.shape[-2:] == (h, w):
        return x
    return F.pad(x, (0, w - x.shape[-1], 0, h - x.shape[-2]))


class ViTMlp(nn.Sequential):
    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout))
        nn.init.xavier_uniform_(self[0].weight)
        nn.init.xavier_uniform_(self[3].weight)
        nn.init.normal_(self[0].bias, std=1e-6)
        nn.init.normal_(self[3].bias, std=1e-6)


class DualSelfAttention(nn.Module):
    """Multi-head self-attention for each modality, with separate projections (``*_d`` = DSM)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.ModuleList(nn.Linear(dim, dim) for _ in range(3))
        self.qkv_d = nn.ModuleList(nn.Linear(dim, dim) for _ in range(3))
        self.out = nn.Linear(dim, dim)
        self.out_d = nn.Linear(dim, dim)
        self.dropout = dropout

    def _attend(self, t: Tensor, qkv: nn.ModuleList, out: nn.Module) -> Tensor:
        b, n, c = t.shape
        q, k, v = (proj(t).reshape(b, n, self.heads, c // self.heads).transpose(1, 2) for proj in qkv)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return out(y.transpose(1, 2).reshape(b, n, c))

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return self._attend(x, self.qkv, self.out), self._attend(y, self.qkv_d, self.out_d)


class HybridAttention(DualSelfAttention):
    """Self-attention mixed with deformable cross-attention: sigma(g)*SA + (1-sigma(g))*CA, g=0 at init.

    One deformable module serves both directions (optical<-DSM and DSM<-optical).
    """

    def __init__(self, dim: int, heads: int, dropout: float, grid_mode: str = "centres") -> None:
        super().__init__(dim, heads, dropout)
        self.deformable_ca = DeformableCrossAttention(dim, grid_mode=grid_mode)
        self.gate_x = nn.Parameter(torch.zeros(1))
        self.gate_y = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, y: Tensor, grid: tuple[int, int]) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        sa_x, sa_y = super().forward(x, y)
        b, n, c = x.shape
        x2d = x.transpose(1, 2).reshape(b, c, *grid)
        y2d = y.transpose(1, 2).reshape(b, c, *grid)
        ca_x = self.deformable_ca(x2d, y2d).flatten(2).transpose(1, 2)
        ca_y = self.deformable_ca(y2d, x2d).flatten(2).transpose(1, 2)
        gx, gy = torch.sigmoid(self.gate_x), torch.sigmoid(self.gate_y)
        return gx * sa_x + (1 - gx) * ca_x, gy * sa_y + (1 - gy) * ca_y


class DualBlock(nn.Module):
    """Pre-norm transformer block applied to both token streams (one set of weights each)."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float, hybrid: bool, grid_mode: str = "centres") -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim, eps=1e-6)
        self.attention_norm_d = nn.LayerNorm(dim, eps=1e-6)
        self.ffn_norm = nn.LayerNorm(dim, eps=1e-6)
        self.ffn_norm_d = nn.LayerNorm(dim, eps=1e-6)
        self.ffn = ViTMlp(dim, mlp_dim, dropout)
        self.ffn_d = ViTMlp(dim, mlp_dim, dropout)
        self.hybrid = hybrid
        self.attn = HybridAttention(dim, heads, 0.0, grid_mode) if hybrid else DualSelfAttention(dim, heads, 0.0)

    def forward(self, x: Tensor, y: Tensor, grid: tuple[int, int]) -> tuple[Tensor, Tensor]:
        nx, ny = self.attention_norm(x), self.attention_norm_d(y)
        ax, ay = self.attn(nx, ny, grid) if self.hybrid else self.attn(nx, ny)
        x, y = x + ax, y + ay
        return x + self.ffn(self.ffn_norm(x)), y + self.ffn_d(self.ffn_norm_d(y))


class GlobalModelingModule(nn.Module):
    """ViT on 1x1 patches of both 1/16 maps; (sa, hda, sa) layer counts, shared position embedding."""

    def __init__(
        self, in_channels: int, dim: int, heads: int, mlp_dim: int, layers: tuple[int, int, int], grid: int, dropout: float,
        grid_mode: str = "centres",
    ) -> None:
        super().__init__()
        self.patch_embeddings = nn.Conv2d(in_channels, dim, 1)
        self.patch_embeddings_d = nn.Conv2d(in_channels, dim, 1)
        self.position_embeddings = nn.Parameter(torch.zeros(1, dim, grid, grid))
        self.dropout = nn.Dropout(dropout)
        kinds = [False] * layers[0] + [True] * layers[1] + [False] * layers[2]
        self.layers = nn.ModuleList(DualBlock(dim, heads, mlp_dim, dropout, hybrid, grid_mode) for hybrid in kinds)
        self.encoder_norm = nn.LayerNorm(dim, eps=1e-6)
        self.encoder_norm_d = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        grid = x.shape[-2:]
        pos = self.position_embeddings
        if pos.shape[-2:] != grid:  # other window sizes than the training one: resize the table
            pos = F.interpolate(pos, size=grid, mode="bilinear", align_corners=False)
        x = self.dropout((self.patch_embeddings(x) + pos).flatten(2).transpose(1, 2))
        y = self.dropout((self.patch_embeddings_d(y) + pos).flatten(2).transpose(1, 2))
        for layer in self.layers:
            x, y = layer(x, y, (grid[0], grid[1]))
        tokens = self.encoder_norm(x) + self.encoder_norm_d(y)
        return tokens.transpose(1, 2).reshape(x.shape[0], -1, *grid)


class UpBlock(nn.Module):
    """x2 bilinear upsampling, concat skip, two conv-BN-ReLU."""

    def __init__(self, cin: int, cout: int, skip: int) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(cin + skip, cout)
        self.conv2 = ConvBNReLU(cout, cout)

    def forward(self, x: Tensor, skip: Tensor | None) -> Tensor:
        size = skip.shape[-2:] if skip is not None else (x.shape[-2] * 2, x.shape[-1] * 2)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class FMTUNet(nn.Module):
    """FMTUNet. ``forward(image, aux) -> logits (B, num_classes, H, W)``; sizes need not be /16."""

    def __init__(
        self,
        in_chans: int = 3,
        dsm_chans: int = 1,
        num_classes: int = 6,
        width: int = 64,
        units: tuple[int, ...] = (3, 4, 9),
        hidden_size: int = 768,
        num_heads: int = 12,
        mlp_dim: int = 3072,
        layers: tuple[int, int, int] = (3, 6, 3),
        head_channels: int = 512,
        decoder_channels: tuple[int, int, int, int] = (256, 128, 64, 16),
        img_size: int = 256,
        dropout: float = 0.1,
        stem_pool_padding: int = 1,
        deformable_grid: str = "centres",
    ) -> None:
        """``stem_pool_padding``: 1 (ours, default: every skip at an exact stride) or 0 (the authors'
        code, with TransUNet's zero-filled skips). ``deformable_grid``: ``"centres"`` (ours, default:
        zero offsets read the pixel itself) or ``"authors"`` (their half-pixel-shifted grid). The
        paper's numbers come from the authors' code, i.e. padding 0 and the ``"authors"`` grid."""
        super().__init__()
        if stem_pool_padding not in (0, 1):
            raise ValueError(f"stem_pool_padding must be 0 or 1, not {stem_pool_padding!r}")
        units = per_stage("units", units, 3)  # ResNetV2-50's three blocks: skips at 1/2, 1/4, 1/8, GMM at 1/16
        layers = per_stage("layers", layers, 3, "GMM group (self-attention, hybrid, self-attention)")
        decoder_channels = per_stage("decoder_channels", decoder_channels, 4)  # four x2 upsampling blocks
        self.input_multiple = 16  # four stride-2 steps; other sizes are padded inside forward
        self.fixed_input_size: tuple[int, int] | None = None
        self.encoder = DualResNetV2(in_chans, dsm_chans, units, width, stem_pool_padding)
        self.gmm = GlobalModelingModule(
            width * 16, hidden_size, num_heads, mlp_dim, layers, img_size // 16, dropout, deformable_grid
        )
        self.conv_more = ConvBNReLU(hidden_size, head_channels)
        skip_channels = [width * 8, width * 4, width]
        self.msaa = nn.ModuleList(MSAA(sum(skip_channels), ch) for ch in skip_channels)
        ins = [head_channels, *decoder_channels[:-1]]
        skips = [*skip_channels, 0]
        self.blocks = nn.ModuleList(UpBlock(i, o, s) for i, o, s in zip(ins, decoder_channels, skips))
        self.segmentation_head = nn.Conv2d(decoder_channels[-1], num_classes, 3, padding=1)

    def forward(self, image: Tensor, aux: Tensor) -> Tensor:
        if aux.dim() == 3:
            aux = aux.unsqueeze(1)
        h, w = image.shape[-2:]
        ph, pw = (-h) % 16, (-w) % 16
        if ph or pw:  # the encoder halves four times: pad to a multiple of 16, crop the logits
            image = F.pad(image, (0, pw, 0, ph), mode="replicate")
            aux = F.pad(aux, (0, pw, 0, ph), mode="replicate")
        x, y, skips = self.encoder(image, aux)
        x = self.conv_more(self.gmm(x, y))
        skips = [m(skips, s.shape[-2:]) for m, s in zip(self.msaa, skips)]
        for i, block in enumerate(self.blocks):
            x = block(x, skips[i] if i < len(skips) else None)
        logits = self.segmentation_head(x)
        if logits.shape[-2:] != (h + ph, w + pw):
            logits = F.interpolate(logits, size=(h + ph, w + pw), mode="bilinear", align_corners=False)
        return logits[..., :h, :w]


_TINY: dict[str, Any] = dict(
    width=8,
    units=(1, 1, 1),
    hidden_size=32,
    num_heads=2,
    mlp_dim=64,
    layers=(1, 1, 1),
    head_channels=32,
    decoder_channels=(32, 16, 8, 8),
    img_size=32,
    dropout=0.0,
)


@register_model(
    "fmtunet", task="segmentation", inputs="image+dsm", paper=PAPER, in_chans=3, dsm_chans=1, num_classes=6
)
def fmtunet(**kwargs: Any) -> FMTUNet:
    """Paper preset: two ResNetV2-50 streams, ViT-B GMM (layers 4-9 hybrid deformable), 256 crops."""
    return FMTUNet(**kwargs)


@register_model(
    "fmtunet_tiny", task="segmentation", inputs="image+dsm", paper=PAPER, in_chans=3, dsm_chans=1, num_classes=6
)
def fmtunet_tiny(**kwargs: Any) -> FMTUNet:
    """Tiny preset for tests and CPU demos (width 8, one unit per block, 3 transformer layers of 32-d)."""
    return FMTUNet(**{**_TINY, **kwargs})


# The paper gives no parameter count; the authors' train.py counts every parameter of their module
# definitions (sum(p.nelement()): 273,688,802), 256 px crops.
from rsmamba.models.registry import register_paper_preset  # noqa: E402

register_paper_preset("fmtunet", inputs={"image": (1, 3, 256, 256), "aux": (1, 1, 256, 256)},
                      code_params=273_688_802)
