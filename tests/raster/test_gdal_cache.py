"""GDAL's block cache is capped during a verb's call only: importing rsmamba wrote GDAL_CACHEMAX=64 into
os.environ, which capped the caller's own GDAL work and every subprocess it started."""

from __future__ import annotations

import os
import subprocess
import sys

import rasterio
from rasterio.env import get_gdal_config

from rsmamba.raster import GDAL_CACHE_MB, gdal_cache_capped
from tests.helpers.rasters import ROOT


def test_importing_the_verbs_sets_no_environment_variable() -> None:
    script = ("import os, rasterio, torch; before = dict(os.environ)\n"  # (rasterio's wheel sets its CA bundle paths)
              "import rsmamba.predict, rsmamba.change, rsmamba.evaluate, rsmamba.tile, rsmamba.vectorize, "
              "rsmamba.train, rsmamba.synth\n"
              "print(sorted(k for k in os.environ if os.environ[k] != before.get(k)))")
    env = {k: v for k, v in os.environ.items() if k != "GDAL_CACHEMAX"}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_the_cap_holds_during_a_call_and_the_callers_setting_wins(monkeypatch) -> None:
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    before = get_gdal_config("GDAL_CACHEMAX")  # GDAL's own size (5 % of RAM)
    with gdal_cache_capped():
        assert get_gdal_config("GDAL_CACHEMAX") == GDAL_CACHE_MB * 2**20
    assert get_gdal_config("GDAL_CACHEMAX") == before
    with rasterio.Env(GDAL_CACHEMAX=300 * 2**20), gdal_cache_capped():  # a caller's rasterio.Env around the call
        assert get_gdal_config("GDAL_CACHEMAX") == 300 * 2**20


def test_a_callers_own_env_keeps_its_cache_size(monkeypatch) -> None:
    """Called in a caller's rasterio.Env that set no cache size, the cap nested in it left GDAL's block cache at
    64 MiB after the call and after the caller's Env, for good (1205 MiB before)."""
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    before = get_gdal_config("GDAL_CACHEMAX")
    with rasterio.Env():
        with gdal_cache_capped():
            assert get_gdal_config("GDAL_CACHEMAX") == before
        assert get_gdal_config("GDAL_CACHEMAX") == before
    assert get_gdal_config("GDAL_CACHEMAX") == before
