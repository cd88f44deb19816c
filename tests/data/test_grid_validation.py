"""A detector validated at the best pair of the post-process grid each epoch (train_det.postprocess_search.every_epoch)."""

import logging

from test_loader_data import write_det_data


def test_a_real_training_validates_each_epoch_over_the_grid(tmp_path, repo_root):
    from ocrforge.analysis import history_from_checkpoint
    from ocrforge.config import load_config
    from ocrforge.params import load_params, section
    from ocrforge.recipe import det_config_from_params
    from ocrforge.training import train

    data = tmp_path / "data"
    write_det_data(data, n_images=4)
    write_det_data(data, n_images=2, split="val")
    p = section(load_params(repo_root / "params.yaml"), "train_det")
    p = {**p, "epochs": 1, "batch_size": 2, "crop_size": 64, "eval_side_len": 128, "save_every_steps": 0,
         "postprocess_search": {**p["postprocess_search"], "unclip_ratio": [1.5, 3.0], "box_thresh": [0.5],
                                "every_epoch": True}}
    out = tmp_path / "det"
    config = det_config_from_params(load_config(repo_root / p["config"]), p, str(data), str(out), str(out / "live"))
    assert (config["PostProcess"]["name"], config["Metric"]["name"]) == ("DBPostProcessGrid", "DetGridMetric")
    quiet = logging.getLogger("ocrforge.tests.quiet")
    quiet.setLevel(logging.ERROR)
    summary = train(config, logger=quiet)
    (record,) = history_from_checkpoint(str(out))
    # the epoch is judged at the pair that reads it best, and the pair is recorded beside the figure
    assert record["val/unclip_ratio"] in (1.5, 2.0, 3.0) and record["val/box_thresh"] in (0.5, 0.6)
    assert record["val/hmean"] >= record["val/hmean_configured"]
    assert summary["best_metric"] == record["val/hmean"]
