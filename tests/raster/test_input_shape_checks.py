"""Inputs whose pixels mislead a model without any other check noticing: stretched pixels, a DSM far coarser
than the image, a lossily compressed image whose no-data area is marked by a value."""

from __future__ import annotations

import numpy as np
import rasterio
from affine import Affine

from rsmamba.predict import predict_raster
from rsmamba.raster.source import AlignedSource
from rsmamba.raster.validate import check_collar, check_dsm_resolution, check_lossy_nodata, check_pixel_shape
from rsmamba.synth import write_scene
from tests.helpers.rasters import random_image, write_raster

X0, Y0 = 500000.0, 5000000.0


def test_stretched_pixels_are_said(tmp_path) -> None:
    """A 0.25 x 0.75 m grid (or square degrees at 70 N) went unsaid: the GSD check compares the mean side."""
    stretched = write_raster(tmp_path / "s.tif", random_image(64, 64), transform=Affine(0.25, 0, X0, 0, -0.75, Y0))
    square = write_raster(tmp_path / "q.tif", random_image(64, 64), res=0.25)
    with AlignedSource(stretched) as src:
        said = check_pixel_shape(src, "image s.tif")
    assert len(said) == 1 and "image s.tif: its pixels are 0.25 x 0.75 m on the ground (3.0:1)" in said[0]
    degrees = write_raster(tmp_path / "d.tif", random_image(64, 64), crs="EPSG:4326",
                           transform=Affine(1e-5, 0, 21.0, 0, -1e-5, 70.0))  # 0.38 x 1.1 m at 70 N
    with AlignedSource(degrees) as src:
        assert "(2.9:1)" in check_pixel_shape(src, "image d.tif")[0]
    with AlignedSource(square) as src:
        assert check_pixel_shape(src, "image q.tif") == []


def test_a_dsm_far_coarser_than_the_image_is_said_in_the_run(tmp_path) -> None:
    """An 8 m DSM under a 0.25 m ortho mapped buildings at IoU 0.57 (0.96 without --dsm) with only the 'grid
    differs ... resampled' note; a 1 m one (0.98, as on the image's grid) is no matter."""
    scene = write_scene(tmp_path / "scene", size=256, seed=5, gsd=0.25)
    with rasterio.open(scene["dsm_t1"]) as ds:
        heights, profile = ds.read(1), ds.profile
    for f in (4, 32):
        n = 256 // f
        coarse = heights.reshape(n, f, n, f).mean((1, 3)).astype(np.float32)
        with rasterio.open(tmp_path / f"dsm_{f}.tif", "w", **{**profile, "width": n, "height": n, "tiled": False,
                                                              "blockxsize": None, "blockysize": None,
                                                              "transform": Affine(0.25 * f, 0, profile["transform"].c,
                                                                                  0, -0.25 * f, profile["transform"].f)}) as dst:
            dst.write(coarse[None])
        with AlignedSource(scene["ortho_t1"], dsm=tmp_path / f"dsm_{f}.tif") as src:
            said = check_dsm_resolution(src, tmp_path / f"dsm_{f}.tif")
        assert said == [] if f == 4 else "pixels of 8 m, 32 x the image's 0.25 m" in said[0]
    summary = predict_raster(scene["ortho_t1"], tmp_path / "c.tif", dsm=tmp_path / "dsm_32.tif", progress=False)
    assert any("dsm_32.tif: pixels of 8 m" in w for w in summary.warnings)


def test_a_jpeg_image_with_a_nodata_collar_is_said(tmp_path) -> None:
    """JPEG left values near 0 beside the declared nodata=0 collar: a 4 px fringe mapped as land cover."""
    image = random_image(64, 64)
    image[:, :, :20] = 0
    profile = {"driver": "GTiff", "width": 64, "height": 64, "count": 3, "dtype": "uint8", "crs": "EPSG:32632",
               "transform": Affine(0.25, 0, X0, 0, -0.25, Y0), "nodata": 0, "tiled": True, "blockxsize": 32,
               "blockysize": 32}
    for name, options, said in (("jpeg.tif", {"compress": "jpeg", "photometric": "ycbcr"}, 1),
                                ("deflate.tif", {"compress": "deflate"}, 0)):
        with rasterio.open(tmp_path / name, "w", **profile, **options) as dst:
            dst.write(image)
        with AlignedSource(tmp_path / name) as src:
            got = check_lossy_nodata(src, tmp_path / name, f"image {name}")
        assert len(got) == said
        assert not said or "image jpeg.tif: JPEG-compressed with no-data value 0: the compression leaves" in got[0]
    whole = random_image(64, 64)  # nothing to smear: no collar
    with rasterio.open(tmp_path / "full.tif", "w", **profile, compress="jpeg", photometric="ycbcr") as dst:
        dst.write(whole)
    with AlignedSource(tmp_path / "full.tif") as src:
        assert check_lossy_nodata(src, tmp_path / "full.tif", "image full.tif") == []


def test_a_thin_collar_is_said_by_where_it_lies_not_by_the_edge_weighted_sample(tmp_path) -> None:
    """An 8 px black collar round a 1024 px ortho (3.1 % of it) was said as '6.2% of its sampled pixels are 0', a
    60 px one round an 8000 px mosaic (3 %) as 41.4 %: the sample reaches both edges and over-weighs them. It is
    said by the share of the edge it holds."""
    image = random_image(1024, 1024)
    image[:, :8], image[:, -8:], image[:, :, :8], image[:, :, -8:] = 0, 0, 0, 0
    path = write_raster(tmp_path / "collar.tif", image)
    with AlignedSource(path) as src:
        said = check_collar(src, "image collar.tif", path)
    assert len(said) == 1 and "sampled pixels" not in said[0]
    assert said[0].startswith("image collar.tif: pixels that are 0 in every band (100% of its edge pixels), with no "
                              "nodata value"), said[0]
