"""``evaluate --reference-t2``: the checks made of a land-cover reference, made of both dates' and against the
land-cover table (not band 1's change table); and a binary change reference's 0/255 coding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rsmamba.classes import ISPRS_CLASSES
from rsmamba.errors import InputError
from rsmamba.evaluate import evaluate_rasters
from tests.helpers.rasters import write_raster, write_semantic_change


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two dates' land cover (ISPRS ids 0..5, 8 px regions) and the change between them."""
    rng = np.random.default_rng(seed)
    t1 = np.repeat(np.repeat(rng.integers(0, 6, (4, 4)), 8, 0), 8, 1).astype(np.uint8)
    t2 = t1.copy()
    t2[8:24, 8:24] = (t1[8:24, 8:24] + 1) % 6
    return t1, t2, (t1 != t2).astype(np.uint8)


def _semantic_raster(path: Path, change: np.ndarray, t1: np.ndarray, t2: np.ndarray) -> Path:
    """A 'change --semantic' raster with the land-cover table (ISPRS, with colours) in its CLASSES tag."""
    return write_semantic_change(path, change, t1, t2, {"CLASSES": json.dumps([c.to_dict() for c in ISPRS_CLASSES]),
                                                        "CLASS_NAMES": json.dumps([c.name for c in ISPRS_CLASSES])})


def test_reference_nodata_that_is_a_land_cover_class_is_said_as_one_and_keeps_the_change_means(tmp_path: Path) -> None:
    """A t1 land-cover reference declaring nodata 0 (impervious): the warning called it 'class 0 (no_change)' (band
    1's table) and took no_change out of the change means (mIoU became the change IoU alone). Now it names the
    land-cover class, and both change classes stay in the means."""
    t1, t2, change = _scene()
    pred = _semantic_raster(tmp_path / "c.tif", change, t1, t2)
    ref1 = write_raster(tmp_path / "t1.tif", t1, nodata=0)
    ref2 = write_raster(tmp_path / "t2.tif", t2)
    result = evaluate_rasters(pred, ref1, tmp_path / "m.json", reference_t2=ref2)
    assert result["conventions"]["excluded_from_means"] == []
    iou = [v["iou"] for v in result["per_class"].values()]
    assert result["miou"] == pytest.approx(sum(iou) / 2)
    said = [w for w in result["warnings"] if "nodata 0" in w]
    assert len(said) == 1 and str(ref1) in said[0] and "land-cover class 0 (impervious)" in said[0]
    assert "no_change" not in said[0]
    assert result["pixels"] == int((t1 != 0).sum())  # its pixels are not scored


def test_land_cover_references_coded_otherwise_by_their_colour_tables_are_warned_about(tmp_path: Path) -> None:
    """Both dates' land cover coded with ids 0 and 1 swapped, their colour tables saying so: plain evaluate warned,
    --reference-t2 scored them id by id unsaid. Now each reference is warned about, by name."""
    import rasterio

    t1, t2, change = _scene(1)
    pred = _semantic_raster(tmp_path / "c.tif", change, t1, t2)
    refs = []
    for name, ids in (("t1", t1), ("t2", t2)):
        swapped = np.choose(ids, [1, 0, 2, 3, 4, 5]).astype(np.uint8)
        path = write_raster(tmp_path / f"{name}.tif", swapped)
        colours = {c.id: (*c.color, 255) for c in ISPRS_CLASSES}
        colours[0], colours[1] = colours[1], colours[0]
        with rasterio.open(path, "r+") as ds:
            ds.write_colormap(1, colours)
        refs.append(path)
    result = evaluate_rasters(pred, refs[0], tmp_path / "m.json", reference_t2=refs[1])
    said = [w for w in result.get("warnings", []) if "colour table" in w]
    assert len(said) == 2
    assert said[0].startswith(f"reference {refs[0]}:") and said[1].startswith(f"reference t2 {refs[1]}:")


def test_each_land_cover_reference_is_checked_and_named(tmp_path: Path) -> None:
    """The checks of the t1 reference were not made of the t2 one: a t2 raster declaring nodata 0 (a class) and a
    t2 layer covering part of the scene lost pixels unsaid, and with layers for both dates the coverage warning
    named the t1 file only. Now each reference is checked, and said by its own file."""
    import geopandas as gpd
    from rasterio.features import shapes
    from rasterio.transform import from_origin
    from shapely.geometry import shape

    t1, t2, change = _scene(2)
    pred = _semantic_raster(tmp_path / "c.tif", change, t1, t2)
    ref1 = write_raster(tmp_path / "t1.tif", t1)
    nd0 = write_raster(tmp_path / "t2_nd0.tif", t2, nodata=0)
    result = evaluate_rasters(pred, ref1, tmp_path / "a.json", reference_t2=nd0)
    said = [w for w in result.get("warnings", []) if "nodata 0" in w]
    assert len(said) == 1 and said[0].startswith(f"reference t2 {nd0}:")

    layers = []
    for name, ids, cut in (("t1", t1, 3), ("t2", t2, 4)):  # each layer leaves out another class
        recs = [(shape(g), int(v)) for g, v in shapes(ids, transform=from_origin(500000, 5000000, 1, 1)) if v != cut]
        path = tmp_path / f"{name}.gpkg"
        gpd.GeoDataFrame({"class": [v for _, v in recs]}, geometry=[g for g, _ in recs],
                         crs="EPSG:32632").to_file(path)
        layers.append((path, (ids != cut).mean()))
    result = evaluate_rasters(pred, layers[0][0], tmp_path / "b.json", reference_t2=layers[1][0])
    said = [w for w in result["warnings"] if "inside its polygons" in w]
    assert len(said) == 2
    for w, role, (path, share) in zip(said, ("reference", "reference t2"), layers):
        assert w.startswith(f"{role} {path}:") and f"({share:.1%} of the prediction)" in w


def test_a_change_reference_coded_0_255_is_warned_about(tmp_path: Path) -> None:
    """A binary change reference coded 0/255 as LEVIR-CD and WHU-CD code it (255 change, no nodata declared): 255
    read as no label, every change pixel left out, F1 0 unsaid. Now said, naming the file and the recoding; the
    same reference coded 0/1 is not warned about."""
    import rasterio

    from rsmamba.classes import CHANGE_CLASSES

    _, _, change = _scene(3)
    pred = write_raster(tmp_path / "c.tif", change, nodata=255)
    with rasterio.open(pred, "r+") as ds:
        ds.set_band_description(1, "change")
        ds.update_tags(CLASS_NAMES=json.dumps([c.name for c in CHANGE_CLASSES]))
    coded = write_raster(tmp_path / "ref_0_255.tif", (change * 255).astype(np.uint8))
    result = evaluate_rasters(pred, coded, tmp_path / "a.json")
    said = [w for w in result.get("warnings", []) if "0/255" in w]
    assert len(said) == 1 and said[0].startswith(f"reference {coded}:") and '--calc "A/255"' in said[0]
    plain = write_raster(tmp_path / "ref_0_1.tif", change)
    result = evaluate_rasters(pred, plain, tmp_path / "b.json")
    assert result["per_class"]["change"]["f1"] == 1.0 and not result.get("warnings")


def test_land_cover_ids_the_table_does_not_name_are_not_scored_and_said(tmp_path: Path) -> None:
    """ISPRS-style eroded labels (boundary code 6, no class of the 6-class table) for both dates: plain evaluate
    leaves such ids unscored with a warning, --reference-t2 refused the run ('reference: land-cover id 6 ...', no
    file named). Now they are not scored, and each reference holding them is said by its file."""
    from rsmamba.evaluate import eroded_boundary_mask
    from rsmamba.metrics import semantic_change_scores_7class

    t1, t2, change = _scene(4)
    pred = _semantic_raster(tmp_path / "c.tif", change, t1, t2)
    b1, b2 = np.where(eroded_boundary_mask(t1, 1), 6, t1), np.where(eroded_boundary_mask(t2, 1), 6, t2)
    ref1 = write_raster(tmp_path / "t1_b6.tif", b1.astype(np.uint8))
    ref2 = write_raster(tmp_path / "t2_b6.tif", b2.astype(np.uint8))
    result = evaluate_rasters(pred, ref1, tmp_path / "m.json", reference_t2=ref2)
    kept = (b1 != 6) & (b2 != 6)
    assert result["pixels"] == int(kept.sum())
    want = semantic_change_scores_7class(t1[kept], t2[kept], change[kept], t1[kept], t2[kept], num_landcover=6)
    assert result["semantic_change"]["sek"] == pytest.approx(want["sek"])
    said = [w for w in result["warnings"] if "no class of the land-cover table" in w]
    assert [w.split(":")[0] for w in said] == [f"reference {ref1}", f"reference t2 {ref2}"]
    assert f"{int((b1 == 6).sum()):,} px" in said[0] and "(6)" in said[0]


def test_options_of_class_maps_given_with_a_semantic_change_raster_are_refused_for_what_it_is(tmp_path: Path) -> None:
    """--exclude 5 with --reference-t2 was refused as 'no class of the prediction's table (ids 0, 1)' though 5 is a
    land-cover class of its table, and --buildings as 'no class named building (0 no_change, 1 change)' though
    bands 2/3 carry a table with building. Now each says that the scores are band 1's change and what to give."""
    t1, t2, change = _scene(5)
    pred = _semantic_raster(tmp_path / "c.tif", change, t1, t2)
    ref1, ref2 = write_raster(tmp_path / "t1.tif", t1), write_raster(tmp_path / "t2.tif", t2)
    with pytest.raises(InputError, match=r"^--exclude 5: no class of a change raster's scores \(0 no_change, 1 "
                                         r"change\).*land-cover classes of --reference-t2 leave no score$"):
        evaluate_rasters(pred, ref1, tmp_path / "a.json", reference_t2=ref2, exclude=[5])
    import geopandas as gpd
    from shapely.geometry import box

    houses = tmp_path / "b.gpkg"
    gpd.GeoDataFrame(geometry=[box(500002, 4999990, 500006, 4999994)], crs="EPSG:32632").to_file(houses)
    with pytest.raises(InputError, match=rf"^--buildings: prediction {pred} is a change raster.*bands 2/3.*"
                                         r"--building-class 1 scores its change regions"):
        evaluate_rasters(pred, ref1, tmp_path / "b.json", reference_t2=ref2, buildings=houses)


def test_the_summary_of_a_change_raster_is_in_change_terms_when_nothing_changed(tmp_path: Path, capsys) -> None:
    """An image against itself, scored against one date's land cover for both: no change anywhere, and the
    summary line switched to a class map's 'mIoU ... mF1'. Now it keeps the change terms, n/a where 0/0."""
    from rsmamba.cli import main

    t1, _, _ = _scene(6)
    pred = _semantic_raster(tmp_path / "c.tif", np.zeros_like(t1), t1, t1)
    ref = write_raster(tmp_path / "t1.tif", t1)
    assert main(["evaluate", str(pred), str(ref), "--reference-t2", str(ref), "-o", str(tmp_path / "m.json")]) == 0
    line = capsys.readouterr().out
    assert line.startswith("change F1 n/a  IoU n/a  precision n/a  recall n/a  OA 1.0000") and "mIoU" not in \
        line.split("SCD mIoU")[0]


def test_a_predicted_change_without_a_land_cover_class_is_refused_as_any_id_past_the_table(tmp_path: Path) -> None:
    """A semantic change raster whose from_class holds 255 (its nodata) where band 1 says changed: those pixels
    dropped out of date 1's counts without a word (SeK moved; QA). 255 is refused as an id past the table is."""
    t1, t2, change = _scene(2)
    refs = write_raster(tmp_path / "t1.tif", t1), write_raster(tmp_path / "t2.tif", t2)
    good = evaluate_rasters(_semantic_raster(tmp_path / "c.tif", change, t1, t2), *refs[:1], tmp_path / "m.json",
                            reference_t2=refs[1])
    assert good["semantic_change"]["sek"] == pytest.approx(1.0)
    holed = t1.copy()
    holed[change == 1] = 255
    with pytest.raises(InputError, match=r"band from_class holds land-cover id 255 where the class table has 6 "
                                         r"classes \(0..5\)"):
        evaluate_rasters(_semantic_raster(tmp_path / "h.tif", change, holed, t2), refs[0], tmp_path / "h.json",
                         reference_t2=refs[1])
