"""Tiny copies of the benchmark downloads, in each dataset's published folders, names and codings.

``rsmamba synth --layout NAME`` writes one, so a recipe can be tried (``--dry-run``, a few steps)
before the real download arrives; the tests use them as fixtures. Every writer returns the root
folder. Images are small so the trainers run in seconds; tile lists, folder names and label
encodings are the real ones, the pixels are synthetic (class-coloured blocks).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import rasterio

from rsmamba.classes import ISPRS_CLASSES
from rsmamba.datasets.layouts import (
    POTSDAM_TEST,
    POTSDAM_TRAIN,
    SECOND_COLOURS,
    VAIHINGEN_TEST,
    VAIHINGEN_TRAIN,
)

ISPRS_RGB = [c.color for c in ISPRS_CLASSES]
# LoveDA masks: 0 no-data, 1 background .. 7 agriculture (index PNGs).


def write(path: Path, arr: np.ndarray, driver: str = "GTiff") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = arr if arr.ndim == 3 else arr[None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", driver=driver, width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                           dtype=arr.dtype) as dst:
            dst.write(arr)


def _scene(rng: np.random.Generator, h: int, w: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Class ids in blocks and an image whose colour follows the class (learnable)."""
    ids = np.kron(rng.integers(0, n_classes, (h // 8 + 1, w // 8 + 1)), np.ones((8, 8), np.int64))[:h, :w]
    base = rng.integers(0, 256, (n_classes, 3))
    img = base[ids].transpose(2, 0, 1) + rng.integers(-10, 10, (3, h, w))
    return np.clip(img, 0, 255).astype(np.uint8), ids


def colour(ids: np.ndarray, table) -> np.ndarray:
    return np.asarray(table, np.uint8)[ids].transpose(2, 0, 1)


def isprs(root: Path, city: str, size: tuple[int, int] = (40, 48), seed: int = 0) -> Path:
    """Vaihingen: top/, gts_for_participants/ (train), the COMPLETE ground truth and its eroded
    variant (all tiles, black boundaries), dsm/ and ndsm/. Potsdam: 2_Ortho_RGB/, 5_Labels_all/,
    5_Labels_all_noBoundary/, 1_DSM/, 1_DSM_normalisation/."""
    rng = np.random.default_rng(seed)
    h, w = size
    tiles = [(t, "train") for t in (VAIHINGEN_TRAIN if city == "vaihingen" else POTSDAM_TRAIN)]
    tiles += [(t, "test") for t in (VAIHINGEN_TEST if city == "vaihingen" else POTSDAM_TEST)]
    for t, split in tiles:
        img, ids = _scene(rng, h, w, 6)
        rgb = colour(ids, ISPRS_RGB)
        eroded = rgb.copy()
        eroded[:, ::7, :] = 0  # black = boundary in the eroded ground truth
        dsm = (ids == 1) * 8.0 + rng.random((h, w)) + 100.0
        if city == "vaihingen":
            write(root / "top" / f"top_mosaic_09cm_area{t}.tif", img)
            if split == "train":
                write(root / "gts_for_participants" / f"top_mosaic_09cm_area{t}.tif", rgb)
            write(root / "ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE" / f"top_mosaic_09cm_area{t}.tif", rgb)
            write(root / "ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE"
                  / f"top_mosaic_09cm_area{t}_noBoundary.tif", eroded)
            write(root / "dsm" / f"dsm_09cm_matching_area{t}.tif", dsm.astype(np.float32))
            write(root / "ndsm" / f"dsm_09cm_matching_area{t}_normalized.jpg",
                  np.clip(dsm - 100, 0, 255).astype(np.uint8), "JPEG")
        else:
            a, b = (int(v) for v in t.split("_"))
            write(root / "2_Ortho_RGB" / f"top_potsdam_{t}_RGB.tif", img)
            write(root / "5_Labels_all" / f"top_potsdam_{t}_label.tif", rgb)
            write(root / "5_Labels_all_noBoundary" / f"top_potsdam_{t}_label_noBoundary.tif", eroded)
            write(root / "1_DSM" / f"dsm_potsdam_{a:02d}_{b:02d}.tif", dsm.astype(np.float32))
            write(root / "1_DSM_normalisation" / f"dsm_potsdam_{a:02d}_{b:02d}_normalized_lastools.jpg",
                  np.clip(dsm - 100, 0, 255).astype(np.uint8), "JPEG")
    return root


def loveda(root: Path, n: int = 2, size: int = 32, seed: int = 0) -> Path:
    """<Train|Val>/<Urban|Rural>/{images_png,masks_png}/<n>.png, masks 0 = no-data, 1..7 classes."""
    rng = np.random.default_rng(seed)
    k = 0
    for split in ("Train", "Val"):
        for domain in ("Urban", "Rural"):
            for _ in range(n):
                img, ids = _scene(rng, size, size, 7)
                mask = (ids + 1).astype(np.uint8)
                mask[:2] = 0  # no-data rows
                write(root / split / domain / "images_png" / f"{k}.png", img, "PNG")
                write(root / split / domain / "masks_png" / f"{k}.png", mask, "PNG")
                k += 1
    return root


def _change_pair(rng, size: int, n_cls: int):
    """Two dates of one place: the second keeps about half the first's blocks (their pixels, not only their
    labels: an unchanged block of another colour would teach change where nothing changed) and redraws the rest
    in the same class colours."""
    img1, l1 = _scene(rng, size, size, n_cls)
    base = np.stack([np.median(img1[:, l1 == c], axis=1) if (l1 == c).any() else rng.integers(0, 256, 3)
                     for c in range(n_cls)])
    l2 = np.kron(rng.integers(0, n_cls, (size // 8 + 1, size // 8 + 1)), np.ones((8, 8), np.int64))[:size, :size]
    same = rng.random((size // 8 + 1, size // 8 + 1)) < 0.5
    same = np.kron(same, np.ones((8, 8), bool))[:size, :size]
    l2 = np.where(same, l1, l2)
    redrawn = np.clip(base[l2].transpose(2, 0, 1) + rng.integers(-10, 10, (3, size, size)), 0, 255).astype(np.uint8)
    img2 = np.where(l1 == l2, img1, redrawn)  # a block redrawn as its own class kept its pixels too
    changed = l1 != l2
    return img1, img2, np.where(changed, l1 + 1, 0), np.where(changed, l2 + 1, 0)  # 0 = unchanged


def second(root: Path, n: int = 3, size: int = 32, seed: int = 0) -> Path:
    """<train|test>/{im1,im2,label1,label2}/<name>.png, colour labels, white = unchanged."""
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        for i in range(n):
            img1, img2, l1, l2 = _change_pair(rng, size, 6)
            name = f"{i:05d}.png"
            write(root / split / "im1" / name, img1, "PNG")
            write(root / split / "im2" / name, img2, "PNG")
            write(root / split / "label1" / name, colour(l1, SECOND_COLOURS), "PNG")
            write(root / split / "label2" / name, colour(l2, SECOND_COLOURS), "PNG")
    return root


def landsat_scd(root: Path, n: int = 3, size: int = 32, seed: int = 0) -> Path:
    """{A,B,labelA,labelB}/<name>.png index labels (0 unchanged, 1..4) with list/<split>.txt."""
    rng = np.random.default_rng(seed)
    names = {"train": [], "val": []}
    for split in names:
        for i in range(n):
            img1, img2, l1, l2 = _change_pair(rng, size, 4)
            name = f"{split}_{i}.png"
            write(root / "A" / name, img1, "PNG")
            write(root / "B" / name, img2, "PNG")
            write(root / "labelA" / name, l1.astype(np.uint8), "PNG")
            write(root / "labelB" / name, l2.astype(np.uint8), "PNG")
            names[split].append(name)
    (root / "list").mkdir(exist_ok=True)
    for split, items in names.items():
        (root / "list" / f"{split}.txt").write_text("\n".join(items) + "\n")
    return root


LAYOUT_WRITERS = {
    "vaihingen": lambda root, size, seed: isprs(root, "vaihingen", (size, size), seed),
    "potsdam": lambda root, size, seed: isprs(root, "potsdam", (size, size), seed),
    "loveda": lambda root, size, seed: loveda(root, 2, size, seed),
    "second": lambda root, size, seed: second(root, 3, size, seed),
    "landsat-scd": lambda root, size, seed: landsat_scd(root, 3, size, seed),
}


# The top-level entries of each layout in ``root``: the outputs of ``synth --layout`` (all folders). A user's other
# files in ``root`` are none of them, so ``--overwrite`` leaves them alone (publishing ``root`` whole deleted them).
LAYOUT_ENTRIES = {
    "vaihingen": ("top", "gts_for_participants", "ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE",
                  "ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE", "dsm", "ndsm"),
    "potsdam": ("2_Ortho_RGB", "5_Labels_all", "5_Labels_all_noBoundary", "1_DSM", "1_DSM_normalisation"),
    "loveda": ("Train", "Val"),
    "second": ("train", "test"),
    "landsat-scd": ("A", "B", "labelA", "labelB", "list"),
}


def _files_under(folder: Path) -> set[str]:
    """Every file (or link, or empty folder) below ``folder``, relative to it: what replacing it would delete."""
    found = set()
    for path in folder.rglob("*"):
        if not path.is_dir() or path.is_symlink() or not any(path.iterdir()):
            found.add(path.relative_to(folder).as_posix())
    return found


def _foreign_files(named: list[Path], outputs: list[Path], scratch: list[Path]) -> list[Path]:
    """Files in the existing ``outputs`` that their new copies (``scratch``) do not hold, under the names the user
    gave (``named``): a user's own files, which replacing the folders would delete. GDAL's statistics of a
    replaced file (``NAME.aux.xml``) are not."""
    foreign = []
    for name, out, tmp in zip(named, outputs, scratch):
        if not out.is_dir():
            continue
        new = _files_under(tmp)
        foreign += [name / rel for rel in sorted(_files_under(out))
                    if rel not in new and not (rel.endswith(".aux.xml") and rel[:-len(".aux.xml")] in new)]
    return foreign


def write_layout(name: str, root: str | Path, size: int = 32, seed: int = 0, overwrite: bool = False) -> Path:
    """A tiny synthetic copy of benchmark ``name`` (vaihingen, potsdam, loveda, second, landsat-scd) in ``root``.

    Its top-level folders (:data:`LAYOUT_ENTRIES`) are the outputs, published together
    (:func:`rsmamba.atomic.publish`): an existing one is refused unless ``overwrite``, and even then when it holds
    files the copy does not write (they would be deleted: a mapping engineer's notes, a prediction). Other entries
    of ``root`` are never touched. Returns ``root``.
    """
    from rsmamba.atomic import partial_name, publish
    from rsmamba.errors import InputError, seed_problem
    from rsmamba.paths import output_problem

    if name not in LAYOUT_WRITERS:
        raise InputError(f"--layout {name!r}: expected one of {', '.join(LAYOUT_WRITERS)}")
    if (problem := seed_problem(seed)) is not None:
        raise InputError(problem)
    root = Path(root)
    if problem := output_problem(root, role="output folder", directory=True):  # a file there: one line, not mkdir's
        raise InputError(problem)
    entries = LAYOUT_ENTRIES[name]
    outputs = [root / entry for entry in entries]
    existing = [entry for entry, out in zip(entries, outputs) if out.is_dir() and any(out.iterdir())]
    if existing and not overwrite:  # one line for the layout (publish says it per folder: six for Vaihingen)
        raise InputError(f"output folder {root}: {', '.join(existing)} exist{'s' if len(existing) == 1 else ''} and "
                         f"{'is' if len(existing) == 1 else 'are'} not empty (use --overwrite to replace "
                         f"{'it' if len(existing) == 1 else 'them'}; the folder's other entries stay)")
    with publish(outputs, overwrite=overwrite, directory=True) as pub:
        # built whole in one hidden folder (the writers make the whole layout), then each entry moved into its
        # scratch; named as the first output's scratch, so a killed run's is removed by the next run
        build = partial_name(pub.outputs[0])
        build.mkdir()
        try:
            LAYOUT_WRITERS[name](build, size, seed)
            made = sorted(p.name for p in build.iterdir())
            if made != sorted(entries):
                raise RuntimeError(f"layout {name}: wrote {made}, LAYOUT_ENTRIES lists {sorted(entries)}")
            for entry in entries:
                scratch = pub[root / entry]
                scratch.rmdir()  # made empty by publish; a rename, or a copy where a linked entry is on another disk
                shutil.move(build / entry, scratch)
        finally:
            shutil.rmtree(build, ignore_errors=True)
        if overwrite and (foreign := _foreign_files(outputs, pub.outputs, pub.scratch)):
            shown = ", ".join(str(p) for p in foreign[:3])
            more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            raise InputError(f"--overwrite would delete files that --layout {name} does not write: {shown}{more}; "
                             "nothing was replaced: move them out of the way, or choose another folder")
    return root
