"""A tiny learnable scene for training tests: class depends on local colour, with noise.

Six ISPRS classes painted as random rectangles, each with its own mean colour plus noise, so a
small CNN must learn something (a constant prediction scores mIoU ~ 1/6 of the majority class).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.helpers.rasters import write_raster

COLOURS = np.array([[200, 200, 200], [40, 40, 160], [90, 180, 180], [30, 120, 30], [200, 200, 40], [160, 40, 40]])


def scene_arrays(size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image uint8 (3,h,w), labels uint8 (h,w), dsm float32 (h,w))."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 6, (size // 8 + 1, size // 8 + 1)).astype(np.uint8)
    labels = np.kron(cells, np.ones((8, 8), np.uint8))[:size, :size].copy()
    for _ in range(size // 3):
        c = rng.integers(1, 6)
        h, w = rng.integers(4, 16, 2)
        r, q = rng.integers(0, size - h), rng.integers(0, size - w)
        labels[r:r + h, q:q + w] = c
    image = COLOURS[labels].transpose(2, 0, 1).astype(np.float32)
    image += rng.normal(0, 15, image.shape)
    image = np.clip(image, 1, 255).astype(np.uint8)
    dsm = np.where(labels == 1, 8.0, np.where(labels == 3, 5.0, 0.0)).astype(np.float32) + 20.0
    return image, labels, dsm


def write_scene(folder: Path, size: int = 96, seed: int = 0) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    image, labels, dsm = scene_arrays(size, seed)
    return {
        "image": write_raster(folder / "image.tif", image, res=0.5),
        "labels": write_raster(folder / "labels.tif", labels, res=0.5),
        "dsm": write_raster(folder / "dsm.tif", dsm, res=0.5),
    }


def write_chips(folder: Path, size: int = 96, chip: int = 32, seed: int = 0, dsm: bool = False,
                split: tuple[float, float, float] = (0.67, 0.33, 0.0)) -> Path:
    """Scene -> ``rsmamba tile`` chip folder (the real tiler: the same contract as production)."""
    from rsmamba.tile import tile_scene

    paths = write_scene(folder / "scene", size, seed)
    out = folder / "chips"
    tile_scene(paths["image"], out, labels=paths["labels"], dsm=paths["dsm"] if dsm else None, size=chip,
               block=chip, split=split, seed=seed)
    return out


def manifest_rows(chips: Path) -> list[dict[str, str]]:
    """The rows of a chip folder's manifest.csv (for tests that edit a received folder)."""
    import csv

    with open(chips / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def save_manifest(chips: Path, rows: list[dict[str, str]]) -> None:
    """Write ``rows`` as the chip folder's manifest.csv, columns in the first row's order."""
    import csv

    with open(chips / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
