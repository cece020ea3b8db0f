"""Several chip folders (``data.root`` a list) trained as one dataset: one model of many scenes.

Each scene is tiled on its own (``rsmamba tile``); training reads the union of their splits. The folders
must agree on what makes one model (bands, value scale, classes, DSM, kind, instance targets, chip size):
every disagreement is said at once. The model gets one normalisation: the folders' statistics pooled as
the union of the pixels they were computed on would give (:func:`pooled_tiling`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import ConcatDataset

from rsmamba.datasets.chips import (
    CHANGE_DSM,
    ChipDataset,
    TilingInfo,
    chip_size,
    chips_fingerprint,
    missing_val_split,
    read_manifest,
    read_tiling,
)
from rsmamba.datasets.layouts import guess_layout, layout_name, layout_settings
from rsmamba.errors import InputError, MissingSplit, ProblemCollector
from rsmamba.raster.normalize import STATS_SAMPLE_PIXELS
from rsmamba.raster.source import NO_COLOUR, colour_reading, learnt_colours
from rsmamba.raster.windows import sample_windows

log = logging.getLogger(__name__)


class ChipFolders(ConcatDataset):
    """The chips of one split of several folders, as :class:`ChipDataset` gives one folder's: ``info`` is the
    pooled :class:`TilingInfo` (what the checkpoint records), ``rows`` every folder's manifest rows, and each
    sample's ``chip_id`` names its folder (chip ids repeat across scenes)."""

    def __init__(self, parts: list[ChipDataset], info: TilingInfo):
        super().__init__(parts)
        self.parts, self.info = parts, info
        self.root = ", ".join(str(p.root) for p in parts)  # for messages
        self.rows = [r for p in parts for r in p.rows]
        self.use_dsm, self.dsm_mode = parts[0].use_dsm, parts[0].dsm_mode

    @property
    def in_chans(self) -> int:
        return self.parts[0].in_chans

    @property
    def target_bands(self) -> list[int]:
        return self.parts[0].target_bands

    @target_bands.setter
    def target_bands(self, bands: list[int]) -> None:
        for part in self.parts:  # the folders agree on the targets' channels (folder_problems)
            part.target_bands = bands

    def normalize_with(self, replace: Callable[[TilingInfo], TilingInfo], dsm_mode: str | None = None) -> None:
        """Give every folder (and the pooled info) another normalisation; each keeps its own DSM range."""
        self.info = replace(self.info)
        for part in self.parts:
            part.info = replace(part.info)
            part.dsm_mode = dsm_mode or part.dsm_mode
        self.dsm_mode = dsm_mode or self.dsm_mode

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = super().__getitem__(index)
        part = self.parts[int(np.searchsorted(self.cumulative_sizes, index, side="right"))]
        sample["chip_id"] = f"{part.root}/{sample['chip_id']}"
        return sample


def _shown(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return "none" if value is None else str(value)


def model_colours(infos: list[TilingInfo]) -> tuple[TilingInfo, list[str]] | None:
    """The folder whose band colours the model records, and them: the one naming the most bands (red, green,
    nir, ...; gray and undefined name none), which every folder's chips must be read as (:func:`folder_problems`);
    None where no folder records colours (tiled by an older rsmamba)."""
    recorded = [i for i in infos if i.colours]
    owner = max(recorded, key=lambda i: sum(c not in NO_COLOUR for c in i.colours or ()), default=None)
    return (owner, list(owner.colours or ())) if owner else None


def _shown_chip_size(info: TilingInfo) -> str | None:
    """A folder's chip size as the manifest lists it (a scene narrower than ``--size`` has narrower chips)."""
    size, tiled = chip_size(info), info.raw.get("size")
    if size is None:
        return None if tiled is None else f"{tiled} x {tiled} px"
    narrower = tiled is not None and size != (tiled, tiled)
    return f"{size[0]} x {size[1]} px" + (f" (--size {tiled})" if narrower else "")


CHANGE_KIND = "change (two dates)"


def _kind(info: TilingInfo) -> str:
    """A chip folder's kind, from its manifest: a change model reads ``image2`` of every sample."""
    return CHANGE_KIND if any(r.get("t2") for r in read_manifest(info, None)) else "segmentation"


def folder_problems(infos: list[TilingInfo], *, use_dsm: bool | None, dsm_mode: str, instances: bool) -> list[str]:
    """Every field on which a folder disagrees with the first (what makes one model), each naming the folder
    and the field, its kind (single-date or change) first: a model of 3 bands fed 4, of uint8 fed uint16, of
    another class table or chip size; a folder whose bands predict would not read as the model's colours
    (:func:`rsmamba.raster.source.colour_reading`: gray and undefined bands beside red, green, blue are read by
    position, as predict reads such an image); and the DSM of each folder of the first's kind: change chips are
    read without one, single-date ones each with the DSM the others have (``use_dsm`` None: the chips decide) or
    the config asks for. A folder of another kind gets no DSM advice: it is listed with the wrong folders, and
    a DSM given or taken would lead to the kind refusal (QA: three runs, each told one problem)."""
    first = infos[0]
    problems = []
    sizes: dict[Path, str | None] = {}
    kinds: dict[Path, str] = {}
    for info in infos:  # the chips' own size, not tiling.json's --size: chips of two sizes stack into no batch
        try:
            sizes[info.root], kinds[info.root] = _shown_chip_size(info), _kind(info)
        except InputError as exc:
            problems.extend(exc.problems)
    kind = kinds.get(first.root)
    problems[:0] = [f"{i.root}: kind {kinds[i.root]}, where {first.root} has {kind}"
                    for i in infos if kind and kinds.get(i.root, kind) != kind]
    same = infos if kind is None else [i for i in infos if kinds.get(i.root, kind) == kind]
    colours = model_colours(infos)
    by_colour = colours is not None and learnt_colours(colours[1]) is not None

    def fields(info: TilingInfo) -> dict[str, object]:
        raw = info.raw
        out: dict[str, object] = {"image bands": len(info.image_mean), "dtype": raw.get("dtype"),
                                  "chip size": sizes.get(info.root),
                                  "classes": [f"{c.get('id')} {c.get('name')}" for c in info.classes]}
        if not (by_colour and info.colours and first.colours):  # no colours say what the bands are: their numbers
            out["bands"] = info.bands
        if instances:
            targets = raw.get("instance_targets") or {}
            out["instance_targets"] = [f"{key} {targets.get(key)}" for key in ("channels", "border_px", "contact_px")] \
                if targets else None
        return out

    with_dsm = next((i.root for i in same if i.has_dsm), None)
    if kind == CHANGE_KIND:  # once for each folder, not for each split it is read in
        problems.extend(f"{i.root}: {CHANGE_DSM}" for i in same if use_dsm or (use_dsm is None and i.has_dsm))
    elif use_dsm or (use_dsm is None and with_dsm is not None):
        problems.extend(f"{i.root}: no DSM, " + ("and data.use_dsm asks for one" if use_dsm else
                                                 f"where {with_dsm} has one (set data.use_dsm: false to train on the "
                                                 "images alone)") + "; tile it with --dsm"
                        for i in same if not i.has_dsm)
    reference = fields(first)
    for info in infos[1:]:
        for field, value in fields(info).items():
            expected = reference.get(field)
            if field in ("dtype", "chip size") and (value is None or expected is None):
                continue  # not recorded by an older rsmamba, or unreadable (said above): nothing to compare
            if value != expected:
                problems.append(f"{info.root}: {field} {_shown(value)}, where {first.root} has {_shown(expected)}")
    for info in infos:  # the bands of each folder's chips as they are, for a model of the colours recorded
        bands = list(range(1, len(info.colours or ()) + 1))
        if colours and info.colours and colour_reading(colours[1], bands, info.colours) != bands:
            problems.append(f"{info.root}: colours {_shown(info.colours)}, where {colours[0].root} has "
                            f"{_shown(colours[1])}")
    if use_dsm is not False and dsm_mode == "minmax-scene" and all(i.has_dsm for i in infos):
        problems.extend(f"{i.root / 'tiling.json'}: data.dsm_mode minmax-scene needs the tiled scene's DSM range, "
                        "which tiles of an older rsmamba do not record; re-run 'rsmamba tile'"
                        for i in infos if not isinstance(i.raw.get("dsm_range"), list))
    return problems


def stats_pixels(info: TilingInfo, key: str = "image") -> list[float]:
    """How many pixels each band's statistics in ``info`` were computed on: ``stats.<key>.pixels`` as tile
    records it; for a folder tiled before it did, the pixels of the sample :func:`compute_stats` reads on a scene
    of the extent the chips reach (all of it up to 2 million pixels, a lattice of windows beyond), times the
    chips' mean valid fraction: what the statistics were computed on when the scene's valid pixels are spread
    as its chips'."""
    stats = info.raw["stats"][key]
    bands = len(stats["mean"])
    if stats.get("pixels"):
        return [float(n) for n in stats["pixels"]]
    rows = read_manifest(info, None)
    try:
        width = max(int(r["col_off"]) + int(r["width"]) for r in rows)
        height = max(int(r["row_off"]) + int(r["height"]) for r in rows)
        valid = sum(float(r.get("valid_fraction") or 1.0) for r in rows) / len(rows)
    except (KeyError, ValueError):  # a manifest without positions: each chip once, as the scene's pixels
        width, height, valid = 1, sum(int(r.get("width") or info.raw.get("size") or 1)
                                      * int(r.get("height") or info.raw.get("size") or 1) for r in rows), 1.0
    sampled = sum(int(w.width) * int(w.height) for w in sample_windows(width, height, STATS_SAMPLE_PIXELS))
    return [max(1.0, sampled * valid)] * bands


def _pool(infos: list[TilingInfo], key: str) -> dict[str, list[float]]:
    """``stats.<key>`` of the union of the folders' pixels: counts add, means weigh by them, variances pool
    as E[x^2] - E[x]^2 (a recorded std of 1.0 over a band whose minimum is its maximum was 0: tile's stand-in)."""
    weights = np.array([stats_pixels(i, key) for i in infos], np.float64)
    stats = [i.raw["stats"][key] for i in infos]
    mean = np.array([s["mean"] for s in stats], np.float64)
    std = np.array([s["std"] for s in stats], np.float64)
    low = np.array([s.get("minimum") or [math.nan] * mean.shape[1] for s in stats], np.float64)
    high = np.array([s.get("maximum") or [math.nan] * mean.shape[1] for s in stats], np.float64)
    std = np.where(low == high, 0.0, std)
    n = weights.sum(0)
    pooled_mean = (weights * mean).sum(0) / n
    second = (weights * (std**2 + mean**2)).sum(0) / n
    pooled_std = np.sqrt(np.maximum(second - pooled_mean**2, 0.0))
    out = {"mean": pooled_mean.tolist(), "std": np.where(pooled_std > 0, pooled_std, 1.0).tolist(),
           "pixels": [int(round(v)) for v in n]}
    if not np.isnan(low).any() and not np.isnan(high).any():
        out["minimum"], out["maximum"] = low.min(0).tolist(), high.max(0).tolist()
    return out


def pooled_tiling(infos: list[TilingInfo]) -> TilingInfo:
    """One :class:`TilingInfo` for folders that agree (:func:`folder_problems`): their image (and DSM)
    statistics pooled as the union of their pixels, the union of their DSM ranges (minmax-scene normalises
    each scene by its own, as predict does a new one), their fields, the colours of the one that names the
    most bands (:func:`model_colours`); ``root`` the first folder."""
    first = infos[0]
    raw: dict[str, Any] = {k: first.raw.get(k) for k in ("size", "bands", "dtype", "classes", "instance_targets")
                           if first.raw.get(k) is not None}
    colours = model_colours(infos)  # red, green, blue where one folder declares them and another gray, undefined
    if colours is not None:
        raw["colours"] = colours[1]
    raw["folders"] = [str(i.root) for i in infos]
    raw["stats"] = {"image": _pool(infos, "image"),
                    "dsm": _pool(infos, "dsm") if all(i.has_dsm for i in infos) else None}
    ranges = [i.raw.get("dsm_range") for i in infos]
    if all(isinstance(r, list) for r in ranges):
        raw["dsm_range"] = [min(r[0] for r in ranges), max(r[1] for r in ranges)]
    splits = [i.raw.get("splits") for i in infos]
    if all(isinstance(s, dict) for s in splits):
        raw["splits"] = {name: sum(s.get(name, 0) for s in splits) for name in splits[0]}
    for key in ("gsd_m", "nodata"):  # predict warns on a scene far from the pixel size: only one all share
        values = {i.raw.get(key) for i in infos}
        if len(values) == 1 and None not in values:
            raw[key] = values.pop()
    dsm = raw["stats"]["dsm"]
    return TilingInfo(root=first.root, bands=list(first.bands), image_mean=raw["stats"]["image"]["mean"],
                      image_std=raw["stats"]["image"]["std"], dsm_mean=dsm["mean"][0] if dsm else None,
                      dsm_std=dsm["std"][0] if dsm else None, classes=list(first.classes),
                      nodata=raw.get("nodata"), raw=raw)


def listed_twice(roots: list[str]) -> list[str]:
    """A folder listed twice in ``data.root`` (another spelling of the same path too): its chips would weigh
    twice in training and in the pooled statistics, and a resumed run would say 'other chips'."""
    seen: dict[Path, str] = {}
    problems = []
    for root in roots:
        where = Path(root).resolve()
        if where in seen:
            problems.append(f"data.root lists {root} twice (as {seen[where]} and {root})")
        seen.setdefault(where, str(root))
    return problems


def open_chip_folders(roots: list[str], train_split: str, val_split: str, *, use_dsm: bool | None, dsm_mode: str,
                      instances: bool = False) -> tuple[ChipFolders, ChipFolders | None]:
    """(training, validation or None) datasets of the union of ``roots``'s splits, every problem of every
    folder said at once. The folders are read in the order of their content hashes, so the same folders listed
    in another order are the same run (``--resume`` takes them). A folder without ``train_split`` (``val_split``)
    chips adds none to training (validation), said: one scene trains, another is held out to validate or test.
    No folder with ``train_split`` chips is :class:`MissingSplit`; none with ``val_split`` ones gives None. The
    model's normalisation pools the folders it trains on: a held-out scene's pixels stay unseen."""
    problems = ProblemCollector()
    for problem in listed_twice(roots):  # said with every other problem: one run to learn them all
        problems.add(problem)
    infos: list[TilingInfo] = []
    for root in roots:
        try:
            infos.append(read_tiling(root))
        except InputError as exc:
            laid_out = guess_layout(root)
            if laid_out is None or laid_out["layout"] == "chips":
                for problem in exc.problems:
                    problems.add(problem)
            else:  # one line, naming what it is, where 'no tiling.json; no manifest.csv' asked whether it was chips
                problems.add(f"{root}: holds {layout_name(laid_out)}, not chips written by 'rsmamba tile'; a list in "
                             f"data.root is of chip folders only: tile it, or train on it alone with "
                             f"{layout_settings(laid_out)}")
    if infos:
        for problem in folder_problems(infos, use_dsm=use_dsm, dsm_mode=dsm_mode, instances=instances):
            problems.add(problem)
    problems.raise_if_any()
    use_dsm = all(i.has_dsm for i in infos) if use_dsm is None else use_dsm  # the chips decide, as for one
    order = sorted(range(len(infos)), key=lambda k: chips_fingerprint(infos[k].root)["sha256"])
    infos = [infos[k] for k in order]
    train: list[ChipDataset] = []
    val: list[ChipDataset] = []
    parts: dict[Path, list[ChipDataset]] = {}  # each folder's datasets, of the splits it has
    absent: dict[Path, list[str]] = {}  # each folder's splits it lacks
    for info in infos:
        for split, into in ((train_split, train), (val_split, val)):
            try:
                into.append(ChipDataset(info.root, split, use_dsm=use_dsm, dsm_mode=dsm_mode))
                parts.setdefault(info.root, []).append(into[-1])
            except MissingSplit:  # a scene held out (tiled --split 0,1,0 or 0,0,1) adds none to that split
                absent.setdefault(info.root, []).append(split)
            except InputError as exc:
                for problem in exc.problems:  # a folder's problem read in both splits is said once
                    if problem not in problems.problems:
                        problems.add(problem)
    problems.raise_if_any()
    if not train:  # train --test then scores a held-out scene with its val split (rsmamba.train.trainer)
        raise MissingSplit(f"{', '.join(map(str, roots))}: no chips in split {train_split!r} in any of these folders")
    if not val:
        missing_val_split(val_split)
    for info in infos:
        rows = [r for ds in parts.get(info.root, []) for r in ds.rows]
        if rows and not any(r.get(c) for r in rows for c in ("labels", "labels_t2", "change")):
            problems.add(f"{info.root}: its chips carry no labels (tiled without --labels): nothing to learn from "
                         "or score; tile it with --labels, or leave it out of data.root")
    problems.raise_if_any()
    for root, splits in absent.items():  # said once for each folder
        reads = " and ".join(name for name, split in (("training", train_split), ("validation", val_split))
                             if split in splits)
        log.warning("%s: no chips in split %s: %s read%s the other folders' chips", root,
                    " or ".join(repr(s) for s in dict.fromkeys(splits)), reads, "" if " and " in reads else "s")
    trained = [info for info in infos if any(ds.root == info.root for ds in train)]
    pooled = pooled_tiling(trained)

    def pooled_normalisation(info: TilingInfo) -> TilingInfo:
        return dataclasses.replace(info, image_mean=pooled.image_mean, image_std=pooled.image_std,
                                   dsm_mean=pooled.dsm_mean, dsm_std=pooled.dsm_std)
    for ds in train + val:
        ds.info = pooled_normalisation(ds.info)
    return ChipFolders(train, pooled), (ChipFolders(val, pooled) if val else None)
