"""Choosing the reading system's ``drop_score`` and ``det_db_unclip_ratio`` on the validation images (stage
tune_system).

The system drops a read line whose recognition score is below ``drop_score`` (PaddleOCR's default: 0.5). A line
read with a low score is mostly a misread or text the labels leave out (a badge beside a plate), and each one
counts against end-to-end precision and its image's full text; on clean pages a high threshold drops right
lines instead. So the threshold is chosen per data set, as the detector's post-process is
(ocrforge.postprocess_search). That search chooses the unclip ratio by detection hmean, an IoU count that cannot
see how much margin the recogniser reads best with; here the ratio is chosen again, with the threshold, by what
the system is judged on. Each val image is read once per unclip ratio (the detector's own and
``tune_system.unclip_ratio``; the detector runs once, its maps post-processed per ratio) with every line kept,
then each threshold keeps its lines and each pair is scored end to end (line hmean, the metric the eval stage
reports), an image's full text built from the kept lines as the system builds it. Ties go to the detector's own
ratio, then to the lowest threshold, which keeps the most lines.

Measured (drop_score alone, the detector's ratio): 0.9 on the demo (val hmean 0.718 -> 0.785) and on sroie100
(0.785 -> 0.788); on plates_eu_br no threshold changed the val reads (its other text reads at 0.9 or more).

The choice goes to ``reports/tune_system/system.json`` (committed with dvc.lock); the eval and export stages read
it through :func:`tuned_overrides` where params.yaml's system section sets no value of its own.
"""

from __future__ import annotations

import os
from typing import Sequence

from ocrforge.data.det_labels import Sample
from ocrforge.data.images import read_image
from ocrforge.metrics import E2EMetric, precision_recall_hmean, score_end_to_end
from ocrforge.system import OcrLine, TextSystem, read_choice_file

TUNED_FILE = "reports/tune_system/system.json"


def read_every_line(system: TextSystem, samples: Sequence[Sample], unclip_ratios: Sequence[float] = (),
                    logger=None) -> dict[float, list[list[OcrLine]]]:
    """For each ``det_db_unclip_ratio`` (``system``'s own and ``unclip_ratios``): the lines read in each sample's
    image with no line dropped (``drop_score`` 0). The detector runs once per image; each ratio's boxes are then
    cut from its maps and recognised."""
    ratios = sorted({float(system.settings.det_db_unclip_ratio), *(float(r) for r in unclip_ratios)})
    readers = {ratio: TextSystem(system.detector, system.recognizer,
                                 system.settings.with_overrides(drop_score=0.0, det_db_unclip_ratio=ratio))
               for ratio in ratios}
    readings: dict[float, list[list[OcrLine]]] = {ratio: [] for ratio in ratios}
    for i, sample in enumerate(samples, 1):
        image = read_image(sample.path)
        maps, shape = system.detect_maps(image)
        for ratio, reader in readers.items():
            readings[ratio].append(reader.read_boxes(image, reader.boxes_in_maps(maps, shape)).lines)
        if logger and (i % 20 == 0 or i == len(samples)):
            logger.info("read %d of %d val images (%d unclip ratios)", i, len(samples), len(ratios))
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


def score_settings(readings: dict[float, Sequence[Sequence[OcrLine]]], samples: Sequence[Sample],
                   drop_scores: Sequence[float], case_sensitive: bool = True) -> list[dict]:
    """:func:`score_drop_scores` for each unclip ratio's readings (:func:`read_every_line`): rows ordered by
    ``unclip_ratio`` then ``drop_score``, each with its ``unclip_ratio``."""
    return [{"unclip_ratio": ratio, **row} for ratio in sorted(readings)
            for row in score_drop_scores(readings[ratio], samples, drop_scores, case_sensitive)]


def choose(rows: Sequence[dict], unclip_ratio: float | None = None) -> dict:
    """The row of best hmean. Ties go to ``unclip_ratio`` (the one the detector's own search chose by detection
    hmean, so the better boxes), then to the lowest ``drop_score``, which keeps the most lines."""
    best = max(row["hmean"] for row in rows)
    return min((row for row in rows if row["hmean"] == best),
               key=lambda row: (row.get("unclip_ratio", unclip_ratio) != unclip_ratio, row["drop_score"],
                                row.get("unclip_ratio", 0.0)))


def search_system(system: TextSystem, samples: Sequence[Sample], drop_scores: Sequence[float],
                  unclip_ratios: Sequence[float] = (), case_sensitive: bool = True, logger=None) -> dict:
    """Read ``samples`` once per unclip ratio and score each pair of the grid (``system``'s own values included).

    Returns ``{"searched": true, "images", "case_sensitive", "rows", "configured": row, "best": row}``.
    """
    drop, unclip = float(system.settings.drop_score), float(system.settings.det_db_unclip_ratio)
    readings = read_every_line(system, samples, unclip_ratios, logger)
    rows = score_settings(readings, samples, [drop, *drop_scores], case_sensitive)
    configured = next(row for row in rows if (row["unclip_ratio"], row["drop_score"]) == (unclip, drop))
    return {"searched": True, "images": len(samples), "case_sensitive": case_sensitive, "rows": rows,
            "configured": configured, "best": choose(rows, unclip)}


def read_tuned(path: str | os.PathLike = TUNED_FILE) -> dict:
    """What stage tune_system chose (its ``system.json``); {} where it has not run or searched nothing."""
    chosen = read_choice_file(path, "rerun the stage that writes it (dvc repro tune_system)")
    return chosen if chosen and chosen.get("searched") else {}


def tuned_overrides(overrides: dict, path: str | os.PathLike = TUNED_FILE) -> dict:
    """params.yaml's system ``overrides`` (:func:`ocrforge.params.system_overrides`), with the ``drop_score`` and
    ``det_db_unclip_ratio`` stage tune_system chose on the val split where they set none."""
    chosen = read_tuned(path)
    if not chosen:
        return dict(overrides)
    best = chosen["best"]
    tuned = {"drop_score": best.get("drop_score"), "det_db_unclip_ratio": best.get("unclip_ratio")}
    return {**{k: float(v) for k, v in tuned.items() if v is not None}, **overrides}
