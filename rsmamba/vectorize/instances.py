"""Split building regions into individual buildings along predicted contacts (issue #17).

A semantic mask merges touching houses into one region. A model trained with instance outputs
(:mod:`rsmamba.train.instances`) also predicts ``p(interior)`` and ``p(contact)``; predict
writes them as extra bands of ``--probabilities``. Here each region is split by a seeded
watershed: seeds are 4-connected groups of pixels with ``p(interior) >= seed_threshold`` (0.5)
and ``p(contact) < 0.5``; every region pixel is flooded from the seeds over
``max(p(contact), 1 - p(interior))`` (uint8, 0-254: a ridge where either output sees a wall; a priority flood with a 256-level FIFO bucket queue, 4-connectivity,
compiled with numba), so regions meet on the contact ridges. A region without a seed stays one
building. (``scipy.ndimage.watershed_ift`` was tried first: it lets labels leak across pixels
outside the mask, so one region's result depended on its neighbours.)

Block-wise and exact: the regions come from the block-wise polygonize with its exact seam merge
(:mod:`.polygonize`); each finished region is then split on a window of its own bounding box.
The flood never leaves a region and, within a region, visits pixels in an order fixed by the
region alone (row-major seeds, FIFO per level), so the result equals :func:`split_whole_raster` on the whole
raster. Memory: one block row plus the bounding box of the largest region.
"""

from __future__ import annotations

import json

import numba
import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio import features
from rasterio.windows import Window
from scipy import ndimage

from rsmamba.errors import InputError
from rsmamba.vectorize.attributes import probability_scale
from rsmamba.vectorize.polygonize import Piece, _polygons_from_geojson

FOUR = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)
HALF = 127  # 0.5 on the 0-254 scale predict stores probabilities on


@numba.njit(cache=True)
def _flood(elevation: np.ndarray, labels: np.ndarray, region: np.ndarray) -> None:
    """Priority flood of ``labels`` (> 0 = seeds, modified in place) over uint8 ``elevation`` inside ``region``.

    A pixel takes the label of the neighbour that reaches it first and enters the queue at
    ``max(its elevation, the current level)``; FIFO within a level, seeds in row-major order.
    """
    h, w = labels.shape
    n = h * w
    nxt = np.full(n, -1, np.int64)
    head = np.full(256, -1, np.int64)
    tail = np.full(256, -1, np.int64)
    for idx in range(n):
        r, c = idx // w, idx % w
        if labels[r, c] > 0:
            lv = elevation[r, c]
            if tail[lv] < 0:
                head[lv] = idx
            else:
                nxt[tail[lv]] = idx
            tail[lv] = idx
    level = 0
    while level < 256:
        p = head[level]
        if p < 0:
            level += 1
            continue
        head[level] = nxt[p]
        if head[level] < 0:
            tail[level] = -1
        r, c = p // w, p % w
        lab = labels[r, c]
        for k in range(4):
            rr, cc = r, c
            if k == 0:
                rr = r - 1
            elif k == 1:
                cc = c - 1
            elif k == 2:
                cc = c + 1
            else:
                rr = r + 1
            if rr < 0 or rr >= h or cc < 0 or cc >= w or not region[rr, cc] or labels[rr, cc] != 0:
                continue
            labels[rr, cc] = lab
            lv = max(int(elevation[rr, cc]), level)
            q = rr * w + cc
            nxt[q] = -1
            if tail[lv] < 0:
                head[lv] = q
            else:
                nxt[tail[lv]] = q
            tail[lv] = q


def split_labels(region: np.ndarray, interior: np.ndarray, contact: np.ndarray, min_seed_px: int = 4,
                 seed_threshold: int = HALF) -> np.ndarray:
    """int32 building labels (0 outside ``region``, 1..n) of a boolean ``region`` raster.

    ``interior`` and ``contact`` are uint8 probabilities on the 0-254 scale; seeds are pixels with
    ``interior >= seed_threshold`` (same scale) and ``contact`` below one half. Seeds smaller than
    ``min_seed_px`` pixels are dropped; each 4-connected part of ``region`` without a seed
    becomes one label of its own (so it stays whole).
    """
    seeds = region & (interior >= seed_threshold) & (contact < HALF)
    markers, n = ndimage.label(seeds, structure=FOUR)
    if n and min_seed_px > 1:
        sizes = np.bincount(markers.ravel(), minlength=n + 1)
        keep = sizes >= min_seed_px
        keep[0] = False
        relabel = np.zeros(n + 1, np.int32)
        relabel[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
        markers, n = relabel[markers], int(keep.sum())
    parts, n_parts = ndimage.label(region, structure=FOUR)
    seeded = np.zeros(n_parts + 1, bool)
    seeded[parts[markers > 0]] = True
    unseeded = region & ~seeded[parts]
    if unseeded.any():  # a part without a seed: the whole part is its own marker
        extra_ids = np.zeros(n_parts + 1, np.int32)
        missing = np.flatnonzero(~seeded[1:]) + 1
        extra_ids[missing] = n + np.arange(1, len(missing) + 1, dtype=np.int32)
        markers = np.where(unseeded, extra_ids[parts], markers).astype(np.int32)
    if not markers.any():
        return np.zeros(region.shape, np.int32)
    labels = np.where(region, markers, 0).astype(np.int32)
    if n > 1 or unseeded.any():  # one seed and nothing else: the region is one building as it is
        ridge = np.maximum(contact, 254 - np.minimum(interior, 254)).astype(np.uint8)
        _flood(ridge, labels, np.ascontiguousarray(region))
    else:
        labels[region] = 1
    return labels


def label_polygons(labels: np.ndarray, row0: int = 0, col0: int = 0) -> list[tuple[int, shapely.Polygon]]:
    """(label, polygon in pixel coordinates) of every 4-connected label region."""
    transform = Affine(1.0, 0.0, float(col0), 0.0, 1.0, float(row0))
    found = list(features.shapes(labels, mask=labels > 0, connectivity=4, transform=transform))
    geoms = _polygons_from_geojson([g for g, _ in found])
    return [(int(v), g) for (_, v), g in zip(found, geoms)]


def split_whole_raster(building: np.ndarray, interior: np.ndarray, contact: np.ndarray,
                       min_seed_px: int = 4, seed_threshold: int = HALF) -> list[shapely.Polygon]:
    """Reference: split every region of a whole in-memory raster at once (tests, small rasters)."""
    return [g for _, g in label_polygons(split_labels(building, interior, contact, min_seed_px, seed_threshold))]


def instance_bands(prob: rasterio.io.DatasetReader) -> tuple[int, int]:
    """1-based bands of ``p(interior)`` and ``p(contact)`` in a probability raster from predict."""
    descriptions = list(prob.descriptions)
    names = {"interior": "p(interior)", "contact": "p(contact)"}
    bands = {k: descriptions.index(v) + 1 for k, v in names.items() if v in descriptions}
    if len(bands) < 2:
        tagged = prob.tags().get("INSTANCE_CHANNELS")
        channels = json.loads(tagged) if tagged else []
        if "interior" in channels and "contact" in channels:
            first = prob.count - len(channels) + 1
            bands = {k: first + channels.index(k) for k in ("interior", "contact")}
    if len(bands) < 2:
        raise InputError(f"{prob.name}: no p(interior) / p(contact) bands; --instances needs the --probabilities "
                         "of a model trained with model.instances: [interior, contact]")
    return bands["interior"], bands["contact"]


class InstanceSplitter:
    """Splits the finished region pieces of the block-wise polygonize into buildings."""

    def __init__(self, prob: rasterio.io.DatasetReader, min_seed_px: int = 4, seed_threshold: float = 0.5):
        self.prob = prob
        self.interior_band, self.contact_band = instance_bands(prob)
        self.min_seed_px = min_seed_px
        self.seed_threshold = int(round(seed_threshold * 254))
        self.largest_window = 0  # pixels of the largest region window read (memory bound)
        # float 0-1 (accepted beside predict's uint8 SCALE=1/254) compared raw with the 0-254 thresholds never
        # reached a seed: a terrace stayed one 250 m2 building, without a word
        self.scale = probability_scale(prob)
        self.as_is = prob.dtypes[self.interior_band - 1] == "uint8" and abs(self.scale * 254 - 1) < 1e-9

    def _on_254_scale(self, values: np.ndarray) -> np.ndarray:
        """Probabilities as predict stores them, uint8 0-254, whatever the raster's type and SCALE."""
        if self.as_is:
            return values
        p = np.nan_to_num(values.astype(np.float64) * self.scale, nan=0.0)
        return np.clip(np.rint(p * 254), 0, 254).astype(np.uint8)

    def _check_range(self, raw: np.ndarray, region: np.ndarray) -> None:
        """Refuse instance bands that are no probabilities under a building region, as the class bands are
        refused (:func:`rsmamba.vectorize.api`'s check): p(contact) x 3 or a NaN p(interior) left terraces
        unsplit, exit 0."""
        for band, values in zip(("p(interior)", "p(contact)"), raw[:, region]):
            if not values.size:
                continue
            if self.prob.nodata is not None and (values == self.prob.nodata).any() or np.isnan(values).any():
                raise InputError(f"--probabilities {self.prob.name}: no data under a building region in band "
                                 f"{band}: not the probabilities of this class raster, or not all of them")
            p = values.astype(np.float64) * self.scale
            if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1 + 1e-6:  # 1e-6: a float32 softmax's rounding
                raise InputError(f"--probabilities {self.prob.name}: {band} values outside 0-1 (max {p.max():g}, "
                                 f"min {p.min():g}) under a building region: not probabilities (float 0-1, or uint8 "
                                 "tagged SCALE=1/254)")

    def _split_one(self, piece: Piece, read_values) -> list[Piece]:
        minx, miny, maxx, maxy = (int(round(v)) for v in piece.geometry.bounds)
        window = Window(minx, miny, maxx - minx, maxy - miny)
        self.largest_window = max(self.largest_window, int(window.width * window.height))
        shape = (int(window.height), int(window.width))
        transform = Affine(1.0, 0.0, float(minx), 0.0, 1.0, float(miny))
        region = features.rasterize([(piece.geometry, 1)], out_shape=shape, transform=transform, fill=0,
                                    dtype="uint8").astype(bool)
        raw = self.prob.read([self.interior_band, self.contact_band], window=window)
        self._check_range(raw, region)
        interior, contact = self._on_254_scale(raw)
        labels = split_labels(region, interior, contact, self.min_seed_px, self.seed_threshold)
        found = label_polygons(labels, miny, minx)
        if len(found) <= 1:
            return [piece]
        values = read_values(window, np.full(shape, piece.key, np.int64)) if read_values is not None else None
        out = []
        for label, geom in found:
            p = Piece(piece.key, geom, int(round(geom.area)))
            if values is not None:
                inside = labels == label
                p.value_sum = float(values[inside].sum())
                p.value_max = float(values[inside].max())
            out.append(p)
        return out

    def __call__(self, pieces: list[Piece], read_values=None) -> list[Piece]:
        out: list[Piece] = []
        for piece in pieces:
            out.extend(self._split_one(piece, read_values))
        return out
