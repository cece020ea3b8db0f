"""rsmamba tile: chips, manifest, spatial split, DSM alignment and bad inputs end to end."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from rsmamba.cli import main
from rsmamba.errors import InputError
from rsmamba.raster.windows import WindowGrid
from rsmamba.tile import assign_block_splits, plan_chips, tile_scene
from tests.helpers.rasters import OLINDA, random_image, write_raster


def _manifest(folder):
    with open(folder / "manifest.csv") as fh:
        return list(csv.DictReader(fh))


def test_olinda_chips_carry_the_warped_dem(tmp_path, capsys) -> None:
    out = tmp_path / "chips"
    code = main(["tile", str(OLINDA / "L7_ETMs.tif"), "--dsm", str(OLINDA / "olinda_dem_utm25s.tif"),
                 "-o", str(out), "--size", "64", "--overlap", "16"])
    assert code == 0
    err = capsys.readouterr().err
    assert "DSM" in err and "resampled (bilinear) onto the image grid" in err
    rows = _manifest(out)
    assert rows and {r["split"] for r in rows} <= {"train", "val", "test"}
    with rasterio.open(OLINDA / "L7_ETMs.tif") as img, rasterio.open(OLINDA / "olinda_dem_utm25s.tif") as dem:
        vrt = WarpedVRT(dem, crs=img.crs, transform=img.transform, width=img.width, height=img.height,
                        resampling=Resampling.bilinear)
        for row in rows[:5]:
            with rasterio.open(out / row["dsm"]) as chip, rasterio.open(out / row["image"]) as ichip:
                window = vrt.window(*chip.bounds)
                direct = vrt.read(1, window=window.round_offsets().round_lengths())
                np.testing.assert_array_equal(chip.read(1), direct)
                assert chip.crs == img.crs and ichip.transform == chip.transform
                assert ichip.count == 6 and ichip.dtypes[0] == "uint8"
        vrt.close()
    meta = json.loads((out / "tiling.json").read_text())
    assert len(meta["stats"]["image"]["mean"]) == 6 and meta["stats"]["dsm"] is not None
    assert meta["gsd_m"] == pytest.approx(28.5)  # Landsat's pixel, in metres (UTM)


def test_labels_histogram_and_min_valid(tmp_path) -> None:
    arr = random_image(64, 96)
    arr[:, :, :32] = 0  # left third is nodata
    img = write_raster(tmp_path / "img.tif", arr, nodata=0)
    labels = np.zeros((64, 96), np.uint8)
    labels[10:20, 40:60] = 1
    lab = write_raster(tmp_path / "lab.tif", labels)
    summary = tile_scene(img, tmp_path / "chips", labels=lab, size=32, min_valid=0.5, split=(1, 0, 0))
    assert summary.skipped_invalid == 2  # the two all-nodata chips of the left column
    assert "0 below --min-valid, 2 without a valid pixel" in summary.describe()
    # at --min-valid 0 no chip is below it: the empty ones were said to be ("2 below --min-valid")
    again = tile_scene(img, tmp_path / "chips0", labels=lab, size=32, min_valid=0.0, split=(1, 0, 0))
    assert "0 below --min-valid, 2 without a valid pixel" in again.describe()
    rows = _manifest(tmp_path / "chips")
    hist_total = sum(sum(json.loads(r["class_hist"]).values()) for r in rows)
    assert hist_total == 64 * 64
    building = sum(json.loads(r["class_hist"]).get("1", 0) for r in rows)
    assert building == 200
    with rasterio.open(tmp_path / "chips" / rows[0]["labels"]) as chip:
        assert chip.nodata == 255 and chip.colormap(1)[1][:3] == (0, 0, 255)


@pytest.mark.parametrize("progress", [True, False])
def test_the_steps_before_and_after_the_chip_bar_are_said_where_bars_are(tmp_path, capsys, progress) -> None:
    """A mosaic's label layer, DSM range, fill and collar checks and the statistics ran tens of seconds with no
    line on the terminal before and after the chip bar; shown as bars are, nothing without them."""
    img = write_raster(tmp_path / "img.tif", random_image(64, 96))
    dsm = write_raster(tmp_path / "dsm.tif", np.full((64, 96), 100.0, np.float32))
    lab = write_raster(tmp_path / "lab.tif", np.ones((64, 96), np.uint8))
    capsys.readouterr()
    tile_scene(img, tmp_path / "chips", dsm=dsm, labels=lab, size=32, progress=progress)
    err = capsys.readouterr().err
    steps = ["reading and checking the inputs", "reading the DSM's height range",
             "checking the image for fill values and a nodata collar", "statistics of the train chips"]
    if progress:
        at = [err.find(f"tile: {step} ...") for step in steps]
        assert -1 not in at and at == sorted(at), err
        assert at[2] < err.find("chip/s") < at[3]  # the chip bar between the steps before and after it
    else:
        assert "tile:" not in err


@settings(max_examples=40, deadline=None)
@given(w=st.integers(40, 400), h=st.integers(40, 400), size=st.integers(16, 64), ov=st.floats(0, 0.6),
       block_mult=st.integers(1, 4), seed=st.integers(0, 5))
def test_no_chip_overlaps_a_chip_of_another_split(w, h, size, ov, block_mult, seed) -> None:
    grid = WindowGrid(w, h, size, int(size * ov))
    plan, _ = plan_chips(grid, block_mult * size, (0.6, 0.2, 0.2), seed)
    for i, (a, sa) in enumerate(plan):
        for b, sb in plan[i + 1:]:
            if sa != sb:
                disjoint = (a.col_off + a.width <= b.col_off or b.col_off + b.width <= a.col_off
                            or a.row_off + a.height <= b.row_off or b.row_off + b.height <= a.row_off)
                assert disjoint


def test_chip_names_sort_as_the_windows_lie(tmp_path) -> None:
    """Padded to the window count's digits (16 windows: 2), r00_c128 sorted before r00_c64."""
    image = write_raster(tmp_path / "img.tif", random_image(200, 300))
    tile_scene(image, tmp_path / "chips", size=64, split=(1, 0, 0), min_valid=0)
    rows = _manifest(tmp_path / "chips")
    names = [row["chip_id"] for row in rows]
    assert names[:5] == ["r000_c000", "r000_c064", "r000_c128", "r000_c192", "r000_c236"], names
    by_place = sorted(rows, key=lambda row: (int(row["row_off"]), int(row["col_off"])))
    assert sorted(names) == [row["chip_id"] for row in by_place]


def test_block_split_counts() -> None:
    s = assign_block_splits(4, 5, (0.8, 0.1, 0.1), seed=1)
    assert sorted(np.bincount(s.ravel(), minlength=3).tolist()) == [2, 2, 16]


def _assert_fails_cleanly(args, out, capsys, needle):
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and err[0].startswith("rsmamba: error:") and needle in err[0]
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}*"))


def test_split_block_0_and_size_0_are_refused_as_the_library_refuses_them(tmp_path, capsys) -> None:
    """--split-block 0 was taken as 'not given' (the 4-chip default) while tile_scene(block=0) refused it;
    tile_scene(size=0) blamed --overlap."""
    out = tmp_path / "chips"
    img = write_raster(tmp_path / "img.tif", random_image(32, 32))
    _assert_fails_cleanly(["tile", str(img), "-o", str(out), "--size", "16", "--split-block", "0"], out, capsys,
                          "--split-block must be at least 1 px, got 0")
    with pytest.raises(InputError, match="--split-block must be at least 1 px, got 0"):
        tile_scene(img, out, size=16, block=0)
    with pytest.raises(InputError, match=r"^--size must be >= 1, got 0$"):
        tile_scene(img, out, size=0)
    assert not out.exists()


def test_bad_inputs_fail_in_one_line_and_leave_nothing(tmp_path, capsys) -> None:
    out = tmp_path / "chips"
    img = write_raster(tmp_path / "img.tif", random_image(32, 32))
    _assert_fails_cleanly(["tile", str(tmp_path / "nope.tif"), "-o", str(out)], out, capsys, "file not found")
    nocrs = write_raster(tmp_path / "nocrs.tif", random_image(32, 32), crs=None)
    _assert_fails_cleanly(["tile", str(nocrs), "-o", str(out)], out, capsys, "no CRS")
    far = write_raster(tmp_path / "far.tif", np.ones((8, 8), np.float32), origin=(100000.0, 100000.0))
    _assert_fails_cleanly(["tile", str(img), "--dsm", str(far), "-o", str(out)], out, capsys, "does not overlap")
    import geopandas as gpd
    from shapely.geometry import box

    gpd.GeoDataFrame({"kind": [1]}, geometry=[box(500000, 4999990, 500010, 5000000)], crs="EPSG:32632").to_file(
        tmp_path / "lab.gpkg")
    _assert_fails_cleanly(["tile", str(img), "--labels", str(tmp_path / "lab.gpkg"), "-o", str(out)], out, capsys,
                          "no class field")
    empty = write_raster(tmp_path / "empty.tif", np.zeros((1, 32, 32), np.uint8), nodata=0)
    _assert_fails_cleanly(["tile", str(empty), "-o", str(out), "--size", "16"], out, capsys, "no valid pixels")
    (tmp_path / "zero.tif").write_bytes(b"")
    _assert_fails_cleanly(["tile", str(tmp_path / "zero.tif"), "-o", str(out)], out, capsys, "empty file (0 bytes)")


def test_existing_output_needs_overwrite(tmp_path) -> None:
    img = write_raster(tmp_path / "img.tif", random_image(32, 32))
    tile_scene(img, tmp_path / "chips", size=16)
    from rsmamba.errors import InputError

    with pytest.raises(InputError, match="--overwrite"):
        tile_scene(img, tmp_path / "chips", size=16)
    tile_scene(img, tmp_path / "chips", size=16, overwrite=True)
    assert len(_manifest(tmp_path / "chips")) > 0


def test_chips_removed_from_the_scratch_while_tiling_are_not_published(tmp_path, monkeypatch) -> None:
    """An `rm -rf` racing the run deleted chips it had written; the folder was published with a manifest listing them."""
    import rsmamba.tile as tile_module
    from rsmamba.atomic import OutputError

    img = write_raster(tmp_path / "img.tif", random_image(64, 64))
    written = []
    real = tile_module._write_chip

    def write_then_lose_the_first(src, extra, window, chip_id, split, valid, valid_fraction, folder, *args):
        row = real(src, extra, window, chip_id, split, valid, valid_fraction, folder, *args)
        written.append(folder / row["image"])
        if len(written) == 3:
            written[0].unlink()  # as a racing rm -rf does, file by file
        return row

    monkeypatch.setattr(tile_module, "_write_chip", write_then_lose_the_first)
    with pytest.raises(OutputError, match=r"1 chip file \(images/r00_c00.tif\) was removed from the scratch folder .* while tiling 16 chips; nothing"):
        tile_scene(img, tmp_path / "chips", size=16)
    assert not (tmp_path / "chips").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["img.tif"]  # no scratch left either


def test_epoch_pairs_for_change(tmp_path) -> None:
    t1 = write_raster(tmp_path / "t1.tif", random_image(64, 64, seed=1))
    t2_arr = random_image(64, 64, seed=2)
    t2 = write_raster(tmp_path / "t2.tif", t2_arr)
    lab1 = np.zeros((64, 64), np.uint8)
    lab2 = lab1.copy()
    lab2[20:40, 20:40] = 1
    write_raster(tmp_path / "l1.tif", lab1)
    write_raster(tmp_path / "l2.tif", lab2)
    write_raster(tmp_path / "ch.tif", (lab1 != lab2).astype(np.uint8))
    tile_scene(t1, tmp_path / "chips", labels=tmp_path / "l1.tif", t2=t2, labels_t2=tmp_path / "l2.tif",
               change=tmp_path / "ch.tif", size=32, split=(1, 0, 0))
    rows = _manifest(tmp_path / "chips")
    assert len(rows) == 4 and all(r["t2"] and r["labels_t2"] and r["change"] for r in rows)
    total_change = 0
    for r in rows:
        with rasterio.open(tmp_path / "chips" / r["t2"]) as ds:
            np.testing.assert_array_equal(ds.read(), t2_arr[:, int(r["row_off"]):int(r["row_off"]) + 32,
                                                              int(r["col_off"]):int(r["col_off"]) + 32])
        with rasterio.open(tmp_path / "chips" / r["change"]) as ds:
            total_change += int(ds.read(1).sum())
            assert ds.colormap(1)[1] == (255, 0, 0, 255)  # change red, not the land cover's building blue
        with rasterio.open(tmp_path / "chips" / r["labels_t2"]) as ds:
            assert ds.colormap(1)[1] == (0, 0, 255, 255)
    assert total_change == 400
    from rsmamba.errors import InputError

    with pytest.raises(InputError, match="need --t2"):
        tile_scene(t1, tmp_path / "chips2", change=tmp_path / "ch.tif")
    # a 16-bit second date was written into t1's uint8 chips modulo 256 (344 -> 88: 53 % of its values), unsaid
    deep = write_raster(tmp_path / "t2_u16.tif", t2_arr.astype(np.uint16) * 4)
    with pytest.raises(InputError, match=r"t2 .*t2_u16.tif: uint16 pixels, but t1 .* holds uint8: .*gdal_translate -ot Byte"):
        tile_scene(t1, tmp_path / "chips3", t2=deep, size=32)
    assert not (tmp_path / "chips3").exists()


def _rgba_scene(path):
    """A 128 px RGBA ortho at 0.25 m whose alpha is 0 on rows 0-39; its RGB bands."""
    rgb = random_image(128, 128, seed=3)
    alpha = np.full((1, 128, 128), 255, np.uint8)
    alpha[:, :40] = 0
    with rasterio.open(path, "w", driver="GTiff", width=128, height=128, count=4, dtype="uint8",
                       crs="EPSG:32632", transform=rasterio.transform.from_origin(500000, 5000000, 0.25, 0.25),
                       photometric="RGB", alpha="YES") as dst:
        dst.write(np.concatenate([rgb, alpha]))
    return rgb


def test_an_rgba_ortho_tiles_as_rgb_with_its_alpha_as_the_mask(tmp_path) -> None:
    """Alpha is where the image is, not a fourth colour: chips get three bands and a mask, and raster
    labels tile beside it (their colour table once left a GDAL error that failed the next alpha read)."""
    rgb = _rgba_scene(tmp_path / "rgba.tif")
    labels = write_raster(tmp_path / "labels.tif", (rgb[0] % 6).astype(np.uint8), res=0.25)
    tile_scene(tmp_path / "rgba.tif", tmp_path / "chips", labels=labels, size=32, split=(1.0, 0.0, 0.0),
               min_valid=0.0, progress=False)
    meta = json.loads((tmp_path / "chips" / "tiling.json").read_text())
    assert meta["bands"] == [1, 2, 3] and len(meta["stats"]["image"]["mean"]) == 3
    rows = _manifest(tmp_path / "chips")
    assert len(rows) == 12  # the four chips of rows 0-31 hold no image and are left out
    chip_row = next(r for r in rows if r["row_off"] == "32" and r["col_off"] == "0")
    with rasterio.open(tmp_path / "chips" / chip_row["image"]) as chip:
        assert chip.count == 3 and (chip.read() == rgb[:, 32:64, :32]).all()
        mask = chip.read_masks(1)
        assert (mask[:8] == 0).all() and (mask[8:] == 255).all()  # scene rows 32-39: no image
    with rasterio.open(tmp_path / "chips" / chip_row["labels"]) as chip:
        assert len(chip.colormap(1)) == 256 and (chip.read(1)[8:] == rgb[0, 40:64, :32] % 6).all()


def test_a_split_that_cannot_follow_the_fractions_says_why(tmp_path, caplog) -> None:
    """One 128 px block for 32 px chips: every chip goes to train, and the user is told, with the remedy."""
    image = write_raster(tmp_path / "img.tif", random_image(128, 128), res=0.25)
    one = tile_scene(image, tmp_path / "one", size=32, split=(0.8, 0.1, 0.1), progress=False)
    message = ("--split 0.8,0.1,0.1: no val or test chips, the scene (128 x 128 px) holds 1 spatial block of 128 px and "
               "each goes to one split whole; a smaller --split-block spreads the split")
    assert dict(one.chips) == {"train": 16} and message in one.warnings
    assert message in json.loads((tmp_path / "one" / "tiling.json").read_text())["warnings"]
    assert message in caplog.text
    caplog.clear()
    spread = tile_scene(image, tmp_path / "spread", size=32, split=(0.5, 0.5, 0.0), block=32, progress=False)
    assert "read as shares" not in caplog.text
    tile_scene(image, tmp_path / "typo", size=32, split=(0.8, 0.8, 0.1), block=32, progress=False)
    assert "--split 0.8,0.8,0.1: the fractions sum to 1.7, read as shares: 47%/47%/6%" in caplog.text  # unsaid (QA)
    assert spread.chips["val"] > 0 and not any("--split" in w for w in spread.warnings)
    # four 64 px blocks, the edge ones partial: 0.8,0.1,0.1 fell 2 blocks / 1 / 1, said with the shares
    skewed = tile_scene(write_raster(tmp_path / "img96.tif", random_image(96, 96), res=0.25), tmp_path / "skew",
                        size=32, block=64, progress=False)
    shares = [skewed.chips[s] / 9 for s in ("train", "val", "test")]
    assert max(abs(a - b) for a, b in zip(shares, (0.8, 0.1, 0.1))) > 0.15
    assert any(w.startswith("--split 0.8,0.1,0.1: the chips fell ") and "(train/val/test), the scene (96 x 96 px) holds 4 "
               "spatial blocks of 64 px" in w for w in skewed.warnings), skewed.warnings


def test_a_split_whose_windows_are_all_nodata_says_so_not_the_block_count(tmp_path) -> None:
    """The val block was there, its chips below --min-valid (a DSM not covering it): the warning blamed the blocks."""
    from rsmamba.tile import assign_block_splits

    img = random_image(64, 128)
    val_half = int(np.argmax(assign_block_splits(1, 2, (0.5, 0.5, 0.0), 0)[0] == 1))
    img[:, :, val_half * 64:(val_half + 1) * 64] = 0
    image = write_raster(tmp_path / "img.tif", img, nodata=0, res=0.25)
    summary = tile_scene(image, tmp_path / "c", size=32, block=64, split=(0.5, 0.5, 0.0), progress=False)
    assert dict(summary.chips) == {"train": 4}
    assert ["--split 0.5,0.5,0: no val chips: all 4 of its windows hold less than --min-valid 0.5 valid pixels "
            "(nodata, or no DSM there); another --seed puts other blocks there"] == \
        [w for w in summary.warnings if w.startswith("--split")]
    # at --min-valid 0 no window holds less than it: they hold no valid pixel
    none = tile_scene(image, tmp_path / "c0", size=32, block=64, split=(0.5, 0.5, 0.0), min_valid=0.0, progress=False)
    assert ["--split 0.5,0.5,0: no val chips: all 4 of its windows hold no valid pixel (nodata, or no DSM there); "
            "another --seed puts other blocks there"] == [w for w in none.warnings if w.startswith("--split")]


def test_colour_labels_are_refused_not_tiled_by_their_red_band(tmp_path) -> None:
    """ISPRS ground truth is RGB colours: its red band as class ids would be garbage chips, without a word."""
    from rsmamba.classes import ISPRS_CLASSES
    from rsmamba.errors import InputError

    ids = np.random.default_rng(3).integers(0, 6, (64, 64))
    rgb = np.array([c.color for c in ISPRS_CLASSES], np.uint8)[ids].transpose(2, 0, 1)
    rgb[:, :2] = 0  # eroded boundaries: black
    image = write_raster(tmp_path / "img.tif", random_image(64, 64))
    labels = write_raster(tmp_path / "gt.tif", np.ascontiguousarray(rgb))
    with pytest.raises(InputError, match=r"ISPRS colour labels \(3 bands\), not class ids; .*data.layout isprs"):
        tile_scene(image, tmp_path / "chips", labels=labels, size=32)
    assert not (tmp_path / "chips").exists()


def test_an_rgb_nir_ortho_tiles_as_four_bands_none_of_them_alpha(tmp_path) -> None:
    """Its NIR band, flagged alpha by GDAL's default for 4 Byte bands, stays a band in the chips (and
    the chips do not flag it alpha again, which would hide water in QGIS and mask it on the next read)."""
    from rasterio.enums import ColorInterp

    rgbn = random_image(64, 64, bands=4)
    rgbn[3, :8] = 0  # water, black in the NIR
    tile_scene(write_raster(tmp_path / "rgbn.tif", rgbn), tmp_path / "chips", size=32, split=(1.0, 0.0, 0.0))
    chips = sorted((tmp_path / "chips" / "images").glob("*.tif"))
    assert len(chips) == 4
    for chip in chips:
        with rasterio.open(chip) as ds:
            assert ds.count == 4 and ColorInterp.alpha not in ds.colorinterp
            assert (ds.read_masks() == 255).all()


def test_a_label_nodata_that_is_also_a_class_is_refused_with_burn_and_said_otherwise(tmp_path, caplog) -> None:
    """GDAL habitually writes masks with nodata 0: a --burn mask would train no background pixel."""
    from rsmamba.errors import InputError

    image = write_raster(tmp_path / "img.tif", random_image(64, 64))
    mask = np.zeros((64, 64), np.uint8)
    mask[10:30, 10:30] = 1
    with pytest.raises(InputError, match=r"nodata 0 is the background of --burn.*-unsetnodata"):
        tile_scene(image, tmp_path / "burn", labels=write_raster(tmp_path / "mask.tif", mask, nodata=0), size=32, burn=1)
    assert not (tmp_path / "burn").exists()
    ids = np.random.default_rng(1).integers(0, 6, (64, 64)).astype(np.uint8)
    with caplog.at_level("WARNING", logger="rsmamba"):
        tile_scene(image, tmp_path / "ids", labels=write_raster(tmp_path / "ids.tif", ids, nodata=0), size=32)
    assert any("nodata 0 is also class 0 (impervious)" in r.getMessage() for r in caplog.records)
    tile_scene(image, tmp_path / "ok", labels=write_raster(tmp_path / "mask_ok.tif", mask), size=32, burn=1)


def test_label_ids_outside_the_class_table_are_refused(tmp_path) -> None:
    """Class 9 under the ISPRS table (0..5): training would index past the model's classes."""
    from rsmamba.errors import InputError

    image = write_raster(tmp_path / "img.tif", random_image(64, 64))
    ids = np.zeros((64, 64), np.uint8)
    ids[20:40, 20:40] = 9
    with pytest.raises(InputError, match=r"class id 9 not in the class table \(0 impervious, .*--class-table"):
        tile_scene(image, tmp_path / "chips", labels=write_raster(tmp_path / "ids.tif", ids), size=32)
    assert not (tmp_path / "chips").exists()


def test_background_outside_the_class_table_is_named_as_background(tmp_path) -> None:
    """The layer holds 1 and 3 only: class 0 is --background, and the hint to pass the --class-table the
    user had passed misled."""
    import geopandas as gpd
    from shapely.geometry import box

    from rsmamba.errors import InputError

    image = write_raster(tmp_path / "img.tif", random_image(64, 64))
    table = tmp_path / "t.yaml"
    table.write_text("classes:\n  - {id: 1, name: building}\n  - {id: 3, name: road}\n")
    layer = tmp_path / "l.gpkg"
    gpd.GeoDataFrame({"class": [1, 3]}, geometry=[box(500002, 4999970, 500012, 4999990),
                                                  box(500020, 4999970, 500030, 4999990)],
                     crs="EPSG:32632").to_file(layer)
    with pytest.raises(InputError, match=r"class id 0 is --background .* --background 255 to leave those pixels"):
        tile_scene(image, tmp_path / "chips", labels=layer, size=32, class_table=table)
    summary = tile_scene(image, tmp_path / "chips", labels=layer, size=32, class_table=table, label_background=255)
    assert sum(summary.chips.values()) > 0


def test_a_layer_leaving_ground_unlabelled_says_it_becomes_the_background_class(tmp_path, caplog) -> None:
    """Buildings and trees only: the rest of the image became class 0 (impervious) unsaid, 78 % of a scene's
    chips; evaluate reads the same layer the other way (outside unscored)."""
    import geopandas as gpd
    from shapely.geometry import box

    image = write_raster(tmp_path / "img.tif", random_image(64, 64))
    sparse = tmp_path / "sparse.gpkg"
    gpd.GeoDataFrame({"class": [1, 3]}, geometry=[box(500000, 4999968, 500032, 5000000),
                                                  box(500032, 4999968, 500040, 5000000)],
                     crs="EPSG:32632").to_file(sparse)  # 1280 of 4096 pixels covered
    full = tmp_path / "full.gpkg"
    gpd.GeoDataFrame({"class": [1, 0]}, geometry=[box(500000, 4999936, 500032, 5000000),
                                                  box(500032, 4999936, 500064, 5000000)], crs="EPSG:32632").to_file(full)
    with caplog.at_level("WARNING", logger="rsmamba"):
        tile_scene(image, tmp_path / "a", labels=sparse, size=32)
    said = [r.getMessage() for r in caplog.records if "outside every feature" in r.getMessage()]
    assert len(said) == 1 and "about 69% of the image lies outside every feature: labelled class 0 " \
        "(impervious) (--background); pass --background 255" in said[0], said
    assert json.loads((tmp_path / "a" / "tiling.json").read_text())["label_background"] == 0
    caplog.clear()
    with caplog.at_level("WARNING", logger="rsmamba"):
        tile_scene(image, tmp_path / "b", labels=sparse, size=32, label_background=255)
        tile_scene(image, tmp_path / "c", labels=full, size=32)
        tile_scene(image, tmp_path / "d", labels=sparse, size=32, burn=1)  # a footprint layer: background expected
        collared = random_image(64, 64)
        collared[:, :, :16] = 0  # a nodata collar the layer leaves out: no ground, it was '25% outside'
        collar = write_raster(tmp_path / "collar.tif", collared, nodata=0)
        inside = tmp_path / "inside.gpkg"
        gpd.GeoDataFrame({"class": [1, 0]}, geometry=[box(500016, 4999936, 500040, 5000000),
                                                      box(500040, 4999936, 500064, 5000000)],
                         crs="EPSG:32632").to_file(inside)
        tile_scene(collar, tmp_path / "e", labels=inside, size=32)
    assert not [r for r in caplog.records if "outside every feature" in r.getMessage()]


def test_lines_and_points_in_a_label_layer_are_said(tmp_path, caplog) -> None:
    import geopandas as gpd
    from shapely.geometry import LineString, Point, box

    image = write_raster(tmp_path / "img.tif", random_image(64, 64))
    layer = tmp_path / "l.gpkg"
    gpd.GeoDataFrame({"class": [1, 2, 4]}, geometry=[box(500002, 4999970, 500012, 4999990),
                                                     LineString([(500000, 4999980), (500030, 4999980)]),
                                                     Point(500020, 4999975)], crs="EPSG:32632").to_file(layer)
    with caplog.at_level("WARNING", logger="rsmamba"):
        tile_scene(image, tmp_path / "chips", labels=layer, size=32)
    assert "2 features of the layer are LineString/Point: burnt as 1-px lines and points, not areas" in caplog.text


def test_polygons_holding_no_pixel_centre_are_counted_per_class(tmp_path, caplog) -> None:
    """A 0.4 px strip and a 0.8 px car burnt nothing (a pixel takes a polygon's class where its centre lies
    inside), with exit 0 and not a word. A strip as thin over a column of centres burns them, and is not said."""
    import geopandas as gpd
    from shapely.geometry import box

    image = write_raster(tmp_path / "img.tif", random_image(64, 64))
    layer = tmp_path / "thin.gpkg"
    gpd.GeoDataFrame({"class": [1, 4, 1, 2]}, geometry=[
        box(500010.6, 4999940, 500011.0, 4999990),  # between the centres of columns 10 and 11
        box(500030.6, 4999968.6, 500031.4, 4999969.4),  # a car between four centres
        box(500020.3, 4999940, 500020.7, 4999990),  # over column 20's centres
        box(500040, 4999940, 500050, 4999950)], crs="EPSG:32632").to_file(layer)
    with caplog.at_level("WARNING", logger="rsmamba"):
        tile_scene(image, tmp_path / "chips", labels=layer, size=64, split=(1, 0, 0), label_background=255)
    said = [r.getMessage() for r in caplog.records if "burn no pixel" in r.getMessage()]
    assert len(said) == 1 and "thin.gpkg: 2 polygons over the image burn no pixel (class 1 (building): 1, class 4 " \
        "(car): 1): a pixel takes a polygon's class only where its centre lies inside" in said[0], said
    with rasterio.open(tmp_path / "chips" / _manifest(tmp_path / "chips")[0]["labels"]) as ds:
        got = ds.read(1)
    assert (got == 1).sum() == 50 and (got[10:60, 20] == 1).all() and (got == 4).sum() == 0


@pytest.mark.parametrize("grid", ["rotated", "south-up"])
def test_vector_labels_and_manifest_boxes_on_rotated_and_south_up_grids(tmp_path, grid) -> None:
    """The window's box was (left, bottom, right, top) of two corners: on a rotated grid it missed the
    chip's corners (polygons there never burnt), on a south-up one min > max in the manifest."""
    import geopandas as gpd
    from affine import Affine
    from rasterio.features import rasterize
    from shapely.geometry import box

    transform = (Affine.translation(500000, 5000000) * Affine.rotation(-20) * Affine.scale(1, -1)
                 if grid == "rotated" else Affine(1, 0, 500000, 0, 1, 4999936))
    image = write_raster(tmp_path / "img.tif", random_image(64, 64), transform=transform)
    rng = np.random.default_rng(0)
    centres = [transform * (c, r) for c, r in rng.uniform(2, 62, (40, 2))]
    polygons = [box(x - 1.5, y - 1.5, x + 1.5, y + 1.5) for x, y in centres]
    layer = tmp_path / "l.gpkg"
    gpd.GeoDataFrame({"class": rng.integers(1, 6, 40)}, geometry=polygons, crs="EPSG:32632").to_file(layer)
    whole = rasterize(zip(polygons, gpd.read_file(layer)["class"]), out_shape=(64, 64), transform=transform,
                      fill=0, dtype="uint8")
    tile_scene(image, tmp_path / "chips", labels=layer, size=32, split=(1, 0, 0))
    rows = _manifest(tmp_path / "chips")
    assert len(rows) == 4
    for row in rows:
        with rasterio.open(tmp_path / "chips" / row["labels"]) as chip:
            c, r = ~transform * (chip.transform.c, chip.transform.f)
            c, r = round(c), round(r)
            np.testing.assert_array_equal(chip.read(1), whole[r:r + 32, c:c + 32])
            corners = [chip.transform * xy for xy in ((0, 0), (32, 0), (0, 32), (32, 32))]
        xs, ys = zip(*corners)
        got = [float(row[k]) for k in ("minx", "miny", "maxx", "maxy")]
        assert got == pytest.approx([min(xs), min(ys), max(xs), max(ys)])


def test_a_named_pipe_is_refused_before_it_is_opened(tmp_path) -> None:
    """GDAL opening a FIFO (mkfifo) waits for a writer for ever and swallows SIGTERM: tile hung. Refused by
    stat, with every other input, before anything is opened (a subprocess: the old hang ends at the timeout)."""
    import os
    import subprocess
    import sys

    from tests.helpers.rasters import ROOT

    img = write_raster(tmp_path / "img.tif", random_image(32, 32))
    fifo = tmp_path / "fifo.tif"
    os.mkfifo(fifo)
    out = tmp_path / "chips"
    for inputs in ([str(fifo)], [str(img), "--dsm", str(fifo), "--labels", str(fifo)], [str(img), "--t2", str(fifo)]):
        proc = subprocess.run([sys.executable, "-m", "rsmamba", "tile", *inputs, "-o", str(out)], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        err = proc.stderr.strip()
        assert proc.returncode == 2 and len(err.splitlines()) == 1, err
        assert err.count(f"{fifo}: not a regular file (a named pipe, socket or device)") == inputs.count(str(fifo))
    assert not out.exists()


def test_an_undeclared_image_fill_is_refused_before_any_chip(tmp_path, capsys) -> None:
    """A 0..1 float ortho with -9999 over a fifth of it was tiled without a word: the fill became training
    pixels and the chips' statistics (mean -1953, std 3964), and predict then refused the same ortho."""
    pixels = np.random.default_rng(0).uniform(0.05, 0.9, (3, 96, 96)).astype(np.float32)
    pixels[:, :, :20] = -9999.0
    image = write_raster(tmp_path / "ortho.tif", pixels)
    out = tmp_path / "chips"
    _assert_fails_cleanly(["tile", str(image), "-o", str(out), "--size", "32"], out, capsys,
                          "holds -9999 in")
    wide = (pixels * 4095).clip(0, 4095).astype(np.uint16)  # 12-bit imagery in a 16-bit file
    wide[:, :, :20] = 65535
    _assert_fails_cleanly(["tile", str(write_raster(tmp_path / "u16.tif", wide)), "-o", str(out), "--size", "32"],
                          out, capsys, "gdal_edit.py -a_nodata 65535")
    declared = write_raster(tmp_path / "declared.tif", pixels, nodata=-9999.0)  # declared: read as nodata
    assert main(["tile", str(declared), "-o", str(out), "--size", "32"]) == 0


def test_a_split_block_below_the_chip_size_advises_a_larger_one(tmp_path, capsys) -> None:
    """Blocks of 16 px under 64 px chips at overlap 32 dropped 2/3 of the windows, and the warning advised a
    smaller block, which changed nothing."""
    image = write_raster(tmp_path / "ortho.tif", random_image(512, 512))
    assert main(["tile", str(image), "-o", str(tmp_path / "chips"), "--size", "64", "--overlap", "32",
                 "--split-block", "16"]) == 0
    err = capsys.readouterr().err
    assert "a smaller --split-block" not in err
    assert "windows dropped at split borders" in err and "--split-block of several chips (e.g. 256)" in err
    assert main(["tile", str(image), "-o", str(tmp_path / "chips2"), "--size", "64", "--overlap", "32"]) == 0
    assert "windows dropped" not in capsys.readouterr().err  # the default block (4 chips) keeps them


def test_a_raster_narrower_than_the_chips_is_said(tmp_path) -> None:
    """A 1024 x 40 px corridor strip was cut into 64 x 40 chips without a word (tiling.json says 64)."""
    from tests.helpers.rasters import random_image, write_raster

    image = write_raster(tmp_path / "strip.tif", random_image(40, 200))
    labels = write_raster(tmp_path / "labels.tif", np.ones((40, 200), np.uint8))
    summary = tile_scene(image, tmp_path / "chips", labels=labels, size=64, split=(1, 0, 0))
    assert any("200 x 40 px, narrower than --size 64: its chips are 64 x 40 px (training turns them by 180 degrees "
               "only)" in w for w in summary.warnings)
    small = write_raster(tmp_path / "small.tif", random_image(40, 40))
    labels = write_raster(tmp_path / "small_labels.tif", np.ones((40, 40), np.uint8))
    summary = tile_scene(small, tmp_path / "chips2", labels=labels, size=64, split=(1, 0, 0))
    said = [w for w in summary.warnings if "narrower than --size" in w]
    assert said and said[0].endswith("its chips are 40 x 40 px")  # square chips take every quarter turn


def test_a_dsm_leaving_no_valid_pixel_is_named_not_the_image(tmp_path) -> None:
    """An all-nodata DSM was said as 'image ...: no valid pixels to compute statistics from', one over 20 of 64
    columns as 'image ...: no chip has at least 50% valid pixels': the image was whole."""
    image = write_raster(tmp_path / "img.tif", random_image(64, 64))
    empty = write_raster(tmp_path / "empty.tif", np.full((64, 64), -9999, np.float32), nodata=-9999)
    with pytest.raises(InputError, match=r"^DSM .*empty.tif: no height where the image .*img.tif has data"):
        tile_scene(image, tmp_path / "a", dsm=empty, size=32)
    sliver = write_raster(tmp_path / "sliver.tif", np.full((64, 10), 50, np.float32))
    with pytest.raises(InputError, match=r"^DSM .*sliver.tif: no chip has at least 50% valid pixels, though the image "
                                         r"alone has 4 such windows: the DSM has a height at 16% of"):
        tile_scene(image, tmp_path / "b", dsm=sliver, size=32)
    bare = write_raster(tmp_path / "bare.tif", np.zeros((3, 64, 64), np.uint8), nodata=0)
    with pytest.raises(InputError, match=r"^image .*bare.tif: no valid pixels"):  # the image's own, said as before
        tile_scene(bare, tmp_path / "c", dsm=sliver, size=32)


def test_a_dsm_with_a_second_date_is_said_at_tiling(tmp_path) -> None:
    """tile --t2 --dsm wrote DSM chips, exit 0, and every training of the folder then refused them ('change chips
    carry one DSM only'): said when they are written."""
    t1 = write_raster(tmp_path / "t1.tif", random_image(64, 64, seed=1))
    t2 = write_raster(tmp_path / "t2.tif", random_image(64, 64, seed=2))
    dsm = write_raster(tmp_path / "d.tif", np.full((1, 64, 64), 40.0, np.float32))
    summary = tile_scene(t1, tmp_path / "chips", dsm=dsm, t2=t2, size=32, split=(1, 0, 0))
    assert [w for w in summary.warnings if "with --t2: the chips carry one DSM" in w]
    assert not [w for w in tile_scene(t1, tmp_path / "c2", t2=t2, size=32, split=(1, 0, 0)).warnings if "--t2" in w]


def test_burn_of_a_label_raster_keeps_its_no_label_pixels(tmp_path) -> None:
    """tile --burn 1 of an 8-bit mask whose 255 patch means 'no label' (no nodata declared) burnt the patch as
    class 1; an int16 mask's -1 too. Without --burn 255 is no label and -1 is refused."""
    img = write_raster(tmp_path / "img.tif", random_image(32, 32))
    mask = np.zeros((32, 32), np.uint8)
    mask[4:12, 4:12] = 1
    mask[20:, :] = 255
    lab = write_raster(tmp_path / "mask.tif", mask)
    tile_scene(img, tmp_path / "chips", labels=lab, burn=1, size=32, split=(1, 0, 0))
    with rasterio.open(tmp_path / "chips" / _manifest(tmp_path / "chips")[0]["labels"]) as ds:
        got = ds.read(1)
    assert (got[20:] == 255).all() and (got[4:12, 4:12] == 1).all() and (got[:4] == 0).all()
    signed = mask.astype(np.int16)
    signed[mask == 255] = -1
    signed = write_raster(tmp_path / "signed.tif", signed)
    with pytest.raises(InputError, match="-1"):
        tile_scene(img, tmp_path / "chips2", labels=signed, burn=1, size=32, split=(1, 0, 0))


@pytest.mark.parametrize("ignore", [3, -1])
def test_a_label_layers_features_of_the_ignore_value_are_no_label(tmp_path, ignore) -> None:
    """The class table's ignore: applied to a label raster's pixels, not to a layer's features: ignore: 3 was
    refused as 'class id 3 not in the class table', ignore: -1 as 'class ids must be in 0..254'."""
    import geopandas as gpd
    from shapely.geometry import box

    image = write_raster(tmp_path / "img.tif", random_image(32, 32))
    table = tmp_path / "t.yaml"
    table.write_text(f"ignore: {ignore}\nclasses:\n  - {{id: 0, name: ground}}\n  - {{id: 1, name: building}}\n"
                     "  - {id: 2, name: road}\n")
    layer = tmp_path / "l.gpkg"
    gpd.GeoDataFrame({"class": [1, ignore]}, geometry=[box(500002, 4999980, 500010, 4999990),  # rows 10..20
                                                        box(500020, 4999970, 500030, 4999990)],  # cols 20..30
                     crs="EPSG:32632").to_file(layer)
    tile_scene(image, tmp_path / "chips", labels=layer, size=32, class_table=table, split=(1, 0, 0))
    with rasterio.open(tmp_path / "chips" / _manifest(tmp_path / "chips")[0]["labels"]) as ds:
        got = ds.read(1)
    assert (got[10:20, 2:10] == 1).all() and (got[10:30, 20:30] == 255).all() and (got[:10] == 0).all()


def test_label_polygons_of_two_classes_overlapping_are_said(tmp_path) -> None:
    """A road polygon over a building one: the later feature's class won silently, and reordering the layer
    changed the labels. Same-class overlaps and neighbours sharing an edge are no matter."""
    import geopandas as gpd
    from shapely.geometry import box

    image = write_raster(tmp_path / "img.tif", random_image(32, 32))

    def layer(classes, boxes, name):
        gpd.GeoDataFrame({"class": classes}, geometry=boxes, crs="EPSG:32632").to_file(tmp_path / name)
        return tmp_path / name

    house, road = box(500002, 4999980, 500012, 4999990), box(500008, 4999970, 500020, 4999988)
    clash = layer([1, 2], [house, road], "clash.gpkg")
    summary = tile_scene(image, tmp_path / "c1", labels=clash, size=32, split=(1, 0, 0))
    said = [w for w in summary.warnings if "overlap one of another class" in w]
    assert len(said) == 1 and "clash.gpkg: 2 polygons overlap one of another class by a pixel or more" in said[0]
    fine = layer([1, 1, 2], [house, box(500004, 4999982, 500014, 4999992), box(500014, 4999980, 500020, 4999990)],
                 "fine.gpkg")  # two houses over each other, a road sharing an edge with one
    summary = tile_scene(image, tmp_path / "c2", labels=fine, size=32, split=(1, 0, 0))
    assert not any("overlap" in w for w in summary.warnings)


def test_overlaps_in_a_geojson_with_feature_ids_follow_the_files_order_not_the_ids(tmp_path) -> None:
    """GDAL takes a GeoJSON feature's "id" as its FID: the layer was sorted by FID, so feature id 10 (class 1)
    written before id 3 (class 2) won their overlap, though the later polygon should (and did in EPSG:4326)."""
    image = write_raster(tmp_path / "img.tif", random_image(32, 32))

    def square(x0, y0, x1, y1):
        return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}

    layer = tmp_path / "ids.geojson"
    layer.write_text(json.dumps({"type": "FeatureCollection",
                                 "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32632"}},
                                 "features": [{"type": "Feature", "id": 10, "properties": {"class": 1},
                                               "geometry": square(500002, 4999980, 500012, 4999990)},
                                              {"type": "Feature", "id": 3, "properties": {"class": 2},
                                               "geometry": square(500008, 4999970, 500020, 4999988)}]}))
    tile_scene(image, tmp_path / "chips", labels=layer, size=32, split=(1, 0, 0))
    with rasterio.open(tmp_path / "chips" / _manifest(tmp_path / "chips")[0]["labels"]) as ds:
        got = ds.read(1)
    assert (got[13:19, 9:11] == 2).all()  # the overlap: the later feature's class
    assert (got[10:12, 3:7] == 1).all() and (got[20:29, 13:19] == 2).all()


@pytest.mark.parametrize("region", [(0.0, 45.14, 18.0, 50.0), (-180.0, -90.0, 180.0, 90.0)])
def test_a_long_edged_polygon_in_degrees_is_burnt_where_its_edges_run_on_a_projected_scene(tmp_path, region) -> None:
    """Reprojected vertex by vertex, a region polygon lon 0..18 (its south edge on the parallel 45.14, 1.5 km
    south of a UTM scene at lon 9.0, lat 45.153) cut the scene with its straight 18-degree edge: burnt as 0
    ('96% outside every feature'), exit 0. Checked against each pixel centre taken to degrees."""
    import geopandas as gpd
    import shapely
    from pyproj import Transformer
    from shapely.geometry import box

    image = write_raster(tmp_path / "img.tif", random_image(200, 300), res=0.5)
    house = gpd.GeoSeries([box(500005.15, 4999969.85, 500030.15, 4999994.85)], crs=32632).to_crs(4326).iloc[0]
    layer = tmp_path / "region.gpkg"
    gpd.GeoDataFrame({"class": [2, 1]}, geometry=[box(*region), house], crs=4326).to_file(layer)
    tile_scene(image, tmp_path / "chips", labels=layer, size=300, split=(1, 0, 0))
    with rasterio.open(tmp_path / "chips" / _manifest(tmp_path / "chips")[0]["labels"]) as ds:
        got = ds.read(1)
    cols, rows = np.meshgrid(np.arange(300) + 0.5, np.arange(200) + 0.5)
    lon, lat = Transformer.from_crs(32632, 4326, always_xy=True).transform(500000 + cols * 0.5, 5000000 - rows * 0.5)
    points = shapely.points(lon, lat)
    expected = np.where(shapely.contains(house, points), 1, np.where(shapely.covers(box(*region), points), 2, 0))
    assert (expected == 2).sum() > 50_000 and (expected == 1).sum() > 2000
    assert np.array_equal(got, expected)


def test_a_collection_of_an_area_and_a_line_is_said_as_such(tmp_path, caplog) -> None:
    """It was said as '1 feature ... is GeometryCollection, not areas', while its polygon burns as an area."""
    import logging

    import geopandas as gpd
    import shapely
    from shapely.geometry import LineString, box

    image = write_raster(tmp_path / "img.tif", random_image(32, 32))
    mixed = shapely.GeometryCollection([box(500002, 4999980, 500012, 4999990),
                                        LineString([(500020, 4999970), (500030, 4999970)])])
    gpd.GeoDataFrame({"class": [1]}, geometry=[mixed], crs="EPSG:32632").to_file(tmp_path / "m.gpkg")
    with caplog.at_level(logging.WARNING):
        tile_scene(image, tmp_path / "chips", labels=tmp_path / "m.gpkg", size=32, split=(1, 0, 0), label_background=0)
    assert ("1 feature of the layer is lines or points in a GeometryCollection: burnt as 1-px lines and points"
            in caplog.text)
    with rasterio.open(tmp_path / "chips" / _manifest(tmp_path / "chips")[0]["labels"]) as ds:
        assert (ds.read(1)[10:20, 2:12] == 1).all()  # its area burns whole


def test_chips_lost_at_split_borders_are_said_beside_a_split_left_empty(tmp_path) -> None:
    """With a split left without chips by --min-valid, the 10 of 25 windows dropped at split borders went unsaid:
    the one warning blamed --min-valid and advised another --seed."""
    image = random_image(256, 256)
    image[:, :30, :] = 0
    image[:, :, 200:] = 0
    path = write_raster(tmp_path / "img.tif", image, nodata=0, res=0.5)
    summary = tile_scene(path, tmp_path / "chips", size=64, overlap=16, min_valid=0.6, block=96)
    said = " | ".join(summary.warnings)
    assert "no test chips: all 2 of its windows hold less than --min-valid 0.6" in said
    assert "--split-block 96: 10 of 25 windows dropped at split borders" in said


def test_tile_advice_and_cost_messages_say_what_helps(tmp_path, capsys, caplog) -> None:
    """The dropped-windows advice named the block in use ('--split-block 512 ... e.g. 512 keeps them'); a stride of
    1 px (--size 64 --overlap 63: 923,000 chips, 3.5 GB in 10 minutes) was unsaid; --split 0,0,0 was told to be
    'non-negative', which it was."""
    image = write_raster(tmp_path / "ortho.tif", random_image(700, 700))
    assert main(["tile", str(image), "-o", str(tmp_path / "c1"), "--size", "128", "--overlap", "32"]) == 0
    err = capsys.readouterr().err
    assert "--split-block 512: 13 of 49 windows dropped at split borders" in err
    assert "a smaller --split-block spreads the split" in err and "(e.g. 512)" not in err
    # not then 'a larger --split-block (e.g. 1024) ... drops fewer': advice in a circle (QA)
    assert "a larger --split-block" not in err and "less --overlap drops fewer; the scene holds few blocks of 512 px: " \
        "a smaller --size, or another scene tiled for val and test, splits it without losing chips" in err
    small = write_raster(tmp_path / "small.tif", random_image(40, 40))
    with caplog.at_level("WARNING"):
        tile_scene(small, tmp_path / "c2", size=16, overlap=13, split=(1, 0, 0))
    assert "--overlap 13 of --size 16: a stride of 3 px cuts about 28 chips over each pixel, 81 in all (9 at " \
           "--overlap 4)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        tile_scene(small, tmp_path / "c3", size=16, overlap=4, split=(1, 0, 0))
    assert "stride" not in caplog.text
    assert main(["tile", str(small), "-o", str(tmp_path / "c4"), "--split", "0,0,0"]) == 2
    assert "--split 0,0,0: the fractions sum to 0" in capsys.readouterr().err


def test_an_image_without_georeferencing_is_not_told_an_option_tile_lacks(tmp_path, capsys) -> None:
    """tile refused a PNG without georeferencing with 'let predict and change read it ...: --pixel-grid', an option
    tile has no such thing as (QA); it names what each verb offers."""
    png = tmp_path / "nogeo.png"
    with rasterio.open(png, "w", driver="PNG", width=32, height=32, count=3, dtype="uint8") as dst:
        dst.write(random_image(32, 32))
    assert main(["tile", str(png), "-o", str(tmp_path / "chips"), "--size", "16"]) == 2
    err = capsys.readouterr().err
    assert "no georeferencing" in err and "predict and change read on its pixel grid (--pixel-grid)" in err
    assert "train reads the benchmark's layout in place" in err and not (tmp_path / "chips").exists()


def test_an_alpha_band_named_by_bands_is_imagery_with_its_neighbours_as_alone(tmp_path) -> None:
    """--bands 1,2,3,4 on an RGBA ortho still masked the pixels where alpha is 0 (10 chips left out) while
    --bands 4 alone read them (QA): a band --bands names is imagery, as the README says, named with others or not."""
    from rsmamba.raster.source import bands_valid

    rgb = _rgba_scene(tmp_path / "rgba.tif")
    with rasterio.open(tmp_path / "rgba.tif") as ds:
        whole = rasterio.windows.Window(0, 0, 128, 128)
        assert bands_valid(ds, [1, 2, 3, 4], whole).all() and bands_valid(ds, [4], whole).all()
        assert not bands_valid(ds, [1, 2, 3], whole)[:40].any() and bands_valid(ds, [1, 2, 3], whole)[40:].all()
    counts = []
    for b in ((1, 2, 3, 4), (4,)):
        tile_scene(tmp_path / "rgba.tif", tmp_path / f"chips{len(b)}", bands=b, size=32, split=(1.0, 0.0, 0.0),
                   progress=False)
        counts.append(len(_manifest(tmp_path / f"chips{len(b)}")))
    assert counts == [16, 16]


@pytest.mark.parametrize("overlap", [0, 8])
def test_normalisation_statistics_are_the_training_chips_not_the_val_and_test_areas(tmp_path, overlap) -> None:
    """tiling.json's image and DSM statistics (the model's normalisation) were computed on the whole scene, the val and
    test blocks' pixels included: a held-out area of other values moved the mean the model trained with."""
    size, block, split = 32, 64, (0.5, 0.25, 0.25)
    grid = WindowGrid(256, 192, size, overlap)
    plan, _ = plan_chips(grid, block, split, seed=0)
    image = random_image(192, 256, bands=2)
    dsm = np.random.default_rng(1).uniform(10, 20, (192, 256)).astype(np.float32)
    train = np.zeros((192, 256), bool)
    for window, k in plan:
        train[window.toslices()] |= k == 0
    image[:, ~train] = 250  # the held-out areas: far from the training pixels
    dsm[~train] = 500.0
    img = write_raster(tmp_path / "img.tif", image)
    dem = write_raster(tmp_path / "dsm.tif", dsm)
    tile_scene(img, tmp_path / "chips", dsm=dem, size=size, overlap=overlap, block=block, split=split, min_valid=0)
    meta = json.loads((tmp_path / "chips" / "tiling.json").read_text())
    assert meta["splits"]["val"] and meta["splits"]["test"]
    stats = meta["stats"]["image"]
    expected = image[:, train].astype(np.float64)
    assert stats["pixels"] == [int(train.sum())] * 2
    assert stats["mean"] == pytest.approx(expected.mean(axis=1).tolist(), rel=1e-9)
    assert stats["std"] == pytest.approx(expected.std(axis=1).tolist(), rel=1e-6)
    assert stats["maximum"] == expected.max(axis=1).tolist()
    assert meta["stats"]["dsm"]["mean"] == pytest.approx([float(dsm[train].astype(np.float64).mean())], rel=1e-6)
    assert meta["stats"]["dsm"]["maximum"] == [float(dsm[train].max())]


def test_a_zipped_shapefile_is_read_as_the_label_layer_it_holds(tmp_path) -> None:
    """A shapefile handed over zipped (buildings.shp.zip, GDAL and pyogrio read it in place) was refused as 'not a
    readable raster'."""
    import zipfile

    import geopandas as gpd
    from shapely.geometry import box

    image = write_raster(tmp_path / "img.tif", random_image(64, 64))
    gpd.GeoDataFrame({"class": [1]}, geometry=[box(500010, 4999950, 500030, 4999990)], crs="EPSG:32632").to_file(
        tmp_path / "b.shp")
    for name in ("b.shp.zip", "b.zip"):
        with zipfile.ZipFile(tmp_path / name, "w") as archive:
            for part in tmp_path.glob("b.*"):
                if part.suffix != ".zip":
                    archive.write(part, part.name)
    tile_scene(image, tmp_path / "plain", labels=tmp_path / "b.shp", size=32, split=(1, 0, 0))
    want = [json.loads(row["class_hist"]) for row in _manifest(tmp_path / "plain")]
    assert sum(h.get("1", 0) for h in want) == 20 * 40
    for name in ("b.shp.zip", "b.zip"):
        tile_scene(image, tmp_path / name.replace(".", "_"), labels=tmp_path / name, size=32, split=(1, 0, 0))
        assert [json.loads(row["class_hist"]) for row in _manifest(tmp_path / name.replace(".", "_"))] == want
