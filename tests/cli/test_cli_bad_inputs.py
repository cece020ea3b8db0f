"""A matrix of bad inputs over every verb, run through the INSTALLED ``rsmamba`` console script.

Each case must end in exactly one line on stderr that starts ``rsmamba: error:``, exit code 2, no
``Traceback``, nothing left in its (fresh, empty) output folder, and every input file it names
unchanged (SHA-256 before/after). Malicious checkpoints must never run their payload: a marker
file that the payload would create stays absent.

How stderr lines are counted: library warnings are allowed beside the error (they carry
information, e.g. "DSM resampled"), so lines that start ``rsmamba: WARNING:`` / ``rsmamba: INFO:``
and Python ``warnings`` output (``file:line: XWarning: ...`` plus its indented source line) are
set aside; what remains must be the one error line.

The cases run concurrently in a thread pool, once per session in a module fixture; each parametrised
test checks one result. The first case of each verb runs the installed console script in a fresh
process; the others run in a fork of one warm interpreter that has torch, rasterio and geopandas
imported already (``tests/helpers/warm_cli.py``: the same entry point, working folder, environment and
exit code, without 2.5-5 s of imports per case; the matrix took 437 s of one core as ~270 fresh processes).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from tests.helpers.warm_cli import WarmCLI

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "rsmamba"
DEMO = ROOT / "rsmamba" / "data" / "demo_model.pt"
DEMO_CHANGE = ROOT / "rsmamba" / "data" / "demo_change_model.pt"
CHECKPOINT_FORMAT = "rsmamba-checkpoint/1"


class _Payload:
    """Pickles to a call of os.system: unpickling it with weights_only=False would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _write_raster(path: Path, data: np.ndarray, like: dict, **extra) -> Path:
    profile = {**like, "count": data.shape[0], "dtype": str(data.dtype), **extra}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def _vector(path: Path, gdf, **columns) -> Path:
    out = gdf.copy()
    for name, value in columns.items():
        out[name] = value
    out.to_file(path, engine="pyogrio")
    return path


def build_inputs(root: Path) -> dict[str, Path]:
    """Tiny inputs, good and bad, written once: {name: path}."""
    import geopandas as gpd
    import yaml

    from rsmamba.synth import write_scene
    from rsmamba.tile import tile_scene

    inp = root / "in"
    scene = write_scene(inp / "scene", size=128, seed=3)
    f = {k: v for k, v in scene.items()}
    with rasterio.open(f["ortho_t1"]) as src:
        prof, ortho = src.profile, src.read()
    with rasterio.open(f["dsm_t1"]) as src:
        dprof, dsm = src.profile, src.read()
    f["marker"] = root / "PAYLOAD_RAN"
    (inp / "empty.tif").write_bytes(b"")
    f["empty"] = inp / "empty.tif"
    f["trunc"] = inp / "trunc.tif"
    f["trunc"].write_bytes(f["ortho_t1"].read_bytes()[:3000])
    f["cut_tiles"] = inp / "cut_tiles.tif"  # header and tile offsets whole, the pixel data cut: a read fails
    f["cut_tiles"].write_bytes(f["ortho_t1"].read_bytes()[:f["ortho_t1"].stat().st_size // 2])
    f["text"] = inp / "text.tif"
    f["text"].write_text("not a raster\n")
    f["u16"] = _write_raster(inp / "u16.tif", ortho.astype(np.uint16) * 16, prof)
    f["u16_t2"] = _write_raster(inp / "u16_t2.tif", ortho.astype(np.uint16) * 16, prof)  # the same pixels, a 2nd date
    f["f01"] = _write_raster(inp / "f01.tif", ortho.astype(np.float32) / 255, prof, nodata=None)
    f["fcls"] = _write_raster(inp / "fcls.tif", ortho[:1].astype(np.float32), prof, nodata=None)
    f["one_band"] = _write_raster(inp / "one_band.tif", ortho[:1], prof)
    nocrs = {k: v for k, v in prof.items() if k != "crs"}
    f["nocrs"] = _write_raster(inp / "nocrs.tif", ortho, nocrs)
    far = {**prof, "transform": prof["transform"] * rasterio.Affine.translation(1e6, 1e6)}
    f["far"] = _write_raster(inp / "far.tif", ortho, far)
    f["far_dsm"] = _write_raster(inp / "far_dsm.tif", dsm, {**dprof, "transform": far["transform"]})
    f["dsm_nodata"] = _write_raster(inp / "dsm_nodata.tif", np.full_like(dsm, -9999.0), dprof, nodata=-9999.0)
    chg = np.zeros((1, *ortho.shape[1:]), np.uint8)
    chg[0, 40:60, 40:60] = 1
    f["chg"] = inp / "chg.tif"
    with rasterio.open(f["chg"], "w", **{**prof, "count": 1, "dtype": "uint8", "nodata": 255}) as dst:
        dst.write(chg)
        dst.set_band_description(1, "change")
    f["existing"] = _write_raster(inp / "existing.tif", ortho, prof)  # an output that is also an input
    f["afile"] = inp / "afile"
    f["afile"].write_text("a file where a folder would be\n")
    f["adir"] = inp / "adir.tif"
    f["adir"].mkdir()
    (f["adir"] / "keep.txt").write_text("keep\n")

    buildings = gpd.read_file(f["buildings_t1"], engine="pyogrio")
    cls = buildings[["geometry"]].copy()
    f["vec_class"] = _vector(inp / "vec_class.gpkg", cls, **{"class": 1})
    f["vec_empty"] = _vector(inp / "vec_empty.gpkg", cls.iloc[:0], **{"class": np.array([], dtype=np.int64)})
    f["vec_str"] = _vector(inp / "vec_str.gpkg", cls, **{"class": "shed"})
    f["vec_frac"] = _vector(inp / "vec_frac.gpkg", cls, **{"class": 1.5})  # not an id: truncating it makes class 1
    f["vec_nocrs"] = inp / "vec_nocrs.geojson"
    cls.set_crs(None, allow_override=True).assign(**{"class": 1}).to_file(f["vec_nocrs"], engine="pyogrio")
    f["semi_vec"] = inp / "semi;colon.gpkg"
    shutil.copy(f["vec_class"], f["semi_vec"])
    f["vec_text"] = inp / "broken.gpkg"
    f["vec_text"].write_text("not a geopackage\n")

    f["chips"] = inp / "chips"
    tile_scene(f["ortho_t1"], f["chips"], dsm=f["dsm_t1"], labels=f["labels_t1"], size=32)
    base_cfg = {"data": {"root": str(f["chips"]), "batch_size": 2}, "model": {"name": "fcn_baseline", "kwargs": {"width": 4}},
                "train": {"epochs": 1}, "tensorboard": False}
    f["cfg"] = inp / "cfg.yaml"
    f["cfg"].write_text(yaml.safe_dump({**base_cfg, "out": str(root / "run_none")}))
    f["cfg_badyaml"] = inp / "bad.yaml"
    f["cfg_badyaml"].write_text("data: [unclosed\n")
    f["cfg_unknown"] = inp / "unknown.yaml"
    f["cfg_unknown"].write_text(yaml.safe_dump({**base_cfg, "bogus": 1, "out": str(root / "run_none")}))
    f["cfg_noroot"] = inp / "noroot.yaml"
    f["cfg_noroot"].write_text(yaml.safe_dump({**base_cfg, "data": {"root": str(inp / "nochips")}, "out": str(root / "r")}))
    f["cfg_notchips"] = inp / "notchips.yaml"
    f["cfg_notchips"].write_text(yaml.safe_dump({**base_cfg, "data": {"root": str(inp / "scene")}, "out": str(root / "r")}))
    evil_run = inp / "evil_run"
    evil_run.mkdir()
    f["cfg_evil_resume"] = inp / "evil_resume.yaml"
    f["cfg_evil_resume"].write_text(yaml.safe_dump({**base_cfg, "out": str(evil_run)}))

    # Checkpoints: malicious, hidden payloads, and broken ones.
    marker = f["marker"]
    demo = torch.load(DEMO, map_location="cpu", weights_only=True)
    demo_change = torch.load(DEMO_CHANGE, map_location="cpu", weights_only=True)
    torch.save({"format": CHECKPOINT_FORMAT, "model": _Payload(marker)}, inp / "evil.pt")
    torch.save({**demo, "extra": _Payload(marker)}, inp / "evil_demo.pt")
    torch.save({**demo_change, "extra": _Payload(marker)}, inp / "evil_demo_change.pt")
    torch.save({"model": _Payload(marker)}, inp / "evil_weights.pth")
    torch.save({**demo, "model_kwargs": {**demo["model_kwargs"], "pretrained": str(inp / "evil_weights.pth")}},
               inp / "clean_names_evil.pt")
    torch.save({**demo_change, "model_kwargs": {**demo_change["model_kwargs"],
                                                 "pretrained": str(inp / "evil_weights.pth")}},
               inp / "clean_names_evil_change.pt")
    shutil.copy(inp / "evil_demo.pt", evil_run / "last.pt")
    torch.save({"format": CHECKPOINT_FORMAT, "model": "cmtunet_tiny"}, inp / "nokeys.pt")
    torch.save(torch.zeros(3), inp / "tensor.pt")
    torch.save({"format": "something-else/2", **{k: v for k, v in demo.items() if k != "format"}}, inp / "foreign.pt")
    torch.save({**demo, "model_kwargs": {"bogus_kwarg": 1}}, inp / "badkwargs.pt")
    torch.save({**demo, "state_dict": {"w": torch.zeros(2)}}, inp / "badstate.pt")
    torch.save({**demo, "model": "no_such_model"}, inp / "badname.pt")
    torch.save({**demo, "classes": "not a list"}, inp / "badtypes.pt")
    (inp / "zero.pt").write_bytes(b"")
    (inp / "trunc.pt").write_bytes(DEMO.read_bytes()[:5000])
    (inp / "text.pt").write_text("not a checkpoint\n")
    for name in ("evil", "evil_demo", "evil_demo_change", "clean_names_evil", "clean_names_evil_change", "nokeys",
                 "tensor", "foreign", "badkwargs", "badstate", "badname", "badtypes", "zero", "trunc", "text"):
        f[f"ckpt_{name}"] = inp / f"{name}.pt"
    f["evil_weights"] = inp / "evil_weights.pth"
    f["demo_change"] = DEMO_CHANGE
    f["inp"] = inp
    return f


def _readonly_dir(root: Path) -> Path:
    """A folder no file can be created in: permissions for a normal user, /proc for root (who ignores them)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/proc/rsmamba-no-such-dir")
    ro = root / "readonly"
    ro.mkdir(exist_ok=True)
    ro.chmod(0o555)
    return ro


# (case id, argv with {name} placeholders: {out} = the case's fresh output folder, {ro} = a read-only
#  folder, other names from build_inputs; expected substring of the error line or "").
O, D, L, B = "{ortho_t1}", "{dsm_t1}", "{labels_t1}", "{buildings_t1}"
P = ["predict", O, "--dsm", D]  # a good predict call, missing only its -o
C = ["change", O, "{ortho_t2}"]
V = ["vectorize", L]
E = ["evaluate", L, L]
T = ["tile", O]
CASES: list[tuple[str, list[str], str]] = [
    # -- the group / usage ------------------------------------------------------------------------
    ("no-such-verb", ["bogus"], "No such command"),
    ("no-such-option", ["--bogus"], "No such option"),
    ("verb-no-such-option", ["models", "--bogus"], "No such option"),
    ("models-extra-arg", ["models", "extra"], ""),
    ("models-params-value", ["models", "--params=abc"], ""),
    ("version-value", ["--version=abc"], ""),
    ("verbose-value", ["--verbose=abc"], ""),
    # -- synth --------------------------------------------------------------------------------------
    ("synth-no-out", ["synth"], "Missing option"),
    ("synth-size-0", ["synth", "-o", "{out}/s", "--size", "0"], "--size"),
    ("synth-size-neg", ["synth", "-o", "{out}/s", "--size", "-5"], "--size"),
    ("synth-size-abc", ["synth", "-o", "{out}/s", "--size", "abc"], "--size"),
    ("synth-size-small", ["synth", "-o", "{out}/s", "--size", "64"], "at least"),
    ("synth-gsd-0", ["synth", "-o", "{out}/s", "--gsd", "0"], "--gsd"),
    ("synth-gsd-abc", ["synth", "-o", "{out}/s", "--gsd", "abc"], "--gsd"),
    ("synth-epsg-geographic", ["synth", "-o", "{out}/s", "--epsg", "4326"], "projected"),
    ("synth-epsg-unknown", ["synth", "-o", "{out}/s", "--epsg", "999999"], "EPSG"),
    ("synth-epsg-abc", ["synth", "-o", "{out}/s", "--epsg", "abc"], "--epsg"),
    ("synth-bands-bogus", ["synth", "-o", "{out}/s", "--bands", "bogus"], "--bands"),
    ("synth-origin-abc", ["synth", "-o", "{out}/s", "--origin", "abc"], "--origin"),
    ("synth-origin-one", ["synth", "-o", "{out}/s", "--origin", "1"], "--origin"),
    ("synth-origin-huge", ["synth", "-o", "{out}/s", "--origin", "1e300,1e300"], "--origin"),
    ("synth-seed-neg", ["synth", "-o", "{out}/s", "--seed", "-1"], "--seed"),
    ("synth-layout-scene-options", ["synth", "--layout", "vaihingen", "-o", "{out}/s", "--bands", "rgbx", "--gsd", "-1"],
     "--gsd, --bands: options of a synthetic scene"),
    ("synth-layout-seed-neg", ["synth", "--layout", "vaihingen", "-o", "{out}/s", "--seed", "-1"], "--seed"),
    ("synth-style-seed-neg", ["synth", "-o", "{out}/s", "--style", "suburban:-1"], "seed"),
    ("synth-dsm-gsd-neg", ["synth", "-o", "{out}/s", "--dsm-gsd", "-1"], "--dsm-gsd"),
    ("synth-style-unknown", ["synth", "-o", "{out}/s", "--style", "gothic"], "style family"),
    ("synth-ground-no-style", ["synth", "-o", "{out}/s", "--ground-textures"], "--style"),
    ("synth-ground-held-out", ["synth", "-o", "{out}/s", "--style", "heldout-nordic", "--ground-textures"], "held-out family"),
    ("synth-out-is-file", ["synth", "-o", "{afile}"], "file stands"),
    ("synth-out-under-file", ["synth", "-o", "{afile}/sub"], "is a file"),
    ("synth-out-readonly", ["synth", "-o", "{ro}/s"], "cannot write"),
    # -- tile ---------------------------------------------------------------------------------------
    ("tile-no-args", ["tile"], "Missing argument"),
    ("tile-no-out", [*T], "Missing option"),
    ("tile-missing-image", ["tile", "{out}/nope.tif", "-o", "{out}/c"], "not found"),
    ("tile-empty-image", ["tile", "{empty}", "-o", "{out}/c"], ""),
    ("tile-trunc-image", ["tile", "{trunc}", "-o", "{out}/c"], ""),
    ("tile-class-table-text", [*T, "-o", "{out}/c", "--labels", L, "--class-table", "{text}"], "class table "),
    ("tile-text-image", ["tile", "{text}", "-o", "{out}/c"], ""),
    ("tile-size-0", [*T, "-o", "{out}/c", "--size", "0"], "--size"),
    ("tile-seed-neg", [*T, "-o", "{out}/c", "--seed", "-1"], "--seed"),
    ("tile-size-abc", [*T, "-o", "{out}/c", "--size", "abc"], "--size"),
    ("tile-overlap-neg", [*T, "-o", "{out}/c", "--overlap", "-1"], "--overlap"),
    ("tile-overlap-ge-size", [*T, "-o", "{out}/c", "--size", "32", "--overlap", "32"], "overlap"),
    ("tile-min-valid-2", [*T, "-o", "{out}/c", "--min-valid", "2"], "--min-valid"),
    ("tile-min-valid-abc", [*T, "-o", "{out}/c", "--min-valid", "abc"], "--min-valid"),
    ("tile-bands-ab", [*T, "-o", "{out}/c", "--bands", "a,b"], "--bands"),
    ("tile-bands-0", [*T, "-o", "{out}/c", "--bands", "0"], "--bands"),
    ("tile-bands-empty-item", [*T, "-o", "{out}/c", "--bands", "1,,2"], "--bands"),
    ("tile-bands-9", [*T, "-o", "{out}/c", "--bands", "9"], "out of range"),
    ("tile-split-ab", [*T, "-o", "{out}/c", "--split", "a,b"], "--split"),
    ("tile-split-two", [*T, "-o", "{out}/c", "--split", "0.5,0.5"], "--split"),
    ("tile-split-neg", [*T, "-o", "{out}/c", "--split", "-1,1,1"], "split"),
    ("tile-split-zero", [*T, "-o", "{out}/c", "--split", "0,0,0"], "split"),
    ("tile-split-nan", [*T, "-o", "{out}/c", "--split", "nan,1,1"], "--split"),
    ("tile-block-neg", [*T, "-o", "{out}/c", "--block", "-5"], "--split-block must be at least 1 px"),  # the deprecated name of --split-block
    ("tile-block-abc", [*T, "-o", "{out}/c", "--block", "abc"], "--block"),
    ("tile-seed-abc", [*T, "-o", "{out}/c", "--seed", "abc"], "--seed"),
    ("tile-background-abc", [*T, "-o", "{out}/c", "--background", "abc"], "--background"),
    ("tile-labels-missing", [*T, "-o", "{out}/c", "--labels", "{out}/nope.gpkg"], "not found"),
    ("tile-labels-empty-layer", [*T, "-o", "{out}/c", "--labels", "{vec_empty}"], "no features"),
    ("tile-labels-string-class", [*T, "-o", "{out}/c", "--labels", "{vec_str}"], "holds names no class of the class table has ('shed"),
    ("tile-labels-fractional-class", [*T, "-o", "{out}/c", "--labels", "{vec_frac}"], "integer"),
    ("tile-labels-no-field", [*T, "-o", "{out}/c", "--labels", "{vec_class}", "--class-field", "nope"], "class field"),
    ("tile-labels-semicolon", [*T, "-o", "{out}/c", "--labels", "{semi_vec}"], ";"),
    ("tile-labels-broken", [*T, "-o", "{out}/c", "--labels", "{vec_text}"], ""),
    ("tile-labels-no-crs", [*T, "-o", "{out}/c", "--labels", "{vec_nocrs}"], "CRS"),
    ("tile-labels-truncated-raster", [*T, "-o", "{out}/c", "--labels", "{trunc}"], ""),
    ("tile-dsm-missing", [*T, "-o", "{out}/c", "--dsm", "{out}/nope.tif"], "not found"),
    ("tile-dsm-far", [*T, "-o", "{out}/c", "--dsm", "{far_dsm}"], "overlap"),
    ("tile-dsm-all-nodata", [*T, "-o", "{out}/c", "--dsm", "{dsm_nodata}", "--size", "32"], ""),
    ("tile-change-no-t2", [*T, "-o", "{out}/c", "--change", "{chg}"], "--t2"),
    ("tile-labels-t2-no-t2", [*T, "-o", "{out}/c", "--labels-t2", "{labels_t2}"], "--t2"),
    # every polygon of a change layer is a change (its class field unused); a class raster is no change raster
    ("tile-change-class-ids", [*T, "-o", "{out}/c", "--t2", "{ortho_t2}", "--change-labels", L], "change labels are 0"),
    ("tile-t2-missing", [*T, "-o", "{out}/c", "--t2", "{out}/nope.tif"], "not found"),
    ("tile-t2-band-count", [*T, "-o", "{out}/c", "--t2", "{one_band}"], "bands"),
    ("tile-out-nonempty", [*T, "-o", "{adir}"], "not empty"),
    ("tile-out-is-file", [*T, "-o", "{afile}"], "file stands"),
    ("tile-out-under-file", [*T, "-o", "{afile}/c"], "is a file"),
    ("tile-out-readonly", [*T, "-o", "{ro}/c"], "cannot write"),
    # -- train --------------------------------------------------------------------------------------
    ("train-no-config", ["train"], "data.root is not set"),
    ("train-config-missing", ["train", "-c", "{out}/nope.yaml"], "not found"),
    ("train-config-bad-yaml", ["train", "-c", "{cfg_badyaml}"], "YAML"),
    ("train-config-unknown-key", ["train", "-c", "{cfg_unknown}"], "bogus"),
    ("train-set-no-equals", ["train", "-c", "{cfg}", "--set", "optim.lr"], "key.path=value"),
    ("train-set-unknown", ["train", "-c", "{cfg}", "--set", "optim.nope=1"], "optim.nope"),
    ("train-set-batch-0", ["train", "-c", "{cfg}", "--set", "data.batch_size=0"], "batch_size"),
    ("train-set-seed-2-32", ["train", "-c", "{cfg}", "--set", "train.seed=4294967296"], "train.seed"),
    ("train-set-lr-abc", ["train", "-c", "{cfg}", "--set", "optim.lr=abc"], "optim.lr"),
    ("train-set-lr-neg", ["train", "-c", "{cfg}", "--set", "optim.lr=-1"], "optim.lr"),
    ("train-set-epochs-0", ["train", "-c", "{cfg}", "--set", "train.epochs=0"], "epochs"),
    ("train-set-epochs-float", ["train", "-c", "{cfg}", "--set", "train.epochs=1.5"], "epochs"),
    ("train-set-amp-3", ["train", "-c", "{cfg}", "--set", "train.amp=3"], "amp"),
    ("train-set-workers-neg", ["train", "-c", "{cfg}", "--set", "data.num_workers=-1"], "num_workers"),
    ("train-set-section", ["train", "-c", "{cfg}", "--set", "optim=3"], ""),
    ("train-root-missing", ["train", "-c", "{cfg_noroot}"], ""),
    ("train-root-not-chips", ["train", "-c", "{cfg_notchips}"], "tiling.json"),
    ("train-model-unknown", ["train", "-c", "{cfg}", "--set", "model.name=nope"], "unknown model"),
    ("train-resume-nothing", ["train", "-c", "{cfg}", "--resume"], ""),
    ("train-resume-from-missing", ["train", "-c", "{cfg}", "--resume-from", "{out}/nope.pt"], "not found"),
    ("train-resume-from-evil", ["train", "-c", "{cfg}", "--resume-from", "{ckpt_evil}"], "refused"),
    ("train-resume-from-evil-demo", ["train", "-c", "{cfg}", "--resume-from", "{ckpt_evil_demo}"], "refused"),
    ("train-resume-evil-last", ["train", "-c", "{cfg_evil_resume}", "--resume"], "refused"),
    ("train-resume-from-zero", ["train", "-c", "{cfg}", "--resume-from", "{ckpt_zero}"], ""),
    ("train-resume-from-no-state", ["train", "-c", "{cfg}", "--resume-from", str(DEMO)], "training state"),
    ("train-pretrained-evil", ["train", "-c", "{cfg}", "--set", "model.name=cmtunet_tiny",
                               "--set", "model.kwargs={{}}", "--set", "model.pretrained={evil_weights}"], "refused"),
    # -- predict ------------------------------------------------------------------------------------
    ("predict-no-args", ["predict"], "Missing argument"),
    ("predict-no-out", [*P], "Missing option"),
    ("predict-tta-and-rot180", [*P, "-o", "{out}/p.tif", "--tta", "--tta-rot180"],  # 8 passes, as --tta alone
     "--tta averages the half turn already: drop --tta-rot180"),
    ("predict-tta-flip-and-rot180", [*P, "-o", "{out}/p.tif", "--tta-flip", "--tta-rot180"],
     "--tta-flip averages the half turn already: drop --tta-rot180"),
    ("predict-tta-and-flip", [*P, "-o", "{out}/p.tif", "--tta", "--tta-flip"],  # 8 passes, as --tta alone
     "--tta averages the flips already: drop --tta-flip"),
    ("predict-window-abc", [*P, "-o", "{out}/p.tif", "--window", "abc"], "--window"),
    ("predict-window-0", [*P, "-o", "{out}/p.tif", "--window", "0"], "--window"),
    ("predict-window-neg", [*P, "-o", "{out}/p.tif", "--window", "-5"], "--window"),
    ("predict-overlap-neg", [*P, "-o", "{out}/p.tif", "--overlap", "-1"], "--overlap"),
    ("predict-overlap-ge-window", [*P, "-o", "{out}/p.tif", "--window", "64", "--overlap", "64"], "overlap"),
    ("predict-batch-0", [*P, "-o", "{out}/p.tif", "--batch-size", "0"], "--batch-size"),
    ("predict-bands-ab", [*P, "-o", "{out}/p.tif", "--bands", "a,b"], "--bands"),
    ("predict-bands-0", [*P, "-o", "{out}/p.tif", "--bands", "0,1,2"], "--bands"),
    ("predict-bands-9", [*P, "-o", "{out}/p.tif", "--bands", "9,1,2"], "bands"),
    ("predict-bands-count", [*P, "-o", "{out}/p.tif", "--bands", "1,2"], "bands"),
    ("predict-crop-neg", [*P, "-o", "{out}/p.tif", "--crop", "-1"], "--crop"),
    ("predict-crop-big", [*P, "-o", "{out}/p.tif", "--crop", "100"], "--crop"),
    ("predict-blend-bogus", [*P, "-o", "{out}/p.tif", "--blend", "bogus"], "--blend"),
    ("predict-compress-bogus", [*P, "-o", "{out}/p.tif", "--compress", "bogus"], "--compress"),
    ("predict-compress-lossy", [*P, "-o", "{out}/p.tif", "--compress", "jpeg"], "lossy"),
    ("predict-device-cuda9", [*P, "-o", "{out}/p.tif", "--device", "cuda:9"] if not torch.cuda.is_available()
     else [*P, "-o", "{out}/p.tif", "--device", "bogus"], ""),
    ("predict-workers-0", [*P, "-o", "{out}/p.tif", "--workers", "0"], "--workers"),
    ("predict-out-png", [*P, "-o", "{out}/p.png"], "GeoTIFF"),
    ("predict-probabilities-jpg", [*P, "-o", "{out}/p.tif", "--probabilities", "{out}/p.jpg"], "GeoTIFF"),
    ("predict-band-rows-0", [*P, "-o", "{out}/p.tif", "--band-rows", "0"], "--band-rows"),
    ("predict-max-errors-neg", [*P, "-o", "{out}/p.tif", "--max-errors", "-1"], "--max-errors"),
    ("predict-shard-single", [*P, "-o", "{out}/p.tif", "--shard", "1/2"], "--shard"),
    ("predict-template-single", [*P, "-o", "{out}/p.tif", "--name-template", "{stem}_x.tif"], "--name-template"),
    ("predict-max-errors-single", [*P, "-o", "{out}/p.tif", "--max-errors", "2"], "--max-errors"),
    ("predict-batch-into-a-tif", ["predict", O, "{ortho_t2}", "-o", "{out}/mosaic.tif"], "name one"),
    ("predict-image-missing", ["predict", "{out}/nope.tif", "-o", "{out}/p.tif"], "not found"),
    ("predict-image-empty", ["predict", "{empty}", "--dsm", D, "-o", "{out}/p.tif"], "empty"),
    ("predict-image-trunc", ["predict", "{trunc}", "--dsm", D, "-o", "{out}/p.tif"], ""),
    ("predict-image-cut-tiles", ["predict", "{cut_tiles}", "--dsm", D, "-o", "{out}/p.tif"], "cut_tiles.tif"),
    ("predict-many-out-is-a-file", ["predict", O, "{ortho_t2}", "-o", "{afile}"], "a file stands where the output"),
    ("predict-image-text", ["predict", "{text}", "--dsm", D, "-o", "{out}/p.tif"], ""),
    ("predict-image-dir", ["predict", "{adir}", "--dsm", D, "-o", "{out}/p.tif"], ""),
    ("predict-image-uint16", ["predict", "{u16}", "--dsm", D, "-o", "{out}/p.tif"], "scale"),
    ("predict-image-float01", ["predict", "{f01}", "--dsm", D, "-o", "{out}/p.tif"], "scale"),
    ("predict-image-no-crs", ["predict", "{nocrs}", "--dsm", D, "-o", "{out}/p.tif"], "CRS"),
    # the image+DSM model refuses an ortho without a DSM (the default without --dsm is the image-only model, #16)
    ("predict-no-dsm", ["predict", O, "-o", "{out}/p.tif", "--model", str(DEMO)], "DSM"),
    ("predict-dsm-missing", ["predict", O, "--dsm", "{out}/nope.tif", "-o", "{out}/p.tif"], "not found"),
    ("predict-dsm-empty", ["predict", O, "--dsm", "{empty}", "-o", "{out}/p.tif"], "empty"),
    ("predict-dsm-far", ["predict", O, "--dsm", "{far_dsm}", "-o", "{out}/p.tif"], "overlap"),
    ("predict-dsm-all-nodata", ["predict", O, "--dsm", "{dsm_nodata}", "-o", "{out}/p.tif"], "DSM"),
    ("predict-model-missing", [*P, "-o", "{out}/p.tif", "--model", "{out}/nope.pt"], "not found"),
    ("predict-model-unknown-name", [*P, "-o", "{out}/p.tif", "--model", "no_such_model"], "unknown model"),
    ("predict-model-path-no-suffix", [*P, "-o", "{out}/p.tif", "--model", "{out}/../nope"], "file not found"),
    ("predict-model-evil", [*P, "-o", "{out}/p.tif", "--model", "{ckpt_evil}"], "refused"),
    ("predict-model-evil-in-demo", [*P, "-o", "{out}/p.tif", "--model", "{ckpt_evil_demo}"], "refused"),
    ("predict-model-pretrained-evil", [*P, "-o", "{out}/p.tif", "--model", "{ckpt_clean_names_evil}"], "model_kwargs"),
    ("predict-model-weights-evil", [*P, "-o", "{out}/p.tif", "--model", "{evil_weights}"], "refused"),
    ("predict-model-no-keys", [*P, "-o", "{out}/p.tif", "--model", "{ckpt_nokeys}"], "missing"),
    ("predict-model-tensor", [*P, "-o", "{out}/p.tif", "--model", "{ckpt_tensor}"], "not an rsmamba checkpoint"),
    ("predict-model-foreign", [*P, "-o", "{out}/p.tif", "--model", "{ckpt_foreign}"], "not an rsmamba checkpoint"),
    ("predict-model-bad-kwargs", [*P, "-o", "{out}/p.tif", "--model", "{ckpt_badkwargs}"], "model_kwargs"),
    ("predict-model-bad-state", [*P, "-o", "{out}/p.tif", "--model", "{ckpt_badstate}"], "weights"),
    ("predict-model-bad-name", [*P, "-o", "{out}/p.tif", "--model", "{ckpt_badname}"], "unknown model"),
    ("predict-model-bad-types", [*P, "-o", "{out}/p.tif", "--model", "{ckpt_badtypes}"], "wrong type"),
    ("predict-model-zero", [*P, "-o", "{out}/p.tif", "--model", "{ckpt_zero}"], "empty"),
    ("predict-model-trunc", [*P, "-o", "{out}/p.tif", "--model", "{ckpt_trunc}"], "a damaged or truncated zip archive"),
    ("predict-model-text", [*P, "-o", "{out}/p.tif", "--model", "{ckpt_text}"], "not a PyTorch or safetensors file (text: 'not a checkpoint')"),
    ("predict-model-change-task", [*P, "-o", "{out}/p.tif", "--model", "{demo_change}"], "change"),
    ("predict-out-is-input", [*P, "-o", O], "input"),
    ("predict-out-is-dsm", [*P, "-o", D], "input"),
    ("predict-out-readonly", [*P, "-o", "{ro}/p.tif"], "cannot write"),
    ("predict-out-under-file", [*P, "-o", "{afile}/p.tif"], "is a file"),
    ("predict-probabilities-same", [*P, "-o", "{out}/p.tif", "--probabilities", "{out}/p.tif"], "different"),
    ("predict-probabilities-is-input", [*P, "-o", "{out}/p.tif", "--probabilities", O], "input"),
    ("predict-confidence-dir", [*P, "-o", "{out}/p.tif", "--confidence", "{adir}"], "directory"),
    ("predict-resume-nothing", [*P, "-o", "{out}/p.tif", "--resume"], "--resume"),
    ("predict-glob-nothing", ["predict", "{out}/none*.tif", "-o", "{out}/many"], ""),
    ("predict-list-missing", ["predict", "@{out}/nolist.txt", "-o", "{out}/many"], ""),
    # -- change -------------------------------------------------------------------------------------
    ("change-no-args", ["change"], "Missing argument"),
    ("change-one-epoch", ["change", O, "-o", "{out}/c.tif"], "Missing argument"),
    ("change-no-out", [*C], "Missing option"),
    ("change-tta-and-rot180", [*C, "-o", "{out}/c.tif", "--tta", "--tta-rot180"], "drop --tta-rot180"),
    ("change-scheduler-single", [*C, "-o", "{out}/c.tif", "--scheduler", "local"], "--scheduler"),
    ("change-shard-single", [*C, "-o", "{out}/c.tif", "--shard", "0/2"], "--shard"),
    ("change-window-abc", [*C, "-o", "{out}/c.tif", "--window", "abc"], "--window"),
    ("change-out-png", [*C, "-o", "{out}/c.png"], "GeoTIFF"),
    ("change-window-0", [*C, "-o", "{out}/c.tif", "--window", "0"], "--window"),
    ("change-overlap-neg", [*C, "-o", "{out}/c.tif", "--overlap", "-1"], "--overlap"),
    ("change-batch-0", [*C, "-o", "{out}/c.tif", "--batch-size", "0"], "--batch-size"),
    ("change-bands-ab", [*C, "-o", "{out}/c.tif", "--bands", "a"], "--bands"),
    ("change-bands-9", [*C, "-o", "{out}/c.tif", "--bands", "9,1,2"], "bands"),
    ("change-blend-bogus", [*C, "-o", "{out}/c.tif", "--blend", "bogus"], "--blend"),
    ("change-compress-bogus", [*C, "-o", "{out}/c.tif", "--compress", "bogus"], "--compress"),
    ("change-epoch-norm-bogus", [*C, "-o", "{out}/c.tif", "--epoch-norm", "bogus"], "--epoch-norm"),
    ("change-max-shift-abc", [*C, "-o", "{out}/c.tif", "--max-shift", "abc"], "--max-shift"),
    ("change-t1-missing", ["change", "{out}/nope.tif", "{ortho_t2}", "-o", "{out}/c.tif"], "not found"),
    ("change-t2-missing", ["change", O, "{out}/nope.tif", "-o", "{out}/c.tif"], "not found"),
    ("change-t1-empty", ["change", "{empty}", "{ortho_t2}", "-o", "{out}/c.tif"], "empty"),
    ("change-t2-trunc", ["change", O, "{trunc}", "-o", "{out}/c.tif"], ""),
    ("change-t2-text", ["change", O, "{text}", "-o", "{out}/c.tif"], ""),
    ("change-t2-band-count", ["change", O, "{one_band}", "-o", "{out}/c.tif"], "bands"),
    ("change-t2-far", ["change", O, "{far}", "-o", "{out}/c.tif"], "overlap"),
    ("change-model-evil", [*C, "-o", "{out}/c.tif", "--model", "{ckpt_evil}"], "refused"),
    ("change-model-evil-in-demo", [*C, "-o", "{out}/c.tif", "--model", "{ckpt_evil_demo_change}"], "refused"),
    ("change-model-pretrained-evil", [*C, "-o", "{out}/c.tif", "--model", "{ckpt_clean_names_evil_change}"], "model_kwargs"),
    ("change-model-no-keys", [*C, "-o", "{out}/c.tif", "--model", "{ckpt_nokeys}"], "missing"),
    ("change-model-trunc", [*C, "-o", "{out}/c.tif", "--model", "{ckpt_trunc}"], "a damaged or truncated zip archive"),
    ("change-model-seg-task", [*C, "-o", "{out}/c.tif", "--model", str(DEMO)], "change"),
    ("change-model-unknown-name", [*C, "-o", "{out}/c.tif", "--model", "no_such_model"], "unknown model"),
    ("change-out-is-t1", [*C, "-o", O], "input"),
    ("change-out-is-t2", [*C, "-o", "{ortho_t2}"], "input"),
    ("change-out-readonly", [*C, "-o", "{ro}/c.tif"], "cannot write"),
    ("change-out-under-file", [*C, "-o", "{afile}/c.tif"], "is a file"),
    ("change-probability-same", [*C, "-o", "{out}/c.tif", "--probability", "{out}/c.tif"], "different"),
    ("change-resume-nothing", [*C, "-o", "{out}/c.tif", "--resume"], "--resume"),
    ("change-range-checkpoint-norm", ["change", "{u16}", "{u16_t2}", "-o", "{out}/c.tif", "--epoch-norm", "checkpoint"],
     "scale"),
    # -- vectorize ----------------------------------------------------------------------------------
    ("vectorize-no-args", ["vectorize"], "Missing argument"),
    ("vectorize-missing", ["vectorize", "{out}/nope.tif", "-o", "{out}/v.gpkg"], "file not found"),
    ("vectorize-empty", ["vectorize", "{empty}", "-o", "{out}/v.gpkg"], "empty"),
    ("vectorize-trunc", ["vectorize", "{trunc}", "-o", "{out}/v.gpkg"], ""),
    ("vectorize-text", ["vectorize", "{text}", "-o", "{out}/v.gpkg"], "raster "),  # its role named (QA)
    ("vectorize-rgb-ortho", ["vectorize", O, "-o", "{out}/v.gpkg"], "class raster"),
    ("vectorize-float", ["vectorize", "{fcls}", "-o", "{out}/v.gpkg"], "float32"),
    ("vectorize-dsm", ["vectorize", D, "-o", "{out}/v.gpkg"], "float32"),
    ("vectorize-no-crs", ["vectorize", "{nocrs}", "-o", "{out}/v.gpkg"], "CRS"),
    ("vectorize-block-0", [*V, "-o", "{out}/v.gpkg", "--block", "0"], "--block"),
    ("vectorize-block-neg", [*V, "-o", "{out}/v.gpkg", "--block", "-5"], "--block"),
    ("vectorize-block-abc", [*V, "-o", "{out}/v.gpkg", "--block", "abc"], "--block"),
    ("vectorize-min-area-abc", [*V, "-o", "{out}/v.gpkg", "--min-area", "abc"], "--min-area"),
    ("vectorize-simplify-abc", [*V, "-o", "{out}/v.gpkg", "--simplify", "abc"], "--simplify"),
    ("vectorize-fill-holes-abc", [*V, "-o", "{out}/v.gpkg", "--fill-holes", "abc"], "--fill-holes"),
    ("vectorize-format-bogus", [*V, "-o", "{out}/v.gpkg", "--format", "bogus"], "format"),
    ("vectorize-suffix-bogus", [*V, "-o", "{out}/v.xyz"], "format"),
    ("vectorize-out-semicolon", [*V, "-o", "{out}/a;b.gpkg"], ";"),
    ("vectorize-out-is-input", [*V, "-o", L], ""),
    ("vectorize-out-readonly", [*V, "-o", "{ro}/v.gpkg"], "cannot write"),
    ("vectorize-out-under-file", [*V, "-o", "{afile}/v.gpkg"], "is a file"),
    ("vectorize-out-dir", [*V, "-o", "{adir}"], ""),
    ("vectorize-reproject-bogus", [*V, "-o", "{out}/v.gpkg", "--reproject", "bogus"], "--reproject"),
    ("vectorize-reproject-geographic", [*V, "-o", "{out}/v.gpkg", "--reproject", "EPSG:4326"], "projected"),
    ("vectorize-classes-unknown", [*V, "-o", "{out}/v.gpkg", "--classes", "nosuchclass"], "nosuchclass"),
    ("vectorize-probabilities-missing", [*V, "-o", "{out}/v.gpkg", "--probabilities", "{out}/nope.tif"], "file not found"),
    ("vectorize-probabilities-other-grid", [*V, "-o", "{out}/v.gpkg", "--probabilities", "{far}"], "grid"),
    ("vectorize-many-no-out", ["vectorize", L, "{labels_t2}"], "-o"),
    ("vectorize-glob-nothing", ["vectorize", "{out}/none*.tif", "-o", "{out}/v.gpkg"], ""),
    # -- evaluate -----------------------------------------------------------------------------------
    ("evaluate-no-args", ["evaluate"], "Missing argument"),
    ("evaluate-no-out", [*E], "Missing option"),
    ("evaluate-prediction-missing", ["evaluate", "{out}/nope.tif", L, "-o", "{out}/m.json"], "not found"),
    ("evaluate-reference-missing", ["evaluate", L, "{out}/nope.tif", "-o", "{out}/m.json"], "not found"),
    ("evaluate-prediction-empty", ["evaluate", "{empty}", L, "-o", "{out}/m.json"], "empty"),
    ("evaluate-prediction-trunc", ["evaluate", "{trunc}", L, "-o", "{out}/m.json"], ""),
    ("evaluate-reference-trunc", ["evaluate", L, "{trunc}", "-o", "{out}/m.json"], ""),
    ("evaluate-prediction-text", ["evaluate", "{text}", L, "-o", "{out}/m.json"], "prediction "),  # GDAL's words alone
    ("evaluate-reference-text", ["evaluate", L, "{text}", "-o", "{out}/m.json"], "reference "),
    ("evaluate-image-text", [*E, "-o", "{out}/m.json", "--image", "{text}"], "image "),
    ("evaluate-ortho-as-prediction", ["evaluate", O, L, "-o", "{out}/m.json"], "class raster"),
    ("evaluate-ortho-as-reference", ["evaluate", L, O, "-o", "{out}/m.json"], "class raster"),
    ("evaluate-float-prediction", ["evaluate", "{fcls}", L, "-o", "{out}/m.json"], "float32"),
    ("evaluate-reference-string-field", ["evaluate", L, "{vec_str}", "-o", "{out}/m.json"], "holds names no class of the prediction"),
    ("evaluate-reference-no-field", ["evaluate", L, "{vec_class}", "-o", "{out}/m.json", "--class-field", "nope"],
     "nope"),
    ("evaluate-reference-semicolon", ["evaluate", L, "{semi_vec}", "-o", "{out}/m.json"], ";"),
    ("evaluate-reference-broken-vector", ["evaluate", L, "{vec_text}", "-o", "{out}/m.json"], ""),
    ("evaluate-reference-far", ["evaluate", L, "{far}", "-o", "{out}/m.json"], ""),
    ("evaluate-exclude-x", [*E, "-o", "{out}/m.json", "--exclude", "x"], "--exclude"),
    ("evaluate-exclude-neg", [*E, "-o", "{out}/m.json", "--exclude", "-1"], "--exclude"),
    ("evaluate-erode-neg", [*E, "-o", "{out}/m.json", "--erode", "-1"], "--erode"),
    ("evaluate-erode-abc", [*E, "-o", "{out}/m.json", "--erode", "abc"], "--erode"),
    ("evaluate-min-object-neg", [*E, "-o", "{out}/m.json", "--min-object-pixels", "-1"], "--min-object-pixels"),
    ("evaluate-building-class-abc", [*E, "-o", "{out}/m.json", "--building-class", "abc"], "--building-class"),
    ("evaluate-buildings-missing", [*E, "-o", "{out}/m.json", "--buildings", "{out}/nope.gpkg"], "not found"),
    ("evaluate-buildings-semicolon", [*E, "-o", "{out}/m.json", "--buildings", "{semi_vec}"], ";"),
    ("evaluate-image-missing", [*E, "-o", "{out}/m.json", "--image", "{out}/nope.tif"], "not found"),
    ("evaluate-out-is-prediction", [*E, "-o", L], "input"),
    ("evaluate-out-readonly", [*E, "-o", "{ro}/m.json"], "cannot write"),
    ("evaluate-out-under-file", [*E, "-o", "{afile}/m.json"], "is a file"),
    ("evaluate-out-dir", [*E, "-o", "{adir}"], "directory"),
]


def _fill(arg: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)] if m.group(1) in values else m.group(0), arg).replace(
        "{{", "{").replace("}}", "}")


def _digest(path: Path) -> str:
    if path.is_dir():
        return "|".join(f"{p.relative_to(path)}:{_digest(p)}" for p in sorted(path.rglob("*")) if p.is_file())
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "absent"


def _inputs_named(argv: list[str], inp: Path) -> list[Path]:
    found = []
    for arg in argv:
        for part in re.split(r"[ '{}:]", arg):
            p = Path(part.lstrip("@"))
            if part and p.is_absolute() and inp in p.parents and p.exists():
                found.append(p)
    return found


_WARNING = re.compile(r"^\S.*:\d+: \w*Warning: ")


def error_lines(stderr: str) -> list[str]:
    """stderr without log warnings and Python warnings: what must be the one error line."""
    out, skip_indented = [], False
    for line in stderr.splitlines():
        if skip_indented and line.startswith((" ", "\t")):
            continue
        skip_indented = False
        if line.startswith(("rsmamba: WARNING:", "rsmamba: INFO:")):
            continue
        if _WARNING.match(line):
            skip_indented = True
            continue
        out.append(line)
    return out


def _run_case(case_id: str, argv: list[str], values: dict[str, str], root: Path, warm: WarmCLI | None) -> dict:
    out = root / "out" / case_id
    out.mkdir(parents=True)
    args = [_fill(a, {**values, "out": str(out)}) for a in argv]
    if argv[0] == "train" and "{cfg_evil_resume}" not in argv and any(a.startswith("{cfg") for a in argv):
        # Cases run concurrently: each train run gets its own output folder, so a case that gets as
        # far as locking its folder never meets another case's lock instead of its own error.
        args += ["--set", f"out={out / 'run'}"]
    inp = Path(values["inp"])
    named = _inputs_named(args, inp)
    before = {p: _digest(p) for p in named}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "default",
           "COLUMNS": "200"}
    if warm is None:
        proc = subprocess.run([str(SCRIPT), *args], cwd=out, capture_output=True, text=True, timeout=300, env=env,
                              stdin=subprocess.DEVNULL)
        rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    else:
        rc, stdout, stderr = warm.run(args, cwd=out, env=env, io_dir=root / "io")
    after = {p: _digest(p) for p in named}
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    return {"args": args, "rc": rc, "stderr": stderr, "stdout": stdout, "left": left,
            "changed": [str(p) for p in named if before[p] != after[p]]}


def fresh_process_cases() -> set[str]:
    """The cases run by the installed console script in a fresh process: the first of each verb."""
    first: dict[str, str] = {}
    for cid, argv, _ in CASES:
        first.setdefault(argv[0], cid)
    return set(first.values())


@pytest.fixture(scope="module")
def matrix(tmp_path_factory) -> dict:
    assert SCRIPT.is_file(), f"the console script {SCRIPT} is not installed (pip install -e .)"
    root = tmp_path_factory.mktemp("bad_inputs")
    files = build_inputs(root)
    values = {k: str(v) for k, v in files.items()}
    values["ro"] = str(_readonly_dir(root))
    inp = files["inp"]
    before_all = _digest(inp)
    workers = max(2, min(6, (os.cpu_count() or 2) * 2))
    (root / "io").mkdir()
    fresh = fresh_process_cases()
    warm = WarmCLI({**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "default"})
    try:
        with ThreadPoolExecutor(workers) as pool:
            futures = {cid: pool.submit(_run_case, cid, argv, values, root, None if cid in fresh else warm)
                       for cid, argv, _ in CASES}
            results = {cid: fut.result() for cid, fut in futures.items()}
    finally:
        warm.close()
    return {"results": results, "marker": files["marker"], "inputs_unchanged": _digest(inp) == before_all,
            "root": root}


def test_the_matrix_is_large_and_covers_every_verb() -> None:
    assert len(CASES) >= 150
    assert len({cid for cid, _, _ in CASES}) == len(CASES)
    verbs = {argv[0] for _, argv, _ in CASES}
    assert {"synth", "tile", "train", "evaluate", "predict", "change", "vectorize", "models"} <= verbs
    fresh = fresh_process_cases()
    assert {argv[0] for cid, argv, _ in CASES if cid in fresh} == verbs  # each verb once through the real script


@pytest.mark.parametrize(("case_id", "argv", "expect"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2(matrix, case_id: str, argv: list[str], expect: str) -> None:
    r = matrix["results"][case_id]
    where = f"rsmamba {' '.join(r['args'])}\nstderr:\n{r['stderr']}\nstdout:\n{r['stdout']}"
    assert "Traceback" not in r["stderr"], where
    lines = error_lines(r["stderr"])
    assert len(lines) == 1 and lines[0].startswith("rsmamba: error: "), where
    assert r["rc"] == 2, where
    assert expect in lines[0], where
    assert r["left"] == [], f"partial output left: {r['left']}\n{where}"
    assert r["changed"] == [], f"inputs changed: {r['changed']}\n{where}"
    assert not matrix["marker"].exists(), f"a checkpoint payload ran\n{where}"


def test_no_input_changed_and_no_payload_ran(matrix) -> None:
    assert matrix["inputs_unchanged"]
    assert not matrix["marker"].exists()


def test_an_input_that_is_not_a_regular_file_is_refused_by_every_verb(tmp_path, capsys) -> None:
    """A named pipe passed predict, change and evaluate's check as an 'empty file (0 bytes)'; a device such as
    /dev/zero (no size) too. Said for what it is, found by stat alone (opening a FIFO would wait for ever)."""
    from rsmamba.cli import main

    fifo = tmp_path / "fifo.tif"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        for argv in (["predict", str(path), "-o", str(tmp_path / "p.tif")],
                     ["change", str(path), str(path), "-o", str(tmp_path / "c.tif")],
                     ["evaluate", str(path), str(path), "-o", str(tmp_path / "m.json")]):
            assert main(argv) == 2, argv
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and f"{path}: not a regular file (a named pipe" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo.tif"]
