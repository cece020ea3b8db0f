"""Targets that let a segmentation model separate touching buildings (issue #17).

A building mask merges a terrace into one region. The usual building-challenge recipe adds
per-pixel targets derived from the individual footprints:

- ``interior``: building pixels farther than ``border_px`` from any other id (background or
  another building) -- seeds of individual buildings;
- ``border``: building pixels within ``border_px`` (Chebyshev) of another id;
- ``contact``: building pixels within ``contact_px`` of two different buildings -- the party walls
  along which a merged region is split.

Footprints come from an instance raster (one id per building, 0 = none) on the image grid, or a
vector layer (each polygon one building). Windows are read with a ``max(border, contact)`` margin,
so a chip's targets do not depend on where the chip starts.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.features import rasterize
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from scipy import ndimage

from rsmamba.errors import InputError
from rsmamba.paths import read_vector
from rsmamba.raster.source import VECTOR_SUFFIXES, layer_in_grid_crs, pixels_coincide
from rsmamba.raster.windows import raster_extent, window_extent

CHANNELS = ("interior", "border", "contact")
TARGET_IGNORE = 255
UNKNOWN = -1  # the id of an instance raster's pixels of no data: no building, and their targets not trained on


def targets_from_ids(ids: np.ndarray, border_px: int = 2, contact_px: int = 3) -> np.ndarray:
    """(3, H, W) uint8 0/1: interior, border, contact of an id raster (0 = no building)."""
    ids = ids.astype(np.int64, copy=False)
    building = ids > 0
    size_b = 2 * border_px + 1
    border = building & ((ndimage.maximum_filter(ids, size_b, mode="nearest") != ids)
                         | (ndimage.minimum_filter(ids, size_b, mode="nearest") != ids))
    big = int(ids.max(initial=0)) + 1  # above every id (the int64 maximum overflows in ndimage)
    size_c = 2 * contact_px + 1
    hi = ndimage.maximum_filter(ids, size_c, mode="nearest")
    lo = ndimage.minimum_filter(np.where(building, ids, big), size_c, mode="nearest")
    contact = building & (lo < big) & (hi != lo)
    interior = building & ~border & ~contact
    return np.stack([interior, border, contact]).astype(np.uint8)


class FootprintIds:
    """Building ids on an image grid, window by window, from an instance raster or a footprint layer."""

    def __init__(self, path: str | os.PathLike[str], *, crs, transform, width: int, height: int,
                 layer: str | None = None):
        self.path = Path(path)
        self.transform, self.width, self.height = transform, width, height
        self._src = None
        self._tree = None
        if not self.path.exists():
            raise InputError(f"--instance-targets {self.path}: no such file")
        if self.path.suffix.lower() in VECTOR_SUFFIXES:
            import shapely

            layer = read_vector(self.path, layer, role="--instance-targets", choose="--instance-targets-layer NAME")
            if layer.crs is None:
                raise InputError(f"--instance-targets {self.path}: footprint layer has no CRS")
            geoms = layer_in_grid_crs(layer, crs, transform, width, height).geometry.to_numpy()
            keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
            grid = shapely.box(*raster_extent(width, height, transform))
            if not keep.any() or not shapely.intersects(grid, geoms[keep]).any():
                # all-zero targets, exit 0: a layer in another CRS than it says, or of another place
                raise InputError(f"--instance-targets {self.path}: no footprint overlaps the image; check its CRS")
            self._geoms = geoms[keep]
            self._ids = np.flatnonzero(keep) + 1  # each polygon one building: its row number
            self._tree = shapely.STRtree(self._geoms)
        else:
            try:
                src = rasterio.open(self.path)
            except rasterio.errors.RasterioIOError as exc:
                raise InputError(f"--instance-targets {self.path}: not a readable raster or vector layer "
                                 f"({str(exc).splitlines()[0]})") from None
            # its pixels, and in the image's CRS (a raster 3 px off a grid in degrees was taken as on it)
            if (src.width, src.height) != (width, height) or src.crs != crs \
                    or not pixels_coincide(src.transform, transform, width, height):
                src.close()
                raise InputError(f"--instance-targets {self.path}: an instance raster must be on the image grid "
                                 f"({width} x {height}, {tuple(transform)[:6]}, {crs})")
            if not np.issubdtype(np.dtype(src.dtypes[0]), np.integer):
                src.close()  # building ids are integers; a float raster (a DSM, probabilities) is not one
                raise InputError(f"--instance-targets {self.path}: an instance raster holds integer building ids "
                                 f"(0 = none), not {src.dtypes[0]} values")
            self._src = src

    def read(self, window: Window) -> np.ndarray:
        """int64 ids of ``window`` (which may reach outside the raster: 0 there); :data:`UNKNOWN` where an instance
        raster has no data (its nodata or mask: a uint16 collar of 65535 was one building, trained as interior)."""
        h, w = int(window.height), int(window.width)
        if self._src is not None:  # the part inside the raster, zero-padded (no boundless VRT read)
            out = np.zeros((h, w), np.int64)
            r0, c0 = int(window.row_off), int(window.col_off)
            r1, c1 = max(r0, 0), max(c0, 0)
            r2, c2 = min(r0 + h, self.height), min(c0 + w, self.width)
            if r2 > r1 and c2 > c1:
                inside = Window(c1, r1, c2 - c1, r2 - r1)
                ids = self._src.read(1, window=inside).astype(np.int64)
                ids[self._src.read_masks(1, window=inside) == 0] = UNKNOWN
                out[r1 - r0:r2 - r0, c1 - c0:c2 - c0] = ids
            return out
        import shapely

        box = shapely.box(*window_extent(window, self.transform))
        hits = self._tree.query(box, predicate="intersects")
        if not len(hits):
            return np.zeros((h, w), np.int64)
        hits = np.sort(hits)
        shapes = zip(self._geoms[hits], self._ids[hits].tolist())
        return rasterize(shapes, out_shape=(h, w), transform=window_transform(window, self.transform), fill=0,
                         dtype="int32").astype(np.int64)

    def close(self) -> None:
        if self._src is not None:
            self._src.close()


class TargetReader:
    """Interior/border/contact targets of a window, computed on a margin so chips agree at their edges."""

    def __init__(self, ids: FootprintIds, border_px: int = 2, contact_px: int = 3):
        if border_px < 1 or contact_px < 1:
            raise InputError("instance target widths must be at least 1 pixel")
        self.ids, self.border_px, self.contact_px = ids, border_px, contact_px
        self.margin = max(border_px, contact_px)

    def __call__(self, window: Window) -> np.ndarray:
        m = self.margin
        padded = Window(window.col_off - m, window.row_off - m, window.width + 2 * m, window.height + 2 * m)
        ids = self.ids.read(padded)
        t = targets_from_ids(ids, self.border_px, self.contact_px)
        t[:, ids == UNKNOWN] = TARGET_IGNORE  # (a building beside them has its border there, as at the raster's edge)
        return t[:, m:m + int(window.height), m:m + int(window.width)]

    def describe(self) -> dict:
        """The ``instance_targets`` entry of ``tiling.json``."""
        return {
            "source": str(self.ids.path.resolve()), "folder": "targets", "channels": list(CHANNELS),
            "border_px": self.border_px, "contact_px": self.contact_px, "ignore": TARGET_IGNORE,
            "definition": "per building id: border = building pixels within border_px (Chebyshev) of another id "
                          "or background; contact = building pixels within contact_px of two different buildings; "
                          "interior = building and neither; 255 = invalid pixel",
        }
