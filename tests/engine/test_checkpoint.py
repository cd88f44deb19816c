import json
import os

import numpy as np
import pytest

import ocrforge  # noqa: F401
import paddle

from ocrforge.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ocrforge.engine.optim import build_optimizer


def trained_pair(seed=0, steps=3):
    paddle.seed(seed)
    model = paddle.nn.Sequential(paddle.nn.Linear(4, 3), paddle.nn.ReLU(), paddle.nn.Linear(3, 1))
    opt, sched = build_optimizer({"name": "Adam", "lr": {"name": "Cosine", "learning_rate": 0.01, "warmup_epoch": 1}},
                                 epochs=4, step_each_epoch=2, parameters=model.parameters())
    x = paddle.to_tensor(np.arange(8, dtype="float32").reshape(2, 4) / 8)
    for _ in range(steps):
        model(x).mean().backward()
        opt.step()
        opt.clear_grad()
        sched.step()
    return model, opt, sched, x


def test_save_then_load_restores_weights_optimizer_and_schedule(tmp_path):
    model, opt, sched, x = trained_pair()
    save_checkpoint(str(tmp_path), "latest", model, opt, {"epoch": 2, "note": "hi"})
    assert sorted(os.listdir(tmp_path)) == ["latest.pdopt", "latest.pdparams", "latest.states.json"]

    fresh, fresh_opt, fresh_sched, _ = trained_pair(seed=1, steps=0)
    states = load_checkpoint(str(tmp_path), "latest", fresh, fresh_opt)
    assert states["epoch"] == 2 and states["note"] == "hi" and states["format_version"] == 2
    for (k, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
    assert fresh_opt.get_lr() == pytest.approx(opt.get_lr())
    assert fresh_sched.last_epoch == sched.last_epoch == 3
    # the next step is the same in both: Adam moments came back too
    for m, o, s in ((model, opt, sched), (fresh, fresh_opt, fresh_sched)):
        m(x).mean().backward()
        o.step()
    for (k, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-7, err_msg=k)


def test_a_mixed_checkpoint_set_is_detected(tmp_path):
    model, opt, _, _ = trained_pair()
    save_checkpoint(str(tmp_path / "a"), "latest", model, opt, {"epoch": 1})
    other, other_opt, _, _ = trained_pair(seed=5)
    save_checkpoint(str(tmp_path / "b"), "latest", other, other_opt, {"epoch": 2})
    os.replace(tmp_path / "b" / "latest.pdparams", tmp_path / "a" / "latest.pdparams")
    with pytest.raises(CheckpointError, match="does not match .*latest.states.json"):
        load_checkpoint(str(tmp_path / "a"), "latest", model, opt)


def test_missing_files_and_wrong_shapes_are_explained(tmp_path):
    model, opt, _, _ = trained_pair()
    with pytest.raises(CheckpointError, match="no checkpoint 'latest'"):
        load_checkpoint(str(tmp_path), "latest", model)
    save_checkpoint(str(tmp_path), "latest", model, opt, {})
    wider = paddle.nn.Sequential(paddle.nn.Linear(4, 5), paddle.nn.ReLU(), paddle.nn.Linear(5, 1))
    with pytest.raises(CheckpointError, match=r"0.weight: checkpoint \[4, 3\] vs model \[4, 5\]"):
        load_checkpoint(str(tmp_path), "latest", wider)
    os.remove(tmp_path / "latest.pdopt")
    with pytest.raises(CheckpointError, match="lacks .*latest.pdopt"):
        load_checkpoint(str(tmp_path), "latest", model, opt)


def test_overwriting_is_by_rename_and_leaves_no_temp_files(tmp_path):
    model, opt, _, _ = trained_pair()
    save_checkpoint(str(tmp_path), "latest", model, opt, {"epoch": 1})
    inode = os.stat(tmp_path / "latest.pdparams").st_ino
    save_checkpoint(str(tmp_path), "latest", model, opt, {"epoch": 2})
    assert os.stat(tmp_path / "latest.pdparams").st_ino != inode  # replaced, not rewritten in place
    assert sorted(os.listdir(tmp_path)) == ["latest.pdopt", "latest.pdparams", "latest.states.json"]
    assert json.loads((tmp_path / "latest.states.json").read_text())["epoch"] == 2
