import pytest

from ocrforge.config import ConfigError, config_hash, dump_config, load_config, merge_overrides, parse_cli_overrides

CFG = {
    "Global": {"epoch_num": 5, "save_model_dir": "out"},
    "Optimizer": {"name": "Adam", "lr": {"name": "Cosine", "learning_rate": 0.001}},
    "Train": {"loader": {"batch_size_per_card": 4},
              "dataset": {"transforms": [{"DecodeImage": {"img_mode": "BGR"}}]}},
}


def test_overrides_set_nested_keys_and_leave_the_input_alone():
    out = merge_overrides(CFG, {"Global.epoch_num": 10, "Optimizer.lr.learning_rate": 1e-3,
                                "Train.loader.batch_size_per_card": 8,
                                "Train.dataset.transforms.0.DecodeImage.img_mode": "RGB"})
    assert out["Global"]["epoch_num"] == 10
    assert out["Optimizer"]["lr"]["learning_rate"] == 1e-3
    assert out["Train"]["loader"]["batch_size_per_card"] == 8
    assert out["Train"]["dataset"]["transforms"][0]["DecodeImage"]["img_mode"] == "RGB"
    assert CFG["Global"]["epoch_num"] == 5 and CFG["Train"]["loader"]["batch_size_per_card"] == 4


def test_a_misspelt_key_is_named_with_the_keys_that_exist():
    with pytest.raises(ConfigError) as err:
        merge_overrides(CFG, {"Global.epochs_num": 10})
    msg = str(err.value)
    assert "'Global.epochs_num'" in msg and "no key 'epochs_num' in Global" in msg and "epoch_num" in msg


def test_a_missing_section_and_a_bad_list_index_are_errors():
    with pytest.raises(ConfigError, match="no key 'Eval' in <top level>"):
        merge_overrides(CFG, {"Eval.loader.batch_size_per_card": 2})
    with pytest.raises(ConfigError, match="list of 1 items; '3' is not a valid index"):
        merge_overrides(CFG, {"Train.dataset.transforms.3.x": 1})
    with pytest.raises(ConfigError, match="is a int"):
        merge_overrides(CFG, {"Global.epoch_num.x": 1})


def test_new_keys_are_added_only_when_allowed():
    out = merge_overrides(CFG, {"Global.early_stopping_patience": 3, "Eval.loader.batch_size_per_card": 2},
                          allow_new_keys=True)
    assert out["Global"]["early_stopping_patience"] == 3
    assert out["Eval"] == {"loader": {"batch_size_per_card": 2}}


def test_command_line_overrides_are_read_as_yaml():
    ov = parse_cli_overrides(["Global.epoch_num=10", "Optimizer.lr.learning_rate=1e-3", "Global.save_model_dir=o/x"])
    assert ov == {"Global.epoch_num": 10, "Optimizer.lr.learning_rate": 1e-3, "Global.save_model_dir": "o/x"}
    with pytest.raises(ConfigError, match="Section.key=value"):
        parse_cli_overrides(["Global.epoch_num"])


def test_dump_and_load_round_trip_keeps_order(tmp_path):
    path = tmp_path / "sub" / "cfg.yml"
    dump_config(CFG, path)
    back = load_config(path)
    assert back == CFG and list(back) == list(CFG)
    assert [p.name for p in path.parent.iterdir()] == ["cfg.yml"]
    assert config_hash(back) == config_hash(CFG)
    assert config_hash(merge_overrides(CFG, {"Global.epoch_num": 6})) != config_hash(CFG)


def test_load_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(bad)
