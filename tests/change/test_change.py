"""rsmamba change end to end on synthetic epochs, and its bad-input refusals."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from pathlib import Path
import rasterio
import torch
from rasterio.enums import ColorInterp
import torch.nn as nn
from scipy.ndimage import shift as nd_shift

from rsmamba.change import detect_change
from rsmamba.cli import main
from rsmamba.engine.model import DEMO_CHANGE_MODEL
from rsmamba.errors import InputError
from rsmamba.synth import write_scene
from tests.helpers.rasters import gdal_category_names, random_image, write_raster


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    out = tmp_path_factory.mktemp("scene")
    return write_scene(out, size=192, seed=11, gsd=0.5)


class OracleDiff(nn.Module):
    """Change where the epochs differ strongly; semantic heads say 'building' where epoch is bright."""

    def forward(self, t1, t2):
        d = (t1 - t2).abs().mean(1, keepdim=True)
        change = torch.cat([1.5 - d, d - 1.5], 1) * 10
        sem = lambda t: torch.cat([torch.zeros_like(t[:, :1])] + [t.mean(1, keepdim=True) * (i == 1) for i in range(1, 6)], 1)
        return {"change": change, "sem1": sem(t1), "sem2": sem(t2)}


def test_semantic_change_raster_follows_the_vectorize_convention(scene, tmp_path) -> None:
    out = tmp_path / "change.tif"
    summary = detect_change(scene["ortho_t1"], scene["ortho_t2"], out, model="mambafcs_tiny", semantic=True,
                            window=96, overlap=32, probabilities=tmp_path / "p.tif")
    with rasterio.open(out) as ds, rasterio.open(scene["ortho_t1"]) as ref:
        assert ds.count == 3 and ds.descriptions == ("change", "from_class", "to_class")
        assert ds.crs == ref.crs and ds.transform == ref.transform and ds.shape == ref.shape
        arr = ds.read()
        assert set(np.unique(arr[0])) <= {0, 1, 255}
        sem = arr[1:][arr[1:] != 255]
        assert sem.size and sem.max() < 7  # the 7 SECOND-style classes of mambafcs_tiny
        assert ds.overviews(1)
        names = [c["name"] for c in json.loads(ds.tags()["CLASSES"])]
    assert gdal_category_names(out) == [["no_change", "change"], names, names]  # QGIS's legend of each band
    assert summary.shift is not None and summary.shift.magnitude < 1.0
    from rsmamba.vectorize import vectorize_raster

    with rasterio.open(out) as ds, rasterio.open(tmp_path / "p.tif") as prob:  # vectorize pairs them by it
        assert prob.tags()["model_id"] == ds.tags()["model_id"]
    vec = vectorize_raster(out, tmp_path / "change.gpkg", probabilities=tmp_path / "p.tif")
    import geopandas as gpd

    gdf = gpd.read_file(tmp_path / "change.gpkg")
    assert vec.polygons == len(gdf)
    if len(gdf):
        assert {"from_class", "to_class"} <= set(gdf.columns)


def test_change_module_finds_changed_buildings(scene, tmp_path) -> None:
    from rsmamba.engine.model import LoadedModel

    out = tmp_path / "c.tif"
    detect_change(scene["ortho_t1"], scene["ortho_t2"], out, model=LoadedModel(OracleDiff(), inputs="t1+t2"),
                  window=96, overlap=32)
    with rasterio.open(out) as ds:
        assert ds.count == 1 and ds.descriptions == ("change",)
        assert ds.read(1).dtype == np.uint8


def test_bad_inputs_one_line_errors(scene, tmp_path, capsys) -> None:
    t1 = str(scene["ortho_t1"])
    out = tmp_path / "c.tif"
    far = write_raster(tmp_path / "far.tif", random_image(64, 64), origin=(900000.0, 100000.0))
    four = write_raster(tmp_path / "four.tif", random_image(64, 64, bands=4), origin=(500000.0, 5000000.0), res=0.5)
    with rasterio.open(four, "r+") as ds:  # no colours declared: its bands cannot be paired with t1's
        ds.colorinterp = [ColorInterp.gray, ColorInterp.undefined, ColorInterp.undefined, ColorInterp.undefined]
    with rasterio.open(t1) as ds:
        arr = ds.read()
        profile = ds.profile
    moved = np.stack([nd_shift(b.astype(float), (0, 7), order=1, mode="nearest") for b in arr]).astype(np.uint8)
    with rasterio.open(tmp_path / "moved.tif", "w", **profile) as dst:
        dst.write(moved)
    import shutil

    same = str(shutil.copy(t1, tmp_path / "same_again.tif"))  # another file of the same pixels
    cases = [
        ([t1, t1], "are the same file: change detection compares two dates"),  # ran: 0 % change (QA)
        ([t1, str(far)], "does not overlap"),
        ([t1, str(four)], "4 image bands, but t1"),
        ([t1, str(tmp_path / "moved.tif")], "above the 3 px limit"),
        ([t1, str(tmp_path / "missing.tif")], "not found"),
        ([t1, same, "--change-threshold", "1.5"], "--change-threshold 1.5: must be between 0 and 1"),
        ([t1, same, "--max-shift", "nan"], "--max-shift must be a number of pixels >= 0, got nan"),  # the guard was off
        ([t1, same, "--max-shift", "-1"], "--max-shift must be a number of pixels >= 0"),
        ([t1, same, "--bands", "4"], "t1 " + t1 + ": bands [4] out of range (it has 3 bands)"),
        ([t1, same, "--shard", "1/2"], "--shard: for many pairs"),  # --workers warns and runs, as predict's
    ]
    for args, needle in cases:
        code = main(["change", *args, "-o", str(out), "--model", "mambafcs_tiny", "--window", "96"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code != 0 and err[-1].startswith("rsmamba: error:") and needle in err[-1], (needle, err)
        assert not any("WARNING: --workers" in line for line in err)
        assert "but t1" not in err[-1] or "4 image bands" in needle  # one reason, not a contradiction
        assert not out.exists() and not list(tmp_path.glob(".c.tif*"))
    code = main(["change", t1, str(tmp_path / "moved.tif"), "-o", str(out), "--model", "mambafcs_tiny",
                 "--window", "96", "--force"])
    assert code == 0 and out.exists()


def test_change_mask_at_one_half_is_the_argmax_and_lower_thresholds_only_add() -> None:
    from rsmamba.change.api import change_mask
    from rsmamba.engine.writer import argmax_classes

    acc = torch.rand(2, 64, 64, generator=torch.Generator().manual_seed(0)) * 3
    acc[1, :8] = acc[0, :8]  # ties: no change, as the argmax says
    assert torch.equal(change_mask(acc, 0.5), argmax_classes(acc))  # x 0.5 is exact in binary floating point
    p = acc[1] / acc.sum(0)
    for t in (0.2, 0.35, 0.8):
        far = (p - t).abs() > 1e-4  # away from the boundary the mask is p(change) > t
        assert torch.equal(change_mask(acc, t).bool()[far], (p > t)[far])
    assert (change_mask(acc, 0.3) >= change_mask(acc, 0.5)).all()


class ConstantChange(nn.Module):
    """p(change) = 0.3 everywhere (binary change model)."""

    def forward(self, t1, t2):
        logit = torch.full_like(t1[:, :1], float(np.log(0.3 / 0.7)))
        return {"change": torch.cat([torch.zeros_like(logit), logit], 1)}


def test_change_threshold_decides_and_is_reported(scene, tmp_path) -> None:
    from rsmamba.engine.model import LoadedModel

    changed = {}
    for t in (0.25, 0.5, None):
        model = LoadedModel(ConstantChange(), inputs="t1+t2", extra={"task": "change"})
        summary = detect_change(scene["ortho_t1"], scene["ortho_t2"], tmp_path / f"c{t}.tif", model=model, window=96,
                                overlap=32, change_threshold=t)
        assert summary.threshold == (t or 0.5)
        assert summary.model.endswith(" on cpu") and "\nmodel: " in summary.describe()  # where --device auto ran it
        assert f"p(change) > {t or 0.5:g} ({'--change-threshold' if t else 'default'})" in summary.describe()
        if sys.platform.startswith("linux"):  # measured from /proc (predict's summary said it, change's did not)
            assert summary.peak_bytes > 0 and f", peak memory {summary.peak_bytes / 2**20:.0f} MiB" in summary.describe()
        with rasterio.open(tmp_path / f"c{t}.tif") as ds:
            band = ds.read(1)
            assert ds.tags()["CHANGE_THRESHOLD"] == f"{t or 0.5:g}"
        changed[t] = set(np.unique(band[band != 255]).tolist())
    assert changed == {0.25: {1}, 0.5: {0}, None: {0}}


@pytest.mark.skipif(not DEMO_CHANGE_MODEL.exists(), reason="demo change model not built")
def test_a_checkpoint_carries_its_calibrated_threshold(scene, tmp_path) -> None:
    from rsmamba.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(DEMO_CHANGE_MODEL)
    ckpt["calibration"] = {"change_threshold": 0.05}
    save_checkpoint(tmp_path / "calibrated.pt", ckpt)
    summary = detect_change(scene["ortho_t1"], scene["ortho_t2"], tmp_path / "c.tif", model=tmp_path / "calibrated.pt",
                            window=96, overlap=32, probabilities=tmp_path / "p.tif")
    assert (summary.threshold, summary.threshold_source) == (0.05, "calibrated with the model")
    with rasterio.open(tmp_path / "c.tif") as c, rasterio.open(tmp_path / "p.tif") as p:
        change, prob = c.read(1), p.read(1).astype(float)  # prob: round(p x 254)
    far = (change != 255) & (np.abs(prob - 0.05 * 254) > 1)
    assert far.sum() > 1000 and np.array_equal(change[far] == 1, prob[far] > 0.05 * 254)
    override = detect_change(scene["ortho_t1"], scene["ortho_t2"], tmp_path / "c2.tif",
                             model=tmp_path / "calibrated.pt", window=96, overlap=32, change_threshold=0.5)
    assert (override.threshold, override.threshold_source) == (0.5, "--change-threshold")
    ckpt["calibration"] = {"change_threshold": 1.5}
    save_checkpoint(tmp_path / "bad.pt", ckpt)
    with pytest.raises(Exception, match="not in \\(0, 1\\)"):
        detect_change(scene["ortho_t1"], scene["ortho_t2"], tmp_path / "c3.tif", model=tmp_path / "bad.pt",
                      window=96, overlap=32)
    assert not (tmp_path / "c3.tif").exists()


def test_an_undeclared_fill_in_one_epoch_is_refused_under_per_epoch_normalisation(scene, tmp_path) -> None:
    """-9999 in 8 % of t2, not declared: its own statistics would squash the real pixels together."""
    from rsmamba.engine.model import LoadedModel
    from rsmamba.errors import InputError

    with rasterio.open(scene["ortho_t2"]) as ds:
        t2, profile = ds.read().astype(np.float32), ds.profile
    t2[:, :, :16] = -9999.0
    profile.update(dtype="float32", nodata=None)
    with rasterio.open(tmp_path / "t2.tif", "w", **profile) as dst:
        dst.write(t2)
    model = LoadedModel(OracleDiff(), inputs="t1+t2")
    with pytest.raises(InputError, match=r"band 1 holds -9999 in .* a nodata value it does not declare"):
        detect_change(scene["ortho_t1"], tmp_path / "t2.tif", tmp_path / "c.tif", model=model, window=96)
    with rasterio.open(tmp_path / "t2.tif", "r+") as ds:
        ds.nodata = -9999.0
    detect_change(scene["ortho_t1"], tmp_path / "t2.tif", tmp_path / "c.tif", model=model, window=96)
    with rasterio.open(tmp_path / "c.tif") as ds:
        assert (ds.read(1)[:, :16] == 255).all()


def test_the_changed_share_in_the_summary_counts_every_pixel(scene, tmp_path) -> None:
    """Small changes (4 x 4 px spots) vanish from an 8x overview: the share is counted at full resolution."""
    from rsmamba.engine.model import LoadedModel

    with rasterio.open(scene["ortho_t1"]) as ds:
        t1, profile = ds.read(), ds.profile
    t2 = t1.copy()
    t2[:, 4::24, :][:, :, 4::24] = 0
    for dy in range(4):
        for dx in range(4):
            t2[:, 4 + dy::24, 4 + dx::24] = 255 - t1[:, 4 + dy::24, 4 + dx::24]
    with rasterio.open(tmp_path / "spots.tif", "w", **profile) as dst:
        dst.write(t2)
    summary = detect_change(scene["ortho_t1"], tmp_path / "spots.tif", tmp_path / "c.tif",
                            model=LoadedModel(OracleDiff(), inputs="t1+t2"), window=96, overlap=32)
    with rasterio.open(tmp_path / "c.tif") as ds:
        band = ds.read(1)
    valid = band != 255
    assert summary.changed_fraction == (band[valid] == 1).sum() / valid.sum()
    assert summary.changed_fraction > 0


def test_an_rgba_second_epoch_on_another_grid_keeps_its_alpha_as_the_footprint(scene, tmp_path) -> None:
    from rsmamba.engine.model import LoadedModel

    with rasterio.open(scene["ortho_t2"]) as ds:
        t2, profile = ds.read(), ds.profile
        transform = ds.transform
    crop = t2[:, 20:120, 30:130]
    alpha = np.full((1, 100, 100), 255, np.uint8)
    alpha[:, :, :25] = 0
    profile.update(count=4, width=100, height=100, photometric="RGB", alpha="YES", nodata=None,
                   transform=transform * rasterio.Affine.translation(30, 20))
    with rasterio.open(tmp_path / "t2.tif", "w", **profile) as dst:
        dst.write(np.concatenate([crop, alpha]))
    detect_change(scene["ortho_t1"], tmp_path / "t2.tif", tmp_path / "c.tif",
                  model=LoadedModel(OracleDiff(), inputs="t1+t2"), window=96, overlap=32)
    with rasterio.open(tmp_path / "c.tif") as ds:
        valid = ds.read(1) != 255
    assert valid.sum() == 100 * 75 and valid[20:120, 55:130].all()  # t2's footprint less its alpha-0 columns


def test_saturated_bright_pixels_of_a_byte_image_are_imagery_not_a_fill(scene, tmp_path) -> None:
    """A uint8 t2 with clouds at 255 over a narrow-valued scene: saturation, never an undeclared fill."""
    from rsmamba.engine.model import LoadedModel

    with rasterio.open(scene["ortho_t2"]) as ds:
        t2, profile = ds.read(), ds.profile
    t2 = (t2 // 16 + 100).astype(np.uint8)  # a calm scene of values 100..115
    t2[:, :20, :20] = 255  # a saturated cloud
    with rasterio.open(tmp_path / "t2.tif", "w", **profile) as dst:
        dst.write(t2)
    detect_change(scene["ortho_t1"], tmp_path / "t2.tif", tmp_path / "c.tif",
                  model=LoadedModel(OracleDiff(), inputs="t1+t2"), window=96)
    assert (tmp_path / "c.tif").exists()


def _alpha_first(rgb: Path, out: Path, masked_columns: int = 0) -> Path:
    """``rgb`` stored after an alpha band (ARGB), its first ``masked_columns`` columns masked out."""
    from rasterio.enums import ColorInterp

    with rasterio.open(rgb) as ds:
        data, profile = ds.read(), ds.profile
    alpha = np.full((1, *data.shape[1:]), 255, np.uint8)
    alpha[:, :, :masked_columns] = 0
    with rasterio.open(out, "w", **{**profile, "count": 4}) as dst:
        dst.write(np.concatenate([alpha, data]))
        dst.colorinterp = (ColorInterp.alpha, ColorInterp.red, ColorInterp.green, ColorInterp.blue)
    return out


def test_an_alpha_band_stored_first_in_t2_is_its_mask_not_red(scene, tmp_path) -> None:
    from rsmamba.engine.model import LoadedModel

    _alpha_first(scene["ortho_t2"], tmp_path / "argb.tif", masked_columns=16)
    model = LoadedModel(OracleDiff(), inputs="t1+t2")
    detect_change(scene["ortho_t1"], scene["ortho_t2"], tmp_path / "a.tif", model=model, window=96, overlap=0)
    detect_change(scene["ortho_t1"], tmp_path / "argb.tif", tmp_path / "b.tif", model=model, window=96, overlap=0)
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        plain, masked = a.read(1), b.read(1)
    assert (masked[:, :16] == 255).all()
    # the same RGB read (t2's own statistics leave out the masked strip, so not bit for bit); read as red, the
    # alpha band made half the scene change
    assert (masked[:, 16:] == plain[:, 16:]).mean() > 0.99


def test_an_alpha_band_stored_first_in_t1_pairs_with_an_rgb_t2(scene, tmp_path) -> None:
    """t1's bands 2, 3, 4 (after its alpha) were checked against t2's band count: 'bands [4] out of range' for a
    t2 holding red, green and blue; the other way round (RGB t1, ARGB t2) ran."""
    from rsmamba.engine.model import LoadedModel

    _alpha_first(scene["ortho_t1"], tmp_path / "argb.tif")
    model = LoadedModel(OracleDiff(), inputs="t1+t2")
    detect_change(scene["ortho_t1"], scene["ortho_t2"], tmp_path / "a.tif", model=model, window=96, overlap=0)
    detect_change(tmp_path / "argb.tif", scene["ortho_t2"], tmp_path / "b.tif", model=model, window=96, overlap=0)
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))


def test_checkpoint_norm_checks_t2_by_its_own_type_and_mask(tmp_path) -> None:
    """t2's value range was checked with t1's dtype and t1's mask: a 0-1 float t2 ran (F1 0.25), a t2
    with declared nodata over part of t1 was refused (its -9999 counted as values)."""
    import numpy as np
    import rasterio

    from rsmamba.change import detect_change
    from rsmamba.errors import InputError

    scene = Path(__file__).resolve().parents[2] / "examples" / "scene"
    with rasterio.open(scene / "ortho_t2.tif") as src:
        t2, profile = src.read(window=((0, 256), (0, 256))), src.profile
        profile.update(width=256, height=256, transform=src.window_transform(((0, 256), (0, 256))))
    with rasterio.open(scene / "ortho.tif") as src:
        t1 = src.read(window=((0, 256), (0, 256)))
    for key in ("blockxsize", "blockysize", "tiled", "compress", "interleave", "photometric"):
        profile.pop(key, None)
    with rasterio.open(tmp_path / "t1.tif", "w", **profile) as dst:
        dst.write(t1)
    unit = {**profile, "dtype": "float32", "nodata": None}
    with rasterio.open(tmp_path / "t2_unit.tif", "w", **unit) as dst:
        dst.write(t2.astype("float32") / 255)
    holed = t2.astype("float32")
    holed[:, :, :80] = -9999
    with rasterio.open(tmp_path / "t2_nd.tif", "w", **{**unit, "nodata": -9999}) as dst:
        dst.write(holed)
    with pytest.raises(InputError, match=r"t2 .*t2_unit.tif \(float32\): values on another scale"):
        detect_change(tmp_path / "t1.tif", tmp_path / "t2_unit.tif", tmp_path / "a.tif", epoch_norm="checkpoint")
    detect_change(tmp_path / "t1.tif", tmp_path / "t2_nd.tif", tmp_path / "b.tif", epoch_norm="checkpoint")
    with rasterio.open(tmp_path / "b.tif") as out:
        assert (out.read(1)[:, :80] == 255).all() and (out.read(1)[:, 80:] != 255).all()


def test_epochs_in_a_geographic_and_a_projected_crs_take_allow_geographic_mix(scene, tmp_path, capsys) -> None:
    """change told the user to pass --allow-geographic-mix, an option its CLI did not have."""
    from rasterio.warp import calculate_default_transform, reproject

    with rasterio.open(scene["ortho_t1"]) as src:
        transform, w, h = calculate_default_transform(src.crs, "EPSG:4326", src.width, src.height, *src.bounds)
        profile = {**src.profile, "crs": "EPSG:4326", "transform": transform, "width": w, "height": h}
        with rasterio.open(tmp_path / "t1_4326.tif", "w", **profile) as dst:
            for b in range(1, src.count + 1):
                reproject(rasterio.band(src, b), rasterio.band(dst, b))
    args = ["change", str(tmp_path / "t1_4326.tif"), str(scene["ortho_t2"]), "-o", str(tmp_path / "c.tif"),
            "--model", "mambafcs_tiny", "--window", "96", "--overlap", "32"]
    assert main(args) == 2
    assert "--allow-geographic-mix" in capsys.readouterr().err
    assert main([*args, "--allow-geographic-mix"]) == 0
    with rasterio.open(tmp_path / "c.tif") as out:
        assert out.crs.to_epsg() == 4326 and (out.width, out.height) == (w, h)


def test_a_changed_pixel_never_names_one_class_for_both_dates() -> None:
    """Each date's argmax alone (the papers' inference) named one class twice on 2 % of changed pixels, and 58-74 %
    of a synthetic pair's change polygons read 'low_vegetation -> low_vegetation'."""
    from rsmamba.change.api import distinct_classes
    from rsmamba.engine.writer import argmax_classes

    g = torch.Generator().manual_seed(3)
    p1, p2 = torch.rand(4, 20, 30, generator=g), torch.rand(4, 20, 30, generator=g)
    p2[:, :10] = p1[:, :10]  # the same answer on both dates: one class twice wherever it changed
    changed = (torch.rand(20, 30, generator=g) > 0.3).to(torch.uint8)
    first, second = argmax_classes(p1), argmax_classes(p2)
    new_first, new_second = distinct_classes(p1, p2, changed, first, second)
    assert ((first == second) & (changed > 0)).sum() > 50
    assert not ((new_first == new_second) & (changed > 0)).any()
    unchanged = changed == 0
    assert torch.equal(new_first[unchanged], first[unchanged]) and torch.equal(new_second[unchanged], second[unchanged])
    for r, c in zip(*((first == second) & (changed > 0)).nonzero(as_tuple=True)):
        best = max(float(p1[i, r, c] * p2[j, r, c]) for i in range(4) for j in range(4) if i != j)
        i, j = int(new_first[r, c]), int(new_second[r, c])
        assert float(p1[i, r, c] * p2[j, r, c]) == best  # the likeliest pair of two classes (a tie: either)
    keep = (first != second) | (changed == 0)
    assert torch.equal(new_first[keep], first[keep]) and torch.equal(new_second[keep], second[keep])


def test_a_binary_change_raster_names_change_not_land_cover(scene, tmp_path) -> None:
    """Tagged with the land-cover table, a binary change raster took 'vectorize --classes tree' and let
    'evaluate --class-field' score polygons named 'building' as change and 'impervious' as no change."""
    from rsmamba.classes import CHANGE_CLASSES
    from rsmamba.engine.model import LoadedModel
    from rsmamba.vectorize.attributes import class_names

    out = tmp_path / "c.tif"
    detect_change(scene["ortho_t1"], scene["ortho_t2"], out, model=LoadedModel(OracleDiff(), inputs="t1+t2"),
                  window=96, overlap=32)
    with rasterio.open(out) as ds:
        assert class_names(ds) == {c.id: c.name for c in CHANGE_CLASSES}
        assert ds.colormap(1)[1] == (255, 0, 0, 255) and ds.colormap(1)[0] == (0, 0, 0, 255)
    assert gdal_category_names(out) == [["no_change", "change"]]


def test_an_unchanged_pixel_holds_one_class_at_both_dates() -> None:
    """Each date's decoder alone: from_class != to_class on 12-33 % of the unchanged pixels, even of an image
    against itself. Unchanged: the argmax of the two dates' summed probabilities, in both bands."""
    from rsmamba.change.api import change_layer
    from rsmamba.classes import ISPRS_CLASSES
    from rsmamba.engine.stitch import FinishedRows
    from rsmamba.engine.writer import argmax_classes

    g = torch.Generator().manual_seed(5)
    k, h, w = len(ISPRS_CLASSES), 12, 16
    pc = torch.rand(h, w, generator=g)
    acc = torch.cat([torch.stack([1 - pc, pc]), torch.rand(2 * k, h, w, generator=g)])
    rows = FinishedRows(0, 0, acc, torch.ones(h, w), torch.ones(h, w, dtype=torch.bool))
    bands = change_layer(Path("c.tif"), ISPRS_CLASSES, True, "m").render(rows)
    changed, first, second = bands[0], bands[1], bands[2]
    unchanged = changed == 0
    assert unchanged.any() and (~unchanged).any()
    p1, p2 = acc[2:2 + k], acc[2 + k:]
    assert (argmax_classes(p1) != argmax_classes(p2))[unchanged].any()  # the dates alone disagree there
    both = argmax_classes(p1 + p2)
    assert torch.equal(first[unchanged], both[unchanged]) and torch.equal(second[unchanged], both[unchanged])
    assert not (first == second)[~unchanged].any()  # changed: two classes, as before


def test_class_pairs_per_date_keeps_each_dates_own_class_as_the_papers_and_train_test(tmp_path) -> None:
    """change + evaluate could not reproduce train --test's SeK (QA): the consistent pairs re-pair 333 of 1,920
    changed SECOND pixels. --class-pairs per-date writes each date's argmax, the papers' inference; it is a
    setting of the output (tag, resume record) and needs --semantic."""
    from rsmamba.change.api import change_layer
    from rsmamba.classes import ISPRS_CLASSES
    from rsmamba.engine.stitch import FinishedRows
    from rsmamba.engine.writer import argmax_classes

    g = torch.Generator().manual_seed(5)
    k, h, w = len(ISPRS_CLASSES), 12, 16
    pc = torch.rand(h, w, generator=g)
    acc = torch.cat([torch.stack([1 - pc, pc]), torch.rand(2 * k, h, w, generator=g)])
    valid = torch.ones(h, w, dtype=torch.bool)
    valid[0, :3] = False
    rows = FinishedRows(0, 0, acc, torch.ones(h, w), valid)
    layer = change_layer(Path("c.tif"), ISPRS_CLASSES, True, "m", class_pairs="per-date")
    bands = layer.render(rows)
    p1, p2 = acc[2:2 + k], acc[2 + k:]
    consistent = change_layer(Path("c.tif"), ISPRS_CLASSES, True, "m").render(rows)
    assert torch.equal(bands[0], consistent[0])  # the change band is the same
    assert torch.equal(bands[1][valid], argmax_classes(p1)[valid].to(bands.dtype))
    assert torch.equal(bands[2][valid], argmax_classes(p2)[valid].to(bands.dtype))
    assert (bands[1] == bands[2])[(bands[0] == 1) & valid].any()  # what consistent pairs re-pair
    assert (bands[:, ~valid] == consistent[:, ~valid]).all()  # nodata alike
    assert "each date's own class" in layer.tags["CHANGE_CONVENTION"]

    t1 = write_raster(tmp_path / "t1.tif", random_image(64, 64, seed=1))
    t2 = write_raster(tmp_path / "t2.tif", random_image(64, 64, seed=2))
    with pytest.raises(InputError, match="--class-pairs per-date: sets the from/to classes of --semantic"):
        detect_change(t1, t2, tmp_path / "c.tif", model=DEMO_CHANGE_MODEL, class_pairs="per-date")
    with pytest.raises(InputError, match="--class-pairs 'papers': choose consistent or per-date"):
        detect_change(t1, t2, tmp_path / "c.tif", model=DEMO_CHANGE_MODEL, semantic=True, class_pairs="papers")


def test_a_dry_run_prints_memory_output_size_and_passes_as_predicts(tmp_path, capsys) -> None:
    """change --dry-run's help promised 'windows, memory, output size and ETA': it printed no memory estimate
    and no output size, and no summary of change said how many TTA passes ran."""
    t1 = write_raster(tmp_path / "t1.tif", random_image(64, 64, seed=1))
    t2 = write_raster(tmp_path / "t2.tif", random_image(64, 64, seed=2))
    argv = ["change", str(t1), str(t2), "-o", str(tmp_path / "c.tif"), "--window", "64", "--dry-run",
            "--semantic", "--probabilities", str(tmp_path / "p.tif"), "--tta"]
    assert main(["-q", *argv]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "memory estimate " in out[0] and out[0].endswith(", test-time augmentation: 8 passes per window")
    assert int(out[0].split("memory estimate ")[1].split(" MiB")[0]) > 0
    assert out[-1].startswith("output size 16 KiB uncompressed; network passes about ")  # 64 x 64 x (3 + 1) bytes
    assert not (tmp_path / "c.tif").exists() and not (tmp_path / "p.tif").exists()
    # an output the run would refuse (it exists, no --overwrite): the dry run said it would go ahead
    for command, out_args in (("change", ["c.tif"]), ("predict", ["c.tif"])):
        (tmp_path / "c.tif").write_bytes(b"x")
        inputs = [str(t1), str(t2)] if command == "change" else [str(t1)]
        assert main(["-q", command, *inputs, "-o", str(tmp_path / out_args[0]), "--dry-run"]) == 2
        assert "exists (use --overwrite" in capsys.readouterr().err
        assert main(["-q", command, *inputs, "-o", str(tmp_path / out_args[0]), "--dry-run", "--overwrite"]) == 0
        assert (tmp_path / "c.tif").read_bytes() == b"x"


class SevenClasses(nn.Module):
    """A semantic change model whose heads give 7 classes where its class table names 6."""

    def forward(self, t1, t2):
        d = (t1 - t2).abs().mean(1, keepdim=True)
        sem = lambda t: t.mean(1, keepdim=True).repeat(1, 7, 1, 1)  # noqa: E731
        return {"change": torch.cat([1 - d, d], 1), "sem1": sem(t1), "sem2": sem(t2)}


def test_a_model_refused_at_its_first_batch_leaves_nothing_behind(scene, tmp_path, capsys) -> None:
    """A checkpoint whose semantic heads had 7 outputs for 6 classes was refused at the first batch, and its hidden
    scratch raster and resume sidecar stayed beside the output, for a run no --resume can finish."""
    from rsmamba.engine.model import LoadedModel, default_classes
    from rsmamba.errors import InputError

    model = LoadedModel(SevenClasses(), inputs="t1+t2", classes=default_classes(6))
    with pytest.raises(InputError, match=r"returns \(\d+, 7, \d+, \d+\) as 'sem1' for a batch, not \(B, 6, H, W\)"):
        detect_change(scene["ortho_t1"], scene["ortho_t2"], tmp_path / "c.tif", model=model, semantic=True,
                      window=96, overlap=32)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


class FillerFirst(nn.Module):
    """A semantic change network whose (untrained) filler output, id 0, is the largest at date 1: changed everywhere."""

    def forward(self, t1, t2):
        b, _, h, w = t1.shape
        s1, s2 = torch.zeros(b, 4, h, w), torch.zeros(b, 4, h, w)
        s1[:, 0], s1[:, 1], s2[:, 2] = 3.0, 2.0, 3.0
        change = torch.zeros(b, 2, h, w)
        change[:, 1] = 2.0
        return {"change": change, "sem1": s1, "sem2": s2}


def test_a_filler_class_is_never_a_semantic_change_answer(scene, tmp_path) -> None:
    """A model of chips tiled with a class table of ids 1..3 (0: the labels' ignore value, a filler): predict never
    answers a filler, 'change --semantic' wrote it as from_class (vectorize then drew 'class_0' polygons)."""
    from rsmamba.classes import dense_classes
    from rsmamba.engine.model import LoadedModel

    classes = dense_classes([{"id": 1, "name": "building", "color": [255, 0, 0]},
                             {"id": 2, "name": "tree", "color": [0, 255, 0]},
                             {"id": 3, "name": "water", "color": [0, 0, 255]}])
    assert [c.filler for c in classes] == [True, False, False, False]
    model = LoadedModel(FillerFirst(), inputs="t1+t2", classes=classes, extra={"task": "semantic-change"})
    out = tmp_path / "c.tif"
    detect_change(scene["ortho_t1"], scene["ortho_t2"], out, model=model, semantic=True, window=96, overlap=32)
    with rasterio.open(out) as src:
        bands = src.read()
    changed = bands[0] == 1
    assert changed.any()
    assert set(np.unique(bands[1][changed]).tolist()) == {1} and set(np.unique(bands[2][changed]).tolist()) == {2}


class SouthEastChange(nn.Module):
    """A change 'network' whose change lies one pixel south and east of where t2 differs from t1."""

    def forward(self, t1, t2):
        d = ((t2 - t1).abs().amax(1, keepdim=True) > 0.5).float()
        d = torch.roll(d, shifts=(1, 1), dims=(2, 3))
        return {"change": torch.cat([torch.zeros_like(d), 4 * d - 1], 1)}  # p(change) 0.95 there, 0.27 elsewhere


def test_tta_rot180_centres_a_change_networks_constant_offset(tmp_path, capsys) -> None:
    """change --tta-rot180: both epochs turned by half a turn alike and turned back, averaged with the plain pass;
    a network's constant offset (the shipped change model's masks sit 0.2-1.0 px south-east) cancels."""
    from rsmamba.change.api import ChangePredictor
    from rsmamba.engine.model import LoadedModel, default_classes

    x = np.zeros((1, 6, 32, 32), np.float32)
    x[0, 3:, 10:16, 12:20] = 2.0  # t2 differs from t1 in a 6 x 8 block centred on (12.5, 15.5)
    model = LoadedModel(SouthEastChange(), inputs="t1+t2", classes=default_classes(6))

    def centre(tta) -> tuple[float, float]:
        p = ChangePredictor(model, semantic=False, tta=tta)(x)[0, 1].numpy()
        ys, xs = np.nonzero(p > 0.5)
        return float(ys.mean()), float(xs.mean())

    assert centre(False) == (13.5, 16.5)  # one pixel south and east
    assert centre("rot180") == (12.5, 15.5)  # the block grown by a pixel on every side, centred where it is
    t1 = write_raster(tmp_path / "t1.tif", random_image(64, 64, seed=1))
    t2 = write_raster(tmp_path / "t2.tif", random_image(64, 64, seed=2))
    assert main(["-q", "change", str(t1), str(t2), "-o", str(tmp_path / "c.tif"), "--window", "64", "--dry-run",
                 "--tta-rot180"]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith(", test-time augmentation: 2 passes per window")


def test_a_t2_with_data_over_part_or_none_of_t1_is_said_naming_t2(scene, tmp_path) -> None:
    """t2 with data over 5 % of t1 gave a map 95 % nodata with no word of it, and dates sharing no valid pixel
    were refused as 't1 ...: no valid pixels to compute statistics from', t1 holding data over half its scene."""
    from rsmamba.engine.model import LoadedModel
    from rsmamba.errors import InputError

    model = LoadedModel(OracleDiff(), inputs="t1+t2")
    with rasterio.open(scene["ortho_t1"]) as ds:
        t1, profile = ds.read(), ds.profile
    with rasterio.open(scene["ortho_t2"]) as ds:
        t2 = ds.read()
    profile.update(nodata=0)

    def epoch(name: str, data: np.ndarray, columns: slice) -> Path:
        out = np.zeros_like(data)
        out[:, :, columns] = np.maximum(data[:, :, columns], 1)
        with rasterio.open(tmp_path / name, "w", **profile) as dst:
            dst.write(out)
        return tmp_path / name

    left, right = epoch("t1_left.tif", t1, slice(0, 96)), epoch("t2_right.tif", t2, slice(96, None))
    with pytest.raises(InputError, match=r"t2 .*t2_right.tif: no data over t1's valid pixels \(the dates share no"):
        detect_change(left, right, tmp_path / "c.tif", model=model, window=96)
    sliver = epoch("t2_sliver.tif", t2, slice(0, 10))
    done = detect_change(scene["ortho_t1"], sliver, tmp_path / "c.tif", model=model, window=96, force=True)
    said = [w for w in done.warnings if "of t1's valid pixels" in w]
    assert len(said) == 1 and "t2_sliver.tif: data over about 5." in said[0], done.warnings
    whole = detect_change(scene["ortho_t1"], scene["ortho_t2"], tmp_path / "w.tif", model=model, window=96)
    assert not any("of t1's valid pixels" in w for w in whole.warnings)


def test_an_rgbn_t1_pairs_with_an_rgb_t2_by_their_declared_colours(scene, tmp_path, capsys) -> None:
    """change said 'the model reads bands 1,2,3 of each date' of an RGBN t1, then refused the RGB t2 for having
    3 bands to t1's 4, --bands 1,2,3 too; the bands read from t1 are now found in t2 by colour."""
    from rasterio.enums import ColorInterp

    with rasterio.open(scene["ortho_t1"]) as ds:
        rgb, profile = ds.read(), ds.profile
    nir = (255 - rgb[0] // 2)[None]
    with rasterio.open(tmp_path / "t1_rgbn.tif", "w", **{**profile, "count": 4, "photometric": "MINISBLACK"}) as dst:
        dst.write(np.concatenate([rgb, nir]))
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.undefined]
    out = tmp_path / "c.tif"
    assert main(["-q", "change", str(tmp_path / "t1_rgbn.tif"), str(scene["ortho_t2"]), "-o", str(out)]) == 0
    rgb_run = tmp_path / "rgb.tif"
    assert main(["-q", "change", str(scene["ortho_t1"]), str(scene["ortho_t2"]), "-o", str(rgb_run)]) == 0
    with rasterio.open(out) as a, rasterio.open(rgb_run) as b:
        assert (a.read(1) == b.read(1)).all()  # the same three bands of each date as the RGB pair
    # a fourth band read from t1 has no colour to find in t2: refused, saying how to pair them
    capsys.readouterr()
    assert main(["-q", "change", str(tmp_path / "t1_rgbn.tif"), str(scene["ortho_t2"]), "-o", str(out), "--overwrite",
                 "--bands", "1,2,4"]) == 2
    err = capsys.readouterr().err
    assert "3 image bands, but t1" in err and "the bands read from t1 (1,2,4) are not found in t2" in err


def test_a_long_change_run_says_its_windows_and_time_before_it_starts(tmp_path, monkeypatch, caplog) -> None:
    """As predict: a run of hours of network passes started without a word when no progress bar was drawn (QA)."""
    import rsmamba.engine.run as run

    t1 = write_raster(tmp_path / "t1.tif", random_image(150, 120, seed=1))
    t2 = write_raster(tmp_path / "t2.tif", random_image(150, 120, seed=2))
    monkeypatch.setattr(run, "LONG_RUN_PASSES", 1)
    monkeypatch.setattr(run, "estimate_seconds", lambda *a: (5 * 3600.0, 0))
    with caplog.at_level("WARNING", logger="rsmamba"):
        summary = detect_change(t1, t2, tmp_path / "c.tif", model="siam_diff_baseline", window=64, overlap=16)
    said = [r.getMessage() for r in caplog.records if "a long run" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"{t1} -> {t2}: a long run: {summary.windows} windows of 64 px left, "
                                                 "the network passes alone about 5 hours")
