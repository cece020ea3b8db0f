"""The steps around one pipeline run that ``predict`` and ``change`` share: output and option
checks, the strip plan, streaming the layers, the model's identity, time and memory estimates."""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from pathlib import Path

import numpy as np

from rsmamba.atomic import output_problems
from rsmamba.errors import ProblemCollector
from rsmamba.engine.model import LoadedModel, Predictor
from rsmamba.engine.pipeline import WeightCache, first_grid_row, run_pipeline
from rsmamba.engine.stitch import RowStitcher, Strip, column_strips
from rsmamba.engine.writer import BLOCK, OutputLayer, ScratchWriter
from rsmamba.raster.source import AlignedSource
from rsmamba.raster.windows import WindowGrid

__all__ = [
    "check_creation_options", "check_output_path", "estimate_seconds", "eta_text", "grid_text", "model_digest",
    "model_id",
    "output_size", "peak_rss_bytes", "pipeline_bytes", "plan_strips", "process_rss_bytes", "reset_peak_rss",
    "stream_layers", "warn_long_run", "LONG_RUN_PASSES", "LONG_RUN_SECONDS", "PREFETCH",
]

log = logging.getLogger(__name__)

PREFETCH = 4  # batches read ahead of the model by stream_layers (and counted by pipeline_bytes' estimates)


def plan_strips(grid: WindowGrid, width: int, strip_width: int) -> list[Strip]:
    """Column strips of about ``strip_width`` px (a multiple of the output tile) over ``grid``.

    A strip is never narrower than one window (rounded up to the tile): a window wider than the
    strips would otherwise be computed once per strip it crosses, while the stitcher holds a
    window's width whatever the strips.
    """
    one_window = -(-grid.window_width // BLOCK) * BLOCK
    return column_strips(grid.col_offsets, grid.window_width, width,
                         max(BLOCK, strip_width // BLOCK * BLOCK, one_window))


def stream_layers(
    src: AlignedSource,
    grid: WindowGrid,
    strips: list[Strip],
    read_window,
    predict,
    layers: list[OutputLayer],
    *,
    channels: int,
    blend: str = "hann",
    crop: int = 0,
    edge_aware: bool = True,
    batch_size: int = 4,
    prefetch: int = PREFETCH,
    on_durable=None,
    first_strip: int = 0,
    rows_done: int = 0,
    rows: tuple[int, int] | None = None,
    progress: bool = False,
    desc: str = "predict",
    pointwise_read: bool = False,
) -> None:
    """Run ``predict`` over every window, blend ``channels`` probability maps, render ``layers`` to scratch.

    The shared streaming core of ``predict`` and ``change``: row-buffer stitchers per column strip,
    a reader/model/writer pipeline, scratch files rendered by each layer. ``finalize`` the layers after.
    ``rows=(y0, y1)``: only those raster rows, into scratch files of that height (one band of a
    scene split across workers). ``pointwise_read``: ``read_window`` handles each pixel alone, so a
    batch may be read as one region (see :func:`rsmamba.engine.pipeline.run_pipeline`).
    """
    if first_strip >= len(strips):
        return
    writer = ScratchWriter(layers, src.profile(), strip=first_strip, rows_done=rows_done, on_durable=on_durable,
                           rows=rows)
    if on_durable is not None and first_strip == 0 and rows_done == 0:
        on_durable(0, 0)  # the scratch files exist now: a resume can start from them
    device = getattr(predict, "device", "cpu")  # blend where the model runs

    def new_stitcher(strip: Strip, start_row: int) -> RowStitcher:
        st = RowStitcher(strip.right - strip.left, src.height, channels, grid.window_height,
                             overwrite=blend == "none", col_off=strip.left, out_cols=(strip.x0, strip.x1),
                             device=device)
        st.start_at(start_row)
        return st

    bar = None
    if progress:
        from tqdm import tqdm

        height = rows[1] - rows[0] if rows is not None else src.height
        done_px = sum((s.x1 - s.x0) * height for s in strips[:first_strip])
        done_px += first_grid_row(grid, rows_done) * (strips[first_strip].x1 - strips[first_strip].x0)
        bar = tqdm(total=src.width * height, initial=done_px, unit="px", unit_scale=True, desc=desc,
                   dynamic_ncols=True)
    try:
        run_pipeline(
            grid=grid, strips=strips, read_window=read_window, predict=predict, new_stitcher=new_stitcher,
            writer=writer, weights=WeightCache(src.width, src.height, blend, crop, edge_aware, device),
            batch_size=batch_size, prefetch=prefetch, first_strip=first_strip, first_row=rows_done, rows=rows,
            on_rows=bar.update if bar is not None else None, pointwise_read=pointwise_read,
        )
    finally:
        if bar is not None:
            bar.close()


RASTER_SUFFIXES = (".tif", ".tiff")


def check_output_path(path: Path, image: Path | list, problems: ProblemCollector, role: str, *,
                      overwrite: bool = True, inputs: tuple = ()) -> None:
    """Output problems (see :func:`rsmamba.atomic.output_problems`) collected with the input problems.

    ``image``: one input path or a list of them; ``inputs``: more inputs.
    """
    images = image if isinstance(image, list) else [image]
    if Path(path).suffix.lower() not in RASTER_SUFFIXES:  # a .png/.jpg named output would still be a TIFF
        problems.add(f"{role} {path}: rasters are written as Cloud-Optimised GeoTIFFs; name it *.tif")
    for problem in output_problems([path], inputs=[*images, *inputs], overwrite=overwrite):
        problems.add(f"{role}: {problem}")


# COG options GDAL accepts that would change the values or the grid of a class/probability raster:
# lossy encodings, fewer bits per pixel (NBITS=1 keeps classes 0/1 only, and no nodata 255), a
# reprojection or a web tiling scheme (another grid than the input's), an added alpha band.
ALTERING_OPTIONS = frozenset({
    "MAX_Z_ERROR", "QUALITY", "JXL_LOSSLESS", "JXL_DISTANCE", "WEBP_LEVEL", "WEBP_LOSSLESS", "NBITS",
    "TARGET_SRS", "RES", "EXTENT", "ALIGNED_LEVELS", "TILING_SCHEME", "ZOOM_LEVEL", "ZOOM_LEVEL_STRATEGY",
    "WARP_RESAMPLING", "ADD_ALPHA",
})


# GDAL's ZLEVEL (libdeflate) and ZSTD_LEVEL. Its LZMA_PRESET is left out of the copy that writes a COG (0 and 9 wrote
# the same bytes, through the COG driver too): a LEVEL for lzma is refused, not dropped.
LEVELS = {"deflate": (1, 12), "zstd": (1, 22)}


def check_creation_options(co: dict[str, str] | None, problems: ProblemCollector, compress: str | None = None) -> str:
    """``--co KEY=VALUE``: GDAL COG creation options that keep every value and the input's grid; returns the
    compression to pass on (``compress`` None: not given, deflate unless ``co`` names one).

    Checked before any compute: GDAL would apply a lossy or reprojecting option silently, and refuse
    a bad block size only when the COG is written, after the whole run. ``compress`` beside ``co``'s
    COMPRESS is refused: ``co``'s won, and the other was ignored without a word.
    """
    from rsmamba.engine.writer import COG_OPTIONS
    from rsmamba.raster.compress import check_compress

    named = next((f"{k}={v}" for k, v in (co or {}).items() if str(k).strip().upper() == "COMPRESS"), None)
    if compress is not None and named is not None:
        problems.add(f"--compress {compress} and --co {named}: both set the compression; give one of them")
    compress = "deflate" if compress is None else compress
    seen: dict[str, str] = {}
    for key in co or {}:  # {'compress': 'ZSTD', 'COMPRESS': 'LZW'}: GDAL takes one of them
        if str(key).strip().upper() in seen:
            problems.add(f"--co {seen[str(key).strip().upper()]} and {key}: one option given twice; give it once")
        seen[str(key).strip().upper()] = str(key)

    for key, value in (co or {}).items():
        name = key.upper()
        if name not in COG_OPTIONS:
            problems.add(f"--co {key}: not a COG creation option (one of {', '.join(sorted(COG_OPTIONS))})")
        elif name in ALTERING_OPTIONS and not (name == "ADD_ALPHA" and str(value).upper() in ("NO", "FALSE", "OFF")):
            problems.add(f"--co {key}={value}: would change the class values or the grid of the output "
                         "(lossy, fewer bits, or another grid); rsmamba writes on the input's grid, losslessly")
        elif name in ("COMPRESS", "OVERVIEW_COMPRESS"):
            problem = check_compress(value, f"--co {key}={value}")
            if problem:
                problems.add(problem)
        elif name in ("PREDICTOR", "OVERVIEW_PREDICTOR") and str(value).upper() in ("3", "FLOATING_POINT"):
            # uint8 outputs: GDAL fails tile by tile and publishes overviews of nodata (an empty map zoomed out)
            problems.add(f"--co {key}={value}: the floating-point predictor is for float data; rsmamba's "
                         "rasters are uint8 (use 2 / STANDARD, or none)")
        elif name in ("RESAMPLING", "OVERVIEW_RESAMPLING"):
            problems.add(f"--co {key}={value}: rsmamba builds the overviews itself (classes by their most "
                         "frequent value, probabilities by their mean); this option would change nothing")
        elif name == "BIGTIFF" and str(value).upper() not in ("YES", "NO", "IF_NEEDED", "IF_SAFER"):
            problems.add(f"--co {key}={value}: must be YES, NO, IF_NEEDED or IF_SAFER")
        elif name in ("OVERVIEW_COUNT", "NUM_THREADS") and not (
                str(value).isdigit() or (name == "NUM_THREADS" and str(value).upper() == "ALL_CPUS")):
            problems.add(f"--co {key}={value}: must be an integer" + (" or ALL_CPUS" if name == "NUM_THREADS" else ""))
        elif name == "LEVEL":
            codec = str(next((v for k, v in (co or {}).items() if k.upper() == "COMPRESS"), compress)).lower()
            # GDAL leaves a level outside its codec's range at the default without a word (deflate 0 or 22: 6)
            low, high = LEVELS.get(codec, (None, None))
            if low is None:
                problems.add(f"--co {key}={value}: {codec} takes no level here"
                             + (" (GDAL applies none to an LZMA COG)" if codec == "lzma" else "")
                             + "; deflate and zstd do")
            elif not (str(value).isdigit() and low <= int(value) <= high):
                problems.add(f"--co {key}={value}: {codec} takes levels {low}..{high}")
        elif name == "BLOCKSIZE":
            if not (str(value).isdigit() and 16 <= int(value) <= 4096 and int(value) % 16 == 0):
                problems.add(f"--co {key}={value}: must be a multiple of 16 in 16..4096")
    return compress


def model_digest(model: LoadedModel) -> str:
    """Hash of the weights' values in order (not their names: a wrapper module changes nothing)."""
    h = hashlib.sha256()
    for t in model.module.state_dict().values():
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def model_id(model: LoadedModel, digest: str) -> str:
    """What the ``model_id`` tag (and vectorize's ``model_id`` field) says: the checkpoint and its weights."""
    source = model.source or "module"
    name = Path(source).name if source.endswith((".pt", ".pth", ".ckpt", ".safetensors")) else source
    return f"{name} weights:{digest}"


def grid_text(width: int, height: int, windows: int, window: int, overlap: int, own: str = "") -> str:
    """A summary's first words: the raster and its windows as they are (a raster smaller than one window is one
    window of its own size, 'the whole raster'; change said '1 window of 128 px (overlap 32)' for 100 x 60 px)."""
    size = (f"{window} px" if window <= min(width, height)
            else f"{min(window, width)} x {min(window, height)} px")
    return (f"raster {width} x {height} px, {windows} window{'s' * (windows != 1)} of {size} "
            f"({f'overlap {overlap}' if windows > 1 else 'the whole raster'}{own})")


def eta_text(seconds: float) -> str:
    """A dry run's time, said as what it measures: the network's passes (:func:`estimate_seconds`); reading,
    blending and the COG come on top (an 'ETA 16 s' run took 27 s)."""
    long = f" = {duration_text(seconds)}" if seconds >= 2 * 3600 else ""  # '1138149 s' is a number to divide
    return f"network passes about {seconds:.0f} s{long} (reading, blending and writing come on top)"


LONG_RUN_PASSES = 2000  # network passes left (windows x TTA views) from which a run is timed on one batch first
LONG_RUN_SECONDS = 3600.0  # the network time from which a run says so before it starts


def duration_text(seconds: float) -> str:
    """A long time in the unit a person plans with: minutes, hours or days."""
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    return f"{seconds / 60:.0f} minutes"


def warn_long_run(grid: WindowGrid, strips: list[Strip], read_window, predictor: Predictor, batch_size: int,
                  point: tuple[int, int], *, output_bands: int, what: str) -> None:
    """Say before a long run starts what it is in for (a 1e6 px square VRT started a run of ~140 days without
    a word): the windows left, the network's time for them timed on one batch (:func:`estimate_seconds`),
    the output's size. Runs under :data:`LONG_RUN_PASSES` passes are not timed; nothing is said under
    :data:`LONG_RUN_SECONDS`. ``point`` is where the run starts (strip, rows done), a resume's or (0, 0)."""
    first_strip, rows_done = point
    height = grid.height
    total = sum(s.x1 - s.x0 for s in strips) * height
    done = sum(s.x1 - s.x0 for s in strips[:first_strip]) * height + (
        (strips[first_strip].x1 - strips[first_strip].x0) * rows_done if first_strip < len(strips) else 0)
    n_windows = sum(len(s.col_offsets) for s in strips) * len(grid.row_offsets)
    left = round(n_windows * (total - done) / total) if total else 0
    passes = left * predictor.tta.passes
    if passes < LONG_RUN_PASSES:
        return
    seconds, _ = estimate_seconds(grid, read_window, predictor, batch_size, left)
    if seconds < LONG_RUN_SECONDS:
        return
    log.warning("%s: a long run: %d windows of %d px%s left, the network passes alone about %s (timed on one batch; "
                "reading, blending and writing come on top), output %s uncompressed; --dry-run shows the plan without "
                "running, less --overlap or no TTA shortens it, Ctrl-C stops it and --resume continues",
                what, left, grid.size, f" x {predictor.tta.passes} TTA passes" if predictor.tta.passes > 1 else "",
                duration_text(seconds), output_size((total - done) * output_bands))


def output_size(nbytes: float) -> str:
    """Bytes in MiB, or KiB under one (a 256 px scene's output was '0 MiB')."""
    return f"{nbytes / 2**20:.0f} MiB" if nbytes >= 2**20 else f"{max(1, round(nbytes / 2**10))} KiB"


def estimate_seconds(grid: WindowGrid, read_window, predictor: Predictor, batch_size: int, n_windows: int
                     ) -> tuple[float, int]:
    """Time one batch (after a warm-up batch) and scale to the whole grid; also measure the
    memory the forward pass takes above the current resident set (its activations)."""
    windows = list(itertools.islice(grid, batch_size))  # not the whole grid's list (7.4 million windows)
    x = np.stack([read_window(w)[0] for w in windows])
    before = process_rss_bytes()
    reset_peak_rss()
    predictor(x)
    t0 = time.perf_counter()
    predictor(x)
    seconds = (time.perf_counter() - t0) / len(windows) * n_windows
    peak = peak_rss_bytes()
    return seconds, max(0, peak - before) if peak and before else 0


def pipeline_bytes(grid: WindowGrid, strips: list[Strip], *, num_classes: int, in_chans: int, batch_size: int,
                   prefetch: int, layers_bands: int, probabilities: bool) -> int:
    """Bytes the streaming pipeline holds at its peak, beyond the model's activations.

    Row buffers: the one being filled, the one the writer renders (a buffer is handed to the
    writer whole, see ``RowStitcher.advance``; a second queued one is rare, the writer being
    faster than the model) and a retired one kept for reuse. Batches: ``prefetch`` queued and one
    in the network (with its probabilities), plus the span a batch is read from. The writer: each layer's pending tile rows,
    and while rendering, the class argmax's running maximum and (with probabilities) one float32
    copy of the finished rows. Checked against measured peaks by ``bench/predict.py`` (b).
    """
    band_w = max(s.right - s.left for s in strips)
    out_w = max(s.x1 - s.x0 for s in strips)
    h, w = grid.window_height, grid.window_width
    # a batch holds no more windows than the scene has (one 1024 px window at --batch-size 16: 2946 MiB said, 669 used)
    batch_size = max(1, min(batch_size, sum(len(s.col_offsets) for s in strips) * len(grid.row_offsets)))
    band = (num_classes * 4 + 5) * h * band_w
    batch_in = batch_size * (in_chans * 4 + 1) * h * w
    batch_out = batch_size * num_classes * 4 * h * w
    span = in_chans * 4 * h * (w + (batch_size - 1) * grid.stride)
    pending = layers_bands * (BLOCK + h) * out_w
    render = 5 * h * out_w + (num_classes * 5 * h * out_w if probabilities else 0)
    return 3 * band + (prefetch + 1) * batch_in + span + batch_out + pending + render


def _proc_status(field: str) -> int:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status in bytes; 0 where there is no procfs."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def process_rss_bytes() -> int:
    """This process's resident set now (0 where it cannot be read)."""
    rss = _proc_status("VmRSS")
    if rss == 0:
        try:
            import psutil

            rss = int(psutil.Process().memory_info().rss)
        except Exception:  # noqa: BLE001 - an estimate without it is still an estimate
            rss = 0
    return rss


def reset_peak_rss() -> None:
    """Start a new peak-RSS measurement (Linux: ``5`` to /proc/self/clear_refs); a no-op elsewhere."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_bytes() -> int:
    """Peak resident set since :func:`reset_peak_rss` (or since the start); 0 where unknown."""
    return _proc_status("VmHWM")
