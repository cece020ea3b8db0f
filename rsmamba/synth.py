"""Synthetic two-epoch aerial scenes: orthophotos, DSMs, ISPRS-style labels, building footprints.

Tests, demos and benchmarks need georeferenced scenes with exact ground truth and no downloads.
The generator lays out a small town (a rotated road network, buildings of varied shapes and
orientations, paved yards, trees, cars, clutter), renders it to an orthophoto with per-object
colour, hillshading, cast shadows and texture noise, and builds a matching DSM. A second epoch
demolishes and adds buildings, moves cars, changes some trees and shifts illumination, so that
change detection has exact reference rasters and polygons.

Everything is vectorised numpy + ``rasterio.features.rasterize`` of shapely polygons; a
2048 x 2048 scene takes a few seconds on one core. The same seed gives the same scene.

:func:`generate_scene` returns arrays and polygons (no I/O); :func:`write_scene` writes them as
tiled, compressed GeoTIFFs and GeoPackages, each atomically.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize
from shapely import affinity
from shapely.geometry import Polygon, box

from rsmamba.atomic import publish
from rsmamba.classes import IGNORE_INDEX, ISPRS_CLASSES, colormap
from rsmamba.errors import InputError, ProblemCollector

IMPERVIOUS, BUILDING, LOW_VEGETATION, TREE, CAR, CLUTTER = range(6)

BAND_SETS: dict[str, tuple[str, ...]] = {
    "rgb": ("red", "green", "blue"),
    "irrg": ("nir", "red", "green"),
    "rgbn": ("red", "green", "blue", "nir"),
}
DSM_NODATA = -9999.0
ORTHO_NODATA = 0
DEFAULT_ORIGIN = (500_000.0, 5_000_000.0)
SCENE_FORMAT = 1
MIN_SIDE_M = 32.0

# Reflectances (R, G, B, NIR) in 0..1. Some roofs are deliberately asphalt- or concrete-like,
# so colour alone cannot separate buildings from roads: the DSM has to help.
ROOF_PALETTE = np.array(
    [
        (0.62, 0.32, 0.24, 0.40),  # terracotta tiles
        (0.55, 0.28, 0.22, 0.38),  # darker tiles
        (0.30, 0.30, 0.33, 0.30),  # dark slate
        (0.40, 0.40, 0.42, 0.33),  # asphalt-like flat roof (similar to roads)
        (0.58, 0.57, 0.55, 0.42),  # concrete (similar to paved yards)
        (0.78, 0.78, 0.76, 0.55),  # white membrane
        (0.45, 0.36, 0.28, 0.36),  # brown
        (0.36, 0.45, 0.42, 0.34),  # green-grey metal
    ],
    dtype=np.float32,
)
CAR_PALETTE = np.array(
    [(0.85, 0.85, 0.85, 0.5), (0.08, 0.08, 0.09, 0.1), (0.7, 0.1, 0.1, 0.3), (0.1, 0.2, 0.6, 0.2),
     (0.6, 0.62, 0.65, 0.4), (0.9, 0.8, 0.2, 0.5)],
    dtype=np.float32,
)
ASPHALT = np.array((0.37, 0.37, 0.39, 0.30), dtype=np.float32)
PAVING = np.array((0.56, 0.54, 0.50, 0.38), dtype=np.float32)
GRASS = np.array((0.33, 0.45, 0.20, 0.62), dtype=np.float32)
DRY_GRASS = np.array((0.55, 0.50, 0.34, 0.45), dtype=np.float32)
TREE_GREEN = np.array((0.16, 0.29, 0.11, 0.70), dtype=np.float32)


@dataclass
class Building:
    """One building footprint (scene CRS) with what the DSM and the orthophoto need."""

    id: int
    polygon: Polygon
    shape: str  # rect | L | U | courtyard
    angle: float  # degrees, counter-clockwise
    centre: tuple[float, float]
    length: float  # along the building's local x axis (metres)
    width: float  # along its local y axis
    height: float  # eave height above ground (metres)
    roof: str  # flat | gable
    ridge_rise: float
    roof_color: int  # index in ROOF_PALETTE


@dataclass
class Trees:
    """Round tree crowns: centres (scene CRS), radii and heights in metres, colour tone."""

    x: np.ndarray
    y: np.ndarray
    radius: np.ndarray
    height: np.ndarray
    tone: np.ndarray

    def subset(self, keep: np.ndarray) -> Trees:
        return Trees(self.x[keep], self.y[keep], self.radius[keep], self.height[keep], self.tone[keep])

    def concat(self, other: Trees) -> Trees:
        return Trees(*(np.concatenate([a, b]) for a, b in zip(self.arrays(), other.arrays())))

    def arrays(self) -> tuple[np.ndarray, ...]:
        return self.x, self.y, self.radius, self.height, self.tone

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class Layout:
    """Everything standing in one epoch, as geometry."""

    buildings: list[Building]
    paved: list[Polygon]  # yards, driveways, demolition slabs
    bare: list[Polygon]  # demolished plots turned to grass/soil
    trees: Trees
    cars: list[tuple[Polygon, int]]
    clutter: list[tuple[Polygon, float, np.ndarray]]


@dataclass
class Epoch:
    """One rendered epoch: orthophoto (bands, H, W) uint8, DSM float32 metres, labels uint8."""

    ortho: np.ndarray
    dsm: np.ndarray
    labels: np.ndarray
    buildings: list[Building]
    sun_azimuth: float
    sun_elevation: float
    gain: tuple[float, ...]
    gamma: float
    instances: np.ndarray | None = None  # int32 building id per pixel, 0 = no building (issue #17)


@dataclass
class Scene:
    """A synthetic two-epoch scene: arrays, polygons and georeferencing, no files."""

    size: int
    gsd: float
    seed: int
    epsg: int
    transform: Affine
    bands: tuple[str, ...]
    t1: Epoch
    t2: Epoch
    change: np.ndarray  # uint8: 1 where a building was added or demolished, 0 elsewhere
    valid: np.ndarray  # bool: inside the image footprint (all True without a nodata collar)
    ground: np.ndarray  # float32 bare-earth terrain (DTM), metres
    added: list[Building]
    removed: list[Building]
    options: dict = field(default_factory=dict)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        left, top = self.transform.c, self.transform.f
        return left, top - self.size * self.gsd, left + self.size * self.gsd, top

    def describe(self) -> dict:
        """The ``scene.json`` content: how the scene was made and what it holds."""

        def fractions(labels: np.ndarray) -> dict[str, float]:
            counts = np.bincount(labels[self.valid].ravel(), minlength=256)
            total = max(int(counts[: len(ISPRS_CLASSES)].sum()), 1)
            return {c.name: round(float(counts[c.id]) / total, 4) for c in ISPRS_CLASSES}

        def epoch(e: Epoch) -> dict:
            return {
                "sun_azimuth_deg": round(e.sun_azimuth, 2),
                "sun_elevation_deg": round(e.sun_elevation, 2),
                "gain": [round(g, 4) for g in e.gain],
                "gamma": round(e.gamma, 4),
                "buildings": len(e.buildings),
                "class_fractions": fractions(e.labels),
            }

        return {
            "format": SCENE_FORMAT,
            "generator": "rsmamba.synth",
            "seed": self.seed,
            "size": self.size,
            "gsd": self.gsd,
            "epsg": self.epsg,
            "crs": f"EPSG:{self.epsg}",
            "transform": list(self.transform)[:6],
            "bounds": list(self.bounds),
            "bands": list(self.bands),
            "classes": [c.to_dict() for c in ISPRS_CLASSES],
            "ignore_index": IGNORE_INDEX,
            "t1": epoch(self.t1),
            "t2": epoch(self.t2),
            "buildings_added": len(self.added),
            "buildings_removed": len(self.removed),
            "added_ids": [b.id for b in self.added],
            "removed_ids": [b.id for b in self.removed],
            "change_fraction": round(float(self.change[self.valid].mean()), 5) if self.valid.any() else 0.0,
            "valid_fraction": round(float(self.valid.mean()), 5),
            "options": self.options,
        }


# --------------------------------------------------------------------------------------------
# Noise fields


def smooth_field(shape: tuple[int, int], cell: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth random field in about [-1, 1]: a coarse random grid, interpolated with a smoothstep.

    Separable two-knot blends (columns on the coarse rows, then rows), so a 2048 x 2048 field costs milliseconds.
    """
    h, w = shape
    gh, gw = int(math.ceil(h / cell)) + 2, int(math.ceil(w / cell)) + 2
    grid = rng.uniform(-1.0, 1.0, size=(gh, gw)).astype(np.float32)

    def knots(n: int, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = (np.arange(n, dtype=np.float32) + 0.5) / cell + 0.5
        i0 = np.floor(pos).astype(int)
        t = pos - i0
        return i0, np.minimum(i0 + 1, g - 1), (t * t * (3 - 2 * t)).astype(np.float32)

    c0, c1, tc = knots(w, gw)
    across = grid[:, c0] * (1 - tc) + grid[:, c1] * tc  # (gh, w)
    r0, r1, tr = knots(h, gh)
    out = across[r0]
    out *= (1 - tr)[:, None]
    out += across[r1] * tr[:, None]
    return out


def fractal_field(shape: tuple[int, int], cell: float, rng: np.random.Generator, octaves: int = 3) -> np.ndarray:
    """Sum of smooth fields at halving scales: texture with detail at several sizes."""
    out = np.zeros(shape, dtype=np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        out += amp * smooth_field(shape, max(cell, 1.5), rng)
        total += amp
        amp *= 0.5
        cell /= 2
    return out / total


# --------------------------------------------------------------------------------------------
# Layout (geometry in the scene CRS)


class _Obstacles:
    """Placed polygons with a bounding-box pre-filter, for fast 'does this candidate collide?'."""

    def __init__(self) -> None:
        self.geoms: list[Polygon] = []
        self.boxes = np.empty((0, 4))
        self.discs = np.empty((0, 3))  # x, y, radius of a disc inside each object

    def add(self, geom, disc: tuple[float, float, float] | None = None) -> None:
        self.geoms.append(geom)
        self.boxes = np.vstack([self.boxes, np.asarray(geom.bounds)[None]])
        if disc is not None:
            self.discs = np.vstack([self.discs, np.asarray(disc)[None]])

    def hits_disc(self, x: float, y: float, r: float) -> bool:
        """True when a disc of radius ``r`` at (x, y) touches a placed object (no buffering needed)."""
        if not self.geoms:
            return False
        b = self.boxes
        near = (b[:, 0] <= x + r) & (b[:, 2] >= x - r) & (b[:, 1] <= y + r) & (b[:, 3] >= y - r)
        if not near.any():
            return False
        point = shapely.Point(x, y)
        return any(point.distance(self.geoms[i]) <= r for i in np.flatnonzero(near))

    def covers_disc(self, x: float, y: float, r: float) -> bool:
        """True when a disc of radius ``r`` at (x, y) surely overlaps a placed object's inner disc."""
        if not len(self.discs):
            return False
        d = np.hypot(self.discs[:, 0] - x, self.discs[:, 1] - y)
        return bool((d < self.discs[:, 2] + r).any())

    def hits(self, geom, gap: float = 0.0) -> bool:
        if not self.geoms:
            return False
        x0, y0, x1, y1 = geom.bounds
        b = self.boxes
        near = (b[:, 0] <= x1 + gap) & (b[:, 2] >= x0 - gap) & (b[:, 1] <= y1 + gap) & (b[:, 3] >= y0 - gap)
        for i in np.flatnonzero(near):
            if geom.distance(self.geoms[i]) <= gap if gap > 0 else geom.intersects(self.geoms[i]):
                return True
        return False


def _footprint_rings(shape: str, length: float, width: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Exterior ring (and a courtyard's hole) of a footprint centred on (0, 0), local frame, counter-clockwise."""
    x0, x1, y0, y1 = -length / 2, length / 2, -width / 2, width / 2
    if shape == "L":  # the top-right corner cut away
        xc, yc = x0 + rng.uniform(0.4, 0.65) * length, y0 + rng.uniform(0.4, 0.65) * width
        return [np.array([(x0, y0), (x1, y0), (x1, yc), (xc, yc), (xc, y1), (x0, y1)])]
    if shape == "U":  # a notch open to the top
        arm, depth = rng.uniform(0.25, 0.35) * length, rng.uniform(0.4, 0.65) * width
        yn = y1 - depth
        return [np.array([(x0, y0), (x1, y0), (x1, y1), (x1 - arm, y1), (x1 - arm, yn), (x0 + arm, yn), (x0 + arm, y1), (x0, y1)])]
    outer = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    if shape == "courtyard":
        ring = min(length, width) * rng.uniform(0.22, 0.32)
        hole = np.array([(x0 + ring, y0 + ring), (x0 + ring, y1 - ring), (x1 - ring, y1 - ring), (x1 - ring, y0 + ring)])
        return [outer, hole]
    return [outer]


def _roads(extent: tuple[float, float, float, float], rng: np.random.Generator) -> tuple[list, list[Polygon], float]:
    """A rotated street grid with a diagonal avenue: centre lines, road polygons, street angle."""
    x0, y0, x1, y1 = extent
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = math.hypot(x1 - x0, y1 - y0) / 2 + 10
    angle = float(rng.uniform(0, 90))
    lines, polys = [], []
    for axis in (0, 1):
        spacing = rng.uniform(55, 95)
        offsets = np.arange(-half + rng.uniform(0, spacing), half, spacing)
        for off in offsets:
            if rng.random() < 0.15:
                continue
            off += rng.normal(0, 3)
            line = shapely.LineString([(-half, off), (half, off)] if axis == 0 else [(off, -half), (off, half)])
            line = affinity.translate(affinity.rotate(line, angle, origin=(0, 0)), cx, cy)
            lines.append(line)
            polys.append(line.buffer(rng.uniform(2.5, 4.5), cap_style="flat"))
    if rng.random() < 0.8:  # one avenue at an arbitrary angle
        a = math.radians(rng.uniform(0, 180))
        d = rng.uniform(-0.3, 0.3) * half
        ox, oy = cx - d * math.sin(a), cy + d * math.cos(a)
        line = shapely.LineString([(ox - half * math.cos(a), oy - half * math.sin(a)), (ox + half * math.cos(a), oy + half * math.sin(a))])
        lines.append(line)
        polys.append(line.buffer(rng.uniform(4.0, 6.0), cap_style="flat"))
    return lines, polys, angle


class _RoadDistance:
    """Distance to the nearest road edge on a 1 m grid: a cheap first test for building candidates."""

    def __init__(self, roads: list[Polygon], extent, cap: float = 30.0) -> None:
        x0, y0, x1, y1 = extent
        self.x0, self.y1 = x0, y1
        n_x, n_y = int(math.ceil(x1 - x0)) + 1, int(math.ceil(y1 - y0)) + 1
        transform = Affine(1.0, 0.0, x0, 0.0, -1.0, y1)
        mask = rasterize([(p, 1) for p in roads], out_shape=(n_y, n_x), transform=transform, fill=0, dtype="uint8") if roads else np.zeros((n_y, n_x), np.uint8)
        self.dist = _chamfer_distance(mask > 0, cap)

    def at(self, x: float, y: float) -> float:
        r = min(max(int(self.y1 - y), 0), self.dist.shape[0] - 1)
        c = min(max(int(x - self.x0), 0), self.dist.shape[1] - 1)
        return float(self.dist[r, c])


def _chamfer_distance(mask: np.ndarray, cap: float) -> np.ndarray:
    """Approximate distance (cells) to the nearest True cell, by repeated 8-neighbour relaxation up to ``cap``."""
    dist = np.where(mask, 0.0, cap).astype(np.float32)
    h, w = dist.shape
    moves = [(dy, dx, math.hypot(dy, dx)) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    for _ in range(int(cap)):
        before = dist.copy()
        for dy, dx, cost in moves:
            dst = dist[max(dy, 0): h + min(dy, 0), max(dx, 0): w + min(dx, 0)]
            src = before[max(-dy, 0): h + min(-dy, 0), max(-dx, 0): w + min(-dx, 0)]
            np.minimum(dst, src + np.float32(cost), out=dst)
        if np.array_equal(before, dist):
            break
    return dist


SHAPES = ("rect", "L", "U", "courtyard")
SHAPE_CUMULATIVE = np.cumsum((0.5, 0.22, 0.14))  # rect, L, U; the rest courtyards


def _place_building(
    bid: int, extent, street_angle: float, roads, road_distance: _RoadDistance, obstacles: _Obstacles,
    rng: np.random.Generator, max_side: float,
) -> Building | None:
    """Try a few random candidates; return the first that fits between roads and buildings.

    Cheap numeric tests (distance to road of the centre, inscribed discs of placed objects) reject
    most candidates before any polygon is built.
    """
    x0, y0, x1, y1 = extent
    for _ in range(12):
        shape = SHAPES[int(np.searchsorted(SHAPE_CUMULATIVE, rng.random(), side='right'))]
        lo = {"rect": 8.0, "L": 14.0, "U": 14.0, "courtyard": 22.0}[shape]
        hi = max_side
        if hi < lo:
            shape, lo = "rect", min(8.0, hi)
        length = float(rng.uniform(lo, hi))
        width = min(max(length * rng.uniform(0.45, 1.0), min(lo, hi)), hi)
        cx, cy = float(rng.uniform(x0 + 2, x1 - 2)), float(rng.uniform(y0 + 2, y1 - 2))
        inner = min(length, width) / 2
        if road_distance.at(cx, cy) < inner + 2.0 or obstacles.covers_disc(cx, cy, inner):
            continue
        if rng.random() < 0.7:
            angle = street_angle + 90 * int(rng.integers(0, 4)) + rng.normal(0, 2.0)
        else:
            angle = float(rng.uniform(0, 180))
        cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        rings = [r @ np.array([[cos, sin], [-sin, cos]]) + (cx, cy) for r in _footprint_rings(shape, length, width, rng)]
        (bx0, by0), (bx1, by1) = rings[0].min(axis=0), rings[0].max(axis=0)
        if bx0 < x0 + 1 or by0 < y0 + 1 or bx1 > x1 - 1 or by1 > y1 - 1:
            continue
        poly = Polygon(rings[0], rings[1:])
        if shapely.dwithin(roads, poly, 2.0) or obstacles.hits(poly, gap=2.0):
            continue
        height = min(max(rng.lognormal(math.log(7.0), 0.45), 3.0), 30.0)
        roof = "gable" if shape == "rect" and rng.random() < 0.55 else "flat"
        rise = float(rng.uniform(0.15, 0.3) * min(length, width)) if roof == "gable" else 0.0
        return Building(
            id=bid, polygon=poly, shape=shape, angle=float(angle), centre=(cx, cy), length=length,
            width=width, height=height, roof=roof, ridge_rise=rise, roof_color=int(rng.integers(0, len(ROOF_PALETTE))),
        )
    return None


def _place_trees(count: int, extent, lines, obstacles: _Obstacles, rng: np.random.Generator, road_union) -> Trees:
    """Street trees along road edges and clustered garden trees, never touching a building."""
    x0, y0, x1, y1 = extent
    xs, ys, rs = [], [], []
    centres = rng.uniform((x0, y0), (x1, y1), size=(max(count // 6, 1), 2))
    tries = 0
    while len(xs) < count and tries < count * 6:
        tries += 1
        r = min(max(rng.normal(3.0, 1.0), 1.5), 6.0)
        if lines and rng.random() < 0.4:
            line = lines[rng.integers(len(lines))]
            p = line.interpolate(rng.uniform(0, line.length))
            (ax, ay), (bx, by) = line.coords[0], line.coords[-1]
            n = math.hypot(bx - ax, by - ay)
            side = rng.choice([-1, 1]) * (rng.uniform(4.5, 7.5) + r * 0.5)
            x, y = p.x - side * (by - ay) / n, p.y + side * (bx - ax) / n
        else:
            c = centres[rng.integers(len(centres))]
            x, y = c + rng.normal(0, 12, size=2)
        if not (x0 < x < x1 and y0 < y < y1):
            continue
        if obstacles.hits_disc(x, y, r + 1.0):
            continue
        if road_union.contains(shapely.Point(x, y)):
            continue
        xs.append(x), ys.append(y), rs.append(r)
    n = len(xs)
    radius = np.asarray(rs, dtype=np.float32)
    height = np.clip(radius * rng.uniform(1.6, 2.8, n) + rng.normal(0, 1, n), 3.0, 20.0).astype(np.float32)
    return Trees(np.asarray(xs), np.asarray(ys), radius, height, rng.uniform(0.75, 1.2, n).astype(np.float32))


def _inner_radius(b: Building) -> float:
    """Radius of a disc around the centre that lies inside the footprint (0 when it has a hole)."""
    if b.shape == "courtyard":
        return 0.0
    if b.shape == "rect":
        return min(b.length, b.width) / 2 * 0.98
    return min(b.length, b.width) * 0.2


def _tree_obstacles(trees: Trees, obstacles: _Obstacles) -> None:
    for x, y, r in zip(trees.x, trees.y, trees.radius):
        obstacles.add(shapely.Point(x, y).buffer(float(r), quad_segs=6), (float(x), float(y), float(r) * 0.95))


def _place_cars(count: int, lines, roads_union, avoid: _Obstacles, rng: np.random.Generator, extent) -> list[tuple[Polygon, int]]:
    """Cars in lanes, aligned with their road, not under trees nor overlapping each other."""
    cars: list[tuple[Polygon, int]] = []
    placed = _Obstacles()
    x0, y0, x1, y1 = extent
    for _ in range(count * 4):
        if len(cars) >= count or not lines:
            break
        line = lines[rng.integers(len(lines))]
        p = line.interpolate(rng.uniform(0, line.length))
        if not (x0 + 3 < p.x < x1 - 3 and y0 + 3 < p.y < y1 - 3):
            continue
        (ax, ay), (bx, by) = line.coords[0], line.coords[-1]
        heading = math.degrees(math.atan2(by - ay, bx - ax))
        n = math.hypot(bx - ax, by - ay)
        lane = rng.choice([-1, 1]) * rng.uniform(1.2, 1.8)
        x, y = p.x - lane * (by - ay) / n, p.y + lane * (bx - ax) / n
        car = affinity.translate(
            affinity.rotate(box(-2.25, -0.9, 2.25, 0.9), heading + rng.normal(0, 2), origin=(0, 0)), x, y
        )
        if not roads_union.contains(car) or avoid.hits(car, gap=0.3) or placed.hits(car, gap=0.8):
            continue
        placed.add(car)
        cars.append((car, int(rng.integers(len(CAR_PALETTE)))))
    return cars


def _place_clutter(count: int, extent, obstacles: _Obstacles, rng: np.random.Generator) -> list:
    """Small odd objects (sheds, containers, heaps): ISPRS 'clutter'."""
    x0, y0, x1, y1 = extent
    out = []
    for _ in range(count * 5):
        if len(out) >= count:
            break
        w, h = rng.uniform(1.5, 5.0), rng.uniform(1.2, 3.0)
        x, y = rng.uniform(x0 + 4, x1 - 4), rng.uniform(y0 + 4, y1 - 4)
        poly = affinity.translate(affinity.rotate(box(-w / 2, -h / 2, w / 2, h / 2), rng.uniform(0, 180), origin=(0, 0)), x, y)
        if obstacles.hits(poly, gap=1.0):
            continue
        obstacles.add(poly)
        color = rng.uniform(0.15, 0.85, 4).astype(np.float32)
        out.append((poly, float(rng.uniform(0.4, 2.5)), color))
    return out


# --------------------------------------------------------------------------------------------
# Rendering


def _pixel_window(bounds, transform: Affine, size: int) -> tuple[slice, slice, np.ndarray, np.ndarray]:
    """Row/col slices covering ``bounds`` and the pixel-centre coordinates inside them."""
    x0, y0, x1, y1 = bounds
    gsd = transform.a
    c0 = max(int(math.floor((x0 - transform.c) / gsd)), 0)
    c1 = min(int(math.ceil((x1 - transform.c) / gsd)), size)
    r0 = max(int(math.floor((transform.f - y1) / gsd)), 0)
    r1 = min(int(math.ceil((transform.f - y0) / gsd)), size)
    xs = transform.c + (np.arange(c0, c1, dtype=np.float32) + 0.5) * gsd
    ys = transform.f - (np.arange(r0, r1, dtype=np.float32) + 0.5) * gsd
    return slice(r0, r1), slice(c0, c1), xs[None, :], ys[:, None]


def _burn(shapes, transform: Affine, size: int, dtype="uint8", fill=0) -> np.ndarray:
    shapes = list(shapes)
    if not shapes:
        return np.full((size, size), fill, dtype=dtype)
    return rasterize(shapes, out_shape=(size, size), transform=transform, fill=fill, dtype=dtype)


def _cast_shadows(dsm: np.ndarray, gsd: float, azimuth: float, elevation: float) -> np.ndarray:
    """Pixels shaded by higher surfaces towards the sun (ray march on a ~0.5 m grid)."""
    f = max(1, int(round(0.5 / gsd)))
    h, w = dsm.shape
    hc, wc = h // f, w // f
    coarse = dsm[: hc * f, : wc * f].reshape(hc, f, wc, f).max(axis=(1, 3)) if f > 1 else dsm
    step = gsd * f
    dx, dy = math.sin(math.radians(azimuth)), -math.cos(math.radians(azimuth))  # towards the sun, image axes
    drop = math.tan(math.radians(elevation)) * step
    relief = float(coarse.max() - np.percentile(coarse, 5))
    steps = int(min(math.ceil(relief / drop), 400))
    top = np.full_like(coarse, -np.inf)
    for k in range(1, steps + 1):
        oy, ox = int(round(k * dy)), int(round(k * dx))
        if abs(oy) >= hc or abs(ox) >= wc:  # the ray left the scene (low sun, small scene): nothing further
            break
        src = coarse[max(oy, 0): hc + min(oy, 0), max(ox, 0): wc + min(ox, 0)]
        dst = top[max(-oy, 0): hc + min(-oy, 0), max(-ox, 0): wc + min(-ox, 0)]
        np.maximum(dst, src - k * drop, out=dst)
    shadow = top > coarse + 0.25
    if f > 1:
        full = np.zeros((h, w), dtype=bool)
        full[: hc * f, : wc * f] = shadow.repeat(f, 0).repeat(f, 1)
        return full
    return shadow


def _hillshade(dsm: np.ndarray, gsd: float, azimuth: float, elevation: float) -> np.ndarray:
    gy, gx = np.gradient(dsm, gsd)
    az, el = math.radians(azimuth), math.radians(elevation)
    # surface normal (-gx, gy, 1) with y pointing north (rows grow southwards)
    sx, sy, sz = math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el)
    shade = (-gx * sx + gy * sy + sz) / np.sqrt(gx * gx + gy * gy + 1)
    return np.clip(shade / sz, 0.0, 1.6).astype(np.float32)


def _render(
    layout: Layout, roads: list[Polygon], ground: np.ndarray, textures: dict[str, np.ndarray], transform: Affine,
    size: int, rng: np.random.Generator, veg_shift: float, bands: list[int], palette: dict | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labels, DSM, a float reflectance image (the ``bands`` of R, G, B, NIR) and building ids for one epoch.

    Each pixel gets a material (an entry of a colour table: one per tree, car, roof...) and a
    multiplicative texture; the image is then one table lookup per band instead of many masked writes.
    """
    labels = np.full((size, size), LOW_VEGETATION, dtype=np.uint8)
    material = np.zeros((size, size), dtype=np.int32)  # 0: meadow (grass/dry mix), others: table rows
    texture = np.ones((size, size), dtype=np.float32)
    pal = palette or {}  # a style's colours (rsmamba.synth_style); the module's own by default
    grass, dry_grass, tree_green = pal.get("grass", GRASS), pal.get("dry_grass", DRY_GRASS), pal.get("tree", TREE_GREEN)
    roofs = pal.get("roofs", ROOF_PALETTE)
    table: list[np.ndarray] = [grass, dry_grass * 0.9 + np.float32(0.03), pal.get("asphalt", ASPHALT), pal.get("paving", PAVING)]
    dsm = ground.copy()

    # Bare plots (demolished, seeded with grass/soil): a distinct brownish tone, still low vegetation.
    ground_cover = _burn([(p, 1) for p in layout.bare] + [(p, 2) for p in roads] + [(p, 3) for p in layout.paved], transform, size)
    material[ground_cover > 0] = ground_cover[ground_cover > 0]
    hard = ground_cover >= 2
    labels[hard] = IMPERVIOUS
    texture[hard] = 1 + 0.08 * textures["asphalt"][hard]

    # Trees: domed crowns, per-tree tone.
    first = len(table)
    t = layout.trees
    table.extend(tree_green * np.float32(tone) for tone in t.tone)
    for i, (x, y, r, h) in enumerate(zip(t.x, t.y, t.radius, t.height)):
        rs, cs, xs, ys = _pixel_window((x - r, y - r, x + r, y + r), transform, size)
        if rs.start >= rs.stop or cs.start >= cs.stop:
            continue
        d2 = ((xs - x) ** 2 + (ys - y) ** 2) / (r * r)
        inside = d2 < 1
        crown = ground[rs, cs] + h * (0.55 + 0.45 * np.sqrt(np.clip(1 - d2, 0, 1)))
        win = dsm[rs, cs]
        np.copyto(win, np.maximum(win, crown), where=inside)
        labels[rs, cs][inside] = TREE
        material[rs, cs][inside] = first + i
        texture[rs, cs][inside] = 1.0

    # Clutter and cars: one rasterize each, value = table row.
    first = len(table)
    table.extend(c[2] for c in layout.clutter)
    table.extend(CAR_PALETTE[c] for _, c in layout.cars)
    things = _burn(
        [(p, first + i) for i, (p, _, _) in enumerate(layout.clutter)]
        + [(p, first + len(layout.clutter) + i) for i, (p, _) in enumerate(layout.cars)],
        transform, size, dtype="int32",
    )
    m = things > 0
    lifts = np.zeros(len(table), dtype=np.float32)
    lifts[first: first + len(layout.clutter)] = [c[1] for c in layout.clutter]
    lifts[first + len(layout.clutter):] = 1.5
    is_car = things >= first + len(layout.clutter)
    labels[m & ~is_car] = CLUTTER
    labels[m & is_car] = CAR
    dsm[m] += lifts[things[m]]
    material[m] = things[m]
    texture[m] = 1.0

    # Buildings last: nothing else overlaps them, so the label equals the rasterised footprints.
    ids = _burn(((b.polygon, b.id) for b in layout.buildings), transform, size, dtype="int32")
    labels[ids > 0] = BUILDING
    for b in layout.buildings:
        rs, cs, xs, ys = _pixel_window(b.polygon.bounds, transform, size)
        mask = ids[rs, cs] == b.id
        if not mask.any():
            continue
        base = float(np.median(ground[rs, cs][mask]))
        roof = np.full(mask.shape, base + b.height, dtype=np.float32)
        a = math.radians(b.angle)
        u = (xs - b.centre[0]) * math.cos(a) + (ys - b.centre[1]) * math.sin(a)
        v = -(xs - b.centre[0]) * math.sin(a) + (ys - b.centre[1]) * math.cos(a)
        if b.roof == "gable":
            across, half = (np.abs(v), b.width / 2) if b.length >= b.width else (np.abs(u), b.length / 2)
            roof += b.ridge_rise * np.clip(1 - across / half, 0, 1)
        dsm[rs, cs][mask] = roof[mask]
        # Roof texture: tile rows or panel seams along the building axis, plus per-building tint.
        if b.roof_color in (0, 1):
            stripes = 1 + 0.05 * np.sin(2 * math.pi * v / rng.uniform(0.6, 1.5))
        else:
            stripes = 1 + 0.02 * np.sign(np.sin(2 * math.pi * u / 4.0))
        table.append(roofs[b.roof_color] * np.float32(rng.uniform(0.88, 1.12)))
        material[rs, cs][mask] = len(table) - 1
        texture[rs, cs][mask] = np.broadcast_to(stripes, mask.shape)[mask]

    colors = np.stack(table).astype(np.float32)
    meadow = material == 0
    dry = np.clip(textures["dry"] + veg_shift, 0, 1)
    refl = np.empty((len(bands), size, size), dtype=np.float32)
    for out, band in enumerate(bands):
        img = colors[:, band][material]
        img *= texture
        mix = grass[band] + (dry_grass[band] - grass[band]) * dry
        np.copyto(img, mix, where=meadow)
        refl[out] = img
    return labels, dsm, refl, ids


def _photograph(
    refl: np.ndarray, dsm: np.ndarray, gsd: float, sun: tuple[float, float], gain: np.ndarray, gamma: float,
    rng: np.random.Generator, textures: dict[str, np.ndarray],
) -> np.ndarray:
    """Reflectance x (hillshade, cast shadows, texture) + sensor noise -> 8-bit, then gain/gamma by lookup table.

    ``refl``, ``gain`` carry one entry per output band; ``refl`` is modified in place.
    """
    az, el = sun
    light = 0.55 + 0.45 * _hillshade(dsm, gsd, az, el)
    light *= 1 + 0.12 * textures["light"]
    shadow = _cast_shadows(dsm, gsd, az, el)
    light[shadow] *= 0.4
    img = refl
    img *= light[None]
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(0.025)
    np.clip(img, 0, 1, out=img)
    img *= 255
    raw = img.astype(np.uint8)
    levels = np.arange(256, dtype=np.float32) / 255
    out = np.empty_like(raw)
    for i in range(len(raw)):
        lut = np.clip(np.round(levels ** np.float32(gamma) * gain[i] * 255), 1, 255).astype(np.uint8)
        out[i] = lut[raw[i]]
    return out


def _nodata_footprint(extent, rng: np.random.Generator) -> Polygon:
    """A rotated rectangle that leaves nodata triangles in the corners, as real ortho mosaics do."""
    x0, y0, x1, y1 = extent
    side = (x1 - x0)
    angle = float(rng.uniform(8, 20)) * rng.choice([-1, 1])
    shrink = 1.0 / (abs(math.cos(math.radians(angle))) + abs(math.sin(math.radians(angle)))) * 1.12
    fp = box(-side / 2 * shrink, -side / 2 * shrink, side / 2 * shrink, side / 2 * shrink)
    return affinity.translate(affinity.rotate(fp, angle, origin=(0, 0)), (x0 + x1) / 2, (y0 + y1) / 2)


# --------------------------------------------------------------------------------------------
# Public API


def _check(size: int, gsd: float, epsg: int, bands: str, dsm_gsd: float | None) -> None:
    problems = ProblemCollector()
    if not isinstance(size, (int, np.integer)) or size < 32:
        problems.add(f"--size must be an integer >= 32 pixels, got {size}")
    if not gsd > 0:
        problems.add(f"--gsd must be positive, got {gsd}")
    elif isinstance(size, (int, np.integer)) and size * gsd < MIN_SIDE_M:
        problems.add(f"the scene must be at least {MIN_SIDE_M:g} m wide to hold buildings; --size {size} x --gsd {gsd} = {size * gsd:g} m")
    if bands not in BAND_SETS:
        problems.add(f"--bands must be one of {', '.join(BAND_SETS)}, got {bands!r}")
    if dsm_gsd is not None and not dsm_gsd > 0:
        problems.add(f"--dsm-gsd must be positive, got {dsm_gsd}")
    try:
        from pyproj import CRS

        if not CRS.from_epsg(epsg).is_projected:
            problems.add(f"--epsg {epsg} is not a projected CRS (the scene is laid out in metres)")
    except Exception:
        problems.add(f"--epsg {epsg} is not a known EPSG code")
    problems.raise_if_any()


def generate_scene(
    size: int = 1024,
    seed: int = 0,
    gsd: float = 0.25,
    *,
    epsg: int = 32632,
    origin: tuple[float, float] = DEFAULT_ORIGIN,
    bands: str = "rgb",
    nodata_collar: bool = False,
    change_rate: float = 0.12,
    terraced: float = 0.0,
    style: Any = None,
) -> Scene:
    """Lay out and render a two-epoch scene in memory (no I/O); deterministic for ``seed``.

    ``origin`` is the (x, y) of the top-left corner in the ``epsg`` CRS. ``bands`` picks the ortho
    bands: ``rgb``, ``irrg`` (NIR, R, G as in ISPRS Vaihingen) or ``rgbn``. ``nodata_collar`` cuts
    the footprint to a rotated rectangle; outside it orthos are 0, labels/change 255, DSM nodata.
    ``terraced`` (0-1) is the share of buildings laid out as terraced rows and perimeter blocks of
    touching houses (:mod:`rsmamba.synth_terraced`); 0 keeps every existing scene unchanged.
    ``style`` (a :class:`rsmamba.synth_style.Style`) changes looks and measurement, not the layout's
    kind; None renders the generator's own look, unchanged.
    """
    _check(size, gsd, epsg, bands, None)
    rng = np.random.default_rng([seed, 0x5E7])
    transform = Affine(gsd, 0.0, float(origin[0]), 0.0, -gsd, float(origin[1]))
    side = size * gsd
    extent = (float(origin[0]), float(origin[1]) - side, float(origin[0]) + side, float(origin[1]))
    shape = (size, size)

    # Terrain: a gentle slope plus a few metres of smooth relief.
    relief_cell = max(size / 3, 2.0)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    slope = rng.normal(0, 0.01, 2).astype(np.float32) * gsd
    ground = (40.0 + 2.5 * smooth_field(shape, relief_cell, rng) + slope[0] * rows + slope[1] * cols).astype(np.float32)
    del rows, cols
    textures = {
        "dry": np.clip(0.5 + 0.8 * fractal_field(shape, 40 / gsd, rng, 3), 0, 1),
        "asphalt": fractal_field(shape, 6 / gsd, rng, 3),
        "light": fractal_field(shape, 20 / gsd, rng, 2),
    }

    lines, roads, street_angle = _roads(extent, rng)
    if style is not None:
        roads = style.widen_roads(roads)
        style_rng = np.random.default_rng([seed, 0x5717E, style.seed])
    road_union = shapely.union_all(roads) if roads else shapely.Polygon()
    shapely.prepare(road_union)
    road_distance = _RoadDistance(roads, extent)
    area = side * side
    max_side = float(min(40.0, side * 0.35))

    obstacles = _Obstacles()
    buildings: list[Building] = []
    target = int(area * 0.24 / 330) + 1
    misses = 0
    if terraced > 0:
        from rsmamba.synth_terraced import place_terraced

        buildings += place_terraced(1, int(round(terraced * target)), extent, street_angle, road_union, obstacles,
                                    rng, max_side)
    while len(buildings) < target and misses < 3 * target + 10:
        b = _place_building(len(buildings) + 1, extent, street_angle, road_union, road_distance, obstacles, rng, max_side)
        if b is None:
            misses += 1
            continue
        buildings.append(b)
        obstacles.add(b.polygon, (*b.centre, _inner_radius(b)))

    paved = []
    for b in buildings:
        if rng.random() < 0.35:
            yard = shapely.oriented_envelope(b.polygon).buffer(rng.uniform(2.0, 4.5), join_style="mitre").difference(b.polygon.buffer(0.01))
            paved.append(yard)

    trees = _place_trees(int(area / 420) + 1, extent, lines, obstacles, rng, road_union)
    tree_obstacles = _Obstacles()
    _tree_obstacles(trees, tree_obstacles)
    for g in tree_obstacles.geoms:
        obstacles.add(g)
    clutter = _place_clutter(int(area / 2500) + 1, extent, obstacles, rng)
    cars_t1 = _place_cars(int(area / 900) + 1, lines, road_union, tree_obstacles, rng, extent)
    layout1 = Layout(buildings, paved, [], trees, cars_t1, clutter)

    # Epoch 2: demolish some, build some, move cars, fell/plant a few trees.
    n_change = max(1, int(round(change_rate * len(buildings)))) if buildings else 0
    removed_idx = set(rng.choice(len(buildings), size=min(n_change, len(buildings)), replace=False).tolist()) if n_change else set()
    removed = [b for i, b in enumerate(buildings) if i in removed_idx]
    added: list[Building] = []
    tries = 0
    while len(added) < max(n_change, 1) and tries < 60 * max(n_change, 1):
        tries += 1
        b = _place_building(len(buildings) + len(added) + 1, extent, street_angle, road_union, road_distance, obstacles, rng, max_side)
        if b is not None:
            added.append(b)
            obstacles.add(b.polygon, (*b.centre, _inner_radius(b)))
    kept = [b for i, b in enumerate(buildings) if i not in removed_idx]
    to_slab = rng.random(len(removed)) < 0.5
    slabs = [b.polygon for b, s in zip(removed, to_slab) if s]
    bare = [b.polygon for b, s in zip(removed, to_slab) if not s]
    added_polys = [b.polygon for b in added]
    paved2 = [p for p in paved if not any(p.intersects(a) for a in added_polys)] + slabs
    fell = rng.random(len(trees)) < 0.06
    new_trees = _place_trees(max(1, len(trees) // 25), extent, lines, obstacles, rng, road_union)
    new_trees.height = new_trees.height * 0.5 + 1.0  # young trees
    new_trees.radius = np.maximum(new_trees.radius * 0.6, 1.2).astype(np.float32)
    trees2 = trees.subset(~fell).concat(new_trees)
    cars_t2 = _place_cars(int(area / 900) + 1, lines, road_union, tree_obstacles, rng, extent)
    layout2 = Layout(kept + added, paved2, bare, trees2, cars_t2, clutter)

    epochs = []
    for layout, veg_shift in ((layout1, 0.0), (layout2, float(rng.uniform(-0.25, 0.25)))):
        sun = (float(rng.uniform(120, 240)), float(rng.uniform(35, 60)))
        gain = np.clip(rng.normal(1.0, 0.07, 4), 0.8, 1.2).astype(np.float32) if epochs else np.ones(4, np.float32)
        gamma = float(rng.uniform(0.8, 1.2)) if epochs else 1.0
        order = [{"red": 0, "green": 1, "blue": 2, "nir": 3}[n] for n in BAND_SETS[bands]]
        if style is not None:
            sun = style.sun_for(len(epochs))
        labels, dsm, refl, ids = _render(layout, roads, ground, textures, transform, size, rng, veg_shift, order,
                                         style.palette if style is not None else None)
        dsm += rng.normal(0, 0.04, shape).astype(np.float32)
        if style is not None:
            refl = style.surface(refl, labels, gsd, style_rng)
        ortho = _photograph(refl, dsm, gsd, sun, gain[order], gamma, rng, textures)
        if style is not None:
            ortho = style.camera(ortho, order, style_rng)
            dsm = style.measure_dsm(dsm, style_rng)
        epochs.append(Epoch(ortho, dsm.astype(np.float32), labels, layout.buildings, sun[0], sun[1],
                            tuple(float(g) for g in gain), gamma, ids))

    change = _burn(((b.polygon, 1) for b in removed + added), transform, size)
    valid = np.ones(shape, dtype=bool)
    if nodata_collar:
        valid = _burn([(_nodata_footprint(extent, rng), 1)], transform, size).astype(bool)
        for e in epochs:
            e.ortho[:, ~valid] = ORTHO_NODATA
            e.labels[~valid] = IGNORE_INDEX
            e.dsm[~valid] = DSM_NODATA
            e.instances[~valid] = 0
        change[~valid] = IGNORE_INDEX

    return Scene(
        size=size, gsd=float(gsd), seed=seed, epsg=epsg, transform=transform, bands=BAND_SETS[bands],
        t1=epochs[0], t2=epochs[1], change=change, valid=valid, ground=ground, added=added, removed=removed,
        options={"bands": bands, "nodata_collar": nodata_collar, "change_rate": change_rate, "origin": list(origin),
                 **({"terraced": terraced} if terraced else {}),
                 **({"style": style.describe()} if style is not None else {})},
    )


# --------------------------------------------------------------------------------------------
# Writing


def _profile(scene: Scene, count: int, dtype: str, nodata, transform: Affine | None = None, width: int | None = None, height: int | None = None) -> dict:
    width = width or scene.size
    height = height or scene.size
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": count, "dtype": dtype,
        "crs": f"EPSG:{scene.epsg}", "transform": transform or scene.transform, "nodata": nodata,
        "compress": "deflate", "predictor": 3 if dtype == "float32" else 2,
    }
    if min(width, height) >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    if count > 1:
        profile["interleave"] = "pixel"
    return profile


def _write_raster(path: Path, array: np.ndarray, profile: dict, *, colors: bool = False, descriptions=None) -> None:
    import rasterio

    array = array if array.ndim == 3 else array[None]
    with rasterio.open(path, "w", **profile) as dst:  # ``path``: a scratch name from ``publish``
        dst.write(array)
        if colors:
            dst.write_colormap(1, colormap(ISPRS_CLASSES))
        if descriptions:
            for i, d in enumerate(descriptions, start=1):
                dst.set_band_description(i, d)


def _write_buildings(path: Path, buildings: list[Building], epsg: int, extra: dict | None = None) -> None:
    import geopandas as gpd

    data = {
        "id": [b.id for b in buildings],
        "class": [BUILDING] * len(buildings),
        "shape": [b.shape for b in buildings],
        "height": [round(b.height, 2) for b in buildings],
        "roof": [b.roof for b in buildings],
    }
    data.update(extra or {})
    frame = gpd.GeoDataFrame(data, geometry=[b.polygon for b in buildings], crs=f"EPSG:{epsg}")
    frame.to_file(path, driver="GPKG", layer="buildings")


def _dsm_on_grid(scene: Scene, dsm: np.ndarray, dsm_gsd: float, shift: tuple[float, float]) -> tuple[np.ndarray, Affine]:
    """Resample the DSM onto a coarser/shifted grid that still covers the scene (alignment tests)."""
    from rasterio.warp import Resampling, reproject

    left, bottom, right, top = scene.bounds
    ox, oy = left - shift[0] * dsm_gsd, top + shift[1] * dsm_gsd
    width = int(math.ceil((right - ox) / dsm_gsd))
    height = int(math.ceil((oy - bottom) / dsm_gsd))
    transform = Affine(dsm_gsd, 0.0, ox, 0.0, -dsm_gsd, oy)
    out = np.full((height, width), DSM_NODATA, dtype=np.float32)
    resampling = Resampling.average if dsm_gsd > scene.gsd else Resampling.bilinear
    reproject(
        dsm, out, src_transform=scene.transform, src_crs=f"EPSG:{scene.epsg}", src_nodata=DSM_NODATA,
        dst_transform=transform, dst_crs=f"EPSG:{scene.epsg}", dst_nodata=DSM_NODATA, resampling=resampling,
    )
    return out, transform


def write_scene(
    out_dir: str | Path,
    size: int = 1024,
    seed: int = 0,
    gsd: float = 0.25,
    epsg: int = 32632,
    *,
    origin: tuple[float, float] = DEFAULT_ORIGIN,
    bands: str = "rgb",
    nodata_collar: bool = False,
    dsm_gsd: float | None = None,
    change_rate: float = 0.12,
    progress: bool = False,
    overwrite: bool = False,
    terraced: float = 0.0,
    instances: bool = False,
    style: Any = None,
) -> dict[str, Path]:
    """Generate a scene and write it to ``out_dir``; returns ``{name: path}`` of every file written.

    Files: ``ortho_t1/t2.tif``, ``dsm_t1/t2.tif``, ``labels_t1/t2.tif`` (colour table),
    ``change.tif``, ``buildings_t1/t2.gpkg``, ``building_changes.gpkg`` and ``scene.json``.
    ``dsm_gsd`` writes the DSMs on a different grid (that resolution, origin shifted by a fraction
    of a pixel) so that readers must align them to the ortho. The files are published together
    (:func:`rsmamba.atomic.publish`); existing ones are refused unless ``overwrite``.
    ``instances`` adds ``instances_t1/t2.tif``: the id of the building (the ``id`` field of
    ``buildings_t*.gpkg``) at each pixel, 0 elsewhere; ``terraced`` see :func:`generate_scene`.
    """
    _check(size, gsd, epsg, bands, dsm_gsd)
    from rsmamba.paths import output_problem

    problem = output_problem(out_dir, role="output folder", directory=True)
    if problem:
        raise InputError(problem)
    from tqdm import tqdm

    out = Path(out_dir)
    scene = generate_scene(size, seed, gsd, epsg=epsg, origin=origin, bands=bands, nodata_collar=nodata_collar,
                           change_rate=change_rate, terraced=terraced, style=style)
    paths: dict[str, Path] = {}
    nodata_ortho = ORTHO_NODATA if nodata_collar else None
    steps = [
        ("ortho_t1", lambda p: _write_raster(p, scene.t1.ortho, _profile(scene, len(scene.bands), "uint8", nodata_ortho), descriptions=scene.bands)),
        ("ortho_t2", lambda p: _write_raster(p, scene.t2.ortho, _profile(scene, len(scene.bands), "uint8", nodata_ortho), descriptions=scene.bands)),
        ("dsm_t1", lambda p: _write_dsm(p, scene, scene.t1.dsm, dsm_gsd)),
        ("dsm_t2", lambda p: _write_dsm(p, scene, scene.t2.dsm, dsm_gsd)),
        ("labels_t1", lambda p: _write_raster(p, scene.t1.labels, _profile(scene, 1, "uint8", IGNORE_INDEX), colors=True)),
        ("labels_t2", lambda p: _write_raster(p, scene.t2.labels, _profile(scene, 1, "uint8", IGNORE_INDEX), colors=True)),
        ("change", lambda p: _write_raster(p, scene.change, _profile(scene, 1, "uint8", IGNORE_INDEX),
                                                 descriptions=["change"])),
        ("buildings_t1", lambda p: _write_buildings(p, scene.t1.buildings, epsg)),
        ("buildings_t2", lambda p: _write_buildings(p, scene.t2.buildings, epsg)),
        ("building_changes", lambda p: _write_buildings(
            p, scene.removed + scene.added, epsg, {"change": ["demolished"] * len(scene.removed) + ["added"] * len(scene.added)})),
    ]
    if instances:
        for key, epoch in (("instances_t1", scene.t1), ("instances_t2", scene.t2)):
            steps.append((key, lambda p, e=epoch: _write_raster(p, e.instances.astype(np.uint32),
                                                               _profile(scene, 1, "uint32", None),
                                                               descriptions=["building_id"])))
    for name, _ in steps:
        paths[name] = out / (f"{name}.gpkg" if name.startswith("building") else f"{name}.tif")
    json_path = out / "scene.json"
    with publish([*paths.values(), json_path], overwrite=overwrite) as pub:
        for name, write in tqdm(steps, desc="synth: writing", unit="file", disable=not progress):
            write(pub[paths[name]])
        info = scene.describe()
        info["options"]["dsm_gsd"] = dsm_gsd
        if instances:
            info["options"]["instances"] = True
        info["files"] = {name: p.name for name, p in paths.items()}
        pub[json_path].write_text(json.dumps(info, indent=2))
    paths["scene"] = json_path
    return paths


def _write_dsm(path: Path, scene: Scene, dsm: np.ndarray, dsm_gsd: float | None) -> None:
    if dsm_gsd is None or (dsm_gsd == scene.gsd):
        _write_raster(path, dsm, _profile(scene, 1, "float32", DSM_NODATA))
        return
    grid, transform = _dsm_on_grid(scene, dsm, dsm_gsd, shift=(0.37, 0.41))
    _write_raster(path, grid, _profile(scene, 1, "float32", DSM_NODATA, transform=transform, width=grid.shape[1], height=grid.shape[0]))
