"""A scene across the antimeridian (Fiji, Chukotka, the Aleutians): its label layers written as RFC 7946 has
them, cut at 180 with the eastern pieces at -179.99, and its GeoJSON polygons, cut the same way."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import Affine
from shapely.geometry import box

from rsmamba.errors import InputError
from rsmamba.evaluate import evaluate_rasters
from rsmamba.tile import tile_scene
from rsmamba.vectorize import vectorize_raster
from tests.helpers.rasters import write_raster

STEP = 1e-5  # degrees, about 1 m
GRID = Affine(STEP, 0, 179.9997, 0, -STEP, -17.0)  # 64 px: longitudes 179.9997 .. 180.00034, GDAL's way


def _labels() -> np.ndarray:
    a = np.full((64, 64), 2, dtype="uint8")
    a[:, :40] = 1  # class 1 up to lon 180.0001, across 180 (column 30)
    return a


def _rfc7946_layer(path, above_180: bool = False) -> None:
    """Class 1 as two pieces either side of 180 (one MultiPolygon), class 2 wholly at -179.99; or, ``above_180``,
    the scene's own way: longitudes up to 180.00034 (tile refused them: 'cannot be degrees')."""
    south = -17.0 - 64 * STEP
    one = shapely.MultiPolygon([box(179.9997, south, 180.0, -17.0), box(-180.0, south, -179.9999, -17.0)])
    two = box(-179.9999, south, 180.00034 - 360, -17.0)
    if above_180:
        one, two = box(179.9997, south, 180.0001, -17.0), box(180.0001, south, 180.00034, -17.0)
    gpd.GeoDataFrame({"class": [1, 2]}, geometry=[one, two], crs="EPSG:4326").to_file(path, driver="GeoJSON")


@pytest.mark.parametrize("above_180", [False, True])
def test_tile_burns_the_pieces_east_of_180_on_the_scene(tmp_path, above_180) -> None:
    image = write_raster(tmp_path / "ortho.tif", np.random.default_rng(0).integers(1, 255, (3, 64, 64), dtype="uint8"),
                         crs="EPSG:4326", transform=GRID)
    _rfc7946_layer(tmp_path / "labels.geojson", above_180)
    tile_scene(image, tmp_path / "chips", labels=tmp_path / "labels.geojson", size=32, split=(1, 0, 0))
    expected = _labels()
    for chip in (tmp_path / "chips").rglob("labels/*.tif"):
        with rasterio.open(chip) as src:
            row, col = (int(round(v / STEP)) for v in (-17.0 - src.transform.f, src.transform.c - 179.9997))
            # east of 180 was the background, 0: the pieces were burnt 360 degrees away
            assert np.array_equal(src.read(1), expected[row:row + 32, col:col + 32]), chip.name


def test_evaluate_scores_every_pixel_against_the_pieces(tmp_path, caplog) -> None:
    pred = write_raster(tmp_path / "pred.tif", _labels(), crs="EPSG:4326", transform=GRID)
    _rfc7946_layer(tmp_path / "labels.geojson")
    metrics = evaluate_rasters(pred, tmp_path / "labels.geojson", tmp_path / "m.json")
    assert metrics["pixels"] == 64 * 64 and metrics["oa"] == 1.0  # 40 % of them were unscored
    assert "invalid" not in caplog.text  # the pieces, joined again, were 'repaired' as if the file were at fault


def test_geojson_of_a_scene_across_180_is_valid(tmp_path) -> None:
    """GDAL's own cut moved the vertices within 1e-7 degrees of 180 onto it: a hole's edge lying 0.5 mm off the
    meridian came to lie on the cut shell's edge (shapely: Self-intersection[180 -17.00001...])."""
    a = np.zeros((64, 160), dtype="uint8")
    a[10:40, 110:140] = 1
    a[20:22, 126:130] = 0  # the hole's west edge, column 126 rows 20-22 of this grid, is within 5e-8 degrees of 180
    src = write_raster(tmp_path / "c.tif", a, crs="EPSG:32760", transform=Affine(0.25, 0, 819420, 0, -0.25, 8118000))
    vectorize_raster(src, tmp_path / "c.geojson", classes=["building"])
    layer = gpd.read_file(tmp_path / "c.geojson")
    x0, _, x1, _ = layer.total_bounds
    assert x0 == -180.0 and x1 == 180.0 and len(layer) == 1 and layer.is_valid.all()
    assert layer.area_m2[0] == (30 * 30 - 8) * 0.0625  # measured before, on the grid


def test_a_layer_far_away_in_longitude_is_not_wrapped_onto_the_scene(tmp_path) -> None:
    """Each vertex wrapped on its own made a box at lon -170..-160 a 350-degree band over a scene at lon 15:
    every chip took its class (exit 0), and a layer only there was no longer refused as off the image."""
    grid = Affine(STEP, 0, 15.0, 0, -STEP, 45.0)
    image = write_raster(tmp_path / "ortho.tif", np.random.default_rng(0).integers(1, 255, (3, 64, 64), dtype="uint8"),
                         crs="EPSG:4326", transform=grid)
    here = box(15.0, 45.0 - 64 * STEP, 15.0 + 64 * STEP, 45.0)
    far = box(-170.0, 44.0, -160.0, 46.0)
    gpd.GeoDataFrame({"class": [1, 2]}, geometry=[here, far], crs="EPSG:4326").to_file(tmp_path / "l.gpkg")
    tile_scene(image, tmp_path / "chips", labels=tmp_path / "l.gpkg", size=32, split=(1, 0, 0))
    for chip in (tmp_path / "chips").rglob("labels/*.tif"):
        with rasterio.open(chip) as src:
            assert (src.read(1) == 1).all(), chip.name
    gpd.GeoDataFrame({"class": [2]}, geometry=[far], crs="EPSG:4326").to_file(tmp_path / "far.gpkg")
    # the scene's extent in degrees to 6 decimals (at 1 it printed as a point, 15.0, 45.0, 15.0, 45.0)
    with pytest.raises(InputError, match=r"does not overlap the image .*image 15\.000000, 44\.999360, 15\.000640"):
        tile_scene(image, tmp_path / "chips2", labels=tmp_path / "far.gpkg", size=32, split=(1, 0, 0))


def test_a_feature_wider_than_half_the_globe_is_burnt_as_drawn(tmp_path) -> None:
    """Made 'continuous' from its first vertex, a box from -100 to 100 became -260..-100 and then 100..260: half a
    scene at lon 15 burnt as background (exit 0), or the layer refused; a band 0..180 E drawn from its east end
    labelled a scene at lon -170, drawn from its west end it was refused."""
    grid = Affine(STEP, 0, 15.0, 0, -STEP, 45.0)
    image = write_raster(tmp_path / "ortho.tif", np.random.default_rng(0).integers(1, 255, (3, 64, 64), dtype="uint8"),
                         crs="EPSG:4326", transform=grid)
    gpd.GeoDataFrame({"class": [2, 1]}, geometry=[box(-100, 40, 100, 50), box(15.0, 45.0 - 64 * STEP, 15.0 + 32 * STEP, 45.0)],
                     crs="EPSG:4326").to_file(tmp_path / "l.gpkg")
    tile_scene(image, tmp_path / "chips", labels=tmp_path / "l.gpkg", size=32, split=(1, 0, 0))
    for chip in (tmp_path / "chips").rglob("labels/*.tif"):
        with rasterio.open(chip) as src:
            assert (src.read(1) == (1 if src.transform.c < 15.0 + 16 * STEP else 2)).all(), chip.name
    west = write_raster(tmp_path / "west.tif", np.random.default_rng(0).integers(1, 255, (3, 64, 64), dtype="uint8"),
                        crs="EPSG:4326", transform=Affine(STEP, 0, -170.0, 0, -STEP, 45.0))
    for name, ring in (("a", [(0, 40), (0, 50), (180, 50), (180, 40)]), ("b", [(180, 40), (180, 50), (0, 50), (0, 40)])):
        gpd.GeoDataFrame({"class": [1]}, geometry=[shapely.Polygon(ring)], crs="EPSG:4326").to_file(tmp_path / f"{name}.gpkg")
        with pytest.raises(InputError, match="does not overlap the image"):  # 0..180 E: not at 170 W
            tile_scene(west, tmp_path / f"chips_{name}", labels=tmp_path / f"{name}.gpkg", size=32, split=(1, 0, 0))


def test_a_projected_layer_across_180_is_burnt_where_it_lies(tmp_path) -> None:
    """UTM 60S is continuous across 180; taken to degrees each vertex folds into -180..180, and a feature across
    180 read 'as drawn' went the long way round the globe: burnt inside out (0.378 of the scene class 1 for 0.636),
    or refused as off the image."""
    from pyproj import Transformer

    image = write_raster(tmp_path / "ortho.tif", np.random.default_rng(0).integers(1, 255, (3, 64, 64), dtype="uint8"),
                         crs="EPSG:4326", transform=GRID)
    to_utm = Transformer.from_crs(4326, 32760, always_xy=True)
    south = -17.0 - 64 * STEP
    corners = [(179.9997, south), (180.0001, south), (180.0001, -17.0), (179.9997, -17.0)]  # class 1's box, across 180
    gpd.GeoDataFrame({"class": [1]}, geometry=[shapely.Polygon([to_utm.transform(x, y) for x, y in corners])],
                     crs="EPSG:32760").to_file(tmp_path / "utm.gpkg")
    tile_scene(image, tmp_path / "chips", labels=tmp_path / "utm.gpkg", size=32, split=(1, 0, 0))
    expected = np.where(_labels() == 1, 1, 0)  # outside the box: the background, 0
    for chip in (tmp_path / "chips").rglob("labels/*.tif"):
        with rasterio.open(chip) as src:
            row, col = (int(round(v / STEP)) for v in (-17.0 - src.transform.f, src.transform.c - 179.9997))
            got, want = src.read(1), expected[row:row + 32, col:col + 32]
            assert (got == want).mean() > 0.95, chip.name  # a straight UTM edge is a slight curve in degrees


def test_a_band_around_the_globe_covers_a_scene_across_180(tmp_path) -> None:
    """A band from -180 to 180 labelled the scene only west of 180 (61 %), the rest 'outside every feature'."""
    image = write_raster(tmp_path / "ortho.tif", np.random.default_rng(0).integers(1, 255, (3, 64, 64), dtype="uint8"),
                         crs="EPSG:4326", transform=GRID)
    gpd.GeoDataFrame({"class": [1]}, geometry=[box(-180, -18, 180, -16)], crs="EPSG:4326").to_file(tmp_path / "g.gpkg")
    tile_scene(image, tmp_path / "chips", labels=tmp_path / "g.gpkg", size=32, split=(1, 0, 0))
    for chip in (tmp_path / "chips").rglob("labels/*.tif"):
        with rasterio.open(chip) as src:
            assert (src.read(1) == 1).all(), chip.name


def test_a_projected_feature_wider_than_180_degrees_and_a_datum_change_across_180(tmp_path) -> None:
    """Made continuous from its first vertex, a Web Mercator box from lon -20 to 170 came back inside out over a
    scene at lon 9 (class 0 where 1, exit 0); a WGS 84 layer above 180 for a NAD83 scene across 180 was folded
    by the datum transform and burnt inside out (63 % of the chips class 0)."""
    from pyproj import Transformer

    image = write_raster(tmp_path / "ortho.tif", np.random.default_rng(0).integers(1, 255, (3, 64, 64), dtype="uint8"),
                         crs="EPSG:4326", transform=Affine(STEP, 0, 9.0, 0, -STEP, 45.0))
    merc = Transformer.from_crs(4326, 3857, always_xy=True)
    (x0, x1), (y0, y1) = merc.transform([-20.0, 170.0], [40.0, 50.0])
    gpd.GeoDataFrame({"class": [1]}, geometry=[box(x0, y0, x1, y1)], crs="EPSG:3857").to_file(tmp_path / "m.gpkg")
    tile_scene(image, tmp_path / "chips", labels=tmp_path / "m.gpkg", size=32, split=(1, 0, 0))
    for chip in (tmp_path / "chips").rglob("labels/*.tif"):
        with rasterio.open(chip) as src:
            assert (src.read(1) == 1).all(), chip.name
    nad83 = write_raster(tmp_path / "nad83.tif", np.random.default_rng(0).integers(1, 255, (3, 64, 64), dtype="uint8"),
                         crs="EPSG:4269", transform=GRID)
    _rfc7946_layer(tmp_path / "above.geojson", above_180=True)
    tile_scene(nad83, tmp_path / "chips83", labels=tmp_path / "above.geojson", size=32, split=(1, 0, 0))
    expected = _labels()
    for chip in (tmp_path / "chips83").rglob("labels/*.tif"):
        with rasterio.open(chip) as src:
            row, col = (int(round(v / STEP)) for v in (-17.0 - src.transform.f, src.transform.c - 179.9997))
            assert (src.read(1) == expected[row:row + 32, col:col + 32]).mean() > 0.9, chip.name  # datums: ~1 m


def _mosaic(image, chips) -> np.ndarray:
    """The label chips of a ``tile`` run put back on the image grid."""
    with rasterio.open(image) as src:
        transform, out = src.transform, np.full((src.height, src.width), 254, np.uint8)
    for chip in chips.rglob("labels/*.tif"):
        with rasterio.open(chip) as c:
            col, row = (int(round(v)) for v in ~transform * (c.transform.c, c.transform.f))
            out[row:row + c.height, col:col + c.width] = c.read(1)
    return out


def _truth(image, layer, turns: bool = False) -> np.ndarray:
    """Each pixel's class by its centre taken into the layer's own CRS (and, ``turns``, a turn either way)."""
    from pyproj import Transformer

    with rasterio.open(image) as src:
        transform, crs, shape = src.transform, src.crs, (src.height, src.width)
    cols, rows = np.meshgrid(np.arange(shape[1]) + 0.5, np.arange(shape[0]) + 0.5)
    x, y = Transformer.from_crs(crs, layer.crs, always_xy=True).transform(*(transform * (cols.ravel(), rows.ravel())))
    want = np.zeros(x.size, np.uint8)
    for geom, value in zip(layer.geometry, layer["class"]):
        for turn in ((0, -360, 360) if turns else (0,)):
            want[shapely.contains_xy(geom, x + turn, y)] = value
    return want.reshape(shape)


def test_polar_layers_round_and_over_the_pole_on_a_scene_in_degrees(tmp_path) -> None:
    """Each vertex taken within 180 degrees of the middle of its part's polar-stereographic bounds (a point near
    the pole, at any longitude) cut a horseshoe round the pole open: the scene all background (78 % is class 3),
    exit 0; a cap over the pole burnt 14 % for 73 %, a round one was refused as 'does not overlap'."""
    from pyproj import Transformer

    image = write_raster(tmp_path / "s.tif", np.random.default_rng(0).integers(1, 255, (3, 64, 64), dtype="uint8"),
                         crs="EPSG:4326", transform=Affine(0.04, 0, 179.0, 0, -0.04, -84.0))  # lon 179..181.56
    to = Transformer.from_crs(4326, 3031, always_xy=True)
    lons = np.linspace(60, 360, 301)
    horseshoe = shapely.Polygon([to.transform(lon, -83) for lon in lons] + [to.transform(lon, -86) for lon in lons[::-1]])
    zigzag = np.linspace(0, 360, 721)[:-1]
    cap = shapely.Polygon([to.transform(lon, -83.5 if i % 2 == 0 else -85.5) for i, lon in enumerate(zigzag)])
    for name, geom, share in (("horseshoe", horseshoe, 0.78), ("cap", cap, 0.73)):
        layer = gpd.GeoDataFrame({"class": [3]}, geometry=[geom], crs="EPSG:3031")
        layer.to_file(tmp_path / f"{name}.gpkg")
        tile_scene(image, tmp_path / name, labels=tmp_path / f"{name}.gpkg", size=32, split=(1, 0, 0))
        got, want = _mosaic(image, tmp_path / name), _truth(image, layer)
        assert abs((want == 3).mean() - share) < 0.02
        # (edges straight in EPSG:3031 are cut every 10 km in degrees: a pixel centre beside one may differ)
        assert (got == want).mean() > 0.995, (name, (got == want).mean())


def test_a_feature_across_the_edge_of_a_scene_round_the_globe(tmp_path) -> None:
    """On a grid 360 degrees wide each part was moved to one side only: Western Europe (lon -10..30, Web
    Mercator) lost lon 350..360 of a 0..360 grid, a lon 170..190 box half of itself on a -180..180 grid."""
    from pyproj import Transformer

    merc = Transformer.from_crs(4326, 3857, always_xy=True)
    lons = np.linspace(-10, 30, 41)
    europe = shapely.Polygon([merc.transform(lon, 40) for lon in lons] + [merc.transform(lon, 60) for lon in lons[::-1]])
    for name, x0, layer in (
            ("0_360", 0.0, gpd.GeoDataFrame({"class": [2]}, geometry=[europe], crs="EPSG:3857")),
            ("pm180", -180.0, gpd.GeoDataFrame({"class": [1]}, geometry=[box(170, -24, 190, -10)], crs="EPSG:4326"))):
        image = write_raster(tmp_path / f"{name}.tif", np.random.default_rng(0).integers(1, 255, (3, 64, 180), dtype="uint8"),
                             crs="EPSG:4326", transform=Affine(2.0, 0, x0, 0, -2.0, 64.0))
        layer.to_file(tmp_path / f"{name}.gpkg")
        tile_scene(image, tmp_path / name, labels=tmp_path / f"{name}.gpkg", size=32, split=(1, 0, 0), label_background=255)
        got, want = _mosaic(image, tmp_path / name), _truth(image, layer, turns=True)
        want[want == 0] = 255
        assert np.array_equal(got[:, :160], want[:, :160]), name  # (the chips cover 5 x 32 of the 180 columns)


def test_collections_nested_or_holding_an_empty_member_are_areas(tmp_path, caplog) -> None:
    """A GeometryCollection holding a MultiPolygon with a piece each side of 180 was moved as one piece (half of it
    burnt); one holding POINT EMPTY beside a polygon was skipped whole by rasterio, and collections of polygons
    were said to be 'not areas: burnt as 1-px lines and points'."""
    image = write_raster(tmp_path / "fiji.tif", np.random.default_rng(0).integers(1, 255, (3, 64, 64), dtype="uint8"),
                         crs="EPSG:4326", transform=Affine(0.02, 0, 179.5, 0, -0.02, -17.0))
    west, east = box(179.605, -17.905, 179.995, -17.105), box(-179.995, -17.905, -179.605, -17.105)
    nested = gpd.GeoDataFrame({"class": [1]}, geometry=[shapely.GeometryCollection([shapely.MultiPolygon([west, east])])],
                              crs="EPSG:4326")
    nested.to_file(tmp_path / "nested.gpkg")
    tile_scene(image, tmp_path / "nested", labels=tmp_path / "nested.gpkg", size=32, split=(1, 0, 0))
    assert np.array_equal(_mosaic(image, tmp_path / "nested"), _truth(image, nested, turns=True))
    here = write_raster(tmp_path / "here.tif", np.random.default_rng(0).integers(1, 255, (3, 64, 64), dtype="uint8"),
                        crs="EPSG:4326", transform=Affine(0.001, 0, 15.0, 0, -0.001, 45.0))
    empty = gpd.GeoDataFrame({"class": [1]}, geometry=[shapely.GeometryCollection([box(15.01, 44.95, 15.03, 44.99),
                                                                                   shapely.Point()])], crs="EPSG:4326")
    empty.to_file(tmp_path / "empty.gpkg")
    tile_scene(here, tmp_path / "empty", labels=tmp_path / "empty.gpkg", size=32, split=(1, 0, 0))
    assert np.array_equal(_mosaic(here, tmp_path / "empty"), _truth(here, empty))
    assert "not areas" not in caplog.text


def test_vectorize_refuses_a_world_crs_whose_edge_runs_through_the_raster(tmp_path) -> None:
    """EPSG:6933 of a block across 180 was a band round the globe leaving the block out: area_m2 x 2600, exit 0."""
    a = np.zeros((64, 64), np.uint8)
    a[10:40, 20:50] = 1
    src = write_raster(tmp_path / "fiji.tif", a, crs="EPSG:4326", transform=Affine(0.002, 0, 179.95, 0, -0.002, -17.0))
    with pytest.raises(InputError, match=r"EPSG:6933: that CRS's edge .* runs through fiji\.tif.*EPSG:32760"):
        vectorize_raster(src, tmp_path / "f.gpkg", classes=["building"], reproject_to="EPSG:6933")
    vectorize_raster(src, tmp_path / "u.gpkg", classes=["building"], reproject_to="EPSG:32760")
    assert abs(gpd.read_file(tmp_path / "u.gpkg").area_m2.sum() / (30 * 30 * 0.002 ** 2 * 111_320 ** 2 *
                                                                 np.cos(np.radians(17.05))) - 1) < 0.01


def test_geojson_of_a_raster_round_the_south_pole(tmp_path) -> None:
    """A raster holding the pole has WGS 84 bounds -180..180, so GDAL's own cut ran: a block across 180 came out
    self-intersecting on 180; and a 100 km block over the pole, taken corner by corner into degrees with edges
    straight in degrees, was drawn 46 % larger than its pixels."""
    from pyproj import Geod

    a = np.zeros((512, 512), np.uint8)
    a[400:480, 236:276] = 1  # across lon 180 (x = 0, y < 0), 150-230 km from the pole
    a[420:430, 256:260] = 0  # a hole whose west edge is the column edge nearest lon 180
    a[200:300, 200:300] = 1  # 100 x 100 km over the pole
    src = write_raster(tmp_path / "pole.tif", a, crs="EPSG:3031", transform=Affine(1000, 0, -256000 + 0.0003, 0, -1000, 256000))
    vectorize_raster(src, tmp_path / "pole.geojson", classes=["building"])
    layer = gpd.read_file(tmp_path / "pole.geojson")
    assert len(layer) == 2 and layer.is_valid.all(), [shapely.is_valid_reason(g) for g in layer.geometry]
    geod = Geod(ellps="WGS84")
    for geom, area in zip(layer.geometry, layer.area_m2):
        drawn = sum(abs(geod.geometry_area_perimeter(p)[0]) for p in shapely.get_parts(geom))
        assert abs(drawn / area - 1) < 0.01, (drawn, area)  # as drawn on the ellipsoid, the pixels' own area


def _circle(cx: float, cy: float, r: float, start: float = 0.0, ccw: bool = True, n: int = 128) -> np.ndarray:
    a = start + np.linspace(0, 2 * np.pi, n, endpoint=False) * (1 if ccw else -1)
    return np.column_stack([cx + r * np.cos(a), cy + r * np.sin(a)])


def test_holes_round_and_beside_a_pole(tmp_path) -> None:
    """A ring round the pole whose hole holds the pole was burnt as the whole cap (IoU 0.49: the hole, closed
    through the pole too, made a cap of its own); a lake across the longitude where the cap's ring starts was half
    filled (16321 px against 15122 for the same cap drawn from another vertex)."""
    image = write_raster(tmp_path / "south.tif", np.random.default_rng(0).integers(1, 255, (3, 60, 360), dtype="uint8"),
                         crs="EPSG:4326", transform=Affine(1.0, 0, -180.0, 0, -0.5, -60.0))
    lake = _circle(1e6, 0, 3e5, ccw=False)
    layers = {"annulus": shapely.Polygon(_circle(0, 0, 2e6), [_circle(0, 0, 1e6, ccw=False)]),
              "east": shapely.Polygon(_circle(0, 0, 2e6, start=0.0), [lake]),
              "west": shapely.Polygon(_circle(0, 0, 2e6, start=np.pi), [lake])}
    burnt = {}
    for name, geom in layers.items():
        layer = gpd.GeoDataFrame({"class": [1]}, geometry=[geom], crs="EPSG:3031")
        layer.to_file(tmp_path / f"{name}.gpkg")
        tile_scene(image, tmp_path / name, labels=tmp_path / f"{name}.gpkg", size=60, split=(1, 0, 0))
        got, want = _mosaic(image, tmp_path / name), _truth(image, layer)
        assert (got == want).mean() > 0.995, (name, (got == want).mean())
        burnt[name] = int((got == 1).sum())
    assert abs(burnt["east"] - burnt["west"]) <= 4  # the same polygon, whichever vertex its ring starts at


def test_geojson_of_class_regions_round_a_pole_keep_their_holes(tmp_path) -> None:
    """Each region round the pole (class 0 outside 700 km, class 1 from 300 to 700 km) lost its hole: the GeoJSON
    polygons overlapped and covered the pole (areas x 1.61 and x 1.22)."""
    from pyproj import Transformer

    n, res = 100, 20000.0
    c = (np.arange(n) + 0.5) * res - n * res / 2
    x, y = np.meshgrid(c, -c)
    radius = np.hypot(x, y)
    classes = np.zeros((n, n), np.uint8)
    classes[(radius >= 300e3) & (radius < 700e3)] = 1
    classes[radius < 300e3] = 2
    src = write_raster(tmp_path / "polar.tif", classes, crs="EPSG:3031", nodata=255,
                       transform=Affine(res, 0, -n * res / 2, 0, -res, n * res / 2))
    vectorize_raster(src, tmp_path / "polar.geojson")
    layer = gpd.read_file(tmp_path / "polar.geojson")
    assert layer.is_valid.all() and sorted(layer.class_id) == [0, 1, 2]
    lon, lat = Transformer.from_crs("EPSG:3031", "EPSG:4326", always_xy=True).transform(x.ravel(), y.ravel())
    for geom, class_id in zip(layer.geometry, layer.class_id):
        inside = shapely.contains_xy(geom, lon, lat)
        assert (classes.ravel()[inside] == class_id).all(), class_id  # none of another class's pixels
        assert inside.sum() == (classes == class_id).sum(), class_id


def test_vectorize_refuses_a_crs_singular_inside_the_raster(tmp_path) -> None:
    """EPSG:3413 (north polar) of a South Pole raster was taken: area_m2 1e-24 for 300,000 km2, exit 0 (only the
    raster's outline was tried)."""
    a = np.zeros((50, 50), np.uint8)
    a[20:30, 20:30] = 1
    src = write_raster(tmp_path / "pole.tif", a, crs="EPSG:3031", transform=Affine(20000, 0, -500000, 0, -20000, 500000))
    with pytest.raises(InputError, match=r"EPSG:3413: that CRS's edge .*drop --reproject"):
        vectorize_raster(src, tmp_path / "p.gpkg", classes=["building"], reproject_to="EPSG:3413")
