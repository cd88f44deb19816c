"""Recognition accuracy: exact-match rate and 1 - normalised edit distance, as PaddleOCR reports them."""

from __future__ import annotations

import string

from rapidfuzz.distance import Levenshtein

from ocrforge.metrics.det_metric import CountingMetric
from ocrforge.registry import METRICS


@METRICS.register()
class RecMetric(CountingMetric):
    """Accumulates ``acc`` (exact-match rate) and ``norm_edit_dis`` (1 - mean normalised Levenshtein distance).

    Call it with ``((preds, labels), batch)`` where ``preds`` and ``labels`` are lists of ``(text, score)``,
    as ``CTCLabelDecode(preds, label)`` returns them. Before comparing: spaces are removed when
    ``ignore_space``; only ASCII letters and digits are kept, lower-cased, when ``is_filter``; both texts
    are case-folded unless ``case_sensitive``.
    """

    counters = ("correct_num", "all_num", "edit_distance")

    def __init__(
        self,
        main_indicator: str = "acc",
        is_filter: bool = False,
        ignore_space: bool = True,
        case_sensitive: bool = True,
        **kwargs,
    ):
        self.main_indicator = main_indicator
        self.is_filter = is_filter
        self.ignore_space = ignore_space
        self.case_sensitive = case_sensitive
        self.reset()

    def normalize(self, text: str) -> str:
        """The text as it is compared."""
        if self.ignore_space:
            text = text.replace(" ", "")
        if self.is_filter:
            text = "".join(c for c in text if c in string.digits + string.ascii_letters).lower()
        if not self.case_sensitive:
            text = text.casefold()
        return text

    def __call__(self, pred_label, *args, **kwargs) -> dict:
        preds, labels = pred_label
        if len(preds) != len(labels):
            raise ValueError(f"RecMetric: {len(preds)} predictions but {len(labels)} labels.")
        correct, distance = 0, 0.0
        for (pred, _), (label, _) in zip(preds, labels):
            pred, label = self.normalize(pred), self.normalize(label)
            distance += Levenshtein.normalized_distance(pred, label)
            correct += pred == label
        self.correct_num += correct
        self.all_num += len(preds)
        self.edit_distance += distance
        return self._figures(correct, len(preds), distance)

    @staticmethod
    def _figures(correct: int, total: int, distance: float) -> dict:
        if total == 0:
            return {"acc": 0.0, "norm_edit_dis": 0.0}
        return {"acc": correct / total, "norm_edit_dis": 1.0 - distance / total}

    def get_metric(self) -> dict:
        """``{"acc", "norm_edit_dis"}`` over everything seen since the last reset; then resets."""
        figures = self._figures(self.correct_num, self.all_num, self.edit_distance)
        self.reset()
        return figures
