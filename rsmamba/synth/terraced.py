"""Terraced rows and perimeter blocks of touching houses for synthetic scenes (issue #17).

Why: a semantic building mask merges touching houses into one polygon; a model that separates
them needs training scenes where houses touch. Each house is its own :class:`~rsmamba.synth.Building`
(its own id, eave height and roof colour), so party walls show as DSM steps and colour changes,
and the per-building id raster (``instances_t1.tif``) holds one id per house.

Only :func:`rsmamba.synth.generate_scene` with ``terraced > 0`` calls this module, so scenes of
the existing seeds and options stay byte-identical.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.geometry import Polygon

from rsmamba.synth.scene import ROOF_PALETTE, Building


def _frontages(length: float, rng: np.random.Generator, lo: float = 5.0, hi: float = 9.5) -> list[float]:
    """Split a row of ``length`` metres into house frontages between ``lo`` and ``hi``."""
    n = max(1, int(round(length / rng.uniform(lo + 0.5, hi - 0.5))))
    while n > 1 and length / n < lo:
        n -= 1
    cuts = rng.dirichlet(np.full(n, 6.0)) * length
    cuts = np.clip(cuts, lo * 0.85, None)
    return list(cuts / cuts.sum() * length)


def _row_houses(x0: float, y0: float, along: str, length: float, depth: float, rng: np.random.Generator
                ) -> list[tuple[float, float, float, float]]:
    """Local-frame boxes (x0, y0, x1, y1) of the houses of one row starting at (x0, y0)."""
    boxes, pos = [], 0.0
    for w in _frontages(length, rng):
        if along == "x":
            boxes.append((x0 + pos, y0, x0 + pos + w, y0 + depth))
        else:
            boxes.append((x0, y0 + pos, x0 + depth, y0 + pos + w))
        pos += w
    return boxes


def _block_boxes(rng: np.random.Generator) -> tuple[list[tuple[float, float, float, float]], float, float]:
    """A terraced row or a perimeter block (four rows round a courtyard), centred on (0, 0)."""
    depth = float(rng.uniform(8.0, 11.5))
    if rng.random() < 0.55:
        length = float(rng.uniform(18.0, 48.0))
        boxes = _row_houses(-length / 2, -depth / 2, "x", length, depth, rng)
        return boxes, length, depth
    a, b = float(rng.uniform(2.6, 4.2) * depth), float(rng.uniform(2.6, 4.2) * depth)
    boxes = _row_houses(-a / 2, -b / 2, "x", a, depth, rng)  # bottom row, full width
    boxes += _row_houses(-a / 2, b / 2 - depth, "x", a, depth, rng)  # top row, full width
    inner = b - 2 * depth
    boxes += _row_houses(-a / 2, -b / 2 + depth, "y", inner, depth, rng)  # left side, between them
    boxes += _row_houses(a / 2 - depth, -b / 2 + depth, "y", inner, depth, rng)  # right side
    return boxes, a, b


def place_terraced(
    first_id: int, n_houses: int, extent, street_angle: float, roads, obstacles, rng: np.random.Generator,
    max_side: float,
) -> list[Building]:
    """Terraced rows and perimeter blocks holding about ``n_houses`` touching houses.

    ``obstacles`` (a ``rsmamba.synth._Obstacles``) receives every house; blocks keep 2 m from roads
    and other objects. Neighbouring houses differ in eave height (0.8-2.5 m) and roof colour.
    """
    x0, y0, x1, y1 = extent
    houses: list[Building] = []
    misses = 0
    while len(houses) < n_houses and misses < 300:
        boxes, bw, bh = _block_boxes(rng)
        if max(bw, bh) > max_side * 1.6:
            misses += 1
            continue
        angle = street_angle + 90 * int(rng.integers(0, 4)) + float(rng.normal(0, 1.5))
        cx, cy = float(rng.uniform(x0 + 2, x1 - 2)), float(rng.uniform(y0 + 2, y1 - 2))
        cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        rot = np.array([[cos, sin], [-sin, cos]])

        def place(ring: np.ndarray) -> np.ndarray:
            return ring @ rot + (cx, cy)

        envelope = Polygon(place(np.array([(-bw / 2, -bh / 2), (bw / 2, -bh / 2), (bw / 2, bh / 2), (-bw / 2, bh / 2)])))
        ex0, ey0, ex1, ey1 = envelope.bounds
        if ex0 < x0 + 1 or ey0 < y0 + 1 or ex1 > x1 - 1 or ey1 > y1 - 1:
            misses += 1
            continue
        if shapely.dwithin(roads, envelope, 2.0) or obstacles.hits(envelope, gap=2.0):
            misses += 1
            continue
        base = float(rng.uniform(5.5, 10.0))
        height, colour = base, int(rng.integers(0, len(ROOF_PALETTE)))
        for k, (bx0, by0, bx1, by1) in enumerate(boxes):
            if k:  # a step at every party wall, and another roof
                height = float(np.clip(height + rng.choice([-1, 1]) * rng.uniform(0.8, 2.5), 3.5, 16.0))
                colour = int((colour + rng.integers(1, len(ROOF_PALETTE))) % len(ROOF_PALETTE))
            ring = place(np.array([(bx0, by0), (bx1, by0), (bx1, by1), (bx0, by1)]))
            length, width = bx1 - bx0, by1 - by0
            centre = place(np.array([((bx0 + bx1) / 2, (by0 + by1) / 2)]))[0]
            roof = "gable" if rng.random() < 0.6 else "flat"
            rise = float(rng.uniform(0.15, 0.3) * min(length, width)) if roof == "gable" else 0.0
            house = Building(
                id=first_id + len(houses), polygon=Polygon(ring), shape="terrace", angle=float(angle),
                centre=(float(centre[0]), float(centre[1])), length=float(length), width=float(width),
                height=height, roof=roof, ridge_rise=rise, roof_color=colour,
            )
            houses.append(house)
            obstacles.add(house.polygon, (house.centre[0], house.centre[1], min(length, width) / 2 * 0.98))
    return houses
