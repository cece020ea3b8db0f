"""docs/config.md lists every config key with its default."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from rsmamba.train.config import DEFAULTS


def _keys(d: dict, prefix: str = ""):
    for k, v in d.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and k != "kwargs" and v:
            yield from _keys(v, path + ".")
        else:
            yield path, v


def test_every_key_documented_with_its_default() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text()
    rows = dict(re.findall(r"^\| `([\w.]+)` \| `([^`]*)`", text, re.M))
    for key, default in _keys(DEFAULTS):
        assert key in rows, key
        if key != "data.root":
            assert yaml.safe_load(rows[key]) == default, (key, rows[key], default)
