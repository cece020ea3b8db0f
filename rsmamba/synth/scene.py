"""What a synthetic scene is: its classes, palettes, objects and the arrays of both epochs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from affine import Affine
from shapely.geometry import Polygon

from rsmamba.classes import IGNORE_INDEX, ISPRS_CLASSES


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
# Every house, tree and car of the town is placed (memory and time grow with the area: 25 km2 took 106 s and
# 0.5 GB); --gsd 200 of a 1024 px scene, 200 km wide, grew past 21 GB.
MAX_SIDE_M = 10_000.0

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
    roof: str  # flat | gable | hip (hip only from a style's world features)
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
