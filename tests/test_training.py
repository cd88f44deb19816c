"""When a training stage resumes and when it starts fresh (DVC reruns a stage only when something changed)."""

import json

from ocrforge.config import config_hash
from ocrforge.training import clear_stale_checkpoints


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
