"""Safe reading of a user's small text files: configs, class tables and --set values."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsmamba.errors import InputError
from rsmamba.paths import YAML_MAX_NODES, load_yaml


def _bomb(levels: int) -> str:
    """The "billion laughs" of YAML: each level nine aliases of the one before (9**levels strings)."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [{', '.join([f'*{chr(96 + i)}'] * 9)}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_before_anything_expands_it(tmp_path: Path) -> None:
    small = load_yaml("small.yaml", text=_bomb(3))  # 9**3 strings: a legitimate (if odd) use of aliases
    assert len(small["c"]) == 9 and small["c"][0][0][0] == "lol"
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(9))  # 9**9 = 387 million strings once expanded
    with pytest.raises(InputError, match=f"bomb.yaml: its aliases expand to over {YAML_MAX_NODES} values"):
        load_yaml(path)
    with pytest.raises(InputError, match="recursive alias"):
        load_yaml("r.yaml", text="a: &a [1, *a]\n")


def test_a_config_not_in_utf8_or_not_yaml_is_one_input_error(tmp_path: Path) -> None:
    from rsmamba.classes import load_class_table
    from rsmamba.train.config import load_config

    latin = tmp_path / "c.yaml"
    latin.write_bytes("data: {root: /données}\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"c.yaml: not UTF-8 text \(byte 18\); save it as UTF-8"):
        load_config(latin)
    table = tmp_path / "t.yaml"
    table.write_text(_bomb(9))
    with pytest.raises(InputError, match="aliases expand"):
        load_class_table(table)
    with pytest.raises(InputError, match=r"--set optim.lr=\[1,: not valid YAML") as err:
        load_config(None, ["optim.lr=[1,", "data.root=x"])
    assert len(err.value.problems) == 1
