"""``rsmamba import-weights``: the authors' published full-model weights as an rsmamba checkpoint.

A recipe (``rsmamba/data/configs``) fixes what the authors' weights lack: the model and its
structure options, the classes, the bands and the normalisation. Their file is read without
unpickling code (:func:`~rsmamba.models.weights.load_weights_file`), its container and name prefixes
are unwrapped (:func:`~rsmamba.models.weights.unwrap_state`, as ``model.pretrained`` files are: a bare
state dict, as FMTUNet's and Mamba-FCS's scripts save; ``{"state_dict": ...}``, as MambaSeg's trainer and
PyTorch Lightning save; ``{"model": ...}``; an EMA copy; ``module.`` from DataParallel, ``net.`` / ``model.``
from a Lightning module), the known differences are mapped, and the weights load
strictly or not at all. The checkpoint written is the one a ``train`` run of the recipe would write,
so ``predict``, ``change``, ``train --init`` and ``train --test`` take it as they take ours.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from rsmamba.checkpoint import check_finite, save_checkpoint, state_dict_mismatch
from rsmamba.errors import InputError

# The structure options of the authors' code where our default differs (docs/models.md); their weights
# were trained with these, so these are what reproduces their network. A --set model.kwargs.<key> wins.
AUTHORS_KWARGS: dict[str, dict[str, Any]] = {
    "mambafcs": {"cga": "change_to_semantic"},
    "fmtunet": {"stem_pool_padding": 0, "deformable_grid": "authors"},
    "cmtunet": {"msaa": False, "rcm": False, "wavelet": "haar"},
}


@dataclass
class ImportReport:
    """What was done to the authors' file on its way into the checkpoint, said in a few lines."""

    source: str
    out: Path
    model: str
    tensors: int = 0
    unwrapped: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    mapped: list[str] = field(default_factory=list)
    structure: dict[str, Any] = field(default_factory=dict)
    filled: int = 0  # BatchNorm num_batches_tracked counters the file lacks
    converted: dict[str, int] = field(default_factory=dict)  # "float16 to float32" -> tensors cast so

    def describe(self) -> str:
        lines = [f"{self.tensors} tensors of {self.source} -> {self.out} (model {self.model})"]
        if self.unwrapped:
            lines.append(f"unwrapped: {', '.join(self.unwrapped)}")
        if self.renamed:
            lines.append(f"renamed: {', '.join(self.renamed)}")
        if self.structure:
            lines.append("authors' structure: " + ", ".join(f"{k}={v!r}" for k, v in self.structure.items()))
        for line in self.mapped:
            lines.append(f"mapped: {line}")
        if self.filled:
            lines.append(f"filled: {self.filled} BatchNorm num_batches_tracked counter{'s' * (self.filled != 1)} the "
                         "file lacks, with 0, as PyTorch's load_state_dict fills them (an older or converted save)")
        for cast, count in self.converted.items():  # (loading would cast them: said, as the file's precision)
            source, target = cast.split(" to ")
            lines.append(f"converted: {count} {source} tensor{'s' * (count != 1)} to {target}, as the model holds "
                         "them and train's checkpoints store them")
        return "\n".join(lines)


def fill_batchnorm_counters(model: torch.nn.Module, state: dict) -> int:
    """Add each BatchNorm ``num_batches_tracked`` the state lacks, as 0, and say how many: PyTorch's own strict
    ``load_state_dict`` fills them so (a state dict without version metadata, as torch < 0.4.1 saved it and
    converted checkpoints hold it); they count batches, and only a BatchNorm with ``momentum=None`` reads them.
    Every other tensor stays strict."""
    from torch.nn.modules.batchnorm import _NormBase

    filled = 0
    for name, module in model.named_modules():
        if isinstance(module, _NormBase) and module.track_running_stats:
            key = f"{name}.num_batches_tracked" if name else "num_batches_tracked"
            if key not in state:
                state[key] = torch.tensor(0, dtype=torch.long)
                filled += 1
    return filled


def cast_to_model(model: torch.nn.Module, state: dict) -> dict[str, int]:
    """Cast the floating tensors stored in another precision (half, bfloat16, double) to the model's own, as
    train writes them; {"float16 to float32": count} of those cast. Loading casts them anyway: the checkpoint holds what runs."""
    target = model.state_dict()
    cast: dict[str, int] = {}
    for key, value in state.items():
        want = target[key].dtype if key in target else None
        if want is not None and value.is_floating_point() and target[key].is_floating_point() and value.dtype != want:
            state[key] = value.to(want)
            name = f"{str(value.dtype).removeprefix('torch.')} to {str(want).removeprefix('torch.')}"
            cast[name] = cast.get(name, 0) + 1
    return cast


def _map_mambafcs_head(state: dict, kwargs: dict, num_classes: int) -> str | None:
    """Mamba-FCS: the authors' SECOND head has 7 outputs, row 0 "background" (unchanged; their loss turns
    label 0 into 255, ignored, so it is never a target), rows 1..6 the land cover. Their inference takes the
    argmax over all 7, then zeroes the unchanged pixels. The rows mix inside the head (its three branches go
    through a shared channel and spatial attention), so no 6-output head computes rows 1..6: the head is
    kept whole (``unchanged_row``) and its output is rows 1..6, ours 0..5."""
    weight = state.get("aux_clf.final_conv.0.weight")
    if weight is None or weight.shape[0] != num_classes + 1 or kwargs.get("unchanged_row") is False:
        return None
    kwargs["unchanged_row"] = True
    return (f"semantic head: {num_classes + 1} outputs, row 0 the authors' 'background' (unchanged, never a "
            f"target) kept in the head and dropped from its output (unchanged_row), rows 1..{num_classes} -> "
            f"classes 0..{num_classes - 1}; the argmax equals theirs wherever theirs is a land-cover class "
            "(where theirs is row 0 on a changed pixel they write class 0, this model the best land cover)")


def _map_cmtunet_haar(state: dict) -> str | None:
    """CMT-UNet: the authors' patch merging concatenates pytorch_wavelets' Haar bands (LL, high-pass along H, along
    W, HH), ours :func:`~rsmamba.models.wavelet.haar_dwt`'s (LL, along W, along H, HH): the LayerNorm(4C) and the
    Linear(4C -> 2C) after it read channel blocks 1 and 2 swapped. Their weights, mapped into our order, compute
    their network; loaded as they are, every merging mixed the two edge directions up."""
    from rsmamba.models.wavelet import PYTORCH_WAVELETS_ORDER

    keys = sorted(k for k in state if ".downsamples." in k and k.endswith((".norm.weight", ".norm.bias",
                                                                           ".reduction.weight")))
    if not keys:
        return None
    theirs = [PYTORCH_WAVELETS_ORDER.index(band) for band in range(4)]  # the block of theirs holding our band i
    for key in keys:
        t = state[key]
        blocks = t.reshape(*t.shape[:-1], 4, t.shape[-1] // 4)  # the last axis is the 4C channels, band-major
        state[key] = blocks[..., theirs, :].reshape(t.shape).clone()
    return (f"patch merging ({len(keys)} tensors): pytorch_wavelets' Haar bands (LL, H, W, HH) into this model's order "
            "(LL, W, H, HH)")


def _other_family(state: Sequence[str], family: str) -> str:
    """'; ... those of model X: ...' where the file's top-level module names are another registered model's rather
    than the recipe's (weights of one family given with another's recipe), else ''. Compared on the tiny variants,
    built with the authors' structure options on the meta device (their names are the full presets' too)."""
    from rsmamba.models import create_model, list_models
    from rsmamba.train.config import shipped_configs

    tops = {k.split(".", 1)[0] for k in state}
    names = {info.name for info in list_models()}
    scores: dict[str, float] = {}
    for fam in sorted({n.removesuffix("_tiny") for n in names}):
        try:
            with torch.device("meta"):
                model = create_model(fam + "_tiny" if fam + "_tiny" in names else fam, **AUTHORS_KWARGS.get(fam, {}))
        except Exception:  # noqa: BLE001 - a model that cannot be built so is compared with no other
            continue
        theirs = {k.split(".", 1)[0] for k in model.state_dict()}
        scores[fam] = len(tops & theirs) / len(tops | theirs)
    best = max(scores, key=scores.get, default=None)  # type: ignore[arg-type]
    if best is None or best == family or scores[best] < 0.5 or scores[best] <= scores.get(family, 0.0):
        return ""
    recipes = [r for r in shipped_configs() if r.startswith(best + "_")]
    how = (f"import it with its recipe ({', '.join(recipes)})" if recipes else
           "no shipped recipe is for it: give a recipe of that model (--set model.name=...)")
    return f"; the file's names are those of model {best!r}, not {family!r}: {how}"


def _tiling(cfg: dict, use_dsm: bool, dsm_stats: tuple[float, float] | None) -> Any:
    """The data description a run of the recipe would record, without the data: the layout's classes and
    bands, the recipe's statistics (or the layout's published ones), the given DSM statistics."""
    from rsmamba.datasets.benchmark import layout_classes, layout_meta
    from rsmamba.datasets.layouts import DEFAULT_STATS
    from rsmamba.datasets.chips import TilingInfo

    d = cfg["data"]
    layout = d["layout"]
    if layout in (None, "chips"):
        raise InputError(f"config data.layout {layout!r}: import-weights takes a benchmark recipe (isprs, loveda, "
                         "second, landsat-scd), whose classes the authors' weights were trained on")
    mean, std = d.get("mean"), d.get("std")
    if mean is None and std is None and layout in DEFAULT_STATS:
        mean, std = (list(v) for v in DEFAULT_STATS[layout])
    if mean is None or std is None:
        raise InputError(f"the recipe normalises the image by its training data's statistics (data.mean / data.std "
                         f"null), which the weights file does not hold; give the ones the authors' inference used, "
                         f"e.g. --set 'data.mean=[0,0,0]' --set 'data.std=[255,255,255]' (their images scaled to 0..1)")
    # (one mean and one std > 0 per band of the layout's images: the config's checks, load_config)
    dsm_mean = dsm_std = None
    if dsm_stats is not None and not (use_dsm and d["dsm_mode"] == "zscore"):  # refused by name, never ignored
        why = ("takes no DSM" if not use_dsm else
               f"scales its DSM by each scene's own range (data.dsm_mode {d['dsm_mode']})")
        raise InputError(f"--dsm-stats: the recipe {why}; drop --dsm-stats")
    if use_dsm:
        if dsm_stats is None and d["dsm_mode"] == "zscore":
            raise InputError("the recipe normalises the DSM by z-score with its training data's statistics, which the "
                             "weights file does not hold; give the ones the authors' inference used: --dsm-stats MEAN,STD")
        dsm_mean, dsm_std = dsm_stats or (0.0, 1.0)  # minmax modes scale each scene by its own range: unused
        if dsm_std <= 0:  # std 0 read as 1 (heights unscaled: 97 % one class), -2 flipped every height, exit 0
            raise InputError(f"--dsm-stats {dsm_mean:g},{dsm_std:g}: the DSM's std must be > 0 (metres)")
    return TilingInfo(Path(str(d["root"])), list(range(1, len(mean) + 1)), [float(v) for v in mean],
                      [float(v) for v in std], dsm_mean, dsm_std, layout_classes(layout), None,
                      layout_meta({"layout": layout, **({"city": d.get("city"), "variant": d.get("variant")}
                                                        if layout == "isprs" else {})}, None))


def import_weights(weights: str | os.PathLike[str], config: str | os.PathLike[str], out: str | os.PathLike[str],
                   overrides: Sequence[str] = (), *, dsm_stats: tuple[float, float] | None = None,
                   overwrite: bool = False) -> ImportReport:
    """Write ``out``, an rsmamba checkpoint of the authors' ``weights`` for the recipe ``config``."""
    from rsmamba.models import create_model, model_info
    from rsmamba.models.weights import load_weights_file, unwrap_state
    from rsmamba.atomic import output_problems
    from rsmamba.paths import inputs_problems
    from rsmamba.train.config import load_config, resolve_config_path
    from rsmamba.train.trainer import blame_model_kwargs, checkpoint_payload, resolve_use_dsm

    weights, out = Path(weights), Path(out)
    recipe = resolve_config_path(config)  # the file read (a shipped recipe's too): an input, as the weights
    # never over an input (-o RECIPE.yaml --overwrite replaced the recipe with the checkpoint), nor a folder
    problems = inputs_problems({"weights": weights}) + output_problems([out], inputs=[weights, recipe],
                                                                       overwrite=overwrite)
    try:
        cfg = load_config(recipe, list(overrides))
    except InputError as exc:  # the recipe's problems with the files', in one go
        raise InputError(problems + exc.problems) from None
    if problems:
        raise InputError(problems)
    name = cfg["model"]["name"]
    info = model_info(name)
    use_dsm = bool(resolve_use_dsm(cfg["data"], info))
    tiling = _tiling(cfg, use_dsm, dsm_stats)
    family = name.removesuffix("_tiny")
    given = dict(cfg["model"]["kwargs"])
    structure = {k: v for k, v in AUTHORS_KWARGS.get(family, {}).items() if k not in given}
    classes = len(tiling.classes)
    if given.get("num_classes") is not None and int(given["num_classes"]) != classes:  # predict would refuse it
        raise InputError(f"model.kwargs.num_classes {given['num_classes']}: the recipe's classes "
                         f"({cfg['data']['layout']}) are {classes}, which the checkpoint's class table names; "
                         "drop the --set (a Mamba-FCS head with an 'unchanged' row is mapped by itself)")
    kwargs = {**structure, **given, "num_classes": classes}
    if "in_chans" in info.defaults:
        kwargs.setdefault("in_chans", len(tiling.bands) + (1 if use_dsm and info.inputs == "image" else 0))
    try:
        with torch.device("meta"):  # the model's names, which a partly prefixed file is read against
            # (the recipe's model.kwargs after --set model.name=another: said as train says them, one place)
            names = list(blame_model_kwargs(cfg, kwargs, lambda: create_model(name, **kwargs),
                                            lambda kw: create_model(name, **kw)).state_dict())
    except (TypeError, ValueError) as exc:
        raise InputError(f"model {name!r} with {kwargs}: {exc}") from exc
    state, unwrapped, renamed = unwrap_state(load_weights_file(weights, "weights"), weights, names)
    report = ImportReport(str(weights), out, name, unwrapped=unwrapped, renamed=renamed,  # in effect (the recipe's too)
                          structure={k: v for k, v in AUTHORS_KWARGS.get(family, {}).items() if kwargs.get(k) == v})
    if family == "mambafcs" and (line := _map_mambafcs_head(state, kwargs, kwargs["num_classes"])):
        report.mapped.append(line)
    if family == "cmtunet" and (line := _map_cmtunet_haar(state)):
        report.mapped.append(line)
    try:
        with torch.device("meta"):  # the names and shapes only: nothing allocated for a 270 M model
            module = create_model(name, **kwargs)
    except (TypeError, ValueError) as exc:
        raise InputError(f"model {name!r} with {kwargs}: {exc}") from exc
    report.tensors = len(state)  # (the file's)
    names = list(state)  # (before the counters are filled in)
    report.filled = fill_batchnorm_counters(module, state)
    mismatch = state_dict_mismatch(module, state)
    if mismatch:
        raise InputError(f"{weights}: weights do not fit recipe {config}'s model {name!r}: {mismatch}"
                         + _other_family(names, family))
    check_finite(weights, state)
    report.converted = cast_to_model(module, state)
    beyond = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if beyond:  # a double past float32's range: inf once cast
        raise InputError(f"{weights}: {len(beyond)} {'tensors hold' if len(beyond) != 1 else 'tensor holds'} values beyond the model's "
                         f"float32 range ({beyond[0]}, ...)")
    payload = {**checkpoint_payload(cfg, kwargs, tiling, use_dsm), "state_dict": state,
               "imported": {"source": weights.name, "unwrapped": unwrapped, "renamed": renamed,
                            "mapped": report.mapped, "structure": structure, "filled": report.filled,
                            "converted": report.converted}}
    crop = cfg["data"].get("crop")
    if crop:  # the recipe's training window: predict's default, as a run of it records
        payload["inference"] = {"window": int(crop), "overlap": int(crop) // 4}
    save_checkpoint(out, payload)
    return report
