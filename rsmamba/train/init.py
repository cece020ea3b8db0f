"""Start training from a checkpoint (``rsmamba train --init ckpt.pt``): fine-tuning across bands and classes.

Weights are matched by name. Where shapes differ, only two changes are understood, and each is
reported; anything else is a one-line error naming the first tensor that does not fit:

- **input bands**: a first-layer weight ``(out, C_src, k, k)`` whose input channels are the
  checkpoint's image bands (+ its DSM channel). Image-band weights are mapped to the new band
  count as timm's ``adapt_input_conv`` does (1 band: the sum over the source bands; N bands: the
  source bands repeated in turn and scaled by C_src/N), so a pan or 4-band image starts with the
  same response to a grey scene. A DSM channel is kept when both have one, dropped when the new
  data has none, and added with zero weights (the model starts by ignoring it) when only the new
  data has one.
- **band order**: where both the checkpoint and the data name their bands' colours (checkpoint
  ``bands.colours``, the chips' ``tiling.json``) and the data declare each of the checkpoint's colours
  in another order or beside others (BGR or NIR, R, G, B chips for a red-green-blue model), the input
  columns are placed to read each band by its colour, as predict reads an image; read by position, the
  model's red filter read blue, unsaid. A band declaring another colour where the checkpoint has one
  (NIR, red, green chips) is read by position, and the report says so; undefined and gray say nothing.
- **classes**: the head (the tensors that follow the class count) is left at its fresh
  initialisation when the classes differ: in count, or in name where both tables name them. The
  head's rows are compared by meaning, not by count: the demo's 6 classes + 2 instance outputs
  into 8 new classes are 8 rows each, and its ``interior`` row is no ``water`` row.
- **instance outputs** (``model.instances``): a head for the same classes with other instance
  channels (added, dropped or changed) keeps the checkpoint's class rows; only the instance rows
  start fresh, so a model gains (or sheds) the instance outputs without relearning its classes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from rsmamba.checkpoint import check_finite, load_checkpoint
from rsmamba.classes import name_key
from rsmamba.engine.model import checkpoint_colours
from rsmamba.errors import InputError
from rsmamba.pretrained import adapt_input_weight
from rsmamba.raster.source import colour_reading, learnt_colours


@dataclass
class InitReport:
    """What ``--init`` did to each tensor of the new model."""

    source: str
    loaded: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    reinitialised: list[str] = field(default_factory=list)
    widened: list[str] = field(default_factory=list)
    left_random: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)  # checkpoint tensors the model has no place for
    reordered: list[str] = field(default_factory=list)  # input tensors whose bands were reordered by colour
    colours: tuple[list[str], list[str]] | None = None  # (checkpoint's, data's) band colours where they differ

    def describe(self) -> str:
        parts = [f"{len(self.loaded)} tensors loaded from {self.source}"]
        if self.adapted:
            parts.append(f"{len(self.adapted)} adapted to the input bands ({', '.join(self.adapted[:3])})")
        if self.colours is not None:
            ckpt, data = (", ".join(c) for c in self.colours)
            parts.append(f"{len(self.reordered)} input tensors placed to read the data's bands ({data}) by the "
                         f"checkpoint's colours ({ckpt})" if self.reordered else
                         f"input weights read by position: the checkpoint's bands are {ckpt}, the data's {data}")
        if self.widened:
            parts.append(f"{len(self.widened)} head tensors given fresh rows for the instance outputs "
                         "(class rows kept)")
        if self.reinitialised:
            parts.append(f"{len(self.reinitialised)} re-initialised for the new classes")
        if self.left_random:
            parts.append(f"{len(self.left_random)} not in the checkpoint, left random "
                         f"({', '.join(self.left_random[:3])}{', ...' if len(self.left_random) > 3 else ''})")
        if self.unused:
            parts.append(f"{len(self.unused)} of the checkpoint unused ({', '.join(self.unused[:3])}"
                         f"{', ...' if len(self.unused) > 3 else ''})")
        return "; ".join(parts)


def input_tensors(model_name: str, model_kwargs: dict) -> set[str] | None:
    """The tensors of a model that read its input bands: those whose shape follows ``in_chans``.

    With them, a checkpoint of another band layout is adapted even where the shapes happen to
    agree (RGB + DSM into RGB + NIR: four channels each, other meanings), and no inner layer that
    happens to have as many channels as the input is touched. None when the model takes no ``in_chans``.
    """
    return _tensors_following(model_name, model_kwargs, "in_chans")


def head_tensors(model_name: str, model_kwargs: dict) -> set[str] | None:
    """The tensors whose shape follows ``num_classes``: the class heads, re-initialised for other classes
    even when the count agrees (six ISPRS classes into six SECOND classes)."""
    return _tensors_following(model_name, model_kwargs, "num_classes")


def _tensors_following(model_name: str, model_kwargs: dict, key: str) -> set[str] | None:
    """Tensors whose shape changes with ``key``: the model built twice on the meta device (no memory,
    no compute), the second time with one more. None when the model takes no such argument."""
    from rsmamba.models import create_model, model_info

    value = model_kwargs.get(key, model_info(model_name).defaults.get(key))
    if value is None:
        return None
    try:
        with torch.device("meta"):
            one = create_model(model_name, **{**model_kwargs, key: int(value)}).state_dict()
            more = create_model(model_name, **{**model_kwargs, key: int(value) + 1}).state_dict()
    except Exception:  # noqa: BLE001 - a model that cannot be built on meta: shapes alone decide, as before
        return None
    return {k for k, v in one.items() if k in more and more[k].shape != v.shape}


def _same_names(a: list[str], b: list[str]) -> bool:
    return [name_key(x) for x in a] == [name_key(x) for x in b]


def init_from_checkpoint(model: nn.Module, path: str | os.PathLike[str], *, image_bands: int, dsm: bool,
                         num_classes: int, extra: int = 0, inputs: set[str] | None = None,
                         class_names: list[str] | None = None, heads: set[str] | None = None,
                         instances: list[str] | None = None, colours: list[str] | None = None) -> InitReport:
    """Load ``path``'s weights into ``model`` (built for ``image_bands`` [+ DSM] and ``num_classes``).

    ``num_classes`` counts the head's outputs, of which the last ``extra`` are instance channels
    (named ``instances`` when known; else only their count is compared with the checkpoint's).
    ``inputs`` (:func:`input_tensors`) names the tensors that read the bands. ``class_names``: the
    data's classes; where the checkpoint's are others (other count, or as many with other names), the
    ``heads`` (:func:`head_tensors`) are re-initialised, not loaded as if class 0 were class 0, even
    where their shapes agree. Without ``heads`` only a head whose shape differs is recognised. ``colours``: the
    data's band colours; the input tensors' bands are reordered to them where they hold the checkpoint's. A checkpoint
    that fits nowhere (no tensor loaded) is refused: training from it would be training from scratch.
    """
    ckpt = load_checkpoint(path)
    check_finite(path, ckpt["state_dict"])
    src = {k.removeprefix("module."): v for k, v in ckpt["state_dict"].items()}  # DataParallel's wrapping
    src_image = len(ckpt["bands"]["image"])
    src_dsm = bool(ckpt["bands"].get("dsm"))
    src_classes = len(ckpt["classes"]) or int(ckpt["model_kwargs"].get("num_classes", 0))
    src_in = src_image + (1 if src_dsm else 0)
    src_outputs = [str(x) for x in (ckpt.get("instances") or {}).get("channels") or []]
    src_rows = src_classes + len(src_outputs)  # the head's outputs
    report = InitReport(str(path))
    target = model.state_dict()
    report.unused = [k for k in src if k not in target]
    other_layout = (src_image, src_dsm) != (image_bands, dsm)
    src_names = [str(c.get("name")) for c in ckpt["classes"] if isinstance(c, dict)]
    # the head's rows mean the same here as there: the same classes, then the same instance outputs
    same_classes = src_classes == num_classes - extra and not (
        class_names is not None and len(src_names) == len(class_names) and not _same_names(src_names, class_names))
    same_outputs = [str(x) for x in instances] == src_outputs if instances is not None else len(src_outputs) == extra
    src_learnt, data_learnt = learnt_colours(checkpoint_colours(ckpt, path)), learnt_colours(colours)
    # the data band (0-based) that each adapted input column goes to: the checkpoint's bands where the data
    # declare their colours (predict's rule, colour_reading: NRGB or BGR chips for an RGB model), the bands left
    # over after them in order; None where they are read by position
    order = None
    if src_learnt and data_learnt and src_image <= image_bands and inputs is not None:
        reading = colour_reading(src_learnt, list(range(1, src_image + 1)), data_learnt)
        if reading is None:  # a band of another colour where the checkpoint has one: by position, said
            report.colours = (src_learnt, data_learnt)
        elif reading != list(range(1, src_image + 1)):
            spare = [b for b in range(1, image_bands + 1) if b not in reading]
            placed = [b - 1 for b in [*reading, *spare]]  # adapted column j goes to data band placed[j]
            order = [placed.index(k) for k in range(image_bands)]  # data band k takes adapted column order[k]
            report.colours = (src_learnt, data_learnt)
    new_state = {}
    for name, dst in target.items():
        if name not in src:
            report.left_random.append(name)
            continue
        s = src[name]
        rows = s.shape[:1] == (src_rows,) and dst.shape[:1] == (num_classes,) and s.shape[1:] == dst.shape[1:]
        head = name in heads if heads is not None else rows and s.shape != dst.shape
        if head and not same_classes:  # other classes: the whole head starts fresh, as for another count
            report.reinitialised.append(name)
            continue
        if head and rows and not same_outputs:  # same classes, instance outputs added, dropped or changed
            new_state[name] = torch.cat([s[:src_classes].to(dst.dtype), dst[src_classes:]])
            report.widened.append(name)
            continue
        reads_bands = inputs is None or name in inputs
        by_colour = order is not None and name in inputs and s.dim() >= 2 and s.shape[1] in (src_in, src_image)
        if s.shape == dst.shape and not by_colour and not (
                other_layout and inputs is not None and name in inputs and s.dim() >= 2):
            new_state[name] = s
            report.loaded.append(name)
        elif (reads_bands and s.dim() >= 2 and dst.dim() == s.dim() and s.shape[0] == dst.shape[0]
              and s.shape[2:] == dst.shape[2:] and s.shape[1] in (src_in, src_image)):
            has_dsm_here = src_dsm and s.shape[1] == src_in
            new_state[name] = adapt_input_weight(s, src_image, has_dsm_here, image_bands,
                                                 dsm and dst.shape[1] == image_bands + 1)
            if new_state[name].shape != dst.shape:
                raise InputError(f"{path}: {name} {tuple(s.shape)} cannot be adapted to {tuple(dst.shape)}")
            if by_colour:  # each column to the data band of its colour; the DSM channel, if any, stays last
                w = new_state[name]
                new_state[name] = torch.cat([w[:, order], w[:, image_bands:]], 1).contiguous()
                report.reordered.append(name)
            else:  # reached only for another band layout or shape
                report.adapted.append(name)
        else:
            raise InputError(f"{path}: tensor {name} has shape {tuple(s.shape)} in the checkpoint but "
                             f"{tuple(dst.shape)} in the model; is it the same model ({ckpt['model']})?")
    if not report.loaded and not report.adapted:
        raise InputError(f"{path}: none of its {len(src)} tensors fits model {type(model).__name__} by name (first "
                         f"of the checkpoint: {next(iter(src), 'none')}; of the model: {next(iter(target), 'none')})")
    model.load_state_dict(new_state, strict=False)
    return report


def set_frozen(model: nn.Module, prefixes: list[str], frozen: bool) -> int:
    """Freeze (or unfreeze) the parameters whose names start with one of ``prefixes``; returns how many."""
    n = 0
    for name, p in model.named_parameters():
        if any(name.startswith(x) for x in prefixes):
            p.requires_grad_(not frozen)
            n += 1
    if prefixes and n == 0:
        raise InputError(f"train.freeze_prefixes {prefixes}: no parameter of the model starts with these")
    return n


BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def hold_frozen_norms(model: nn.Module, prefixes: list[str]) -> None:
    """After ``model.train()``: batch norms under frozen prefixes keep their running statistics (eval mode).

    A frozen pretrained stage is frozen whole: its normalisation statistics drifting towards the new
    data's first batches would change what its frozen weights compute, as detectron2 freezes them.
    """
    for name, module in model.named_modules():
        if isinstance(module, BATCH_NORMS) and any(f"{name}.".startswith(x) for x in prefixes):
            module.eval()
