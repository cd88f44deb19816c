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


# ---------------------------------------------------------------- faults during a save (issue 22, defect 2)
from ocrforge.engine import checkpoint as ckpt  # noqa: E402
from ocrforge.engine.checkpoint import read_states, recover_checkpoints  # noqa: E402

NAMES = ["latest.pdopt", "latest.pdparams", "latest.states.json"]


class Killed(BaseException):
    """A kill: not an Exception, so no `except OSError` clean-up runs, as with SIGKILL."""


def kill_at(monkeypatch, point):
    """Make the next save die at ``point``: ("write", k) halfway through writing its k-th temporary
    (0 pdparams, 1 pdopt, 2 states.json), or ("rename", k) just before its k-th rename."""
    what, k = point
    calls = {"write": 0, "rename": 0}
    real_write, real_replace = ckpt._write_file, os.replace

    def write(path, data):
        if what == "write" and calls["write"] == k:
            with open(path, "wb") as f:
                f.write(data[: len(data) // 2])
            raise Killed(path)
        calls["write"] += 1
        real_write(path, data)

    def replace(src, dst):
        if what == "rename" and calls["rename"] == k:
            raise Killed(dst)
        calls["rename"] += 1
        real_replace(src, dst)

    monkeypatch.setattr(ckpt, "_write_file", write)
    monkeypatch.setattr(ckpt.os, "replace", replace)


POINTS = [("write", 0), ("write", 1), ("write", 2), ("rename", 0), ("rename", 1), ("rename", 2)]


@pytest.mark.parametrize("point", POINTS, ids=[f"{w}{k}" for w, k in POINTS])
def test_a_save_killed_at_any_point_leaves_a_whole_checkpoint(tmp_path, monkeypatch, point):
    """Before: killed while latest.pdopt.tmp<pid> was written, pdparams was already replaced and resuming
    failed ('does not match'); a killed write left its .tmp file behind for DVC to commit."""
    model, opt, _, _ = trained_pair()
    save_checkpoint(str(tmp_path), "latest", model, opt, {"epoch": 1})
    newer, newer_opt, _, _ = trained_pair(seed=5)
    kill_at(monkeypatch, point)
    with pytest.raises(Killed):
        save_checkpoint(str(tmp_path), "latest", newer, newer_opt, {"epoch": 2})
    monkeypatch.undo()
    assert any(".tmp" in n for n in os.listdir(tmp_path))

    done = recover_checkpoints(str(tmp_path))
    assert len(done) == 1 and sorted(os.listdir(tmp_path)) == NAMES
    # killed before states.json.tmp was whole: the previous checkpoint; after: the new one, finished
    expected, source = (1, model) if point[0] == "write" else (2, newer)
    assert done[0].startswith("removed" if expected == 1 else "finished")
    fresh, fresh_opt, _, _ = trained_pair(seed=9, steps=0)
    assert load_checkpoint(str(tmp_path), "latest", fresh, fresh_opt)["epoch"] == expected
    for (k, a), (_, b) in zip(source.state_dict().items(), fresh.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_what_to_do(tmp_path, monkeypatch):
    import errno

    model, opt, _, _ = trained_pair()
    save_checkpoint(str(tmp_path), "latest", model, opt, {"epoch": 1})
    real_write = ckpt._write_file

    def write(path, data):
        if path.endswith(".pdopt" + f".tmp{os.getpid()}"):
            raise OSError(errno.ENOSPC, "No space left on device", path)
        real_write(path, data)

    monkeypatch.setattr(ckpt, "_write_file", write)
    newer, newer_opt, _, _ = trained_pair(seed=5)
    with pytest.raises(CheckpointError, match=r"the disk is full: writing .*latest\.pdopt\.tmp\d+ failed \(No space "
                                              r"left on device\); checkpoint 'latest' was not saved and the previous "
                                              r"one in .* is kept, so a rerun resumes from it\. Free at least"):
        save_checkpoint(str(tmp_path), "latest", newer, newer_opt, {"epoch": 2})
    assert sorted(os.listdir(tmp_path)) == NAMES  # the pdparams temporary was removed: no space held
    assert load_checkpoint(str(tmp_path), "latest", model, opt)["epoch"] == 1


def test_stale_temporaries_are_removed_when_training_starts(tmp_path):
    from engine_tiny import make_trainer

    (tmp_path / "latest.pdparams.tmp4242").write_bytes(b"half a checkpoint")
    (tmp_path / "train_summary.json.tmp4242").write_text("{")
    (tmp_path / "config.yml.tmp17").write_text("Global:")
    make_trainer(tmp_path, epoch_num=1).fit()
    assert sorted(os.listdir(tmp_path)) == ["best_accuracy.pdopt", "best_accuracy.pdparams",
                                            "best_accuracy.states.json", *NAMES, "train_summary.json"]


@pytest.mark.parametrize("point", [("write", 1), ("rename", 1)], ids=["write1", "rename1"])
def test_a_training_killed_while_saving_resumes_to_the_same_weights(tmp_path, monkeypatch, point):
    from engine_tiny import make_trainer, weights

    straight = make_trainer(tmp_path / "straight", epoch_num=2, save_every_steps=4)
    straight.fit()

    def die_in_the_next_save(trainer, logs):
        if logs["global_step"] == 7:  # the save at step 8 (the second one) dies
            kill_at(monkeypatch, point)

    broken = make_trainer(tmp_path / "resumed", epoch_num=2, save_every_steps=4, on_step=[die_in_the_next_save])
    with pytest.raises(Killed):
        broken.fit()
    monkeypatch.undo()
    resumed = make_trainer(tmp_path / "resumed", epoch_num=2, save_every_steps=4)
    summary = resumed.fit()
    assert summary["global_steps"] == 12 and summary["resumed_from"].endswith("latest")
    a, b = weights(straight.model), weights(resumed.model)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-6, rtol=0, err_msg=k)
    assert not [n for n in os.listdir(tmp_path / "resumed") if ".tmp" in n]


def test_a_save_killed_by_sigkill_between_its_renames_resumes(tmp_path):
    """A real kill -9 of a process at the worst moment: its new pdparams renamed over the old one, the old
    states.json still in place."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_checkpoint import trained_pair
        from ocrforge.engine import checkpoint as ckpt
        model, opt, _, _ = trained_pair()
        ckpt.save_checkpoint({str(tmp_path)!r}, "latest", model, opt, {{"epoch": 1}})
        newer, newer_opt, _, _ = trained_pair(seed=5)
        real = os.replace
        def replace(src, dst):
            real(src, dst)
            if dst.endswith(".pdparams"):
                os.kill(os.getpid(), signal.SIGKILL)
        ckpt.os.replace = replace
        ckpt.save_checkpoint({str(tmp_path)!r}, "latest", newer, newer_opt, {{"epoch": 2}})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert json.loads((tmp_path / "latest.states.json").read_text())["epoch"] == 1  # the old one, mixed set
    recover_checkpoints(str(tmp_path))
    model, opt, _, _ = trained_pair(seed=9, steps=0)
    assert load_checkpoint(str(tmp_path), "latest", model, opt)["epoch"] == 2
    assert sorted(os.listdir(tmp_path)) == NAMES and read_states(str(tmp_path), "latest")["epoch"] == 2
