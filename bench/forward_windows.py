"""Windows a predict sends through the network per window of its grid, for wide scenes cut into column strips.

    python bench/forward_windows.py

A count, not a timing (deterministic on any machine): for each scene size, window, overlap and batch size,
the windows of the grid, the windows of its 4096 px column strips (those crossing a strip border belong to
both), and the windows the strips' batches forward (``rsmamba.engine.pipeline.grid_batches``). The ratio is
forwarded / grid. Before strips batched their own windows, a strip ran every batch of the whole grid's rows
holding one of its windows: 1.31x at 20000 px with batch 4, 1.69x with batch 8 (``bench/README.md``).
Writes ``bench/results/forward_windows.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from rsmamba.engine.pipeline import grid_batches
from rsmamba.engine.run import plan_strips
from rsmamba.raster.windows import WindowGrid

CASES = [(4096, 512, 128, 4), (4097, 512, 128, 4), (8192, 512, 128, 4), (20000, 512, 128, 4),
         (20000, 512, 128, 8), (20000, 256, 64, 4), (20000, 128, 32, 4)]
STRIP_WIDTH = 4096  # predict's default (rsmamba.engine.run)


def main() -> None:
    rows = []
    print(f"{'scene':>12} {'window':>8} {'batch':>5} {'grid':>7} {'in strips':>9} {'forwarded':>9} {'ratio':>6}")
    for size, window, overlap, batch in CASES:
        grid = WindowGrid(size, size, window, overlap)
        strips = plan_strips(grid, size, STRIP_WIDTH)
        batches = [(b, f) for s in strips for b, f in grid_batches(grid, s, batch)]
        row = {"scene_px": size, "window": window, "overlap": overlap, "batch_size": batch,
               "grid_windows": len(grid.row_offsets) * len(grid.col_offsets),
               "strip_windows": sum(sum(f) for _, f in batches), "forwarded_windows": sum(len(b) for b, _ in batches)}
        row["ratio"] = round(row["forwarded_windows"] / row["grid_windows"], 3)
        rows.append(row)
        print(f"{size:>6} x {size:<5} {window:>4}/{overlap:<3} {batch:>5} {row['grid_windows']:>7} "
              f"{row['strip_windows']:>9} {row['forwarded_windows']:>9} {row['ratio']:>6.3f}")
    out = Path(__file__).parent / "results" / "forward_windows.json"
    out.write_text(json.dumps({"strip_width": STRIP_WIDTH, "cases": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
