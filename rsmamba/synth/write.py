"""``write_scene``: a generated scene as tiled GeoTIFFs, GeoPackages and ``scene.json``, published together."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from affine import Affine

from rsmamba.atomic import publish
from rsmamba.classes import IGNORE_INDEX, ISPRS_CLASSES, colormap
from rsmamba.errors import InputError, typed_arguments
from rsmamba.raster import gdal_cache_capped
from rsmamba.synth.generate import generate_scene
from rsmamba.synth.scene import BUILDING, Building, DEFAULT_ORIGIN, DSM_NODATA, ORTHO_NODATA, Scene
from rsmamba.synth.generate import check_scene_options, drawn_style

if TYPE_CHECKING:
    from rsmamba.synth.style import Style


def _profile(scene: Scene, count: int, dtype: str, nodata, transform: Affine | None = None, width: int | None = None, height: int | None = None) -> dict:
    width = width or scene.size
    height = height or scene.size
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": count, "dtype": dtype,
        "crs": f"EPSG:{scene.epsg}", "transform": transform or scene.transform, "nodata": nodata,
        "compress": "deflate", "predictor": 3 if dtype == "float32" else 2,
    }
    if min(width, height) >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    if count > 1:
        profile["interleave"] = "pixel"
    return profile


def _write_raster(path: Path, array: np.ndarray, profile: dict, *, colors: bool = False, descriptions=None,
                  colours: tuple[str, ...] | None = None) -> None:
    """``colours``: the bands' colour interpretation (an IRRG ortho declares nir, red, green, as GDAL can)."""
    import rasterio
    from rasterio.enums import ColorInterp

    array = array if array.ndim == 3 else array[None]
    if colours and tuple(colours) != ("red", "green", "blue"):
        profile = {**profile, "photometric": "MINISBLACK"}  # GDAL declares other colours only then
    with rasterio.open(path, "w", **profile) as dst:  # ``path``: a scratch name from ``publish``
        if colors:  # before the pixels (see rsmamba.tile._write_labels)
            dst.write_colormap(1, colormap(ISPRS_CLASSES))
        dst.write(array)
        if descriptions:
            for i, d in enumerate(descriptions, start=1):
                dst.set_band_description(i, d)
        if colours:
            dst.colorinterp = [ColorInterp[c] for c in colours]


# GeoPackage's last-change date of the layers (gpkg_contents): GDAL writes the clock's time, so the same seed gave
# other bytes each run; a fixed date makes the .gpkg files byte-identical for a seed, as the .tif files are
GPKG_DATE = "1970-01-01T00:00:00.000Z"


@contextlib.contextmanager
def _fixed_gpkg_date() -> Iterator[None]:
    """GDAL's ``OGR_CURRENT_DATE`` set to :data:`GPKG_DATE` for the block (pyogrio's GDAL), then handed back as it
    was: the process's GDAL configuration is the caller's. A date the caller set (environment or pyogrio) stays."""
    import pyogrio

    if pyogrio.get_gdal_config_option("OGR_CURRENT_DATE") is not None:
        yield
        return
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": GPKG_DATE})
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": None})


def _write_buildings(path: Path, buildings: list[Building], epsg: int, extra: dict | None = None) -> None:
    import geopandas as gpd

    data = {
        "id": [b.id for b in buildings],
        "class": [BUILDING] * len(buildings),
        "shape": [b.shape for b in buildings],
        "height": [round(b.height, 2) for b in buildings],
        "roof": [b.roof for b in buildings],
    }
    data.update(extra or {})
    frame = gpd.GeoDataFrame(data, geometry=[b.polygon for b in buildings], crs=f"EPSG:{epsg}")
    with _fixed_gpkg_date():
        frame.to_file(path, driver="GPKG", layer="buildings", engine="pyogrio")  # the GDAL that _fixed_gpkg_date sets


def _dsm_on_grid(scene: Scene, dsm: np.ndarray, dsm_gsd: float, shift: tuple[float, float]) -> tuple[np.ndarray, Affine]:
    """Resample the DSM onto a coarser/shifted grid that still covers the scene (alignment tests)."""
    from rasterio.warp import Resampling, reproject

    left, bottom, right, top = scene.bounds
    ox, oy = left - shift[0] * dsm_gsd, top + shift[1] * dsm_gsd
    width = int(math.ceil((right - ox) / dsm_gsd))
    height = int(math.ceil((oy - bottom) / dsm_gsd))
    transform = Affine(dsm_gsd, 0.0, ox, 0.0, -dsm_gsd, oy)
    out = np.full((height, width), DSM_NODATA, dtype=np.float32)
    resampling = Resampling.average if dsm_gsd > scene.gsd else Resampling.bilinear
    reproject(
        dsm, out, src_transform=scene.transform, src_crs=f"EPSG:{scene.epsg}", src_nodata=DSM_NODATA,
        dst_transform=transform, dst_crs=f"EPSG:{scene.epsg}", dst_nodata=DSM_NODATA, resampling=resampling,
    )
    return out, transform


@typed_arguments
@gdal_cache_capped()
def write_scene(
    out_dir: str | Path,
    size: int = 1024,
    seed: int = 0,
    gsd: float = 0.25,
    epsg: int = 32632,
    *,
    origin: tuple[float, float] = DEFAULT_ORIGIN,
    bands: str = "rgb",
    nodata_collar: bool = False,
    dsm_gsd: float | None = None,
    change_rate: float = 0.12,
    progress: bool = False,
    overwrite: bool = False,
    terraced: float = 0.0,
    instances: bool = False,
    style: Style | str | None = None,
) -> dict[str, Path]:
    """Generate a scene and write it to ``out_dir``; returns ``{name: path}`` of every file written.

    Files: ``ortho_t1/t2.tif``, ``dsm_t1/t2.tif``, ``labels_t1/t2.tif`` (colour table),
    ``change.tif``, ``buildings_t1/t2.gpkg``, ``building_changes.gpkg`` and ``scene.json``.
    ``dsm_gsd`` writes the DSMs on a different grid (that resolution, origin shifted by a fraction
    of a pixel) so that readers must align them to the ortho. The files are published together
    (:func:`rsmamba.atomic.publish`); existing ones are refused unless ``overwrite``.
    ``instances`` adds ``instances_t1/t2.tif``: the id of the building (the ``id`` field of
    ``buildings_t*.gpkg``) at each pixel, 0 elsewhere; ``terraced`` see :func:`generate_scene`.
    """
    check_scene_options(size, gsd, epsg, bands, dsm_gsd, seed=seed, origin=origin, terraced=terraced,
                        change_rate=change_rate)
    style = drawn_style(style, gsd)  # a misspelt family before the output folder is touched
    from rsmamba.paths import output_problem

    problem = output_problem(out_dir, role="output folder", directory=True)
    if problem:
        raise InputError(problem)
    from tqdm import tqdm

    out = Path(out_dir)
    scene = generate_scene(size, seed, gsd, epsg=epsg, origin=origin, bands=bands, nodata_collar=nodata_collar,
                           change_rate=change_rate, terraced=terraced, style=style)
    paths: dict[str, Path] = {}
    nodata_ortho = ORTHO_NODATA if nodata_collar else None
    steps = [
        ("ortho_t1", lambda p: _write_raster(p, scene.t1.ortho, _profile(scene, len(scene.bands), "uint8", nodata_ortho), descriptions=scene.bands, colours=scene.bands)),
        ("ortho_t2", lambda p: _write_raster(p, scene.t2.ortho, _profile(scene, len(scene.bands), "uint8", nodata_ortho), descriptions=scene.bands, colours=scene.bands)),
        ("dsm_t1", lambda p: _write_dsm(p, scene, scene.t1.dsm, dsm_gsd)),
        ("dsm_t2", lambda p: _write_dsm(p, scene, scene.t2.dsm, dsm_gsd)),
        ("labels_t1", lambda p: _write_raster(p, scene.t1.labels, _profile(scene, 1, "uint8", IGNORE_INDEX), colors=True)),
        ("labels_t2", lambda p: _write_raster(p, scene.t2.labels, _profile(scene, 1, "uint8", IGNORE_INDEX), colors=True)),
        ("change", lambda p: _write_raster(p, scene.change, _profile(scene, 1, "uint8", IGNORE_INDEX),
                                                 descriptions=["change"])),
        ("buildings_t1", lambda p: _write_buildings(p, scene.t1.buildings, epsg)),
        ("buildings_t2", lambda p: _write_buildings(p, scene.t2.buildings, epsg)),
        ("building_changes", lambda p: _write_buildings(
            p, scene.removed + scene.added, epsg, {"change": ["demolished"] * len(scene.removed) + ["added"] * len(scene.added)})),
    ]
    if instances:
        for key, epoch in (("instances_t1", scene.t1), ("instances_t2", scene.t2)):
            steps.append((key, lambda p, e=epoch: _write_raster(p, e.instances.astype(np.uint32),
                                                               _profile(scene, 1, "uint32", None),
                                                               descriptions=["building_id"])))
    for name, _ in steps:
        paths[name] = out / (f"{name}.gpkg" if name.startswith("building") else f"{name}.tif")
    json_path = out / "scene.json"
    with publish([*paths.values(), json_path], overwrite=overwrite) as pub:
        if overwrite:  # an earlier scene's optional files would sit beside this one's, unlisted in scene.json
            pub.remove_at_commit(*(out / f"{n}.tif" for n in ("instances_t1", "instances_t2") if n not in paths))
        for name, write in tqdm(steps, desc="synth: writing", unit="file", disable=not progress):
            write(pub[paths[name]])
        info = scene.describe()
        info["options"]["dsm_gsd"] = dsm_gsd
        if instances:
            info["options"]["instances"] = True
        info["files"] = {name: p.name for name, p in paths.items()}
        pub[json_path].write_text(json.dumps(info, indent=2))
    paths["scene"] = json_path
    return paths


def _write_dsm(path: Path, scene: Scene, dsm: np.ndarray, dsm_gsd: float | None) -> None:
    if dsm_gsd is None or (dsm_gsd == scene.gsd):
        _write_raster(path, dsm, _profile(scene, 1, "float32", DSM_NODATA))
        return
    grid, transform = _dsm_on_grid(scene, dsm, dsm_gsd, shift=(0.37, 0.41))
    _write_raster(path, grid, _profile(scene, 1, "float32", DSM_NODATA, transform=transform, width=grid.shape[1], height=grid.shape[0]))
