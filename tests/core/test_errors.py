"""Arguments of the public library functions: a wrong type is refused at the call, naming the argument."""

from __future__ import annotations

import pytest

from rsmamba.change import detect_change
from rsmamba.errors import ArgumentTypeError, InputError, typed_arguments
from rsmamba.evaluate import evaluate_rasters
from rsmamba.predict import predict_raster
from rsmamba.synth import write_scene
from rsmamba.tile import tile_scene
from rsmamba.vectorize import vectorize_raster


@typed_arguments
def _sample(path: str | object, size: int = 1, *, bands: list[int] | None = None, rows: tuple[int, int] | None = None,
            co: dict[str, str] | None = None, share: float = 0.5, model: object = None) -> str:
    return "ran"


def test_the_annotations_are_what_is_checked() -> None:
    assert _sample("a", 3, bands=(1, 2), rows=[0, 8], co={"LEVEL": "9"}, share=1, model=object()) == "ran"
    for kwargs, named in [({"size": "3"}, "size='3'"), ({"size": True}, "size=True"), ({"bands": "1,2"}, "bands"),
                          ({"bands": [1, "2"]}, "bands"), ({"rows": (0, 8, 16)}, "rows"), ({"co": "LEVEL=9"}, "co"),
                          ({"share": "0.5"}, "share")]:
        with pytest.raises(ArgumentTypeError, match=named) as caught:
            _sample("a", **kwargs)
        assert isinstance(caught.value, (InputError, TypeError)) and "\n" not in str(caught.value)
    with pytest.raises(TypeError, match="unexpected keyword"):  # Python's own message for a wrong name
        _sample("a", sizes=3)


def test_numpy_scalars_are_their_python_numbers() -> None:
    """np.True_ was refused ('expected bool, got bool'); np.int64 passed the check and was refused later as 'not a
    whole number', or failed writing JSON once the work was done."""
    import numpy as np

    @typed_arguments
    def given(size: int = 1, flag: bool = False, share: float = 0.5, bands: list[int] | None = None) -> tuple:
        return size, flag, share, bands

    got = given(np.int64(3), np.True_, np.float32(0.25), bands=[np.int64(1)])
    assert got == (3, True, 0.25, [1]) and [type(v) for v in (*got[:3], *got[3])] == [int, bool, float, int]
    # a numpy array of bands (the truth value of an array was ambiguous, later) and a named tuple of numpy numbers
    assert given(bands=np.array([3, 2, 1]))[3] == [3, 2, 1]
    from collections import namedtuple

    Origin = namedtuple("Origin", "x y")

    @typed_arguments
    def placed(origin: tuple[float, float] | None = None) -> object:
        return origin

    assert placed(Origin(np.float64(1.5), np.float64(2.0))) == Origin(1.5, 2.0)


@pytest.mark.parametrize(("call", "named"), [
    # each raised an AttributeError/TypeError from deep inside (a model already loaded), or a false message
    (lambda: predict_raster("in.tif", "out.tif", window="512"), "predict_raster(window='512'): expected int | None"),
    (lambda: predict_raster("in.tif", "out.tif", bands="1,2,3"), "predict_raster(bands='1,2,3')"),
    (lambda: predict_raster("in.tif", "out.tif", co="LEVEL=9"), "predict_raster(co='LEVEL=9'): expected dict"),
    (lambda: detect_change("a.tif", "b.tif", "c.tif", batch_size=2.0), "detect_change(batch_size=2.0)"),
    (lambda: evaluate_rasters("p.tif", "r.tif", "e.json", exclude="5"), "evaluate_rasters(exclude='5')"),
    (lambda: tile_scene("in.tif", "chips", bands="1,2"), "tile_scene(bands='1,2')"),
    (lambda: vectorize_raster("c.tif", "v.gpkg", block_size="512"), "vectorize_raster(block_size='512')"),
    (lambda: write_scene("scene", size="256"), "write_scene(size='256')"),
])
def test_verbs_refuse_a_wrong_type_by_name(call, named: str) -> None:
    with pytest.raises(ArgumentTypeError) as caught:
        call()
    assert named in str(caught.value)


def test_write_scene_takes_the_cli_style_text_or_refuses_by_name(tmp_path) -> None:
    """style='suburban' was an AttributeError ('str' object has no attribute 'widen_roads')."""
    with pytest.raises(InputError, match="style must be a drawn style"):
        write_scene(tmp_path / "a", size=128, style=3)
    with pytest.raises(InputError, match="--style must be FAMILY or FAMILY:SEED"):
        write_scene(tmp_path / "b", size=128, style="suburban:x")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
