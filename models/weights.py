"""Reading weight files without unpickling code: the one way every checkpoint and weight file is opened.

``torch.load(weights_only=True)`` only rebuilds tensors, containers and plain values; any other
Python global in the pickle (``os.system``, a class with ``__reduce__``) is refused before it is
called. ``allow`` adds exact, vetted globals a format needs (e.g. numpy's array reconstruction for
old training states); nothing else is ever trusted, whatever file a user hands us.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from rsmamba.errors import InputError, first_line


def load_weights_file(path: str | Path, what: str = "weights", allow: Sequence[Any] = ()) -> Any:
    """``torch.load`` of ``path`` on the CPU with ``weights_only=True`` (a ``.safetensors`` file through
    safetensors); one-line InputError otherwise.

    A file that names a Python global outside the allow-list is refused (and says which global),
    a truncated or foreign file is refused as unreadable. Nothing in the file runs.
    """
    path = Path(path)
    if not path.is_file():  # (callers check with rsmamba.paths.input_problem first, which layers above us)
        raise InputError(f"{what} {path}: " + ("file not found (no downloads at run time)" if not path.exists() else
                                               "is a directory, not a file" if path.is_dir() else
                                               "not a regular file (a named pipe, socket or device)"))
    if path.stat().st_size == 0:
        raise InputError(f"{what} {path}: empty file (0 bytes)")
    if _holds_safetensors(path):  # the hub's format: a tensor table, nothing to unpickle
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path, device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            with open(path, "rb") as fh:  # a text file named .safetensors: said as the text it is
                table = fh.read(9)[8:9] == b"{"
            said = f"not a readable safetensors file ({first_line(exc)})" if table else unreadable(path, exc)
            raise InputError(f"{what} {path}: {said}") from None
    try:
        with torch.serialization.safe_globals(list(allow)), warnings.catch_warnings():
            # a bare pickle (not torch's zip format) makes torch warn about its protocol before refusing it
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            with open(path, "rb") as fh:  # a file object: torch 2.13 reads a '.safetensors' name as safetensors
                return torch.load(fh, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # a text file starting with 'c', pickle's GLOBAL opcode: a class table 'classes:' was said to hold Python
        # objects '(lasses)' that could run code (QA)
        text = _text_read_as_global(path)
        match = None if text else re.search(r"GLOBAL ([\w.]+)", str(exc))
        imported = match.group(1) if match else _protocol0_import(path)
        if imported is None and (text or not re.search(r"Unsupported (global|class)", str(exc))):
            raise InputError(f"{what} {path}: {unreadable(path, exc)}") from None  # text, garbage, odd opcodes
        name = f" ({imported})" if imported else ""
        # a training checkpoint's settings beside its weights (Lightning's hyper_parameters, a yacs config): the way on
        settings = imported is not None and imported.split(".")[0] in SETTINGS_MODULES
        raise InputError(f"{what} {path}: refused, it holds Python objects outside the weights format{name}; "
                         "loading it could run code" + (
                             " (a training run's settings beside its weights? where you trust the file, save the "
                             "weights alone and give that: torch.save(torch.load(FILE, weights_only=False)"
                             "['state_dict'], 'weights.pth'), with the key that holds them)" if settings else "")) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError, AttributeError,
            IndexError, TypeError) as exc:
        raise InputError(f"{what} {path}: {unreadable(path, exc)}") from None


# Where the settings objects training scripts save beside their weights come from (Lightning's hyper_parameters as an
# argparse Namespace or an omegaconf config, VMamba/Swin's yacs config): a refusal naming one says how to go on.
SETTINGS_MODULES = ("argparse", "yacs", "omegaconf")


def _protocol0_import(path: Path) -> str | None:
    """The ``module.name`` a protocol-0 pickle imports (``c<module>\\n<name>\\n``, after a dict's ``(dp0`` too), or
    None: ``{'state_dict': os.system...}`` pickled so was refused at another opcode and said as 'text: (dp0' (QA)."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    found = re.search(rb"(?:^|[\n(])c([A-Za-z_][\w.]*)\n([A-Za-z_]\w*)\n", head)
    return f"{found.group(1).decode()}.{found.group(2).decode()}" if found else None


def _text_read_as_global(path: Path) -> bool:
    """Whether the file starts with a 'c' that pickle read as its GLOBAL opcode though no module and name follow
    (``c<module>\n<name>\n``, dotted Python names, as a protocol-0 pickle that imports writes them)."""
    with open(path, "rb") as fh:
        lines = fh.read(512).split(b"\n")
    if not lines[0].startswith(b"c"):
        return False
    name = re.compile(rb"[A-Za-z_][\w.]*")
    return len(lines) < 3 or not (name.fullmatch(lines[0][1:]) and name.fullmatch(lines[1]))


# How torch.save's legacy (pre-1.6, non-zip) files begin: its magic number, pickled at protocol 2.
LEGACY_MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)[:-1]


def unreadable(path: Path, exc: BaseException) -> str:
    """What a file torch could not read is, in words, from its first bytes: the exception alone (KeyError for a
    text file, RuntimeError for a download cut short, EOFError for an empty file) told the user nothing."""
    with open(path, "rb") as fh:
        head = fh.read(256)
    if not head:
        return "empty file (0 bytes)"
    if head.startswith(b"PK"):  # torch's zip format, or another zip
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return "a damaged or truncated zip archive (PyTorch's format; a copy or download cut short? fetch it again)"
        if not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return f"a zip archive, not a PyTorch file (no data.pkl in it; it holds {', '.join(names[:3]) or 'nothing'})"
        return f"a damaged PyTorch file ({first_line(exc) or exc.__class__.__name__})"
    if head.startswith(LEGACY_MAGIC):  # torch's format before 1.6
        return "a damaged or truncated PyTorch file (legacy format: a copy or download cut short?)"
    if head.startswith(b"\x80"):  # pickle.dump's, which is never unpickled here
        return ("a plain Python pickle (pickle.dump's), not a torch.save or safetensors file: not loaded, as "
                "unpickling it could run code")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "not a PyTorch or safetensors file (unknown binary content)"
    start = " ".join(text.split())[:40]
    web = " (a web page saved in its place?)" if start.lower().startswith(("<!doctype", "<html", "<?xml")) else ""
    return f"not a PyTorch or safetensors file (text: {start!r}){web}"



def _holds_safetensors(path: Path) -> bool:
    """Whether the file is a safetensors table, by its content (an 8-byte header length, then its JSON), not its
    name: a safetensors file saved as ``.pth`` (or a torch file as ``.safetensors``) was read by the other reader,
    and refused as 'not a readable weights file'."""
    with open(path, "rb") as fh:
        head = fh.read(9)
    size = path.stat().st_size
    if len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= size - 8:
        return True  # (a file of neither kind is read by the reader its name asks for, and refused by it)
    return path.suffix.lower() == ".safetensors" and not head.startswith((b"PK", b"\x80"))  # torch: zip, pickle


def load_authors_state_dict(model: nn.Module, state: dict[str, Any]) -> None:
    """Load a state dict saved by the authors' code into a model whose names follow theirs (strict).

    Their training scripts save ``{"model": state}`` or the bare state, from ``DataParallel``
    (``module.`` prefixes); names and shapes are otherwise the same, so any difference is an error.
    """
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=True)

