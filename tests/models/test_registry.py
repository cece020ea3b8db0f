"""Registry, counting helpers and the ``rsmamba models`` verb."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from rsmamba.cli import main
from rsmamba.errors import InputError
from rsmamba.models.ss2d import LayerNorm2d, Linear2d
from rsmamba.models import create_model, list_models, model_info
from rsmamba.models.listing import ModelRow, format_rows, model_rows
from rsmamba.models.registry import paper_preset
from rsmamba.models.params import count_parameters, count_parameters_thop_style, profile_model

OURS = {"mambaseg": ("segmentation", "image+dsm"), "mambaseg_tiny": ("segmentation", "image+dsm"),
        "mambafcs": ("semantic-change", "t1+t2"), "mambafcs_tiny": ("semantic-change", "t1+t2")}


def test_our_models_are_registered_with_their_conventions():
    names = {info.name for info in list_models()}
    assert set(OURS) <= names
    for name, (task, inputs) in OURS.items():
        info = model_info(name)
        assert (info.task, info.inputs) == (task, inputs)


def test_create_model_overrides_and_unknown_name():
    with torch.device("meta"):
        model = create_model("mambaseg_tiny", in_chans=7, num_classes=9)
    assert model.encoder_img.patch_embed[0].in_channels == 7
    assert model.decoder.linear_pred.out_channels == 9
    with pytest.raises(InputError, match="unknown model"):
        create_model("no_such_model")


def test_thop_style_count_skips_subclasses_and_raw_parameters():
    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.raw = nn.Parameter(torch.zeros(5))
            self.lin = nn.Linear(2, 3)  # 9 counted
            self.lin2d = Linear2d(2, 3)  # skipped (subclass)
            self.ln2d = LayerNorm2d(3)  # skipped (subclass)
            self.conv = nn.Conv2d(3, 1, 1)  # 4 counted

        def forward(self, x):
            return self.conv(self.ln2d(self.lin2d(x))) + self.lin(x.mean((2, 3)))[:, :1, None, None]

    m = Holder()
    assert count_parameters(m) == 5 + 9 + 9 + 6 + 4
    assert count_parameters_thop_style(m) == 9 + 4
    counts = profile_model(m, [torch.randn(1, 2, 3, 3)])  # thop itself agrees
    assert counts.params_thop == 13 and counts.params_all == 33 and counts.macs_thop > 0


def test_a_subclass_standing_for_a_plain_layer_counts_as_that_layer():
    """CMT-UNet's WTConv convs subclass nn.Conv2d only to pad explicitly (thop_type): thop counted the
    authors' plain nn.Conv2d, so ours count the same, in parameters and MACs (README: 152.17 M, 34.79 G)."""
    from rsmamba.models import create_model
    from rsmamba.models.params import thop_macs_meta

    class Same(nn.Conv2d):
        thop_type = nn.Conv2d

    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = Same(3, 1, 1)  # 4 counted

        def forward(self, x):
            return self.conv(x)

    assert count_parameters_thop_style(Holder()) == 4
    assert profile_model(Holder(), [torch.randn(1, 3, 4, 4)]).params_thop == 4
    with torch.device("meta"):
        cmt = create_model("cmtunet")
    assert round(count_parameters_thop_style(cmt) / 1e6, 2) == 152.17  # the seed structure (MSAA, RCM, db4)
    assert round(thop_macs_meta(lambda: create_model("cmtunet"), [(1, 3, 256, 256)]) / 1e9, 2) == 34.79


def test_models_verb_lists_counts(capsys, monkeypatch):
    import rsmamba.models.listing as catalog

    full = catalog.model_rows  # only our models here: the others' presets are their tests' business
    monkeypatch.setattr(catalog, "model_rows", lambda paper=False: full(paper, names=OURS))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in OURS:
        assert name in out
    assert "image+dsm" in out and "t1+t2" in out


def test_models_params_uses_paper_presets():
    rows = {r.name: r for r in model_rows(paper=True, names=OURS)}
    seg = rows["mambaseg"]
    assert abs(seg.params_thop - 25.44e6) / 25.44e6 < 0.03
    assert seg.reported_params == pytest.approx(25.44e6)
    assert paper_preset("mambaseg").overrides["img_size"] == (200, 346)
    assert "25.44M" in format_rows([seg])


def test_model_table_columns_line_up_whatever_the_name_length():
    rows = [ModelRow("a", "segmentation", "image", "p", 1, 1),
            ModelRow("siam_diff_baseline_with_a_long_name", "semantic-change", "t1+t2", "q", 2, 2)]
    header, _, *lines = format_rows(rows).splitlines()
    assert {line.index(task) for line, task in zip(lines, ("segmentation", "semantic-change"))} == {header.index("task")}


def test_thop_style_counts_are_the_same_with_and_without_thop(monkeypatch) -> None:
    """Without thop (a plain install) the fallback rules counted GroupNorm, which thop has no rule for:
    FMTUNet read 249.54 M there against the documented 249.46 M."""
    import builtins

    layers = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.BatchNorm2d(4), nn.LSTM(4, 3),
                           nn.Linear(3, 2), nn.LayerNorm(2))
    with_thop = count_parameters_thop_style(layers)
    real_import = builtins.__import__

    def no_thop(name, *args, **kwargs):
        if name.startswith("thop"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_thop)
    assert count_parameters_thop_style(layers) == with_thop
    assert with_thop == sum(p.numel() for m in layers if not isinstance(m, nn.GroupNorm) for p in m.parameters())


@pytest.mark.parametrize("name, kwarg, value, said", [
    ("mafmamba_tiny", "encoder_depths", [1, 1], "encoder_depths takes 4 values, one per stage"),
    ("mafmamba_tiny", "encoder_depths", 3, "encoder_depths takes 4 values"),
    ("mafmamba_tiny", "weight_channels", 0, "weight_channels must be a whole number of at least 1"),
    ("cmtunet_tiny", "vss_depths", [1, 1], "vss_depths takes 4 values"),
    ("cmtunet_tiny", "vss_dims", [8, 16, 32], "vss_dims takes 4 values"),
    ("fmtunet_tiny", "layers", [1, 1], r"layers takes 3 values, one per GMM group"),
    ("fmtunet_tiny", "units", [1, 1, 1, 1], "units takes 3 values"),
    ("fmtunet_tiny", "decoder_channels", [8, 8], "decoder_channels takes 4 values"),
    ("mambafcs_tiny", "depths", [1, 1], "depths takes 4 values"),
    ("mambaseg_tiny", "depths", [1, 1, 1], "depths takes 4 values"),
    ("mambaseg_tiny", "dims", [16, 24], "dims takes 4 values"),
])
def test_wrong_length_stage_lists_are_refused_by_the_constructor(name, kwarg, value, said) -> None:
    """They failed deep inside the model instead: an IndexError, or a channel mismatch at the first forward."""
    with torch.device("meta"), pytest.raises(ValueError, match=said):
        create_model(name, **{kwarg: value})


def test_paper_column_holds_only_the_papers_own_counts() -> None:
    """CMT-UNet's and FMTUNet's papers give no parameter count: the column showed their authors' code's
    (135.46M, 273.69M) as paper counts, where Mamba-FCS, in the same case, showed '-'."""
    from pathlib import Path

    rows = {r.name: r for r in model_rows(paper=True, names=("cmtunet", "fmtunet", "mambafcs", "mambaseg"))}
    root = Path(__file__).resolve().parents[2]  # the texts as one line each: they wrap anywhere
    docs, readme = (" ".join((root / f).read_text().split()) for f in ("docs/models.md", "README.md"))
    for name in ("cmtunet", "fmtunet", "mambafcs"):
        row = rows[name]
        assert row.reported_params is None and row.code_params, name
        line = format_rows([row]).splitlines()[-1]
        code = f"{row.code_params / 1e6:.2f}"
        assert line.split()[5] == "-" and f"[paper gives none; the authors' code holds {code}M]" in line, line
        assert f"none given ({code} M by the authors' code" in docs and f"none given ({code} M by the authors' code" in readme
    assert rows["mambaseg"].reported_params and "[paper counted thop-style]" in format_rows([rows["mambaseg"]])


def test_thop_style_counts_modules_that_never_run_and_the_docs_say_so() -> None:
    """thop.profile counts only the modules whose forward ran: Mamba-FCS's unused cross-attention and
    FMTUNet's functionally applied dt_proj are in the thop-style count, not in thop's (the docs called the
    thop-style count 'what thop.profile counts')."""
    from pathlib import Path

    from rsmamba.models.params import thop_profile_meta

    root = Path(__file__).resolve().parents[2]
    docs, readme = (" ".join((root / f).read_text().split()) for f in ("docs/models.md", "README.md"))
    for name, shapes in (("mambafcs", [(1, 3, 64, 64)] * 2), ("fmtunet", [(1, 3, 64, 64), (1, 1, 64, 64)])):
        with torch.device("meta"):
            style = count_parameters_thop_style(create_model(name))
        _, thop_params = thop_profile_meta(lambda: create_model(name), shapes)
        assert thop_params < style, name
        said = f"{thop_params / 1e6:.2f} M"
        assert said in docs and said in readme, said
    assert "what `thop.profile` counts" not in docs + readme
