"""Tiny GeoTIFF / vector writers for tests (TorchGeo style: tests make their own data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

ROOT = Path(__file__).resolve().parents[2]
OLINDA = ROOT / "examples" / "olinda"


def write_raster(
    path: Path,
    array: np.ndarray,
    *,
    crs: str | None = "EPSG:32632",
    origin: tuple[float, float] = (500000.0, 5000000.0),
    res: float = 1.0,
    nodata: float | None = None,
    transform=None,
) -> Path:
    """Write (bands, h, w) or (h, w) ``array`` as a GeoTIFF north-up at ``origin`` with pixel size ``res``."""
    arr = array if array.ndim == 3 else array[None]
    profile = {
        "driver": "GTiff", "width": arr.shape[2], "height": arr.shape[1], "count": arr.shape[0],
        "dtype": arr.dtype.name, "transform": transform or from_origin(origin[0], origin[1], res, res),
        "nodata": nodata,
    }
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
    return path


def random_image(h: int, w: int, bands: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 255, size=(bands, h, w), dtype=np.uint8)
