"""``rsmamba vectorize`` end to end: geometry, attributes, formats, change mode, bad inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from rasterio import features
from rasterio.transform import from_origin
from shapely import affinity

from rsmamba.cli import main
from rsmamba.errors import InputError
from rsmamba.vectorize import vectorize_raster
from tests.helpers.rasters import write_raster


def scene(h: int = 60, w: int = 70) -> np.ndarray:
    """Classes 0..3 with shapes crossing the 16-pixel blocks used below, and a hole."""
    a = np.full((h, w), 2, dtype="uint8")
    a[5:40, 10:50] = 1
    a[15:22, 20:30] = 2  # hole in the building
    a[45:55, 5:65] = 3
    a[0:3, 0:3] = 0
    a[50, 50] = 1  # one-pixel building inside the tree strip
    return a


def read(path, **kw):
    return pyogrio.read_dataframe(path, **kw)


def test_areas_equal_pixel_areas_and_geometries_valid(tmp_path):
    a = scene()
    src = write_raster(tmp_path / "classes.tif", a, res=0.5)
    out = tmp_path / "all.gpkg"
    summary = vectorize_raster(src, out, block_size=16)
    df = read(out)
    assert summary.polygons == len(df)
    assert df.geometry.is_valid.all() and (df.geom_type == "Polygon").all()
    for cid in np.unique(a):
        sel = df[df.class_id == cid]
        assert sel.geometry.area.sum() == pytest.approx((a == cid).sum() * 0.25, abs=1e-6)
        assert sel.area_m2.sum() == pytest.approx((a == cid).sum() * 0.25, abs=1e-6)
        assert sel.pixel_count.sum() == (a == cid).sum()
    assert set(df.class_name) == {"impervious", "building", "low_vegetation", "tree"}
    # Same polygon count as a whole-raster polygonize.
    assert len(df) == sum(1 for _ in features.shapes(a, connectivity=4))


def test_output_opens_with_ogr_with_crs_and_fields(tmp_path):
    src = write_raster(tmp_path / "classes.tif", scene(), crs="EPSG:32633")
    for suffix in (".gpkg", ".geojson", ".fgb"):
        out = tmp_path / f"b{suffix}"
        vectorize_raster(src, out, classes=["building"], block_size=32)
        info = pyogrio.read_info(out)
        assert ("4326" if suffix == ".geojson" else "32633") in info["crs"]  # GeoJSON: RFC 7946's WGS 84
        for f in ("class_id", "class_name", "area_m2", "perimeter_m", "pixel_count", "source", "model_id"):
            assert f in info["fields"], (suffix, f)
        assert info["features"] == 2
        assert read(out).class_name.unique().tolist() == ["building"]
        assert not list(tmp_path.glob(".*partial*"))


def test_min_area_fill_holes_and_model_id(tmp_path):
    a = scene()
    src = write_raster(tmp_path / "classes.tif", a, res=0.5)
    with rasterio.open(src, "r+") as ds:
        ds.update_tags(model_id="rs3mamba-test")
    out = tmp_path / "b.gpkg"
    # Hole is 70 px = 17.5 m2; the single pixel is 0.25 m2.
    vectorize_raster(src, out, classes=["1"], min_area="1m2", fill_holes="20m2", block_size=16)
    df = read(out)
    assert len(df) == 1
    assert df.area_m2[0] == pytest.approx(35 * 40 * 0.25)
    assert df.pixel_count[0] == 35 * 40  # the hole's 70 px of another class too (1330: area and count disagreed)
    assert len(df.geometry[0].interiors) == 0
    assert df.model_id[0] == "rs3mamba-test" and df.source[0] == "classes.tif"


def test_class_names_from_raster_tag(tmp_path):
    src = write_raster(tmp_path / "classes.tif", scene())
    with rasterio.open(src, "r+") as ds:
        ds.update_tags(1, class_names=json.dumps(["road", "house", "grass", "forest"]))
    out = tmp_path / "h.gpkg"
    vectorize_raster(src, out, classes=["house"], block_size=32)
    assert read(out).class_name.unique().tolist() == ["house"]
    with pytest.raises(InputError, match="building"):
        vectorize_raster(src, tmp_path / "x.gpkg", classes=["building"])
    # names match as tile matches a label layer's: case and surrounding spaces aside ('House' was refused)
    vectorize_raster(src, tmp_path / "h2.gpkg", classes=[" House,FOREST"], block_size=32)
    assert sorted(read(tmp_path / "h2.gpkg").class_name.unique().tolist()) == ["forest", "house"]


def test_probability_attributes(tmp_path):
    a = scene()
    src = write_raster(tmp_path / "classes.tif", a)
    prob = np.linspace(0.5, 1.0, a.size, dtype="float32").reshape(a.shape)
    psrc = write_raster(tmp_path / "prob.tif", prob)
    out = tmp_path / "b.gpkg"
    vectorize_raster(src, out, classes=["building"], probabilities=psrc, block_size=16)
    df = read(out).sort_values("pixel_count")
    big = (a == 1)
    big[50, 50] = False
    assert df.mean_prob.iloc[-1] == pytest.approx(prob[big].mean(), rel=1e-5)
    assert df.max_prob.iloc[-1] == pytest.approx(prob[big].max())
    assert df.max_prob.iloc[0] == pytest.approx(prob[50, 50])


def test_simplify_keeps_shared_borders(tmp_path):
    a = np.zeros((64, 64), dtype="uint8")
    yy, xx = np.mgrid[:64, :64]
    a[(yy - 32) ** 2 + (xx - 30) ** 2 < 20**2] = 1  # staircase circle border shared with class 0
    src = write_raster(tmp_path / "c.tif", a, res=0.5)
    raw = read(vectorize_raster(src, tmp_path / "raw.gpkg", block_size=16).output)
    out = tmp_path / "s.gpkg"
    vectorize_raster(src, out, simplify="0.5m", block_size=16)
    df = read(out)
    assert df.geometry.is_valid.all()
    assert shapely.get_num_coordinates(df.geometry.values).sum() < shapely.get_num_coordinates(raw.geometry.values).sum()
    # A coverage: no overlaps, no gaps between the simplified classes.
    inter = df.geometry[df.class_id == 0].union_all().intersection(df.geometry[df.class_id == 1].union_all())
    assert inter.area < 1e-9
    assert df.geometry.union_all().area == pytest.approx(64 * 64 * 0.25)
    # rings as the unsimplified layer's (RFC 7946's right-hand rule): the coverage simplification reversed holes
    for layer in (raw, df):
        g = layer.geometry.values
        holes = [shapely.get_interior_ring(p, i) for p in g for i in range(shapely.get_num_interior_rings(p))]
        assert all(shapely.is_ccw(shapely.get_exterior_ring(g))) and holes and not any(shapely.is_ccw(holes))


def right_angles(poly, tol_deg=1e-6):
    c = np.asarray(poly.exterior.coords)[:-1]
    for i in range(len(c)):
        u, v = c[i - 1] - c[i], c[(i + 1) % len(c)] - c[i]
        ang = math.degrees(math.acos(np.clip(u @ v / np.linalg.norm(u) / np.linalg.norm(v), -1, 1)))
        if abs(ang - 90) > tol_deg and abs(ang - 270) > tol_deg:
            return False
    return True


@pytest.mark.parametrize("angle", [0, 13, 30, 45, 72])
def test_regularised_rectangles_and_l_shapes_have_right_angles(tmp_path, angle):
    gsd = 0.25
    transform = from_origin(1000.0, 2000.0, gsd, gsd)
    rect = affinity.rotate(shapely.box(1004, 1982, 1016, 1990), angle, origin=(1010, 1986))
    ell = affinity.rotate(shapely.Polygon([(1022, 1970), (1038, 1970), (1038, 1976), (1029, 1976), (1029, 1986),
                                           (1022, 1986)]), angle, origin=(1030, 1978))
    a = features.rasterize([(rect, 1), (ell, 1)], out_shape=(160, 200), transform=transform, dtype="uint8")
    src = write_raster(tmp_path / "b.tif", a, transform=transform)
    out = tmp_path / "b.gpkg"
    vectorize_raster(src, out, classes=["building"], regularize=True, block_size=48)
    df = read(out)
    assert len(df) == 2 and df.geometry.is_valid.all()
    for drawn in (rect, ell):
        poly = df.geometry[df.geometry.intersects(drawn.centroid.buffer(0.1)) | df.geometry.intersects(drawn)].iloc[0]
        assert right_angles(poly)
        assert len(poly.exterior.coords) - 1 == len(drawn.exterior.coords) - 1
        assert poly.intersection(drawn).area / poly.union(drawn).area >= 0.95


@pytest.mark.parametrize("angle", [13, 30])
def test_regularised_outlines_of_buildings_cut_by_the_raster_edge_stay_inside_it(tmp_path, angle):
    """The edge's cut side was turned to the building's direction: 4.2 m beyond the raster, and its area_m2 with it
    (QA: 30 of 1113 m2 outside); neighbouring tiles' footprints overlapped."""
    gsd = 0.25
    transform = from_origin(1000.0, 2000.0, gsd, gsd)
    rect = affinity.rotate(shapely.box(994, 1975, 1014, 1990), angle, origin=(1004, 1982))  # across the west edge
    a = features.rasterize([(rect, 1)], out_shape=(160, 200), transform=transform, dtype="uint8")
    src = write_raster(tmp_path / "b.tif", a, transform=transform)
    vectorize_raster(src, tmp_path / "b.gpkg", classes=["building"], regularize=True)
    df = read(tmp_path / "b.gpkg")
    extent = shapely.box(1000.0, 2000.0 - 160 * gsd, 1000.0 + 200 * gsd, 2000.0)
    assert len(df) == 1 and df.geometry.is_valid.all()
    assert df.geometry.difference(extent).area.max() < 1e-6
    assert df.area_m2[0] == pytest.approx(df.geometry[0].area)


@pytest.mark.parametrize("reproject", [None, "EPSG:32633"])
def test_regularised_outlines_of_buildings_at_a_nodata_edge_stay_out_of_the_nodata(tmp_path, reproject):
    """A building cut by the scene's nodata (an ortho's collar) had its cut side turned to the building's direction:
    1.7 m into the nodata, 6.5 m2 of area_m2 there (QA)."""
    gsd = 0.25
    transform = from_origin(1000.0, 2000.0, gsd, gsd)
    rect = affinity.rotate(shapely.box(1010, 1975, 1030, 1990), 13, origin=(1020, 1982))
    a = features.rasterize([(rect, 1)], out_shape=(160, 200), transform=transform, dtype="uint8")
    a[:, :80] = 255  # no data west of x = 1020
    src = write_raster(tmp_path / "b.tif", a, transform=transform, nodata=255)
    out = tmp_path / "b.gpkg"
    vectorize_raster(src, out, classes=["building"], regularize=True, reproject_to=reproject)
    df = read(out)
    nodata = shapely.box(1000.0, 2000.0 - 160 * gsd, 1020.0, 2000.0)
    if reproject:
        from pyproj import Transformer

        nodata = shapely.ops.transform(Transformer.from_crs("EPSG:32632", reproject, always_xy=True).transform,
                                       shapely.segmentize(nodata, 1.0))
    assert len(df) == 1 and df.geometry.is_valid.all()
    assert df.geometry[0].intersection(nodata).area < 1e-6
    if not reproject:  # (far off its zone's meridian, EPSG:32633's grid is no ground metre)
        assert df.geometry[0].area > 0.9 * (a == 1).sum() * gsd * gsd
        assert df.area_m2[0] == pytest.approx(df.geometry[0].area)


def test_a_filled_nodata_hole_stays_filled_when_regularised(tmp_path):
    """--fill-holes counts a filled hole's pixels in pixel_count; cutting regularised outlines back from the nodata
    cut a filled nodata hole out again (117 m2 of geometry for 480 pixels of 0.25 m2)."""
    a = np.zeros((40, 40), dtype="uint8")
    a[10:30, 8:32] = 1
    a[18:21, 18:22] = 255  # no data inside the building
    src = write_raster(tmp_path / "c.tif", a, res=0.5, nodata=255)
    df = read(vectorize_raster(src, tmp_path / "c.gpkg", classes=["building"], fill_holes="5m2",
                               regularize=True).output)
    assert len(df) == 1 and not df.geometry[0].interiors
    assert df.pixel_count[0] == 480 and df.area_m2[0] == pytest.approx(480 * 0.25)


def test_regularise_falls_back_on_round_shapes(tmp_path):
    a = np.zeros((80, 80), dtype="uint8")
    yy, xx = np.mgrid[:80, :80]
    a[(yy - 40) ** 2 + (xx - 40) ** 2 < 30**2] = 1
    a[72:78, 2:14] = 1  # and a rectangle, squared
    src = write_raster(tmp_path / "c.tif", a, res=0.25)
    summary = vectorize_raster(src, tmp_path / "c.gpkg", classes=["building"], regularize=True)
    df = read(summary.output)
    assert len(df) == 2 and df.geometry.is_valid.all()
    circle = shapely.Point(500000 + 10, 5000000 - 10).buffer(7.5)
    round_one = df.geometry[df.geometry.intersects(circle)].iloc[0]
    assert round_one.intersection(circle).area / round_one.union(circle).area > 0.95
    # which outlines kept their simplified shape is said (11 of 63 terraced houses, unsaid)
    assert "; 1 of 2 outlines kept their simplified shape, not right angles" in summary.describe()


def test_change_raster_from_to_classes(tmp_path):
    change = np.zeros((3, 30, 40), dtype="uint8")
    change[1:] = 2
    change[:, 5:15, 5:20] = [[[1]], [[2]], [[1]]]    # vegetation -> building
    change[:, 18:25, 10:35] = [[[1]], [[1]], [[0]]]  # building -> impervious
    src = write_raster(tmp_path / "change.tif", change)
    with rasterio.open(src, "r+") as ds:
        ds.descriptions = ("change", "from_class", "to_class")
    out = tmp_path / "change.gpkg"  # the default output: the raster's name with .gpkg
    assert main(["vectorize", str(src), "--block-size", "8"]) == 0
    df = read(out).sort_values("pixel_count")
    assert df[["from_class", "to_class"]].values.tolist() == [[2, 1], [1, 0]]
    assert df.from_name.tolist() == ["low_vegetation", "building"]
    assert df.to_name.tolist() == ["building", "impervious"]
    assert df.pixel_count.tolist() == [150, 175]


def test_regularised_from_to_pieces_of_a_change_region_do_not_overlap(tmp_path):
    """Each from/to piece squared on its own: pieces of one change region overlapped (11 pairs, 6325 m2 counted
    twice on a Landsat pair), where the plain layer is a coverage."""
    yy, xx = np.mgrid[:60, :60]
    change = np.zeros((3, 60, 60), dtype="uint8")
    block = (yy >= 10) & (yy < 50) & (xx >= 10) & (xx < 50)
    change[0][block], change[1][block] = 1, 2
    change[2][block] = np.where(yy[block] > xx[block], 1, 3)  # cut along the diagonal: two staircase pieces
    src = write_raster(tmp_path / "change.tif", change, res=0.5)
    with rasterio.open(src, "r+") as ds:
        ds.descriptions = ("change", "from_class", "to_class")
    vectorize_raster(src, tmp_path / "c.gpkg", regularize=True, min_area=0)
    geoms = read(tmp_path / "c.gpkg").geometry.values
    assert len(geoms) == 2 and shapely.is_valid(geoms).all()
    assert shapely.area(shapely.intersection(geoms[0], geoms[1])) < 1e-9


def test_regularised_outlines_are_counted_among_the_polygons_written(tmp_path):
    """A semantic change raster's regions under the minimum area are dropped after --regularize squared them: the
    summary said '172 of 183 outlines kept their simplified shape' of a layer of 160 polygons (QA)."""
    from tests.helpers.rasters import write_semantic_change

    yy, xx = np.mgrid[:80, :80]
    change = np.zeros((80, 80), dtype="uint8")
    change[(yy - 30) ** 2 + (xx - 30) ** 2 < 20**2] = 1  # a round region: kept, not squared
    change[60:72, 55:75] = 1  # a rectangle: kept, squared
    for r in range(2, 78, 6):
        change[r:r + 3, 74:77] = 1  # 9 m2 specks: dropped under 44 m2
    t1 = np.where(change == 1, 2, 0)
    t2 = np.where(change == 1, 1, 0)
    src = write_semantic_change(tmp_path / "change.tif", change, t1, t2, {"class_names": json.dumps(
        ["impervious", "building", "low_vegetation"])})
    summary = vectorize_raster(src, tmp_path / "c.gpkg", regularize=True, min_area=44)
    assert summary.polygons == len(read(tmp_path / "c.gpkg")) == 2
    assert summary.regularized == 2 and summary.unsquared == 1
    assert "; 1 of 2 outlines kept their simplified shape" in summary.describe()


@pytest.mark.parametrize("suffix", [".geojson", ".fgb"])
def test_geojson_and_flatgeobuf_take_the_polygons_batch_by_batch(tmp_path, suffix, monkeypatch):
    """Only a GeoPackage was streamed: GeoJSON and FlatGeobuf held the whole layer (348k polygons: 689 and 791
    MiB peak, 409 MiB to a GeoPackage). Now they stream through a staged GeoPackage, with the same features."""
    import rsmamba.vectorize.api as api

    a = np.zeros((64, 64), dtype="uint8")
    for r in range(0, 64, 8):
        for c in range(0, 64, 8):
            a[r + 1:r + 5, c + 1:c + 6] = 1  # 64 buildings, 8 per block row of 8 px
    src = write_raster(tmp_path / "classes.tif", a, res=0.5)
    largest = []
    write = api._write
    monkeypatch.setattr(api, "_write", lambda frame, *args, **kw: (largest.append(len(frame)), write(frame, *args, **kw)))
    vectorize_raster(src, tmp_path / f"b{suffix}", classes=["building"], block_size=8)
    assert len(largest) > 1 and max(largest) <= 8
    vectorize_raster(src, tmp_path / "b.gpkg", classes=["building"], block_size=8)

    def rows(path):  # FlatGeobuf's spatial index orders the features its own way
        df = read(path)
        if df.crs.to_epsg() == 4326:  # GeoJSON (RFC 7946): back to the raster's CRS, to the 8 decimals' millimetre
            df = df.to_crs("EPSG:32632")
            df = df.set_geometry(shapely.set_precision(df.geometry.values, 0.5))  # the 0.5 m pixel corners
        return sorted(zip(shapely.to_wkt(shapely.normalize(df.geometry.values)),  # (one ring start and direction)
                          *(df[c].tolist() for c in df.columns if c != "geometry")))

    assert len(rows(tmp_path / f"b{suffix}")) == 64 and rows(tmp_path / f"b{suffix}") == rows(tmp_path / "b.gpkg")
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staged file left


def test_classes_on_a_binary_change_raster_are_refused(tmp_path, capsys):
    """A binary change raster has no from/to classes: --classes tree was accepted and ignored (every change
    polygon written)."""
    change = np.zeros((20, 20), dtype="uint8")
    change[5:15, 5:15] = 1
    src = write_raster(tmp_path / "change.tif", change)
    with rasterio.open(src, "r+") as ds:
        ds.descriptions = ("change",)
    assert "binary change raster" in cli_fails(["vectorize", str(src), "--classes", "tree",
                                                "-o", str(tmp_path / "c.gpkg")], capsys)
    assert not (tmp_path / "c.gpkg").exists()
    assert main(["vectorize", str(src), "-o", str(tmp_path / "c.gpkg")]) == 0


def test_semantic_change_min_area_counts_whole_change_regions(tmp_path):
    """A change cut into from/to pieces, each under --min-area, vanished from the semantic layer while the
    plain change layer kept it (a 45 m2 change as 12 pieces under the calibrated 44 m2)."""
    change = np.zeros((3, 30, 40), dtype="uint8")
    change[1:] = 2
    change[:, 2:12, 2:12] = [[[1]], [[2]], [[1]]]  # one 10 x 10 m change region of four from/to pieces
    change[1:, 2:7, 7:12] = [[[1]], [[0]]]
    change[1:, 7:12, 2:7] = [[[3]], [[1]]]
    change[1:, 7:12, 7:12] = [[[0]], [[1]]]
    change[:, 20:24, 20:25] = [[[1]], [[2]], [[1]]]  # 20 m2 alone: under the threshold
    src = write_raster(tmp_path / "change.tif", change)
    with rasterio.open(src, "r+") as ds:
        ds.descriptions = ("change", "from_class", "to_class")
    out = tmp_path / "c.gpkg"
    assert main(["vectorize", str(src), "--min-area", "50m2", "--block-size", "8", "-o", str(out)]) == 0
    df = read(out)
    assert len(df) == 4 and sorted(df.pixel_count.tolist()) == [25, 25, 25, 25]  # each 25 m2, the region 100
    assert main(["vectorize", str(src), "--min-area", "101m2", "-o", str(tmp_path / "none.gpkg")]) == 0
    assert len(read(tmp_path / "none.gpkg")) == 0
    # two 30 m2 blocks meeting at one corner: two regions in the plain layer (4-connected pixels), both under
    # 44 m2; the semantic layer joined them into one 60 m2 region and kept both
    change = np.zeros((3, 30, 40), dtype="uint8")
    change[1:] = 2
    change[:, 2:7, 2:8] = [[[1]], [[1]], [[0]]]
    change[:, 7:12, 8:14] = [[[1]], [[2]], [[1]]]
    corner = write_raster(tmp_path / "corner.tif", change)
    with rasterio.open(corner, "r+") as ds:
        ds.descriptions = ("change", "from_class", "to_class")
    plain = write_raster(tmp_path / "corner1.tif", change[:1])
    with rasterio.open(plain, "r+") as ds:
        ds.descriptions = ("change",)
    for path in (corner, plain):
        assert main(["vectorize", str(path), "--min-area", "44m2", "-o", str(tmp_path / f"{path.stem}.gpkg")]) == 0
        assert len(read(tmp_path / f"{path.stem}.gpkg")) == 0


def test_reproject_geographic_raster(tmp_path):
    a = np.zeros((20, 20), dtype="uint8")
    a[5:15, 5:15] = 1
    src = write_raster(tmp_path / "geo.tif", a, crs="EPSG:4326", origin=(9.0, 45.0), res=1e-5)
    out = tmp_path / "b.gpkg"
    assert main(["vectorize", str(src), "-o", str(out), "--classes", "building"]) == 2
    assert not out.exists()
    vectorize_raster(src, out, classes=["building"], reproject_to="EPSG:32632")
    df = read(out)
    assert "32632" in pyogrio.read_info(out)["crs"]
    assert df.area_m2[0] == pytest.approx(100 * 0.78 * 1.11, rel=0.1)  # ~0.78 m x 1.11 m pixels at 45 N


def cli_fails(args, capsys) -> str:
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and err.startswith("rsmamba: error:")
    return err


def test_bad_inputs_one_line_and_no_output(tmp_path, capsys):
    out = tmp_path / "o.gpkg"
    assert "file not found" in cli_fails(["vectorize", str(tmp_path / "missing.tif"), "-o", str(out)], capsys)
    nocrs = write_raster(tmp_path / "nocrs.tif", scene(), crs=None)
    assert "no CRS" in cli_fails(["vectorize", str(nocrs), "-o", str(out)], capsys)
    geo = write_raster(tmp_path / "geo.tif", scene(), crs="EPSG:4326", origin=(9, 45), res=1e-5)
    assert "geographic" in cli_fails(["vectorize", str(geo), "-o", str(out)], capsys)
    empty = write_raster(tmp_path / "empty.tif", np.full((20, 20), 255, dtype="uint8"))
    assert "empty raster" in cli_fails(["vectorize", str(empty), "-o", str(out)], capsys)
    good = write_raster(tmp_path / "good.tif", scene())
    err = cli_fails(["vectorize", str(good), "-o", str(out), "--classes", "castle", "--min-area", "4 apples"], capsys)
    assert "castle" in err and "--min-area" in err  # every problem at once
    assert "format" in cli_fails(["vectorize", str(good), "-o", str(tmp_path / "o.shpx")], capsys)
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))
    assert not list(tmp_path.glob("*.gpkg"))


def test_parquet_output(tmp_path):
    pytest.importorskip("pyarrow")
    import geopandas as gpd

    src = write_raster(tmp_path / "classes.tif", scene(), crs="EPSG:32633")
    out = tmp_path / "b.parquet"
    vectorize_raster(src, out, classes=["building"], block_size=32)
    df = gpd.read_parquet(out)
    assert df.crs.to_epsg() == 32633 and len(df) == 2 and df.geometry.is_valid.all()


@pytest.mark.parametrize("angle", [10, 25, 40])
def test_regularise_with_45_degree_walls(tmp_path, angle):
    gsd = 0.25
    transform = from_origin(0.0, 40.0, gsd, gsd)
    drawn = affinity.rotate(shapely.Polygon([(10, 10), (24, 10), (24, 15), (19, 20), (10, 20)]), angle, origin=(17, 15))
    a = features.rasterize([(drawn, 1)], out_shape=(160, 160), transform=transform, dtype="uint8")
    src = write_raster(tmp_path / "b.tif", a, transform=transform)
    out = tmp_path / "b.gpkg"
    vectorize_raster(src, out, classes=["building"], regularize=True, allow_45=True)
    poly = read(out).geometry[0]
    assert poly.is_valid and len(poly.exterior.coords) - 1 == 5
    d = np.diff(np.asarray(poly.exterior.coords), axis=0)
    turns = np.degrees(np.diff(np.unwrap(np.arctan2(d[:, 1], d[:, 0]))))
    assert np.all(np.isclose(turns % 45, 0, atol=1e-6) | np.isclose(turns % 45, 45, atol=1e-6))
    assert poly.intersection(drawn).area / poly.union(drawn).area >= 0.95


def test_binary_change_raster_forced_with_flag(tmp_path):
    change = np.zeros((20, 20), dtype="uint8")
    change[2:6, 2:6] = 1
    change[10:15, 8:18] = 1
    src = write_raster(tmp_path / "change.tif", change)  # no band description: needs --change
    out = tmp_path / "c.gpkg"
    assert main(["vectorize", str(src), "-o", str(out), "--change", "--block-size", "8"]) == 0
    df = read(out)
    assert sorted(df.pixel_count) == [16, 50] and (df.change == 1).all()
    assert "from_class" not in df.columns and "class_id" not in df.columns


def test_regularise_keeps_thin_walls_whole(tmp_path):
    from rsmamba.vectorize.regularize import regularize_polygon

    # As thin as the tolerance: simplification alone would give a triangle of half the area.
    assert regularize_polygon(shapely.box(0, 0, 50, 2), tolerance=2, allow_45=True).area == pytest.approx(100)
    a = np.zeros((100, 160), dtype="uint8")
    a[80, 10:150] = 1  # a 1-px wall, 70 m x 0.5 m
    src = write_raster(tmp_path / "wall.tif", a, res=0.5)
    df = read(vectorize_raster(src, tmp_path / "w.gpkg", classes=["building"], regularize=True, allow_45=True).output)
    assert len(df) == 1 and df.geometry.is_valid.all()
    assert df.area_m2[0] == pytest.approx(35.0, rel=0.05)


def test_fill_holes_absorbs_what_lay_in_the_holes(tmp_path):
    """A building with a courtyard holding a small building patch (and a tree): two stacked buildings, 26 m2
    of area for 22 of pixels; the filled polygon overlapped the tree too (coverage simplify assumes none)."""
    a = np.zeros((20, 20), dtype="uint8")
    a[2:12, 2:12] = 1  # a building ...
    a[5:9, 5:9] = 0  # ... with a 16 m2 courtyard
    a[6:7, 6:8] = 1  # holding a building patch of 2 m2
    a[7:8, 6:7] = 3  # and a tree of 1 m2
    src = write_raster(tmp_path / "c.tif", a)
    out = tmp_path / "f.gpkg"
    assert main(["vectorize", str(src), "--classes", "building,tree", "--fill-holes", "20m2", "-o", str(out)]) == 0
    df = read(out)
    # every pixel in the outline, the courtyard's ground too (it counted 2 + 1 of its 16: the layer's patches only)
    assert df.class_name.tolist() == ["building"] and df.pixel_count.tolist() == [100]
    assert df.area_m2.tolist() == [100.0] and df.geometry.iloc[0].equals(shapely.box(500002, 4999988, 500012, 4999998))
    assert main(["vectorize", str(src), "--classes", "building,tree", "-o", str(tmp_path / "raw.gpkg")]) == 0
    assert len(read(tmp_path / "raw.gpkg")) == 3  # without --fill-holes: the courtyard's patches stay


@pytest.mark.parametrize("reproject", [None, "EPSG:3035"])
def test_filled_holes_count_their_pixels_whatever_they_hold(tmp_path, reproject):
    """pixel_count counted a filled hole's pixels where they were polygons of the layer (a patch of the class, a
    selected class) and not where they were nodata or a class not vectorized: one building, 900 px in its
    outline, reported 865 or 873 with --classes; now every pixel in the outline, as area_m2 measures it."""
    a = np.zeros((40, 40), dtype="uint8")
    a[5:35, 5:35] = 1  # a 30 x 30 px building holding five small holes:
    a[10:14, 10:14] = 0  # ground,
    a[20:23, 20:23] = 4  # a car,
    a[28:30, 8:11] = 255  # nodata,
    a[15:19, 25:30] = 0  # ground holding a building patch
    a[16:18, 26:28] = 1
    src = write_raster(tmp_path / "c.tif", a, res=0.5, nodata=255)
    for classes in (["building"], None):
        out = vectorize_raster(src, tmp_path / "f.gpkg", classes=classes, fill_holes="10m2", reproject_to=reproject,
                               overwrite=True).output
        df = read(out)
        building = df[df.class_name == "building"]
        assert building.pixel_count.tolist() == [900] and len(building.geometry.iloc[0].interiors) == 0
        if reproject is None:
            assert building.area_m2.tolist() == [225.0]
        if classes is None:  # the ground round it too: every pixel once (the 6 of nodata in the building's)
            assert df.pixel_count.sum() == 40 * 40


def test_regularize_of_other_classes_than_buildings_is_said(tmp_path, caplog):
    a = np.zeros((20, 20), dtype="uint8")
    a[2:12, 2:12] = 1
    a[14:18, 2:18] = 3
    src = write_raster(tmp_path / "c.tif", a)
    with caplog.at_level("WARNING", logger="rsmamba"):
        vectorize_raster(src, tmp_path / "b.gpkg", classes=["building"], regularize=True)
    assert "--regularize squares" not in caplog.text
    with caplog.at_level("WARNING", logger="rsmamba"):
        vectorize_raster(src, tmp_path / "all.gpkg", regularize=True)
    assert "--regularize squares every selected class, here impervious, low_vegetation, tree" in caplog.text


def test_forced_change_refuses_a_class_raster_and_keeps_a_plain_mask(tmp_path, capsys) -> None:
    """`--change` on a 6-class map wrote its buildings as 'change' polygons and dropped every other class."""
    ids = np.zeros((40, 40), np.uint8)
    ids[5:15, 5:15], ids[20:30, 20:30], ids[25:35, 2:8] = 1, 3, 1
    classes = write_raster(tmp_path / "classes.tif", ids)
    with rasterio.open(classes, "r+") as dst:
        dst.update_tags(CLASS_NAMES=json.dumps(["impervious", "building", "low_vegetation", "tree", "car", "clutter"]))
    said = cli_fails(["vectorize", str(classes), "--change", "-o", str(tmp_path / "a.gpkg")], capsys)
    assert "--change, but it is a class raster (0 impervious, 1 building" in said
    untagged = write_raster(tmp_path / "untagged.tif", ids)
    said = cli_fails(["vectorize", str(untagged), "--change", "-o", str(tmp_path / "b.gpkg")], capsys)
    assert "band 1 holds 3 beside 0/1" in said
    assert not (tmp_path / "a.gpkg").exists() and not (tmp_path / "b.gpkg").exists()
    mask = write_raster(tmp_path / "mask.tif", (ids == 1).astype(np.uint8))  # another tool's 0/1 mask: forced in
    assert main(["vectorize", str(mask), "--change", "-o", str(tmp_path / "c.gpkg")]) == 0
    layer = pyogrio.read_dataframe(tmp_path / "c.gpkg")
    assert len(layer) == 2 and "change" in layer.columns


def test_forced_change_takes_a_semantic_change_raster_that_lost_its_band_descriptions(tmp_path) -> None:
    """Its land-cover table read as 'a class raster': refused, and the advice (drop --change) refused too."""
    bands = np.zeros((3, 40, 40), np.uint8)
    bands[0, 5:15, 5:15], bands[1, 5:15, 5:15], bands[2, 5:15, 5:15] = 1, 2, 1  # change, from, to
    sem = write_raster(tmp_path / "sem.tif", bands)
    with rasterio.open(sem, "r+") as dst:
        dst.update_tags(CLASS_NAMES=json.dumps(["impervious", "building", "low_vegetation", "tree", "car", "clutter"]))
    assert main(["vectorize", str(sem), "--change", "-o", str(tmp_path / "s.gpkg")]) == 0
    layer = pyogrio.read_dataframe(tmp_path / "s.gpkg")
    assert len(layer) == 1


def test_regularize_does_not_depend_on_where_a_ring_begins() -> None:
    """Douglas-Peucker keeps a ring's first vertex: the same outline begun where another block seam fell came out
    another footprint (12 of 191 buildings changed with --block-size, up to 1.35 m2)."""
    import shapely

    from rsmamba.vectorize.regularize import regularize_polygon

    rng = np.random.default_rng(4)
    steps = np.cumsum(rng.integers(0, 2, (40, 2)), axis=0) * 0.25  # a staircase wall, then back along a straight one
    ring = [(0.0, 0.0), *map(tuple, steps + [0.0, 0.25]), (steps[-1, 0] + 3, steps[-1, 1] + 0.25), (steps[-1, 0] + 3, -3)]
    first = shapely.Polygon(ring)
    results = set()
    for start in range(0, len(ring), 5):
        turned = shapely.Polygon(ring[start:] + ring[:start])
        assert shapely.equals(turned, first)
        out = regularize_polygon(turned, tolerance=0.25)
        results.add(shapely.normalize(out).wkt)
    assert len(results) == 1


def test_a_piece_inside_its_neighbours_straightened_outline_is_cut_out_of_it() -> None:
    """DE-9IM 'overlaps' is false for containment: 1-2 px from/to pieces inside a neighbour's regularised outline
    were left there, overlapping (the README says they do not)."""
    import shapely

    from rsmamba.vectorize.api import _without_overlaps

    big, small = shapely.box(0, 0, 10, 10), shapely.box(4, 4, 4.25, 4.25)  # a pixel swallowed by the straightening
    raw = np.array([big.difference(small), small], dtype=object)
    out = _without_overlaps(np.array([big, small], dtype=object), raw, grid=1e-3)
    assert shapely.area(shapely.intersection(out[0], out[1])) < 1e-9
    assert shapely.equals(out[1], small) and abs(out[0].area - (100 - 0.0625)) < 1e-9


def test_simplified_layer_does_not_depend_on_the_block_size(tmp_path) -> None:
    """GEOS's coverage simplification depends on the order of the polygons, and the polygonizer finishes them in
    an order that moves with --block-size: 102 of 1583 polygons of a scene changed, up to 196 m2."""
    import shapely
    from scipy import ndimage

    rng = np.random.default_rng(7)
    field = ndimage.gaussian_filter(rng.normal(size=(4, 128, 128)), 3)  # blobs of four classes sharing borders
    src = write_raster(tmp_path / "c.tif", field.argmax(0).astype("uint8"), res=0.5)
    layers = set()
    for block in (128, 40, 17):
        out = vectorize_raster(src, tmp_path / f"s{block}.gpkg", simplify="1m", block_size=block).output
        layers.add(tuple(sorted(shapely.to_wkb(shapely.normalize(read(out).geometry.values)).tolist())))
    assert len(layers) == 1


@pytest.mark.parametrize("options", [{}, {"regularize": True, "fill_holes": "3m2", "min_area": "2m2"}])
def test_layer_does_not_depend_on_the_block_size(tmp_path, options) -> None:
    """Polygons crossing block borders are merged exactly: the same layer, geometry and attributes, at any
    --block-size, regularised and hole-filled too (carried QA item)."""
    gsd = 0.25
    transform = from_origin(1000.0, 2000.0, gsd, gsd)
    rng = np.random.default_rng(3)
    houses = []
    for _ in range(14):
        x, y = 1000 + rng.uniform(4, 36), 2000 - rng.uniform(4, 36)
        house = affinity.rotate(shapely.box(x - 3, y - 2, x + 3, y + 2), rng.uniform(0, 90), origin=(x, y))
        houses.append(house.difference(shapely.Point(x, y).buffer(0.6)))  # a courtyard to fill
    a = features.rasterize([(h, 1) for h in houses], out_shape=(160, 160), transform=transform, dtype="uint8")
    a[rng.random(a.shape) < 0.002] = 1  # specks under --min-area
    src = write_raster(tmp_path / "b.tif", a, transform=transform)
    layers = set()
    for block in (2048, 33, 8):
        df = read(vectorize_raster(src, tmp_path / f"b{block}.gpkg", classes=["building"], block_size=block,
                                   **options).output)
        assert df.geometry.is_valid.all()
        rows = zip(shapely.to_wkb(shapely.normalize(df.geometry.values)), df.pixel_count, df.area_m2.round(9))
        layers.add(tuple(sorted(rows)))
    assert len(layers) == 1


def test_one_pixel_houses_are_not_said_to_have_kept_a_shape_without_right_angles(tmp_path) -> None:
    """A one-pixel outline is a square already; the summary said '9 of 10 outlines kept their simplified shape, not
    right angles (... check them)' of specks that were squares (QA). A round shape is still said."""
    a = np.zeros((40, 40), dtype="uint8")
    a[2:30:3, 2] = 1  # ten one-pixel houses
    a[2:30:3, 8:10] = 1  # and ten of 1 x 2 pixels
    yy, xx = np.mgrid[:40, :40]
    a[(yy - 25) ** 2 + (xx - 28) ** 2 < 9**2] = 1
    src = write_raster(tmp_path / "c.tif", a, res=0.5)
    summary = vectorize_raster(src, tmp_path / "c.gpkg", classes=["building"], regularize=True)
    assert summary.polygons == 21
    assert "; 1 of 21 outlines kept their simplified shape, not right angles" in summary.describe()
