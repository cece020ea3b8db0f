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
    if not path.is_file():
        raise InputError(f"{what} {path}: file not found (no downloads at run time)")
    if _holds_safetensors(path):  # the hub's format: a tensor table, nothing to unpickle
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path, device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise InputError(f"{what} {path}: not a readable safetensors file ({first_line(exc)})") from None
    try:
        with torch.serialization.safe_globals(list(allow)), warnings.catch_warnings():
            # a bare pickle (not torch's zip format) makes torch warn about its protocol before refusing it
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            with open(path, "rb") as fh:  # a file object: torch 2.13 reads a '.safetensors' name as safetensors
                return torch.load(fh, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        match = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if not match and not re.search(r"Unsupported (global|class)", str(exc)):  # text, garbage, odd opcodes
            raise InputError(f"{what} {path}: not a readable weights file (not a PyTorch file)") from None
        name = f" ({match.group(1)})" if match else ""
        raise InputError(f"{what} {path}: refused, it holds Python objects outside the weights format{name}; "
                         "loading it could run code") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError, AttributeError) as exc:
        raise InputError(f"{what} {path}: not a readable weights file ({exc.__class__.__name__})") from None



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

