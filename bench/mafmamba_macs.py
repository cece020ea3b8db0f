"""MAFMamba against its paper's "29.39 M / 56.19 GFLOPs": which counting convention, and what costs what.

Run: ``.venv/bin/python bench/mafmamba_macs.py [--out PATH] [--quick]`` (meta device, about half a minute
on one core; ``--quick``: the paper preset only, a few seconds).

The paper (seed 003) gives no input size or tool for its GFLOPs. Two figures in it fix the
convention, so this script prints them next to our own counts:

* Table 7 lists AfaMamba at 13.01 M and 112.16 GFLOPs. AfaMamba's public code
  (``ChenHongKun95/AfaMamba``, ``models/AfaMamba`` at 35df02f9) ends with a ``thop.profile`` run
  on 1 x 3 x 512 x 512 and its printed result, 28.0397 G and 13.0141 M: 4 x 28.0397 = 112.16, so
  the table's "GFLOPs" are **thop MACs at 1024 x 1024**, the training size of §3.1.
* Table 6 swaps ResNet-18 for ResNet-50 and reports 108.55 G, +52.36 G. The thop MACs of the two
  backbones alone differ by 48.2 G at 1024 x 1024 (92 % of it), by 12.1 G at 512 x 512 (23 %).

Everything is thop on the meta device (``rsmamba.models.params``; the selective scan is not a
module and is not counted, as for the papers). Rows: each module group of the paper preset at
1024 x 1024 (its 512 x 512 count is a quarter); the ``lookahead=False`` option, the leanest
reading of the text (no look-ahead, one VSS block per AMMB) and the ``resnet_depth=50`` option
(Table 6), each in the three conventions the paper's figure could be read in. Writes
``bench/results/mafmamba_macs.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

import torch
import torch.nn as nn
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import RESULTS, machine  # noqa: E402

from rsmamba.models import create_model  # noqa: E402
from rsmamba.models.params import count_parameters, shape_only_scan  # noqa: E402
from rsmamba.models.resnet import ResNet  # noqa: E402

# Typed from the paper (seed 003, §3.4 Tables 5-6 text, §3.5 Table 7 text) and AfaMamba's code comment.
PAPER_PARAMS = 29.39e6
PAPER_GFLOPS = 56.19
PAPER_R50_GFLOPS = 108.55
PAPER_AFAMAMBA = {"params": 13.01e6, "gflops": 112.16}
AFAMAMBA_CODE = {"params_thop": 13.0141e6, "gmacs_512": 28.0397}

DECODER = ("pre_conv", "gl4", "asf3", "gl3", "asf2", "gl2", "asf1", "frh", "segmentation_head")


def _thop(model: nn.Module, inputs: tuple[Tensor, ...]) -> tuple[float, dict]:
    import thop

    with shape_only_scan(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        macs, _, info = thop.profile(model, inputs=inputs, verbose=False, ret_layer_info=True)
    return float(macs), info


class _PlainBackbone(nn.Module):
    """One pass through a ResNet's stem and four stages (what a plain encoder costs)."""

    def __init__(self, net: ResNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        x = self.net.stem(x)
        for stage in self.net.stages():
            x = stage(x)
        return x


def backbone_gmacs(depth: int, size: int) -> float:
    with torch.device("meta"):
        model = _PlainBackbone(ResNet(depth, 3, 64)).eval()
        x = torch.empty(1, 3, size, size)
    return _thop(model, (x,))[0] / 1e9


def breakdown(size: int, **kwargs) -> dict:  # type: ignore[no-untyped-def]
    """GMACs and parameters (M) per module group of ``mafmamba(**kwargs)`` at ``size`` x ``size``."""
    with torch.device("meta"):
        model = create_model("mafmamba", **kwargs).eval()
        x = torch.empty(1, 3, size, size)
    total, info = _thop(model, (x,))
    g = {k: v[0] / 1e9 for k, v in info.items()}
    one_pass = backbone_gmacs(kwargs.get("resnet_depth", 18), size)
    ammb = info["ammb"][2]
    gmacs = {
        "resnet (one pass)": one_pass,
        "look-ahead passes": g["backbone"] - one_pass,
        "AMMB: MSAF": sum(v[2]["msaf"][0] for v in ammb.values()) / 1e9,
        "AMMB: VSSLayer": sum(v[2]["vss"][0] for v in ammb.values()) / 1e9,
        "MSCAF": g["mscaf"],
        "decoder (GLMamba x3, ASF x3, FRH, head)": sum(g[k] for k in DECODER),
    }
    params = {
        "resnet (one pass)": count_parameters(model.backbone),
        "look-ahead passes": 0,
        "AMMB: MSAF": sum(count_parameters(a.msaf) for a in model.ammb),
        "AMMB: VSSLayer": sum(count_parameters(a.vss) for a in model.ammb),
        "MSCAF": count_parameters(model.mscaf),
        "decoder (GLMamba x3, ASF x3, FRH, head)": sum(count_parameters(getattr(model, k)) for k in DECODER),
    }
    assert abs(sum(gmacs.values()) - total / 1e9) < 1e-6, (gmacs, total)
    return {"size": size, "kwargs": kwargs, "gmacs": total / 1e9, "params": count_parameters(model),
            "groups": {k: {"gmacs": gmacs[k], "params_m": params[k] / 1e6} for k in gmacs}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(RESULTS / "mafmamba_macs.json"))
    parser.add_argument("--quick", action="store_true", help="the paper preset only (no options, no 512^2 counts)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    variants = {"paper preset": {}, "lookahead=False": {"lookahead": False},
                "leanest reading": {"lookahead": False, "encoder_depths": (1, 1, 1, 1)},
                "resnet_depth=50": {"resnet_depth": 50}}
    if args.quick:
        variants = {"paper preset": {}}
    rows = {name: breakdown(1024, **kw) for name, kw in variants.items()}
    at512 = {name: breakdown(512, **kw)["gmacs"] for name, kw in variants.items()}
    r18 = {s: backbone_gmacs(18, s) for s in (512, 1024)}
    r50 = {s: backbone_gmacs(50, s) for s in (512, 1024)}

    print(f"MAFMamba paper preset, thop at 1024 x 1024 (paper: {PAPER_PARAMS / 1e6:.2f} M, {PAPER_GFLOPS} G)")
    print(f"{'module group':<42}{'GMACs':>9}{'params':>10}")
    for k, v in rows["paper preset"]["groups"].items():
        print(f"{k:<42}{v['gmacs']:>9.2f}{v['params_m']:>9.2f}M")
    print(f"{'total':<42}{rows['paper preset']['gmacs']:>9.2f}{rows['paper preset']['params'] / 1e6:>9.2f}M")
    print(f"paper's budget after a plain ResNet-18 at 1024^2: {PAPER_GFLOPS - r18[1024]:.2f} G for every other module")

    conventions = {}
    print(f"\n{'variant':<18}{'params':>9}{'MACs@512':>10}{'2xMACs@512':>12}{'MACs@1024':>11}  (paper {PAPER_GFLOPS})")
    for name, row in rows.items():
        c = {"macs_512": at512[name], "2x_macs_512": 2 * at512[name], "macs_1024": row["gmacs"]}
        conventions[name] = {k: {"g": v, "ratio_vs_paper": v / PAPER_GFLOPS} for k, v in c.items()}
        print(f"{name:<18}{row['params'] / 1e6:>8.2f}M" + "".join(f"{v:>{w}.2f}" for v, w in zip(c.values(), (10, 12, 11))))

    evidence = {
        "afamamba_code_gmacs_512_x4": 4 * AFAMAMBA_CODE["gmacs_512"],
        "afamamba_paper_table7_gflops": PAPER_AFAMAMBA["gflops"],
        "paper_r50_minus_r18": PAPER_R50_GFLOPS - PAPER_GFLOPS,
        "resnet50_minus_resnet18_backbone": {str(s): r50[s] - r18[s] for s in (512, 1024)},
        "ours_r50_minus_r18": {"1024": rows["resnet_depth=50"]["gmacs"] - rows["paper preset"]["gmacs"]
                               if "resnet_depth=50" in rows else None},
        "resnet18_backbone": r18, "resnet50_backbone": r50,
    }
    print(f"\nAfaMamba: its code's thop at 512^2 x 4 = {evidence['afamamba_code_gmacs_512_x4']:.2f} G; "
          f"MAFMamba's Table 7 lists {PAPER_AFAMAMBA['gflops']} G")
    print(f"ResNet-50 swap: paper +{evidence['paper_r50_minus_r18']:.2f} G; backbones alone "
          f"+{r50[1024] - r18[1024]:.2f} G at 1024^2, +{r50[512] - r18[512]:.2f} G at 512^2; "
          + (f"ours +{evidence['ours_r50_minus_r18']['1024']:.2f} G at 1024^2" if not args.quick else ""))

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "paper": {"params": PAPER_PARAMS, "gflops": PAPER_GFLOPS,
                                                              "r50_gflops": PAPER_R50_GFLOPS},
                               "variants": rows, "conventions": conventions, "evidence": evidence}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
