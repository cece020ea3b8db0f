"""Readers for the standard benchmark layouts, with their official splits and label codings.

- ISPRS Vaihingen / Potsdam: large tiles with RGB-coded labels. :func:`isprs_pairs` lists
  (image, labels, split) with the official train/test tiles; :func:`isprs_rgb_to_ids` converts the
  colour labels to class ids (255 for unknown colours) so the tiles go through ``rsmamba tile``.
- LoveDA: ``<Split>/<Urban|Rural>/images_png`` + ``masks_png``; mask 0 = no data (-> 255),
  1..7 -> 0..6.
- SECOND: ``<split>/im1, im2, label1, label2`` PNGs with colour-coded semantic labels, white =
  unchanged; ids follow SCanNet (0 unchanged, 1..6 land cover), change = label != unchanged.

Samples follow :class:`rsmamba.datasets.ChipDataset`'s dict convention (``image``, ``mask``,
``image2``, ``mask2``, ``change``), with per-dataset normalisation given by the caller.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from torch.utils.data import Dataset

from rsmamba.classes import IGNORE_INDEX, ISPRS_CLASSES, SECOND_COLOURS, colours_to_ids
from rsmamba.errors import InputError, MissingSplit
from rsmamba.paths import listed_files_problem, outside

# Official ISPRS 2-D labelling splits (tiles with public labels for training; the rest is the test set).
VAIHINGEN_TRAIN = (1, 3, 5, 7, 11, 13, 15, 17, 21, 23, 26, 28, 30, 32, 34, 37)
VAIHINGEN_TEST = (2, 4, 6, 8, 10, 12, 14, 16, 20, 22, 24, 27, 29, 31, 33, 35, 38)
POTSDAM_TRAIN = ("2_10", "2_11", "2_12", "3_10", "3_11", "3_12", "4_10", "4_11", "4_12", "5_10", "5_11", "5_12",
                 "6_7", "6_8", "6_9", "6_10", "6_11", "6_12", "7_7", "7_8", "7_9", "7_10", "7_11", "7_12")
POTSDAM_TEST = ("2_13", "2_14", "3_13", "3_14", "4_13", "4_14", "4_15", "5_13", "5_14", "5_15", "6_13", "6_14",
                "6_15", "7_13")

LOVEDA_CLASSES = ("background", "building", "road", "water", "barren", "forest", "agriculture")
# LoveDA's visualisation colours (Junjue-Wang/LoveDA, COLOR_MAP); its masks are index images 0..7.
LOVEDA_COLOURS = ((255, 255, 255), (255, 0, 0), (255, 255, 0), (0, 0, 255), (159, 129, 183), (0, 255, 0),
                  (255, 195, 128))
log = logging.getLogger(__name__)
# A label file whose pixels are more than this share of no known colour or id is named in a warning: a
# copy re-saved with lossy compression (+-2 grey levels) kept 22 % of its pixels, trained on without a word.
UNREADABLE_SHARE = 0.01
_warned: set[str] = set()

SECOND_CLASSES = ("unchanged", "water", "ground", "low_vegetation", "tree", "building", "playground")

# Per-dataset image statistics (0..255 scale), the one home of them: the readers' defaults and what a config
# leaving data.mean/std null trains with (rsmamba.datasets.benchmark). LoveDA's from its training scripts
# (ImageNet's); SECOND's SCanNet's date-1 statistics (RS_ST.py MEAN_A/STD_A), for both dates; Landsat-SCD a
# plain 128 +- 64. (SECONDDataset's defaults were a rounded copy, 116.3 for 116.45.)
DEFAULT_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "loveda": ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
    "second": ((113.40, 114.08, 116.45), (48.30, 46.27, 48.14)),
    "landsat-scd": ((128.0, 128.0, 128.0), (64.0, 64.0, 64.0)),
}


def layout_image_bands(layout: str | None, city: str | None = None, variant: str | None = None) -> int | None:
    """How many image bands a benchmark layout's images have, as published (Potsdam's RGBIR 4, every other 3), so
    a config's data.mean / data.std are checked against them before any file is read; None for chips (their
    tiling.json says) or a layout not known."""
    if layout == "isprs":
        return 4 if (city or "vaihingen") == "potsdam" and variant == "RGBIR" else 3
    return 3 if layout in DEFAULT_STATS else None


def layout_colours(layout: str | None, city: str | None = None, variant: str | None = None) -> list[str] | None:
    """The colours of a benchmark's image bands as published (Vaihingen NIR, R, G; Potsdam by ``variant``; the
    others R, G, B), which the checkpoint records: its files declare RGB whatever they hold (a TIFF's photometric
    default), so a Vaihingen model tested on RGB tiles or run on an RGB ortho went unsaid. None for chips."""
    if layout == "isprs":
        if (city or "vaihingen") == "vaihingen":
            return ["nir", "red", "green"]
        return {"IRRG": ["nir", "red", "green"], "RGBIR": ["red", "green", "blue", "nir"]}.get(
            variant or "RGB", ["red", "green", "blue"])
    return ["red", "green", "blue"] if layout in DEFAULT_STATS else None


def layout_declared_colours(layout: str | None, city: str | None = None, variant: str | None = None) -> list[str] | None:
    """The colours a benchmark's published image files declare where they are not :func:`layout_colours`, None where
    they are (or are not known): ISPRS's three-band IRRG tiles are TIFFs of photometric RGB, declaring red, green,
    blue. For a checkpoint written without the files at hand (``import-weights``), as a run records them from its
    first tile."""
    colours = layout_colours(layout, city, variant)
    rgb = ["red", "green", "blue"]
    return rgb if layout == "isprs" and colours is not None and len(colours) == 3 and colours != rgb else None


@dataclass(frozen=True)
class Pair:
    image: Path
    labels: Path | None
    split: str
    tile: str
    dsm: Path | None = None


def _first_existing(paths: Sequence[Path]) -> Path | None:
    return next((p for p in paths if p.exists()), None)


def isprs_rgb_to_ids(rgb: np.ndarray) -> np.ndarray:
    """ISPRS colour labels -> ids 0..5 (impervious, building, low vegetation, tree, car, clutter)."""
    return colours_to_ids(rgb, [c.color for c in ISPRS_CLASSES])


def isprs_pairs(root: str | os.PathLike[str], city: str, eroded: bool = False, *, variant: str | None = None,
                dsm: str | None = None, splits: Sequence[str] = ("train", "test")) -> list[Pair]:
    """The tiles of an ISPRS download with their official split; missing files are listed in one error.

    Labels are looked up in the participants' folder and in the later "COMPLETE" ground truth
    (which also labels the test tiles). ``variant`` picks Potsdam's image folder (``RGB``,
    ``IRRG`` or ``RGBIR``; Vaihingen has IRRG only). ``dsm`` is ``"dsm"`` (absolute heights) or
    ``"ndsm"`` (Gerke's normalised DSM), each in its published folder and naming.
    """
    root = Path(root)
    pairs = []
    if dsm not in (None, "dsm", "ndsm"):
        raise InputError(f"ISPRS dsm must be 'dsm' or 'ndsm', got {dsm!r}")
    if city == "vaihingen":
        if variant not in (None, "IRRG"):
            raise InputError(f"Vaihingen tiles are IRRG only, got variant {variant!r}")
        if eroded:
            folders, suffix = ("gts_eroded_for_participants",
                               "ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE"), "_noBoundary"
        else:
            folders, suffix = ("gts_for_participants", "ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE"), ""
        for split, ids in (("train", VAIHINGEN_TRAIN), ("test", VAIHINGEN_TEST)):
            if split not in splits:
                continue
            for n in ids:
                image = root / "top" / f"top_mosaic_09cm_area{n}.tif"
                label = _first_existing([root / f / f"top_mosaic_09cm_area{n}{suffix}.tif" for f in folders])
                d = {"dsm": root / "dsm" / f"dsm_09cm_matching_area{n}.tif",
                     "ndsm": root / "ndsm" / f"dsm_09cm_matching_area{n}_normalized.jpg"}.get(dsm or "")
                pairs.append(Pair(image, label, split, f"area{n}", d))
    elif city == "potsdam":
        variant = variant or "RGB"
        folder = {"RGB": "2_Ortho_RGB", "IRRG": "3_Ortho_IRRG", "RGBIR": "4_Ortho_RGBIR"}.get(variant)
        if folder is None:
            raise InputError(f"Potsdam variant must be RGB, IRRG or RGBIR, got {variant!r}")
        # the full download's labels (all 38 tiles) or the participants' (the 24 training tiles)
        labels_dirs = (("5_Labels_all_noBoundary", "5_Labels_for_participants_no_Boundary") if eroded
                       else ("5_Labels_all", "5_Labels_for_participants"))
        for split, ids in (("train", POTSDAM_TRAIN), ("test", POTSDAM_TEST)):
            if split not in splits:
                continue
            for t in ids:
                image = root / folder / f"top_potsdam_{t}_{variant}.tif"
                suffix = "label_noBoundary" if eroded else "label"
                label = _first_existing([root / f / f"top_potsdam_{t}_{suffix}.tif" for f in labels_dirs])
                a, b = (int(v) for v in t.split("_"))
                d = {"dsm": root / "1_DSM" / f"dsm_potsdam_{a:02d}_{b:02d}.tif",
                     "ndsm": root / "1_DSM_normalisation" / f"dsm_potsdam_{a:02d}_{b:02d}_normalized_lastools.jpg"
                     }.get(dsm or "")
                pairs.append(Pair(image, label, split, t, d))
    else:
        raise InputError(f"ISPRS city must be 'vaihingen' or 'potsdam', got {city!r}")
    # a whole folder missing (no dsm/, the variant's ortho folder) is said once, not as each tile of it
    folders = dict.fromkeys(f.parent for p in pairs for f in (p.image, p.dsm) if f is not None and not f.exists())
    absent = [f for f in folders if not f.is_dir()]
    if absent:
        raise InputError([f"{f}: no such folder (the {city} {_what_folder(f)})" for f in absent])
    missing = listed_files_problem([f for p in pairs for f in (p.image, p.labels, p.dsm) if f is not None],
                                   f"the {city} layout", shown=len(pairs) * 3)
    if missing:
        raise missing
    return pairs


def _what_folder(folder: Path) -> str:
    """What an ISPRS folder holds, and the setting that reads it, for the message when it is missing."""
    name = folder.name
    if name in ("dsm", "1_DSM"):
        return "DSMs, data.use_dsm with data.dsm_source dsm"
    if name in ("ndsm", "1_DSM_normalisation"):
        return "normalised DSMs, data.use_dsm with data.dsm_source ndsm"
    found = [f.name for f in (folder.parent / n for n in ("2_Ortho_RGB", "3_Ortho_IRRG", "4_Ortho_RGBIR"))
             if f.is_dir()]
    if name.endswith(("_RGB", "_IRRG", "_RGBIR")) and found:
        return (f"images of data.variant {name.rsplit('_', 1)[1]}; found {', '.join(found)}: "
                f"set data.variant={found[0].rsplit('_', 1)[1]}")
    return "images"


def guess_layout(root: str | os.PathLike[str]) -> dict[str, str] | None:
    """The ``data`` settings that read the folder ``root`` as it is laid out, from the folders each layout
    publishes (``{"layout": "isprs", "city": "potsdam"}``), or None when it looks like none of them: for the
    message when a config's layout finds nothing (a Potsdam recipe pointed at a chip folder listed its 48
    tile names as missing; a chip config pointed at a benchmark asked for tiling.json)."""
    root = Path(root)
    if (root / "tiling.json").is_file():
        return {"layout": "chips"}
    if any((root / f).is_dir() for f in ("2_Ortho_RGB", "3_Ortho_IRRG", "4_Ortho_RGBIR")):
        return {"layout": "isprs", "city": "potsdam"}
    if (root / "top").is_dir() and any((root / "top").glob("top_mosaic_09cm_area*")):
        return {"layout": "isprs", "city": "vaihingen"}
    if any((root / s / d).is_dir() for s in ("Train", "Val", "Test") for d in ("Urban", "Rural")):
        return {"layout": "loveda"}
    if any((c / "im1").is_dir() and (c / "im2").is_dir() for c in _subfolders(root)):
        return {"layout": "second"}
    if (root / "A").is_dir() and (root / "labelA").is_dir():
        return {"layout": "landsat-scd"}
    return None


def layout_name(settings: dict[str, str]) -> str:
    """What :func:`guess_layout`'s ``settings`` read, as messages name it ("the ISPRS Vaihingen layout")."""
    return {"chips": "chips written by 'rsmamba tile'", "loveda": "the LoveDA layout", "second": "the SECOND layout",
            "landsat-scd": "the Landsat-SCD layout"}.get(
        settings["layout"], f"the ISPRS {str(settings.get('city')).title()} layout")


def layout_settings(settings: dict[str, str]) -> str:
    """:func:`guess_layout`'s ``settings`` as a config sets them ("data.layout=isprs and data.city=vaihingen")."""
    return " and ".join(f"data.{k}={v}" for k, v in settings.items())


def _subfolders(root: Path) -> list[Path]:
    try:
        return [c for c in root.iterdir() if c.is_dir()][:64]
    except OSError:
        return []


def isprs_label_path(root: str | os.PathLike[str], city: str, tile: str, eroded: bool) -> Path:
    """Where :func:`isprs_pairs` looks first for a tile's labels (for messages naming the file wanted)."""
    if city == "vaihingen":
        folder = ("ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE" if eroded
                  else "ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE")
        return Path(root) / folder / f"top_mosaic_09cm_{tile}{'_noBoundary' if eroded else ''}.tif"
    return (Path(root) / ("5_Labels_all_noBoundary" if eroded else "5_Labels_all")
            / f"top_potsdam_{tile}_{'label_noBoundary' if eroded else 'label'}.tif")


def _read(path: Path) -> np.ndarray:
    import warnings

    with warnings.catch_warnings():  # PNG benchmarks carry no georeferencing, by design
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            return src.read()


def samples(folder: Path, pattern: str = "*.png") -> list[Path]:
    """The files of a sample folder, sorted; hidden ones (macOS ``._NAME.png`` companions on exFAT or SMB
    copies, editors' files) are no samples."""
    return sorted(p for p in folder.glob(pattern) if not p.name.startswith("."))


def check_same_size(label: Path, label_shape: tuple[int, ...], image: Path, image_shape: tuple[int, ...]) -> None:
    """A label (or second image) must have its image's size: pixels pair by index in these layouts (PNG,
    no georeferencing), so another size is labels of another place, or a batch that will not stack."""
    if tuple(label_shape[-2:]) != tuple(image_shape[-2:]):
        raise InputError(f"{label}: {label_shape[-1]} x {label_shape[-2]} px, its image {image} "
                         f"{image_shape[-1]} x {image_shape[-2]} px")


def unlabelled_by_design(raw: np.ndarray, layout: str) -> np.ndarray:
    """The pixels of a label file ``(bands, H, W)`` that its layout's coding leaves without a class on
    purpose (ISPRS's black eroded boundaries, LoveDA's 0 no-data, SECOND's white and Landsat-SCD's 0
    unchanged): not counted as unreadable."""
    if layout == "isprs":
        return (raw[:3] == 0).all(0)
    if layout == "second":
        return (raw[:3] == 255).all(0)
    return raw[0] == 0


def unreadable_share(ids: np.ndarray, expected: np.ndarray | None = None) -> float:
    """The share of a label's pixels that decode to no class (255) other than where ``expected``."""
    unreadable = ids == IGNORE_INDEX
    if expected is not None:
        unreadable &= ~expected
    return float(unreadable.mean()) if unreadable.size else 0.0


def unreadable_warning(path: object, share: float) -> str | None:
    """The warning for a label file of which ``share`` decodes to no class, or None under
    :data:`UNREADABLE_SHARE`."""
    if share <= UNREADABLE_SHARE:
        return None
    # 'ignored in training and scoring' was untrue of a change pair's date 2: where date 1 says unchanged, such a
    # pixel is unchanged (as trained); only its class, which it has none of, is left out
    return (f"{path}: {100 * share:.0f} % of the pixels read are of no class of the layout (their class is neither "
            "trained nor scored); a copy re-saved with lossy compression or resampled?")


def note_unreadable(path: Path, ids: np.ndarray, expected: np.ndarray | None = None) -> None:
    """Warn (once per file and process) when more than :data:`UNREADABLE_SHARE` of a label's pixels
    decode to no class (255) other than where ``expected`` (e.g. the black boundary of eroded labels)."""
    message = unreadable_warning(path, unreadable_share(ids, expected))
    if message and str(path) not in _warned:
        _warned.add(str(path))
        log.warning(message)


def scd_targets(l1: np.ndarray, l2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mask, mask2, change) of a semantic change pair from both dates' ids (0 unchanged, 1..K land
    cover, 255 unknown), as SCanNet and Mamba-FCS train: ``change`` is date 1's "not unchanged", the
    masks land cover - 1 on changed pixels. A date-1 pixel of unknown class has no change label (255,
    not "unchanged"); a date-2 pixel without land cover where date 1 says changed (0 or unknown: the
    labels disagree) has no land-cover label. Every target is in 0..K-1 or 255, by construction."""
    known1 = l1 != IGNORE_INDEX
    change = np.where(known1, (l1 > 0).astype(np.int64), IGNORE_INDEX)
    m1 = np.where(known1 & (l1 > 0), l1 - 1, IGNORE_INDEX)
    m2 = np.where((change == 1) & (l2 > 0) & (l2 != IGNORE_INDEX), l2 - 1, IGNORE_INDEX)
    return m1.astype(np.int64), m2.astype(np.int64), change.astype(np.int64)


class _FolderDataset(Dataset):
    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]

    def _image(self, path: Path) -> torch.Tensor:
        return (torch.from_numpy(_read(path).astype(np.float32)) - self.mean) / self.std


class LoveDADataset(_FolderDataset):
    """LoveDA ``<root>/<Train|Val|Test>/<Urban|Rural>/{images_png,masks_png}``: every image with its mask,
    or (``require_masks`` false) a split with no mask at all, :class:`MissingSplit` (LoveDA's Test)."""

    classes = LOVEDA_CLASSES

    def __init__(self, root: str | os.PathLike[str], split: str = "Train", domains: Sequence[str] = ("Urban", "Rural"),
                 mean: Sequence[float] = DEFAULT_STATS["loveda"][0],
                 std: Sequence[float] = DEFAULT_STATS["loveda"][1],
                 transform=None, require_masks: bool = False):
        super().__init__(mean, std)
        root = Path(root)
        self.items: list[tuple[Path, Path]] = []
        for domain in domains:
            folder = root / split / domain
            self.items += [(image, folder / "masks_png" / image.name) for image in samples(folder / "images_png")]
        if not self.items:
            raise MissingSplit(f"{root}: no LoveDA images under {split}/{{{','.join(domains)}}}/images_png")
        if not require_masks and not any(mask.exists() for _, mask in self.items):
            raise MissingSplit(f"{root}: no LoveDA masks under {split}/{{{','.join(domains)}}}/masks_png"
                               f"{' (LoveDA keeps its Test labels on its benchmark server)' if split == 'Test' else ''}")
        # training on an image without its mask would learn nothing from it, and scoring a split without some
        # of them scored part of it under the whole split's sample count: both silently
        missing = (listed_files_problem((image for image, _ in self.items), f"the LoveDA layout ({split} images)")
                   or listed_files_problem((mask for _, mask in self.items), f"the LoveDA layout ({split} masks)"))
        if missing:
            raise missing
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def files(self) -> list[Path]:
        """The files it reads (what ``--resume`` fingerprints)."""
        return [p for pair in self.items for p in pair if p.exists()]

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, mask = self.items[index]
        x = self._image(image)
        raw = _read(mask)
        check_same_size(mask, raw.shape, image, x.shape)
        try:
            m = decode_labels(raw, "loveda")  # 0 no-data and values past 7 -> ignore
        except InputError as exc:
            raise InputError(f"{mask}: {exc}") from exc
        note_unreadable(mask, m, unlabelled_by_design(raw, "loveda"))
        sample = {"chip_id": image.stem, "image": x, "mask": torch.from_numpy(m)}
        return self.transform(sample) if self.transform else sample


class SECONDDataset(_FolderDataset):
    """SECOND ``<root>/<split>/{im1,im2,label1,label2}``: ``mask``/``mask2`` are land cover 0..5 on
    changed pixels (255 elsewhere), ``change`` is 0/1 — the SCanNet / Mamba-FCS training form."""

    classes = SECOND_CLASSES

    def __init__(self, root: str | os.PathLike[str], split: str = "train",
                 mean: Sequence[float] = DEFAULT_STATS["second"][0],
                 std: Sequence[float] = DEFAULT_STATS["second"][1],
                 transform=None):
        super().__init__(mean, std)
        self.folder = Path(root) / split
        self.names = [p.name for p in samples(self.folder / "im1")]
        if not self.names:  # SECOND's release is SECOND_train_set/ alone: 'no images in im1/' named no cause
            others = [c.name for c in _subfolders(Path(root)) if c != self.folder and (c / "im1").is_dir()]
            release = (f"; {root} holds {', '.join(sorted(others))}/: SECOND's release (SECOND_train_set, no test "
                       "set) must be split into train/ and test/ (as the Mamba-FCS authors split it)" if others else "")
            raise MissingSplit(f"{self.folder}: no SECOND images in im1/; the SECOND layout is <root>/train/ and "
                               f"<root>/test/ (data.train_split, data.val_split), each with im1, im2, label1, label2"
                               + release)
        missing = listed_files_problem(self.files(), f"the SECOND layout ({self.folder})")
        if missing:
            raise missing
        self.transform = transform

    def __len__(self) -> int:
        return len(self.names)

    def files(self) -> list[Path]:
        """The files it reads (what ``--resume`` fingerprints)."""
        return [self.folder / sub / n for sub in ("im1", "im2", "label1", "label2") for n in self.names]

    def __getitem__(self, index: int) -> dict[str, Any]:
        name = self.names[index]
        image, image2 = self._image(self.folder / "im1" / name), self._image(self.folder / "im2" / name)
        ids = []
        for sub in ("label1", "label2"):
            path = self.folder / sub / name
            raw = _read(path)
            check_same_size(path, raw.shape, self.folder / "im1" / name, image.shape)
            problem = label_bands_problem(raw.shape[0], "second")
            if problem:
                raise InputError(f"{path}: {problem}")
            ids.append(colours_to_ids(raw[:3], SECOND_COLOURS).astype(np.int64))
            note_unreadable(path, ids[-1])
        check_same_size(self.folder / "im2" / name, image2.shape, self.folder / "im1" / name, image.shape)
        m1, m2, change = scd_targets(*ids)
        sample = {"chip_id": Path(name).stem, "image": image, "image2": image2, "mask": torch.from_numpy(m1),
                  "mask2": torch.from_numpy(m2), "change": torch.from_numpy(change)}
        return self.transform(sample) if self.transform else sample


LANDSAT_SCD_CLASSES = ("unchanged", "farmland", "desert", "building", "water")


class LandsatSCDDataset(_FolderDataset):
    """Landsat-SCD ``<root>/{A,B,labelA,labelB}`` with split lists ``<root>/list/<split>.txt`` (or
    ``<root>/<split>.txt``): labels are class-index images, 0 = unchanged. As for SECOND, ``mask``/
    ``mask2`` hold land cover (ids 1..4 -> 0..3) on changed pixels and 255 elsewhere; ``change`` is 0/1.
    Colour-coded (3-band) labels are refused with a message: convert them to index images first."""

    classes = LANDSAT_SCD_CLASSES

    def __init__(self, root: str | os.PathLike[str], split: str = "train",
                 mean: Sequence[float] = DEFAULT_STATS["landsat-scd"][0],
                 std: Sequence[float] = DEFAULT_STATS["landsat-scd"][1],
                 transform=None):
        super().__init__(mean, std)
        self.root = Path(root)
        # ours, and SCanNet's preprocessed copy's (<root>/train_list.txt, datasets/LandsatSCD)
        lists = [self.root / "list" / f"{split}.txt", self.root / f"{split}.txt", self.root / f"{split}_list.txt"]
        found = next((p for p in lists if p.is_file()), None)
        if found is None:
            raise MissingSplit(f"{self.root}: no split list ({' or '.join(str(p) for p in lists)})")
        try:
            text = found.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{found}: not UTF-8 text (byte {exc.start}); a split list is one file name a "
                             "line") from None
        self.names = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if not self.names:
            raise MissingSplit(f"{found}: empty split list")
        away = [n for n in self.names if any(outside(os.path.join(sub, n))
                                             for sub in ("A", "B", "labelA", "labelB"))]
        if away:  # a received list read any file the user can read (an absolute name, ../)
            raise InputError([f"{found}: {n!r} leads outside {self.root}; list file names of its A/ folder"
                              for n in away[:10]] + ([f"... and {len(away) - 10} more"] if len(away) > 10 else []))
        missing = listed_files_problem(self.files(), f"the Landsat-SCD layout (listed in {found})")
        if missing:
            raise missing
        self.transform = transform

    def __len__(self) -> int:
        return len(self.names)

    def _label(self, path: Path) -> np.ndarray:
        raw = _read(path)
        problem = label_bands_problem(raw.shape[0], "landsat-scd")
        if problem:
            raise InputError(f"{path}: {problem}")
        labels = raw[0].astype(np.int64)
        ids = np.where((labels >= 0) & (labels < len(LANDSAT_SCD_CLASSES)), labels, IGNORE_INDEX)
        note_unreadable(path, ids)
        return ids

    def files(self) -> list[Path]:
        """The files it reads (what ``--resume`` fingerprints)."""
        return [self.root / sub / n for sub in ("A", "B", "labelA", "labelB") for n in self.names]

    def __getitem__(self, index: int) -> dict[str, Any]:
        name = self.names[index]
        image, image2 = self._image(self.root / "A" / name), self._image(self.root / "B" / name)
        l1, l2 = self._label(self.root / "labelA" / name), self._label(self.root / "labelB" / name)
        for sub, shape in (("B", image2.shape), ("labelA", l1.shape), ("labelB", l2.shape)):
            check_same_size(self.root / sub / name, shape, self.root / "A" / name, image.shape)
        m1, m2, change = scd_targets(l1, l2)
        sample = {"chip_id": Path(name).stem, "image": image, "image2": image2, "mask": torch.from_numpy(m1),
                  "mask2": torch.from_numpy(m2), "change": torch.from_numpy(change)}
        return self.transform(sample) if self.transform else sample


def label_bands_problem(bands: int, layout: str) -> str | None:
    """Why a label file of ``bands`` bands is no ``layout`` label file, or None. A 1-band copy of colour
    labels (an index or palette image, as GeoSeg and mmseg convert ISPRS labels) read as colours crashed
    at the first crop; a colour copy of index labels was read by its red band."""
    if layout in ("isprs", "second") and bands < 3:
        return (f"{bands}-band label; {layout} labels are RGB colour images (an index or palette copy? use the "
                "published colour labels)")
    if layout in ("loveda", "landsat-scd") and bands != 1:
        codes = ("0 no-data, 1..7 classes" if layout == "loveda" else
                 ", ".join(f"{i} {n}" for i, n in enumerate(LANDSAT_SCD_CLASSES)))
        return f"{bands}-band label; {layout} labels are class-index images ({codes}): convert colour copies first"
    return None


def decode_labels(raw: np.ndarray, layout: str) -> np.ndarray:
    """A label file's bands ``(bands, H, W)`` -> class ids (H, W) int64 in rsmamba's coding, 255 = ignore.

    ``isprs``: RGB colours (eroded boundaries, black, become 255); ``loveda``: 0 no-data -> 255,
    1..7 -> 0..6; ``second``: colours, unchanged (white) -> 255, land cover 0..5; ``landsat-scd``:
    index 0 unchanged -> 255, 1..4 -> 0..3.
    """
    problem = label_bands_problem(raw.shape[0], layout)
    if problem:
        raise InputError(problem)
    if layout in ("isprs", "second"):
        if layout == "isprs":
            return isprs_rgb_to_ids(raw[:3]).astype(np.int64)
        ids = colours_to_ids(raw[:3], SECOND_COLOURS).astype(np.int64)
        return np.where((ids > 0) & (ids != IGNORE_INDEX), ids - 1, IGNORE_INDEX)
    if layout in ("loveda", "landsat-scd"):
        v = raw[0].astype(np.int64) - 1
        top = len(LOVEDA_CLASSES) if layout == "loveda" else len(LANDSAT_SCD_CLASSES) - 1
        return np.where((v >= 0) & (v < top), v, IGNORE_INDEX)
    raise InputError(f"unknown label layout {layout!r}; expected isprs, loveda, second or landsat-scd")
