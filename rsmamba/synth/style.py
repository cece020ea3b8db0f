"""Domain randomisation for ``rsmamba.synth``: a *style* is a seeded draw from documented ranges.

A model trained on one rendering of one town learns that rendering (its roof colours, its grey
streets, its flat grass). A :class:`Style` changes how a scene *looks* and is *measured* while the
layout and therefore the labels stay exact: materials and colours (roofs, streets, pavements,
grass, crops, tree crowns), street width, sun position, illumination and colour cast, haze, blur,
sensor noise, JPEG artefacts, and for the DSM noise, a vertical offset, holes and a coarser GSD.
The GSD itself is part of a style (:attr:`Style.gsd`, 0.1 to 1 m).

**The split.** Styles come in families (:class:`Family`). :data:`TRAIN_FAMILIES` are what training
data may use; :data:`HELD_OUT_FAMILIES` exist only to evaluate. The held-out family reserves parts
of the range that no training family ever draws: saturated blue/teal roofs (hue in
:data:`HELD_OUT_ROOF_HUES`), striped crop fields, cobbled (setts) streets. :func:`training_style`
draws only training families and :func:`check_training_style` refuses a style that strays into the
reserved ranges, so held-out looks cannot leak into training by a coding slip.

The ranges (one row per knob; a family narrows or shifts some of them):

============================  ============================================================
knob                           range
============================  ============================================================
roof colours (8 per scene)     tiles (hue 0-40 deg), slate, asphalt-like flat, concrete/gravel,
                               white membrane, metal of any allowed hue, green roofs
street surface                 asphalt value 0.18-0.55, concrete, setts (held-out only)
street half-width              +0 to +3 m on the generator's 2.5-6 m
pavements / yards              paving value 0.35-0.75
grass / crops                  green to dry; texture none, mottled (train) or striped (held-out)
ground textures (opt-in)       streets: smooth, grain, running-bond pavers 0.2-0.4 m (brick or ochre
                               tint possible), concrete slabs 2-5 m with joints; meadows: none,
                               mowing bands of period 7-16 m, sharp-edged patchwork fields, grain
world features (opt-in)        hipped roofs on 0-60 % of gabled houses; large flat-roofed halls
                               30-80 m (industrial 1-3 per scene, others one in four scenes); a pond
                               of 6-20 m radius in 30 % of scenes (label clutter, as ISPRS labels
                               water); dense cores: 1-1.6x the buildings, smaller, in 40 % of scenes;
                               building lean (off-nadir 3-12 deg, any azimuth) in 30 % of scenes;
                               parking lots of 20-50 m with cars in 30-95 % of their bays
                               (industrial 1-2 per scene, others one in three scenes)
tree crowns                    dark to light green, clumpy texture 0-0.25
sun                            azimuth 0-360 deg, elevation 20-70 deg
colour cast                    per-band gain 0.8-1.2, gamma 0.75-1.3
haze                           0-0.25 (blend towards a bright veil)
blur                           sigma 0-1.2 px
sensor noise                   sigma 0-0.035 (of full scale)
JPEG                           none or quality 35-90 (8 x 8 DCT quantisation, 4:2:0 chroma)
GSD                            0.1-1.0 m
DSM                            noise 0-0.3 m, offset -5..+5 m, holes 0-3 %, coarser x1-x4
============================  ============================================================

**Ground textures** (``draw_style(..., ground=True)``, :data:`GROUND_TEXTURES`) are the generic texture
bank of the image-only recipe: without them every training street and lawn is smooth while every roof
carries tile rows or panel seams, so a model without a DSM learns "textured = building". They are drawn
from a generator of their own, so a style's other draws, and every scene rendered without them, stay as
they were. They never draw the held-out textures: setts are square cells of 0.12 m in a checkerboard,
pavers are running-bond bricks; crop stripes have periods of :data:`HELD_OUT_STRIPE_PERIOD`, mowing bands
longer ones, and :func:`check_training_style` refuses a band inside that range.

**World features** (``draw_style(..., world=True)``, :data:`WORLD`) widen the layout rather than the look:
hipped roofs, halls, ponds, parking lots, denser building, and building lean: an ortho that is not a true ortho shows each
roof displaced away from nadir by its height x tan(off-nadir angle), with the facade between, while the labels,
the footprints and the DSM stay where the buildings stand (what a footprint map wants). They too come from generators of their own, so a scene without
them is unchanged; labels stay exact (a pond is burnt as clutter like any clutter object). No shipped recipe uses
them: the image-only recipe with their first version (commit 62b0470: no parking lots yet, dense cores of
full-sized buildings) was lower on five of its six selection rows
(bench/results/image-stages.json, ``one_stage_30_minutes_world_features_not_kept``).

Everything here is numpy/scipy on the arrays :mod:`rsmamba.synth` renders; from synth it takes only
the layout's octave sum (:func:`rsmamba.synth.layout.fractal_field`). Synth calls the hooks
(``palette``, :meth:`Style.widen_roads`, :meth:`Style.surface`, :meth:`Style.camera`,
:meth:`Style.measure_dsm`) only when a style is given, so its default output is unchanged.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from rsmamba.errors import InputError, seed_problem
from rsmamba.synth.layout import fractal_field

__all__ = [
    "Family", "Style", "TRAIN_FAMILIES", "HELD_OUT_FAMILIES", "HELD_OUT_ROOF_HUES", "GSD_RANGE",
    "draw_style", "parse_style", "training_style", "held_out_style", "check_training_style", "GROUND_TEXTURES",
    "HELD_OUT_STRIPE_PERIOD", "WORLD",
]

# Label ids as in rsmamba.synth (ISPRS order); repeated here so synth can import this module.
IMPERVIOUS, BUILDING, LOW_VEGETATION, TREE = 0, 1, 2, 3
DSM_NODATA = -9999.0
GSD_RANGE = (0.1, 1.0)


class Family(str, Enum):
    """A style family: a region of the style ranges. Only the training ones feed training data."""

    SUBURBAN = "suburban"  # the generator's own look, widened: tiles, grey streets, green lawns
    MEDITERRANEAN = "mediterranean"  # light ochre/white roofs, pale streets, dry grass, hard sun
    INDUSTRIAL = "industrial"  # metal/gravel/membrane roofs, wide dark streets, dull light
    OVERCAST = "overcast"  # flat light, haze, cool cast, blur, JPEG
    HELDOUT_NORDIC = "heldout-nordic"  # evaluation only: blue/teal roofs, setts, crop stripes


TRAIN_FAMILIES: tuple[Family, ...] = (Family.SUBURBAN, Family.MEDITERRANEAN, Family.INDUSTRIAL, Family.OVERCAST)
HELD_OUT_FAMILIES: tuple[Family, ...] = (Family.HELDOUT_NORDIC,)
# Roof hues (degrees) with saturation above HELD_OUT_MIN_SAT that only the held-out family draws.
HELD_OUT_ROOF_HUES = (170.0, 250.0)
HELD_OUT_MIN_SAT = 0.2
HELD_OUT_MEADOWS = ("stripes",)
HELD_OUT_STREETS = ("setts",)
# Metres: the held-out crop stripes' periods (Style.meadow_period's draw); training mowing bands stay outside.
HELD_OUT_STRIPE_PERIOD = (2.0, 6.0)
# The opt-in ground texture bank (Style.ground): each kind equally likely per style.
GROUND_TEXTURES = {"street": ("smooth", "grain", "pavers", "slabs"), "meadow": ("none", "bands", "patchwork", "grain")}
MOWING_PERIOD = (7.0, 16.0)
# The opt-in world features (Style.world): ranges as the module docstring's table gives them.
WORLD = {"hip_share": (0.0, 0.6), "industrial_halls": (1, 3), "hall_chance": 0.25, "pond_chance": 0.3,
         "dense_chance": 0.4, "density": (1.0, 1.6), "lean_chance": 0.3, "off_nadir": (3.0, 12.0),
         "industrial_lots": (1, 2), "lot_chance": 0.35}


def _rgbn(h_deg: float, s: float, v: float, nir: float) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb((h_deg % 360) / 360, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1)))
    return np.array((r, g, b, nir), dtype=np.float32)


def _hue(rng: np.random.Generator, allowed: list[tuple[float, float]]) -> float:
    """A hue drawn uniformly from a union of ranges (degrees)."""
    widths = np.array([b - a for a, b in allowed])
    i = int(rng.choice(len(allowed), p=widths / widths.sum()))
    return float(rng.uniform(*allowed[i]))


# Hues a training style may give a saturated roof: everything outside the held-out band.
TRAIN_ROOF_HUES = [(0.0, HELD_OUT_ROOF_HUES[0]), (HELD_OUT_ROOF_HUES[1], 360.0)]


@dataclass
class Style:
    """How one scene looks and is measured. Drawn by :func:`draw_style`; every field is plain data."""

    family: Family
    seed: int
    gsd: float
    palette: dict[str, np.ndarray]  # grass, dry_grass, asphalt, paving, tree (R, G, B, NIR); roofs (8, 4)
    street: str  # asphalt | concrete | setts
    road_widen: float  # metres added to each street's half-width
    meadow: str  # none | mottled | stripes
    meadow_amp: float
    meadow_period: float  # metres (stripes)
    meadow_angle: float  # degrees (stripes)
    crown_amp: float  # clumpy tree-crown texture
    sun: tuple[float, float]  # azimuth, elevation (degrees), epoch 1; epoch 2 shifts it
    gain: tuple[float, float, float, float]
    gamma: float
    haze: float
    blur: float  # pixels
    noise: float
    jpeg: int | None
    dsm_noise: float
    dsm_offset: float
    dsm_holes: float
    dsm_coarsen: int
    ground: dict | None = None  # the opt-in ground texture bank (GROUND_TEXTURES); None: none
    world: dict | None = None  # the opt-in world features (WORLD); None: none
    notes: dict = field(default_factory=dict)

    def describe(self) -> dict:
        """JSON-safe summary (for ``scene.json`` and the model cards)."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("palette", "notes", "family")}
        out["family"] = self.family.value
        out["palette"] = {k: np.round(np.asarray(v), 3).tolist() for k, v in self.palette.items()}
        return out

    # --- hooks called by rsmamba.synth.generate_scene ---------------------------------------

    def widen_roads(self, roads: list) -> list:
        """Wider streets (before buildings are placed, so they still keep their distance)."""
        if self.road_widen <= 0:
            return roads
        return [p.buffer(self.road_widen, join_style="mitre") for p in roads]

    def sun_for(self, epoch: int) -> tuple[float, float]:
        az, el = self.sun
        return ((az + 40.0 * epoch) % 360.0, float(np.clip(el + (-8.0 if epoch else 0.0), 15, 75)))

    def surface(self, refl: np.ndarray, labels: np.ndarray, gsd: float, rng: np.random.Generator) -> np.ndarray:
        """Textures the generator does not draw: meadows/crops, clumpy crowns, setts (in place)."""
        shape = labels.shape
        meadow = labels == LOW_VEGETATION
        if self.meadow != "none" and meadow.any():
            if self.meadow == "stripes":
                rows, cols = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
                a = math.radians(self.meadow_angle)
                along = (cols * math.cos(a) + rows * math.sin(a)) * gsd
                # Fields: patches with their own stripe phase and tone, as crops/mown strips.
                patch = _fractal(shape, 30 / gsd, rng, 2)
                tex = np.sin(2 * math.pi * along / self.meadow_period + 6 * patch) * 0.6 + 0.5 * np.sign(patch)
                del rows, cols, along
            else:
                tex = _fractal(shape, 3 / gsd, rng, 3) + 0.6 * _fractal(shape, 25 / gsd, rng, 2)
            tex = (1 + self.meadow_amp * tex).astype(np.float32)
            refl[:, meadow] *= tex[meadow]
        trees = labels == TREE
        if self.crown_amp > 0 and trees.any():
            clumps = _fractal(shape, 1.2 / gsd, rng, 2)
            refl[:, trees] *= (1 + self.crown_amp * clumps[trees]).astype(np.float32)
        if self.street == "setts":
            hard = labels == IMPERVIOUS
            cell = max(0.12 / gsd, 1.0)
            rows, cols = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
            grid = ((np.floor(rows / cell) + np.floor(cols / cell)) % 2).astype(np.float32)
            refl[:, hard] *= (0.92 + 0.16 * grid[hard] + 0.05 * _fractal(shape, 2 / gsd, rng, 2)[hard])
        if self.ground:
            _ground_textures(refl, labels, gsd, self.ground, rng)
        np.clip(refl, 0, 1, out=refl)
        return refl

    def camera(self, ortho: np.ndarray, band_order: list[int], rng: np.random.Generator) -> np.ndarray:
        """Colour cast, haze, blur, noise and JPEG on an 8-bit (bands, H, W) ortho."""
        from scipy.ndimage import gaussian_filter

        img = ortho.astype(np.float32) / 255.0
        gain = np.asarray(self.gain, dtype=np.float32)[band_order]
        img = np.power(np.clip(img, 0, 1), np.float32(self.gamma)) * gain[:, None, None]
        if self.haze > 0:
            veil = np.float32(0.85)
            img = img * (1 - self.haze) + veil * self.haze
        if self.blur > 0.05:
            img = np.stack([gaussian_filter(b, self.blur) for b in img])
        if self.noise > 0:
            img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(self.noise)
        out = np.clip(np.round(img * 255), 1, 255).astype(np.uint8)
        if self.jpeg is not None and out.shape[0] >= 3:
            out = jpeg_like(out, self.jpeg)
        return out

    def measure_dsm(self, dsm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The DSM a sensor would deliver: coarser, noisier, offset, with holes (nodata)."""
        out = dsm.astype(np.float32).copy()
        f = self.dsm_coarsen
        if f > 1:
            h, w = out.shape
            hc, wc = h // f, w // f
            coarse = out[: hc * f, : wc * f].reshape(hc, f, wc, f).mean(axis=(1, 3))
            out[: hc * f, : wc * f] = coarse.repeat(f, 0).repeat(f, 1)
        out += np.float32(self.dsm_offset)
        if self.dsm_noise > 0:
            out += rng.normal(0, self.dsm_noise, out.shape).astype(np.float32)
        if self.dsm_holes > 0:
            holes = _field(out.shape, 12.0, rng) > 1 - 2 * self.dsm_holes * 4
            out[holes] = DSM_NODATA
        return out


# --------------------------------------------------------------------------------------------


def _field(shape: tuple[int, int], cell: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random field in about [-1, 1]: a coarse random grid, bilinearly zoomed up."""
    from scipy.ndimage import zoom

    h, w = shape
    cell = max(float(cell), 1.0)
    gh, gw = int(math.ceil(h / cell)) + 2, int(math.ceil(w / cell)) + 2
    grid = rng.uniform(-1.0, 1.0, size=(gh, gw)).astype(np.float32)
    out = zoom(grid, (h / (gh - 1), w / (gw - 1)), order=1)
    return out[:h, :w] if out.shape[0] >= h and out.shape[1] >= w else np.pad(out, ((0, max(h - out.shape[0], 0)), (0, max(w - out.shape[1], 0))), mode="edge")[:h, :w]


def _fractal(shape: tuple[int, int], cell: float, rng: np.random.Generator, octaves: int = 3) -> np.ndarray:
    """Sum of :func:`_field` s at halving scales (the layout's octave sum over this module's field)."""
    return fractal_field(shape, cell, rng, octaves, field=_field)


def _roof_palette(family: Family, rng: np.random.Generator) -> np.ndarray:
    """Eight roof materials; rows 0 and 1 get tile-row texture in synth, the rest panel seams."""
    held = family in HELD_OUT_FAMILIES
    hues = [HELD_OUT_ROOF_HUES] if held else TRAIN_ROOF_HUES

    def tile() -> np.ndarray:
        if held:  # glazed blue/teal tiles
            return _rgbn(_hue(rng, hues), rng.uniform(0.35, 0.6), rng.uniform(0.35, 0.6), 0.3)
        return _rgbn(rng.uniform(0, 40), rng.uniform(0.35, 0.7), rng.uniform(0.35, 0.75), 0.38)

    def metal() -> np.ndarray:
        return _rgbn(_hue(rng, hues), rng.uniform(0.25, 0.6), rng.uniform(0.35, 0.8), 0.35)

    grey = lambda lo, hi: _rgbn(rng.uniform(0, 360), rng.uniform(0, 0.08), rng.uniform(lo, hi), 0.3)  # noqa: E731
    green_roof = _rgbn(rng.uniform(70, 120), rng.uniform(0.3, 0.6), rng.uniform(0.25, 0.5), 0.6)
    rows = [tile(), tile(), grey(0.15, 0.35), grey(0.3, 0.5), grey(0.45, 0.65), grey(0.7, 0.9), metal(),
            green_roof if rng.random() < 0.5 else metal()]
    if family == Family.INDUSTRIAL:
        rows[0], rows[1] = metal(), grey(0.4, 0.7)
    if family == Family.MEDITERRANEAN:
        rows[2], rows[3] = grey(0.75, 0.92), _rgbn(rng.uniform(25, 50), rng.uniform(0.2, 0.45), rng.uniform(0.6, 0.85), 0.4)
    if held:
        rows[4], rows[6] = metal(), metal()
    return np.stack(rows).astype(np.float32)


def draw_style(seed: int, family: Family | str, gsd: float | None = None, *, ground: bool = False,
               world: bool = False) -> Style:
    """A style of ``family``, deterministic for ``seed``; ``gsd`` fixes the GSD instead of drawing it.

    ``ground`` adds the ground texture bank (training families only), ``world`` the world features, each
    drawn after everything else from a generator of its own: the style's other fields are the same with or
    without them.
    """
    try:
        family = Family(family)
    except ValueError:
        raise InputError(f"unknown style family {family!r}; one of {', '.join(f.value for f in Family)}") from None
    if ground and family in HELD_OUT_FAMILIES:
        raise InputError("the ground texture bank is for training styles; the held-out family has its own textures")
    if gsd is not None and not GSD_RANGE[0] <= gsd <= GSD_RANGE[1]:
        raise InputError(f"style GSD must be within {GSD_RANGE[0]}-{GSD_RANGE[1]} m, got {gsd}")
    rng = np.random.default_rng([seed, 0x57E1, list(Family).index(family)])
    held = family in HELD_OUT_FAMILIES
    u = rng.uniform

    grass_v = u(0.35, 0.55)
    grass = _rgbn(u(75, 110), u(0.4, 0.7), grass_v, u(0.5, 0.7))
    dry = _rgbn(u(35, 60), u(0.3, 0.55), u(0.45, 0.65), u(0.4, 0.5))
    tree = _rgbn(u(85, 130), u(0.45, 0.75), u(0.2, 0.38), u(0.6, 0.75))
    street = "asphalt"
    asphalt = _rgbn(u(0, 360), u(0, 0.06), u(0.22, 0.5), 0.3)
    paving = _rgbn(u(20, 50), u(0.03, 0.15), u(0.4, 0.72), 0.38)
    meadow, meadow_amp = ("mottled", u(0.08, 0.3)) if rng.random() < 0.7 else ("none", 0.0)
    sun = (u(0, 360), u(25, 65))
    gain = tuple(float(g) for g in np.clip(rng.normal(1.0, 0.06, 4), 0.85, 1.15))
    gamma, haze, blur = u(0.85, 1.15), u(0, 0.1), u(0, 0.7)
    noise = u(0.0, 0.02)
    jpeg: int | None = int(rng.integers(50, 91)) if rng.random() < 0.4 else None
    road_widen = u(0, 2.0)

    if family == Family.MEDITERRANEAN:
        grass = _rgbn(u(55, 80), u(0.3, 0.5), u(0.45, 0.6), 0.5)
        asphalt = _rgbn(u(0, 360), u(0, 0.06), u(0.4, 0.55), 0.33)
        sun = (u(0, 360), u(50, 70))
    elif family == Family.INDUSTRIAL:
        asphalt = _rgbn(u(0, 360), u(0, 0.05), u(0.2, 0.35), 0.28)
        street = "concrete" if rng.random() < 0.4 else "asphalt"
        if street == "concrete":
            asphalt = _rgbn(u(0, 360), u(0, 0.05), u(0.45, 0.6), 0.35)
        road_widen = u(1.0, 3.0)
    elif family == Family.OVERCAST:
        sun = (u(0, 360), u(20, 35))
        gain = tuple(float(g) for g in np.clip(rng.normal(1.0, 0.08, 4) * np.array([0.93, 1.0, 1.08, 1.0]), 0.8, 1.2))
        haze, blur, noise = u(0.08, 0.25), u(0.4, 1.2), u(0.01, 0.035)
        jpeg = int(rng.integers(35, 80))
    elif held:
        # Reserved: blue/teal roofs, dark asphalt and setts, striped crops, a cool cast, mild haze.
        street = "setts" if rng.random() < 0.5 else "asphalt"
        asphalt = (_rgbn(u(15, 30), u(0.15, 0.3), u(0.35, 0.5), 0.33) if street == "setts"
                   else _rgbn(u(0, 360), u(0, 0.05), u(0.16, 0.24), 0.27))
        meadow, meadow_amp = "stripes", u(0.12, 0.25)
        grass = _rgbn(u(70, 100), u(0.35, 0.6), u(0.4, 0.6), 0.6)
        gain = (0.94, 1.0, 1.07, 1.0)
        haze, road_widen = u(0.03, 0.12), u(0.5, 2.5)
        sun = (u(0, 360), u(30, 50))

    style = Style(
        family=family, seed=int(seed), gsd=float(gsd if gsd is not None else round(u(*GSD_RANGE), 3)),
        palette={"grass": grass, "dry_grass": dry, "asphalt": asphalt, "paving": paving, "tree": tree,
                 "roofs": _roof_palette(family, rng)},
        street=street, road_widen=float(road_widen), meadow=meadow, meadow_amp=float(meadow_amp),
        meadow_period=float(u(2.0, 6.0)), meadow_angle=float(u(0, 180)), crown_amp=float(u(0.05, 0.25)),
        sun=(float(sun[0]), float(sun[1])), gain=gain, gamma=float(gamma), haze=float(haze), blur=float(blur),
        noise=float(noise), jpeg=jpeg,
        dsm_noise=float(u(0, 0.3)), dsm_offset=float(u(-5, 5)), dsm_holes=float(u(0, 0.03)),
        dsm_coarsen=int(rng.choice([1, 1, 2, 4])),
    )
    if ground:
        style.ground, tint = _draw_ground(seed, family)
        if tint is not None:
            style.palette["asphalt"] = tint
    if world:
        style.world = _draw_world(seed, family)
    if not held:
        check_training_style(style)
    return style


def _draw_ground(seed: int, family: Family) -> tuple[dict, np.ndarray | None]:
    """The ground texture bank's knobs (plain data) and, for tinted pavement, the street colour."""
    rng = np.random.default_rng([seed, 0x6E0D, list(Family).index(family)])
    u = rng.uniform
    street = str(rng.choice(GROUND_TEXTURES["street"]))
    meadow = str(rng.choice(GROUND_TEXTURES["meadow"]))
    ground = {
        "street": street, "meadow": meadow,
        "street_amp": float(u(0.04, 0.12)),  # grain / per-paver / per-slab tone spread
        "paver_m": float(u(0.2, 0.4)), "slab_m": float(u(2.0, 5.0)), "street_angle": float(u(0, 180)),
        "meadow_amp": float(u(0.06, 0.2)),
        "band_period": float(u(*MOWING_PERIOD)), "band_angle": float(u(0, 180)),
        "patch_cell": float(u(20.0, 60.0)), "patch_levels": int(rng.integers(3, 6)),
    }
    tint = None
    if rng.random() < (0.6 if street == "pavers" else 0.2):  # brick-red to ochre pavement
        tint = _rgbn(u(0, 45), u(0.15, 0.45), u(0.3, 0.6), 0.35)
    return ground, tint


def _draw_world(seed: int, family: Family) -> dict:
    """The world features' knobs (plain data): what generate_scene lays out beyond its own town."""
    rng = np.random.default_rng([seed, 0x3041D, list(Family).index(family)])
    u = rng.uniform
    halls = (int(rng.integers(WORLD["industrial_halls"][0], WORLD["industrial_halls"][1] + 1))
             if family == Family.INDUSTRIAL else int(rng.random() < WORLD["hall_chance"]))
    return {
        "hip_share": float(u(*WORLD["hip_share"])), "halls": halls,
        "pond": bool(rng.random() < WORLD["pond_chance"]),
        "density": float(u(*WORLD["density"])) if rng.random() < WORLD["dense_chance"] else 1.0,
        "water": _rgbn(u(150, 210), u(0.3, 0.6), u(0.12, 0.3), u(0.02, 0.06)).round(4).tolist(),
        "off_nadir": float(u(*WORLD["off_nadir"])) if rng.random() < WORLD["lean_chance"] else 0.0,
        "lean_azimuth": float(u(0, 360)),
        "parking": (int(rng.integers(WORLD["industrial_lots"][0], WORLD["industrial_lots"][1] + 1))
                    if family == Family.INDUSTRIAL else int(rng.random() < WORLD["lot_chance"])),
    }


def lean_buildings(refl: np.ndarray, ids: np.ndarray, buildings: list, gsd: float, off_nadir: float,
                   azimuth: float) -> np.ndarray:
    """Building lean (in place on ``refl``, bands x H x W): each roof moved by its height x tan(``off_nadir``)
    towards ``azimuth`` (degrees clockwise from north), its facade drawn along the way, lowest building first
    so that taller ones hide what is behind them. Labels and ids are not touched: they keep the footprints."""
    if off_nadir <= 0:
        return refl
    t = math.tan(math.radians(off_nadir))
    dx, dy = math.sin(math.radians(azimuth)), -math.cos(math.radians(azimuth))  # image columns, rows
    h, w = ids.shape
    roofs = {}  # every roof as rendered, before any is moved onto another
    for b in buildings:
        rows, cols = np.nonzero(ids == b.id)
        if len(rows):
            roofs[b.id] = rows, cols, refl[:, rows, cols].copy()
    for b in sorted(buildings, key=lambda b: b.height + b.ridge_rise):
        if b.id not in roofs:
            continue
        rows, cols, roof = roofs[b.id]
        wall = roof.mean(axis=1, keepdims=True) * np.float32(0.55)  # a facade: darker than its roof
        shift = (b.height + 0.5 * b.ridge_rise) * t / gsd
        steps = max(int(math.ceil(shift)), 1)
        for k in range(1, steps + 1):
            f = shift * k / steps
            r = np.clip(np.round(rows + f * dy).astype(np.int64), 0, h - 1)
            c = np.clip(np.round(cols + f * dx).astype(np.int64), 0, w - 1)
            refl[:, r, c] = roof if k == steps else wall
    return refl


def _hash01(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random value in [0, 1) per integer pair (one tone per paver or slab)."""
    h = (a.astype(np.int64) * 73856093) ^ (b.astype(np.int64) * 19349663)
    return ((h % 10007) / 10007.0).astype(np.float32)


def _ground_textures(refl: np.ndarray, labels: np.ndarray, gsd: float, g: dict, rng: np.random.Generator) -> None:
    """Multiply streets/pavements (impervious) and meadows (low vegetation) by the bank's textures, in place."""
    shape = labels.shape
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    rows *= gsd
    cols *= gsd

    def along(angle: float) -> tuple[np.ndarray, np.ndarray]:
        a = math.radians(angle)
        return cols * math.cos(a) + rows * math.sin(a), -cols * math.sin(a) + rows * math.cos(a)

    hard = labels == IMPERVIOUS
    if g["street"] != "smooth" and hard.any():
        amp = g["street_amp"]
        if g["street"] == "grain":
            tex = 1 + amp * rng.standard_normal(shape, dtype=np.float32)
        else:
            x, y = along(g["street_angle"])
            if g["street"] == "pavers":  # running bond: bricks of length L, width L/2, rows offset by L/2
                length = g["paver_m"]
                row = np.floor(y / (length / 2))
                xo = x + (row % 2) * (length / 2)
                col = np.floor(xo / length)
                joint = (xo / length - col < 0.12) | (y / (length / 2) - row < 0.15)
            else:  # slabs: large square panels with dark joints about a pixel wide
                length = g["slab_m"]
                row, col = np.floor(y / length), np.floor(x / length)
                width = max(gsd, 0.05) / length
                joint = (x / length - col < width) | (y / length - row < width)
            tex = 1 + amp * 2 * (_hash01(row, col) - 0.5) - 0.15 * joint
        refl[:, hard] *= tex[hard].astype(np.float32)
    meadow = labels == LOW_VEGETATION
    if g["meadow"] != "none" and meadow.any():
        amp = g["meadow_amp"]
        if g["meadow"] == "grain":
            tex = 1 + amp * rng.standard_normal(shape, dtype=np.float32)
        elif g["meadow"] == "bands":  # mowing: square-ish bands, at right angles in alternate fields
            fields = _fractal(shape, 40 / gsd, rng, 1) > 0
            x, y = along(g["band_angle"])
            phase = np.where(fields, x, y) / g["band_period"]
            tex = 1 + amp * np.tanh(3 * np.sin(2 * math.pi * phase))
        else:  # patchwork: sharp-edged fields of a few tones
            levels = g["patch_levels"]
            f = _fractal(shape, g["patch_cell"] / gsd, rng, 2)
            q = np.floor((np.clip(f, -1, 0.999) + 1) / 2 * levels) / max(levels - 1, 1)
            tex = 1 + amp * 2 * (q - 0.5)
        refl[:, meadow] *= tex[meadow].astype(np.float32)


def check_training_style(style: Style) -> None:
    """Refuse a style that belongs to, or strays into, the held-out family's reserved ranges."""
    problems = []
    if style.family not in TRAIN_FAMILIES:
        problems.append(f"style family {style.family.value!r} is held out for evaluation; training uses "
                        f"{', '.join(f.value for f in TRAIN_FAMILIES)}")
    for rgb in style.palette["roofs"][:, :3]:
        h, s, _ = colorsys.rgb_to_hsv(*(float(c) for c in rgb))
        if s > HELD_OUT_MIN_SAT and HELD_OUT_ROOF_HUES[0] <= h * 360 <= HELD_OUT_ROOF_HUES[1]:
            problems.append(f"roof colour {np.round(rgb, 2).tolist()} lies in the held-out hue band {HELD_OUT_ROOF_HUES}")
    if style.meadow in HELD_OUT_MEADOWS:
        problems.append(f"meadow texture {style.meadow!r} is held out")
    if style.street in HELD_OUT_STREETS:
        problems.append(f"street surface {style.street!r} is held out")
    ground = style.ground or {}
    if ground.get("meadow") == "bands" and HELD_OUT_STRIPE_PERIOD[0] <= ground["band_period"] <= HELD_OUT_STRIPE_PERIOD[1]:
        problems.append(f"mowing bands of period {ground['band_period']:.1f} m lie in the held-out crop stripes' "
                        f"{HELD_OUT_STRIPE_PERIOD} m")
    for key, kinds in GROUND_TEXTURES.items():
        if ground and ground.get(key) not in kinds:
            problems.append(f"ground texture {key}={ground.get(key)!r} is not one of {kinds}")
    if problems:
        raise InputError(problems)


def training_style(seed: int, gsd: float | None = None, *, ground: bool = False, world: bool = False) -> Style:
    """A style for training data: training family ``seed % 4`` (so consecutive seeds cover them all);
    ``ground`` adds the ground texture bank, ``world`` the world features."""
    family = TRAIN_FAMILIES[int(seed) % len(TRAIN_FAMILIES)]
    return draw_style(seed, family, gsd, ground=ground, world=world)


def parse_style(text: str, gsd: float | None = None, *, ground: bool = False, world: bool = False) -> Style:
    """``FAMILY`` or ``FAMILY:SEED`` (the ``--style`` option) -> a drawn style (``ground``, ``world``: its
    ground texture bank and world features, as ``draw_style``)."""
    family, _, seed = text.partition(":")
    try:
        number = int(seed) if seed else 0
    except ValueError:
        raise InputError(f"--style must be FAMILY or FAMILY:SEED with an integer seed, got {text!r}") from None
    if (problem := seed_problem(number, f"--style {text!r}: its seed")) is not None:
        raise InputError(problem)
    if gsd is not None and not GSD_RANGE[0] <= gsd <= GSD_RANGE[1]:
        gsd = min(max(gsd, GSD_RANGE[0]), GSD_RANGE[1])  # the style's GSD-dependent draws only; the scene keeps --gsd
    return draw_style(number, family.strip(), gsd, ground=ground, world=world)


def held_out_style(seed: int, gsd: float | None = None) -> Style:
    """A style of the held-out family, for evaluation only."""
    return draw_style(seed, HELD_OUT_FAMILIES[0], gsd)


# --------------------------------------------------------------------------------------------

_JPEG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.float32).reshape(8, 8)
_JPEG_CHROMA = np.full((8, 8), 99, dtype=np.float32)
_JPEG_CHROMA[:4, :4] = np.array([17, 18, 24, 47, 18, 21, 26, 66, 24, 26, 56, 99, 47, 66, 99, 99]).reshape(4, 4)


def jpeg_like(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG's losses without a codec: YCbCr, 4:2:0 chroma, 8 x 8 DCT quantised by the standard tables."""
    from scipy.fft import dctn, idctn
    from scipy.ndimage import zoom

    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    q_l = np.clip(np.floor((_JPEG_LUMA * scale + 50) / 100), 1, 255)
    q_c = np.clip(np.floor((_JPEG_CHROMA * scale + 50) / 100), 1, 255)
    rgb = img[:3].astype(np.float32)
    y = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    cb = 128 - 0.168736 * rgb[0] - 0.331264 * rgb[1] + 0.5 * rgb[2]
    cr = 128 + 0.5 * rgb[0] - 0.418688 * rgb[1] - 0.081312 * rgb[2]

    def blocks(ch: np.ndarray, q: np.ndarray) -> np.ndarray:
        h, w = ch.shape
        ph, pw = -h % 8, -w % 8
        p = np.pad(ch, ((0, ph), (0, pw)), mode="edge") - 128
        b = p.reshape(p.shape[0] // 8, 8, p.shape[1] // 8, 8).transpose(0, 2, 1, 3)
        c = dctn(b, axes=(2, 3), norm="ortho")
        c = np.round(c / q) * q
        r = idctn(c, axes=(2, 3), norm="ortho").transpose(0, 2, 1, 3).reshape(p.shape) + 128
        return r[:h, :w]

    h, w = y.shape
    y = blocks(y, q_l)
    small = lambda ch: blocks(ch[::2, ::2], q_c)  # noqa: E731
    cb = zoom(small(cb), 2, order=1)[:h, :w]
    cr = zoom(small(cr), 2, order=1)[:h, :w]
    cb = np.pad(cb, ((0, h - cb.shape[0]), (0, w - cb.shape[1])), mode="edge")
    cr = np.pad(cr, ((0, h - cr.shape[0]), (0, w - cr.shape[1])), mode="edge")
    out = img.copy()
    out[0] = np.clip(np.round(y + 1.402 * (cr - 128)), 1, 255)
    out[1] = np.clip(np.round(y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128)), 1, 255)
    out[2] = np.clip(np.round(y + 1.772 * (cb - 128)), 1, 255)
    return out
