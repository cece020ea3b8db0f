"""Safe reading of a user's small text files: configs, class tables and --set values."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsmamba.errors import InputError
from rsmamba.paths import YAML_MAX_NODES, load_yaml


def _bomb(levels: int) -> str:
    """The "billion laughs" of YAML: each level nine aliases of the one before (9**levels strings)."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [{', '.join([f'*{chr(96 + i)}'] * 9)}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_before_anything_expands_it(tmp_path: Path) -> None:
    small = load_yaml("small.yaml", text=_bomb(3))  # 9**3 strings: a legitimate (if odd) use of aliases
    assert len(small["c"]) == 9 and small["c"][0][0][0] == "lol"
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(9))  # 9**9 = 387 million strings once expanded
    with pytest.raises(InputError, match=f"bomb.yaml: its aliases expand to over {YAML_MAX_NODES} values"):
        load_yaml(path)
    with pytest.raises(InputError, match="recursive alias"):
        load_yaml("r.yaml", text="a: &a [1, *a]\n")


def test_a_config_not_in_utf8_or_not_yaml_is_one_input_error(tmp_path: Path) -> None:
    from rsmamba.classes import load_class_table
    from rsmamba.train.config import load_config

    latin = tmp_path / "c.yaml"
    latin.write_bytes("data: {root: /données}\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"c.yaml: not UTF-8 text \(byte 18\); save it as UTF-8"):
        load_config(latin)
    table = tmp_path / "t.yaml"
    table.write_text(_bomb(9))
    with pytest.raises(InputError, match="aliases expand"):
        load_class_table(table)
    with pytest.raises(InputError, match=r"--set optim.lr=\[1,: not valid YAML") as err:
        load_config(None, ["optim.lr=[1,", "data.root=x"])
    assert len(err.value.problems) == 1


def test_a_key_given_twice_is_refused_naming_it_and_its_lines(tmp_path: Path) -> None:
    """PyYAML keeps the last of two equal keys without a word: a config's second train: section dropped the
    first (epochs 3 became 10), optim: {lr: 0.001, lr: 5} trained at 5, a class {id: 1, ..., id: 2} was id 2."""
    from rsmamba.classes import load_class_table
    from rsmamba.train.config import load_config

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"data: {{root: {tmp_path}}}\ntrain:\n  epochs: 3\noptim: {{lr: 0.001}}\ntrain:\n  seed: 1\n")
    with pytest.raises(InputError, match=r"cfg.yaml: key 'train' is given twice \(lines 2 and 5\)"):
        load_config(cfg)
    with pytest.raises(InputError, match=r"--set optim=\{lr: 1, lr: 5\}: key 'lr' is given twice \(lines 1 and 1\)"):
        load_config(None, [f"data.root={tmp_path}", "optim={lr: 1, lr: 5}"])
    table = tmp_path / "t.yaml"
    table.write_text("classes:\n  - {id: 0, name: background}\n  - {id: 1, name: Building, id: 2}\n")
    with pytest.raises(InputError, match=r"t.yaml: key 'id' is given twice \(lines 3 and 3\)"):
        load_class_table(table)
    # the same key in different mappings, a merge key (<<) overridden, and one mapping shared by aliases are fine
    text = "a: &x {k: 1}\nb: *x\nc: {k: 2}\nd:\n  <<: *x\n  k: 3\n"
    assert load_yaml("ok.yaml", text=text) == {"a": {"k": 1}, "b": {"k": 1}, "c": {"k": 2}, "d": {"k": 3}}


def _vrt_of(source: Path, out: Path) -> Path:
    """A one-band VRT of ``source`` (relative to the VRT)."""
    import os

    import rasterio

    with rasterio.open(source) as s:
        rel = os.path.relpath(source, out.parent)
        out.write_text(f'<VRTDataset rasterXSize="{s.width}" rasterYSize="{s.height}"><SRS>{s.crs.to_wkt()}</SRS>'
                       f'<GeoTransform>{", ".join(map(str, s.transform.to_gdal()))}</GeoTransform>'
                       f'<VRTRasterBand dataType="Byte" band="1"><SimpleSource><SourceFilename relativeToVRT="1">'
                       f'{rel}</SourceFilename><SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>')
    return out


def test_the_files_behind_a_vrt_of_vrts_are_followed_to_the_end(tmp_path: Path) -> None:
    """Only the first level was listed: `predict outer.vrt -o a.tif --overwrite` replaced the orthophoto a.tif behind
    inner.vrt with the class map, and --resume took a changed a.tif."""
    import numpy as np

    from rsmamba.engine.resume import file_fingerprint
    from rsmamba.paths import files_behind
    from tests.helpers.rasters import write_raster

    leaf = write_raster(tmp_path / "a.tif", np.ones((8, 8), np.uint8))
    outer = _vrt_of(_vrt_of(leaf, tmp_path / "inner.vrt"), tmp_path / "outer.vrt")
    assert str(leaf) in [str(Path(f)) for f in files_behind(outer)]
    before = file_fingerprint(outer)
    write_raster(leaf, np.full((8, 8), 2, np.uint8))
    import os
    os.utime(leaf, ns=(1, 1))  # another file: another mtime
    assert file_fingerprint(outer) != before


def test_a_resume_sees_an_aux_xml_that_changes_what_gdal_reads(tmp_path: Path) -> None:
    """A DSM's .aux.xml offset of -30 m added before --resume went unseen (one map spliced from two DSMs); one
    holding statistics only (QGIS writes them while the run waits) changes nothing."""
    import numpy as np

    from rsmamba.engine.resume import file_fingerprint
    from tests.helpers.rasters import write_raster

    dsm = write_raster(tmp_path / "dsm.tif", np.ones((8, 8), np.float32))
    before = file_fingerprint(dsm)
    aux = tmp_path / "dsm.tif.aux.xml"
    aux.write_text('<PAMDataset><PAMRasterBand band="1"><Metadata><MDI key="STATISTICS_MEAN">1</MDI></Metadata>'
                   '</PAMRasterBand></PAMDataset>')
    assert file_fingerprint(dsm) == before
    aux.write_text('<PAMDataset><PAMRasterBand band="1"><Offset>-30</Offset><Scale>1</Scale></PAMRasterBand></PAMDataset>')
    assert file_fingerprint(dsm) != before


def test_a_vrt_with_a_raw_band_or_a_pipe_behind_it_is_refused_before_gdal_reads_it(tmp_path, capsys) -> None:
    """A delivered VRT's raw band pointed at /etc/passwd or /proc/self/environ, and tile copied the bytes into
    chips, secrets and all; a VRT source that is a named pipe made GDAL wait for ever (QA). Both are refused from
    the XML alone, also behind another VRT whatever its name; a VRT over a GeoTIFF is read as ever."""
    import os

    from rsmamba.cli import main
    from rsmamba.paths import input_problem
    from tests.helpers.rasters import random_image, write_raster

    secret = tmp_path / "secret.txt"
    secret.write_text("MY_SECRET_TOKEN=hunter2\n" * 100)
    raw = ("<VRTDataset rasterXSize=\"32\" rasterYSize=\"32\"><VRTRasterBand dataType=\"Byte\" band=\"1\" "
           f"subClass=\"VRTRawRasterBand\"><SourceFilename relativetoVRT=\"0\">{secret}</SourceFilename>"
           "<ImageOffset>0</ImageOffset><PixelOffset>1</PixelOffset><LineOffset>32</LineOffset></VRTRasterBand>"
           "</VRTDataset>")
    (tmp_path / "raw.vrt").write_text(raw)
    (tmp_path / "looks_like.tif").write_text(raw)  # GDAL opens a VRT by its content

    def simple(source: str, relative: str = "1") -> str:
        return ("<VRTDataset rasterXSize=\"32\" rasterYSize=\"32\"><VRTRasterBand dataType=\"Byte\" band=\"1\">"
                f"<SimpleSource><SourceFilename relativeToVRT=\"{relative}\">{source}</SourceFilename>"
                "<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>")

    (tmp_path / "outer.vrt").write_text(simple("looks_like.tif"))
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "piped.vrt").write_text(simple(str(tmp_path / "pipe"), relative="0"))
    write_raster(tmp_path / "img.tif", random_image(32, 32))
    (tmp_path / "fine.vrt").write_text(simple("img.tif"))

    assert "image {}: a VRT raw band (VRTRawRasterBand), which reads any file's bytes".format(tmp_path / "raw.vrt") \
        in input_problem(tmp_path / "raw.vrt", "image")
    assert f"a VRT raw band (through {tmp_path / 'looks_like.tif'})" in input_problem(tmp_path / "outer.vrt", "image")
    assert input_problem(tmp_path / "piped.vrt", "DSM") == (f"DSM {tmp_path / 'piped.vrt'}: its source {tmp_path / 'pipe'} "
                                                             "is not a regular file (a named pipe, socket or device), not read")
    assert input_problem(tmp_path / "fine.vrt", "image") is None
    capsys.readouterr()
    assert main(["tile", str(tmp_path / "outer.vrt"), "-o", str(tmp_path / "chips"), "--size", "32"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "VRT raw band" in err and not (tmp_path / "chips").exists()


def test_a_geopackage_layer_that_is_a_recursive_view_is_refused_before_gdal_reads_it(tmp_path: Path) -> None:
    """A view of a WITH RECURSIVE query may never end, and GDAL reading it ran for ever, deaf to Ctrl-C and
    SIGTERM (QA; this one ends after 3 rows, so the old code read it); a table and a plain view are read."""
    import sqlite3

    import geopandas as gpd
    from shapely.geometry import box

    from rsmamba.paths import read_vector

    path = tmp_path / "refs.gpkg"
    gpd.GeoDataFrame({"class": [1]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:32632").to_file(path, layer="houses")
    db = sqlite3.connect(path)
    db.execute("CREATE VIEW Endless AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) "
               "SELECT houses.fid * 10 + n AS fid, houses.geom AS geom, n FROM r, houses")
    db.execute("CREATE VIEW plain AS SELECT fid, geom, class FROM houses")
    for view in ("Endless", "plain"):
        db.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, srs_id) "
                   f"VALUES ('{view}', 'features', '{view}', 32632)")
        db.execute(f"INSERT INTO gpkg_geometry_columns VALUES ('{view}', 'geom', 'POLYGON', 32632, 0, 0)")
    db.commit()
    db.close()
    with pytest.raises(InputError, match=r"labels .*refs.gpkg: layer 'Endless' is a view of a recursive query"):
        read_vector(path, layer="endless", role="labels")
    assert len(read_vector(path, layer="houses")) == 1 and len(read_vector(path, layer="plain")) == 1
