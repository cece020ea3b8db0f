"""What a --resume compares of its inputs (rsmamba.engine.resume)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rsmamba.engine.resume import file_fingerprint
from tests.helpers.rasters import write_raster


def _aux(unit: str) -> str:
    return f'<PAMDataset><PAMRasterBand band="1"><UnitType>{unit}</UnitType></PAMRasterBand></PAMDataset>'


def test_a_resume_sees_the_dsm_unit_an_aux_xml_declares(tmp_path: Path) -> None:
    """A unit type ``ft`` written into the DSM's .aux.xml before --resume went unseen (the file itself unchanged):
    one map of rows 0-255 read in metres and rows 256-1023 in feet, exit 0. The unit as read is compared: feet or
    cm are another DSM; metres declared are the metres of a DSM declaring none."""
    dsm = write_raster(tmp_path / "dsm.tif", np.full((8, 8), 40.0, np.float32))
    aux = tmp_path / "dsm.tif.aux.xml"
    metres = file_fingerprint(dsm)
    aux.write_text(_aux("ft"))
    feet = file_fingerprint(dsm)
    assert feet != metres
    aux.write_text(_aux("cm"))
    assert file_fingerprint(dsm) not in (metres, feet)
    aux.write_text(_aux("m"))
    assert file_fingerprint(dsm) == metres
