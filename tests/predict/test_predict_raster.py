"""predict_raster end to end: equals an in-memory reference, no seams, a valid georeferenced COG."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import rasterio
import torch
from rio_cogeo.cogeo import cog_validate

from rsmamba.engine.blend import window_weights
from rsmamba.predict import predict_raster
from rsmamba.engine.model import LoadedModel
from rsmamba.engine.writer import NODATA, PROB_SCALE
from rsmamba.raster.windows import WindowGrid
from tests.helpers.predict_models import PixelArgmax, TinyConv
from tests.helpers.rasters import gdal_category_names, random_image, write_raster


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Blobs rather than white noise, so class regions are larger than a pixel."""
    rng = np.random.default_rng(seed)
    small = rng.random((3, h // 8 + 2, w // 8 + 2))
    big = np.kron(small, np.ones((8, 8)))[:, :h, :w]
    return (big * 200 + rng.random((3, h, w)) * 40).astype(np.uint8)


def zscore(img: np.ndarray) -> np.ndarray:
    x = img.astype(np.float64)
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = x.std(axis=(1, 2), keepdims=True)
    return ((x - mean) / std).astype(np.float32)


def forward(net: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return torch.softmax(net(torch.from_numpy(x)[None]), 1)[0].numpy()


def reference_blend(net, img: np.ndarray, size: int, overlap: int, mode: str) -> np.ndarray:
    """Whole-image accumulation with the same windows and weights."""
    x = zscore(img)
    _, h, w = img.shape
    grid = WindowGrid(w, h, size, overlap)
    acc = np.zeros((4, h, w), np.float64)
    wsum = np.zeros((h, w), np.float64)
    for win in grid:
        sl = (slice(win.row_off, win.row_off + win.height), slice(win.col_off, win.col_off + win.width))
        wt = window_weights(win, w, h, mode)
        acc[(slice(None), *sl)] += forward(net, x[(slice(None), *sl)]) * wt
        wsum[sl] += wt
    return acc / wsum


@pytest.mark.parametrize(("h", "w", "size", "overlap", "batch"), [(70, 93, 32, 8, 3), (50, 41, 64, 16, 2), (97, 60, 24, 10, 5)])
def test_streamed_file_equals_whole_image_reference(tmp_path, h, w, size, overlap, batch) -> None:
    img = smooth_image(h, w)
    path = write_raster(tmp_path / "img.tif", img)
    net = TinyConv(num_classes=4).eval()
    predict_raster(path, tmp_path / "cls.tif", model=LoadedModel(net, classes=_classes(4)), window=size,
                   overlap=overlap, batch_size=batch, blend="gaussian", probabilities=tmp_path / "p.tif")
    ref = reference_blend(net, img, size, overlap, "gaussian")
    with rasterio.open(tmp_path / "p.tif") as ds:
        probs = ds.read().astype(np.float64) / PROB_SCALE
    with rasterio.open(tmp_path / "cls.tif") as ds:
        classes = ds.read(1)
    assert np.abs(probs - ref).max() <= 0.5 / PROB_SCALE + 1e-4  # equal up to the uint8 quantisation
    top2 = np.sort(ref, axis=0)[-2:]
    clear = top2[1] - top2[0] > 1e-4  # ties may break either way
    np.testing.assert_array_equal(classes[clear], ref.argmax(0)[clear])


def _classes(n: int):
    from rsmamba.engine.model import default_classes

    return default_classes(n)


def test_no_visible_seams_with_blending(tmp_path) -> None:
    """Versus one forward over the whole image (the seamless truth), blending hides the window borders."""
    img = smooth_image(96, 160, seed=3)
    path = write_raster(tmp_path / "img.tif", img)
    net = TinyConv(num_classes=4, seed=1).eval()
    truth = forward(net, zscore(img))
    errors = {}
    for blend, overlap in (("hann", 24), ("none", 0)):
        out = tmp_path / f"{blend}.tif"
        predict_raster(path, tmp_path / f"c_{blend}.tif", model=LoadedModel(net, classes=_classes(4)),
                       window=48, overlap=overlap, blend=blend, probabilities=out)
        with rasterio.open(out) as ds:
            errors[blend] = np.abs(ds.read().astype(np.float64) / PROB_SCALE - truth).max()
    assert errors["hann"] < 0.03
    assert errors["none"] > 10 * errors["hann"]  # the check can fail: hard seams are visible


def test_output_is_a_georeferenced_cog_with_class_table_and_nodata(tmp_path) -> None:
    img = random_image(300, 340, bands=3, seed=1)
    img[:, :40, :50] = 0  # a nodata corner
    img[0, 100, 100] = img[1:, 120, 130] = 0  # shadow pixels, 0 in some bands: data (GDAL's rule), classified
    path = write_raster(tmp_path / "img.tif", img, nodata=0, crs="EPSG:31985", origin=(290000.0, 9120000.0), res=0.5)
    net = PixelArgmax()
    model = LoadedModel(net, classes=_classes(3), image_norm={"mean": [0.0] * 3, "std": [1.0] * 3})
    out = tmp_path / "sub" / "classes.tif"
    summary = predict_raster(path, out, model=model, window=64, overlap=16, confidence=tmp_path / "conf.tif")
    assert summary.outputs["classes"] == out
    assert "\nmodel: " in summary.describe() and summary.model.endswith(" on cpu")  # where --device auto ran it
    assert cog_validate(str(out))[0], cog_validate(str(out))
    assert cog_validate(str(tmp_path / "conf.tif"))[0]
    with rasterio.open(path) as src, rasterio.open(out) as ds:
        assert ds.crs == src.crs and ds.transform == src.transform and ds.shape == src.shape
        assert ds.overviews(1), "no overviews"
        assert ds.nodata == NODATA and ds.dtypes[0] == "uint8" and ds.compression is not None
        assert ds.colormap(1)[1] == (*_classes(3)[1].color, 255)
        assert json.loads(ds.tags()["CLASS_NAMES"]) == [c.name for c in _classes(3)]
        got = ds.read(1)
    expected = img.argmax(0).astype(np.uint8)  # a per-pixel model: any blending gives its argmax
    expected[:40, :50] = NODATA
    np.testing.assert_array_equal(got, expected)
    assert not list(tmp_path.glob(".*"))  and not list((tmp_path / "sub").glob(".*"))  # no scratch left behind
    assert gdal_category_names(out) == [[c.name for c in _classes(3)]]  # QGIS's legend: names, not 0, 1, 2
    assert gdal_category_names(tmp_path / "conf.tif") == [[]]  # values, not classes


def test_the_class_rasters_legend_names_its_classes_for_gdal_and_qgis(tmp_path) -> None:
    """GeoTIFF has no tag for category names: QGIS showed the classes as 0, 1, 2 and gdalinfo listed none. They go in
    the raster's .aux.xml, published with it, replacing a stale one (an earlier run's statistics), gaps unnamed."""
    from rsmamba.classes import ClassInfo, dense_classes
    from rsmamba.errors import InputError

    path = write_raster(tmp_path / "img.tif", random_image(40, 50, bands=3))
    classes = dense_classes((ClassInfo(0, "road", (1, 2, 3)), ClassInfo(2, "roof & <eaves>", (4, 5, 6))))
    model = LoadedModel(PixelArgmax(), classes=classes, image_norm={"mean": [0.0] * 3, "std": [1.0] * 3})
    out = tmp_path / "classes.tif"
    aux = tmp_path / "classes.tif.aux.xml"
    aux.write_text("<PAMDataset><Metadata><MDI key='STATISTICS_MEAN'>9</MDI></Metadata></PAMDataset>")
    predict_raster(path, out, model=model, window=32, overlap=8)  # a stale sidecar alone is no existing output
    assert gdal_category_names(out) == [["road", "", "roof & <eaves>"]]
    assert "STATISTICS_MEAN" not in aux.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.tif", "classes.tif.aux.xml", "img.tif"]
    with pytest.raises(InputError, match="classes.tif exists"):  # the raster's own check decides
        predict_raster(path, out, model=model, window=32, overlap=8)


def test_tta_is_exact_for_a_d4_invariant_model_and_changes_others(tmp_path) -> None:
    img = smooth_image(40, 56)
    path = write_raster(tmp_path / "img.tif", img)
    pixel = LoadedModel(PixelArgmax(), classes=_classes(3))
    runs = {}
    for name, model in (("pixel", pixel), ("conv", LoadedModel(TinyConv(num_classes=4).eval(), classes=_classes(4)))):
        for tta in (False, True):
            p = tmp_path / f"{name}{tta}.tif"
            predict_raster(path, tmp_path / f"c{name}{tta}.tif", model=model, window=32, overlap=8, tta=tta,
                           probabilities=p)
            with rasterio.open(p) as ds:
                runs[name, tta] = ds.read().astype(int)
    assert np.abs(runs["pixel", True] - runs["pixel", False]).max() <= 1
    assert np.abs(runs["conv", True] - runs["conv", False]).max() > 5


def test_dry_run_reports_and_writes_nothing(tmp_path) -> None:
    path = write_raster(tmp_path / "img.tif", random_image(64, 80))
    summary = predict_raster(path, tmp_path / "out.tif", model=LoadedModel(TinyConv(num_classes=4), classes=_classes(4)),
                             window=32, overlap=8, dry_run=True)
    assert summary.dry_run and summary.windows == len(WindowGrid(80, 64, 32, 8))
    assert summary.memory_bytes > 0 and summary.eta_seconds is not None and summary.eta_seconds > 0
    text = summary.describe()
    assert f"{summary.windows} windows of 32 px" in text and "network passes about" in text and "iB" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.tif"]
    one = predict_raster(path, tmp_path / "out.tif", model=LoadedModel(TinyConv(num_classes=4), classes=_classes(4)),
                         window=128, overlap=8, dry_run=True)
    assert one.windows == 1 and "1 window of 80 x 64 px (the whole raster)" in one.describe()
    four = predict_raster(path, tmp_path / "out.tif", model=LoadedModel(TinyConv(num_classes=4), classes=_classes(4)),
                          window=32, overlap=8, dry_run=True, probabilities=tmp_path / "p.tif")
    assert four.output_bands == 1 + 4  # the classes, and one probability band per class


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak memory from /proc/self/status: Linux")
def test_a_run_reports_its_measured_peak_memory_not_the_estimate(tmp_path) -> None:
    path = write_raster(tmp_path / "img.tif", random_image(64, 80))
    summary = predict_raster(path, tmp_path / "out.tif", model=LoadedModel(TinyConv(num_classes=4), classes=_classes(4)),
                             window=32, overlap=8)
    text = summary.describe()
    assert summary.peak_bytes > 0 and f"peak memory {summary.peak_bytes / 2**20:.0f} MiB" in text
    assert "estimate" not in text


class ImageAndHeight(torch.nn.Module):
    """forward(image, aux): class 1 where the (normalised) height is high, else class 0."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor(50.0))

    def forward(self, image, aux):
        assert image.shape[1] == 3 and aux.shape[1] == 1
        return torch.cat([torch.zeros_like(aux), aux * self.gain], dim=1)


@pytest.mark.parametrize("inputs", ["image+dsm", "image"])
def test_dsm_reaches_the_model_on_the_image_grid_and_its_holes_are_nodata(tmp_path, inputs) -> None:
    img = random_image(64, 64)
    heights = np.zeros((64, 64), np.float32)
    heights[:, 32:] = 10.0  # a "building" on the right half
    heights[:8, :8] = -9999.0  # DSM hole
    path = write_raster(tmp_path / "img.tif", img)
    dsm = write_raster(tmp_path / "dsm.tif", heights, nodata=-9999.0)
    net = ImageAndHeight()
    if inputs == "image":  # the DSM is concatenated as a 4th channel
        base = net
        net = type("Concat", (torch.nn.Module,), {"forward": lambda self, x: base(x[:, :3], x[:, 3:])})()
        net.base = base
    model = LoadedModel(net, inputs=inputs, classes=_classes(2), uses_dsm=True, dsm_norm={"mode": "zscore", "mean": 5.0, "std": 10.0})
    predict_raster(path, tmp_path / "out.tif", dsm=dsm, model=model, window=32, overlap=8)
    with rasterio.open(tmp_path / "out.tif") as ds:
        got = ds.read(1)
        assert ds.nodata == NODATA
    assert (got[:8, :8] == NODATA).all()
    assert (got[8:, :32] == 0).all() and (got[:, 32:] == 1).all()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    h=st.integers(257, 700), w=st.integers(20, 90), size=st.sampled_from([32, 48, 64]),
    overlap_frac=st.floats(0.0, 0.5), slice_rows=st.integers(1, 400), strip_width=st.sampled_from([256, 4096]),
    blend=st.sampled_from(["hann", "none", "mean", "gaussian"]), crop=st.sampled_from([0, 4]),
)
def test_row_slices_give_the_same_files_as_one_pass(tmp_path, h, w, size, overlap_frac, slice_rows, strip_width,
                                                   blend, crop) -> None:
    """Whatever the band height, the assembled outputs are byte-identical to a whole-scene run."""
    from rsmamba.predict.slices import predict_slices

    overlap = max(2 * crop, int(size * overlap_frac))
    img = smooth_image(h, w, seed=h)
    path = write_raster(tmp_path / f"img{h}_{w}.tif", img)
    model = LoadedModel(TinyConv(num_classes=4).eval(), classes=_classes(4))
    kw = {"model": model, "window": size, "overlap": overlap, "blend": blend, "crop": crop, "batch_size": 3,
          "strip_width": strip_width}
    one = [tmp_path / f"one_{n}.tif" for n in ("c", "p")]
    split = [tmp_path / f"split_{n}.tif" for n in ("c", "p")]
    predict_raster(path, one[0], probabilities=one[1], overwrite=True, **kw)
    predict_slices(path, split[0], probabilities=split[1], slice_rows=slice_rows, progress=False, overwrite=True, **kw)
    for a, b in zip(one, split):
        assert a.read_bytes() == b.read_bytes()
    assert gdal_category_names(split[0]) == gdal_category_names(one[0]) == [[c.name for c in _classes(4)]]


def test_device_code_path_gives_the_same_files(tmp_path, monkeypatch) -> None:
    """On a GPU the band is blended and rendered with torch ops (``host_view`` returns the tensor);
    on CPU with NumPy views. Forcing the torch path on CPU gives the same bytes: the GPU path is
    the same arithmetic, exercised without a GPU."""
    import rsmamba.engine.stitch as stitch
    import rsmamba.engine.writer as writer

    path = write_raster(tmp_path / "img.tif", smooth_image(150, 170, seed=3))
    kw = dict(window=48, overlap=12, batch_size=3, blend="gaussian")
    model = LoadedModel(TinyConv(num_classes=4).eval(), classes=_classes(4))
    outs = {}
    for name, view in (("numpy", stitch.host_view), ("torch", lambda t: t)):
        monkeypatch.setattr(stitch, "host_view", view)
        monkeypatch.setattr(writer, "host_view", view)
        files = [tmp_path / f"{name}_{k}.tif" for k in ("c", "p", "f")]
        predict_raster(path, files[0], model=model, probabilities=files[1], confidence=files[2], strip_width=256, **kw)
        outs[name] = [f.read_bytes() for f in files]
    assert outs["numpy"] == outs["torch"]


def test_a_four_class_probability_raster_has_no_alpha_band(tmp_path) -> None:
    """GDAL's default for 4 Byte bands is RGBA: class 4's probability would be QGIS's transparency."""
    from rasterio.enums import ColorInterp

    img = random_image(40, 48, bands=4, seed=2)
    path = write_raster(tmp_path / "img.tif", img)
    model = LoadedModel(PixelArgmax(), classes=_classes(4), image_norm={"mean": [0.0] * 4, "std": [1.0] * 4})
    predict_raster(path, tmp_path / "c.tif", model=model, window=32, overlap=8, probabilities=tmp_path / "p.tif")
    with rasterio.open(tmp_path / "p.tif") as ds:
        assert ds.count == 4 and ColorInterp.alpha not in ds.colorinterp, ds.colorinterp
    with rasterio.open(tmp_path / "c.tif") as ds:
        np.testing.assert_array_equal(ds.read(1), img.argmax(0))  # the image's 4th band is data, not a mask


class Gradient(torch.nn.Module):
    """Not mirror-symmetric: class 1 where band 0 grows southward and eastward (a sum of differences)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x[:, :1]
        d = torch.zeros_like(b)
        d[..., 1:, :] += b[..., 1:, :] - b[..., :-1, :]
        d[..., :, 1:] += 0.5 * (b[..., :, 1:] - b[..., :, :-1])
        return torch.cat([-d, d, torch.zeros_like(d)], dim=1) * 10


@pytest.mark.parametrize(("south_up", "east_west"), [(True, False), (False, True), (True, True)])
def test_a_mirrored_grid_is_predicted_north_up(tmp_path, south_up, east_west) -> None:
    """The network sees a south-up (or mirrored) raster as its scene looks north up: the same classes
    land on the same ground as for the north-up copy (one window each: the same tensor by construction)."""
    from affine import Affine

    img = smooth_image(40, 56)
    north = write_raster(tmp_path / "north.tif", img)
    stored = img[:, ::-1] if south_up else img
    stored = stored[:, :, ::-1] if east_west else stored
    transform = Affine(-1.0 if east_west else 1.0, 0, 500056.0 if east_west else 500000.0,
                       0, 1.0 if south_up else -1.0, 4999960.0 if south_up else 5000000.0)
    mirrored = write_raster(tmp_path / "mirrored.tif", np.ascontiguousarray(stored), transform=transform)
    model = LoadedModel(Gradient(), classes=_classes(3))
    got = {}
    for name, path in (("north", north), ("mirrored", mirrored)):
        predict_raster(path, tmp_path / f"{name}_c.tif", model=model, window=64, overlap=0,
                       probabilities=tmp_path / f"{name}_p.tif")
        with rasterio.open(tmp_path / f"{name}_c.tif") as c, rasterio.open(tmp_path / f"{name}_p.tif") as p:
            got[name] = c.read(1), p.read()
    classes, probs = got["mirrored"]
    classes = classes[::-1] if south_up else classes
    classes = classes[:, ::-1] if east_west else classes
    probs = probs[:, ::-1] if south_up else probs
    probs = probs[:, :, ::-1] if east_west else probs
    assert len(np.unique(got["north"][0])) == 2  # both classes occur: a mirror would swap them
    np.testing.assert_array_equal(classes, got["north"][0])
    np.testing.assert_array_equal(probs, got["north"][1])


def test_only_a_mirrored_grid_is_turned() -> None:
    from affine import Affine

    from rsmamba.raster.source import grid_mirrors

    assert grid_mirrors(Affine(0.25, 0, 0, 0, -0.25, 0)) == (False, False)
    assert grid_mirrors(Affine(0.25, 0, 0, 0, 0.25, 0)) == (True, False)
    assert grid_mirrors(Affine(-0.25, 0, 0, 0, 0.25, 0)) == (True, True)
    assert grid_mirrors(Affine.rotation(30) * Affine.scale(0.25, -0.25)) == (False, False)  # rotated: as stored


def test_probabilities_carry_gdal_scale_so_gis_reads_0_to_1(tmp_path) -> None:
    img = write_raster(tmp_path / "img.tif", smooth_image(40, 56))
    model = LoadedModel(PixelArgmax(), classes=_classes(3))
    predict_raster(img, tmp_path / "c.tif", model=model, window=32, overlap=8, probabilities=tmp_path / "p.tif",
                   confidence=tmp_path / "conf.tif")
    for name, bands in (("p.tif", 3), ("conf.tif", 1)):
        with rasterio.open(tmp_path / name) as ds:
            assert ds.scales == (1 / PROB_SCALE,) * bands and ds.offsets == (0.0,) * bands


def test_probability_and_confidence_rasters_name_the_model_of_their_class_raster(tmp_path) -> None:
    """Only the class raster carried model_id: vectorize could not tell this run's probabilities from another
    model's on the same grid (predict with and without --dsm side by side). Now each output names it."""
    from rsmamba.vectorize import vectorize_raster

    img = write_raster(tmp_path / "img.tif", smooth_image(40, 56))
    model = LoadedModel(PixelArgmax(), classes=_classes(3))
    predict_raster(img, tmp_path / "c.tif", model=model, window=32, overlap=8, probabilities=tmp_path / "p.tif",
                   confidence=tmp_path / "conf.tif")
    with rasterio.open(tmp_path / "c.tif") as ds:
        made_by = ds.tags()["model_id"]
    for name in ("p.tif", "conf.tif"):
        with rasterio.open(tmp_path / name) as ds:
            assert ds.tags()["model_id"] == made_by, name
        vectorize_raster(tmp_path / "c.tif", tmp_path / f"{name}.gpkg", probabilities=tmp_path / name)
