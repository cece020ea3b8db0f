"""A class table with a gap (ids 1..3, its labels' ignore value 0): the filled-in id is no class anywhere."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch

from rsmamba.classes import ClassInfo, classes_from_dicts, dense_classes
from rsmamba.engine.model import LoadedModel
from rsmamba.evaluate import evaluate_rasters
from rsmamba.predict import predict_raster
from rsmamba.tile import tile_scene
from tests.helpers.rasters import random_image, write_raster
from tests.helpers.scenes import write_scene

TABLE = (ClassInfo(1, "building", (255, 0, 0)), ClassInfo(2, "road", (128, 128, 128)), ClassInfo(3, "tree", (0, 160, 0)))


class LovesZero(torch.nn.Module):
    """Class 0's logit highest everywhere, then 1 on the left half and 2 on the right."""

    def forward(self, x):
        b, _, h, w = x.shape
        left = torch.zeros(b, 1, h, w)
        left[..., : w // 2] = 1.0
        return torch.cat([torch.full((b, 1, h, w), 9.0), 2 * left, 2 * (1 - left), torch.zeros(b, 1, h, w)], 1)


def test_the_filled_in_id_is_recorded_never_predicted_and_not_scored(tmp_path) -> None:
    """ignore: 0 (the README's example) became a class class_0: in the legend, predicted where its untrained head
    won, and evaluate scored the 53 % unlabelled pixels of the same label raster as it: mIoU 0.33 for 0.82."""
    classes = dense_classes(TABLE)
    assert classes[0].filler and not any(c.filler for c in classes[1:])
    assert classes_from_dicts([c.to_dict() for c in classes]) == classes  # tiling.json, checkpoint, CLASSES tag

    image = write_raster(tmp_path / "img.tif", random_image(64, 64))
    model = LoadedModel(LovesZero(), bands=[1, 2, 3], classes=classes)
    predict_raster(image, tmp_path / "pred.tif", model=model, window=64, probabilities=tmp_path / "p.tif")
    with rasterio.open(tmp_path / "pred.tif") as ds:
        pred = ds.read(1)
        tagged = classes_from_dicts(json.loads(ds.tags()["CLASSES"]))
    assert (pred[:, :32] == 1).all() and (pred[:, 32:] == 2).all() and tagged == classes
    with rasterio.open(tmp_path / "p.tif") as ds:
        assert (ds.read(1) == 0).all()  # probability 0 for the filler

    ref = np.zeros((64, 64), np.uint8)  # 0: not labelled
    ref[:20] = 1
    ref[40:, 32:] = 2
    ref[40:, :32] = 3
    result = evaluate_rasters(tmp_path / "pred.tif", write_raster(tmp_path / "ref.tif", ref),
                              tmp_path / "m.json")
    labelled = ref != 0
    assert result["pixels"] == labelled.sum()
    assert result["oa"] == pytest.approx((pred[labelled] == ref[labelled]).mean())
    assert any("hold ids no class of the table has (0; the class table's ignore value when tiled?)" in w
               for w in result["warnings"])


def test_tile_records_the_filled_in_id(tmp_path) -> None:
    scene = write_scene(tmp_path / "s", size=64)
    with rasterio.open(scene["labels"]) as ds:
        labels, profile = ds.read(1), ds.profile
    labels = np.where(labels > 3, 0, labels)
    with rasterio.open(tmp_path / "labels.tif", "w", **profile) as ds:
        ds.write(labels, 1)
    table = tmp_path / "classes.yaml"
    table.write_text("ignore: 0\nclasses:\n  - {id: 1, name: building}\n  - {id: 2, name: road}\n  - {id: 3, name: tree}\n")
    tile_scene(scene["image"], tmp_path / "chips", labels=tmp_path / "labels.tif", class_table=table, size=32)
    recorded = json.loads((tmp_path / "chips" / "tiling.json").read_text())["classes"]
    assert recorded[0] == {"id": 0, "name": "class_0", "color": [128, 128, 128], "filler": True}
    assert all("filler" not in c for c in recorded[1:])


def test_building_f1_scores_the_class_named_building(tmp_path) -> None:
    """evaluate --buildings scored id 1 whatever the table named it: a perfect map of a table with building at
    id 2 got building F1 0.000, silently; vectorize --classes building found it by name."""
    import geopandas as gpd
    from shapely.geometry import box

    classes = (ClassInfo(0, "road", (200, 200, 200)), ClassInfo(1, "grass", (0, 200, 0)), ClassInfo(2, "building", (255, 0, 0)))
    labels = np.zeros((40, 40), np.uint8)
    labels[:, 20:] = 1
    labels[5:15, 5:15] = 2
    path = write_raster(tmp_path / "pred.tif", labels)
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(CLASSES=json.dumps([c.to_dict() for c in classes]))
    x0, y0 = 500000.0, 5000000.0  # write_raster's corner, 1 m pixels
    gpd.GeoDataFrame(geometry=[box(x0 + 5, y0 - 15, x0 + 15, y0 - 5)], crs="EPSG:32632").to_file(tmp_path / "b.gpkg")
    result = evaluate_rasters(path, path, tmp_path / "m.json", buildings=tmp_path / "b.gpkg")
    assert result["buildings"]["f1"] == 1.0 and result["buildings"]["class"] == {"id": 2, "name": "building"}


def test_building_f1_without_a_class_named_building_is_refused(tmp_path) -> None:
    """A table naming its houses 'buildings' fell back to id 1 (road): building F1 0.0 for a perfect map."""
    import geopandas as gpd
    from shapely.geometry import Polygon

    from rsmamba.errors import InputError

    classes = (ClassInfo(0, "grass", (0, 200, 0)), ClassInfo(1, "road", (200, 200, 200)), ClassInfo(2, "buildings", (255, 0, 0)))
    labels = np.zeros((40, 40), np.uint8)
    labels[5:15, 5:15] = 2
    path = write_raster(tmp_path / "pred.tif", labels)
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(CLASSES=json.dumps([c.to_dict() for c in classes]))
    x0, y0 = 500000.0, 5000000.0
    ring = [(x0 + 5, y0 - 5), (x0 + 15, y0 - 5), (x0 + 15, y0 - 15), (x0 + 5, y0 - 15)]
    gpd.GeoDataFrame(geometry=[Polygon(ring + ring)], crs="EPSG:32632").to_file(tmp_path / "b.gpkg")  # traced twice
    with pytest.raises(InputError, match=r"no class of the prediction's table is named building \(0 grass, 1 road, "
                                         r"2 buildings\); give --building-class ID"):
        evaluate_rasters(path, path, tmp_path / "m.json", buildings=tmp_path / "b.gpkg")
    result = evaluate_rasters(path, path, tmp_path / "m2.json", buildings=tmp_path / "b.gpkg", building_class=2)
    assert result["buildings"]["f1"] == 1.0  # the doubled ring repaired: the building is there


def test_validation_never_scores_a_pixel_as_the_filler() -> None:
    """The trainer's validation took the argmax over every output: the filler's untrained head won pixels, scored
    IoU 0 and sat in val_miou, which chooses best.pt (0.22 for 0.30)."""
    from torch.utils.data import DataLoader

    from rsmamba.train.trainer import fillers_of, validate

    class Fixed(torch.nn.Module):
        def forward(self, x):  # class 0 (the filler) loudest, then the true class 1 or 2 by the sign of band 1
            b, _, h, w = x.shape
            one = (x[:, :1] > 0).float()
            return torch.cat([torch.full((b, 1, h, w), 9.0), 2 * one, 2 * (1 - one)], 1)

    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    mask = torch.where(x[:, 0] > 0, 1, 2)
    loader = DataLoader([{"image": x[i], "mask": mask[i]} for i in range(2)], batch_size=2)
    classes = [c.to_dict() for c in dense_classes(TABLE[:2])]
    assert fillers_of(classes) == [0]
    scores = validate(Fixed(), loader, "segmentation", "image", 3, "cpu", [], [c["name"] for c in classes],
                      fillers=fillers_of(classes))
    assert scores["oa"] == 1.0 and scores["miou"] == 1.0


@pytest.mark.parametrize("entry, said", [('{"id": 1e999, "name": "x", "color": [1, 2, 3]}', "class id inf"),  # int(inf)
                                         ('{"id": 300, "name": "x", "color": [1, 2, 3]}', "class id 300")])
def test_a_classes_tag_with_an_id_past_8_bits_is_refused(tmp_path, capsys, entry, said) -> None:
    """A received raster's CLASSES tag (its .aux.xml) sized the confusion matrix: id 100000 asked for 74.5 GiB,
    1e999 was an OverflowError traceback."""
    from rsmamba.cli import main

    pred = write_raster(tmp_path / "pred.tif", np.ones((16, 16), np.uint8))
    ref = write_raster(tmp_path / "ref.tif", np.ones((16, 16), np.uint8))
    table = [c.to_dict() for c in TABLE]
    with rasterio.open(pred, "r+") as ds:
        ds.update_tags(CLASSES=json.dumps(table)[:-1] + ", " + entry + "]")
    assert main(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"pred.tif: its CLASSES tag holds {said}; a class raster's ids are 0..254" in err[0]
    assert not (tmp_path / "m.json").exists()
