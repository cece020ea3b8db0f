"""What a class raster says about itself: class names, model id, change-raster layout.

Conventions read here (the predict and change verbs write them):

* Class raster: band 1 holds class ids. Dataset or band 1 tag ``CLASSES`` (predict's full table), else
  ``class_names`` (JSON, any case), names them (:mod:`rsmamba.raster.classtags`); a tag that is no
  class table is refused. Without either the ISPRS table of :mod:`rsmamba.classes` applies. Dataset or band-1 tag
  ``model_id`` names the model that produced the raster. Value 255 (or the nodata value) is
  never vectorized, nor a pixel that band 1's GDAL mask (internal mask, alpha band) hides.
* Change raster: band 1 binary change (0/1, description ``"change"``); optionally band 2 the
  class at t1 (description ``"from_class"``) and band 3 the class at t2 (``"to_class"``). A
  raster is read as a change raster when band 1's description is ``"change"``. Dataset tag
  ``CHANGE_MIN_AREA_M2``: the minimum change-polygon area calibrated with the change model, the
  ``--min-area`` of that raster's polygons unless one is given.
* Probability raster (``--probabilities``): float 0-1, or uint8 ``round(p * 254)`` with tag
  ``SCALE=1/254`` (predict and change write so, with nodata 255). Bands ``p(<class name>)``, one
  per class in class-id order, then predict's instance channels (``p(interior)``, ``p(contact)``,
  tag ``INSTANCE_CHANNELS``); one band is read for every class (predict's ``confidence``, or
  change's ``p(change)``). Tag ``model_id`` as on the class raster it belongs to (rasters predict
  wrote before it tagged probabilities have none).
"""

from __future__ import annotations

import json
from pathlib import Path

import rasterio
from rasterio.enums import ColorInterp

from rsmamba.classes import IGNORE_INDEX, ISPRS_CLASSES
from rsmamba.errors import InputError
from rsmamba.raster.classtags import declared_classes


def _tag(tags: dict[str, str], key: str) -> str | None:
    """A tag by name, ignoring case: GDAL metadata keys are case-insensitive, Python dicts are not."""
    return next((v for k, v in tags.items() if k.lower() == key), None)


def class_names(src: rasterio.io.DatasetReader) -> dict[int, str]:
    """Class id -> name from the raster's declared table (:func:`~rsmamba.raster.classtags.declared_classes`:
    its ``CLASSES`` or ``class_names`` tag; one that is no class table is refused), else the ISPRS table."""
    return {c.id: c.name for c in declared_classes(src) or ISPRS_CLASSES}


def has_class_names(src: rasterio.io.DatasetReader) -> bool:
    """The raster declares its classes: without a table the ISPRS one is a guess."""
    return declared_classes(src) is not None


def model_id(src: rasterio.io.DatasetReader) -> str:
    """The producing model's id from the raster tags; empty when unknown."""
    return tags_model_id(src.tags(), src.tags(1))


def tags_model_id(tags: dict[str, str], band_tags: dict[str, str]) -> str:
    """:func:`model_id` from tags read before (the dataset's, band 1's)."""
    return _tag(tags, "model_id") or _tag(band_tags, "model_id") or ""


CHANGE_MIN_AREA_TAG = "CHANGE_MIN_AREA_M2"


def calibrated_min_area(src: rasterio.io.DatasetReader) -> float | None:
    """The change raster's calibrated minimum polygon area in m² (tag ``CHANGE_MIN_AREA_M2``), or None."""
    text = _tag(src.tags(), CHANGE_MIN_AREA_TAG.lower())
    try:
        area = float(text) if text is not None else None
    except ValueError:
        return None
    return area if area is not None and area >= 0 else None


def has_mask_band(src: rasterio.io.DatasetReader) -> bool:
    """Band 1 has a GDAL mask beyond its nodata value (internal or .msk mask, alpha band).

    Its nodata value is already a value never vectorized; only a real mask band needs reading.
    """
    from rasterio.enums import MaskFlags

    return not set(src.mask_flag_enums[0]) <= {MaskFlags.all_valid, MaskFlags.nodata}


def has_semantic_change(src: rasterio.io.DatasetReader) -> bool:
    """Bands 2 and 3 hold from/to classes (by description, or simply by being there)."""
    if src.count < 3:
        return False
    d = [(x or "").lower() for x in src.descriptions]
    return (d[1], d[2]) == ("from_class", "to_class") or (not d[1] and not d[2])


def never_vectorized(src: rasterio.io.DatasetReader) -> set[int]:
    """Values that are not a class: the ignore index and the nodata value."""
    values = {IGNORE_INDEX}
    if src.nodata is not None and float(src.nodata).is_integer():  # NaN nodata: a float raster, refused
        values.add(int(src.nodata))
    return values


PROB_SCALE = 254  # p stored as round(p * 254), 255 nodata: rsmamba.engine.writer's (not imported: it loads torch)
_INSTANCE_BANDS = ("p(interior)", "p(contact)")
_COLOURS = {ColorInterp.red: "red", ColorInterp.green: "green", ColorInterp.blue: "blue", ColorInterp.alpha: "alpha"}


def probability_scale(prob: rasterio.io.DatasetReader) -> float:
    """The ``SCALE`` tag (``1/254`` as predict writes it, or a number); 1 without one."""
    text = str(_tag(prob.tags(), "scale") or "").strip()
    try:
        if "/" in text:
            num, den = text.split("/")
            return float(num) / float(den)
        return float(text) if text else 1.0
    except (ValueError, ZeroDivisionError):
        return 1.0


def class_bands(prob: rasterio.io.DatasetReader) -> int:
    """How many leading bands of a probability raster hold class probabilities: all but the instance channels."""
    try:
        channels = json.loads(_tag(prob.tags(), "instance_channels") or "[]")
    except ValueError:
        channels = []
    if not isinstance(channels, list) or not channels:
        channels = [d for d in prob.descriptions if d in _INSTANCE_BANDS]
    return max(prob.count - len(channels), 1)


def probability_problems(prob: rasterio.io.DatasetReader, src: rasterio.io.DatasetReader, names: dict[int, str],
                         vectorized: set[int], change: bool) -> list[str]:
    """Why ``prob`` cannot be the probabilities of the class (or change) raster ``src``, whose classes
    ``vectorized`` become polygons; empty when it fits. Any raster on the grid was read: an RGBA ortho gave
    mean_prob up to 255, and another model's probabilities (argmax agreeing on 29.5 % of pixels) wrong ones."""
    what = f"--probabilities {prob.name}"
    hint = f"not the probabilities of {Path(src.name).name}"
    problems = []
    dtypes = set(prob.dtypes)
    scaled = dtypes == {"uint8"} and abs(probability_scale(prob) * PROB_SCALE - 1) < 1e-9
    if not scaled and not all(d.startswith("float") for d in dtypes):
        colours = [_COLOURS[c] for c in prob.colorinterp if c in _COLOURS]
        kind = f"an image ({', '.join(colours)} bands)" if colours else f"{'/'.join(sorted(dtypes))} values"
        problems.append(f"{what}: {kind}, not probabilities: vectorize reads float 0-1, or uint8 tagged SCALE=1/254 "
                        "as predict --probabilities writes them")
    theirs, ours = model_id(prob), model_id(src)
    if theirs and ours and theirs != ours:
        problems.append(f"{what}: written by model {theirs!r}, the class raster by {ours!r}; {hint}")
    described = [d or "" for d in prob.descriptions]
    if change:
        if described[0] not in ("", "p(change)"):
            problems.append(f"{what}: band 1 is {described[0]!r}, not p(change); {hint} (a change raster)")
        return problems
    n = class_bands(prob)
    expected = {k: f"p({names.get(k, k)})" for k in sorted(vectorized)}
    if n == 1:  # one band for every class: its own class's (predict --confidence)
        if described[0] not in ("", "confidence") and not (len(expected) == 1 and described[0] in expected.values()):
            problems.append(f"{what}: its one band is {described[0]!r}, read as every polygon's own class "
                            f"probability (as predict --confidence); {hint}")
        return problems
    beyond = [k for k in expected if k >= n]
    if beyond:
        k = beyond[-1]
        problems.append(f"{what}: {n} class bands, but class {k} ({names.get(k, k)}) needs band {k + 1}; {hint}")
    wrong = [f"band {k + 1} is {described[k]!r}, not {p!r}" for k, p in expected.items()
             if k < n and described[k] and described[k] != p]
    if wrong:
        problems.append(f"{what}: {', '.join(wrong[:3])}{' ...' * (len(wrong) > 3)}; {hint}")
    return problems
