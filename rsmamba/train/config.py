"""Training configuration: YAML file + defaults + ``--set key.path=value`` overrides.

The resolved config (after overrides) is saved with the run and inside every checkpoint, so a
run can always be reproduced from its output folder alone.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


from rsmamba.datasets.benchmark import LAYOUTS, layout_classes
from rsmamba.datasets.layouts import layout_image_bands, layout_name
from rsmamba.datasets.folders import listed_twice
from rsmamba.errors import InputError, ProblemCollector, seed_problem
from rsmamba.paths import load_yaml

DEFAULTS: dict[str, Any] = {
    "data": {"root": None, "layout": "chips", "train_split": "train", "val_split": "val", "use_dsm": None,
             "dsm_mode": "zscore", "batch_size": 4, "num_workers": 0,
             # benchmark layouts (see rsmamba.datasets.benchmark)
             "city": "vaihingen", "variant": None, "dsm_source": "dsm", "eroded": False, "val_tiles": [],
             "domains": ["Urban", "Rural"], "crop": None, "crops_per_image": 1, "samples_per_epoch": None,
             "crop_stride": None,
             "mean": None, "std": None},
    "model": {"name": "fcn_baseline", "kwargs": {}, "init": None, "pretrained": None, "instances": []},
    "loss": "ce",
    "augment": {"flips": True, "rot90": True, "scale": None, "scale_set": None, "photometric": 0.0,
                "colour": 0.0, "channel_shuffle": 0.0, "grayscale": 0.0, "date_jitter": False,
                "date_swap": 0.0},
    "optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "momentum": 0.9, "groups": []},
    "schedule": {"name": "cosine", "by": "epoch", "warmup_epochs": 0, "warmup_iters": 0, "t0": 10, "t_mult": 1,
                 "milestones": [], "step_size": 1, "gamma": 0.1, "power": 0.9, "min_lr": 0.0},
    "eval": {"flip": False, "scales": [1.0]},
    "train": {"epochs": 10, "seed": 0, "amp": True, "grad_clip": None, "ema": None, "device": "auto",
              "metric": "miou", "exclude_classes": [], "deterministic": True, "stop_after_epochs": None,
              "freeze_prefixes": [], "freeze_epochs": 0},
    "out": "runs/train",
    "tensorboard": True,
}


def _merge(base: dict, extra: dict, path: str, problems: ProblemCollector) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        where = f"{path}.{key}" if path else key
        if key not in base:
            problems.add(f"unknown config key {where!r}")
        elif isinstance(base[key], dict) and isinstance(value, dict) and key != "kwargs":
            out[key] = _merge(base[key], value, where, problems)
        elif isinstance(base[key], dict) and key != "loss" and not isinstance(value, dict):
            problems.add(f"config {where}: is a section, got {value!r}")
        else:
            out[key] = value
    return out


def _set(cfg: dict, dotted: str, value: Any, problems: ProblemCollector) -> None:
    keys = dotted.split(".")
    node = cfg
    for i, key in enumerate(keys[:-1]):
        if not isinstance(node.get(key), dict):
            problems.add(f"--set {dotted}: {'.'.join(keys[: i + 1])!r} is not a config section")
            return
        node = node[key]
    if keys[-1] not in node and not (len(keys) >= 2 and keys[-2] == "kwargs"):
        problems.add(f"--set {dotted}: unknown config key")
        return
    if isinstance(node.get(keys[-1]), dict) and keys[-1] != "kwargs" and not isinstance(value, dict):
        problems.add(f"--set {dotted}: {dotted!r} is a config section; set one of its keys")
        return
    if isinstance(node.get(keys[-1]), dict) and keys[-1] != "kwargs":  # 'train={epochs: 1}': those keys, the rest kept
        node[keys[-1]] = _merge(node[keys[-1]], value, dotted, problems)  # (replaced whole: a KeyError traceback)
        return
    node[keys[-1]] = value


# Keys holding a path: --set takes their text as it is (YAML made 2024 a number, 2024-05-01 a date, yes a boolean and
# cut 'exp #2' at its comment: tracebacks, or a run trained into exp/); a config file must hold them as text.
PATH_KEYS = frozenset({"out", "data.root", "model.init", "model.pretrained"})  # (pretrained may be a {part: path} map)


def apply_overrides(cfg: dict, overrides: Sequence[str]) -> dict:
    """Apply ``key.path=value`` strings (values parsed as YAML: ``0.001``, ``[1, 2]``, ``null``)."""
    problems = ProblemCollector()
    cfg = _apply_overrides(cfg, overrides, problems)
    problems.raise_if_any()
    return cfg


def _apply_overrides(cfg: dict, overrides: Sequence[str], problems: ProblemCollector) -> dict:
    """:func:`apply_overrides` that adds its problems to ``problems`` and applies every override it can."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            problems.add(f"--set {item!r}: expected key.path=value")
            continue
        key, raw = item.split("=", 1)
        if key.strip() in PATH_KEYS and raw.strip() in ("", "null", "~"):
            value: Any = None  # unset (model.init=null: no checkpoint)
        elif key.strip() in PATH_KEYS and raw.strip()[:1] not in ("'", '"', "{", "["):
            value = raw.strip()  # a folder named 2024, 2024-05-01, yes or 'exp #2' is that name, not YAML's
        else:
            try:
                value = load_yaml(f"--set {item}", text=raw)
            except InputError as exc:
                problems.add(str(exc))
                continue
        _set(cfg, key.strip(), value, problems)
    return cfg


CONFIGS_DIR = Path(__file__).resolve().parent.parent / "data" / "configs"


def shipped_configs() -> list[str]:
    """Names of the paper recipes shipped with rsmamba (``rsmamba/data/configs/<name>.yaml``)."""
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))


def resolve_config_path(path: str | os.PathLike[str]) -> Path:
    """A config file, or the name of a shipped recipe (``mafmamba_vaihingen``)."""
    p = Path(path)
    if p.is_file():
        return p
    shipped = CONFIGS_DIR / f"{p.name.removesuffix('.yaml')}.yaml"
    if p.parent == Path(".") and shipped.is_file():
        return shipped
    if p.exists():  # a folder, a pipe: not 'not found'
        from rsmamba.paths import input_problem

        raise InputError(input_problem(p, "config") or f"config {p}: not a regular file")
    raise InputError(f"{p}: config file not found (shipped recipes: {', '.join(shipped_configs())})")


# (key, kind, smallest allowed, optional): value types a run needs, checked before any training starts.
_SCHEMA: tuple[tuple[str, str, float | None, bool], ...] = (
    ("data.batch_size", "int", 1, False), ("data.num_workers", "int", 0, False), ("data.crop", "int", 8, True),
    ("data.crops_per_image", "int", 1, True), ("data.samples_per_epoch", "int", 1, True),
    ("data.crop_stride", "int", 1, True),
    ("optim.lr", "number", None, False), ("optim.weight_decay", "number", 0, False), ("optim.momentum", "number", 0, False),
    ("schedule.warmup_epochs", "number", 0, False), ("schedule.t0", "int", 1, False), ("schedule.t_mult", "int", 1, False),
    ("schedule.gamma", "number", 0, False), ("schedule.min_lr", "number", 0, False),
    ("schedule.step_size", "int", 1, False), ("schedule.power", "number", 0, False),
    ("schedule.milestones", "int_list", 0, False), ("schedule.warmup_iters", "int", 0, False),
    ("eval.flip", "bool", None, False), ("eval.scales", "number_list", 0.05, False),
    ("train.exclude_classes", "int_list", 0, False), ("data.use_dsm", "bool", None, True),
    ("augment.scale", "number_list", 0.05, True), ("augment.scale_set", "number_list", 0.05, True),
    ("train.epochs", "int", 1, False), ("train.seed", "int", 0, False), ("train.grad_clip", "number", None, True),
    ("train.ema", "number", 0, True), ("train.stop_after_epochs", "int", 1, True), ("train.amp", "bool", None, False),
    ("train.deterministic", "bool", None, False), ("train.freeze_epochs", "int", 0, False),
    ("augment.flips", "bool", None, False),
    ("augment.rot90", "bool", None, False), ("augment.photometric", "number", 0, False),
    ("augment.colour", "number", 0, False), ("augment.channel_shuffle", "number", 0, False),
    ("augment.grayscale", "number", 0, False), ("augment.date_jitter", "bool", None, False),
    ("augment.date_swap", "number", 0, False),
    ("tensorboard", "bool", None, False),
    ("out", "path", None, False), ("data.root", "path", None, True), ("model.init", "path", None, True),
    ("data.mean", "number_list", None, True), ("data.std", "number_list", None, True),
)


OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "cosine_restarts", "multistep", "step", "poly", "none")
SCHEDULE_UNITS = ("epoch", "iteration")  # schedule.by: milestones, step_size and t0 counted in epochs or steps

# Zoom factors, bounded above too: augment.scale [1000, 1000] (or percent, [50, 150]) passed, then asked for 65 GB.
_ZOOMS = ("augment.scale", "augment.scale_set", "eval.scales")
MAX_ZOOM = 8.0


GROUP_KEYS = ("prefix", "lr_scale", "weight_decay")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_groups(groups: Any, problems: ProblemCollector) -> None:
    """Each ``optim.groups`` entry's keys and values: a misspelt key trained the group at the full rate, a negative
    ``lr_scale`` at a negative one (gradient ascent), and text values were tracebacks when the optimiser was built."""
    if groups is not None and not (isinstance(groups, list) and all(isinstance(g, dict) and "prefix" in g
                                                                      for g in groups)):
        problems.add(f"config optim.groups: expected a list of {{prefix: ..., lr_scale: ...}}, got {groups!r}")
        return
    for i, g in enumerate(groups or []):
        where = f"config optim.groups[{i}]"
        for key in g:
            if key not in GROUP_KEYS:
                problems.add(f"{where}: unknown key {key!r} (a group takes {', '.join(GROUP_KEYS)})")
        prefix = g["prefix"]
        if not (isinstance(prefix, str) and prefix or isinstance(prefix, list) and prefix
                and all(isinstance(x, str) and x for x in prefix)):
            problems.add(f"{where}.prefix: expected a parameter-name prefix (e.g. backbone.) or a list of them, "
                         f"got {prefix!r}")
        for key in ("lr_scale", "weight_decay"):
            value = g.get(key)
            if key not in g or value is None and key == "weight_decay":  # (weight_decay null: optim.weight_decay)
                continue
            if isinstance(value, str):
                try:  # YAML 1.1 reads 1e-4 (no dot) as text, as the schema's numbers
                    value = g[key] = float(value)
                except ValueError:
                    pass
            if not _finite(value) or value < 0:
                problems.add(f"{where}.{key}: expected a number >= 0, got {value!r}")


def _check_types(cfg: dict, problems: ProblemCollector) -> None:
    """Every typed key holds its kind and lies in range (``optim.lr=abc`` or ``data.batch_size=0`` fail here)."""
    for key, kind, smallest, optional in _SCHEMA:
        node: Any = cfg
        parent: Any = None
        for part in key.split("."):
            parent, node = node, node.get(part) if isinstance(node, dict) else None
        if kind == "number" and isinstance(node, str) and isinstance(parent, dict):
            try:  # YAML 1.1 reads 1e-4 (no dot) as text; it is the number every user means
                node = parent[key.rsplit(".", 1)[-1]] = float(node)
            except ValueError:
                pass
        if node is None and optional:
            continue
        def number(v: Any, integer: bool) -> bool:  # finite: optim.lr .inf passed, to diverge at its first step
            if isinstance(v, bool) or not isinstance(v, (int, float)) or isinstance(v, float) and not math.isfinite(v):
                return False
            return isinstance(v, int) if integer else True

        if kind == "path" and key == "data.root" and isinstance(node, list):  # several chip folders, one model
            ok, values = bool(node) and all(isinstance(v, str) and v.strip() != "" for v in node), []
        elif kind == "path":
            ok, values = isinstance(node, str) and node.strip() != "", []
        elif kind == "bool":
            ok, values = isinstance(node, bool), []
        elif kind in ("int_list", "number_list"):  # a scalar, text or an empty list: a traceback an epoch in
            ok = isinstance(node, list) and bool(node) or (kind == "int_list" and node == [])
            ok = ok and all(number(v, kind == "int_list") for v in node)
            values = node if ok else []
        else:
            ok, values = number(node, kind == "int"), [node]
        if not ok:
            what = {"path": "a path (quote one YAML reads otherwise: '2024')" + (
                        ", or a list of chip folders' paths" if key == "data.root" else ""),
                    "int": "an integer", "number": "a number",
                    "bool": "true or false",
                    "int_list": "a list of integers, e.g. [5]", "number_list": "a list of numbers, e.g. [1.0]"}[kind]
            infinite = any(isinstance(v, float) and math.isinf(v) for v in (node if isinstance(node, list) else [node]))
            problems.add(f"config {key}: must be finite, got {node!r}" if infinite else
                         f"config {key}: expected {what}, got {node!r}")
        elif smallest is not None and any(v < smallest for v in values):
            problems.add(f"config {key}: {'each value ' if kind.endswith('list') else ''}must be >= {smallest:g}, "
                         f"got {node!r}")
        elif key in _ZOOMS and any(v > MAX_ZOOM for v in values):
            problems.add(f"config {key}: each value must be <= {MAX_ZOOM:g} (a zoom factor: at {MAX_ZOOM:g} a chip "
                         f"is resized to {MAX_ZOOM**2:g} times its pixels), got {node!r}")
    prefixes = cfg["train"].get("freeze_prefixes") if isinstance(cfg.get("train"), dict) else None
    if prefixes is None and isinstance(cfg.get("train"), dict):  # 'freeze_prefixes:' left empty: nothing frozen
        prefixes = cfg["train"]["freeze_prefixes"] = []
    if not (isinstance(prefixes, list) and all(isinstance(x, str) and x for x in prefixes)):
        # a bare string would be read letter by letter: 'backbone.' froze every name starting b, a, c, k, ...
        problems.add(f"config train.freeze_prefixes: expected a list of name prefixes, e.g. [backbone.], "
                     f"got {prefixes!r}")
    section = lambda name: cfg.get(name) if isinstance(cfg.get(name), dict) else {}  # noqa: E731
    # settings that did nothing, unsaid: a clip at 0 clips nothing, freeze_epochs alone freezes nothing
    clip = section("train").get("grad_clip")
    if _finite(clip) and clip <= 0:  # (-1 was told '>= 0', and 0 then '> 0')
        problems.add(f"config train.grad_clip: must be > 0 (a gradient norm; null: no clipping), got {clip:g}")
    freeze = section("train").get("freeze_epochs")
    if _finite(freeze) and freeze > 0 and prefixes == []:
        problems.add(f"config train.freeze_epochs: {freeze} epochs of freezing, but train.freeze_prefixes is empty: "
                     "name the parameter-name prefixes frozen (e.g. [backbone.]), or leave freeze_epochs at 0")
    ema = section("train").get("ema")
    if isinstance(ema, (int, float)) and not isinstance(ema, bool) and ema >= 1:
        problems.add(f"config train.ema: a decay, must be < 1 (e.g. 0.999), got {ema!r}")
    scale = section("augment").get("scale")
    if isinstance(scale, list) and (len(scale) != 2 or not all(isinstance(v, (int, float)) for v in scale)
                                    or scale[0] > scale[1]):
        problems.add(f"config augment.scale: expected [low, high] zoom factors, e.g. [0.5, 2.0], got {scale!r}")
    if not isinstance(section("model").get("kwargs", {}), dict):
        problems.add(f"config model.kwargs: expected a mapping of the model's arguments, got "
                     f"{section('model').get('kwargs')!r}")
    _check_groups(section("optim").get("groups"), problems)
    if cfg.get("loss") is None or cfg.get("loss") == []:
        problems.add("config loss: empty; give a loss (ce, dice, lovasz, sek, mambafcs or a list of them)")
    else:  # its names, scales and options (dice smooth: abc passed --dry-run, a traceback at the first batch)
        from rsmamba.losses import build_loss

        try:
            build_loss(cfg["loss"])
        except InputError as exc:
            for problem in exc.problems:
                problems.add(f"config {problem}")
    lr = cfg["optim"].get("lr") if isinstance(cfg.get("optim"), dict) else None
    if isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr <= 0:  # (-1 was 'must be >= 0', 0 '> 0')
        problems.add(f"config optim.lr: must be > 0, got {lr:g}")
    min_lr = section("schedule").get("min_lr")
    if _finite(lr) and _finite(min_lr) and 0 < lr < min_lr:  # cosine's 'floor' raised the rate to it, 10x
        problems.add(f"config schedule.min_lr: the floor the rate decays to, must be <= optim.lr ({lr:g}), "
                     f"got {min_lr:g}")
    seed = cfg["train"].get("seed") if isinstance(cfg.get("train"), dict) else None
    if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 and (
            problem := seed_problem(seed, "config train.seed")):  # below 0: the schema's bound says it
        problems.add(problem)
    for key in ("channel_shuffle", "grayscale", "date_swap"):  # date_swap 50 (a percentage) swapped every pair
        p = section("augment").get(key)
        if isinstance(p, (int, float)) and not isinstance(p, bool) and p > 1:
            problems.add(f"config augment.{key}: a probability, must be <= 1, got {p!r}")
    colour = section("augment").get("colour")
    if isinstance(colour, (int, float)) and not isinstance(colour, bool) and colour >= 1:  # gains 1 +- colour
        problems.add(f"config augment.colour: a gain's spread (1 +- colour), must be < 1, got {colour!r}")
    # the names the optimiser and the schedule are built from: refused here, with the config's other problems and
    # by --dry-run, not once the data is read and the model built
    for key, allowed in (("optim.name", OPTIMIZERS), ("schedule.name", SCHEDULES), ("schedule.by", SCHEDULE_UNITS)):
        part, name = key.split(".")
        value = section(part).get(name, allowed[0] if key == "schedule.by" else None)
        if value not in allowed:
            problems.add(f"config {key}: {value!r}, expected {', '.join(allowed)}")
    _check_model(cfg, problems)
    _check_statistics(cfg, problems)


# Validation scores per task, as ``train.metric`` names them (``val_<name>`` in the history). For a
# semantic change model ``miou``/``oa`` are the SCD benchmarks' (SECOND, Landsat-SCD: the mean of the
# change and no-change IoU; the per-time-point OA of SCanNet's evaluation), ``sek``/``fscd``/``score``
# theirs too (score = 0.3 mIoU + 0.7 SeK), and ``sem_*`` the land cover on the labelled pixels.
VAL_METRICS = {
    "segmentation": ("miou", "mf1", "oa", "kappa"),
    "semantic-change": ("sek", "score", "fscd", "miou", "oa", "change_f1", "change_iou", "change_oa",
                        "change_kappa", "sem_miou", "sem_mf1", "sem_oa", "sem_kappa"),
}


def metric_problem(metric: Any, task: str | None) -> str | None:
    """Why ``train.metric`` names no validation score of a ``task`` model (None: of any task, the model being
    the one of a model.init checkpoint, read later), or None: another name picked best.pt by the training loss."""
    if task is not None:
        known = VAL_METRICS.get(task, ())
        if metric in known:
            return None
        return f"train.metric {metric!r}: not a validation score of a {task} model; choose one of {', '.join(known)}"
    if any(metric in names for names in VAL_METRICS.values()):
        return None
    return (f"train.metric {metric!r}: not a validation score of any model; choose one of "
            + "; ".join(f"{', '.join(names)} ({task})" for task, names in VAL_METRICS.items()))


def eval_problem(cfg: dict, task: str | None) -> str | None:
    """Why ``eval`` (flip, scales) cannot apply to a ``task`` model, or None: validation and ``train --test`` of a
    change model score one view, so its flips and scales were ignored, and ``test_<split>.json`` recorded them."""
    ev = cfg.get("eval") if isinstance(cfg.get("eval"), dict) else {}
    if task in (None, "segmentation") or (not ev.get("flip") and list(ev.get("scales") or [1.0]) == [1.0]):
        return None
    return (f"eval.flip / eval.scales: a {task} model is validated and tested on one view, without flips or "
            "scales; leave eval at its default (flip false, scales [1.0])")


def _check_model(cfg: dict, problems: ProblemCollector) -> None:
    """model.name, model.instances and what depends on the model (train.metric) or on a benchmark's classes
    (CE class_weights, train.exclude_classes), with the config's other values: a list as model.name was a
    TypeError traceback in the registry, a text model.instances was read letter by letter ('f, o, o'), and a
    wrong train.metric or class_weights count was said only once every other problem was fixed."""
    from rsmamba.models import model_info

    model = cfg.get("model") if isinstance(cfg.get("model"), dict) else {}
    name, task = model.get("name"), None
    if not (isinstance(name, str) and name.strip()):
        problems.add(f"config model.name: expected a model name (rsmamba models lists them), got {name!r}")
    else:
        try:
            info = model_info(name)
        except InputError as exc:
            problems.add(f"config model.name: {exc}")
        else:  # a config leaving the default model with a model.init takes the checkpoint's (known later)
            task = None if model.get("init") and name == DEFAULTS["model"]["name"] else info.task
    instances = model.get("instances")
    if instances is None:
        model["instances"] = []  # 'instances:' left empty: none
    elif not (isinstance(instances, list) and all(isinstance(c, str) and c.strip() for c in instances)):
        problems.add(f"config model.instances: expected a list such as [interior, contact] (target channels of "
                     f"'rsmamba tile --instance-targets'), got {instances!r}")
    train = cfg.get("train") if isinstance(cfg.get("train"), dict) else {}
    if "metric" in train and (problem := metric_problem(train["metric"], task)):
        problems.add(f"config {problem}")
    if problem := eval_problem(cfg, task):
        problems.add(f"config {problem}")
    data = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
    layout = data.get("layout")
    if layout in (None, "chips") or layout not in LAYOUTS:
        return  # chips: their class table is read with the data (tiling.json), and checked then
    classes = layout_classes(layout)
    given = (model.get("kwargs") or {}).get("num_classes") if isinstance(model.get("kwargs"), dict) else None
    count = given if isinstance(given, int) and not isinstance(given, bool) and given > 0 else len(classes)
    names = [c["name"] for c in classes] if len(classes) == count else [str(i) for i in range(count)]
    for problem in class_settings_problems(cfg, count, names):
        problems.add(f"config {problem}")


def class_settings_problems(cfg: dict, num_classes: int, names: list[str], trained: set[int] | None = None) -> list[str]:
    """Settings sized by the classes: CE class_weights one per class (not 0 on every class the training chips
    hold, ``trained``, where known), train.exclude_classes ids of the data. Each said in a line; wrong, they
    failed at the first batch (class weights) or after a whole epoch (an excluded id past the head). A loss or
    exclude_classes of the wrong type is said by the type checks, not here."""
    from rsmamba.losses import CrossEntropy, build_loss

    problems: list[str] = []
    try:
        loss = build_loss(cfg["loss"])
    except (InputError, KeyError, TypeError):
        loss = None
    for module in loss.modules() if loss is not None else ():
        if isinstance(module, CrossEntropy) and module.weight is not None and module.weight.numel() != num_classes:
            problems.append(f"loss ce: {module.weight.numel()} class_weights for {num_classes} classes "
                            f"({', '.join(names)})")
        elif isinstance(module, CrossEntropy) and module.weight is not None and trained and all(
                module.weight[c] == 0 for c in trained if c < num_classes):
            problems.append(f"loss ce: class_weights are 0 for every class the training chips hold "
                            f"({', '.join(names[c] for c in sorted(trained) if c < num_classes)}), so no pixel "
                            "counts; give them a weight > 0")
    excluded = (cfg.get("train") or {}).get("exclude_classes")
    bad = [c for c in excluded if isinstance(c, int) and not 0 <= c < num_classes] if isinstance(excluded, list) else []
    if bad:
        problems.append(f"train.exclude_classes {bad}: no class id of the data (0..{num_classes - 1})")
    elif isinstance(excluded, list) and num_classes and set(range(num_classes)) <= set(excluded):
        # every class out of the means: no score left, and best.pt followed the training loss (QA)
        problems.append(f"train.exclude_classes {excluded}: every class ({', '.join(names)}) left out of the "
                        "validation means, so nothing is scored; leave out the few the scores should not count")
    return problems


def _check_statistics(cfg: dict, problems: ProblemCollector) -> None:
    """data.mean / data.std: one of each per image band, std > 0, as many as a benchmark layout's images have
    bands. Two means on a 3-band Vaihingen recipe built a 2-band model: import-weights said the weights did not
    fit it ('(8, 3, 7, 7) vs (8, 2, 7, 7)'), train failed at its first batch."""
    data = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
    given = {key: data.get(key) for key in ("mean", "std")
             if isinstance(data.get(key), list) and data.get(key) and all(_finite(v) for v in data[key])}
    if "std" in given and not all(v > 0 for v in given["std"]):
        problems.add(f"config data.std: each value must be > 0 (a band's spread), got {given['std']!r}")
    if len(given) == 2 and len(given["mean"]) != len(given["std"]):
        problems.add(f"config data.mean has {len(given['mean'])} entries, data.std {len(given['std'])}: one of each "
                     "per image band")
    layout = data.get("layout")
    bands = layout_image_bands(layout, data.get("city"), data.get("variant")) if isinstance(layout, str) else None
    for key, values in given.items():
        if bands is not None and len(values) != bands:
            where = layout_name({"layout": layout, "city": str(data.get("city") or "vaihingen")})
            variant = f" ({data.get('variant')})" if layout == "isprs" and data.get("variant") else ""
            problems.add(f"config data.{key}: {len(values)} entr{'ies' if len(values) != 1 else 'y'}, but the images "
                         f"of {where}{variant} have {bands} bands (one {key} per band)")


def schedule_warnings(cfg: dict, steps_per_epoch: int) -> list[str]:
    """What training (and its dry run) says of the schedule once the data give the steps per epoch."""
    return [said for said in (warmup_warning(cfg, steps_per_epoch), restart_warning(cfg, steps_per_epoch),
                              unread_schedule_warning(cfg)) if said]


# the schedule keys each schedule reads (warm-up and by: all of them)
_SCHEDULE_READS = {"milestones": ("multistep",), "gamma": ("multistep", "step"), "step_size": ("step",),
                   "t0": ("cosine_restarts",), "t_mult": ("cosine_restarts",), "power": ("poly",),
                   "min_lr": ("cosine", "cosine_restarts", "poly")}


def unread_schedule_warning(cfg: dict) -> str | None:
    """Schedule keys set where ``schedule.name`` does not read them: ``milestones: [20, 30]`` without ``name:
    multistep`` trained the default cosine, unsaid."""
    s = cfg["schedule"]
    unread = [k for k, names in _SCHEDULE_READS.items()
              if s["name"] not in names and s.get(k) != DEFAULTS["schedule"][k]]
    if not unread:
        return None
    readers = sorted({n for k in unread for n in _SCHEDULE_READS[k]})
    return (f"schedule.{', schedule.'.join(unread)}: not read by schedule.name {s['name']} (read by "
            f"{', '.join(readers)}); the run follows {s['name']}")


def restart_warning(cfg: dict, steps_per_epoch: int) -> str | None:
    """A ``cosine_restarts`` run that ends inside a cycle: its last epochs train at a rate still high, where the
    cycle would have annealed it (MAFMamba's 80 epochs with GeoSeg's t0 15, t_mult 2, whose cycles end at 15, 45
    and 105: 35 epochs into the third, at 0.3 x optim.lr; GeoSeg trains 105). Said, not refused: the paper's
    80 epochs are its recipe."""
    s, epochs = cfg["schedule"], cfg["train"]["epochs"]
    if s["name"] != "cosine_restarts":
        return None
    unit = steps_per_epoch if s["by"] == "epoch" else 1
    warm = int(s.get("warmup_iters") or 0) or int(s["warmup_epochs"] * steps_per_epoch)
    total = epochs * steps_per_epoch
    ends, length, end = [], s["t0"] * unit, warm
    while end < total:
        end += length
        ends.append(end)
        length *= s["t_mult"]
    if not ends or ends[-1] == total:
        return None
    start = ends[-2] if len(ends) > 1 else warm
    into, cycle = total - start, ends[-1] - start
    floor = float(s["min_lr"]) / float(cfg["optim"]["lr"]) if cfg["optim"]["lr"] else 0.0
    rate = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (into - 1) / cycle))  # the last step's
    per, name = (steps_per_epoch, "epoch") if s["by"] == "epoch" else (1, "step")
    at = ("..., " if len(ends) > 3 else "") + ", ".join(f"{e / per:g}" for e in ends[-3:])
    fits = " or ".join(f"{e / steps_per_epoch:g}" for e in ends[-2:] if e % steps_per_epoch == 0)
    return (f"schedule cosine_restarts (t0 {s['t0']}, t_mult {s['t_mult']}): train.epochs {epochs} ends "
            f"{into / per:g} {name}s into a {cycle / per:g}-{name} cycle, at {rate:.2g} x optim.lr (cycles end at "
            f"{name} {at})" + (f"; train.epochs {fits} ends one" if fits else ""))


def warmup_warning(cfg: dict, steps_per_epoch: int) -> str | None:
    """What to say when the warm-up lasts the whole run (known once the data give the steps per epoch): the rate
    ramps all run long and never reaches optim.lr (warmup_epochs 100 in a 2-epoch run peaked at 1/50 of it)."""
    s, epochs = cfg["schedule"], cfg["train"]["epochs"]
    total = max(1, epochs * steps_per_epoch)
    iters = int(s.get("warmup_iters") or 0)
    warm = iters or int(s["warmup_epochs"] * steps_per_epoch)
    if warm < total or warm <= 1:
        return None
    key = f"schedule.warmup_iters {iters}" if iters else f"schedule.warmup_epochs {s['warmup_epochs']:g}"
    return (f"{key} lasts the whole run ({epochs} epoch{'s' * (epochs != 1)}, {total} steps): the rate ramps up "
            f"all run, to {total / warm:.3g} x optim.lr at its last step; shorten the warm-up or train longer")


def load_config(path: str | os.PathLike[str] | None = None, overrides: Sequence[str] = (),
                base: dict | None = None) -> dict:
    """Defaults <- YAML file (or ``base`` dict) <- overrides; unknown keys are errors, all listed at once."""
    problems = ProblemCollector()
    user: dict = {}
    if path is not None:
        p = resolve_config_path(path)
        user = load_yaml(p) or {}
        if not isinstance(user, dict):
            raise InputError(f"{p}: a config is a mapping of sections (model:, data:, train:), "
                             f"not a {type(user).__name__}")
    if base:
        user = {**user, **base}
    # the file's unknown keys, the --set ones and every wrong value, reported together: an unknown key is left
    # out and the rest checked (a typo's error hid a wrong type until the next run; docs/config.md)
    cfg = _merge(DEFAULTS, user, "", problems)
    cfg = _apply_overrides(cfg, overrides, problems)
    if not cfg["data"]["root"]:
        problems.add("data.root is not set (the chip folder written by 'rsmamba tile', or a benchmark's folder)")
    if cfg["data"]["layout"] not in LAYOUTS:
        problems.add(f"data.layout {cfg['data']['layout']!r}: expected one of {', '.join(LAYOUTS)}")
    root = cfg["data"]["root"]
    if isinstance(root, list) and len(root) == 1:
        cfg["data"]["root"] = root = root[0]  # one folder, read as ever
    if isinstance(root, list) and all(isinstance(r, str) for r in root):
        for problem in listed_twice(root):
            problems.add(problem)
    if isinstance(root, list) and (cfg["data"]["layout"] or "chips") != "chips":
        problems.add(f"data.root lists {len(root)} folders: several folders are chip folders from 'rsmamba tile' "
                     f"(data.layout chips), not data.layout {cfg['data']['layout']}")
    _check_types(cfg, problems)  # train.epochs >= 1 among them
    problems.raise_if_any()
    return cfg
