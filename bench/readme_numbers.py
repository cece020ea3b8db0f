"""The README's and the image-only model card's measured numbers, in one run on this machine.

    python bench/readme_numbers.py            # about 4 minutes on 2 cores
    python bench/readme_numbers.py --quick    # one run of each timing

Each number comes from running what the text describes:

- ``quickstart``: the Quickstart's two commands (``rsmamba predict`` of the example scene with its DSM,
  ``rsmamba vectorize``), as subprocesses, ``--repeat`` times; wall time of each command and the
  seconds the predict summary reports for its windows (``done in``).
- ``south_up``: the example scene stored south up (rows reversed, positive y pixel size), predicted
  through the image+DSM model: the share of pixels whose class equals the north-up run's; and the same
  pixels stored north up but upside down (what the network saw before the grid was turned for it),
  its classes turned back.
- ``finetune``: the README's fine-tune block (tile, train 5 epochs from the demo model, predict,
  evaluate) in a temporary folder: the training command's wall time, OA and mIoU.
- ``train_wait_policy``: two epochs of that fine-tune with ``OMP_WAIT_POLICY=PASSIVE`` against
  OpenMP's default (what ``predict`` sets and ``train`` leaves alone): the time ratio.
- ``image_card_row``: a card row of the image-only model on the example scene (1024 px): predict at
  its own window with its D4 against ``--no-tta``, then ``evaluate``; wall time of the pair.

Times are the fastest of ``--repeat`` runs (the machine is shared); ratios are within this run.
Writes ``bench/results/readme_numbers.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import print_table, write_result  # noqa: E402

SCENE = ROOT / "examples" / "scene"
RSMAMBA = [sys.executable, "-m", "rsmamba"]


def timed(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Wall seconds of one command, and its stdout (it must succeed)."""
    start = time.perf_counter()
    out = subprocess.run(args, cwd=cwd, env={**os.environ, **(env or {})}, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, out.stdout


def fastest(args: list[str], cwd: Path, repeat: int, env: dict[str, str] | None = None) -> tuple[float, str]:
    runs = [timed(args, cwd, env) for _ in range(repeat)]
    return min(runs, key=lambda r: r[0])


def quickstart(tmp: Path, repeat: int) -> dict:
    predict = [*RSMAMBA, "-q", "predict", str(SCENE / "ortho.tif"), "--dsm", str(SCENE / "dsm.tif"),
               "-o", "out/classes.tif", "--overwrite"]
    vectorize = [*RSMAMBA, "-q", "vectorize", "out/classes.tif", "--classes", "building", "--min-area", "30m2",
                 "--regularize", "-o", "out/buildings.gpkg", "--overwrite"]
    (tmp / "out").mkdir()
    timed(predict, tmp)  # the first run after installing reads the libraries from disk: not counted
    runs = [timed(predict, tmp) for _ in range(repeat)]
    windows = [float(re.search(r"done in ([0-9.]+) s", out).group(1)) for _, out in runs]
    seconds = [round(s, 2) for s, _ in runs]
    vec = round(fastest(vectorize, tmp, repeat)[0], 2)
    return {"predict_seconds": seconds, "predict_windows_seconds": windows, "vectorize_seconds": vec,
            "windows": re.search(r"(\d+) windows? of", runs[0][1]).group(1)}


def _stored(src_path: Path, dst: Path, *, south_up: bool) -> Path:
    """The raster with its rows reversed: south up (a true grid), or north up and upside down."""
    with rasterio.open(src_path) as src:
        data, profile, t = src.read()[:, ::-1], src.profile, src.transform
    if south_up:
        profile["transform"] = rasterio.Affine(t.a, t.b, t.c, t.d, -t.e, t.f + t.e * src.height)
    # lossless: the example ortho is JPEG, and a re-encode alone moved 0.7 % of the classes (measured as the grid's)
    profile.update(compress="deflate", photometric="minisblack" if src.count != 3 else "rgb")
    profile.pop("jpeg_quality", None)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(np.ascontiguousarray(data))
    return dst


def south_up(tmp: Path) -> dict:
    from rsmamba.predict import predict_raster

    predict_raster(SCENE / "ortho.tif", tmp / "north.tif", dsm=SCENE / "dsm.tif", progress=False)
    with rasterio.open(tmp / "north.tif") as src:
        north = src.read(1)
    shares = {}
    for name, flag in (("south_up_grid", True), ("upside_down", False)):
        ortho = _stored(SCENE / "ortho.tif", tmp / f"{name}-ortho.tif", south_up=flag)
        dsm = _stored(SCENE / "dsm.tif", tmp / f"{name}-dsm.tif", south_up=flag)
        predict_raster(ortho, tmp / f"{name}.tif", dsm=dsm, progress=False)
        with rasterio.open(tmp / f"{name}.tif") as src:
            got = src.read(1)[::-1]  # both stored rows bottom first: turned back to the north-up rows
        shares[name] = round(float((got == north).mean()), 4)
    return {"same_class_as_north_up": shares}


FINETUNE = [
    ["tile", str(SCENE / "ortho.tif"), "--bands", "1", "--labels", str(SCENE / "buildings.gpkg"), "--burn", "1",
     "-o", "ft/chips", "--size", "64", "--split-block", "128", "--split", "0.25,0.25,0.5"],
    ["train", "--init", "demo", "--set", "data.root=ft/chips", "--set", "train.epochs=5", "--set", "out=ft/run"],
    ["predict", str(SCENE / "ortho.tif"), "--bands", "1", "--model", "ft/run/best.pt", "-o", "ft/buildings.tif"],
    ["evaluate", "ft/buildings.tif", str(SCENE / "buildings.gpkg"), "--burn", "1", "-o", "ft/metrics.json"],
]


def finetune(tmp: Path, repeat: int) -> dict:
    train_seconds = []
    for i in range(repeat):
        shutil.rmtree(tmp / "ft", ignore_errors=True)
        for j, step in enumerate(FINETUNE):
            seconds, _ = timed([*RSMAMBA, "-q", *step], tmp)
            if j == 1:
                train_seconds.append(round(seconds, 1))
    metrics = json.loads((tmp / "ft" / "metrics.json").read_text())
    return {"train_seconds": train_seconds, "oa": round(metrics["oa"], 3), "miou": round(metrics["miou"], 3)}


def wait_policy(tmp: Path, repeat: int) -> dict:
    """Two fine-tune epochs, the chips of :func:`finetune` (tiled again if absent)."""
    if not (tmp / "ft" / "chips").is_dir():
        timed([*RSMAMBA, "-q", *FINETUNE[0]], tmp)
    step = ["train", "--init", "demo", "--set", "data.root=ft/chips", "--set", "train.epochs=2",
            "--set", "out=ft/wait", "--set", "tensorboard=false", "--overwrite"]
    env_default = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    times = {"default": [], "passive": []}
    for _ in range(repeat):  # interleaved: the machine's load drifts
        start = time.perf_counter()
        subprocess.run([*RSMAMBA, "-q", *step], cwd=tmp, env=env_default, check=True, capture_output=True)
        times["default"].append(round(time.perf_counter() - start, 2))
        times["passive"].append(round(timed([*RSMAMBA, "-q", *step], tmp, {"OMP_WAIT_POLICY": "PASSIVE"})[0], 2))
    return {**{f"{k}_seconds": v for k, v in times.items()},
            "passive_over_default": round(min(times["passive"]) / min(times["default"]), 2)}


def image_card_row(tmp: Path, repeat: int) -> dict:
    rows = {}
    for name, extra in (("d4", []), ("one_pass", ["--no-tta"])):
        predict = [*RSMAMBA, "-q", "predict", str(SCENE / "ortho.tif"), "-o", f"img-{name}.tif", "--overwrite", *extra]
        evaluate = [*RSMAMBA, "-q", "evaluate", f"img-{name}.tif", str(SCENE / "labels.tif"), "-o",
                    f"img-{name}.json", "--overwrite"]
        best = float("inf")
        for _ in range(repeat):
            best = min(best, timed(predict, tmp)[0] + timed(evaluate, tmp)[0])
        rows[f"{name}_seconds"] = round(best, 2)
    rows["d4_over_one_pass"] = round(rows["d4_seconds"] / rows["one_pass_seconds"], 2)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run of each timing")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (default 3)")
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        result = {"quickstart": quickstart(tmp, repeat), "south_up": south_up(tmp),
                  "finetune": finetune(tmp, 1 if args.quick else 2), "train_wait_policy": wait_policy(tmp, repeat),
                  "image_card_row": image_card_row(tmp, repeat)}
    rows = [{"measure": f"{group}.{key}", "value": json.dumps(value)} for group, values in result.items()
            for key, value in values.items()]
    print_table(rows, ["measure", "value"])
    path = write_result("readme_numbers", {**result, "command": "python bench/readme_numbers.py"
                                           + (" --quick" if args.quick else "")}, quick=args.quick)
    print(f"-> {path}")


if __name__ == "__main__":
    main()
