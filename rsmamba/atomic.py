"""Publishing outputs: every file or folder a verb writes reaches its destination through here.

Readers (QGIS, GDAL, the next pipeline stage, ``--resume``) must only ever see complete outputs,
and a run must never destroy what it reads or what another run is writing. :func:`publish` is
the one mechanism for that, used by every verb:

* **Scratch names.** Each output is written under a per-run hidden sibling
  ``.NAME.partial-<pid>-<random><suffix>`` (same folder, so the final rename is atomic).
* **A lock per destination.** ``.NAME.lock`` held with ``fcntl.flock`` for the whole run: a
  second run to the same output refuses at once in one line (:class:`OutputBusyError`) instead
  of interleaving its rows with the first one's.
* **All outputs of a run together.** With several outputs (or a folder), a journal
  ``.NAME.publish-journal.json`` is written next to every destination once all scratch files
  are complete; it lists the renames. The journal is the commit point: a run killed before it
  leaves the complete old set, a run killed after it is rolled forward by the next run that
  locks any of those outputs. Each old output is kept as a hidden backup (``.NAME.old-*``, a hard
  link for a file) until all renames are done: a rename that fails (an immutable file) puts the
  outputs already replaced back and drops the journal, so old and new outputs are never left mixed.
* **Replaceable.** An existing output that the kernel would not let a rename replace (immutable,
  append-only, another user's file in a sticky folder) is refused with the other output problems,
  before the work rather than after it.
* **Policy checks.** An output that is one of the inputs (same file, or an input inside an output
  folder) is refused; an existing output is refused unless ``overwrite`` (the CLI's
  ``--overwrite``, as in GDAL/rio).
* **Stale partials.** Scratch files of dead runs (which held the lock they no longer hold) are
  deleted by the next run to the same destination, or by :func:`remove_stale_partials`.
* **Journals are signed.** A journal carries an HMAC of its text under a key kept in this user's state folder
  (:func:`journal_key`), and only a journal that verifies is rolled forward: the renames and removals it lists run
  at any path it names, so a journal received with a folder (a hidden file in a zip) is ignored and said, not
  obeyed (one beside an input deleted and replaced files in another folder, exit 0). An unsigned one (an own run
  killed under another key location) is completed only where its files are the very ones its run recorded in
  its folder (:func:`_unsigned_refusal`).
* **A full disk.** ``ENOSPC`` anywhere inside the block frees this run's scratch (and the files
  registered with :meth:`Publication.remove_at_commit`) and raises :class:`OutputError` in one line.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import fcntl
import hashlib
import hmac
import json
import re
import logging
import os
import secrets
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rsmamba.errors import InputError
from rsmamba.paths import files_behind, output_problem

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
JOURNAL_SUFFIX = ".publish-journal.json"


class OutputError(InputError):
    """The output location cannot take this run (busy, full, not writable); exit 2, one line."""


class OutputBusyError(OutputError):
    """Another live run holds the lock on one of the outputs."""


def resume_sidecar_path(final: PathLike) -> Path:
    """Where predict and change keep the state a ``--resume`` takes up (:mod:`rsmamba.engine.resume`), beside the
    output; here, without torch, so that the CLI's Ctrl-C line can say whether there is one."""
    final = Path(final)
    return final.with_name(f".{final.name}.predict-resume.json")


def file_identity(path: PathLike) -> tuple[int, int, int, int] | None:
    """Which file is at ``path`` now (device, inode, mtime, size), or None: a file published over it (a rename)
    is another one, so a caller sees whether a run published there since it looked."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


def partial_name(path: PathLike) -> Path:
    """This run's scratch sibling of ``path``: hidden, per process, keeps the suffix (drivers use it)."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial-{os.getpid()}-{secrets.token_hex(4)}{''.join(path.suffixes[-1:])}")


def lock_path(path: PathLike) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


def journal_path(path: PathLike) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}{JOURNAL_SUFFIX}")


def located(path: PathLike) -> Path:
    """``path`` made absolute with its folder resolved as the OS resolves it: ``lnk/../a.tif`` is beside the link's
    target, where ``open`` and GDAL write it. :func:`os.path.abspath` made it the link's own folder, so predict's
    scratch and resume state lay in one folder and its output in another (leftovers, '--resume: not found'). The name
    itself is kept: an output that is a symlink is followed by :func:`publish` itself."""
    path = Path(path)
    if path.name in ("", ".", ".."):
        return Path(os.path.realpath(path))
    return Path(os.path.realpath(path.parent)) / path.name


KEY_BYTES = 32


def _key_folders() -> tuple[list[Path], list[str]]:
    """Where the journal key may live, in order (``$RSMAMBA_STATE_DIR``, the XDG state folder, a per-user temp folder),
    and why a folder asked for is not among them. A relative name is not one folder but one per current folder (a
    ``--resume`` from another folder was refused; HOME unset made ``./~/.local/state``): passed over, as XDG says."""
    folders: list[Path] = []
    reasons: list[str] = []
    for var in ("RSMAMBA_STATE_DIR", "XDG_STATE_HOME"):
        value = os.environ.get(var)
        if value and os.path.isabs(value):
            folders.append(Path(value) / ("rsmamba" if var == "XDG_STATE_HOME" else ""))
        elif value:
            reasons.append(f"{var}={value} is not an absolute path")
    if not os.environ.get("XDG_STATE_HOME") or not os.path.isabs(os.environ["XDG_STATE_HOME"]):
        home = os.path.expanduser("~")
        if os.path.isabs(home):  # '~' when HOME is unset and the user has no passwd entry
            folders.append(Path(home) / ".local" / "state" / "rsmamba")
    folders.append(Path(tempfile.gettempdir()) / f"rsmamba-{os.getuid()}")
    return folders, reasons


def _key_in(folder: Path) -> bytes | str:
    """This user's key kept in ``folder``, made there if there is none, else why it is not usable. Made under its final
    name with ``O_EXCL``: two processes agree on one key, and a file system without hard links leaves no stray file."""
    key = folder / "journal.key"
    if folder.exists() and not folder.is_dir():
        return f"{folder} is not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(secrets.token_bytes(KEY_BYTES))
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError:
                key.unlink(missing_ok=True)  # a full disk: no short key left behind
                raise
        for _ in range(50):  # a short key: another process may be between its creation and its write
            with open(key, "rb") as fh:
                data, info = fh.read(KEY_BYTES + 1), os.fstat(fh.fileno())
            if len(data) >= KEY_BYTES:
                break
            time.sleep(0.01)
    except OSError as exc:
        return f"{key}: {exc.strerror or exc}"
    if len(data) != KEY_BYTES:
        return f"{key} is not a key ({len(data)} bytes, not {KEY_BYTES}; remove it and rsmamba makes a new one)"
    if info.st_uid != os.getuid():
        return f"{key} belongs to another user"
    if info.st_mode & 0o077:  # a key others read signs journals they forge: made the user's alone again
        _say_once(_made_private(key, stat.S_IMODE(info.st_mode)))
    return data


def _made_private(key: Path, mode: int) -> str:
    """Make the user's own ``key``, which others can read (mode ``mode``: copied without its mode, cp without -p),
    readable by the user only, and say what came of it. Passed over instead, the run's own key could not take up its
    ``--resume``; and a file system without Unix modes (exFAT, CIFS) shows 644 for every file, whatever is done."""
    with contextlib.suppress(OSError):
        os.chmod(key, 0o600)
    try:
        now = stat.S_IMODE(os.stat(key).st_mode)
    except OSError:
        now = mode
    if not now & 0o077:
        return f"{key} could be read by other users (mode {mode:o}): made mode 600"
    return (f"{key} can be read by other users (mode {now:o}), and its file system keeps no other mode (exFAT, CIFS): "
            "set RSMAMBA_STATE_DIR to a folder on a file system with Unix modes")


_KEY: bytes | None = None
_KEY_PATH: Path | None = None


def journal_key() -> bytes:
    """This user's secret for signing publish journals and resume records, made once (32 random bytes, readable by
    the user only). Where it is not in the first folder asked for, or only in the temp folder (gone at a reboot, not
    shared by another node: what ``--resume`` is for), that is said once."""
    global _KEY, _KEY_PATH
    if _KEY is not None:
        return _KEY
    folders, reasons = _key_folders()
    for folder in folders:
        found = _key_in(folder)
        if isinstance(found, str):
            reasons.append(found)
            continue
        _KEY, _KEY_PATH = found, folder / "journal.key"
        temporary = folder == folders[-1]
        if reasons or temporary:
            _say_once(f"rsmamba's journal key is {_KEY_PATH}" + (f" ({'; '.join(reasons)})" if reasons else "")
                      + (": a temporary folder, which a reboot empties and other machines do not share, and a "
                         "--resume needs the key its run used; set RSMAMBA_STATE_DIR to a lasting folder of yours"
                         if temporary else ""))
        return found
    raise OutputError(f"no folder to keep rsmamba's journal key in ({'; '.join(reasons)}); "
                      "set RSMAMBA_STATE_DIR to a folder of yours")


def journal_key_path() -> Path:
    """Where :func:`journal_key` is kept, for messages about records signed with another one."""
    journal_key()
    assert _KEY_PATH is not None
    return _KEY_PATH


_SAID: set[str] = set()


def _is_own(entry: dict[str, Any]) -> bool:
    """Whether the files at a journal entry's names are the ones its run recorded there: its scratch (this user's, the
    inode it wrote) and the output it replaces (the inode it found; set aside as its backup, or none), or, renamed
    already, the output is that scratch. A folder received or copied cannot know the inodes of the files it lands
    beside: a received journal naming ``report.md`` does not replace the user's own."""
    scratch_ino, final_ino = entry["scratch_ino"], entry["final_ino"]
    if not isinstance(scratch_ino, int) or not (final_ino is None or isinstance(final_ino, int)):
        return False

    def ino(name: str, own: bool = False) -> int | None:
        try:
            st = os.lstat(name)
        except FileNotFoundError:
            return None
        return -1 if own and st.st_uid != os.geteuid() else st.st_ino

    scratch = ino(entry["scratch"], own=True)
    if scratch is None:  # renamed: the output is the scratch this run wrote
        return ino(entry["final"], own=True) == scratch_ino
    if scratch != scratch_ino:
        return False
    final = ino(entry["final"])
    return final == final_ino or (final is None and ino(entry["backup"] or "") == final_ino)


def _unsigned_refusal(journal: dict[str, Any], jp: Path) -> str | None:
    """Why an unsigned ``journal`` (read from ``jp``) is not completed, or None where it only publishes files in its
    folder that its own run wrote there (a run of the user's own killed under another key location: ignored, one
    run's classes were read with another's probabilities). Every output beside it, no folder, each scratch and backup
    named as rsmamba names that output's (``.NAME.partial-<pid>-<hex><suffix>``, ``.NAME.old-<pid>-<hex>``),
    removals only ``.NAME.*`` siblings and ``NAME.aux.xml``, and every file the one its run recorded
    (:func:`_is_own`): a received journal tied to one entry replaced the user's ``report.md`` beside an input."""
    try:
        folder = os.path.normpath(jp.parent)
        finals = [os.path.normpath(e["final"]) for e in journal["entries"]]
        if not finals:
            return "that lists no outputs"
        if folders := [f for f in finals if os.path.isdir(f)]:
            return f"that replaces a folder ({os.path.basename(folders[0])})"
        if any(os.path.dirname(f) != folder for f in finals):
            return "that names outputs in other folders"
        names = [os.path.basename(f) for f in finals]
        if jp.name not in {f".{n}{JOURNAL_SUFFIX}" for n in names}:
            return "that does not name the output it lies beside"
        beyond = "that names files beyond its outputs' own scratch files"
        for entry, name in zip(journal["entries"], names):
            n, suffix = re.escape(name), re.escape("".join(Path(name).suffixes[-1:]))
            for key, pattern in (("scratch", rf"\.{n}\.partial-\d+-[0-9a-f]{{8}}{suffix}"),
                                 ("backup", rf"\.{n}\.old-\d+-[0-9a-f]{{8}}")):
                value = entry.get(key) or ""
                if key == "backup" and not value:
                    continue
                base = os.path.basename(value)
                if os.path.dirname(os.path.normpath(value)) != folder or not re.fullmatch(pattern, base):
                    return beyond
        for extra in journal.get("remove", []):
            base = os.path.basename(os.path.normpath(extra))
            if os.path.dirname(os.path.normpath(extra)) != folder or not any(
                    base.startswith(f".{n}.") or base == f"{n}.aux.xml" for n in names):
                return beyond
        if not all(_is_own(entry) for entry in journal["entries"]):
            return "whose files are not the ones its run wrote there (received, copied or changed since)"
    except (TypeError, KeyError, AttributeError, ValueError):
        return "that rsmamba cannot read"
    return None


def _say_once(message: str) -> None:
    """A warning logged once per process (a run settles its inputs more than once)."""
    if message not in _SAID:
        _SAID.add(message)
        log.warning(message)


def signature(record: dict[str, Any]) -> str:
    """The HMAC (this user's :func:`journal_key`) of a state record rsmamba writes and later obeys (a publish
    journal, a resume sidecar), over its fields but ``sig``; stored as its ``sig``."""
    body = json.dumps({k: v for k, v in record.items() if k != "sig"}, sort_keys=True)
    return hmac.new(journal_key(), body.encode(), hashlib.sha256).hexdigest()


def is_signed(record: Any) -> bool:
    """Whether ``record`` is one a run of this user's rsmamba wrote (its ``sig`` verifies): not edited, not received."""
    return (isinstance(record, dict) and isinstance(record.get("sig"), str)
            and hmac.compare_digest(record["sig"], signature(record)))


def is_disk_full(exc: BaseException | None) -> bool:
    """ENOSPC (or EDQUOT) anywhere in the exception chain, or GDAL's message for it."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(exc)
        if "No space left on device" in text or "Free disk space available" in text:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


NO_ROOM_BYTES = 1 << 20  # free space under which a failed write is taken for a full disk


def no_room(out: PathLike) -> bool:
    """Whether the file system ``out`` goes to is full. GDAL says ENOSPC in a log line of its own and raises
    'TIFFAppendToStrip: Write error' (:func:`is_disk_full` cannot see it): the predict scratch was kept as
    resumable, filled the disk, and every re-run failed the same way."""
    try:
        return shutil.disk_usage(Path(out).parent).free < NO_ROOM_BYTES
    except OSError:
        return False


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            if path.exists():  # write-protected (chmod -R a-w, another user's files): a hidden copy, said
                log.warning(f"{path}: could not be removed (write-protected?); it is a hidden copy of an "
                            "earlier output: delete it yourself")
        else:
            path.unlink()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_file(path: Path) -> None:
    if path.is_file():
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _inside(child: Path, folder: Path) -> bool:
    try:
        Path(os.path.realpath(child)).relative_to(os.path.realpath(folder))
        return True
    except ValueError:
        return False


def _holds_cwd(folder: Path) -> bool:
    """Whether ``folder`` is the process's working folder or one above it."""
    try:
        cwd = os.getcwd()
    except OSError:  # already deleted: nothing left to protect
        return False
    return _inside(Path(cwd), folder)


# The most bytes rsmamba's hidden siblings add to an output's name: '.NAME.predict-scratch.tif' and its
# overview chain '.ovr' x 12, '..NAME.predict-resume.json.publish-journal.json.partial-<pid>-<8 hex digits>'
# (a companion's, '.NAME.aux.xml.publish-journal.json', add 30).
SIBLING_BYTES = 96


def _name_too_long(out: Path) -> str | None:
    """A name the file system takes, whose hidden work files it would not (a CJK name of 61 characters is
    183 bytes): refused before any work, not after the whole computation."""
    folder = out.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        limit = 255
    size = len(os.fsencode(out.name))
    if size + SIBLING_BYTES <= limit or out.name.startswith("."):  # a hidden sibling itself: its output was checked
        return None
    return (f"output {out}: cannot write a name of {size} bytes here: rsmamba's hidden work files beside it "
            f"add up to {SIBLING_BYTES} bytes to it, and names hold {limit}; keep it to {limit - SIBLING_BYTES} bytes")


FS_IOC_GETFLAGS = 0x80086601  # linux/fs.h, _IOR('f', 1, long) on 64-bit Linux (ENOTTY elsewhere: not checked)
FS_IMMUTABLE_FL, FS_APPEND_FL = 0x10, 0x20


def replace_refused(path: Path) -> str | None:
    """Why the kernel would refuse to rename over ``path`` although its folder is writable, or None.

    Found when the run starts: the rename comes after all the work, and there it failed with a bare
    ``[Errno 1] Operation not permitted``."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            flags = int.from_bytes(fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8))[:4], sys.byteorder)
        finally:
            os.close(fd)
        if flags & FS_IMMUTABLE_FL:
            return "it is immutable; chattr -i removes the flag"
        if flags & FS_APPEND_FL:
            return "it is append-only; chattr -a removes the flag"
    with contextlib.suppress(OSError):
        own, folder, me = path.lstat().st_uid, path.parent.stat(), os.geteuid()
        if folder.st_mode & stat.S_ISVTX and me not in (0, own, folder.st_uid):
            return f"it belongs to another user and {path.parent} has the sticky bit: only they may replace it"
    return None


def output_problems(outputs: Sequence[PathLike], *, inputs: Iterable[PathLike | None] = (), overwrite: bool = False,
                    directory: bool = False, companions: bool = False) -> list[str]:
    """Every reason these outputs cannot be written, as one-line problems (empty: fine).

    Verbs call this early to report output problems together with their input problems;
    :func:`publish` calls it again once it holds the locks. ``companions``: these are an output's companions
    (its ``.aux.xml``), 8 bytes longer than its name but with fewer work files beside them: its name's check
    covers theirs.
    """
    problems: list[str] = []
    existing: list[str] = []
    outs = [Path(o) for o in outputs]
    ins = [Path(f) for i in inputs for f in files_behind(i)]  # a VRT's sources are inputs too
    if len({os.path.realpath(o) for o in outs}) != len(outs):
        problems.append("the outputs must be different files: " + ", ".join(str(o) for o in outs))
    for out in outs:
        problem = ((None if companions else _name_too_long(out))  # else it fails at the end of the work, naming a hidden file
                   or output_problem(out, ins, "output", directory=directory))  # a folder/file mix-up, an input, unwritable
        if problem:
            problems.append(problem)
            continue
        inside = next((src for src in ins if directory and src.exists() and _inside(src, out)), None)
        if directory and _holds_cwd(out):  # published by swapping the folder: the shell's folder would be deleted
            problems.append(f"output folder {out} is or holds the current folder: it would be replaced under the "
                            "shell working in it; choose another folder")
        elif inside is not None:
            problems.append(f"output {out} contains the input {inside}; choose another output")
        elif out.exists() and not overwrite:
            if not directory:
                existing.append(str(out))
            elif any(out.iterdir()):
                problems.append(f"output folder {out} exists and is not empty (use --overwrite to replace it)")
        elif out.exists() and (refused := replace_refused(out)):
            problems.append(f"output {out}: cannot replace it ({refused})")
    if existing:
        problems.append(f"output {', '.join(existing)} exist{'s' if len(existing) == 1 else ''} "
                        f"(use --overwrite to replace {'it' if len(existing) == 1 else 'them'})")
    return problems


_HELD_LOCKS: set[int] = set()  # this process's lock fds


def _drop_inherited_locks() -> None:
    """In a forked child (a DataLoader worker, a dask process): close the parent's lock fds, else a
    parent killed by the OOM killer leaves its output 'being written by another rsmamba run (pid N)'
    while its orphaned workers live on. Closing a copy does not release the parent's lock."""
    for fd in list(_HELD_LOCKS):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_inherited_locks)


class _Lock:
    """An exclusive, non-blocking ``flock`` on ``.NAME.lock``; the file is removed on release."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.path = lock_path(target)
        self.fd: int | None = None

    def acquire(self) -> None:
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise OutputError(f"output {self.target}: cannot write into {self.path.parent} ({exc.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                with contextlib.suppress(OSError):
                    owner = os.pread(fd, 32, 0).decode(errors="replace").strip()
                os.close(fd)
                who = f" (pid {owner})" if owner else ""
                raise OutputBusyError(f"output {self.target} is being written by another rsmamba run{who}; "
                                      "wait for it to finish or choose another output") from None
            # the holder before us may have unlinked the file after we opened it: lock the live one
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
                self.fd = fd
                _HELD_LOCKS.add(fd)
                return
            os.close(fd)
        raise OutputBusyError(f"output {self.target}: could not take its lock {self.path}")

    def release(self) -> None:
        if self.fd is not None:
            # gone, or a folder made read-only under the run: a lock file left behind is stale to the next run (no
            # one holds its flock), while raising here hid the run's own error and kept the other locks held
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            _HELD_LOCKS.discard(self.fd)
            os.close(self.fd)
            self.fd = None


def _stale_partials(target: Path) -> list[Path]:
    """This output's scratch and set-aside copies: its name escaped (an output named ``*`` matched every other
    output's, and deleted another run's live scratch; one named ``a[1]`` matched none of its own)."""
    name = glob.escape(target.name)
    return [*target.parent.glob(f".{name}.partial-*"), *target.parent.glob(f".{name}.old-*")]


def _set_aside(path: Path, backup: Path) -> None:
    """Keep ``path`` as ``backup``: a hard link for a file (its name stays readable), else a rename."""
    if not path.is_dir():
        with contextlib.suppress(OSError):  # a file system without hard links, another user's file
            os.link(path, backup, follow_symlinks=False)
            return
    os.replace(path, backup)


def _swap_in(entries: list[dict[str, Any]]) -> None:
    """The renames of a journal, each old output kept as its backup first (idempotent: a roll forward
    redoes what a killed run left)."""
    for i, entry in enumerate(entries):
        if i:
            fault_point(f"renamed-{i}", entries[0]["final"])
        final, scratch = Path(entry["final"]), Path(entry["scratch"])
        backup = Path(entry["backup"]) if entry.get("backup") else None
        if scratch.exists():
            if backup is not None and final.exists() and not backup.exists():
                _set_aside(final, backup)
            elif final.is_dir():
                shutil.rmtree(final)
            os.replace(scratch, final)


def _swap_back(entries: list[dict[str, Any]]) -> None:
    """Undo :func:`_swap_in` after a rename failed part-way: each new output back to its scratch, each
    backup back in place. Every state on the way is one the journal's roll forward completes."""
    for entry in entries:
        final, scratch, backup = Path(entry["final"]), Path(entry["scratch"]), Path(entry["backup"])
        if not scratch.exists() and (final.exists() or final.is_symlink()):
            os.replace(final, scratch)
        if backup.exists() or backup.is_symlink():
            if final.exists() and _same(final, backup):  # the link was made, the rename over it failed
                backup.unlink()
            else:
                os.replace(backup, final)


def _roll_forward(journal: dict[str, Any]) -> None:
    """Finish the renames a journal lists (idempotent), then delete what it says to delete."""
    _swap_in(journal["entries"])
    _finish(journal)


def _finish(journal: dict[str, Any]) -> None:
    """After all renames: durable, then the backups, the files to remove and the journals go."""
    for folder in {Path(entry["final"]).parent for entry in journal["entries"]}:
        _fsync_dir(folder)  # the renames, before the journal that lists them goes (a power cut)
    for entry in journal["entries"]:
        if entry.get("backup"):
            _remove(Path(entry["backup"]))
    for extra in journal.get("remove", []):
        _remove(Path(extra))
    for entry in journal["entries"]:
        journal_path(entry["final"]).unlink(missing_ok=True)


class Publication:
    """What :func:`publish` yields: the scratch path of each output, in order (``pub[0]``, ``pub[path]``)."""

    def __init__(self, outputs: list[Path], scratch: list[Path], directory: bool) -> None:
        self.outputs = outputs
        self.scratch = scratch
        self.directory = directory
        self.meta: dict[str, Any] = {}  # stored in the journal; e.g. the parameters' digest
        self.recovered: list[dict[str, Any]] = []  # journals of killed runs rolled forward on entry
        self.removals: list[Path] = []
        self.abandoned = False
        self.asked = outputs  # the paths as the caller named them (a symlink, not its target)
        self.journaled = False  # the commit point passed: the scratch is what the next run rolls forward
        self.swapped_back = False  # a rename failed and the outputs are the old ones again

    def __getitem__(self, key: int | PathLike) -> Path:
        if isinstance(key, int):
            return self.scratch[key]
        want = str(located(key))
        for out, asked, tmp in zip(self.outputs, self.asked, self.scratch):
            if want in (str(out), str(asked)):
                return tmp
        raise KeyError(key)

    def __iter__(self) -> Iterator[Path]:
        return iter(self.scratch)

    def __len__(self) -> int:
        return len(self.scratch)

    def remove_at_commit(self, *paths: PathLike) -> None:
        """Delete these (e.g. a resumable scratch) once the outputs are published, and on a full disk."""
        self.removals.extend(located(p) for p in paths)

    def abandon(self) -> None:
        """Leave the block without publishing anything (e.g. nothing left to do)."""
        self.abandoned = True

    def _commit(self) -> None:
        pairs = list(zip(self.outputs, self.scratch))
        for out, tmp in pairs:
            if not tmp.exists():
                raise RuntimeError(f"publish: nothing was written to the scratch of {out}")
            _fsync_file(tmp)
        if not self.directory:  # GDAL's statistics of the old file (QGIS, gdalinfo -stats): about the new one, untrue
            # (beside the file written and beside the name given: GDAL reads the one beside a symlink it opens)
            named = [Path(p) for p in self.asked]
            self.removals += [aux for out in [*self.outputs, *named]
                              if (aux := out.with_name(out.name + ".aux.xml")).is_file()
                              and aux not in self.removals and aux not in self.outputs]  # not a companion
        if len(pairs) == 1 and not self.directory and not self.removals:
            try:
                os.replace(self.scratch[0], self.outputs[0])
            except OSError as exc:
                raise self._not_published(0, exc) from None
            _fsync_dir(self.outputs[0].parent)
            return
        journal = {
            "version": 1, "pid": os.getpid(), "meta": self.meta, "remove": [str(p) for p in self.removals],
            "entries": [{"final": str(out), "scratch": str(tmp),
                         "backup": str(out.with_name(f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}")),
                         # which files these are: what ties an unsigned journal to them (_is_own)
                         "scratch_ino": os.lstat(tmp).st_ino,
                         "final_ino": os.lstat(out).st_ino if os.path.lexists(out) else None}
                        for out, tmp in pairs],
        }
        journal["sig"] = signature(journal)
        text = json.dumps(journal, indent=1)
        self.journaled = True
        try:
            for out, _ in pairs:
                jp = journal_path(out)
                tmp = jp.with_name(jp.name + f".partial-{os.getpid()}")
                with open(tmp, "w") as fh:
                    fh.write(text)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, jp)
            for folder in {out.parent for out, _ in pairs}:
                _fsync_dir(folder)
        except BaseException:  # no rename done yet: the commit point was not reached
            self._drop_journals()
            raise
        fault_point("journal-written", self.outputs[0])
        entries = journal["entries"]
        try:
            _swap_in(entries)
        except OSError as exc:
            failed = next((i for i, e in enumerate(entries) if Path(e["scratch"]).exists()), 0)
            try:
                _swap_back(entries)
            except OSError as undo:  # the journal stays: the next run to these outputs completes this one
                raise OutputError(f"output {self.asked[failed]}: cannot replace it ({exc.strerror or exc}), and "
                                  f"putting back the outputs replaced before it failed too ({undo.strerror or undo}); "
                                  "the next run to these outputs publishes this run's") from None
            self._drop_journals()
            self.swapped_back = True
            raise self._not_published(failed, exc) from None
        _finish(journal)

    def _drop_journals(self) -> None:
        for out in self.outputs:
            jp = journal_path(out)
            jp.unlink(missing_ok=True)
            jp.with_name(jp.name + f".partial-{os.getpid()}").unlink(missing_ok=True)
        self.journaled = False

    def _not_published(self, index: int, exc: OSError) -> OutputError:
        out = self.outputs[index]
        verb = "replace" if out.exists() else "write"
        return OutputError(f"output {self.asked[index]}: cannot {verb} it ({exc.strerror or exc}); "
                           "no output of this run was published, the earlier ones are unchanged")


def fault_point(name: str, output: PathLike | None = None) -> None:
    """Test hook for kill tests: ``RSMAMBA_TEST_KILL_AT=<name>[:<output file name>]`` SIGKILLs this process here.

    Points: ``before-publish`` (all scratch complete), ``journal-written``, ``renamed-<i>``
    (after the i-th rename of a journaled publication), and verbs' own (``predict-rows-durable``).
    With ``:<file name>`` only a publication whose first output has that name is killed.
    """
    want = os.environ.get("RSMAMBA_TEST_KILL_AT")
    if not want:
        return
    point, _, file_name = want.partition(":")
    if point == name and (not file_name or (output is not None and Path(output).name == file_name)):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def publish(
    outputs: Sequence[PathLike],
    *,
    inputs: Iterable[PathLike | None] = (),
    overwrite: bool = False,
    directory: bool = False,
    companions: Sequence[PathLike] = (),
) -> Iterator[Publication]:
    """Lock ``outputs``, yield their scratch paths, publish them all together if the block succeeds.

    ``directory=True``: the outputs are folders (created empty as scratch). On any failure
    the scratch is removed and nothing is published; see the module docstring for the rest.
    ``companions``: files that belong to the outputs (a raster's ``.aux.xml`` with its class names), published
    with them: one that exists is replaced without ``overwrite`` (the outputs' own check decides), as GDAL's
    statistics beside an output are.
    """
    if directory and companions:
        raise ValueError("publish: companions are files beside file outputs")
    main = len(outputs)
    asked = [located(o) for o in [*outputs, *companions]]
    # an output that is a symlink (big rasters kept on another disk) is written through, as GDAL does:
    # replacing the link left its target stale, orphaned on the other disk
    outs = [Path(os.path.realpath(o)) if o.is_symlink() else o for o in asked]
    ins = [i for i in inputs if i is not None]
    def problems_of(overwrite: bool) -> list[str]:
        return (output_problems(outs[:main], inputs=ins, overwrite=overwrite, directory=directory)
                + output_problems(outs[main:], inputs=ins, overwrite=True, companions=True))

    early = [p for p in problems_of(True) if "cannot write" in p]
    if early:
        raise OutputError(early)
    fresh = list(dict.fromkeys(f for out in outs for f in missing_folders(out.parent)))
    for out in outs:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"output {out}: cannot create {out.parent} ({exc.strerror})") from None
    locks: list[_Lock] = []
    pub: Publication | None = None
    published = False
    try:
        for out in sorted(set(outs)):
            lock = _Lock(out)
            lock.acquire()
            locks.append(lock)
        recovered = _recover(outs, locks)
        for out in outs:
            for stale in _stale_partials(out):
                _remove(stale)
        problems = problems_of(overwrite)
        if problems:
            raise OutputError(problems)
        pub = Publication(outs, [partial_name(o) for o in outs], directory)
        pub.asked = asked
        pub.recovered = recovered
        if directory:
            for tmp in pub.scratch:
                tmp.mkdir()
        try:
            yield pub
            if not pub.abandoned:
                fault_point("before-publish", outs[0])
                pub._commit()
            published = True
        except BaseException as exc:
            full = is_disk_full(exc) or (isinstance(exc, Exception) and no_room(outs[0]))  # before anything is freed
            if not pub.journaled:  # past its journal, the scratch is what the next run rolls forward
                for tmp in pub.scratch:
                    _remove(tmp)
            if full or pub.swapped_back:  # resumable state (predict's): nothing of the run stays
                for extra in pub.removals:
                    _remove(extra)
            if full:
                raise OutputError(f"no space left on device while writing {outs[0]}; "
                                  "this run's scratch files were removed") from None
            raise
    finally:
        for lock in locks:
            lock.release()
        if not published:  # the folders this run made, once empty: a failed run leaves the disk as it found it
            remove_empty(fresh)


def missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those above it that do not exist yet (deepest first): what ``mkdir(parents=True)`` makes."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def remove_empty(folders: Sequence[Path]) -> None:
    """Remove each of ``folders`` (made by this run) and the folders inside it, deepest first, where empty: what
    holds anything (a resumable run's scratch, another run's file) stays."""
    for made in folders:
        for sub, _, _ in sorted(os.walk(made), key=lambda walked: -len(walked[0])):
            with contextlib.suppress(OSError):
                os.rmdir(sub)


def _recover(outs: list[Path], locks: list[_Lock]) -> list[dict[str, Any]]:
    """Roll forward the journals of killed runs found next to ``outs`` (their other outputs locked too)."""
    recovered = []
    held = {lock.target for lock in locks}
    for out in outs:
        jp = journal_path(out)
        if not jp.is_file():
            continue
        try:
            journal = json.loads(jp.read_text())
            entries = journal["entries"]
        except (ValueError, KeyError, TypeError, OSError):
            jp.unlink(missing_ok=True)  # written only complete (rename): unreadable means not ours
            continue
        refusal = None if is_signed(journal) else _unsigned_refusal(journal, jp)
        if refusal:  # received (a hidden file in a zip), another user's, or an own run's signed under another key
            _say_once(f"{jp}: a publish journal not signed by this user's rsmamba key ({journal_key_path()}; received "
                      "with the folder, another user's, or written under another key location) "
                      f"{refusal}; ignored: nothing it lists was renamed or removed. If a run of yours was killed "
                      f"while publishing {out.name}, run it again; remove the journal (rm {jp})")
            continue
        extra = []
        try:
            for entry in entries:
                target = Path(entry["final"])
                if target not in held:
                    lock = _Lock(target)
                    lock.acquire()
                    extra.append(lock)
            try:
                _roll_forward(journal)
            except OSError as exc:
                raise OutputError(f"output {out}: cannot complete the publication of an interrupted run "
                                  f"({exc.strerror or exc}: {exc.filename}); its journal is {jp}") from None
        finally:
            for lock in extra:
                lock.release()
        recovered.append(journal)
    return recovered


def _has_journal(path: PathLike) -> bool:
    """Whether a killed run's journal lies next to ``path``. An input named near the file system's limit has no
    room for one (its name is 22 bytes longer): Python raised 'File name too long' and every verb refused it."""
    try:
        return journal_path(path).is_file()
    except OSError:
        return False


def settle_inputs(inputs: Iterable[PathLike | None]) -> None:
    """Before reading outputs of earlier runs: finish a publication that a killed run left between its
    renames (its journal lies next to an input), so that a reader never pairs one run's class raster
    with another run's probabilities. An input a live run is publishing is refused (busy)."""
    pending = [located(p) for p in inputs if p is not None and _has_journal(p)]
    try:
        _recover(pending, [])
    except OutputBusyError as exc:
        raise OutputBusyError(str(exc).replace("output ", "input ", 1)) from None


@contextlib.contextmanager
def lock_outputs(outputs: Sequence[PathLike]) -> Iterator[None]:
    """Hold the destinations' locks (as :func:`publish` does) around output written in place.

    For a training run folder, whose checkpoints, logs and config are published together each epoch:
    a second run into the same folder refuses instead of interleaving.
    """
    locks: list[_Lock] = []
    try:
        for out in sorted({located(o) for o in outputs}):
            out.parent.mkdir(parents=True, exist_ok=True)
            lock = _Lock(out)
            lock.acquire()
            locks.append(lock)
        yield
    finally:
        for lock in locks:
            lock.release()


def remove_stale_partials(output: PathLike) -> None:
    """Finish or clean up after a killed run writing ``output`` (skipped while a live run holds it)."""
    out = located(output)
    lock = _Lock(out)
    try:
        lock.acquire()
    except OutputError:
        return
    try:
        _recover([out], [lock])
        for stale in _stale_partials(out):
            _remove(stale)
    finally:
        lock.release()


@contextlib.contextmanager
def atomic_output(path: PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """One file through :func:`publish` (e.g. a checkpoint or a sidecar that a run updates in place)."""
    with publish([path], overwrite=overwrite) as pub:
        yield pub[0]


@contextlib.contextmanager
def atomic_directory(path: PathLike, *, overwrite: bool = True, inputs: Iterable[PathLike | None] = ()) -> Iterator[Path]:
    """One folder through :func:`publish`: built under a scratch name, swapped in whole."""
    with publish([path], overwrite=overwrite, directory=True, inputs=inputs) as pub:
        yield pub[0]
