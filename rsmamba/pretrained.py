"""Pretrained weights from local files (``model.pretrained``), with a report of what went where.

Supported today: torchvision / timm ResNet state dicts (``conv1``, ``bn1``, ``layer1.0.conv1`` ...,
``fc``) into a model's ResNet ``backbone`` (MAFMamba, CMT-UNet). The file is read with
``torch.load(weights_only=True)``; ``state_dict`` / ``model`` wrappers and ``module.`` prefixes are
unwrapped. Every tensor of the file must land: a name the backbone lacks or a shape that differs is
a one-line error naming the first such tensor (the classifier ``fc.*`` is the one exception and is
reported as unused). A first convolution with another input-band count is adapted as ``--init``
does (:func:`adapt_input_weight`) and reported as resized.
Not yet: the R50+ViT-B/16 ``.npz`` of FMTUNet and VMamba checkpoints through this report (the
models' own ``pretrained=`` kwargs load those, see ``rsmamba.models``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from rsmamba.errors import InputError

RESNET_PART = "backbone"


@dataclass
class PretrainedReport:
    source: str
    part: str
    loaded: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    left_random: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (f"{self.source} -> {self.part}: {len(self.loaded)} tensors loaded, {len(self.resized)} resized "
                f"({', '.join(self.resized) or 'none'}), {len(self.unused)} unused ({', '.join(self.unused[:2]) or 'none'}"
                f"{'...' if len(self.unused) > 2 else ''}), {len(self.left_random)} left random")


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


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise InputError(f"model.pretrained {path}: file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a foreign or pickled-object file
        raise InputError(f"{path}: not a weights file torch.load(weights_only=True) can read "
                         f"({exc.__class__.__name__})") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_resnet_weights(model: nn.Module, path: str | os.PathLike[str], part: str = RESNET_PART, *,
                        image_bands: int = 3, dsm: bool = False) -> PretrainedReport:
    """Load a torchvision/timm ResNet state dict into ``model.<part>`` (built for ``image_bands`` [+ a
    stacked DSM channel]); see the module docstring."""
    path = Path(path)
    module = getattr(model, part, None)
    if not isinstance(module, nn.Module):
        raise InputError(f"model.pretrained {path}: the model has no {part!r} to load ResNet weights into")
    state = _read_state(path)
    own = module.state_dict()
    report = PretrainedReport(str(path), part)
    new = {}
    for name, tensor in state.items():
        if name.startswith("fc."):
            report.unused.append(name)
            continue
        if name not in own:
            raise InputError(f"{path}: tensor {name} {tuple(tensor.shape)} has no place in the model's {part} "
                             f"(another ResNet depth?)")
        target = own[name]
        if tensor.shape == target.shape:
            new[name] = tensor
            report.loaded.append(name)
        elif name == "conv1.weight" and tensor.shape[0] == target.shape[0] and tensor.shape[2:] == target.shape[2:]:
            new[name] = adapt_input_weight(tensor, tensor.shape[1], False, image_bands,
                                           dsm and target.shape[1] == image_bands + 1)
            if new[name].shape != target.shape:
                raise InputError(f"{path}: tensor {name} {tuple(tensor.shape)} cannot be adapted to "
                                 f"{tuple(target.shape)}")
            report.resized.append(name)
        else:
            raise InputError(f"{path}: tensor {name} has shape {tuple(tensor.shape)} in the file but "
                             f"{tuple(target.shape)} in the model's {part}")
    module.load_state_dict(new, strict=False)
    report.left_random = [f"{part}.{n}" for n in own if n not in new]
    report.left_random += [n for n in model.state_dict() if not n.startswith(f"{part}.")]
    return report


def load_pretrained(model: nn.Module, spec: str | os.PathLike[str] | dict, *, image_bands: int = 3,
                    dsm: bool = False) -> list[PretrainedReport]:
    """``model.pretrained``: a path (into the ResNet ``backbone``) or ``{part: path}``."""
    items = spec.items() if isinstance(spec, dict) else [(RESNET_PART, spec)]
    return [load_resnet_weights(model, p, part, image_bands=image_bands, dsm=dsm) for part, p in items]
