"""The stopping rules (ocrforge.engine.callbacks) on their own and in tiny real trainings."""

import numpy as np
import pytest

import ocrforge  # noqa: F401

from engine_tiny import blank_val_loader, make_trainer, weights
from ocrforge.engine.callbacks import EarlyStopping, Plateau, WallTimeLimit, plateau
from ocrforge.engine.checkpoint import load_checkpoint, read_states


class Interrupt(RuntimeError):
    pass


def interrupt_at(global_step):
    def on_step(trainer, logs):
        if logs["global_step"] == global_step:
            raise Interrupt(f"killed at {global_step}")
    return on_step


def history(*values, key="acc"):
    return [{"epoch": i + 1, f"val/{key}": v} for i, v in enumerate(values)]


# ---------------------------------------------------------------- the rules on a history


def test_plateau_counts_evaluations_since_the_last_gain_above_min_delta():
    assert plateau(history(0.5, 0.7, 0.6, 0.65), "acc") == Plateau(2, 0.7, 2)
    # gains of 0.0004 are below min_delta: they do not reset the count, though the best still moves; the gain
    # is measured from the last evaluation that improved (0.9), so a creep adds up
    assert plateau(history(0.9, 0.9004, 0.9008), "acc", min_delta=0.001) == Plateau(2, 0.9008, 3)
    assert plateau(history(0.9, 0.9004, 0.9008, 0.9012), "acc", min_delta=0.001) == Plateau(0, 0.9012, 4)
    assert plateau([{"epoch": 1, "train/loss": 1.0}], "acc") == Plateau(0, None, None)


def test_records_without_an_evaluation_are_not_counted():
    records = [{"epoch": 1, "train/loss": 2.0}, {"epoch": 2, "val/acc": 0.5}, {"epoch": 3, "train/loss": 1.0},
               {"epoch": 4, "val/acc": 0.5}]
    assert plateau(records, "acc") == Plateau(1, 0.5, 2)


def test_early_stopping_says_why_with_the_best_value_and_epoch():
    stop = EarlyStopping("hmean", patience=2, min_delta=0.001)
    assert stop(3, history(0.9, 0.9153, 0.9143, key="hmean")) is None
    assert stop(4, history(0.9, 0.9153, 0.9143, 0.916, key="hmean")) == (
        "no val improvement > 0.001 for 2 evaluations (best hmean 0.916 at epoch 4; early_stopping_patience=2)")


def test_a_metric_at_its_ceiling_stops_at_once():
    stop = EarlyStopping("acc", patience=3, ceiling=1.0)
    assert stop(1, history(0.98)) is None
    assert stop(2, history(0.98, 1.0)) == "val acc reached its ceiling 1 at epoch 2: no later evaluation can improve on it"
    assert EarlyStopping("acc", patience=3)(2, history(0.98, 1.0)) is None  # no ceiling: patience decides


def test_wrong_settings_are_refused():
    with pytest.raises(ValueError, match="patience must be >= 1 evaluation, got 0"):
        EarlyStopping("acc", patience=0)
    with pytest.raises(ValueError, match="max_minutes must be > 0, got 0"):
        WallTimeLimit(0)


# ---------------------------------------------------------------- tiny real trainings

def test_early_stopping_ends_a_real_run_whose_val_metric_is_flat(tmp_path):
    trainer = make_trainer(tmp_path, epoch_num=8, early_stopping_patience=2, eval_loader=blank_val_loader())
    summary = trainer.fit()
    assert [h["val/acc"] for h in trainer.state.history] == [0.5, 0.5, 0.5]
    assert summary["epochs_run"] == 3 and summary["global_steps"] == 18 and summary["epochs_cap"] == 8
    assert summary["stopped_by"] == "early_stopping"
    assert summary["stopped_reason"] == ("no val improvement for 2 evaluations (best acc 0.5 at epoch 1; "
                                         "early_stopping_patience=2)")
    assert (summary["best_epoch"], summary["best_metric"]) == (1, 0.5)
    latest = read_states(str(tmp_path), "latest")["state"]
    assert (latest["epoch"], latest["stopped_by"]) == (3, "early_stopping")
    assert read_states(str(tmp_path), "best_accuracy")["state"]["epoch"] == 1


def test_patience_counts_evaluations_not_epochs(tmp_path):
    summary = make_trainer(tmp_path, epoch_num=12, eval_batch_epoch=2, early_stopping_patience=2,
                           eval_loader=blank_val_loader()).fit()
    assert summary["epochs_run"] == 6 and summary["best_epoch"] == 2  # evaluations at epochs 2, 4, 6


def test_a_resumed_run_stops_at_the_same_epoch_as_an_uninterrupted_one(tmp_path):
    straight = make_trainer(tmp_path / "straight", epoch_num=8, early_stopping_patience=3, save_every_steps=4,
                            eval_loader=blank_val_loader())
    expected = straight.fit()
    assert expected["epochs_run"] == 4

    # killed in epoch 4 (global step 21), after three evaluations of which two brought no improvement
    broken = make_trainer(tmp_path / "resumed", epoch_num=8, early_stopping_patience=3, save_every_steps=4,
                          eval_loader=blank_val_loader(), on_step=[interrupt_at(21)])
    with pytest.raises(Interrupt):
        broken.fit()
    saved = read_states(str(tmp_path / "resumed"), "latest")["state"]
    assert (saved["epoch"], saved["step_in_epoch"], saved["global_step"]) == (3, 2, 20)
    assert plateau(saved["history"], "acc").evals_without_improvement == 2

    resumed = make_trainer(tmp_path / "resumed", epoch_num=8, early_stopping_patience=3, save_every_steps=4,
                           eval_loader=blank_val_loader())
    summary = resumed.fit()
    assert summary["resumed_from"].endswith("latest")
    for key in ("epochs_run", "global_steps", "best_epoch", "stopped_reason", "stopped_by"):
        assert summary[key] == expected[key], key
    a, b = weights(straight.model), weights(resumed.model)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-6, rtol=0, err_msg=k)


def test_max_minutes_stops_between_steps_with_whole_checkpoints(tmp_path):
    trainer = make_trainer(tmp_path, epoch_num=3, max_minutes=1e-9)
    summary = trainer.fit()
    assert summary["stopped_by"] == "max_minutes"
    assert summary["stopped_reason"] == "wall-time cap max_minutes=1e-09 reached in epoch 1 after step 1"
    assert summary["global_steps"] == 1 and summary["epochs_run"] == 1
    # the shortened epoch is the last one: it is evaluated, so best_accuracy exists for the stages after
    assert [sorted(k for k in h if k.startswith("val/")) for h in trainer.state.history] == [["val/acc", "val/total"]]
    for name in ("latest", "best_accuracy"):
        states = load_checkpoint(str(tmp_path), name, make_trainer(tmp_path / "x", epoch_num=3).model)
        assert states["state"]["global_step"] == 1 and states["state"]["stopped_by"] == "max_minutes", name
    again = make_trainer(tmp_path, epoch_num=3, max_minutes=1e-9, on_step=[interrupt_at(2)]).fit()
    assert again["global_steps"] == 1  # a stopped run is finished: resuming it trains no more


def test_max_minutes_keeps_the_best_checkpoint_of_the_evaluations_so_far(tmp_path):
    trainer = make_trainer(tmp_path, epoch_num=4, max_minutes=1.5, save_every_steps=4)
    trainer.elapsed_s = lambda: 10.0 * trainer.state.global_step  # a clock of 10 s per step: 90 s at step 9
    summary = trainer.fit()
    assert summary["stopped_reason"] == "wall-time cap max_minutes=1.5 reached in epoch 2 after step 3"
    assert summary["global_steps"] == 9 and summary["epochs_run"] == 2
    hist = trainer.state.history
    assert [h["epoch"] for h in hist] == [1, 2] and all("val/acc" in h for h in hist)
    best = max(range(2), key=lambda i: (hist[i]["val/acc"], -i))
    assert summary["best_epoch"] == best + 1
    assert read_states(str(tmp_path), "best_accuracy")["state"]["epoch"] == best + 1
    latest = read_states(str(tmp_path), "latest")["state"]
    assert (latest["epoch"], latest["step_in_epoch"], latest["global_step"]) == (2, 0, 9)


def test_without_a_main_indicator_early_stopping_is_off_with_a_warning(tmp_path, caplog):
    class NoIndicator:
        def __call__(self, post_result, batch):
            pass

        def get_metric(self):
            return {}

    with caplog.at_level("WARNING", logger="ocrforge.engine"):
        trainer = make_trainer(tmp_path, epoch_num=1, early_stopping_patience=2, metric=NoIndicator())
    assert trainer.on_eval == []
    assert "early_stopping_patience=2 is ignored: the metric has no main_indicator" in caplog.text


def test_a_checkpoint_written_before_the_stopping_callbacks_still_resumes(tmp_path):
    """States of the previous trainer held evals_without_improvement, now read from the history instead."""
    import json

    with pytest.raises(Interrupt):
        make_trainer(tmp_path, epoch_num=2, save_every_steps=3, on_step=[interrupt_at(8)]).fit()
    path = tmp_path / "latest.states.json"
    record = json.loads(path.read_text())
    del record["state"]["stopped_by"]
    record["state"]["evals_without_improvement"] = 1
    path.write_text(json.dumps(record))
    summary = make_trainer(tmp_path, epoch_num=2, save_every_steps=3).fit()
    assert summary["global_steps"] == 12 and summary["resumed_from"].endswith("latest")
    assert summary["stopped_by"] == "epoch_cap"
