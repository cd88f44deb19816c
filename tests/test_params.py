"""params.yaml is checked against one schema (ocrforge.params.SCHEMA) before a stage does anything
(issue 22, defect 5: typos and invalid values used to pass silently, and epochs: 0 deleted checkpoints)."""

import copy
import os

import pytest
import yaml

from ocrforge.config import ConfigError, load_config
from ocrforge.params import SCHEMA, ParamsError, load_params, section, validate_params, validate_section
from ocrforge.recipe import det_config_from_params, rec_config_from_params


@pytest.fixture
def params(repo_root):
    return load_params(repo_root / "params.yaml")


def test_the_repositorys_params_pass_and_every_section_has_a_schema(params):
    assert set(params) == set(SCHEMA)
    for name, values in params.items():
        assert set(values) <= set(SCHEMA[name]), name


@pytest.mark.parametrize("name, change, message", [
    ("train_rec", {"epoch": 5}, "train_rec.epoch is not a key any stage reads; did you mean 'epochs'?"),
    ("train_det", {"batchsize": 4}, "train_det.batchsize is not a key any stage reads; did you mean 'batch_size'?"),
    ("train_rec", {"batch_size": 0}, "train_rec.batch_size must be an integer >= 1; got 0"),
    ("train_det", {"batch_size": 0}, "train_det.batch_size must be an integer >= 1; got 0"),
    ("train_rec", {"epochs": 0}, "train_rec.epochs must be an integer >= 1; got 0"),
    ("train_det", {"lr": 0}, "train_det.lr must be a number > 0; got 0"),
    ("train_det", {"lr": "fast"}, "train_det.lr must be a number > 0; got 'fast'"),
    ("train_rec", {"epochs": 2.5}, "train_rec.epochs must be an integer >= 1; got 2.5"),
    ("train_rec", {"heights": []}, "train_rec.heights must be a non-empty list, each an integer >= 1; got []"),
    ("train_rec", {"image_shape": [3, 48]}, "train_rec.image_shape must be a list of 3 items, each an integer >= 1"),
    ("train_det", {"thresh": 1.5}, "train_det.thresh must be a number > 0 and <= 1; got 1.5"),
    ("train_det", {"device": "tpu"}, "train_det.device must be auto, cpu, gpu or gpu:N; got 'tpu'"),
    ("split", {"on_label_error": "ignore"}, "split.on_label_error must be one of ['stop', 'skip']; got 'ignore'"),
    ("eval", {"limt": 5}, "eval.limt is not a key any stage reads; did you mean 'limit'?"),
    ("system", {"det_db_box_thresh": 1.5}, "system.det_db_box_thresh must be a number >= 0 and <= 1 (or empty); got 1.5"),
    ("system", {"drop_scor": 0.5}, "system.drop_scor is not a key any stage reads; did you mean 'drop_score'?"),
    ("eval", {"zero_shot": ["ppocrv5"]}, "eval.zero_shot must be a list, each one of ['ppocrv4', 'ppocrv6']; got ['ppocrv5']"),
    ("benchmark", {"engines": ["paddle"]}, "benchmark.engines must be a non-empty list, each one of"),
    ("train_rec", {"analysis": {"windw": 3}}, "train_rec.analysis.windw is not a key any stage reads; did you mean "
                                              "'window'?"),
    ("train_det", {"overrides": ["Global.seed"]}, "train_det.overrides must be a mapping of dotted config keys"),
    ("train_rec", {"max_minutes": -5}, "train_rec.max_minutes must be a number >= 0 (or empty); got -5"),
    ("distill_det", {"early_stopping_min_delta": -0.1},
     "distill_det.early_stopping_min_delta must be a number >= 0; got -0.1"),
    ("train_det", {"early_stoping_patience": 3},
     "train_det.early_stoping_patience is not a key any stage reads; did you mean 'early_stopping_patience'?"),
])
def test_an_unknown_key_or_invalid_value_is_named(params, name, change, message):
    bad = copy.deepcopy(params)
    bad[name].update(change)
    with pytest.raises(ParamsError) as info:
        validate_params(bad)
    assert message in str(info.value)
    assert str(info.value).startswith("params.yaml: ") and "Fix it in params.yaml" in str(info.value)


def test_a_missing_key_a_misspelt_section_and_all_problems_at_once(params):
    bad = copy.deepcopy(params)
    del bad["train_rec"]["epochs"]
    bad["train_rec"]["lr"] = -1
    bad["trian_det"] = bad.pop("train_det")
    with pytest.raises(ParamsError) as info:
        validate_params(bad)
    text = str(info.value)
    assert text.startswith("params.yaml: 3 problems:")
    assert "train_rec.epochs is missing; restore it from the repository's params.yaml" in text
    assert "train_rec.lr must be a number > 0; got -1" in text
    assert "'trian_det' is not a section any stage reads; did you mean 'train_det'?" in text


def test_the_system_section_overrides_only_what_it_sets(params):
    """Empty keys keep the trained detector's values; eval and export pass the rest to the system alike."""
    from ocrforge.params import system_overrides
    from ocrforge.system import SystemSettings

    assert system_overrides(params) == {}  # drop_score too: tune_system chooses it on val
    changed = copy.deepcopy(params)
    changed["system"].update(det_db_box_thresh=0.7, det_limit_side_len=1280, drop_score=0.6)
    overrides = system_overrides(changed)
    assert overrides == {"det_db_box_thresh": 0.7, "det_limit_side_len": 1280, "drop_score": 0.6}
    settings = SystemSettings(det_db_unclip_ratio=2.5).with_overrides(**overrides)
    assert (settings.det_db_box_thresh, settings.det_limit_side_len, settings.det_db_unclip_ratio) == (0.7, 1280, 2.5)


def test_yaml_strings_that_are_numbers_still_pass(params):
    good = copy.deepcopy(params["train_rec"])
    good["lr"] = "1e-3"  # YAML 1.1 reads this as a string
    validate_section("train_rec", good)


def test_the_stopping_params_reach_the_engine(repo_root, params):
    config = rec_config(repo_root, params, epochs=30, early_stopping_patience=4, early_stopping_min_delta=0.002,
                        max_minutes=45)
    g = config["Global"]
    assert (g["epoch_num"], g["early_stopping_patience"], g["early_stopping_min_delta"], g["max_minutes"]) == \
        (30, 4, 0.002, 45.0)
    assert rec_config(repo_root, params, max_minutes=None)["Global"]["max_minutes"] == 0.0  # empty: no cap


def rec_config(repo_root, params, **change):
    p = {**section(params, "train_rec"), **change}
    return rec_config_from_params(load_config(repo_root / p["config"]), p, section(params, "dictionary"),
                                  "d", "o", "o/live")


def test_overrides_must_name_keys_the_config_has(repo_root, params):
    config = rec_config(repo_root, params, overrides={"Optimizer.regularizer.factor": 1.0e-4, "Global.use_amp": True})
    assert config["Optimizer"]["regularizer"]["factor"] == 1.0e-4
    assert config["Global"]["use_amp"] is True  # a documented engine key the YAML does not list
    with pytest.raises(ConfigError, match=r"params.yaml train_rec.overrides: override 'Optimizer.regularizer.factr': "
                                          r"no key 'factr' in Optimizer.regularizer; did you mean 'factor'\?"):
        rec_config(repo_root, params, overrides={"Optimizer.regularizer.factr": 1.0e-4})
    with pytest.raises(ConfigError, match=r"override 'Optimiser.lr.learning_rate': no key 'Optimiser' in <top level>; "
                                          r"did you mean 'Optimizer'\?"):
        rec_config(repo_root, params, overrides={"Optimiser.lr.learning_rate": 0.1})
    with pytest.raises(ConfigError, match=r"override 'Global.use_ampp': no key 'use_ampp' in Global; did you mean "
                                          r"'use_amp'\? \(keys that may be set: .*use_amp"):
        rec_config(repo_root, params, overrides={"Global.use_ampp": True})


def test_det_and_distill_configs_check_their_own_section(repo_root, params):
    p = {**section(params, "train_det"), "batch_size": 0}
    with pytest.raises(ParamsError, match="train_det.batch_size must be an integer >= 1; got 0"):
        det_config_from_params(load_config(repo_root / p["config"]), p, "d", "o", "o/live")
    p = {**section(params, "distill_det"), "crop": "east"}
    with pytest.raises(ParamsError, match="distill_det.crop is not a key any stage reads"):
        det_config_from_params(load_config(repo_root / p["config"]), p, "d", "o", "o/live", section_name="distill_det")


def test_epochs_0_fails_before_any_checkpoint_is_deleted(repo_root, tmp_path, monkeypatch):
    """Before: the stage deleted models/rec/latest.* (a 'finished run'), then failed with a CheckpointError."""
    from stages import train_rec

    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["train_rec"]["epochs"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "models" / "rec").mkdir(parents=True)
    kept = {n: f"{n} of an earlier run".encode() for n in ("latest.pdparams", "latest.pdopt", "latest.states.json",
                                                          "best_accuracy.pdparams")}
    for n, data in kept.items():
        (tmp_path / "models" / "rec" / n).write_bytes(data)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["train_rec.py", "--data", "data/split", "--out", "models/rec",
                                     "--reports", "reports/train_rec"])  # dvc.yaml's arguments
    with pytest.raises(ParamsError, match="train_rec.epochs must be an integer >= 1; got 0"):
        train_rec.main()
    assert {n: (tmp_path / "models" / "rec" / n).read_bytes() for n in kept} == kept
    assert sorted(os.listdir(tmp_path / "models" / "rec")) == sorted([*kept, "train.log"])
