"""Issue #17, step 1: synthetic scenes with per-building ids and terraced blocks of touching houses."""

from __future__ import annotations

import json

import numpy as np
import rasterio
import shapely

from rsmamba.synth import BUILDING, generate_scene, write_scene


def test_instance_ids_are_the_building_footprints():
    scene = generate_scene(256, seed=4)
    ids = scene.t1.instances
    assert ids.dtype == np.int32
    assert np.array_equal(ids > 0, scene.t1.labels == BUILDING)
    assert set(np.unique(ids[ids > 0]).tolist()) <= {b.id for b in scene.t1.buildings}


def test_terraced_blocks_touch_and_differ_at_party_walls():
    scene = generate_scene(768, seed=21, terraced=0.7)
    houses = [b for b in scene.t1.buildings if b.shape == "terrace"]
    assert len(houses) >= 8
    pairs = [(a, b) for i, a in enumerate(houses) for b in houses[i + 1:]
             if a.polygon.distance(b.polygon) < 1e-6 and a.polygon.intersection(b.polygon).length > 3]
    assert len(pairs) >= 5  # shared walls, not corner touches
    for a, b in pairs:
        assert abs(a.height - b.height) >= 0.8 - 1e-9 or a.roof_color != b.roof_color
    ids = scene.t1.instances
    # touching houses keep their own ids in the raster: a party wall is a 4-neighbour id change
    wall = (ids[:, 1:] != ids[:, :-1]) & (ids[:, 1:] > 0) & (ids[:, :-1] > 0)
    wall_rows = (ids[1:] != ids[:-1]) & (ids[1:] > 0) & (ids[:-1] > 0)
    assert wall.sum() + wall_rows.sum() > 50
    # and the DSM steps there (different eave heights)
    dsm = scene.t1.dsm
    assert np.median(np.abs(dsm[:, 1:] - dsm[:, :-1])[wall]) > 0.3 if wall.any() else True


def test_terraced_houses_fit_between_roads_and_do_not_overlap():
    scene = generate_scene(512, seed=2, terraced=1.0)
    polys = [b.polygon for b in scene.t1.buildings]
    union = shapely.union_all(polys)
    assert abs(union.area - sum(p.area for p in polys)) < 1e-6 * union.area


def test_write_scene_instances_option(tmp_path):
    paths = write_scene(tmp_path / "s", size=128, seed=3, terraced=0.5, instances=True)
    with rasterio.open(paths["instances_t1"]) as src:
        ids = src.read(1)
        assert src.dtypes[0] == "uint32"
    with rasterio.open(paths["labels_t1"]) as src:
        assert np.array_equal(ids > 0, src.read(1) == BUILDING)
    meta = json.loads(paths["scene"].read_text())
    assert meta["options"]["instances"] is True and meta["options"]["terraced"] == 0.5
    plain = write_scene(tmp_path / "p", size=128, seed=3)
    assert "instances_t1" not in plain
    assert "terraced" not in json.loads(plain["scene"].read_text())["options"]
