"""The town's geometry in the scene CRS: noise fields, roads, buildings, trees, cars, clutter."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize
from shapely import affinity
from shapely.geometry import Polygon, box

from rsmamba.synth.scene import Building, CAR_PALETTE, ROOF_PALETTE, Trees


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


def fractal_field(shape: tuple[int, int], cell: float, rng: np.random.Generator, octaves: int = 3,
                  field: Callable[[tuple[int, int], float, np.random.Generator], np.ndarray] = smooth_field,
                  ) -> np.ndarray:
    """Sum of smooth fields (``field``) at halving scales: texture with detail at several sizes."""
    out = np.zeros(shape, dtype=np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        out += amp * field(shape, max(cell, 1.5), rng)
        total += amp
        amp *= 0.5
        cell /= 2
    return out / total


def _placed(geom, angle: float, x: float, y: float):
    """``geom``, drawn about the origin, turned by ``angle`` degrees (counter-clockwise) and moved to (x, y)."""
    return affinity.translate(affinity.rotate(geom, angle, origin=(0, 0)), x, y)


def _inside(geom, extent, margin: float = 1.0) -> bool:
    """True when ``geom``'s bounds keep ``margin`` metres from the scene's edges."""
    x0, y0, x1, y1 = extent
    bx0, by0, bx1, by1 = geom.bounds
    return bx0 >= x0 + margin and by0 >= y0 + margin and bx1 <= x1 - margin and by1 <= y1 - margin


class _Obstacles:
    """Placed polygons in a grid of buckets, for fast 'does this candidate collide?'.

    Each query looks at the objects of the buckets its box meets, in the order they were placed, so a
    scene is the same as with a scan of every object; a scan grew with the square of the scene's area
    (a 5 km town took over 5 minutes, 200 m pixels 21 GB).
    """

    CELL = 32.0  # metres: about a house and its garden

    def __init__(self) -> None:
        self.geoms: list[Polygon] = []
        self.boxes: list[tuple[float, float, float, float]] = []
        self.discs: list[tuple[float, float, float]] = []  # x, y, radius of a disc inside each object
        self._geom_cells: dict[tuple[int, int], list[int]] = {}
        self._disc_cells: dict[tuple[int, int], list[int]] = {}

    def _keys(self, x0: float, y0: float, x1: float, y1: float):
        c = self.CELL
        for i in range(math.floor(x0 / c), math.floor(x1 / c) + 1):
            for j in range(math.floor(y0 / c), math.floor(y1 / c) + 1):
                yield i, j

    def _near(self, cells: dict[tuple[int, int], list[int]], x0: float, y0: float, x1: float, y1: float) -> list[int]:
        found: set[int] = set()
        for key in self._keys(x0, y0, x1, y1):
            found.update(cells.get(key, ()))
        return sorted(found)

    def add(self, geom, disc: tuple[float, float, float] | None = None) -> None:
        bounds = tuple(float(v) for v in geom.bounds)
        for key in self._keys(*bounds):
            self._geom_cells.setdefault(key, []).append(len(self.geoms))
        self.geoms.append(geom)
        self.boxes.append(bounds)
        if disc is not None:
            x, y, r = (float(v) for v in disc)
            for key in self._keys(x - r, y - r, x + r, y + r):
                self._disc_cells.setdefault(key, []).append(len(self.discs))
            self.discs.append((x, y, r))

    def hits_disc(self, x: float, y: float, r: float) -> bool:
        """True when a disc of radius ``r`` at (x, y) touches a placed object (no buffering needed)."""
        point = None
        for i in self._near(self._geom_cells, x - r, y - r, x + r, y + r):
            b = self.boxes[i]
            if b[0] <= x + r and b[2] >= x - r and b[1] <= y + r and b[3] >= y - r:
                point = point or shapely.Point(x, y)
                if point.distance(self.geoms[i]) <= r:
                    return True
        return False

    def covers_disc(self, x: float, y: float, r: float) -> bool:
        """True when a disc of radius ``r`` at (x, y) surely overlaps a placed object's inner disc."""
        for i in self._near(self._disc_cells, x - r, y - r, x + r, y + r):
            dx, dy, dr = self.discs[i]
            if np.hypot(dx - x, dy - y) < dr + r:
                return True
        return False

    def hits(self, geom, gap: float = 0.0) -> bool:
        x0, y0, x1, y1 = geom.bounds
        for i in self._near(self._geom_cells, x0 - gap, y0 - gap, x1 + gap, y1 + gap):
            b = self.boxes[i]
            if b[0] <= x1 + gap and b[2] >= x0 - gap and b[1] <= y1 + gap and b[3] >= y0 - gap:
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
            line = _placed(line, angle, cx, cy)
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
        car = _placed(box(-2.25, -0.9, 2.25, 0.9), heading + rng.normal(0, 2), x, y)
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
        poly = _placed(box(-w / 2, -h / 2, w / 2, h / 2), rng.uniform(0, 180), x, y)
        if obstacles.hits(poly, gap=1.0):
            continue
        obstacles.add(poly)
        color = rng.uniform(0.15, 0.85, 4).astype(np.float32)
        out.append((poly, float(rng.uniform(0.4, 2.5)), color))
    return out


def _place_hall(
    bid: int, extent, street_angle: float, roads, obstacles: _Obstacles, rng: np.random.Generator,
    side: tuple[float, float], roof_colors: tuple[int, ...],
) -> Building | None:
    """A large flat-roofed hall (warehouse, factory, supermarket) aligned with the streets, or None if none fits."""
    x0, y0, x1, y1 = extent
    for _ in range(30):
        length = float(rng.uniform(*side))
        width = float(length * rng.uniform(0.4, 0.8))
        cx, cy = float(rng.uniform(x0 + length / 2, x1 - length / 2)), float(rng.uniform(y0 + length / 2, y1 - length / 2))
        angle = street_angle + 90 * int(rng.integers(0, 2)) + rng.normal(0, 1.0)
        poly = _placed(box(-length / 2, -width / 2, length / 2, width / 2), angle, cx, cy)
        if not _inside(poly, extent) or shapely.dwithin(roads, poly, 3.0) or obstacles.hits(poly, gap=3.0):
            continue
        return Building(id=bid, polygon=poly, shape="rect", angle=float(angle), centre=(cx, cy), length=length,
                        width=width, height=float(rng.uniform(6.0, 14.0)), roof="flat", ridge_rise=0.0,
                        roof_color=int(rng.choice(roof_colors)))
    return None


def _place_pond(extent, roads, obstacles: _Obstacles, rng: np.random.Generator, radius: tuple[float, float]):
    """An irregular pond (a union of overlapping discs) away from roads and placed objects, or None."""
    x0, y0, x1, y1 = extent
    for _ in range(30):
        r = float(rng.uniform(*radius))
        cx, cy = float(rng.uniform(x0 + 2 * r, x1 - 2 * r)), float(rng.uniform(y0 + 2 * r, y1 - 2 * r))
        lobes = rng.normal(0, r * 0.45, size=(4, 2))
        poly = shapely.union_all([shapely.Point(cx + dx, cy + dy).buffer(r * float(rng.uniform(0.5, 0.9)), 16)
                                  for dx, dy in lobes] + [shapely.Point(cx, cy).buffer(r * 0.7, 16)])
        poly = poly.simplify(0.2)
        if not _inside(poly, extent) or shapely.dwithin(roads, poly, 3.0) or obstacles.hits(poly, gap=2.0):
            continue
        return poly
    return None


def _place_parking(extent, street_angle: float, roads, obstacles: _Obstacles, rng: np.random.Generator,
                   side: tuple[float, float]) -> tuple[Polygon, list[Polygon]] | None:
    """A parking lot aligned with the streets, off the roads and placed objects, and its stalls: rows of 2.5 m x 5 m
    bays, two rows back to back between 6 m aisles. Returns (lot, stalls) or None if none fits."""
    x0, y0, x1, y1 = extent
    for _ in range(30):
        length, width = float(rng.uniform(*side)), float(rng.uniform(16.0, 34.0))
        cx, cy = float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1))
        angle = street_angle + 90 * int(rng.integers(0, 2))
        lot = _placed(box(-length / 2, -width / 2, length / 2, width / 2), angle, cx, cy)
        if not _inside(lot, extent) or roads.intersects(lot) or obstacles.hits(lot, gap=1.5):
            continue
        stalls = []
        y = -width / 2 + 1.0
        while y + 5.0 <= width / 2 - 1.0:
            for row in (y, y + 11.0):  # a row, an aisle, the row across it
                if row + 5.0 > width / 2 - 1.0:
                    continue
                for x in np.arange(-length / 2 + 1.0, length / 2 - 3.5 + 1e-6, 2.5):
                    bay = box(x + 0.35, row + 0.25, x + 2.15, row + 4.75)  # a car of 1.8 m x 4.5 m in its bay
                    stalls.append(_placed(bay, angle, cx, cy))
            y += 16.0
        return lot, stalls
    return None


def _parked_cars(lots: list, rng: np.random.Generator) -> list[tuple[Polygon, int]]:
    """Cars in a share (30-95 %) of each lot's stalls (``lots``: (lot, stalls) of :func:`_place_parking`)."""
    cars = []
    for _, stalls in lots:
        occupied = rng.random(len(stalls)) < rng.uniform(0.3, 0.95)
        cars += [(stall, int(rng.integers(len(CAR_PALETTE)))) for stall, o in zip(stalls, occupied) if o]
    return cars
