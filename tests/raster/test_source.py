"""AlignedSource: secondary layers are brought onto the image grid, bad inputs fail clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.enums import ColorInterp, Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from rsmamba.errors import InputError
from rsmamba.raster.normalize import compute_stats, normalize
from rsmamba.raster.source import AlignedSource
from tests.helpers.rasters import OLINDA, random_image, write_raster


def test_same_grid_dsm_is_read_by_index(tmp_path) -> None:
    img = write_raster(tmp_path / "img.tif", random_image(40, 50))
    dsm_arr = np.arange(40 * 50, dtype=np.float32).reshape(40, 50)
    dsm = write_raster(tmp_path / "dsm.tif", dsm_arr)
    with AlignedSource(img, dsm) as src:
        assert src.warnings == []
        np.testing.assert_array_equal(src.read_dsm(Window(5, 7, 10, 12)), dsm_arr[7:19, 5:15])


def test_shifted_coarser_dsm_is_warped_bilinear(tmp_path) -> None:
    img = write_raster(tmp_path / "img.tif", random_image(40, 40), res=1.0)
    # 2 m pixels, origin shifted by half an image pixel: a plane z = x stays a plane when resampled
    xs = 500000.0 + 0.5 + 2.0 * (np.arange(25) + 0.5)
    plane = np.tile(xs - 500000.0, (25, 1)).astype(np.float32)
    dsm = write_raster(tmp_path / "dsm.tif", plane, origin=(500000.5, 5000001.0), res=2.0)
    with AlignedSource(img, dsm) as src:
        assert any("resampled (bilinear)" in w for w in src.warnings)
        got = src.read_dsm(Window(5, 5, 20, 20))
        expected_x = (np.arange(5, 25) + 0.5)[None, :].repeat(20, 0)
        np.testing.assert_allclose(got, expected_x, atol=1e-3)


def test_olinda_dem_matches_direct_warpedvrt_read() -> None:
    img_path, dem_path = OLINDA / "L7_ETMs.tif", OLINDA / "olinda_dem_utm25s.tif"
    window = Window(100, 120, 64, 64)
    with AlignedSource(img_path, dem_path) as src:
        assert any("DSM" in w and "resampled" in w for w in src.warnings)
        ours = src.read_dsm(window)
    with rasterio.open(img_path) as img, rasterio.open(dem_path) as dem:
        with WarpedVRT(dem, crs=img.crs, transform=img.transform, width=img.width, height=img.height,
                       resampling=Resampling.bilinear) as vrt:
            direct = vrt.read(1, window=window)
    np.testing.assert_array_equal(ours, direct)
    assert np.isfinite(ours).all() and 0 < ours.mean() < 90


def test_all_problems_are_reported_together(tmp_path) -> None:
    no_crs = write_raster(tmp_path / "nocrs.tif", random_image(10, 10), crs=None)
    with pytest.raises(InputError) as info:
        AlignedSource(no_crs, dsm=tmp_path / "missing_dsm.tif")
    assert len(info.value.problems) == 2
    assert "no CRS" in str(info.value) and "not found" in str(info.value)


def test_dsm_without_overlap_is_refused(tmp_path) -> None:
    img = write_raster(tmp_path / "img.tif", random_image(10, 10))
    far = write_raster(tmp_path / "dsm.tif", np.ones((10, 10), np.float32), origin=(900000.0, 5000000.0))
    with pytest.raises(InputError, match="does not overlap"):
        AlignedSource(img, far)


def test_geographic_dsm_with_projected_image_needs_a_flag(tmp_path) -> None:
    img = write_raster(tmp_path / "img.tif", random_image(10, 10), crs="EPSG:32632", origin=(500000, 5000000))
    dsm = write_raster(tmp_path / "dsm.tif", np.ones((10, 10), np.float32), crs="EPSG:4326",
                       origin=(8.99, 45.15), res=0.0001)
    with pytest.raises(InputError, match="geographic"):
        AlignedSource(img, dsm)


def test_bands_out_of_range(tmp_path) -> None:
    img = write_raster(tmp_path / "img.tif", random_image(10, 10, bands=3))
    with pytest.raises(InputError, match=r"bands \[4\] out of range"):
        AlignedSource(img, bands=[1, 4])


def test_nodata_and_stats_once_per_raster(tmp_path) -> None:
    arr = random_image(30, 30, bands=2)
    arr[:, :10, :] = 0
    img = write_raster(tmp_path / "img.tif", arr, nodata=0)
    with AlignedSource(img) as src:
        valid = src.read_valid(Window(0, 0, 30, 30))
        assert not valid[:10].any() and valid[10:].all()
        stats, dsm_stats = compute_stats(src)
    assert dsm_stats is None
    np.testing.assert_allclose(stats.mean, arr[:, 10:].reshape(2, -1).mean(1), rtol=1e-6)
    z = normalize(arr[:, 10:], stats)
    np.testing.assert_allclose(z.reshape(2, -1).mean(1), 0, atol=1e-5)


def test_a_shared_nodata_value_marks_a_pixel_only_where_every_band_holds_it(tmp_path) -> None:
    """A deep-shadow pixel of an RGB ortho with nodata 0 can hold a 0 in one band: it is data (GDAL's
    rule, and how training reads chips); the black collar, 0 in every band, is not."""
    arr = random_image(20, 20)
    arr[:, :, :5] = 0  # collar
    arr[0, 10, 10] = 0  # shadow pixels: one or two bands at 0
    arr[1:, 12, 12] = 0
    t1 = write_raster(tmp_path / "t1.tif", arr, nodata=0)
    t2 = write_raster(tmp_path / "t2.tif", arr[:, ::-1, ::-1].copy(), nodata=0)
    with AlignedSource(t1, t2=t2) as src:
        image_valid = src.read_image_valid(Window(0, 0, 20, 20))
        t2_valid = src.read_t2_valid(Window(0, 0, 20, 20))
    assert not image_valid[:, :5].any() and image_valid[:, 5:].all()
    assert not t2_valid[:, 15:].any() and t2_valid[:, :15].all()


def test_a_nir_band_that_gdal_flags_alpha_is_read_as_a_band_not_as_the_mask(tmp_path) -> None:
    """GDAL flags the 4th band of a 4-band Byte GeoTIFF written with its defaults as alpha: an RGB + NIR
    ortho. Its NIR (dark water: 0) must neither leave the bands nor mark nodata; a true alpha still does."""
    rgbn = random_image(32, 32, bands=4)
    rgbn[3, :4] = 0  # water, black in the NIR
    path = write_raster(tmp_path / "rgbn.tif", rgbn)
    with rasterio.open(path) as ds:
        assert ds.colorinterp[3] == ColorInterp.alpha  # the GDAL default this test is about
    with AlignedSource(path) as src:
        assert src.bands == [1, 2, 3, 4] and any("band 4 is flagged alpha but holds imagery" in w for w in src.warnings)
        assert src.read_image_valid(Window(0, 0, 32, 32)).all()
    rgba = rgbn.copy()
    rgba[3] = 255
    rgba[3, :4] = 0  # transparent rows, feathered seam values between
    rgba[3, 4, :8] = 128
    with AlignedSource(write_raster(tmp_path / "rgba.tif", rgba)) as src:
        assert src.bands == [1, 2, 3] and not src.warnings
        valid = src.read_image_valid(Window(0, 0, 32, 32))
        assert not valid[:4].any() and valid[4:].all()


def test_a_dsm_with_an_undeclared_nodata_value_is_refused_and_declared_it_is_nodata(tmp_path) -> None:
    """-9999 in a DSM that does not declare it would be normalised as a height: garbage windows."""
    img = write_raster(tmp_path / "img.tif", random_image(40, 40))
    dsm = np.full((40, 40), 312.5, np.float32)
    dsm[:10, :10] = -9999
    with pytest.raises(InputError, match=r"mostly -9999: a nodata value it does not declare\?\); declare it "
                                         r"\(gdal_edit.py -a_nodata -9999 "):
        AlignedSource(img, write_raster(tmp_path / "dsm.tif", dsm))
    with AlignedSource(img, write_raster(tmp_path / "dsm_nd.tif", dsm, nodata=-9999)) as src:
        got = src.read_dsm(Window(0, 0, 40, 40))
    assert np.isnan(got[:10, :10]).all() and (got[10:] == 312.5).all()


def test_label_vector_rasterised_on_image_grid(tmp_path) -> None:
    import geopandas as gpd
    from shapely.geometry import box

    img = write_raster(tmp_path / "img.tif", random_image(20, 20))
    gdf = gpd.GeoDataFrame({"class": [1, 3]}, geometry=[box(500002, 4999990, 500006, 4999995),
                                                        box(500010, 4999982, 500015, 4999990)], crs="EPSG:32632")
    gdf.to_crs("EPSG:3857").to_file(tmp_path / "labels.gpkg")  # another CRS: reprojected on read
    with AlignedSource(img, labels=tmp_path / "labels.gpkg") as src:
        lab = src.read_labels(Window(0, 0, 20, 20))
    assert (lab[5:10, 2:6] == 1).all() and (lab[10:18, 10:15] == 3).all()
    assert (lab == 0).sum() == 400 - 20 - 40
    gdf.rename(columns={"class": "kind"}).to_file(tmp_path / "bad.gpkg")
    with pytest.raises(InputError, match="no class field 'class'"):
        AlignedSource(img, labels=tmp_path / "bad.gpkg")


def test_second_epoch_on_first_epoch_grid(tmp_path) -> None:
    t1 = write_raster(tmp_path / "t1.tif", random_image(40, 40))
    arr = random_image(20, 20, seed=3)
    t2 = write_raster(tmp_path / "t2.tif", arr, origin=(500010.0, 4999990.0), res=1.0)
    with AlignedSource(t1, t2=t2) as src:
        assert src.has_t2 and any("t2" in w for w in src.warnings)
        got = src.read_t2(Window(10, 10, 20, 20))
        np.testing.assert_array_equal(got, arr)
        valid = src.read_valid(Window(0, 0, 40, 40))
        assert valid.sum() == 400 and valid[10:30, 10:30].all()
    bad = write_raster(tmp_path / "t2b.tif", random_image(20, 20, bands=4))
    with rasterio.open(bad, "r+") as ds:  # no colours declared: its bands cannot be paired with t1's
        ds.colorinterp = [ColorInterp.gray, ColorInterp.undefined, ColorInterp.undefined, ColorInterp.undefined]
    with pytest.raises(InputError, match=r"4 image bands, but t1 .*cut t2 to the other's: gdal_translate -b 1 -b 2 "
                                         r"-b 3 \S*t2b\.tif t2b_3b\.tif, with a model of 3 bands"):
        AlignedSource(t1, t2=bad)
    gray = write_raster(tmp_path / "t2gray.tif", random_image(20, 20, bands=1))  # the advice cut t2 to bands 1,2,3
    with pytest.raises(InputError, match=r"t2 \S*t2gray.tif: 1 image band, but t1 .*cut t1 to the other's: "
                                         r"gdal_translate -b 1 \S*t1\.tif t1_1b\.tif, with a model of 1 band\)"):
        AlignedSource(t1, t2=gray)
    rgba = np.concatenate([random_image(40, 40, seed=4), np.full((1, 40, 40), 255, np.uint8)])
    rgba[3, :, :5] = 0  # an RGBA delivery for one date: its alpha is the mask, not a 4th band
    with AlignedSource(t1, t2=write_raster(tmp_path / "t2rgba.tif", rgba)) as src:
        np.testing.assert_array_equal(src.read_t2(Window(0, 0, 40, 40)), rgba[:3])
        valid = src.read_valid(Window(0, 0, 40, 40))
        assert not valid[:, :5].any() and valid[:, 5:].all()


def test_label_raster_on_another_grid_is_warped_nearest(tmp_path) -> None:
    img = write_raster(tmp_path / "img.tif", random_image(40, 40), res=1.0)
    lab = np.zeros((20, 20), np.uint8)
    lab[5:10, 5:10] = 3  # 2 m pixels -> a 10x10 block on the image grid
    lab_path = write_raster(tmp_path / "lab.tif", lab, res=2.0)
    with AlignedSource(img, labels=lab_path) as src:
        assert any("labels" in w and "nearest" in w for w in src.warnings)
        got = src.read_labels(Window(0, 0, 40, 40))
    assert set(np.unique(got)) == {0, 3}  # nearest: no blended class ids
    assert (got[10:20, 10:20] == 3).all() and (got == 3).sum() == 100


def test_a_south_up_image_takes_its_dsm_and_second_epoch(tmp_path) -> None:
    """A south-up grid (positive y pixel size) has bounds with top < bottom: its overlap is still a box."""
    from affine import Affine

    south_up = Affine(1.0, 0, 500000.0, 0, 1.0, 4999960.0)  # row 0 at the southern edge
    img = write_raster(tmp_path / "img.tif", random_image(40, 50), transform=south_up)
    dsm_arr = np.arange(40 * 50, dtype=np.float32).reshape(40, 50)
    same = write_raster(tmp_path / "dsm.tif", dsm_arr, transform=south_up)
    north_up = write_raster(tmp_path / "dsm_n.tif", dsm_arr[::-1].copy(), origin=(500000.0, 5000000.0))
    t2 = write_raster(tmp_path / "t2.tif", random_image(40, 50, seed=1), transform=south_up)
    with AlignedSource(img, same, t2=t2) as src:
        np.testing.assert_array_equal(src.read_dsm(Window(0, 0, 50, 40)), dsm_arr)
    with AlignedSource(img, north_up) as src:  # the same ground, stored north-up: read back south-up
        np.testing.assert_array_equal(src.read_dsm(Window(0, 0, 50, 40)), dsm_arr)


def test_a_dsm_shifted_a_few_metres_is_said_to_have_another_origin(tmp_path) -> None:
    """Northings near 5e6: a relative tolerance would call a 20 m shift the same origin."""
    img = write_raster(tmp_path / "img.tif", random_image(40, 50))
    dsm = write_raster(tmp_path / "dsm.tif", np.zeros((40, 50), np.float32), origin=(500000.0, 5000020.0))
    with AlignedSource(img, dsm) as src:
        assert any("origin +0 px across, -20 px down of the image's (20 metre)" in w for w in src.warnings), src.warnings


def test_a_void_in_the_middle_of_a_large_dsm_is_seen_by_the_checks(tmp_path) -> None:
    """The checks sample a lattice of windows; four of 256 px sat in the four corners of any scene."""
    img = write_raster(tmp_path / "img.tif", random_image(1024, 1024))
    dsm = np.full((1024, 1024), 312.5, np.float32)
    dsm[384:640, 384:640] = -9999  # a block in the middle: no corner window reaches it
    with pytest.raises(InputError, match="mostly -9999"):
        AlignedSource(img, write_raster(tmp_path / "dsm.tif", dsm))


def test_a_dsm_with_a_gdal_scale_and_offset_reads_as_heights(tmp_path) -> None:
    """An int16 DSM in decimetres (scale 0.1, offset 100) holds 100 + z / 10 metres, as GDAL unscales it."""
    import rasterio

    img = write_raster(tmp_path / "img.tif", random_image(20, 30))
    raw = np.arange(600, dtype=np.int16).reshape(20, 30)
    path = write_raster(tmp_path / "dsm.tif", raw, nodata=-32768)
    with rasterio.open(path, "r+") as ds:
        ds.scales, ds.offsets = (0.1,), (100.0,)
    with AlignedSource(img, path) as src:
        got = src.read_dsm(Window(0, 0, 30, 20))
    np.testing.assert_allclose(got, raw * 0.1 + 100.0, rtol=1e-6)


def test_a_palette_image_is_refused_with_the_expand_hint(tmp_path) -> None:
    """Colour-table indices read as one grey band (tile) or as --bands 1,1,1 (predict): garbage, silently."""
    import rasterio

    path = write_raster(tmp_path / "pal.tif", random_image(20, 30, bands=1))
    with rasterio.open(path, "r+") as ds:
        ds.write_colormap(1, {i: (i, 255 - i, 0, 255) for i in range(256)})
    with pytest.raises(InputError, match=r"palette image .* gdal_translate -expand rgb"):
        AlignedSource(path)
    # the command as it pastes into a shell: a name with spaces quoted, the copy beside the image (not in the cwd)
    (tmp_path / "my scans").mkdir()
    spaced = path.rename(tmp_path / "my scans" / "pal 1.tif")
    with pytest.raises(InputError) as err:
        AlignedSource(spaced)
    assert f"gdal_translate -expand rgb '{spaced}' '{spaced.with_name('pal 1_rgb.tif')}'" in str(err.value)


def test_a_raster_georeferenced_by_gcps_only_is_told_to_warp(tmp_path, capsys) -> None:
    """It has a CRS, on its points: 'no CRS; gdal_edit.py -a_srs' was the wrong advice."""
    from rasterio.control import GroundControlPoint

    from rsmamba.cli import main

    gcps = [GroundControlPoint(row=r, col=c, x=500000 + c, y=5000000 - r) for r, c in ((0, 0), (0, 30), (20, 0), (20, 30))]
    path = tmp_path / "gcp.tif"
    with rasterio.open(path, "w", driver="GTiff", width=30, height=20, count=3, dtype="uint8",
                       gcps=gcps, crs="EPSG:32632") as dst:
        dst.write(random_image(20, 30))
    with pytest.raises(InputError, match=r"gcp.tif: georeferenced by GCPs only: warp it onto a grid first \(gdalwarp\)$"):
        AlignedSource(path)
    classes = tmp_path / "gcp_classes.tif"
    with rasterio.open(classes, "w", driver="GTiff", width=30, height=20, count=1, dtype="uint8",
                       gcps=gcps, crs="EPSG:32632") as dst:
        dst.write(np.ones((1, 20, 30), np.uint8))
    assert main(["vectorize", str(classes), "-o", str(tmp_path / "v.gpkg")]) == 2
    assert "georeferenced by GCPs only: warp it onto a grid first (gdalwarp)" in capsys.readouterr().err


def test_coverage_on_rotated_grids_is_of_the_footprints_not_their_boxes(tmp_path, caplog) -> None:
    """A rotated DSM covering a rotated image whole was 'covers only 39.9 %' (bounding boxes, corners)."""
    from affine import Affine

    from rsmamba.raster.source import _overlap_fraction

    rotated = Affine.translation(500000, 5000000) * Affine.rotation(-30) * Affine.scale(1, -1)
    image = write_raster(tmp_path / "img.tif", random_image(40, 100), transform=rotated)
    dsm = write_raster(tmp_path / "dsm.tif", np.full((40, 100), 40.0, np.float32), transform=rotated)
    with caplog.at_level("WARNING", logger="rsmamba"):
        AlignedSource(image, dsm).close()
    assert "covers only" not in caplog.text
    half = write_raster(tmp_path / "half.tif", np.full((40, 50), 40.0, np.float32), transform=rotated)
    with rasterio.open(image) as a, rasterio.open(half) as b, rasterio.open(dsm) as c:
        assert _overlap_fraction(a, b) == pytest.approx(0.5)
        assert _overlap_fraction(a, c) == pytest.approx(1.0)


def test_a_dsm_on_a_rotated_or_south_up_grid_is_said_so() -> None:
    """'grid differs from the image' named resolution, origin and size, never a rotation or orientation."""
    import rasterio
    from affine import Affine

    from rsmamba.raster.source import _describe_grid_difference

    class Grid:
        def __init__(self, transform) -> None:
            self.transform, self.crs, self.res, self.shape = transform, rasterio.crs.CRS.from_epsg(32632), (1.0, 1.0), (10, 10)

    north = Grid(Affine(1, 0, 0, 0, -1, 0))
    assert _describe_grid_difference(north, Grid(Affine.rotation(-20) * Affine.scale(1, -1))) == "rotation -20 deg vs 0 deg"
    assert _describe_grid_difference(north, Grid(Affine(1, 0, 0, 0, 1, -10))).startswith(
        "orientation south up vs north up")
    assert _describe_grid_difference(north, north) == "grid"
    # an east-left grid is mirrored, not turned (it read 'rotation 180 deg vs 0 deg'); a half turn is a rotation
    assert _describe_grid_difference(north, Grid(Affine(-1, 0, 10, 0, -1, 0))).startswith(
        "orientation north up, mirrored vs north up")
    assert _describe_grid_difference(north, Grid(Affine(-1, 0, 10, 0, 1, -10))).startswith("rotation 180 deg vs 0 deg")


@pytest.mark.parametrize("fill,scale", [(9999.0, None), (65535, 0.01)])
def test_a_few_undeclared_fill_pixels_of_a_dsm_read_as_no_data_and_are_said(tmp_path, caplog, fill, scale) -> None:
    """10 x 10 px of 9999 (a height inside -1000..30000) or a centimetre DSM's 65535 (655.35 m): each a
    z-score of thousands that spoilt every window holding it (16 % of a map). -9999 is refused up front
    when the start-up sample sees it; where the sample misses it, this same reading catches it."""
    rng = np.random.default_rng(1)
    heights = (40 + 8 * rng.random((600, 600))).astype(np.float32)
    if scale is not None:  # centimetres in uint16, GDAL scale 0.01
        heights = np.round(heights / scale).astype(np.uint16)
    patch = (slice(300, 310), slice(300, 310))
    img = write_raster(tmp_path / "img.tif", random_image(600, 600))
    stored = heights.copy()
    stored[patch] = fill
    path = write_raster(tmp_path / "dsm.tif", stored)
    if scale is not None:
        with rasterio.open(path, "r+") as ds:
            ds.scales = [scale]
    with AlignedSource(img, path) as src:
        got = src.read_dsm(Window(0, 0, 600, 600))
    assert np.isnan(got[patch]).all() and np.isfinite(np.delete(got.ravel(), np.flatnonzero(np.isnan(got)))).all()
    assert np.isnan(got).sum() == 100 and any("read as no data" in r.getMessage() for r in caplog.records)


def test_a_dsm_in_another_crs_is_not_said_to_lie_units_apart(tmp_path) -> None:
    """x/y numbers of two CRSs differ by 8e5 for the same place: "origin 8.178e+05 units apart" alarmed for nothing."""
    from rasterio.warp import calculate_default_transform, reproject

    img = write_raster(tmp_path / "img.tif", random_image(40, 40))
    dsm = np.full((40, 40), 50.0, np.float32)
    utm = rasterio.transform.from_origin(500000.0, 5000000.0, 1.0, 1.0)
    transform, w, h = calculate_default_transform("EPSG:32632", "EPSG:3857", 40, 40, *rasterio.transform.array_bounds(40, 40, utm))
    merc = np.zeros((h, w), np.float32)
    reproject(dsm, merc, src_transform=utm, src_crs="EPSG:32632", dst_transform=transform, dst_crs="EPSG:3857")
    with rasterio.open(tmp_path / "dsm.tif", "w", driver="GTiff", width=w, height=h, count=1, dtype="float32",
                       crs="EPSG:3857", transform=transform) as ds:
        ds.write(merc[None])
    with AlignedSource(img, tmp_path / "dsm.tif") as src:
        said = [w for w in src.warnings if "grid differs" in w]
    assert said and "CRS EPSG:3857 vs EPSG:32632" in said[0] and "units apart" not in said[0]  # named, not 'definition'


def test_a_tall_tower_or_summit_is_a_height_and_a_large_fill_is_refused(tmp_path) -> None:
    """Masking any height far off the scene's erased a 600 m tower's roof (and a summit); a fill is one repeated
    value: 9999 over 20 % of a DSM set the scene's upper percentiles and passed as heights before."""
    rng = np.random.default_rng(2)
    img = write_raster(tmp_path / "img.tif", random_image(200, 200))
    heights = (40 + 8 * rng.random((200, 200))).astype(np.float32)
    tower = heights.copy()
    tower[50:70, 50:70] += 600 + rng.random((20, 20)).astype(np.float32)  # a roof's heights vary
    with AlignedSource(img, write_raster(tmp_path / "tower.tif", tower)) as src:
        got = src.read_dsm(Window(0, 0, 200, 200))
        assert np.array_equal(got, tower) and not src.warnings
    fill = heights.copy()
    fill[:, :40] = 9999.0
    with pytest.raises(InputError, match=r"hold 9999, far from its other heights .*declare it \(gdal_edit.py -a_nodata 9999"):
        AlignedSource(img, write_raster(tmp_path / "fill.tif", fill))
    fill[:10, :] = -9999.0  # a DSM declaring -9999 is told to use it, not to declare 9999 instead
    with pytest.raises(InputError, match=r"it declares -9999 as nodata already: set those pixels to it \(gdal_calc.py"):
        AlignedSource(img, write_raster(tmp_path / "fill_nd.tif", fill, nodata=-9999))


def test_a_fill_resampled_onto_the_image_grid_goes_with_its_ring(tmp_path) -> None:
    """A 1 m DSM's undeclared 9999 patch, warped bilinearly onto a 0.5 m image: the core was masked, its ring of
    2536, 5018, 7500 m kept as heights (13 % of a map changed); the advice named the VRT's NaN, not the file's none."""
    rng = np.random.default_rng(3)
    img = write_raster(tmp_path / "img.tif", random_image(400, 400), res=0.5)
    dsm = (40 + 8 * rng.random((200, 200))).astype(np.float32)
    dsm[100:104, 100:104] = 9999.0
    dsm[20:24, 150:154] = 9999.0  # two patches: the sample may miss both, each window sees its own
    with AlignedSource(img, write_raster(tmp_path / "dsm.tif", dsm, res=1.0)) as src:
        got = src.read_dsm(Window(0, 0, 400, 400))
        said = [w for w in src.warnings if "9999" in w]
    finite = got[np.isfinite(got)]
    assert finite.max() < 100  # no blended ring left as heights
    assert said and "gdal_edit.py -a_nodata 9999" in said[0] and "declares nan" not in said[0]


def test_a_model_recording_gray_colours_reads_by_position(tmp_path) -> None:
    """Chips of a MINISBLACK raster record gray, undefined, undefined: no order, so an RGB ortho was refused."""
    from rsmamba.engine.model import LoadedModel, bands_by_colour

    model = LoadedModel(torch.nn.Identity(), bands=[1, 2, 3], colours=("gray", "undefined", "undefined"))
    assert bands_by_colour(model, [1, 2, 3], ["red", "green", "blue"], "o.tif") == [1, 2, 3]


def test_a_fill_in_one_window_does_not_mask_a_tower_in_another(tmp_path) -> None:
    """With a fill seen anywhere, every far height of later windows went: a 300 m tower read after the fill."""
    rng = np.random.default_rng(4)
    img = write_raster(tmp_path / "img.tif", random_image(400, 400), res=0.5)
    dsm = (40 + 8 * rng.random((200, 200))).astype(np.float32)
    dsm[5:9, 5:9] = 9999.0  # under the start-up share: found by the window reading it
    dsm[180:190, 180:190] = 300 + rng.random((10, 10)).astype(np.float32)
    with AlignedSource(img, write_raster(tmp_path / "dsm.tif", dsm, res=1.0)) as src:
        fill = src.read_dsm(Window(0, 0, 64, 64))
        tower = src.read_dsm(Window(340, 340, 60, 60))
    assert np.isnan(fill[10:18, 10:18]).all() and np.nanmax(fill) < 100
    assert np.isfinite(tower).all() and tower.max() > 290  # the tower, read after the fill, is heights


def test_a_model_with_an_undefined_band_reads_its_named_colours_by_name(tmp_path) -> None:
    """Colours red, green, blue, undefined (GDAL's usual 4th band) refused an image declaring red, green, blue, nir."""
    from rsmamba.engine.model import LoadedModel, bands_by_colour

    model = LoadedModel(torch.nn.Identity(), bands=[1, 2, 3, 4], colours=("red", "green", "blue", "undefined"))
    assert bands_by_colour(model, [1, 2, 3, 4], ["red", "green", "blue", "nir"], "o.tif") == [1, 2, 3, 4]
    assert bands_by_colour(model, [1, 2, 3, 4], ["nir", "red", "green", "blue"], "o.tif") == [2, 3, 4, 1]


@pytest.mark.parametrize("case", ["other_crs", "window_edge", "one_pixel"])
def test_fills_the_window_count_misses_still_go_with_their_ring(tmp_path, case) -> None:
    """A DSM in another CRS (ring fixed at 2 px: 13 % of a map), a fill cut by a window's edge, or single 9999
    pixels resampled into rings of unique values (24 %, unsaid) kept 1000s of metres as heights."""
    rng = np.random.default_rng(5)
    img = write_raster(tmp_path / "img.tif", random_image(400, 400), res=0.5)
    dsm = (40 + 8 * rng.random((100, 100))).astype(np.float32)
    if case == "one_pixel":
        dsm[[30, 60, 80], [20, 50, 70]] = 9999.0
    else:
        dsm[48:51, 48:51] = 9999.0
    crs = "EPSG:25832" if case == "other_crs" else "EPSG:32632"
    path = write_raster(tmp_path / "dsm.tif", dsm, res=2.0, crs=crs)
    with AlignedSource(img, path, allow_geographic_mix=True) as src:
        window = Window(0, 0, 400, 400) if case != "window_edge" else Window(0, 0, 194, 194)  # cuts the fill
        got = src.read_dsm(window)
        said = [w for w in src.warnings if "far from the scene's heights" in w]
    assert np.nanmax(got) < 100 and said


@pytest.mark.parametrize("case", ["int16_metres", "centimetre_roof", "centimetres_float", "nDSM_chimney"])
def test_a_tower_far_above_a_flat_town_is_heights_in_any_units(tmp_path, case) -> None:
    """A 250 m tower's flat roof repeats its heights (an int16 metre DSM, a LiDAR DSM's 1 cm steps): read as an
    undeclared fill, its whole roof was no data; in centimetres even a roof of unique values went (the limit was
    1000 units: 10 m). A height is a fill only when it is a value software writes for no data."""
    rng = np.random.default_rng(6)
    img = write_raster(tmp_path / "img.tif", random_image(300, 300))
    town = 40 + 8 * rng.random((300, 300))
    roof = (slice(100, 120), slice(100, 120))  # under 1 % of the scene: above its 99th percentile
    town[roof] = 290 + rng.normal(0, 0.03, (20, 20))
    if case == "nDSM_chimney":  # farmland: half exact 0, crops up to 2 m, a 230 m chimney top
        town = np.where(rng.random((300, 300)) < 0.5, 0.0, 2 * rng.random((300, 300)))
        town[roof] = 230 + rng.normal(0, 0.03, (20, 20))
    stored = {"int16_metres": np.round(town).astype(np.int16), "centimetre_roof": np.round(town, 2).astype(np.float32),
              "centimetres_float": (town * 100).astype(np.float32), "nDSM_chimney": np.round(town, 2).astype(np.float32)}[case]
    with AlignedSource(img, write_raster(tmp_path / "dsm.tif", stored)) as src:
        got = src.read_dsm(Window(0, 0, 300, 300))
        assert not src.warnings
    np.testing.assert_array_equal(got, stored.astype(np.float32))


def test_a_fill_is_read_the_same_in_any_window_and_spares_the_scene_range(tmp_path) -> None:
    """A 999 patch cut by a read's edge into pieces under the repeat count stayed a height there: dsm_range (512-row
    strips) took 999 as the scene's top and a minmax-scene model squeezed every height into 0..0.03."""
    from rsmamba.raster.normalize import dsm_range

    rng = np.random.default_rng(7)
    img = write_raster(tmp_path / "img.tif", random_image(1024, 64))
    dsm = (40 + 8 * rng.random((1024, 64))).astype(np.float32)
    dsm[510:514, 30:36] = 999.0
    with AlignedSource(img, write_raster(tmp_path / "dsm.tif", dsm)) as src:
        whole = src.read_dsm(Window(0, 0, 64, 1024))
        top, bottom = src.read_dsm(Window(0, 0, 64, 512)), src.read_dsm(Window(0, 512, 64, 512))
        lo, hi = dsm_range(src.read_dsm, src.width, src.height)
    np.testing.assert_array_equal(np.concatenate([top, bottom]), whole)
    assert np.isnan(whole[510:514, 30:36]).all() and np.isnan(whole).sum() == 24 and hi < 48


def test_a_fill_of_a_resampled_dsm_cut_by_a_window_takes_its_blend_with_it(tmp_path) -> None:
    """A coarser DSM's fill just outside a window still blends into it: that window's pixels are no data too."""
    rng = np.random.default_rng(8)
    img = write_raster(tmp_path / "img.tif", random_image(400, 400), res=0.5)
    dsm = (40 + 8 * rng.random((100, 100))).astype(np.float32)
    dsm[49:52, 49:52] = 9999.0  # image pixels 196..207 (2 m DSM pixels, 0.5 m image pixels)
    with AlignedSource(img, write_raster(tmp_path / "dsm.tif", dsm, res=2.0)) as src:
        whole = src.read_dsm(Window(0, 0, 400, 400))
        for cut in (190, 196, 200, 208, 210):  # windows ending inside, at, past the fill and its blend
            np.testing.assert_array_equal(src.read_dsm(Window(0, 0, cut, cut)), whole[:cut, :cut])
    assert np.nanmax(whole) < 100 and np.isnan(whole[198:206, 198:206]).all()


def test_a_zero_fill_under_a_town_is_said_and_the_sea_beside_a_beach_is_not(tmp_path) -> None:
    """0 written for no data under a town 40 m up changed a fifth of the map it covered, unsaid. Exact 0 is also the
    sea, so it is a warning, given only where nothing lies between 0 and the other heights."""
    rng = np.random.default_rng(9)
    img = write_raster(tmp_path / "img.tif", random_image(200, 200))
    town = (40 + 8 * rng.random((200, 200))).astype(np.float32)
    town[:30] = 0.0
    with AlignedSource(img, write_raster(tmp_path / "town.tif", town)) as src:
        assert any("hold exactly 0" in w and "gdal_edit.py -a_nodata 0" in w for w in src.warnings)
        assert (src.read_dsm(Window(0, 0, 200, 200))[:30] == 0).all()  # a warning: still read as heights
    coast = np.linspace(0, 30, 200, dtype=np.float32)[None].repeat(200, 0)  # a beach rising from the sea
    coast[:, :60] = 0.0
    with AlignedSource(img, write_raster(tmp_path / "coast.tif", coast)) as src:
        assert not src.warnings


def test_fill_advice_names_the_file_value_and_centimetres_are_told_to_declare_a_scale(tmp_path) -> None:
    """A scaled centimetre DSM's fill was named 655.35 (its height): declaring that did nothing, and the next
    advice was a no-op gdal_calc. A town 500 m up in centimetres was said to be '100 % one nodata value'."""
    rng = np.random.default_rng(10)
    img = write_raster(tmp_path / "img.tif", random_image(200, 200))
    cm = np.round((40 + 8 * rng.random((200, 200))) * 100).astype(np.uint16)
    cm[:40] = 65535
    path = write_raster(tmp_path / "cm.tif", cm)
    with rasterio.open(path, "r+") as ds:
        ds.scales = [0.01]
    with pytest.raises(InputError, match=r"hold 65535, far .*gdal_edit.py -a_nodata 65535 "):
        AlignedSource(img, path)
    munich = np.round((520 + 8 * rng.random((200, 200))) * 100).astype(np.int32)
    with pytest.raises(InputError, match=r"outside -1000..30000 \(metres or feet\), 52000..52800: in centimetres "
                                         r"or millimetres\? declare its scale \(gdal_edit.py -scale 0.01 "):
        AlignedSource(img, write_raster(tmp_path / "munich.tif", munich))


def test_a_south_up_coarser_dsm_takes_its_fills_blend_with_it(tmp_path) -> None:
    """The fill's DSM window came from from_bounds, which refuses a south-up grid: the failure was swallowed and
    the ring of 2536..8754 m stayed as heights (map accuracy 97.8 % -> 67.3 %)."""
    from affine import Affine

    rng = np.random.default_rng(11)
    img = write_raster(tmp_path / "img.tif", random_image(400, 400), res=0.5)
    dsm = (40 + 8 * rng.random((100, 100))).astype(np.float32)
    dsm[49:52, 49:52] = 9999.0
    south_up = Affine(2.0, 0, 500000.0, 0, 2.0, 5000000.0 - 200.0)  # row 0 at the south edge
    path = write_raster(tmp_path / "dsm.tif", dsm[::-1].copy(), transform=south_up)
    with AlignedSource(img, path) as src:
        got = src.read_dsm(Window(0, 0, 400, 400))
    assert np.nanmax(got) < 100 and np.isnan(got[198:206, 198:206]).all()


@pytest.mark.parametrize("case", ["resampled_border", "integer_heights"])
def test_a_large_fill_is_refused_however_the_dsm_is_stored(tmp_path, case) -> None:
    """Judged through the warp, a 1 m DSM's fill border blended into values that widened the heights' range until
    9999 looked like one (accuracy 0.98 -> 0.50, silent); judged by its commonest value only, an int16 DSM (whose
    commonest value is a height) passed a 1.4 % patch of 9999."""
    rng = np.random.default_rng(12)
    if case == "resampled_border":
        img = write_raster(tmp_path / "img.tif", random_image(400, 400), res=0.25)
        dsm = (40 + 8 * rng.random((100, 100))).astype(np.float32)
        dsm[0, :] = 9999.0
        dsm[:, -1] = 9999.0
        path = write_raster(tmp_path / "dsm.tif", dsm, res=1.0)
    else:
        img = write_raster(tmp_path / "img.tif", random_image(300, 300))
        dsm = np.round(40 + 8 * rng.random((300, 300))).astype(np.int16)
        dsm[100:136, 100:136] = 9999
        path = write_raster(tmp_path / "dsm.tif", dsm)
    with pytest.raises(InputError, match=r"of its sampled pixels hold 9999, far from its other heights"):
        AlignedSource(img, path)


def test_a_rare_fill_beyond_any_height_is_no_data_not_a_refusal(tmp_path) -> None:
    """One -32767 pixel refused the run ('0.0% of its sampled pixels'), where one 9999 pixel was read as no data
    with a warning: the share rule holds for fills beyond -1000..30000 too."""
    rng = np.random.default_rng(13)
    img = write_raster(tmp_path / "img.tif", random_image(256, 256))
    dsm = (40 + 8 * rng.random((256, 256))).astype(np.float32)
    dsm[100, 100] = -32767.0
    with AlignedSource(img, write_raster(tmp_path / "one.tif", dsm)) as src:
        got = src.read_dsm(Window(0, 0, 256, 256))
        assert np.isnan(got[100, 100]) and np.isnan(got).sum() == 1
        assert any("-32767, beyond" in w and "read as no data" in w for w in src.warnings)
    dsm[:20] = -32767.0
    with pytest.raises(InputError, match=r"5,121 of its 65,536 sampled pixels \(7.8%\) hold heights outside"):
        AlignedSource(img, write_raster(tmp_path / "many.tif", dsm))


def test_a_dsm_covering_little_of_the_image_is_said_once(tmp_path) -> None:
    """'covers only 21.9% of the image' was printed twice: on its own and again inside 'grid differs'."""
    img = write_raster(tmp_path / "img.tif", random_image(40, 40))
    dsm = write_raster(tmp_path / "dsm.tif", np.full((40, 40), 50.0, np.float32), res=1.0,
                       origin=(500000.0 + 27.5, 5000000.0))  # 12.5 of 40 columns over the image, off its lattice
    with AlignedSource(img, dsm) as src:
        said = [w for w in src.warnings if "covers only" in w]
    assert len(said) == 1 and "31.2%" in said[0], src.warnings


def test_a_dsm_on_the_image_pixels_with_another_extent_is_cropped_not_resampled(tmp_path) -> None:
    """A project-wide DSM on the ortho's lattice: 'resampled (bilinear)' was said of pixels taken as they are."""
    img = write_raster(tmp_path / "img.tif", random_image(40, 40), res=0.5)
    heights = np.random.default_rng(2).uniform(20, 60, (80, 90)).astype(np.float32)
    dsm = write_raster(tmp_path / "dsm.tif", heights, res=0.5, origin=(500000.0 - 10 * 0.5, 5000000.0 + 20 * 0.5))
    with AlignedSource(img, dsm) as src:
        said = [w for w in src.warnings if str(dsm) in w]
        got = src.read_dsm(Window(0, 0, 40, 40))
    assert said == [f"DSM {dsm}: on the image's pixels with another extent (origin -10 px across, -20 px down of the image's (11.18 metre), size 90x80 vs "
                    "40x40); cropped to the image grid, no resampling"]
    np.testing.assert_array_equal(got, heights[20:60, 10:50])


@pytest.mark.parametrize("role", ["DSM", "labels"])
def test_a_raster_on_the_image_pixels_short_of_its_edges_says_which_rows_and_columns(tmp_path, role) -> None:
    """A DSM one row short gave a map whose last row was nodata, said only as 'another extent (size 1024x1023
    vs 1024x1024)': the edges it does not reach are named, with what follows there."""
    img = write_raster(tmp_path / "img.tif", random_image(40, 40), res=0.5)
    if role == "DSM":
        other = write_raster(tmp_path / "dsm.tif", np.full((39, 38), 30.0, np.float32), res=0.5,
                             origin=(500000.0 + 2 * 0.5, 5000000.0))  # starts 2 columns in, ends a row short
        kwargs = {"dsm": other}
    else:
        other = write_raster(tmp_path / "lab.tif", np.ones((41, 40), np.uint8), res=0.5,
                             origin=(500000.0, 5000000.0 + 0.5))  # starts a row above: reaches every edge
        kwargs = {"labels": other}
    with AlignedSource(img, **kwargs) as src:
        said = [w for w in src.warnings if str(other) in w]
    assert len(said) == 1 and "cropped to the image grid" in said[0], src.warnings
    if role == "DSM":
        assert said[0].endswith("; it does not reach the image's last 1 row and first 2 columns (no DSM data there)")
    else:
        assert "does not reach" not in said[0]


@pytest.mark.parametrize("covered_columns, said", [(481, None), (717, 70.0), (1000, None)])
def test_dsm_coverage_is_estimated_on_equal_areas_and_a_partly_empty_map_is_said(tmp_path, covered_columns, said):
    """The share came from windows reaching both edges: a DSM covering 47.0 % of a scene read as 50 % and
    gave a map 53 % nodata without a word, one covering 45.0 % was refused as '47.1%'."""
    from rsmamba.raster.validate import check_dsm_coverage

    img = write_raster(tmp_path / "img.tif", random_image(1024, 1024))
    heights = np.full((1024, 1024), 50.0, np.float32)
    heights[:, covered_columns:] = -9999  # no data east of the column
    dsm = write_raster(tmp_path / "dsm.tif", heights, nodata=-9999)
    with AlignedSource(img, dsm) as src:
        if covered_columns < 512:  # 47.0 %: under the 50 % a map needs
            with pytest.raises(InputError, match=r"data over only about 47\.\d% of the image's valid pixels"):
                check_dsm_coverage(src, dsm)
            return
        got = check_dsm_coverage(src, dsm)
    if said is None:
        assert got == []
        return
    import re

    share = float(re.search(r"data over about ([\d.]+)% of the image's valid pixels; the map will be nodata", got[0])[1])
    assert abs(share - said) <= 2  # 48 cells an axis: a boundary is placed to within half a cell


def test_a_class_map_or_an_ortho_given_as_the_dsm_is_refused(tmp_path) -> None:
    """A paletted label raster as --dsm: tile wrote class ids as DSM chips without a word, predict blamed the
    ground level (mIoU 0.32 for 0.84); an RGB ortho as --dsm: red read as heights, 'using band 1'."""
    from tests.helpers.rasters import ROOT

    scene = ROOT / "examples" / "scene"
    for wrong, why in ((scene / "labels.tif", "band 1 is a palette"), (scene / "ortho.tif", "its bands are red, green and blue")):
        with pytest.raises(InputError, match=rf"DSM {wrong}: {why}.*not heights"):
            AlignedSource(scene / "ortho.tif", wrong)
    with AlignedSource(scene / "ortho.tif", scene / "dsm.tif") as src:  # the DSM itself
        assert src.has_dsm
    # heights in decimetres (UInt16, GDAL scale 0.1) with a colour ramp for display: heights, not a class map
    with rasterio.open(scene / "dsm.tif") as ds:
        metres, profile = ds.read(1), ds.profile
    profile.update(dtype="uint16", nodata=0)
    ramp = tmp_path / "ramp.tif"
    with rasterio.open(ramp, "w", **profile) as ds:
        ds.write(np.clip(metres * 10, 1, 65535).astype("uint16"), 1)
        ds.write_colormap(1, {i: (i % 256, 0, 255 - i % 256, 255) for i in range(0, 65536, 257)})
        ds.scales = [0.1]
    with rasterio.open(ramp) as ds:
        assert ds.colorinterp[0] == ColorInterp.palette
    with AlignedSource(scene / "ortho.tif", ramp) as src:
        assert src.has_dsm


def test_a_probe_of_one_date_names_it(tmp_path) -> None:
    """change probes each date alone: t2's alpha warning called it 'image'."""
    rgbn = random_image(32, 32, bands=4)
    rgbn[3, :4] = 0
    path = write_raster(tmp_path / "t2.tif", rgbn)  # GDAL flags the 4th band alpha
    with AlignedSource(path, image_role="t2") as src:
        assert [w for w in src.warnings if w.startswith(f"t2 {path}: band 4 is flagged alpha")]


def test_resolutions_in_two_units_are_named(tmp_path) -> None:
    """A DSM on UTM in US survey feet (0.8202 ft = 0.25 m) was said to differ in 'resolution 0.820208 vs 0.25'."""
    from rasterio.transform import from_origin

    img = write_raster(tmp_path / "i.tif", random_image(32, 32), res=0.25)
    ft = 0.25 / 0.3048006096
    dsm = write_raster(tmp_path / "d.tif", np.zeros((1, 32, 32), "float32"), crs="EPSG:32632",
                       transform=from_origin(500000 / 0.3048006096, 5000000 / 0.3048006096, ft, ft))
    with rasterio.open(dsm, "r+") as ds:  # UTM 32N in US survey feet, as a WKT (no EPSG code has it)
        ds.crs = rasterio.crs.CRS.from_proj4("+proj=utm +zone=32 +datum=WGS84 +units=us-ft +no_defs")
    with AlignedSource(img, dsm) as src:
        said = [w for w in src.warnings if "grid differs" in w]
        assert said and "resolution 0.820208 x 0.820208 US survey foot vs 0.25 x 0.25 metre" in said[0]


@pytest.mark.parametrize("declared", ["units", "compound"])
def test_a_dsm_declaring_feet_reads_as_metres(tmp_path, declared) -> None:
    """Heights in feet read as metres: every building 3.28 times taller to a ground-relative model (building IoU
    0.85 for 0.93), unsaid. Declared (the band's unit type, or a compound CRS's vertical axis), they are metres."""
    from tests.helpers.rasters import ROOT

    with rasterio.open(ROOT / "examples" / "scene" / "dsm.tif") as ds:
        metres, profile = ds.read(1, masked=True), ds.profile
    foot = 0.3048 if declared == "units" else 0.3048006096012192
    profile.update(crs="EPSG:32632+5773" if declared == "units" else rasterio.crs.CRS.from_user_input("EPSG:32632+6360"))
    path = tmp_path / "feet.tif"
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.ma.filled(metres / foot, profile["nodata"]).astype(profile["dtype"]), 1)
        if declared == "units":
            ds.units = ["ft"]
    with rasterio.open(path) as ds:  # the declaration this test is about, as GDAL reads it back
        assert ds.units[0] == "ft" if declared == "units" else "6360" in ds.crs.to_wkt() or "foot" in ds.crs.to_wkt()
    with AlignedSource(ROOT / "examples" / "scene" / "ortho.tif", path) as src:
        heights = src.read_dsm(Window(0, 0, src.width, src.height))
        assert [w for w in src.warnings if "(declared); read as metres" in w]
    valid = ~np.ma.getmaskarray(metres)
    assert np.allclose(heights[valid], metres.data[valid], atol=1e-3)


def test_only_the_features_over_the_scene_are_read_from_a_large_layer(tmp_path) -> None:
    """A country's buildings for one ortho: the whole layer was read (1M squares 100 km away: 844 MB for 230);
    in the scene's own projected CRS only the features over it are (a layer in degrees is read whole, as the
    antimeridian and the poles need)."""
    import geopandas as gpd
    import shapely

    img = write_raster(tmp_path / "i.tif", random_image(64, 64), res=0.5)  # 500000..500032, 4999968..5000000
    near = [shapely.box(500004, 4999970, 500010, 4999976), shapely.box(500020, 4999980, 500030, 4999990)]
    far = [shapely.box(600000 + i * 20, 5100000, 600010 + i * 20, 5100010) for i in range(500)]
    gpd.GeoDataFrame({"class": [1] * 502}, geometry=near + far, crs="EPSG:32632").to_file(tmp_path / "l.gpkg")
    with AlignedSource(img, labels=tmp_path / "l.gpkg", class_field="class") as src:
        assert len(src._labels_vector.gdf) == 2
        labels = src.read_labels(Window(0, 0, 64, 64))
    assert (labels == 1).sum() == (6 * 2) * (6 * 2) + (10 * 2) * (10 * 2)
    gpd.GeoDataFrame({"class": [1] * 500}, geometry=far, crs="EPSG:32632").to_file(tmp_path / "off.gpkg")
    with pytest.raises(InputError, match="does not overlap the image"):  # said as before, from the whole layer
        AlignedSource(img, labels=tmp_path / "off.gpkg", class_field="class")


def test_a_label_layer_in_a_compound_images_horizontal_crs_is_not_reprojected(tmp_path) -> None:
    """An image in EPSG:32632+5773 with labels in EPSG:32632: said 'vector CRS differs from the image;
    reprojected' though no feature moves, and the whole layer was read (no bbox pre-filter)."""
    import geopandas as gpd
    import shapely
    from rasterio.crs import CRS

    img = write_raster(tmp_path / "i.tif", random_image(64, 64), res=0.5, crs=CRS.from_string("EPSG:32632+5773"))
    near = [shapely.box(500004, 4999970, 500010, 4999976)]
    far = [shapely.box(600000 + i * 20, 5100000, 600010 + i * 20, 5100010) for i in range(5)]
    gpd.GeoDataFrame({"class": [1] * 6}, geometry=near + far, crs="EPSG:32632").to_file(tmp_path / "l.gpkg")
    with AlignedSource(img, labels=tmp_path / "l.gpkg", class_field="class") as src:
        assert not [w for w in src.warnings if "reprojected" in w], src.warnings
        assert len(src._labels_vector.gdf) == 1
        assert (src.read_labels(Window(0, 0, 64, 64)) == 1).sum() == 12 * 12


def test_overlapping_features_read_by_bbox_burn_in_layer_order(tmp_path) -> None:
    """Read by the scene's bbox, features came in the GeoPackage R-tree's order, not the layer's: where a 21 km strip
    lay under buildings, 5066 label pixels turned from its class 2 to the buildings' 1."""
    import geopandas as gpd
    import shapely
    from rasterio.features import rasterize
    from rasterio.transform import from_origin

    img = write_raster(tmp_path / "i.tif", random_image(64, 64), res=0.5)
    rng = np.random.default_rng(1)
    x, y = rng.uniform(500000, 500030, 400), rng.uniform(4999970, 4999998, 400)
    boxes = shapely.box(x, y, x + rng.uniform(1, 6, 400), y + rng.uniform(1, 6, 400))  # overlapping, classes mixed
    classes = rng.integers(1, 5, 400)
    layer = gpd.GeoDataFrame({"class": classes}, geometry=list(boxes), crs="EPSG:32632")
    layer.to_file(tmp_path / "utm.gpkg")
    expected = rasterize(zip(boxes, classes.tolist()), out_shape=(64, 64), transform=from_origin(500000, 5000000, 0.5, 0.5),
                         fill=0, dtype="uint8")  # later features on top, in the layer's order
    with AlignedSource(img, labels=tmp_path / "utm.gpkg", class_field="class") as src:
        assert (src.read_labels(Window(0, 0, 64, 64)) == expected).all()


def test_a_dsm_in_a_compound_crs_on_the_image_grid_is_read_by_index(tmp_path) -> None:
    """UTM 32N + a vertical datum on exactly the image's grid: 'grid differs ... resampled' was said, untrue."""
    img = write_raster(tmp_path / "i.tif", random_image(32, 32), res=0.5)
    dsm = write_raster(tmp_path / "d.tif", np.full((1, 32, 32), 40.0, np.float32), res=0.5)
    with rasterio.open(dsm, "r+") as ds:
        ds.crs = rasterio.crs.CRS.from_user_input("EPSG:32632+5773")
    with AlignedSource(img, dsm) as src:
        assert not [w for w in src.warnings if "grid differs" in w]
        assert np.allclose(src.read_dsm(Window(0, 0, 32, 32)), 40.0)


@pytest.mark.parametrize("unit,metres", [("cm", 0.01), ("mm", 0.001), ("dm", 0.1), ("centimetre", 0.01),
                                         ("km", 1000.0), ("Foot_US", 1200 / 3937), ("ft_us", 1200 / 3937),
                                         ("US survey foot", 1200 / 3937), ("m", 1.0), ("m asl", 1.0),
                                         ("metres above sea level", 1.0), ("ft NAVD88", 0.3048), ("m (EGM96)", 1.0),
                                         ("unknown", 1.0), ("N/A", 1.0), ("metres (m)", 1.0), ("Height (m)", 1.0),
                                         ("metre.", 1.0), ("m EVRF2007", 1.0), ("m HAE", 1.0), ("masl", 1.0),
                                         ("[m]", 1.0), ("Foot (US)", 1200 / 3937), ("foot_survey_us", 1200 / 3937),
                                         ("linear_meter", 1.0), ("mAOD", 1.0), ("U.S. survey foot", 1200 / 3937),
                                         ("elevation in metres", 1.0), ("mètre", 1.0), ("m NAVD-88", 1.0)])
def test_a_dsm_declaring_a_metric_unit_or_survey_feet_reads_as_metres(tmp_path, unit, metres) -> None:
    """Heights declared in cm were read as metres, unsaid: tile wrote DSM chips 100 times too tall (mean 3981 for
    39.81 m), recorded as metres. Metric units and the US survey foot (1200/3937 m, exactly) are converted."""
    heights = 30.0 + np.arange(32 * 32, dtype=np.float64).reshape(32, 32) / 100  # 30..40.23 m
    img = write_raster(tmp_path / "i.tif", random_image(32, 32))
    dsm = write_raster(tmp_path / "d.tif", (heights / metres).astype(np.float64))
    with rasterio.open(dsm, "r+") as ds:
        ds.units = [unit]
    with AlignedSource(img, dsm) as src:
        np.testing.assert_allclose(src.read_dsm(Window(0, 0, 32, 32)), heights, rtol=1e-6)  # float32
        said = [w for w in src.warnings if "(declared); read as metres" in w]
        # a unit with its datum ('m asl') is the unit; 'unknown' and 'N/A' declare none (metres)
        assert said == ([] if metres == 1.0 else [f"DSM {dsm}: heights in {unit} (declared); read as metres "
                                                  f"(x {metres:.7g})"])


@pytest.mark.parametrize("unit", ["inch", "furlong", "m/s", "km2", "m2", "sq m", "m s-1", "metres per second",
                                  "mm day-1", "(m s-1)", "m s⁻¹", "mm year-1"])  # rates were read as lengths after 0c1b3a5
def test_a_dsm_declaring_a_unit_rsmamba_does_not_convert_is_refused(tmp_path, unit) -> None:
    """A unit it did not name was read as metres, unsaid (the docstring said so). Refused, naming the unit and
    the remedy; a file declaring no unit is still metres."""
    img = write_raster(tmp_path / "i.tif", random_image(32, 32))
    dsm = write_raster(tmp_path / "d.tif", np.full((32, 32), 40.0, np.float32))
    with AlignedSource(img, dsm) as src:  # no unit declared: metres
        assert np.allclose(src.read_dsm(Window(0, 0, 32, 32)), 40.0)
    with rasterio.open(dsm, "r+") as ds:
        ds.units = [unit]
    with pytest.raises(InputError) as err:
        AlignedSource(img, dsm)
    assert str(err.value) == (f"DSM {dsm}: heights declared in {unit!r}, a unit rsmamba does not convert (it reads "
                              "metres, mm, cm, dm, km, feet and US survey feet); declare metres and the scale to "
                              f"them: gdal_edit.py -units m -scale <metres per {unit}> {dsm}")


@pytest.mark.parametrize("crop", [0, 8])
def test_a_compound_crs_dsm_off_the_image_grid_is_said_as_a_plain_one(tmp_path, crop) -> None:
    """UTM 32N + a vertical datum half a pixel off was said to differ in 'CRS definition' (the shift unsaid); a
    crop on the image's own pixels was 'resampled (bilinear)', not cropped. Said and read as in UTM 32N alone."""
    from rsmamba.raster.source import lattice_window

    img = write_raster(tmp_path / "i.tif", random_image(32, 32), res=0.5)
    heights = np.arange(32 * 32, dtype=np.float32).reshape(32, 32)
    # the image's pixels from its 8th row and column on, or half a pixel off its grid
    origin = (500000.0 + crop * 0.5, 5000000.0 - crop * 0.5) if crop else (500000.25, 5000000.25)
    said, read = {}, {}
    for crs in ("EPSG:32632", "EPSG:32632+5773"):
        dsm = write_raster(tmp_path / f"{crs[-4:]}.tif", heights[crop:, crop:], res=0.5, origin=origin)
        with rasterio.open(dsm, "r+") as ds:
            ds.crs = rasterio.crs.CRS.from_user_input(crs)
        with AlignedSource(img, dsm) as src:
            said[crs] = [w.replace(str(dsm), "DSM") for w in src.warnings]
            read[crs] = src.read_dsm(Window(0, 0, 32, 32))
        with rasterio.open(img) as i, rasterio.open(dsm) as d:
            window = lattice_window(d, i.crs, i.transform, i.width, i.height)
            assert (window is not None) == bool(crop)
    assert said["EPSG:32632+5773"] == said["EPSG:32632"]
    assert "origin" in said["EPSG:32632"][0] and "CRS" not in said["EPSG:32632"][0]
    assert ("cropped to the image grid, no resampling" in said["EPSG:32632"][0]) == bool(crop)
    np.testing.assert_array_equal(read["EPSG:32632+5773"], read["EPSG:32632"])


def test_a_vrt_whose_source_is_gone_is_refused_naming_both(tmp_path) -> None:
    """GDAL opens such a VRT and fails at the first read: 'gone.tif: No such file or directory', not saying it is
    the image's (or t2's, or the DSM's) source."""
    part = write_raster(tmp_path / "left.tif", random_image(16, 16))
    sources = "".join(f'<SimpleSource><SourceFilename relativeToVRT="1">{name}</SourceFilename>'
                      f'<SourceBand>{b}</SourceBand><DstRect xOff="{x}" yOff="0" xSize="16" ySize="16"/></SimpleSource>'
                      for name, x in (("left.tif", 0), ("gone.tif", 16)) for b in [1])
    (tmp_path / "m.vrt").write_text(
        '<VRTDataset rasterXSize="32" rasterYSize="16"><SRS>EPSG:32632</SRS>'
        '<GeoTransform>500000, 1, 0, 5000000, 0, -1</GeoTransform>'
        f'<VRTRasterBand dataType="Byte" band="1">{sources}</VRTRasterBand></VRTDataset>')
    assert part.exists()
    with pytest.raises(InputError, match=r"image .*m.vrt: its source .*gone.tif: file not found"):
        AlignedSource(tmp_path / "m.vrt")


def test_a_dsm_of_several_bands_reads_the_one_described_as_heights(tmp_path) -> None:
    """A gridded point cloud (band 1 point_count, band 2 height) was read by its point counts: 'using band 1'."""
    img = write_raster(tmp_path / "img.tif", random_image(32, 32))
    heights = np.linspace(5, 20, 32 * 32, dtype=np.float32).reshape(32, 32)
    counts = np.full((32, 32), 3, np.float32)
    path = write_raster(tmp_path / "dsm.tif", np.stack([counts, heights]))
    with rasterio.open(path, "r+") as ds:
        ds.descriptions = ("point_count", "height")
    with AlignedSource(img, dsm=path) as src:
        np.testing.assert_allclose(src.read_dsm(Window(0, 0, 32, 32)), heights)
        assert any("reading band 2 ('height', by its description)" in w for w in src.warnings)
    with rasterio.open(path, "r+") as ds:
        ds.descriptions = ("a", "b")  # nothing names heights: band 1, said so
    with AlignedSource(img, dsm=path) as src:
        np.testing.assert_allclose(src.read_dsm(Window(0, 0, 32, 32)), counts)
        assert any("reading band 1 (no other band described as heights" in w for w in src.warnings)


@pytest.mark.parametrize("role", ["image", "DSM", "t1"])
def test_a_truncated_input_is_refused_naming_its_role(tmp_path, role) -> None:
    """A truncated copy read 'dsm.tif, band 1: IReadBlock failed at X offset 1, Y offset 0: ...': which input
    (in a change run, t1 or t2), and that the file is damaged, were unsaid."""
    from rasterio.shutil import copy as rio_copy

    whole = write_raster(tmp_path / "whole.tif", random_image(256, 256, seed=1))
    if role == "DSM":
        whole = write_raster(tmp_path / "whole.tif", np.random.default_rng(1).random((256, 256), np.float32))
    cut = tmp_path / "cut.tif"
    rio_copy(whole, cut, driver="COG", COMPRESS="NONE", BLOCKSIZE=128)  # the header first: it opens
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size * 6 // 10])
    (tmp_path / "ortho").mkdir()  # the other input of the same name, in its own folder (GDAL names files alike)
    image = write_raster(tmp_path / "ortho" / "cut.tif", random_image(256, 256, seed=2))
    args = {"image": (cut,), "DSM": (image, cut), "t1": (cut,)}[role]
    kwargs = {"t2": image} if role == "t1" else {}
    with pytest.raises(InputError, match=rf"^{role} \S*cut\.tif: pixels GDAL cannot read, a truncated or damaged "
                                         r"file \(re-copy it.*IReadBlock failed"):
        with AlignedSource(*args, **kwargs) as src:  # the start-up checks read samples, or the run its windows
            src.read_image(Window(0, 0, 256, 256))
            src.read_valid(Window(0, 0, 256, 256))


def test_compressed_blocks_larger_than_gdals_cache_are_said(tmp_path) -> None:
    """A 4.7 MB GeoTIFF of 40000 px one-block bands decompressed its blocks again for every window (1.5 s a
    window; a dry run still checking inputs after two minutes), without a word (QA)."""
    one_strip = tmp_path / "one_block.tif"
    with rasterio.open(one_strip, "w", driver="GTiff", width=4800, height=4800, count=3, dtype="uint8",
                       crs="EPSG:32632", transform=rasterio.transform.from_origin(500000, 5000000, 0.5, 0.5),
                       compress="deflate", interleave="pixel", tiled=True, blockxsize=4800, blockysize=4800) as dst:
        dst.write(np.full((3, 4800, 4800), 90, np.uint8))
    with AlignedSource(one_strip) as src:
        said = [w for w in src.warnings if "compressed blocks" in w]
    assert said == [f"image {one_strip}: stored in compressed blocks of 4800 x 4800 px (66 MiB each decompressed, "
                    "more than GDAL's 64 MiB block cache): every window decompresses them again, very slowly; tile it "
                    f"first (gdal_translate -co TILED=YES -co COMPRESS=DEFLATE {one_strip} tiled.tif)"]
    img = write_raster(tmp_path / "img.tif", random_image(64, 64))
    with AlignedSource(img) as src:
        assert not [w for w in src.warnings if "compressed blocks" in w]


def test_an_aux_xml_that_relocates_a_geotiff_is_said(tmp_path) -> None:
    """GDAL reads a GeoTIFF's .aux.xml before its own tags: one of EPSG:4326, 1 degree pixels and a nodata
    value had a UTM ortho mapped in degrees, exit 0 and unsaid (QA). Read as GDAL reads it, and said; an
    .aux.xml of statistics alone (QGIS's) says nothing."""
    img = write_raster(tmp_path / "img.tif", random_image(32, 32), res=0.25)
    Path(f"{img}.aux.xml").write_text(
        '<PAMDataset><Metadata><MDI key="STATISTICS_MEAN">12</MDI></Metadata></PAMDataset>')
    with AlignedSource(img) as src:
        assert not [w for w in src.warnings if "aux.xml" in w]
    Path(f"{img}.aux.xml").write_text(
        '<PAMDataset><SRS dataAxisToSRSAxisMapping="1,2">EPSG:4326</SRS><GeoTransform>1.0, 1.0, 0.0, 1.0, 0.0, -1.0'
        '</GeoTransform><PAMRasterBand band="1"><NoDataValue>120</NoDataValue></PAMRasterBand></PAMDataset>')
    with AlignedSource(img) as src:
        said = [w for w in src.warnings if "aux.xml" in w]
        assert src.crs.to_epsg() == 4326  # as GDAL reads it
    assert said == [f"image {img}: its img.tif.aux.xml gives it another CRS, grid and nodata than the file's own tags "
                    "(CRS EPSG:4326 vs EPSG:32632, pixel 1 vs 0.25); read with the .aux.xml's, as GDAL does: remove "
                    "it if it is stale"]


def test_a_block_too_large_for_memory_is_not_called_damaged(tmp_path, monkeypatch) -> None:
    """A GeoTIFF of one 65520 px tile (12.9 GB decompressed) was said 'a truncated or damaged file (re-copy it)';
    GDAL's 'cannot allocate' is said as what it is, with the way to tile it (QA)."""
    img = write_raster(tmp_path / "img.tif", random_image(32, 32))

    def cannot(*args, **kwargs):
        raise rasterio.errors.RasterioIOError(f"{img}, band 1: IReadBlock failed at X offset 0, Y offset 0: "
                                              "gtiffdataset_read.cpp, 3339: cannot allocate 1x12878611200 bytes")

    with AlignedSource(img) as src:
        monkeypatch.setattr(rasterio.io.DatasetReader, "read", cannot)
        with pytest.raises(InputError, match=r"^image .*img.tif: a block too large for memory, which GDAL cannot "
                                             r"read \(tile it: gdal_translate -co TILED=YES"):
            src.read_image(Window(0, 0, 32, 32))


@pytest.mark.parametrize("max_pixels", [10_000_000, 1_000])
def test_statistics_within_windows_count_their_pixels_once(tmp_path, max_pixels) -> None:
    """compute_stats(within=...) counts the pixels inside the windows (overlapping ones once); a lattice of samples
    missing them all (max_pixels 1000: a few 16 px windows) samples the windows themselves."""
    arr = random_image(300, 300, bands=1)
    img = write_raster(tmp_path / "img.tif", arr)
    within = [Window(100, 120, 20, 20), Window(110, 130, 20, 20)]  # 700 px, overlapping
    inside = np.zeros((300, 300), bool)
    for w in within:
        inside[w.toslices()] = True
    with AlignedSource(img) as src:
        stats, _ = compute_stats(src, max_pixels=max_pixels, within=within)
    if max_pixels > 300 * 300:
        assert stats.pixels == [700]
        assert stats.mean == pytest.approx([arr[0][inside].mean()], rel=1e-9)
    else:
        assert 0 < stats.pixels[0] <= 800 and stats.minimum[0] >= arr[0][inside].min()
        assert stats.maximum[0] <= arr[0][inside].max()


def test_the_outside_every_feature_check_burns_batches_and_reads_no_pixel_of_an_all_valid_mosaic(tmp_path,
                                                                                                 monkeypatch) -> None:
    """tile --labels many.gpkg on an 8000 px mosaic: the check burnt 100,000 polygons in one call (as many OGR
    geometries held) and read the whole mosaic's pixels for a mask GDAL knows is all valid, +70 MB of tile's
    peak; it burns a batch at a time and reads no pixel, the same share."""
    import geopandas as gpd
    import rasterio.features
    from rasterio.io import DatasetReader
    from shapely.geometry import box

    import rsmamba.raster.source as source

    img = write_raster(tmp_path / "img.tif", random_image(64, 64))
    # 40 squares of 2 x 2 px on the diagonal band, class 1; 160 of 4096 px covered
    squares = [box(500000 + x, 5000000 - x - 2, 500000 + x + 2, 5000000 - x) for x in range(0, 80, 2) if x < 64]
    layer = tmp_path / "squares.gpkg"
    gpd.GeoDataFrame({"class": [1] * len(squares)}, geometry=squares, crs="EPSG:32632").to_file(layer)
    expected = 1 - 2 * 2 * len(squares) / 64 ** 2
    monkeypatch.setattr(source, "OUTSIDE_BATCH", 7, raising=False)
    burnt, real = [], rasterio.features.rasterize

    def counting(shapes, *args, **kwargs):
        shapes = list(shapes)
        burnt.append(len(shapes))
        return real(shapes, *args, **kwargs)

    def no_read(*args, **kwargs):
        raise AssertionError("an all-valid image's pixels read for its mask")

    monkeypatch.setattr(rasterio.features, "rasterize", counting)
    monkeypatch.setattr(DatasetReader, "dataset_mask", no_read)
    with AlignedSource(img, labels=layer) as src:
        said = [w for w in src.warnings if "outside every feature" in w]
    assert len(said) == 1 and f"about {expected:.0%} of the image" in said[0], said
    assert burnt and max(burnt) <= 7 and sum(burnt) == len(squares)
