"""Score a checkpoint on a small held-out scene in one forward pass (training-time check).

Production inference on large rasters is ``rsmamba predict`` (windowed, stitched); this is for
scenes that fit in memory, used by the end-to-end test and the demo model's card, and applies
exactly the checkpoint's bands and normalisation, so it also checks the checkpoint is complete.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
import torch

from rsmamba.atomic import atomic_output
from rsmamba.checkpoint import load_checkpoint
from rsmamba.classes import classes_from_dicts, colormap
from rsmamba.models import create_model, model_info

PathLike = str | os.PathLike[str]


def predict_small_scene(checkpoint: PathLike | dict, image: PathLike, out: PathLike, dsm: PathLike | None = None,
                        nodata: int = 255) -> Path:
    """Whole-scene prediction written as a georeferenced uint8 class raster (``nodata`` where invalid)."""
    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    info = model_info(ckpt["model"])
    model = create_model(ckpt["model"], **ckpt["model_kwargs"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    norm = ckpt["normalization"]
    with rasterio.open(image) as src:
        raw = src.read(ckpt["bands"]["image"]).astype(np.float32)
        profile = src.profile
        img_nodata = src.nodata
    valid = np.ones(raw.shape[1:], bool) if img_nodata is None else ~np.all(raw == img_nodata, axis=0)
    x = (raw - np.asarray(norm["image"]["mean"], np.float32)[:, None, None]) / np.asarray(
        norm["image"]["std"], np.float32)[:, None, None]
    if ckpt["bands"].get("dsm"):
        if dsm is None:
            raise ValueError("this checkpoint needs a DSM")
        with rasterio.open(dsm) as src:
            d = src.read(1).astype(np.float32)
        finite = np.isfinite(d)
        dn = norm["dsm"]
        if dn["mode"] == "zscore":
            d = (d - dn["mean"]) / dn["std"]
        else:
            v = d[finite & valid]
            lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)
            d = (d - lo) / (hi - lo) if hi > lo else np.zeros_like(d)
        d[~finite] = 0
        x = np.concatenate([x, d[None]])
    x[:, ~valid] = 0
    t = torch.from_numpy(np.nan_to_num(x))[None]
    with torch.no_grad():
        logits = model(t[:, :-1], t[:, -1:]) if info.inputs == "image+dsm" else model(t)
    pred = logits.argmax(1)[0].numpy().astype(np.uint8)
    pred[~valid] = nodata
    profile.update(count=1, dtype="uint8", nodata=nodata, compress="deflate")
    out = Path(out)
    with atomic_output(out) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(pred, 1)
            dst.write_colormap(1, colormap(classes_from_dicts(ckpt["classes"])))
    return out
