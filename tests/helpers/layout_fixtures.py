"""The benchmark-layout fixtures live in :mod:`rsmamba.synth_layouts` (also ``rsmamba synth --layout``)."""

from rsmamba.synth_layouts import *  # noqa: F401,F403
from rsmamba.synth_layouts import colour, isprs, landsat_scd, loveda, second, write  # noqa: F401
