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
