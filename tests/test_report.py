"""The training report: markdown for people, JSON of the same verdict for DVC metrics."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from ocrforge.analysis import TrainingMonitor, analyse_training, history_from_checkpoint
from ocrforge.report import format_training_report, training_report_data, write_training_report

sys.path.insert(0, str(Path(__file__).parent / "engine"))

HISTORY = [
    {"epoch": 1, "train/loss": 0.5, "val/loss": 0.6, "val/acc": 0.5},
    {"epoch": 2, "train/loss": 0.2, "val/loss": 0.3, "val/acc": 0.7},
    {"epoch": 3, "train/loss": 0.1, "val/loss": 0.25, "val/acc": 0.8},
    {"epoch": 4, "train/loss": 0.05, "val/loss": 0.35, "val/acc": 0.79},
]
SUMMARY = {"main_indicator": "acc", "best_metric": 0.8, "best_epoch": 3, "epochs_run": 4, "global_steps": 40,
           "wall_time_s": 40.2, "samples_per_s": 12.5, "data_wait_share": 0.05, "epochs_cap": 10,
           "stopped_reason": "no val improvement for 1 evaluation (best acc 0.8 at epoch 3; early_stopping_patience=1)",
           "stopped_by": "early_stopping", "resumed_from": None,
           "last_record": {"epoch": 4, "train/loss": 0.05, "train/lr": 1e-4, "train/samples_per_s": 12.1,
                           "train/data_wait_share": 0.04, "val/loss": 0.35, "val/acc": 0.79}}


def test_report_markdown_carries_the_timings_and_the_metrics_json_none(tmp_path):
    verdict = analyse_training(HISTORY)
    md, js = tmp_path / "train_rec" / "report.md", tmp_path / "train_rec" / "report.json"
    data = write_training_report(SUMMARY, HISTORY, verdict, md, js)
    text = md.read_text()
    assert text.splitlines() == [
        "# train_rec",
        "",
        "**Stopped:** no val improvement for 1 evaluation (best acc 0.8 at epoch 3; early_stopping_patience=1).",
        "",
        "**Verdict:** overfitting since epoch 4: val/loss rose from 0.25 (epoch 3) to 0.35 (epoch 4) while train "
        "loss fell from 0.1 to 0.05.",
        "",
        f"**Recommendation:** {verdict.recommendation}.",
        "",
        "| | |",
        "|---|---|",
        "| best acc | 0.8 at epoch 3 |",
        "| epochs run | 4 of at most 10 |",
        "| time | 40.2 s in all, 10.1 s per epoch (training and evaluation) |",
        "| speed | 12.5 samples/s, 5% of it waiting for data |",
        "",
        "## Evaluations",
        "",
        "| epoch | train loss | val loss | val acc |",
        "|---|---|---|---|",
        "| 1 | 0.5 | 0.6 | 0.5 |",
        "| 2 | 0.2 | 0.3 | 0.7 |",
        "| 3 (best) | 0.1 | 0.25 | 0.8 |",
        "| 4 | 0.05 | 0.35 | 0.79 |",
    ]
    on_disk = json.loads(js.read_text())
    assert on_disk == data
    assert on_disk["verdict"] == verdict.to_dict()
    assert on_disk["verdict"]["status"] == "overfitting" and on_disk["verdict"]["best_epoch"] == 3
    # the DVC metrics: what two runs of one config share; the clock's figures go to timing.json
    assert on_disk["training"] == {
        "main_indicator": "acc", "best_metric": 0.8, "best_epoch": 3, "epochs_run": 4, "epochs_cap": 10,
        "stopped_reason": "no val improvement for 1 evaluation (best acc 0.8 at epoch 3; early_stopping_patience=1)",
        "stopped_by": "early_stopping"}
    assert on_disk["last"] == {"epoch": 4, "train/loss": 0.05, "train/lr": 1e-4, "val/loss": 0.35, "val/acc": 0.79}
    timing = json.loads((js.parent / "timing.json").read_text())
    assert timing == {"wall_time_s": 40.2, "time_per_epoch_s": 40.2 / 4, "samples_per_s": 12.5,
                      "data_wait_share": 0.05, "resumed_from": None}


def test_a_resumed_run_reports_the_whole_runs_time():
    """The trainer's wall_time_s of a resumed run covers every process (issue 22, defect 10)."""
    text = format_training_report({**SUMMARY, "resumed_from": "models/rec/latest"}, HISTORY,
                                  analyse_training(HISTORY))
    assert ("| time | 40.2 s in all, 10.1 s per epoch (training and evaluation), over every process (resumed from "
            "models/rec/latest) |") in text


def test_a_long_run_shows_a_short_table_with_the_best_and_the_verdict_epochs():
    epochs = np.arange(1, 101)
    history = [{"epoch": int(e), "train/loss": float(100 / e), "val/hmean": float(min(0.9, e / 50))}
               for e in epochs]
    verdict = analyse_training(history)
    assert (verdict.status, verdict.best_epoch) == ("converged", 45)
    summary = {**SUMMARY, "main_indicator": "hmean", "best_metric": 0.9, "best_epoch": 45, "epochs_run": 100}
    text = format_training_report(summary, history, verdict, max_rows=12)
    table = text.split("## Evaluations")[1].strip().split("\n\n")
    shown = [r.split(" | ")[0].lstrip("| ") for r in table[0].splitlines()[2:]]
    assert len(shown) == 12 and shown[0] == "1" and shown[-1] == "100"
    assert "45 (best)" in shown and str(verdict.epoch) in shown and str(verdict.began_epoch) in shown
    epochs = [int(s.split()[0]) for s in shown]
    assert epochs == sorted(epochs)
    assert table[1] == "12 of 100 evaluations shown; every epoch is in the dvclive plots."


def test_report_of_a_tiny_real_training(tmp_path):
    from engine_tiny import make_trainer

    monitor = TrainingMonitor()
    trainer = make_trainer(tmp_path / "out", epoch_num=3, on_eval=[monitor])
    summary = trainer.fit()
    stored = history_from_checkpoint(tmp_path / "out")  # what a stage reads after train()
    assert stored == monitor.history and [r["epoch"] for r in stored] == [1, 2, 3]
    verdict = monitor.finish(stored)
    data = write_training_report(summary, trainer.state.history, verdict, tmp_path / "r.md", tmp_path / "r.json")
    # val acc is 1.0 from the first epoch: stalled at its ceiling (3 evaluations cannot show convergence)
    assert verdict.evaluations == 3 and verdict.status == "stalled" and "its ceiling" in verdict.recommendation
    assert data["training"]["epochs_run"] == 3 and data["last"]["epoch"] == 3 and "val/acc" in data["last"]
    assert json.loads((tmp_path / "timing.json").read_text())["samples_per_s"] > 0
    text = (tmp_path / "r.md").read_text()
    assert "| epoch | train loss | val acc |" in text and text.count("\n| ") >= 3 + 4


@pytest.mark.parametrize("settings, stopped", [
    ({"epoch_num": 2}, "epoch cap reached (epochs=2)"),
    ({"epoch_num": 8, "early_stopping_patience": 2, "blank_val": True},
     "no val improvement for 2 evaluations (best acc 0.5 at epoch 1; early_stopping_patience=2)"),
    ({"epoch_num": 8, "max_minutes": 1e-9}, "wall-time cap max_minutes=1e-09 reached in epoch 1 after step 1"),
    ({"epoch_num": 8, "overfitting": True},
     "overfitting since epoch 4: val/acc fell from 0.8 (epoch 3) to 0.7 (epoch 4) while train loss fell"),
])
def test_the_report_says_why_a_tiny_real_training_stopped(tmp_path, settings, stopped):
    from engine_tiny import ScriptedMetric, blank_val_loader, make_trainer

    settings = dict(settings)
    extra = {}
    if settings.pop("blank_val", False):
        extra["eval_loader"] = blank_val_loader()
    monitor = TrainingMonitor()
    if settings.pop("overfitting", False):
        monitor = TrainingMonitor(metric_drop_tol=0.05, stop_on=["overfitting"])
        extra["metric"] = ScriptedMetric([0.5, 0.7, 0.8, 0.7])
    trainer = make_trainer(tmp_path / "out", on_eval=[monitor], **extra, **settings)
    summary = trainer.fit()
    history = history_from_checkpoint(tmp_path / "out")
    data = write_training_report(summary, history, monitor.finish(history), tmp_path / "r.md", tmp_path / "r.json")
    assert data["training"]["stopped_reason"].startswith(stopped)
    assert data["training"]["epochs_cap"] == settings["epoch_num"]
    text = (tmp_path / "r.md").read_text()
    assert text.splitlines()[2].startswith(f"**Stopped:** {stopped}")
    assert f"| epochs run | {summary['epochs_run']} of at most {settings['epoch_num']} |" in text


def test_the_report_puts_the_zero_shot_figures_beside_the_best_epochs():
    summary = {**SUMMARY, "zero_shot": {"acc": 0.233, "norm_edit_dis": 0.81, "acc_normalised": 0.713, "loss": 2.5},
               "best_record": {"epoch": 3, "train/loss": 0.1, "val/loss": 0.25, "val/acc": 0.8,
                               "val/acc_normalised": 0.86}}
    assert training_report_data(summary, analyse_training(HISTORY))["val"] == {
        "zero_shot": {"acc": 0.233, "acc_normalised": 0.713, "loss": 2.5},
        "best_epoch": {"acc": 0.8, "acc_normalised": 0.86, "loss": 0.25}}
    text = format_training_report(summary, HISTORY, analyse_training(HISTORY))
    assert ("## Validation before and after training\n\n"
            "| | acc | acc_normalised | loss |\n"
            "|---|---|---|---|\n"
            "| before training (zero-shot) | 0.233 | 0.713 | 2.5 |\n"
            "| best epoch (3) | 0.8 | 0.86 | 0.25 |\n") in text
    assert training_report_data(SUMMARY, analyse_training(HISTORY))["val"] == {}  # no evaluation before training
