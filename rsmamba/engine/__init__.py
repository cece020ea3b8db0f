"""The streaming inference engine that ``predict`` and ``change`` both drive (core layer).

A scene is cut into overlapping windows (:mod:`rsmamba.raster.windows`), batched as a pure
function of the grid, run through a :class:`~rsmamba.engine.model.Predictor`, blended
(:mod:`~rsmamba.engine.blend`) and stitched by row strips (:mod:`~rsmamba.engine.stitch`) into
scratch rasters that the writers (:mod:`~rsmamba.engine.writer`) finalise as COGs; a resume
journal (:mod:`~rsmamba.engine.resume`) lets a killed run go on. :mod:`~rsmamba.engine.run`
holds the steps around one pipeline run that both verbs share (output checks, strip plans,
estimates). Submodules import on use: the CLI reads :mod:`~rsmamba.engine.options` without torch.
"""
