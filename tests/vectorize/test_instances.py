"""Issue #17, step 4: ``vectorize --instances`` splits regions along contacts, block-wise = whole raster."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rsmamba.cli import main
from rsmamba.vectorize.api import vectorize_raster
from rsmamba.vectorize.instances import split_labels, split_whole_raster

CRS = "EPSG:32632"


def _write(folder, classes: np.ndarray, interior: np.ndarray, contact: np.ndarray, crs: str = CRS,
           transform: Affine | None = None, as_float: bool = False):
    """A class raster and its probabilities as predict writes them (uint8, SCALE=1/254), or ``as_float`` 0-1."""
    h, w = classes.shape
    transform = transform or Affine(1.0, 0.0, 0.0, 0.0, -1.0, float(h))
    cls_path, prob_path = folder / "classes.tif", folder / "probs.tif"
    with rasterio.open(cls_path, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8", crs=crs,
                       transform=transform, nodata=255) as dst:
        dst.write(classes[None])
        dst.update_tags(CLASS_NAMES='["background", "building"]')
    p_building = np.where(classes == 1, 200, 54).astype(np.uint8)
    stack = np.stack([254 - p_building, p_building, interior, contact])
    with rasterio.open(prob_path, "w", driver="GTiff", width=w, height=h, count=4, crs=crs, transform=transform,
                       **({"dtype": "float32"} if as_float else {"dtype": "uint8", "nodata": 255})) as dst:
        for i, d in enumerate(["p(background)", "p(building)", "p(interior)", "p(contact)"], start=1):
            dst.set_band_description(i, d)
        dst.write(stack / np.float32(254) if as_float else stack)
        if not as_float:
            dst.update_tags(SCALE="1/254")
    return cls_path, prob_path, transform


def _random_scene(rng: np.random.Generator, h: int, w: int):
    classes = np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(1, 8)):
        r, c = rng.integers(0, h), rng.integers(0, w)
        classes[r:r + rng.integers(2, h), c:c + rng.integers(2, w)] = 1
    classes[rng.random((h, w)) < 0.05] = 0
    interior = rng.integers(0, 255, (h, w)).astype(np.uint8)
    interior = np.where(rng.random((h, w)) < 0.5, 254, interior).astype(np.uint8)
    contact = rng.integers(0, 255, (h, w)).astype(np.uint8)
    return classes, interior, contact


def _normal(geoms) -> list[str]:
    return sorted(shapely.to_wkt(shapely.normalize(g), rounding_precision=6) for g in geoms)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), h=st.integers(8, 60), w=st.integers(8, 60), block=st.integers(4, 40),
       threshold=st.sampled_from([0.5, 0.9]))
def test_blockwise_instances_equal_whole_raster(tmp_path_factory, seed, h, w, block, threshold):
    folder = tmp_path_factory.mktemp("prop")
    classes, interior, contact = _random_scene(np.random.default_rng(seed), h, w)
    cls_path, prob_path, transform = _write(folder, classes, interior, contact)
    out = folder / "b.gpkg"
    vectorize_raster(cls_path, out, classes=["building"], probabilities=prob_path, instances=True, block_size=block,
                     seed_threshold=threshold)
    got = gpd.read_file(out)
    ref = split_whole_raster(classes == 1, interior, contact, seed_threshold=int(round(threshold * 254)))
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f
    ref_world = [shapely.transform(g, lambda xy: np.column_stack([a * xy[:, 0] + b * xy[:, 1] + c,
                                                                  d * xy[:, 0] + e * xy[:, 1] + f])) for g in ref]
    assert _normal(got.geometry) == _normal(ref_world)
    assert sorted(got["building_id"]) == list(range(1, len(got) + 1))
    assert int(got["pixel_count"].sum()) == int((classes == 1).sum())


@pytest.mark.parametrize("regularize", [False, True])  # streamed to the layer, or held whole
def test_building_ids_do_not_depend_on_the_block_size(tmp_path, regularize):
    """The ids followed the order the block rows finished the buildings: the same building had another id at
    another --block-size (46 of 48 houses; QA). They follow each building's first pixel now."""
    classes, interior, contact = _random_scene(np.random.default_rng(5), 60, 50)
    cls_path, prob_path, _ = _write(tmp_path, classes, interior, contact)

    def ids(block: int) -> dict[str, int]:
        out = tmp_path / f"b{block}.gpkg"
        vectorize_raster(cls_path, out, classes=["building"], probabilities=prob_path, instances=True,
                         block_size=block, regularize=regularize)
        got = gpd.read_file(out)
        return {shapely.to_wkt(shapely.normalize(g), rounding_precision=6): int(i)
                for g, i in zip(got.geometry, got["building_id"])}

    whole = ids(2048)
    assert sorted(whole.values()) == list(range(1, len(whole) + 1)) and len(whole) > 10
    assert ids(7) == whole and ids(16) == whole


def test_split_labels_separates_two_houses_on_a_contact_ridge():
    region = np.zeros((10, 20), bool)
    region[1:9, 1:19] = True
    interior = np.zeros((10, 20), np.uint8)
    interior[3:7, 3:8] = 254
    interior[3:7, 12:17] = 254
    contact = np.zeros((10, 20), np.uint8)
    contact[:, 9:11] = 254
    labels = split_labels(region, interior, contact)
    assert labels.max() == 2
    assert (labels[1:9, 1:10] == labels[5, 5]).all() and (labels[1:9, 10:19] == labels[5, 14]).all()
    # no seed at all: the region stays whole
    assert split_labels(region, np.zeros_like(interior), contact).max() == 1


def test_cli_instances_split_and_errors(tmp_path, capsys):
    classes = np.zeros((40, 60), np.uint8)
    classes[5:25, 5:55] = 1  # one terrace of three houses
    interior = np.zeros_like(classes)
    contact = np.zeros_like(classes)
    for c0 in (8, 25, 42):
        interior[8:22, c0:c0 + 10] = 254
    contact[5:25, 20:24] = 254
    contact[5:25, 37:41] = 254
    cls_path, prob_path, _ = _write(tmp_path, classes, interior, contact)
    out = tmp_path / "houses.gpkg"
    assert main(["vectorize", str(cls_path), "--classes", "building", "--probabilities", str(prob_path),
                 "--instances", "--regularize", "-o", str(out)]) == 0
    houses = gpd.read_file(out)
    assert len(houses) == 3 and list(houses.columns[:3]) == ["building_id", "class_id", "class_name"]
    assert set(houses["class_name"]) == {"building"} and "mean_prob" in houses
    assert main(["vectorize", str(cls_path), "--classes", "building", "-o", str(tmp_path / "blocks.gpkg")]) == 0
    assert len(gpd.read_file(tmp_path / "blocks.gpkg")) == 1
    # --instances without probabilities, or with probabilities that lack instance bands: one line, exit 2
    assert main(["vectorize", str(cls_path), "--instances", "-o", str(tmp_path / "x.gpkg")]) == 2
    assert "--probabilities" in capsys.readouterr().err
    # --instances of classes that are no buildings (or of every class): refused, not numbered as buildings
    capsys.readouterr()
    assert main(["vectorize", str(cls_path), "--classes", "background,building", "--probabilities", str(prob_path),
                 "--instances", "-o", str(tmp_path / "z.gpkg")]) == 2
    assert "background is no building class: select the buildings (--classes building)" in capsys.readouterr().err
    assert main(["vectorize", str(cls_path), "--probabilities", str(prob_path), "--instances",  # every class
                 "-o", str(tmp_path / "z.gpkg")]) == 2
    assert "background is no building class" in capsys.readouterr().err
    plain = tmp_path / "plain.tif"
    with rasterio.open(prob_path) as src:
        profile, data, tags = src.profile, src.read([1, 2]), src.tags()
    profile.update(count=2)
    with rasterio.open(plain, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(**tags)
    assert main(["vectorize", str(cls_path), "--classes", "building", "--instances", "--probabilities", str(plain),
                 "-o", str(tmp_path / "y.gpkg")]) == 2
    assert "p(interior)" in capsys.readouterr().err


def test_regularised_houses_of_a_terrace_do_not_overlap(tmp_path, monkeypatch):
    """Each house was straightened on its own: neighbours overlapped along their party walls (37 of 48
    pairs of a terraced town, up to 1.2 m2), flagged by QGIS's topology checks, walls counted twice."""
    import shapely
    from rasterio.features import rasterize
    from scipy import ndimage
    from shapely import affinity
    from shapely.geometry import box

    from rsmamba.vectorize import api

    houses = [affinity.rotate(box(10 + 14 * k, 20, 24 + 14 * k, 40), 17, origin=(45, 30)) for k in range(5)]
    ids = rasterize([(h, k + 1) for k, h in enumerate(houses)], out_shape=(60, 100), dtype="uint8")
    classes = (ids > 0).astype(np.uint8)
    walls = (ndimage.grey_dilation(ids, size=3) != ndimage.grey_erosion(np.where(ids > 0, ids, 255), size=3)) & (ids > 0)
    contact = np.where(walls & (ndimage.grey_erosion(np.where(ids > 0, ids, 255), size=3) != 255), 254, 0).astype(np.uint8)
    interior = np.where((ids > 0) & (contact == 0), 254, 0).astype(np.uint8)
    cls_path, prob_path, _ = _write(tmp_path, classes, interior, contact)

    def overlaps(path) -> list[float]:
        g = np.array(gpd.read_file(path).geometry.values)
        left, right = shapely.STRtree(g).query(g, predicate="overlaps")
        return [shapely.area(shapely.intersection(g[i], g[j])) for i, j in zip(left, right) if i < j]

    def run(out):
        return main(["vectorize", str(cls_path), "--classes", "building", "--probabilities", str(prob_path),
                     "--instances", "--regularize", "-o", str(out)])

    assert run(tmp_path / "houses.gpkg") == 0
    assert len(gpd.read_file(tmp_path / "houses.gpkg")) == 5
    rings = [shapely.get_exterior_ring(g) for g in gpd.read_file(tmp_path / "houses.gpkg").geometry.values]
    assert all(shapely.is_ccw(rings)), "the cut's rings ran either way: the layer's run counter-clockwise"
    assert max(overlaps(tmp_path / "houses.gpkg"), default=0.0) < 1e-6
    monkeypatch.setattr(api, "_without_overlaps", lambda parts, raw, grid: parts)  # each house on its own
    assert run(tmp_path / "apart.gpkg") == 0
    assert sum(overlaps(tmp_path / "apart.gpkg")) > 0.5  # what the cut removes


def _terrace() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three touching houses of 20 x 14-17 px with a contact ridge between each pair."""
    classes = np.zeros((40, 60), np.uint8)
    classes[5:25, 5:55] = 1
    interior, contact = np.zeros_like(classes), np.zeros_like(classes)
    for c0 in (8, 25, 42):
        interior[8:22, c0:c0 + 10] = 254
    contact[5:25, 20:24] = 254
    contact[5:25, 37:41] = 254
    return classes, interior, contact


def test_float_probabilities_split_a_terrace_as_uint8_ones_do(tmp_path):
    """Float 0-1 probabilities (accepted) were compared with the 0-254 thresholds: no seed, one building."""
    cls_path, prob_path, _ = _write(tmp_path, *_terrace(), as_float=True)
    vectorize_raster(cls_path, tmp_path / "h.gpkg", classes=["building"], probabilities=prob_path, instances=True)
    assert len(gpd.read_file(tmp_path / "h.gpkg")) == 3


def test_min_seed_is_ground_metres_from_a_grid_in_degrees(tmp_path):
    """From EPSG:4326 (--reproject), the pixel was 5e-11 'm2' (degrees x metres): every seed fell under
    --min-seed 4m2 and the terrace stayed one building."""
    grid = Affine(1e-5, 0.0, 9.0, 0.0, -1e-5, 50.0)  # 0.72 x 1.11 m at 50 N: seeds of 140 px, about 110 m2
    cls_path, prob_path, _ = _write(tmp_path, *_terrace(), crs="EPSG:4326", transform=grid)
    kwargs = dict(classes=["building"], probabilities=prob_path, instances=True, reproject_to="EPSG:32632")
    vectorize_raster(cls_path, tmp_path / "h.gpkg", **kwargs)
    assert len(gpd.read_file(tmp_path / "h.gpkg")) == 3
    vectorize_raster(cls_path, tmp_path / "big.gpkg", min_seed="120m2", **kwargs)  # over each seed: not split
    assert len(gpd.read_file(tmp_path / "big.gpkg")) == 1


def test_instance_bands_that_are_no_probabilities_are_refused(tmp_path):
    """p(contact) x 3 or a NaN p(interior) under the buildings were used as they were (a terrace left whole, exit
    0), while the same values in a class band are refused."""
    import pytest

    from rsmamba.errors import InputError

    classes, interior, contact = _terrace()
    for name, band, change in (("contact x 3", 4, lambda b: b * 3), ("interior NaN", 3, lambda b: b * np.nan),
                               ("interior -0.2", 3, lambda b: b - 0.2)):
        cls_path, prob_path, _ = _write(tmp_path, classes, interior, contact, as_float=True)
        with rasterio.open(prob_path, "r+") as ds:
            ds.write(change(ds.read(band)), band)
        out = tmp_path / "h.gpkg"
        said = r"no data under a building region in band p\(interior\)" if "NaN" in name else "values outside 0-1"
        with pytest.raises(InputError, match=said):
            vectorize_raster(cls_path, out, classes=["building"], probabilities=prob_path, instances=True)
        assert not out.exists(), name
    cls_path, prob_path, _ = _write(tmp_path, classes, interior, contact)  # uint8: 255 is its no data
    with rasterio.open(prob_path, "r+") as ds:
        ds.write(np.where(classes == 1, 255, contact).astype(np.uint8), 4)
    with pytest.raises(InputError, match=r"no data under a building region in band p\(contact\)"):
        vectorize_raster(cls_path, tmp_path / "h.gpkg", classes=["building"], probabilities=prob_path, instances=True)
