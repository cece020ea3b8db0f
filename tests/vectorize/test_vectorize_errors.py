"""vectorize_raster called from Python checks what the CLI's options check: one InputError, never a deep traceback."""

from __future__ import annotations

import numpy as np
import pyogrio
import pytest

from rsmamba.errors import InputError
from rsmamba.vectorize import vectorize_raster
from tests.helpers.rasters import write_raster


def _classes(tmp_path):
    arr = np.zeros((40, 40), np.uint8)
    arr[5:20, 5:20] = 1
    return write_raster(tmp_path / "c.tif", arr)


@pytest.mark.parametrize("kwargs,needle", [
    ({"block_size": 0}, "--block-size must be a whole number of pixels >= 1"),  # was ZeroDivisionError
    ({"min_area": float("nan")}, "--min-area: must be a finite number >= 0"),  # was an empty layer
    ({"simplify": "nanm"}, "--simplify"),
])
def test_bad_options_are_one_input_error(tmp_path, kwargs, needle) -> None:
    with pytest.raises(InputError, match=needle):
        vectorize_raster(_classes(tmp_path), tmp_path / "o.gpkg", **kwargs)
    assert not (tmp_path / "o.gpkg").exists()


def test_one_class_given_as_a_string_is_that_class_not_its_letters(tmp_path) -> None:
    vectorize_raster(_classes(tmp_path), tmp_path / "o.gpkg", classes="building")
    frame = pyogrio.read_dataframe(tmp_path / "o.gpkg")
    assert len(frame) == 1 and set(frame["class_name"]) == {"building"}


@pytest.mark.parametrize(("dtype", "value"), [("uint32", 4294967295), ("int64", 2**32 + 1), ("uint64", 2**63 + 2**40)])
def test_ids_beyond_int32_are_refused_as_they_are_never_cast_into_a_class(tmp_path, dtype, value) -> None:
    """Ids went through int32: a uint32 4294967295 was written as class_id -1, an int64 2**32 + 1 beside class 1
    merged into one building polygon. Declared nodata, the value is no polygon and the rest is written."""
    arr = np.zeros((40, 40), dtype)
    arr[5:20, 5:20] = 1
    arr[5:20, 20:30] = value
    path = write_raster(tmp_path / "c.tif", arr)
    with pytest.raises(InputError) as caught:
        vectorize_raster(path, tmp_path / "o.gpkg")
    assert f"{dtype} values {value} (in the block at row 0, column 0) are beyond the class ids" in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1 and not (tmp_path / "o.gpkg").exists()
    if dtype == "uint64":  # (rasterio reads a uint64 nodata back as another number: 9 for this one)
        return
    declared = write_raster(tmp_path / "d.tif", arr, nodata=value)
    vectorize_raster(declared, tmp_path / "d.gpkg")
    frame = pyogrio.read_dataframe(tmp_path / "d.gpkg")
    assert sorted(zip(frame["class_id"], frame["pixel_count"])) == [(0, 40 * 40 - 15 * 25), (1, 15 * 15)]
