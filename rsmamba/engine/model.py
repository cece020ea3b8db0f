"""Loading a model for prediction and running it on batches of windows.

A checkpoint carries everything that must match the input (bands, DSM, normalisation, class
table); predict checks the input against it before any work starts, and says what the model
expects when they differ.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from rsmamba.classes import ISPRS_CLASSES, ClassInfo, classes_from_dicts
from rsmamba.errors import InputError
from rsmamba.paths import names_a_file
from rsmamba.engine.tta import TTAPlan, check_plan, parse_tta, tta_average
from rsmamba.runlog import warn_once

log = logging.getLogger(__name__)

DEMO_MODEL = Path(__file__).resolve().parents[1] / "data" / "demo_model.pt"
DEMO_CHANGE_MODEL = Path(__file__).resolve().parents[1] / "data" / "demo_change_model.pt"
# predict's default without a DSM: the image-only model (most users have no DSM); with one, DEMO_MODEL.
DEMO_IMAGE_MODEL = Path(__file__).resolve().parents[1] / "data" / "demo_image_model.pt"
CHANGE_TASKS = ("change", "semantic-change")
# Registered networks state the window sides they take (``input_multiple``, or a ``fixed_input_size``);
# windows are padded to that (at least one multiple) and the output cropped back, so a raster smaller
# than the window or of any size predicts. 32 (five halvings) for a network that states nothing.
# A module passed in directly runs as given.
INPUT_MULTIPLE = 32
DEFAULT_WINDOW = 512  # px; predict's and change's window for a model that names none (overlap: a quarter)


@dataclass
class LoadedModel:
    """A network plus what predict needs to feed it and label its output."""

    module: nn.Module
    name: str = "custom"
    inputs: str = "image"  # "image" (a DSM, if any, is concatenated) or "image+dsm" (forward(image, aux))
    classes: tuple[ClassInfo, ...] = ISPRS_CLASSES
    bands: list[int] | None = None  # 1-based image bands the model was trained on; None: all
    # their colour interpretation in the training raster (checkpoint bands.colours: red, green, blue, ...);
    # None: not recorded (checkpoints before 2026-12-05; benchmark layouts' before their colours were)
    colours: tuple[str, ...] | None = None
    # what its training files declared instead (checkpoint bands.declared: ISPRS IRRG tiles declare red, green, blue)
    declared: tuple[str, ...] | None = None
    uses_dsm: bool = False
    image_norm: dict[str, list[float]] | None = None  # {"mean": [...], "std": [...]}; None: from the raster
    dsm_norm: dict[str, Any] | None = None  # {"mode": one of raster.normalize.DSM_MODES, "mean", "std"}
    in_chans: int | None = None  # channels the first layer takes (image bands + DSM when concatenated)
    input_multiple: int | None = None  # window sides the network needs (padded to); None: any size
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # trailing sigmoid outputs of a widened head (issue #17), e.g. ("interior", "contact")
    instance_channels: tuple[str, ...] = ()
    # (window, overlap) the model is run at when the user names none (checkpoint "inference"); None: 512/128
    window: tuple[int, int] | None = None
    # test-time augmentation it is run with when the user names none (checkpoint "inference"; a spec of
    # rsmamba.engine.tta, e.g. "d4"); None: plain
    tta: str | None = None
    # (finest, coarsest) pixel size in metres it was trained or validated at (checkpoint "gsd_m"); predict
    # and change warn on an image far outside it (rsmamba.raster.validate.check_gsd). None: not recorded
    gsd_m: tuple[float, float] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def num_outputs(self) -> int:
        """Probability channels per pixel: the classes, then the instance channels."""
        return len(self.classes) + len(self.instance_channels)


def inference_window(model: LoadedModel, window: int | None, overlap: int | None) -> tuple[int, int, str]:
    """(window, overlap, where they came from) of a run: as given, else the model's own, else 512 px.

    Why a model names its window: in windows larger than its training chips, its scans and attention
    run over longer sequences than it learned on (and a DSM normalised per window, ``minmax-window``,
    changes with the window). An image+DSM model trained on 128 px chips (the one shipped before
    2026-12-05) scored building IoU 0.659 on an overcast 0.5 m scene at 128/32 and 0.383 at 512/128.
    An overlap given with no window keeps the model's window; a window given with no overlap
    overlaps by a quarter of it.
    """
    if window is not None:
        return window, (window // 4 if overlap is None else overlap), "given"
    if model.window is not None:
        own_window, own_overlap = model.window
        return own_window, (own_overlap if overlap is None else overlap), "the model's"
    return DEFAULT_WINDOW, (DEFAULT_WINDOW // 4 if overlap is None else overlap), "default"


def _checkpoint_window(ckpt: dict[str, Any]) -> tuple[int, int] | None:
    """The checkpoint's ``inference`` window, checked: a bad one is the file's fault, said in one line."""
    spec = ckpt.get("inference") or {}
    if "window" not in spec:
        return None
    try:
        window, overlap = int(spec["window"]), int(spec.get("overlap", int(spec["window"]) // 4))
    except (TypeError, ValueError):
        window, overlap = 0, 0
    if not (window > 0 and 0 <= overlap < window):
        raise InputError(f"checkpoint inference window {spec!r} is not a window > 0 with 0 <= overlap < window")
    return window, overlap


def inference_tta(model: LoadedModel, tta: bool | str | TTAPlan | None) -> tuple[bool | str | TTAPlan, str]:
    """(tta spec, where it came from) of a run: as given (``False``/``"none"``: plain), else the model's own.

    Why a model names its TTA: averaging mirrored and turned windows costs passes but no training, and
    for a model that needs it (the shipped image-only one: building IoU 0.769 -> 0.803 on an overcast
    0.5 m selection row with D4) it belongs to how the model is run, as its window does.
    """
    if tta is not None:
        return tta, "given"
    if model.tta is not None:
        return model.tta, "the model's"
    return False, "default"


def resolved_settings(model: LoadedModel, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` of a run with what it would resolve itself: the model's file, window, overlap, TTA and bands.

    A batch folder records the settings its outputs were made with (``rsmamba.jobs``); an omitted
    ``--window`` and ``--window 512`` equal to the model's own, or the default model named by its
    path, are the same settings and must read so. ``--bands`` naming the bands the model reads
    (its checkpoint's) is recorded as not given (None), as a folder recorded before read it.
    ``model`` is loaded without reading a scene, so the settings are the same whichever scene comes first.
    """
    window, overlap, _ = inference_window(model, options.get("window"), options.get("overlap"))
    tta, _ = inference_tta(model, options.get("tta"))
    plan = tta if isinstance(tta, TTAPlan) else parse_tta(tta, model.extra.get("config"), model.source or model.name)
    bands = options.get("bands")
    if bands is not None and model.bands is not None and list(bands) == list(model.bands):
        bands = None
    return {**options, "model": model.source, "window": window, "overlap": overlap, "tta": plan.spec(), "bands": bands}


def _checkpoint_tta(ckpt: dict[str, Any]) -> str | None:
    """The checkpoint's ``inference`` TTA spec, checked like a user's (``recipe`` needs the checkpoint's config)."""
    spec = (ckpt.get("inference") or {}).get("tta")
    if spec is None:
        return None
    try:
        parse_tta(str(spec), ckpt.get("config"), "the checkpoint")
    except InputError as exc:
        raise InputError(f"checkpoint inference tta {spec!r}: {exc}") from None
    return str(spec)


def _checkpoint_gsd(ckpt: dict[str, Any]) -> tuple[float, float] | None:
    """The checkpoint's ``gsd_m`` [finest, coarsest] in metres, checked."""
    spec = ckpt.get("gsd_m")
    if spec is None:
        return None
    try:
        lo, hi = (float(v) for v in spec)
    except (TypeError, ValueError):
        lo, hi = 0.0, 0.0
    if not 0 < lo <= hi:
        raise InputError(f"checkpoint gsd_m {spec!r} is not [finest, coarsest] pixel sizes in metres, 0 < finest <= coarsest")
    return lo, hi


def default_classes(n: int) -> tuple[ClassInfo, ...]:
    """Names and colours for a model that carries none (an untrained registry model): ISPRS's six, else numbered."""
    if n == len(ISPRS_CLASSES):
        return ISPRS_CLASSES
    rng = np.random.default_rng(n)
    return tuple(ClassInfo(i, f"class_{i}", tuple(int(c) for c in rng.integers(0, 256, 3))) for i in range(n))


# What each verb runs: the registry tasks it takes, its shipped default, what to say when that is missing.
_VERB_TASKS = {
    "predict": (("segmentation",), "DEMO_MODEL", "a segmentation model", "demo model"),
    "change": (CHANGE_TASKS, "DEMO_CHANGE_MODEL", "a change model (e.g. mambafcs_tiny)", "demo change model"),
}


def default_model_path(verb: str = "predict", has_dsm: bool = False) -> Path:
    """The shipped checkpoint a verb runs without --model: for predict, image-only unless a DSM is given."""
    if verb == "predict" and not has_dsm and DEMO_IMAGE_MODEL.is_file():
        return DEMO_IMAGE_MODEL
    return DEMO_MODEL if verb == "predict" else DEMO_CHANGE_MODEL  # looked up now: tests swap them


def load_model(spec: str | Path | nn.Module | LoadedModel | None, *, image_count: int, has_dsm: bool = False,
               verb: str = "predict") -> LoadedModel:
    """A checkpoint path, a registry name (untrained, for benchmarks), a module, or the shipped model.

    ``verb``: ``"predict"`` takes segmentation models, ``"change"`` change and semantic-change models.
    """
    tasks, shipped_name, wanted, label = _VERB_TASKS[verb]
    shipped: Path = globals()[shipped_name]  # looked up per call: an installation may lack it (tests patch it)
    if isinstance(spec, LoadedModel):
        return spec
    if isinstance(spec, nn.Module):
        if verb == "change":
            return LoadedModel(spec, inputs="t1+t2", source="module", extra={"task": "semantic-change"})
        return LoadedModel(spec, source="module")
    if spec is None:
        shipped = default_model_path(verb, has_dsm)
        if not shipped.is_file():
            raise InputError(f"no --model given and the shipped {label} ({shipped.name}) is missing from this "
                             "installation; pass --model CHECKPOINT.pt or a registered model name")
        loaded = _from_checkpoint(shipped, tasks, verb)
        loaded.extra["shipped_default"] = True
        return loaded
    if names_a_file(spec):
        return _from_checkpoint(Path(spec), tasks, verb)
    from rsmamba.models import create_model, model_info

    info = model_info(str(spec))  # InputError listing the known names
    if info.task not in tasks:
        raise InputError(f"model {spec!r} is a {info.task} model; {verb} needs {wanted}")
    if info.inputs == "image+dsm" and not has_dsm:  # its DSM branch would take an image band as the DSM
        raise InputError(f"model {spec!r} reads an image and a DSM; pass --dsm")
    concat = has_dsm and info.inputs == "image"
    in_chans = image_count + (1 if concat else 0)
    module = create_model(str(spec), in_chans=in_chans)
    # a name runs the architecture with random weights (benchmarks, tests): exit 0 and 40 % change, unsaid
    warn_once(log, f"model {spec!r}: a registered architecture with untrained (random) weights, for benchmarks "
                   "and tests: its output means nothing; pass a checkpoint (rsmamba train writes one), or leave "
                   "--model out for the shipped model")
    num_classes = int(info.defaults.get("num_classes", len(ISPRS_CLASSES)))
    return LoadedModel(module, name=str(spec), inputs=info.inputs, classes=default_classes(num_classes),
                       uses_dsm=has_dsm and verb == "predict", in_chans=in_chans,
                       source=f"registry:{spec} (untrained)", extra={"task": info.task} if verb == "change" else {},
                       input_multiple=getattr(module, "input_multiple", INPUT_MULTIPLE))


def _from_checkpoint(path: Path, tasks: tuple[str, ...], verb: str) -> LoadedModel:
    from rsmamba.checkpoint import build_from_checkpoint

    ckpt, info, module = build_from_checkpoint(path, tasks, verb)
    bands = ckpt.get("bands") or {}
    norm = ckpt.get("normalization") or {}
    image_bands = bands.get("image")
    calibration = ckpt.get("calibration") or {}
    extra = ({"task": info.task, "t2_norm": norm.get("t2"), "change_threshold": calibration.get("change_threshold"),
              "change_min_area_m2": calibration.get("min_area_m2"),
              "land_cover_trained": ckpt.get("land_cover_trained")} if verb == "change"
             else {"config": ckpt.get("config", {})})
    colours = checkpoint_colours(ckpt, path)
    return LoadedModel(
        module, name=ckpt["model"], inputs=info.inputs, classes=classes_from_dicts(ckpt["classes"]),
        bands=list(image_bands) if image_bands else None, uses_dsm=bool(bands.get("dsm")) and verb == "predict",
        colours=colours, declared=tuple(str(c) for c in bands["declared"])
        if colours and isinstance(bands.get("declared"), list) and len(bands["declared"]) == len(colours) else None,
        image_norm=norm.get("image"), dsm_norm=norm.get("dsm") if verb == "predict" else None,
        in_chans=ckpt["model_kwargs"].get("in_chans"), source=str(path), extra=extra,
        input_multiple=getattr(module, "input_multiple", INPUT_MULTIPLE),
        instance_channels=tuple((ckpt.get("instances") or {}).get("channels") or ()),
        window=_checkpoint_window(ckpt), tta=_checkpoint_tta(ckpt), gsd_m=_checkpoint_gsd(ckpt),
    )


def checkpoint_colours(ckpt: dict, path: str | os.PathLike[str]) -> tuple[str, ...] | None:
    """The colours of a checkpoint's image bands (``bands.colours``), None where it records none; the shipped
    models, trained on synth's RGB orthos before colours were recorded, read red, green, blue."""
    bands = ckpt.get("bands") or {}
    if isinstance(bands.get("colours"), list):
        return tuple(str(c) for c in bands["colours"])
    shipped = {p.resolve() for p in (DEMO_MODEL, DEMO_IMAGE_MODEL, DEMO_CHANGE_MODEL)}
    image = bands.get("image")
    return ("red", "green", "blue") if Path(path).resolve() in shipped and image and len(image) == 3 else None


def check_input(model: LoadedModel, *, image_count: int, image_path: Any, has_dsm: bool,
                bands: list[int] | None) -> list[int]:
    """The 1-based bands to read; raises InputError listing every mismatch with the model."""
    problems: list[str] = []
    chosen = bands or model.bands or list(range(1, image_count + 1))
    out_of_range = [b for b in chosen if not 1 <= b <= image_count]
    has = f"has {image_count} band{'s' * (image_count != 1)}"
    if out_of_range and bands:
        outside = ",".join(map(str, out_of_range))  # band 0 is no band 'beyond' a 3-band image
        problems.append(f"image {image_path}: {has}; --bands {','.join(map(str, bands))} names band"
                        f"{'s' * (len(out_of_range) > 1)} {outside}, outside 1..{image_count}")
    elif out_of_range and image_count < len(chosen):  # no --bands can choose 4 of 3 ('pass --bands' was the advice)
        learnt = f" ({', '.join(model.colours)})" if model.colours else ""
        problems.append(f"image {image_path}: {has}, but the model reads {len(chosen)}{learnt}; give an image of "
                        f"those bands, or use a model trained on {image_count} band{'s' * (image_count != 1)}")
    elif out_of_range:
        problems.append(f"image {image_path}: {has}, but the model reads bands {chosen} "
                        f"({len(chosen)} bands); "
                        + (f"pass --bands to choose {len(chosen)} of its bands" if image_count > 1 else
                           "use a model trained on one band, or give the image's colour bands"))
    elif model.bands is not None and len(chosen) != len(model.bands):
        problems.append(f"model {model.source} expects {len(model.bands)} image bands ({model.bands}), "
                        f"but {len(chosen)} were selected from {image_path}")
    expected = model.in_chans
    if expected is not None and not out_of_range:
        got = len(chosen) + (1 if (model.uses_dsm and model.inputs == "image") else 0)
        if got != expected and model.bands is None:
            problems.append(f"model {model.source} expects {expected} input channels, "
                            f"image {image_path} gives {got} ({image_count} bands)")
    if model.image_norm is not None and not out_of_range and len(model.image_norm["mean"]) != len(chosen):
        problems.append(f"model {model.source} normalises {len(model.image_norm['mean'])} bands, got {len(chosen)}")
    if model.uses_dsm and not has_dsm:
        problems.append(f"model {model.source} was trained with a DSM; pass --dsm")
    if has_dsm and not model.uses_dsm:
        problems.append(f"model {model.source} was trained without a DSM; drop --dsm")
    if problems:
        raise InputError(problems)
    return chosen




def model_input_size(module: nn.Module, multiple: int, h: int, w: int) -> tuple[int, int]:
    """The window size the network takes for an (h, w) window: its ``fixed_input_size`` when it has
    one (and the window fits), else the sides rounded up to positive multiples of ``multiple``."""
    fixed = getattr(module, "fixed_input_size", None)
    if fixed is not None and h <= fixed[0] and w <= fixed[1]:
        return int(fixed[0]), int(fixed[1])
    smallest = -(-INPUT_MULTIPLE // multiple) * multiple  # some networks need 32 px even at stride 16
    return max(smallest, -(-h // multiple) * multiple), max(smallest, -(-w // multiple) * multiple)


def pad_for_network(module: nn.Module, x: torch.Tensor, multiple: int | None = None) -> torch.Tensor:
    """(B, C, h, w) padded as predict pads a window for ``module`` (:func:`model_input_size`: its
    ``input_multiple``, else :data:`INPUT_MULTIPLE`, at least 32 px; its ``fixed_input_size``); the caller crops
    the output back to (h, w). Validation pads so too: a 24 px view of multi-scale evaluation ran unpadded there,
    scored otherwise than predict maps it."""
    multiple = multiple or getattr(module, "input_multiple", INPUT_MULTIPLE)
    h, w = x.shape[-2:]
    return pad_to_multiple(x, multiple, model_input_size(module, multiple, h, w))


def pad_to_multiple(x: torch.Tensor, multiple: int, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Pad (B, C, h, w) at the bottom/right to ``size``, or to sides that are positive multiples of ``multiple``.

    Reflection where the map is large enough (no artificial edge), replication otherwise (a 1 x 1
    raster); the caller crops the output back to (h, w).
    """
    h, w = x.shape[-2:]
    th, tw = size or (max(multiple, -(-h // multiple) * multiple), max(multiple, -(-w // multiple) * multiple))
    ph, pw = th - h, tw - w
    if not (ph or pw):
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return torch.nn.functional.pad(x, (0, pw, 0, ph), mode=mode)


DEVICE_TYPES = ("cpu", "cuda", "mps")  # the devices the models and kernels are built and tested for


def torch_device(name: str | torch.device, option: str = "--device") -> torch.device:
    """``name`` as a torch device (``auto``: a GPU when this machine has one, e.g. a Dask worker's); a string
    torch cannot parse (``cuda:abc``, ``../x``) is one line."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise InputError(f"{option} {name!r}: not a device (auto, cpu, cuda, cuda:1, ...)") from None
    if device.type not in DEVICE_TYPES:  # xpu, meta, xla: parsed, then a traceback at the first tensor moved
        raise InputError(f"{option} {name}: rsmamba runs on {', '.join(DEVICE_TYPES)} (auto, cpu, cuda, cuda:1, mps)")
    return device


def main_output(out: Any, model: LoadedModel, keys: tuple[str, ...] = ("out", "seg")) -> torch.Tensor:
    """The segmentation logits of a network's answer: a tensor, a dict's ``out`` / ``seg``, or the first of a
    tuple (the main head before auxiliary ones); anything else is one line naming what came back."""
    if isinstance(out, dict):
        key = next((k for k in keys if k in out), None)
        if key is None:
            raise InputError(f"model {model.source or model.name} returns a dict of {sorted(out)}; "
                             f"predict reads its {' or '.join(repr(k) for k in keys)}")
        out = out[key]
    elif isinstance(out, (tuple, list)) and out:
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise InputError(f"model {model.source or model.name} returns a {type(out).__name__}, not a tensor of logits")
    return out


def bands_by_colour(model: LoadedModel, chosen: list[int], colours: list[str], image: Any,
                    notes: list[str] | None = None, *, role: str = "image", say: bool = True) -> list[int]:
    """The image bands to read when the image declares its band order (GDAL colour interpretation).

    ``role``: how the file is named in messages (``t1``, ``t2``); ``say``: whether a reading by colour is warned
    (False where the caller's source says it: a change run's t2, matched to t1's colours).

    A BGR ortho read by position fed blue as red (39.6 % of a map as it should be), and a NIR,R,G,B
    one NIR as red, unsaid. A model that records its bands' colours (checkpoint ``bands.colours``, any
    of them: red, green, blue, nir, ...) reads them by colour; one that records none (trained before
    they were recorded) is refused when the image's red, green and blue are not the bands it would read,
    in that order: only the user knows which order it learnt.
    """
    from rsmamba.raster.source import NO_COLOUR, RGB, colour_reading, declared_colours, declared_rgb, learnt_colours

    wanted = learnt_colours(model.colours)
    if (wanted is not None and model.declared and [colours[b - 1] for b in chosen] == list(model.declared)
            and not all(name in NO_COLOUR or name in declared_colours(colours) for name in wanted)):
        # the colours its benchmark's files declared (an ISPRS IRRG tile declares red, green, blue): its own tiles,
        # or an image truly of those colours, which nothing tells apart; read as trained, and said
        note = (f"{role} {image}: its bands declare the colours {', '.join(model.declared)}, as the benchmark tiles "
                f"model {model.source} learnt as {', '.join(wanted)} do; read as {', '.join(wanted)} (bands "
                f"{','.join(map(str, chosen))}): an image truly of {', '.join(model.declared)} is misread")
        warn_once(log, note)
        if notes is not None:
            notes.append(note)
        return chosen
    by_colour = colour_reading(model.colours, chosen, colours)  # the rule (folders of one model share it)
    if by_colour is not None:
        if by_colour != chosen:
            note = (f"{role} {image}: its bands declare the colours {', '.join(colours)}; read as "
                    f"{', '.join(wanted or ())} (bands {','.join(map(str, by_colour))}), the model's order "
                    "(--bands reads others)")
            if say:
                warn_once(log, note)
                if notes is not None:  # the run's summary records it too
                    notes.append(note)
        return by_colour
    if wanted is not None:  # a band read as a colour it does not declare (an IRRG ortho's red read as green)
        declared = declared_colours(colours)
        missing = [name for name in wanted if name not in NO_COLOUR and name not in declared]  # IRRG via RGB
        raise InputError(f"{role} {image}: its bands declare the colours {', '.join(colours)}; model {model.source} "
                         f"reads {', '.join(wanted)}" + (f", and the image has no {', '.join(missing)}" if missing else "")
                         + f": choose {len(wanted)} bands with --bands to read them anyway, or use a model trained on such bands")
    rgb = declared_rgb(colours) or {}  # a model of no colours: the image's red, green, blue read in another order
    order = ",".join(str(rgb[name]) for name in RGB)
    raise InputError(f"{role} {image}: its bands {','.join(map(str, chosen))} declare the colours "
                     f"{', '.join(colours[b - 1] for b in chosen)}, and model {model.source} records no band colours "
                     f"to read them by; pass --bands {order} to read red, green, blue, or --bands "
                     f"{','.join(map(str, chosen))} to read them as stored")


@contextlib.contextmanager
def callers_randomness_kept(cuda: bool = True) -> Iterator[None]:
    """The global generators (random, numpy, torch) and cudnn's flags handed back as the caller left them: a run
    seeds them for itself (train), or draws from them building a network before its weights load (predict,
    change); a seeded script gets its own stream back afterwards. ``cuda``: the CUDA generators too when there is
    a GPU (reading them starts CUDA); without it only when CUDA is already started (inference draws none there)."""
    import random

    keep_cuda = torch.cuda.is_initialized() or (cuda and torch.cuda.is_available())
    states = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
              torch.cuda.get_rng_state_all() if keep_cuda else None)
    flags = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if states[3] is not None:
            torch.cuda.set_rng_state_all(states[3])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = flags


@contextlib.contextmanager
def caller_module_kept(model: object) -> Iterator[None]:
    """Hand a caller's network back as it came: predict puts it in eval mode on its device (channels-last on
    request), and a caller validating inside its own training loop would go on training with BatchNorm frozen
    and dropout off. A model rsmamba loads itself (a path, a name, the shipped one) is not touched."""
    module = model.module if isinstance(model, LoadedModel) else model
    if not isinstance(module, nn.Module):
        yield
        return
    training = module.training
    first = next(module.parameters(), None)
    device = first.device if first is not None else None
    dense = [p for p in module.parameters() if p.dim() == 4 and p.is_contiguous()]
    try:
        yield
    finally:
        module.train(training)
        if device is not None and next(module.parameters()).device != device:
            module.to(device)
        if any(not p.is_contiguous() for p in dense):
            module.to(memory_format=torch.contiguous_format)


def without_fillers(logits: torch.Tensor, model: LoadedModel) -> torch.Tensor:
    """(B, C, H, W) class logits with the model's filler ids (a class table's gaps, its labels' ignore value) at
    -inf: never a pixel's answer, as training never scores them (predict's classes, change's sem1/sem2)."""
    fillers = [c.id for c in model.classes if c.filler]
    if not fillers:
        return logits
    logits = logits.float().clone()
    logits[:, fillers] = float("-inf")
    return logits


class Predictor:
    """Runs a segmentation network on a batch of windows and returns class probabilities.

    The shared batch runner of predict and change (``ChangePredictor`` overrides ``_forward``):
    padding to ``INPUT_MULTIPLE``, test-time augmentation (:mod:`rsmamba.engine.tta`) and mixed
    precision live here once.
    """

    def __init__(self, model: LoadedModel, *, device: str = "cpu", tta: bool | str | TTAPlan | None = None,
                 amp: bool = False, channels_last: bool = False, mirrors: tuple[bool, bool] = (False, False)) -> None:
        self.model = model
        # (up-down, left-right) mirrors of the raster's grid against north up (raster.source.grid_mirrors):
        # the network sees every window north up, and its probabilities go back onto the raster's grid
        self.mirrors = mirrors
        self.device = torch_device(device)
        spec, self.tta_source = inference_tta(model, tta)  # None: the model's own (else plain)
        self.tta = parse_tta(spec, model.extra.get("config"), model.source or model.name)  # see rsmamba.engine.tta
        check_plan(self.tta, model.module, model.source or model.name)
        self.amp = amp
        self.channels_last = channels_last
        module = model.module.to(self.device).eval()
        if channels_last:
            module = module.to(memory_format=torch.channels_last)
        self.module = module

    @property
    def amp_dtype(self) -> torch.dtype:
        """The mixed precision of ``amp``: bf16 on the CPU, fp16 on a GPU."""
        return torch.bfloat16 if self.device.type == "cpu" else torch.float16

    def placement(self) -> str:
        """Where and how the network runs, for a summary: 'cpu', or 'cuda:0 in mixed precision (fp16)' with amp
        (a run's probabilities differ from a full-precision run's: the summary said only 'on cpu')."""
        if not self.amp:
            return str(self.device)
        return f"{self.device} in mixed precision ({'bf16' if self.amp_dtype == torch.bfloat16 else 'fp16'})"

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.model.inputs == "image+dsm":
            logits = self.module(x[:, :-1], x[:, -1:])
        else:
            logits = self.module(x)
        logits = main_output(logits, self.model)
        if logits.dim() != 4 or logits.shape[1] != self.model.num_outputs:  # else a broadcast error deep in the stitcher
            raise InputError(f"model {self.model.source or self.model.name} returns {tuple(logits.shape)} for a "
                             f"batch, not (B, {self.model.num_outputs}, H, W): {self.model.num_classes} classes"
                             + (f" + {len(self.model.instance_channels)} instance channels" if self.model.instance_channels else "")
                             + " (a bare module is taken for the 6 ISPRS classes: wrap it in a LoadedModel with its classes)")
        logits = without_fillers(logits, self.model)
        k = len(self.model.instance_channels)
        if k:  # class softmax, then an independent sigmoid per instance channel
            logits = logits.float()
            return torch.cat([torch.softmax(logits[:, :-k], dim=1), torch.sigmoid(logits[:, -k:])], dim=1)
        return torch.softmax(logits.float(), dim=1)

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities for a batch of any size: padded to what the network takes, cropped back."""
        h, w = x.shape[-2:]
        if self.model.input_multiple:
            x = pad_for_network(self.model.module, x, self.model.input_multiple)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self._forward(x)[:, :, :h, :w]

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> torch.Tensor:
        """(B, C, h, w) float32 -> (B, K, h, w) float32 probabilities, on the model's device.

        They stay there: blending and rendering run on the same device (``rsmamba.engine.pipeline``).
        Plain or augmented, every batch goes through :func:`tta_average` (one view: no averaging).
        """
        x = torch.from_numpy(batch).to(self.device, non_blocking=True)
        h, w = x.shape[-2:]
        dtype = self.amp_dtype
        dims = [d for d, m in zip((2, 3), self.mirrors) if m]
        if dims:
            x = x.flip(dims)
        with torch.autocast(self.device.type, dtype=dtype, enabled=self.amp):
            probs = tta_average(self._net, x, self.tta)
        if dims:
            probs = probs.flip(dims)
        return probs[:, :, :h, :w].float()  # stays on the device: the engine blends there
