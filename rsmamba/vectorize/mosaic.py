"""Many class or change rasters into one polygon layer, through a VRT mosaic on their common grid.

Why a VRT: the block-wise vectorizer (:mod:`.api`) reads window by window, so over a mosaic of
the scenes memory stays bounded, and a polygon that crosses a scene border is merged at the seam
exactly like at any block border: one polygon, not one per scene. That is only exact when the
scenes tile one pixel grid (same CRS, pixel size and rotation, origins whole pixels apart, same
bands, dtype, nodata and class table); anything else would need resampling, which moves class
boundaries, so it is refused with every problem listed at once.

The VRT is plain XML written here (no ``gdalbuildvrt`` needed): gaps between scenes read as
nodata, each scene is a ``ComplexSource`` with its nodata (and its mask band, when it has an
internal mask: ``UseMaskBand``) so a scene's nodata collar never hides a neighbour's pixels, and where scenes overlap the later input wins (a warning names the
overlapping pairs). The first raster's tags and band descriptions go into the VRT, so class
names, the model id and change mode are read from it as from a single raster.
"""

from __future__ import annotations

import functools
import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.windows import Window

from rsmamba.errors import InputError, ProblemCollector
from rsmamba.paths import input_problem
from rsmamba.raster.validate import is_change_raster
from rsmamba.vectorize import attributes as attrs

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
GRID_TOLERANCE = 1e-3  # pixels: origins this close to a whole-pixel offset count as on the grid
DEFAULT_NODATA = 255  # what predict and change write for "no valid input"
_GDAL_TYPES = {
    "uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
    "int32": "Int32", "uint64": "UInt64", "int64": "Int64", "float32": "Float32", "float64": "Float64",
}


@dataclass(frozen=True)
class _Raster:
    """What the grid check needs from one input, read once."""

    path: Path
    crs: rasterio.crs.CRS | None
    transform: Affine
    width: int
    height: int
    count: int
    dtypes: tuple[str, ...]
    nodata: float | None
    descriptions: tuple[str | None, ...]
    block_shapes: tuple[tuple[int, int], ...]
    names: dict[int, str]
    change: bool
    tags: dict[str, str]
    band_tags: tuple[dict[str, str], ...]
    masked: bool = False  # band 1 has a mask band beyond nodata (internal mask, alpha): the VRT honours it


@dataclass
class Mosaic:
    """The scenes on their common grid: pixel rectangles in mosaic coordinates, in input order."""

    rasters: list[_Raster]
    offsets: np.ndarray  # (n, 2) col, row of each scene's top-left pixel
    width: int
    height: int
    transform: Affine
    nodata: float

    @functools.cached_property
    def scene_names(self) -> list[str]:
        """Each scene as polygons and messages name it: its file name, or where two share one (tiles written
        with '{relparent}/{stem}.tif'), its path below the scenes' common folder (every 'source' read a.tif)."""
        names = [r.path.name for r in self.rasters]
        if len(set(names)) == len(names):
            return names
        common = os.path.commonpath([os.path.abspath(r.path.parent) for r in self.rasters])
        return [Path(os.path.relpath(os.path.abspath(r.path), common)).as_posix() for r in self.rasters]

    @property
    def label(self) -> str:
        """How messages name the mosaic (its VRT is a temporary file the user never sees)."""
        names = self.scene_names
        shown = ", ".join(names) if len(names) <= 4 else f"{', '.join(names[:3])}, ... {names[-1]}"
        return f"mosaic of {len(names)} rasters ({shown})"

    @functools.cached_property
    def rects(self) -> np.ndarray:
        """(n, 4) col0, row0, col1, row1 of every scene."""
        sizes = np.array([(r.width, r.height) for r in self.rasters], dtype="int64")
        return np.hstack([self.offsets, self.offsets + sizes])

    @functools.cached_property
    def _tree(self) -> shapely.STRtree:
        return shapely.STRtree(shapely.box(*self.rects.T.astype("float64")))

    def covers(self, window: Window) -> bool:
        """Whether any scene has pixels in ``window`` (the others read as nodata: skip them)."""
        c0, r0, c1, r1 = self.rects.T
        w0, h0 = int(window.col_off), int(window.row_off)
        w1, h1 = w0 + int(window.width), h0 + int(window.height)
        return bool(np.any((c0 < w1) & (c1 > w0) & (r0 < h1) & (r1 > h0)))

    def scenes_at(self, points: np.ndarray) -> list[int]:
        """Index of the scene whose pixel the layer used under each point (pixel coordinates, a polygon's interior
        point): where scenes overlap, the last one with data at that pixel, as the VRT draws them. Rectangles alone
        gave the later scene's source and model_id to the earlier one's polygons in the later one's nodata (QA)."""
        pixels = np.floor(shapely.get_coordinates(points)).astype("int64")
        point_idx, scene_idx = self._tree.query(shapely.points(pixels + 0.5), predicate="intersects")
        best = np.full(len(pixels), -1, dtype="int64")
        np.maximum.at(best, point_idx, scene_idx)  # the later scene by rectangle: right wherever it has data
        shared = np.bincount(point_idx, minlength=len(pixels)) > 1
        if shared.any():
            keep = shared[point_idx]
            point_idx, scene_idx = point_idx[keep], scene_idx[keep]
            found = np.full(len(pixels), -1, dtype="int64")
            for scene in np.unique(scene_idx)[::-1]:  # later scenes first: the first with data wins
                these = point_idx[(scene_idx == scene) & (found[point_idx] < 0)]
                if len(these):
                    col, row = (pixels[these] - self.offsets[scene]).T
                    found[these[_has_data(self.rasters[scene].path, col, row)]] = scene
            best = np.where(found >= 0, found, best)  # no scene with data there: the later by rectangle
        return [int(i) if i >= 0 else 0 for i in best]

    @functools.cached_property
    def model_ids(self) -> list[str]:
        """Each scene's ``model_id`` tag ('' where it has none): the mosaic's own tags are the first scene's, which
        named the model of every polygon, those of a neighbour mapped by another model too (QA)."""
        return [attrs.tags_model_id(r.tags, r.band_tags[0] if r.band_tags else {}) for r in self.rasters]

    def overlaps(self) -> list[tuple[int, int]]:
        """Pairs of scenes (input indices) that share pixels."""
        rects = self.rects
        a, b = self._tree.query(self._tree.geometries, predicate="intersects")
        keep = a < b
        a, b = a[keep], b[keep]
        ra, rb = rects[a], rects[b]
        strict = (ra[:, 0] < rb[:, 2]) & (rb[:, 0] < ra[:, 2]) & (ra[:, 1] < rb[:, 3]) & (rb[:, 1] < ra[:, 3])
        return sorted(zip(a[strict].tolist(), b[strict].tolist()))


SAMPLE_BLOCK = 512  # pixels a side of the windows a scene's mask is read in at sample points: memory bounded


def _has_data(path: Path, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Whether band 1 of ``path`` holds data (not nodata, not masked) at each pixel (``cols``, ``rows``), its mask
    read window by window around the points (a whole scene's mask would be its size in memory)."""
    out = np.zeros(len(cols), dtype=bool)
    with rasterio.open(path) as src:
        blocks = (rows // SAMPLE_BLOCK) * (src.width // SAMPLE_BLOCK + 1) + cols // SAMPLE_BLOCK
        for block in np.unique(blocks):
            these = np.nonzero(blocks == block)[0]
            c, r = cols[these], rows[these]
            window = Window(int(c.min()), int(r.min()), int(c.max() - c.min()) + 1, int(r.max() - r.min()) + 1)
            mask = src.read_masks(1, window=window)
            out[these] = mask[r - r.min(), c - c.min()] > 0
    return out


def _read(path: Path, problems: ProblemCollector) -> _Raster | None:
    problem = input_problem(path, "raster")  # stat only: GDAL opening a named pipe would wait for ever
    if problem:
        problems.add(problem)
        return None
    try:
        with rasterio.open(path) as src:
            return _Raster(
                path=path, crs=src.crs, transform=src.transform, width=src.width, height=src.height,
                count=src.count, dtypes=tuple(src.dtypes), nodata=src.nodata, descriptions=tuple(src.descriptions),
                block_shapes=tuple(src.block_shapes), names=attrs.class_names(src), change=is_change_raster(src),
                tags=src.tags(), band_tags=tuple(src.tags(b) for b in range(1, src.count + 1)),
                masked=attrs.has_mask_band(src),
            )
    except rasterio.errors.RasterioIOError as exc:
        problems.add(f"raster {path}: not a readable raster ({str(exc).splitlines()[0]})")
        return None
    except InputError as exc:  # an unreadable class table
        for problem in exc.problems:
            problems.add(problem)
        return None


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-12) + 1e-12


def _compare(first: _Raster, other: _Raster, problems: ProblemCollector) -> tuple[int, int] | None:
    """Add every way ``other`` is off ``first``'s grid; return its whole-pixel offset when on it."""
    name, ref = other.path, first.path.name
    on_grid = True
    if other.crs is None:
        problems.add(f"{name}: no CRS")
        on_grid = False
    elif first.crs is not None and other.crs != first.crs:
        problems.add(f"{name}: CRS {other.crs.to_string()} differs from {ref}'s {first.crs.to_string()}")
        on_grid = False
    t, t0 = other.transform, first.transform
    if not (_close(abs(t.a), abs(t0.a)) and _close(abs(t.e), abs(t0.e))):
        problems.add(f"{name}: pixel size {abs(t.a):g} x {abs(t.e):g} differs from {ref}'s {abs(t0.a):g} x {abs(t0.e):g}")
        on_grid = False
    elif not (_close(t.a, t0.a) and _close(t.e, t0.e)):  # the same size, stored flipped ('0.25 x 0.25 differs ...')
        def way(tr: Any) -> str:
            return " and ".join(w for w, flipped in (("south up", tr.e > 0), ("east to west", tr.a < 0)) if flipped) \
                or "north up"

        problems.add(f"{name}: stored {way(t)}, {ref} {way(t0)}: write them one way (gdalwarp) to mosaic them")
        on_grid = False
    if not (_close(t.b, t0.b) and _close(t.d, t0.d)):
        problems.add(f"{name}: grid rotation ({t.b:g}, {t.d:g}) differs from {ref}'s ({t0.b:g}, {t0.d:g})")
        on_grid = False
    offset = None
    if on_grid:
        col, row = ~t0 * (t.c, t.f)
        if abs(col - round(col)) > GRID_TOLERANCE or abs(row - round(row)) > GRID_TOLERANCE:
            problems.add(f"{name}: origin is {col - round(col):+.3f}, {row - round(row):+.3f} pixels off {ref}'s "
                         "grid (scenes must be whole pixels apart; resample onto one grid first)")
        else:
            offset = (int(round(col)), int(round(row)))
    if other.count != first.count:
        problems.add(f"{name}: {other.count} bands, {ref} has {first.count}")
    if other.dtypes[:1] != first.dtypes[:1]:
        problems.add(f"{name}: band 1 is {other.dtypes[0]}, {ref}'s is {first.dtypes[0]}")
    if other.nodata != first.nodata:
        problems.add(f"{name}: nodata {other.nodata}, {ref}'s is {first.nodata}")
    if other.change != first.change:
        what = "a change raster" if other.change else "a class raster"
        problems.add(f"{name}: {what}, {ref} is not")
    elif other.names != first.names:
        problems.add(f"{name}: class table differs from {ref}'s (the same id would mean different classes)")
    return offset


def _plan_mosaic(paths: Sequence[PathLike]) -> tuple[Mosaic | None, list[str]]:
    problems = ProblemCollector()
    if not paths:
        return None, ["no input raster given"]
    rasters = [_read(Path(p), problems) for p in paths]
    readable = [r for r in rasters if r is not None]
    if not readable:
        return None, problems.problems
    first = readable[0]
    if first.crs is None:
        problems.add(f"{first.path}: no CRS")
    for r in readable:
        if r.dtypes[0] not in _GDAL_TYPES:
            problems.add(f"{r.path}: band 1 is {r.dtypes[0]}, a class raster holds integer class ids")
    offsets = [(0, 0)] + [_compare(first, r, problems) for r in readable[1:]]
    if problems:
        return None, problems.problems
    off = np.array(offsets, dtype="int64")
    sizes = np.array([(r.width, r.height) for r in readable], dtype="int64")
    lo, hi = off.min(axis=0), (off + sizes).max(axis=0)
    mosaic = Mosaic(
        rasters=readable, offsets=off - lo, width=int(hi[0] - lo[0]), height=int(hi[1] - lo[1]),
        transform=first.transform * Affine.translation(int(lo[0]), int(lo[1])),
        nodata=first.nodata if first.nodata is not None else DEFAULT_NODATA,
    )
    return mosaic, []


def check_common_grid(paths: Sequence[PathLike]) -> list[str]:
    """Every reason ``paths`` do not tile one pixel grid (empty when they do)."""
    return _plan_mosaic(paths)[1]


def plan_mosaic(paths: Sequence[PathLike]) -> Mosaic:
    """The scenes laid out on their common grid; one :class:`InputError` lists every problem."""
    mosaic, problems = _plan_mosaic(paths)
    if problems:
        raise InputError(problems)
    assert mosaic is not None
    pairs = mosaic.overlaps()
    if pairs:
        names = [f"{mosaic.rasters[a].path.name} / {mosaic.rasters[b].path.name}" for a, b in pairs[:5]]
        more = f" (+{len(pairs) - 5} more)" if len(pairs) > 5 else ""
        log.warning("%d pair%s of rasters overlap: %s%s; where both hold data the later input wins",
                    len(pairs), "s" * (len(pairs) != 1), ", ".join(names), more)
    return mosaic


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _metadata(parent: ET.Element, tags: dict[str, Any]) -> None:
    """Tags as VRT metadata items; the first scene's band statistics would misdescribe the mosaic."""
    items = {k: v for k, v in tags.items() if not str(k).upper().startswith("STATISTICS_")}
    if not items:
        return
    md = ET.SubElement(parent, "Metadata")
    for key, value in items.items():
        ET.SubElement(md, "MDI", key=str(key)).text = str(value)


def mosaic_vrt_xml(mosaic: Mosaic) -> ET.ElementTree:
    """The VRT of ``mosaic``: the union of the scenes, gaps nodata, later scenes drawn last."""
    first = mosaic.rasters[0]
    root = ET.Element("VRTDataset", rasterXSize=str(mosaic.width), rasterYSize=str(mosaic.height))
    ET.SubElement(root, "SRS").text = first.crs.to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(float(v)) for v in mosaic.transform.to_gdal())
    _metadata(root, first.tags)
    for band in range(1, first.count + 1):
        dtype = first.dtypes[band - 1]
        vband = ET.SubElement(root, "VRTRasterBand", dataType=_GDAL_TYPES[dtype], band=str(band))
        if first.descriptions[band - 1]:
            ET.SubElement(vband, "Description").text = first.descriptions[band - 1]
        _metadata(vband, first.band_tags[band - 1])
        ET.SubElement(vband, "NoDataValue").text = _number(mosaic.nodata)
        for raster, (col, row) in zip(mosaic.rasters, mosaic.offsets.tolist()):
            source = ET.SubElement(vband, "ComplexSource")
            ET.SubElement(source, "SourceFilename", relativeToVRT="0").text = str(raster.path.resolve())
            ET.SubElement(source, "SourceBand").text = str(band)
            block_y, block_x = raster.block_shapes[band - 1]
            ET.SubElement(source, "SourceProperties", RasterXSize=str(raster.width), RasterYSize=str(raster.height),
                          DataType=_GDAL_TYPES[raster.dtypes[band - 1]], BlockXSize=str(block_x),
                          BlockYSize=str(block_y))
            size = {"xSize": str(raster.width), "ySize": str(raster.height)}
            ET.SubElement(source, "SrcRect", xOff="0", yOff="0", **size)
            ET.SubElement(source, "DstRect", xOff=str(col), yOff=str(row), **size)
            if raster.nodata is not None:  # its nodata pixels leave what is below them
                ET.SubElement(source, "NODATA").text = _number(raster.nodata)
            if raster.masked:  # and so do its masked pixels (GDAL >= 3.3)
                ET.SubElement(source, "UseMaskBand").text = "true"
    ET.indent(root)
    return ET.ElementTree(root)


def write_mosaic_vrt(paths: Sequence[PathLike], vrt_path: PathLike) -> Path:
    """Write a VRT mosaic of rasters that tile one grid; :class:`InputError` with every problem otherwise."""
    vrt_path = Path(vrt_path)
    mosaic_vrt_xml(plan_mosaic(paths)).write(vrt_path, encoding="UTF-8", xml_declaration=False)
    return vrt_path
