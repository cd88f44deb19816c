"""Choosing the reading system's ``drop_score`` on the validation images (stage tune_system).

The system drops a read line whose recognition score is below ``drop_score`` (PaddleOCR's default: 0.5). A line
read with a low score is mostly a misread or text the labels leave out (a badge beside a plate), and each one
counts against end-to-end precision and its image's full text; on clean pages a high threshold drops right
lines instead. So the threshold is chosen per data set, as the detector's post-process is
(ocrforge.postprocess_search): each val image is read once by the trained system with every line kept, then each
threshold of the grid keeps its lines and is scored end to end (line hmean, the metric the eval stage reports),
an image's full text built from the kept lines as the system builds it. Ties go to the lowest threshold, which
keeps the most lines. Measured: 0.9 on the demo (val hmean 0.718 -> 0.785) and on sroie100 (0.785 -> 0.788);
on plates_eu_br no threshold changed the val reads (its other text reads at 0.9 or more), so 0.5 stays.

The choice goes to ``reports/tune_system/system.json`` (committed with dvc.lock); the eval and export stages read
it through :func:`tuned_overrides` where params.yaml's ``system.drop_score`` is left empty.
"""

from __future__ import annotations

import os
from typing import Sequence

from ocrforge.data.det_labels import Sample
from ocrforge.data.images import read_image
from ocrforge.metrics import E2EMetric, precision_recall_hmean, score_end_to_end
from ocrforge.system import OcrLine, TextSystem, read_choice_file

TUNED_FILE = "reports/tune_system/system.json"


def read_every_line(system: TextSystem, samples: Sequence[Sample], logger=None) -> list[list[OcrLine]]:
    """The lines ``system`` reads in each sample's image with no line dropped (``drop_score`` 0)."""
    keep_all = TextSystem(system.detector, system.recognizer, system.settings.with_overrides(drop_score=0.0))
    readings = []
    for i, sample in enumerate(samples, 1):
        readings.append(keep_all(read_image(sample.path)).lines)
        if logger and (i % 20 == 0 or i == len(samples)):
            logger.info("read %d of %d val images", i, len(samples))
    return readings


def score_drop_scores(readings: Sequence[Sequence[OcrLine]], samples: Sequence[Sample], values: Sequence[float],
                      case_sensitive: bool = True) -> list[dict]:
    """For each threshold (sorted, duplicates once): the end-to-end figures of the lines scoring at least it.

    Returns rows ``{"drop_score", "precision", "recall", "hmean", "full_text_acc", "lines_kept"}``.
    """
    if len(readings) != len(samples):
        raise ValueError(f"score_drop_scores: {len(readings)} readings but {len(samples)} samples")
    if not samples:
        raise ValueError("score_drop_scores: no validation images; the val split is empty")
    metric = E2EMetric(case_sensitive=case_sensitive)
    rows = []
    for value in sorted({float(v) for v in values}):
        matched = det_care = gt_care = full = kept = 0
        for lines, sample in zip(readings, samples):
            preds = [{"points": line.box.tolist(), "text": line.text} for line in lines if line.score >= value]
            scores = score_end_to_end(preds, sample.lines, metric.iou_threshold, metric.normalize)
            matched, det_care, gt_care = (matched + scores["matched"], det_care + scores["det_care"],
                                          gt_care + scores["gt_care"])
            full += bool(scores["full_text_match"])
            kept += len(preds)
        figures = precision_recall_hmean(matched, det_care, gt_care)
        rows.append({"drop_score": value, **{k: round(figures[k], 4) for k in ("precision", "recall", "hmean")},
                     "full_text_acc": round(full / len(samples), 4), "lines_kept": kept})
    return rows


def choose(rows: Sequence[dict]) -> dict:
    """The row of best hmean; ties go to the lowest ``drop_score`` (the rows come sorted by it)."""
    best = max(row["hmean"] for row in rows)
    return next(row for row in rows if row["hmean"] == best)


def search_drop_score(system: TextSystem, samples: Sequence[Sample], values: Sequence[float],
                      case_sensitive: bool = True, logger=None) -> dict:
    """Read ``samples`` once and score each threshold of ``values`` (the system's own one included).

    Returns ``{"searched": true, "images", "case_sensitive", "rows", "configured": row, "best": row}``.
    """
    configured = float(system.settings.drop_score)
    readings = read_every_line(system, samples, logger)
    rows = score_drop_scores(readings, samples, [configured, *values], case_sensitive)
    return {"searched": True, "images": len(samples), "case_sensitive": case_sensitive, "rows": rows,
            "configured": next(row for row in rows if row["drop_score"] == configured), "best": choose(rows)}


def read_tuned(path: str | os.PathLike = TUNED_FILE) -> dict:
    """What stage tune_system chose (its ``system.json``); {} where it has not run or searched nothing."""
    chosen = read_choice_file(path, "rerun the stage that writes it (dvc repro tune_system)")
    return chosen if chosen and chosen.get("searched") else {}


def tuned_overrides(overrides: dict, path: str | os.PathLike = TUNED_FILE) -> dict:
    """params.yaml's system ``overrides`` (:func:`ocrforge.params.system_overrides`), with the ``drop_score``
    stage tune_system chose on the val split where they set none."""
    chosen = read_tuned(path)
    if "drop_score" in overrides or not chosen:
        return dict(overrides)
    return {**overrides, "drop_score": float(chosen["best"]["drop_score"])}
