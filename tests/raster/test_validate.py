"""rsmamba.raster.validate: what is refused as a class raster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from rsmamba.cli import main
from tests.helpers.rasters import write_raster


def test_a_probability_raster_of_few_values_is_refused_as_class_ids(tmp_path: Path, capsys) -> None:
    """change --probabilities of a small or flat pair holds a few values (p x 254): vectorize wrote its 1/254 as
    'building' polygons and evaluate scored it as classes, unsaid (QA). Both refuse it in one line, exit 2."""
    p = np.zeros((32, 32), np.uint8)
    p[4:12, 4:12] = 1  # p(change) 1/254
    p[20:28, 20:28] = 3
    write_raster(tmp_path / "p.tif", p, nodata=255)
    with rasterio.open(tmp_path / "p.tif", "r+") as ds:
        ds.update_tags(SCALE="1/254")
        ds.set_band_description(1, "p(change)")
    write_raster(tmp_path / "ref.tif", (p > 0).astype(np.uint8))
    for argv in (["vectorize", str(tmp_path / "p.tif"), "-o", str(tmp_path / "p.gpkg")],
                 ["evaluate", str(tmp_path / "p.tif"), str(tmp_path / "ref.tif"), "-o", str(tmp_path / "e" / "m.json")]):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "a probability raster (SCALE 1/254" in err[0] and "not class ids" in err[0], err
    assert not (tmp_path / "p.gpkg").exists() and not (tmp_path / "e").exists()
