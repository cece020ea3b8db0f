"""Parameter counts (all and thop-style) and thop GFLOPs (MACs, as the papers report) per registered model.

Run: ``.venv/bin/python bench/models.py [--models mambaseg,mambafcs] [--skip-flops]``.

Counts come from building each model on the meta device at its paper preset. GFLOPs need a
real forward pass at the paper's input size (thop hooks modules; the selective scan itself is
not a module, so thop leaves it out, as it did for the papers). The baseline row of the
comparison is the paper's reported number where there is one (ratio ours / reported). Writes
``bench/results/models.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from rsmamba.models import create_model, list_models
from rsmamba.models.catalog import model_rows, paper_preset
from rsmamba.models.params import thop_profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="", help="comma-separated subset (default: all registered)")
    parser.add_argument("--skip-flops", action="store_true", help="counts only (no forward pass)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "models.json"))
    args = parser.parse_args()
    wanted = set(filter(None, args.models.split(","))) or {m.name for m in list_models()}
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results = []
    for row in model_rows(paper=True):
        if row.name not in wanted:
            continue
        preset = paper_preset(row.name)
        entry = {
            "model": row.name, "task": row.task, "inputs": row.inputs,
            "params_all": row.params_all, "params_thop": row.params_thop,
            "reported_params": row.reported_params,
            "reported_style": row.count_style or None,
            "input_shapes": {k: list(v) for k, v in preset.inputs.items()} if preset else None,
        }
        if row.reported_params:
            ours = row.params_thop if row.count_style == "thop" else row.params_all
            entry["params_ratio_vs_reported"] = ours / row.reported_params
        if preset and not args.skip_flops:
            torch.manual_seed(0)
            model = create_model(row.name, **preset.overrides).eval()
            inputs = [torch.randn(shape) for shape in preset.inputs.values()]
            start = time.perf_counter()
            macs, _ = thop_profile(model, inputs)
            entry["gflops_thop"] = macs / 1e9
            entry["forward_s"] = time.perf_counter() - start
            if preset.reported_gflops:
                entry["reported_gflops"] = preset.reported_gflops
                entry["gflops_ratio_vs_reported"] = entry["gflops_thop"] / preset.reported_gflops
            del model
        results.append(entry)

    print(f"{'model':<16}{'params(all)':>13}{'params(thop)':>14}{'reported':>10}{'ratio':>7}{'GFLOPs':>9}{'reported':>10}{'ratio':>7}")
    for e in results:
        fmt = lambda v, spec: format(v, spec) if v is not None else "-"  # noqa: E731
        print(f"{e['model']:<16}{e['params_all'] / 1e6:>12.2f}M{e['params_thop'] / 1e6:>13.2f}M"
              f"{fmt(e['reported_params'] and e['reported_params'] / 1e6, '>9.2f'):>10}"
              f"{fmt(e.get('params_ratio_vs_reported'), '.3f'):>7}{fmt(e.get('gflops_thop'), '.2f'):>9}"
              f"{fmt(e.get('reported_gflops'), '.2f'):>10}{fmt(e.get('gflops_ratio_vs_reported'), '.3f'):>7}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": "cpu", "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
