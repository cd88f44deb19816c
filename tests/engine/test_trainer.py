import json
import math
import os

import numpy as np
import pytest

from engine_tiny import AccMetric, ScriptedMetric, TinyLoss, make_trainer, weights
from ocrforge.engine import NonFiniteLossError
from ocrforge.engine.checkpoint import read_states


class Interrupt(RuntimeError):
    pass


def interrupt_at(global_step):
    def on_step(trainer, logs):
        if logs["global_step"] == global_step:
            raise Interrupt(f"killed at {global_step}")
    return on_step


def test_a_few_epochs_lower_the_loss_and_write_checkpoints_and_summary(tmp_path):
    trainer = make_trainer(tmp_path, epoch_num=3)
    summary = trainer.fit()
    hist = trainer.state.history
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert hist[-1]["train/loss"] < 0.8 * hist[0]["train/loss"]
    assert hist[-1]["val/acc"] >= 0.9
    assert summary["epochs_run"] == 3 and summary["global_steps"] == 18
    assert summary["stopped_reason"] == "epoch cap reached (epochs=3)" and summary["stopped_by"] == "epoch_cap"
    assert summary["main_indicator"] == "acc" and summary["epochs_cap"] == 3
    assert summary["samples_per_s"] > 0 and 0 <= summary["data_wait_share"] < 1
    assert summary["best_epoch"] in (1, 2, 3) and summary["best_metric"] == max(h["val/acc"] for h in hist)
    assert json.loads((tmp_path / "train_summary.json").read_text())["global_steps"] == 18
    latest = read_states(str(tmp_path), "latest")
    assert latest["state"]["epoch"] == 3 and latest["state"]["step_in_epoch"] == 0
    best = read_states(str(tmp_path), "best_accuracy")
    assert best["state"]["epoch"] == summary["best_epoch"]


@pytest.mark.parametrize("num_workers", [0, 1])
def test_resume_after_an_interruption_reaches_the_same_weights(tmp_path, num_workers):
    straight = make_trainer(tmp_path / "straight", epoch_num=3, save_every_steps=4, num_workers=num_workers)
    straight.fit()

    broken = make_trainer(tmp_path / "resumed", epoch_num=3, save_every_steps=4, num_workers=num_workers,
                          on_step=[interrupt_at(10)])
    with pytest.raises(Interrupt):
        broken.fit()
    # latest was written at global step 8: epoch 2 (index 1) after 2 of its 6 batches
    st = read_states(str(tmp_path / "resumed"), "latest")["state"]
    assert (st["epoch"], st["step_in_epoch"], st["global_step"]) == (1, 2, 8)

    seen = []
    resumed = make_trainer(tmp_path / "resumed", epoch_num=3, save_every_steps=4, num_workers=num_workers,
                           on_step=[lambda tr, logs: seen.append((logs["epoch"], logs["step"], logs["global_step"]))])
    summary = resumed.fit()
    assert seen[0] == (2, 3, 9) and seen[-1] == (3, 6, 18) and len(seen) == 10
    assert summary["resumed_from"].endswith("latest") and summary["global_steps"] == 18
    a, b = weights(straight.model), weights(resumed.model)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-6, rtol=0, err_msg=k)
    for h1, h2 in zip(straight.state.history, resumed.state.history):
        assert h1["train/loss"] == pytest.approx(h2["train/loss"], abs=1e-6)
        assert h1["val/acc"] == h2["val/acc"]


def test_resume_of_a_finished_run_trains_no_more(tmp_path):
    make_trainer(tmp_path, epoch_num=2).fit()
    again = make_trainer(tmp_path, epoch_num=2, on_step=[interrupt_at(1)])
    summary = again.fit()  # would raise if a single step ran
    assert summary["epochs_run"] == 2 and summary["global_steps"] == 12


def test_resume_false_starts_afresh(tmp_path):
    make_trainer(tmp_path, epoch_num=1).fit()
    summary = make_trainer(tmp_path, epoch_num=1, resume=False).fit()
    assert summary["resumed_from"] is None and summary["global_steps"] == 6


def test_nan_loss_stops_with_the_place_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path, epoch_num=3, save_every_steps=1, loss=TinyLoss(nan_at_call=8))
    with pytest.raises(NonFiniteLossError) as err:
        trainer.fit()
    msg = str(err.value)
    assert "epoch 2, step 2 (global step 8)" in msg and "loss=nan" in msg and "ce=" in msg
    assert "latest was left as it was" in msg
    st = read_states(str(tmp_path), "latest")["state"]
    assert (st["epoch"], st["step_in_epoch"], st["global_step"]) == (1, 1, 7)
    fresh = make_trainer(tmp_path, epoch_num=3)
    from ocrforge.engine.checkpoint import load_checkpoint
    load_checkpoint(str(tmp_path), "latest", fresh.model, fresh.optimizer)
    assert all(np.isfinite(v).all() for v in weights(fresh.model).values())


def test_early_stopping_stops_after_patience_evaluations_without_improvement(tmp_path):
    metric = ScriptedMetric([0.5, 0.7, 0.6, 0.65, 0.9, 0.95])
    summary = make_trainer(tmp_path, epoch_num=6, early_stopping_patience=2, metric=metric).fit()
    assert summary["epochs_run"] == 4
    assert summary["best_epoch"] == 2 and summary["best_metric"] == 0.7
    assert summary["stopped_reason"] == ("no val improvement for 2 evaluations (best acc 0.7 at epoch 2; "
                                         "early_stopping_patience=2)")
    assert summary["stopped_by"] == "early_stopping"
    assert read_states(str(tmp_path), "best_accuracy")["state"]["epoch"] == 2


def test_without_patience_a_plateau_does_not_stop(tmp_path):
    metric = ScriptedMetric([0.5, 0.4, 0.4, 0.4])
    summary = make_trainer(tmp_path, epoch_num=4, metric=metric).fit()
    assert summary["epochs_run"] == 4 and summary["stopped_reason"] == "epoch cap reached (epochs=4)"


def test_on_eval_callbacks_see_the_history_and_can_stop(tmp_path):
    calls = []

    def overfitting_guard(epoch, history):
        calls.append((epoch, [h["epoch"] for h in history], "val/acc" in history[-1]))
        return "val loss rising" if epoch == 2 else None

    summary = make_trainer(tmp_path, epoch_num=5, eval_batch_epoch=1, on_eval=[overfitting_guard]).fit()
    assert calls == [(1, [1], True), (2, [1, 2], True)]
    assert summary["epochs_run"] == 2
    assert summary["stopped_reason"] == "val loss rising" and summary["stopped_by"] == "overfitting_guard"


def test_eval_every_n_epochs_and_after_the_last(tmp_path):
    trainer = make_trainer(tmp_path, epoch_num=3, eval_batch_epoch=2)
    trainer.fit()
    assert ["val/acc" in h for h in trainer.state.history] == [False, True, True]


def test_loggers_get_every_epoch_record_and_the_end_of_the_run(tmp_path):
    """A logger (ocrforge.engine.loggers' protocol) sees the start, each epoch's history record and the summary;
    an exception still reaches finish, with no summary."""

    class Recorder:
        def __init__(self):
            self.events = []

        def start(self, trainer, resumed):
            self.events.append(("start", resumed))

        def log_epoch(self, record):
            self.events.append(("epoch", dict(record)))

        def finish(self, summary):
            self.events.append(("finish", None if summary is None else summary["epochs_run"]))

    recorder = Recorder()
    trainer = make_trainer(tmp_path / "out", epoch_num=2, loggers=[recorder])
    trainer.fit()
    assert recorder.events == [("start", False), *(("epoch", r) for r in trainer.state.history), ("finish", 2)]
    assert [r["epoch"] for r in trainer.state.history] == [1, 2] and "val/acc" in trainer.state.history[-1]

    broken = Recorder()
    with pytest.raises(Interrupt):
        make_trainer(tmp_path / "out2", epoch_num=2, loggers=[broken], on_step=[interrupt_at(3)]).fit()
    assert broken.events[0] == ("start", False) and broken.events[-1] == ("finish", None)


def test_dvclive_logs_every_epoch_metric_and_survives_resume(tmp_path):
    live_dir = tmp_path / "live"

    def val_loss(preds, batch):
        import paddle
        ce = paddle.nn.functional.cross_entropy(preds["logits"], batch[1].reshape([-1, 1]).astype("int64"))
        return {"loss": ce}

    broken = make_trainer(tmp_path / "out", epoch_num=3, use_dvclive=True, dvclive_dir=str(live_dir),
                          save_every_steps=2, val_loss=val_loss, on_step=[interrupt_at(9)])
    with pytest.raises(Interrupt):
        broken.fit()
    make_trainer(tmp_path / "out", epoch_num=3, use_dvclive=True, dvclive_dir=str(live_dir),
                 save_every_steps=2, val_loss=val_loss).fit()
    plots = live_dir / "plots" / "metrics"
    names = {str(p.relative_to(plots)) for p in plots.rglob("*.tsv")}
    assert names == {"train/loss.tsv", "train/ce.tsv", "train/penalty.tsv", "train/lr.tsv",
                     "train/samples_per_s.tsv", "train/data_wait_share.tsv", "val/acc.tsv", "val/total.tsv",
                     "val/loss.tsv"}
    rows = (plots / "train" / "loss.tsv").read_text().splitlines()
    assert rows[0].split("\t") == ["step", "loss"]
    assert [r.split("\t")[0] for r in rows[1:]] == ["1", "2", "3"]
    val_loss_values = [float(r.split("\t")[1]) for r in (plots / "val" / "loss.tsv").read_text().splitlines()[1:]]
    assert len(val_loss_values) == 3 and all(math.isfinite(v) and v > 0 for v in val_loss_values)
    metrics = json.loads((live_dir / "metrics.json").read_text())
    assert metrics["step"] == 3 and "summary" in metrics and metrics["summary"]["samples_per_s"] > 0
    assert not os.path.exists(tmp_path / "dvc.yaml") and not os.path.exists(live_dir / "dvc.yaml")


def test_train_metric_during_training(tmp_path):
    trainer = make_trainer(tmp_path, epoch_num=2, cal_metric_during_train=True)
    trainer.fit()
    assert trainer.state.history[0]["train/total"] == 24.0
    assert 0 <= trainer.state.history[-1]["train/acc"] <= 1


def test_config_without_required_keys_is_refused(tmp_path):
    from engine_tiny import TinyNet, make_loader
    from ocrforge.engine import Trainer
    with pytest.raises(KeyError, match="Global.save_model_dir is required"):
        Trainer({"Global": {"epoch_num": 1}}, TinyNet(), TinyLoss(), make_loader())


def test_an_explicit_checkpoint_that_is_missing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="Global.checkpoints = .*nope"):
        make_trainer(tmp_path, epoch_num=1, checkpoints=str(tmp_path / "nope")).fit()


def test_amp_is_ignored_on_cpu(tmp_path, caplog):
    trainer = make_trainer(tmp_path, epoch_num=1, use_amp=True)
    assert trainer.use_amp is False and trainer.scaler is None
    assert "mixed precision is off" in caplog.text


def test_paddleocrs_own_global_keys_are_named_as_ignored_not_dropped_silently(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="ocrforge.engine"):
        make_trainer(tmp_path, epoch_num=1, eval_batch_step=[0, 400], save_epoch_step=10)
    assert "Global.eval_batch_step is PaddleOCR's and is ignored here; ocrforge uses Global.eval_batch_epoch" \
        in caplog.text
    assert "Global.save_epoch_step is PaddleOCR's and is ignored here" in caplog.text
    assert "print_batch_step" not in caplog.text


def test_the_projects_configs_set_no_key_the_engine_ignores(repo_root):
    from ocrforge.config import load_config
    from ocrforge.engine.trainer import ignored_global_keys

    own = [f for f in sorted((repo_root / "configs").rglob("*.yml")) if f.name != "en_PP-OCRv3_det_cml.yml"]
    assert own
    for path in own:
        assert ignored_global_keys(load_config(path).get("Global")) == [], path


class PlainLoader:
    """A loader with set_epoch(epoch) but no start_step: the trainer must draw and drop on resume."""

    def __init__(self):
        from engine_tiny import make_loader
        self.inner = make_loader()
        self.drawn = 0

    def set_epoch(self, epoch):
        self.inner.batch_sampler.set_epoch(epoch)

    def __len__(self):
        return len(self.inner)

    def __iter__(self):
        for batch in self.inner:
            self.drawn += 1
            yield batch


def test_resume_with_a_loader_without_start_step_draws_and_drops(tmp_path):
    from engine_tiny import TinyNet, argmax_post, make_config
    from ocrforge.engine import Trainer, seed_everything

    def build(out, on_step=()):
        cfg = make_config(out, epoch_num=2, save_every_steps=3)
        seed_everything(11)
        return Trainer(cfg, TinyNet(), TinyLoss(), PlainLoader(), post_process=argmax_post, metric=AccMetric(),
                       on_step=on_step)

    straight = build(tmp_path / "a")
    straight.fit()
    with pytest.raises(Interrupt):
        build(tmp_path / "b", on_step=[interrupt_at(11)]).fit()
    resumed = build(tmp_path / "b")
    resumed.fit()
    # latest was saved at global step 9 (epoch 2, step 3): epoch 2's first 3 batches are drawn and dropped
    assert resumed.train_loader.drawn == 6 and resumed.state.global_step == 12
    a, b = weights(straight.model), weights(resumed.model)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-6, rtol=0, err_msg=k)


def test_a_resumed_run_reports_the_whole_run(tmp_path):
    """Issue 22, defect 10: the train metric of a resumed epoch counts its steps before the interruption too,
    and the wall time is the whole run's, not the last process's."""
    import time

    straight = make_trainer(tmp_path / "straight", epoch_num=2, save_every_steps=4, cal_metric_during_train=True)
    straight.fit()
    slow = [lambda tr, logs: time.sleep(0.15), interrupt_at(10)]
    broken = make_trainer(tmp_path / "resumed", epoch_num=2, save_every_steps=4, cal_metric_during_train=True,
                          on_step=slow)
    with pytest.raises(Interrupt):
        broken.fit()
    before = read_states(str(tmp_path / "resumed"), "latest")
    assert before["state"]["global_step"] == 8 and before["state"]["elapsed_s"] > 1.0  # 8 steps of 0.15 s at least
    resumed = make_trainer(tmp_path / "resumed", epoch_num=2, save_every_steps=4, cal_metric_during_train=True)
    t0 = time.perf_counter()
    summary = resumed.fit()
    this_process = time.perf_counter() - t0
    # epoch 2 was resumed after 2 of its 6 batches: its train metric still covers all 24 samples
    assert [h["train/total"] for h in resumed.state.history] == [24.0, 24.0]
    for h1, h2 in zip(straight.state.history, resumed.state.history):
        assert h1["train/acc"] == h2["train/acc"]
    assert summary["wall_time_s"] == pytest.approx(before["state"]["elapsed_s"] + this_process, abs=0.5)
    assert json.loads((tmp_path / "resumed" / "train_summary.json").read_text())["wall_time_s"] == summary["wall_time_s"]


def test_pickled_generator_states_of_an_old_checkpoint_are_never_unpickled(tmp_path, caplog):
    """Issue 22, defect 12: states.json from a model folder of someone else must not run code on resume."""
    import base64
    import pickle

    with pytest.raises(Interrupt):
        make_trainer(tmp_path, epoch_num=2, save_every_steps=3, on_step=[interrupt_at(4)]).fit()
    proof = tmp_path / "code_ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(proof), "w"))

    path = tmp_path / "latest.states.json"
    record = json.loads(path.read_text())
    record["rng"] = base64.b64encode(pickle.dumps([Payload()])).decode("ascii")  # format 1 stored it so
    path.write_text(json.dumps(record))
    with caplog.at_level("WARNING", logger="ocrforge.engine"):
        summary = make_trainer(tmp_path, epoch_num=2, save_every_steps=3).fit()
    assert not proof.exists()
    assert summary["global_steps"] == 12 and summary["resumed_from"].endswith("latest")
    assert "old pickled form, which is not loaded (unpickling can run code)" in caplog.text
    assert isinstance(read_states(str(tmp_path), "latest")["rng"], list)  # rewritten as JSON
