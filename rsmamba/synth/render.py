"""Rendering: the orthophoto's colours, hillshade and cast shadows, the photograph's look."""

from __future__ import annotations

import math

import numpy as np
from affine import Affine
from rasterio.features import rasterize
from shapely import affinity
from shapely.geometry import Polygon, box

from rsmamba.synth.scene import (
    ASPHALT, BUILDING, CAR, CAR_PALETTE, CLUTTER, DRY_GRASS, GRASS, IMPERVIOUS, LOW_VEGETATION,
    Layout, PAVING, ROOF_PALETTE, TREE, TREE_GREEN,
)


def _pixel_window(bounds, transform: Affine, size: int) -> tuple[slice, slice, np.ndarray, np.ndarray]:
    """Row/col slices covering ``bounds`` and the pixel-centre coordinates inside them."""
    x0, y0, x1, y1 = bounds
    gsd = transform.a
    c0 = max(int(math.floor((x0 - transform.c) / gsd)), 0)
    c1 = min(int(math.ceil((x1 - transform.c) / gsd)), size)
    r0 = max(int(math.floor((transform.f - y1) / gsd)), 0)
    r1 = min(int(math.ceil((transform.f - y0) / gsd)), size)
    xs = transform.c + (np.arange(c0, c1, dtype=np.float64) + 0.5) * gsd
    ys = transform.f - (np.arange(r0, r1, dtype=np.float64) + 0.5) * gsd
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
    pal = palette or {}  # a style's colours (rsmamba.synth.style); the module's own by default
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
        if b.roof in ("gable", "hip"):
            across, along, half, half_long = ((np.abs(v), np.abs(u), b.width / 2, b.length / 2) if b.length >= b.width
                                              else (np.abs(u), np.abs(v), b.length / 2, b.width / 2))
            slope = 1 - across / half
            if b.roof == "hip":  # the ridge ends slope down to the short eaves as steeply as the long sides
                slope = np.minimum(slope, (half_long - along) / half)
            roof += b.ridge_rise * np.clip(slope, 0, 1)
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
