"""Errors the CLI turns into one line and a non-zero exit.

Input checks collect every problem before failing (orthoseg style), so a user fixes
all of them in one go instead of re-running once per mistake.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable


class RsmambaError(Exception):
    """Any error that is the user's input or environment, not a bug: printed without a traceback."""

    exit_code = 1


class InputError(RsmambaError):
    """One or more problems with the inputs; ``problems`` lists them all."""

    exit_code = 2

    def __init__(self, problems: str | Iterable[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class MissingSplit(InputError):
    """A dataset split with no samples at all (no val chips, no labelled test tiles): for validation, a
    run goes on without it, with a warning; any other problem of the split is the user's to fix."""


class ProblemCollector:
    """Gather input problems, then raise them together.

    >>> p = ProblemCollector()
    >>> p.add("image.tif: no CRS")
    >>> p.raise_if_any()  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, problem: str) -> None:
        self.problems.append(problem)

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_if_any(self) -> None:
        if self.problems:
            raise InputError(self.problems)


SEED_LIMIT = 2**32  # numpy's legacy and new generators both take seeds in [0, 2**32) as one word


def seed_problem(seed: object, what: str = "--seed") -> str | None:
    """Why ``seed`` cannot seed numpy's generators (a negative or too large one raised deep inside), or None."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        return f"{what} must be an integer in 0..{SEED_LIMIT - 1}, got {seed!r}"
    return None


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (GDAL, dask and safetensors write several), or its type."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def one_line(text: str) -> str:
    """A message on one line; a DataLoader worker's error, re-raised with its traceback, as its last line."""
    text = str(text)
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]  # "rsmamba.errors.InputError: ..."
        text = re.sub(r"^[\w.]+: ", "", last, count=1)
    return " ".join(text.split())


def not_utf8_problem(path: str | os.PathLike[str]) -> str | None:
    """Why a name Python decoded with surrogate escapes (Latin-1 from an old Windows share) cannot be used,
    or None: rasterio passes names to GDAL as UTF-8 and fails deep in a run (a UnicodeEncodeError)."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError:
        raw = os.fsencode(text)
        shown = raw.decode("utf-8", "backslashreplace")
        if shown == raw.decode("utf-8", "replace"):  # valid UTF-8, read by a Python whose locale is ASCII
            return (f"{shown.encode('ascii', 'backslashreplace').decode()}: a UTF-8 name, but this Python reads "
                    f"file names as {sys.getfilesystemencoding()} (the C locale with PYTHONUTF8=0): run with "
                    "PYTHONUTF8=1 or a UTF-8 locale (e.g. LC_ALL=C.UTF-8)")
        return (f"{shown}: the name is not UTF-8 (written on another system?); GDAL and rasterio open UTF-8 "
                "names only: rename it (e.g. convmv -f latin1 -t utf8)")


# What asks for less memory at once, by verb: the advice of an out-of-memory error names the options of the
# verb that ran (evaluate was told of predict's --window); a verb not listed gets the advice without options.
LESS_AT_ONCE = {"predict": "a smaller --window or --batch-size", "change": "a smaller --window or --batch-size",
                "synth": "a smaller --size", "train": "a smaller data.batch_size or data.crop"}


def out_of_memory(exc: BaseException) -> bool:
    """numpy's MemoryError, torch's CUDA OutOfMemoryError, or torch's CPU allocator refusing (a RuntimeError)."""
    return (isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
            or isinstance(exc, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(exc))


def environment_message(exc: BaseException, verb: str | None = None) -> str | None:
    """One line for an error of the user's files or machine that was raised unwrapped, or None (a bug).

    OSError (permissions, a full disk, a missing or unreadable file; rasterio's RasterioIOError is
    one), the I/O errors of rasterio/pyogrio/fiona, a file name not in UTF-8, the selective scan's
    backend errors, and running out of memory (host or GPU; its advice names ``verb``'s options).
    The CLI prints it for one run; a batch (:mod:`rsmamba.jobs`) records it as the failed job's reason.
    """
    module = type(exc).__module__ or ""
    scan = sys.modules.get("rsmamba.kernels.selective_scan")  # loaded if the error came from there
    if scan is not None and isinstance(exc, scan.ScanBackendError):
        source = "RSMAMBA_SCAN_BACKEND" if os.environ.get("RSMAMBA_SCAN_BACKEND") else "backend"
        return f"{one_line(str(exc))} ({source})"
    if out_of_memory(exc):
        less = f" ({LESS_AT_ONCE[verb]})" if verb in LESS_AT_ONCE else ""
        return (f"out of memory ({one_line(str(exc)) or type(exc).__name__}); ask for less at once{less} or use a "
                "machine with more memory")
    if isinstance(exc, UnicodeEncodeError) and "surrogates not allowed" in str(exc):  # a file found in a folder
        return not_utf8_problem(str(exc.object)) or one_line(str(exc))
    if isinstance(exc, OSError) or module.split(".")[0] in ("rasterio", "pyogrio", "fiona"):
        cause = exc.__cause__ or exc.__context__
        if "See previous exception" in str(exc) and cause is not None:  # GDAL's own message names the file
            exc = cause
        return one_line(str(exc)) or type(exc).__name__
    return None


class ArgumentTypeError(InputError, TypeError):
    """A library function's argument of a type its annotation rules out (an InputError for the CLI's one line
    and a batch's failed job, a TypeError for a caller who catches those)."""


def _kind_check(annotation: str):
    """A predicate for the annotation text, or None where it names a type not checked (a class, Any)."""
    import numbers
    from collections.abc import Mapping, Sequence

    text = annotation.strip()
    alternatives = _split_top(text, "|")
    if len(alternatives) > 1:
        checks = [_kind_check(a) for a in alternatives]
        return None if None in checks else (lambda v: any(c(v) for c in checks))
    head, _, inner = text.partition("[")
    inner = inner[:-1] if inner.endswith("]") else inner
    if text == "None":
        return lambda v: v is None
    if text == "bool":
        return lambda v: isinstance(v, (bool, numbers.Integral)) or type(v).__name__ == "bool_"
    if text == "int":
        return lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool)
    if text == "float":
        return lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool)
    if text == "str":
        return lambda v: isinstance(v, str)
    if text in ("PathLike", "Path", "os.PathLike[str]"):
        return lambda v: isinstance(v, (str, os.PathLike))
    if head in ("list", "Sequence", "tuple") and inner:
        items = _split_top(inner, ",")
        fixed = not (len(items) == 2 and items[1].strip() == "...") and head == "tuple"
        checks = [_kind_check(i) for i in (items if fixed else items[:1])]
        if None in checks:
            return None

        def sequence(v: object) -> bool:
            if isinstance(v, (str, bytes, Mapping)) or not (isinstance(v, Sequence) or hasattr(v, "__array__")):
                return False
            values = list(v)  # type: ignore[call-overload]
            if fixed:
                return len(values) == len(checks) and all(c(x) for c, x in zip(checks, values))
            return all(checks[0](x) for x in values)
        return sequence
    if head == "dict" and inner:
        key = _kind_check(_split_top(inner, ",")[0])
        return None if key is None else (lambda v: isinstance(v, Mapping) and all(key(k) for k in v))
    return None


def _split_top(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside brackets: 'int | list[int | str]' -> ['int ', ' list[int | str]']."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char == "[") - (char == "]")
        if char == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def _numpy_scalar(value: object) -> bool:
    return type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0 and hasattr(value, "item")


def _python_numbers(value: object) -> object:
    """A numpy scalar as its Python number, a 1-d numpy array as a list of them, and so the items of a list or
    tuple (a named one too) of them: numpy values passed the checks and failed later ('truth value of an array is
    ambiguous', JSON that cannot hold them)."""
    if _numpy_scalar(value):
        return value.item()  # type: ignore[attr-defined]
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 1 and hasattr(value, "tolist"):
        return value.tolist()  # type: ignore[attr-defined]
    if isinstance(value, (list, tuple)) and any(_numpy_scalar(v) for v in value):
        items = [v.item() if _numpy_scalar(v) else v for v in value]
        return value._make(items) if hasattr(value, "_make") else type(value)(items)  # type: ignore[attr-defined]
    return value


def _positional_only(signature: object) -> bool:
    return any(p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in signature.parameters.values())


def typed_arguments(function):
    """Decorator of a public library function: an argument of a type its annotation rules out is refused at
    the call, naming it (an :class:`ArgumentTypeError`), not an AttributeError deep in the run.

    Why from the annotations: they are the one statement of what each argument takes. Annotations of
    classes (a model, a style) are not checked here; the function does.
    """
    import functools
    import inspect

    signature = inspect.signature(function)
    checks = {name: (p.annotation, check) for name, p in signature.parameters.items()
              if isinstance(p.annotation, str) and (check := _kind_check(p.annotation)) is not None}
    by_keyword = not _positional_only(signature)

    @functools.wraps(function)
    def checked(*args, **kwargs):
        try:
            given = signature.bind(*args, **kwargs).arguments
        except TypeError:
            return function(*args, **kwargs)  # Python's own message: a missing or unknown argument
        # a numpy scalar (np.int64(512), np.True_) is its Python number: it passed as an int, then was refused
        # later as 'not a whole number', or failed writing JSON once the work was done
        given = {name: _python_numbers(value) for name, value in given.items()}
        problems = [f"{function.__name__}({name}={value!r}): expected {checks[name][0]}, got {type(value).__name__}"
                    for name, value in given.items() if name in checks and not checks[name][1](value)]
        if problems:
            raise ArgumentTypeError(problems)
        return function(**given) if by_keyword else function(*args, **kwargs)
    return checked
