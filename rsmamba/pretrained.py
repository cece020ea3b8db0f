"""Pretrained weights from local files (``model.pretrained``), with a report of what went where.

Three formats, read as users download them (nothing is downloaded, nothing unpickled):

* torchvision / timm **ResNet** state dicts (``conv1``, ``bn1``, ``layer1.0.conv1`` ..., ``fc``) into a
  model's ResNet ``backbone`` (MAFMamba, CMT-UNet);
* **VMamba** checkpoints (``{"model": state dict}`` with VMamba's names: ``patch_embed.0``,
  ``layers.{i}.blocks.{j}.op.in_proj`` ..., ``A_logs``, ``Ds``, ``dt_projs_*``, ``layers.{i}.downsample``;
  the first release's ``ln_1`` / ``self_attention`` / ``patch_embed.proj`` renamed as VMamba itself
  does) into the VMamba encoders (Mamba-FCS ``encoder``, MambaSeg ``encoder_img`` / ``encoder_ev``),
  the VSS branch of CMT-UNet (``vss_encoder``: blocks, and VMamba's patch merging weights into its
  Haar downsampling as the authors load them; it has its own stem) and the VSS layers of MAFMamba's AMMBs (``ammb``: blocks only);
* Google's **R50+ViT-B/16** ``.npz`` (``conv_root/kernel`` HWIO, ``block1/unit1/conv1/kernel``,
  ``gn1/scale``, ``embedding/kernel``, ``Transformer/encoderblock_{i}/...`` with attention kernels in
  (hidden, heads, head_dim) layout, ``Transformer/encoder_norm``, ``posembed_input``), read with
  ``numpy.load(allow_pickle=False)``, into both ResNetV2 streams of FMTUNet (the DSM stream's root
  convolution: the mean over RGB) and every transformer block of its GMM (both modalities' copies),
  as the authors' ``load_from`` does.

Torch files are read with ``torch.load(weights_only=True)`` and unwrapped as ``import-weights`` unwraps
them (:func:`~rsmamba.models.weights.unwrap_state`: ``state_dict`` / ``model`` / ``net`` containers, an
EMA copy, ``module.`` / ``net.`` / ``model.`` prefixes). Every tensor of the file must land: a name the part lacks or a
shape that differs is a one-line error naming the first such tensor. The exceptions are listed in
the report as *unused* (a classifier head; in CMT-UNet/MAFMamba the VMamba stem and downsampling
they do not have). A first convolution with another input-band count is adapted as ``--init`` does
(:func:`adapt_input_weight`) and a position table of another grid is resized; both are reported as
*resized*. Whatever the file does not cover is reported as *left random*.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from rsmamba.errors import InputError
from rsmamba.models.cmtunet import VSSEncoder
from rsmamba.models.fmtunet import FMTUNet
from rsmamba.models.mafmamba import MAFMamba
from rsmamba.models.resnet import ResNet
from rsmamba.models.vmamba import VMambaBackbone
from rsmamba.models.weights import load_weights_file, unwrap_state
from rsmamba.paths import input_problem

RESNET_PART = "backbone"
FORMATS = ("resnet", "vmamba", "vit-npz")


@dataclass
class PretrainedReport:
    source: str
    part: str
    loaded: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    left_random: list[str] = field(default_factory=list)
    written: set[str] = field(default_factory=set, repr=False)  # model names this file set
    unwrapped: list[str] = field(default_factory=list)  # containers / prefixes taken off, as import-weights says them

    @property
    def part_left_random(self) -> list[str]:
        """The part's own tensors this file did not set: the whole model's random tensors say little (a
        decoder is never pretrained), the part's own say the file did not cover it."""
        return [n for n in self.left_random if n.split(".", 1)[0] == self.part.split(".", 1)[0]]

    def describe(self) -> str:
        own = self.part_left_random
        inside = (f", {len(own)} of them in {self.part} ({', '.join(own[:3])}{'...' if len(own) > 3 else ''})"
                  if own else f", none in {self.part}")
        return (f"{self.source} -> {self.part}: {len(self.loaded)} tensors loaded, {len(self.resized)} resized "
                f"({', '.join(self.resized[:3]) or 'none'}{'...' if len(self.resized) > 3 else ''}), "
                f"{len(self.unused)} unused ({', '.join(self.unused[:2]) or 'none'}"
                f"{'...' if len(self.unused) > 2 else ''}), {len(self.left_random)} left random{inside}"
                + "".join(f"; unwrapped {u}" for u in self.unwrapped))


def adapt_input_weight(weight: torch.Tensor, src_image: int, src_dsm: bool, dst_image: int,
                       dst_dsm: bool) -> torch.Tensor:
    """A first-layer weight ``(out, src_image [+1], ...)`` for ``dst_image`` bands [+ a DSM channel]."""
    img, dsm = weight[:, :src_image], weight[:, src_image:src_image + 1] if src_dsm else None
    if dst_image == src_image:
        new = img
    elif dst_image == 1:
        new = img.sum(1, keepdim=True)
    else:
        reps = -(-dst_image // src_image)
        new = img.repeat(1, reps, *([1] * (img.dim() - 2)))[:, :dst_image] * (src_image / dst_image)
    if dst_dsm:
        new = torch.cat([new, dsm if dsm is not None else torch.zeros_like(new[:, :1])], 1)
    return new.contiguous()


# -- reading ------------------------------------------------------------------------------------------

def _read_npz(path: Path) -> dict[str, torch.Tensor]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: torch.from_numpy(np.array(npz[k], dtype=np.float32)) for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, KeyError, TypeError) as exc:
        raise InputError(f"model.pretrained {path}: not a readable .npz of arrays ({exc.__class__.__name__}; "
                         "object arrays are refused)") from None


def _read_state(path: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The file's state dict and what was unwrapped to reach it (containers, prefixes)."""
    if problem := input_problem(path, "model.pretrained"):  # a folder or a pipe was 'file not found'
        raise InputError(problem)
    if path.suffix.lower() == ".npz":
        return _read_npz(path), []
    state, unwrapped, renamed = unwrap_state(load_weights_file(path, "model.pretrained"), path, what="model.pretrained",
                                             recognise=lambda names: weights_format(names) is not None)
    return state, unwrapped + renamed


def weights_format(state: dict[str, torch.Tensor]) -> str | None:
    """Which of :data:`FORMATS` a file's key names follow (None: none of them)."""
    keys = list(state)
    if any(k.startswith(("Transformer/", "conv_root/", "block1/")) for k in keys):
        return "vit-npz"
    if any(re.match(r"layers\.\d+\.blocks\.\d+\.", k) for k in keys) or any(k.startswith("patch_embed.") for k in keys):
        return "vmamba"
    if "conv1.weight" in state or any(k.startswith("layer1.") for k in keys):
        return "resnet"
    return None


# -- which parts of which model take which format -----------------------------------------------------

def pretrained_parts(model: nn.Module) -> dict[str, str]:
    """``{part: format}`` for the parts of ``model`` that ``model.pretrained`` can fill."""
    parts: dict[str, str] = {}
    if isinstance(model, FMTUNet):
        parts["encoder"] = "vit-npz"
    for name, child in model.named_children():
        if isinstance(child, ResNet):
            parts[name] = "resnet"
        elif isinstance(child, (VMambaBackbone, VSSEncoder)):
            parts[name] = "vmamba"
    if isinstance(model, MAFMamba):
        parts["ammb"] = "vmamba"
    return parts


# -- placing tensors ----------------------------------------------------------------------------------

@dataclass
class _Placement:
    """Tensors for one part: (name in the file, name in the model, tensor); ``adapt``: names whose
    input-channel dimension may be adapted; ``resize``: position tables that may be resampled."""

    items: list[tuple[str, str, torch.Tensor]] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    adapt: set[str] = field(default_factory=set)
    resize: set[str] = field(default_factory=set)
    derived: set[str] = field(default_factory=set)  # computed from the file's tensor: reported as resized


def _fit(src: str, dst: str, tensor: torch.Tensor, target: torch.Tensor, place: _Placement, path: Path, part: str,
         image_bands: int, dsm: bool) -> tuple[torch.Tensor, bool]:
    """The tensor in the model's shape, and whether it was resized; else a one-line InputError."""
    if tensor.shape == target.shape:
        return tensor, False
    if tensor.dim() == 4 and target.dim() == 2 and tensor.shape[2:] == (1, 1) and tensor.shape[:2] == target.shape:
        return tensor.reshape(target.shape), False  # a 1x1 conv stored for a Linear (VMamba's Linear2d)
    if (dst in place.adapt and tensor.dim() == target.dim() and tensor.shape[0] == target.shape[0]
            and tensor.shape[2:] == target.shape[2:]):
        stacked = dsm and target.shape[1] == image_bands + 1
        return adapt_input_weight(tensor, tensor.shape[1], False, target.shape[1] - stacked, stacked), True
    if dst in place.resize and tensor.dim() == 4 and tensor.shape[:2] == target.shape[:2]:
        return F.interpolate(tensor, size=target.shape[-2:], mode="bilinear", align_corners=True), True
    raise InputError(f"{path}: tensor {src} has shape {tuple(tensor.shape)} in the file but {tuple(target.shape)} "
                     f"in the model's {part} ({dst})")


def _place(model: nn.Module, place: _Placement, path: Path, part: str, image_bands: int,
           dsm: bool) -> PretrainedReport:
    own = model.state_dict()
    report = PretrainedReport(str(path), part, unused=list(place.unused))
    new: dict[str, torch.Tensor] = {}
    short = (lambda n: n[len(part) + 1:] if n.startswith(part + ".") else n)
    homeless: list[str] = []
    misfits: list[str] = []
    for src, dst, tensor in place.items:
        if dst not in own:
            homeless.append(f"{path}: tensor {src} {tuple(tensor.shape)} has no place in the model's {part} "
                            f"(no {dst}; another depth or version?)")
            continue
        try:
            value, resized = _fit(src, dst, tensor, own[dst], place, path, part, image_bands, dsm)
        except InputError as exc:
            misfits.append(str(exc))
            continue
        new[dst] = value.to(own[dst].dtype)
        (report.resized if resized or dst in place.derived else report.loaded).append(short(dst))
    if homeless or misfits:  # the first named, and how many more: one at a time hid a file of another depth
        bad = len(homeless) + len(misfits)
        more = (f"; {bad} of the file's {len(place.items)} tensors do not fit {type(model).__name__}'s {part} "
                f"({len(homeless)} with no place, {len(misfits)} of other shapes)" if bad > 1 else "")
        raise InputError((homeless or misfits)[0] + more)
    model.load_state_dict(new, strict=False)
    report.written = set(new)
    return report


def _prefixed(state: dict[str, torch.Tensor], prefix: str) -> list[tuple[str, str, torch.Tensor]]:
    return [(k, prefix + k, v) for k, v in state.items()]


def _resnet_placement(state: dict[str, torch.Tensor], part: str) -> _Placement:
    place = _Placement(adapt={f"{part}.conv1.weight"})
    for k, v in state.items():
        if k.startswith("fc."):
            place.unused.append(k)
        else:
            place.items.append((k, f"{part}.{k}", v))
    return place


_VMAMBA_RENAMES = ((r"^patch_embed\.proj\.", "patch_embed.0."), (r"^patch_embed\.norm\.", "patch_embed.2."),
                   (r"\.ln_1\.", ".norm."), (r"\.self_attention\.", ".op."),
                   (r"^norm\.", "classifier.norm."), (r"^head\.", "classifier.head."))


def _vmamba_name(name: str) -> str:
    """VMamba's own renaming of its first checkpoints (``VSSM._load_from_state_dict``)."""
    for pattern, repl in _VMAMBA_RENAMES:
        name = re.sub(pattern, repl, name)
    return name


def _vmamba_placement(state: dict[str, torch.Tensor], model: nn.Module, part: str) -> _Placement:
    """VMamba names into a whole backbone (names as they are) or into blocks only (CMT-UNet, MAFMamba)."""
    module = getattr(model, part)
    place = _Placement(adapt={f"{part}.patch_embed.0.weight"})
    blocks_only = not isinstance(module, VMambaBackbone)
    own = dict(model.named_parameters())
    for k, v in state.items():
        name = _vmamba_name(k)
        if name.startswith("classifier."):
            place.unused.append(k)
            continue
        m = re.match(r"layers\.(\d+)\.blocks\.(\d+)\.(.*)", name)
        merge = re.match(r"layers\.(\d+)\.downsample\.((?:norm|reduction)\.(?:weight|bias))$", name)
        if not blocks_only:
            place.items.append((k, f"{part}.{name}", v))
        elif merge is not None and f"{part}.downsamples.{merge[1]}.{merge[2]}" in own:
            # CMT-UNet's Haar merges (LayerNorm 4C, Linear 4C -> 2C) take VMamba's patch merging weights, as
            # the authors' load_pretrained_ckpt maps them (the same shapes; four wavelet bands, not four pixels)
            place.items.append((k, f"{part}.downsamples.{merge[1]}.{merge[2]}", v))
        elif m is None:
            place.unused.append(k)  # the VMamba stem / downsampling: this model has its own
        elif isinstance(module, nn.ModuleList) and part == "ammb":
            place.items.append((k, f"ammb.{m[1]}.vss.blocks.{m[2]}.{m[3]}", v))
        else:
            place.items.append((k, f"{part}.{name}", v))
    return place


def _npz_conv(a: torch.Tensor) -> torch.Tensor:
    return a.permute(3, 2, 0, 1).contiguous()  # HWIO -> OIHW


def _vit_npz_placement(state: dict[str, torch.Tensor], model: FMTUNet) -> _Placement:
    """Google's R50+ViT-B/16 names and layouts -> FMTUNet (both streams, both modalities' blocks)."""
    place = _Placement(resize={"gmm.position_embeddings"})
    hidden = model.gmm.encoder_norm.weight.shape[0]
    streams = ("optical", "dsm")
    place.adapt = {"encoder.optical.root.conv.weight"}
    place.derived = {"encoder.dsm.root.conv.weight"}
    dsm_chans = model.encoder.dsm.root.conv.weight.shape[1]
    for k, a in state.items():
        m_unit = re.match(r"block(\d+)/unit(\d+)/(conv\d|conv_proj|gn\d|gn_proj)/(kernel|scale|bias)$", k)
        m_blk = re.match(r"Transformer/encoderblock_(\d+)/(.+)/(kernel|scale|bias)$", k)
        out: list[tuple[str, torch.Tensor]] = []
        if k in ("conv_root/kernel", "gn_root/scale", "gn_root/bias"):
            name = {"conv_root/kernel": "conv.weight", "gn_root/scale": "gn.weight", "gn_root/bias": "gn.bias"}[k]
            t = _npz_conv(a) if k.endswith("kernel") else a.reshape(-1)
            out = [(f"encoder.{s}.root.{name}", t) for s in streams]
            if k == "conv_root/kernel":  # the DSM stream: the mean over RGB, as FTransUNet/FMTUNet load it
                mean = t.mean(1, keepdim=True)
                out[1] = (out[1][0], mean.repeat(1, dsm_chans, 1, 1) / dsm_chans)
        elif m_unit:
            b, u, layer, kind = int(m_unit[1]) - 1, int(m_unit[2]) - 1, m_unit[3], m_unit[4]
            layer = "downsample" if layer == "conv_proj" else layer
            t = _npz_conv(a) if kind == "kernel" else a.reshape(-1)
            leaf = "bias" if kind == "bias" else "weight"
            out = [(f"encoder.{s}.body.{b}.{u}.{layer}.{leaf}", t) for s in streams]
        elif k in ("embedding/kernel", "embedding/bias"):
            t = _npz_conv(a) if k.endswith("kernel") else a
            leaf = "weight" if k.endswith("kernel") else "bias"
            out = [(f"gmm.patch_embeddings.{leaf}", t), (f"gmm.patch_embeddings_d.{leaf}", t)]
        elif k == "Transformer/posembed_input/pos_embedding":
            tokens = a.reshape(-1, a.shape[-1])
            g = int(round((tokens.shape[0] - 1) ** 0.5))
            if g * g == tokens.shape[0] - 1:
                tokens = tokens[1:]  # the class token: segmentation has none (TransUNet drops it too)
            g = int(round(tokens.shape[0] ** 0.5))
            if g * g != tokens.shape[0]:
                raise InputError(f"model.pretrained: tensor {k} {tuple(a.shape)} is not a square grid of positions")
            out = [("gmm.position_embeddings", tokens.T.reshape(1, -1, g, g))]
        elif k.startswith("Transformer/encoder_norm/"):
            leaf = "weight" if k.endswith("scale") else "bias"
            out = [(f"gmm.encoder_norm.{leaf}", a), (f"gmm.encoder_norm_d.{leaf}", a)]
        elif m_blk:
            i, layer, kind = int(m_blk[1]), m_blk[2], m_blk[3]
            leaf = "bias" if kind == "bias" else "weight"
            pre = f"gmm.layers.{i}"
            if layer in ("LayerNorm_0", "LayerNorm_2"):
                norm = "attention_norm" if layer == "LayerNorm_0" else "ffn_norm"
                out = [(f"{pre}.{norm}.{leaf}", a), (f"{pre}.{norm}_d.{leaf}", a)]
            elif layer in ("MlpBlock_3/Dense_0", "MlpBlock_3/Dense_1"):
                t = a.T if kind == "kernel" else a
                idx = 0 if layer.endswith("0") else 3
                out = [(f"{pre}.ffn.{idx}.{leaf}", t), (f"{pre}.ffn_d.{idx}.{leaf}", t)]
            elif layer.startswith("MultiHeadDotProductAttention_1/"):
                proj = layer.split("/")[1]
                if kind == "kernel":  # query/key/value (hidden, heads, hd); out (heads, hd, hidden)
                    t = a.reshape(hidden, -1).T if proj != "out" else a.reshape(-1, hidden).T
                else:
                    t = a.reshape(-1)
                names = {"query": ("qkv.0", "qkv_d.0"), "key": ("qkv.1", "qkv_d.1"),
                         "value": ("qkv.2", "qkv_d.2"), "out": ("out", "out_d")}.get(proj)
                if names is not None:
                    out = [(f"{pre}.attn.{n}.{leaf}", t) for n in names]
                else:
                    out = [(f"{pre}.attn.{proj}.{leaf}", t)]  # unknown: fails as 'no place'
            else:
                out = [(f"{pre}.{layer.replace('/', '.')}.{leaf}", a)]
        elif k.startswith(("head/", "pre_logits/", "cls")):
            place.unused.append(k)
            continue
        else:
            out = [(k.replace("/", "."), a)]  # no place in FMTUNet: the error names it
        place.items += [(k, dst, t.contiguous()) for dst, t in out]
    return place


# -- entry points -------------------------------------------------------------------------------------

def load_part(model: nn.Module, path: str | os.PathLike[str], part: str | None = None, *, image_bands: int = 3,
              dsm: bool = False, state: dict[str, torch.Tensor] | None = None) -> list[PretrainedReport]:
    """Load one weight file into ``part`` of ``model`` (None: every part that takes the file's format)."""
    path = Path(path)
    state, unwrapped = _read_state(path) if state is None else (state, [])
    fmt = weights_format(state)
    parts = pretrained_parts(model)
    name = type(model).__name__
    if fmt is None:
        raise InputError(f"model.pretrained {path}: neither a torchvision/timm ResNet state dict, a VMamba "
                         f"checkpoint nor an R50+ViT-B/16 .npz (first tensor: {next(iter(state))})")
    if part is None:
        targets = [p for p, f in parts.items() if f == fmt]
        if not targets:
            where = ", ".join(f"{p} ({f})" for p, f in parts.items()) or "none"
            raise InputError(f"model.pretrained {path}: {fmt} weights have no place in {name} "
                             f"(parts that take pretrained weights: {where})")
    else:
        if part not in parts:
            if part == RESNET_PART and fmt == "resnet":
                raise InputError(f"model.pretrained {path}: the model has no {part!r} to load ResNet weights into")
            raise InputError(f"model.pretrained: {name} has no part {part!r} for weights "
                             f"(parts: {', '.join(parts) or 'none'})")
        if parts[part] != fmt:
            raise InputError(f"model.pretrained {path}: {part} of {name} takes {parts[part]} weights, the file "
                             f"holds {fmt} weights")
        targets = [part]
    reports = []
    for p in targets:
        if fmt == "resnet":
            place = _resnet_placement(state, p)
        elif fmt == "vmamba":
            place = _vmamba_placement(state, model, p)
        else:
            place = _vit_npz_placement(state, model)  # type: ignore[arg-type]
        reports.append(_place(model, place, path, "encoder+gmm" if fmt == "vit-npz" else p, image_bands, dsm))
        reports[-1].unwrapped = unwrapped
    return reports


def _finish(model: nn.Module, reports: list[PretrainedReport]) -> list[PretrainedReport]:
    written = {n for r in reports for n in r.written}
    rest = [n for n in model.state_dict() if n not in written]
    for r in reports:
        r.left_random = rest
    return reports


def load_resnet_weights(model: nn.Module, path: str | os.PathLike[str], part: str = RESNET_PART, *,
                        image_bands: int = 3, dsm: bool = False) -> PretrainedReport:
    """Load a torchvision/timm ResNet state dict into ``model.<part>`` (built for ``image_bands`` [+ a
    stacked DSM channel]); see the module docstring."""
    return _finish(model, load_part(model, path, part, image_bands=image_bands, dsm=dsm))[0]


def load_pretrained(model: nn.Module, spec: str | os.PathLike[str] | dict, *, image_bands: int = 3,
                    dsm: bool = False) -> list[PretrainedReport]:
    """``model.pretrained``: a path (into every part that takes its format) or ``{part: path}``."""
    items: Iterable = spec.items() if isinstance(spec, dict) else [(None, spec)]
    reports: list[PretrainedReport] = []
    for part, p in items:
        if not isinstance(p, (str, os.PathLike)):
            raise InputError(f"model.pretrained: {part or 'the value'} must be a file path, not {p!r}")
        reports += load_part(model, p, part, image_bands=image_bands, dsm=dsm)
    return _finish(model, reports)
