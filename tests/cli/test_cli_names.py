"""One meaning per option name across verbs; renamed options still work for one release, with a warning."""

from __future__ import annotations

import logging
from collections import defaultdict

import pytest
import typer

from rsmamba import cli

# Every option name that more than one verb shows, with the one thing it means everywhere.
SHARED = {
    "--allow-geographic-mix": "accept a geographic CRS for an input beside a projected image",
    "--amp": "mixed precision",
    "--bands": "the image's spectral bands",
    "--background": "the class of the pixels outside a label vector's polygons",
    "--batch-size": "windows per forward pass",
    "--blend": "how overlapping windows are blended",
    "--block-size": "side in pixels of the blocks read at a time (a memory bound)",
    "--burn": "every label polygon is this class id",
    "--class-field": "the attribute holding the class id in a label vector",
    "--co": "a GDAL COG creation option",
    "--compress": "COG compression",
    "--config": "a training config or a shipped recipe name",
    "--device": "the torch device",
    "--dry-run": "print the plan, write nothing",
    "--dsm": "the DSM raster",
    "--instances": "individual buildings (synth writes their ids, vectorize splits regions into them)",
    "--layout": "a benchmark's folder layout",
    "--max-errors": "stop after this many failed jobs",
    "--model": "a checkpoint or a registered model name",
    "--name-template": "output name of each job in the output folder",
    "--out": "the output",
    "--overlap": "overlap in pixels between windows or chips",
    "--overwrite": "replace existing outputs",
    "--pixel-grid": "read inputs without georeferencing on their pixel grid",
    "--probabilities": "a per-class probability raster",
    "--resume": "continue an interrupted run",
    "--scheduler": "where jobs run (Dask)",
    "--seed": "random seed",
    "--set": "override a config key",
    "--shard": "take share i of n of the jobs",
    "--size": "side in pixels (of a chip, of a synthetic scene)",
    "--tta": "test-time augmentation",
    "--tta-rot180": "the half-turn test-time augmentation: each window averaged with its half turn",
    "--window": "window side in pixels",
    "--workers": "workers of the local cluster",
}


def _visible_options() -> dict[str, list[str]]:
    group = typer.main.get_command(cli.app)
    seen: dict[str, list[str]] = defaultdict(list)
    for verb, command in group.commands.items():
        for param in command.params:
            if getattr(param, "hidden", False):
                continue
            for name in param.opts:
                if name.startswith("--"):
                    seen[name].append(verb)
    return seen


def test_an_option_shared_by_verbs_means_one_thing() -> None:
    shared = {name for name, verbs in _visible_options().items() if len(verbs) > 1}
    assert shared - set(SHARED) == set(), "new shared option names: give each one meaning (SHARED) or rename"
    visible = _visible_options()
    assert not {"--block", "--band-rows", "--probability"} & set(visible)  # renamed: hidden, deprecated
    assert visible["--change"] == ["vectorize"]  # tile's change labels are --change-labels


@pytest.mark.parametrize(("verb", "old", "new", "kwarg", "value"), [
    ("tile", "--block", "--split-block", "block", 64),
    ("tile", "--change", "--change-labels", "change", "chg.gpkg"),
    ("vectorize", "--block", "--block-size", "block_size", 64),
    ("change", "--probability", "--probabilities", "probabilities", "p.tif"),
])
def test_a_renamed_option_keeps_its_old_name_for_one_release(monkeypatch, caplog, verb, old, new, kwarg, value) -> None:
    """The old name reaches the library exactly as the new one does, and says it is deprecated."""
    calls = []

    class Done(Exception):
        pass

    def capture(*args, **kwargs):
        calls.append(kwargs[kwarg])
        raise Done

    targets = {"tile": ("rsmamba.tile", "tile_scene"), "vectorize": ("rsmamba.vectorize", "vectorize_many"),
               "change": ("rsmamba.change", "detect_change")}
    module, name = targets[verb]
    monkeypatch.setattr(f"{module}.{name}", capture)
    monkeypatch.setattr(cli, "_preflight", lambda *a, **k: None)
    monkeypatch.setattr("rsmamba.vectorize.many.resolve_rasters", lambda items: [__import__("pathlib").Path(items[0])])
    base = {"tile": ["tile", "img.tif", "-o", "chips"], "vectorize": ["vectorize", "classes.tif"],
            "change": ["change", "t1.tif", "t2.tif", "-o", "c.tif"]}[verb]
    for flag in (new, old):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="rsmamba"), pytest.raises(Done):
            cli.app(base + [flag, str(value)], standalone_mode=False)
        assert (f"{old} is deprecated" in caplog.text) == (flag == old)
    assert calls[0] == calls[1] and str(calls[0]) == str(value)


def test_band_rows_is_slice_rows(monkeypatch, caplog) -> None:
    calls = []

    def capture(*args, **kwargs):
        calls.append(kwargs["slice_rows"])
        raise SystemExit(0)

    monkeypatch.setattr("rsmamba.predict.slices.predict_slices", capture)
    monkeypatch.setattr(cli, "_preflight", lambda *a, **k: None)
    for flag in ("--slice-rows", "--band-rows"):
        with caplog.at_level(logging.WARNING, logger="rsmamba"), pytest.raises(SystemExit):
            cli.app(["predict", "img.tif", "-o", "p.tif", flag, "300"], standalone_mode=False)
    assert calls == [300, 300]
    assert "--band-rows is deprecated" in caplog.text


def test_a_librarys_python_warning_is_one_log_line_on_the_cli(capsys) -> None:
    """numpy, GDAL and geopandas warn as two lines of Python (message, then a source line): the CLI
    shows the message's first line only, as its own warnings look."""
    import warnings

    from rsmamba.cli import main

    assert main(["--version"]) == 0
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("Detected something odd\nsecond line of detail", RuntimeWarning, stacklevel=1)
    assert capsys.readouterr().err == "rsmamba: WARNING: Detected something odd (RuntimeWarning)\n"


@pytest.mark.parametrize("verb", [[], ["predict"], ["vectorize"]])
def test_help_shows_no_value_hint_on_flags_and_counters(verb, capsys, monkeypatch) -> None:
    """typer shows ``--overwrite <bool>``, ``-v <int>`` and ``--help <bool>``: they read as options taking a value."""
    monkeypatch.setenv("COLUMNS", "200")
    assert cli.main([*verb, "--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    help_line = next(line for line in lines if "--help" in line)
    assert "<bool>" not in help_line
    for flag in ("--verbose", "--quiet", "--overwrite", "--no-tta"):
        for line in (line for line in lines if f"{flag} " in line):
            assert "<bool>" not in line and "<int>" not in line, line
    if verb == ["predict"]:
        assert any("--window" in line and "<int>" in line for line in lines)  # options taking a value keep theirs
