"""When a training stage resumes and when it starts fresh (DVC reruns a stage only when something changed); what a
training stage reports before and after training."""

import json
import logging

import pytest

from ocrforge.config import config_hash
from ocrforge.engine.checkpoint import clear_stale_checkpoints


def write_latest(out_dir, config, epoch, stopped_reason=None):
    for suffix in (".pdparams", ".pdopt"):
        (out_dir / f"latest{suffix}").write_bytes(b"x")
    states = {"state": {"epoch": epoch, "stopped_reason": stopped_reason}, "config_hash": config_hash(config)}
    (out_dir / "latest.states.json").write_text(json.dumps(states))


def make_config(out_dir, epochs=3):
    return {"Global": {"save_model_dir": str(out_dir), "epoch_num": epochs}}


def test_interrupted_run_of_the_same_config_is_kept_for_resume(tmp_path):
    config = make_config(tmp_path)
    write_latest(tmp_path, config, epoch=1)
    assert clear_stale_checkpoints(config) is False
    assert (tmp_path / "latest.states.json").exists()


def test_changed_config_starts_fresh(tmp_path):
    write_latest(tmp_path, make_config(tmp_path), epoch=1)
    assert clear_stale_checkpoints(make_config(tmp_path, epochs=5)) is True
    assert not (tmp_path / "latest.states.json").exists() and not (tmp_path / "latest.pdparams").exists()


def test_finished_run_starts_fresh(tmp_path):
    """The data changed under an unchanged config: DVC reran the stage, so it must not 'resume' a done run."""
    config = make_config(tmp_path)
    write_latest(tmp_path, config, epoch=3)
    assert clear_stale_checkpoints(config) is True
    write_latest(tmp_path, config, epoch=1, stopped_reason="early stopping")
    assert clear_stale_checkpoints(config) is True


def test_what_the_old_run_derived_goes_with_it(tmp_path):
    """A detector's post-process search result describes the weights it was found for: kept while a run
    resumes, removed when training starts fresh."""
    from ocrforge.system import POSTPROCESS_FILE
    from ocrforge.training import derived_files

    config = {**make_config(tmp_path), "Architecture": {"model_type": "det"}}
    assert derived_files(config) == (POSTPROCESS_FILE, "best_trained.pdparams", "best_trained.pdopt",
                                     "best_trained.states.json")
    assert derived_files({"Architecture": {"model_type": "rec"}}) == ()
    for name in derived_files(config):
        (tmp_path / name).write_text("{}")
    write_latest(tmp_path, config, epoch=1)
    assert clear_stale_checkpoints(config, derived=derived_files(config)) is False
    assert all((tmp_path / name).exists() for name in derived_files(config))
    write_latest(tmp_path, config, epoch=3)
    assert clear_stale_checkpoints(config, derived=derived_files(config)) is True
    assert not any((tmp_path / name).exists() for name in derived_files(config))


@pytest.mark.slow
def test_the_normalised_zero_shot_acc_does_not_depend_on_the_labels_case(tmp_path, repo_root, caplog):
    """Issue 17, 6d: on upper-case plates the raw zero-shot acc was 0.233 where the same model read 0.71 once
    normalised. The same crops labelled in upper and in lower case: the raw zero-shot acc differs, acc_normalised
    does not; both figures, before training and at the best epoch, reach the log and the report."""
    from ocrforge.config import load_config
    from ocrforge.data.demo import DemoConfig, generate_demo_dataset
    from ocrforge.data.ppocrlabel import load_ppocrlabel
    from ocrforge.data.split import split_dataset
    from ocrforge.params import load_params, section
    from ocrforge.resources import read_dictionary
    from ocrforge.recipe import rec_config_from_params
    from ocrforge.training import run_training_stage

    generate_demo_dataset(tmp_path / "demo", DemoConfig(num_images=8, seed=7, width=240, height=180, print_styles=False))
    params = load_params(repo_root / "params.yaml")
    dictionary = section(params, "dictionary")
    data = tmp_path / "split"
    split_dataset(load_ppocrlabel(tmp_path / "demo" / "Label.txt"), data, seed=1,
                  chars=read_dictionary(dictionary["character_dict_path"], True))
    p = {**section(params, "train_rec"), "epochs": 1, "batch_size": 4, "eval_batch_size": 8, "save_every_steps": 0}
    logger = logging.getLogger("tests.stage")  # outside ocrforge's logger, which a stage run detaches from the root
    zero_shot = {}
    for case in ("upper", "lower"):
        if case == "lower":
            for split in ("train", "train_context", "val"):
                rows = (data / "rec" / f"{split}.txt").read_text(encoding="utf-8").splitlines()
                lowered = [f"{row.split(chr(9), 1)[0]}\t{row.split(chr(9), 1)[1].lower()}" for row in rows]
                (data / "rec" / f"{split}.txt").write_text("\n".join(lowered) + "\n", encoding="utf-8")
        config = rec_config_from_params(load_config(repo_root / p["config"]), p, dictionary, str(data),
                                        str(tmp_path / case / "model"), str(tmp_path / case / "live"))
        config["Global"]["use_dvclive"] = False
        with caplog.at_level(logging.INFO, logger="tests.stage"):
            summary = run_training_stage(config, p.get("analysis"), tmp_path / case / "report", logger)
        zero_shot[case] = summary["zero_shot"]
        report = json.loads((tmp_path / case / "report" / "report.json").read_text())
        assert set(report["val"]["zero_shot"]) == {"acc", "norm_edit_dis", "acc_normalised", "loss"}
        assert report["val"]["zero_shot"]["acc_normalised"] == summary["zero_shot"]["acc_normalised"]
        best = summary["best_record"]
        assert report["val"]["best_epoch"]["acc_normalised"] == best["val/acc_normalised"] >= best["val/acc"]
        md = (tmp_path / case / "report" / "report.md").read_text()
        assert "| | acc | norm_edit_dis | acc_normalised | loss |" in md
        assert f"acc_normalised {summary['zero_shot']['acc_normalised']:.4f} -> " in caplog.text
    assert zero_shot["lower"]["acc_normalised"] == zero_shot["upper"]["acc_normalised"] > 0  # reads some crops
    assert zero_shot["lower"]["acc"] < zero_shot["upper"]["acc"]  # the shipped model reads the codes upper-case
