"""Checks on output locations, made by every verb before any work (one line each, collected).

An output that is one of the inputs, a folder where a file is wanted (or the reverse), or a place
this process cannot write into is refused up front: the run would otherwise compute for minutes
and then fail, or replace its own input.
"""

from __future__ import annotations

import os
import re
import tempfile
import string
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rsmamba.errors import InputError, first_line


def _nearest_existing(path: Path) -> Path:
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def _can_write_into(folder: Path) -> str | None:
    """None when a file can be created in ``folder`` (probed: permissions alone lie for root), else why."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".rsmamba-probe-"):
            return None
    except OSError as exc:
        return exc.strerror or exc.__class__.__name__


CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def names_a_file(spec: str | os.PathLike[str]) -> bool:
    """Whether ``--model`` names a checkpoint file rather than a registered model: a checkpoint's suffix, a folder
    in it, or a file that is there ('scene/../nope' was told 'unknown model', not that no such file exists)."""
    text = str(spec)
    return (Path(text).suffix in CHECKPOINT_SUFFIXES or os.sep in text or (os.altsep or os.sep) in text
            or Path(text).exists())


def shell_word(path: str | os.PathLike[str]) -> str:
    """``path`` as one word of a command the user is told to run: quoted where the shell would split or expand it
    (a name with spaces broke the pasted 'gdal_edit.py -unsetnodata my labels.tif')."""
    import shlex

    return shlex.quote(str(path))


def gdal_virtual(text: str) -> bool:
    """Whether ``text`` names a path of GDAL's virtual file systems (/vsizip/, /vsimem/, zip://, s3://; a URL
    scheme survives as 'zip:/' once a Path has collapsed its '//')."""
    return text.startswith("/vsi") or re.match(r"[A-Za-z][A-Za-z0-9+.-]+:/", text) is not None


def output_problem(path: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None] = (),
                   role: str = "output", *, directory: bool = False, into: bool = False) -> str | None:
    """Why ``path`` cannot be written as this run's output (a file, or a folder with ``directory``), or None.

    ``into``: the run writes files into the folder ``path`` (a batch), so an existing one must take new files
    itself; a folder published whole (``tile``) is made beside it, in its parent."""
    text = os.fspath(path)
    path = Path(path)
    if not path.exists() and gdal_virtual(text):  # else folders named /vsimem or zip: were made, on the disk's root
        return f"{role} {text}: GDAL virtual paths are not written; give a file on disk (zip or upload it afterwards)"
    if path.exists():
        if path.is_dir() and not directory:
            return f"{role} {path}: is a directory"
        if not path.is_dir() and directory:
            return f"{role} {path}: a file stands where the output folder would go"
    target = path.resolve()
    for item in inputs:
        if item is not None and Path(item).exists() and Path(item).resolve() == target:
            return f"{role} {path}: is the input {item} of this run; choose another output"
    parent = path if into and path.is_dir() else _nearest_existing(path)
    if not parent.is_dir():
        return f"{role} {path}: cannot write into {parent}: it is a file, not a folder"
    why = _can_write_into(parent)
    if why:
        return f"{role} {path}: cannot write into {parent} ({why})"
    return None


NOT_REGULAR = "not a regular file (a named pipe, socket or device)"  # what GDAL's open would wait on for ever


def input_problem(path: str | os.PathLike[str], role: str) -> str | None:
    """Why ``path`` cannot be read as an input file (missing, a folder, a pipe or device, empty, unreadable), or None.

    Only ``stat`` is used, never ``open``: GDAL opening a named pipe waits for a writer forever.
    """
    text = os.fspath(path)
    path = Path(path)
    if not path.exists():
        if gdal_virtual(text):
            return f"{role} {text}: GDAL virtual paths are not read; give a file on disk (unzip or download it first)"
        return f"{role} {path}: file not found"
    if path.is_dir():
        return f"{role} {path}: is a directory, not a file"
    if not path.is_file():
        return f"{role} {path}: {NOT_REGULAR}; give the file itself"
    if path.stat().st_size == 0:
        return f"{role} {path}: empty file (0 bytes)"
    if not os.access(path, os.R_OK):
        return f"{role} {path}: not readable (permissions)"
    return vrt_problem(path, role)


def vrt_problem(path: Path, role: str) -> str | None:
    """Why a VRT (by content, whatever its name; and the VRTs it reads) is not read, or None: a raw band, or a
    source that is no regular file. Parsed as XML, never opened by GDAL.

    A raw band (``VRTRawRasterBand``) reads any file's bytes as pixels: a delivered VRT pointing one at
    /etc/passwd or /proc/self/environ had ``tile`` copy them into chips, secrets and all (QA). A source that
    is a named pipe made GDAL wait for a writer for ever, behind the pipe check of the named file (QA)."""
    import xml.etree.ElementTree as ET

    todo, seen = [path], set()
    while todo and len(seen) < VRT_FILES_MAX:
        vrt = todo.pop()
        if os.path.abspath(vrt) in seen:
            continue
        seen.add(os.path.abspath(vrt))
        try:
            with open(vrt, "rb") as fh:
                if not fh.read(512).lstrip().startswith(b"<VRTDataset"):
                    continue
            root = ET.parse(vrt).getroot()
        except (OSError, ET.ParseError):  # GDAL says what is wrong with it
            continue
        inside = "" if vrt == path else f" (through {vrt})"
        for band in root.iter("VRTRasterBand"):
            if (band.get("subClass") or band.get("subclass")) == "VRTRawRasterBand":
                return (f"{role} {path}: a VRT raw band{inside} (VRTRawRasterBand), which reads any file's bytes as "
                        "pixels: not read; convert the raw file with gdal_translate and give that")
        for element in root.iter("SourceFilename"):
            name = (element.text or "").strip()
            if not name or gdal_virtual(name):
                continue
            relative = {k.lower(): v for k, v in element.attrib.items()}.get("relativetovrt", "0").strip() == "1"
            source = vrt.parent / name if relative else Path(name)
            if source.exists() and not source.is_file():
                return f"{role} {path}: its source {source}{inside} is {NOT_REGULAR}, not read"
            if source.is_file():
                todo.append(source)
    return None


def inputs_problems(inputs: dict[str, object]) -> list[str]:
    """:func:`input_problem` of each input, role -> path (None: not given), before any is opened: a library verb
    checks its inputs with it (a named pipe would block GDAL's open for ever), and the CLI before torch loads."""
    return [p for role, path in inputs.items()
            if path is not None and (p := input_problem(path, role))]  # type: ignore[arg-type]


def listed_files_problem(paths: Iterable[object], where: str, shown: int = 10) -> InputError | None:
    """One error naming the files a dataset lists that are missing or no regular file (the first ``shown``, then
    a count), or None: found up front, by ``stat`` only, before a worker reaches one (a named pipe: GDAL's open
    waits for a writer for ever; a missing file: one failed run per file)."""
    problems = []
    for item in paths:
        path = Path(str(item))
        if not path.is_file():  # (the common case costs one stat)
            problems.append(f"{path}: is a directory, not a file, in {where}" if path.is_dir() else
                            f"{path}: {NOT_REGULAR} in {where}" if path.exists() else f"{path}: missing from {where}")
    if not problems:
        return None
    more = [f"... and {len(problems) - shown} more in {where}"] if len(problems) > shown else []
    return InputError(problems[:shown] + more)


def outside(name: str) -> bool:
    """Whether the file ``name`` a dataset lists (relative to its folder) is named outside it: an absolute name or a
    ``..`` step (a received manifest or split list opened any file the user can read; tile writes neither). A
    symbolic link inside the folder is followed wherever it leads: chips linked from shared storage are the user's
    own arrangement."""
    if "\0" in name or os.path.isabs(name):
        return True
    return ".." in Path(name).parts


def vector_path_problem(path: object, role: str) -> str | None:
    """A vector file name the OGR reader/writer would misread, or None.

    pyogrio parses paths as URIs, and a ';' in the file name starts URI "parameters": the name is
    cut there and another file is read or written. Refused, rather than silently using another file.
    """
    name = getattr(path, "name", None) or str(path).rsplit("/", 1)[-1]
    if ";" in name:
        return f"{role} {path}: a vector file name may not contain ';' (the OGR driver cuts the name there); rename it"
    return None


PARQUET_SUFFIXES = (".parquet", ".geoparquet")


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def sql_fold(name: str) -> str:
    """``name`` as SQLite (and so GDAL's GeoPackage driver) compares table and layer names: ASCII letters without
    case, every other letter as it is ('STRASSE' and 'straße', 'GEBÄUDE' and 'gebäude' are two layers; casefolded,
    the second was refused as the first, --append wrote into it, and --reference-layer read the other one)."""
    return name.translate(_ASCII_LOWER)


def read_vector(path: str | os.PathLike[str], layer: str | None = None, role: str = "vector",
                choose: str = "", near: tuple[tuple[float, float, float, float], Any] | None = None
                ) -> "geopandas.GeoDataFrame":  # noqa: F821 - imported lazily
    """A vector layer as a GeoDataFrame: GeoParquet through pyarrow, every other format through pyogrio.

    pyogrio's GDAL hands a .parquet file to a driver that needs libduckdb, which its wheels lack
    ("libduckdb.so: cannot open shared object file"); GeoParquet that ``vectorize`` writes with
    pyarrow is read back with pyarrow. A file of several layers (a GeoPackage) needs ``layer``:
    GDAL would silently read the first one, which may hold other classes or other years; the
    refusal names the layers and ``choose``, the caller's option for picking one.
    """
    import geopandas as gpd

    if Path(path).suffix.lower() in PARQUET_SUFFIXES:
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise InputError(f"{path}: reading GeoParquet needs pyarrow (pip install 'rsmamba[parquet]')") from exc
        return gpd.read_parquet(path)
    import pyogrio

    listed = pyogrio.list_layers(path)
    # layers of geometries only: a table without any (QGIS's layer_styles) is no candidate
    names = [str(name) for name, kind in listed if kind is not None] or [str(name) for name in listed[:, 0]]
    if layer is None and len(names) > 1:
        how = choose or f"keep one: ogr2ogr ONE{Path(path).suffix} {shell_word(path)} LAYER"
        raise InputError(f"{role} {path}: holds {len(names)} layers ({', '.join(names)}), and GDAL would read "
                         f"the first; name the one to read ({how})")
    if layer is not None:  # matched as GeoPackage and GDAL match layer names (ASCII case aside)
        found = [n for n in names if n == layer] or [n for n in names if sql_fold(n) == sql_fold(layer)]
        if not found:
            raise InputError(f"{role} {path}: no layer {layer!r} (layers: {', '.join(names)})")
        layer = found[0]
    name = layer if layer is not None else names[0]
    problem = endless_view_problem(path, name, role)
    if problem:
        raise InputError(problem)
    with warnings.catch_warnings():
        # a GeoJSON field of 1 beside "tree" is read as text, as asked: pyogrio's note of it reached the user
        warnings.filterwarnings("ignore", message="Could not parse column .* as JSON", category=UserWarning)
        return _read_ogr(gpd, path, name, near)


def endless_view_problem(path: str | os.PathLike[str], layer: str, role: str) -> str | None:
    """A GeoPackage (or SQLite) layer that is a view of a recursive query, which may never end: GDAL reading it ran
    for ever, deaf to Ctrl-C and SIGTERM inside SQLite (QA; only SIGKILL ended it). Read from the file's schema with
    Python's sqlite3, read-only, before GDAL opens the layer; None for any other file or layer."""
    import sqlite3
    from urllib.parse import quote

    try:
        with open(path, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                return None
        db = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=ro", uri=True, timeout=1)
    except (OSError, sqlite3.Error):
        return None  # GDAL says what is wrong with it
    try:
        rows = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'view'").fetchall()
    except sqlite3.Error:
        return None
    finally:
        db.close()
    sql = next((text for view, text in rows if sql_fold(str(view)) == sql_fold(layer)), None)
    if sql is None or not re.search(r"\bRECURSIVE\b", str(sql), re.IGNORECASE):
        return None
    return (f"{role} {path}: layer {layer!r} is a view of a recursive query (WITH RECURSIVE), which may never end; "
            "if it ends, save its features as a table (ogr2ogr, or QGIS's Export) and give that")


def _read_ogr(gpd: Any, path: str | os.PathLike[str], name: str,
              near: tuple[tuple[float, float, float, float], Any] | None) -> "geopandas.GeoDataFrame":  # noqa: F821
    """Layer ``name`` through pyogrio; with ``near``, only the features over a scene in its own CRS."""
    import pyogrio

    if near is not None:  # only the features over a scene: a country's buildings for one ortho held them all
        bounds, crs = near
        from pyproj import CRS

        theirs = pyogrio.read_info(path, layer=name).get("crs")
        theirs = horizontal_crs(CRS.from_user_input(theirs)) if theirs else None
        if theirs is not None and theirs.is_projected and theirs == horizontal_crs(crs):
            # in the scene's own projected CRS only: a layer in degrees may hold a scene's features across 180 or
            # a pole in another form, which the caller unwraps; none found there: the whole layer, for its messages
            near_features = gpd.read_file(path, engine="pyogrio", layer=name, bbox=tuple(bounds), fid_as_index=True)
            if len(near_features):  # in the layer's order (a spatial index's order drew overlaps otherwise)
                ordered = _in_layer_order(near_features, path, name)
                if ordered is not None:
                    return ordered
    return gpd.read_file(path, engine="pyogrio", layer=name)


def horizontal_crs(crs: Any) -> Any:
    """The horizontal CRS of ``crs`` (a pyproj or rasterio CRS; a compound CRS's first part), as a pyproj CRS:
    a vertical datum moves no feature and no pixel."""
    from pyproj import CRS

    c = CRS.from_wkt(crs.to_wkt())
    return c.sub_crs_list[0] if c.is_compound and c.sub_crs_list else c


def _in_layer_order(features: "geopandas.GeoDataFrame", path: str | os.PathLike[str],  # noqa: F821
                    layer: str) -> "geopandas.GeoDataFrame | None":  # noqa: F821
    """``features`` (indexed by FID) in the order the whole layer reads, or None where FIDs cannot say it.

    A FID is no position: GeoJSON's FIDs are its features' ``id`` members, so sorting by FID put a feature
    id 3 after one id 10 written before it, and the wrong polygon won an overlap. The layer's FIDs are read
    in its order (no geometry, no fields) and each feature placed by its FID's position there.
    """
    import pyogrio

    order = pyogrio.read_dataframe(path, layer=layer, read_geometry=False, columns=[], fid_as_index=True).index
    if not order.is_unique or not features.index.is_unique:
        return None
    rank = order.get_indexer(features.index)
    if (rank < 0).any():
        return None
    return features.iloc[rank.argsort(kind="stable")].reset_index(drop=True)


def files_behind(path: str | os.PathLike[str] | None) -> list[str]:
    """The files GDAL reads for ``path``: itself and, for a VRT, its sources (with their sidecars).

    An output named like a VRT's source is an input too: written, it would replace the imagery the
    VRT points at. A path GDAL cannot open, or that is no regular file, stands for itself.
    """
    if path is None or str(path) == "":
        return []
    if Path(path).exists() and not Path(path).is_file():  # a named pipe: GDAL's open would wait for ever
        return [str(path)]
    import warnings

    import rasterio

    found = [str(path)]
    todo, seen = [str(path)], {os.path.abspath(path)}
    while todo and len(seen) <= VRT_FILES_MAX:  # a VRT of VRTs (a mosaic of per-tile VRTs): followed to the files
        current = todo.pop()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a benchmark PNG without georeferencing is still an input
                with rasterio.open(current) as ds:
                    files = list(ds.files)
        except Exception:  # noqa: BLE001 - an unreadable input (or a folder, a config) stands for itself
            continue
        for f in files:
            if os.path.abspath(f) in seen:
                continue
            seen.add(os.path.abspath(f))
            found.append(f)
            if f.lower().endswith(".vrt") and Path(f).is_file():  # (its sources, one level further down)
                todo.append(f)
    return found


VRT_FILES_MAX = 100_000  # files behind one input followed at most (a mosaic VRT of a country's tiles)


YAML_MAX_NODES = 100_000  # a config or class table is tens of nodes; a "billion laughs" file is 10^9


def load_yaml(source: str | os.PathLike[str], *, text: str | None = None) -> Any:
    """The YAML (or JSON) document of the file ``source`` (or of ``text``, named ``source`` in errors),
    safely: no Python objects (``safe_load``), UTF-8, and no alias bomb. Aliases share one node, so a
    nine-line file of nested ``*a`` aliases loads small, then expands to 10^9 items in whatever walks it
    (a deep copy, a dump, a check): its expanded size is counted on the node graph first."""
    import yaml

    if text is None:
        try:
            text = Path(source).read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{source}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        size = _expanded_size(root, {}, set())
        if size > YAML_MAX_NODES:
            raise InputError(f"{source}: its aliases expand to over {YAML_MAX_NODES} values; not a config "
                             "(a YAML 'billion laughs' file?)")
        twice = _duplicate_key(root, set())
        if twice:  # PyYAML keeps the last value without a word: a second 'train:' section drops the first
            raise InputError(f"{source}: {twice}; YAML forbids a key twice in one mapping (the last would win "
                             "silently): keep one")
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: not valid YAML ({first_line(exc)})") from None
    except RecursionError:
        raise InputError(f"{source}: nested too deeply to be a config") from None


def _duplicate_key(node: Any, seen: set[int]) -> str | None:
    """The first key given twice in one mapping of the node graph, with its lines, or None (each node once:
    linear however many aliases share it). Keys are compared as written, with their resolved type."""
    if node is None or id(node) in seen:
        return None
    seen.add(id(node))
    value = getattr(node, "value", None)
    if not isinstance(value, list):
        return None
    first: dict[tuple[str, str], int] = {}
    for item in value:
        key = item[0] if isinstance(item, tuple) else None
        if key is not None and isinstance(key.value, str) and not key.tag.endswith(":merge"):  # '<<' merges
            line = key.start_mark.line + 1
            if (key.tag, key.value) in first:
                return f"key {key.value!r} is given twice (lines {first[key.tag, key.value]} and {line})"
            first[key.tag, key.value] = line
        for part in item if isinstance(item, tuple) else (item,):
            found = _duplicate_key(part, seen)
            if found:
                return found
    return None


def _expanded_size(node: Any, memo: dict[int, int], open_nodes: set[int]) -> int:
    """How many values ``node`` is once every alias is expanded (memoised per node: linear in the file)."""
    if node is None:
        return 0
    key = id(node)
    if key in memo:
        return memo[key]
    if key in open_nodes:
        import yaml

        raise yaml.YAMLError("a recursive alias (a value that holds itself)")
    open_nodes.add(key)
    size = 1
    value = getattr(node, "value", None)
    if isinstance(value, list):
        for item in value:
            for part in item if isinstance(item, tuple) else (item,):
                size += _expanded_size(part, memo, open_nodes)
                if size > YAML_MAX_NODES:
                    break
    open_nodes.discard(key)
    memo[key] = size
    return size
