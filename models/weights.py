"""Reading weight files without unpickling code: the one way every checkpoint and weight file is opened.

``torch.load(weights_only=True)`` only rebuilds tensors, containers and plain values; any other
Python global in the pickle (``os.system``, a class with ``__reduce__``) is refused before it is
called. ``allow`` adds exact, vetted globals a format needs (e.g. numpy's array reconstruction for
old training states); nothing else is ever trusted, whatever file a user hands us.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Callable, Sequence
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
                             # (torch's safe loader, that one class allowed: never the unsafe full unpickler, which runs
                             # whatever the file names)
                             f" (a training run's settings beside its weights? save the weights alone and give "
                             f"that: import {imported.split('.')[0]}, torch; with torch.serialization.safe_globals("
                             f"[{imported}]): torch.save(torch.load(FILE)['state_dict'], 'weights.pth'), with the "
                             "key that holds them, and each class torch names next allowed so)" if settings else ""
                         )) from None
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


# -- unwrapping: where a file keeps its state dict, under which name prefixes ---------------------------

# How rsmamba's own checkpoints name their format (rsmamba.checkpoint.FORMAT is this and a version).
CHECKPOINT_FAMILY = "rsmamba-checkpoint/"
# Where a saved state dict sits in the containers the authors' (and common) training scripts write.
CONTAINER_KEYS = ("state_dict", "model", "net", "model_state_dict")
# Where training scripts keep an exponential moving average of the weights (timm, Lightning callbacks, YOLO-style
# scripts): taken only from a file that holds no CONTAINER_KEYS entry; beside one, said as not imported.
EMA_KEYS = ("state_dict_ema", "model_ema", "ema_state_dict", "ema")
# Name prefixes of wrapped modules: DataParallel / DDP, a Lightning module holding the network as net / model.
PREFIXES = ("module.", "net.", "model.")
# Where some training scripts keep an EMA copy of the network beside it, in the one state dict.
EMA_PREFIXES = ("ema.", "model_ema.", "ema_model.")


def _is_state(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())


def unwrap_state(data: Any, path: str | os.PathLike[str], expected: Sequence[str] = (),
                 what: str = "", recognise: Callable[[dict], bool] | None = None) -> tuple[dict, list[str], list[str]]:
    """(state dict, containers unwrapped, prefixes removed) of a loaded weights file: the one unwrapping of
    ``import-weights`` (a whole network) and ``model.pretrained`` (a backbone). A prefix is removed
    only when every name has it and the model's own names (``expected``) do not all start with it, or when every one
    of ``expected`` is under it and the names that are not are none of the model's (left out, and said).
    ``what``: the setting or argument the file came from, said before its path in errors. ``recognise``: whether a
    state dict is of a format the caller reads, for a caller without ``expected`` names (``model.pretrained``: a
    backbone of one of several formats): the names it finds stand for them (:func:`_recognised_names`)."""
    unwrapped: list[str] = []
    path = f"{what} {path}" if what else path
    if isinstance(data, dict) and isinstance(data.get("format"), str) and data["format"].startswith(
            CHECKPOINT_FAMILY):
        raise InputError(f"{path}: already an rsmamba checkpoint ({data.get('model')}); predict, change and "
                         "train --init take it as it is")
    while isinstance(data, dict) and not _is_state(data):
        key = next((k for k in CONTAINER_KEYS if isinstance(data.get(k), dict)), None)
        ema = key is None and (key := next((k for k in EMA_KEYS if isinstance(data.get(k), dict)), None)) is not None
        if key is None:
            others = [k for k, v in data.items() if not isinstance(v, torch.Tensor)]
            tensors = len(data) - len(others)
            if not data:
                held = "an empty dict"
            elif tensors:  # weights beside a counter or a name: which entry is not a tensor
                k = others[0]
                held = (f"{tensors} tensors and {len(others)} other value{'s' * (len(others) != 1)}: "
                        f"{k} ({type(data[k]).__name__}){', ...' if len(others) > 1 else ''}")
            else:
                held = "it holds " + ", ".join(map(str, list(data)[:6])) + (", ..." if len(data) > 6 else "")
            raise InputError(f"{path}: no state dict of tensors found in it ({held}); "
                             f"expected a state dict or one under {', '.join(CONTAINER_KEYS + EMA_KEYS)}")
        # other weights beside the ones taken (an EMA copy): which set the checkpoint holds is said, not guessed
        beside = [k for k, v in data.items() if k != key and isinstance(v, dict) and v
                  and (_is_state(v) or any(isinstance(v.get(c), dict) for c in CONTAINER_KEYS))]
        unwrapped.append(f'["{key}"]' + (" (EMA weights)" if ema else "")
                         + (f" (not imported: {', '.join(f'[{k!r}]' for k in beside)} beside it; to import those, "
                            f"save them alone: torch.save(torch.load(FILE)[{beside[0]!r}], NEW))" if beside else ""))
        data = data[key]
    if not _is_state(data):
        raise InputError(f"{path}: not a state dict of tensors (a {type(data).__name__})")
    state = {str(k): v for k, v in data.items()}
    renamed: list[str] = []
    own = set(expected)
    while True:
        prefix = next((p for p in PREFIXES if all(k.startswith(p) for k in state)
                       and not (own and all(k.startswith(p) for k in own))), None)
        if prefix is None:
            names = own or _recognised_names(state, recognise)
            prefix = _network_prefix(state, names)
            if prefix is None:
                copy = _ema_copy(state, names)
                if copy is not None:  # the network as it is, and its EMA copy under one prefix: the first imported
                    rest = [k for k in state if k.startswith(copy)]
                    state = {k: v for k, v in state.items() if not k.startswith(copy)}
                    renamed.append(f"left out {len(rest)} tensors of an EMA copy beside the network ({copy}*); to "
                                   f"import those, save them alone without '{copy}'")
                return state, unwrapped, renamed
            rest = [k for k in state if not k.startswith(prefix)]  # a Lightning module's loss weights, metrics
            state = {k: v for k, v in state.items() if k.startswith(prefix)}
            renamed.append(f"prefix '{prefix}' removed; left out {len(rest)} tensor{'s' * (len(rest) != 1)} outside "
                           f"the network ({', '.join(rest[:3])}{', ...' if len(rest) > 3 else ''})")
        else:
            renamed.append(f"prefix '{prefix}' removed")
        state = {k.removeprefix(prefix): v for k, v in state.items()}


def _recognised_names(state: dict, recognise: Callable[[dict], bool] | None) -> set[str]:
    """The network's names in ``state`` where no model names are known beforehand: those ``recognise`` takes as a
    network (all but an EMA copy's), or those under the one prefix that it takes beside other tensors (a Lightning
    checkpoint's ``model.*`` with its loss's ``criterion.weight``, refused by ``model.pretrained`` as no known
    format, QA); empty if none."""
    if recognise is None:
        return set()
    if recognise(state):
        return {k for k in state if not k.startswith(EMA_PREFIXES)}
    for prefix in PREFIXES:
        under = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if under and len(under) < len(state) and recognise(under):
            return set(under)
    return set()


def _network_prefix(state: dict, own: set[str]) -> str | None:
    """The prefix under which ``state`` holds every tensor of the model (``own``; BatchNorm counters may lack)
    beside tensors that are none of the model's (a Lightning module's ``model.*`` with its ``criterion.weight``), or
    None: those others are outside the network, so the network itself still loads strictly."""
    needed = {k for k in own if not k.endswith("num_batches_tracked")}
    for prefix in PREFIXES if needed else ():
        under = {k[len(prefix):] for k in state if k.startswith(prefix)}
        rest = [k for k in state if not k.startswith(prefix)]
        if rest and needed <= under and not set(rest) & own:
            return prefix
    return None


def _ema_copy(state: dict, own: set[str]) -> str | None:
    """The prefix of an EMA copy of the network stored beside it in one state dict (``ema.<name>`` for every
    ``<name>``, as some training scripts keep it), or None: only names that are exactly the model's under it."""
    needed = {k for k in own if not k.endswith("num_batches_tracked")}
    rest = [k for k in state if k not in own]
    for prefix in EMA_PREFIXES:
        if needed and needed <= set(state) and rest and all(k.startswith(prefix) and k[len(prefix):] in own
                                                             for k in rest):
            return prefix
    return None


def load_authors_state_dict(model: nn.Module, state: dict[str, Any]) -> None:
    """Load a state dict saved by the authors' code into a model whose names follow theirs (strict).

    Their training scripts save ``{"model": state}`` or the bare state, from ``DataParallel``
    (``module.`` prefixes), unwrapped by :func:`unwrap_state`; names and shapes are otherwise the same, so any
    difference is an error.
    """
    state, _, _ = unwrap_state(state, "the authors' state dict", list(model.state_dict()))
    model.load_state_dict(state, strict=True)

