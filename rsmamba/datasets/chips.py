"""A ``torch`` dataset over a chip folder from ``rsmamba tile`` (``manifest.csv`` + ``tiling.json``).

Normalisation uses the statistics of the whole source raster recorded in ``tiling.json`` (never
per chip), and the same numbers go into the checkpoint, so predict sees exactly what training saw.
Where a pixel has no data (image nodata, a DSM hole (NaN); of a change pair, either date's nodata) every channel
becomes 0 after normalisation, the image bands too, as predict does (:func:`rsmamba.raster.normalize.blank_invalid`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from torch.utils.data import Dataset

from rsmamba.classes import IGNORE_INDEX, recorded_classes_problems
from rsmamba.errors import InputError, MissingSplit, ProblemCollector
from rsmamba.paths import listed_files_problem, outside
from rsmamba.raster.normalize import blank_invalid, normalize_dsm
from rsmamba.raster.source import pixels_coincide


# a change pair's chips carry the first date's DSM alone (the second date's image has none): read without it
CHANGE_DSM = "change chips carry one DSM only; set data.use_dsm: false"


@dataclass(frozen=True)
class TilingInfo:
    """What ``tiling.json`` says about a chip folder."""

    root: Path
    bands: list[int]
    image_mean: list[float]
    image_std: list[float]
    dsm_mean: float | None
    dsm_std: float | None
    classes: list[dict]
    nodata: float | None
    raw: dict

    @property
    def has_dsm(self) -> bool:
        return self.dsm_mean is not None

    @property
    def colours(self) -> list[str] | None:
        """The image bands' colour interpretation in the tiled raster (``red``, ``blue``, ``gray``, ...), if recorded."""
        colours = self.raw.get("colours")
        return [str(c) for c in colours] if isinstance(colours, list) and len(colours) == len(self.bands) else None

    def normalization(self, dsm_mode: str = "zscore") -> dict[str, Any]:
        """The checkpoint's ``normalization`` field."""
        norm: dict[str, Any] = {"image": {"mean": self.image_mean, "std": self.image_std}}
        # What the model saw, so predict can refuse an input on another scale (rsmamba.raster.validate).
        seen = (self.raw.get("stats") or {}).get("image") or {}
        if seen.get("minimum") and seen.get("maximum"):
            norm["image"]["minimum"] = [float(v) for v in seen["minimum"]]
            norm["image"]["maximum"] = [float(v) for v in seen["maximum"]]
        if self.raw.get("dtype"):
            norm["image"]["dtype"] = str(self.raw["dtype"])
        if self.has_dsm:
            norm["dsm"] = {"mode": dsm_mode, "mean": self.dsm_mean, "std": self.dsm_std}
            if dsm_mode == "ground-relative":
                norm["dsm"]["scale"] = 10.0
            if dsm_mode == "minmax-scene" and not self.raw.get("layout"):  # benchmarks: each tile's, when read
                scene = self.raw.get("dsm_range")  # chips: the tiled scene's whole range (tile records it)
                if not (isinstance(scene, list) and len(scene) == 2):
                    raise InputError(f"{self.root / 'tiling.json'}: data.dsm_mode minmax-scene needs the tiled "
                                     "scene's DSM range, which tiles of an older rsmamba do not record; re-run "
                                     "'rsmamba tile'")
                norm["dsm"]["minimum"], norm["dsm"]["maximum"] = float(scene[0]), float(scene[1])
        return norm


def read_tiling(root: str | os.PathLike[str]) -> TilingInfo:
    """Read and check ``tiling.json`` and ``manifest.csv`` of a chip folder (every problem at once)."""
    root = Path(root)
    if not root.is_dir():  # ('no tiling.json; no manifest.csv' of a folder that is not there)
        raise InputError(f"{root}: {'not a folder' if root.exists() else 'no such folder'} (data.root: the chip "
                         "folder 'rsmamba tile' wrote)")
    problems = ProblemCollector()
    for name in ("tiling.json", "manifest.csv"):
        if not (root / name).is_file():
            problems.add(f"{root}: no {name} (is this a folder written by 'rsmamba tile'?)")
    problems.raise_if_any()
    where = root / "tiling.json"
    try:
        meta = json.loads(where.read_bytes().decode("utf-8"))
        if not isinstance(meta, dict):
            raise InputError(f"{where}: not a tiling description (a JSON object); re-run 'rsmamba tile'")
        for problem in _tiling_problems(meta):
            problems.add(f"{where}: {problem}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: not valid JSON ({exc}); re-run 'rsmamba tile'") from exc
    except RecursionError:
        raise InputError(f"{where}: nested too deeply to be a tiling description; re-run 'rsmamba tile'") from None
    problems.raise_if_any()
    stats = meta.get("stats") or {}
    image_stats, dsm_stats = stats["image"], stats.get("dsm")
    std = [float(s) if float(s) > 0 else 1.0 for s in image_stats["std"]]  # a constant band: 0
    return TilingInfo(
        root=root, bands=[int(b) for b in meta.get("bands") or range(1, len(std) + 1)],
        image_mean=[float(m) for m in image_stats["mean"]], image_std=std,
        dsm_mean=float(dsm_stats["mean"][0]) if dsm_stats else None,
        dsm_std=(float(dsm_stats["std"][0]) or 1.0) if dsm_stats else None,
        classes=list(meta.get("classes") or []), nodata=meta.get("nodata"), raw=meta,
    )


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shown(value: object) -> str:
    return (text := json.dumps(value) if isinstance(value, (list, dict, str)) else str(value))[:60] + (
        "..." if len(text) > 60 else "")


def _numbers_problem(value: object, field: str, *, length: int | None = None, positive: bool = False) -> str | None:
    """Why ``value`` is no list of finite numbers (>= 0 with ``positive``; of ``length``), or None. A NaN mean
    made every input NaN (zeroed: a model of nothing), a NaN std became 1.0, both with exit 0."""
    if (not isinstance(value, list) or not value or not all(_number(v) and math.isfinite(v) for v in value)
            or (positive and min(value) < 0)):
        what = "finite numbers >= 0" if positive else "finite numbers"
        return f"{field} must be a list of {what}, got {_shown(value)}"
    if length is not None and len(value) != length:
        return f"{field} holds {len(value)} values for {length} image bands"
    return None


def _pixels_problem(stats: dict, field: str, bands: int | None) -> str | None:
    """Why ``stats``'s pixel counts (what several folders' statistics are pooled by) are no counts, or None."""
    pixels = stats.get("pixels")
    if pixels is None or pixels == []:  # tiles of an older rsmamba: estimated when pooled (rsmamba.datasets.folders)
        return None
    if not isinstance(pixels, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1
                                               for n in pixels):
        return f"{field}.pixels must be a list of pixel counts (integers >= 1), got {_shown(pixels)}"
    if bands is not None and len(pixels) != bands:
        return f"{field}.pixels holds {len(pixels)} counts for {bands} bands"
    return None


def _tiling_problems(meta: dict) -> list[str]:
    """Every field of a ``tiling.json`` that ``train`` and its checkpoint use, checked for what ``tile`` writes."""
    problems: list[str | None] = []
    stats = meta.get("stats")
    image = stats.get("image") if isinstance(stats, dict) else None
    if not isinstance(image, dict) or not image.get("mean") or not image.get("std"):
        return ["no image statistics (stats.image.mean and std)"]
    bands = len(image["mean"]) if isinstance(image["mean"], list) else None
    problems.append(_numbers_problem(image["mean"], "stats.image.mean"))
    problems.append(_numbers_problem(image["std"], "stats.image.std", length=bands, positive=True))
    for key in ("minimum", "maximum"):
        if image.get(key):
            problems.append(_numbers_problem(image[key], f"stats.image.{key}", length=bands))
    problems.append(_pixels_problem(image, "stats.image", bands))
    dsm = stats.get("dsm")
    if dsm is not None and not isinstance(dsm, dict):
        problems.append(f"stats.dsm must be an object of mean and std, got {_shown(dsm)}")
    elif dsm:
        problems.append(_numbers_problem(dsm.get("mean"), "stats.dsm.mean"))
        problems.append(_numbers_problem(dsm.get("std"), "stats.dsm.std", positive=True))
        problems.append(_pixels_problem(dsm, "stats.dsm", 1))
    listed = meta.get("bands")
    if listed is not None and (not isinstance(listed, list) or len(listed) != bands or not all(
            isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in listed)):
        problems.append(f"bands must be {bands} band numbers (1, 2, ...), one per image mean, got {_shown(listed)}")
    problems.extend(recorded_classes_problems(meta.get("classes") or [], "classes"))
    splits = meta.get("splits")
    if splits is not None and (not isinstance(splits, dict) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in splits.values())):
        problems.append(f"splits must map each split to its number of chips, got {_shown(splits)}")
    size = meta.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        problems.append(f"size must be the chips' size in pixels, got {_shown(size)}")
    if meta.get("nodata") is not None and not _number(meta["nodata"]):
        problems.append(f"nodata must be a number or null, got {_shown(meta['nodata'])}")
    scene = meta.get("dsm_range")
    if scene is not None and (not isinstance(scene, list) or len(scene) != 2
                              or not all(_number(v) and math.isfinite(v) for v in scene)):
        problems.append(f"dsm_range must be two finite heights, got {_shown(scene)}")
    if meta.get("dtype") is not None and not isinstance(meta["dtype"], str):
        problems.append(f"dtype must be a pixel type name, got {_shown(meta['dtype'])}")
    targets = meta.get("instance_targets")
    channels = targets.get("channels") if isinstance(targets, dict) else None
    named = isinstance(channels, list) and channels and all(isinstance(c, str) for c in channels)
    if targets is not None and not (named and len(set(channels)) == len(channels)):
        problems.append("instance_targets must be an object naming the targets chips' bands (channels: interior, "
                        f"border, contact), got {_shown(targets)}")
    return [p for p in problems if p]


# manifest.csv's columns naming chip files, each a path within the folder
PATH_COLUMNS = ("image", "dsm", "labels", "t2", "labels_t2", "change", "targets")
SHOWN_PROBLEMS = 10  # of a manifest's rows (a folder may hold 100k chips)


CHIP_SPLITS = ("train", "val", "test")  # the splits 'rsmamba tile' writes


def missing_val_split(split: str) -> None:
    """Refuse a ``data.val_split`` no chip folder can hold (a typo): 'vall' trained without validation, and the
    summary blamed 'no val chip with a labelled pixel'. A split of tile's that a folder lacks trains without
    validation, as tiled (``--split 1,0,0``)."""
    if split not in CHIP_SPLITS:
        raise InputError(f"data.val_split {split!r}: not a split 'rsmamba tile' writes ({', '.join(CHIP_SPLITS)}), "
                         "so no chip has it; name one of those")


def read_manifest(info: TilingInfo, split: str | None) -> list[dict[str, str]]:
    """The rows of a chip folder's ``manifest.csv`` in ``split`` (all with None), once the whole file is checked:
    its columns, each row's chip files within the folder (a received manifest opened any file the user can
    read), one row per chip id (a chip in train and val was scored as unseen), its size and class histogram.
    One error lists every problem (the first few rows of each kind, then a count)."""
    root = info.root
    path = root / "manifest.csv"
    largest = info.raw.get("size") or 2**31  # chips are --size, or the scene's width or height if smaller
    try:
        reader = csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8"), newline=""))
        rows, columns = list(reader), set(reader.fieldnames or ())
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}); re-run 'rsmamba tile'") from None
    except csv.Error as exc:
        raise InputError(f"{path}: not a CSV table ({exc}); re-run 'rsmamba tile'") from None
    lacking = [c for c in ("chip_id", "split", "image") if c not in columns]
    if not rows or lacking:
        raise InputError(f"{path}: {'no ' + ', '.join(lacking) + ' column' if rows else 'no chips'} "
                         "(is this a manifest written by 'rsmamba tile'?)")
    declared = info.raw.get("splits")  # tile's {split: number of chips}; absent from an older tiling.json
    targets = bool(info.raw.get("instance_targets"))  # each chip has a targets chip: none missing from a batch
    problems: dict[str, list[str]] = {}
    if targets and "targets" not in columns:
        problems["targets"] = [f"{path}: no targets column, but tiling.json's instance_targets says each chip has "
                               "a targets chip; re-tile with --instance-targets"]
    counts: dict[str, int] = {}
    seen: dict[str, tuple[int, str]] = {}
    shapes: set[tuple[int, int]] = set()

    def add(kind: str, line: int, text: str) -> None:
        problems.setdefault(kind, []).append(f"{path} line {line}: {text}")
    for line, row in enumerate(rows, start=2):
        if None in row or None in row.values():
            given = len(columns) + len(row[None]) if None in row else sum(v is not None for v in row.values())
            add("fields", line, f"{given} fields, the header names {len(columns)}")
            continue
        chip = row["chip_id"]
        if chip in seen:
            first, split_before = seen[chip]
            other = split_before != row["split"]
            add("twice", line, f"chip {chip!r} is listed again (line {first}"
                + (f", in split {split_before}; a chip in two splits is scored as unseen)" if other else ")"))
        else:
            seen[chip] = (line, row["split"])
        split_of = row["split"]
        counts[split_of] = counts.get(split_of, 0) + 1
        if not split_of:  # read by no split, without a word
            add("split", line, f"chip {chip!r} has no split ({', '.join(CHIP_SPLITS)}): no run would read it")
        elif isinstance(declared, dict) and split_of not in declared:
            add("split", line, f"split {split_of!r} is none of tiling.json's splits ({', '.join(declared)}): no run "
                "of those would read its chip")
        if targets and "targets" in columns and not row["targets"]:
            add("targets", line, f"chip {chip!r} names no targets chip, but tiling.json's instance_targets says each "
                "chip has one")
        for column in PATH_COLUMNS:
            if row.get(column) and outside(row[column]):
                add("outside", line, f"{column} {row[column]!r} leads outside {root}; chip files are within the "
                    "folder")
        if "width" in row or "height" in row:
            try:
                width, height = int(row.get("width", "")), int(row.get("height", ""))
                if not 0 < width <= largest or not 0 < height <= largest:
                    raise ValueError
                shapes.add((width, height))
            except ValueError:
                add("size", line, f"width {row.get('width')!r}, height {row.get('height')!r}: not a chip's size in "
                    f"pixels (1..tiling.json's size {largest})")
        if row.get("class_hist"):
            try:
                hist = json.loads(row["class_hist"])
                if not isinstance(hist, dict) or not all(k.isdigit() and int(k) <= IGNORE_INDEX and isinstance(v, int)
                                                         and v >= 0 for k, v in hist.items()):
                    raise ValueError
            except (ValueError, RecursionError):
                add("hist", line, f"class_hist {_shown(row['class_hist'])}: not a histogram of class ids "
                    f"0..{IGNORE_INDEX} (an object of pixel counts)")
    if isinstance(declared, dict) and not problems.get("fields") and any(
            counts.get(name, 0) != n for name, n in declared.items()):  # a chip moved to another split by hand
        listed = ", ".join(f"{name} {counts.get(name, 0)}" for name in declared)
        recorded = ", ".join(f"{name} {n}" for name, n in declared.items())
        problems["counts"] = [f"{path}: chips per split {listed}, where tiling.json's splits says {recorded}; "
                              "re-tile, or make tiling.json's splits say what the manifest holds"]
    if len(shapes) > 1:  # one tiling run cuts one window size; chips of two sizes stack into no batch
        problems.setdefault("shapes", []).append(
            f"{path}: chips of {len(shapes)} sizes ({', '.join(f'{w} x {h}' for w, h in sorted(shapes)[:4])} px)")
    if problems:
        said = [p for found in problems.values() for p in found[:SHOWN_PROBLEMS]]
        more = sum(len(found) for found in problems.values()) - len(said)
        raise InputError(said + ([f"... and {more} more problems in {path}"] if more else []))
    return [r for r in rows if split is None or r["split"] == split]


def chip_size(info: TilingInfo) -> tuple[int, int] | None:
    """(width, height) of a chip folder's chips, from ``manifest.csv`` (checked whole: one tiling cuts one window,
    ``--size`` or the scene's side where it is narrower; :func:`read_manifest` refuses two sizes); None for a
    manifest that lists no sizes."""
    for row in read_manifest(info, None):
        if row.get("width") and row.get("height"):
            return int(row["width"]), int(row["height"])
    return None


# tiling.json's source paths: where the scene was read from, not what the chips hold (a moved scene tiles alike)
_SOURCE_PATHS = ("image", "dsm", "labels", "t2")


def chips_fingerprint(root: str | os.PathLike[str] | list[str]) -> dict[str, Any]:
    """What a chip folder holds, whatever its path: a sha256 of ``manifest.csv`` (chips, splits, bounds, class
    histograms) and of ``tiling.json`` less its source paths (statistics, size, classes), with what a person
    knows the chips by. A resumed run compares it: another folder's chips would switch its statistics mid-run.

    Several folders (``data.root`` a list): one sha256 of their sorted hashes, so the same folders listed in
    another order are the same data (they are read in the order of their hashes, :mod:`rsmamba.datasets.folders`)."""
    if isinstance(root, list):
        parts = [chips_fingerprint(r) for r in root]
        digest = hashlib.sha256("".join(sorted(p["sha256"] for p in parts)).encode())
        sizes = {p["size"] for p in parts}
        counted = [p["chips"] for p in parts]
        return {"sha256": digest.hexdigest(), "size": sizes.pop() if len(sizes) == 1 else None,
                "source": [p["source"] for p in parts], "folders": len(parts),
                "chips": None if None in counted else sum(counted)}
    info = read_tiling(root)
    described = {k: v for k, v in info.raw.items() if k not in _SOURCE_PATHS}
    digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode())
    digest.update((info.root / "manifest.csv").read_bytes())
    splits = info.raw.get("splits")
    return {"sha256": digest.hexdigest(), "size": info.raw.get("size"), "source": info.raw.get("image"),
            "chips": sum(int(n) for n in splits.values()) if isinstance(splits, dict) else None}


def describe_chips(fingerprint: dict[str, Any]) -> str:
    """A fingerprint of :func:`chips_fingerprint` (or of a benchmark layout's files) as one phrase: count, size,
    source and content hash."""
    count, size, source = fingerprint.get("chips"), fingerprint.get("size"), fingerprint.get("source")
    if fingerprint.get("layout"):
        return (f"{fingerprint.get('files')} files of the {fingerprint['layout']} layout in {source} "
                f"(content {str(fingerprint.get('sha256'))[:12]})")
    if fingerprint.get("folders"):
        return (f"{count if count is not None else 'the'} chips{f' of {size} px' if size else ''} of "
                f"{fingerprint['folders']} folders (content {str(fingerprint.get('sha256'))[:12]})")
    return (f"{count if count is not None else 'the'} chips{f' of {size} px' if size else ''}"
            f"{f' tiled from {source}' if source else ''} (content {str(fingerprint.get('sha256'))[:12]})")


def split_counts(root: object) -> str:
    """'; its chips: train 48, val 16' for a chip folder (or list of them) whose ``manifest.csv`` reads, else '':
    what a missing split's refusal can name (it said only 'no labelled split test', QA)."""
    from collections import Counter

    counts: Counter[str] = Counter()
    try:
        for r in (root if isinstance(root, (list, tuple)) else [root]):
            counts.update(row.get("split", "") for row in read_manifest(read_tiling(r), None))
    except (InputError, OSError, ValueError):
        return ""
    shown = ", ".join(f"{name} {counts[name]}" for name in CHIP_SPLITS if counts[name])
    return f"; its chips: {shown} (rsmamba tile --split gives each split its share)" if shown else ""


def change_from_labels(mask: torch.Tensor, mask2: torch.Tensor) -> torch.Tensor:
    """Change (1) where two dates' class ids differ, no change (0) where they agree, ``IGNORE_INDEX`` where
    either has no label: the change a pair of land-cover maps states (SECOND's, whose unchanged pixels are 0 on
    both dates). Chips tiled with both dates' labels and no ``--change-labels`` trained no change head at all,
    unsaid (QA)."""
    change = (mask != mask2).to(torch.int64)
    change[(mask == IGNORE_INDEX) | (mask2 == IGNORE_INDEX)] = IGNORE_INDEX
    return change


def derives_change(rows: list[dict[str, str]]) -> bool:
    """Whether some pair of ``rows`` takes its change from its dates' labels (no change chip)."""
    return any(r.get("t2") and r.get("labels") and r.get("labels_t2") and not r.get("change") for r in rows)


def describe_roots(root: object) -> str:
    """``data.root`` as messages name it: the folder, or the folders of a list joined by commas."""
    return ", ".join(str(r) for r in root) if isinstance(root, (list, tuple)) else str(root)


class ChipDataset(Dataset):
    """Chips of one split as dicts of tensors: ``image`` (C,H,W float32, with the DSM as the last
    channel when ``use_dsm``), ``mask`` (H,W int64, 255 = ignore) and ``chip_id``.

    For change folders (``t2`` column), ``image2`` and — when present — ``mask2`` / ``change`` too; a pair with
    both dates' labels and no change chip takes its change where they differ (:func:`change_from_labels`).
    ``transform`` receives and returns the sample dict (see :mod:`rsmamba.augment`).
    """

    def __init__(self, root: str | os.PathLike[str], split: str | None = "train", *, use_dsm: bool | None = None,
                 dsm_mode: str = "zscore", transform: Callable[[dict], dict] | None = None):
        self.info = read_tiling(root)
        self.root = self.info.root
        self.rows = read_manifest(self.info, split)
        if not self.rows:
            raise MissingSplit(f"{self.root}: no chips in split {split!r}")
        self.use_dsm = self.info.has_dsm if use_dsm is None else use_dsm
        if self.use_dsm and not self.info.has_dsm:
            raise InputError(f"{self.root}: the config asks for a DSM but the chips have none")
        if self.use_dsm and any(r.get("t2") for r in self.rows):
            raise InputError(f"{self.root}: {CHANGE_DSM}")
        columns = ("image", "labels", "t2", "labels_t2", "change", "targets") + (("dsm",) if self.use_dsm else ())
        missing = listed_files_problem((self.root / r[c] for r in self.rows for c in columns if r.get(c)),
                                       str(self.root))
        if missing:
            raise missing
        self.dsm_mode = dsm_mode
        self.transform = transform
        self.target_bands: list[int] = []  # 0-based bands of targets/ chips to load (model.instances)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def in_chans(self) -> int:
        return len(self.info.image_mean) + (1 if self.use_dsm else 0)

    def _checked(self, src: Any, row: dict[str, str], bands: int, field: str = "tiling.json's bands") -> None:
        """A chip of ``row`` must have the bands and size the folder describes: a 1-band chip was broadcast to
        three channels without a word (a model recorded as RGB), a 2-band or smaller one failed in numpy."""
        shape = (bands, int(row.get("height") or src.height), int(row.get("width") or src.width))
        if (src.count, src.height, src.width) != shape:
            raise InputError(f"{src.name}: chip {row['chip_id']} has {src.count} band(s) of {src.width} x {src.height} "
                             f"px; its folder says {shape[0]} of {shape[2]} x {shape[1]} px ({field}, "
                             "manifest.csv's width and height); re-tile it")

    def _read_image(self, row: dict[str, str], column: str,
                    dsm_rel: str | None) -> tuple[np.ndarray, np.ndarray, tuple]:
        """Normalised image (+ DSM channel when ``use_dsm`` and ``dsm_rel``), where it has data (the chip's mask and,
        with the DSM, a height: predict's :meth:`~rsmamba.raster.source.AlignedSource.read_valid`), and the chip's
        grid (CRS, transform). Not yet blanked: a change pair's dates are blanked where either has no data."""
        with rasterio.open(self.root / row[column]) as src:
            self._checked(src, row, len(self.info.image_mean))
            raw = src.read().astype(np.float32)
            # GDAL's mask of the chip: its nodata in every band, or the mask tile writes from an alpha band or mask
            # (read as imagery, black as -2.1, where predict gives the network 0)
            valid = src.dataset_mask() > 0
            grid = (src.crs, src.transform)
        mean = np.asarray(self.info.image_mean, np.float32)[:, None, None]
        std = np.asarray(self.info.image_std, np.float32)[:, None, None]
        x = (raw - mean) / std
        if self.use_dsm and dsm_rel:
            with rasterio.open(self.root / dsm_rel) as src:
                self._checked(src, row, 1)
                d = src.read(1).astype(np.float32)
            valid &= ~np.isnan(d)  # a DSM hole: no data in any channel, as predict reads it
            d = normalize_dsm(d, valid, self.info.normalization(self.dsm_mode)["dsm"])
            x = np.concatenate([x, d[None]])
        return np.nan_to_num(x, copy=False), valid, grid

    def _read_mask(self, row: dict[str, str], column: str) -> torch.Tensor:
        """A label chip's ids, each a class of the folder's table (change: 0/1) or 255: a value past it failed
        mid-epoch with an IndexError in the loss (a device assert on a GPU)."""
        with rasterio.open(self.root / row[column]) as src:
            self._checked(src, row, 1)
            mask = src.read(1)
        top = 1 if column == "change" else len(self.info.classes) - 1
        if top >= 0 and (mask.max(initial=0) > top or mask.min(initial=0) < 0):  # two passes of a chip; no copy
            bad = np.unique(mask[((mask > top) & (mask != IGNORE_INDEX)) | (mask < 0)])
            if bad.size:
                raise InputError(f"{self.root / row[column]}: chip {row['chip_id']} holds label values "
                                 f"{', '.join(map(str, bad[:8].tolist()))}, past its folder's classes 0..{top} "
                                 f"({IGNORE_INDEX} no label); re-tile it")
        return torch.from_numpy(mask.astype(np.int64))

    def _read_targets(self, row: dict[str, str], grid: tuple) -> torch.Tensor:
        """The ``target_bands`` of a chip's targets chip, checked as a label chip is, and on its image chip's grid:
        a band short was an IndexError, a chip of another window or values past 0/1/255 trained silently."""
        with rasterio.open(self.root / row["targets"]) as src:
            self._checked(src, row, len(self.info.raw["instance_targets"]["channels"]),
                          "tiling.json's instance_targets channels")
            if src.crs != grid[0] or not pixels_coincide(src.transform, grid[1], src.width, src.height):
                raise InputError(f"{self.root / row['targets']}: chip {row['chip_id']} is not on the grid of its image "
                                 f"chip {row['image']} (another window or CRS); re-tile it")
            t = src.read([b + 1 for b in self.target_bands])
        bad = np.unique(t[(t != 0) & (t != 1) & (t != IGNORE_INDEX)])  # NaN too
        if bad.size:
            raise InputError(f"{self.root / row['targets']}: chip {row['chip_id']} holds instance target values "
                             f"{', '.join(f'{v:g}' for v in bad[:8].tolist())} ({t.dtype}); instance targets are 0, 1 "
                             f"and {IGNORE_INDEX} (no target): re-tile it with --instance-targets")
        return torch.from_numpy(t.astype(np.int64))

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        image, valid, grid = self._read_image(row, "image", row.get("dsm"))
        if row.get("t2"):  # the tiler keeps one DSM (t1) per chip
            image2, valid2, _ = self._read_image(row, "t2", None)
            valid &= valid2  # predict blanks both dates where either has no data (rsmamba.change)
        sample: dict[str, Any] = {"chip_id": row["chip_id"], "image": torch.from_numpy(blank_invalid(image, valid))}
        if row.get("labels"):
            sample["mask"] = self._read_mask(row, "labels")
        else:
            sample["mask"] = torch.full(sample["image"].shape[1:], IGNORE_INDEX, dtype=torch.int64)
        if self.target_bands:  # every row names one (read_manifest)
            sample["targets"] = self._read_targets(row, grid)
        if row.get("t2"):
            sample["image2"] = torch.from_numpy(blank_invalid(image2, valid))
            if row.get("labels_t2"):
                sample["mask2"] = self._read_mask(row, "labels_t2")
            if row.get("change"):
                sample["change"] = self._read_mask(row, "change")
            elif "mask2" in sample and row.get("labels"):
                sample["change"] = change_from_labels(sample["mask"], sample["mask2"])
        if self.transform is not None:
            sample = self.transform(sample)
        return sample
