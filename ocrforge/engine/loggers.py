"""Where the trainer's epoch records go, as loggers on its events (the loop itself writes no log file).

A logger has three methods: ``start(trainer, resumed)`` before the first step (``resumed``: the run continues
from a checkpoint), ``log_epoch(record)`` after each epoch (``record``: ``{"epoch": n, "train/loss": ...,
"val/hmean": ...}``, the epoch's entry of the history) and ``finish(summary)`` once the run ends, normally or
by an exception (``summary`` None then). Only rank 0 of a distributed run gets loggers.
"""

from __future__ import annotations

import os
from typing import Any

# summary figures written beside the curves (not plotted)
SUMMARY_KEYS = ("best_metric", "best_epoch", "samples_per_s", "data_wait_share", "wall_time_s")


class DvcLiveLogger:
    """Epoch records as dvclive metrics and plots (``<dir>/metrics.json``, ``<dir>/plots/metrics/...tsv``), one
    step per epoch; a resumed run appends to the curves its earlier process wrote."""

    def __init__(self, live_dir: str | os.PathLike, dvcyaml: Any = None):
        self.live_dir = str(live_dir)
        self.dvcyaml = dvcyaml
        self.live = None

    def start(self, trainer: Any, resumed: bool) -> None:
        from dvclive import Live

        self.live = Live(self.live_dir, resume=resumed, save_dvc_exp=False, dvcyaml=self.dvcyaml, report=None)

    def log_epoch(self, record: dict) -> None:
        self.live.step = record["epoch"]
        for key, value in record.items():
            if key != "epoch" and isinstance(value, (int, float)) and value is not None:
                self.live.log_metric(key, value)
        self.live.next_step()

    def finish(self, summary: dict | None) -> None:
        if self.live is None:
            return
        if summary is not None:
            for key in SUMMARY_KEYS:
                if summary[key] is not None:
                    self.live.log_metric(f"summary/{key}", summary[key], plot=False)
        self.live.end()
        self.live = None
