"""Where the end-to-end misses are: each labelled line the system did not read, put in the one kind that says
which part to improve, read from the eval stage's ``predictions.jsonl``.

The end-to-end metric (:mod:`ocrforge.metrics.e2e_metric`) counts a labelled line as read when a predicted
line overlaps it at IoU >= 0.5 with the same text. Here every other labelled line gets one kind, tried in this
order:

- ``no_line``: no predicted line overlaps it at IoU >= 0.5. Either the detector did not box it as labelled
  (``split``: two or more predicted lines lie mostly inside it, so the line was cut where the labels keep it
  whole; ``merged``: it lies mostly inside one larger predicted line, joined with its neighbours), or its box
  was found but its reading scored below ``drop_score`` and was dropped (``dropped``, counted per image from
  the detection figures: its labelled lines the detector matched, less those read or otherwise placed);
- ``spaces_only``: the overlapping box reads it right but for spaces;
- ``box_shape``: the recogniser reads its labelled crop right, but not the detected box;
- ``misread``: the recogniser misreads the labelled crop too (or the label is wrong: see the examples).

Predicted lines that overlap no labelled line at IoU >= 0.5 are counted apart (``unlabelled_boxes``): text the
labels do not mark, or pieces of a line. Texts are compared as the metric compares them (stripped, and
case-folded when not case-sensitive), lines are matched by the metric's own rule
(:func:`~ocrforge.metrics.e2e_metric.match_lines`), so ``read`` equals the metric's matched count.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from ocrforge.metrics.det_metric import iou
from ocrforge.metrics.e2e_metric import E2EMetric, match_lines

KINDS = ("no_line", "spaces_only", "box_shape", "misread")

ADVICE = {
    "no_line": "`dropped`: readings below `system.drop_score` (chosen on val by `tune_system`, against the misreads "
               "a lower one lets in): more recogniser training; "
               "the rest, the detector: lines it splits (`split`) or merges (`merged`) against the labels' "
               "convention, or text it does not find; more detector training on images labelled this way, "
               "`train_det.postprocess_search`, `system.det_limit_side_len`",
    "spaces_only": "spacing: the labels and the reading disagree on spaces; check that the labels write them "
                   "one way",
    "box_shape": "the box the detector cuts (a character cut off, a neighbour taken in): the post-process "
                 "`unclip_ratio`, `train_rec.box_jitter`",
    "misread": "the recogniser, or the label (read the examples): more labelled lines, `train_rec.epochs`",
    "unlabelled_boxes": "text the labels do not mark (other text in the photo) or pieces of a line: a detector "
                        "trained on more images labelled this way, a higher `box_thresh`",
}


def _record_misses(record: dict, normalize, threshold: float) -> tuple[int, list[tuple], list[dict]]:
    """One image: (lines read, [(kind, example)] of its missed labelled lines, its unlabelled predicted lines)."""
    labels = record["gt"]
    crop_reads = [r["pred"] for r in record.get("rec_on_gt_crops", [])]
    crop_read = dict(zip([i for i, g in enumerate(labels) if not g.get("ignore")], crop_reads))
    pred_items = record["pred"].get("lines", [])
    match = match_lines([{"points": p["box"], "text": p.get("text", "")} for p in pred_items],
                        [{"points": g["box"], "text": g.get("text", ""), "ignore": g.get("ignore", False)}
                         for g in labels], threshold, normalize)
    gt_polys, pred_polys, pred_care, gt_care = match.gt_polys, match.pred_polys, match.pred_care, match.gt_care
    read_gts, used_preds = {g for g, _ in match.pairs}, {p for _, p in match.pairs}
    misses = []
    for g, poly in enumerate(gt_polys):
        if not gt_care[g] or g in read_gts:
            continue
        overlaps = [(iou(poly, pred_polys[p]), p) for p in range(len(pred_polys))
                    if pred_care[p] and p not in used_preds]
        best_iou, best = max(overlaps, default=(0.0, None))
        example = {"image": record.get("image", ""), "label": match.gt_texts[g]}
        if best is None or best_iou < threshold:
            inside = sum(1 for p, pred in enumerate(pred_polys) if pred_care[p] and pred.area > 0
                         and pred.intersection(poly).area / pred.area > 0.5)
            kind = "no_line"
            example["split"] = inside >= 2
            example["merged"] = not example["split"] and any(
                pred_care[p] and pred.intersection(poly).area > 0.5 * poly.area for p, pred in enumerate(pred_polys))
        else:
            example["read"] = match.pred_texts[best]
            example["label_crop_read"] = crop_read.get(match.gt_index[g], "")
            if match.pred_normalized[best].replace(" ", "") == match.gt_normalized[g].replace(" ", ""):
                kind = "spaces_only"
            elif normalize(example["label_crop_read"]) == match.gt_normalized[g]:
                kind = "box_shape"
            else:
                kind = "misread"
        misses.append((kind, example))
    unlabelled = []
    for p, poly in enumerate(pred_polys):
        if not pred_care[p] or any(gt_care[g] and iou(gt, poly) >= threshold for g, gt in enumerate(gt_polys)):
            continue
        item = pred_items[match.pred_index[p]]
        unlabelled.append({"image": record.get("image", ""), "read": match.pred_texts[p], "score": item.get("score")})
    return len(match.pairs), misses, unlabelled


def analyse_misses(records: Iterable[dict], case_sensitive: bool = True, iou_threshold: float = 0.5,
                   examples: int = 5) -> dict:
    """The misses of ``records`` (``predictions.jsonl`` rows): ``{"lines", "read", "missed", "kinds": {kind:
    {"count", "share", "examples"}}, "unlabelled_boxes": {"count", "examples"}}``; ``share`` is of all
    labelled lines, ``no_line`` also counts ``split``, ``merged`` and ``dropped``; ``examples`` per kind, the
    first in image order."""
    normalize = E2EMetric(case_sensitive=case_sensitive).normalize
    lines = read = 0
    kinds = {kind: {"count": 0, "examples": []} for kind in KINDS}
    kinds["no_line"].update(split=0, merged=0, dropped=0)
    unlabelled = {"count": 0, "examples": []}
    for record in records:
        n_read, misses, extra = _record_misses(record, normalize, iou_threshold)
        read += n_read
        lines += n_read + len(misses)
        no_line = sum(kind == "no_line" for kind, _ in misses)
        if "det" in record:  # lines the detector boxed at IoU >= 0.5 but no read line covers: dropped by score
            not_boxed = record["det"]["gt_care"] - record["det"]["matched"]
            kinds["no_line"]["dropped"] += max(0, no_line - not_boxed)
        for kind, example in misses:
            entry = kinds[kind]
            entry["count"] += 1
            if kind == "no_line":
                entry["split"] += example["split"]
                entry["merged"] += example["merged"]
            if len(entry["examples"]) < examples:
                entry["examples"].append(example)
        unlabelled["count"] += len(extra)
        unlabelled["examples"].extend(extra[: max(0, examples - len(unlabelled["examples"]))])
    for entry in kinds.values():
        entry["share"] = round(entry["count"] / lines, 4) if lines else 0.0
    return {"lines": lines, "read": read, "missed": lines - read, "case_sensitive": case_sensitive,
            "kinds": kinds, "unlabelled_boxes": unlabelled}


def read_predictions(path: str | os.PathLike) -> list[dict]:
    """The rows of an eval ``predictions.jsonl``; a row that is not JSON is named by file and line."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not a JSON line ({err.msg}); rerun the eval stage to "
                                 "write it again") from err
    return rows


def _cell(text) -> str:
    return "`" + str(text).replace("|", "\\|").replace("`", "'") + "`" if text not in (None, "") else "(nothing)"


def misses_section(analysis: dict) -> str:
    """A README section: the table of kinds with what to try, and a few examples of each."""
    lines = analysis["lines"] or 1
    rows = []
    for kind in KINDS:
        entry = analysis["kinds"][kind]
        name = (f"{kind} (of them dropped by score: {entry['dropped']}, split: {entry['split']}, "
                f"merged: {entry['merged']})"
                if kind == "no_line" else kind)
        rows.append(f"| {name} | {entry['count']} | {entry['count'] / lines:.1%} | {ADVICE[kind]} |")
    extra = analysis["unlabelled_boxes"]
    rows.append(f"| unlabelled_boxes (predicted, not labelled lines) | {extra['count']} | | "
                f"{ADVICE['unlabelled_boxes']} |")
    shown = []
    for kind in KINDS:
        for ex in analysis["kinds"][kind]["examples"]:
            if kind == "no_line":
                detail = ("split into two or more lines" if ex["split"] else
                          "inside a larger line, merged with its neighbours" if ex["merged"] else
                          "no read line at IoU 0.5")
            else:
                detail = f"read {_cell(ex['read'])}, labelled crop read {_cell(ex['label_crop_read'])}"
            shown.append(f"| {kind} | {ex['image']} | {_cell(ex['label'])} | {detail} |")
    for ex in extra["examples"]:
        score = f" at {ex['score']:.2f}" if isinstance(ex.get("score"), (int, float)) else ""
        shown.append(f"| unlabelled_boxes | {ex['image']} | | read {_cell(ex['read'])}{score} |")
    return f"""## Where the end-to-end misses are

{analysis['read']} of {analysis['lines']} labelled lines read; each of the other {analysis['missed']} is put in
the first kind that fits (`misses.json` has the counts and examples; `ocrforge/miss_analysis.py` the rules).

| kind | lines | share of lines | what to try |
|---|---|---|---|
{chr(10).join(rows)}

| kind | image | label | what happened |
|---|---|---|---|
{chr(10).join(shown) or '| (none) | | | |'}
"""


def write_misses(out_dir: str | os.PathLike, case_sensitive: bool = True) -> dict:
    """Analyse ``out_dir/predictions.jsonl``, write ``misses.json`` and add the section to ``README.md``."""
    out_dir = Path(out_dir)
    analysis = analyse_misses(read_predictions(out_dir / "predictions.jsonl"), case_sensitive)
    (out_dir / "misses.json").write_text(json.dumps(analysis, indent=2, ensure_ascii=False) + "\n",
                                         encoding="utf-8")
    readme = out_dir / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    marker = "## Where the end-to-end misses are"
    if marker in text:
        text = text[: text.index(marker)]
    text = text.rstrip() + "\n\n" if text.strip() else ""
    readme.write_text(text + misses_section(analysis), encoding="utf-8")
    return analysis
