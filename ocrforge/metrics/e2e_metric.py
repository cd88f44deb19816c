"""End-to-end (detector + recogniser) scores: per text line and per image.

A line counts as read when a prediction overlaps its ground truth at IoU >= 0.5 and has the same text
(one-to-one). An image counts as read when its full text is the same, where the full text is built by one
rule (``full_text``): boxes are grouped into lines, lines go top to bottom and are joined with "\\n",
boxes in a line go left to right and are joined with one space.

Lines and predictions are given as mappings ``{"points": (P, 2), "text": str}`` (PPOCRLabel's
``"transcription"`` and ``"difficult"`` keys are read too) or as tuples ``(points, text, ...)``. A ground
truth is ignored when its text is ``###`` or ``*`` or it is marked ``difficult``/``ignore``; predictions
lying mostly inside an ignored region are then not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ocrforge.metrics.det_metric import (
    CountingMetric,
    as_polygon,
    match_pairs,
    precision_recall_hmean,
    split_ignored,
)
from ocrforge.data.ppocrlabel import IGNORE_TEXTS, TextLine
from ocrforge.reading_order import box_points as _box_points
from ocrforge.reading_order import full_text
from ocrforge.registry import METRICS


def _parse_line(item) -> tuple[np.ndarray, str, bool]:
    """``(points, text, ignore)`` from a labelled :class:`~ocrforge.data.ppocrlabel.TextLine`, a mapping or a
    ``(points, text, ...)`` tuple."""
    if isinstance(item, TextLine):
        return item.box.astype(np.float64), item.text, item.ignore
    if isinstance(item, dict):
        points = item["points"]
        text = item.get("text", item.get("transcription", ""))
        ignore = bool(item.get("ignore", False) or item.get("difficult", False))
    else:
        points, text = item[0], item[1]
        ignore = False
    text = str(text)
    return _box_points(points), text, ignore or text in IGNORE_TEXTS


@dataclass
class LineMatch:
    """How one image's predicted lines meet its labelled ones, by the end-to-end rule (:func:`match_lines`).

    Lines whose box has no area are left out; ``pred_index`` / ``gt_index`` give each kept line's position in
    the lists given. Per kept line: ``*_polys`` (shapely), ``*_points``, ``*_texts`` (as given),
    ``*_normalized`` (as compared) and ``*_care`` (counted: not an ignored label, not a prediction lying mostly
    inside one); ``pairs`` are the one-to-one ``(gt, pred)`` matches of equal text, in kept-line positions.
    """

    pred_index: list[int]
    gt_index: list[int]
    pred_polys: list
    gt_polys: list
    pred_points: list
    gt_points: list
    pred_texts: list[str]
    gt_texts: list[str]
    pred_normalized: list[str]
    gt_normalized: list[str]
    pred_care: list[bool]
    gt_care: list[bool]
    pairs: list[tuple[int, int]]


def match_lines(preds, gts, iou_threshold: float = 0.5, normalize=lambda text: text) -> LineMatch:
    """Match one image's predicted lines to its labelled lines (the module docstring's forms) as the metric
    does: ignored labels and the predictions inside them set apart, then one-to-one matches at IoU >=
    ``iou_threshold`` with the same ``normalize``-d text, greedily in label then prediction order."""
    parsed_preds = [_parse_line(p) for p in preds]
    parsed_gts = [_parse_line(g) for g in gts]
    pred_polys = [as_polygon(pts) for pts, _, _ in parsed_preds]
    gt_polys = [as_polygon(pts) for pts, _, _ in parsed_gts]
    pred_index = [i for i, poly in enumerate(pred_polys) if poly is not None]
    gt_index = [i for i, poly in enumerate(gt_polys) if poly is not None]
    pred_polys, gt_polys = [pred_polys[i] for i in pred_index], [gt_polys[i] for i in gt_index]
    pred_care, gt_care = split_ignored(pred_polys, gt_polys, [parsed_gts[i][2] for i in gt_index], 0.5)
    pred_texts = [parsed_preds[i][1] for i in pred_index]
    gt_texts = [parsed_gts[i][1] for i in gt_index]
    pred_normalized, gt_normalized = [normalize(t) for t in pred_texts], [normalize(t) for t in gt_texts]
    pairs = match_pairs(pred_polys, gt_polys, pred_care, gt_care, iou_threshold,
                        same=lambda g, p: gt_normalized[g] == pred_normalized[p])
    return LineMatch(pred_index, gt_index, pred_polys, gt_polys, [parsed_preds[i][0] for i in pred_index],
                     [parsed_gts[i][0] for i in gt_index], pred_texts, gt_texts, pred_normalized, gt_normalized,
                     pred_care, gt_care, pairs)


def score_end_to_end(preds, gts, iou_threshold: float = 0.5, normalize=lambda text: text) -> dict:
    """Score one image's predicted lines against its ground-truth lines.

    ``normalize`` maps a text to its compared form. Returns ``{"gt_care", "det_care", "matched",
    "full_text_match", "pred_text", "gt_text"}``; the full texts are built from the counted lines only,
    then normalised.
    """
    match = match_lines(preds, gts, iou_threshold, normalize)
    counted_preds = [(pts, text) for pts, text, care in zip(match.pred_points, match.pred_texts, match.pred_care)
                     if care]
    counted_gts = [(pts, text) for pts, text, care in zip(match.gt_points, match.gt_texts, match.gt_care) if care]
    pred_text = normalize(full_text([p for p, _ in counted_preds], [t for _, t in counted_preds]))
    gt_text = normalize(full_text([p for p, _ in counted_gts], [t for _, t in counted_gts]))
    return {
        "gt_care": len(counted_gts),
        "det_care": len(counted_preds),
        "matched": len(match.pairs),
        "full_text_match": pred_text == gt_text,
        "pred_text": pred_text,
        "gt_text": gt_text,
    }


@METRICS.register()
class E2EMetric(CountingMetric):
    """Accumulates end-to-end line matches and full-text matches over a data set.

    Call it with ``(post_result, batch)``: both lists with one entry per image, each a list of lines
    (see the module docstring); ``post_result`` holds the system's predictions, ``batch`` the labels.
    ``get_metric()`` gives ``precision``, ``recall``, ``hmean`` (lines) and ``full_text_acc`` (images).
    Texts are compared after removing spaces when ``ignore_space`` and case-folding unless
    ``case_sensitive``.
    """

    counters = ("matched", "det_care", "gt_care", "images", "full_text_matches")

    def __init__(
        self,
        main_indicator: str = "hmean",
        iou_threshold: float = 0.5,
        ignore_space: bool = False,
        case_sensitive: bool = True,
        **kwargs,
    ):
        self.main_indicator = main_indicator
        self.iou_threshold = iou_threshold
        self.ignore_space = ignore_space
        self.case_sensitive = case_sensitive
        self.reset()

    def normalize(self, text: str) -> str:
        """The text as it is compared."""
        text = text.strip()
        if self.ignore_space:
            text = text.replace(" ", "")
        if not self.case_sensitive:
            text = text.casefold()
        return text

    def __call__(self, post_result: list, batch: list, **kwargs) -> None:
        if len(post_result) != len(batch):
            raise ValueError(f"E2EMetric: predictions for {len(post_result)} images but labels for {len(batch)}.")
        for preds, gts in zip(post_result, batch):
            self.add(score_end_to_end(preds, gts, self.iou_threshold, self.normalize))

    def add(self, scores: dict) -> None:
        """Count one image already scored by ``score_end_to_end`` (with this metric's ``iou_threshold`` and
        ``normalize``), for a caller that also keeps the per-image scores."""
        self.matched += scores["matched"]
        self.det_care += scores["det_care"]
        self.gt_care += scores["gt_care"]
        self.images += 1
        self.full_text_matches += scores["full_text_match"]

    def get_metric(self) -> dict:
        """``{"precision", "recall", "hmean", "full_text_acc"}`` since the last reset; then resets."""
        figures = precision_recall_hmean(self.matched, self.det_care, self.gt_care)
        figures["full_text_acc"] = self.full_text_matches / self.images if self.images else 0.0
        self.reset()
        return figures
