"""Run many jobs in-process or on a dask.distributed cluster, and report every failure at the end.

``scheduler=None`` runs jobs one after another in this process; ``"local"`` starts a
:class:`~dask.distributed.LocalCluster` of worker processes on loopback; any other string is the
address of an existing scheduler. Failed jobs are retried, counted against ``max_errors`` and
listed together at the end (the lesson of orthoseg #72: never drop a failure silently). Job
outputs are written atomically by the job functions, so a worker killed mid-job leaves nothing
behind and dask simply reruns the job elsewhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rsmamba.atomic import (
    OutputBusyError, OutputError, file_identity, missing_folders, remove_empty, remove_stale_partials,
)
from rsmamba.jobs.plan import Job, select_shard
from rsmamba.jobs.worker import _current_worker, default_workers
from rsmamba.errors import InputError, RsmambaError, environment_message, first_line, one_line
from rsmamba.paths import output_problem
from rsmamba.runlog import relayed_warnings, scene_scope, warn_once

log = logging.getLogger(__name__)


@dataclass
class JobResult:
    job: Job
    status: str  # "done" | "skipped" | "failed" | "not run" (stopped by max_errors) | "elsewhere" (another run's)
    seconds: float = 0.0
    error: str = ""
    worker: str = ""
    user: bool = False  # failed on the user's input or machine (exit 2), not on a bug of ours
    final: bool = False  # a retry would fail the same way (an input refused); a full disk or a dead worker may not
    taken_up: bool = False  # done from where an interrupted run stopped (the job's result has a resume_note)
    said: tuple[tuple[int, str], ...] = ()  # on a Dask worker: the warnings it logged (level, message), for the caller

    @property
    def retryable(self) -> bool:
        return self.status == "failed" and not self.final


class JobsFailed(RsmambaError):
    """Some jobs failed; the message lists each of them."""

    def __init__(self, results: Sequence[JobResult]):
        self.results = list(results)
        failed = [r for r in results if r.status == "failed"]
        stopped = sum(r.status == "not run" for r in results)
        more = f"; {stopped} not run (stopped by --max-errors)" if stopped else ""
        # what did go through, as a run without failures says it (only the failures were said, QA)
        went = [(n, label) for label, n in (("done", sum(r.status == "done" for r in results)),
                                            ("already complete", sum(r.status == "skipped" for r in results)),
                                            ("being made by another run", sum(r.status == "elsewhere" for r in results)))
                if n]
        more += "; " + ", ".join(f"{n} {label}" for n, label in went) if went else ""
        # one failure a line, each closed by ';' so that the CLI's one line still tells them apart
        lines = [f"{len(failed)} of {len(results)} jobs failed{more}:"] + [
            f"  {r.job.name}: {str(r.error).rstrip('.; ')}{';' if i < len(failed) - 1 else ''}" for i, r in enumerate(failed)]
        super().__init__("\n".join(lines))
        self.exit_code = 2 if failed and all(r.user for r in failed) else 1  # 2: every failure is the inputs'



def _run_one(fn: Callable[..., Any], job: Job, kwargs: dict[str, Any], skip_complete: bool = False) -> JobResult:
    """Executed on a worker: run the job (:func:`_run_job`); on a Dask worker its warnings go back in the result, for
    the caller to say (a worker's stderr is its own terminal or log file)."""
    if _current_worker() is None:
        return _run_job(fn, job, kwargs, skip_complete)
    with relayed_warnings() as said:
        result = _run_job(fn, job, kwargs, skip_complete)
    return replace(result, said=tuple(said), worker=str(_current_worker().address))


def _run_job(fn: Callable[..., Any], job: Job, kwargs: dict[str, Any], skip_complete: bool = False) -> JobResult:
    """Run the job, turning an exception into a failed result with its reason.

    An output another run is writing is that run's to make (the same batch started twice: each failed the scenes
    the other held, exit 2), with ``--overwrite`` too: the folder's record holds both runs to one set of settings,
    and the other run's output, published after this one started, is as new as this run's would be.
    ``skip_complete``: so is one that another run published since this run looked."""
    import socket

    start = time.perf_counter()
    try:
        with scene_scope(job.name, [str(p) for p in job.inputs]):  # its warnings say which scene they are about
            # an output made from an earlier version of its inputs is replaced (the folder's record says whose it is)
            value = fn(*job.inputs, job.output, **{**kwargs, **({"overwrite": True} if job.redo else {})},
                       **dict(job.options))
        return JobResult(job, "done", time.perf_counter() - start, worker=socket.gethostname(),
                         taken_up=bool(getattr(value, "resume_note", "")))
    except OutputBusyError as exc:
        return JobResult(job, "elsewhere", time.perf_counter() - start, one_line(str(exc)))
    except RsmambaError as exc:
        if skip_complete and job.is_complete():  # published by the other run while this one loaded ('exists')
            return JobResult(job, "skipped", time.perf_counter() - start)
        return JobResult(job, "failed", time.perf_counter() - start, one_line(str(exc)), user=exc.exit_code == 2,
                         final=exc.exit_code == 2 and not isinstance(exc, OutputError))  # a full disk, a busy output: may pass
    except Exception as exc:  # noqa: BLE001 - reported with its type, the run goes on
        said = environment_message(exc)  # an unreadable input, a full disk: the user's, in one line
        if said is not None:
            return JobResult(job, "failed", time.perf_counter() - start, said, user=True)
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        return JobResult(job, "failed", time.perf_counter() - start,
                         f"{exc.__class__.__name__}: {exc} ({tb.filename.rsplit('/', 1)[-1]}:{tb.lineno})")


def run_jobs(
    fn: Callable[..., Any],
    jobs: Sequence[Job],
    *,
    kwargs: dict[str, Any] | None = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    worker_threads: int | None = None,
    retries: int = 1,
    max_errors: int | None = None,
    skip_complete: bool = True,
    progress: bool = True,
) -> list[JobResult]:
    """Run ``fn(*job.inputs, job.output, **kwargs, **job.options)`` for each job; raise :class:`JobsFailed` if any failed.

    ``fn`` must be importable by the workers (a module-level function). Jobs whose output exists
    are skipped. ``max_errors``: stop scheduling new jobs once that many have failed.
    ``worker_threads``: torch/BLAS threads of each local worker (default: the cores shared out).
    """
    kwargs = kwargs or {}
    problems = [f"{name} must be a whole number >= {least}, got {value!r}"
                for name, value, least in (("--workers", n_workers, 1), ("threads per worker", threads_per_worker, 1),
                                           ("worker threads", worker_threads, 1), ("retries", retries, 0))
                if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least)]
    if problems:  # else a dask cluster of 0 workers: "Nanny failed to start" after its own retries
        raise InputError(problems)
    results: list[JobResult] = []
    todo = []
    for job in jobs:
        if skip_complete and job.is_complete():
            results.append(JobResult(job, "skipped"))
        else:
            todo.append(job)
    bar = tqdm(total=len(todo), desc="jobs", unit="job", disable=not progress or not todo)
    if scheduler is None:
        failures = 0
        for job in todo:
            if skip_complete and job.is_complete():  # published since by another run of these settings (a run of
                results.append(JobResult(job, "skipped"))  # others is refused up front); on a cluster a retried
                bar.update()  # task may find its own first attempt's output, this run's: not checked there
                continue
            res = _retry_local(fn, job, kwargs, retries, skip_complete)
            results.append(res)
            failures += res.status == "failed"
            bar.update()
            if max_errors is not None and failures > max_errors:
                break
    else:
        results.extend(_run_dask(fn, todo, kwargs, scheduler, n_workers, threads_per_worker, worker_threads, retries,
                                 max_errors, bar, skip_complete))
    bar.close()
    ran = {(r.job.output, r.job.options) for r in results}  # results from workers hold copies of the jobs
    results += [JobResult(job, "not run") for job in todo if (job.output, job.options) not in ran]  # max_errors
    for res in results:
        if res.status == "done":
            remove_stale_partials(res.job.output)
    if any(r.status == "failed" for r in results):
        raise JobsFailed(results)
    return results


FILE_SUFFIXES = {".tif", ".tiff", ".gpkg", ".geojson", ".json", ".shp", ".vrt", ".img", ".jp2", ".png", ".fgb"}


def run_many(
    fn: Callable[..., Any],
    jobs: Sequence[Job],
    out_dir: str | os.PathLike[str],
    *,
    kwargs: dict[str, Any],
    scheduler: str | None = None,
    workers: int | None = None,
    shard: str | None = None,
    max_errors: int | None = None,
    retries: int = 1,
    progress: bool = True,
    settings: dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
) -> list[JobResult]:
    """The many-scene form of a verb: this shard of ``jobs`` into ``out_dir``, one ``fn`` call each.

    Existing outputs are complete (published whole), so they are skipped unless
    ``kwargs["overwrite"]``; a local cluster on GPUs gets one worker per GPU (``kwargs["device"]``).
    ``settings``: ``kwargs`` as the runs will resolve them (the model's own window...), what the
    folder's record compares (:func:`check_settings`); ``kwargs`` when not given. ``defaults``: what
    an option not given means (:func:`keyword_defaults` of the one-scene function).
    """
    todo = select_shard(jobs, shard)
    check_scheduler(scheduler)
    if Path(out_dir).suffix.lower() in FILE_SUFFIXES and not Path(out_dir).is_dir():  # a folder named mosaic.tif
        raise InputError(f"-o {out_dir}: several scenes (a pattern, a list or a folder) give one output each, "
                         f"written into a folder: name one (-o {Path(out_dir).with_suffix('')}/), or give one scene")
    role = "output folder (-o, several inputs)" if len(jobs) > 1 else "output folder (-o)"
    problem = output_problem(out_dir, role=role, directory=True, into=True)  # before the records are opened there
    if problem:
        raise InputError(problem)
    if not todo:  # a shard of no scene (--shard 5/8 of 4): it made a folder and a record of nothing (QA)
        log.warning("--shard %s: no scene of the %d falls to this shard; nothing written", shard, len(jobs))
        return []
    folder = Path(out_dir)
    fresh = missing_folders(folder)
    folder.mkdir(parents=True, exist_ok=True)
    new = [name for name in (SETTINGS_FILE, _GUARD, _RUNS) if not (folder / name).exists()]
    stamps = {_key(job, folder): input_stamps(job) for job in todo}  # the inputs as this run finds them
    try:
        held, redo = check_settings(todo, out_dir, settings if settings is not None else kwargs, planned=jobs,
                                    defaults=defaults, stamps=stamps)
    except InputError:  # refused before any record was written: its lock files went with it (they stayed, hidden)
        if SETTINGS_FILE in new and not (folder / SETTINGS_FILE).exists():
            runs = os.open(folder / _RUNS, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                _tidy(folder, (), runs, new, fresh)
            finally:
                os.close(runs)
        raise
    todo = [replace(job, redo=True) if _key(job, folder) in redo else job for job in todo]
    for why, said in (("changed", "whose input changed since {} made"),  # replaced in place (same name, new content)
                      ("left", "that an --overwrite run had not recomputed when it stopped")):
        names = sorted(key for key, reason in redo.items() if reason == why)
        if names:
            log.warning("recomputing %d output%s %s: %s%s", len(names), "s" * (len(names) > 1),
                        said.format("they were" if len(names) > 1 else "it was"), ", ".join(names[:3]),
                        f" (+{len(names) - 3} more)" if len(names) > 3 else "")
    try:
        try:
            workers = default_workers(scheduler, workers, kwargs.get("device"))
            results = run_jobs(fn, todo, kwargs=kwargs, scheduler=scheduler, n_workers=workers, retries=retries,
                               max_errors=max_errors, progress=progress, skip_complete=not kwargs.get("overwrite"))
        except JobsFailed as exc:
            record_made(out_dir, exc.results, stamps)
            # on a cluster started elsewhere a scene 'not run' may still be published after this
            over = [r.job for r in exc.results if r.status == "failed"
                    or (r.status == "not run" and scheduler in (None, "local"))]
            _tidy(folder, over, held, new, fresh)
            raise
        except InputError:  # refused before any job ran (a --workers count, an unreachable scheduler)
            _tidy(folder, todo, held, new, fresh)
            raise
        record_made(out_dir, results, stamps)
        return results
    finally:
        os.close(held)  # this run writes into the folder no more


def _tidy(folder: Path, over: Sequence[Job], held: int, new: Sequence[str], fresh: Sequence[Path]) -> None:
    """After a run that failed: no record of an output it never wrote stays behind.

    The claims (:func:`check_settings`) of ``over`` (jobs that ended without output) are dropped. When no
    other run is writing into the folder and no output is recorded, the records this run added
    (``new``) go, and so do the folders it made (``fresh``) once empty: a batch whose every scene was
    refused leaves the disk as it found it.
    """
    with _guard(folder):
        record = _read_record(folder / SETTINGS_FILE)
        settings, made_from = record.settings, record.made_from
        ended = {_key(job, folder) for job in over if not job.output.exists()}
        kept = {key: made for key, made in made_from.items() if key not in ended}
        kept_stamps = {key: st for key, st in record.stamps.items() if key not in ended}
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # no other run holds the folder
            alone = True
        except BlockingIOError:
            alone = False
        if alone and not kept and SETTINGS_FILE in new:
            for name in new:
                (folder / name).unlink(missing_ok=True)
            remove_empty(fresh)
        elif settings is not None and kept != made_from:
            _write_record(folder / SETTINGS_FILE, _Record(settings, kept, record.stale, kept_stamps))


def check_scheduler(scheduler: str | None) -> None:
    """A malformed ``--scheduler`` address, said before any folder is made (a reachable one is for Dask to find)."""
    if scheduler in (None, "local"):
        return
    try:
        from distributed.comm.addressing import parse_address, parse_host_port
    except ImportError:  # pragma: no cover - depends on the extra; _run_dask says what to install
        return
    try:
        kind, where = parse_address(scheduler)
        if kind in ("tcp", "tls"):
            parse_host_port(where)
    except ValueError as exc:
        raise InputError(f"--scheduler {scheduler}: {first_line(exc)}; give 'local' or a scheduler address "
                         "such as tcp://HOST:8786") from None


def _made_by_rsmamba(path: Path) -> bool:
    """A raster that predict or change wrote (their ``model_id`` tag), from another input set perhaps."""
    try:
        import rasterio

        with rasterio.open(path) as src:
            return "model_id" in src.tags() or "model_id" in src.tags(1)
    except Exception:  # noqa: BLE001 - not a raster GDAL reads: not ours
        return False


SETTINGS_FILE = ".rsmamba-batch.json"  # in the output folder: the settings its outputs were made with, the
# inputs each output was made from, and the outputs an --overwrite takeover has not recomputed yet
_GUARD = ".rsmamba-batch.guard"  # flock: one run at a time reads and rewrites the record
_RUNS = ".rsmamba-batch.runs"  # flock, shared by every live run into the folder for its whole run


# How a run goes or what it accepts, not the pixels it makes: a re-run on a GPU, with bigger batches, quieter,
# with another lossless compression or COG layout (--co: the engine refuses every option that would change a value
# or the grid), or allowed to pair inputs that were refused (--force, --max-shift, --allow-geographic-mix,
# --pixel-grid) keeps the outputs.
RUN_ONLY = frozenset({"overwrite", "progress", "device", "batch_size", "channels_last", "prefetch", "gdal_cache_mb",
                      "compress", "co", "force", "max_shift", "allow_geographic_mix", "pixel_grid"})


def keyword_defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """``fn``'s keyword defaults: what a run means by an option it did not give (a library caller leaves out
    what the CLI passes; a folder recorded before an option existed was made with its default)."""
    import inspect

    return {name: p.default for name, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}


def _file_digest(path: Path) -> str:
    """The model file's content: a copy staged to another node, or a touched file, is the same model."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


# Options naming per-scene files that each output's record holds itself (``made_from``: a predict map's DSM):
# compared as given or not, so the same DSMs named otherwise ('{dir}/../dsm/{stem}.tif' and 'campA/dsm/{stem}.tif',
# or one scene's own path) are no other setting, and other DSMs under one name are other inputs.
PER_SCENE_FILES = frozenset({"dsm_template"})


def _settings(kwargs: dict[str, Any]) -> dict[str, str]:
    """What decides an output's pixels: every option but how the run goes (:data:`RUN_ONLY`)."""
    out = {}
    for key, value in sorted(kwargs.items()):
        if key in RUN_ONLY:
            continue
        if key == "model" and value is not None and Path(str(value)).is_file():
            out[key] = _file_digest(Path(str(value)))
        else:
            out[key] = json.dumps(value, sort_keys=True, default=str)
    return _per_scene_as_given(out)


def _per_scene_as_given(settings: dict[str, str]) -> dict[str, str]:
    """:data:`PER_SCENE_FILES` as whether they are given (a record written before holds a template's text).
    Idempotent: a record's "false" read back was made "true" (not "null"), and every batch without a --dsm
    refused its own re-run as 'made with other settings (dsm_template)'."""
    return {k: (v if v in ("true", "false") else json.dumps(v != "null")) if k in PER_SCENE_FILES else v
            for k, v in settings.items()}


def batch_record_in(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` is a batch run's output folder (it holds the record of its outputs' settings)."""
    return (Path(folder) / SETTINGS_FILE).is_file()


def batch_folder_of(path: str | os.PathLike[str]) -> Path | None:
    """The batch run's output folder that ``path`` (an output) belongs to: its own folder when that holds a record,
    else the nearest folder above whose record lists it (a mirrored batch, ``--name-template
    '{relparent}/{stem}.tif'``, records ``out/a/s.tif`` in ``out/``); a record further up that does not know the
    file (a batch once run into the home folder) leaves it alone."""
    path = Path(os.path.abspath(path))
    if batch_record_in(path.parent):
        return path.parent
    for folder in path.parents[1:]:
        if batch_record_in(folder):
            record = _read_record(folder / SETTINGS_FILE)
            if path.relative_to(folder).as_posix() in record.made_from.keys() | record.stale.keys():
                return folder
    return None


@dataclass
class _Record:
    """A folder's record. ``settings``: None when unreadable. ``made_from``: output -> the inputs that made
    it. ``stale``: output -> (the settings that differed, "" for none; the file's identity then) for outputs an
    ``--overwrite`` run (a takeover of other settings, or the same settings again) had not recomputed: while the
    same file is there it is an old map, never complete (the next run recomputes it); a file published over it
    since (a new identity) is this record's, even when the run that published it was killed before it could say so."""

    settings: dict[str, str] | None
    made_from: dict[str, list[str] | None]  # None: an output of a record that listed none (inputs unknown)
    stale: dict[str, list]
    # output -> its inputs' fingerprints when they made it: an input replaced in place is another input
    stamps: dict[str, list] = field(default_factory=dict)
    # False for a record of the settings alone (written before inputs were recorded): its outputs are not listed
    inputs_recorded: bool = True


def _read_record(path: Path) -> _Record:
    """A record written before the inputs were recorded is its settings alone (which input made each output is
    unknown)."""
    try:
        data = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return _Record(None, {}, {})
    if not isinstance(data, dict):
        return _Record(None, {}, {})
    if isinstance(data.get("settings"), dict):
        made, stale, stamps = data.get("made_from"), data.get("stale"), data.get("input_stamps")
        return _Record(data["settings"], dict(made) if isinstance(made, dict) else {},
                       {str(k): list(v) for k, v in stale.items() if isinstance(v, list) and len(v) == 2}
                       if isinstance(stale, dict) else {},
                       {str(k): v for k, v in stamps.items() if isinstance(v, list)} if isinstance(stamps, dict) else {})
    return _Record(data, {}, {}, inputs_recorded=False)


def _write_record(path: Path, record: _Record) -> None:
    from rsmamba.atomic import atomic_output

    data: dict[str, Any] = {"settings": record.settings, "made_from": record.made_from}
    if record.stale:
        data["stale"] = record.stale
    if record.stamps:
        data["input_stamps"] = record.stamps
    with atomic_output(path) as tmp:  # under _guard: no other run writes it meanwhile
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))


@contextlib.contextmanager
def _guard(folder: Path) -> Iterator[None]:
    """The record's read-modify-write, one run at a time: shards that start together wait a moment, not fail."""
    fd = os.open(folder / _GUARD, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _key(job: Job, folder: Path) -> str:
    return Path(os.path.relpath(os.path.abspath(job.output), os.path.abspath(folder))).as_posix()


def _shown(paths: Sequence[str]) -> str:
    """Recorded inputs as a user typed them: relative to here when that is shorter."""
    return " + ".join(min(p, os.path.relpath(p), key=len) for p in paths)


def input_stamps(job: Job) -> list[str | None]:
    """Which versions of its inputs a job reads: each one's :func:`~rsmamba.engine.resume.file_fingerprint` (size
    and modification time of it and of the files GDAL reads with it, a VRT's sources, and the georeferencing an
    ``.aux.xml`` gives it), as a ``--resume`` compares them; None for one that cannot be read now."""
    from rsmamba.engine.resume import file_fingerprint  # (on use: the CLI imports this package without torch)

    stamps: list[str | None] = []
    for path in (*job.inputs, *job.reads):
        try:
            stamps.append(file_fingerprint(path))
        except Exception:  # noqa: BLE001 - a missing DSM (--max-errors), an unreadable scene: its job says so
            stamps.append(None)
    return stamps


def check_settings(todo: Sequence[Job], out_dir: str | os.PathLike[str], kwargs: dict[str, Any],
                   planned: Sequence[Job] = (), defaults: dict[str, Any] | None = None,
                   stamps: dict[str, list] | None = None) -> tuple[int, dict[str, str]]:
    """Outputs of an earlier run are skipped as complete only if it used these settings and these inputs; else refused.

    A re-run with another window, model or threshold would otherwise report the old files as done, a
    shard or a subset run with other settings would leave a folder of mixed outputs, and a list that
    gained a scene (``{index}`` shifted) would count another scene's map as this one's. The folder
    records its settings (``defaults`` filled in, so a key an older record lacks is its default) and,
    per output, the inputs that made it. Other settings are refused while any output remains or
    another run may be writing (a record with no output yet): ``overwrite`` takes the folder over
    when no live run holds it and no other output would remain. An output without a recorded input
    (a folder written before inputs were recorded) is complete when it exists, as it was then.

    ``stamps``: each job's :func:`input_stamps` now (by :func:`_key`); an existing output recorded with other
    stamps of the same inputs was made before an input was replaced in place (same name, new content), and is
    not complete (``"changed"``). Nor is one that an ``overwrite`` run (of other settings or the same) found and
    had not published over when it stopped (``"left"``, the record's ``stale``). A run without ``overwrite``
    recomputes both: the outputs returned.

    Returns a file descriptor holding this run's shared lock on the folder (close it when the run ends) and
    the outputs (by :func:`_key`) to recompute, each with why.
    """
    stamps = stamps if stamps is not None else {_key(job, Path(out_dir)): input_stamps(job) for job in todo}
    folder = Path(out_dir)
    filled = _settings(defaults or {})
    settings = {**filled, **_settings(kwargs)}
    runs = os.open(folder / _RUNS, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        with _guard(folder):
            record = _read_record(folder / SETTINGS_FILE)
            recorded, made_from = record.settings, record.made_from
            earlier = None if recorded is None else {
                **filled, **_per_scene_as_given({k: v for k, v in recorded.items() if k not in RUN_ONLY})}
            if recorded is None and (folder / SETTINGS_FILE).is_file():  # edited or truncated: settings unknown
                if not kwargs.get("overwrite"):  # (read as none, its outputs were skipped as complete, then vouched for)
                    raise InputError(f"{folder / SETTINGS_FILE}: the folder's batch record is unreadable, so the "
                                     "settings its outputs were made with are unknown; --overwrite recomputes this "
                                     "run's outputs where no other output would remain, or choose another folder")
                earlier = {}  # as other settings: taken over only where no other output would remain
            stale = {key: entry for key, entry in record.stale.items() if _still_stale(folder / key, entry)}
            if earlier is not None and earlier != settings:
                _refuse_other_settings(todo, folder, settings, earlier, planned, bool(kwargs.get("overwrite")), runs)
                # taken over: until recomputed, this run's existing outputs are the old settings' (a scene that
                # fails keeps its old map; the next run must not skip it as complete)
                changed = _changed(settings, earlier)
                stale.update({_key(job, folder): [changed, list(file_identity(job.output) or [])]
                              for job in todo if job.output.exists()})
            elif kwargs.get("overwrite"):  # recomputed one by one: those it has not reached when it stops are old
                stale.update({_key(job, folder): ["", list(file_identity(job.output) or [])]
                              for job in todo if job.output.exists()})
            redo: dict[str, str] = {}
            if not kwargs.get("overwrite"):
                _refuse_other_inputs(todo, folder, made_from, stale if record.inputs_recorded else None)
                # what an --overwrite that stopped left: recomputed by the next run, as the runs before it did not
                redo = {key: "left" for job in todo if (key := _key(job, folder)) in stale}
                redo.update({key: "changed" for job in todo if (key := _key(job, folder)) in record.stamps
                             and key not in redo and job.output.exists() and made_from.get(key) == job.sources
                             and record.stamps[key] != stamps[key] and None not in stamps[key]})  # (one gone since:
                # a DSM deleted after its map was made is no newer DSM; the map stays complete, as it was)
            if not record.inputs_recorded:  # its outputs, complete as they were, by inputs unknown (None)
                made_from.update({key: None for job in [*planned, *todo] if job.output.exists()
                                  and (key := _key(job, folder)) not in made_from})
            for job in todo:  # claimed before the run: an output published by a run killed after it is recorded
                if not job.output.exists():
                    made_from[_key(job, folder)] = job.sources
                    record.stamps[_key(job, folder)] = stamps[_key(job, folder)]
            _write_record(folder / SETTINGS_FILE, _Record(settings, made_from, stale, record.stamps))
            fcntl.flock(runs, fcntl.LOCK_SH)  # (an exclusive one, of a takeover, becomes shared)
    except BaseException:
        os.close(runs)
        raise
    return runs, redo


def _changed(settings: dict[str, str], earlier: dict[str, str]) -> str:
    """The settings that differ, as a message names them."""
    return (", ".join(sorted(k for k in settings.keys() | earlier.keys() if settings.get(k) != earlier.get(k)))
            if earlier else "unknown: its batch record is unreadable")


def _still_stale(path: Path, entry: list) -> bool:
    """The file an ``--overwrite`` takeover found at ``path`` is still there (no map published over it since)."""
    identity = file_identity(path)
    return identity is not None and list(identity) == list(entry[1])


def _refuse_other_settings(todo: Sequence[Job], folder: Path, settings: dict[str, str], earlier: dict[str, str],
                           planned: Sequence[Job], overwrite: bool, runs: int) -> None:
    changed = _changed(settings, earlier)
    suffixes = {job.output.suffix for job in todo} or {".tif"}
    ours = {job.output.resolve() for job in [*planned, *todo]}
    outputs = sorted(p for p in folder.rglob("*") if p.suffix in suffixes and p.is_file()
                     and not any(part.startswith(".") for part in p.relative_to(folder).parts)
                     and (p.resolve() in ours or _made_by_rsmamba(p)))  # a user's own file is no output
    if overwrite:
        try:
            fcntl.flock(runs, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"{folder}: another rsmamba run is writing into it with other settings ({changed}); "
                             "wait for it to finish, or choose another output folder") from None
        mine = {job.output.resolve() for job in todo}
        outputs = [p for p in outputs if p.resolve() not in mine]
        how = "--overwrite recomputes only this run's outputs; remove the others"
    elif not outputs:
        try:  # no output of theirs: a run of other settings that stopped before its first is no obstacle
            fcntl.flock(runs, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"{folder}: another rsmamba run is writing into it with other settings ({changed}); "
                             "wait for it to finish, or choose another output folder") from None
        return
    elif not {p.resolve() for p in outputs} <= {job.output.resolve() for job in todo}:
        # (one scene of four re-run with other settings: --overwrite would refuse the three others)
        how = "--overwrite recomputes this run's outputs once the others are gone (or run every scene with it)"
    else:
        how = f"--overwrite recomputes {'them' if len(outputs) > 1 else 'it'}"
    if outputs:
        were = "s (e.g. {}) were".format(outputs[0].name) if len(outputs) > 1 else f" ({outputs[0].name}) was"
        raise InputError(f"{folder}: {len(outputs)} output{were} made with other settings ({changed}); {how}, "
                         "or choose another output folder")


def _refuse_other_inputs(todo: Sequence[Job], folder: Path, made_from: dict[str, list[str] | None],
                         stale: dict[str, list] | None = None) -> None:
    """An existing output recorded as made from other inputs than its job's is another scene's, not complete; with
    ``stale`` (a record that lists every output of its batch, or none yet), so is one the record does not list: another
    command made it (a one-scene run with --tta into the folder of a shard not yet run, or of a batch not yet run, was
    skipped as the batch's, QA)."""
    if stale is not None:
        foreign = [job.output for job in todo if job.output.exists() and _key(job, folder) not in made_from
                   and _key(job, folder) not in stale]
        if foreign:
            it = "them" if len(foreign) > 1 else "it"
            more = f" (+{len(foreign) - 3} more)" if len(foreign) > 3 else ""
            why = (f"its record {folder / SETTINGS_FILE} does not list {it}" if (folder / SETTINGS_FILE).is_file()
                   else f"{folder} holds no batch record")  # (a one-scene run's map, first batch: skipped too)
            raise InputError(f"{', '.join(str(p) for p in foreign[:3])}{more}: not made by this batch ({why}; "
                             f"another command wrote {it} there), so made with settings unknown; delete {it} and run "
                             f"again to compute {it}, --overwrite replaces {it}, or choose another output folder")
    wrong = [(job, made) for job in todo if (made := made_from.get(_key(job, folder))) is not None
             and job.output.exists() and not job.is_complete(made)]
    if wrong:
        said = [f"{folder / _key(job, folder)} was made from {_shown(made)}, now {_shown(job.sources)}"
                for job, made in wrong[:3]]
        more = f" (+{len(wrong) - 3} more)" if len(wrong) > 3 else ""
        # (it said '--overwrite recomputes it', and --overwrite recomputed every scene of the batch, QA)
        it = "them" if len(wrong) > 1 else "it"
        raise InputError(f"{'; '.join(said)}{more}; delete {it} and run again to recompute only {it} (--overwrite "
                         "recomputes every scene of the run), or choose another output folder or --name-template")


def record_made(out_dir: str | os.PathLike[str], results: Sequence[JobResult],
                stamps: dict[str, list] | None = None) -> None:
    """After a run: the inputs of each output it wrote (an output it replaced was recorded with its old inputs),
    and their ``stamps`` as the run found them before it read them (:func:`input_stamps`)."""
    folder = Path(out_dir)
    done = {_key(r.job, folder): r.job.sources for r in results if r.status == "done"}
    new_stamps = {k: stamps[k] for k in done if stamps and k in stamps}
    with _guard(folder):
        record = _read_record(folder / SETTINGS_FILE)
        if record.settings is not None and (any(record.made_from.get(k) != v for k, v in done.items())
                                            or record.stale.keys() & done.keys()
                                            or any(record.stamps.get(k) != v for k, v in new_stamps.items())):
            _write_record(folder / SETTINGS_FILE, _Record(
                record.settings, {**record.made_from, **done},
                {k: v for k, v in record.stale.items() if k not in done},  # recomputed: this record's now
                {**record.stamps, **new_stamps}))


def _retry_local(fn: Callable[..., Any], job: Job, kwargs: dict[str, Any], retries: int,
                 skip_complete: bool = False) -> JobResult:
    for _ in range(retries + 1):
        res = _run_one(fn, job, kwargs, skip_complete)
        if not res.retryable:  # done, or refused: a scene that fails late would be computed again in vain
            break
    return res


def worker_thread_env(n_workers: int, threads: int | None = None) -> dict[str, str]:
    """Share this machine's cores between the local workers (dask's default gives torch 1 thread each)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = str(threads or max(1, cores // n_workers))
    return {name: threads for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}


# dask's defaults for worker processes that we replace: a 64 KiB malloc trim threshold turns off
# glibc's adaptive mmap threshold, so every large numpy array is a fresh mmap; it made predict
# 1.6-2x slower per scene (bench/scale.py). The thread counts come from worker_thread_env instead.
_DASK_ENV_DEFAULTS_DROPPED = ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def local_cluster(n_workers: int, threads_per_worker: int = 1, worker_threads: int | None = None):
    """A :class:`~dask.distributed.LocalCluster` of worker processes on loopback, set up for torch work."""
    import dask
    from dask.distributed import LocalCluster

    dropped = {f"distributed.nanny.pre-spawn-environ.{name}": None for name in _DASK_ENV_DEFAULTS_DROPPED}
    # Ctrl-C reaches the terminal's whole process group: workers that take it print three tracebacks
    # before 'rsmamba: interrupted'. Started with SIGINT ignored they keep ignoring it (Python installs no
    # KeyboardInterrupt handler then); this process takes the Ctrl-C and closes the cluster.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    # dask's own messages are no user's business here (a Ctrl-C printed "Async instruction ... ended with
    # CancelledError" per worker, "still alive after 4.0 seconds, killing", and at ERROR level "Failed to
    # communicate with scheduler during heartbeat" with its traceback from workers closing mid-scene):
    # failures come back as results
    _quiet_distributed_logging()  # the scheduler and the nannies live in this process (_run_dask restores them)
    quiet, os.environ["DASK_LOGGING__DISTRIBUTED"] = os.environ.get("DASK_LOGGING__DISTRIBUTED"), "critical"
    try:  # the workers, spawned now, read it as their distributed loads
        with dask.config.set(dropped):
            return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                                # a free port: None still took 8787, and another cluster holding it printed
                                # 'rsmamba: WARNING: Port 8787 is already in use.' (QA)
                                host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                env=worker_thread_env(n_workers, worker_threads))
    finally:
        if quiet is None:
            os.environ.pop("DASK_LOGGING__DISTRIBUTED", None)
        else:
            os.environ["DASK_LOGGING__DISTRIBUTED"] = quiet
        if main:
            signal.signal(signal.SIGINT, previous)



def _quiet_distributed_logging() -> None:
    """dask.distributed's loggers in this process silent but for CRITICAL: 'distributed' and those of its
    children that dask gives their own level ('distributed.client' logs warnings whatever its parent's)."""
    loggers = [name for name in logging.root.manager.loggerDict if name.startswith("distributed.")]
    for name in ["distributed", *loggers]:
        logger = logging.getLogger(name)
        if name == "distributed" or logger.level != logging.NOTSET:
            logger.setLevel(logging.CRITICAL)


@contextlib.contextmanager
def _distributed_levels_kept() -> Iterator[None]:
    """The levels of dask.distributed's loggers in this process handed back as the caller left them: a local
    cluster silences them while it runs (:func:`local_cluster`), and a pipeline's own dask cluster's errors
    went unseen for the rest of the process."""
    with contextlib.suppress(ImportError):
        import distributed  # noqa: F401 - its first import gives its loggers their levels: those are kept

    names = ["distributed", *(name for name in logging.root.manager.loggerDict if name.startswith("distributed."))]
    levels = {name: logging.getLogger(name).level for name in names}
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


# the keyword arguments of the verbs' jobs that name files (a checkpoint, a DSM, a per-scene DSM template)
PATH_KWARGS = ("model", "dsm", "dsm_template")


def _handshake(scheduler: str) -> None:
    """Dask's handshake with ``scheduler`` (a ``tcp://`` address), within Dask's connect timeout. A server there that
    is no Dask scheduler (the dashboard's port, 8787, for the scheduler's 8786; any web server) held ``Client`` in
    its handshake for good (distributed reads the reply without a timeout), or had its HTTP reply read as a frame
    length ('out of memory (Unable to allocate 3.07 EiB ...)', QA): an OSError naming the problem."""
    if not scheduler.startswith("tcp://"):  # (tls: the security a Client takes from its config; others as given)
        return
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import dask
    from dask.utils import parse_timedelta
    from distributed.comm import connect

    timeout = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), default="seconds")

    async def handshake() -> None:
        comm = await asyncio.wait_for(connect(scheduler, timeout=timeout), timeout + 5)
        await comm.close()

    with ThreadPoolExecutor(1) as pool:  # its own event loop, whatever loop the caller runs (a notebook's)
        try:
            pool.submit(asyncio.run, handshake()).result()
            return
        except TimeoutError:  # (asyncio's: connected, but no handshake came back)
            problem = f"no handshake within {timeout + 5:g} s"
        except OSError as exc:
            if "Timed out trying to connect" in str(exc):  # nothing listens there (or it is not reachable)
                raise
            problem = first_line(exc) or type(exc).__name__
        except Exception:  # noqa: BLE001 - a MemoryError (its reply read as a frame length), a decode error
            problem = "its reply is no Dask message"
    raise OSError(f"no Dask scheduler answered there: {problem}; a dashboard's port is 8787, a scheduler's 8786")


def for_workers(job: Job, kwargs: dict[str, Any]) -> tuple[Job, dict[str, Any]]:
    """``job`` and ``kwargs`` with relative paths made absolute from this process's folder: a worker of a scheduler
    elsewhere runs in its own folder, and the documented ``-o out/ 'campaign/*.tif' --model model.pt`` failed there
    ('s1.tif: No such file or directory', QA). A template starting at a placeholder (``{dir}/...``), and a model
    named by the registry (no such file here), stay as given."""
    def absolute(path: Any, must_exist: bool = False) -> Any:
        if not isinstance(path, (str, os.PathLike)) or not str(path) or str(path).startswith("{"):
            return path
        given = Path(path)
        if given.is_absolute() or (must_exist and not given.exists()):
            return path
        return type(path)(given.absolute()) if isinstance(path, Path) else str(given.absolute())

    moved = replace(job, inputs=tuple(p.absolute() for p in job.inputs), output=job.output.absolute(),
                    reads=tuple(p.absolute() for p in job.reads))
    return moved, {k: absolute(v, must_exist=k == "model") if k in PATH_KWARGS else v for k, v in kwargs.items()}


@_distributed_levels_kept()
def _run_dask(fn, todo, kwargs, scheduler, n_workers, threads_per_worker, worker_threads, retries, max_errors, bar,
              skip_complete: bool = False) -> list[JobResult]:
    try:
        from dask.distributed import Client, as_completed
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise InputError("--scheduler needs dask.distributed: pip install 'rsmamba[distributed]'") from exc

    cluster = None
    if scheduler == "local":
        cluster = local_cluster(n_workers or 2, threads_per_worker, worker_threads)
        client = Client(cluster)
    else:
        try:
            _handshake(scheduler)
            client = Client(scheduler)
        except (ValueError, OSError) as exc:  # a malformed or unreachable address: the user's
            raise InputError(f"--scheduler {scheduler}: cannot connect ({first_line(exc)}); give 'local' or "
                             "a scheduler address such as tcp://HOST:8786") from None
        _quiet_distributed_logging()  # a scheduler lost mid-run: its own line, not a timestamped ERROR (levels restored)
    results: list[JobResult] = []
    before = {job: file_identity(job.output) for job in todo}
    try:
        # a job that raises is retried by dask; _run_one turns errors into results, so retry here. The workers get
        # absolute paths (their folder is not this one); results are said with the job as given
        sent = {job: for_workers(job, kwargs) for job in todo}
        pending = {client.submit(_run_one, fn, *sent[job], skip_complete, pure=False, retries=retries): (job, 0)
                   for job in todo}
        failures = 0
        stream = as_completed(list(pending))
        for future in stream:
            job, attempt = pending.pop(future)
            try:
                res = _seen_here(_as_given(future.result(), job, sent[job][0]))
            except Exception as exc:  # noqa: BLE001 - e.g. the worker died more often than allowed
                res = JobResult(job, "failed", error=f"{exc.__class__.__name__}: {exc}")
                if client.status != "running":  # the scheduler was lost ('FutureCancelledError ... reason: unknown')
                    res = (JobResult(job, "done") if file_identity(job.output) not in (None, before[job])
                           else JobResult(job, "failed", error=f"the scheduler {scheduler} was lost before this scene "
                                          "was finished; run the same command again", user=True, final=True))
            if res.retryable and attempt < retries:
                retry = client.submit(_run_one, fn, *sent[job], skip_complete, pure=False, retries=retries)
                pending[retry] = (job, attempt + 1)
                stream.add(retry)
                continue
            results.append(res)
            for level, message in res.said:  # the worker's warnings, said here: its stderr is not the user's
                warn_once(log, message) if level == logging.WARNING else log.log(level, message)
            bar.update()
            failures += res.status == "failed"
            if max_errors is not None and failures > max_errors:
                results += _stop(pending)
                break
    finally:
        client.close()
        if cluster is not None:
            cluster.close()  # lets the scenes its workers were computing finish (or kills them: nothing published)
    # stopped by --max-errors: a scene that a worker was computing and finished is done, not "not run"
    settled = {r.job for r in results}  # copies from the workers: equal as values
    return results + [JobResult(job, "done") for job in todo
                      if job not in settled and file_identity(job.output) not in (None, before[job])]


def _as_given(result: JobResult, job: Job, sent: Job) -> JobResult:
    """A worker's ``result`` of ``sent`` (:func:`for_workers`: its paths absolute) naming ``job``'s paths as given,
    in its error and warnings too."""
    pairs = sorted({(str(a), str(g)) for a, g in zip((*sent.inputs, sent.output, *sent.reads),
                                                      (*job.inputs, job.output, *job.reads)) if str(a) != str(g)},
                   key=lambda pair: -len(pair[0]))

    def given(text: str) -> str:
        for absolute, as_given in pairs:
            text = text.replace(absolute, as_given)
        return text

    return replace(result, job=job, error=given(result.error),
                   said=tuple((level, given(message)) for level, message in result.said))


SHARED_STORAGE = ("the workers must see the inputs, the model and the output folder at the paths this machine does, "
                  "on storage they share")


_NOT_FOUND = ("No such file or directory", "file not found", "does not exist")  # (the OS's, a verb's own words)


def _seen_here(result: JobResult) -> JobResult:
    """A worker's ``result`` as this machine sees it. A worker that writes onto a disk of its own (``-o out/`` on
    each node's local disk) made a batch say '2 scenes predicted' and exit 0, with no output here (QA): failed,
    said. An input the worker did not find that this machine has is said to be the worker's."""
    job = result.job
    if result.status == "done" and not job.output.exists():
        return replace(result, status="failed", user=True, final=True,
                       error=f"written on the worker {result.worker} into {job.output}, which this machine does not "
                             f"see; {SHARED_STORAGE}")
    if (result.status == "failed" and any(said in result.error for said in _NOT_FOUND)
            and all(p.exists() for p in (*job.inputs, *job.reads))):
        return replace(result, final=True, error=f"{result.error.rstrip('.; ')} on the worker {result.worker or '?'}, "
                                                 f"though this machine has the inputs; {SHARED_STORAGE}")
    return result


def _stop(pending: dict[Any, tuple[Job, int]]) -> list[JobResult]:
    """Stop the jobs not finished (a task that is running runs on: dask cannot stop it); the results of
    those that finished while the failure that stops the run was being read."""
    finished = []
    for future, (job, _) in pending.items():
        if future.done():
            try:
                finished.append(future.result())
            except Exception as exc:  # noqa: BLE001 - as in the loop: the worker died more often than allowed
                finished.append(JobResult(job, "failed", error=f"{exc.__class__.__name__}: {exc}"))
        else:
            future.cancel()
    return finished
