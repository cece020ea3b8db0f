"""Object-level scoring of change polygons: the acceptance measure of the change demo model.

Predicted change polygons (from ``rsmamba vectorize`` of a change raster) and reference change
polygons (e.g. synth's ``building_changes.gpkg``) are rasterised with object ids onto the change
raster's grid and matched one-to-one at IoU >= 0.5 (:func:`rsmamba.evaluate.object_f1`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from rsmamba.errors import InputError


def _rasterize_ids(gdf, shape: tuple[int, int], transform) -> np.ndarray:
    from rasterio.features import rasterize

    if len(gdf) == 0:
        return np.zeros(shape, np.int32)
    return rasterize(zip(gdf.geometry, range(1, len(gdf) + 1)), out_shape=shape, transform=transform,
                     fill=0, dtype="int32")


def change_polygon_f1(
    change_raster: str | os.PathLike[str],
    reference: str | os.PathLike[str],
    *,
    min_area_m2: float = 4.0,
    iou_threshold: float = 0.5,
    work_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Vectorize ``change_raster`` and score its change polygons against ``reference`` polygons."""
    return change_polygon_scores(change_raster, reference, min_areas_m2=(min_area_m2,), iou_threshold=iou_threshold,
                                 work_dir=work_dir)[float(min_area_m2)]


def change_polygon_scores(
    change_raster: str | os.PathLike[str],
    reference: str | os.PathLike[str],
    *,
    min_areas_m2: tuple[float, ...],
    iou_threshold: float = 0.5,
    work_dir: str | os.PathLike[str] | None = None,
) -> dict[float, dict[str, Any]]:
    """:func:`change_polygon_f1` at each minimum polygon area, from one vectorisation (of every polygon).

    Each polygon, a semantic raster's from/to piece too, is an object kept when its own area reaches the
    minimum: the measure the shipped change model was calibrated and carded with. (``rsmamba vectorize
    --min-area`` keeps a semantic change region whole when the region reaches it.) One run serves a whole
    calibration grid. ``work_dir``: where the polygon layer is kept (each score's ``polygons``); without one it
    is written to a temporary folder, removed on return, and ``polygons`` is None.
    """
    import tempfile

    import rasterio

    from rsmamba.evaluate import object_f1
    from rsmamba.paths import read_vector
    from rsmamba.vectorize import vectorize_raster
    from rsmamba.raster.ground import metres_per_unit

    if work_dir is None:  # a folder of its own, removed on return (each call left one in /tmp)
        with tempfile.TemporaryDirectory(prefix="rsmamba-change-f1-") as scratch:
            scores = change_polygon_scores(change_raster, reference, min_areas_m2=min_areas_m2,
                                           iou_threshold=iou_threshold, work_dir=scratch)
        return {area: {**s, "polygons": None} for area, s in scores.items()}
    polys = Path(work_dir) / "change_polygons.gpkg"
    # every polygon, filtered by its own area below: a semantic raster's from/to pieces are the objects scored
    # (as the shipped change model's calibration and card measured them), where vectorize --min-area now
    # keeps or drops a change region whole
    vectorize_raster(change_raster, polys, change=True, min_area=0.0, overwrite=True)  # a work file
    pred = read_vector(polys)
    if "change" in pred.columns:
        pred = pred[pred["change"] == 1]
    ref = read_vector(reference)
    with rasterio.open(change_raster) as ds:
        if ref.crs is None or pred.crs is None:
            raise InputError("change polygons and reference need a CRS")
        ref = ref.to_crs(ds.crs)
        shape, transform = (ds.height, ds.width), ds.transform
    ref_ids = _rasterize_ids(ref, shape, transform)
    area_m2 = pred.geometry.area.to_numpy() * metres_per_unit(pred.crs) ** 2 if len(pred) else np.zeros(0)
    out = {}
    for area in sorted({float(a) for a in min_areas_m2}):
        kept = pred[area_m2 >= area]
        scores = object_f1(_rasterize_ids(kept, shape, transform), ref_ids, iou_threshold)
        scores["polygons"] = str(polys)
        scores["min_area_m2"] = area
        out[area] = scores
    return out
