"""Evaluate the OCR system on labelled images: detection, recognition on ground-truth crops, end to end.

``evaluate(system, samples, out_dir)`` writes into ``out_dir``:

- ``metrics.json``: ``det`` (precision, recall, hmean at IoU 0.5), ``rec`` (acc, norm_edit_dis on the
  ground-truth crops), ``e2e`` (line precision/recall/hmean: IoU >= 0.5 and equal text; ``full_text_acc``
  per image), and ``images`` / ``lines`` counts. ``det`` and ``e2e`` also give ``hmean_ci95_low`` /
  ``hmean_ci95_high``: a 95% bootstrap interval over the images, which says how far a test set this size
  lets two models' figures be compared;
- ``predictions.jsonl``: one line per image, its ground truth, prediction and scores;
- ``gallery/``: the worst ``gallery_size`` images, ground truth in green (left) and prediction in red (right);
- ``README.md``: the figures and the gallery list.

With ``zero_shot`` (names from :data:`ocrforge.offtheshelf.ANCHORS`: ``ppocrv4``, ``ppocrv6``), ``metrics.json``
and the README also hold, per off-the-shelf model run end to end on the same samples, the same det / rec / e2e
figures (:func:`evaluate_engine`) and its dictionary's coverage of the test labels: a figure is marked
``comparable: false`` when some label characters are outside that dictionary (the model cannot read them).

Samples come from ``load_testset``: the split stage's test split (``det/test.txt``) or any PPOCRLabel folder.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ocrforge.data.crop import crop_text_line, order_quad
from ocrforge.data.det_labels import Sample
from ocrforge.data.images import read_image
from ocrforge.data.ppocrlabel import TextLine
from ocrforge.metrics import (E2EMetric, RecMetric, hmean_interval, precision_recall_hmean, score_detections,
                              score_end_to_end)
from ocrforge.system import TextSystem


def _quads(lines: list[TextLine]) -> np.ndarray:
    """Ground-truth polygons as (M, 4, 2) quads (a polygon of more points by its minimum-area rectangle)."""
    return np.array([line.box if len(line.points) == 4 else order_quad(line.box) for line in lines],
                    dtype=np.float32).reshape(-1, 4, 2)


def evaluate(system: TextSystem, samples: list[Sample], out_dir: str | os.PathLike, gallery_size: int = 8,
             case_sensitive: bool = True, logger=None, zero_shot: Sequence[str] = (), threads: int = 0) -> dict:
    """Run ``system`` on ``samples``, write the reports into ``out_dir`` (see the module docstring), and
    return the metrics. ``case_sensitive=False`` compares texts case-folded (rec and end to end).
    ``zero_shot``: off-the-shelf models to score beside it (:func:`zero_shot_figures`, ``threads`` each)."""
    if not samples:
        raise ValueError("no labelled images to evaluate; check the label file or folder")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scores = _Scores(case_sensitive)
    records, started = [], time.perf_counter()
    with open(out_dir / "predictions.jsonl", "w", encoding="utf-8") as out:
        for sample in samples:
            image = read_image(sample.path)
            boxes = system.detect(image)
            cared = [line for line in sample.lines if not line.ignore]
            reads = system.recognize([crop_text_line(image, line.box) for line in cared]) if cared else []
            result = system.read_boxes(image, boxes)
            preds = [{"points": line.box, "text": line.text} for line in result.lines]
            det, e2e = scores.add(sample, boxes, reads, preds)
            record = {
                "image": sample.name,
                "gt": [{"box": g.box.round(1).tolist(), "text": g.text, "ignore": g.ignore} for g in sample.lines],
                "pred": result.to_json(),
                "rec_on_gt_crops": [{"gt": line.text, "pred": text, "score": round(score, 5)}
                                    for line, (text, score) in zip(cared, reads)],
                "det": {k: det[k] for k in ("gt_care", "det_care", "matched")},
                "e2e": {k: e2e[k] for k in ("gt_care", "det_care", "matched", "full_text_match")},
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            records.append((sample, image, result, record))
    seconds = time.perf_counter() - started
    metrics = {
        "images": len(samples),
        "lines": sum(len([g for g in s.lines if not g.ignore]) for s in samples),
        **scores.figures(),
        "case_sensitive": case_sensitive,
    }
    if zero_shot:
        metrics["zero_shot"] = zero_shot_figures(zero_shot, samples, case_sensitive, threads, logger)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    gallery = write_gallery(records, out_dir / "gallery", gallery_size)
    write_readme(out_dir, metrics, gallery)
    if logger is not None:
        logger.info("evaluated %d images in %.1f s: %s", len(samples), seconds, json.dumps(metrics))
    return metrics


def evaluate_engine(engine, samples: list[Sample], case_sensitive: bool = True) -> dict:
    """The figures :func:`evaluate` gives our system, for any engine with the benchmark's interface
    (``detect``, ``read``, ``recognize``; e.g. :class:`ocrforge.offtheshelf.RapidOCRv6Engine`): ``det`` from
    ``detect``, ``e2e`` from ``read`` (the engine's own pipeline end to end), ``rec`` on the ground-truth crops,
    each crop alone (batch 1), with 95% bootstrap intervals of the hmeans over the images."""
    if not samples:
        raise ValueError("no labelled images to evaluate; check the label file or folder")
    scores = _Scores(case_sensitive)
    for sample in samples:
        image = read_image(sample.path)
        cared = [line for line in sample.lines if not line.ignore]
        reads = engine.recognize([crop_text_line(image, line.box) for line in cared], 1) if cared else []
        preds = [{"points": box, "text": text} for box, text, _ in engine.read(image)]
        scores.add(sample, engine.detect(image), reads, preds)
    return scores.figures()


class _Scores:
    """Detection, recognition (ground-truth crops) and end-to-end figures, added image by image."""

    def __init__(self, case_sensitive: bool):
        self.det_counts, self.e2e_counts = [], []
        self.rec = RecMetric(ignore_space=False, case_sensitive=case_sensitive)
        self.e2e = E2EMetric(case_sensitive=case_sensitive)

    def add(self, sample: Sample, boxes, reads: list, preds: list[dict]) -> tuple[dict, dict]:
        """One image: its detected boxes (N, 4, 2), the reads ``[(text, score)]`` of its cared ground-truth
        crops, its end-to-end lines ``[{"points", "text"}]``; returns its det and e2e scores."""
        ignores = np.array([line.ignore for line in sample.lines], dtype=bool)
        det = score_detections(np.asarray(boxes, dtype=np.float32).reshape(-1, 4, 2), _quads(sample.lines), ignores)
        self.det_counts.append([det["matched"], det["det_care"], det["gt_care"]])
        self.rec((reads, [(line.text, 1.0) for line in sample.lines if not line.ignore]))
        e2e = score_end_to_end(preds, sample.lines, self.e2e.iou_threshold, self.e2e.normalize)
        self.e2e.add(e2e)
        self.e2e_counts.append([e2e["matched"], e2e["det_care"], e2e["gt_care"]])
        return det, e2e

    def figures(self) -> dict:
        return {"det": {**precision_recall_hmean(*np.sum(self.det_counts, axis=0)), **hmean_interval(self.det_counts)},
                "rec": self.rec.get_metric(),
                "e2e": {**self.e2e.get_metric(), **hmean_interval(self.e2e_counts)}}


def zero_shot_figures(names: Sequence[str], samples: list[Sample], case_sensitive: bool = True, threads: int = 0,
                      logger=None) -> dict:
    """Off-the-shelf models (``ppocrv4``, ``ppocrv6``: :data:`ocrforge.offtheshelf.ANCHORS`) scored on
    ``samples`` by :func:`evaluate_engine`, each with ``dictionary_coverage`` of the cared labels (fraction of
    characters / of lines inside its dictionary) and ``comparable`` (every label character is readable).
    ``threads``: onnxruntime threads of each model (0: one per core)."""
    from ocrforge.offtheshelf import anchor_charset, build_anchor, dictionary_coverage

    texts = [line.text for sample in samples for line in sample.lines if not line.ignore]
    figures = {}
    for name in names:
        started, cpu_started = time.perf_counter(), time.process_time()
        engine = build_anchor(name, threads or os.cpu_count() or 1)
        coverage = dictionary_coverage(anchor_charset(name), texts, case_sensitive)
        figures[name] = {"model": engine.version, "package": engine.package,
                         "dictionary_coverage": coverage, "comparable": coverage["lines"] == 1.0,
                         **evaluate_engine(engine, samples, case_sensitive)}
        if logger is not None:
            logger.info("zero-shot %s (%s) on %d images in %.1f s (%.1f s of CPU): %s", name, engine.label,
                        len(samples), time.perf_counter() - started, time.process_time() - cpu_started,
                        json.dumps(figures[name], ensure_ascii=False))
    return figures


def image_fscore(e2e: dict) -> float:
    """The end-to-end line F-score of one image (1.0 for an image with nothing to read and nothing read)."""
    total = e2e["gt_care"] + e2e["det_care"]
    return 1.0 if total == 0 else 2.0 * e2e["matched"] / total


def write_gallery(records: list, gallery_dir: Path, size: int) -> list[dict]:
    """Draw the ``size`` worst images (lowest line F-score, then a wrong full text) that have an error."""
    import shutil

    from ocrforge.drawing import GREEN, RED, draw_lines, side_by_side, write_image

    if gallery_dir.exists():
        shutil.rmtree(gallery_dir)
    gallery_dir.mkdir(parents=True)
    wrong = [r for r in records if image_fscore(r[3]["e2e"]) < 1.0 or not r[3]["e2e"]["full_text_match"]]
    wrong.sort(key=lambda r: (image_fscore(r[3]["e2e"]), r[3]["e2e"]["full_text_match"], r[0].name))
    listed = []
    for rank, (sample, image, result, record) in enumerate(wrong[:size], start=1):
        cared = [g for g in sample.lines if not g.ignore]
        gt_panel = draw_lines(image, [g.box for g in cared], [g.text for g in cared], GREEN)
        pred_panel = draw_lines(image, [line.box for line in result.lines], [line.text for line in result.lines], RED)
        name = f"{rank:02d}_{Path(sample.name).stem}.png"
        write_image(gallery_dir / name, side_by_side(gt_panel, pred_panel))
        listed.append({"file": name, "image": sample.name, "fscore": round(image_fscore(record["e2e"]), 4),
                       "gt_text": " | ".join(g.text for g in cared), "pred_text": result.full_text.replace("\n", " | ")})
    return listed


def write_readme(out_dir: Path, metrics: dict, gallery: list[dict]) -> None:
    rows = "\n".join(f"| [{g['file']}](gallery/{g['file']}) | {g['image']} | {g['fscore']} | {g['gt_text']} | "
                     f"{g['pred_text']} |" for g in gallery) or "| (no image with an error) | | | | |"
    det, rec, e2e = metrics["det"], metrics["rec"], metrics["e2e"]
    text = f"""# Evaluation

{metrics['images']} images, {metrics['lines']} text lines (case {'sensitive' if metrics['case_sensitive'] else 'insensitive'}).

| | precision | recall | hmean | hmean, 95% interval over images |
|---|---|---|---|---|
| detection (IoU >= 0.5) | {det['precision']:.4f} | {det['recall']:.4f} | {det['hmean']:.4f} | {det['hmean_ci95_low']:.4f} - {det['hmean_ci95_high']:.4f} |
| end to end (IoU >= 0.5, same text) | {e2e['precision']:.4f} | {e2e['recall']:.4f} | {e2e['hmean']:.4f} | {e2e['hmean_ci95_low']:.4f} - {e2e['hmean_ci95_high']:.4f} |

The interval is a bootstrap over this test set's images: how far the figure moves on another test set of
this size. A difference between two models well inside it is not shown by this test set.

Recognition on the ground-truth crops: acc {rec['acc']:.4f}, norm_edit_dis {rec['norm_edit_dis']:.4f}.
Images whose full text is read exactly: {e2e['full_text_acc']:.4f}.

{zero_shot_section(metrics)}## Error gallery

The worst images (lowest end-to-end line F-score): ground truth in green on the left, prediction in red on
the right. Every image's ground truth and prediction are in `predictions.jsonl`.

| file | image | F-score | ground truth | prediction |
|---|---|---|---|---|
{rows}
"""
    (out_dir / "README.md").write_text(text, encoding="utf-8")


def zero_shot_section(metrics: dict) -> str:
    """The README's table of the off-the-shelf models beside ours ('' when none was run)."""
    anchors = metrics.get("zero_shot")
    if not anchors:
        return ""

    def row(name: str, m: dict, note: str) -> str:
        return (f"| {name} | {m['det']['hmean']:.4f} | {m['e2e']['precision']:.4f} | {m['e2e']['recall']:.4f} | "
                f"{m['e2e']['hmean']:.4f} | {m['e2e']['full_text_acc']:.4f} | {m['rec']['acc']:.4f} | {note} |")

    rows = [row("ours (fine-tuned)", metrics, "")]
    for name, m in anchors.items():
        c = m["dictionary_coverage"]
        note = f"{c['lines']:.1%} of lines, {c['chars']:.1%} of characters in its dictionary"
        if not m["comparable"]:
            note = f"**not comparable**: {note}; missing {c['missing']!r}"
        rows.append(row(f"{name}: {m['model']} off the shelf ({m['package']})", m, note))
    return f"""## Zero-shot anchors

The same images read by off-the-shelf models, each through its own package's pipeline (its resize,
thresholds and dictionary), not trained on this data. A model whose dictionary lacks characters of the labels
cannot read those lines: its figures are marked not comparable.

| model | det hmean | e2e precision | e2e recall | e2e hmean | full-text acc | rec acc (GT crops) | dictionary |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

"""
