"""The class table a class raster declares in its tags: one reader for every verb that reads class rasters.

``predict`` and ``change`` write two tags: ``CLASSES`` (``[{"id", "name", "color"}, ...]``, the model's
table) and ``CLASS_NAMES`` (the names, a list indexed by id). A raster edited or made elsewhere may
carry either one (GDAL metadata keys are case-insensitive; dataset or band 1): ``vectorize`` read only
``class_names`` and ``evaluate`` only ``CLASSES``, so one raster was scored under the ISPRS names and
vectorized under its own, or the other way round.
"""

from __future__ import annotations

import json
from typing import Any

from rsmamba.classes import IGNORE_INDEX, ClassInfo, class_id, class_name_problem, repeated_classes
from rsmamba.errors import InputError

__all__ = ["declared_classes", "raster_tag"]

UNPAINTED = (128, 128, 128)  # the colour of a class named by class_names where the raster has no colour table


def raster_tag(src: Any, key: str) -> str | None:
    """A tag of the dataset, else of band 1, by name with case aside (GDAL metadata keys ignore case)."""
    for tags in (src.tags(), src.tags(1)):
        found = next((v for k, v in tags.items() if k.lower() == key.lower()), None)
        if found:
            return found
    return None


def declared_classes(src: Any) -> tuple[ClassInfo, ...] | None:
    """The raster's class table: its ``CLASSES`` tag, else its ``class_names`` tag, else None (no table:
    the ISPRS table is a guess). ``class_names`` may be a list of names indexed by id (null: no class at
    that id), a ``{"id": "name"}`` mapping or a list of ``{"id", "name"}`` objects; its classes take their
    colours from the raster's colour table (grey without one).

    A tag that is there but is no class table is refused (:class:`InputError`): falling back to the ISPRS
    names would label every polygon and score with classes the raster may not mean. So is a table that
    names an id or a name twice, or an id past 8 bits (the tag sized a confusion matrix: id 100000 asked
    for 74.5 GiB).
    """
    text = raster_tag(src, "CLASSES")
    if text:
        return _classes_tag(src, text)
    text = raster_tag(src, "class_names")
    if not text:
        return None
    pairs = _class_names_tag(src, text)
    try:
        palette = src.colormap(1)
    except ValueError:  # no colour table
        palette = {}
    return tuple(ClassInfo(i, str(n), tuple(palette[i][:3]) if i in palette else UNPAINTED)
                 for i, n in sorted(pairs) if i != IGNORE_INDEX)


def _classes_tag(src: Any, text: str) -> tuple[ClassInfo, ...]:
    def refused(why: str) -> InputError:
        shown = text if len(text) <= 60 else text[:57] + "..."
        return InputError(f"{src.name}: its CLASSES tag {shown!r} is not a class table ({why}); expected a JSON "
                          'list [{"id": 0, "name": "...", "color": [r, g, b]}, ...]: fix or remove the tag')

    try:
        items = json.loads(text)
    except ValueError as exc:
        raise refused(str(exc).splitlines()[0]) from None
    if not isinstance(items, list) or not all(isinstance(d, dict) for d in items):
        raise refused(f"a JSON {type(items).__name__}")
    bad = [d.get("id") for d in items if class_id(d.get("id")) is None]
    if bad:
        raise InputError(f"{src.name}: its CLASSES tag holds class id {bad[0]!r}; a class raster's ids are "
                         f"0..{IGNORE_INDEX - 1} (8-bit, 255 no data): fix or remove the tag")
    try:
        table = tuple(ClassInfo(class_id(d["id"]), d["name"], _colour(d["color"]), bool(d.get("filler", False)))
                      for d in items)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:  # OverflowError: a colour of 1e999
        raise refused(f"no {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]) from None
    problems = [f"class {c.id}: {p}" for c in table if (p := class_name_problem(c.name))]
    problems = problems or repeated_classes([(c.id, c.name) for c in table])
    if problems:
        raise refused("; ".join(problems))
    return table


def _colour(value: object) -> tuple[int, int, int]:
    if not isinstance(value, list) or len(value) != 3:
        raise ValueError(f"color must be three integers 0..255, got {str(value)[:40]}")
    rgb = tuple(int(v) for v in value)
    if not all(0 <= v <= 255 for v in rgb):
        raise ValueError(f"color must be three integers 0..255, got {str(value)[:40]}")
    return rgb  # type: ignore[return-value]


def _class_names_tag(src: Any, text: str) -> list[tuple[int, str]]:
    def checked(value: object) -> int:  # 1e999 (int(inf): a traceback), 100000: no id of an 8-bit class raster
        cid = class_id(value)
        if cid is None and str(value).strip() == str(IGNORE_INDEX):  # a name for the no-data id: said, harmless
            return IGNORE_INDEX
        if cid is None:
            raise ValueError(f"class id {value!r} is not an integer in 0..{IGNORE_INDEX} ({IGNORE_INDEX}: no data)")
        return cid

    try:
        data = json.loads(text)
        if isinstance(data, dict):
            pairs = [(checked(k), v) for k, v in data.items()]
        elif isinstance(data, list) and all(isinstance(d, dict) for d in data):
            pairs = [(checked(d["id"]), d["name"]) for d in data]
        elif isinstance(data, list):
            if len(data) > IGNORE_INDEX:  # ids 0.. of an 8-bit raster: more names is no such table
                raise ValueError(f"{len(data)} names; a class raster holds ids 0..{IGNORE_INDEX - 1}")
            pairs = [(checked(i), n) for i, n in enumerate(data) if n is not None]  # null: no class at that id
        else:
            raise ValueError(f"a JSON {type(data).__name__}")
        bad = [f"class {i}: {problem}" for i, n in pairs if (problem := class_name_problem(n))]
        if bad or (bad := repeated_classes(pairs)):
            raise ValueError("; ".join(bad))
        return [(i, str(n)) for i, n in pairs]
    except (ValueError, KeyError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        shown = text if len(text) <= 60 else text[:57] + "..."
        why = f"no {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
        raise InputError(f"{src.name}: class_names tag {shown!r} is not a class table ({why}); expected a JSON "
                         'list of names, {"0": "name", ...} or [{"id": 0, "name": "..."}, ...]') from None
