"""The benchmark-layout fixtures live in :mod:`rsmamba.synth.benchmarks` (also ``rsmamba synth --layout``)."""

from rsmamba.synth.benchmarks import *  # noqa: F401,F403
from rsmamba.synth.benchmarks import colour, isprs, landsat_scd, loveda, second, write  # noqa: F401
