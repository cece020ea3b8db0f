"""Parameter counts (all and thop-style) and thop GFLOPs (MACs, as the papers report) per registered model.

Run: ``.venv/bin/python bench/models.py [--models mambaseg,mambafcs] [--skip-flops]``.

Counts come from building each model on the meta device at its paper preset. GMACs are thop's
at the paper's input size, counted on meta tensors (``rsmamba.models.params.thop_macs_meta``:
thop computes from shapes, the selective scan is not a module and is left out, as it was for
the papers; equal to a real CPU run, see tests/models/test_model_structure.py). ``gflops_2x`` is
2 x MACs, the other convention papers call FLOPs. The baseline row of the comparison is the
paper's reported number where there is one (ratio ours / reported); where a paper gives none,
``code_params`` is the count of the authors' code (ratio ours / that). ``--variants`` adds the
structural options (MAFMamba without look-ahead, CMT-UNet as the authors' code, FMTUNet as
the authors' code). Writes ``bench/results/models.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from rsmamba.models import create_model, list_models
from rsmamba.models.listing import model_rows
from rsmamba.models.registry import paper_preset
from rsmamba.models.params import count_parameters, count_parameters_thop_style, thop_macs_meta


# Structural options worth a row of their own: (row name, preset, overrides on top of the paper preset).
VARIANTS = [
    ("mafmamba[lookahead=False]", "mafmamba", dict(lookahead=False)),
    ("mafmamba[resnet_depth=50]", "mafmamba", dict(resnet_depth=50)),
    ("cmtunet[seed: msaa,rcm,db4]", "cmtunet", dict(msaa=True, rcm=True, wavelet="db4")),
    ("fmtunet[authors: pad0,grid]", "fmtunet", dict(stem_pool_padding=0, deformable_grid="authors")),
]


def _variant(name: str, preset_name: str, overrides: dict, flops: bool) -> dict:
    preset = paper_preset(preset_name)
    kwargs = {**preset.overrides, **overrides}
    with torch.device("meta"):
        model = create_model(preset_name, **kwargs)
    entry = {"model": name, "params_all": count_parameters(model), "params_thop": count_parameters_thop_style(model),
             "reported_params": None, "overrides": {k: v for k, v in kwargs.items() if not isinstance(v, tuple)}}
    if flops:
        macs = thop_macs_meta(lambda: create_model(preset_name, **kwargs), list(preset.inputs.values()))
        entry["gflops_thop"], entry["gflops_2x"] = macs / 1e9, 2 * macs / 1e9
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="", help="comma-separated subset (default: all registered)")
    parser.add_argument("--skip-flops", action="store_true", help="counts only (no forward pass)")
    parser.add_argument("--variants", action="store_true", help="also count the structural options")
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
            "reported_style": (row.count_style or None) if row.reported_params else None,
            "code_params": row.code_params,
            "input_shapes": {k: list(v) for k, v in preset.inputs.items()} if preset else None,
        }
        if row.reported_params:
            ours = row.params_thop if row.count_style == "thop" else row.params_all
            entry["params_ratio_vs_reported"] = ours / row.reported_params
        if row.code_params:  # the authors' code counts every parameter
            entry["params_ratio_vs_code"] = row.params_all / row.code_params
        if preset and not args.skip_flops:
            start = time.perf_counter()
            macs = thop_macs_meta(lambda: create_model(row.name, **preset.overrides), list(preset.inputs.values()))
            entry["gflops_thop"] = macs / 1e9
            entry["gflops_2x"] = 2 * macs / 1e9
            entry["count_s"] = time.perf_counter() - start
            if preset.reported_gflops:
                entry["reported_gflops"] = preset.reported_gflops
                entry["gflops_ratio_vs_reported"] = entry["gflops_thop"] / preset.reported_gflops
                entry["gflops_2x_ratio_vs_reported"] = entry["gflops_2x"] / preset.reported_gflops
        results.append(entry)
    if args.variants:
        results += [_variant(name, preset_name, kw, not args.skip_flops) for name, preset_name, kw in VARIANTS
                    if preset_name in wanted]

    print(f"{'model':<30}{'params(all)':>13}{'thop-style':>14}{'reported':>10}{'ratio':>7}{'GMACs':>9}{'reported':>10}"
          f"{'ratio':>7}{'2xMACs':>9}{'ratio':>7}")
    for e in results:
        fmt = lambda v, spec: format(v, spec) if v is not None else "-"  # noqa: E731
        print(f"{e['model']:<30}{e['params_all'] / 1e6:>12.2f}M{e['params_thop'] / 1e6:>13.2f}M"
              f"{fmt(e['reported_params'] and e['reported_params'] / 1e6, '>9.2f'):>10}"
              f"{fmt(e.get('params_ratio_vs_reported'), '.3f'):>7}{fmt(e.get('gflops_thop'), '.2f'):>9}"
              f"{fmt(e.get('reported_gflops'), '.2f'):>10}{fmt(e.get('gflops_ratio_vs_reported'), '.3f'):>7}"
              f"{fmt(e.get('gflops_2x'), '.2f'):>9}{fmt(e.get('gflops_2x_ratio_vs_reported'), '.3f'):>7}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": "cpu", "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
