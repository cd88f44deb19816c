"""The training analysis on hand-made curves, on the user's figures, and wired into tiny real trainings."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from ocrforge.analysis import TrainingMonitor, Verdict, analyse_training

sys.path.insert(0, str(Path(__file__).parent / "engine"))


def curve(train, val_loss=None, metric=None, metric_key="val/acc", epochs=None):
    """History records as the trainer writes them, one per evaluated epoch."""
    records = []
    for i, loss in enumerate(train):
        r = {"epoch": epochs[i] if epochs else i + 1, "train/loss": float(loss)}
        if val_loss is not None:
            r["val/loss"] = float(val_loss[i])
        if metric is not None:
            r[metric_key] = float(metric[i])
        records.append(r)
    return records


USER_OVERFIT = curve([0.5, 0.2, 0.1, 0.05], val_loss=[0.6, 0.3, 0.25, 0.35])


def test_users_overfitting_example_is_flagged_at_the_fourth_evaluation_best_epoch_3():
    assert [analyse_training(USER_OVERFIT[:n]).status for n in (1, 2, 3)] == ["improving"] * 3
    v = analyse_training(USER_OVERFIT)
    assert (v.status, v.epoch, v.began_epoch, v.best_epoch, v.best_value, v.best_by) == (
        "overfitting", 4, 4, 3, 0.25, "val/loss")
    assert v.reason == ("overfitting since epoch 4: val/loss rose from 0.25 (epoch 3) to 0.35 (epoch 4) "
                        "while train loss fell from 0.1 to 0.05")
    assert v.recommendation.startswith("stop earlier: keep the checkpoint of epoch 3")


def test_overfitting_needs_overfit_patience_consecutive_worse_evaluations():
    assert analyse_training(USER_OVERFIT, overfit_patience=2).status == "improving"
    longer = curve([0.5, 0.2, 0.1, 0.05, 0.04], val_loss=[0.6, 0.3, 0.25, 0.35, 0.4])
    v = analyse_training(longer, overfit_patience=2)
    assert (v.status, v.epoch, v.began_epoch, v.best_epoch) == ("overfitting", 5, 4, 3)


def test_val_loss_rising_while_train_loss_rises_too_is_not_overfitting():
    v = analyse_training(curve([0.5, 0.3, 0.35], val_loss=[0.6, 0.3, 0.4]))
    assert v.status == "improving"


def test_a_falling_main_metric_flags_overfitting_with_the_best_metric_epoch():
    v = analyse_training(curve([1.0, 0.6, 0.4, 0.3, 0.2], metric=[0.5, 0.8, 0.85, 0.84, 0.8]))
    assert (v.status, v.epoch, v.began_epoch, v.best_epoch, v.best_by) == ("overfitting", 5, 5, 3, "val/acc")
    assert "best_accuracy" in v.recommendation


# A loss that improves until epoch 6 and then barely moves; the metric likewise.
CLEAN_LOSS = [1.0, 0.6, 0.4, 0.3, 0.25, 0.22, 0.219, 0.218, 0.218, 0.217, 0.217]
CLEAN_ACC = [0.5, 0.7, 0.8, 0.85, 0.88, 0.90, 0.901, 0.901, 0.902, 0.902, 0.902]


def test_clean_convergence_is_flagged_window_evaluations_after_the_last_real_gain():
    history = curve(CLEAN_LOSS, metric=CLEAN_ACC)
    assert analyse_training(history[:8], window=3).status == "improving"
    v = analyse_training(history, window=3)
    assert (v.status, v.epoch, v.began_epoch, v.best_epoch, v.best_value) == ("converged", 9, 6, 9, 0.902)
    assert v.reason.startswith("converged at epoch 9: since epoch 6 the train loss fell 0.3%/epoch")
    assert "about 9 epochs are enough" in v.recommendation


def test_convergence_counts_epochs_not_evaluations_when_evaluating_every_other_epoch():
    # The loss falls 3% per evaluation: 3%/epoch when evaluated every epoch (over rel_loss_tol=2%: not
    # converged, and the flat metric makes it stalled), 1.5%/epoch when the evaluations are 2 epochs apart.
    loss = [1.0 * 0.97 ** i for i in range(6)]
    flat = [0.9] * 6
    assert analyse_training(curve(loss, metric=flat)).status == "stalled"
    assert analyse_training(curve(loss, metric=flat, epochs=[2, 4, 6, 8, 10, 12])).status == "converged"


def noisy_improving():
    """Train loss falls 10%/epoch; val loss falls 7%/epoch with +-6% noise alternating around the trend."""
    epochs = np.arange(12)
    train = 1.0 * 0.9 ** epochs
    val = 0.8 * 0.93 ** epochs * (1 + 0.06 * (-1) ** epochs)
    return curve(train, val_loss=val)


def test_a_noisy_but_improving_validation_curve_is_not_overfitting():
    history = noisy_improving()
    ups = [b["val/loss"] > a["val/loss"] for a, b in zip(history, history[1:])]
    assert sum(ups) >= 5  # the curve really does go up and down
    statuses = [analyse_training(history[:n]).status for n in range(1, len(history) + 1)]
    assert "overfitting" not in statuses
    v = analyse_training(history)
    assert v.status == "improving" and v.epoch == 1
    assert v.recommendation.startswith("more epochs would help")
    # Each bump is about 5% above the running best. Under a 2% tolerance the first bump is flagged, as nothing
    # before it showed the curve's noise; once bumps like it have been seen on the way to a new best, they are not.
    strict = [analyse_training(history[:n], overfit_tol=0.02).status for n in range(1, len(history) + 1)]
    assert strict[2] == "overfitting"
    assert strict[6:] == ["improving"] * 6


def test_a_fall_within_the_runs_own_noise_is_not_overfitting_and_a_larger_one_is():
    """distill_det's students from random weights: the val metric climbs in jumps and falls back once on the way."""
    loss = [25.1, 23.3, 21.6, 20.1, 18.1, 16.4, 15.0, 14.5, 14.0]
    hmean = [0.0, 0.0, 0.0, 0.2475, 0.4038, 0.25, 0.6286, 0.5283, 0.45]
    within = analyse_training(curve(loss[:8], metric=hmean[:8], metric_key="val/hmean"))
    assert within.status == "stalled"  # fell 0.100 after the best; it had fallen 0.154 on the way up
    beyond = analyse_training(curve(loss, metric=hmean, metric_key="val/hmean"))
    assert (beyond.status, beyond.best_epoch, beyond.began_epoch) == ("overfitting", 7, 9)
    assert "more than its largest setback on the way to the best (0.154)" in beyond.reason


def test_a_rising_training_loss_is_diverging():
    v = analyse_training(curve([1.0, 0.6, 0.5, 0.8], val_loss=[1.0, 0.7, 0.6, 0.9]))
    assert (v.status, v.epoch, v.began_epoch) == ("diverging", 4, 4)
    assert v.reason == "diverging: the training loss rose from 0.5 (epoch 3) to 0.8 (epoch 4), over 1.5x"
    assert v.recommendation.startswith("lower the learning rate")
    assert analyse_training(curve([1.0, 0.6, 0.5, 0.7])).status == "improving"  # 1.4x: not yet


def test_a_non_finite_training_loss_is_diverging_from_that_epoch():
    v = analyse_training(curve([1.0, 0.8, float("nan"), float("inf")]))
    assert (v.status, v.epoch, v.began_epoch) == ("diverging", 3, 3)
    assert v.reason == "diverging: the training loss became nan at epoch 3"


def users_run():
    """The user's 100-epoch recogniser run: loss about 93 at epoch 2, 17 at 10, 1.7 at 50, 0.85 at 100
    (interpolated as a power law, linear in log-log; epoch 1 extrapolated), norm_edit_dis 0.90 at 30 and
    0.98 at 60 (linear between points; the start 0.3 at 1 and 0.75 at 10, and 0.985 at 100, are assumed)."""
    epochs = np.arange(1, 101)
    loss = np.exp(np.interp(np.log(epochs), np.log([1, 2, 10, 50, 100]), np.log([194, 93, 17, 1.7, 0.85])))
    ned = np.interp(epochs, [1, 10, 30, 60, 100], [0.3, 0.75, 0.90, 0.98, 0.985])
    return curve(loss, metric=ned, metric_key="val/norm_edit_dis", epochs=[int(e) for e in epochs])


def test_users_figures_converge_just_after_norm_edit_dis_reaches_0_98_at_epoch_60():
    history = users_run()
    assert history[1]["train/loss"] == pytest.approx(93) and history[49]["train/loss"] == pytest.approx(1.7)
    assert analyse_training(history[:60], main_indicator="norm_edit_dis").status == "improving"
    v = analyse_training(history, main_indicator="norm_edit_dis")
    assert v.status == "converged"
    assert 60 <= v.epoch <= 64 and 57 <= v.began_epoch <= 61
    assert v.best_by == "val/norm_edit_dis" and v.best_epoch == 100


def test_records_without_evaluation_are_skipped():
    history = curve([1.0, 0.6, 0.4, 0.35], val_loss=[0.9, 0.5, 0.4, 0.6])
    for r in history[::2]:
        del r["val/loss"]  # evaluated on epochs 2 and 4 only
    v = analyse_training(history)
    assert (v.evaluations, v.status, v.best_epoch, v.epoch) == (2, "overfitting", 2, 4)


def test_wrong_keys_say_what_is_missing_and_what_to_pass():
    with pytest.raises(KeyError, match=r"epochs \[1, 2\] have no 'train/total_loss'.*pass loss_key="):
        analyse_training(curve([1.0, 0.5]), loss_key="train/total_loss")
    with pytest.raises(KeyError, match=r"'val/hmean' is missing .*\['val/acc'\]"):
        analyse_training(curve([1.0, 0.5], metric=[0.1, 0.2]), main_indicator="hmean")
    with pytest.raises(ValueError, match="history is empty"):
        analyse_training([])
    with pytest.raises(TypeError, match=r"unknown analysis settings \['windows'\]"):
        TrainingMonitor(windows=3)
    with pytest.raises(ValueError, match=r"stop_on \['overfit'\]"):
        TrainingMonitor(stop_on=["overfit"])


def test_monitor_keeps_the_verdict_logs_changes_and_stops_only_when_asked(caplog):
    watching = TrainingMonitor()
    stopping = TrainingMonitor.from_params({"stop_on_overfitting": True, "overfit_tol": 0.1})
    with caplog.at_level(logging.INFO, logger="ocrforge.analysis"):
        answers = [(watching(n, USER_OVERFIT[:n]), stopping(n, USER_OVERFIT[:n])) for n in (1, 2, 3, 4)]
    assert answers[:3] == [(None, None)] * 3
    assert answers[3][0] is None and answers[3][1].startswith("overfitting since epoch 4")
    assert isinstance(watching.verdict, Verdict) and watching.verdict.status == "overfitting"
    changes = [r.getMessage() for r in caplog.records if r.name == "ocrforge.analysis"]
    assert len(changes) == 4  # improving, then overfitting, for each of the two monitors
    assert changes[-1].startswith("after epoch 4 the run is overfitting")
    assert watching.finish().status == "overfitting"


# ---------------------------------------------------------------- tiny real trainings


def test_tiny_training_early_stopping_and_the_verdict_agree_on_the_best_epoch(tmp_path):
    from engine_tiny import ScriptedMetric, make_trainer

    # The model and its training loss are real; the validation metric is scripted: it peaks at epoch 3.
    monitor = TrainingMonitor(metric_drop_tol=0.05)
    trainer = make_trainer(tmp_path / "patience", epoch_num=8, early_stopping_patience=2,
                           metric=ScriptedMetric([0.5, 0.7, 0.8, 0.7, 0.6, 0.5]), on_eval=[monitor])
    summary = trainer.fit()
    assert summary["epochs_run"] == 5 and summary["best_epoch"] == 3
    losses = [r["train/loss"] for r in trainer.state.history]
    assert losses[3] < losses[2]  # the real training loss kept falling, so the falling metric is overfitting
    v = monitor.finish()
    assert (v.status, v.began_epoch, v.best_epoch, v.best_by) == ("overfitting", 4, 3, "val/acc")

    stopper = TrainingMonitor(metric_drop_tol=0.05, stop_on=["overfitting"])
    summary = make_trainer(tmp_path / "monitor", epoch_num=8, on_eval=[stopper],
                           metric=ScriptedMetric([0.5, 0.7, 0.8, 0.7, 0.6, 0.5])).fit()
    assert summary["epochs_run"] == 4 and summary["best_epoch"] == 3
    assert summary["stopped_by"] == "training_monitor"
    assert summary["stopped_reason"].startswith("overfitting since epoch 4: val/acc fell from 0.8 (epoch 3) to 0.7")


def test_tiny_training_stops_when_the_real_validation_loss_turns_against_the_training_loss(tmp_path):
    """A real run whose validation labels are the training task's opposite: the better the model fits the
    training data, the higher its validation loss, so the monitor stops it at the first clear rise."""
    import paddle
    from engine_tiny import make_trainer

    def flipped_val_loss(preds, batch):
        return paddle.nn.functional.cross_entropy(preds["logits"], 1 - batch[1].reshape([-1, 1]).astype("int64"))

    monitor = TrainingMonitor(stop_on=["overfitting"])
    trainer = make_trainer(tmp_path, epoch_num=8, val_loss=flipped_val_loss, on_eval=[monitor])
    summary = trainer.fit()
    h = trainer.state.history
    stop = summary["epochs_run"]
    assert stop < 8
    assert h[stop - 1]["val/loss"] > 1.1 * min(r["val/loss"] for r in h[: stop - 1])
    assert h[stop - 1]["train/loss"] < h[monitor.verdict.best_epoch - 1]["train/loss"]
    assert summary["stopped_reason"].startswith(f"overfitting since epoch {stop}: val/loss rose from")
    assert summary["stopped_by"] == "training_monitor"
    assert monitor.verdict.best_by == "val/loss"


def test_saturated_metric_does_not_ask_for_more_epochs():
    """A validation metric at its ceiling (1.0) cannot show gains: the advice says so instead of 'train longer'."""
    history = [
        {"epoch": 1, "train/loss": 4.5, "val/loss": 0.03, "val/acc": 1.0},
        {"epoch": 2, "train/loss": 3.6, "val/loss": 0.02, "val/acc": 1.0},
    ]
    verdict = analyse_training(history)
    assert verdict.status == "stalled"
    assert "reached 1 at epoch 1, its ceiling" in verdict.recommendation
    assert "train longer" not in verdict.recommendation


def test_a_val_metric_that_fell_is_stalled_not_still_improving():
    """The user's detector: val hmean 0.9153 then 0.9143 under a falling train loss was called "still improving
    ... train longer"."""
    v = analyse_training(curve([1.942, 1.255], metric=[0.9153, 0.9143], metric_key="val/hmean"))
    assert (v.status, v.epoch, v.began_epoch, v.best_epoch, v.best_value) == ("stalled", 2, 2, 1, 0.9153)
    assert v.reason == ("stalled: val/hmean fell to 0.9143 at epoch 2 from its best 0.9153 (epoch 1), a fall within "
                        "tolerance, not yet overfitting")
    assert v.recommendation.startswith("more epochs at this learning rate are unlikely to raise val/hmean: keep "
                                       "best_accuracy (epoch 1)")
    assert "train longer" not in v.recommendation and "raise the epochs" not in v.recommendation
    # the same end after a real climb: the climb is over, the last value fell
    longer = analyse_training(curve([3.0, 2.4, 1.942, 1.255], metric=[0.85, 0.90, 0.9153, 0.9143],
                                    metric_key="val/hmean"))
    assert (longer.status, longer.best_epoch) == ("stalled", 3)
    assert longer.reason.endswith("not yet overfitting, while the train loss fell 19%/epoch")


def test_improving_needs_the_latest_evaluation_to_be_a_gain_over_the_window():
    rising = curve([2.0, 1.5, 1.2], metric=[0.80, 0.85, 0.9153], metric_key="val/hmean")
    assert analyse_training(rising).status == "improving"
    creeping = curve([2.0, 1.5, 1.2, 1.0, 0.8], metric=[0.80, 0.9, 0.901, 0.902, 0.903], metric_key="val/hmean")
    v = analyse_training(creeping)  # a new best at every evaluation, but +0.003 over the last 3
    assert (v.status, v.began_epoch) == ("stalled", 3)  # no gain over 0.005 after epoch 2
    assert v.reason == ("stalled: over the last 3 evaluation(s) the best val/hmean gained +0.003, less than 0.005, "
                        "while the train loss fell 16%/epoch")
