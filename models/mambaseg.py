"""MambaSeg: two parallel VMamba encoders fused by DDIM at every stage, SegFormer head.

rsmamba uses it as the general dual-branch model for an image plus a second modality (a DSM,
or any extra bands). Built from the paper (seed 004) and a read of ``CQU-UISC/MambaSeg``.

Per stage i: both encoders run their VSS blocks, the outputs are normalised (``outnorm{i}``)
and fused by DDIM, each branch continues with ``blocks output + fused`` into its
downsampling, and ``out_convs[i]`` (1x1 on the concatenated fused pair) feeds the decoder.

DDIM = CTIM (swap odd channels between modalities, cross squeeze-excitation gating, an SSM
scanned along the *channel* axis in both directions, CBAM channel attention) + CSIM (cross
spatial attention from the other modality's avg/max maps, SS2D, 7x7 spatial attention).

Names follow the authors' modules (``encoder_img`` = image, ``encoder_ev`` = second modality,
``ccbs`` = DDIMs, ``out_convs``, ``decoder.linear_c*``), so their state dicts load as they are;
see :func:`rsmamba.models.weights.load_authors_state_dict`.

The channel SSM's parameters depend on the token count of the size the model was built for
(``img_size``), so a MambaSeg runs at exactly that input size: ``fixed_input_size`` says which,
and any other size raises ``ValueError`` naming both (it never resamples). Its merge of the two
scan directions reproduces the authors' ``CrossMerge_channel`` (``merge="authors"``, the
default): their output is read back through a view whose last axis is the image *width*, so the
reverse direction is flipped along width and the result re-laid out; this equals a flip along
the channel sequence only when W equals the channel count, but it is what their weights were
trained with. ``merge="channel"`` is the flip along channels that the scan itself reverses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from rsmamba.kernels.selective_scan import compute_dtype, selective_scan
from rsmamba.models.layers import ChannelAttention, SpatialAttention
from rsmamba.models.ss2d import SS2D, LayerNorm2d, init_dt_A_D
from rsmamba.models.registry import register_paper_preset
from rsmamba.models.registry import register_model
from rsmamba.models.vmamba import VMAMBA_CONFIGS, VMambaBackbone, make_patch_embed

__all__ = ["DDIM", "ChannelSSM", "MambaSeg", "SegFormerHead", "PAPER_INPUTS"]

# What the authors profiled (utils/trainer.py::model_summary): event 10 bands, image 1 band, 200x346.
PAPER_INPUTS = {"image": (1, 1, 200, 346), "aux": (1, 10, 200, 346)}
PAPER_PARAMS_THOP = 25.44e6


class ChannelSSM(nn.Module):
    """The authors' ``Temporal_SSM`` ("vc_noz"): a selective scan whose sequence is the channel axis.

    Each pixel position is one scan "dimension" (so parameters scale with H*W of the built
    size); the sequence runs over the ``d_inner`` channels forwards and backwards, letting the
    swapped image/aux channels exchange information.
    """

    def __init__(
        self, d_model: int, space_hw: tuple[int, int], d_state: int = 16, ssm_ratio: float = 2.0,
        dt_rank: Any = "auto", d_conv: int = 3, conv_bias: bool = True, bias: bool = False,
        merge: str = "authors",
    ):
        super().__init__()
        if merge not in ("authors", "channel"):
            raise ValueError(f"merge must be 'authors' or 'channel', not {merge!r}")
        if d_conv % 2 == 0:  # (d_conv - 1) // 2 padding: an (H-1) x (W-1) map
            raise ValueError(f"d_conv {d_conv}: the depth-wise convolution keeps the map's size only at an odd kernel")
        self.merge = merge
        self.k_group = 2
        self.space_hw = (int(space_hw[0]), int(space_hw[1]))
        self.d_model = d_model
        self.d_state = d_state
        self.d_inner = int(ssm_ratio * d_model)
        self.d_ssm = self.space_hw[0] * self.space_hw[1]
        self.dt_rank = int(math.ceil(self.d_ssm / 16) if dt_rank == "auto" else dt_rank)
        self.in_proj = nn.Linear(d_model, self.d_inner, bias=bias)
        self.act = nn.SiLU()
        self.conv2d = nn.Conv2d(self.d_inner, self.d_inner, d_conv, padding=(d_conv - 1) // 2,
                                groups=self.d_inner, bias=conv_bias)
        bound = self.d_ssm**-0.5
        self.x_proj_weight = nn.Parameter(
            torch.empty(self.k_group, self.dt_rank + 2 * d_state, self.d_ssm).uniform_(-bound, bound)
        )
        self.out_norm = LayerNorm2d(self.d_inner)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)
        self.A_logs, self.Ds, self.dt_projs_weight, self.dt_projs_bias = init_dt_A_D(
            d_state, self.dt_rank, self.d_ssm, k_group=self.k_group
        )

    def forward_core(self, x: Tensor) -> Tensor:
        b, d, h, w = x.shape
        if (h, w) != self.space_hw:
            raise ValueError(
                f"the channel SSM was built for {self.space_hw[0]}x{self.space_hw[1]} tokens and got {h}x{w}: "
                "its parameters depend on the token count, so build the model with img_size set to the input size"
            )
        hw, n, r = self.d_ssm, self.d_state, self.dt_rank
        seq = x.flatten(2).transpose(1, 2)  # (b, hw, d): one scan per position, along channels
        xs = torch.stack([seq, seq.flip(-1)], dim=1)  # (b, 2, hw, d)
        x_dbl = torch.einsum("bkpl,kcp->bkcl", xs, self.x_proj_weight)
        dts, Bs, Cs = torch.split(x_dbl, [r, n, n], dim=2)
        dts = torch.einsum("bkrl,kpr->bkpl", dts, self.dt_projs_weight)
        cdt = compute_dtype(x)  # float32 for half-precision inputs; a float64 layer scans in float64 (gradcheck)
        ys = selective_scan(
            xs.reshape(b, 2 * hw, d).to(cdt), dts.reshape(b, 2 * hw, d).to(cdt),
            -torch.exp(self.A_logs.to(cdt)), Bs.to(cdt).contiguous(), Cs.to(cdt).contiguous(),
            self.Ds.to(cdt), z=None, delta_bias=self.dt_projs_bias.reshape(-1).to(cdt), delta_softplus=True,
        ).reshape(b, 2, hw, d)
        if self.merge == "channel":
            y = (ys[:, 0] + ys[:, 1].flip(-1)).transpose(1, 2).reshape(b, d, h, w)
        else:
            # The authors' CrossMerge_channel: the (hw, d) buffers viewed as (d*h, w) rows, the
            # reverse one flipped along that width axis, summed, transposed and viewed as (d, h, w).
            y = ys[:, 0].reshape(b, d * h, w) + ys[:, 1].reshape(b, d * h, w).flip(-1)
            y = y.transpose(1, 2).reshape(b, d, h, w)
        return self.out_norm(y.to(x.dtype))

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        x = self.in_proj(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, -1, h, w)
        y = self.forward_core(self.act(self.conv2d(x)))
        y = self.out_proj(y.flatten(2).transpose(1, 2))
        return y.transpose(1, 2).reshape(b, -1, h, w)


class CrossTemporalAttention(nn.Module):
    """Swap odd channels between modalities, then gate each by an SE vector of the other."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.shared_fc = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1, bias=False), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False), nn.Sigmoid(),
        )

    @staticmethod
    def swap_odd_channels(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        odd = torch.zeros(a.shape[1], dtype=torch.bool, device=a.device)
        odd[1::2] = True
        odd = odd.view(1, -1, 1, 1)
        return torch.where(odd, b, a), torch.where(odd, a, b)

    def forward(self, x_img: Tensor, x_aux: Tensor) -> tuple[Tensor, Tensor]:
        x_img, x_aux = self.swap_odd_channels(x_img, x_aux)
        return x_img * self.shared_fc(x_aux), x_aux * self.shared_fc(x_img)


class CrossSpatialAttention(nn.Module):
    """Each modality gated by a spatial map computed from both modalities' avg/max maps."""

    def __init__(self, reduction: int = 4):
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(4, 4 * reduction, 1), nn.ReLU(inplace=True),
                                 nn.Conv2d(4 * reduction, 2, 1), nn.Sigmoid())

    def forward(self, x_img: Tensor, x_aux: Tensor) -> tuple[Tensor, Tensor]:
        maps = torch.cat([x_img.mean(1, keepdim=True), x_img.amax(1, keepdim=True),
                          x_aux.mean(1, keepdim=True), x_aux.amax(1, keepdim=True)], dim=1)
        att = self.mlp(maps)
        return x_img * att[:, 1:2], x_aux * att[:, 0:1]


class DDIM(nn.Module):
    """Dual-dimensional interaction: CTIM (channel) + CSIM (spatial), residual on both inputs."""

    def __init__(
        self, hidden_dim: int, space_hw: tuple[int, int], ssm_d_state: int = 16, ssm_ratio: float = 2.0,
        ssm_conv: int = 3, ssm_conv_bias: bool = True, channel_merge: str = "authors",
    ):
        super().__init__()
        c = hidden_dim
        self.norm_i = LayerNorm2d(c)
        self.norm_e = LayerNorm2d(c)
        self.cca = CrossTemporalAttention(c)
        ssm = dict(d_conv=ssm_conv, conv_bias=ssm_conv_bias, merge=channel_merge)
        self.ssm_i = ChannelSSM(c, space_hw, ssm_d_state, 2.0, **ssm)
        self.ssm_e = ChannelSSM(c, space_hw, ssm_d_state, 2.0, **ssm)
        self.conv_i1 = nn.Conv2d(c, c, 1)
        self.conv_e1 = nn.Conv2d(c, c, 1)
        self.ca1 = ChannelAttention(c, 16)
        self.ca2 = ChannelAttention(c, 16)
        self.csa = CrossSpatialAttention()
        ss2d = dict(d_model=c, d_state=ssm_d_state, ssm_ratio=ssm_ratio, d_conv=ssm_conv, conv_bias=ssm_conv_bias,
                    forward_type="v05_noz", channel_first=True)
        self.ss2d_i = SS2D(**ss2d)
        self.ss2d_e = SS2D(**ss2d)
        self.conv_i2 = nn.Conv2d(c, c, 1)
        self.conv_e2 = nn.Conv2d(c, c, 1)
        self.sa1 = SpatialAttention()
        self.sa2 = SpatialAttention()
        self.conv_i3 = nn.Conv2d(2 * c, c, 1)
        self.conv_e3 = nn.Conv2d(2 * c, c, 1)

    def forward(self, x_img: Tensor, x_aux: Tensor) -> tuple[Tensor, Tensor]:
        img_n, aux_n = self.norm_i(x_img), self.norm_e(x_aux)
        img_c, aux_c = self.cca(img_n, aux_n)
        img_s, aux_s = self.csa(img_n, aux_n)
        img_c = self.ssm_i(img_c) + self.conv_i1(img_c)
        aux_c = self.ssm_e(aux_c) + self.conv_e1(aux_c)
        img_c = img_c * self.ca1(img_c)
        aux_c = aux_c * self.ca2(aux_c)
        img_s = self.ss2d_i(img_s) + self.conv_i2(img_s)
        aux_s = self.ss2d_e(aux_s) + self.conv_e2(aux_s)
        img_s = img_s * self.sa1(img_s)
        aux_s = aux_s * self.sa2(aux_s)
        img = self.conv_i3(torch.cat([img_c, img_s], 1)) + x_img
        aux = self.conv_e3(torch.cat([aux_c, aux_s], 1)) + x_aux
        return img, aux


class _TokenLinear(nn.Module):
    """SegFormer's per-pixel linear embedding (kept as ``.proj`` for checkpoint names)."""

    def __init__(self, input_dim: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Linear(input_dim, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        return self.proj(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, -1, h, w)


class SegFormerHead(nn.Module):
    """All-MLP decoder: embed each stage to ``embed_dim``, upsample to 1/4, fuse, classify."""

    def __init__(self, in_channels: Sequence[int], num_classes: int, embed_dim: int = 768, dropout: float = 0.1):
        super().__init__()
        c1, c2, c3, c4 = in_channels
        self.linear_c4 = _TokenLinear(c4, embed_dim)
        self.linear_c3 = _TokenLinear(c3, embed_dim)
        self.linear_c2 = _TokenLinear(c2, embed_dim)
        self.linear_c1 = _TokenLinear(c1, embed_dim)
        self.linear_fuse = nn.Sequential(nn.Conv2d(4 * embed_dim, embed_dim, 1), nn.BatchNorm2d(embed_dim),
                                         nn.ReLU(inplace=True))
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.linear_pred = nn.Conv2d(embed_dim, num_classes, 1)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        c1, c2, c3, c4 = feats
        size = c1.shape[-2:]
        up = [F.interpolate(lin(c), size=size, mode="bilinear", align_corners=False)
              for lin, c in ((self.linear_c4, c4), (self.linear_c3, c3), (self.linear_c2, c2))]
        fused = self.linear_fuse(torch.cat([*up, self.linear_c1(c1)], dim=1))
        return self.linear_pred(self.dropout(fused))


class MambaSeg(nn.Module):
    """Image + second-modality segmentation: ``forward(image, aux) -> (B, num_classes, H, W)``."""

    def __init__(
        self,
        in_chans: int = 3,
        aux_chans: int = 1,
        num_classes: int = 6,
        backbone: str = "vmamba_tiny_s1l8",
        img_size: int | tuple[int, int] = 512,
        embed_dim: int = 768,
        ddim_d_state: int = 16,
        ddim_ssm_ratio: float = 2.0,
        channel_merge: str = "authors",
        **backbone_overrides: Any,
    ):
        super().__init__()
        cfg = {**VMAMBA_CONFIGS[backbone], **backbone_overrides}
        if not cfg.get("channel_first", True):
            raise ValueError("MambaSeg needs a channel-first backbone configuration")
        self.in_chans, self.aux_chans, self.num_classes = in_chans, aux_chans, num_classes
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        # Input-size contract read by predict/train: only this size runs (see check_input_size).
        self.fixed_input_size: tuple[int, int] | None = (int(self.img_size[0]), int(self.img_size[1]))
        self.input_multiple = 1
        self.encoder_img = VMambaBackbone(in_chans=3, **cfg)
        self.encoder_ev = VMambaBackbone(in_chans=3, **cfg)
        dims = self.encoder_img.dims
        # As the authors: a fresh stem when the band count differs from the 3-band checkpoints.
        if in_chans != 3:
            self.encoder_img.patch_embed = make_patch_embed(in_chans, dims[0], 4, True)
        self.encoder_ev.patch_embed = make_patch_embed(aux_chans, dims[0], 4, True)
        hw = [(math.ceil(self.img_size[0] / 4), math.ceil(self.img_size[1] / 4))]
        for _ in range(len(dims) - 1):
            hw.append((math.ceil(hw[-1][0] / 2), math.ceil(hw[-1][1] / 2)))
        self.ccbs = nn.ModuleList(
            DDIM(d, hw[i], ssm_d_state=ddim_d_state, ssm_ratio=ddim_ssm_ratio, channel_merge=channel_merge)
            for i, d in enumerate(dims)
        )
        self.out_convs = nn.ModuleList(nn.Conv2d(2 * d, d, 1) for d in dims)
        self.decoder = SegFormerHead(dims, num_classes, embed_dim)

    def check_input_size(self, height: int, width: int) -> None:
        """Raise ``ValueError`` naming both sizes unless ``height x width`` is the size built for."""
        if self.fixed_input_size is not None and (height, width) != self.fixed_input_size:
            fh, fw = self.fixed_input_size
            raise ValueError(
                f"this MambaSeg was built for {fh}x{fw} inputs and got {height}x{width}: its channel SSM's "
                f"parameters depend on the input size; use {fh}x{fw} windows or build it with img_size=({height}, {width})"
            )

    def forward(self, image: Tensor, aux: Tensor) -> Tensor:
        size = image.shape[-2:]
        self.check_input_size(int(size[0]), int(size[1]))
        x_img = self.encoder_img.patch_embed(image)
        x_aux = self.encoder_ev.patch_embed(aux)
        outs = []
        for i, (layer_img, layer_aux) in enumerate(zip(self.encoder_img.layers, self.encoder_ev.layers)):
            o_img = layer_img.blocks(x_img)
            o_aux = layer_aux.blocks(x_aux)
            img, ev = self.ccbs[i](getattr(self.encoder_img, f"outnorm{i}")(o_img),
                                   getattr(self.encoder_ev, f"outnorm{i}")(o_aux))
            x_img = layer_img.downsample(o_img + img)
            x_aux = layer_aux.downsample(o_aux + ev)
            outs.append(self.out_convs[i](torch.cat([img, ev], dim=1)))
        logits = self.decoder(outs)
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


@register_model("mambaseg", task="segmentation", inputs="image+dsm", paper="MambaSeg (seed 004)",
                in_chans=3, aux_chans=1, num_classes=6, img_size=512)
def mambaseg(**kwargs: Any) -> MambaSeg:
    """Paper configuration: two VMamba-T (0230s) encoders, DDIM d_state 16, SegFormer head 768."""
    return MambaSeg(**kwargs)


@register_model("mambaseg_tiny", task="segmentation", inputs="image+dsm", paper="MambaSeg (seed 004), tiny",
                in_chans=3, aux_chans=1, num_classes=6, img_size=32)
def mambaseg_tiny(**kwargs: Any) -> MambaSeg:
    """Same structure, tiny widths and one block per stage: for tests and CPU demos."""
    kwargs.setdefault("backbone", "vmamba_test_cf")
    kwargs.setdefault("embed_dim", 32)
    kwargs.setdefault("ddim_d_state", 4)
    return MambaSeg(**kwargs)


register_paper_preset(
    "mambaseg", inputs=PAPER_INPUTS, overrides=dict(in_chans=1, aux_chans=10, img_size=(200, 346)),
    reported_params=PAPER_PARAMS_THOP, reported_gflops=15.59, count_style="thop",
)

