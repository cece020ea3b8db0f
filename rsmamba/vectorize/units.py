"""Thresholds in ground units ("4m2", "0.5m") turned into CRS units.

Users think in metres and square metres, not pixels: a 4 m2 minimum area means the same on a
0.1 m and a 0.5 m orthophoto. The CRS says how long one of its units is in metres
(:func:`rsmamba.raster.ground.metres_per_unit`).
"""

from __future__ import annotations

import math

import re

_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zA-Z²0-9]*)\s*$")
_LENGTH_UNITS = {"": 1.0, "m": 1.0, "cm": 0.01, "km": 1000.0}
_AREA_UNITS = {"": 1.0, "m2": 1.0, "m²": 1.0, "sqm": 1.0, "ha": 1e4, "km2": 1e6, "cm2": 1e-4}


def parse_length(text: str | float | None, name: str) -> float | None:
    """Metres from '0.5m', '50cm' or a bare number (metres); None stays None."""
    return _parse(text, name, _LENGTH_UNITS, "a length such as 0.5m")


def parse_area(text: str | float | None, name: str) -> float | None:
    """Square metres from '4m2', '0.1ha' or a bare number (square metres); None stays None."""
    return _parse(text, name, _AREA_UNITS, "an area such as 4m2")


def _parse(text: str | float | None, name: str, units: dict[str, float], example: str) -> float | None:
    if text is None:
        return None
    if isinstance(text, (int, float)):
        value, factor = float(text), 1.0
    else:
        match = _QUANTITY.match(str(text).strip().removeprefix("-"))  # '-5m2' read, to be told it is negative
        if not match or match.group(2).lower() not in units:
            raise ValueError(f"{name}: cannot read {text!r}, expected {example}")
        value, factor = float(match.group(1)), units[match.group(2).lower()]
        value = -value if str(text).strip().startswith("-") else value
    if not math.isfinite(value) or value < 0:  # NaN compared false to every threshold: an empty layer
        raise ValueError(f"{name}: must be a finite number >= 0, got {text!r}")
    return value * factor
