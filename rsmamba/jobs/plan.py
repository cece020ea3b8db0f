"""Many scenes in one command: input expansion, output naming, sharding and idempotent re-runs.

A mapping campaign is thousands of orthophoto tiles. ``predict`` and ``change`` accept paths,
globs and file lists; each input gets one output in the output folder; outputs that already
exist are complete (they only appear by atomic rename), so a re-run skips them. ``--shard i/n``
splits the work deterministically for schedulers outside Dask (Slurm arrays, Kubernetes
indexed jobs): shard ``i`` of ``n`` takes every n-th job starting at ``i``.
"""

from __future__ import annotations

import glob
import logging
import os
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsmamba.errors import InputError, ProblemCollector, not_utf8_problem
from rsmamba.paths import files_behind, input_problem

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
FILE_LIST_SUFFIXES = {".txt", ".lst", ".list"}


def _is_glob(text: str) -> bool:
    """Glob characters and no file of that literal name: ``scene[1].tif`` that exists is that file."""
    return glob.has_magic(text) and not Path(text).exists()


def _is_list(text: str) -> bool:
    """``@list.txt`` and no file of that literal name: an existing ``@a.tif`` is that file."""
    return text.startswith("@") and not Path(text).exists()


def is_pattern(text: str) -> bool:
    """A glob pattern or an ``@list``: something :func:`expand_inputs` expands rather than one path."""
    return _is_glob(text) or _is_list(text)


def is_template(text: str) -> bool:
    """A per-scene path template (``{dir}/{stem}_dsm.tif``): a ``{`` and no file of that literal name."""
    return "{" in text and not Path(text).exists()


def _read_list(list_path: Path) -> list[Path]:
    """The paths of a file list, relative ones to its folder; a Windows editor's BOM is dropped (CRLF is)."""
    data = list_path.read_bytes()
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError(f"file list {list_path}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}, "
                         f"line {line}); save it as UTF-8") from None
    paths = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            p = Path(line)
            paths.append(p if p.is_absolute() else list_path.parent / p)
    return paths


def expand_inputs(items: Sequence[str | os.PathLike[str]], unique: bool = True) -> list[Path]:
    """Paths, glob patterns and file lists (``@list.txt`` or a ``.txt`` file, one path per line) -> paths.

    Order is kept (sorted within each glob) and, with ``unique``, a file given twice is kept once, with a
    warning (:func:`_drop_repeats`); every problem is reported. A path that exists is taken literally
    even when its name holds glob characters (``scene[1].tif``) or starts with ``@``.
    """
    problems = ProblemCollector()
    out: list[Path] = []
    for item in items:
        text = str(item)
        if _is_list(text) or Path(text).suffix.lower() in FILE_LIST_SUFFIXES:
            list_path = Path(text[1:] if _is_list(text) else text)
            if not list_path.is_file():
                problems.add(f"file list {list_path}: not found")
                continue
            try:
                out.extend(_read_list(list_path))
            except InputError as exc:
                problems.add(str(exc))
        elif _is_glob(text):  # an existing file named with [ ] * ? is itself, not a pattern
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                problems.add(f"{text}: no file matches this pattern")
            out.extend(Path(m) for m in matches)
        else:
            out.append(Path(text))
    missing = [str(p) for p in out if not p.exists()]
    if missing:
        problems.add(f"input not found: {', '.join(missing[:5])}" + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""))
    for problem in [p for p in map(not_utf8_problem, out) if p][:3]:  # a glob's or a list's names
        problems.add(problem)
    for folder in [p for p in out if p.is_dir()][:3]:
        problems.add(f"{folder}: a folder, not a raster; give its rasters, e.g. '{folder / '*.tif'}'")
    for special in [p for p in out if p.exists() and not p.is_dir() and not p.is_file()][:3]:  # a named pipe
        problems.add(input_problem(special, "input"))  # refused before a worker's GDAL waits on it for ever
    problems.raise_if_any()
    if not out:
        raise InputError("no input given")
    return _drop_repeats(out, [(p.resolve(),) for p in out]) if unique else out


def _drop_repeats(items: Sequence[Any], keys: Sequence[tuple[Path, ...]]) -> list[Any]:
    """``items`` with each key (resolved inputs) kept at its first place: a file given twice (overlapping globs,
    a symbolic link to another input, ``a.tif`` and ``./a.tif``) runs once. A warning names each repeat and
    the input it repeats: a batch that says '2 scenes' for 3 given says why."""
    first: dict[tuple[Path, ...], Any] = {}
    kept, said = [], []
    for item, key in zip(items, keys):
        if key not in first:
            first[key] = item
            kept.append(item)
            continue
        pair = isinstance(item, tuple)
        was, now = (" and ".join(map(str, i)) if pair else str(i) for i in (first[key], item))
        said.append(f"{'the pair ' * pair}{now} is given twice" if now == was
                    else f"{'the pair ' * pair}{now} is the same {'' if pair else 'file '}as {was}")
    if said:
        shown = list(dict.fromkeys(said))
        more = f" (+{len(shown) - 3} more)" if len(shown) > 3 else ""
        log.warning("skipped %d input%s given twice: %s%s", len(said), "s" * (len(said) > 1), "; ".join(shown[:3]), more)
    return kept


@dataclass(frozen=True)
class Job:
    """One unit of work: its inputs (one path, or a t1/t2 pair) and the output it writes."""

    inputs: tuple[Path, ...]
    output: Path
    options: tuple[tuple[str, Any], ...] = ()  # per-job keyword arguments (e.g. a row slice's rows)
    # files the job reads beside its inputs, recorded with them: the DSM a --dsm template resolves to (a map
    # made with other DSMs under the same ortho's name was skipped as complete)
    reads: tuple[Path, ...] = ()
    # an existing output made from an earlier version of its inputs (replaced in place since): recomputed over it
    redo: bool = False

    @property
    def name(self) -> str:
        """The inputs' paths as given: scenes from different folders often share a file name (a/ortho.tif, b/ortho.tif)."""
        return " and ".join(map(str, self.inputs)) + (f" ({self.output.name})" if self.options else "")

    @property
    def sources(self) -> list[str]:
        """Its inputs (and what it reads beside them) as a batch folder records them: resolved (a list's relative
        path and a glob's are one file)."""
        return [str(p.resolve()) for p in (*self.inputs, *self.reads)]

    def is_complete(self, made_from: Sequence[str] | None = None) -> bool:
        """Its output exists (outputs appear only through an atomic rename, so existence means whole) and, where
        the folder recorded the inputs that made it (``made_from``), was made from this job's inputs: a list
        that gained a scene shifts ``{index}``, and another scene's map under this name is not this one's."""
        # (a record of its inputs alone: written before the files read beside them were recorded, as it was then)
        return not self.redo and self.output.exists() and (made_from is None or list(made_from) == self.sources
                                         or bool(self.reads) and list(made_from) == self.sources[:len(self.inputs)])


NAME_FIELDS = "{stem}, {name}, {suffix}, {parent}, {relparent} or {index}"


def output_name(template: str | None, path: Path, index: int, common: Path | None = None,
                suffix: str = ".tif") -> Path:
    """An output's path inside the output folder, from ``--name-template`` (default ``{stem}.tif``).

    ``{stem}``/``{name}``/``{suffix}`` of the input, ``{parent}`` (its folder's name),
    ``{relparent}`` (its folder relative to the inputs' common folder: mirrored sub-folders) and
    ``{index}`` (its position in the input list). The result must stay inside the output folder.
    """
    if template is None:
        return Path(f"{path.stem}{suffix}")
    if Path(template).is_absolute():  # '/data/{stem}.tif' was written under the folder, as data/...
        raise InputError(f"--name-template {template!r}: a name inside the output folder (-o), not an absolute path")
    folder = _folder(path)
    rel = folder.relative_to(common) if common is not None else Path(folder.name)
    try:
        _plain_fields(template)
        name = template.format(stem=path.stem, name=path.name, suffix=path.suffix, parent=folder.name,
                               relparent=str(rel) if str(rel) != "." else "", index=index)
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError(f"--name-template {template!r}: use {NAME_FIELDS} ({exc})") from None
    out = Path(os.path.normpath(name.lstrip("/")))
    if out.is_absolute() or out.parts[:1] == ("..",) or not out.name:
        raise InputError(f"--name-template {template!r} gives {name!r}: not a file name inside the output folder")
    return out


def _plain_fields(template: str) -> None:
    """A KeyError for a field with attribute or index access (``{stem.upper}``, ``{stem[0]}``): ``str.format``
    fills in a bound method's repr (a new name every run) or one character (names that collide)."""
    for _, field, _, _ in string.Formatter().parse(template):
        if field and any(c in field for c in ".["):
            raise KeyError(field)


def _folder(path: Path) -> Path:
    """An input's folder as given, made absolute without following links: a folder ``2021`` that links to
    ``flight_A`` is ``{parent}`` 2021, as the user named it (``{dir}`` and ``{stem}`` are as given too)."""
    return Path(os.path.abspath(path)).parent


def _common_folder(paths: Sequence[Path]) -> Path:
    return Path(os.path.commonpath([str(_folder(p)) for p in paths]))


def plan_jobs(inputs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str], suffix: str = ".tif",
              template: str | None = None) -> list[Job]:
    """One job per input, output named by ``template`` (default: the input's stem); names must differ."""
    inputs, out_dir = [Path(p) for p in inputs], Path(out_dir)
    common = _common_folder(inputs) if inputs else None
    jobs = [Job((p,), out_dir / output_name(template, p, i, common, suffix)) for i, p in enumerate(inputs)]
    _check_unique_outputs(jobs, template)
    _check_suffixes(jobs, template, suffix)
    return jobs


def _check_suffixes(jobs: Sequence[Job], template: str | None, suffix: str) -> None:
    """Every output named ``*suffix`` (.tif: also .tiff): a name without it fails in every job, later."""
    allowed = {suffix, ".tiff"} if suffix == ".tif" else {suffix}
    bad = [job.output.name for job in jobs if job.output.suffix.lower() not in allowed]
    if bad:
        raise InputError(f"--name-template {template!r} gives {bad[0]!r}: name the outputs *{suffix}")


def check_templates(template: str | None, inputs: Sequence[Path], role: str) -> None:
    """Fill a per-scene path template (``--dsm '{dir}/../dsm/{stem}.tif'``) for every input before any
    job runs: a bad field or missing files are said once, together, not by every job in turn."""
    if template is None:
        return
    filled = [(p, resolve_template(template, p, role)) for p in inputs]
    missing = [f"{b} (for {a.name})" for a, b in filled if b is not None and not b.exists()]
    if missing:
        more = f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
        raise InputError(f"{role} not found: {', '.join(missing[:5])}{more}")
    special = [input_problem(b, role) for _, b in filled if b is not None and not b.is_file()]  # a pipe, a folder
    if special:
        raise InputError(special[:3])


def plan_pair_jobs(t1: Sequence[Path], t2: Sequence[Path], out_dir: Path, suffix: str = ".tif",
                   template: str | None = None) -> list[Job]:
    """Change jobs: the i-th t1 with the i-th t2 (output named after t1)."""
    _check_paired(t1, t2)
    common = _common_folder(t1) if t1 else None
    jobs = [Job((a, b), out_dir / output_name(template, a, i, common, suffix)) for i, (a, b) in enumerate(zip(t1, t2))]
    _check_unique_outputs(jobs, template)
    _check_suffixes(jobs, template, suffix)
    return jobs


def _check_paired(t1: Sequence[Path], t2: Sequence[Path | None]) -> None:
    if len(t1) != len(t2):
        raise InputError(f"{len(t1)} t1 inputs but {len(t2)} t2 inputs; they are paired in order")


def _check_unique_outputs(jobs: Sequence[Job], template: str | None = None) -> None:
    names: dict[Path, Path] = {}
    clashes = []
    for job in jobs:
        if job.output in names:
            clashes.append(f"{names[job.output]} and {job.inputs[0]} would both write {job.output.name}")
        names[job.output] = job.inputs[0]
    if clashes:
        raise InputError(clashes + [f"name the outputs with --name-template, e.g. {' or '.join(_unique_templates(jobs))}"])
    inputs = {p.resolve() for job in jobs for p in job.inputs}
    behind = [p for job in jobs for p in job.inputs if str(p).lower().endswith(".vrt")]
    inputs |= {Path(f).resolve() for p in behind for f in files_behind(p)}  # a VRT's sources are inputs too
    onto = [job.output for job in jobs if job.output.resolve() in inputs]
    if onto:  # an input would be taken for its finished output (or overwritten)
        raise InputError(f"output {onto[0]}: is an input of this run ({len(onto)} such); "
                         "choose another output folder or --name-template")


def _unique_templates(jobs: Sequence[Job]) -> list[str]:
    """Up to two templates that name these jobs' outputs apart (a change run of one t1 with two t2s: neither
    the folder nor the stem of its t1 tells them apart, only the position)."""
    firsts = [job.inputs[0] for job in jobs]
    common, suffix = _common_folder(firsts), jobs[0].output.suffix
    hints = []
    for stem, how in (("{parent}_{stem}", ""), ("{relparent}/{stem}", " (mirrored folders)"), ("{index:04d}_{stem}", "")):
        names = {output_name(stem + suffix, p, i, common) for i, p in enumerate(firsts)}
        if len(names) == len(jobs):
            hints.append(f"{stem + suffix!r}{how}")
    return hints[:2]


def parse_shard(shard: str | None) -> tuple[int, int] | None:
    """``"i/n"`` with 0 <= i < n -> (i, n)."""
    if not shard:
        return None
    try:
        i_text, n_text = shard.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise InputError(f"--shard must look like i/n (e.g. 0/4), got {shard!r}") from None
    if n < 1 or not 0 <= i < n:
        raise InputError(f"--shard {shard}: need 0 <= i < n")
    return i, n


def select_shard(jobs: Sequence[Job], shard: str | None) -> list[Job]:
    """The jobs of shard ``i/n``: every n-th job starting at i (a stable, disjoint cover)."""
    parsed = parse_shard(shard)
    if parsed is None:
        return list(jobs)
    i, n = parsed
    return list(jobs[i::n])


def is_batch(inputs: Sequence[str], out: PathLike) -> bool:
    """A batch run: several inputs (one file named twice is one: it said 'skipped 1 input given twice', then 'several
    scenes ... give one output each'), a pattern or list, or an output that is a folder."""
    out = Path(out)
    return (len({os.path.realpath(i) for i in inputs}) > 1 or any(is_pattern(i) or i.endswith(".txt") for i in inputs)
            or out.is_dir() or out.suffix == "")


def resolve_template(template: str | None, image: Path, role: str = "per-scene path") -> Path | None:
    """``{stem}``, ``{name}`` and ``{dir}`` (the image's folder) in a per-scene path, e.g. ``{dir}/{stem}_dsm.tif``;
    a file that exists is itself, braces and all (``dsm{1}.tif``), as an existing ``scene[1].tif`` is no glob."""
    if template is None:
        return None
    if not is_template(template):
        return Path(template)
    try:
        _plain_fields(template)
        for _, field, spec, conversion in string.Formatter().parse(template):
            if spec or conversion:  # '{stem:>99999999999}' asked for memory, '{stem!r}' quoted the name
                raise ValueError(f"{{{field}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}")
        return Path(template.format(stem=image.stem, name=image.name, dir=str(image.parent)))
    except (KeyError, IndexError, ValueError) as exc:  # '{parent}' was a KeyError traceback in predict (QA)
        raise InputError(f"{role} template {template!r}: use {{stem}}, {{name}} or {{dir}} as they are "
                         f"({exc})") from None


def pair_inputs(t1: PathLike | Sequence[PathLike], t2: PathLike | Sequence[PathLike]) -> tuple[list[Path], list[Path]]:
    """Epoch-1 and epoch-2 paths, paired in order; a t2 containing ``{`` (and no file of that name) is a
    template filled from each t1.

    A template (``{stem}``, ``{name}``, ``{dir}``) pairs by name rather than by sort order, so a
    missing or extra scene cannot shift every later pair; every missing t2 is reported at once.
    A pair given twice runs once (:func:`_drop_repeats`); the lists are paired before that, so a
    repeat in one list cannot shift the pairs after it.
    """
    t1_items = [t1] if isinstance(t1, (str, os.PathLike)) else list(t1)
    t2_items = [t2] if isinstance(t2, (str, os.PathLike)) else list(t2)
    t1_paths = expand_inputs([str(i) for i in t1_items], unique=False)
    if len(t2_items) == 1 and is_template(str(t2_items[0])):
        template = str(t2_items[0])
        check_templates(template, t1_paths, "t2")
        t2_paths = [resolve_template(template, p, "t2") for p in t1_paths]
    else:
        t2_paths = expand_inputs([str(i) for i in t2_items], unique=False)
    _check_paired(t1_paths, t2_paths)
    pairs = _drop_repeats(list(zip(t1_paths, t2_paths)), [(a.resolve(), b.resolve()) for a, b in zip(t1_paths, t2_paths)])
    return [a for a, _ in pairs], [b for _, b in pairs]
