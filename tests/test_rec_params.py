"""params.yaml's train_rec.box_jitter picks the recogniser's training crops: jittered context crops, or the
labelled boxes exactly."""

import pytest

from ocrforge.config import load_config, resolve_dict_paths
from ocrforge.data.transforms import build_transforms
from ocrforge.params import load_params, section
from ocrforge.recipe import rec_config_from_params


def rec_config(repo_root, **changes):
    params = load_params(repo_root / "params.yaml")
    p = {**section(params, "train_rec"), **changes}
    return rec_config_from_params(load_config(repo_root / p["config"]), p, section(params, "dictionary"), "d",
                                  "out", "live")


def op_names(config):
    return [next(iter(op)) for op in config["Train"]["dataset"]["transforms"]]


def test_box_jitter_trains_on_jittered_context_crops(repo_root):
    config = rec_config(repo_root, box_jitter=0.15)
    dataset = config["Train"]["dataset"]
    assert op_names(config)[:3] == ["DecodeImage", "RecBoxJitter", "RecConAug"]
    assert dataset["transforms"][1]["RecBoxJitter"] == {"prob": 0.5, "jitter": 0.15}
    assert dataset["label_file_list"] == ["d/rec/train_context.txt"]
    assert dataset["ext_op_transform_idx"] == 2  # RecConAug's extra samples are jittered too
    assert config["Eval"]["dataset"]["label_file_list"] == ["d/rec/val.txt"]  # scored on the labelled boxes
    resolve_dict_paths(config)
    build_transforms(dataset["transforms"], config["Global"])  # the op list builds


def test_zero_jitter_trains_on_the_labelled_boxes(repo_root):
    assert section(load_params(repo_root / "params.yaml"), "train_rec")["box_jitter"] == 0  # the default
    config = rec_config(repo_root)
    assert "RecBoxJitter" not in op_names(config)
    assert config["Train"]["dataset"]["label_file_list"] == ["d/rec/train.txt"]
    assert config["Train"]["dataset"]["ext_op_transform_idx"] == 1


def test_jitter_beyond_the_context_is_a_params_error(repo_root):
    from ocrforge.params import ParamsError, validate_section

    params = load_params(repo_root / "params.yaml")
    with pytest.raises(ParamsError, match="train_rec.box_jitter must be"):
        validate_section("train_rec", {**section(params, "train_rec"), "box_jitter": 0.4})
