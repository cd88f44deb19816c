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

    With ``label_alphabet`` (the characters the data set's labels use), it also reports ``acc_normalised``:
    the exact-match rate once both texts are case-folded and stripped of every character that no label uses
    (compared case-insensitively). A model that reads plates ``abc-123`` where the labels say ``ABC123`` is
    wrong by ``acc`` and right by ``acc_normalised``: the figure says how much of a zero-shot model's error is
    only the labels' conventions, which fine-tuning learns first.
    """

    counters = ("correct_num", "all_num", "edit_distance", "correct_normalised")

    def __init__(
        self,
        main_indicator: str = "acc",
        is_filter: bool = False,
        ignore_space: bool = True,
        case_sensitive: bool = True,
        label_alphabet: str | None = None,
        **kwargs,
    ):
        self.main_indicator = main_indicator
        self.is_filter = is_filter
        self.ignore_space = ignore_space
        self.case_sensitive = case_sensitive
        self.label_alphabet = None if label_alphabet is None else {c.casefold() for c in label_alphabet}
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

    def normalise_to_labels(self, text: str) -> str:
        """``text`` as ``acc_normalised`` compares it: case-folded, characters no label uses left out."""
        return "".join(c.casefold() for c in self.normalize(text) if c.casefold() in self.label_alphabet)

    def __call__(self, pred_label, *args, **kwargs) -> dict:
        preds, labels = pred_label
        if len(preds) != len(labels):
            raise ValueError(f"RecMetric: {len(preds)} predictions but {len(labels)} labels.")
        correct, distance, normalised = 0, 0.0, 0
        for (pred, _), (label, _) in zip(preds, labels):
            if self.label_alphabet is not None:
                normalised += self.normalise_to_labels(pred) == self.normalise_to_labels(label)
            pred, label = self.normalize(pred), self.normalize(label)
            distance += Levenshtein.normalized_distance(pred, label)
            correct += pred == label
        self.correct_num += correct
        self.all_num += len(preds)
        self.edit_distance += distance
        self.correct_normalised += normalised
        return self._figures(correct, len(preds), distance, normalised)

    def _figures(self, correct: int, total: int, distance: float, normalised: int) -> dict:
        figures = {"acc": correct / total, "norm_edit_dis": 1.0 - distance / total} if total else \
            {"acc": 0.0, "norm_edit_dis": 0.0}
        if self.label_alphabet is not None:
            figures["acc_normalised"] = normalised / total if total else 0.0
        return figures

    def get_metric(self) -> dict:
        """``{"acc", "norm_edit_dis"}`` (and ``acc_normalised`` with a ``label_alphabet``) over everything seen
        since the last reset; then resets."""
        figures = self._figures(self.correct_num, self.all_num, self.edit_distance, self.correct_normalised)
        self.reset()
        return figures
