"""``generate_scene``: lay out, render and change a two-epoch scene (arrays and polygons, no I/O)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import shapely
from affine import Affine

from rsmamba.classes import IGNORE_INDEX
from rsmamba.errors import InputError, ProblemCollector, seed_problem, typed_arguments
from rsmamba.raster.ground import metres_per_unit
from rsmamba.synth.scene import (
    BAND_SETS, Building, DEFAULT_ORIGIN, DSM_NODATA, Epoch, Layout, MAX_SIDE_M, MIN_SIDE_M, ORTHO_NODATA, Scene,
)
from rsmamba.synth.layout import (
    _Obstacles, _RoadDistance, _inner_radius, _place_building, _place_cars, _place_clutter, _place_hall,
    _parked_cars, _place_parking, _place_pond, _place_trees, _roads, _tree_obstacles, fractal_field, smooth_field,
)
from rsmamba.synth.render import _burn, _nodata_footprint, _photograph, _render

if TYPE_CHECKING:
    from rsmamba.synth.style import Style

HALL_ROOFS = (2, 3, 4, 5, 6)  # roof palette rows of halls: dark flat, concrete/gravel, light, membrane, metal


MAX_SIZE = 32768  # px per side: a scene (and its DSM grid) of several GiB per layer; 100000 asked for 149 GiB


MAX_ORIGIN_M = 1e9  # |x|, |y| of the corner: projected coordinates stay far below; float64 still resolves 1e-7 m


def check_scene_options(size: int, gsd: float, epsg: int, bands: str, dsm_gsd: float | None, *, seed: object = 0,
                        origin: tuple[float, float] = DEFAULT_ORIGIN, terraced: float = 0.0,
                        change_rate: float = 0.12) -> None:
    """Every problem of a scene's options in one :class:`InputError` (the CLI's checks, for library callers too)."""
    problems = ProblemCollector()
    if (problem := seed_problem(seed)) is not None:
        problems.add(problem)
    try:
        ok = len(origin) == 2 and all(math.isfinite(float(v)) and abs(float(v)) <= MAX_ORIGIN_M for v in origin)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        problems.add(f"--origin must be 'x,y' (two finite numbers within +-{MAX_ORIGIN_M:g}), got {origin!r}")
    if not (isinstance(terraced, (int, float)) and 0 <= terraced <= 1):
        problems.add(f"--terraced must be a share in [0, 1], got {terraced!r}")
    if not 0 <= change_rate <= 1:  # scene.json would record a rate that was not applied (5: every building went)
        problems.add(f"change_rate must be a share in [0, 1], got {change_rate!r}")
    # each problem once, by the option that has it: a size already refused is not measured in metres too, a
    # CRS of unknown units does not make a width wrong, and the DSM grid is not sized against a refused scene
    size_ok = isinstance(size, (int, np.integer)) and 32 <= size <= MAX_SIZE
    gsd_ok = isinstance(gsd, (int, float, np.number)) and gsd > 0 and bool(np.isfinite(gsd))
    if not size_ok:
        problems.add(f"--size must be an integer in 32..{MAX_SIZE} pixels, got {size}")
    if not gsd_ok:
        problems.add(f"--gsd must be a positive number, got {gsd}")
    scene_ok = size_ok and gsd_ok
    if scene_ok and _in_metres(epsg):
        # (in a CRS of degrees --gsd 3e-6 meant degrees: '0.001536 m wide' was no reason; the CRS is, said below)
        if size * gsd < MIN_SIDE_M:
            problems.add(f"the scene must be at least {MIN_SIDE_M:g} m wide to hold buildings; --size {size} x --gsd {gsd} = {size * gsd:g} m")
            scene_ok = False
        elif size * gsd > MAX_SIDE_M:
            problems.add(f"the scene may be at most {MAX_SIDE_M / 1000:g} km wide (a town: every house is placed); "
                         f"--size {size} x --gsd {gsd:g} = {size * gsd / 1000:g} km")
            scene_ok = False
    if bands not in BAND_SETS:
        problems.add(f"--bands must be one of {', '.join(BAND_SETS)}, got {bands!r}")
    if dsm_gsd is not None and not (dsm_gsd > 0 and np.isfinite(dsm_gsd)):
        problems.add(f"--dsm-gsd must be a positive number, got {dsm_gsd}")
    elif dsm_gsd is not None and scene_ok:
        side = size * gsd / dsm_gsd  # the DSM grid's pixels per side
        if not 2 <= side <= MAX_SIZE:
            problems.add(f"--dsm-gsd {dsm_gsd:g} gives a DSM of {side:.3g} pixels per side for a {size * gsd:g} m scene; "
                         f"keep it in 2..{MAX_SIZE}")
    try:
        from pyproj import CRS

        crs = CRS.from_epsg(epsg)
    except Exception:
        problems.add(f"--epsg {epsg} is not a known EPSG code")
    else:
        if not crs.is_projected:
            problems.add(f"--epsg {epsg} is not a projected CRS (the scene is laid out in metres)")
        elif metres_per_unit(crs) != 1.0:  # a foot CRS: --gsd 0.25 became 0.25 ft, a town 3.3 times too small
            unit = crs.axis_info[0].unit_name if crs.axis_info else "other units"
            problems.add(f"--epsg {epsg} ({crs.name}) counts in {unit}: the scene is laid out in metres; "
                         "choose a CRS in metres (its UTM zone), or gdalwarp the scene afterwards")
    problems.raise_if_any()


def drawn_style(style: Style | str | None, gsd: float) -> Style | None:
    """``style`` as a drawn style: the CLI's ``'FAMILY[:SEED]'`` text is drawn at ``gsd`` as ``--style`` does;
    anything else but a Style or None is refused by name, not an AttributeError deep in the rendering."""
    from rsmamba.synth.style import Style, parse_style

    if isinstance(style, str):
        return parse_style(style, gsd=gsd)
    if style is not None and not isinstance(style, Style):
        raise InputError(f"style must be a drawn style (rsmamba.synth.style.parse_style('suburban:3')) or its "
                         f"'FAMILY[:SEED]' text, got {style!r}")
    return style


def _in_metres(epsg: int) -> bool:
    """Whether ``epsg`` is a projected CRS in metres, so that ``--gsd`` x ``--size`` is a width in metres (a foot
    CRS's '16 m' was feet). An unknown code is not: its unit is unknown, and it is refused on its own."""
    from pyproj import CRS

    try:
        crs = CRS.from_epsg(epsg)
        return bool(crs.is_projected) and metres_per_unit(crs) == 1.0
    except Exception:  # noqa: BLE001 - an unknown code: its own refusal says so
        return False


@typed_arguments
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
    style: Style | str | None = None,
) -> Scene:
    """Lay out and render a two-epoch scene in memory (no I/O); deterministic for ``seed``.

    ``origin`` is the (x, y) of the top-left corner in the ``epsg`` CRS. ``bands`` picks the ortho
    bands: ``rgb``, ``irrg`` (NIR, R, G as in ISPRS Vaihingen) or ``rgbn``. ``nodata_collar`` cuts
    the footprint to a rotated rectangle; outside it orthos are 0, labels/change 255, DSM nodata.
    ``terraced`` (0-1) is the share of buildings laid out as terraced rows and perimeter blocks of
    touching houses (:mod:`rsmamba.synth.terraced`); 0 keeps every existing scene unchanged.
    ``style`` (a :class:`rsmamba.synth.style.Style`, or its ``'FAMILY[:SEED]'`` text) changes looks and measurement, not the layout's
    kind; None renders the generator's own look, unchanged.
    """
    check_scene_options(size, gsd, epsg, bands, None, seed=seed, origin=origin, terraced=terraced,
                        change_rate=change_rate)
    style = drawn_style(style, gsd)
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
    world = getattr(style, "world", None)  # a style's world features (rsmamba.synth.style.WORLD), own generator
    water: list = []
    lots: list = []  # (lot polygon, its stalls)
    if world:
        world_rng = np.random.default_rng([seed, 0x3041D, style.seed])
        target = int(round(target * world["density"]))
        max_side = max(max_side / world["density"] ** 2, 12.0)  # a dense core: more, smaller buildings
        if side * 0.6 >= 30.0:
            for _ in range(world["halls"]):
                hall = _place_hall(len(buildings) + 1, extent, street_angle, road_union, obstacles, world_rng,
                                   (30.0, min(80.0, side * 0.6)), HALL_ROOFS)
                if hall is not None:
                    buildings.append(hall)
                    obstacles.add(hall.polygon, (*hall.centre, _inner_radius(hall)))
        for _ in range(world.get("parking", 0) if side * 0.6 >= 20.0 else 0):
            placed = _place_parking(extent, street_angle, road_union, obstacles, world_rng, (20.0, min(50.0, side * 0.6)))
            if placed is not None:
                obstacles.add(placed[0])
                lots.append(placed)
        if world["pond"] and side * 0.15 >= 6.0:
            pond = _place_pond(extent, road_union, obstacles, world_rng, (6.0, min(20.0, side * 0.15)))
            if pond is not None:
                obstacles.add(pond)
                water = [(pond, -0.3, np.asarray(world["water"], dtype=np.float32))]  # ISPRS: water is clutter
    if terraced > 0:
        from rsmamba.synth.terraced import place_terraced

        buildings += place_terraced(len(buildings) + 1, int(round(terraced * target)), extent, street_angle,
                                    road_union, obstacles, rng, max_side)
    while len(buildings) < target and misses < 3 * target + 10:
        b = _place_building(len(buildings) + 1, extent, street_angle, road_union, road_distance, obstacles, rng, max_side)
        if b is None:
            misses += 1
            continue
        buildings.append(b)
        obstacles.add(b.polygon, (*b.centre, _inner_radius(b)))

    paved = [lot for lot, _ in lots]
    for b in buildings:
        if rng.random() < 0.35:
            yard = shapely.oriented_envelope(b.polygon).buffer(rng.uniform(2.0, 4.5), join_style="mitre").difference(b.polygon.buffer(0.01))
            paved.append(yard)

    trees = _place_trees(int(area / 420) + 1, extent, lines, obstacles, rng, road_union)
    tree_obstacles = _Obstacles()
    _tree_obstacles(trees, tree_obstacles)
    for g in tree_obstacles.geoms:
        obstacles.add(g)
    clutter = water + _place_clutter(int(area / 2500) + 1, extent, obstacles, rng)
    cars_t1 = _place_cars(int(area / 900) + 1, lines, road_union, tree_obstacles, rng, extent)
    if lots:
        cars_t1 += _parked_cars(lots, world_rng)
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
    if lots:
        cars_t2 += _parked_cars(lots, world_rng)  # drawn anew: other cars parked
    layout2 = Layout(kept + added, paved2, bare, trees2, cars_t2, clutter)
    if world:  # hipped instead of gabled roofs, on a share of the houses of both epochs
        for b in buildings + added:
            if b.roof == "gable" and world_rng.random() < world["hip_share"]:
                b.roof = "hip"

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
        if world and world.get("off_nadir"):
            from rsmamba.synth.style import lean_buildings

            refl = lean_buildings(refl, ids, layout.buildings, gsd, world["off_nadir"], world["lean_azimuth"])
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
