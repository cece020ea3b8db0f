"""Regenerate the shipped example scene ``examples/scene/`` (used by the README Quickstart).

    python examples/make_example_scene.py [--out examples/scene]

A 1024 x 1024 scene at 0.25 m (256 m x 256 m, EPSG:32632) from a fixed seed that no training
config uses, so a model trained on synthetic scenes is shown a town it has never seen.
Epoch 1 is the mapping example (ortho, DSM, labels, building footprints); epoch 2 and the
change raster serve the change-detection example.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

from rsmamba.synth import write_scene

SEED = 90_417  # distinct from training seeds (small integers in configs/tests)
SIZE = 1024
GSD = 0.25
EPSG = 32632

# generator file -> shipped name
SHIPPED = {
    "ortho_t1": "ortho.tif",
    "dsm_t1": "dsm.tif",
    "labels_t1": "labels.tif",
    "buildings_t1": "buildings.gpkg",
    "ortho_t2": "ortho_t2.tif",
    "dsm_t2": "dsm_t2.tif",
    "change": "change.tif",
    "scene": "scene.json",
}

README = """# Example scene

A synthetic 1024 x 1024 px aerial scene at {gsd} m GSD ({side:g} m x {side:g} m) in {crs},
made by `python examples/make_example_scene.py` (seed {seed}, `rsmamba.synth.write_scene`).
Nothing here is real data: every file is made by that script, which is deterministic (a re-run writes the same files).

| file | content |
|---|---|
| `ortho.tif` | RGB orthophoto, uint8, epoch 1 (JPEG-in-TIFF, quality 95, to keep the repository small) |
| `dsm.tif` | digital surface model, float32 metres, same grid (nodata {dsm_nodata}; LERC, error <= 1 cm) |
| `labels.tif` | ISPRS classes 0-5 (impervious, building, low vegetation, tree, car, clutter), 255 = no label, colour table |
| `buildings.gpkg` | exact building footprints, layer `buildings`: `id`, `class` = 1, `shape`, `height`, `roof` |
| `ortho_t2.tif`, `dsm_t2.tif` | epoch 2: {removed} buildings demolished, {added} added, cars moved, new sun and radiometry |
| `change.tif` | 1 where a building was added or demolished, else 0 |
| `scene.json` | generator settings, sun angles, class fractions, added/removed building ids |

Epoch 1 class fractions: {fractions}.

Quickstart: `rsmamba predict examples/scene/ortho.tif --dsm examples/scene/dsm.tif -o out/classes.tif` (see the top-level README for the options).
"""


# Keep the repository small: the ortho as YCbCr JPEG (as many delivered orthos are) and the DSM
# as LERC with a 1 cm error bound. Labels, change and footprints stay lossless.
ORTHO_ENCODING = {"compress": "jpeg", "photometric": "ycbcr", "jpeg_quality": 95}
DSM_ENCODING = {"compress": "lerc_deflate", "max_z_error": 0.01}


def recompress(path: Path, encoding: dict) -> None:
    """Rewrite a GeoTIFF in place with another encoding, keeping grid, CRS and nodata."""
    import rasterio

    from rsmamba.atomic import atomic_output

    with rasterio.open(path) as src:
        data, profile, descriptions = src.read(), src.profile, src.descriptions
    profile.pop("predictor", None)
    profile.update(encoding)
    with atomic_output(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions, start=1):
            if d:
                dst.set_band_description(i, d)


def make_example_scene(out: Path) -> dict[str, Path]:
    """Generate the scene in a scratch folder and move the shipped subset into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as scratch:
        paths = write_scene(scratch, size=SIZE, seed=SEED, gsd=GSD, epsg=EPSG, progress=True)
        info = json.loads(paths["scene"].read_text())
        info["files"] = {key: SHIPPED[key] for key in SHIPPED if key != "scene"}
        paths["scene"].write_text(json.dumps(info, indent=2))
        shipped = {}
        for key in ("ortho_t1", "ortho_t2"):
            recompress(paths[key], ORTHO_ENCODING)
        for key in ("dsm_t1", "dsm_t2"):
            recompress(paths[key], DSM_ENCODING)
        for key, name in SHIPPED.items():
            os.replace(paths[key], out / name)
            shipped[key] = out / name
    fractions = ", ".join(f"{k} {v:.1%}" for k, v in info["t1"]["class_fractions"].items())
    (out / "README.md").write_text(
        README.format(
            gsd=GSD, side=SIZE * GSD, crs=info["crs"], seed=SEED, dsm_nodata=-9999,
            removed=info["buildings_removed"], added=info["buildings_added"], fractions=fractions,
        )
    )
    return shipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "scene")
    args = parser.parse_args()
    for key, path in make_example_scene(args.out).items():
        print(f"{key}: {path} ({path.stat().st_size / 1e6:.2f} MB)")
    shutil.rmtree(args.out / "__pycache__", ignore_errors=True)


if __name__ == "__main__":
    main()
