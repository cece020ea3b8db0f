"""The synthetic scene generator: exact, self-consistent ground truth that other tests rely on."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import rasterio
from rasterio.features import rasterize

from rsmamba.classes import IGNORE_INDEX, ISPRS_CLASSES
from rsmamba.errors import InputError
from rsmamba.synth import BUILDING, DSM_NODATA, generate_scene, write_scene

SIZE, GSD = 256, 0.5  # 128 m: a dozen buildings, fast


@pytest.fixture(scope="module")
def scene():
    return generate_scene(SIZE, seed=7, gsd=GSD)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("scene")
    return write_scene(out, size=SIZE, seed=3, gsd=GSD, epsg=32633, dsm_gsd=1.0)


def test_same_seed_same_scene_other_seed_other_scene(scene) -> None:
    again = generate_scene(SIZE, seed=7, gsd=GSD)
    for a, b in ((scene.t1, again.t1), (scene.t2, again.t2)):
        np.testing.assert_array_equal(a.ortho, b.ortho)
        np.testing.assert_array_equal(a.dsm, b.dsm)
        np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(scene.change, again.change)
    other = generate_scene(SIZE, seed=8, gsd=GSD)
    assert not np.array_equal(scene.t1.labels, other.t1.labels)


@pytest.mark.parametrize("seed", [1, 2])
def test_every_class_present_with_plausible_fractions(seed: int) -> None:
    s = generate_scene(SIZE, seed=seed, gsd=GSD)
    counts = np.bincount(s.t1.labels.ravel(), minlength=256)
    assert counts[len(ISPRS_CLASSES):].sum() == 0  # no ignore/unknown values without a collar
    frac = counts[: len(ISPRS_CLASSES)] / counts.sum()
    impervious, building, low_veg, tree, car, clutter = frac
    assert 0.08 < impervious < 0.5
    assert 0.05 < building < 0.45
    assert 0.15 < low_veg < 0.75
    assert 0.01 < tree < 0.3
    assert 0 < car < 0.05
    assert 0 < clutter < 0.05


def test_dsm_higher_on_buildings_and_trees_than_ground(scene) -> None:
    for epoch in (scene.t1, scene.t2):
        above = epoch.dsm - scene.ground
        b = epoch.labels == BUILDING
        assert np.all(above[b] > 2.5)  # eaves >= 3 m, minus noise and gentle relief
        assert np.median(above[epoch.labels == 3]) > 3.0
        assert np.abs(np.median(above[epoch.labels == 2])) < 0.2
        assert np.abs(np.median(above[epoch.labels == 0])) < 0.2


def test_building_polygons_rasterise_back_to_building_labels(scene) -> None:
    for epoch in (scene.t1, scene.t2):
        burnt = rasterize([(b.polygon, 1) for b in epoch.buildings], out_shape=(SIZE, SIZE), transform=scene.transform)
        label = epoch.labels == BUILDING
        iou = (label & (burnt == 1)).sum() / (label | (burnt == 1)).sum()
        assert iou > 0.999


def test_buildings_have_varied_shapes_and_orientations() -> None:
    s = generate_scene(512, seed=11, gsd=0.5)
    shapes = {b.shape for b in s.t1.buildings}
    assert {"rect", "L"} <= shapes and len(shapes) >= 3
    assert any(len(b.polygon.interiors) for b in s.t1.buildings if b.shape == "courtyard") or "courtyard" not in shapes
    angles = np.array([b.angle % 90 for b in s.t1.buildings])
    assert np.ptp(angles) > 10  # not all axis-aligned, not all the same
    sides = np.array([max(b.length, b.width) for b in s.t1.buildings])
    assert sides.min() >= 8 and sides.max() <= 40


def test_change_is_exactly_the_added_and_demolished_buildings(scene) -> None:
    assert scene.added and scene.removed
    ids1 = {b.id for b in scene.t1.buildings}
    ids2 = {b.id for b in scene.t2.buildings}
    assert ids1 - ids2 == {b.id for b in scene.removed}
    assert ids2 - ids1 == {b.id for b in scene.added}
    b1, b2 = scene.t1.labels == BUILDING, scene.t2.labels == BUILDING
    np.testing.assert_array_equal(scene.change == 1, b1 ^ b2)
    # demolished plots are no longer buildings; the rest of the scene keeps its buildings
    assert not b2[(scene.change == 1) & b1].any()


def test_second_epoch_changes_illumination(scene) -> None:
    same = (scene.change == 0) & (scene.t1.labels == scene.t2.labels)
    a = scene.t1.ortho[:, same].astype(float).mean(axis=1)
    b = scene.t2.ortho[:, same].astype(float).mean(axis=1)
    assert np.abs(a - b).max() > 2  # a visible radiometric shift on unchanged ground
    assert scene.t1.sun_azimuth != scene.t2.sun_azimuth


def test_buildings_not_separable_by_colour_alone(scene) -> None:
    """A nearest-class-mean colour rule must misclassify a fair share of buildings vs impervious."""
    img, lab = scene.t1.ortho.reshape(3, -1).T.astype(float), scene.t1.labels.ravel()
    keep = (lab == 0) | (lab == 1)
    x, y = img[keep], lab[keep]
    m0, m1 = x[y == 0].mean(0), x[y == 1].mean(0)
    pred = (np.linalg.norm(x - m1, axis=1) < np.linalg.norm(x - m0, axis=1)).astype(int)
    assert (pred == y).mean() < 0.9


def test_band_options() -> None:
    irrg = generate_scene(64, seed=1, gsd=1.0, bands="irrg")
    rgbn = generate_scene(64, seed=1, gsd=1.0, bands="rgbn")
    assert irrg.t1.ortho.shape == (3, 64, 64) and rgbn.t1.ortho.shape == (4, 64, 64)
    veg = rgbn.t1.labels == 2
    assert rgbn.t1.ortho[3][veg].mean() > rgbn.t1.ortho[0][veg].mean()  # NIR bright on vegetation


def test_nodata_collar() -> None:
    s = generate_scene(128, seed=2, gsd=1.0, nodata_collar=True)
    assert 0.6 < s.valid.mean() < 0.97
    assert not s.valid[0, 0] and not s.valid[-1, -1] and s.valid[64, 64]
    assert (s.t1.ortho[:, ~s.valid] == 0).all() and (s.t1.ortho[:, s.valid] > 0).all()
    assert (s.t1.labels[~s.valid] == IGNORE_INDEX).all() and (s.t1.dsm[~s.valid] == DSM_NODATA).all()
    assert (s.change[~s.valid] == IGNORE_INDEX).all()


def test_bad_options_are_reported_together() -> None:
    with pytest.raises(InputError) as err:
        generate_scene(8, seed=0, gsd=-1, epsg=4326, bands="xyz")
    assert len(err.value.problems) == 4
    # A foot CRS: --gsd 0.25 (metres) became 0.25 ft, a town 3.3x too small while scene.json said 0.25
    with pytest.raises(InputError, match=r"--epsg 2263 .* counts in US survey foot: the scene is laid out in metres"):
        generate_scene(256, seed=0, gsd=0.25, epsg=2263)


@pytest.mark.parametrize("rate", [5, -1, float("nan")])
def test_a_change_rate_outside_0_1_is_refused(tmp_path, rate: float) -> None:
    """change_rate=5 removed every building and scene.json recorded 5; -1 removed and added some."""
    with pytest.raises(InputError, match=r"change_rate must be a share in \[0, 1\]"):
        write_scene(tmp_path / "s", size=SIZE, change_rate=rate)
    assert not (tmp_path / "s").exists()


def test_written_files_are_georeferenced_and_consistent(written) -> None:
    expected = {"ortho_t1", "ortho_t2", "dsm_t1", "dsm_t2", "labels_t1", "labels_t2", "change",
                "buildings_t1", "buildings_t2", "building_changes", "scene"}
    assert set(written) == expected
    assert all(p.exists() for p in written.values())
    assert not list(written["scene"].parent.glob(".*partial*"))
    with rasterio.open(written["ortho_t1"]) as src:
        assert src.crs.to_epsg() == 32633 and src.count == 3 and src.dtypes[0] == "uint8"
        assert src.res == (GSD, GSD) and src.transform.b == 0 and src.transform.e < 0
        ortho_bounds = src.bounds
    with rasterio.open(written["labels_t1"]) as src:
        assert src.crs.to_epsg() == 32633 and src.nodata == IGNORE_INDEX
        assert src.colormap(1)[1][:3] == ISPRS_CLASSES[1].color
        labels, transform = src.read(1), src.transform
    with rasterio.open(written["dsm_t1"]) as src:
        assert src.crs.to_epsg() == 32633 and src.dtypes[0] == "float32"
        assert src.res == (1.0, 1.0)  # --dsm-gsd: a different grid...
        assert src.bounds.left < ortho_bounds.left and src.bounds.top > ortho_bounds.top  # ...covering the ortho
        assert (src.transform.c - ortho_bounds.left) % 1.0 != 0  # ...with a shifted origin
    import geopandas as gpd

    polys = gpd.read_file(written["buildings_t1"])
    assert polys.crs.to_epsg() == 32633 and set(polys["class"]) == {1} and polys["id"].is_unique
    burnt = rasterize(((g, 1) for g in polys.geometry), out_shape=labels.shape, transform=transform)
    np.testing.assert_array_equal(burnt == 1, labels == BUILDING)
    info = json.loads(written["scene"].read_text())
    assert info["seed"] == 3 and info["gsd"] == GSD and info["crs"] == "EPSG:32633"
    changes = gpd.read_file(written["building_changes"])
    assert info["buildings_added"] == (changes["change"] == "added").sum() > 0
    assert info["buildings_removed"] == (changes["change"] == "demolished").sum() > 0


def test_cli_end_to_end(tmp_path, capsys) -> None:
    from rsmamba.cli import main

    out = tmp_path / "cli"
    rc = main(["synth", "-o", str(out), "--size", "96", "--seed", "5", "--gsd", "1.0", "--bands", "rgbn", "--nodata-collar"])
    assert rc == 0
    assert "ortho_t1" in capsys.readouterr().out
    with rasterio.open(out / "ortho_t2.tif") as src:
        assert src.count == 4 and src.nodata == 0 and src.crs.to_epsg() == 32632
    assert main(["synth", "-o", str(tmp_path / "bad"), "--size", "4"]) == 2
    assert "--size" in capsys.readouterr().err


def test_shipped_example_scene_is_consistent_and_small() -> None:
    from pathlib import Path

    import geopandas as gpd

    folder = Path(__file__).resolve().parents[2] / "examples" / "scene"
    files = ["ortho.tif", "dsm.tif", "labels.tif", "buildings.gpkg", "ortho_t2.tif", "dsm_t2.tif", "change.tif", "scene.json", "README.md"]
    assert all((folder / f).exists() for f in files)
    assert sum((folder / f).stat().st_size for f in files) < 4e6
    with rasterio.open(folder / "ortho.tif") as o, rasterio.open(folder / "dsm.tif") as d, rasterio.open(folder / "labels.tif") as lab:
        assert o.crs == d.crs == lab.crs and o.transform == d.transform == lab.transform and o.shape == (1024, 1024)
        labels, dsm = lab.read(1), d.read(1)
    polys = gpd.read_file(folder / "buildings.gpkg")
    burnt = rasterize(((g, 1) for g in polys.geometry), out_shape=labels.shape, transform=lab.transform)
    np.testing.assert_array_equal(burnt == 1, labels == BUILDING)
    assert np.median(dsm[labels == BUILDING]) > np.median(dsm[labels == 2]) + 3
    info = json.loads((folder / "scene.json").read_text())
    assert info["size"] == 1024 and info["gsd"] == 0.25


def test_shadows_fall_away_from_the_sun_with_length_from_height() -> None:
    from rsmamba.synth.render import _cast_shadows

    dsm = np.zeros((200, 200), dtype=np.float32)
    dsm[95:105, 95:105] = 10.0  # a 10 m tower, 5 m wide at 0.5 m
    shadow = _cast_shadows(dsm, 0.5, azimuth=180.0, elevation=45.0)  # sun due south
    rows = np.flatnonzero(shadow[:, 100])
    assert rows.size and rows.max() < 95 and rows.min() >= 95 - 22  # north of it, ~10 m = 20 px long
    assert 95 - rows.min() >= 17
    assert not shadow[105:, :].any() and not shadow[:, :90].any() and not shadow[:, 110:].any()
    low = _cast_shadows(dsm, 0.5, azimuth=180.0, elevation=30.0)
    assert low.sum() > shadow.sum()  # lower sun, longer shadow


@pytest.mark.parametrize("collar", [False, True])
def test_invariants_hold_for_any_seed_and_size(collar: bool) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=4, deadline=None, derandomize=True)
    @given(seed=st.integers(0, 2**31), size=st.integers(64, 160), gsd=st.sampled_from([0.5, 0.75, 1.0]))
    def check(seed: int, size: int, gsd: float) -> None:
        s = generate_scene(size, seed=seed, gsd=gsd, nodata_collar=collar)
        for epoch in (s.t1, s.t2):
            assert epoch.ortho.shape == (3, size, size) and epoch.dsm.dtype == np.float32
            burnt = rasterize([(b.polygon, 1) for b in epoch.buildings], out_shape=(size, size), transform=s.transform, fill=0)
            v = s.valid
            np.testing.assert_array_equal((burnt == 1)[v], (epoch.labels == BUILDING)[v])
            assert set(np.unique(epoch.labels[v])) <= set(range(6))
        b1, b2 = s.t1.labels == BUILDING, s.t2.labels == BUILDING
        np.testing.assert_array_equal((s.change == 1)[s.valid], (b1 ^ b2)[s.valid])

    check()


def test_a_benchmark_layout_replaces_its_folder_only_with_overwrite(tmp_path, capsys) -> None:
    from rsmamba.cli import main

    out = tmp_path / "loveda"
    assert main(["synth", "--layout", "loveda", "-o", str(out), "--size", "32"]) == 0
    first = sorted(p.relative_to(out) for p in out.rglob("*.png"))
    assert first
    assert main(["synth", "--layout", "loveda", "-o", str(out), "--size", "32"]) == 2
    assert "Train, Val exist and are not empty (use --overwrite" in capsys.readouterr().err
    assert main(["synth", "--layout", "loveda", "-o", str(out), "--size", "32", "--seed", "1", "--overwrite"]) == 0
    assert sorted(p.relative_to(out) for p in out.rglob("*.png")) == first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch left beside it


def _tree(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_benchmark_layout_overwrite_keeps_the_users_other_files(tmp_path, capsys) -> None:
    """--overwrite replaced the whole -o folder: a user's files beside the layout were deleted, exit 0."""
    from rsmamba.cli import main

    out = tmp_path / "userdata"
    (out / "sub").mkdir(parents=True)
    (out / "precious.txt").write_text("precious")
    (out / "sub" / "y.txt").write_text("x")
    assert main(["synth", "--layout", "loveda", "-o", str(out), "--size", "16", "--overwrite"]) == 0
    first = _tree(out / "Train")
    assert main(["synth", "--layout", "loveda", "-o", str(out), "--size", "16", "--seed", "1", "--overwrite"]) == 0
    assert (out / "precious.txt").read_text() == "precious" and (out / "sub" / "y.txt").read_text() == "x"
    assert sorted(p.name for p in out.iterdir()) == ["Train", "Val", "precious.txt", "sub"]
    second = _tree(out / "Train")
    assert second.keys() == first.keys() and second != first  # the layout's own folders were replaced
    # beside other files, replacing nothing, it needs no --overwrite (as a scene)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert main(["synth", "--layout", "second", "-o", str(tmp_path / "other"), "--size", "16"]) == 0
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["notes.txt", "test", "train"]


def test_a_benchmark_layout_overwrite_refuses_to_delete_a_file_it_does_not_write(tmp_path, capsys) -> None:
    """A user's file inside one of the layout's folders would go with the folder: refused, naming it, nothing
    replaced."""
    from rsmamba.cli import main

    out = tmp_path / "v"
    assert main(["synth", "--layout", "loveda", "-o", str(out), "--size", "16"]) == 0
    (out / "Val" / "notes.txt").write_text("mine")
    before = _tree(out)
    capsys.readouterr()
    assert main(["synth", "--layout", "loveda", "-o", str(out), "--size", "16", "--seed", "1", "--overwrite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"would delete files that --layout loveda does not write: {out / 'Val' / 'notes.txt'}" in err[0]
    assert _tree(out) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no scratch left


@pytest.mark.parametrize("name", ["vaihingen", "potsdam", "loveda", "second", "landsat-scd"])
def test_each_benchmark_layout_writes_the_entries_it_publishes(tmp_path, name) -> None:
    """LAYOUT_ENTRIES names the outputs of a layout: a writer's folder missing from it would not be published."""
    from rsmamba.synth.benchmarks import LAYOUT_ENTRIES, write_layout

    out = write_layout(name, tmp_path / name, size=8)
    assert sorted(p.name for p in out.iterdir()) == sorted(LAYOUT_ENTRIES[name])
    assert all(any((out / entry).iterdir()) for entry in LAYOUT_ENTRIES[name])


@pytest.mark.parametrize("args", [["--gsd", "0.25"], ["--bands", "rgb"], ["--terraced", "0"], ["--epsg", "32632"]])
def test_a_benchmark_layout_refuses_a_scene_option_given_with_its_default_value(tmp_path, capsys, args) -> None:
    """The check compared values with the defaults: an explicit --gsd 0.25 was accepted and did nothing."""
    from rsmamba.cli import main

    assert main(["synth", "--layout", "loveda", "-o", str(tmp_path / "l"), "--size", "16", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{args[0]}: an option of a synthetic scene" in err[0]
    assert not (tmp_path / "l").exists()


@pytest.mark.parametrize(("args", "wanted"), [
    (["--seed", "-1", "--size", "128"], "--seed must be an integer in 0..4294967295, got -1"),
    # a unit unknown: no width in metres
    (["--epsg", "0", "--size", "64"], "--epsg 0 is not a known EPSG code"),
    (["--epsg", "99999", "--size", "64"], "--epsg 99999 is not a known EPSG code"),
    (["--bands", "xyz", "--size", "128"], "--bands must be one of rgb, irrg, rgbn, got 'xyz'"),
    (["--dsm-gsd", "0", "--size", "128"], "--dsm-gsd must be a positive number, got 0.0"),
    (["--size", "16"], "--size must be an integer in 32..32768 pixels, got 16"),  # not also 'at least 32 m wide'
    (["--size", "100000"], "--size must be an integer in 32..32768 pixels, got 100000"),  # nor 'at most 10 km'
    # no DSM grid sized against a refused scene
    (["--size", "64", "--dsm-gsd", "1000"],
     "the scene must be at least 32 m wide to hold buildings; --size 64 x --gsd 0.25 = 16 m"),
    (["--gsd", "0", "--dsm-gsd", "1"], "--gsd must be a positive number, got 0.0"),
])
def test_synth_reports_each_problem_once_and_no_other(tmp_path, capsys, args, wanted) -> None:
    """Other options' problems came with a size complaint, and a refused size with a second one about its width."""
    from rsmamba.cli import main

    assert main(["synth", "-o", str(tmp_path / "s"), *args]) == 2
    assert capsys.readouterr().err.strip() == f"rsmamba: error: {wanted}"
    assert not (tmp_path / "s").exists()


def test_a_real_size_problem_is_still_said_beside_another(tmp_path, capsys) -> None:
    """64 px at the default 0.25 m is a 16 m scene: too small whatever the seed, so both are said."""
    from rsmamba.cli import main

    assert main(["synth", "-o", str(tmp_path / "s"), "--seed", "-1", "--size", "64"]) == 2
    err = capsys.readouterr().err
    assert "--seed must be" in err and "at least 32 m wide" in err


def test_same_seed_same_bytes_geopackages_too(tmp_path, monkeypatch) -> None:
    """The GeoPackages carried the clock's time (gpkg_contents.last_change, in milliseconds): same seed, other
    bytes each run. The date is fixed for the write only: the process's GDAL is handed back, and a date the caller
    set is kept."""
    import sqlite3

    import pyogrio

    runs = [write_scene(tmp_path / name, size=64, seed=5, gsd=0.5) for name in ("a", "b")]
    for key in runs[0]:
        assert runs[0][key].read_bytes() == runs[1][key].read_bytes(), key
    assert pyogrio.get_gdal_config_option("OGR_CURRENT_DATE") is None
    monkeypatch.setenv("OGR_CURRENT_DATE", "2024-05-06T07:08:09.000Z")
    mine = write_scene(tmp_path / "c", size=64, seed=5, gsd=0.5)
    with contextlib.closing(sqlite3.connect(mine["buildings_t1"])) as db:
        assert db.execute("SELECT last_change FROM gpkg_contents").fetchall() == [("2024-05-06T07:08:09.000Z",)]


def test_a_benchmark_layout_refuses_an_explicit_1024(tmp_path, capsys) -> None:
    """--size 1024 (the scene's default) was written as 512 px images, silently, when given."""
    from rsmamba.cli import main

    assert main(["synth", "--layout", "vaihingen", "-o", str(tmp_path / "v"), "--size", "1024"]) == 2
    assert "--size 1024: a benchmark layout's images are at most 512 px" in capsys.readouterr().err
    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize(("args", "needle"), [
    (["--size", "100000"], "--size must be an integer in 32..32768"),  # it began allocating 149 GiB
    (["--gsd", "inf"], "--gsd must be a positive number"),
    (["--gsd", "200"], "the scene may be at most 10 km wide"),  # a 1024 px scene grew past 21 GB placing houses
    (["--origin", "nan,5"], "--origin must be 'x,y' (two finite numbers"),
    (["--seed", "-1"], "--seed must be an integer in 0.."),
    (["--dsm-gsd", "1e-300"], "pixels per side"),
    (["--dsm-gsd", "1e9"], "pixels per side"),
    # --gsd meant degrees there: it was also called '0.0032 m wide', a reason that does not apply
    (["--epsg", "4326", "--gsd", "5e-6"], "rsmamba: error: --epsg 4326 is not a projected CRS"),
    (["--epsg", "2263", "--gsd", "0.25"], "rsmamba: error: --epsg 2263 (NAD83 / New York Long Island (ftUS)) counts in"),
])
def test_synth_refuses_what_it_cannot_draw_in_one_line(tmp_path, capsys, args, needle) -> None:
    from rsmamba.cli import main

    assert main(["synth", "-o", str(tmp_path / "s"), "--size", "64", "--gsd", "0.5", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
    assert not (tmp_path / "s").exists()


def test_synth_overwrite_leaves_no_file_of_the_earlier_scene(tmp_path) -> None:
    first = write_scene(tmp_path / "s", size=64, seed=0, gsd=0.5, instances=True)
    assert first["instances_t1"].exists()
    second = write_scene(tmp_path / "s", size=64, seed=1, gsd=0.5, overwrite=True)
    assert "instances_t1" not in second
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == sorted(p.name for p in second.values())


def test_a_scene_far_from_the_origin_renders_as_one_near_it(tmp_path) -> None:
    """Pixel centres were float32: at northing 5 000 000 they resolve 0.5 m, so at 0.25 m two rows shared
    one y and trees and roofs came out as 2-row staircases (12 % of DSM pixels moved, up to 8 m)."""
    import rasterio

    far = write_scene(tmp_path / "far", size=128, seed=5, gsd=0.25, origin=(500_000.0, 5_000_000.0))
    near = write_scene(tmp_path / "near", size=128, seed=5, gsd=0.25, origin=(0.0, 128 * 0.25))
    with rasterio.open(far["dsm_t1"]) as a, rasterio.open(near["dsm_t1"]) as b:
        dsm_far, dsm_near = a.read(1), b.read(1)
    with rasterio.open(far["labels_t1"]) as a, rasterio.open(near["labels_t1"]) as b:
        assert (a.read(1) != b.read(1)).mean() < 1e-3
    assert (abs(dsm_far - dsm_near) > 0.01).mean() < 1e-3


def test_obstacle_buckets_answer_as_a_scan_of_every_object() -> None:
    """The layout's collision tests look in buckets (a scan of every object grew with the square of the area:
    a 5 km town over 5 minutes); they must answer exactly as the scan, so that a seed draws the same town."""
    import shapely

    from rsmamba.synth.layout import _Obstacles

    rng = np.random.default_rng(3)
    obstacles, geoms, discs = _Obstacles(), [], []
    for _ in range(300):
        x, y, w, h = rng.uniform(-200, 200), rng.uniform(-200, 200), rng.uniform(0.5, 90), rng.uniform(0.5, 20)
        g = shapely.affinity.rotate(shapely.box(x, y, x + w, y + h), rng.uniform(0, 180))
        disc = (float(g.centroid.x), float(g.centroid.y), min(w, h) / 3) if rng.random() < 0.7 else None
        obstacles.add(g, disc)
        geoms.append(g)
        discs += [disc] if disc else []
    for _ in range(2000):
        x, y, r, gap = rng.uniform(-250, 250), rng.uniform(-250, 250), rng.uniform(0.1, 40), rng.choice([0.0, 2.0])
        probe = shapely.box(x, y, x + r, y + r / 2)
        point = shapely.Point(x, y)
        assert obstacles.hits_disc(x, y, r) == any(point.distance(g) <= r for g in geoms)
        assert obstacles.covers_disc(x, y, r) == any(np.hypot(dx - x, dy - y) < dr + r for dx, dy, dr in discs)
        assert obstacles.hits(probe, gap) == any(probe.distance(g) <= gap if gap else probe.intersects(g) for g in geoms)
