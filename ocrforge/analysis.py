"""Reading a training run: has it converged, is it overfitting, diverging, stalled, or still improving?

The input is the trainer's history, one record per finished epoch (``{"epoch": 3, "train/loss": ...,
"val/acc": ..., "val/loss": ...}``; see :mod:`ocrforge.engine.trainer`). Only the records that carry an
evaluation (a ``val/`` key) count as evaluations; without any, every record does and only the training
loss is read. "Main metric" is ``val/<main_indicator>`` (higher is better), "val loss" ``val/loss``.

The rules, evaluated on the evaluations seen so far (``i`` is the latest one); the first that holds wins:

1. **diverging** - the training loss is not finite, or it exceeds ``diverge_factor`` times its lowest
   earlier value. It began at the evaluation after that lowest value.
2. **overfitting** - with ``b`` the best evaluation so far (lowest val loss, or highest main metric), the
   last ``overfit_patience`` evaluations all come after ``b`` and are clearly worse than it: val loss above
   ``val_b * (1 + overfit_tol)``, or main metric below ``metric_b - metric_drop_tol``; and the training
   loss at ``i`` is below its value at ``b`` (it kept falling). Comparing with the best value rather than
   the previous one is what keeps a noisy but falling validation curve from being flagged: a small bump
   stays within the tolerance of the running best. The tolerance also grows to the run's own noise, the
   largest setback on the way to ``b`` (a fall of the metric, absolute; a rise of val loss, relative): a
   curve that climbed 0, 0.25, 0.40, 0.25, 0.63 has shown that a fall of 0.15 says nothing, so 0.53 next is
   not yet overfitting. It began at the first evaluation after ``b`` that was clearly worse. With the defaults (``overfit_patience=1``, ``overfit_tol=0.1``) val loss
   0.6, 0.3, 0.25, 0.35 under train loss 0.5, 0.2, 0.1, 0.05 is flagged at the 4th evaluation, best epoch 3.
3. **converged** - over the last ``window`` evaluations (from evaluation ``a = i - window`` to ``i``) the
   training loss fell by less than ``rel_loss_tol`` of its value at ``a`` per epoch, and the best main
   metric rose by less than ``metric_tol`` (absolute) above the best up to ``a``.
4. **stalled** - the main metric is not gaining: its latest value is below its best, or over the last
   ``window`` evaluations (all of them but the first when there are fewer) its best rose by less than
   ``metric_tol`` above the best before them. Not overfitting (the fall is within tolerance) and not
   converged (the training loss still falls), but more epochs at this learning rate are not buying anything
   on validation: val hmean 0.9153 then 0.9143 is stalled, not improving. It began at the evaluation after the
   best (the window's first, when the latest is the best).
5. **improving** - none of these: the latest evaluation is the best so far and gained more than ``metric_tol``
   over the window (or, without a main metric, the losses allow no other reading); more epochs would help.

The verdict's ``epoch`` is where the final status was first reached without interruption, so a run that
converged at epoch 9 and stayed flat to epoch 20 reports 9.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

logger = logging.getLogger("ocrforge.analysis")

CONVERGED = "converged"
OVERFITTING = "overfitting"
DIVERGING = "diverging"
STALLED = "stalled"
IMPROVING = "improving"

KNOWN_INDICATORS = ("hmean", "acc")  # the det and rec metrics' main_indicator, tried in this order

DEFAULTS = {
    "window": 3,
    "rel_loss_tol": 0.02,
    "metric_tol": 0.005,
    "overfit_patience": 1,
    "overfit_tol": 0.1,
    "metric_drop_tol": 0.02,
    "diverge_factor": 1.5,
}


@dataclass
class Verdict:
    """What the history says about the run; ``epoch``s are 1-based as logged.

    ``epoch``: where ``status`` was first reached (and held to the end); ``began_epoch``: where the
    overfitting or divergence began, or for convergence the start of the flat window; ``best_epoch`` and
    ``best_value``: the best evaluation of ``best_by`` (``val/<metric>`` or ``val/loss``).
    """

    status: str
    reason: str
    recommendation: str
    epoch: int | None
    began_epoch: int | None
    best_epoch: int | None
    best_value: float | None
    best_by: str | None
    last_epoch: int | None
    evaluations: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Series:
    epochs: list[int]
    loss: list[float]
    val_loss: list[float] | None
    metric: list[float] | None
    metric_key: str | None
    val_loss_key: str


def _number(record: dict, key: str) -> float | None:
    value = record.get(key)
    return None if value is None else float(value)


def _series(history: Sequence[dict], main_indicator: str | None, loss_key: str, val_loss_key: str) -> _Series:
    evals = [r for r in history if any(str(k).startswith("val/") for k in r)] or list(history)
    if not evals:
        raise ValueError("the training history is empty: there is no epoch to analyse")
    missing = [r.get("epoch") for r in evals if r.get(loss_key) is None]
    if missing:
        raise KeyError(f"the records of epochs {missing} have no {loss_key!r} (keys: {sorted(evals[0])}); "
                       f"pass loss_key= the training loss key the trainer logged")
    if main_indicator is None:
        main_indicator = next((k for k in KNOWN_INDICATORS if any(f"val/{k}" in r for r in evals)), None)
    metric_key = None
    if main_indicator is not None:
        metric_key = main_indicator if main_indicator.startswith("val/") else f"val/{main_indicator}"
        if not all(metric_key in r for r in evals):
            have = sorted({k for r in evals for k in r if str(k).startswith("val/")})
            raise KeyError(f"main_indicator {main_indicator!r}: {metric_key!r} is missing from some evaluated "
                           f"records (they have {have}); name one of those, as in Metric.main_indicator")
    has_val_loss = all(r.get(val_loss_key) is not None for r in evals)
    return _Series(
        epochs=[int(r.get("epoch", i + 1)) for i, r in enumerate(evals)],
        loss=[float(r[loss_key]) for r in evals],
        val_loss=[float(r[val_loss_key]) for r in evals] if has_val_loss else None,
        metric=[float(r[metric_key]) for r in evals] if metric_key else None,
        metric_key=metric_key,
        val_loss_key=val_loss_key,
    )


def _argbest(values: list[float], higher: bool) -> int:
    best = 0
    for j, v in enumerate(values):
        if (v > values[best]) if higher else (v < values[best]):
            best = j
    return best


def _diverging(s: _Series, n: int, p: dict) -> dict | None:
    loss = s.loss[:n]
    bad = [j for j, v in enumerate(loss) if not math.isfinite(v)]
    if bad:
        return {"began": bad[0], "reason": f"the training loss became {loss[bad[0]]} at epoch {s.epochs[bad[0]]}"}
    if n < 2:
        return None
    low = _argbest(loss[: n - 1], higher=False)
    if loss[n - 1] > p["diverge_factor"] * loss[low]:
        return {"began": low + 1,
                "reason": f"the training loss rose from {loss[low]:.4g} (epoch {s.epochs[low]}) to "
                          f"{loss[n - 1]:.4g} (epoch {s.epochs[n - 1]}), over {p['diverge_factor']:g}x"}
    return None


def _overfitting_on(s: _Series, n: int, p: dict, values: list[float], higher: bool, key: str) -> dict | None:
    k = max(int(p["overfit_patience"]), 1)
    vals = values[:n]
    b = _argbest(vals, higher)
    if n - k <= b:
        return None
    # A setback as large as one already seen on the way to the best is the run's noise, up to float rounding
    # (which differs between CPUs: the same curve must get the same verdict everywhere).
    noise = _largest_setback(vals[: b + 1], higher) * (1 + 1e-9)
    if higher:
        tol = max(p["metric_drop_tol"], noise)
        worse = [v < vals[b] - tol for v in vals]
    else:
        tol = max(p["overfit_tol"], noise)
        worse = [v > vals[b] + tol * abs(vals[b]) for v in vals]
    if not all(worse[n - k:n]) or not s.loss[n - 1] < s.loss[b]:
        return None
    began = next(j for j in range(b + 1, n) if worse[j])
    way = "fell" if higher else "rose"
    beyond = ""
    if noise > (p["metric_drop_tol"] if higher else p["overfit_tol"]):
        setback = f"{noise:.3g}" if higher else f"{100 * noise:.3g}%"
        beyond = f", more than its largest setback on the way to the best ({setback})"
    return {"began": began, "best": b, "best_by": key, "best_value": vals[b],
            "reason": f"{key} {way} from {vals[b]:.4g} (epoch {s.epochs[b]}) to {vals[n - 1]:.4g} "
                      f"(epoch {s.epochs[n - 1]}){beyond} while train loss fell from {s.loss[b]:.4g} to "
                      f"{s.loss[n - 1]:.4g}"}


def _largest_setback(values: list[float], higher: bool) -> float:
    """The run's own noise up to its best: the largest fall of a metric from one evaluation to the next
    (absolute), or the largest rise of a loss (relative). 0 for a curve that only improved."""
    steps = zip(values, values[1:])
    if higher:
        return max((a - b for a, b in steps), default=0.0)
    return max(((b - a) / abs(a) for a, b in steps if a != 0), default=0.0)


def _overfitting(s: _Series, n: int, p: dict) -> dict | None:
    found = None
    if s.metric is not None:
        found = _overfitting_on(s, n, p, s.metric, True, s.metric_key)
    if found is None and s.val_loss is not None:
        found = _overfitting_on(s, n, p, s.val_loss, False, s.val_loss_key)
    return found


def _trend(s: _Series, n: int, p: dict) -> dict | None:
    """Loss improvement per epoch and metric gain over the last ``window`` evaluations (None: too few)."""
    w = int(p["window"])
    if w < 1 or n < w + 1:
        return None
    a, i = n - 1 - w, n - 1
    span = max(s.epochs[i] - s.epochs[a], 1)
    rel = (s.loss[a] - s.loss[i]) / abs(s.loss[a]) / span if s.loss[a] != 0 else 0.0
    gain = None
    if s.metric is not None:
        gain = max(s.metric[a + 1:n]) - max(s.metric[: a + 1])
    return {"start": a, "rel": rel, "gain": gain}


def _stalled(s: _Series, n: int, p: dict) -> dict | None:
    """The main metric not gaining (rule 4), with where that began; None when it still gains or is absent."""
    if s.metric is None or n < 2:
        return None
    vals = s.metric[:n]
    best = _argbest(vals, higher=True)
    if vals[n - 1] < vals[best]:
        return {"began": best + 1, "best": best, "fell": True}
    start = max(n - 1 - int(p["window"]), 0)
    gain = max(vals[start + 1:n]) - max(vals[: start + 1])
    if gain < p["metric_tol"]:
        return {"began": start + 1, "best": best, "fell": False, "gain": gain, "evals": n - 1 - start}
    return None


def _state(s: _Series, n: int, p: dict) -> tuple[str, dict]:
    found = _diverging(s, n, p)
    if found:
        return DIVERGING, found
    found = _overfitting(s, n, p)
    if found:
        return OVERFITTING, found
    trend = _trend(s, n, p)
    if trend and trend["rel"] < p["rel_loss_tol"] and (trend["gain"] is None or trend["gain"] < p["metric_tol"]):
        return CONVERGED, {"began": trend["start"], **trend}
    found = _stalled(s, n, p)
    if found:
        return STALLED, {**(trend or {}), **found}
    return IMPROVING, trend or {}


def _metric_text(s: _Series, trend: dict) -> str:
    return "" if trend.get("gain") is None else f", best {s.metric_key} +{trend['gain']:.4g}"


def analyse_training(history: Sequence[dict], *, window: int = DEFAULTS["window"],
                     rel_loss_tol: float = DEFAULTS["rel_loss_tol"], metric_tol: float = DEFAULTS["metric_tol"],
                     overfit_patience: int = DEFAULTS["overfit_patience"],
                     overfit_tol: float = DEFAULTS["overfit_tol"],
                     metric_drop_tol: float = DEFAULTS["metric_drop_tol"],
                     diverge_factor: float = DEFAULTS["diverge_factor"], main_indicator: str | None = None,
                     loss_key: str = "train/loss", val_loss_key: str = "val/loss") -> Verdict:
    """Classify the run ``history`` (the trainer's per-epoch records) by the rules of the module docstring.

    ``main_indicator`` (``hmean``, ``acc``, ``norm_edit_dis`` or ``val/...``) defaults to the first of
    ``hmean``/``acc`` found; without a metric, only the losses are read.
    """
    p = {"window": window, "rel_loss_tol": rel_loss_tol, "metric_tol": metric_tol,
         "overfit_patience": overfit_patience, "overfit_tol": overfit_tol, "metric_drop_tol": metric_drop_tol,
         "diverge_factor": diverge_factor}
    s = _series(history, main_indicator, loss_key, val_loss_key)
    n = len(s.epochs)
    status, info = _state(s, n, p)
    first = n
    while first > 1 and _state(s, first - 1, p)[0] == status:
        first -= 1
    if status == CONVERGED:
        info = _state(s, first, p)[1]  # the figures of the window where it was first seen
    ep = s.epochs
    best_by, best = None, None
    if s.metric is not None:
        best_by, best = s.metric_key, _argbest(s.metric, higher=True)
    elif s.val_loss is not None:
        best_by, best = s.val_loss_key, _argbest(s.val_loss, higher=False)
    if status == OVERFITTING:
        best_by, best = info["best_by"], info["best"]
    best_value = None
    if best is not None:
        best_value = (s.metric if best_by == s.metric_key else s.val_loss)[best]
    began = ep[info["began"]] if "began" in info else None
    last = ep[-1]

    if status == DIVERGING:
        reason = f"diverging: {info['reason']}"
        advice = ("lower the learning rate (Optimizer.lr.learning_rate, e.g. by 10x), keep a warmup, set "
                  "Optimizer.clip_norm, and check the labels of the data seen when it began")
    elif status == OVERFITTING:
        reason = f"overfitting since epoch {began}: {info['reason']}"
        kept = "best_accuracy, " if best_by == s.metric_key else ""
        advice = (f"stop earlier: keep the checkpoint of epoch {ep[best]} ({kept}the best by {best_by}) and set "
                  f"the epochs to about {ep[best]} (or early_stopping_patience); to go further, add training "
                  f"data or augmentation, or freeze more of the backbone")
    elif status == CONVERGED:
        reason = (f"converged at epoch {ep[first - 1]}: since epoch {began} the train loss fell "
                  f"{100 * info['rel']:.2g}%/epoch{_metric_text(s, info)}")
        advice = (f"more epochs add little: about {ep[first - 1]} epochs are enough; to do better, add or "
                  f"clean training data, unfreeze more layers, or try a lower learning rate at the end")
    elif status == STALLED:
        key, top = s.metric_key, info["best"]
        if info["fell"]:
            reason = (f"stalled: {key} fell to {s.metric[-1]:.4g} at epoch {last} from its best "
                      f"{s.metric[top]:.4g} (epoch {ep[top]}), a fall within tolerance, not yet overfitting")
        else:
            reason = (f"stalled: over the last {info['evals']} evaluation(s) the best {key} gained "
                      f"{info['gain']:+.4g}, less than {p['metric_tol']:g}")
        if "rel" in info:
            reason += f", while the train loss fell {100 * info['rel']:.2g}%/epoch"
        advice = (f"more epochs at this learning rate are unlikely to raise {key}: keep best_accuracy (epoch "
                  f"{ep[top]}); early_stopping_patience ends such a run by itself; to do better, add or clean "
                  f"training data, unfreeze more layers, or lower the learning rate")
    else:
        if info:
            reason = (f"still improving at epoch {last}: over the last {window} evaluations the train loss "
                      f"fell {100 * info['rel']:.2g}%/epoch{_metric_text(s, info)}")
        else:
            reason = (f"still improving as far as {n} evaluation(s) show: {window + 1} are needed to judge "
                      f"convergence")
        advice = (f"more epochs would help: raise the epochs cap (e.g. to {2 * last}) and read the verdict "
                  f"again")
    if status in (STALLED, IMPROVING):
        if best_by == s.metric_key and best_value is not None and best_value >= 1.0 - p["metric_tol"]:
            advice = (f"the validation {best_by} reached {best_value:.4g} at epoch {ep[best]}, its ceiling: this "
                      f"validation set cannot show further gains, so more epochs are unlikely to pay; keep "
                      f"best_accuracy, and judge on more or harder validation data")
    return Verdict(status=status, reason=reason, recommendation=advice, epoch=ep[first - 1], began_epoch=began,
                   best_epoch=ep[best] if best is not None else None, best_value=best_value, best_by=best_by,
                   last_epoch=last, evaluations=n)


class TrainingMonitor:
    """An ``on_eval`` callback for the trainer: analyses the history after every evaluation, keeps the
    latest verdict (``.verdict``, ``.history``), logs when the status changes, and returns a reason to
    stop when the status is one of ``stop_on`` (e.g. ``("overfitting",)``; empty: never stops)."""

    name = "training_monitor"  # the trainer's ``stopped_by`` when it stops a run

    def __init__(self, *, stop_on: Sequence[str] = (), logger: logging.Logger = logger, **analysis: Any):
        unknown = set(analysis) - set(DEFAULTS) - {"main_indicator", "loss_key", "val_loss_key"}
        if unknown:
            raise TypeError(f"TrainingMonitor: unknown analysis settings {sorted(unknown)}; "
                            f"the settings are {sorted(DEFAULTS)} and main_indicator, loss_key, val_loss_key")
        bad = set(stop_on) - {OVERFITTING, DIVERGING, CONVERGED}
        if bad:
            raise ValueError(f"TrainingMonitor: stop_on {sorted(bad)} is not a status to stop on; use "
                             f"'overfitting', 'diverging' or 'converged'")
        self.stop_on = tuple(stop_on)
        self.analysis = dict(analysis)
        self.logger = logger
        self.verdict: Verdict | None = None
        self.history: list[dict] = []

    @classmethod
    def from_params(cls, params: dict | None, **overrides: Any) -> "TrainingMonitor":
        """Build from a params.yaml section such as ``train_rec.analysis`` (the DEFAULTS keys plus
        ``stop_on_overfitting``, ``stop_on_diverging``, ``stop_on_convergence``, all optional)."""
        params = dict(params or {})
        stop_on = [status for status, key in ((OVERFITTING, "stop_on_overfitting"),
                                              (DIVERGING, "stop_on_diverging"),
                                              (CONVERGED, "stop_on_convergence")) if params.pop(key, False)]
        return cls(stop_on=stop_on, **{**params, **overrides})

    def __call__(self, epoch: int, history: list[dict]) -> str | None:
        self.history = list(history)
        verdict = analyse_training(self.history, **self.analysis)
        changed = self.verdict is None or verdict.status != self.verdict.status
        self.verdict = verdict
        if changed:
            level = logging.WARNING if verdict.status in (OVERFITTING, DIVERGING) else logging.INFO
            self.logger.log(level, "after epoch %d the run is %s: %s; %s", epoch, verdict.status, verdict.reason,
                            verdict.recommendation)
        if verdict.status in self.stop_on:
            return verdict.reason
        return None

    def finish(self, history: list[dict] | None = None) -> Verdict:
        """The verdict on the whole run, from ``history`` or the last one the monitor saw."""
        if history is not None:
            self.history = list(history)
        self.verdict = analyse_training(self.history, **self.analysis)
        return self.verdict


def history_from_checkpoint(save_model_dir: str, name: str = "latest") -> list[dict]:
    """The per-epoch history stored in ``<save_model_dir>/<name>.states.json`` by the trainer."""
    from ocrforge.engine.checkpoint import read_states

    return list(read_states(str(save_model_dir), name)["state"]["history"])
