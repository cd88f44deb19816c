"""Choosing how the deployed system reads with a trained detector, on its validation images: DBPostProcess's
``unclip_ratio`` and ``box_thresh``, the detection side length, and (optionally) the trained weights or the ones
training started from, by validation hmean.

The values that turn a probability map into boxes move with fine-tuning: on sroie100 the shipped PP-OCRv4
detector scores its best at unclip 1.3 and 0.17 lower at 2.0, and a fine-tuned one the other way round. And a
short fine-tune on a few images can read a val split worse than the shipped weights did (sroie100: 0.895 after
three epochs at 960 px, 0.943 for the shipped detector at 1280). The maps are computed once per weights and side
length by the inference pipeline (:meth:`ocrforge.system.TextSystem.detect_maps`); each pair re-runs only
:func:`ocrforge.system.boxes_from_maps`, the step the deployed system runs.

The choice goes to the run's own ``postprocess.json`` (:data:`ocrforge.system.POSTPROCESS_FILE`), beside the
``config.yml`` training wrote, which stays as training wrote it; evaluation and export read both
(:func:`ocrforge.system.trained_settings`), and params.yaml's ``system`` section may override it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from ocrforge.data.ppocrlabel import TextLine
from ocrforge.metrics.det_metric import precision_recall_hmean, score_detections

log = logging.getLogger(__name__)

# the trained weights, kept beside the run's checkpoints when the search deploys the starting weights instead
TRAINED_CHECKPOINT = "best_trained"  # where the trained best goes, whole, when the starting weights win
TRAINED_WEIGHTS_FILE = TRAINED_CHECKPOINT + ".pdparams"

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
    from ocrforge.postprocess import DBPostProcess, db_grid
    from ocrforge.system import boxes_from_maps

    if len(maps) != len(ground_truths):
        raise ValueError(f"search_db_postprocess: {len(maps)} maps but {len(ground_truths)} ground truths")
    if not maps:
        raise ValueError("search_db_postprocess: no validation images; the val split is empty")
    configured = (float(post_process.get("unclip_ratio", 1.5)), float(post_process.get("box_thresh", 0.6)))
    fixed = {k: v for k, v in post_process.items() if k not in ("name", "unclip_ratio", "box_thresh")}
    rows = []
    for unclip, box_thresh in db_grid(configured, unclip_ratios, box_threshes):
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


def keep_starting_weights(model_dir: str | os.PathLike, checkpoint: str, model, source: str) -> None:
    """Make checkpoint ``checkpoint`` of ``model_dir`` hold ``model``'s weights (the ones training started from,
    ``source``), keeping the trained checkpoint whole (weights, optimizer state, states.json) as ``best_trained``.

    The new ``checkpoint`` is a complete unit without optimizer state: its states.json hashes the new weights (so
    :func:`ocrforge.engine.checkpoint.load_checkpoint` accepts it), keeps the trained run's record and says
    ``"weights": "pretrained"``."""
    from ocrforge.engine.checkpoint import checkpoint_exists, checkpoint_paths, read_states, save_checkpoint

    directory = str(model_dir)
    states = read_states(directory, checkpoint) if checkpoint_exists(directory, checkpoint) else {}
    trained = checkpoint_paths(directory, TRAINED_CHECKPOINT)
    current = checkpoint_paths(directory, checkpoint)
    for kind in ("params", "opt", "states"):  # states.json last: it makes the copy whole
        if os.path.isfile(current[kind]):
            shutil.copyfile(current[kind], trained[kind])
    Path(current["opt"]).unlink(missing_ok=True)  # the trained run's optimizer state does not go with these weights
    record = {k: v for k, v in states.items() if k not in ("sha256", "format_version")}
    save_checkpoint(directory, checkpoint, model, None, {**record, "weights": "pretrained", "pretrained_model": source})


def tune_det_postprocess(
    model_dir: str | os.PathLike, label_file: str | os.PathLike, data_dir: str | os.PathLike,
    unclip_ratios: Sequence[float], box_threshes: Sequence[float], report_file: str | os.PathLike,
    checkpoint: str = "best_accuracy", logger: logging.Logger = log, side_lens: Sequence[int] = (),
    compare_pretrained: bool = False,
) -> dict:
    """After a detector's training: choose how the deployed system reads with it, on the validation images.

    Scores the DBPostProcess grid (``unclip_ratios`` x ``box_threshes``, with the configured pair) at each
    detection side length (``side_lens``, with the config's own), with the ``checkpoint`` weights and, when
    ``compare_pretrained``, also with the weights the training started from (``Global.pretrained_model``).
    Writes the table to ``report_file`` (JSON) and the choice to ``model_dir/postprocess.json``, which
    evaluation and export read (:func:`ocrforge.system.trained_settings`). When the starting weights read the
    val split better than every fine-tuned epoch (a shipped detector that fine-tuning on a few images made
    worse), they become checkpoint ``<checkpoint>`` and the trained one is kept as ``best_trained``
    (:func:`keep_starting_weights`).
    Ties go to the trained weights, the configured side length and the pair nearest the configured one."""
    from ocrforge.config import load_config
    from ocrforge.data.det_labels import load_det_label_file
    from ocrforge.data.images import read_image
    from ocrforge.models.build import build_pretrained_model, load_checkpoint
    from ocrforge.models.distillation import deployed_model
    from ocrforge.system import POSTPROCESS_FILE, DygraphRunner, TextSystem, settings_from_configs

    model_dir = Path(model_dir)
    config_file, weights = model_dir / "config.yml", model_dir / f"{checkpoint}.pdparams"
    config = load_config(config_file)
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found: the post-process search runs on a finished training run")
    samples = load_det_label_file(label_file, data_dir)
    post = dict(config.get("PostProcess") or {})
    settings = settings_from_configs(config)
    configured_side = settings.det_limit_side_len
    sides = sorted({configured_side, *(int(s) for s in side_lens)})
    pretrained = config["Global"].get("pretrained_model") or ""
    compare_pretrained = bool(compare_pretrained and pretrained and config["Architecture"].get("name") != "DistillationModel")
    result = {"searched": bool(unclip_ratios or box_threshes or len(sides) > 1 or compare_pretrained),
              "images": len(samples)}
    weights_kept = "trained"
    if result["searched"]:
        models = {"trained": deployed_model(load_checkpoint(config, weights), config)}
        if compare_pretrained:
            models["pretrained"] = build_pretrained_model(config, logger)
        longest = [max(read_image(s.path).shape[:2]) for s in samples]
        truths = [s.lines for s in samples]
        rows, configured = [], None
        for name, model in models.items():
            model.eval()
            scored: dict[tuple, list] = {}  # side lengths that resize no val image differently share their maps
            for side in sides:
                key = tuple(min(side, n) for n in longest)
                if key not in scored:
                    # the maps once, through the inference pipeline itself (pre-processing as the config's Eval)
                    system = TextSystem(DygraphRunner(model), None, settings.with_overrides(det_limit_side_len=side))
                    maps = [system.detect_maps(read_image(s.path)) for s in samples]
                    scored[key] = search_db_postprocess(maps, truths, post, unclip_ratios, box_threshes)
                found = scored[key]
                for row in found["rows"]:
                    rows.append({"weights": name, "limit_side_len": side, **row})
                best = max(found["rows"], key=lambda r: r["hmean"])
                logger.info("post-process search, %s weights at side %d: best val hmean %.4f (unclip_ratio %.2f, "
                            "box_thresh %.2f)", name, side, best["hmean"], best["unclip_ratio"], best["box_thresh"])
                if name == "trained" and side == configured_side:
                    configured = {"weights": name, "limit_side_len": side, **found["configured"]}

        def preference(row: dict) -> tuple:
            return (-round(row["hmean"], 6), row["weights"] != "trained", row["limit_side_len"] != configured_side,
                    abs(row["unclip_ratio"] - configured["unclip_ratio"]) + abs(row["box_thresh"] - configured["box_thresh"]))

        best = min(rows, key=preference)
        result.update(rows=rows, configured=configured, best=best, changed=best != configured)
        post = {**post, "unclip_ratio": best["unclip_ratio"], "box_thresh": best["box_thresh"]}
        weights_kept = best["weights"]
        if weights_kept == "pretrained":
            keep_starting_weights(model_dir, checkpoint, models["pretrained"], pretrained)
            logger.info("the weights training started from (%s) read the val split better than the trained ones "
                        "(hmean %.4f vs %.4f at best): %s now holds them; the trained ones are in %s", pretrained,
                        best["hmean"], max(r["hmean"] for r in rows if r["weights"] == "trained"), weights,
                        model_dir / TRAINED_WEIGHTS_FILE)
        logger.info("post-process: %s weights, side %d, unclip_ratio %.2f, box_thresh %.2f (val hmean %.4f; as "
                    "configured %.4f), written to %s", weights_kept, best["limit_side_len"], best["unclip_ratio"],
                    best["box_thresh"], best["hmean"], configured["hmean"], model_dir / POSTPROCESS_FILE)
    result["post_process"] = {k: post.get(k) for k in ("thresh", "box_thresh", "unclip_ratio")}
    result["post_process"]["limit_side_len"] = result["best"]["limit_side_len"] if result["searched"] else configured_side
    result["weights"] = weights_kept
    (model_dir / POSTPROCESS_FILE).write_text(json.dumps({**result["post_process"], "weights": weights_kept},
                                                         indent=2) + "\n", encoding="utf-8")
    Path(report_file).parent.mkdir(parents=True, exist_ok=True)
    Path(report_file).write_text(json.dumps(result, indent=2) + "\n")
    return result


def search_after_training(model_dir: str | os.PathLike, data_dir: str | os.PathLike, grid: dict | None,
                          report_dir: str | os.PathLike, logger: logging.Logger = log) -> dict:
    """What a detector-training stage runs after training: :func:`tune_det_postprocess` over ``grid`` (a
    ``postprocess_search`` param: ``unclip_ratio``, ``box_thresh`` and ``limit_side_len`` lists,
    ``compare_pretrained``) on ``data_dir``'s val split, the table in ``report_dir/postprocess.json`` and a
    section appended to ``report_dir/report.md``."""
    grid = grid or {}
    report_dir = Path(report_dir)
    result = tune_det_postprocess(model_dir, Path(data_dir) / "det" / "val.txt", data_dir,
                                  grid.get("unclip_ratio") or [], grid.get("box_thresh") or [],
                                  report_dir / "postprocess.json", logger=logger,
                                  side_lens=grid.get("limit_side_len") or [],
                                  compare_pretrained=bool(grid.get("compare_pretrained")))
    with open(report_dir / "report.md", "a", encoding="utf-8") as report:
        report.write(search_markdown(result))
    return result


def _cells(row: dict, keys: Sequence[str]) -> list[str]:
    return [f"{row[k]:.4f}" if k in ("precision", "recall", "hmean") else f"{row[k]:g}" if isinstance(row[k], float)
            else str(row[k]) for k in keys]


def search_markdown(result: dict) -> str:
    """A report section for :func:`tune_det_postprocess`'s result: the table and the choice."""
    post = result["post_process"]
    if not result["searched"]:
        return (f"\n## Post-process\n\nunclip_ratio {post['unclip_ratio']}, box_thresh {post['box_thresh']} as "
                f"configured (no search: train_det.postprocess_search is empty).\n")
    best = result["best"]
    lines = ["", "## Post-process, chosen on the val split", ""]
    combos = sorted({(r["weights"], r["limit_side_len"]) for r in result["rows"]}, key=lambda c: (c[0] != "trained", c[1]))
    if len(combos) > 1:
        lines += [f"{result['images']} images. The best pair of each weights and detection side length; the row in "
                  f"bold is kept (the model folder's postprocess.json):", "",
                  "| weights | side length | unclip_ratio | box_thresh | precision | recall | hmean |",
                  "|---|---|---|---|---|---|---|"]
        keys = ("weights", "limit_side_len", "unclip_ratio", "box_thresh", "precision", "recall", "hmean")
        configured = result["configured"]

        def shown(r: dict) -> tuple:  # the search's own preference: ties go to the pair nearest the configured one
            return (round(r["hmean"], 6), r == best, -abs(r["unclip_ratio"] - configured["unclip_ratio"])
                    - abs(r["box_thresh"] - configured["box_thresh"]))

        for combo in combos:
            row = max((r for r in result["rows"] if (r["weights"], r["limit_side_len"]) == combo), key=shown)
            cells = _cells(row, keys)
            lines.append("| " + " | ".join(f"**{c}**" if row == best else c for c in cells) + " |")
        if best["weights"] == "pretrained":
            lines += ["", "The weights training started from read the val split best: best_accuracy.pdparams holds "
                          f"them, and the trained checkpoint is kept whole as {TRAINED_WEIGHTS_FILE} (with its .pdopt "
                          "and .states.json)."]
        lines += ["", f"Every pair with the {best['weights']} weights at side {best['limit_side_len']}:", ""]
    else:
        lines += [f"{result['images']} images; the row in bold is kept (the model folder's postprocess.json).", ""]
    lines += ["| unclip_ratio | box_thresh | precision | recall | hmean |", "|---|---|---|---|---|"]
    for row in result["rows"]:
        if (row["weights"], row["limit_side_len"]) != (best["weights"], best["limit_side_len"]):
            continue
        cells = _cells(row, ("unclip_ratio", "box_thresh", "precision", "recall", "hmean"))
        lines.append("| " + " | ".join(f"**{c}**" if row == best else c for c in cells) + " |")
    return "\n".join(lines) + "\n"
