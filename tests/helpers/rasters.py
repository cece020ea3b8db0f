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


def write_semantic_change(path: Path, change: np.ndarray, t1: np.ndarray, t2: np.ndarray, tags: dict[str, str]) -> Path:
    """A raster as ``rsmamba change --semantic`` writes it: bands change, from_class, to_class (255 = nodata), with
    ``tags`` (its class table: CLASSES / CLASS_NAMES / class_names)."""
    h, w = change.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=3, dtype="uint8", nodata=255,
                       crs="EPSG:32632", transform=from_origin(500000, 5000000, 1, 1)) as dst:
        dst.write(np.stack([change, t1, t2]).astype(np.uint8))
        for b, name in enumerate(("change", "from_class", "to_class"), 1):
            dst.set_band_description(b, name)
        dst.update_tags(**tags)
    return path


def gdal_category_names(path: Path) -> list[list[str]]:
    """Each band's category names as GDAL reads them (from the raster's ``.aux.xml``), through GDAL itself: a VRT
    copy writes every band's ``CategoryNames``. QGIS labels a paletted raster's legend with them."""
    import tempfile
    from xml.etree import ElementTree as ET

    import rasterio.shutil

    with tempfile.TemporaryDirectory() as tmp:
        vrt = Path(tmp) / "copy.vrt"
        rasterio.shutil.copy(path, vrt, driver="VRT")
        root = ET.parse(vrt).getroot()
    return [[c.text or "" for c in band.iter("Category")] for band in root.iter("VRTRasterBand")]
