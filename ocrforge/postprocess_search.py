"""Choosing DBPostProcess's ``unclip_ratio`` and ``box_thresh`` for a trained detector by validation hmean.

The values that turn a probability map into boxes move with fine-tuning: on sroie100 the shipped PP-OCRv4
detector scores its best at unclip 1.3 and 0.17 lower at 2.0, and a fine-tuned one the other way round. The
maps are computed once per image by the inference pipeline (:meth:`ocrforge.system.TextSystem.detect_maps`);
each setting re-runs only :func:`ocrforge.system.boxes_from_maps`, the step the deployed system runs.

The choice goes to the run's own ``postprocess.json`` (:data:`ocrforge.system.POSTPROCESS_FILE`), beside the
``config.yml`` training wrote, which stays as training wrote it; evaluation and export read both
(:func:`ocrforge.system.trained_settings`), and params.yaml's ``system`` section may override it.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ocrforge.data.ppocrlabel import TextLine
from ocrforge.metrics.det_metric import precision_recall_hmean, score_detections

log = logging.getLogger(__name__)

def search_db_postprocess(
    maps: Sequence[tuple], ground_truths: Sequence[Sequence[TextLine]], post_process: dict,
    unclip_ratios: Sequence[float] = (), box_threshes: Sequence[float] = (), iou_threshold: float = 0.5,
) -> dict:
    """Score every (unclip_ratio, box_thresh) pair on precomputed ``maps`` against ``ground_truths`` (per image,
    labelled lines). The configured pair in ``post_process`` is always scored, so the choice is
    never worse than it on this data; ties go to the pair nearest the configured one.

    Returns ``{"rows": [{"unclip_ratio", "box_thresh", "precision", "recall", "hmean"}], "configured": row,
    "best": row, "changed": bool}``.
    """
    from ocrforge.postprocess import DBPostProcess
    from ocrforge.system import boxes_from_maps

    if len(maps) != len(ground_truths):
        raise ValueError(f"search_db_postprocess: {len(maps)} maps but {len(ground_truths)} ground truths")
    if not maps:
        raise ValueError("search_db_postprocess: no validation images; the val split is empty")
    configured = (float(post_process.get("unclip_ratio", 1.5)), float(post_process.get("box_thresh", 0.6)))
    unclips = sorted({configured[0], *(float(u) for u in unclip_ratios)})
    threshes = sorted({configured[1], *(float(b) for b in box_threshes)})
    fixed = {k: v for k, v in post_process.items() if k not in ("name", "unclip_ratio", "box_thresh")}
    rows = []
    for unclip, box_thresh in itertools.product(unclips, threshes):
        db = DBPostProcess(unclip_ratio=unclip, box_thresh=box_thresh, **fixed)
        matched = det_care = gt_care = 0
        for (prob, shape), lines in zip(maps, ground_truths):
            boxes = boxes_from_maps(db, prob, shape)  # exactly what the deployed system would detect
            score = score_detections(
                [np.asarray(b, dtype=np.float32) for b in boxes],
                [line.box for line in lines],
                [line.ignore for line in lines],
                iou_threshold=iou_threshold,
            )
            matched += score["matched"]
            det_care += score["det_care"]
            gt_care += score["gt_care"]
        rows.append({"unclip_ratio": unclip, "box_thresh": box_thresh,
                     **precision_recall_hmean(matched, det_care, gt_care)})

    def distance(row: dict) -> float:
        return abs(row["unclip_ratio"] - configured[0]) + abs(row["box_thresh"] - configured[1])

    configured_row = next(r for r in rows if (r["unclip_ratio"], r["box_thresh"]) == configured)
    best = min(rows, key=lambda r: (-round(r["hmean"], 6), distance(r)))
    return {"rows": rows, "configured": configured_row, "best": best, "changed": best is not configured_row}


def tune_det_postprocess(
    model_dir: str | os.PathLike, label_file: str | os.PathLike, data_dir: str | os.PathLike,
    unclip_ratios: Sequence[float], box_threshes: Sequence[float], report_file: str | os.PathLike,
    checkpoint: str = "best_accuracy", logger: logging.Logger = log,
) -> dict:
    """After a detector's training: score the DBPostProcess grid on the validation images with the
    ``checkpoint`` weights, write the table to ``report_file`` (JSON) and the post-process to keep (the best
    pair; the configured one without a grid) to ``model_dir/postprocess.json``, which evaluation and export
    read (:func:`ocrforge.system.trained_settings`)."""
    from ocrforge.config import load_config
    from ocrforge.data.det_labels import load_det_label_file
    from ocrforge.data.images import read_image
    from ocrforge.models.build import load_checkpoint
    from ocrforge.models.distillation import deployed_model
    from ocrforge.system import POSTPROCESS_FILE, DygraphRunner, TextSystem, settings_from_configs

    model_dir = Path(model_dir)
    config_file, weights = model_dir / "config.yml", model_dir / f"{checkpoint}.pdparams"
    config = load_config(config_file)
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found: the post-process search runs on a finished training run")
    samples = load_det_label_file(label_file, data_dir)
    post = dict(config.get("PostProcess") or {})
    result = {"searched": bool(unclip_ratios or box_threshes), "images": len(samples)}
    if result["searched"]:
        # the maps once, through the inference pipeline itself (pre-processing as the config's Eval says)
        system = TextSystem(DygraphRunner(deployed_model(load_checkpoint(config, weights), config)), None,
                            settings_from_configs(config))
        maps = [system.detect_maps(read_image(s.path)) for s in samples]
        result.update(search_db_postprocess(maps, [s.lines for s in samples], post, unclip_ratios, box_threshes))
        best = result["best"]
        for row in result["rows"]:
            logger.info("post-process unclip_ratio %.2f box_thresh %.2f: val precision %.4f recall %.4f hmean %.4f",
                        row["unclip_ratio"], row["box_thresh"], row["precision"], row["recall"], row["hmean"])
        post = {**post, "unclip_ratio": best["unclip_ratio"], "box_thresh": best["box_thresh"]}
        logger.info("post-process: unclip_ratio %.2f, box_thresh %.2f (val hmean %.4f; configured %.4f), "
                    "written to %s", best["unclip_ratio"], best["box_thresh"], best["hmean"],
                    result["configured"]["hmean"], model_dir / POSTPROCESS_FILE)
    result["post_process"] = {k: post.get(k) for k in ("thresh", "box_thresh", "unclip_ratio")}
    (model_dir / POSTPROCESS_FILE).write_text(json.dumps(result["post_process"], indent=2) + "\n", encoding="utf-8")
    Path(report_file).parent.mkdir(parents=True, exist_ok=True)
    Path(report_file).write_text(json.dumps(result, indent=2) + "\n")
    return result


def search_after_training(model_dir: str | os.PathLike, data_dir: str | os.PathLike, grid: dict | None,
                          report_dir: str | os.PathLike, logger: logging.Logger = log) -> dict:
    """What a detector-training stage runs after training: :func:`tune_det_postprocess` over ``grid`` (a
    ``postprocess_search`` param: ``unclip_ratio`` and ``box_thresh`` lists) on ``data_dir``'s val split, the
    table in ``report_dir/postprocess.json`` and a section appended to ``report_dir/report.md``."""
    grid = grid or {}
    report_dir = Path(report_dir)
    result = tune_det_postprocess(model_dir, Path(data_dir) / "det" / "val.txt", data_dir,
                                  grid.get("unclip_ratio") or [], grid.get("box_thresh") or [],
                                  report_dir / "postprocess.json", logger=logger)
    with open(report_dir / "report.md", "a", encoding="utf-8") as report:
        report.write(search_markdown(result))
    return result


def search_markdown(result: dict) -> str:
    """A report section for :func:`tune_det_postprocess`'s result: the table and the choice."""
    post = result["post_process"]
    if not result["searched"]:
        return (f"\n## Post-process\n\nunclip_ratio {post['unclip_ratio']}, box_thresh {post['box_thresh']} as "
                f"configured (no search: train_det.postprocess_search is empty).\n")
    lines = ["", "## Post-process, chosen on the val split", "",
             f"{result['images']} images; the row in bold is kept (the model folder's postprocess.json).", "",
             "| unclip_ratio | box_thresh | precision | recall | hmean |", "|---|---|---|---|---|"]
    for row in result["rows"]:
        cells = [f"{row['unclip_ratio']:g}", f"{row['box_thresh']:g}",
                 *(f"{row[k]:.4f}" for k in ("precision", "recall", "hmean"))]
        if row == result["best"]:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
