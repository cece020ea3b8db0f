"""Output rasters: rows rendered from probabilities, a tiled BigTIFF scratch, then a COG.

A COG cannot be written incrementally (its overviews come first in the file), so finished rows
go into a tiled BigTIFF scratch file, one full row of tiles at a time (every tile is written
exactly once, so compression never leaves holes). The scratch is closed after every tile row:
whatever the process suffers next, the rows recorded in the resume sidecar are on disk. At the
end overviews are built and GDAL writes the COG (GTiff's copy with the overviews first, as the COG
driver does, see :func:`cog_as_gtiff`) under a temporary name.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
import torch
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.windows import Window

from rsmamba.atomic import OutputError, Publication, publish
from rsmamba.classes import ClassInfo, colormap
from rsmamba.engine.overviews import build_overviews, overview_paths
from rsmamba.engine.stitch import FinishedRows, host_view

NODATA = 255
PROB_SCALE = 254  # probabilities are stored as round(p * 254); 255 is nodata
BLOCK = 256
# GDAL COG driver creation options a user may set with --co (values are checked by GDAL)
COG_OPTIONS = frozenset({
    "BLOCKSIZE", "COMPRESS", "LEVEL", "MAX_Z_ERROR", "QUALITY", "JXL_LOSSLESS", "JXL_EFFORT", "JXL_DISTANCE",
    "NUM_THREADS", "NBITS", "PREDICTOR", "BIGTIFF", "RESAMPLING", "OVERVIEW_RESAMPLING", "OVERVIEW_COMPRESS",
    "OVERVIEW_QUALITY", "OVERVIEW_PREDICTOR", "OVERVIEW_COUNT", "GEOTIFF_VERSION", "SPARSE_OK", "STATISTICS",
    "WEBP_LEVEL", "WEBP_LOSSLESS", "TARGET_SRS", "RES", "EXTENT", "ALIGNED_LEVELS",
    "ADD_ALPHA", "TILING_SCHEME", "ZOOM_LEVEL", "ZOOM_LEVEL_STRATEGY", "WARP_RESAMPLING",
})


def pam_path(raster: Path) -> Path:
    """GDAL's sidecar of ``raster`` (its PAM ``.aux.xml``): where GeoTIFF keeps what TIFF tags cannot hold."""
    return raster.with_name(raster.name + ".aux.xml")


def category_names(classes: tuple[ClassInfo, ...]) -> tuple[str, ...]:
    """The name of each value 0..largest id ('' for an id no class has, or a filler's)."""
    names = [""] * (max((c.id for c in classes), default=-1) + 1)
    for c in classes:
        if not c.filler:
            names[c.id] = c.name
    return tuple(names)


def pam_categories(categories: tuple[tuple[str, ...], ...]) -> str:
    """A PAM ``.aux.xml`` naming each band's values: GDAL's category names, which QGIS shows as the legend of a
    paletted raster (else the ids: '0', '1', ...) and ``gdalinfo`` lists. GeoTIFF has no tag for them: GDAL
    itself keeps them in this sidecar."""
    from xml.etree import ElementTree as ET

    root = ET.Element("PAMDataset")
    for band, names in enumerate(categories, start=1):
        if names:
            node = ET.SubElement(ET.SubElement(root, "PAMRasterBand", band=str(band)), "CategoryNames")
            for name in names:
                ET.SubElement(node, "Category").text = name
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def scratch_path(final: Path) -> Path:
    """Deterministic (so ``--resume`` finds it) hidden sibling of the final file."""
    return final.with_name(f".{final.name}.predict-scratch.tif")


@dataclass
class OutputLayer:
    """One output raster: how to render its bands from finished rows, and how to describe it."""

    name: str
    path: Path
    count: int
    render: Callable[[FinishedRows], torch.Tensor]  # finished rows -> (count, n, W) uint8, on their device
    resampling: Resampling = Resampling.nearest
    colormap: dict[int, tuple[int, int, int, int]] | None = None
    descriptions: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    scratch_file: Path | None = None  # default: the deterministic hidden sibling (what --resume looks for)
    scale: float | None = None  # GDAL band scale: QGIS and gdalinfo show stored values times it (p in 0..1)
    categories: tuple[tuple[str, ...], ...] = ()  # per band, the name of each value 0, 1, ... ('' unnamed)

    @property
    def companions(self) -> list[Path]:
        """Files published with the raster: its ``.aux.xml`` where its bands name their values."""
        return [pam_path(self.path)] if self.categories else []

    @property
    def scratch(self) -> Path:
        return self.scratch_file or scratch_path(self.path)

    @property
    def scratch_files(self) -> list[Path]:
        """The scratch and every overview file it may have (:mod:`rsmamba.engine.overviews`): for cleanup."""
        return [self.scratch, *overview_paths(self.scratch)]

    @property
    def overview_method(self) -> str:
        """2 x 2 reduction of the overviews: ``mode`` for labels, ``average`` for probabilities."""
        if self.resampling not in (Resampling.mode, Resampling.average):
            raise ValueError(f"{self.name}: overviews by mode or average, not {self.resampling.name}")
        return self.resampling.name


def argmax_classes(acc: torch.Tensor) -> torch.Tensor:
    """(C, n, W) -> (n, W) uint8 index of the largest value, the first one on ties (as argmax).

    A running comparison over the classes: on CPU, torch's and NumPy's argmax over the leading
    axis are several times slower than these C elementwise passes. On a CPU it runs in NumPy on
    the calling thread (see :func:`rsmamba.engine.stitch.host_view`).
    """
    a = host_view(acc)
    if isinstance(a, np.ndarray):
        best = a[0].copy()
        out = np.zeros(a.shape[1:], np.uint8)
        greater = np.empty(a.shape[1:], bool)
        for c in range(1, a.shape[0]):
            np.greater(a[c], best, out=greater)
            np.copyto(out, np.uint8(c), where=greater)
            np.maximum(best, a[c], out=best)
        return torch.from_numpy(out)
    best = acc[0].clone()
    out = torch.zeros(acc.shape[1:], dtype=torch.uint8, device=acc.device)
    for c in range(1, acc.shape[0]):
        greater = acc[c] > best
        out.masked_fill_(greater, c)
        torch.maximum(best, acc[c], out=best)
    return out


def scaled_probability(acc: torch.Tensor, wsum: torch.Tensor) -> torch.Tensor:
    """Weight sums -> uint8 ``round(acc / wsum * 254)`` (half to even, as ``np.rint``); 0 where ``wsum`` is 0.

    One multiplication per class by ``254 / wsum`` (computed once per pixel) instead of a
    division and a scaling: the same to within one float32 rounding, a third of the passes.
    """
    a, w = host_view(acc), host_view(wsum)
    if isinstance(a, np.ndarray):
        with np.errstate(divide="ignore"):
            factor = np.where(w > 0, np.float32(PROB_SCALE) / w, np.float32(0)).astype(np.float32, copy=False)
        out = np.empty(a.shape, np.uint8)
        x = np.empty(a.shape[1:], np.float32)  # one class at a time: no float copy of every class
        for c in range(a.shape[0]):
            np.multiply(a[c], factor, out=x)
            np.rint(x, out=x)
            out[c] = x
        return torch.from_numpy(out)
    scale = torch.tensor(PROB_SCALE, dtype=torch.float32, device=wsum.device)  # not 254 / wsum: that is
    factor = torch.where(wsum > 0, scale / wsum, 0.0)  # reciprocal(wsum) * 254 in torch, another rounding
    return torch.round_(acc * factor).to(torch.uint8)


def nodata_where_invalid(out: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``out`` with NODATA where not ``valid`` (in place)."""
    o, v = host_view(out), host_view(valid)
    if isinstance(o, np.ndarray):
        np.copyto(o, np.uint8(NODATA), where=~v)
        return out
    return out.masked_fill_(~valid, NODATA)


def class_layer(path: Path, classes: tuple[ClassInfo, ...], model_id: str = "") -> OutputLayer:
    def render(rows: FinishedRows) -> torch.Tensor:  # the class channels only (instance channels follow them)
        return nodata_where_invalid(argmax_classes(rows.acc[: len(classes)]), rows.valid)[None]

    return OutputLayer(
        "classes", path, 1, render, Resampling.mode, colormap(classes), ["class"],
        {"CLASS_NAMES": json.dumps([c.name for c in classes]),
         "CLASSES": json.dumps([c.to_dict() for c in classes]), "NODATA_MEANS": "no valid input",
         **({"model_id": model_id} if model_id else {})},
        categories=(category_names(classes),),
    )


def probability_layer(path: Path, classes: tuple[ClassInfo, ...], instance_channels: tuple[str, ...] = (),
                      model_id: str = "") -> OutputLayer:
    """One band per class, then one per instance channel (``p(interior)``, ``p(contact)``: issue #17).

    ``model_id`` as on the class raster: vectorize refuses another model's probabilities by it.
    """
    def render(rows: FinishedRows) -> torch.Tensor:
        return nodata_where_invalid(scaled_probability(rows.acc, rows.wsum), rows.valid)

    names = [f"p({c.name})" for c in classes] + [f"p({n})" for n in instance_channels]
    tags = {"SCALE": f"1/{PROB_SCALE}", **({"model_id": model_id} if model_id else {})}
    if instance_channels:
        tags["INSTANCE_CHANNELS"] = json.dumps(list(instance_channels))
    return OutputLayer("probabilities", path, len(names), render, Resampling.average, None, names, tags,
                       scale=1 / PROB_SCALE)


def confidence_layer(path: Path, num_classes: int | None = None, model_id: str = "") -> OutputLayer:
    def render(rows: FinishedRows) -> torch.Tensor:
        acc = rows.acc[:num_classes] if num_classes else rows.acc
        return nodata_where_invalid(scaled_probability(acc.amax(dim=0, keepdim=True), rows.wsum), rows.valid)

    return OutputLayer("confidence", path, 1, render, Resampling.average, None, ["confidence"],
                       {"SCALE": f"1/{PROB_SCALE}", **({"model_id": model_id} if model_id else {})},
                       scale=1 / PROB_SCALE)


class ScratchWriter:
    """Renders finished rows and writes them to each layer's scratch file in full tile rows.

    Rows come strip by strip (column strips whose borders are multiples of the tile size), top
    to bottom within a strip. Progress is ``(strip, rows_done)``: strips before ``strip`` are
    complete, and rows ``[0, rows_done)`` of strip ``strip`` are on disk. With ``rows=(y0, y1)``
    (``y0`` a multiple of the tile size) the scratch files hold only those raster rows: one row
    band of a scene split across workers (:mod:`rsmamba.predict.slices`).
    """

    def __init__(self, layers: list[OutputLayer], profile: dict[str, Any], *, strip: int = 0, rows_done: int = 0,
                 on_durable: Callable[[int, int], None] | None = None, block: int = BLOCK,
                 rows: tuple[int, int] | None = None) -> None:
        self.layers = layers
        self.width, self.height = int(profile["width"]), int(profile["height"])
        self.y0, self.y1 = rows if rows is not None else (0, self.height)
        if self.y0 % block or not 0 <= self.y0 < self.y1 <= self.height:
            raise ValueError(f"rows {rows}: need 0 <= y0 < y1 <= {self.height} with y0 a multiple of {block}")
        self.block = block
        self.on_durable = on_durable
        self.strip, self.col, self.strip_width = strip, None, 0
        self.pending_row = max(rows_done, self.y0)
        self.pending: list[np.ndarray] = []
        self.profile = scratch_profile(profile, block, rows)
        if strip == 0 and rows_done == 0:
            create_scratch(layers, self.profile)

    def write(self, rows: FinishedRows, strip: int) -> None:
        """Accept finished rows of strip ``strip`` (in order); rows already on disk are skipped.

        Each layer renders on the rows' device and only its uint8 bands cross to the host.
        """
        if strip < self.strip:
            return
        if self.col is None or strip != self.strip:
            if self.col is not None:
                self._flush(final=True)
                self.pending_row = self.y0
            self.strip, self.col, self.strip_width = strip, rows.col, rows.width
            self.pending = [np.zeros((ly.count, 0, self.strip_width), np.uint8) for ly in self.layers]
        end = min(rows.row + rows.height, self.y1)
        if end <= self.pending_row:
            return
        part = rows.rows(max(0, self.pending_row - rows.row), end - rows.row)
        for i, layer in enumerate(self.layers):
            rendered = layer.render(part).cpu().numpy()
            self.pending[i] = rendered if self.pending[i].shape[1] == 0 else np.concatenate(
                [self.pending[i], rendered], axis=1)
        self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self.pending:
            return
        n = self.pending[0].shape[1]
        last = self.pending_row + n
        if not final and last < self.y1:
            n = (last // self.block) * self.block - self.pending_row
        if n <= 0:
            return
        window = Window(self.col, self.pending_row - self.y0, self.strip_width, n)
        for i, layer in enumerate(self.layers):
            if not layer.scratch.is_file():  # rasterio's r+ of a missing file is a TypeError: a traceback
                raise OutputError(f"output {layer.path}: its scratch file {layer.scratch.name} vanished during the run "
                                  "(its folder deleted or cleaned?); run again")
            with rasterio.open(layer.scratch, "r+") as dst:
                dst.write(self.pending[i][:, :n], window=window)
            self.pending[i] = self.pending[i][:, n:]
        self.pending_row += n
        if self.on_durable is not None:
            done = self.pending_row >= self.y1
            self.on_durable(self.strip + 1 if done else self.strip, 0 if done else self.pending_row)

    def close(self) -> None:
        self._flush(final=True)


def scratch_profile(profile: dict[str, Any], block: int = BLOCK, rows: tuple[int, int] | None = None) -> dict[str, Any]:
    """Tiled, sparse, uncompressed BigTIFF on the image grid (or on rows ``[y0, y1)`` of it).

    Uncompressed because the scratch is read once, by ``finalize``: even zstd level 1 made
    writing it 6x slower (0.84 s against 0.13 s for a 4096² class raster on 2 cores), which put
    the writer thread on the critical path. It costs one byte per pixel and band of disk space
    until the COG is written.
    """
    height, transform = int(profile["height"]), profile["transform"]
    if rows is not None:
        height, transform = rows[1] - rows[0], transform * Affine.translation(0, rows[0])
    return {
        "driver": "GTiff", "crs": profile["crs"], "transform": transform,
        "width": int(profile["width"]), "height": height, "dtype": "uint8", "nodata": NODATA,
        "tiled": True, "blockxsize": block, "blockysize": block, "BIGTIFF": "YES",
        "compress": "none", "interleave": "band", "sparse_ok": True,
    }


def create_scratch(layers: list[OutputLayer], profile: dict[str, Any]) -> None:
    """Empty scratch files carrying each layer's colour map, band descriptions and tags."""
    for layer in layers:
        layer.scratch.parent.mkdir(parents=True, exist_ok=True)
        # Several bands are values, not colours: GDAL's default for 3 or 4 Byte bands is RGB(A), which flags
        # the 4th band of a 4-class probability raster alpha (QGIS: that class's probability as transparency)
        grey = {"photometric": "MINISBLACK"} if layer.count > 1 else {}
        with warnings.catch_warnings():  # an image without georeferencing (--pixel-grid) says so once, itself
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            dst = rasterio.open(layer.scratch, "w", count=layer.count, **profile, **grey)
        with dst:
            if layer.colormap:
                dst.write_colormap(1, layer.colormap)
            for i, d in enumerate(layer.descriptions, start=1):
                dst.set_band_description(i, d)
            dst.update_tags(**layer.tags)
            if layer.scale is not None:
                dst.scales = (layer.scale,) * layer.count


def overview_factors(width: int, height: int, smallest: int = 256) -> list[int]:
    """2, 4, 8, ... down to about ``smallest`` px; at least one level, unless the raster is one pixel
    wide or high (its 'overview' would be no smaller: an invalid COG to rio-cogeo)."""
    if min(width, height) < 2:  # a 1 x 5000 raster's overviews are 1 x 2500: decimation 1 across, an invalid COG
        return []
    factors, f = [], 2
    while max(width, height) / f >= smallest / 2 and f <= 2 ** 16:
        factors.append(f)
        f *= 2
    return factors or ([2] if min(width, height) >= 2 else [])


DEFLATE_LEVEL = 5


def creation_options(compress: str = "deflate", co: dict[str, str] | None = None) -> dict[str, Any]:
    """COG creation options: ours, then the user's ``--co KEY=VALUE`` on top (GDAL's names).

    Deflate at level 5, not GDAL's 6, and no predictor: every layer is uint8 classes or scaled
    probabilities, mostly runs of equal values. Measured on 2 CPU cores (GDAL's libdeflate): a
    4096² class raster took 0.096 s at level 6 and 0.047 s at level 5 (907 and 1021 KiB); a 2048²
    6-band probability raster 0.66 s at level 6 with horizontal differencing (the default before)
    and 0.21 s at level 5 without (7.3 and 7.6 MB). Without the predictor the example scene's
    probabilities were smaller (5.2 against 5.7 MB at level 6). The COG is the last, serial step of
    a run, so its seconds are the user's; ``--co LEVEL=9`` when size matters more.
    """
    options: dict[str, Any] = {"COMPRESS": compress.upper(), "BIGTIFF": "IF_SAFER", "OVERVIEWS": "FORCE_USE_EXISTING",
                               "BLOCKSIZE": 512, "NUM_THREADS": "ALL_CPUS"}
    if compress.lower() == "deflate":
        options["LEVEL"] = DEFLATE_LEVEL
    if compress.lower() in ("deflate", "zstd", "lzw"):
        options["PREDICTOR"] = "NO"
    for key, value in (co or {}).items():
        options[key.upper()] = value
    return options


def _predictor(value: str) -> str | None:
    """The COG driver's PREDICTOR value as GTiff's (our rasters are integers: YES is horizontal differencing)."""
    value = str(value).upper()
    return {"YES": "2", "TRUE": "2", "ON": "2", "STANDARD": "2", "FLOATING_POINT": "3",
            "NO": None, "FALSE": None, "OFF": None}.get(value, value)


def cog_as_gtiff(options: dict[str, Any], count: int) -> tuple[dict[str, Any], dict[str, str]]:
    """COG creation options as the GTiff options and GDAL config options of the COG driver's last step.

    GDAL's COG driver writes through GTiff's ``COPY_SRC_OVERVIEWS`` copy but cannot be given
    ``PHOTOMETRIC``: GTiff then tags any 3 or 4 Byte bands RGB (and a 4th band alpha). GDAL reads
    our band meanings from its own metadata, but readers that trust the TIFF tag (ArcGIS,
    tifffile, web COG viewers) showed a semantic change raster as a colour composite and a
    4-class probability raster with class 4 as transparency. Several bands are written
    ``MINISBLACK`` here; one band keeps GTiff's default (a palette where it has a colour table).
    ``OVERVIEW_COUNT`` and ``STATISTICS`` are applied by :func:`finalize` itself.
    """
    compress = str(options.get("COMPRESS", "NONE")).upper()
    block = str(options.get("BLOCKSIZE", 512))
    gtiff: dict[str, Any] = {"COPY_SRC_OVERVIEWS": "YES", "TILED": "YES", "BLOCKXSIZE": block, "BLOCKYSIZE": block,
                             "COMPRESS": compress, "INTERLEAVE": "PIXEL"}
    if count > 1:
        gtiff["PHOTOMETRIC"] = "MINISBLACK"
    level = {"DEFLATE": "ZLEVEL", "ZSTD": "ZSTD_LEVEL"}.get(compress)  # (GDAL applies no LZMA_PRESET in this copy)
    if level and "LEVEL" in options:
        gtiff[level] = options["LEVEL"]
    predictor = _predictor(options.get("PREDICTOR", "NO"))
    if predictor is not None:
        gtiff["PREDICTOR"] = predictor
    for key in ("BIGTIFF", "NUM_THREADS", "GEOTIFF_VERSION", "SPARSE_OK"):
        if key in options:
            gtiff[key] = options[key]
    config = {"COMPRESS_OVERVIEW": str(options.get("OVERVIEW_COMPRESS", compress)).upper()}
    overview_predictor = _predictor(options.get("OVERVIEW_PREDICTOR", "NO"))
    if overview_predictor is not None:
        config["PREDICTOR_OVERVIEW"] = overview_predictor
    return gtiff, config


def finalize(layer: OutputLayer, *, compress: str = "deflate", dest: Path | None = None,
             co: dict[str, str] | None = None, pam_dest: Path | None = None) -> Path:
    """Overviews on the scratch, then the COG at ``dest`` (a scratch name from ``publish``), and the layer's
    category names at ``pam_dest`` (the scratch name of its companion ``.aux.xml``).

    Without ``dest`` the COG is published on its own at the layer's path, with its companion (scratch removed).
    The overview levels are made in NumPy (:func:`rsmamba.engine.overviews.build_overviews`);
    GDAL compresses the COG's tiles on all CPUs (``NUM_THREADS``).
    """
    options = creation_options(compress, co)
    with rasterio.open(layer.scratch) as src:
        factors = overview_factors(src.width, src.height)
    if "OVERVIEW_COUNT" in options:
        factors = factors[:int(options["OVERVIEW_COUNT"])]
    build_overviews(layer.scratch, factors, NODATA, layer.overview_method)
    if str(options.get("STATISTICS", "")).upper() in ("YES", "TRUE", "ON"):
        with rasterio.open(layer.scratch, "r+") as dst:  # the scratch's band metadata, which the copy keeps
            for band, stats in enumerate(dst.stats(approx=False), start=1):
                dst.update_tags(band, STATISTICS_MINIMUM=stats.min, STATISTICS_MAXIMUM=stats.max,
                                STATISTICS_MEAN=stats.mean, STATISTICS_STDDEV=stats.std)
    gtiff, config = cog_as_gtiff(options, layer.count)
    with rasterio.Env(GDAL_NUM_THREADS=str(options.get("NUM_THREADS", "ALL_CPUS")), **config):
        if dest is not None:
            if layer.categories and pam_dest is None:
                raise ValueError(f"finalize: {layer.path} names its values: publish its companions too")
            rasterio.shutil.copy(layer.scratch, dest, driver="GTiff", **gtiff)
            if layer.categories:
                pam_dest.write_text(pam_categories(layer.categories), encoding="utf-8")
            return dest
        with publish([layer.path], companions=layer.companions, overwrite=True) as pub:
            rasterio.shutil.copy(layer.scratch, pub[layer.path], driver="GTiff", **gtiff)
            if layer.categories:
                pub[pam_path(layer.path)].write_text(pam_categories(layer.categories), encoding="utf-8")
    for p in layer.scratch_files:
        with contextlib.suppress(FileNotFoundError):
            os.remove(p)
    return layer.path


def finalize_all(layers: list[OutputLayer], pub: Publication, *, compress: str = "deflate",
                 co: dict[str, str] | None = None) -> list[Path]:
    """:func:`finalize` every layer into its scratch name of ``pub`` (its companions' too), the layers side by side
    on threads (GDAL releases the GIL)."""
    def one(layer: OutputLayer) -> Path:
        return finalize(layer, compress=compress, dest=pub[layer.path], co=co,
                        pam_dest=pub[pam_path(layer.path)] if layer.companions else None)

    if len(layers) == 1:
        return [one(layers[0])]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(layers), thread_name_prefix="rsmamba-cog") as pool:
        return list(pool.map(one, layers))
