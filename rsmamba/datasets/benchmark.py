"""Training and validation datasets for every ``data.layout``: chip folders and the benchmarks as published.

``open_datasets(data_cfg)`` is the one entry point of the trainer. Each dataset it returns has an
``info`` (:class:`~rsmamba.datasets.chips.TilingInfo`: bands, normalisation, classes) that goes
into the checkpoint, and a ``use_dsm`` flag. Benchmarks are read in place, in their published
folders, names and label codings (see :mod:`rsmamba.datasets.layouts`); large tiles are sampled
by random crops per epoch (``data.crop``, ``data.crops_per_image``, times the patches a pre-cut split at
``data.crop_stride`` would make), seeded by (seed, epoch,
index) so a resumed run draws the same crops. Validation covers each image by a fixed grid of
crops, so a score is over every labelled pixel.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.windows import Window
from torch.utils.data import Dataset

from rsmamba.classes import IGNORE_INDEX, ISPRS_CLASSES, ClassInfo
from rsmamba.datasets.chips import ChipDataset, TilingInfo, missing_val_split
from rsmamba.datasets.folders import ChipFolders, open_chip_folders
from rsmamba.datasets.layouts import (
    DEFAULT_STATS,
    LANDSAT_SCD_CLASSES,
    POTSDAM_TRAIN,
    VAIHINGEN_TRAIN,
    LOVEDA_CLASSES,
    LOVEDA_COLOURS,
    SECOND_CLASSES,
    SECOND_COLOURS,
    LandsatSCDDataset,
    LoveDADataset,
    Pair,
    SECONDDataset,
    decode_labels,
    guess_layout,
    isprs_label_path,
    isprs_pairs,
    label_bands_problem,
    layout_colours,
    layout_declared_colours,
    layout_name,
    layout_settings,
    note_unreadable,
    unlabelled_by_design,
)
from rsmamba.errors import InputError, MissingSplit
from rsmamba.raster.normalize import dsm_range, normalize_dsm
from rsmamba.runlog import warn_once

log = logging.getLogger(__name__)
LAYOUTS = ("chips", "isprs", "loveda", "second", "landsat-scd")
# Landsat-SCD labels are index images; these display colours are ours, not the dataset's.
LANDSAT_SCD_COLOURS = ((255, 255, 255), (0, 155, 0), (255, 165, 0), (230, 30, 100), (0, 170, 240))


def _table(names: Sequence[str], colours: Sequence[Sequence[int]]) -> list[dict]:
    return [ClassInfo(i, n, tuple(c)).to_dict() for i, (n, c) in enumerate(zip(names, colours))]


def _quiet_open(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        return rasterio.open(path)


def crop_origin(height: int, width: int, crop: int, seed: int, epoch: int, index: int) -> tuple[int, int]:
    """A random top-left corner for a crop, the same for the same (seed, epoch, index) in any process."""
    rng = np.random.default_rng([seed, epoch, index])
    return int(rng.integers(0, max(height - crop, 0) + 1)), int(rng.integers(0, max(width - crop, 0) + 1))


def _starts(n: int, crop: int) -> list[int]:
    """Crop starts along an axis of ``n`` px: stride ``crop``, the last one aligned to the far edge."""
    return [0] if n <= crop else [*range(0, n - crop, crop), n - crop]


def grid_origins(height: int, width: int, crop: int) -> list[tuple[int, int]]:
    """Crops covering an image: stride ``crop``, the last row/column aligned to the far edge."""
    return [(r, c) for r in _starts(height, crop) for c in _starts(width, crop)]


def patch_count(height: int, width: int, crop: int, stride: int) -> int:
    """Patches of ``crop`` px at ``stride`` that GeoSeg's ``*_patch_split.py`` cuts of one copy of an image
    (WangLibo1995/GeoSeg@9453fe4 tools/potsdam_patch_split.py:56-63, 204-211): the image padded at the
    bottom and right to a multiple of ``crop``, every window at ``stride`` that fits. A recipe's epoch size
    per copy (its train mode cuts three: ``data.crops_per_image``); equal to an unpadded split when
    ``stride == crop``, larger when ``stride < crop`` (2557 px, 1024 / 512: 5 rows, not 4)."""
    def axis(n: int) -> int:
        padded = -(-n // crop) * crop
        return (padded - crop) // stride + 1
    return axis(height) * axis(width)


def seen_before(height: int, width: int, crop: int, origin: tuple[int, int]) -> tuple[int, int]:
    """(rows, columns) at the top and left of the grid crop at ``origin`` that an earlier crop of
    :func:`grid_origins` (row-major) holds: the last crop of an axis overlaps the one before it, and
    validation scores each pixel once (one confusion matrix over the tile, as GeoSeg and mmseg do)."""
    def axis(n: int, start: int) -> int:
        earlier = [o for o in _starts(n, crop) if o < start]
        return max(0, earlier[-1] + crop - start) if earlier else 0
    return axis(height, origin[0]), axis(width, origin[1])


def layout_classes(layout: str) -> list[dict]:
    """The class table rsmamba uses for a benchmark layout (ids as the decoded labels hold them)."""
    tables = {"isprs": [c.to_dict() for c in ISPRS_CLASSES], "loveda": _table(LOVEDA_CLASSES, LOVEDA_COLOURS),
              "second": _table(SECOND_CLASSES[1:], SECOND_COLOURS[1:]),
              "landsat-scd": _table(LANDSAT_SCD_CLASSES[1:], LANDSAT_SCD_COLOURS[1:])}
    if layout not in tables:
        raise InputError(f"unknown layout {layout!r}; expected {', '.join(tables)}")
    return tables[layout]


def _pad(x: torch.Tensor, crop: int, fill: float) -> torch.Tensor:
    """Pad the last two dims up to ``crop`` (an image smaller than the crop)."""
    h, w = x.shape[-2:]
    if h >= crop and w >= crop:
        return x
    out = torch.full((*x.shape[:-2], max(h, crop), max(w, crop)), fill, dtype=x.dtype)
    out[..., :h, :w] = x
    return out


def _heights(src: Any, **read: Any) -> np.ndarray:
    """A benchmark DSM tile's band 1 as float32 heights: NaN where it declares no data (or a boundless read
    leaves it), GDAL's scale and offset applied; one reading for the crops, the tile ranges and the statistics."""
    d = np.ma.filled(src.read(1, masked=True, **read).astype(np.float32), np.nan)
    scale, offset = float(src.scales[0] or 1.0), float(src.offsets[0] or 0.0)
    return d * np.float32(scale) + np.float32(offset) if (scale, offset) != (1.0, 0.0) else d


def _tile_dsm_range(path: Path) -> tuple[float, float]:
    """A benchmark DSM tile's lowest and highest height, as :class:`ISPRSDataset` reads it."""
    with _quiet_open(path) as src:
        return dsm_range(lambda window: _heights(src, window=window), src.width, src.height)


def _one_short(dsm: tuple[int, int], image: tuple[int, int]) -> bool:
    """Whether a DSM of (rows, columns) ``dsm`` lacks exactly its image's last column or row: the published
    Potsdam DSM of tile 3_13 (``dsm_potsdam_03_13*``) is 5999 x 6000 px beside its 6000 x 6000 image."""
    return dsm in ((image[0], image[1] - 1), (image[0] - 1, image[1]))


def _say_padded(path: Path, dsm: tuple[int, int], image: str, size: tuple[int, int]) -> None:
    what = "column" if dsm[1] < size[1] else "row"
    warn_once(log, f"{path}: {dsm[1]} x {dsm[0]} px, one {what} short of its image {image} ({size[1]} x {size[0]} "
                   f"px), as the published Potsdam DSM of tile 3_13 is (a known defect); its last {what} is "
                   "repeated, as other pipelines pad it")


def _edge_read(src: Any, row: int, col: int, height: int, width: int) -> np.ndarray:
    """A DSM window as :func:`_heights` reads it, the rows and columns beyond the file repeating its last ones
    (a DSM one column or row short of its tile, :func:`_one_short`)."""
    rows = np.clip(np.arange(row, row + height), 0, src.height - 1)
    cols = np.clip(np.arange(col, col + width), 0, src.width - 1)
    r0, c0 = int(rows[0]), int(cols[0])
    block = _heights(src, window=Window(c0, r0, int(cols[-1]) - c0 + 1, int(rows[-1]) - r0 + 1))
    return block[np.ix_(rows - r0, cols - c0)]


class ISPRSDataset(Dataset):
    """ISPRS Vaihingen / Potsdam tiles read in place: colour labels decoded to ids 0..5, the DSM
    or nDSM (when asked) as the last image channel, crops read by window (never the whole tile)."""

    def __init__(self, pairs: list[Pair], info: TilingInfo, *, use_dsm: bool, dsm_mode: str, crop: int | None,
                 crops_per_image: int, random: bool, seed: int = 0, samples_per_epoch: int | None = None,
                 crop_stride: int | None = None):
        self.pairs, self.info, self.use_dsm, self.dsm_mode = pairs, info, use_dsm, dsm_mode
        self.random, self.seed, self.epoch = random, seed, 0
        self.sizes = []
        problems = []
        for p in pairs:
            with _quiet_open(p.image) as src:
                self.sizes.append((src.height, src.width))
            # crops are read by the same window from each file (no usable georeferencing): sizes must agree
            for other in (p.labels, p.dsm if use_dsm else None):
                if other is None:
                    continue
                with _quiet_open(other) as src:
                    if other == p.dsm and _one_short((src.height, src.width), self.sizes[-1]):
                        _say_padded(other, (src.height, src.width), p.image.name, self.sizes[-1])
                    elif (src.height, src.width) != self.sizes[-1]:
                        problems.append(f"{other}: {src.width} x {src.height} px, its image {p.image.name} "
                                        f"{self.sizes[-1][1]} x {self.sizes[-1][0]} px")
                    bands = label_bands_problem(src.count, "isprs") if other == p.labels else None
                    if bands:  # found now, not as a traceback at the tile's first crop
                        problems.append(f"{other}: {bands}")
        if problems:
            raise InputError(problems)
        # minmax-scene: each tile's DSM by its own whole range, as FMTUNet's authors scale each tile
        self.dsm_ranges = [_tile_dsm_range(p.dsm) if use_dsm and dsm_mode == "minmax-scene" and p.dsm is not None
                           else None for p in pairs]
        self.crop = crop or max(max(s) for s in self.sizes)
        if random and samples_per_epoch:  # "an epoch is N iterations" recipes: tiles in turn
            self.items = [(i % len(pairs), None) for i in range(int(samples_per_epoch))]
        elif random:  # crop_stride: crops_per_image random crops per patch a pre-cut split has
            per = [crops_per_image * (patch_count(h, w, self.crop, crop_stride) if crop_stride else 1)
                   for h, w in self.sizes]
            self.items = [(i, None) for i, n in enumerate(per) for _ in range(n)]
        else:
            self.items = [(i, o) for i, (h, w) in enumerate(self.sizes) for o in grid_origins(h, w, self.crop)]

    def set_epoch(self, seed: int, epoch: int) -> None:
        self.seed, self.epoch = seed, epoch

    def files(self) -> list[Path]:
        """The files it reads (what ``--resume`` fingerprints)."""
        return [p for pair in self.pairs for p in (pair.image, pair.dsm, pair.labels) if p is not None]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        tile, origin = self.items[index]
        pair, (h, w) = self.pairs[tile], self.sizes[tile]
        r, c = origin if origin is not None else crop_origin(h, w, self.crop, self.seed, self.epoch, index)
        win = Window(c, r, min(self.crop, w - c), min(self.crop, h - r))
        with _quiet_open(pair.image) as src:
            raw = src.read(window=win).astype(np.float32)
        mean = np.asarray(self.info.image_mean, np.float32)[:, None, None]
        std = np.asarray(self.info.image_std, np.float32)[:, None, None]
        x = (raw - mean) / std
        if self.use_dsm and pair.dsm is not None:
            with _quiet_open(pair.dsm) as src:
                d = (_heights(src, window=win, boundless=True) if (src.height, src.width) == (h, w)
                     else _edge_read(src, r, c, int(win.height), int(win.width)))
            norm = self.info.normalization(self.dsm_mode)["dsm"]
            if self.dsm_ranges[tile] is not None:
                norm = {**norm, "minimum": self.dsm_ranges[tile][0], "maximum": self.dsm_ranges[tile][1]}
            d = normalize_dsm(d, np.ones(d.shape, bool), norm)  # its NaN (no data) becomes 0
            x = np.concatenate([x, d[None]])
        if pair.labels is not None:
            with _quiet_open(pair.labels) as src:
                rgb = src.read(window=win)
            mask = decode_labels(rgb, "isprs")
            note_unreadable(pair.labels, mask, unlabelled_by_design(rgb, "isprs"))
        else:
            mask = np.full(raw.shape[1:], IGNORE_INDEX, np.int64)
        if origin is not None:  # a validation crop: the part an earlier crop scored is not scored again
            top, left = seen_before(h, w, self.crop, origin)
            mask[:top] = IGNORE_INDEX
            mask[:, :left] = IGNORE_INDEX
        return {"chip_id": f"{pair.tile}_r{r}_c{c}", "image": _pad(torch.from_numpy(x), self.crop, 0.0),
                "mask": _pad(torch.from_numpy(mask), self.crop, IGNORE_INDEX)}


class CroppedDataset(Dataset):
    """Random crops (training) of a dataset of whole images (LoveDA, SECOND, Landsat-SCD), identical
    for every image and label key of a sample."""

    KEYS = {"image": 0.0, "image2": 0.0, "mask": IGNORE_INDEX, "mask2": IGNORE_INDEX, "change": IGNORE_INDEX}

    def __init__(self, base: Dataset, info: TilingInfo, crop: int | None, crops_per_image: int, seed: int = 0,
                 samples_per_epoch: int | None = None):
        self.base, self.info, self.crop, self.per = base, info, crop, max(1, crops_per_image if crop else 1)
        self.use_dsm, self.seed, self.epoch = False, seed, 0
        self.length = int(samples_per_epoch) if samples_per_epoch else len(base) * self.per

    def set_epoch(self, seed: int, epoch: int) -> None:
        self.seed, self.epoch = seed, epoch

    def files(self) -> list[Path]:
        """The files it reads (what ``--resume`` fingerprints)."""
        return self.base.files()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.base[(index // self.per) % len(self.base)]
        if not self.crop:
            return sample
        h, w = sample["image"].shape[-2:]
        r, c = crop_origin(h, w, self.crop, self.seed, self.epoch, index)
        for key, fill in self.KEYS.items():
            if key in sample:
                sample[key] = _pad(sample[key][..., r:r + self.crop, c:c + self.crop], self.crop, fill)
        return sample


def layout_meta(meta: dict[str, Any], image: Path | None) -> dict[str, Any]:
    """A benchmark's ``TilingInfo.raw``: its bands' colours as published (the checkpoint records them, as
    ``tile`` records a chip folder's), and where its files declare others (ISPRS IRRG tiles are declared
    red, green, blue), those too: predict reads an image declaring them by position, with a warning. Without an
    ``image`` (``import-weights``), what the published files declare (:func:`layout_declared_colours`)."""
    colours = layout_colours(meta["layout"], meta.get("city"), meta.get("variant"))
    out = {**{k: v for k, v in meta.items() if v is not None}, "colours": colours}
    if image is None and (published := layout_declared_colours(meta["layout"], meta.get("city"), meta.get("variant"))):
        out["declared_colours"] = published
    if image is not None and colours:
        with _quiet_open(image) as src:
            declared = [c.name for c in src.colorinterp]
        if len(declared) == len(colours) and declared != colours:
            out["declared_colours"] = declared
    return out


def _isprs_stats(pairs: list[Pair], use_dsm: bool) -> tuple[list[float], list[float], float | None, float | None]:
    """Band means/stds (and DSM mean/std) of the training tiles from decimated reads (<= 256 px a side)."""
    sums, sq, n, dsum, dsq, dn = None, None, 0, 0.0, 0.0, 0
    for p in pairs:
        with _quiet_open(p.image) as src:
            f = max(1, int(np.ceil(max(src.height, src.width) / 256)))
            shape = (src.count, max(1, src.height // f), max(1, src.width // f))
            a = src.read(out_shape=shape).astype(np.float64).reshape(src.count, -1)
        sums = a.sum(1) if sums is None else sums + a.sum(1)
        sq = (a**2).sum(1) if sq is None else sq + (a**2).sum(1)
        n += a.shape[1]
        if use_dsm and p.dsm is not None:
            with _quiet_open(p.dsm) as src:
                d = _heights(src, out_shape=shape[1:]).astype(np.float64)
            d = d[np.isfinite(d)]
            dsum, dsq, dn = dsum + d.sum(), dsq + (d**2).sum(), dn + d.size
    mean = sums / n
    std = np.sqrt(np.maximum(sq / n - mean**2, 0))
    dmean = float(dsum / dn) if dn else None
    dstd = float(np.sqrt(max(dsq / dn - dmean**2, 0))) or 1.0 if dn else None
    return [float(m) for m in mean], [float(s) or 1.0 for s in std], dmean, dstd


def isprs_val_tiles(city: str, given: Sequence[Any] | None) -> list[str]:
    """``data.val_tiles`` as tile names (``area30``, ``2_10``), each checked to be an official training
    tile: a name of no training tile held nothing out and turned validation off without a word (YAML
    reads an unquoted Potsdam ``2_10`` as the number 210, so the tiles meant for validation were trained on)."""
    known = [f"area{n}" for n in VAIHINGEN_TRAIN] if city == "vaihingen" else list(POTSDAM_TRAIN)
    names, problems = [], []
    for t in given or []:
        name = str(t).strip()
        if city == "vaihingen":
            name = f"area{name.removeprefix('area')}"
        if name in known:
            names.append(name)
            continue
        hint = ""
        if city == "potsdam" and isinstance(t, int):
            quoted = [k for k in known if k.replace("_", "") == str(t)]
            hint = f" (YAML read an unquoted {quoted[0]} as the number {t}: quote it, '{quoted[0]}')" if quoted else ""
        problems.append(f"data.val_tiles: {t!r} is no {city} training tile{hint}")
    if problems:
        problems.append(f"the {city} training tiles: {', '.join(known)}")
        raise InputError(problems)
    if names and len(set(names)) == len(known):
        raise InputError(f"data.val_tiles holds every {city} training tile: none is left to train on")
    return names


def _isprs(d: dict, split: str, info: TilingInfo | None, seed: int, train: bool) -> Dataset:
    city = d.get("city") or "vaihingen"
    dsm = (d.get("dsm_source") or "dsm") if d.get("use_dsm") else None
    val_tiles = isprs_val_tiles(city, d.get("val_tiles")) if city in ("vaihingen", "potsdam") else []
    eroded = bool(d.get("eroded")) and not train  # the papers train on full labels, score on eroded ones
    held_out = False  # validation on data.val_tiles (official training tiles)
    if split == "train":
        pairs = [p for p in isprs_pairs(d["root"], city, False, variant=d.get("variant"), dsm=dsm, splits=("train",))
                 if p.tile not in val_tiles]
    elif split in ("val", "test"):
        held_out = split == "val" and bool(val_tiles)
        if held_out:
            pairs = [p for p in isprs_pairs(d["root"], city, eroded, variant=d.get("variant"), dsm=dsm,
                                            splits=("train",)) if p.tile in val_tiles]
        else:
            pairs = isprs_pairs(d["root"], city, eroded, variant=d.get("variant"), dsm=dsm, splits=("test",))
    else:
        raise InputError(f"ISPRS split must be train, val or test, got {split!r}")
    unlabelled = [p for p in pairs if p.labels is None]
    if train and unlabelled:  # trained as all-ignore, they would teach nothing and say nothing
        more = f" and {len(unlabelled) - 10} more" if len(unlabelled) > 10 else ""
        raise InputError(f"{d['root']}: no label file for the {city} training tiles "
                         f"{', '.join(p.image.name for p in unlabelled[:10])}{more} (e.g. "
                         f"{isprs_label_path(d['root'], city, unlabelled[0].tile, False)}); restore them "
                         "(the official split trains on each)")
    if not train and eroded and unlabelled:  # the papers score on eroded labels: not on full ones, silently
        full = {p.tile for p in isprs_pairs(d["root"], city, False, variant=d.get("variant"), dsm=dsm,
                                            splits=("train", "test")) if p.labels is not None}
        lacking = [p.tile for p in unlabelled if p.tile in full]
        if lacking:
            raise InputError(f"{d['root']}: no eroded (boundary-free) labels for the {city} {split} tiles "
                             f"{', '.join(lacking[:10])}{' ...' if len(lacking) > 10 else ''}, whose full labels are "
                             f"there (e.g. {isprs_label_path(d['root'], city, lacking[0], True)}); restore them, "
                             "or score on the full labels with --set data.eroded=false")
    if not train and unlabelled and (len(unlabelled) < len(pairs) or held_out):
        # scored without them, a "test" mIoU was over part of the official tiles, comparable with no paper
        raise InputError(f"{d['root']}: no {'eroded ' if eroded else ''}label file for the {city} {split} tiles "
                         f"{', '.join(p.tile for p in unlabelled[:10])}{' ...' if len(unlabelled) > 10 else ''} "
                         f"(e.g. {isprs_label_path(d['root'], city, unlabelled[0].tile, eroded)}), while "
                         f"{len(pairs) - len(unlabelled)} of its {len(pairs)} tiles have one; restore them: a score "
                         "over part of the split compares with no published one")
    if not train and unlabelled:  # none has labels (the participants' download's test tiles): no such split
        raise MissingSplit(f"{d['root']}: no labelled {city} tiles for split {split!r}")
    if info is None:
        mean, std, dmean, dstd = _isprs_stats(pairs, dsm is not None)
        mean, std = list(d.get("mean") or mean), list(d.get("std") or std)
        info = TilingInfo(Path(d["root"]), list(range(1, len(mean) + 1)), mean, std, dmean, dstd,
                          [c.to_dict() for c in ISPRS_CLASSES], None,
                          layout_meta({"layout": "isprs", "city": city, "variant": d.get("variant")},
                                       pairs[0].image if pairs else None))
    return ISPRSDataset(pairs, info, use_dsm=dsm is not None, dsm_mode=d["dsm_mode"], crop=d.get("crop"),
                        crops_per_image=int(d.get("crops_per_image") or 1), random=train, seed=seed,
                        samples_per_epoch=d.get("samples_per_epoch"), crop_stride=d.get("crop_stride"))


def _folder(d: dict, split: str, info: TilingInfo | None, seed: int, train: bool) -> Dataset:
    layout = d["layout"]
    if d.get("use_dsm"):
        raise InputError(f"data.layout {layout}: the dataset has no DSM; set data.use_dsm: false")
    if d.get("crop_stride"):
        raise InputError(f"data.crop_stride: for the isprs layout's large tiles; data.layout {layout} takes "
                         "data.crops_per_image or data.samples_per_epoch")
    mean, std = DEFAULT_STATS[layout]
    mean, std = tuple(d.get("mean") or mean), tuple(d.get("std") or std)
    if layout == "loveda":
        folder = {"train": "Train", "val": "Val", "test": "Test"}.get(split, split)
        base: Dataset = LoveDADataset(d["root"], folder, domains=tuple(d.get("domains") or ("Urban", "Rural")),
                                      mean=mean, std=std, require_masks=train)
        classes = layout_classes("loveda")
    elif layout == "second":
        base = SECONDDataset(d["root"], split, mean=mean, std=std)
        classes = layout_classes("second")  # land cover; "unchanged" is the change head
    else:
        base = LandsatSCDDataset(d["root"], split, mean=mean, std=std)
        classes = layout_classes("landsat-scd")
    if info is None:
        files = base.files()
        info = TilingInfo(Path(d["root"]), [1, 2, 3], list(mean), list(std), None, None, classes, None,
                          layout_meta({"layout": layout}, files[0] if files else None))
    if not train:
        return CroppedDataset(base, info, None, 1, seed)
    return CroppedDataset(base, info, d.get("crop"), int(d.get("crops_per_image") or 1), seed,
                          d.get("samples_per_epoch"))


def layout_fingerprint(layout: str, root: str | os.PathLike[str], *datasets: Dataset | None) -> dict[str, Any]:
    """What a benchmark read in place holds, whatever its path: a sha256 of the layout and of each file its
    datasets read (path within ``root``, size), as :func:`~rsmamba.datasets.chips.chips_fingerprint` is for
    chips. A run resumed on another dataset (Potsdam's tiles for Vaihingen's) compared best.pt's val scores
    of two datasets, without a word. Sizes, not contents: a stat per file, not a read of the dataset."""
    root = Path(root)
    files = sorted({p for ds in datasets if ds is not None for p in ds.files()})
    digest = hashlib.sha256(layout.encode())
    for path in files:
        try:
            where = path.relative_to(root).as_posix()
        except ValueError:
            where = path.name
        digest.update(f"{where}\0{path.stat().st_size}\n".encode())
    return {"sha256": digest.hexdigest(), "layout": layout, "files": len(files), "source": str(root)}


def recorded_scale(ds: Dataset) -> tuple[list[tuple[float, float, float, int] | None], str] | None:
    """The value scale of ``ds``'s chips as ``tile`` measured it (``tiling.json``): per band (mean, std, max,
    number of values), and the dtype; None for data that records none (the benchmarks read in place)."""
    target = ds.base if isinstance(ds, CroppedDataset) else ds
    raw = target.info.raw if isinstance(target, (ChipDataset, ChipFolders)) else {}  # several folders: pooled
    image = (raw.get("stats") or {}).get("image") or {}
    if not raw.get("dtype") or not all(image.get(k) for k in ("mean", "std", "maximum")):
        return None
    bands = [(float(m), float(sd), float(hi), 1 << 30) for m, sd, hi in zip(image["mean"], image["std"], image["maximum"])]
    return bands, str(raw["dtype"])


def use_normalization(ds: Dataset, norm: dict[str, Any]) -> None:
    """Normalise ``ds``'s samples with a checkpoint's ``normalization`` (as predict feeds its model),
    not the data's own statistics: a held-out scene's chips scored with theirs overstated a model by 9
    mIoU points against what it maps."""
    import dataclasses

    target = ds.base if isinstance(ds, CroppedDataset) else ds
    image, dsm = norm.get("image") or {}, norm.get("dsm")
    if "mean" not in image or "std" not in image:
        raise InputError("the checkpoint records no image normalisation")
    if isinstance(target, (ChipDataset, ISPRSDataset, ChipFolders)):
        if not len(image["mean"]) == len(image["std"]) == len(target.info.image_mean):
            raise InputError(f"a normalisation of {len(image['mean'])} means and {len(image['std'])} stds for data "
                             f"of {len(target.info.image_mean)} image bands")
        if not all(float(v) > 0 for v in image["std"]):
            raise InputError(f"a normalisation std must be > 0, got {list(image['std'])}")

        def replace(info: TilingInfo) -> TilingInfo:
            return dataclasses.replace(
                info, image_mean=[float(v) for v in image["mean"]], image_std=[float(v) for v in image["std"]],
                dsm_mean=float(dsm["mean"]) if dsm else info.dsm_mean,
                dsm_std=float(dsm["std"]) if dsm else info.dsm_std)
        if isinstance(target, ChipFolders):  # each folder, which keeps its own DSM range (minmax-scene)
            target.normalize_with(replace, dsm["mode"] if dsm and dsm.get("mode") else None)
            return
        target.info = replace(target.info)
        if dsm and dsm.get("mode"):
            target.dsm_mode = dsm["mode"]
    else:  # the folder benchmarks (LoveDA, SECOND, Landsat-SCD): per-band tensors
        target.mean = torch.tensor(image["mean"], dtype=torch.float32)[:, None, None]
        target.std = torch.tensor(image["std"], dtype=torch.float32)[:, None, None]


def open_datasets(d: dict, *, use_dsm: bool | None, seed: int = 0, scoring: bool = False,
                  instances: bool = False) -> tuple[Dataset, Dataset | None]:
    """(training dataset, validation dataset or None) for the ``data`` section of a config.

    The validation dataset shares the training one's ``info`` (normalisation, classes): the model
    is scored on what it will see at predict time. A missing validation split gives None, said in a
    warning, or with ``scoring`` (``train --test``: nothing is trained) is refused.

    ISPRS ``data.val_tiles`` are held out of training to validate on, whatever ``data.val_split`` says (a
    recipe's ``test`` kept the test tiles for validation and left the held-out tiles unused); ``scoring``
    scores ``data.val_split`` itself, e.g. the test tiles the held-out ones kept unseen.

    ``data.root`` a list: the union of those chip folders' splits (:mod:`rsmamba.datasets.folders`), which
    must agree on what makes one model (instance targets too where ``instances``).
    """
    layout = d.get("layout") or "chips"
    if layout not in LAYOUTS:
        raise InputError(f"data.layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    if layout == "isprs" and (d.get("city") or "vaihingen") not in ("vaihingen", "potsdam"):
        # read as a folder of another layout, it was 'holds the ISPRS Vaihingen layout, not the ISPRS Munich layout'
        raise InputError(f"data.city must be vaihingen or potsdam, got {d.get('city')!r}")
    if layout != "chips" and not isinstance(d["root"], list) and not Path(d["root"]).is_dir():
        # (the layout's every file listed as missing, not the folder)
        raise InputError(f"{d['root']}: {'not a folder' if Path(d['root']).exists() else 'no such folder'} "
                         f"(data.root: the {layout} download)")
    if isinstance(d["root"], list):
        if layout != "chips":
            raise InputError(f"data.root lists {len(d['root'])} folders: several folders are chip folders "
                             f"(data.layout chips), not data.layout {layout}")
        train_ds, val_ds = open_chip_folders(d["root"], d["train_split"], d["val_split"], use_dsm=use_dsm,
                                             dsm_mode=d["dsm_mode"], instances=instances)
        _given_normalization(d, train_ds, val_ds)
        return train_ds, val_ds
    try:
        return _open_layout(d, layout, use_dsm=use_dsm, seed=seed, scoring=scoring)
    except InputError:
        laid_out = guess_layout(d["root"])
        wanted = {"layout": layout, **({"city": d.get("city") or "vaihingen"} if layout == "isprs" else {})}
        if laid_out is None or laid_out == wanted:
            raise
        raise InputError(f"{d['root']}: holds {layout_name(laid_out)}, not {layout_name(wanted)} as the config "
                         f"reads it: set {layout_settings(laid_out)}") from None


def _given_normalization(d: dict, train_ds: Dataset, val_ds: Dataset | None) -> None:
    """``data.mean`` / ``data.std`` (e.g. a pretrained backbone's statistics) instead of the chips' own."""
    if d.get("mean") or d.get("std"):
        info = train_ds.info
        norm = {"image": {"mean": list(d.get("mean") or info.image_mean), "std": list(d.get("std") or info.image_std)}}
        for ds in (train_ds, val_ds):
            if ds is not None:
                use_normalization(ds, norm)  # recorded in the checkpoint: the model's inputs, as trained


def _open_layout(d: dict, layout: str, *, use_dsm: bool | None, seed: int,
                 scoring: bool) -> tuple[Dataset, Dataset | None]:
    if layout == "chips":
        train_ds = ChipDataset(d["root"], d["train_split"], use_dsm=use_dsm, dsm_mode=d["dsm_mode"])
        if not any(r.get(c) for r in train_ds.rows for c in ("labels", "labels_t2", "change")):
            # each chip's mask would be all 'no label': a loss of 0, weights that never move, exit 0
            raise InputError(f"{train_ds.root}: its chips carry no labels (tiled without --labels): nothing to "
                             "learn from or score; tile with --labels")
        try:
            val_ds = ChipDataset(d["root"], d["val_split"], use_dsm=train_ds.use_dsm, dsm_mode=d["dsm_mode"])
        except MissingSplit:
            missing_val_split(d["val_split"])
            val_ds = None  # the trainer says so: tile --split 1,0,0 is a choice
        _given_normalization(d, train_ds, val_ds)
        return train_ds, val_ds
    d = {**d, "layout": layout, "use_dsm": bool(use_dsm)}
    make = _isprs if layout == "isprs" else _folder
    train_ds = make(d, d["train_split"], None, seed, True)
    split = d["val_split"]
    if layout == "isprs":  # a wrong val_tiles is the user's mistake, not a missing split
        held_out = isprs_val_tiles(d.get("city") or "vaihingen", d.get("val_tiles"))
        if held_out and split == "test" and not scoring:
            log.info("validating on data.val_tiles %s, held out of training; the test tiles stay unseen "
                     "(train --test scores them)", ", ".join(held_out))
            split = "val"
    try:
        val_ds = make(d, split, train_ds.info, seed, False)
    except MissingSplit as exc:
        if scoring:  # nothing is trained: no "best.pt follows the training loss"
            raise InputError(f"{exc}: no labelled split {split!r} to score (data.val_split)") from None
        log.warning("no validation split %r (%s): best.pt follows the training loss", split, exc)
        val_ds = None
    return train_ds, val_ds
