"""``rsmamba vectorize`` over several rasters on one grid: one layer, polygons whole across scene borders."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rsmamba.errors import InputError
from rsmamba.jobs import expand_inputs, is_pattern
from rsmamba.vectorize.api import vectorize_raster
from rsmamba.vectorize.attributes import CHANGE_MIN_AREA_TAG
from rsmamba.vectorize.mosaic import mosaic_vrt_xml, plan_mosaic

__all__ = ["resolve_rasters", "vectorize_many"]

PathLike = str | os.PathLike[str]


def resolve_rasters(items: Sequence[PathLike]) -> list[Path]:
    """Paths, globs and @lists -> raster paths; one plain path is passed through unchecked.

    A single path goes to ``vectorize_raster`` as it is, so its own checks word the error.
    """
    texts = [str(i) for i in items]
    if len(texts) == 1 and not is_pattern(texts[0]):
        return [Path(texts[0])]
    return expand_inputs(texts)


def vectorize_many(rasters: Sequence[PathLike], output: PathLike, **options: Any):
    """Polygonize several rasters on one grid into one layer; polygons crossing scene borders come out whole.

    ``rasters``: paths, globs or @lists. One raster is exactly :func:`~.api.vectorize_raster`;
    several are mosaicked into a temporary VRT that is vectorized block by block (same options).
    The ``source`` attribute names the scene under each polygon's interior point.
    """
    paths = resolve_rasters(rasters)
    if len(paths) == 1:
        return vectorize_raster(paths[0], output, **options)
    if options.get("probabilities") is not None:
        raise InputError("--probabilities works with one raster at a time, not a mosaic of several")
    mosaic = plan_mosaic(paths)
    if options.get("min_area") is None:  # one layer, one minimum area: the first raster's would pass for all
        calibrated = {r.path.name: r.tags.get(CHANGE_MIN_AREA_TAG) for r in mosaic.rasters}
        if len(set(calibrated.values())) > 1:
            said = ", ".join(f"{name} {value + ' m2' if value is not None else 'none'}" for name, value in calibrated.items())
            raise InputError(f"the change rasters were calibrated with other minimum polygon areas ({said}): one layer "
                             "takes one; give --min-area, or vectorize them apart")
    with tempfile.TemporaryDirectory(prefix="rsmamba-mosaic-") as tmp:
        vrt = Path(tmp) / "mosaic.vrt"
        mosaic_vrt_xml(mosaic).write(vrt, encoding="UTF-8", xml_declaration=False)
        try:
            return vectorize_raster(vrt, output, scenes=mosaic, **options)
        except InputError as exc:  # name the inputs, not a temporary file
            raise InputError([p.replace(str(vrt), mosaic.label).replace(vrt.name, mosaic.label)
                              for p in exc.problems]) from None
