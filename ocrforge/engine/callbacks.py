"""The trainer's stopping rules, as callbacks on its events (the loop itself knows none of them).

``on_eval`` callbacks are called as ``callback(epoch, history)`` after each evaluation (``epoch`` 1-based,
``history`` the per-epoch records, the latest last); ``on_step`` callbacks as ``callback(trainer, logs)``
after each optimizer step. Either may return a sentence saying why training must stop (None: go on). The
trainer keeps the first one as ``stopped_reason`` and the callback's ``name`` as ``stopped_by``.

Both rules here keep no state of their own: :class:`EarlyStopping` reads the history, which every checkpoint
holds, and :class:`WallTimeLimit` the run's wall time, which the checkpoint also carries. A resumed run
therefore stops where the uninterrupted run would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class Plateau:
    """Where a main metric stands: evaluations since it last gained more than ``min_delta``, and its best
    value and epoch (the first epoch that reached it)."""

    evals_without_improvement: int
    best: float | None
    best_epoch: int | None


def plateau(history: Sequence[dict], key: str, min_delta: float = 0.0) -> Plateau:
    """Read ``val/<key>`` along ``history``: an evaluation improves when it beats the last improving one by more
    than ``min_delta`` (so a creep of tiny gains does not keep a run going forever)."""
    reference = best = best_epoch = None
    waiting = 0
    for record in history:
        value = record.get(f"val/{key}")
        if value is None:
            continue
        value = float(value)
        if reference is None or value > reference + min_delta:
            reference, waiting = value, 0
        else:
            waiting += 1
        if best is None or value > best:
            best, best_epoch = value, int(record["epoch"])
    return Plateau(waiting, best, best_epoch)


class EarlyStopping:
    """Stop when the main metric ``val/<key>`` has not gained more than ``min_delta`` for ``patience``
    evaluations, or as soon as it reaches ``ceiling`` (1.0 for hmean and acc: no later evaluation could beat
    it, so none could replace ``best_accuracy``; None: no ceiling)."""

    name = "early_stopping"

    def __init__(self, key: str, patience: int, min_delta: float = 0.0, ceiling: float | None = None):
        if patience < 1:
            raise ValueError(f"EarlyStopping: patience must be >= 1 evaluation, got {patience}")
        if min_delta < 0:
            raise ValueError(f"EarlyStopping: min_delta must be >= 0, got {min_delta}")
        self.key = key
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.ceiling = None if ceiling is None else float(ceiling)

    def __call__(self, epoch: int, history: Sequence[dict]) -> str | None:
        state = plateau(history, self.key, self.min_delta)
        if state.best is None:
            return None
        if self.ceiling is not None and state.best >= self.ceiling:
            return (f"val {self.key} reached its ceiling {state.best:.4g} at epoch {state.best_epoch}: no later "
                    f"evaluation can improve on it")
        if state.evals_without_improvement >= self.patience:
            gain = f" > {self.min_delta:g}" if self.min_delta else ""
            waited = state.evals_without_improvement
            return (f"no val improvement{gain} for {waited} evaluation{'s' if waited != 1 else ''} (best "
                    f"{self.key} {state.best:.4g} at epoch {state.best_epoch}; "
                    f"early_stopping_patience={self.patience})")
        return None


class WallTimeLimit:
    """Stop between two steps once the run's wall time (over every process that trained it, when resumed)
    reaches ``max_minutes``. The sentence it returns holds no clock reading, so reports stay comparable."""

    name = "max_minutes"

    def __init__(self, max_minutes: float):
        if not max_minutes > 0:
            raise ValueError(f"WallTimeLimit: max_minutes must be > 0, got {max_minutes}")
        self.max_minutes = float(max_minutes)

    def __call__(self, trainer: Any, logs: dict) -> str | None:
        if trainer.elapsed_s() < 60.0 * self.max_minutes:
            return None
        return (f"wall-time cap max_minutes={self.max_minutes:g} reached in epoch {logs['epoch']} after step "
                f"{logs['step']}")
