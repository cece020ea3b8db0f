"""rsmamba: geospatial mapping production with Mamba-based deep networks."""

from rsmamba.errors import InputError, RsmambaError

__version__ = "0.1.0"
__all__ = ["InputError", "RsmambaError", "__version__"]
