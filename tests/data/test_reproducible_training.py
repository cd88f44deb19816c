"""A rerun of an unchanged training trains the same weights: every random draw comes from the run's seed."""

import logging

import numpy as np
import pytest

from test_loader_data import write_det_data


@pytest.mark.slow
@pytest.mark.parametrize("crop", ["east", "native"])
def test_two_runs_of_one_det_config_train_the_same_weights(tmp_path, repo_root, crop):
    """IaaAugment's own generator included, so `dvc repro` here or in another clone on the same machine gives
    bit-identical weights (it did not, before the dataset reseeded that generator per sample)."""
    import paddle

    from ocrforge.config import load_config
    from ocrforge.params import load_params, section
    from ocrforge.recipe import det_config_from_params
    from ocrforge.training import train

    data = tmp_path / "data"
    write_det_data(data, n_images=4)
    write_det_data(data, n_images=2, split="val")
    p = {**section(load_params(repo_root / "params.yaml"), "train_det"),
         "epochs": 1, "batch_size": 2, "crop_size": 64, "eval_side_len": 128, "save_every_steps": 0, "crop": crop}
    quiet = logging.getLogger("ocrforge.tests.quiet")
    quiet.setLevel(logging.ERROR)
    flags_before = paddle.get_flags(["FLAGS_use_onednn"])
    weights = []
    for run in ("first", "second"):
        out = tmp_path / run
        config = det_config_from_params(load_config(repo_root / p["config"]), p, str(data), str(out), str(out / "live"))
        train(config, logger=quiet)
        weights.append(paddle.load(str(out / "latest.pdparams")))
    # training turns oneDNN on for speed and back off after: a model traced under it would not export
    assert paddle.get_flags(["FLAGS_use_onednn"]) == flags_before
    first, second = weights
    assert first.keys() == second.keys()
    differing = [k for k in first if not np.array_equal(first[k].numpy(), second[k].numpy())]
    assert not differing, f"{len(differing)} of {len(first)} tensors differ, e.g. {differing[:3]}"
