"""Class tables: ids, names and colours written into rasters, vectors and checkpoints."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ClassInfo:
    id: int
    name: str
    color: tuple[int, int, int]

    def to_dict(self) -> dict:
        return {**asdict(self), "color": list(self.color)}


# ISPRS 2-D semantic labelling (Vaihingen / Potsdam) colours.
ISPRS_CLASSES: tuple[ClassInfo, ...] = (
    ClassInfo(0, "impervious", (255, 255, 255)),
    ClassInfo(1, "building", (0, 0, 255)),
    ClassInfo(2, "low_vegetation", (0, 255, 255)),
    ClassInfo(3, "tree", (0, 255, 0)),
    ClassInfo(4, "car", (255, 255, 0)),
    ClassInfo(5, "clutter", (255, 0, 0)),
)

# Label value meaning "no label / ignore" in every label raster rsmamba writes or reads.
IGNORE_INDEX = 255


def classes_from_dicts(items: list[dict]) -> tuple[ClassInfo, ...]:
    return tuple(ClassInfo(int(d["id"]), str(d["name"]), tuple(int(c) for c in d["color"])) for d in items)


def colormap(classes: tuple[ClassInfo, ...]) -> dict[int, tuple[int, int, int, int]]:
    """A GDAL colour table for ``rasterio``'s ``write_colormap``."""
    return {c.id: (*c.color, 255) for c in classes}
