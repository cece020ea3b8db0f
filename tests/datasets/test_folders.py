"""``rsmamba.datasets.folders``: several chip folders train one model. Their statistics pool as the union of their
pixels would give, and every field on which they disagree is said at once, each naming its folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rsmamba.datasets.benchmark import open_datasets, use_normalization
from rsmamba.datasets.chips import chips_fingerprint, read_tiling
from rsmamba.datasets.folders import pooled_tiling
from rsmamba.errors import InputError, MissingSplit
from rsmamba.tile import tile_scene
from tests.helpers.rasters import write_raster
from tests.helpers.scenes import manifest_rows, save_manifest, scene_arrays


def _tile(folder: Path, image: np.ndarray, labels: np.ndarray, dsm: np.ndarray, **kw) -> Path:
    folder.mkdir(parents=True)
    paths = [write_raster(folder / f"{name}.tif", array, res=0.5)
             for name, array in (("image", image), ("labels", labels), ("dsm", dsm))]
    kw.setdefault("split", (0.5, 0.5, 0.0))
    tile_scene(paths[0], folder / "chips", labels=paths[1], dsm=paths[2], size=32, block=32, **kw)
    return folder / "chips"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    """Two scenes of other sizes and ground heights, each tiled, and their concatenation (side by side) tiled."""
    root = tmp_path_factory.mktemp("folders")
    a, b = scene_arrays(64, 1), scene_arrays(64, 2)
    b = (b[0][:, :, :32] // 2 + 60, b[1][:, :32], b[2][:, :32] + 7.5)  # darker, 7.5 m higher, half as wide
    both = [np.concatenate([x, y], axis=-1) for x, y in zip(a, b)]
    return {"a": _tile(root / "a", *a), "b": _tile(root / "b", *b), "both": _tile(root / "both", *both),
            # every chip a train chip: the statistics (the train chips') are the whole scene's
            **{f"{name}_all": _tile(root / f"{name}_all", *arrays, split=(1, 0, 0))
               for name, arrays in (("a", a), ("b", b), ("both", both))}}


def _data(roots: list[Path], **kw) -> dict:
    return {"root": [str(r) for r in roots], "layout": "chips", "train_split": "train", "val_split": "val",
            "dsm_mode": "zscore", **kw}


def test_pooled_statistics_are_those_of_the_union_of_the_pixels(scenes: dict[str, Path], tmp_path: Path) -> None:
    whole = json.loads((scenes["both_all"] / "tiling.json").read_text())
    train_ds, val_ds = open_datasets(_data([scenes["a"], scenes["b"]]), use_dsm=True)
    union = pooled_tiling([read_tiling(scenes["b_all"]), read_tiling(scenes["a_all"])])
    for key in ("image", "dsm"):
        got, want = union.raw["stats"][key], whole["stats"][key]
        for field in ("mean", "std", "minimum", "maximum"):
            assert got[field] == pytest.approx(want[field], rel=1e-9), (key, field)
        assert got["pixels"] == want["pixels"]
    assert union.raw["dsm_range"] == pytest.approx(whole["dsm_range"])
    # every chip of both folders is normalised with the pooled numbers, as the checkpoint records them
    pooled = pooled_tiling([read_tiling(scenes["b"]), read_tiling(scenes["a"])]).raw["stats"]
    norm = train_ds.info.normalization("zscore")
    assert norm["image"]["mean"] == pytest.approx(pooled["image"]["mean"], rel=1e-9)
    assert norm["dsm"]["mean"] == pytest.approx(pooled["dsm"]["mean"][0], rel=1e-9)
    assert {tuple(p.info.image_mean) for p in train_ds.parts + val_ds.parts} == {tuple(train_ds.info.image_mean)}
    assert len(train_ds) + len(val_ds) == 6 and train_ds.in_chans == 4
    assert {s["chip_id"].rsplit("/", 1)[0] for s in train_ds} == {str(scenes["a"]), str(scenes["b"])}

    # folders tiled before tile recorded the pixel counts: the sample compute_stats read, from the chips' extent
    older = tmp_path / "older"
    shutil.copytree(scenes["b_all"], older)
    meta = json.loads((older / "tiling.json").read_text())
    for stats in meta["stats"].values():
        del stats["pixels"]
    (older / "tiling.json").write_text(json.dumps(meta))
    pooled = pooled_tiling([read_tiling(scenes["a_all"]), read_tiling(older)])
    assert pooled.image_mean == pytest.approx(whole["stats"]["image"]["mean"], rel=1e-9)
    assert pooled.image_std == pytest.approx(whole["stats"]["image"]["std"], rel=1e-9)
    assert pooled.dsm_std == pytest.approx(whole["stats"]["dsm"]["std"][0], rel=1e-9)


def test_minmax_scene_scales_each_folder_by_its_own_scene(scenes: dict[str, Path]) -> None:
    train_ds, _ = open_datasets(_data([scenes["a"], scenes["b"]], dsm_mode="minmax-scene"), use_dsm=True)
    for part in train_ds.parts:  # as predict scales a new scene by its own range
        lo, hi = part.info.raw["dsm_range"]
        assert part.info.normalization("minmax-scene")["dsm"]["minimum"] == lo
        dsm = part[0]["image"][-1]
        assert float(dsm.min()) >= 0.0 and float(dsm.max()) <= 1.0
    lows = sorted(p.info.raw["dsm_range"][0] for p in train_ds.parts)
    assert lows[1] - lows[0] == pytest.approx(7.5)
    assert train_ds.info.normalization("minmax-scene")["dsm"]["minimum"] == lows[0]  # the union's, recorded


def test_the_same_folders_in_another_order_are_the_same_data(scenes: dict[str, Path]) -> None:
    a, b = str(scenes["a"]), str(scenes["b"])
    assert chips_fingerprint([a, b])["sha256"] == chips_fingerprint([b, a])["sha256"]
    assert chips_fingerprint([a, b])["sha256"] != chips_fingerprint([a, str(scenes["both"])])["sha256"]
    assert chips_fingerprint(a) == chips_fingerprint(a)  # one folder: as before (older runs resume)
    one, other = (open_datasets(_data(roots), use_dsm=None)[0] for roots in ([a, b], [b, a]))
    assert [s["chip_id"] for s in one] == [s["chip_id"] for s in other]
    assert one.info.image_mean == other.info.image_mean and one.use_dsm  # both have a DSM: used
    # a checkpoint's normalisation (train --test, data.mean) goes to every folder
    use_normalization(one, {"image": {"mean": [1.0, 2.0, 3.0], "std": [4.0, 5.0, 6.0]}})
    assert all(p.info.image_mean == [1.0, 2.0, 3.0] for p in one.parts) and one.info.image_std == [4.0, 5.0, 6.0]


def _edited(source: Path, where: Path, **changes) -> Path:
    shutil.copytree(source, where)
    meta = json.loads((where / "tiling.json").read_text())
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value(meta) if callable(value) else value
    (where / "tiling.json").write_text(json.dumps(meta))
    return where


def test_every_disagreement_is_said_at_once_naming_folder_and_field(scenes: dict[str, Path], tmp_path: Path) -> None:
    a = scenes["a"]
    renamed = lambda meta: [{**c, "name": "roof"} if c["id"] == 1 else c for c in meta["classes"]]  # noqa: E731
    scale = _edited(a, tmp_path / "scale", dtype="uint16", classes=renamed)
    nodsm = _edited(a, tmp_path / "nodsm", stats=lambda meta: {**meta["stats"], "dsm": None}, size=64,
                    colours=["blue", "green", "red"])
    with pytest.raises(InputError) as info:
        open_datasets(_data([a, scale, nodsm]), use_dsm=None)
    problems = info.value.problems
    expected = [(scale, "dtype uint16"), (scale, "classes"), (nodsm, "no DSM"),
                (nodsm, "chip size 32 x 32 px (--size 64)"), (nodsm, "colours [blue, green, red]")]
    for folder, field in expected:
        assert any(p.startswith(f"{folder}: {field}") for p in problems), (folder, field, problems)
    assert len(problems) == len(expected)
    assert f"where {a} has [0 impervious, 1 building," in next(p for p in problems if "classes" in p)
    # the images alone: the folder without a DSM is no disagreement
    with pytest.raises(InputError) as info:
        open_datasets(_data([a, nodsm], use_dsm=False), use_dsm=False)
    assert sorted(p.split(":")[1].split()[0] for p in info.value.problems) == ["chip", "colours"]
    # listed twice, or a layout that is no chip folder
    with pytest.raises(InputError, match="lists .* twice"):
        open_datasets(_data([a, str(a) + "/"]), use_dsm=None)
    # ... said with a folder that is not there and every disagreement (three runs, one problem each, before)
    with pytest.raises(InputError) as info:
        open_datasets(_data([a, tmp_path / "gone", str(a) + "/", scale]), use_dsm=None)
    problems = info.value.problems
    gone = f"{tmp_path / 'gone'}: no such folder (data.root: the chip folder 'rsmamba tile' wrote)"
    assert "twice" in problems[0] and gone in problems
    for root in (str(tmp_path / "gone"), [str(tmp_path / "gone")]):  # alone, or a list of one: 'no tiling.json'
        with pytest.raises(InputError) as info:
            open_datasets({**_data([]), "root": root}, use_dsm=None)
        assert info.value.problems == [gone]
    assert any(p.startswith(f"{scale}: dtype uint16") for p in problems) and len(problems) == 4
    with pytest.raises(InputError, match=r"\(data.layout chips\), not data.layout loveda"):
        open_datasets({**_data([a, nodsm]), "layout": "loveda"}, use_dsm=None)


def test_instance_targets_and_change_chips_must_agree(scenes: dict[str, Path], tmp_path: Path) -> None:
    image, labels, dsm = scene_arrays(64, 3)
    ids = np.where(labels == 1, 1 + np.arange(labels.size).reshape(labels.shape) // 200, 0).astype(np.int32)
    write_raster(tmp_path / "ids.tif", ids, res=0.5)
    targets = _tile(tmp_path / "targets", image, labels, dsm, instance_targets=tmp_path / "ids.tif")
    open_datasets(_data([scenes["a"], targets]), use_dsm=True)  # no model.instances: the targets go unread
    with pytest.raises(InputError, match=f"^{scenes['a']}: instance_targets none, where {targets} has"):
        open_datasets(_data([targets, scenes["a"]]), use_dsm=True, instances=True)
    write_raster(tmp_path / "t2.tif", image[:, ::-1].copy(), res=0.5)
    change = tmp_path / "change"
    tile_scene(tmp_path / "targets" / "image.tif", change, t2=tmp_path / "t2.tif", labels=tmp_path / "targets" /
               "labels.tif", size=32, block=32, split=(0.5, 0.5, 0.0))
    with pytest.raises(InputError, match="kind (segmentation|change \\(two dates\\)), where .* has"):
        open_datasets(_data([scenes["a"], change]), use_dsm=False)


def test_a_scene_held_out_adds_no_chips_to_the_split_it_lacks(scenes: dict[str, Path], tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Training on one scene and validating (testing) on another was refused: 'no chips in split train'."""
    south = scene_arrays(64, 4)
    val_only = _tile(tmp_path / "val", *south, split=(0.0, 1.0, 0.0))
    test_only = _tile(tmp_path / "test", *south, split=(0.0, 0.0, 1.0))
    train_only = _tile(tmp_path / "train", *scene_arrays(64, 1), split=(1.0, 0.0, 0.0))
    with caplog.at_level("WARNING"):
        train_ds, val_ds = open_datasets(_data([val_only, train_only]), use_dsm=True)
    assert {p.root for p in train_ds.parts} == {train_only} and {p.root for p in val_ds.parts} == {val_only}
    assert len(train_ds) == len(val_ds) == 4
    said = [r.getMessage() for r in caplog.records]
    assert f"{val_only}: no chips in split 'train': training reads the other folders' chips" in said
    assert f"{train_only}: no chips in split 'val': validation reads the other folders' chips" in said
    # the model's normalisation is that of the scene it trains on: the held-out scene's pixels stay unseen
    assert train_ds.info.image_mean == pytest.approx(read_tiling(train_only).image_mean)
    assert val_ds.info.image_mean == train_ds.info.image_mean
    # a test scene listed for train --test: no chips of it in training or validation, then its test split scored
    train_ds, val_ds = open_datasets(_data([scenes["a"], test_only]), use_dsm=True)
    assert {p.root for p in train_ds.parts + val_ds.parts} == {scenes["a"]}
    _, test_ds = open_datasets(_data([scenes["a"], test_only], val_split="test"), use_dsm=True)
    assert {p.root for p in test_ds.parts} == {test_only}
    # only a union without training chips is refused
    with pytest.raises(MissingSplit, match="no chips in split 'train' in any of these folders"):
        open_datasets(_data([val_only, test_only]), use_dsm=True)


def test_bands_that_declare_no_colours_are_read_by_position_beside_declared_ones(scenes: dict[str, Path],
                                                                                   tmp_path: Path) -> None:
    """A 3-band GeoTIFF written without PHOTOMETRIC=RGB (gray, undefined, undefined) was refused beside red, green,
    blue, though predict reads that image for a model of red, green, blue."""
    a = scenes["a"]
    assert read_tiling(a).colours == ["red", "green", "blue"]
    plain = _edited(a, tmp_path / "plain", colours=["gray", "undefined", "undefined"])
    bgr = _edited(a, tmp_path / "bgr", colours=["blue", "green", "red"])
    for roots in ([plain, a], [a, plain]):  # the model records the colours that say which band is which
        train_ds, _ = open_datasets(_data(roots), use_dsm=True)
        assert train_ds.info.colours == ["red", "green", "blue"]
    assert pooled_tiling([read_tiling(plain), read_tiling(bgr)]).colours == ["blue", "green", "red"]
    with pytest.raises(InputError) as info:  # two folders declaring other colours still conflict
        open_datasets(_data([plain, a, bgr]), use_dsm=True)
    assert info.value.problems == [f"{bgr}: colours [blue, green, red], where {a} has [red, green, blue]"]


def test_chips_of_other_sizes_are_refused_before_training_naming_each_folder(scenes: dict[str, Path],
                                                                             tmp_path: Path) -> None:
    """A scene narrower than --size has narrower chips: listed beside a wider scene's, both tiling.json saying
    size 32, they failed inside the first epoch with 'the chips of one folder come from one tiling'."""
    image, labels, dsm = scene_arrays(64, 5)
    narrow = _tile(tmp_path / "narrow", image[:, :, :20].copy(), labels[:, :20].copy(), dsm[:, :20].copy())
    a = scenes["a"]
    with pytest.raises(InputError) as info:
        open_datasets(_data([a, narrow]), use_dsm=True)
    assert info.value.problems == [f"{narrow}: chip size 20 x 32 px (--size 32), where {a} has 32 x 32 px"]
    # a folder holding chips of two sizes is refused as it is alone
    two = shutil.copytree(a, tmp_path / "two")
    rows = manifest_rows(two)
    rows[0]["width"] = "16"
    save_manifest(two, rows)
    with pytest.raises(InputError, match="chips of 2 sizes") as alone:
        open_datasets({**_data([]), "root": str(two)}, use_dsm=True)
    with pytest.raises(InputError, match="chips of 2 sizes") as listed:
        open_datasets(_data([a, two]), use_dsm=True)
    assert listed.value.problems == alone.value.problems


def test_a_change_folder_beside_a_single_date_one_is_said_once_with_every_other_disagreement(
        scenes: dict[str, Path], tmp_path: Path) -> None:
    """A change folder listed with a single-date one took three runs (another field, then 'set data.use_dsm: false'
    once for each split, then the kind), and one without a DSM was told to 'tile it with --dsm', which the next run
    refused: now the kind is said first, with every other disagreement, and no DSM advice for it."""
    a = scenes["a"]
    image, labels, dsm = scene_arrays(64, 6)
    paths = {name: write_raster(tmp_path / f"{name}.tif", array, res=0.5)
             for name, array in (("image", image), ("t2", image[:, ::-1].copy()), ("labels", labels), ("dsm", dsm))}
    pair = {"t2": paths["t2"], "labels": paths["labels"], "size": 32, "block": 32, "split": (0.5, 0.5, 0.0)}
    change_dsm, change = tmp_path / "change_dsm", tmp_path / "change"
    tile_scene(paths["image"], change_dsm, dsm=paths["dsm"], **pair)
    tile_scene(paths["image"], change, **pair)
    scale = _edited(a, tmp_path / "scale", dtype="uint16")
    with pytest.raises(InputError) as info:
        open_datasets(_data([a, scale, change_dsm]), use_dsm=None)
    assert info.value.problems == [f"{change_dsm}: kind change (two dates), where {a} has segmentation",
                                   f"{scale}: dtype uint16, where {a} has uint8"]
    with pytest.raises(InputError) as info:  # 'tile it with --dsm' gave change chips with a DSM: refused too
        open_datasets(_data([a, change]), use_dsm=None)
    assert info.value.problems == [f"{change}: kind change (two dates), where {a} has segmentation"]
    with pytest.raises(InputError) as info:  # change folders alone: their DSM, once for each folder
        open_datasets(_data([change, change_dsm]), use_dsm=None)
    assert info.value.problems == [f"{change_dsm}: change chips carry one DSM only; set data.use_dsm: false"]
    train_ds, _ = open_datasets(_data([change, change_dsm]), use_dsm=False)  # the advice given is enough
    assert not train_ds.use_dsm and "image2" in train_ds[0]


def test_a_benchmark_folder_in_a_list_is_named_as_what_it_is(scenes: dict[str, Path], tmp_path: Path) -> None:
    """A Vaihingen folder listed beside chips was asked twice 'is this a folder written by rsmamba tile?'; alone
    it is told the settings that read it. Listed, it is told so once: lists are of chip folders only."""
    bench = tmp_path / "bench"
    (bench / "top").mkdir(parents=True)
    (bench / "top" / "top_mosaic_09cm_area1.tif").write_bytes(b"")
    with pytest.raises(InputError) as info:
        open_datasets(_data([scenes["a"], bench]), use_dsm=None)
    assert info.value.problems == [
        f"{bench}: holds the ISPRS Vaihingen layout, not chips written by 'rsmamba tile'; a list in data.root is of "
        "chip folders only: tile it, or train on it alone with data.layout=isprs and data.city=vaihingen"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no tiling.json .*; .* no manifest.csv"):  # a folder of nothing known
        open_datasets(_data([scenes["a"], tmp_path / "empty"]), use_dsm=None)
