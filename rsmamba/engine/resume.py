"""Resuming an interrupted run from the rows its scratch files already hold.

A sidecar JSON next to the output records how many rows are durably written and a hash of
everything that determines the result (inputs, model weights, windows, blending, outputs). A
resume with other parameters would splice two different predictions, so it is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from rsmamba.atomic import (
    Publication, atomic_output, is_signed, journal_key_path, journal_path, resume_sidecar_path, signature,
)
from rsmamba.engine.writer import OutputLayer
from rsmamba.errors import InputError
from rsmamba.paths import files_behind


# ``resume`` of a batch's scene: an interrupted run of these very settings and inputs (the checks of ``--resume``)
# is taken up where it stopped, anything else starts from the first row (a batch refuses --resume; its re-run
# computed the interrupted scene from row 0 again, QA)
IF_INTERRUPTED = "if-interrupted"


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def file_fingerprint(path: str | os.PathLike[str] | None) -> str | None:
    """Path, size and mtime of the file and of every other file GDAL reads its pixels from (a VRT's sources, a
    ``.msk`` mask, an ``.ovr``): cheap, and changes whenever one of them is replaced. A VRT was its XML alone: a
    mosaic member replaced before ``--resume`` spliced the old and the new pixels into one output, unsaid.
    ``.aux.xml`` sidecars are left out: GDAL and QGIS write statistics there while a run waits to resume."""
    if path is None:
        return None
    main = Path(path).resolve()
    others = {Path(f).resolve() for f in files_behind(path)} - {main}  # a VRT's sources, VRTs of VRTs followed
    files = [main, *sorted(f for f in others if not f.name.lower().endswith(".aux.xml") and f.is_file())]
    stats = [(f, f.stat()) for f in files]
    return "|".join(f"{f}:{st.st_size}:{st.st_mtime_ns}" for f, st in stats) + f"|{_as_read(path)}"


def _as_read(path: str | os.PathLike[str]) -> str:
    """What GDAL makes of the pixels beyond their values: CRS, transform, each band's nodata, scale, offset and
    colour, and the unit band 1 declares for heights. An ``.aux.xml`` written before ``--resume`` (a DSM's offset
    of -30 m; its unit type ``ft``) changed them unseen, and one map was spliced from two DSMs (rows 0-255 read in
    metres, 256-1023 in feet); one that only adds statistics (QGIS) changes none of them."""
    import rasterio

    from rsmamba.raster.source import vertical_unit

    try:
        with rasterio.open(path) as src:
            read = (src.crs.to_wkt() if src.crs else None, tuple(src.transform), src.nodatavals, src.scales,
                    src.offsets, tuple(c.name for c in src.colorinterp), src.count)
            unit = vertical_unit(src)  # a DSM's heights as AlignedSource reads them (unit type, .aux.xml, CRS)
            if unit is not None and unit[0] != 1.0:  # metres, declared or not, read alike: the hash as before
                read += (unit[0] or unit[1],)  # metres per unit; a unit it refuses by its name
    except rasterio.errors.RasterioIOError:  # checked by the caller
        return ""
    return hashlib.sha256(repr(read).encode()).hexdigest()[:16]


def resume_note(point: tuple[int, int] | None, strips: int) -> str:
    """The summary's words for where a ``--resume`` took up the run ('' for a run from the start)."""
    if point is None:
        return ", resumed: the interrupted run had finished; its outputs were published on entry"
    strip, row = point
    if not (strip or row):
        return ""
    if strip >= strips:  # ('resumed at row 0' it said)
        return ", resumed: every row had been computed; only the outputs were written"
    where = f"strip {strip + 1} of {strips}, " if strips > 1 else ""
    return f", resumed at {where}row {row}"


def params_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


# what a refused --resume names for each parameter of the run's hash (a key not here is named as it is)
PARAM_WORDS = {
    "image": "the image (another file, or changed since)", "dsm": "the DSM (another file, or changed since)",
    "t1": "t1 (another file, or changed since)", "t2": "t2 (another file, or changed since)",
    "bands": "--bands", "model": "the model's weights", "window": "--window", "overlap": "--overlap",
    "blend": "--blend", "crop": "--crop", "tta": "test-time augmentation (--tta-*, --no-tta)", "amp": "--amp",
    "edge_aware": "edge-aware blending", "strip_width": "the strip width", "semantic": "--semantic",
    "outputs": "the outputs (-o, --probabilities, --confidence, --change)", "epoch_norm": "--epoch-norm", "class_pairs": "--class-pairs",
    "image_stats": "the image's statistics", "stats": "the images' statistics",
    "change_threshold": "--change-threshold", "min_area_m2": "--min-area",
}


def params_parts(params: dict[str, Any]) -> dict[str, str]:
    """A hash per parameter: the sidecar keeps them so that a refused ``--resume`` can say which differs
    (it said 'other inputs or parameters', and the user was left to guess among a dozen)."""
    return {key: params_hash({key: value}) for key, value in params.items()}


class ResumeState:
    """Reads and updates the sidecar; each update is an atomic file replacement."""

    def __init__(self, final: Path, params: dict[str, Any], height: int, batch_size: int | None = None) -> None:
        self.final = Path(final)
        self.path = resume_sidecar_path(final)
        self.digest = params_hash(params)
        self.parts = params_parts(params)
        self.height = height
        self.batch_size = batch_size  # as the thread count: another one rounds the float sums otherwise

    def load(self, scratch_files: list[Path], said: str = "--resume") -> tuple[int, int]:
        """(strip, rows done in it), after checking the sidecar belongs to this exact run. ``said``: what the
        warnings start with (a batch taking up its scene was given no --resume)."""
        if not self.path.is_file() and self.final.is_file():  # 'run without --resume' then said 'exists' (QA)
            raise InputError(f"--resume: no interrupted run to resume: {self.final} is complete (use --overwrite to "
                             "make it again)")
        if not self.path.is_file():
            raise InputError(f"--resume: no interrupted run to resume ({self.path.name} not found); run without --resume")
        try:
            data = json.loads(self.path.read_text())
        except (ValueError, UnicodeDecodeError, OSError):
            data = None
        if not is_signed(data):  # edited by hand (rows_done 1536: 1280 rows never computed published as nodata)
            raise InputError(f"--resume: {self.path.name} is not the state an interrupted rsmamba run wrote with this "
                             f"user's key {journal_key_path()} (edited, truncated or received, or written under another "
                             "key: another HOME, RSMAMBA_STATE_DIR or temp folder); run without --resume, or with the "
                             "interrupted run's RSMAMBA_STATE_DIR")
        if data.get("params") != self.digest:
            raise InputError(f"--resume: the interrupted run used other inputs or parameters{self._differing(data)}; "
                             "run without --resume")
        missing = [p.name for p in scratch_files if not p.is_file()]
        if missing:
            raise InputError(f"--resume: scratch files missing ({', '.join(missing)}); run without --resume")
        began = data.get("torch_threads")
        if began is not None and began != torch_threads():  # the float sums round otherwise: said, not refused
            logging.getLogger(__name__).warning(
                "%s: this run has %d torch threads, the interrupted one had %d: a few probability values "
                "may differ by 1/254 from an uninterrupted run, and with them the class of a pixel where two classes "
                "tie (%d threads give the same file: OMP_NUM_THREADS=%d in one process; a --scheduler local worker "
                "has the cores divided by --workers)",
                said, torch_threads(), began, began, began)
        batch = data.get("batch_size")
        if batch is not None and self.batch_size is not None and batch != self.batch_size:
            logging.getLogger(__name__).warning(
                "%s: this run's --batch-size is %d, the interrupted one's %d: a few probability values may "
                "differ by 1/254 from an uninterrupted run, and with them the class of a pixel where two classes tie "
                "(--batch-size %d gives the same file)",
                said, self.batch_size, batch, batch)
        strip, rows = data.get("strip"), data.get("rows_done")
        if not (isinstance(strip, int) and isinstance(rows, int) and strip >= 0 and 0 <= rows < self.height):
            raise InputError(f"--resume: {self.path.name} holds no resumable point (strip {strip!r}, row {rows!r} of "
                             f"{self.height}); run without --resume")
        return strip, rows

    def _differing(self, data: dict[str, Any]) -> str:
        """' (--overlap, the DSM ...)': what differs from the interrupted run, as far as its sidecar tells."""
        theirs = data.get("parts")
        if not isinstance(theirs, dict):  # a sidecar of an older rsmamba: the hash alone
            return ""
        keys = [k for k in self.parts if theirs.get(k) != self.parts[k]]
        keys += [k for k in theirs if k not in self.parts]
        return f" ({', '.join(PARAM_WORDS.get(k, k) for k in keys)})" if keys else ""

    def begin(self, pub: Publication, layers: list[OutputLayer], resume: bool | str, strips: int = 1
              ) -> tuple[int, int] | None:
        """Where this run starts, (strip, rows done in it); None when nothing is left to do.

        None: a run with these exact parameters was killed between its renames, and entering
        ``pub`` has completed its publication, so the outputs are already this run's (``pub`` is
        abandoned). The digest goes into ``pub``'s journal so that a later run can tell. ``resume``
        :data:`IF_INTERRUPTED`: as True where such a run of these settings is there to take up, else as False.
        """
        pub.meta["params"] = self.digest
        taken_up = resume == IF_INTERRUPTED
        if resume == IF_INTERRUPTED:  # (a run killed between its renames: finished below, as --resume does)
            point = self.interrupted([layer.scratch for layer in layers])
            resume = point is not None or (not self.path.is_file() and any(
                j.get("meta", {}).get("params") == self.digest for j in pub.recovered))
            if point is not None:
                logging.getLogger(__name__).info("%s: an interrupted run of these settings is taken up%s", self.final.name,
                                                 resume_note(point, strips).replace(", resumed", ""))
        if not resume and (note := self.restart_note([layer.scratch for layer in layers], strips)):
            logging.getLogger(__name__).warning(note)
        if resume and not self.path.is_file() and any(j.get("meta", {}).get("params") == self.digest
                                                      for j in pub.recovered):
            pub.abandon()
            return None
        said = f"{self.final.name}: taking up the interrupted run" if taken_up else "--resume"
        point = self.load([layer.scratch for layer in layers], said) if resume else (0, 0)
        for layer in layers:  # resumable state: gone once published (or on a full disk)
            pub.remove_at_commit(*layer.scratch_files)
        pub.remove_at_commit(self.path)
        return point

    def interrupted(self, scratch_files: list[Path]) -> tuple[int, int] | None:
        """Where a ``--resume`` would take this run up (strip, rows done): an interrupted run of these very settings
        left its record and scratch with rows computed; else None. Read quietly: for what a run without ``--resume``
        says it discards."""
        try:
            data = json.loads(self.path.read_text()) if self.path.is_file() else None
        except (ValueError, UnicodeDecodeError, OSError):
            return None
        if not is_signed(data) or data.get("params") != self.digest or not all(p.is_file() for p in scratch_files):
            return None
        strip, rows = data.get("strip"), data.get("rows_done")
        if isinstance(strip, int) and isinstance(rows, int) and 0 <= rows < self.height and (strip > 0 or rows > 0):
            return strip, rows
        return None

    def restart_note(self, scratch_files: list[Path], strips: int) -> str:
        """What a run without ``--resume`` throws away, or '': an interrupted run's rows, computed again unsaid (a
        6000 px scene killed after minutes restarted from row 0 with the normal summary, QA)."""
        point = self.interrupted(scratch_files)
        if point is None:
            return ""
        strip, rows = point
        where = f"strip {strip + 1} of {strips}, row {rows}" if strips > 1 else f"row {rows}"
        return (f"an interrupted run of {self.final.name} with these settings had reached {where}; without --resume "
                "it starts again from the first row (--resume takes such a run up)")

    def dry_run_note(self, scratch_files: list[Path], strips: int, resume: bool = True) -> str:
        """What a dry run says of the interrupted run: with ``--resume`` the run's refusal of the record
        (:meth:`load`), or where it would take the run up (a run a kill left between its renames, which the run
        finishes on entry, is said so); without, what it would start again (:meth:`restart_note`), or ''."""
        if not resume:
            note = self.restart_note(scratch_files, strips)
            return f"; {note}" if note else ""
        if not self.path.is_file() and journal_path(self.final).exists():
            return resume_note(None, strips)
        return resume_note(self.load(scratch_files), strips)

    def save(self, strip: int, rows_done: int) -> None:
        record = {"params": self.digest, "parts": self.parts, "strip": strip, "rows_done": rows_done, "height": self.height,
                  "torch_threads": torch_threads(), "batch_size": self.batch_size}
        with atomic_output(self.path) as tmp:
            tmp.write_text(json.dumps({**record, "sig": signature(record)}))

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def discard(self, layers: list[OutputLayer]) -> None:
        """Remove the sidecar and the scratch files of a run refused mid-way (the model's output did not fit):
        a --resume would meet the same refusal, and they lay hidden beside the output."""
        self.remove()
        for layer in layers:
            for path in layer.scratch_files:
                path.unlink(missing_ok=True)
