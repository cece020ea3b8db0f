"""Config values refused by ``load_config``, before any data is read (so ``train --dry-run`` refuses them too)."""

from __future__ import annotations

import re

import pytest

from rsmamba.errors import InputError
from rsmamba.train.config import load_config


def _problems(*sets: str) -> list[str]:
    with pytest.raises(InputError) as exc:
        load_config(None, ["data.root=chips", *sets])
    return exc.value.problems


def test_optim_groups_keys_and_values_are_checked_together() -> None:
    """A negative lr_scale trained the group by gradient ascent, a misspelt key was ignored (the full rate) and
    text values were tracebacks when the optimiser was built: each is one line, all listed at once."""
    said = _problems("optim.groups=[{prefix: encoder., lr_scale: -1}, {prefix: head., lr_scal: 0.1}, "
                     "{prefix: encoder., lr_scale: abc}, {prefix: encoder., weight_decay: abc}, {prefix: 5}]")
    assert len(said) == 5, said
    for needle in (r"optim.groups\[0\].lr_scale: expected a number >= 0, got -1",
                   r"optim.groups\[1\]: unknown key 'lr_scal'",
                   r"optim.groups\[2\].lr_scale: expected a number >= 0, got 'abc'",
                   r"optim.groups\[3\].weight_decay: expected a number >= 0, got 'abc'",
                   r"optim.groups\[4\].prefix: expected a parameter-name prefix"):
        assert any(re.search(needle, p) for p in said), (needle, said)
    cfg = load_config(None, ["data.root=chips", "optim.groups=[{prefix: [a., b.], lr_scale: 1e-1, weight_decay: 0}]"])
    assert cfg["optim"]["groups"][0]["lr_scale"] == 0.1


def test_loss_entries_are_checked_with_the_config() -> None:
    """A negative scale made the run maximise that loss; text in a scale or an option was a traceback (dice
    smooth: abc passed --dry-run and failed at the first batch)."""
    said = _problems("loss=[ce, {name: lovasz, scale: -1}, {name: dice, scale: abc}, {name: dice, smooth: abc}, 5]")
    assert len(said) == 4, said
    for needle in (r"loss lovasz: scale must be a number >= 0, got -1", r"loss dice: scale must be a number >= 0, got 'abc'",
                   r"loss dice: smooth must be a number >= 0, got 'abc'", r"loss 5: expected a loss name"):
        assert any(re.search(needle, p) for p in said), (needle, said)
    assert any("mambafcs: sek must be" in p for p in _problems("loss={name: mambafcs, sek: x}"))
    assert load_config(None, ["data.root=chips", "loss=[ce, {name: dice, scale: 1e-1, smooth: 0}]"])


def test_min_lr_above_lr_is_refused() -> None:
    """cosine's 'floor' above optim.lr raised the rate to it (10x) instead of decaying it."""
    assert _problems("schedule.min_lr=0.01") == ["config schedule.min_lr: the floor the rate decays to, must be <= "
                                                 "optim.lr (0.001), got 0.01"]
    assert load_config(None, ["data.root=chips", "schedule.min_lr=0.001"])["schedule"]["min_lr"] == 0.001


def test_a_warmup_as_long_as_the_run_is_said() -> None:
    """warmup_epochs 100 in a 2-epoch run trained at 2e-5 at most, unsaid; warmup_iters likewise, once the data
    give the steps per epoch (a warning: a recipe's warm-up in a one-epoch trial run is no mistake)."""
    from rsmamba.train.config import warmup_warning

    def said(*sets: str, steps: int = 4) -> str | None:
        return warmup_warning(load_config(None, ["data.root=chips", "train.epochs=2", *sets]), steps)

    assert "schedule.warmup_epochs 100 lasts the whole run (2 epochs, 8 steps)" in said("schedule.warmup_epochs=100")
    assert "0.02 x optim.lr at its last step" in said("schedule.warmup_epochs=100")
    assert "schedule.warmup_iters 8 lasts the whole run" in said("schedule.warmup_iters=8", "schedule.warmup_epochs=1")
    assert said("schedule.warmup_iters=7") is None and said("schedule.warmup_epochs=1.5") is None and said() is None


def test_class_weights_that_count_no_pixel_are_refused() -> None:
    """All-zero CE weights (or 0 on every class the training chips hold) gave a 0/0 NaN loss at step 1, reported
    as a divergence to cure with a lower rate."""
    from rsmamba.train.trainer import _check_class_settings

    assert any("class_weights are all 0" in p for p in _problems("loss={name: ce, class_weights: [0, 0, 0, 0, 0, 0]}"))
    cfg = load_config(None, ["data.root=chips", "loss=[dice, {name: ce, class_weights: [1, 0, 0, 1, 1, 1]}]"])
    names = [f"c{i}" for i in range(6)]
    with pytest.raises(InputError, match=r"class_weights are 0 for every class the training chips hold \(c1, c2\)"):
        _check_class_settings(cfg, 6, names, trained={1, 2})
    _check_class_settings(cfg, 6, names, trained={1, 3})
    _check_class_settings(cfg, 6, names)  # (classes unknown: benchmark layouts, change chips' date 2)


def test_a_group_whose_parameters_an_earlier_group_took_says_so() -> None:
    """'prefix [encoder.stages.0] matches no parameter' was said while six matched: the wider encoder. group listed
    first had taken them."""
    import torch.nn as nn

    from rsmamba.train.trainer import param_groups

    model = nn.Sequential()
    model.add_module("encoder", nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)))
    model.add_module("head", nn.Linear(2, 1))
    cfg = load_config(None, ["data.root=chips", "optim.groups=[{prefix: encoder.}, {prefix: encoder.0.}]"])
    with pytest.raises(InputError, match=r"prefix \['encoder.0.'\] matches 2 parameters of 'fcn_baseline', all taken "
                                         r"by the earlier group 'encoder.' .*most specific prefix to the most general"):
        param_groups(cfg, model)
    cfg["optim"]["groups"].reverse()
    assert [g["name"] for g in param_groups(cfg, model)] == ["base", "encoder.0.", "encoder."]
    cfg["optim"]["groups"] = [{"prefix": "decoder."}]
    with pytest.raises(InputError, match=r"prefix \['decoder.'\] matches no parameter of 'fcn_baseline'$"):
        param_groups(cfg, model)


def test_settings_that_do_nothing_are_refused() -> None:
    """train.grad_clip 0 clipped nothing and freeze_epochs without freeze_prefixes froze nothing, both unsaid."""
    said = _problems("train.grad_clip=0", "train.freeze_epochs=3")
    assert said == ["config train.grad_clip: must be > 0 (a gradient norm; null: no clipping), got 0",
                    "config train.freeze_epochs: 3 epochs of freezing, but train.freeze_prefixes is empty: name the "
                    "parameter-name prefixes frozen (e.g. [backbone.]), or leave freeze_epochs at 0"]
    cfg = load_config(None, ["data.root=chips", "train.grad_clip=0.5", "train.freeze_epochs=3",
                             "train.freeze_prefixes=[encoder.]"])
    assert cfg["train"]["grad_clip"] == 0.5


def test_a_cosine_restarts_run_that_ends_inside_a_cycle_is_said() -> None:
    """MAFMamba's 80 epochs with GeoSeg's t0 15, t_mult 2 (cycles ending at 15, 45, 105) left its last epochs at a
    rate still a third of optim.lr, unsaid (GeoSeg trains 105)."""
    from rsmamba.train.config import schedule_warnings
    from rsmamba.train.trainer import lr_factor

    cfg = load_config("mafmamba_vaihingen", ["data.root=chips"])
    (said,) = schedule_warnings(cfg, steps_per_epoch=10)
    rate = lr_factor(cfg, steps_per_epoch=10)(80 * 10 - 1)  # the last step's factor, as the scheduler has it
    assert said.startswith("schedule cosine_restarts (t0 15, t_mult 2): train.epochs 80 ends 35 epochs into a "
                           f"60-epoch cycle, at {rate:.2g} x optim.lr (cycles end at epoch 15, 45, 105); "
                           "train.epochs 45 or 105 ends one")
    assert schedule_warnings(load_config("mafmamba_vaihingen", ["data.root=chips", "train.epochs=105"]), 10) == []
    by_step = load_config(None, ["data.root=chips", "train.epochs=2", "schedule.name=cosine_restarts",
                                 "schedule.by=iteration", "schedule.t0=7"])
    assert schedule_warnings(by_step, 10) == [
        "schedule cosine_restarts (t0 7, t_mult 1): train.epochs 2 ends 6 steps into a 7-step cycle, at "
        f"{lr_factor(by_step, 10)(19):.2g} x optim.lr (cycles end at step 7, 14, 21)"]


def load_config_value(text: str) -> object:
    """A --set value as the config holds it (YAML)."""
    import yaml

    return yaml.safe_load(text)


def _config_fails(argv: list[str], capsys) -> str:
    from rsmamba.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_a_model_name_that_is_no_name_is_a_config_error(tmp_path, capsys) -> None:
    """A list or a mapping as model.name was a TypeError traceback (unhashable type) in the registry, from --set,
    a config file and import-weights alike; an unknown name is said with the config's other problems."""
    for value in ("[a]", "{a: 1}", "5", "''"):
        assert _problems(f"model.name={value}") == [
            f"config model.name: expected a model name (rsmamba models lists them), got {load_config_value(value)!r}"]
    said = _problems("model.name=nope", "optim.lr=-1")
    assert len(said) == 2 and any("config model.name: unknown model 'nope'; known: " in p for p in said), said
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model: {name: [a]}\ndata: {root: chips}\n")
    err = _config_fails(["train", "-c", str(cfg), "--dry-run"], capsys)
    assert "config model.name: expected a model name" in err
    err = _config_fails(["train", "--set", "data.root=chips", "--set", "model.name=[a]", "--dry-run"], capsys)
    assert "config model.name: expected a model name" in err
    weights = tmp_path / "w.pth"
    import torch

    torch.save({"a": torch.zeros(1)}, weights)
    err = _config_fails(["import-weights", str(weights), "-c", "mambafcs_second", "--set", "model.name=[a]", "-o",
                         str(tmp_path / "m.pt")], capsys)
    assert "config model.name: expected a model name" in err


def test_model_instances_is_a_list_of_channel_names() -> None:
    """'model.instances=foo' was read letter by letter: 'model.instances (f, o, o)'."""
    for value in ("foo", "[1]", "{interior: 1}"):
        assert _problems(f"model.instances={value}") == [
            "config model.instances: expected a list such as [interior, contact] (target channels of 'rsmamba tile "
            f"--instance-targets'), got {load_config_value(value)!r}"]
    assert load_config(None, ["data.root=chips", "model.instances="])["model"]["instances"] == []
    assert load_config(None, ["data.root=chips", "model.instances=[interior, contact]"])["model"]["instances"] == [
        "interior", "contact"]


def test_the_metric_and_a_benchmarks_class_settings_are_checked_with_the_rest() -> None:
    """train.metric and a CE class_weights count were said only once every other config problem was fixed (after
    the data were opened): they are collected with them where the model and the classes are known from the config
    (model.name; a benchmark layout's classes)."""
    said = _problems("train.metric=foo", "optim.lr=-1")
    assert said == ["config optim.lr: must be > 0, got -1",
                    "config train.metric 'foo': not a validation score of a segmentation model; choose one of miou, "
                    "mf1, oa, kappa"]
    assert any("not a validation score of a semantic-change model; choose one of sek, " in p
               for p in _problems("model.name=mambafcs_tiny", "train.metric=mf1"))
    # the default model with a model.init: the checkpoint's model, read later; a name no model scores is refused now
    assert any("train.metric 'foo': not a validation score of any model; choose one of miou" in p
               for p in _problems("model.init=demo", "train.metric=foo"))
    assert load_config(None, ["data.root=chips", "model.init=demo", "train.metric=sek"])
    with pytest.raises(InputError) as exc:
        load_config("mafmamba_vaihingen", ["data.root=x", "loss={name: ce, class_weights: [1, 2]}", "optim.lr=-1",
                                           "train.exclude_classes=[5, 7]"])
    assert exc.value.problems == [
        "config optim.lr: must be > 0, got -1",
        "config loss ce: 2 class_weights for 6 classes (impervious, building, low_vegetation, tree, car, clutter)",
        "config train.exclude_classes [7]: no class id of the data (0..5)"]
    # chips: their class table (tiling.json) is read with the data, and the count checked then
    assert load_config(None, ["data.root=chips", "loss={name: ce, class_weights: [1, 2]}"])
    # every class left out of the means: nothing scored, best.pt followed the training loss (QA)
    with pytest.raises(InputError) as exc:
        load_config("mafmamba_vaihingen", ["data.root=x", "train.exclude_classes=[0, 1, 2, 3, 4, 5]"])
    assert exc.value.problems == [
        "config train.exclude_classes [0, 1, 2, 3, 4, 5]: every class (impervious, building, low_vegetation, tree, "
        "car, clutter) left out of the validation means, so nothing is scored; leave out the few the scores should "
        "not count"]


def test_image_statistics_are_one_per_band_of_the_layouts_images(tmp_path, capsys) -> None:
    """Two means and stds on a 3-band Vaihingen recipe built a 2-band model: import-weights said the weights did not
    fit it ('(8, 3, 7, 7) vs (8, 2, 7, 7)'), train failed at its first batch."""
    def said(recipe: str, *sets: str) -> list[str]:
        with pytest.raises(InputError) as exc:
            load_config(recipe, ["data.root=x", *sets])
        return exc.value.problems

    assert said("mafmamba_vaihingen", "data.mean=[1, 2]", "data.std=[1, 1]") == [
        "config data.mean: 2 entries, but the images of the ISPRS Vaihingen layout have 3 bands (one mean per band)",
        "config data.std: 2 entries, but the images of the ISPRS Vaihingen layout have 3 bands (one std per band)"]
    assert said("mafmamba_potsdam", "data.variant=RGBIR", "data.mean=[1, 2, 3]", "data.std=[1, 1, 1]")[0] == (
        "config data.mean: 3 entries, but the images of the ISPRS Potsdam layout (RGBIR) have 4 bands (one mean per "
        "band)")
    assert load_config("mafmamba_potsdam", ["data.root=x", "data.variant=RGBIR", "data.mean=[1, 2, 3, 4]"])
    assert said("mambafcs_second", "data.std=[1, 0, 1]") == [
        "config data.std: each value must be > 0 (a band's spread), got [1, 0, 1]"]
    assert said("mafmamba_vaihingen", "data.mean=[1, 2, 3]", "data.std=[1, 1]")[0] == (
        "config data.mean has 3 entries, data.std 2: one of each per image band")
    assert said("mafmamba_vaihingen", "data.mean=abc") == [
        "config data.mean: expected a list of numbers, e.g. [1.0], got 'abc'"]
    weights = tmp_path / "w.pth"
    import torch

    torch.save({"a": torch.zeros(1)}, weights)
    err = _config_fails(["import-weights", str(weights), "-c", "mafmamba_vaihingen", "--set",
                         "model.name=mafmamba_tiny", "--set", "data.mean=[1,2]", "--set", "data.std=[1,1]", "-o",
                         str(tmp_path / "m.pt")], capsys)
    assert "config data.mean: 2 entries, but the images of the ISPRS Vaihingen layout have 3 bands" in err


def test_unknown_keys_and_wrong_values_are_reported_together(tmp_path) -> None:
    """A misspelt key stopped the check: 'train.epochs: abc' in the same file was said only on the next run
    (docs/config.md: all reported together). A valid --set still overrides the file's wrong value."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  batchsize: 4\n  root: chips\n  batch_size: x\ntrain:\n  epochs: abc\n")
    with pytest.raises(InputError) as exc:
        load_config(cfg, ["optim.lrr=1", "data.batch_size=8"])
    assert exc.value.problems == ["unknown config key 'data.batchsize'", "--set optim.lrr: unknown config key",
                                  "config train.epochs: expected an integer, got 'abc'"]


def test_eval_flips_and_scales_of_a_change_model_are_refused() -> None:
    """Validation and train --test score a change model on one view: eval.flip / eval.scales were ignored for it,
    and test_<split>.json recorded them as applied (QA). Refused with the config's other problems."""
    said = _problems("model.name=mambafcs_tiny", "eval.flip=true", "train.epochs=0")
    assert any(p.startswith("config eval.flip / eval.scales: a semantic-change model is validated and tested on "
                            "one view") for p in said), said
    assert len(said) == 2
    assert any("eval.flip / eval.scales" in p for p in _problems("model.name=mambafcs_tiny", "eval.scales=[0.5, 1]",
                                                                  "train.epochs=0"))
    load_config(None, ["data.root=chips", "model.name=mambafcs_tiny"])  # the default eval: one view
    load_config(None, ["data.root=chips", "eval.flip=true", "eval.scales=[0.5, 1]"])  # a segmentation model


def test_schedule_keys_the_named_schedule_does_not_read_are_said() -> None:
    """schedule.milestones [20, 30] without name multistep trained the default cosine, unsaid (QA); said by the run
    and its dry run (schedule_warnings), and nothing for the keys a schedule reads."""
    from rsmamba.train.config import schedule_warnings

    def said(*sets: str) -> list[str]:
        return schedule_warnings(load_config(None, ["data.root=chips", "train.epochs=2", *sets]), 4)

    assert said("schedule.milestones=[20, 30]", "schedule.gamma=0.5") == [
        "schedule.milestones, schedule.gamma: not read by schedule.name cosine (read by multistep, step); the run "
        "follows cosine"]
    assert said("schedule.name=poly", "schedule.t0=5")[0].startswith("schedule.t0: not read by schedule.name poly")
    assert said("schedule.name=multistep", "schedule.milestones=[1]", "schedule.gamma=0.5") == []
    assert said("schedule.name=cosine_restarts", "schedule.t0=2", "schedule.min_lr=0.0001") == []
    assert said() == []


def test_a_negative_grad_clip_is_told_the_range_a_clip_takes() -> None:
    """train.grad_clip -1 was told 'must be >= 0', and 0 then 'must be > 0' (QA): both say > 0."""
    assert _problems("train.grad_clip=-1") == [
        "config train.grad_clip: must be > 0 (a gradient norm; null: no clipping), got -1"]
