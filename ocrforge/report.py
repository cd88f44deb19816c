"""The training report of a train stage: a short markdown for people and a JSON of the same facts for DVC.

``write_training_report(summary, history, verdict, path_md, path_json)`` takes the trainer's summary (see
``Trainer.summary``), its per-epoch history and the :class:`ocrforge.analysis.Verdict` of the run. The JSON
(declared as DVC metrics) holds no timing, so two runs that train the same weights give the same file and
`dvc metrics diff` shows only what an experiment changed; the timings go to ``timing.json`` beside it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from ocrforge.analysis import Verdict


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return str(value) if not math.isfinite(value) else f"{value:.{digits}g}"
    return str(value)


def _rows_to_show(n: int, keep: set[int], max_rows: int) -> list[int]:
    """Indices of the rows of an ``n``-row table to print: all when ``n <= max_rows``, else ``keep`` (the
    best, the verdict's epochs), the first and the last, filled up to ``max_rows`` with evenly spaced rows."""
    if n <= max_rows:
        return list(range(n))
    chosen = {i for i in keep if 0 <= i < n} | {0, n - 1}
    spare = max(max_rows - len(chosen), 0)
    candidates = [round(j * (n - 1) / (spare + 1)) for j in range(1, spare + 1)]
    chosen.update(i for i in candidates if len(chosen) < max_rows)
    return sorted(chosen)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


# what the trainer measures with a clock: different on every run, so kept out of the metrics JSON
TIMING_KEYS = ("samples_per_s", "data_wait_share")


def training_timing_data(summary: dict) -> dict[str, Any]:
    """The run's timings (``timing.json``, not DVC metrics): wall time and time per epoch (s), samples/s and
    the share of it spent waiting for data, over the run and per epoch."""
    epochs = summary.get("epochs_run") or 0
    wall = summary.get("wall_time_s")
    per_epoch = wall / epochs if wall is not None and epochs else None  # a resumed run's wall time is the whole run's
    return {
        "wall_time_s": wall,
        "time_per_epoch_s": per_epoch,
        "samples_per_s": summary.get("samples_per_s"),
        "data_wait_share": summary.get("data_wait_share"),
        "resumed_from": summary.get("resumed_from"),
    }


def before_and_after(summary: dict) -> dict[str, dict[str, float]]:
    """The validation figures before training (zero-shot) and at the best epoch (what ``best_accuracy`` holds),
    for the keys both have: ``{"zero_shot": {"acc": ..., "acc_normalised": ...}, "best_epoch": {...}}``.
    Empty when the stage did not evaluate before training."""
    zero_shot = summary.get("zero_shot") or {}
    best = {k[len("val/"):]: v for k, v in (summary.get("best_record") or {}).items() if k.startswith("val/")}
    keys = [k for k in zero_shot if k in best and isinstance(zero_shot[k], (int, float))]
    if not keys:
        return {}
    return {"zero_shot": {k: zero_shot[k] for k in keys}, "best_epoch": {k: best[k] for k in keys}}


def training_report_data(summary: dict, verdict: Verdict) -> dict[str, Any]:
    """The JSON the stage declares as DVC metrics: ``verdict`` (its fields), ``training`` (best metric, epochs run
    and their cap, why it stopped and which rule stopped it), ``val`` (the validation figures before training
    and at the best epoch, see :func:`before_and_after`) and ``last`` (the last epoch's train and val figures),
    all free of timings."""
    last = summary.get("last_record") or {}
    return {
        "verdict": verdict.to_dict(),
        "training": {
            "main_indicator": summary.get("main_indicator"),
            "best_metric": summary.get("best_metric"),
            "best_epoch": summary.get("best_epoch"),
            "epochs_run": summary.get("epochs_run"),
            "epochs_cap": summary.get("epochs_cap"),
            "stopped_reason": summary.get("stopped_reason"),
            "stopped_by": summary.get("stopped_by"),
        },
        "val": before_and_after(summary),
        "last": {k: v for k, v in last.items() if k.split("/")[-1] not in TIMING_KEYS},
    }


def format_training_report(summary: dict, history: Sequence[dict], verdict: Verdict, *, title: str = "training",
                           max_rows: int = 12) -> str:
    """The markdown text of the report (see :func:`write_training_report`)."""
    data = {**training_report_data(summary, verdict)["training"], **training_timing_data(summary)}
    key = data["main_indicator"]
    lines = [f"# {title}", ""]
    lines += [f"**Stopped:** {data['stopped_reason'] or 'not finished'}.", "",
              f"**Verdict:** {verdict.reason}.", "",
              f"**Recommendation:** {verdict.recommendation}.", ""]
    timing = f"{_seconds(data['wall_time_s'])} s in all"
    if data["time_per_epoch_s"] is not None:
        timing += f", {_seconds(data['time_per_epoch_s'])} s per epoch (training and evaluation)"
    if summary.get("resumed_from"):
        timing += f", over every process (resumed from {summary['resumed_from']})"
    share = data["data_wait_share"]
    lines += [
        "| | |",
        "|---|---|",
        f"| best {key or 'metric'} | {_fmt(data['best_metric'])} at epoch {_fmt(data['best_epoch'])} |",
        f"| epochs run | {_fmt(data['epochs_run'])}"
        + (f" of at most {data['epochs_cap']}" if data["epochs_cap"] else "") + " |",
        f"| time | {timing} |",
        f"| speed | {_fmt(data['samples_per_s'], 3)} samples/s, "
        f"{_fmt(None if share is None else 100 * share, 2)}% of it waiting for data |",
        "",
    ]
    val = before_and_after(summary)
    if val:
        keys = list(val["zero_shot"])
        lines += ["## Validation before and after training", "", "| | " + " | ".join(keys) + " |",
                  "|---|" + "---|" * len(keys),
                  "| before training (zero-shot) | " + " | ".join(_fmt(val["zero_shot"][k]) for k in keys) + " |",
                  f"| best epoch ({_fmt(data['best_epoch'])}) | "
                  + " | ".join(_fmt(val["best_epoch"][k]) for k in keys) + " |", ""]
        if "acc_normalised" in keys:
            lines += ["acc_normalised compares case-insensitively and leaves out the characters no train or val "
                      "label uses, so the gap between acc and acc_normalised before training is what only the "
                      "labels' conventions cost the shipped model.", ""]
    evals = [r for r in history if any(str(k).startswith("val/") for k in r)] or list(history)
    if evals:
        metric_key = f"val/{key}" if key else None
        if metric_key is None and verdict.best_by and verdict.best_by != "val/loss":
            metric_key = verdict.best_by
        columns = [("epoch", "epoch"), ("train/loss", "train loss"), ("val/loss", "val loss")]
        if metric_key:
            columns.append((metric_key, metric_key.replace("/", " ")))
        columns = [(k, name) for k, name in columns if any(k in r for r in evals)]
        epochs = [r.get("epoch") for r in evals]
        keep = {epochs.index(e) for e in (verdict.best_epoch, verdict.began_epoch, verdict.epoch) if e in epochs}
        lines += ["## Evaluations", "", "| " + " | ".join(name for _, name in columns) + " |",
                  "|" + "---|" * len(columns)]
        shown = _rows_to_show(len(evals), keep, max_rows)
        for i in shown:
            mark = " (best)" if evals[i].get("epoch") == verdict.best_epoch else ""
            cells = [_fmt(evals[i].get(k)) for k, _ in columns]
            cells[0] += mark
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if len(shown) < len(evals):
            lines += [f"{len(shown)} of {len(evals)} evaluations shown; every epoch is in the dvclive plots.", ""]
    return "\n".join(lines)


def write_training_report(summary: dict, history: Sequence[dict], verdict: Verdict, path_md: str | Path,
                          path_json: str | Path, *, title: str | None = None,
                          path_timing: str | Path | None = None) -> dict[str, Any]:
    """Write the markdown report ``path_md``, the metrics JSON ``path_json`` and the timings ``path_timing``
    (default: ``timing.json`` beside ``path_json``); returns the metrics JSON data.

    The title defaults to the report folder's name (``reports/train_rec/report.md`` -> ``train_rec``).
    """
    path_md, path_json = Path(path_md), Path(path_json)
    path_timing = Path(path_timing) if path_timing is not None else path_json.with_name("timing.json")
    data = training_report_data(summary, verdict)
    text = format_training_report(summary, history, verdict, title=title or path_md.parent.name or "training")
    for path in (path_md, path_json, path_timing):
        path.parent.mkdir(parents=True, exist_ok=True)
    path_md.write_text(text, encoding="utf-8")
    path_json.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    timing = json.dumps(training_timing_data(summary), indent=2, default=str)
    path_timing.write_text(timing + "\n", encoding="utf-8")
    return data
