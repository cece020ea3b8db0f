"""Your own classes: a footprint layer with no class field (``--burn``) or a class table file, through
tile -> train -> checkpoint -> predict -> evaluate -> vectorize."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from rasterio.transform import from_origin

from rsmamba.checkpoint import load_checkpoint
from rsmamba.classes import load_class_table
from rsmamba.cli import main
from rsmamba.errors import InputError

ORIGIN = (500000.0, 5600000.0)
GSD = 0.5


def building_scene(folder: Path, size: int = 96, seed: int = 0, bands: int = 1) -> tuple[Path, Path]:
    """A panchromatic (or N-band) ortho with bright roofs, and the roofs as polygons without any field
    but an id: what a mapping agency's footprint layer looks like."""
    import geopandas as gpd
    from shapely.geometry import box

    rng = np.random.default_rng(seed)
    img = rng.normal(70, 12, (bands, size, size))
    boxes = []
    for _ in range(size * size // 700):
        h, w = rng.integers(6, 14, 2)
        r, c = rng.integers(0, size - h), rng.integers(0, size - w)
        img[:, r:r + h, c:c + w] = rng.normal(190, 10, (bands, h, w))
        x0, y0 = ORIGIN[0] + c * GSD, ORIGIN[1] - (r + h) * GSD
        boxes.append(box(x0, y0, x0 + w * GSD, y0 + h * GSD))
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / "ortho.tif"
    with rasterio.open(image, "w", driver="GTiff", width=size, height=size, count=bands, dtype="uint8",
                       crs="EPSG:32632", transform=from_origin(*ORIGIN, GSD, GSD)) as dst:
        dst.write(np.clip(img, 0, 255).astype(np.uint8))
    layer = folder / "footprints.gpkg"
    gpd.GeoDataFrame({"id": range(len(boxes))}, geometry=boxes, crs="EPSG:32632").to_file(layer)
    return image, layer


def test_footprints_burn_to_a_two_class_model_and_map(tmp_path: Path, capsys) -> None:
    image, layer = building_scene(tmp_path / "scene")
    chips = tmp_path / "chips"
    # No class field: refused without --burn, with a hint; accepted with --burn 1.
    assert main(["tile", str(image), "--labels", str(layer), "-o", str(chips), "--size", "32"]) == 2
    assert "--class-field" in capsys.readouterr().err
    assert main(["tile", str(image), "--labels", str(layer), "--burn", "1", "-o", str(chips), "--size", "32",
                 "--split-block", "32", "--split", "0.75,0.25,0"]) == 0
    tiling = json.loads((chips / "tiling.json").read_text())
    assert [c["name"] for c in tiling["classes"]] == ["background", "building"]
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump({
        "data": {"root": str(chips), "batch_size": 4}, "model": {"name": "fcn_baseline", "kwargs": {"width": 8}},
        "optim": {"lr": 0.01}, "train": {"epochs": 3}, "out": str(tmp_path / "run"), "tensorboard": False}))
    assert main(["train", "--config", str(cfg)]) == 0
    ck = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ck["model_kwargs"]["num_classes"] == 2 and [c["name"] for c in ck["classes"]] == ["background", "building"]
    assert ck["bands"]["image"] == [1] and ck["model_kwargs"]["in_chans"] == 1
    pred = tmp_path / "pred.tif"
    assert main(["predict", str(image), "-o", str(pred), "--model", str(tmp_path / "run" / "best.pt"),
                 "--window", "64", "--overlap", "16"]) == 0
    with rasterio.open(pred) as src:
        values = set(np.unique(src.read(1)).tolist()) - {src.nodata}
        cmap = src.colormap(1)
        names = json.loads(src.tags().get("CLASS_NAMES") or src.tags(1)["CLASS_NAMES"])
    assert values <= {0, 1} and names == ["background", "building"]
    assert cmap[0][:3] == (0, 0, 0) and cmap[1][:3] == (255, 0, 0)
    metrics = tmp_path / "m.json"
    assert main(["evaluate", str(pred), str(layer), "--burn", "1", "-o", str(metrics)]) == 0
    result = json.loads(metrics.read_text())
    assert list(result["per_class"]) == ["background", "building"]
    building_iou = result["per_class"]["building"]["iou"]
    print(f"building IoU after 3 epochs: {building_iou:.3f}")
    assert building_iou > 0.3  # bright roofs on a dark ground: learnt, not a constant map
    out = tmp_path / "buildings.gpkg"
    assert main(["vectorize", str(pred), "-o", str(out), "--classes", "building"]) == 0
    import geopandas as gpd

    polys = gpd.read_file(out)
    assert len(polys) > 0 and set(polys["class_name"]) == {"building"}


def test_class_table_names_colours_and_ignore_value(tmp_path: Path) -> None:
    from rsmamba.tile import tile_scene

    image, _ = building_scene(tmp_path / "s", size=64, bands=3)
    labels = tmp_path / "labels.tif"
    with rasterio.open(image) as src:
        profile = {**src.profile, "count": 1}
    lab = np.full((64, 64), 2, np.uint8)
    lab[:, :20] = 0  # 0 = not surveyed in this agency's coding
    lab[10:30, 30:50] = 3
    with rasterio.open(labels, "w", **profile) as dst:
        dst.write(lab[None])
    table = tmp_path / "classes.yaml"
    table.write_text(yaml.safe_dump({"ignore": 0, "classes": [
        {"id": 1, "name": "field", "color": [250, 200, 0]}, {"id": 2, "name": "meadow", "color": [0, 200, 0]},
        {"id": 3, "name": "water", "color": [0, 0, 250]}]}))
    tile_scene(image, tmp_path / "chips", labels=labels, class_table=table, size=32, block=32, split=(1, 0, 0))
    tiling = json.loads((tmp_path / "chips" / "tiling.json").read_text())
    # Ids are dense from 0 (one model output per id); id 0 is not in the table, so it gets a placeholder.
    assert [c["name"] for c in tiling["classes"]] == ["class_0", "field", "meadow", "water"]
    with rasterio.open(tmp_path / "chips" / "labels" / "r00_c00.tif") as src:
        chip = src.read(1)
        assert src.colormap(1)[3][:3] == (0, 0, 250)
    assert (chip[:, :20] == 255).all() and set(np.unique(chip[:, 20:])) <= {2, 3}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"ignore": 2, "classes": [{"id": 2, "name": "a"}, {"id": 2, "name": "a",
                                                                                       "color": [1, 2]}]}))
    with pytest.raises(InputError) as err:
        load_class_table(bad)
    text = str(err.value)
    assert "color must be three integers" in text and "ignore must be" in text


def test_a_uint16_no_label_value_is_a_class_table_ignore(tmp_path: Path) -> None:
    """An agency's uint16 labels with 65535 = not surveyed: the class table's ignore takes it (0..255 only before)."""
    from rsmamba.tile import tile_scene

    image, _ = building_scene(tmp_path / "s", size=64, bands=3)
    labels = tmp_path / "labels.tif"
    with rasterio.open(image) as src:
        profile = {**src.profile, "count": 1, "dtype": "uint16", "nodata": None}
    lab = np.full((64, 64), 2, np.uint16)
    lab[:, :20] = 65535
    with rasterio.open(labels, "w", **profile) as dst:
        dst.write(lab[None])
    table = tmp_path / "classes.yaml"
    table.write_text(yaml.safe_dump({"ignore": 65535, "classes": [{"id": 1, "name": "field"},
                                                                   {"id": 2, "name": "meadow"}]}))
    tile_scene(image, tmp_path / "chips", labels=labels, class_table=table, size=32, block=32, split=(1, 0, 0))
    with rasterio.open(tmp_path / "chips" / "labels" / "r00_c00.tif") as src:
        chip = src.read(1)
    assert (chip[:, :20] == 255).all() and (chip[:, 20:] == 2).all()


@pytest.mark.parametrize("entries, said", [
    # matched to a layer's class field with case and spaces aside: 'Building' features were burnt as 'building'
    ("{id: 1, name: Building}, {id: 2, name: building}", "class name 'Building' appears more than once"),
    ("{id: 1, name: 'building '}, {id: 2, name: building}", "class name 'building ' appears more than once"),
    ("{id: true, name: a}", "id must be an integer in 0..254, got True"),  # YAML's true is an int in Python
    ("{id: '1', name: a}", "id must be an integer in 0..254, got '1'"),
    ("{id: 1, name: a, color: [true, 0, 0]}", "color must be three integers 0..255"),
    ("{id: 1, name: null}", "name must be non-empty text, got None"),  # was the class 'None'
    ("{id: 1, name: [a, b]}", r"name must be non-empty text, got \['a', 'b'\]"),
    ("{id: 1, name: '  '}", "name must be non-empty text"),
])
def test_a_class_table_refuses_names_equal_as_matched_booleans_and_names_that_are_no_text(
        tmp_path: Path, entries: str, said: str) -> None:
    table = tmp_path / "t.yaml"
    table.write_text(f"classes: [{{id: 0, name: background}}, {entries}]\n")
    with pytest.raises(InputError, match=said):
        load_class_table(table)


def test_names_equal_as_matched_in_a_received_table_are_refused_not_burnt_as_the_last() -> None:
    """evaluate matches a reference's text class field to the prediction's CLASSES tag, which no class table
    file checked: of 'Building' (1) and 'building' (2), the last won for every feature."""
    import pandas as pd

    from rsmamba.raster.source import class_ids_of_names

    ids, unknown = class_ids_of_names(pd.Series(["Building ", "road"]), {"building": 1, "Road": 2})
    assert ids.tolist() == [1, 2] and unknown == []
    # ISPRS's own names of the ISPRS classes: 'Low vegetation' was an unknown name (QA)
    ids, unknown = class_ids_of_names(pd.Series(["Low vegetation", "Impervious surfaces", "Clutter/background"]),
                                      {"impervious": 0, "low_vegetation": 2, "clutter": 5})
    assert ids.tolist() == [2, 0, 5] and unknown == []
    with pytest.raises(InputError, match=r"names 'Building' \(id 1\) and 'building' \(id 2\)"):
        class_ids_of_names(pd.Series(["Building"]), {"Building": 1, "building": 2})
