"""Block-wise polygonize equals a whole-raster ``features.shapes`` (issue #6 acceptance)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio import features

from rsmamba.vectorize import polygonize
from rsmamba.vectorize.polygonize import block_spans, polygonize_blocks


def whole(a: np.ndarray, mask: np.ndarray) -> dict[int, list]:
    out: dict[int, list] = {}
    for g, v in features.shapes(a, mask=mask, connectivity=4, transform=Affine.identity()):
        out.setdefault(int(v), []).append(shapely.geometry.shape(g))
    return out


def blockwise(a: np.ndarray, mask: np.ndarray, size: int, values: np.ndarray | None = None) -> dict[int, list]:
    def read(w):
        sl = (slice(w.row_off, w.row_off + w.height), slice(w.col_off, w.col_off + w.width))
        return a[sl], mask[sl]

    def read_values(w, keys):
        return values[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width]

    out: dict[int, list] = {}
    for batch in polygonize_blocks(a.shape[1], a.shape[0], read, block_size=size,
                                   read_values=read_values if values is not None else None):
        for p in batch:
            out.setdefault(p.key, []).append(p)
    return out


def assert_same(ref: dict[int, list], got: dict[int, list]) -> None:
    assert set(ref) == set(got)
    for key in ref:
        geoms = [p.geometry for p in got[key]]
        assert len(geoms) == len(ref[key]), key
        assert abs(sum(g.area for g in geoms) - sum(g.area for g in ref[key])) < 1e-6
        assert all(g.is_valid and g.geom_type == "Polygon" for g in geoms)
        # One-to-one: every whole-raster polygon is exactly one block-wise polygon.
        tree = shapely.STRtree(geoms)
        for r in ref[key]:
            hits = [geoms[i] for i in tree.query(r.point_on_surface(), predicate="within")]
            assert len(hits) == 1 and hits[0].symmetric_difference(r).area == 0
        assert sum(p.pixels for p in got[key]) == int(sum(g.area for g in ref[key]))


def test_block_spans_cover_each_pixel_once():
    for length, size in [(10, 4), (8, 4), (3, 5), (1, 1), (17, 6)]:
        spans = block_spans(length, size)
        assert spans[0][0] == 0 and spans[-1][1] == length
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
        assert all(0 < stop - start <= size for start, stop in spans)


def test_shapes_straddling_blocks_equal_whole_raster():
    a = np.zeros((40, 50), dtype="uint8")
    a[5:30, 3:45] = 1          # one big building across many blocks
    a[10:20, 10:20] = 0        # with a hole that itself straddles seams
    a[32:38, 2:48] = 2         # a long strip of another class
    a[0:40, 24] = 3            # a column splitting nothing, crossing every seam
    mask = a != 0
    ref = whole(a, mask)
    for size in (3, 7, 8, 16, 64):
        assert_same(ref, blockwise(a, mask, size))


def test_corner_touching_across_seams_stays_separate():
    # Diagonal chain: pixels touch only at corners, every corner on a seam when size == 2.
    a = np.zeros((8, 8), dtype="uint8")
    for i in range(8):
        a[i, i] = 1
    a[1, 0] = a[0, 1] = 1  # and a cell pair touching the chain by an edge
    mask = a == 1
    ref = whole(a, mask)
    got = blockwise(a, mask, 2)
    assert_same(ref, got)
    # A checkerboard: every pixel its own polygon with 4-connectivity.
    c = (np.indices((9, 9)).sum(0) % 2).astype("uint8")
    assert_same(whole(c, c == 1), blockwise(c, c == 1, 4))
    assert len(blockwise(c, c == 1, 4)[1]) == 40


def test_ring_closing_through_corner_across_seam():
    # A ring whose loop closes only at a diagonal corner on a seam: the hole stays open.
    a = np.zeros((6, 6), dtype="uint8")
    a[1, 1:4] = 1
    a[1:4, 1] = 1
    a[3, 2:4] = 1
    a[2, 4] = 1  # touches the ring at corners only
    a[1:5, 5] = 1
    mask = a == 1
    for size in (2, 3, 4):
        assert_same(whole(a, mask), blockwise(a, mask, size))


def test_values_aggregate_across_seams():
    a = np.zeros((12, 12), dtype="uint8")
    a[2:10, 1:11] = 1
    values = np.linspace(0, 1, 144).reshape(12, 12)
    got = blockwise(a, a == 1, 5, values)[1]
    assert len(got) == 1
    assert got[0].value_sum / got[0].pixels == pytest.approx(values[2:10, 1:11].mean())
    assert got[0].value_max == pytest.approx(values[2:10, 1:11].max())


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000), h=st.integers(1, 30), w=st.integers(1, 30),
    size=st.integers(1, 12), n=st.integers(2, 4),
)
def test_random_rasters_equal_whole_raster(seed, h, w, size, n):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, size=(h, w)).astype("uint8")
    if seed % 2:  # blobs as well as noise
        a = np.repeat(np.repeat(a[: (h + 2) // 3, : (w + 2) // 3], 3, 0), 3, 1)[:h, :w].copy()
    mask = a != 0
    assert_same(whole(a, mask), blockwise(a, mask, size))


def test_a_scene_wide_background_keeps_every_hole_inside_blocks_and_across_seams():
    """The background spans every block: its outline is unioned and its holes put back, those inside
    a block as they were and those closed across a seam by the union itself."""
    a = np.zeros((60, 60), dtype="uint8")
    for r in range(2, 58, 7):
        for c in range(3, 57, 9):
            a[r:r + 3, c:c + 4] = 1 + (r + c) % 2  # small buildings, many straddling the 8 / 16 px seams
    mask = np.ones_like(a, dtype=bool)
    ref = whole(a, mask)
    assert len(ref[0]) == 1 and len(ref[0][0].interiors) > 40
    for size in (8, 16, 23):
        got = blockwise(a, mask, size)
        assert_same(ref, got)
        assert len(got[0][0].geometry.interiors) == len(ref[0][0].interiors)


def test_polygons_inside_a_block_come_out_with_their_block_not_with_their_row(monkeypatch):
    """A block row's polygons were held until the row ended: 1.4M one- to three-pixel buildings on a 6144 px wide
    raster at --block-size 1024 peaked at 1.9 GB RSS (0.7 GB now). The blocks' own polygons go out once a batch's
    worth are held (here: one); the batches joined keep the order (and the polygons) of one batch per row (QA)."""
    monkeypatch.setattr(polygonize, "BATCH_PIECES", 1)
    a = np.zeros((8, 12), dtype=np.int32)
    a[1::4, 1::4] = 1  # one pixel inside each block (blocks of 4: 3 per row, 2 rows), none on a seam
    a[3:5, 6] = 2  # one across the row seam and ...
    a[6, 3:5] = 2  # ... one across a column seam: finished at their rows' ends
    mask = a > 0

    def read(w):
        sl = (slice(w.row_off, w.row_off + w.height), slice(w.col_off, w.col_off + w.width))
        return a[sl], mask[sl]

    batches = list(polygonize_blocks(a.shape[1], a.shape[0], read, block_size=4))
    blocks = [{(int(p.geometry.bounds[1]) // 4, int(p.geometry.bounds[0]) // 4) for p in b} for b in batches]
    assert blocks[:6] == [{(0, 0)}, {(0, 1)}, {(0, 2)}, {(1, 0)}, {(1, 1)}, {(1, 2)}]
    assert sorted(b for bs in blocks[6:] for b in bs) == [(0, 1), (1, 0)]  # the seams' two, at the row's end
    assert_same(whole(a, mask), blockwise(a, mask, 4))


def test_a_block_of_many_polygons_comes_out_in_batches_of_at_most_batch_pieces(monkeypatch):
    """One block's polygons came out as one batch however many (273k houses of a 1200 px wide raster: 1.24 GB RSS
    while written; 1.03 GB in batches of 50,000). Batches hold at most BATCH_PIECES, joined in the same order (QA)."""
    a = np.zeros((9, 9), dtype=np.int32)
    a[::2, ::2] = 1  # 25 one-pixel polygons in one block
    mask = a > 0

    def read(w):
        sl = (slice(w.row_off, w.row_off + w.height), slice(w.col_off, w.col_off + w.width))
        return a[sl], mask[sl]

    whole_batches = list(polygonize_blocks(9, 9, read, block_size=16))
    monkeypatch.setattr(polygonize, "BATCH_PIECES", 4)
    batches = list(polygonize_blocks(9, 9, read, block_size=16))
    assert len(whole_batches) == 1 and [len(b) for b in batches] == [4] * 6 + [1]
    assert [p.geometry.wkb for b in batches for p in b] == [p.geometry.wkb for p in whole_batches[0]]
