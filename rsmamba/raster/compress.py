"""Which COG compressions a user may ask for: those this GDAL accepts, and lossless.

Class, change and probability rasters are codes and scaled probabilities: a lossy codec (JPEG,
WEBP) would change class ids at edges, so it is refused even though GDAL accepts it.
"""

from __future__ import annotations

import functools
import re

LOSSLESS = ("NONE", "DEFLATE", "ZSTD", "LZW", "LZMA", "PACKBITS")


@functools.lru_cache(maxsize=1)
def gdal_compressions(driver: str = "COG") -> tuple[str, ...]:
    """The COMPRESS values ``driver`` lists in its creation options (GDAL's own metadata)."""
    import ctypes

    import rasterio
    import rasterio._base as gdal_module  # linked to the GDAL that rasterio bundles

    try:
        lib = ctypes.CDLL(gdal_module.__file__)
        lib.GDALGetDriverByName.restype = ctypes.c_void_p
        lib.GDALGetDriverByName.argtypes = [ctypes.c_char_p]
        lib.GDALGetMetadataItem.restype = ctypes.c_char_p
        lib.GDALGetMetadataItem.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
        with rasterio.Env():
            handle = lib.GDALGetDriverByName(driver.encode())
            xml = lib.GDALGetMetadataItem(handle, b"DMD_CREATIONOPTIONLIST", None) if handle else None
        option = re.search(r"<Option name='COMPRESS'.*?</Option>", (xml or b"").decode(), re.S)
        values = tuple(re.findall(r"<Value[^>]*>\s*([\w-]+)\s*</Value>", option.group(0))) if option else ()
    except (OSError, AttributeError, UnicodeDecodeError):
        values = ()
    return values or ("NONE", "LZW", "DEFLATE", "ZSTD")  # what every GDAL >= 3.1 COG driver has


def check_compress(compress: str, option: str | None = None) -> str | None:
    """None when ``compress`` is a lossless compression this GDAL's COG driver accepts, else the problem
    (naming ``option``, by default ``--compress 'VALUE'``)."""
    value = str(compress).upper()
    usable = [c for c in gdal_compressions() if c in LOSSLESS]
    if value in usable:
        return None
    why = "lossy, it would change class values" if value in gdal_compressions() else "not a compression GDAL knows"
    return f"{option or f'--compress {compress!r}'}: {why}; choose one of {', '.join(c.lower() for c in usable)}"
