"""``rsmamba import-weights``: the authors' full-model weights, in their containers and names, become a
checkpoint that predict-side loading runs as the authors' network (tiny variants of the five recipes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from rsmamba.checkpoint import build_from_checkpoint, load_checkpoint
from rsmamba.cli import main
from rsmamba.errors import InputError
from rsmamba.models import create_model
from rsmamba.train.authors import import_weights
from rsmamba.train.trainer import segment

DEMO = Path(__file__).resolve().parents[2] / "rsmamba" / "data" / "demo_model.pt"


def as_authors_cmtunet(state: dict) -> dict:
    """A CMT-UNet state in the authors' channel order: their patch merging concatenates pytorch_wavelets' Haar bands
    (LL, along H, along W, HH; tests/models/test_cmtunet.py), ours (LL, along W, along H, HH)."""
    out = dict(state)
    for k, t in state.items():
        if ".downsamples." in k and k.endswith((".norm.weight", ".norm.bias", ".reduction.weight")):
            out[k] = t.reshape(*t.shape[:-1], 4, t.shape[-1] // 4)[..., [0, 2, 1, 3], :].reshape(t.shape).clone()
    return out


def authors_file(path: Path, model: torch.nn.Module, container: str = "bare", prefix: str = "",
                 order=lambda state: state) -> Path:
    """``model``'s weights saved as the authors' scripts save theirs: ``bare`` (FMTUNet, Mamba-FCS),
    ``state_dict`` (MambaSeg's trainer, a Lightning .ckpt), ``model``; names under ``prefix``; ``order``: their
    layout of tensors whose channels ours holds otherwise."""
    state = {prefix + k: v for k, v in order(model.state_dict()).items()}
    data = {"bare": state, "state_dict": {"epoch": 3, "state_dict": state},
            "lightning": {"epoch": 3, "global_step": 9, "state_dict": state, "pytorch-lightning_version": "2.1"},
            "model": {"model": state, "epoch": 3}}[container]
    torch.save(data, path)
    return path


# (recipe, tiny source network as the authors' code builds it, container, prefix, extra --set, dsm stats, size)
CASES = {
    "fmtunet": ("fmtunet_vaihingen", lambda: create_model("fmtunet_tiny", stem_pool_padding=0,
                                                          deformable_grid="authors"), "bare", "", [], None, 32),
    "cmtunet": ("cmtunet_vaihingen", lambda: create_model("cmtunet_tiny", msaa=False, rcm=False, wavelet="haar"),
                "lightning", "net.", ["data.mean=[0,0,0]", "data.std=[255,255,255]"], None, 32),
    "mafmamba": ("mafmamba_vaihingen", lambda: create_model("mafmamba_tiny"), "model", "module.",
                 ["data.mean=[123.675,116.28,103.53]", "data.std=[58.395,57.12,57.375]"], None, 32),
    "mambaseg": ("mambaseg_vaihingen", lambda: create_model("mambaseg_tiny"), "state_dict", "module.",
                 ["data.mean=[100,100,100]", "data.std=[50,50,50]"], (250.0, 20.0), 32),
}


@pytest.mark.parametrize("family", sorted(CASES))
def test_authors_weights_of_each_segmentation_recipe_run_as_their_network(tmp_path: Path, family: str) -> None:
    recipe, build, container, prefix, sets, dsm_stats, size = CASES[family]
    torch.manual_seed(0)
    src = build().eval()
    weights = authors_file(tmp_path / "authors.pth", src, container, prefix,
                           order=as_authors_cmtunet if family == "cmtunet" else (lambda state: state))
    report = import_weights(weights, recipe, tmp_path / "model.pt", [f"model.name={family}_tiny", *sets],
                            dsm_stats=dsm_stats)
    assert report.tensors == len(src.state_dict())
    assert (prefix and f"prefix '{prefix}' removed" in report.renamed) or (not prefix and not report.renamed)
    ckpt, info, model = build_from_checkpoint(tmp_path / "model.pt", ("segmentation",), "predict")
    assert [c["name"] for c in ckpt["classes"]][:2] == ["impervious", "building"]
    assert ckpt["bands"]["dsm"] == (info.inputs == "image+dsm")
    if dsm_stats:
        assert (ckpt["normalization"]["dsm"]["mean"], ckpt["normalization"]["dsm"]["std"]) == dsm_stats
    x = torch.randn(1, 3 + ckpt["bands"]["dsm"], size, size)
    with torch.no_grad():
        assert torch.equal(segment(model.eval(), x, info.inputs), segment(src, x, info.inputs))


def test_mambafcs_seven_row_head_is_kept_and_its_unchanged_row_dropped(tmp_path: Path, capsys) -> None:
    """The authors' SECOND head has 7 outputs, row 0 'background' (never a target); the recipe's 6 classes
    are their rows 1..6, and their change head and structure (change -> semantic CGA only) come through."""
    torch.manual_seed(0)
    src = create_model("mambafcs_tiny", num_classes=7, cga="change_to_semantic").eval()
    weights = authors_file(tmp_path / "authors.pth", src, "bare", "module.")
    assert main(["import-weights", str(weights), "-c", "mambafcs_second", "--set", "model.name=mambafcs_tiny",
                 "-o", str(tmp_path / "model.pt")]) == 0
    out = capsys.readouterr().out
    assert "prefix 'module.' removed" in out and "cga='change_to_semantic'" in out and "row 0" in out
    ckpt, _, model = build_from_checkpoint(tmp_path / "model.pt", ("semantic-change",), "change")
    assert len(ckpt["classes"]) == 6 and ckpt["normalization"]["image"]["mean"] == [123.675, 116.28, 103.53]
    t1, t2 = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ours, theirs = model.eval()(t1, t2), src(t1, t2)
    assert torch.equal(ours["change"], theirs["change"])
    for key in ("sem1", "sem2"):
        assert torch.equal(ours[key], theirs[key][:, 1:])
        land = theirs[key].argmax(1) > 0  # where their argmax is a land-cover class, ours is the same one
        assert torch.equal(ours[key].argmax(1)[land] + 1, theirs[key].argmax(1)[land])


def _fails(tmp_path: Path, capsys, argv: list[str], *words: str) -> None:
    assert main(["import-weights", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def test_refusals_are_one_line_and_write_nothing(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    src = create_model("mafmamba_tiny").eval()
    weights = authors_file(tmp_path / "authors.pth", src)
    out = tmp_path / "model.pt"
    tiny = ["--set", "model.name=mafmamba_tiny"]
    stats = ["--set", "data.mean=[0,0,0]", "--set", "data.std=[1,1,1]"]
    # the recipe's own statistics are the training data's: required, not guessed
    _fails(tmp_path, capsys, [str(weights), "-c", "mafmamba_vaihingen", *tiny, "-o", str(out)], "data.mean")
    # another recipe's model, and the classes of another dataset (LoveDA's 7): the first tensors that differ
    _fails(tmp_path, capsys, [str(weights), "-c", "cmtunet_vaihingen", "--set", "model.name=cmtunet_tiny", *stats,
                              "-o", str(out)], "do not fit", "missing")
    _fails(tmp_path, capsys, [str(weights), "-c", "mafmamba_loveda", *tiny, "-o", str(out)], "other shapes")
    # MambaSeg z-scores the DSM by the training data's statistics
    seg = authors_file(tmp_path / "seg.pth", create_model("mambaseg_tiny"))
    _fails(tmp_path, capsys, [str(seg), "-c", "mambaseg_vaihingen", "--set", "model.name=mambaseg_tiny", *stats,
                              "-o", str(out)], "--dsm-stats")
    for bad in ("100,0", "100,-2"):  # std 0 was read as 1 (heights unscaled), -2 flipped every height: exit 0
        _fails(tmp_path, capsys, [str(seg), "-c", "mambaseg_vaihingen", "--set", "model.name=mambaseg_tiny", *stats,
                                  "--dsm-stats", bad, "-o", str(out)], f"--dsm-stats {bad}: the DSM's std must be > 0")
    # --dsm-stats for a recipe whose DSM is not z-scored (or that has none): refused by name, not ignored
    _fails(tmp_path, capsys, [str(weights), "-c", "mafmamba_vaihingen", *tiny, *stats, "--dsm-stats", "100,5",
                              "-o", str(out)], "--dsm-stats: the recipe")
    # NaN weights: a diverged run's
    state = src.state_dict()
    state["head.weight" if "head.weight" in state else next(k for k, v in state.items() if v.is_floating_point())] \
        .view(-1)[0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    _fails(tmp_path, capsys, [str(tmp_path / "nan.pth"), "-c", "mafmamba_vaihingen", *tiny, *stats, "-o", str(out)],
           "NaN")
    # a pickle that would run code when loaded
    class Payload:
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"state_dict": Payload()}, tmp_path / "evil.pth")
    _fails(tmp_path, capsys, [str(tmp_path / "evil.pth"), "-c", "mafmamba_vaihingen", *tiny, *stats, "-o", str(out)],
           "could run code")
    # an rsmamba checkpoint: nothing to import
    _fails(tmp_path, capsys, [str(DEMO), "-c", "cmtunet_vaihingen", *stats, "-o", str(out)],
           "already an rsmamba checkpoint")
    # a file holding no state dict
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "none.pth")
    _fails(tmp_path, capsys, [str(tmp_path / "none.pth"), "-c", "mafmamba_vaihingen", *stats, "-o", str(out)],
           "no state dict")
    # weights beside a counter, and an empty dict: which entry is not a tensor ('it holds' listed tensor names)
    torch.save({**src.state_dict(), "step": 5}, tmp_path / "step.pth")
    _fails(tmp_path, capsys, [str(tmp_path / "step.pth"), "-c", "mafmamba_vaihingen", *tiny, *stats, "-o", str(out)],
           "tensors and 1 other value: step (int)")
    torch.save({}, tmp_path / "empty.pth")
    _fails(tmp_path, capsys, [str(tmp_path / "empty.pth"), "-c", "mafmamba_vaihingen", *tiny, *stats, "-o", str(out)],
           "(an empty dict)")
    # float weights stored as integers: loaded, cast, and an all-zero change map (exit 0)
    torch.save({k: v.long() for k, v in src.state_dict().items()}, tmp_path / "ints.pth")
    _fails(tmp_path, capsys, [str(tmp_path / "ints.pth"), "-c", "mafmamba_vaihingen", *tiny, *stats, "-o", str(out)],
           "not floating point (checkpoint vs model: ")
    # tensors without values (a model built on the meta device): a traceback
    torch.save({k: v.to("meta") for k, v in src.state_dict().items()}, tmp_path / "meta.pth")
    _fails(tmp_path, capsys, [str(tmp_path / "meta.pth"), "-c", "mafmamba_vaihingen", *tiny, *stats, "-o", str(out)],
           "hold no values (meta device")
    # another class count than the recipe's: a checkpoint that predict and change refuse was written
    _fails(tmp_path, capsys, [str(weights), "-c", "mafmamba_vaihingen", *tiny, *stats, "--set",
                              "model.kwargs.num_classes=7", "-o", str(out)], "model.kwargs.num_classes 7: the recipe's")
    assert not out.exists()
    # never over the input
    _fails(tmp_path, capsys, [str(weights), "-c", "mafmamba_vaihingen", *tiny, *stats, "-o", str(weights),
                              "--overwrite"], "input")
    assert torch.load(weights, weights_only=True).keys() == src.state_dict().keys()


def test_imported_checkpoint_is_an_init_for_its_recipe(tmp_path: Path) -> None:
    """train --init takes the checkpoint's structure options (the kept 7-row head among them): every tensor loads."""
    from rsmamba.train.init import init_from_checkpoint

    torch.manual_seed(0)
    src = create_model("mambafcs_tiny", num_classes=7, cga="change_to_semantic")
    import_weights(authors_file(tmp_path / "a.pth", src), "mambafcs_second", tmp_path / "m.pt",
                   ["model.name=mambafcs_tiny"])
    kwargs = load_checkpoint(tmp_path / "m.pt")["model_kwargs"]  # what train --init takes for the same model
    model = create_model("mambafcs_tiny", **{**kwargs, "num_classes": 6})
    report = init_from_checkpoint(model, tmp_path / "m.pt", image_bands=3, dsm=False, num_classes=6)
    assert not report.left_random and not report.unused and not report.reinitialised
    assert len(report.loaded) == len(src.state_dict())


def test_import_weights_refuses_a_chips_config(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("data: {root: chips}\nmodel: {name: cmtunet_tiny}\n")
    with pytest.raises(InputError, match="benchmark recipe"):
        import_weights(DEMO, cfg, tmp_path / "m.pt")


def test_the_recipe_file_is_an_input_never_written_over(tmp_path: Path, capsys) -> None:
    """-o RECIPE.yaml --overwrite replaced the user's recipe with the checkpoint (exit 0): only the weights were
    passed as an input to the output check."""
    import shutil

    recipe = tmp_path / "recipe.yaml"
    shutil.copy(Path(__file__).resolve().parents[2] / "rsmamba" / "data" / "configs" / "mambafcs_second.yaml", recipe)
    text = recipe.read_text()
    weights = tmp_path / "w.pth"
    torch.save({"a": torch.zeros(1)}, weights)
    _fails(tmp_path, capsys, [str(weights), "-c", str(recipe), "--set", "model.name=mambafcs_tiny", "-o",
                              str(recipe), "--overwrite"], f"output {recipe}: is the input {recipe}")
    assert recipe.read_text() == text


def _weights_like(path: Path, kind: str) -> Path:
    """A file given as the weights that holds none, as users give them."""
    import os
    import pickle
    import zipfile

    good = tmp = path.with_suffix(".good")
    torch.save({"a": torch.zeros(64)}, tmp)
    if kind == "folder":
        path.mkdir()
    elif kind == "pipe":
        os.mkfifo(path)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("hello this is text\n" * 10)
    elif kind == "web page":
        path.write_text("<!DOCTYPE html><html><body>Sign in to continue</body></html>")
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "other zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("readme.txt", "hi")
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"a": [1, 2]}, protocol=4))
    return path


@pytest.mark.parametrize("kind, said", [
    ("folder", "is a directory, not a file"),
    ("pipe", "not a regular file (a named pipe"),
    ("empty", "empty file (0 bytes)"),
    ("text", "not a PyTorch or safetensors file (text: 'hello this is text"),
    ("web page", "file (text: '<!DOCTYPE html><html><body>Sign in to co') (a web page saved in its place?)"),
    ("truncated", "a damaged or truncated zip archive"),
    ("other zip", "a zip archive, not a PyTorch file (no data.pkl in it; it holds readme.txt)"),
    ("pickle", "a plain Python pickle (pickle.dump's), not a torch.save or safetensors file"),
])
def test_a_file_that_holds_no_weights_is_said_in_words(tmp_path: Path, capsys, kind: str, said: str) -> None:
    """A folder or a pipe was 'file not found (no downloads at run time)'; the others named only a Python
    exception: KeyError (text), RuntimeError (a truncated or foreign zip), EOFError (empty)."""
    from rsmamba.models.weights import load_weights_file

    weights = _weights_like(tmp_path / "authors.pth", kind)
    _fails(tmp_path, capsys, [str(weights), "-c", "mambafcs_second", "--set", "model.name=mambafcs_tiny", "-o",
                              str(tmp_path / "m.pt")], f"weights {weights}: ", said)
    with pytest.raises(InputError, match=re.escape(said)):  # (predict --model, train --init read it as well)
        load_weights_file(weights, "weights")


def test_batchnorm_counters_the_file_lacks_are_filled_and_nothing_else(tmp_path: Path, capsys) -> None:
    """Weights without BatchNorm num_batches_tracked (an older save, a converted checkpoint), which PyTorch's own
    strict load_state_dict accepts, were refused ('78 missing (...num_batches_tracked...)')."""
    torch.manual_seed(0)
    src = create_model("mafmamba_tiny").eval()
    counters = [k for k in src.state_dict() if k.endswith("num_batches_tracked")]
    assert counters
    state = {k: v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pth")
    sets = ["model.name=mafmamba_tiny", "data.mean=[0,0,0]", "data.std=[1,1,1]"]
    report = import_weights(tmp_path / "old.pth", "mafmamba_vaihingen", tmp_path / "m.pt", sets)
    assert report.filled == len(counters) and report.tensors == len(state)
    assert f"filled: {len(counters)} BatchNorm num_batches_tracked counters the file lacks" in report.describe()
    ckpt, info, model = build_from_checkpoint(tmp_path / "m.pt", ("segmentation",), "predict")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(segment(model.eval(), x, info.inputs), segment(src, x, info.inputs))
    state.pop(next(k for k in state if k.endswith("running_mean")))  # any other BatchNorm tensor: still strict
    torch.save(state, tmp_path / "less.pth")
    with pytest.raises(InputError, match=r"1 missing \(.*running_mean\)"):
        import_weights(tmp_path / "less.pth", "mafmamba_vaihingen", tmp_path / "m2.pt", sets)


def test_weights_in_another_precision_are_stored_as_train_stores_them_and_said(tmp_path: Path) -> None:
    """Half and double weights were written as given, unsaid (train's checkpoints hold float32): cast to the
    model's float32 and said; a double beyond float32's range is refused, not written as inf."""
    torch.manual_seed(0)
    src = create_model("mafmamba_tiny").eval()
    sets = ["model.name=mafmamba_tiny", "data.mean=[0,0,0]", "data.std=[1,1,1]"]
    floats = sum(v.is_floating_point() for v in src.state_dict().values())
    for dtype, name in ((torch.float16, "float16"), (torch.float64, "float64")):
        torch.save({k: v.to(dtype) if v.is_floating_point() else v for k, v in src.state_dict().items()},
                   tmp_path / f"{name}.pth")
        report = import_weights(tmp_path / f"{name}.pth", "mafmamba_vaihingen", tmp_path / f"{name}.pt", sets)
        assert report.converted == {f"{name} to float32": floats}
        assert f"converted: {floats} {name} tensors to float32" in report.describe()
        state = load_checkpoint(tmp_path / f"{name}.pt")["state_dict"]
        assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float32}
    big = {k: v.double() if v.is_floating_point() else v for k, v in src.state_dict().items()}
    first = next(k for k, v in big.items() if v.is_floating_point())
    big[first].view(-1)[0] = 1e300
    torch.save(big, tmp_path / "big.pth")
    with pytest.raises(InputError, match=re.escape(f"1 tensor holds values beyond the model's float32 range ({first}")):
        import_weights(tmp_path / "big.pth", "mafmamba_vaihingen", tmp_path / "big.pt", sets)
    assert not (tmp_path / "big.pt").exists()


def test_imported_checkpoints_record_the_benchmarks_band_colours(tmp_path: Path) -> None:
    """import-weights recorded no band colours (a train run of the same recipe records them): the authors' Vaihingen
    (NIR, R, G) weights ran on an RGB ortho without a word. Now their colours as published, and what ISPRS's tiles
    declare (red, green, blue), as a run records them from its first tile."""
    torch.manual_seed(0)
    sets = ["model.name=mafmamba_tiny", "data.mean=[0,0,0]", "data.std=[1,1,1]"]
    import_weights(authors_file(tmp_path / "a.pth", create_model("mafmamba_tiny")), "mafmamba_vaihingen",
                   tmp_path / "vai.pt", sets)
    bands = load_checkpoint(tmp_path / "vai.pt")["bands"]
    assert bands["colours"] == ["nir", "red", "green"] and bands["declared"] == ["red", "green", "blue"]
    src = create_model("mambafcs_tiny", num_classes=7, cga="change_to_semantic")
    import_weights(authors_file(tmp_path / "b.pth", src), "mambafcs_second", tmp_path / "second.pt",
                   ["model.name=mambafcs_tiny"])
    bands = load_checkpoint(tmp_path / "second.pt")["bands"]
    assert bands["colours"] == ["red", "green", "blue"] and "declared" not in bands


@pytest.mark.parametrize("family, recipe", [
    ("fmtunet", "mambafcs_second"), ("cmtunet", "mambafcs_second"), ("mafmamba", "fmtunet_vaihingen"),
    ("mambaseg", "fmtunet_vaihingen"), ("mambafcs", "cmtunet_vaihingen"),
])
def test_weights_of_another_family_are_named_as_theirs(tmp_path: Path, capsys, family: str, recipe: str) -> None:
    """One family's weights given with another's recipe were refused with only counts and names of missing and
    unexpected tensors, which leave the user to guess; the error now names the family whose names the file has,
    and its recipes (the counters filled for the recipe's model are not taken for the file's names)."""
    kwargs = {"num_classes": 7} if family == "mambafcs" else {}
    weights = authors_file(tmp_path / "a.pth", create_model(f"{family}_tiny", **kwargs), "bare", "module.")
    sets = ["--set", "data.mean=[0,0,0]", "--set", "data.std=[1,1,1]"] if recipe.startswith("cmtunet") else []
    _fails(tmp_path, capsys, [str(weights), "-c", recipe, *sets, "-o", str(tmp_path / "m.pt")], "do not fit",
           f"the file's names are those of model '{family}', not '{recipe.split('_')[0]}': import it with its "
           f"recipe ({family}_")
    assert not (tmp_path / "m.pt").exists()


def test_ema_weights_beside_the_model_are_said_and_an_ema_only_file_is_imported(tmp_path: Path) -> None:
    """A file holding the model and its EMA copy ({"model", "model_ema"}, timm's {"state_dict", "state_dict_ema"})
    was imported from the first without a word about the second, which may be the set the authors' numbers came
    from; and a file holding only the EMA copy was refused ('no state dict of tensors found')."""
    torch.manual_seed(0)
    src = create_model("mafmamba_tiny").eval()
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in src.state_dict().items()}
    sets = ["model.name=mafmamba_tiny", "data.mean=[0,0,0]", "data.std=[1,1,1]"]
    torch.save({"state_dict": src.state_dict(), "state_dict_ema": ema, "epoch": 3}, tmp_path / "both.pth")
    report = import_weights(tmp_path / "both.pth", "mafmamba_vaihingen", tmp_path / "both.pt", sets)
    assert "not imported: ['state_dict_ema'] beside it" in report.describe()
    state = load_checkpoint(tmp_path / "both.pt")["state_dict"]
    assert all(torch.equal(state[k], v) for k, v in src.state_dict().items())  # the model's, as before
    torch.save({"model_ema": ema, "epoch": 3}, tmp_path / "ema.pth")
    report = import_weights(tmp_path / "ema.pth", "mafmamba_vaihingen", tmp_path / "ema.pt", sets)
    assert report.unwrapped == ['["model_ema"] (EMA weights)']
    state = load_checkpoint(tmp_path / "ema.pt")["state_dict"]
    assert all(torch.equal(state[k], v) for k, v in ema.items())


def test_a_lightning_module_with_a_loss_buffer_beside_its_network_is_imported_and_said(tmp_path: Path) -> None:
    """A Lightning .ckpt holds the network under 'model.' and, beside it, its loss's class weights
    ('criterion.weight'): the prefix was removed only when every name had it, so the whole network was refused as
    missing and unexpected. The network loads strictly; the tensors outside it are left out and named."""
    torch.manual_seed(0)
    src = create_model("mafmamba_tiny").eval()
    state = {f"model.{k}": v for k, v in src.state_dict().items()}
    state["criterion.weight"] = torch.ones(6)
    torch.save({"epoch": 3, "state_dict": state, "pytorch-lightning_version": "2.1"}, tmp_path / "l.ckpt")
    sets = ["model.name=mafmamba_tiny", "data.mean=[0,0,0]", "data.std=[1,1,1]"]
    report = import_weights(tmp_path / "l.ckpt", "mafmamba_vaihingen", tmp_path / "m.pt", sets)
    assert report.renamed == ["prefix 'model.' removed; left out 1 tensor outside the network (criterion.weight)"]
    assert report.tensors == len(src.state_dict())
    ckpt, info, model = build_from_checkpoint(tmp_path / "m.pt", ("segmentation",), "predict")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(segment(model.eval(), x, info.inputs), segment(src, x, info.inputs))
    del state["model.head.weight" if "model.head.weight" in state else next(k for k in state if k.startswith("model."))]
    torch.save({"state_dict": state}, tmp_path / "less.ckpt")  # a network tensor missing: strict as before
    with pytest.raises(InputError, match="do not fit"):
        import_weights(tmp_path / "less.ckpt", "mafmamba_vaihingen", tmp_path / "m2.pt", sets)


def test_an_ema_copy_under_a_prefix_beside_the_network_is_left_out_and_said(tmp_path: Path) -> None:
    """A bare state dict holding the network and its EMA copy under 'ema.' was refused as hundreds of unexpected
    tensors; the network (exact names) is imported and the copy named as left out. Any other extra tensor is still
    refused: only a copy of the model's own names under the prefix is taken for one."""
    torch.manual_seed(0)
    src = create_model("mafmamba_tiny").eval()
    floats = {k: v for k, v in src.state_dict().items() if v.is_floating_point()}
    state = {**src.state_dict(), **{f"ema.{k}": v + 1 for k, v in floats.items()}}
    torch.save(state, tmp_path / "w.pth")
    sets = ["model.name=mafmamba_tiny", "data.mean=[0,0,0]", "data.std=[1,1,1]"]
    report = import_weights(tmp_path / "w.pth", "mafmamba_vaihingen", tmp_path / "m.pt", sets)
    assert report.renamed == [f"left out {len(floats)} tensors of an EMA copy beside the network (ema.*); to import "
                              "those, save them alone without 'ema.'"]
    saved = load_checkpoint(tmp_path / "m.pt")["state_dict"]
    assert saved.keys() == src.state_dict().keys()
    assert all(torch.equal(saved[k], v) for k, v in src.state_dict().items())
    state["ema.extra.weight"] = torch.zeros(3)  # not the model's: strict as before
    torch.save(state, tmp_path / "x.pth")
    with pytest.raises(InputError, match=r"unexpected \(ema\."):
        import_weights(tmp_path / "x.pth", "mafmamba_vaihingen", tmp_path / "m2.pt", sets)


def test_another_model_than_the_recipes_says_how_to_drop_the_recipes_kwargs(tmp_path: Path, capsys) -> None:
    """--set model.name=siam_diff_baseline on mambafcs_second applied the recipe's cga to it: 'model
    'siam_diff_baseline' with {...}: ...unexpected keyword argument 'cga'', no way on said (QA)."""
    src = create_model("siam_diff_baseline", num_classes=6, in_chans=3)
    torch.save(src.state_dict(), tmp_path / "siam.pth")
    argv = [str(tmp_path / "siam.pth"), "-c", "mambafcs_second", "--set", "model.name=siam_diff_baseline",
            "-o", str(tmp_path / "model.pt")]
    _fails(tmp_path, capsys, argv, "model.kwargs {'cga': 'change_to_semantic'}: not arguments 'siam_diff_baseline'",
           "--set 'model.kwargs={}'")
    assert not (tmp_path / "model.pt").exists()
    assert main(["import-weights", *argv, "--set", "model.kwargs={}"]) == 0
    assert load_checkpoint(tmp_path / "model.pt")["model"] == "siam_diff_baseline"
