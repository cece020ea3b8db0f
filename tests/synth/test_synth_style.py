"""Domain-randomised styles: seeded, exact labels kept, and the held-out family never in training."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rsmamba.classes import ISPRS_CLASSES
from rsmamba.errors import InputError
from rsmamba.synth import BUILDING, DSM_NODATA, generate_scene
from rsmamba.synth.style import (
    HELD_OUT_FAMILIES, TRAIN_FAMILIES, Family, check_training_style, draw_style, held_out_style, jpeg_like,
    parse_style, training_style,
)

SIZE, GSD = 192, 0.5


def test_training_styles_never_draw_the_held_out_family() -> None:
    seen = set()
    for seed in range(60):
        style = training_style(seed)
        seen.add(style.family)
        assert style.family in TRAIN_FAMILIES
        check_training_style(style)  # raises if a reserved roof hue, meadow or street slipped in
        assert 0.1 <= style.gsd <= 1.0
    assert seen == set(TRAIN_FAMILIES)
    assert not set(TRAIN_FAMILIES) & set(HELD_OUT_FAMILIES)


def test_the_guard_refuses_held_out_styles() -> None:
    with pytest.raises(InputError, match="held out"):
        check_training_style(held_out_style(0))
    leaked = training_style(1)
    leaked.palette["roofs"][6] = np.array((0.2, 0.4, 0.8, 0.3), np.float32)  # saturated blue
    with pytest.raises(InputError, match="hue band"):
        check_training_style(leaked)


def test_style_is_seeded_and_parsed() -> None:
    a, b = draw_style(5, "overcast", 0.3), draw_style(5, Family.OVERCAST, 0.3)
    assert json.dumps(a.describe()) == json.dumps(b.describe())
    assert a.describe() != draw_style(6, "overcast", 0.3).describe()
    assert parse_style("heldout-nordic:4").family == Family.HELDOUT_NORDIC
    with pytest.raises(InputError, match="unknown style family"):
        parse_style("gothic")
    with pytest.raises(InputError, match="integer seed"):
        parse_style("suburban:x")


def test_styled_scene_is_deterministic_with_exact_labels() -> None:
    style = held_out_style(2, GSD)
    style.dsm_holes = 0.02
    scene = generate_scene(SIZE, seed=4, gsd=GSD, style=style)
    same = held_out_style(2, GSD)
    same.dsm_holes = 0.02
    again = generate_scene(SIZE, seed=4, gsd=GSD, style=same)
    np.testing.assert_array_equal(scene.t1.ortho, again.t1.ortho)
    plain = generate_scene(SIZE, seed=4, gsd=GSD)
    assert not np.array_equal(scene.t1.ortho, plain.t1.ortho)
    # Labels still equal the rasterised footprints, whatever the look.
    from rasterio.features import rasterize

    burnt = rasterize([(b.polygon, 1) for b in scene.t1.buildings], out_shape=(SIZE, SIZE), transform=scene.transform)
    np.testing.assert_array_equal(burnt == 1, scene.t1.labels == BUILDING)
    assert set(np.unique(scene.t1.labels)) <= {c.id for c in ISPRS_CLASSES}
    assert (scene.t1.dsm == DSM_NODATA).any()  # holes in the measured DSM
    assert scene.describe()["options"]["style"]["family"] == "heldout-nordic"
    json.dumps(scene.describe())


def test_jpeg_like_loses_detail_more_at_low_quality() -> None:
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(128, 40, (3, 40, 44)), 1, 255).astype(np.uint8)
    err = {q: np.abs(jpeg_like(img, q).astype(int) - img).mean() for q in (90, 30)}
    assert 0 < err[90] < err[30]


def test_ground_texture_bank_adds_to_training_styles_without_changing_their_other_draws() -> None:
    """The image-only recipe's texture bank: every kind drawn, never a held-out texture, the rest of the style as
    without it (so scenes drawn without the bank stay as they were)."""
    from rsmamba.synth.style import GROUND_TEXTURES, HELD_OUT_STRIPE_PERIOD

    seen = {key: set() for key in GROUND_TEXTURES}
    for seed in range(80):
        plain, textured = training_style(seed), training_style(seed, ground=True)
        check_training_style(textured)
        assert plain.ground is None and textured.ground is not None
        a, b = plain.describe(), textured.describe()
        assert {k: v for k, v in a.items() if k not in ("ground", "palette")} == \
            {k: v for k, v in b.items() if k not in ("ground", "palette")}
        assert {k: v for k, v in a["palette"].items() if k != "asphalt"} == \
            {k: v for k, v in b["palette"].items() if k != "asphalt"}
        for key in GROUND_TEXTURES:
            seen[key].add(textured.ground[key])
        assert not HELD_OUT_STRIPE_PERIOD[0] <= textured.ground["band_period"] <= HELD_OUT_STRIPE_PERIOD[1]
    assert seen == {key: set(kinds) for key, kinds in GROUND_TEXTURES.items()}
    with pytest.raises(InputError, match="held-out family has its own"):
        draw_style(0, Family.HELDOUT_NORDIC, ground=True)
    leaked = training_style(2, ground=True)
    leaked.ground.update(meadow="bands", band_period=4.0)
    with pytest.raises(InputError, match="crop stripes"):
        check_training_style(leaked)


@pytest.mark.parametrize(("street", "meadow"), [("pavers", "bands"), ("slabs", "patchwork"), ("grain", "grain")])
def test_ground_textures_touch_only_streets_and_meadows(street: str, meadow: str) -> None:
    """Same scene with and without the bank (camera noise, blur and JPEG off so pixels can be compared): roofs,
    trees and labels identical; streets and meadows textured."""
    from rsmamba.synth import IMPERVIOUS, LOW_VEGETATION

    def scene(ground: bool):
        style = training_style(7, GSD, ground=ground)
        if ground:
            style.ground.update(street=street, meadow=meadow)
            style.palette["asphalt"] = training_style(7, GSD).palette["asphalt"]
        style.noise, style.blur, style.jpeg = 0.0, 0.0, None
        return generate_scene(SIZE, seed=3, gsd=GSD, style=style).t1

    plain, textured = scene(False), scene(True)
    np.testing.assert_array_equal(plain.labels, textured.labels)
    ground = np.isin(plain.labels, (IMPERVIOUS, LOW_VEGETATION))
    np.testing.assert_array_equal(plain.ortho[:, ~ground], textured.ortho[:, ~ground])
    for cls in (IMPERVIOUS, LOW_VEGETATION):
        m = plain.labels == cls
        diff = np.abs(plain.ortho[:, m].astype(int) - textured.ortho[:, m].astype(int))
        assert diff.mean() > 1.0, cls  # a visible texture, not rounding


def test_world_features_widen_the_layout_with_exact_labels() -> None:
    """Halls, a pond, hipped roofs and a denser town from a style's world features; without them the style and
    its scene are as before; labels still equal the rasterised footprints, the pond is clutter below ground."""
    from rasterio.features import rasterize

    from rsmamba.synth import CLUTTER, IMPERVIOUS, LOW_VEGETATION

    size, gsd, seed = 384, 0.4, 20_002  # an industrial style: 1-3 halls
    plain = training_style(seed, gsd)
    style = training_style(seed, gsd, world=True)
    assert plain.world is None and {k: v for k, v in style.describe().items() if k != "world"} == \
        {k: v for k, v in plain.describe().items() if k != "world"}
    style.world.update(pond=True, hip_share=1.0, density=1.5)
    style.dsm_noise, style.dsm_offset, style.dsm_holes, style.dsm_coarsen = 0.0, 0.0, 0.0, 1  # the true DSM
    scene = generate_scene(size, seed=4, gsd=gsd, style=style)
    before = generate_scene(size, seed=4, gsd=gsd, style=training_style(seed, gsd))
    assert np.array_equal(before.t1.ortho, generate_scene(size, seed=4, gsd=gsd, style=plain).t1.ortho)
    t1 = scene.t1
    burnt = rasterize([(b.polygon, 1) for b in t1.buildings], out_shape=(size, size), transform=scene.transform)
    np.testing.assert_array_equal(burnt == 1, t1.labels == BUILDING)
    assert max(b.length for b in t1.buildings) >= 30 and any(b.roof == "flat" and b.length >= 30 for b in t1.buildings)
    counts = []
    for density in (1.0, 1.6):  # a dense core: more (smaller) buildings where there is room
        core = training_style(seed, gsd, world=True)
        core.world.update(halls=0, parking=0, pond=False, density=density)
        counts.append(len(generate_scene(size, seed=4, gsd=gsd, style=core).t1.buildings))
    assert counts[1] > 1.4 * counts[0]
    roofs = {b.roof for b in t1.buildings}
    assert "hip" in roofs and "gable" not in roofs  # every gabled roof hipped at share 1
    # a hipped roof: along its ridge the ends are lower than the middle (a gable's ridge is level)
    hip = max((b for b in t1.buildings if b.roof == "hip"), key=lambda b: b.length * b.width)
    a = math.radians(hip.angle) + (0 if hip.length >= hip.width else math.pi / 2)
    half_long, half = max(hip.length, hip.width) / 2, min(hip.length, hip.width) / 2

    def dsm_at(d: float) -> float:  # the DSM on the ridge line, d metres from the centre
        x, y = hip.centre[0] + d * math.cos(a), hip.centre[1] + d * math.sin(a)
        col, row = ~scene.transform * (x, y)
        return float(t1.dsm[int(row), int(col)])

    end = half_long - 0.25 * half
    assert dsm_at(0) - max(dsm_at(end), dsm_at(-end)) > 0.5 * hip.ridge_rise
    pond = t1.labels == CLUTTER
    assert pond.sum() * gsd * gsd > 100  # at least 100 m2 of water (plus small clutter objects)
    ground = np.isin(t1.labels, (IMPERVIOUS, LOW_VEGETATION))
    assert t1.ortho[:, pond].mean() < t1.ortho[:, ground].mean()  # dark water


def test_building_lean_moves_roofs_away_from_nadir_and_keeps_the_footprint_labels() -> None:
    """Off-nadir lean changes the image towards the lean azimuth (roofs and facades), never the labels or DSM."""
    size, gsd = 256, 0.25
    style = training_style(20_000, gsd, world=True)
    style.noise, style.blur, style.jpeg = 0.0, 0.0, None
    upright = generate_scene(size, seed=9, gsd=gsd, style=style)
    style.world.update(off_nadir=10.0, lean_azimuth=90.0)  # roofs move east: towards higher columns
    leaning = generate_scene(size, seed=9, gsd=gsd, style=style)
    np.testing.assert_array_equal(upright.t1.labels, leaning.t1.labels)
    np.testing.assert_array_equal(upright.t1.dsm, leaning.t1.dsm)
    changed = np.any(upright.t1.ortho != leaning.t1.ortho, axis=0)
    building = upright.t1.labels == BUILDING
    assert changed.any() and changed[~building].any()  # roofs now cover ground beside their footprints
    # every changed pixel outside a footprint lies east of (or beside) a building, never only west of one
    rows, cols = np.nonzero(changed & ~building)
    east = np.zeros_like(building)
    for k in range(1, 40):  # the largest shift: a 30 m building (plus half its ridge) x tan(10 deg) / 0.25 m
        east[:, k:] |= building[:, :-k]
    assert east[rows, cols].all()


def test_parking_lots_are_paved_and_hold_parked_cars() -> None:
    from scipy.ndimage import binary_dilation

    from rsmamba.synth import CAR, IMPERVIOUS

    size, gsd = 512, 0.25

    def scene(lots: int):
        style = training_style(20_000, gsd, world=True)
        style.world.update(parking=lots, off_nadir=0.0, pond=False, halls=0)
        return generate_scene(size, seed=2, gsd=gsd, style=style).t1.labels

    without, with_lots = scene(0), scene(2)
    new_cars = (with_lots == CAR) & (without != CAR)
    assert new_cars.sum() * gsd * gsd > 10 * 1.8 * 4.5 * 0.8  # at least ten parked cars
    ring = binary_dilation(new_cars, iterations=2) & ~binary_dilation(new_cars)
    ring &= with_lots != CAR
    assert (with_lots[ring] == IMPERVIOUS).mean() > 0.95  # parked on pavement


def test_a_style_given_as_its_text_is_the_clis_style() -> None:
    """write_scene(style='suburban') was an AttributeError; it is now what --style suburban:3 draws."""
    as_text = generate_scene(SIZE, seed=2, gsd=GSD, style="suburban:3")
    drawn = generate_scene(SIZE, seed=2, gsd=GSD, style=parse_style("suburban:3", gsd=GSD))
    assert np.array_equal(as_text.t1.ortho, drawn.t1.ortho) and as_text.options == drawn.options
