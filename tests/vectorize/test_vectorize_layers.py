"""Writing into existing layers: --append / --overwrite / --layer, and the schema of every layer."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely

from rsmamba.cli import main
from rsmamba.errors import InputError
from rsmamba.vectorize import vectorize_raster
from tests.helpers.rasters import write_raster
from tests.vectorize.test_instances import _write as write_instance_scene


def buildings(h: int = 20, w: int = 30) -> np.ndarray:
    a = np.zeros((h, w), dtype="uint8")
    a[2:8, 3:12] = 1
    a[12:18, 15:25] = 1
    return a


def one_line_error(args: list[str], capsys) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("rsmamba: error:"), err
    return err


def test_append_refuses_a_layer_in_another_crs(tmp_path, capsys):
    out = tmp_path / "map.gpkg"
    vectorize_raster(write_raster(tmp_path / "a.tif", buildings(), crs="EPSG:32632"), out, classes=["building"])
    other = write_raster(tmp_path / "b.tif", buildings(), crs="EPSG:32633")
    before = out.read_bytes()
    err = one_line_error(["vectorize", str(other), "-o", str(out), "--layer", "map", "--append"], capsys)
    assert "EPSG:32632" in err and "EPSG:32633" in err and "--reproject EPSG:32632" in err
    assert out.read_bytes() == before
    # Reprojected into the layer's CRS it appends.
    vectorize_raster(other, out, classes=["building"], append=True, reproject_to="EPSG:32632")
    assert pyogrio.read_info(out)["features"] == 4


def test_append_to_a_layer_in_a_crs_without_epsg_code_gives_advice_that_works(tmp_path, capsys):
    """The hint said '--reproject unknown', refused as 'not a CRS'."""
    import shlex

    tm = ("+proj=tmerc +lat_0=0 +lon_0=9.5 +k=0.9999 +x_0=600000 +y_0=0 +ellps=GRS80 +units=m +no_defs")
    out = tmp_path / "map.gpkg"
    vectorize_raster(write_raster(tmp_path / "a.tif", buildings(), crs=tm, origin=(600000.0, 5000000.0)), out,
                     classes=["building"])
    other = write_raster(tmp_path / "b.tif", buildings(), crs="EPSG:32632")
    err = one_line_error(["vectorize", str(other), "-o", str(out), "--layer", "map", "--append"], capsys)
    assert "--reproject unknown " not in err
    reproject = shlex.split(err.split("(pass --reproject ")[1].rsplit(" to append", 1)[0])[0]
    vectorize_raster(other, out, classes=["building"], append=True, reproject_to=reproject)
    assert pyogrio.read_info(out)["features"] == 4


def test_append_of_a_datumless_crs_goes_into_the_layer_gdal_labelled_by_its_code(tmp_path):
    """GDAL labels a datum-less PROJ string (GRS80 alone) by the code it loosely matches (EPSG:2263, NAD83): the
    same raster's --append to the layer it had just written was refused 'is in EPSG:2263, these polygons in
    EPSG:2263'."""
    lcc = ("+proj=lcc +lat_0=40.1666666666667 +lon_0=-74 +lat_1=41.0333333333333 +lat_2=40.6666666666667 "
           "+x_0=300000 +y_0=0 +ellps=GRS80 +units=us-ft +no_defs")
    src = write_raster(tmp_path / "a.tif", buildings(), crs=lcc, origin=(1000000.0, 200000.0))
    out = tmp_path / "map.gpkg"
    vectorize_raster(src, out, classes=["building"])
    vectorize_raster(src, out, classes=["building"], append=True)
    assert pyogrio.read_info(out)["features"] == 4


def test_an_empty_result_of_min_area_says_so(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="rsmamba"):
        vectorize_raster(write_raster(tmp_path / "a.tif", buildings()), tmp_path / "o.gpkg", classes=["building"],
                         min_area="100000m2")
    assert "no polygons of the selected classes of 100000 m2 or more (--min-area); wrote an empty layer" in caplog.text


@pytest.mark.parametrize("suffix", [".gpkg", ".fgb", ".parquet"])
def test_an_empty_layer_has_the_schema_of_a_full_one(tmp_path, suffix):
    src = write_raster(tmp_path / "a.tif", buildings())
    full, empty = tmp_path / f"full{suffix}", tmp_path / f"empty{suffix}"
    vectorize_raster(src, full, classes=["building"])
    vectorize_raster(src, empty, classes=["tree"])  # absent: an empty layer
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        assert pq.read_schema(empty).types == pq.read_schema(full).types
        assert str(pq.read_schema(empty).field("class_name").type) in ("string", "large_string")
        return
    info_full, info_empty = pyogrio.read_info(full), pyogrio.read_info(empty)
    assert len(pyogrio.read_dataframe(empty)) == 0
    assert list(info_empty["fields"]) == list(info_full["fields"])
    assert list(info_empty["dtypes"]) == list(info_full["dtypes"])
    types = dict(zip(info_empty["fields"], info_empty["dtypes"]))
    assert types["class_name"] == types["source"] == types["model_id"] == "object"
    assert types["class_id"] == types["pixel_count"] == "int64" and types["area_m2"] == "float64"


def test_append_into_an_empty_layer_keeps_names(tmp_path):
    src = write_raster(tmp_path / "a.tif", buildings())
    out = tmp_path / "map.gpkg"
    vectorize_raster(src, out, classes=["tree"])
    vectorize_raster(src, out, classes=["building"], append=True)
    df = pyogrio.read_dataframe(out)
    assert df.class_name.tolist() == ["building", "building"] and df.source.tolist() == ["a.tif", "a.tif"]


def test_append_refuses_a_layer_with_other_fields_or_geometries(tmp_path, capsys):
    import geopandas as gpd
    import shapely

    src = write_raster(tmp_path / "a.tif", buildings())
    out = tmp_path / "map.gpkg"
    roads = gpd.GeoDataFrame({"name": ["a"]}, geometry=[shapely.LineString([(0, 0), (1, 1)])], crs="EPSG:32632")
    pyogrio.write_dataframe(roads, out, layer="roads")
    err = one_line_error(["vectorize", str(src), "-o", str(out), "--layer", "roads", "--append"], capsys)
    assert "'roads'" in err and "LineString" in err
    plots = gpd.GeoDataFrame({"name": ["a"]}, geometry=[shapely.box(0, 0, 1, 1)], crs="EPSG:32632")
    pyogrio.write_dataframe(plots, out, layer="plots")
    err = one_line_error(["vectorize", str(src), "-o", str(out), "--layer", "plots", "--append"], capsys)
    assert "'plots'" in err and "no class_id" in err and "extra name" in err
    assert sorted(pyogrio.read_info(out, layer="plots")["fields"]) == ["name"]


def test_layer_names_compare_without_case(tmp_path, capsys):
    src = write_raster(tmp_path / "a.tif", buildings())
    out = tmp_path / "map.gpkg"
    vectorize_raster(src, out, classes=["building"], layer="b")
    err = one_line_error(["vectorize", str(src), "-o", str(out), "--layer", "B"], capsys)
    assert "'b' exists" in err
    assert main(["vectorize", str(src), "-o", str(out), "--layer", "B", "--overwrite", "--classes", "0"]) == 0
    layers = [name for name, _ in pyogrio.list_layers(out)]
    assert layers == ["B"] and set(pyogrio.read_dataframe(out, layer="B").class_id) == {0}
    vectorize_raster(src, out, classes=["building"], layer="b", append=True)
    assert [name for name, _ in pyogrio.list_layers(out)] == ["B"]
    assert pyogrio.read_info(out, layer="B")["features"] == 3


def test_layer_names_differing_in_non_ascii_case_are_two_layers(tmp_path, capsys):
    """SQLite and GDAL fold ASCII letters only: 'STRASSE' and 'straße' are two layers. Casefolded, the second was
    refused as the first, and with --append its polygons went into 'straße'."""
    src = write_raster(tmp_path / "a.tif", buildings())
    out = tmp_path / "map.gpkg"
    vectorize_raster(src, out, classes=["building"], layer="straße")
    vectorize_raster(src, out, classes=["building"], layer="gebäude")
    assert main(["vectorize", str(src), "-o", str(out), "--layer", "STRASSE", "--classes", "building"]) == 0
    assert main(["vectorize", str(src), "-o", str(out), "--layer", "GEBÄUDE", "--append", "--classes", "building"]) == 0
    assert "holds no layer 'GEBÄUDE'" in capsys.readouterr().err  # --append made it: said
    layers = {name: pyogrio.read_info(out, layer=name)["features"] for name, _ in pyogrio.list_layers(out)}
    assert layers == {"straße": 2, "gebäude": 2, "STRASSE": 2, "GEBÄUDE": 2}  # (two buildings each)
    err = one_line_error(["vectorize", str(src), "-o", str(out), "--layer", "Straße"], capsys)  # ASCII case: one
    assert "'straße' exists" in err
    from rsmamba.paths import read_vector  # every layer option reads the layer named (--reference-layer gebäude
    # read 'GEBÄUDE': mIoU 0.07 for 0.22)

    two = tmp_path / "two.gpkg"
    for name, n in (("GEBÄUDE", 1), ("gebäude", 3)):
        boxes = gpd.GeoDataFrame(geometry=[shapely.box(i, 0, i + 1, 1) for i in range(n)], crs="EPSG:32632")
        pyogrio.write_dataframe(boxes, two, layer=name)
    assert [len(read_vector(two, layer=name)) for name in ("GEBÄUDE", "gebäude", "Gebäude", "gEBÄUDE")] == [1, 3, 3, 1]
    with pytest.raises(InputError):
        read_vector(two, layer="GEBAUDE")


@pytest.mark.parametrize("name", ["rtree_t1_geom", "RTREE_T1_GEOM_node", "By_Class"])
def test_a_layer_name_another_table_of_the_geopackage_holds_is_refused_before_any_work(tmp_path, capsys, monkeypatch,
                                                                                        name):
    """--layer rtree_t1_geom (the R-tree index GDAL keeps for the layer t1) got SQLite's 'table already exists'
    once every polygon was computed; so did the name of an index. The GeoPackage's tables, views and indexes are
    read first, without case, as SQLite names them."""
    import contextlib
    import sqlite3

    from rsmamba.vectorize import api

    src = write_raster(tmp_path / "a.tif", buildings())
    out = tmp_path / "map.gpkg"
    vectorize_raster(src, out, classes=["building"], layer="t1")
    with contextlib.closing(sqlite3.connect(out)) as db:  # another program's index
        db.execute("CREATE INDEX by_class ON t1 (class_id)")
        db.commit()
    before = out.read_bytes()

    def no_work(*args, **kwargs):
        raise AssertionError("the raster was read")
    monkeypatch.setattr(api, "_Reader", no_work)
    for extra in ([], ["--overwrite"]):
        err = one_line_error(["vectorize", str(src), "-o", str(out), "--layer", name, *extra], capsys)
        kind = "index" if name == "By_Class" else "table"
        assert f"layer name {name!r} is taken in {out} by its {kind} {name.lower()!r}, which is not a layer" in err
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "map.gpkg"]


def test_append_with_instances_continues_building_ids(tmp_path):
    classes = np.zeros((30, 40), np.uint8)
    classes[5:25, 5:35] = 1
    interior = np.zeros_like(classes)
    interior[8:22, 8:18] = 254
    interior[8:22, 22:32] = 254
    contact = np.zeros_like(classes)
    contact[5:25, 19:21] = 254
    cls_path, prob_path, _ = write_instance_scene(tmp_path, classes, interior, contact)
    out = tmp_path / "houses.gpkg"
    for append in (False, True):
        vectorize_raster(cls_path, out, classes=["building"], probabilities=prob_path, instances=True, append=append)
    ids = pyogrio.read_dataframe(out).building_id.tolist()
    assert sorted(ids) == [1, 2, 3, 4]
    # a received layer whose building_id reaches 2^63 - 1: the next id was an OverflowError traceback
    full = pyogrio.read_dataframe(out)
    full["building_id"] = [1, 2, 3, 2**63 - 1]
    pyogrio.write_dataframe(full, out, layer="houses")
    before = out.read_bytes()
    with pytest.raises(InputError, match="building_id reaches 9,223,372,036,854,775,807, leaving no room"):
        vectorize_raster(cls_path, out, classes=["building"], probabilities=prob_path, instances=True, append=True)
    assert out.read_bytes() == before


def test_append_and_overwrite_together_are_refused(tmp_path, capsys):
    src = write_raster(tmp_path / "a.tif", buildings())
    out = tmp_path / "map.gpkg"
    vectorize_raster(src, out)
    err = one_line_error(["vectorize", str(src), "-o", str(out), "--append", "--overwrite"], capsys)
    assert "--append" in err and "--overwrite" in err


def test_a_geopackage_open_in_wal_mode_is_refused(tmp_path, capsys):
    """QGIS opens a GeoPackage in WAL mode: its changes wait in NAME-wal. A copy without them, renamed over
    the file QGIS still writes through its -wal, was a corrupt GeoPackage."""
    import sqlite3

    out = tmp_path / "map.gpkg"
    raster = write_raster(tmp_path / "a.tif", buildings())
    vectorize_raster(raster, out, classes=["building"])
    holder = sqlite3.connect(out)  # another program holds it open, in WAL mode, with a change pending
    try:
        holder.execute("PRAGMA journal_mode=WAL")
        holder.execute("CREATE TABLE qgis_notes (x INTEGER)")
        holder.commit()
        assert (tmp_path / "map.gpkg-wal").exists()
        before = out.read_bytes()
        err = one_line_error(["vectorize", str(raster), "-o", str(out), "--layer", "second"], capsys)
        assert "is open in another program (map.gpkg-wal, map.gpkg-shm beside it)" in err
        assert out.read_bytes() == before
    finally:
        holder.close()  # the last connection checkpoints and removes -wal and -shm
    vectorize_raster(raster, out, classes=["building"], layer="second")
    assert {name for name, _ in pyogrio.list_layers(out)} >= {"map", "second"}


def test_flatgeobuf_output_needs_its_suffix(tmp_path, capsys):
    """-o buildings.dat --format fgb wrote a folder (GDAL's FlatGeobuf for any other name) that --overwrite refused."""
    src = write_raster(tmp_path / "a.tif", buildings())
    err = one_line_error(["vectorize", str(src), "-o", str(tmp_path / "b.dat"), "--format", "fgb"], capsys)
    assert "a FlatGeobuf file's name ends in .fgb" in err and "name it b.fgb" in err
    assert not (tmp_path / "b.dat").exists()


def test_geojson_of_a_compound_crs_is_placed_by_its_horizontal_part(tmp_path):
    """GDAL's GeoJSON writer took EPSG:27700+5701 (British grid + ODN heights) to WGS 84 in 3-D: the streamed
    layer stood 1.67 m from the held one (--fill-holes) and from where GDAL places the raster."""
    from rasterio.warp import transform as warp_transform

    a = np.zeros((40, 40), dtype="uint8")
    a[10:20, 10:20] = 1
    src = write_raster(tmp_path / "bng.tif", a, crs="EPSG:27700+5701", origin=(530000.0, 180000.0), res=0.5)
    vectorize_raster(src, tmp_path / "s.geojson", classes=["building"])
    vectorize_raster(src, tmp_path / "h.geojson", classes=["building"], fill_holes="1m2")
    (lon,), (lat,) = warp_transform("EPSG:27700", "EPSG:4326", [530005.0], [179990.0])  # the corner at col 10, row 20
    for name in ("s.geojson", "h.geojson"):
        corners = np.array(gpd.read_file(tmp_path / name).geometry.iloc[0].exterior.coords)
        assert np.abs(corners - [lon, lat]).sum(1).min() < 1e-7, name  # 1e-7 degrees: about 1 cm


def test_append_to_a_layer_the_file_lacks_says_it_makes_a_new_one(tmp_path, caplog):
    """A typo in --layer with --append made a second layer beside the one meant, exit 0, unsaid (QA)."""
    out = tmp_path / "map.gpkg"
    raster = write_raster(tmp_path / "a.tif", buildings())
    vectorize_raster(raster, out, classes=["building"], layer="roofs")
    with caplog.at_level("WARNING"):
        vectorize_raster(raster, out, classes=["building"], layer="roofz", append=True)
    assert "--append: " in caplog.text and "holds no layer 'roofz' (its layers: 'roofs'): a new layer is made" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        vectorize_raster(raster, out, classes=["building"], layer="roofs", append=True)
    assert "a new layer" not in caplog.text and pyogrio.read_info(out, layer="roofs")["features"] == 4


def test_append_of_ground_the_layer_already_maps_is_said(tmp_path, caplog):
    """The same raster appended twice doubled every polygon, exit 0 and unsaid (QA): said, with how many and
    whose; a neighbouring tile (polygons meeting at the shared edge), a raster with nodata where the layer's
    polygons stand and one reprojected into the layer's CRS are judged by where their data is."""
    out = tmp_path / "map.gpkg"
    first = write_raster(tmp_path / "a.tif", buildings())
    vectorize_raster(first, out, classes=["building"], layer="roofs")
    touching = buildings()
    touching[:, 0] = 1  # a building along the shared edge, touching the first tile's last column
    neighbour = write_raster(tmp_path / "b.tif", touching, origin=(500000.0 + 30, 5000000.0))
    holed = buildings()
    holed[:10] = 255  # no data over the first tile's first building...
    holed[10:] = 0  # ...and no building over its second
    gap = write_raster(tmp_path / "c.tif", holed, nodata=255)
    for raster, said in ((neighbour, None), (gap, 1), (first, 2)):
        caplog.clear()
        with caplog.at_level("WARNING"):
            vectorize_raster(raster, out, classes=["building"], layer="roofs", append=True)
        if said is None:
            assert "mapped twice" not in caplog.text, caplog.text
        else:
            assert (f"--append: layer 'roofs' of {out} already holds {said} polygon{'s' * (said != 1)} on this "
                    "raster's data (source a.tif") in caplog.text, caplog.text
            assert "that ground is now mapped twice" in caplog.text
    assert pyogrio.read_info(out, layer="roofs")["features"] == 2 + 3 + 0 + 2
    caplog.clear()
    with caplog.at_level("WARNING"):
        for append in (False, True):  # in the layer's CRS, not the raster's
            vectorize_raster(first, out, classes=["building"], layer="geo", reproject_to="EPSG:25832", append=append)
    assert "already holds 2 polygons on this raster's data (source a.tif)" in caplog.text, caplog.text
