"""params.yaml's train_det values land in the det config: the training crop, its size and the scale range."""

import pytest

from ocrforge.config import load_config
from ocrforge.params import load_params, section
from ocrforge.recipe import det_config_from_params


def train_ops(config):
    return [next(iter(op.items())) for op in config["Train"]["dataset"]["transforms"]]


def build(repo_root, **overrides):
    p = {**section(load_params(repo_root / "params.yaml"), "train_det"), **overrides}
    return det_config_from_params(load_config(repo_root / p["config"]), p, "d", "o", "o/live")


def resize_range(config):
    iaa = dict(train_ops(config))["IaaAugment"]
    return next(a["args"]["size"] for a in iaa["augmenter_args"] if a["type"] == "Resize")


def test_default_keeps_paddleocrs_crop_and_scale_range(repo_root):
    config = build(repo_root, crop_size=480)
    ops = dict(train_ops(config))
    assert ops["EastRandomCropData"] == {"size": [480, 480], "max_tries": 50, "keep_ratio": True}  # no text_prob
    assert "NativeScaleCrop" not in ops
    assert resize_range(config) == [0.5, 3]


def test_native_crop_replaces_east_crop_in_place(repo_root):
    default = [name for name, _ in train_ops(build(repo_root))]
    config = build(repo_root, crop="native", crop_size=640, scale_range=[0.8, 1.25], text_crop_prob=0.7)
    names = [name for name, _ in train_ops(config)]
    assert names == [("NativeScaleCrop" if n == "EastRandomCropData" else n) for n in default]
    assert dict(train_ops(config))["NativeScaleCrop"] == {"size": [640, 640], "text_prob": 0.7}
    assert resize_range(config) == [0.8, 1.25]


@pytest.mark.parametrize("overrides, error", [
    ({"crop": "center"}, "train_det.crop must be one of \\['east', 'native'\\]; got 'center'"),
    ({"scale_range": [1.5, 0.5]}, "scale_range must be \\[low, high\\] with 0 < low <= high .*; got \\[1.5, 0.5\\]"),
    ({"scale_range": [0.5, 1.0, 2.0]}, "scale_range must be \\[low, high\\] .*; got \\[0.5, 1.0, 2.0\\]"),
    ({"scale_range": [0.5]}, "scale_range must be \\[low, high\\] .*; got \\[0.5\\]"),
    ({"scale_range": ["small", "big"]}, "scale_range must be \\[low, high\\] .*; got \\['small', 'big'\\]"),
    ({"scale_range": 2}, "scale_range must be \\[low, high\\] .*; got 2"),
])
def test_bad_crop_settings_are_named(repo_root, overrides, error):
    with pytest.raises(ValueError, match=error):
        build(repo_root, **overrides)
