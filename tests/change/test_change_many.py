"""``rsmamba change`` over many epoch pairs: a glob for t1, a template for t2, re-runs and shards."""

from __future__ import annotations

import re

import pytest
import rasterio

from rsmamba.cli import main
from rsmamba.errors import InputError
from rsmamba.jobs import pair_inputs
from rsmamba.synth import write_scene

# --force: the co-registration estimate is noisy on 64 px scenes, and not what is tested here
FAST = ["--model", "mambafcs_tiny", "--window", "64", "--overlap", "16", "--force"]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """Three small pairs as a campaign keeps them: t1/sceneN.tif and t2/sceneN.tif."""
    root = tmp_path_factory.mktemp("pairs")
    (root / "t1").mkdir()
    (root / "t2").mkdir()
    for seed in range(3):
        paths = write_scene(root / f"s{seed}", size=64, seed=seed, gsd=0.5)
        paths["ortho_t1"].rename(root / "t1" / f"scene{seed}.tif")
        paths["ortho_t2"].rename(root / "t2" / f"scene{seed}.tif")
    return root


def run(args, capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err.strip()


def test_glob_and_template_then_rerun_skips(pairs, tmp_path, capsys) -> None:
    out = tmp_path / "change"
    args = ["change", str(pairs / "t1" / "scene*.tif"), "{dir}/../t2/{name}", "-o", str(out), *FAST, "--device", "cpu"]
    code, stdout, err = run(args, capsys)
    assert code == 0, err
    assert stdout.splitlines()[-1] == f"3 pairs compared on cpu, 0 already complete, into {out}"  # as one pair says
    assert sorted(p.name for p in out.glob("*.tif")) == ["scene0.tif", "scene1.tif", "scene2.tif"]
    with rasterio.open(out / "scene1.tif") as ds, rasterio.open(pairs / "t1" / "scene1.tif") as ref:
        assert ds.descriptions[0] == "change" and ds.transform == ref.transform and ds.shape == ref.shape
    code, stdout, _ = run(args, capsys)
    assert code == 0 and stdout.splitlines()[-1] == f"0 pairs compared, 3 already complete, into {out}"


def test_options_that_change_no_pixel_keep_finished_pairs(pairs, tmp_path, capsys) -> None:
    """'... pass --force', then the re-run with --force refused every finished pair as made with other settings
    (force); so did --max-shift, --co LEVEL=9 and a --change-threshold equal to the one the model takes."""
    out = tmp_path / "change"
    args = ["change", str(pairs / "t1" / "scene*.tif"), "{dir}/../t2/{name}", "-o", str(out),
            "--model", "mambafcs_tiny", "--window", "64", "--overlap", "16"]
    code, _, err = run([*args, "--force"], capsys)
    assert code == 0, err
    code, stdout, err = run([*args, "--max-shift", "50", "--change-threshold", "0.5", "--co", "LEVEL=9",
                             "--allow-geographic-mix"], capsys)
    assert code == 0 and stdout.splitlines()[-1] == f"0 pairs compared, 3 already complete, into {out}", err
    code, _, err = run([*args, "--force", "--change-threshold", "0.6"], capsys)
    assert code == 2 and "were made with other settings (change_threshold)" in err


def test_a_threshold_given_equal_to_the_calibrated_one_is_the_calibrated_one() -> None:
    """It dropped the minimum polygon area calibrated with it: the same pixels, another tag for vectorize."""
    from types import SimpleNamespace

    from rsmamba.change.api import change_threshold_of

    model = SimpleNamespace(extra={"change_threshold": 0.4}, source="m.pt")
    assert change_threshold_of(model, 0.4) == (0.4, "calibrated with the model")
    assert change_threshold_of(model, 0.45) == (0.45, "--change-threshold")
    assert change_threshold_of(SimpleNamespace(extra={}, source="m.pt"), 0.5) == (0.5, "--change-threshold")


def test_shards_cover_every_pair(pairs, tmp_path, capsys) -> None:
    out = tmp_path / "sharded"
    for i, expected in ((0, 2), (1, 3)):
        code, _, err = run(["change", str(pairs / "t1" / "*.tif"), str(pairs / "t2" / "*.tif"), "-o", str(out),
                            "--shard", f"{i}/2", *FAST], capsys)
        assert code == 0, err
        assert len(list(out.glob("*.tif"))) == expected


def test_single_pair_with_a_template(pairs, tmp_path, capsys) -> None:
    out = tmp_path / "one.tif"
    code, _, err = run(["change", str(pairs / "t1" / "scene0.tif"), "{dir}/../t2/{stem}.tif", "-o", str(out),
                        *FAST], capsys)
    assert code == 0, err
    assert out.exists()


def test_batch_refusals_are_one_line(pairs, tmp_path, capsys) -> None:
    t1 = str(pairs / "t1" / "scene*.tif")
    cases = [
        ([t1, "{dir}/../t2/{stem}_t2.tif", "-o", str(tmp_path / "a")], "t2 not found:"),
        ([t1, "{dir}/{epoch}.tif", "-o", str(tmp_path / "a")], "t2 template"),
        ([t1, str(pairs / "t2" / "scene[01].tif"), "-o", str(tmp_path / "a")], "3 t1 inputs but 2 t2 inputs"),
        ([t1, "{dir}/../t2/{name}", "-o", str(tmp_path / "a"), "--probabilities", str(tmp_path / "p.tif")],
         "--probabilities: works on one epoch pair"),
        ([t1, "{dir}/../t2/{name}", "-o", str(tmp_path / "a"), "--dry-run"], "--dry-run: works on one epoch pair"),
    ]
    for args, needle in cases:
        code, _, err = run(["change", *args, *FAST], capsys)
        lines = err.splitlines()
        assert code == 2 and len(lines) == 1 and needle in lines[0], (needle, err)
    assert not (tmp_path / "a").exists() or not list((tmp_path / "a").iterdir())


def test_pair_inputs_pairs_by_name(pairs) -> None:
    t1, t2 = pair_inputs([str(pairs / "t1" / "*.tif")], "{dir}/../t2/{name}")
    assert [p.name for p in t1] == [p.name for p in t2] == ["scene0.tif", "scene1.tif", "scene2.tif"]
    with pytest.raises(InputError, match="scene2.tif"):
        pair_inputs(pairs / "t1" / "scene2.tif", "{dir}/{stem}_missing.tif")


def test_a_pairs_warnings_name_the_pair(pairs, tmp_path, capsys) -> None:
    """'co-registration: could not estimate the t1/t2 shift' came once per pair of a batch, naming none (the 64 px
    pairs have too little texture for the estimate: the warning is certain here)."""
    out = tmp_path / "named"
    code, _, err = run(["change", str(pairs / "t1" / "scene*.tif"), "{dir}/../t2/{name}", "-o", str(out), *FAST],
                       capsys)
    assert code == 0, err
    lines = [line for line in err.splitlines() if "co-registration:" in line]
    t1 = re.escape(str(pairs / "t1"))
    named = [re.match(rf"rsmamba: WARNING: {t1}/(scene\d\.tif) and {t1}/\.\./t2/\1: co-registration: ", line)
             for line in lines]
    assert lines and all(named), err
    assert len({m.group(1) for m in named}) == len(lines)  # each pair its own line
