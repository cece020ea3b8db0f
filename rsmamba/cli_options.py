"""Typed, validated command-line options shared by the verbs (rasterio ``rio/options.py`` style).

Parsing a user's string into a value is the CLI's job: a bad value is a usage error (one line,
exit 2) raised here, before any heavy module (torch, rasterio) is imported. Range checks that
need the data (a band beyond the raster's count, a compression this GDAL lacks) stay in the library.
This module imports only typer and the standard library, so ``rsmamba --help`` and usage errors are fast.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup


@dataclass
class CliState:
    """Group options (-v/-q) that every verb reads: log level and whether progress bars show."""

    verbosity: int = 0

    @property
    def progress(self) -> bool:
        """Progress bars on stderr: never with -q, never when stderr is not a terminal (logs, pipes, CI)."""
        return self.verbosity >= 0 and _isatty(sys.stderr)

    @property
    def log_level(self) -> int:
        return max(logging.DEBUG, logging.INFO - 10 * self.verbosity)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


STATE = CliState()


def verbosity_flags(args: list[str], takes_value: frozenset[str] = frozenset()) -> tuple[list[str], int]:
    """``args`` without their -v/-q flags (``-vv``, ``--quiet`` too), and what those flags add up to.

    GDAL's tools take -q anywhere on the line, and so do users: ``rsmamba predict a.tif -o b.tif -q``
    means the group's -q; a mixed cluster (``-qv``) counts as it does before the verb, and flags leading a
    cluster of the verb's own options (``-qo out.tif``) are taken out of it. Nothing after ``--`` is a flag, nor
    the value of an option in ``takes_value`` (``-o -v.tif`` was written as ``-.tif``, with DEBUG logging on).
    """
    kept: list[str] = []
    delta = 0
    value_next = False
    for i, arg in enumerate(args):
        if value_next:
            kept.append(arg)
            value_next = False
            continue
        if arg == "--":
            return kept + args[i:], delta
        if arg in takes_value:
            kept.append(arg)
            value_next = True
            continue
        if arg in ("--verbose", "--quiet"):
            delta += 1 if arg == "--verbose" else -1
        elif len(arg) > 1 and arg[0] == "-" and set(arg[1:]) <= {"v", "q"}:
            delta += arg.count("v") - arg.count("q")
        elif len(arg) > 2 and arg[0] == "-" and arg[1] in "vq" and arg[1] != "-":  # -qo out.tif: -q, then -o
            lead = len(arg) - 1 - len(arg[1:].lstrip("vq"))
            delta += arg[1:1 + lead].count("v") - arg[1:1 + lead].count("q")
            kept.append("-" + arg[1 + lead:])
            value_next = kept[-1] in takes_value
        else:
            kept.append(arg)
    return kept, delta


class VerbosityAnywhere(TyperGroup):
    """The command group, taking -v/-q after the verb as well as before it (``ctx.meta["verbosity"]``)."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, cmd, rest = super().resolve_command(ctx, args)
        takes_value = frozenset(flag for param in getattr(cmd, "params", ())
                                if getattr(param, "param_type_name", "") == "option"
                                and not getattr(param, "is_flag", False) and not getattr(param, "count", False)
                                for flag in [*param.opts, *param.secondary_opts])
        rest, ctx.meta["verbosity"] = verbosity_flags(rest, takes_value)
        return name, cmd, rest


def given(ctx: Any, name: str) -> bool:
    """Whether the user gave parameter ``name`` (on the command line or from the environment), whatever its value:
    a value equal to the default says nothing of that. By the source's name: typer bundles a click of its own,
    whose ParameterSource is another enum than ``click.core``'s."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _fail(name: str, text: str, why: str) -> typer.BadParameter:
    return typer.BadParameter(f"{text!r}: {why}", param_hint=f"'{name}'")


def parse_int_list(text: str | None, name: str, *, minimum: int | None = None) -> list[int] | None:
    """'3,2,1' -> [3, 2, 1]; None stays None. Every item an integer >= ``minimum``, none missing."""
    if text is None:
        return None
    items = [s.strip() for s in str(text).split(",")]
    try:
        values = [int(s) for s in items]
    except ValueError:
        raise _fail(name, text, "expected comma-separated integers, e.g. 3,2,1") from None
    if minimum is not None and any(v < minimum for v in values):
        raise _fail(name, text, f"every value must be >= {minimum}")
    return values


def parse_float_list(text: str | None, name: str, *, count: int | None = None) -> list[float] | None:
    """'0.8,0.1,0.1' -> [0.8, 0.1, 0.1]; finite numbers, ``count`` of them when given."""
    if text is None:
        return None
    try:
        values = [float(s) for s in str(text).split(",")]
    except ValueError:
        raise _fail(name, text, "expected comma-separated numbers") from None
    if any(v != v or v in (float("inf"), float("-inf")) for v in values):
        raise _fail(name, text, "numbers must be finite")
    if count is not None and len(values) != count:
        raise _fail(name, text, f"expected {count} comma-separated numbers")
    return values


def _callback(check: Callable[[Any], Any]) -> Callable[[typer.Context, typer.CallbackParam, Any], Any]:
    def run(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        if value is None or ctx.resilient_parsing:
            return value
        return check(value)

    return run


def _at_least(minimum: int, name: str) -> Callable[[Any], Any]:
    def check(value: int) -> int:
        if value < minimum:
            raise typer.BadParameter(f"{value} is below the minimum {minimum}", param_hint=f"'{name}'")
        return value

    return check


def positive(name: str) -> Callable:
    """Callback: an integer option that must be >= 1 (window, block, size, batch size...)."""
    return _callback(_at_least(1, name))


def non_negative(name: str) -> Callable:
    """Callback: an integer option that must be >= 0 (overlap, crop, erode...)."""
    return _callback(_at_least(0, name))


def deprecated(old: str, new: str, check: Callable | None = None) -> Callable:
    """Callback of an option kept one release under its old name (hidden from help): it warns and
    then checks the value as the new option does. The command takes the new option's value first."""

    def run(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        if value is None or value is False:
            return value
        logging.getLogger("rsmamba").warning("%s is deprecated and goes in the next release; use %s", old, new)
        return check(ctx, param, value) if check is not None else value

    return run


def either(new: Any, old: Any, default: Any = None) -> Any:
    """The value of a renamed option: the new name's, else the deprecated old name's, else ``default``."""
    return new if new is not None else old if old is not None else default


def fraction(name: str) -> Callable:
    """Callback: a number in [0, 1]."""

    def check(value: float) -> float:
        if not 0.0 <= value <= 1.0:
            raise typer.BadParameter(f"{value} is not in [0, 1]", param_hint=f"'{name}'")
        return value

    return _callback(check)


def int_list(name: str, *, minimum: int | None = None) -> Callable:
    """Callback validating a comma-separated integer list (the value stays a string for the verb)."""
    return _callback(lambda v: (parse_int_list(v, name, minimum=minimum), v)[1])


def float_list(name: str, *, count: int | None = None) -> Callable:
    return _callback(lambda v: (parse_float_list(v, name, count=count), v)[1])


# Options several verbs share, so predict and change take the same window, bands and output options.
def bands_option(help_text: str = "1-based image bands, e.g. '3,2,1' (default: the checkpoint's, else every "
                                  "band but an alpha band).") -> Any:
    return typer.Option(None, "--bands", help=help_text, callback=int_list("--bands", minimum=1))


def window_option() -> Any:
    return typer.Option(None, "--window", help="Window size in pixels (default: the model's own, else 512).",
                        callback=positive("--window"))


def overlap_option() -> Any:
    return typer.Option(None, "--overlap", help="Overlap between windows in pixels (default: the model's own with its "
                        "window, else a quarter of --window).", callback=non_negative("--overlap"))


def window_overlap(window: int | None, overlap: int | None) -> int | None:
    """The overlap predict and change use: as given, else a quarter of a given window (128 at 512); None
    when neither is given (the model's own, see :func:`rsmamba.engine.model.inference_window`)."""
    return window // 4 if overlap is None and window is not None else overlap


def batch_size_option() -> Any:
    return typer.Option(4, "--batch-size", help="Windows per forward pass.", callback=positive("--batch-size"))


def compress_option() -> Any:
    return typer.Option(None, "--compress", help="COG compression (lossless): deflate (the default), zstd, lzw, lzma, none.")


def tta_option() -> Any:
    return typer.Option(None, "--tta/--no-tta", help="D4 test-time augmentation (8x compute); --no-tta: none, even "
                        "where the model names one (default: the model's own, stored in its checkpoint).")


def tta_flip_option() -> Any:
    return typer.Option(False, "--tta-flip", help="Average with left-right, up-down and both-ways mirrored windows (4x compute; the papers' flip TTA).")


def tta_rot180_option(example: str = "the image+DSM model shipped until 2026-12-06 put its maps half a pixel south-east without TTA") -> Any:
    return typer.Option(False, "--tta-rot180", help=f"Average with the half-turned window (2x compute): cancels a network's constant sub-pixel offset ({example}).")


def tta_scales_option() -> Any:
    return typer.Option(None, "--tta-scales", help="Multi-scale TTA: windows resized by each scale, e.g. 0.75,1,1.25 (softmax averaged).")


def tta_recipe_option() -> Any:
    return typer.Option(False, "--tta-recipe", help="The checkpoint's evaluation protocol (its config's eval: flip, scales), e.g. MAFMamba's multi-scale + flip.")


def tta_spec(d4: bool | None, flip: bool, scales: str | None, recipe: bool, rot180: bool = False) -> bool | str | None:
    """The TTA spec predict records (see rsmamba.engine.tta): False / True (D4) as before, else a string.

    None: nothing given (the model's own TTA); ``d4`` False (``--no-tta``): plain, and alone.
    """
    if d4 is False:
        given = [name for name, on in (("--tta-flip", flip), ("--tta-rot180", rot180),
                                       ("--tta-scales", scales is not None), ("--tta-recipe", recipe)) if on]
        if given:
            raise typer.BadParameter(f"--no-tta runs one pass per window: drop {' / '.join(given)}", param_hint="--no-tta")
        return False
    if d4 and flip:  # 8 passes, as --tta alone: D4's eight views hold the flips
        raise typer.BadParameter("--tta averages the flips already: drop --tta-flip", param_hint="--tta-flip")
    if rot180 and (d4 or flip):  # 8 (or 4) passes, as without it: D4 and the flips hold the half turn already
        given = "--tta" if d4 else "--tta-flip"
        raise typer.BadParameter(f"{given} averages the half turn already: drop --tta-rot180", param_hint="--tta-rot180")
    parts = ["recipe"] if recipe else []
    parts += ["d4"] if d4 else []
    parts += ["flip"] if flip else []
    parts += ["rot180"] if rot180 else []
    if scales is not None:
        values = parse_float_list(scales, "--tta-scales") or []
        if any(not 0 < v <= 4 for v in values):
            raise _fail("--tta-scales", scales, "each scale must be in (0, 4], e.g. 0.75,1,1.25")
        if len(set(values)) != len(values):  # 1,1 ran two identical passes
            raise _fail("--tta-scales", scales, "a scale given twice; give each once")
        parts.append("scales=" + ",".join(f"{v:g}" for v in values))
    if parts == ["d4"]:
        return True
    return "+".join(parts) or None


def amp_option() -> Any:
    return typer.Option(False, "--amp", help="Mixed precision (bf16 on CPU, fp16 on GPU).")


def resume_option() -> Any:
    return typer.Option(False, "--resume", help="Continue an interrupted run with the same parameters.")


def pixel_grid_option() -> Any:
    return typer.Option(False, "--pixel-grid", help="Accept images without georeferencing (benchmark tiles, PNGs): "
                        "other inputs of their size paired pixel by pixel; outputs without georeferencing.")


def dry_run_option() -> Any:
    return typer.Option(False, "--dry-run", help="Print windows, memory, output size and the network passes' time; write nothing.")


def output_text(text: str) -> str:
    """An output path as typed: ``-o ''`` (an unset ``$OUT``) is refused, where ``Path('')`` is the current
    folder (predict wrote its scenes there, tile replaced it). The text keeps a trailing slash (a folder)."""
    if text == "":
        raise typer.BadParameter("'' is empty (an unset variable?): name the output")
    return text


def output_path(text: str) -> Path:
    """:func:`output_text` as a path."""
    return Path(output_text(text))


def out_option(default: Any, help_text: str, *, text: bool = False) -> Any:
    """The ``-o/--out`` option of every verb, refusing an empty path; ``text``: the path as typed (a str)."""
    return typer.Option(default, "-o", "--out", help=help_text, parser=output_text if text else output_path,
                        metavar="<path>")


def verbose_option() -> Any:
    return typer.Option(0, "--verbose", "-v", count=True, help="More log output (repeatable; before or after the verb).")


def quiet_option() -> Any:
    return typer.Option(0, "--quiet", "-q", count=True, help="Less log output, no progress bars (repeatable; before or after the verb).")
