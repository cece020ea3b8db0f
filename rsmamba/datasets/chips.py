"""A ``torch`` dataset over a chip folder from ``rsmamba tile`` (``manifest.csv`` + ``tiling.json``).

Normalisation uses the statistics of the whole source raster recorded in ``tiling.json`` (never
per chip), and the same numbers go into the checkpoint, so predict sees exactly what training saw.
Invalid pixels (image nodata, DSM NaN) become 0 after normalisation, as predict does.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from torch.utils.data import Dataset

from rsmamba.classes import IGNORE_INDEX
from rsmamba.errors import InputError, MissingSplit, ProblemCollector, missing_files
from rsmamba.raster.normalize import normalize_dsm


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
    problems = ProblemCollector()
    for name in ("tiling.json", "manifest.csv"):
        if not (root / name).is_file():
            problems.add(f"{root}: no {name} (is this a folder written by 'rsmamba tile'?)")
    problems.raise_if_any()
    try:
        meta = json.loads((root / "tiling.json").read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{root / 'tiling.json'}: not valid JSON ({exc}); re-run 'rsmamba tile'") from exc
    if not isinstance(meta, dict):
        raise InputError(f"{root / 'tiling.json'}: not a tiling description (a JSON object); re-run 'rsmamba tile'")
    stats = meta.get("stats") or {}
    image_stats = stats.get("image") or {}
    if not image_stats.get("mean") or not image_stats.get("std"):
        problems.add(f"{root / 'tiling.json'}: no image statistics")
    problems.raise_if_any()
    dsm_stats = stats.get("dsm")
    std = [float(s) if float(s) > 0 else 1.0 for s in image_stats["std"]]
    return TilingInfo(
        root=root, bands=[int(b) for b in meta.get("bands") or range(1, len(std) + 1)],
        image_mean=[float(m) for m in image_stats["mean"]], image_std=std,
        dsm_mean=float(dsm_stats["mean"][0]) if dsm_stats else None,
        dsm_std=(float(dsm_stats["std"][0]) or 1.0) if dsm_stats else None,
        classes=list(meta.get("classes") or []), nodata=meta.get("nodata"), raw=meta,
    )


def read_manifest(root: Path, split: str | None) -> list[dict[str, str]]:
    with open(root / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r for r in rows if split is None or r["split"] == split]


# tiling.json's source paths: where the scene was read from, not what the chips hold (a moved scene tiles alike)
_SOURCE_PATHS = ("image", "dsm", "labels", "t2")


def chips_fingerprint(root: str | os.PathLike[str]) -> dict[str, Any]:
    """What a chip folder holds, whatever its path: a sha256 of ``manifest.csv`` (chips, splits, bounds, class
    histograms) and of ``tiling.json`` less its source paths (statistics, size, classes), with what a person
    knows the chips by. A resumed run compares it: another folder's chips would switch its statistics mid-run."""
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
    return (f"{count if count is not None else 'the'} chips{f' of {size} px' if size else ''}"
            f"{f' tiled from {source}' if source else ''} (content {str(fingerprint.get('sha256'))[:12]})")


class ChipDataset(Dataset):
    """Chips of one split as dicts of tensors: ``image`` (C,H,W float32, with the DSM as the last
    channel when ``use_dsm``), ``mask`` (H,W int64, 255 = ignore) and ``chip_id``.

    For change folders (``t2`` column), ``image2`` and — when present — ``mask2`` / ``change`` too.
    ``transform`` receives and returns the sample dict (see :mod:`rsmamba.augment`).
    """

    def __init__(self, root: str | os.PathLike[str], split: str | None = "train", *, use_dsm: bool | None = None,
                 dsm_mode: str = "zscore", transform: Callable[[dict], dict] | None = None):
        self.info = read_tiling(root)
        self.root = self.info.root
        self.rows = read_manifest(self.root, split)
        if not self.rows:
            raise MissingSplit(f"{self.root}: no chips in split {split!r}")
        self.use_dsm = self.info.has_dsm if use_dsm is None else use_dsm
        if self.use_dsm and not self.info.has_dsm:
            raise InputError(f"{self.root}: the config asks for a DSM but the chips have none")
        if self.use_dsm and any(r.get("t2") for r in self.rows):
            raise InputError(f"{self.root}: change chips carry one DSM only; set data.use_dsm: false")
        columns = ("image", "labels", "t2", "labels_t2", "change", "targets") + (("dsm",) if self.use_dsm else ())
        missing = missing_files((self.root / r[c] for r in self.rows for c in columns if r.get(c)), str(self.root))
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

    def _read_image(self, rel: str, dsm_rel: str | None) -> torch.Tensor:
        """Normalised image (+ DSM channel when ``use_dsm`` and ``dsm_rel``)."""
        with rasterio.open(self.root / rel) as src:
            raw = src.read().astype(np.float32)
            # GDAL's mask of the chip: its nodata in every band, or the mask tile writes from an alpha band or mask
            # (read as imagery, black as -2.1, where predict gives the network 0)
            valid = src.dataset_mask() > 0
        mean = np.asarray(self.info.image_mean, np.float32)[:, None, None]
        std = np.asarray(self.info.image_std, np.float32)[:, None, None]
        x = (raw - mean) / std
        if self.use_dsm and dsm_rel:
            with rasterio.open(self.root / dsm_rel) as src:
                d = src.read(1).astype(np.float32)
            d = normalize_dsm(d, valid, self.info.normalization(self.dsm_mode)["dsm"])
            x = np.concatenate([x, d[None]])
        x[:, ~valid] = 0.0
        return torch.from_numpy(np.nan_to_num(x))

    def _read_mask(self, rel: str) -> torch.Tensor:
        with rasterio.open(self.root / rel) as src:
            return torch.from_numpy(src.read(1).astype(np.int64))

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        sample: dict[str, Any] = {"chip_id": row["chip_id"], "image": self._read_image(row["image"], row.get("dsm"))}
        if row.get("labels"):
            sample["mask"] = self._read_mask(row["labels"])
        else:
            sample["mask"] = torch.full(sample["image"].shape[1:], IGNORE_INDEX, dtype=torch.int64)
        if self.target_bands and row.get("targets"):
            with rasterio.open(self.root / row["targets"]) as src:
                sample["targets"] = torch.from_numpy(src.read([b + 1 for b in self.target_bands]).astype(np.int64))
        if row.get("t2"):
            sample["image2"] = self._read_image(row["t2"], None)  # the tiler keeps one DSM (t1) per chip
            if row.get("labels_t2"):
                sample["mask2"] = self._read_mask(row["labels_t2"])
            if row.get("change"):
                sample["change"] = self._read_mask(row["change"])
        if self.transform is not None:
            sample = self.transform(sample)
        return sample
