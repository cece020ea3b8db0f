"""Inputs vectorize must not turn into silent garbage: masks, grids, CRS units, class tables, names."""

from __future__ import annotations

import numpy as np
import pyogrio
import pytest
import rasterio
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin

from rsmamba.cli import main
from rsmamba.errors import InputError
from rsmamba.vectorize import vectorize_many, vectorize_raster
from tests.helpers.rasters import write_raster

TRANSFORM = from_origin(500000.0, 5000000.0, 1.0, 1.0)


def one_line_error(args: list[str], capsys) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("rsmamba: error:"), err
    return err


def classes_with_mask(path, array: np.ndarray, valid: np.ndarray, *, alpha: bool = False, transform=TRANSFORM):
    """A class raster whose GDAL mask (internal mask, or an alpha band) hides the pixels outside ``valid``."""
    h, w = array.shape
    profile = dict(driver="GTiff", width=w, height=h, count=2 if alpha else 1, dtype="uint8", crs="EPSG:32632",
                   transform=transform)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)
        if alpha:
            dst.colorinterp = [ColorInterp.gray, ColorInterp.alpha]
            dst.write(np.where(valid, 255, 0).astype("uint8"), 2)
        else:
            dst.write_mask(np.where(valid, 255, 0).astype("uint8"))
    return path


def masked_scene() -> tuple[np.ndarray, np.ndarray]:
    a = np.zeros((20, 30), dtype="uint8")
    a[2:8, 2:10] = 1  # a building in the valid part
    a[10:18, 0:30] = 1  # "building" values under the mask: what the mask hides
    valid = np.ones(a.shape, bool)
    valid[10:, :] = False
    return a, valid


@pytest.mark.parametrize("alpha", [False, True])
def test_masked_pixels_are_not_polygonized(tmp_path, alpha):
    a, valid = masked_scene()
    src = classes_with_mask(tmp_path / "c.tif", a, valid, alpha=alpha)
    out = tmp_path / "b.gpkg"
    vectorize_raster(src, out, classes=["building"])
    df = pyogrio.read_dataframe(out)
    assert df.pixel_count.tolist() == [48]
    everything = pyogrio.read_dataframe(vectorize_raster(src, tmp_path / "all.gpkg").output)
    assert everything.pixel_count.sum() == valid.sum()


def test_a_fully_masked_raster_is_empty(tmp_path, capsys):
    a, _ = masked_scene()
    src = classes_with_mask(tmp_path / "c.tif", a, np.zeros(a.shape, bool))
    assert "empty raster" in one_line_error(["vectorize", str(src), "-o", str(tmp_path / "o.gpkg")], capsys)


def test_masked_pixels_of_mosaic_scenes_are_not_polygonized(tmp_path):
    a, valid = masked_scene()
    left = classes_with_mask(tmp_path / "left.tif", a[:, :15], valid[:, :15])
    right = classes_with_mask(tmp_path / "right.tif", a[:, 15:], valid[:, 15:],
                              transform=TRANSFORM * TRANSFORM.translation(15, 0))
    out = tmp_path / "m.gpkg"
    vectorize_many([left, right], out)
    df = pyogrio.read_dataframe(out)
    assert df.pixel_count.sum() == valid.sum()
    assert df[df.class_id == 1].pixel_count.tolist() == [48]


def test_a_raster_named_like_a_glob_is_that_raster(tmp_path):
    a = np.zeros((10, 10), dtype="uint8")
    write_raster(tmp_path / "scene1.tif", a)  # what the name would match as a pattern: class 0 only
    a[2:5, 2:5] = 1
    literal = write_raster(tmp_path / "scene[1].tif", a)
    out = tmp_path / "o.gpkg"
    assert main(["vectorize", str(literal), "-o", str(out), "--classes", "building"]) == 0
    df = pyogrio.read_dataframe(out)
    assert df.pixel_count.tolist() == [9] and df.source.tolist() == ["scene[1].tif"]


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_a_raster_without_geotransform_is_refused(tmp_path, capsys):
    from affine import Affine
    from rasterio.control import GroundControlPoint

    a = np.zeros((10, 10), dtype="uint8")
    a[2:5, 2:5] = 1
    bare = write_raster(tmp_path / "bare.tif", a, transform=Affine.identity())
    with rasterio.open(bare) as src:
        assert src.crs is not None and src.transform.is_identity
    out = tmp_path / "o.gpkg"
    assert "no geotransform" in one_line_error(["vectorize", str(bare), "-o", str(out)], capsys)
    gcps = [GroundControlPoint(row=r, col=c, x=500000.0 + c, y=5000000.0 - r) for r, c in ((0, 0), (0, 10), (10, 0))]
    with rasterio.open(tmp_path / "gcps.tif", "w", driver="GTiff", width=10, height=10, count=1, dtype="uint8",
                       gcps=gcps, crs="EPSG:32632") as dst:
        dst.write(a, 1)
    assert "GCPs" in one_line_error(["vectorize", str(tmp_path / "gcps.tif"), "-o", str(out)], capsys)
    assert not out.exists()


def test_web_mercator_needs_reproject_to_ground_metres(tmp_path, capsys):
    a = np.zeros((20, 20), dtype="uint8")
    a[5:15, 5:15] = 1
    # 10 x 10 Web Mercator metres at 41 N (y 5 011 000): about 7.55 x 7.55 ground metres.
    src = write_raster(tmp_path / "wm.tif", a, crs="EPSG:3857", origin=(1000000.0, 5011000.0), res=1.0)
    out = tmp_path / "o.gpkg"
    err = one_line_error(["vectorize", str(src), "-o", str(out), "--classes", "building"], capsys)
    assert "Mercator" in err and "--reproject EPSG:32632" in err
    err = one_line_error(["vectorize", str(src), "-o", str(out), "--reproject", "EPSG:3395"], capsys)
    assert "--reproject EPSG:3395" in err and "Mercator" in err
    assert not out.exists()
    vectorize_raster(src, out, classes=["building"], reproject_to="EPSG:32632")
    lat = 41.0
    assert pyogrio.read_dataframe(out).area_m2[0] == pytest.approx(100 * np.cos(np.radians(lat)) ** 2, rel=0.02)


def _tagged_raster(tmp_path, tag: str, key: str = "class_names") -> tuple[np.ndarray, object]:
    """A 10 x 10 class raster (one 3 x 3 building) at c.tif whose ``key`` tag (any case: GDAL keys) is ``tag``."""
    a = np.zeros((10, 10), dtype="uint8")
    a[2:5, 2:5] = 1
    src = write_raster(tmp_path / "c.tif", a)
    with rasterio.open(src, "r+") as ds:
        ds.update_tags(**{key: tag})
    return a, src


@pytest.mark.parametrize("tag", ['{"a": "b"}', '[{"name": "y"}]', '[{"id": "x", "name": "y"}]', "road,house", '"house"',
                                 '[{"id": 1e999, "name": "x"}]', '{"100000": "x"}'])  # int(inf) was a traceback
def test_an_unreadable_class_names_tag_is_refused(tmp_path, capsys, tag):
    a, src = _tagged_raster(tmp_path, tag, key="CLASS_NAMES")
    out = tmp_path / "o.gpkg"
    err = one_line_error(["vectorize", str(src), "-o", str(out)], capsys)
    assert "c.tif" in err and "class_names tag" in err
    other = write_raster(tmp_path / "d.tif", a, origin=(500010.0, 5000000.0))
    err = one_line_error(["vectorize", str(other), str(src), "-o", str(out)], capsys)  # the mosaic path
    assert "c.tif" in err and "class_names tag" in err
    assert not out.exists()


@pytest.mark.parametrize("tag,why", [
    ('{"0": "impervious", "1": "building", "01": "tree"}', "class id 1 appears more than once"),
    ('{"1": "building", "2": "Building "}', "class name 'building' appears more than once ('building', 'Building '"),
    ('{"1": "building", "2": null}', "class 2: name must be non-empty text, got None"),
    ('[{"id": 1, "name": " "}]', "class 1: name must be non-empty text, got ' '"),
    ('["road", ""]', "class 1: name must be non-empty text, got ''"),
    ('{"256": "x"}', "class id '256' is not an integer in 0..255 (255: no data)"),
])
def test_a_class_names_tag_a_class_table_would_refuse_is_refused(tmp_path, capsys, tag, why):
    """The tag was checked less than a class table: id 1 given twice ('1', '01') wrote the buildings as 'tree', a
    null name as 'None', two ids of one name were counted as one class, exit 0. And 'not an integer in 0..254' was
    said while a name for 255 (no data) is read."""
    _, src = _tagged_raster(tmp_path, tag)
    out = tmp_path / "o.gpkg"
    err = one_line_error(["vectorize", str(src), "-o", str(out)], capsys)
    assert "c.tif: class_names tag" in err and f"is not a class table ({why}" in err
    assert not out.exists()
    from rsmamba.vectorize.attributes import class_names

    for tag, names in (('{"1": "house", "255": "no data"}', {1: "house"}),  # 255 may be named (never a class)
                       ('["road", null, "house"]', {0: "road", 2: "house"})):  # a null in a list: no class at that id
        with rasterio.open(src, "r+") as ds:
            ds.update_tags(class_names=tag)
        with rasterio.open(src) as ds:
            assert class_names(ds) == names


def test_contradicting_options_are_refused(tmp_path, capsys):
    a = np.zeros((10, 10), dtype="uint8")
    a[2:5, 2:5] = 1
    src = write_raster(tmp_path / "c.tif", a)
    out = tmp_path / "x.gpkg"
    err = one_line_error(["vectorize", str(src), "-o", str(out), "--format", "geojson"], capsys)
    assert "--format geojson" in err and ".gpkg" in err
    err = one_line_error(["vectorize", str(src), "-o", str(out), "--seed-threshold", "0.9", "--min-seed", "1m2"], capsys)
    assert "--seed-threshold and --min-seed" in err and "--instances" in err
    # the library refuses them itself (it polygonized without a word); the CLI only passes them on
    for kwargs, needle in [({"allow_45": True}, "--allow-45 applies only with --regularize"),
                           ({"seed_threshold": 0.9, "min_seed": "1m2"}, "--seed-threshold and --min-seed apply only"),
                           ({"min_seed": "1m2"}, "--min-seed applies only with --instances")]:
        with pytest.raises(InputError, match=needle):
            vectorize_raster(src, out, **kwargs)
    assert not out.exists()
    # A suffix that says nothing and a --format that does, or both agreeing, still work.
    assert main(["vectorize", str(src), "-o", str(tmp_path / "y.gpkg"), "--format", "GPKG"]) == 0
    assert main(["vectorize", str(src), "-o", str(tmp_path / "y.data"), "--format", "geojson"]) == 0


def test_probabilities_in_another_crs_are_refused(tmp_path, capsys):
    a = np.zeros((10, 10), dtype="uint8")
    a[2:5, 2:5] = 1
    src = write_raster(tmp_path / "c.tif", a)
    prob = write_raster(tmp_path / "p.tif", np.full((10, 10), 0.9, dtype="float32"), crs="EPSG:32633")
    err = one_line_error(["vectorize", str(src), "-o", str(tmp_path / "o.gpkg"), "--probabilities", str(prob)], capsys)
    assert "p.tif" in err and "EPSG:32633" in err and "EPSG:32632" in err


def test_a_pair_left_between_its_renames_is_settled_before_it_is_read(tmp_path) -> None:
    """A run killed after renaming the first of its outputs: vectorize reads the new set, never the mix."""
    import os
    import subprocess
    import sys

    from tests.helpers.rasters import ROOT

    old = np.zeros((20, 20), np.uint8)
    new = old.copy()
    new[5:15, 5:15] = 1  # one building
    first, classes = write_raster(tmp_path / "a.tif", old), write_raster(tmp_path / "classes.tif", old)
    write_raster(tmp_path / "new.tif", new)
    code = ("import shutil; from rsmamba.atomic import publish\n"
            f"with publish([{str(first)!r}, {str(classes)!r}], overwrite=True) as pub:\n"
            f"    [shutil.copy({str(tmp_path / 'new.tif')!r}, t) for t in pub]\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "RSMAMBA_TEST_KILL_AT": "renamed-1"})
    assert proc.returncode == -9
    with rasterio.open(classes) as src:
        assert src.read(1).max() == 0  # still the old file, its journal beside it
    summary = vectorize_raster(classes, tmp_path / "b.gpkg", classes=[1])
    assert summary.polygons == 1


SITE_TM = ('PROJCS["Site TM",GEOGCS["ETRS89",DATUM["European_Terrestrial_Reference_System_1989",SPHEROID["GRS 1980",'
           '6378137,298.257222101]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_'
           'Mercator"],PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",9.123],PARAMETER["scale_factor",'
           '1],PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1]]')


def test_geojson_is_rfc_7946_wgs84_in_any_crs(tmp_path):
    """GeoJSON kept the raster's CRS in the 2008 draft's ``crs`` member, which RFC 7946 removed (web maps and
    GeoJSON libraries misplace such files), and a CRS without an EPSG code (a site grid) was refused; now every
    layer is written in WGS 84 longitude/latitude, at the place the GeoPackage's polygons are, areas measured before."""
    import geopandas as gpd

    classes = np.zeros((20, 20), np.uint8)
    classes[5:10, 5:10] = 1
    for name, crs in (("site", SITE_TM), ("utm", "EPSG:32632"), ("compound", "EPSG:32632+5773")):
        raster = write_raster(tmp_path / f"{name}.tif", classes, crs=crs)
        vectorize_raster(raster, tmp_path / f"{name}.geojson", classes=["building"])
        vectorize_raster(raster, tmp_path / f"{name}.gpkg", classes=["building"])  # a GeoPackage keeps the CRS
        text = (tmp_path / f"{name}.geojson").read_text()
        assert '"crs"' not in text
        ours, kept = gpd.read_file(tmp_path / f"{name}.geojson"), gpd.read_file(tmp_path / f"{name}.gpkg")
        assert ours.crs.to_epsg() == 4326 and rasterio.crs.CRS.from_user_input(kept.crs) == rasterio.crs.CRS.from_user_input(crs)
        assert list(ours["area_m2"]) == list(kept["area_m2"]) == [25.0]
        lon, lat = ours.geometry.iloc[0].exterior.coords[0]
        assert -180 <= lon <= 180 and -90 <= lat <= 90
        back = ours.to_crs(kept.crs).geometry.iloc[0]
        assert back.symmetric_difference(kept.geometry.iloc[0]).area < 0.02  # 8 decimals: 20 m of edge x 1 mm


NAMES = '["background", "building", "tree"]'


def tagged_classes(path, model: str | None = "model-a weights:1"):
    """A class raster as predict writes it: ids 0..2 named by CLASS_NAMES, nodata 255, a model_id tag."""
    a = np.zeros((20, 30), np.uint8)
    a[2:8, 2:10] = 1
    a[10:18, 12:28] = 2
    a[0, :] = 255
    write_raster(path, a, nodata=255)
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(CLASS_NAMES=NAMES, **({"model_id": model} if model else {}))
    return path


def predicted_probabilities(path, bands: list[str], model: str | None = "model-a weights:1", *, scale=True):
    """A probability raster as predict --probabilities writes it: uint8 p x 254, described p(<class>)."""
    data = np.full((len(bands), 20, 30), 127, np.uint8)
    write_raster(path, data, nodata=255)
    with rasterio.open(path, "r+") as ds:
        for i, name in enumerate(bands, start=1):
            ds.set_band_description(i, name)
        ds.update_tags(**({"SCALE": "1/254"} if scale else {}), **({"model_id": model} if model else {}))
    return path


def test_probabilities_that_do_not_fit_the_class_raster_are_refused(tmp_path, capsys):
    """Any raster on the grid was read: an RGBA ortho gave mean_prob up to 255, a class past the last band read
    that band, another model's probabilities (argmax agreeing on 29.5 % of pixels) gave wrong values."""
    classes = tagged_classes(tmp_path / "classes.tif")
    out = tmp_path / "o.gpkg"
    run = ["vectorize", str(classes), "-o", str(out), "--probabilities"]
    fits = ["p(background)", "p(building)", "p(tree)"]

    ortho = write_raster(tmp_path / "ortho.tif", np.full((4, 20, 30), 200, np.uint8))
    with rasterio.open(ortho, "r+") as ds:
        ds.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    err = one_line_error([*run, str(ortho)], capsys)
    assert "an image (red, green, blue, alpha bands), not probabilities" in err
    unscaled = predicted_probabilities(tmp_path / "unscaled.tif", fits[:2], scale=False)
    err = one_line_error([*run, str(unscaled), "--classes", "building"], capsys)
    assert "uint8 values, not probabilities" in err and "uint8 tagged SCALE=1/254" in err

    two = predicted_probabilities(tmp_path / "two.tif", fits[:2])
    assert "2 class bands, but class 2 (tree) needs band 3" in one_line_error([*run, str(two)], capsys)
    assert main([*run, str(two), "--classes", "building"]) == 0  # the bands it reads are there
    other = predicted_probabilities(tmp_path / "other.tif", ["p(road)", "p(building)", "p(grass)"])
    err = one_line_error([*run, str(other), "--overwrite"], capsys)
    assert "band 1 is 'p(road)', not 'p(background)', band 3 is 'p(grass)', not 'p(tree)'" in err
    model_b = predicted_probabilities(tmp_path / "b.tif", fits, model="model-b weights:2")
    err = one_line_error([*run, str(model_b), "--overwrite"], capsys)
    assert "written by model 'model-b weights:2', the class raster by 'model-a weights:1'" in err
    change = predicted_probabilities(tmp_path / "pchange.tif", ["p(change)"])
    assert "its one band is 'p(change)'" in one_line_error([*run, str(change), "--overwrite"], capsys)
    assert main([*run, str(two), "--classes", "building", "--overwrite"]) == 0  # the refusals left the layer be

    # the same model's, and predict's from before it tagged probabilities with the model: read, in 0-1
    for fitting in (predicted_probabilities(tmp_path / "a.tif", fits),
                    predicted_probabilities(tmp_path / "old.tif", fits, model=None)):
        assert main([*run, str(fitting), "--overwrite"]) == 0
        assert set(pyogrio.read_dataframe(out).mean_prob.round(6)) == {round(127 / 254, 6)}


def test_probability_values_outside_0_1_or_past_the_bands_are_refused(tmp_path, capsys):
    """Found while reading (float values, classes of an untagged raster): refused, no layer written."""
    classes = tagged_classes(tmp_path / "classes.tif")
    out = tmp_path / "o.gpkg"
    logits = write_raster(tmp_path / "logits.tif", np.full((3, 20, 30), 3.5, np.float32))
    err = one_line_error(["vectorize", str(classes), "-o", str(out), "--probabilities", str(logits)], capsys)
    assert "values outside 0-1 (max 3.5, mean 3.5)" in err and not out.exists()
    holes = np.full((3, 20, 30), 0.3, np.float32)
    holes[:, 5, 5] = np.nan  # a RuntimeWarning line, then 'max nan, mean nan', read as numbers gone wrong
    nan = write_raster(tmp_path / "nan.tif", holes)
    err = one_line_error(["vectorize", str(classes), "-o", str(out), "--probabilities", str(nan)], capsys)
    assert "nan.tif: no data (NaN) under a" in err and "RuntimeWarning" not in err and not out.exists()
    untagged = write_raster(tmp_path / "untagged.tif", np.arange(4, dtype=np.uint8).repeat(10).reshape(4, 10))
    two = write_raster(tmp_path / "two.tif", np.full((2, 4, 10), 0.5, np.float32))
    err = one_line_error(["vectorize", str(untagged), "-o", str(out), "--probabilities", str(two)], capsys)
    assert "2 class bands, but untagged.tif holds class 3 (tree), which needs band 4" in err and not out.exists()


def test_a_float_class_raster_with_nan_nodata_is_refused_in_one_line(tmp_path, capsys):
    """int(nan) raised ValueError before the float raster's refusal was said: a traceback, exit 1."""
    a = np.zeros((10, 10), np.float32)
    a[2:5, 2:5] = 1
    src = write_raster(tmp_path / "f.tif", a, nodata=float("nan"))
    err = one_line_error(["vectorize", str(src), "-o", str(tmp_path / "o.gpkg")], capsys)
    assert "band 1 is float32, not integer class ids" in err


def test_a_named_pipe_is_refused_before_it_is_opened(tmp_path):
    """GDAL opening a FIFO waits for a writer for ever (and swallows SIGTERM): refused by stat, at once."""
    import os
    import subprocess
    import sys

    from tests.helpers.rasters import ROOT

    classes = tagged_classes(tmp_path / "classes.tif")
    fifo = tmp_path / "fifo.tif"
    os.mkfifo(fifo)
    for args in ([str(fifo)], [str(classes), "--probabilities", str(fifo)], [str(classes), str(fifo)]):
        proc = subprocess.run([sys.executable, "-m", "rsmamba", "vectorize", *args, "-o", str(tmp_path / "o.gpkg")],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
        err = proc.stderr.strip()
        assert proc.returncode == 2 and len(err.splitlines()) == 1, err
        assert f"{fifo}: not a regular file (a named pipe, socket or device)" in err
    assert not (tmp_path / "o.gpkg").exists()


def test_a_crs_without_a_way_to_wgs84_is_refused_for_geojson_and_reproject(tmp_path, capsys):
    """A site grid (LOCAL_CS, no datum) to GeoJSON failed with 'NULL pointer error'; --reproject from it was a
    pyproj traceback (exit 1). Both are one line; a GeoPackage keeps the grid."""
    classes = np.zeros((20, 20), np.uint8)
    classes[5:10, 5:10] = 1
    local = ('LOCAL_CS["site grid",LOCAL_DATUM["site",0],UNIT["metre",1],AXIS["Easting",EAST],'
             'AXIS["Northing",NORTH]]')
    site = write_raster(tmp_path / "site.tif", classes, crs=local)
    err = one_line_error(["vectorize", str(site), "--classes", "building", "-o", str(tmp_path / "b.geojson")], capsys)
    assert "cannot be transformed to GeoJSON (RFC 7946: WGS 84)" in err and "gpkg" in err
    err = one_line_error(["vectorize", str(site), "--classes", "building", "-o", str(tmp_path / "b.gpkg"),
                          "--reproject", "EPSG:32632"], capsys)
    assert "cannot be transformed to --reproject EPSG:32632" in err
    assert not (tmp_path / "b.geojson").exists() and not (tmp_path / "b.gpkg").exists()
    vectorize_raster(site, tmp_path / "b.gpkg", classes=["building"])
    assert pyogrio.read_info(tmp_path / "b.gpkg")["features"] == 1


def test_a_file_name_starting_with_a_character_geopackage_layers_refuse(tmp_path) -> None:
    """'-o ./-roofs.gpkg' was refused in GDAL's words, 'The layer name may not contain special characters or
    spaces' (the user named no layer; spaces are fine), and '-roofs.geojson' failed in the staging GeoPackage."""
    import geopandas as gpd
    import numpy as np

    from rsmamba.errors import InputError
    from tests.helpers.rasters import write_raster

    a = np.zeros((32, 32), np.uint8)
    a[4:20, 4:20] = 1
    src = write_raster(tmp_path / "c.tif", a)
    with pytest.raises(InputError, match=r"layer name '-roofs' \(the file name without \.gpkg\) starts with '-'.*--layer"):
        vectorize_raster(src, tmp_path / "-roofs.gpkg", classes=["building"])
    vectorize_raster(src, tmp_path / "-roofs.gpkg", classes=["building"], layer="roofs")
    vectorize_raster(src, tmp_path / "-roofs.geojson", classes=["building"])
    assert len(gpd.read_file(tmp_path / "-roofs.geojson")) == 1
    # 'gpkg...' names are GeoPackage's own tables: GDAL's 'may not begin with gpkg' for the staging layer
    vectorize_raster(src, tmp_path / "gpkg_roofs.fgb", classes=["building"])
    with pytest.raises(InputError, match="starts with 'gpkg', which GeoPackage keeps for its own tables"):
        vectorize_raster(src, tmp_path / "gpkg_roofs.gpkg", classes=["building"])
    # and 'sqlite_...' SQLite's, in any case: SQLite's 'object name reserved for internal use', and no GeoJSON at all
    for name in ("sqlite_x.geojson", "SQLITE_x.fgb"):
        vectorize_raster(src, tmp_path / name, classes=["building"])
        assert len(gpd.read_file(tmp_path / name)) == 1
    with pytest.raises(InputError, match="starts with 'sqlite_', which SQLite keeps for its own tables"):
        vectorize_raster(src, tmp_path / "Sqlite_roofs.gpkg", classes=["building"])
    with pytest.raises(InputError, match=r"layer name 'sqlite_stat1' \(--layer\) starts with 'sqlite_'"):
        vectorize_raster(src, tmp_path / "ok.gpkg", classes=["building"], layer="sqlite_stat1")


def test_a_gdal_virtual_path_is_said_to_be_one() -> None:
    from rsmamba.paths import input_problem

    assert "GDAL virtual paths are not read" in input_problem("/vsizip//tmp/x.zip/a.tif", "image")
    assert input_problem("/nonexistent/a.tif", "image").endswith("file not found")


def test_a_gdal_virtual_output_path_is_refused_before_anything_is_made(tmp_path, monkeypatch, capsys) -> None:
    """-o /vsimem/x.tif made a folder /vsimem on the disk's root (a sidecar left in it); -o 'zip://a.zip!x.tif' a
    folder 'zip:' in the current one, and the runs failed at their end with GDAL's words."""
    from rsmamba.cli import main
    from rsmamba.paths import output_problem
    from tests.helpers.rasters import ROOT

    for text in ("/vsimem/x.tif", "/vsizip//tmp/a.zip/x.tif", "zip://a.zip!x.tif", "s3://bucket/x.tif"):
        assert "GDAL virtual paths are not written" in output_problem(text, [], "output")
    monkeypatch.chdir(tmp_path)
    scene = ROOT / "examples" / "scene"
    assert main(["predict", str(scene / "ortho.tif"), "--dsm", str(scene / "dsm.tif"), "-o", "zip://a.zip!x.tif"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "GDAL virtual paths are not written" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_ids_no_class_of_the_table_has_are_said_and_can_be_selected_without_a_table(tmp_path, caplog):
    """A uint16 raster holding 300 and an undeclared fill 65535 was polygonized into classes '300' and '65535'
    without a word, and --classes 300 was refused as 'not in the class table' (the ISPRS guess)."""
    import logging

    import geopandas as gpd

    a = np.zeros((64, 64), "uint16")
    a[10:20, 10:20] = 300
    a[50:60, 0:10] = 65535
    src = write_raster(tmp_path / "u16.tif", a)
    with caplog.at_level(logging.WARNING, logger="rsmamba"):
        vectorize_raster(src, tmp_path / "all.gpkg", progress=False)
    said = [r.getMessage() for r in caplog.records if "no class of its table has" in r.getMessage()]
    assert len(said) == 1 and "polygons of ids 300, 65535, which no class" in said[0]
    assert "gdal_edit.py -a_nodata 65535" in said[0]
    assert sorted(gpd.read_file(tmp_path / "all.gpkg")["class_name"]) == ["300", "65535", "impervious"]
    vectorize_raster(src, tmp_path / "300.gpkg", classes="300", progress=False)
    assert list(gpd.read_file(tmp_path / "300.gpkg")["class_name"]) == ["300"]
    with rasterio.open(src, "r+") as ds:  # a declared table still refuses an id it lacks (a typo)
        ds.update_tags(CLASS_NAMES='["ground", "house"]')
    with pytest.raises(InputError, match="class '300' is not in u16.tif's class table"):
        vectorize_raster(src, tmp_path / "t.gpkg", classes="300", progress=False)


def test_empty_classes_and_layer_and_a_tolerance_past_the_raster_are_refused(tmp_path, capsys):
    """--classes '' vectorized every class and --layer '' took the file's name, each without a word; --simplify
    1e308m printed GEOS's 'overflow encountered' RuntimeWarning."""
    a = np.zeros((10, 10), dtype="uint8")
    a[2:5, 2:5] = 1
    src = write_raster(tmp_path / "c.tif", a)
    out = tmp_path / "o.gpkg"
    for extra, said in ((["--classes", ""], "--classes names no class"),
                        (["--classes", " , "], "--classes names no class"),
                        (["--layer", ""], "--layer '': an empty layer name"),
                        (["--simplify", "1e308m"], "--simplify 1e308m: more than the raster's 10 m across")):
        err = one_line_error(["vectorize", str(src), "-o", str(out), *extra], capsys)
        assert said in err, err
        assert not out.exists()
    assert main(["-q", "vectorize", str(src), "-o", str(out), "--simplify", "2m"]) == 0


def test_a_class_name_holding_a_comma_can_be_selected(tmp_path):
    """tile takes a class named 'Boden, offen'; vectorize --classes split it at the comma and refused both halves."""
    import geopandas as gpd

    a = np.zeros((10, 10), dtype="uint8")
    a[2:5, 2:5] = 1
    a[6:9, 6:9] = 2
    src = write_raster(tmp_path / "c.tif", a)
    with rasterio.open(src, "r+") as ds:
        ds.update_tags(CLASS_NAMES='["ground", "Boden, offen", "house"]')
    vectorize_raster(src, tmp_path / "o.gpkg", classes=["Boden, offen"], progress=False)
    assert list(gpd.read_file(tmp_path / "o.gpkg")["class_name"]) == ["Boden, offen"]
    vectorize_raster(src, tmp_path / "p.gpkg", classes=["ground,house"], progress=False)  # a list still splits
    assert sorted(gpd.read_file(tmp_path / "p.gpkg")["class_name"]) == ["ground", "house"]


def test_a_raster_georeferenced_by_gcps_only_is_told_to_be_warped_not_that_it_has_no_crs(tmp_path) -> None:
    """Its GCPs carry EPSG:32632; 'no CRS; polygons would have no place on the ground' was added to the advice."""
    from rasterio.control import GroundControlPoint
    from rasterio.crs import CRS

    path = tmp_path / "gcp.tif"
    with rasterio.open(path, "w", driver="GTiff", width=20, height=20, count=1, dtype="uint8") as ds:
        ds.write(np.ones((1, 20, 20), np.uint8))
        ds.gcps = ([GroundControlPoint(0, 0, 500000, 5000000), GroundControlPoint(0, 20, 500020, 5000000),
                    GroundControlPoint(20, 0, 500000, 4999980)], CRS.from_epsg(32632))
    with pytest.raises(InputError) as err:
        vectorize_raster(path, tmp_path / "o.gpkg")
    assert "georeferenced by GCPs only: warp it onto a grid first (gdalwarp)" in str(err.value)
    assert "no CRS" not in str(err.value)


def test_geojson_from_a_datum_whose_best_way_to_wgs84_lacks_its_grid_says_the_accuracy(tmp_path, caplog) -> None:
    """NAD27 went to WGS 84 by a Helmert fallback (10-20 m) unsaid, PROJ's grid missing (pyproj wheels ship none)."""
    import warnings

    from pyproj.transformer import TransformerGroup

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        has_grid = TransformerGroup("EPSG:26718", "EPSG:4326", always_xy=True).best_available  # a machine with grids
    src = write_raster(tmp_path / "nad27.tif", np.ones((20, 20), np.uint8), crs="EPSG:26718", origin=(585000, 4511000))
    with caplog.at_level("WARNING"):
        vectorize_raster(src, tmp_path / "b.geojson")
    said = [r.getMessage() for r in caplog.records if "PROJ grids this machine lacks" in r.getMessage()]
    if has_grid:
        assert said == []
    else:
        assert len(said) == 1 and "from EPSG:26718 to GeoJSON (RFC 7946: WGS 84)" in said[0]
        assert "us_noaa_conus.tif" in said[0] and "accurate to about 20 m" in said[0]
    caplog.clear()
    with caplog.at_level("WARNING"):  # a UTM zone of WGS 84: nothing to say
        vectorize_raster(write_raster(tmp_path / "utm.tif", np.ones((20, 20), np.uint8)), tmp_path / "u.geojson")
    assert not [r for r in caplog.records if "PROJ grids" in r.getMessage()]
