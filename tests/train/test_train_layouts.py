"""Benchmarks read in place by ``rsmamba train`` / ``rsmamba evaluate``: naming, label decoding, crops, protocol."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import tests.helpers.layout_fixtures as F
from rsmamba.cli import main
from rsmamba.datasets.benchmark import ISPRSDataset, open_datasets
from rsmamba.datasets.layouts import decode_labels
from rsmamba.errors import InputError
from rsmamba.train.config import DEFAULTS

# The published colour tables, typed from the datasets' documentation (not imported from rsmamba).
ISPRS_PUBLISHED = {  # ISPRS 2D semantic labelling contest page: class -> RGB
    (255, 255, 255): 0,  # impervious surfaces
    (0, 0, 255): 1,  # building
    (0, 255, 255): 2,  # low vegetation
    (0, 255, 0): 3,  # tree
    (255, 255, 0): 4,  # car
    (255, 0, 0): 5,  # clutter / background
}
SECOND_PUBLISHED = {  # SECOND (Yang et al., ASN): non-change, water, ground, low vegetation, tree, building, playground
    (255, 255, 255): 255,  # non-change: no land-cover label
    (0, 0, 255): 0, (128, 128, 128): 1, (0, 128, 0): 2, (0, 255, 0): 3, (128, 0, 0): 4, (255, 0, 0): 5,
}


def _data(layout: str, root: Path, **extra) -> dict:
    return {**DEFAULTS["data"], "layout": layout, "root": str(root), **extra}


def test_isprs_colours_decode_pixel_for_pixel_including_eroded_boundaries() -> None:
    colours = list(ISPRS_PUBLISHED) + [(0, 0, 0), (12, 34, 56)]  # black boundary, unknown colour
    rgb = np.array(colours, np.uint8).T.reshape(3, 1, -1)
    assert decode_labels(rgb, "isprs")[0].tolist() == list(ISPRS_PUBLISHED.values()) + [255, 255]
    rgb2 = np.array(list(SECOND_PUBLISHED), np.uint8).T.reshape(3, 1, -1)
    assert decode_labels(rgb2, "second")[0].tolist() == list(SECOND_PUBLISHED.values())
    loveda = np.arange(9, dtype=np.uint8).reshape(1, 1, 9)  # 0 no-data, 1..7 classes, 8 not a class
    assert decode_labels(loveda, "loveda")[0].tolist() == [255, 0, 1, 2, 3, 4, 5, 6, 255]
    with pytest.raises(InputError, match="RGB colour"):
        decode_labels(loveda, "isprs")


def test_isprs_layout_reads_tiles_in_place_with_dsm_and_official_splits(tmp_path: Path) -> None:
    root = F.isprs(tmp_path / "vaihingen", "vaihingen")
    d = _data("isprs", root, crop=32, crops_per_image=2, val_tiles=[30], eroded=True, dsm_source="ndsm")
    train_ds, val_ds = open_datasets(d, use_dsm=True, seed=0)
    assert isinstance(train_ds, ISPRSDataset) and len(train_ds) == 15 * 2  # 16 official train tiles, area30 held out
    assert [p.tile for p in val_ds.pairs] == ["area30"]
    assert val_ds.pairs[0].labels.name == "top_mosaic_09cm_area30_noBoundary.tif"  # eroded for scoring
    s = train_ds[0]
    assert s["image"].shape == (4, 32, 32) and s["mask"].shape == (32, 32)  # IRRG + nDSM
    # The crop's labels are exactly the colour label file's window, decoded.
    tile, origin = train_ds.items[0][0], None
    import rasterio

    with rasterio.open(train_ds.pairs[tile].labels) as src:
        full = decode_labels(src.read(), "isprs")
    r, c = (int(v[1:]) for v in s["chip_id"].split("_")[1:])
    assert np.array_equal(s["mask"].numpy(), full[r:r + 32, c:c + 32])
    # Random crops: same (seed, epoch, index) -> same crop; another epoch -> (almost surely) another.
    train_ds.set_epoch(0, 0)
    a = [train_ds[i]["chip_id"] for i in range(len(train_ds))]
    train_ds.set_epoch(0, 0)
    assert a == [train_ds[i]["chip_id"] for i in range(len(train_ds))]
    train_ds.set_epoch(0, 1)
    assert a != [train_ds[i]["chip_id"] for i in range(len(train_ds))]
    # Validation covers the whole tile (40x48) with a fixed grid of 32-px crops: 2 x 2.
    assert len(val_ds) == 4 and all(o is not None for _, o in val_ds.items)
    ev = val_ds[0]["mask"]
    assert (ev == 255).any() and (ev != 255).any()  # black boundary rows of the eroded truth are ignored
    # The test split: 17 official test tiles; Potsdam names and its DSM folder too.
    assert len(open_datasets(_data("isprs", root, val_split="test"), use_dsm=False)[1].pairs) == 17
    proot = F.isprs(tmp_path / "potsdam", "potsdam", size=(24, 24))
    p_train, p_val = open_datasets(_data("isprs", proot, city="potsdam", val_tiles=["2_10"]), use_dsm=True)
    assert p_train.pairs[0].dsm.name == "dsm_potsdam_02_11.tif" and len(p_train.pairs) == 23
    with pytest.raises(InputError, match=r"3_Ortho_IRRG: no such folder \(the potsdam images of data.variant IRRG"):
        open_datasets(_data("isprs", proot, city="potsdam", variant="IRRG"), use_dsm=False)


def test_loveda_and_change_layouts(tmp_path: Path) -> None:
    lroot = F.loveda(tmp_path / "loveda")
    tr, va = open_datasets(_data("loveda", lroot, crop=16), use_dsm=False)
    assert len(tr) == 4 and len(va) == 4 and tr[0]["image"].shape == (3, 16, 16)
    assert va[0]["mask"].shape == (32, 32) and (va[0]["mask"][:2] == 255).all()  # no-data rows
    assert [c["name"] for c in tr.info.classes][:2] == ["background", "building"]
    sroot = F.second(tmp_path / "second")
    tr, va = open_datasets(_data("second", sroot, val_split="test", crop=16), use_dsm=False)
    s = tr[0]
    assert {"image", "image2", "mask", "mask2", "change"} <= set(s) and s["image2"].shape == (3, 16, 16)
    assert torch.equal(s["mask"] == 255, s["change"] == 0) and len(tr.info.classes) == 6
    croot = F.landsat_scd(tmp_path / "landsat")
    tr, va = open_datasets(_data("landsat-scd", croot), use_dsm=False)
    assert len(tr) == 3 and len(va) == 3 and [c["name"] for c in tr.info.classes] == [
        "farmland", "desert", "building", "water"]
    with pytest.raises(InputError, match="has no DSM"):
        open_datasets(_data("loveda", lroot), use_dsm=True)


def test_evaluate_layout_scores_with_the_isprs_protocol(tmp_path: Path, capsys) -> None:
    import rasterio

    root = F.isprs(tmp_path / "v", "vaihingen", size=(24, 24))
    ref = root / "ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE" / "top_mosaic_09cm_area2_noBoundary.tif"
    full = root / "ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE" / "top_mosaic_09cm_area2.tif"
    with rasterio.open(full) as src:
        ids = decode_labels(src.read(), "isprs").astype(np.uint8)
    ids[ids == 5] = 1  # clutter predicted as building: clutter leaves the means, building's IoU drops
    pred = tmp_path / "pred.tif"
    F.write(pred, ids)
    out = tmp_path / "m.json"
    assert main(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "plain.json")]) == 2  # colours, no --layout
    assert "ISPRS colour labels (3 bands), not class ids; pass --layout isprs" in capsys.readouterr().err  # not red as ids
    assert main(["evaluate", str(pred), str(ref), "-o", str(out), "--layout", "isprs"]) == 0
    result = json.loads(out.read_text())
    assert result["conventions"]["excluded_from_means"] == ["clutter"]
    with rasterio.open(ref) as src:
        truth = decode_labels(src.read(), "isprs")
    scored = truth != 255  # black boundaries of the eroded truth are not scored
    assert sum(v["support"] for v in result["per_class"].values()) == int(scored.sum())
    p, t = ids[scored].astype(int), truth[scored]
    ious = [((p == c) & (t == c)).sum() / ((p == c) | (t == c)).sum() for c in range(5) if ((p == c) | (t == c)).any()]
    assert result["miou"] == pytest.approx(float(np.mean(ious)))
    assert result["per_class"]["building"]["iou"] == pytest.approx(((t == 1).sum()) / ((t == 1) | (t == 5)).sum())
    # a result coded in the benchmark's colours, as ISPRS results are submitted: its red band was read as ids
    # (mIoU 0.01 for 0.66, exit 0); with the layout it scores as the ids do, without it it is refused
    from rsmamba.classes import ISPRS_CLASSES

    colours = np.array([c.color for c in ISPRS_CLASSES], np.uint8)
    coded = tmp_path / "pred_rgb.tif"
    with rasterio.open(pred) as src:
        profile = {**src.profile, "count": 3, "photometric": "RGB"}
    with rasterio.open(coded, "w", **profile) as dst:
        dst.write(colours[ids].transpose(2, 0, 1))
    assert main(["evaluate", str(coded), str(ref), "-o", str(tmp_path / "rgb.json"), "--layout", "isprs"]) == 0
    capsys.readouterr()
    again = json.loads((tmp_path / "rgb.json").read_text())
    assert again["miou"] == result["miou"] and again["confusion_matrix"] == result["confusion_matrix"]
    assert main(["evaluate", str(coded), str(ref), "-o", str(tmp_path / "rgb2.json")]) == 2
    assert "prediction" in (err := capsys.readouterr().err) and "pass --layout isprs to read its colours" in err
    assert main(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "m.tif"), "--layout", "isprs"]) == 2
    assert "is the scores' JSON" in capsys.readouterr().err and not (tmp_path / "m.tif").exists()  # JSON in a .tif


def test_train_runs_on_each_layout(tmp_path: Path) -> None:
    from rsmamba.checkpoint import load_checkpoint
    from rsmamba.train import train

    cases = [
        ("isprs", F.isprs(tmp_path / "v", "vaihingen", size=(24, 24)), "fcn_baseline", {"val_tiles": [30]}, "ce"),
        # with the DSM: its mean was a numpy float64 that made the run's own checkpoints unreadable
        ("isprs", F.isprs(tmp_path / "vd", "vaihingen", size=(24, 24)), "fcn_baseline",
         {"val_tiles": [30], "use_dsm": True}, "ce"),
        ("loveda", F.loveda(tmp_path / "l", n=1, size=16), "fcn_baseline", {}, "ce"),
        ("second", F.second(tmp_path / "s", n=2, size=16), "siam_diff_baseline", {"val_split": "test"},
         {"name": "mambafcs"}),
        ("landsat-scd", F.landsat_scd(tmp_path / "c", n=2, size=16), "siam_diff_baseline", {}, {"name": "mambafcs"}),
    ]
    for layout, root, model, extra, loss in cases:
        cfg = {"data": {"root": str(root), "layout": layout, "batch_size": 2, "crop": 16, **extra},
               "model": {"name": model, "kwargs": {"width": 8}}, "loss": loss, "train": {"epochs": 1, "seed": 0},
               "out": str(tmp_path / f"run-{layout}-{len(extra)}"), "tensorboard": False}
        result = train(cfg, progress=False)
        ck = load_checkpoint(result.last)
        n = {"isprs": 6, "loveda": 7, "second": 6, "landsat-scd": 4}[layout]
        assert len(ck["classes"]) == n and ck["model_kwargs"]["num_classes"] == n, layout
        assert "val_miou" in result.history[-1], layout
        assert ck["data_fingerprint"]["layout"] == layout and ck["data_fingerprint"]["files"] > 0, layout


def test_resume_refuses_another_benchmark_and_takes_the_same_one_moved(tmp_path: Path) -> None:
    """A benchmark read in place had no fingerprint: a run resumed on another dataset under data.root compared
    best.pt's val scores of two datasets, without a word."""
    import shutil

    from rsmamba.train import train

    root = F.loveda(tmp_path / "l", n=1, size=16)
    cfg = {"data": {"root": str(root), "layout": "loveda", "batch_size": 2, "crop": 16},
           "model": {"name": "fcn_baseline", "kwargs": {"width": 8}}, "train": {"epochs": 1, "seed": 0},
           "out": str(tmp_path / "run"), "tensorboard": False}
    train(cfg, progress=False)
    other = F.loveda(tmp_path / "other", n=2, size=16)
    with pytest.raises(InputError, match=r"on the benchmark files it trained on, .* the run's were \d+ files of the "
                                         r"loveda layout in .*, these are \d+ files of the loveda layout"):
        train(cfg, [f"data.root={other}", "train.epochs=2"], resume=True, progress=False)
    moved = tmp_path / "moved"
    shutil.copytree(root, moved)
    assert train(cfg, [f"data.root={moved}", "train.epochs=2"], resume=True, progress=False).epochs_run == 2


def test_isprs_val_tiles_must_name_training_tiles(tmp_path: Path) -> None:
    """An unquoted Potsdam 2_10 is YAML's number 210: no tile was held out, validation was off without a
    word and the tiles meant for it were trained on; Vaihingen 31 is a test tile."""
    from rsmamba.train.config import load_config

    proot = F.isprs(tmp_path / "potsdam", "potsdam", size=(24, 24))
    cfg_file = tmp_path / "p.yaml"
    cfg_file.write_text(f"data: {{layout: isprs, city: potsdam, root: {proot}, val_tiles: [2_10, '3_10']}}\n")
    d = load_config(cfg_file)["data"]
    assert d["val_tiles"] == [210, "3_10"]  # as YAML reads it
    with pytest.raises(InputError, match=r"210 is no potsdam training tile \(YAML read an unquoted 2_10 "):
        open_datasets(d, use_dsm=False)
    vroot = F.isprs(tmp_path / "vaihingen", "vaihingen", size=(24, 24))
    with pytest.raises(InputError, match="31 is no vaihingen training tile"):
        open_datasets(_data("isprs", vroot, val_tiles=[31, 30]), use_dsm=False)
    _, val = open_datasets(_data("isprs", vroot, val_tiles=["area30", 5]), use_dsm=False)
    assert [p.tile for p in val.pairs] == ["area5", "area30"]


def test_isprs_missing_eroded_labels_dsm_of_another_size_and_unreadable_colours(tmp_path: Path, caplog) -> None:
    """Each was silent: validation off for the whole run (every shipped ISPRS recipe scores on eroded
    labels), a DSM channel 75 % zeros, labels re-saved with lossy compression 78 % ignored."""
    import shutil

    import rasterio

    root = F.isprs(tmp_path / "p", "potsdam", size=(24, 24))
    shutil.rmtree(root / "5_Labels_all_noBoundary")
    with pytest.raises(InputError, match=r"no eroded \(boundary-free\) labels for the potsdam test tiles 2_13, .*"
                                         r"5_Labels_all_noBoundary/top_potsdam_2_13_label_noBoundary.tif.*data.eroded=false"):
        open_datasets(_data("isprs", root, city="potsdam", val_split="test", eroded=True), use_dsm=False)
    # The participants' folder (the 24 training tiles' labels) is read too; with no test labels at all,
    # validation is off, and said so at the start.
    (root / "5_Labels_all").rename(root / "5_Labels_for_participants")
    for t in ("2_13", "2_14", "3_13", "3_14", "4_13", "4_14", "4_15", "5_13", "5_14", "5_15", "6_13", "6_14",
              "6_15", "7_13"):
        (root / "5_Labels_for_participants" / f"top_potsdam_{t}_label.tif").unlink()
    with caplog.at_level("WARNING", logger="rsmamba"):
        train_ds, val_ds = open_datasets(_data("isprs", root, city="potsdam", val_split="test"), use_dsm=False)
    assert len(train_ds.pairs) == 24 and val_ds is None
    assert "no validation split 'test'" in caplog.text and "best.pt follows the training loss" in caplog.text
    # A DSM of half the size is refused, as a label of another size is.
    vroot = F.isprs(tmp_path / "v", "vaihingen", size=(24, 24))
    dsm = vroot / "dsm" / "dsm_09cm_matching_area1.tif"
    with rasterio.open(dsm) as src:
        half = src.read(1)[::2, ::2].copy()
    F.write(dsm, half)
    with pytest.raises(InputError, match=r"dsm_09cm_matching_area1.tif: 12 x 12 px, its image"):
        open_datasets(_data("isprs", vroot, use_dsm=True), use_dsm=True)
    open_datasets(_data("isprs", vroot), use_dsm=False)  # not read without a DSM
    # Colours off by a grey level: named in a warning, once per file.
    label = vroot / "gts_for_participants" / "top_mosaic_09cm_area1.tif"
    with rasterio.open(label) as src:
        rgb = src.read()
    F.write(label, np.where(rgb < 255, rgb + 1, rgb - 1).astype(np.uint8))
    train_ds, _ = open_datasets(_data("isprs", vroot, crop=24), use_dsm=False)
    caplog.clear()
    with caplog.at_level("WARNING", logger="rsmamba"):
        train_ds[0], train_ds[0]
    assert caplog.text.count("top_mosaic_09cm_area1.tif: 100 % of the pixels read are of no class") == 1


def test_score_checkpoint_refuses_a_split_without_labels(tmp_path: Path, caplog) -> None:
    """LoveDA's Test/ has no masks (its labels are on the benchmark server): a file of empty scores, exit 0."""
    import shutil

    from rsmamba.train import score_checkpoint, train

    root = F.loveda(tmp_path / "loveda")
    for domain in ("Urban", "Rural"):
        shutil.copytree(root / "Val" / domain / "images_png", root / "Test" / domain / "images_png")
    cfg = {"data": {**_data("loveda", root), "batch_size": 2}, "model": {"name": "fcn_baseline", "kwargs": {"width": 4}},
           "train": {"epochs": 1}, "tensorboard": False, "out": str(tmp_path / "run")}
    result = train(cfg, progress=False)
    test_cfg = {**cfg, "data": {**cfg["data"], "val_split": "test"}}
    with caplog.at_level("WARNING", logger="rsmamba"), pytest.raises(
            InputError, match=r"LoveDA keeps its Test labels on its benchmark server\): no labelled split 'test'"):
        score_checkpoint(test_cfg, checkpoint=result.best, progress=False)
    assert "best.pt follows the training loss" not in caplog.text  # nothing is trained under --test


def test_isprs_label_of_one_band_is_refused_when_the_dataset_opens(tmp_path: Path, capsys) -> None:
    """GeoSeg and mmseg store ISPRS labels as 1-band index or palette images: such a file where the layout
    wants the RGB label was a traceback (IndexError) at its first crop, mid-epoch, with exit 1."""
    import rasterio

    root = F.isprs(tmp_path / "v", "vaihingen", size=(24, 24))
    index = root / "gts_for_participants" / "top_mosaic_09cm_area1.tif"
    with rasterio.open(index) as src:
        F.write(index, decode_labels(src.read(), "isprs").astype(np.uint8))  # ids 0..5, one band
    with pytest.raises(InputError, match=r"top_mosaic_09cm_area1.tif: 1-band label; isprs labels are RGB colour"):
        open_datasets(_data("isprs", root), use_dsm=False)
    args = ["train", "--dry-run", "--set", f"data.root={root}", "--set", "data.layout=isprs", "--set",
            "model.name=fcn_baseline", "--set", "data.crop=16", "--set", f"out={tmp_path / 'run'}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "top_mosaic_09cm_area1.tif: 1-band label" in err and "Traceback" not in err
    # A palette (colour table) TIFF as the eroded label of a test tile: refused when validation opens.
    root2 = F.isprs(tmp_path / "v2", "vaihingen", size=(24, 24))
    eroded = root2 / "ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE" / "top_mosaic_09cm_area2_noBoundary.tif"
    with rasterio.open(eroded) as src:
        ids = decode_labels(src.read(), "isprs").astype(np.uint8)
    with rasterio.open(eroded, "w", driver="GTiff", width=24, height=24, count=1, dtype="uint8",
                       photometric="palette") as dst:
        dst.write(ids[None])
        dst.write_colormap(1, {i: (*c, 255) for i, c in enumerate(F.ISPRS_RGB)})
    with pytest.raises(InputError, match=r"area2_noBoundary.tif: 1-band label"):
        open_datasets(_data("isprs", root2, val_split="test", eroded=True), use_dsm=False)


def test_a_scored_split_missing_some_labels_is_refused_naming_them(tmp_path: Path) -> None:
    """ISPRS test tiles without any label file were dropped from validation and --test without a word (a
    "Vaihingen test" score over 14 of its 17 tiles); LoveDA Val images without a mask were kept as
    all-ignore, scored nothing, and counted in the split's printed and recorded sample count."""
    root = F.isprs(tmp_path / "v", "vaihingen", size=(24, 24))
    for n in (2, 4, 6):
        (root / "ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE" / f"top_mosaic_09cm_area{n}.tif").unlink()
        (root / "ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE"
         / f"top_mosaic_09cm_area{n}_noBoundary.tif").unlink()
    for eroded in (True, False):
        with pytest.raises(InputError, match=r"no (eroded )?label file for the vaihingen test tiles area2, area4, "
                                             r"area6 \(e\.g\. .*area2.*\), while 14 of its 17 tiles have one"):
            open_datasets(_data("isprs", root, val_split="test", eroded=eroded), use_dsm=False)
    # Held-out training tiles are the user's choice: one without labels is refused too.
    (root / "gts_for_participants" / "top_mosaic_09cm_area30.tif").unlink()
    (root / "ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE" / "top_mosaic_09cm_area30.tif").unlink()
    with pytest.raises(InputError, match=r"vaihingen val tiles area30"):
        open_datasets(_data("isprs", root, val_tiles=[30], val_split="val"), use_dsm=False)
    lroot = F.loveda(tmp_path / "loveda")
    gone = sorted((lroot / "Val").rglob("masks_png/*.png"))[0]
    gone.unlink()
    with pytest.raises(InputError, match=f"{gone}: missing from the LoveDA layout \\(Val masks\\)"):
        open_datasets(_data("loveda", lroot), use_dsm=False)
    # A split without any label is no split (LoveDA's Test): validation is off, and said (as before).
    for mask in (lroot / "Val").rglob("masks_png/*.png"):
        mask.unlink()
    assert open_datasets(_data("loveda", lroot), use_dsm=False)[1] is None


def test_evaluate_layout_warns_about_undecodable_reference_pixels_and_refuses_a_mostly_undecodable_one(
        tmp_path: Path, capsys) -> None:
    """evaluate --layout scored only the pixels it could decode, without a word: 1,816 of 4,096 of a label
    re-saved with lossy compression, 64 of the orthophoto given as the label by mistake."""
    import rasterio

    root = F.isprs(tmp_path / "p", "potsdam", size=(32, 32))
    label = root / "5_Labels_all" / "top_potsdam_2_13_label.tif"
    with rasterio.open(label) as src:
        rgb = src.read()
    pred = tmp_path / "pred.tif"
    F.write(pred, decode_labels(rgb, "isprs").astype(np.uint8))
    rng = np.random.default_rng(0)
    for share, name in ((0.2, "some"), (0.7, "most")):
        noisy = rgb.astype(int)
        hit = rng.random(rgb.shape[1:]) < share
        noisy[:, hit] = np.clip(noisy[:, hit] + rng.choice([-2, -1, 1, 2], (3, int(hit.sum()))), 0, 255)
        F.write(tmp_path / f"{name}.tif", noisy.astype(np.uint8))
    out = tmp_path / "m.json"
    assert main(["evaluate", str(pred), str(tmp_path / "some.tif"), "--layout", "isprs", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    said = r"reference \S*some.tif: 1\d % of the pixels read are of no class of the layout"  # clipped: not all
    assert re.search(said, err)
    assert any(re.search(said, w) for w in json.loads(out.read_text())["warnings"])
    for ref in (tmp_path / "most.tif", root / "2_Ortho_RGB" / "top_potsdam_2_13_RGB.tif"):
        assert main(["evaluate", str(pred), str(ref), "--layout", "isprs", "-o", str(tmp_path / "x.json")]) == 2
        assert f"reference {ref}: " in capsys.readouterr().err and not (tmp_path / "x.json").exists()
    # The layouts' own no-class pixels (ISPRS's black eroded boundaries, LoveDA's 0) are no such pixels.
    eroded = root / "5_Labels_all_noBoundary" / "top_potsdam_2_13_label_noBoundary.tif"
    assert main(["evaluate", str(pred), str(eroded), "--layout", "isprs", "-o", str(out), "--overwrite"]) == 0
    assert "warnings" not in json.loads(out.read_text())


def test_evaluate_layout_refuses_a_prediction_of_another_class_table(tmp_path: Path, capsys) -> None:
    """A LoveDA map scored with --layout isprs was scored under ISPRS's names (its background as impervious,
    its agriculture left out) without a word: the prediction's own table was never read."""
    import rasterio

    root = F.isprs(tmp_path / "p", "potsdam", size=(24, 24))
    label = root / "5_Labels_all" / "top_potsdam_2_13_label.tif"
    with rasterio.open(label) as src:
        ids = decode_labels(src.read(), "isprs").astype(np.uint8)
    from rsmamba.datasets.benchmark import layout_classes

    def prediction(name: str, tags: dict) -> Path:
        path = tmp_path / name
        F.write(path, ids)
        with rasterio.open(path, "r+") as dst:
            dst.update_tags(**tags)
        return path

    loveda = prediction("lv.tif", {"CLASSES": json.dumps(layout_classes("loveda")),
                                   "CLASS_NAMES": json.dumps([c["name"] for c in layout_classes("loveda")])})
    assert main(["evaluate", str(loveda), str(label), "--layout", "isprs", "-o", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "its classes (0 background, 1 building, 2 road" in err and "the isprs layout's (0 impervious, 1 building" in err
    assert not (tmp_path / "x.json").exists()
    names_only = prediction("b.tif", {"CLASS_NAMES": json.dumps(["background", "building"])})  # a --burn model's
    assert main(["evaluate", str(names_only), str(label), "--layout", "isprs", "-o", str(tmp_path / "x.json")]) == 2
    # The layout's own table, or none at all, is scored as before.
    own = prediction("own.tif", {"CLASSES": json.dumps(layout_classes("isprs"))})
    for pred in (own, prediction("plain.tif", {})):
        out = tmp_path / f"{pred.stem}.json"
        assert main(["evaluate", str(pred), str(label), "--layout", "isprs", "-o", str(out)]) == 0
        assert json.loads(out.read_text())["miou"] == pytest.approx(1.0)


def test_isprs_val_tiles_are_validated_on_whatever_val_split_says_and_test_scores_the_test_tiles(
        tmp_path: Path) -> None:
    """The shipped recipes say val_split: test with "set data.val_tiles to keep test unseen": the tiles left
    training, and validation (best.pt) still ran on the 17 test tiles; the held-out tile was used nowhere."""
    from rsmamba.train.config import load_config

    root = F.isprs(tmp_path / "v", "vaihingen", size=(24, 24))
    d = load_config("mafmamba_vaihingen", [f"data.root={root}", "data.crop=16", "data.crop_stride=null",
                                           "data.val_tiles=[30]"])["data"]
    assert d["val_split"] == "test"
    train_ds, val_ds = open_datasets(d, use_dsm=False)
    assert "area30" not in [p.tile for p in train_ds.pairs] and [p.tile for p in val_ds.pairs] == ["area30"]
    _, scored = open_datasets(d, use_dsm=False, scoring=True)  # train --test: data.val_split, the test tiles
    assert len(scored.pairs) == 17 and "area30" not in [p.tile for p in scored.pairs]
    assert len(open_datasets({**d, "val_tiles": []}, use_dsm=False)[1].pairs) == 17  # none held out: test tiles


def test_a_folder_of_another_layout_is_named_with_the_settings_that_read_it(tmp_path: Path) -> None:
    """A Potsdam recipe pointed at a chip folder listed its 48 tile names as missing; a chip config pointed at a
    benchmark asked for tiling.json: neither said what the folder is, nor what reads it."""
    from tests.helpers.scenes import write_chips

    roots = {"potsdam": F.isprs(tmp_path / "potsdam", "potsdam"), "vaihingen": F.isprs(tmp_path / "v", "vaihingen"),
             "loveda": F.loveda(tmp_path / "loveda"), "second": F.second(tmp_path / "second"),
             "landsat-scd": F.landsat_scd(tmp_path / "landsat"), "chips": write_chips(tmp_path / "c", size=64)}
    said = {"potsdam": "data.layout=isprs and data.city=potsdam", "vaihingen": "data.layout=isprs and data.city="
            "vaihingen", "loveda": "data.layout=loveda", "second": "data.layout=second",
            "landsat-scd": "data.layout=landsat-scd", "chips": "data.layout=chips"}
    for name, root in roots.items():
        for wrong in ("chips", "loveda") if name not in ("chips", "loveda") else ("second",):
            with pytest.raises(InputError) as caught:
                open_datasets(_data(wrong, root, city="vaihingen"), use_dsm=False)
            assert str(caught.value).endswith(f"set {said[name]}") and len(caught.value.problems) == 1, name
    with pytest.raises(InputError, match=r"holds the ISPRS Potsdam layout, not the ISPRS Vaihingen layout"):
        open_datasets(_data("isprs", roots["potsdam"], city="vaihingen"), use_dsm=False)
    (roots["potsdam"] / "2_Ortho_RGB" / "top_potsdam_2_10_RGB.tif").unlink()  # its own layout: its own problem
    with pytest.raises(InputError, match="top_potsdam_2_10_RGB.tif: missing from the potsdam layout"):
        open_datasets(_data("isprs", roots["potsdam"], city="potsdam"), use_dsm=False)


def test_benchmark_checkpoints_record_their_band_colours_and_are_checked_by_them(tmp_path: Path, caplog) -> None:
    """A Vaihingen (NIR, R, G) model was tested on Potsdam's RGB tiles, and run on RGB orthos, without a word: a
    benchmark checkpoint recorded no band colours. Its tiles declare red, green, blue (as the published ones do)."""
    import rasterio

    from rsmamba.checkpoint import load_checkpoint
    from rsmamba.train import score_checkpoint, train

    runs = {}
    for city in ("vaihingen", "potsdam"):
        root = F.isprs(tmp_path / city, city, size=(24, 24))
        cfg = {"data": {"root": str(root), "layout": "isprs", "city": city, "batch_size": 2, "crop": 16,
                        "samples_per_epoch": 2},
               "model": {"name": "fcn_baseline", "kwargs": {"width": 4}}, "train": {"epochs": 1, "seed": 0},
               "out": str(tmp_path / f"run-{city}"), "tensorboard": False}
        runs[city] = (cfg, train(cfg, progress=False).last)
    vai = load_checkpoint(runs["vaihingen"][1])["bands"]
    assert vai["colours"] == ["nir", "red", "green"] and vai["declared"] == ["red", "green", "blue"]
    pot = load_checkpoint(runs["potsdam"][1])["bands"]
    assert pot["colours"] == ["red", "green", "blue"] and "declared" not in pot
    for data, ckpt, bands, has_not in (("potsdam", "vaihingen", "red, green, blue", "nir"),
                                       ("vaihingen", "potsdam", "nir, red, green", "blue")):
        with pytest.raises(InputError, match=rf"the isprs images' bands are {bands}, .* reads .*; the isprs "
                                             rf"images have no {has_not}: it cannot be tested on them"):
            score_checkpoint(runs[data][0], checkpoint=runs[ckpt][1], progress=False)
    score_checkpoint(runs["vaihingen"][0], checkpoint=runs["vaihingen"][1], progress=False)  # its own: as before
    # predict: an image declaring red, green, blue (its own tiles, or an RGB ortho: nothing tells them apart) is
    # read as trained, with a warning; one declaring NIR, R, G, B is read by colour; an RGB model is not warned
    tile = tmp_path / "vaihingen" / "top" / "top_mosaic_09cm_area1.tif"
    with caplog.at_level("WARNING", logger="rsmamba"):
        assert main(["predict", str(tile), "--model", str(runs["vaihingen"][1]), "--pixel-grid",
                     "-o", str(tmp_path / "a.tif")]) == 0
    assert "declare the colours red, green, blue, as the benchmark tiles" in caplog.text
    assert "read as nir, red, green (bands 1,2,3): an image truly of red, green, blue is misread" in caplog.text
    with rasterio.open(tile) as src:
        nrg = src.read()
    nrgb = nrg[[1, 2, 2, 0]]  # R, G, B (a copy of G), NIR
    four = tmp_path / "nrgb.tif"
    with rasterio.open(four, "w", driver="GTiff", width=24, height=24, count=4, dtype="uint8") as dst:
        dst.write(nrgb)
        dst.colorinterp = [rasterio.enums.ColorInterp[c] for c in ("red", "green", "blue", "nir")]
    caplog.clear()
    with caplog.at_level("WARNING", logger="rsmamba"):
        assert main(["predict", str(four), "--model", str(runs["vaihingen"][1]), "--pixel-grid",
                     "-o", str(tmp_path / "b.tif")]) == 0
    assert "read as nir, red, green (bands 4,1,2)" in caplog.text and "misread" not in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="rsmamba"):
        assert main(["predict", str(tile), "--model", str(runs["potsdam"][1]), "--pixel-grid",
                     "-o", str(tmp_path / "c.tif")]) == 0
    assert "declare the colours" not in caplog.text



def test_potsdam_dsm_one_column_short_is_padded_by_its_last_column(tmp_path: Path, caplog) -> None:
    """The published Potsdam DSMs of tile 3_13 are 5999 x 6000 px beside their 6000 x 6000 image: the Potsdam
    recipes refused the real download ('255 x 256 px, its image ... 256 x 256 px'). Other pipelines pad the
    missing column; anything else stays refused."""
    import rasterio

    root = F.isprs(tmp_path / "p", "potsdam", size=(24, 24))
    files = [root / "1_DSM" / "dsm_potsdam_03_13.tif",
             root / "1_DSM_normalisation" / "dsm_potsdam_03_13_normalized_lastools.jpg"]
    for f in files:
        with rasterio.open(f) as src:
            F.write(f, src.read()[:, :, :-1].copy(), src.driver)
    for source in ("dsm", "ndsm"):
        caplog.clear()
        with caplog.at_level("WARNING", logger="rsmamba"):
            _, val = open_datasets(_data("isprs", root, city="potsdam", val_split="test", crop=16, dsm_source=source,
                                         dsm_mode="zscore"), use_dsm=True)
            open_datasets(_data("isprs", root, city="potsdam", val_split="test", crop=16, dsm_source=source,
                                dsm_mode="zscore"), use_dsm=True)
        assert caplog.text.count("23 x 24 px, one column short of its image top_potsdam_3_13_RGB.tif (24 x 24 px), "
                                 "as the published Potsdam DSM of tile 3_13 is (a known defect); its last column "
                                 "is repeated") == 1, source
        tile = next(i for i, p in enumerate(val.pairs) if p.tile == "3_13")
        right = next(k for k, (t, o) in enumerate(val.items) if t == tile and o == (0, 8))
        d = val[right]["image"][-1]  # the DSM channel of the crop at the right edge: columns 8..23
        assert torch.equal(d[:, -1], d[:, -2]), source  # the last column repeated, not no data (0)
    # two columns short, or a label one column short: refused as before
    with rasterio.open(files[0]) as src:
        F.write(files[0], src.read()[:, :, :-1].copy())
    with pytest.raises(InputError, match=r"dsm_potsdam_03_13.tif: 22 x 24 px, its image top_potsdam_3_13_RGB.tif"):
        open_datasets(_data("isprs", root, city="potsdam", val_split="test"), use_dsm=True)
    label = root / "5_Labels_all" / "top_potsdam_3_13_label.tif"
    with rasterio.open(label) as src:
        F.write(label, src.read()[:, :, :-1].copy())
    with pytest.raises(InputError, match=r"top_potsdam_3_13_label.tif: 23 x 24 px, its image"):
        open_datasets(_data("isprs", root, city="potsdam", val_split="test"), use_dsm=False)


def test_second_release_folder_is_named_with_the_split_it_needs(tmp_path: Path, capsys) -> None:
    """SECOND is released as SECOND_train_set/{im1,im2,label1,label2}, with no test set; the layout reads
    <root>/train and <root>/test, and said only 'no SECOND images in im1/' of the train folder it lacked."""
    import shutil

    root = F.second(tmp_path / "s", n=2, size=16)
    shutil.copytree(root / "train", tmp_path / "r" / "SECOND_train_set")
    args = ["train", "--config", "mambafcs_second", "--set", f"data.root={tmp_path / 'r'}", "--set",
            "model.name=mambafcs_tiny", "--dry-run", "--device", "cpu", "--out", str(tmp_path / "e")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "the SECOND layout is <root>/train/ and <root>/test/ (data.train_split, data.val_split), each with " \
           "im1, im2, label1, label2" in err
    assert "holds SECOND_train_set/: SECOND's release (SECOND_train_set, no test set) must be split into train/ " \
           "and test/" in err and len(err.strip().splitlines()) == 1


def test_a_missing_root_folder_or_city_is_said_once(tmp_path: Path) -> None:
    """A data.root not there listed 16 files 'missing from the vaihingen layout'; no dsm/ folder, or Potsdam's
    RGBIR variant with only 2_Ortho_RGB, listed every tile; data.city=munich was 'holds the ISPRS Vaihingen
    layout, not the ISPRS Munich layout'."""
    import shutil

    with pytest.raises(InputError, match=r"^\S+/nothere: no such folder \(data.root: the isprs download\)$"):
        open_datasets(_data("isprs", tmp_path / "nothere"), use_dsm=False)
    root = F.isprs(tmp_path / "v", "vaihingen", size=(24, 24))
    with pytest.raises(InputError, match=r"^data.city must be vaihingen or potsdam, got 'munich'$"):
        open_datasets(_data("isprs", root, city="munich"), use_dsm=False)
    shutil.rmtree(root / "dsm")
    with pytest.raises(InputError) as err:
        open_datasets(_data("isprs", root), use_dsm=True)
    assert str(err.value) == f"{root / 'dsm'}: no such folder (the vaihingen DSMs, data.use_dsm with data.dsm_source dsm)"
    proot = F.isprs(tmp_path / "p", "potsdam", size=(24, 24))
    with pytest.raises(InputError) as err:
        open_datasets(_data("isprs", proot, city="potsdam", variant="RGBIR", mean=[0] * 4, std=[1] * 4), use_dsm=False)
    assert str(err.value) == (f"{proot / '4_Ortho_RGBIR'}: no such folder (the potsdam images of data.variant RGBIR; "
                              "found 2_Ortho_RGB: set data.variant=RGB)")



def test_a_benchmark_run_without_val_scores_names_tiles_not_chips(tmp_path: Path) -> None:
    """The summary of a benchmark run with no labelled test tile (the participants' download) blamed 'no val chip'."""
    import shutil

    from rsmamba.train import train

    root = F.isprs(tmp_path / "v", "vaihingen", size=(24, 24))
    for folder in ("ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE",
                   "ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE"):
        shutil.rmtree(root / folder)
    cfg = {"data": {"root": str(root), "layout": "isprs", "batch_size": 2, "crop": 16, "samples_per_epoch": 2},
           "model": {"name": "fcn_baseline", "kwargs": {"width": 4}}, "train": {"epochs": 1, "seed": 0},
           "out": str(tmp_path / "run"), "tensorboard": False}
    text = train(cfg, progress=False).describe()
    assert "no val score: no val tile with a labelled pixel" in text and "chip" not in text
