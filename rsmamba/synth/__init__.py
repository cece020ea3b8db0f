"""Synthetic two-epoch aerial scenes: orthophotos, DSMs, ISPRS-style labels, building footprints.

Tests, demos and benchmarks need georeferenced scenes with exact ground truth and no downloads.
The generator lays out a small town (a rotated road network, buildings of varied shapes and
orientations, paved yards, trees, cars, clutter), renders it to an orthophoto with per-object
colour, hillshading, cast shadows and texture noise, and builds a matching DSM. A second epoch
demolishes and adds buildings, moves cars, changes some trees and shifts illumination, so that
change detection has exact reference rasters and polygons.

Everything is vectorised numpy + ``rasterio.features.rasterize`` of shapely polygons; a
2048 x 2048 scene takes a few seconds on one core. The same seed gives the same scene.

:func:`generate_scene` returns arrays and polygons (no I/O); :func:`write_scene` writes them as
tiled, compressed GeoTIFFs and GeoPackages, published together.

The package: :mod:`~rsmamba.synth.scene` (what a scene is), :mod:`~rsmamba.synth.layout` (the
town's geometry; :mod:`~rsmamba.synth.terraced` for rows of touching houses),
:mod:`~rsmamba.synth.render` (colours, shading, shadows, the camera), :mod:`~rsmamba.synth.style`
(domain-randomised looks and the held-out family), :mod:`~rsmamba.synth.generate` and
:mod:`~rsmamba.synth.write` (the two public functions), :mod:`~rsmamba.synth.benchmarks` (tiny
copies of the benchmarks' folder layouts).
"""
from rsmamba.synth.generate import generate_scene
from rsmamba.synth.scene import (
    BAND_SETS, BUILDING, CAR, CLUTTER, DEFAULT_ORIGIN, DSM_NODATA, IMPERVIOUS, LOW_VEGETATION, ORTHO_NODATA, TREE,
    Building, Epoch, Scene,
)
from rsmamba.synth.write import write_scene

__all__ = [
    "BAND_SETS", "BUILDING", "CAR", "CLUTTER", "DEFAULT_ORIGIN", "DSM_NODATA", "IMPERVIOUS", "LOW_VEGETATION",
    "ORTHO_NODATA", "TREE", "Building", "Epoch", "Scene", "generate_scene", "write_scene",
]
