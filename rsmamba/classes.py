"""Class tables: ids, names and colours written into rasters, vectors and checkpoints."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rsmamba.errors import InputError, ProblemCollector
from rsmamba.paths import load_yaml


@dataclass(frozen=True)
class ClassInfo:
    id: int
    name: str
    color: tuple[int, int, int]
    # an id no class of the table has, filled in because a model has one output per id up to the largest
    # (a table of ids 1..3, its 0 the labels' ignore value): no pixel is trained as it, predicted as it, or scored
    filler: bool = False

    def to_dict(self) -> dict:
        out = {"id": self.id, "name": self.name, "color": list(self.color)}
        return {**out, "filler": True} if self.filler else out


# ISPRS 2-D semantic labelling (Vaihingen / Potsdam) colours.
ISPRS_CLASSES: tuple[ClassInfo, ...] = (
    ClassInfo(0, "impervious", (255, 255, 255)),
    ClassInfo(1, "building", (0, 0, 255)),
    ClassInfo(2, "low_vegetation", (0, 255, 255)),
    ClassInfo(3, "tree", (0, 255, 0)),
    ClassInfo(4, "car", (255, 255, 0)),
    ClassInfo(5, "clutter", (255, 0, 0)),
)

# Binary change labels and rasters: 0 no change (black), 1 change (red).
CHANGE_CLASSES: tuple[ClassInfo, ...] = (ClassInfo(0, "no_change", (0, 0, 0)), ClassInfo(1, "change", (255, 0, 0)))

# Label value meaning "no label / ignore" in every label raster rsmamba writes or reads.
IGNORE_INDEX = 255


def class_id(value: object) -> int | None:
    """``value`` as a class id, or None: an integer 0..254 (or its decimal text, as JSON keys hold it; a whole
    float, as a JSON writer may), never a boolean (YAML's ``true`` is an int in Python) or 255 (no label).
    A label or class raster is 8-bit: an id past it (1e999 in a received tag) sized arrays by it."""
    if isinstance(value, str):
        value = value.strip()
        value = int(value) if value.isdecimal() and len(value) <= 3 else None
    if isinstance(value, float) and value.is_integer() and 0 <= value < IGNORE_INDEX:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < IGNORE_INDEX:
        return None
    return value


# ISPRS 2-D labelling's own names of two of ISPRS_CLASSES (its other four are ours but for case and spaces):
# a reference tagged with them was warned about as naming ids 0 and 5 "otherwise" (QA)
ISPRS_NAME_ALIASES = {"impervious_surfaces": "impervious", "clutter_background": "clutter"}


def name_key(name: str) -> str:
    """How class names are matched (to a layer's class field, between two class tables): case, spaces, '-', '_'
    and '/' between words aside ('Low vegetation' is low_vegetation), and ISPRS's own names as ours
    (:data:`ISPRS_NAME_ALIASES`: 'Impervious surfaces' is impervious)."""
    words = str(name).lower()
    for separator in "-_/":
        words = words.replace(separator, " ")
    key = "_".join(words.split())
    return ISPRS_NAME_ALIASES.get(key, key)


def class_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a class, or None: null or [a, b] became the names 'None', "['a', 'b']"."""
    return None if isinstance(name, str) and name.strip() else f"name must be non-empty text, got {name!r}"


def repeated_classes(classes: Sequence[tuple[int, str]]) -> list[str]:
    """An id or a name that a table of (id, name) gives twice, said, or []. Names are one as :func:`name_key`
    matches them to a layer's class field ('Building' and 'building '): two classes of one name merged in
    every count, and a raster's tag naming id 1 twice ('1', '01') wrote its buildings as trees."""
    ids = [i for i, _ in classes]
    problems = [f"class id {dup} appears more than once" for dup in sorted({i for i in ids if ids.count(i) > 1})]
    by_key: dict[str, list[str]] = {}
    for _, name in classes:
        by_key.setdefault(name_key(name), []).append(name)
    for same in (v for v in by_key.values() if len(v) > 1):
        problems.append(f"class name {same[0]!r} appears more than once"
                        + (f" ({', '.join(map(repr, same))}: names are matched with case, spaces and separators aside)"
                           if len(set(same)) > 1 else ""))
    return problems


def class_of_nodata(nodata: float | None, classes) -> ClassInfo | None:
    """The class whose id a raster's declared nodata value also is (GDAL habitually writes nodata 0),
    or None: that class's pixels read as nodata, so they are neither trained on nor scored."""
    if nodata is None or not float(nodata).is_integer():
        return None
    return next((c for c in classes if c.id == int(nodata)), None)


def classes_from_dicts(items: list[dict]) -> tuple[ClassInfo, ...]:
    return tuple(ClassInfo(int(d["id"]), str(d["name"]), tuple(int(c) for c in d["color"]), bool(d.get("filler", False)))
                 for d in items)


def recorded_classes_problems(items: object, where: str) -> list[str]:
    """Why ``items`` is no class table as rsmamba records it (``tiling.json``, checkpoints), or []: a list of
    ``{id, name, color}`` whose ids are 0..N-1 in order (head output i is class id i; gaps are fillers), N at
    most 255 (uint8 labels, 255 no label). A received file's id 10^9 went into a checkpoint as head output 6."""
    if not isinstance(items, list):
        return [f"{where}: a list of {{id, name, color}}, got {type(items).__name__}"]
    if len(items) > IGNORE_INDEX:
        return [f"{where}: {len(items)} classes; class ids are 0..{IGNORE_INDEX - 1} ({IGNORE_INDEX} is no label)"]
    problems = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"{where}[{i}]: a {{id, name, color}} object, got {str(item)[:40]!r}")
            continue
        cid, name, color = item.get("id"), item.get("name"), item.get("color")
        if isinstance(cid, bool) or cid != i or not isinstance(cid, int):
            problems.append(f"{where}[{i}]: id must be {i} (ids 0..{len(items) - 1} in order), got {str(cid)[:40]}")
        if not isinstance(name, str) or not name:
            problems.append(f"{where}[{i}]: name must be a text, got {str(name)[:40]!r}")
        if (not isinstance(color, list) or len(color) != 3
                or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in color)):
            problems.append(f"{where}[{i}]: color must be three integers 0..255, got {str(color)[:40]}")
    return problems


def colormap(classes: tuple[ClassInfo, ...]) -> dict[int, tuple[int, int, int, int]]:
    """A GDAL colour table for ``rasterio``'s ``write_colormap``."""
    return {c.id: (*c.color, 255) for c in classes}


def dense_classes(items: list[dict] | tuple[ClassInfo, ...]) -> tuple[ClassInfo, ...]:
    """The table with every id from 0 to the largest filled in (a model has one output per id)."""
    table = {c.id: c for c in (classes_from_dicts(items) if items and isinstance(items[0], dict) else items)}
    top = max(table, default=-1)
    taken = {c.name.strip().casefold() for c in table.values()}

    def filler(i: int) -> ClassInfo:  # a name no class of the table has: a class 'class_2' showed empty scores
        name = f"class_{i}"
        while name.casefold() in taken:
            name = f"unused_{name}"
        return ClassInfo(i, name, (128, 128, 128), filler=True)
    return tuple(table.get(i) or filler(i) for i in range(top + 1))


def burn_classes(value: int, name: str = "building") -> tuple[ClassInfo, ...]:
    """The table of a layer burnt with one value: ``background`` (0) and ``name`` (``value``)."""
    table = {0: ClassInfo(0, "background", (0, 0, 0)), value: ClassInfo(value, name, (255, 0, 0))}
    return dense_classes(tuple(table.values()))


def load_class_table(path: str | os.PathLike[str]) -> tuple[tuple[ClassInfo, ...], int | None]:
    """Read a class table file (YAML or JSON) -> (classes, ignore value in the source labels or None).

    Format::

        ignore: 0            # optional: this label value (any integer, e.g. 65535) means "no label" (255 in chips)
        classes:
          - {id: 0, name: background, color: [0, 0, 0]}
          - {id: 1, name: building, color: [255, 0, 0]}

    Every problem (duplicate ids or names, ids outside 0..254, bad colours) is reported at once.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: class table not found")
    raw = load_yaml(p)
    items = raw.get("classes") if isinstance(raw, dict) else raw
    problems = ProblemCollector()
    if not isinstance(items, list) or not items:
        raise InputError(f"class table {p}: expected a 'classes' list of {{id, name, color}} (a YAML or JSON file)")
    out: list[ClassInfo] = []
    for i, item in enumerate(items):
        where = f"{p}: class #{i + 1}"
        if not isinstance(item, dict) or not {"id", "name"} <= set(item):
            problems.add(f"{where}: needs id and name")
            continue
        cid, name, color = item["id"], item["name"], item.get("color", item.get("colour", [128, 128, 128]))
        if not isinstance(cid, int) or class_id(cid) is None:  # (text or 1.0 is a slip here; a tag's JSON may hold it)
            problems.add(f"{where}: id must be an integer in 0..{IGNORE_INDEX - 1}, got {cid!r}")
            continue
        if why := class_name_problem(name):
            problems.add(f"{where}: {why}")
            continue
        if (not isinstance(color, (list, tuple)) or len(color) != 3
                or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in color)):
            problems.add(f"{where}: color must be three integers 0..255, got {color!r}")
            continue
        out.append(ClassInfo(cid, name, tuple(color)))
    ids = [c.id for c in out]
    for problem in repeated_classes([(c.id, c.name) for c in out]):
        problems.add(f"{p}: {problem}")
    ignore = raw.get("ignore") if isinstance(raw, dict) else None
    # any integer the labels hold for "no label": 0, or -1 / 65535 of int16 / uint16 label rasters
    if ignore is not None and (not isinstance(ignore, int) or isinstance(ignore, bool) or ignore in ids):
        problems.add(f"{p}: ignore must be an integer label value that is not a class id, got {ignore!r}")
    problems.raise_if_any()
    return tuple(sorted(out, key=lambda c: c.id)), ignore


# SECOND's label colours (its label1/label2 PNGs), white = unchanged; decoded in rsmamba.datasets.layouts.
SECOND_COLOURS = ((255, 255, 255), (0, 0, 255), (128, 128, 128), (0, 128, 0), (0, 255, 0), (128, 0, 0), (255, 0, 0))


def colours_to_ids(rgb: np.ndarray, colours: Sequence[Sequence[int]]) -> np.ndarray:
    """(3, H, W) colour labels -> (H, W) uint8 ids by exact colour; unknown colours -> 255."""
    code = (rgb[0].astype(np.int64) << 16) | (rgb[1].astype(np.int64) << 8) | rgb[2].astype(np.int64)
    out = np.full(code.shape, IGNORE_INDEX, np.uint8)
    for i, (r, g, b) in enumerate(colours):
        out[code == ((r << 16) | (g << 8) | b)] = i
    return out


def colour_layout(rgb: np.ndarray) -> str | None:
    """The benchmark whose colour coding holds every pixel of ``rgb`` (3, H, W) uint8: ``isprs`` (its
    six colours, black for the eroded boundaries) or ``second``; None for anything else. So that a
    colour label file given without ``--layout`` is named, not read as class ids in its red band."""
    for layout, colours in (("isprs", [*(c.color for c in ISPRS_CLASSES), (0, 0, 0)]), ("second", SECOND_COLOURS)):
        if (colours_to_ids(rgb, colours) != IGNORE_INDEX).all():
            return layout
    return None
