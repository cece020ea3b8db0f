"""One behaviour across the verbs (hunt_cli): an empty -o, a one-scene -o, options that would do nothing,
the messages of small mistakes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rsmamba.cli import main
from rsmamba.errors import InputError
from tests.helpers.rasters import random_image, write_raster


def _one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rsmamba: error: "), err
    return err


@pytest.mark.parametrize("verb", [["predict", "a.tif"], ["change", "a.tif", "b.tif"], ["tile", "a.tif"], ["synth"],
                                  ["train"], ["vectorize", "a.tif"], ["evaluate", "a.tif", "b.tif"]])
def test_an_empty_out_is_refused_by_every_verb(verb, tmp_path, monkeypatch, capsys) -> None:
    """-o '' (an unset $OUT) was the current folder: predict wrote its scene there, tile replaced it."""
    monkeypatch.chdir(tmp_path)
    assert main([*verb, "-o", ""]) == 2
    assert "'' is empty (an unset variable?): name the output" in _one_error(capsys)
    assert main([*verb, "--out="]) == 2
    _one_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_tile_never_replaces_the_folder_the_shell_is_in(tmp_path, monkeypatch, capsys) -> None:
    """tile publishes its folder by swapping it in: '-o .' deleted the shell's working folder."""
    image = write_raster(tmp_path / "img.tif", random_image(64, 64))
    work = tmp_path / "work" / "here"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    for out in (".", str(work), "..", str(tmp_path / "work")):
        assert main(["-q", "tile", str(image), "-o", out, "--size", "32", "--overwrite"]) == 2, out
        assert "is or holds the current folder: it would be replaced" in _one_error(capsys)
    assert work.is_dir() and list(work.iterdir()) == []
    assert main(["-q", "tile", str(image), "-o", "chips", "--size", "32"]) == 0  # below it: fine
    assert (work / "chips" / "manifest.csv").is_file()


def test_one_scene_and_an_out_without_suffix_is_said_not_made_a_folder(tmp_path, monkeypatch, capsys) -> None:
    """'predict a.tif -o classes' wrote classes/a.tif, then refused --probabilities as 'one scene at a time'."""
    image = str(write_raster(tmp_path / "img.tif", random_image(32, 32)))
    monkeypatch.chdir(tmp_path)
    assert main(["predict", image, "-o", "classes"]) == 2
    assert ("-o classes: one scene writes one file: name it classes.tif, or give a folder with a trailing slash "
            "(classes/)") in _one_error(capsys)
    assert main(["change", image, image, "-o", "chg"]) == 2
    assert "-o chg: one pair writes one file: name it chg.tif" in _one_error(capsys)
    assert main(["predict", image, "-o", "classes/", "--probabilities", "p.tif"]) == 2
    assert "--probabilities: for one scene written to a file (-o NAME.tif); -o classes/ is a folder" in _one_error(capsys)
    assert not (tmp_path / "classes").exists()
    assert main(["-q", "predict", image, "-o", "classes/", "--no-tta"]) == 0  # a folder, said so
    assert (tmp_path / "classes" / "img.tif").is_file()


def test_options_that_would_do_nothing_or_conflict_are_refused(tmp_path, capsys) -> None:
    """vectorize --allow-45 without --regularize did nothing; predict --compress lzw --co COMPRESS=ZSTD wrote ZSTD,
    --compress ignored."""
    image = str(write_raster(tmp_path / "img.tif", random_image(32, 32)))
    classes = str(write_raster(tmp_path / "cls.tif", np.ones((32, 32), np.uint8)))
    assert main(["vectorize", classes, "-o", str(tmp_path / "a.gpkg"), "--allow-45"]) == 2
    assert "--allow-45 applies only with --regularize" in _one_error(capsys)
    for argv in (["predict", image], ["change", image, image]):
        assert main([*argv, "-o", str(tmp_path / "x.tif"), "--compress", "lzw", "--co", "compress=ZSTD"]) == 2
        assert "--compress lzw and --co COMPRESS=ZSTD: both set the compression; give one of them" in _one_error(capsys)
    assert main(["-q", "predict", image, "-o", str(tmp_path / "x.tif"), "--co", "COMPRESS=ZSTD", "--no-tta"]) == 0
    assert not (tmp_path / "a.gpkg").exists()
    capsys.readouterr()  # (that run's warnings)
    # one --co key twice with other values: the last won, unsaid (LZW written for ZSTD asked first)
    assert main(["predict", image, "-o", str(tmp_path / "y.tif"), "--co", "COMPRESS=ZSTD", "--co", "compress=LZW"]) == 2
    assert "--co COMPRESS=ZSTD and --co compress=LZW: one option given twice; give it once" in _one_error(capsys)
    from rsmamba.predict import predict_raster

    with pytest.raises(InputError, match="--co compress and COMPRESS: one option given twice"):
        predict_raster(image, tmp_path / "z.tif", co={"compress": "ZSTD", "COMPRESS": "LZW"}, progress=False)
    assert not (tmp_path / "y.tif").exists() and not (tmp_path / "z.tif").exists()


def test_small_mistakes_are_said_plainly(tmp_path, capsys) -> None:
    """An option missing its value pointed at 'rsmamba --help'; change --workers with one pair was refused
    where predict warns and runs; a valid UTF-8 name under an ASCII locale was 'not UTF-8'."""
    import os

    from rsmamba.errors import not_utf8_problem

    assert main(["tile", "a.tif", "-o", str(tmp_path / "x"), "--size"]) == 2
    assert "Option '--size' requires an argument. (see 'rsmamba tile --help')" in _one_error(capsys)
    t1 = str(write_raster(tmp_path / "t1.tif", random_image(64, 64, seed=1)))
    t2 = str(write_raster(tmp_path / "t2.tif", random_image(64, 64, seed=2)))
    assert main(["-q", "change", t1, t2, "-o", str(tmp_path / "c.tif"), "--workers", "2", "--dry-run"]) == 0
    assert "--workers 2: the workers of --scheduler local" in capsys.readouterr().err
    ascii_read = "cl\udcc3\udca2sses.tif"  # b'cl\xc3\xa2sses.tif' (clâsses) as an ASCII locale decodes it
    if os.fsencode(ascii_read) == b"cl\xc3\xa2sses.tif":
        assert "a UTF-8 name, but this Python reads file names as" in not_utf8_problem(ascii_read)
    assert "the name is not UTF-8" in not_utf8_problem(os.fsdecode(b"orth\xe9.tif"))


def test_tta_scales_given_twice_are_refused_and_a_scale_is_said(tmp_path, capsys) -> None:
    """--tta-scales 1,1 ran two identical passes ('2 passes per window'); --tta-scales 0.9 ran every window at
    0.9x and the summary said nothing of it."""
    image = str(write_raster(tmp_path / "img.tif", random_image(64, 64), res=0.25))
    assert main(["predict", image, "-o", str(tmp_path / "x.tif"), "--tta-scales", "1,1"]) == 2
    assert "a scale given twice; give each once" in _one_error(capsys)
    assert main(["-q", "predict", image, "-o", str(tmp_path / "x.tif"), "--tta-scales", "0.9"]) == 0
    assert ", windows scaled 0.9x" in capsys.readouterr().out
    from rsmamba.engine.tta import parse_scales

    with pytest.raises(InputError, match="a scale given twice"):
        parse_scales("0.75,0.75")


@pytest.mark.parametrize("verb", ["tile", "synth", "predict", "change", "vectorize", "train", "import-weights",
                                  "evaluate", "models"])
def test_every_help_reads_whole_at_80_columns(verb, monkeypatch, capsys) -> None:
    """Piped or in an 80-column terminal, predict's and change's help cut option names ('--allow-geographic-…',
    not a name to type) and values ('none|mean|hann|gaussi…'): their widest words left the option column too
    narrow (QA)."""
    monkeypatch.setenv("COLUMNS", "80")
    assert main([verb, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage" in out and "…" not in out, [line for line in out.splitlines() if "…" in line]
