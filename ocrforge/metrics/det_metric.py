"""Detection precision / recall / hmean at IoU 0.5, with PaddleOCR's (ICDAR 2015) treatment of ignored text."""

from __future__ import annotations

import numpy as np
from shapely.geometry import Polygon

from ocrforge.registry import METRICS


def to_numpy(x) -> np.ndarray:
    """A paddle tensor, numpy array or nested list as a numpy array."""
    if hasattr(x, "numpy"):
        x = x.numpy()
    return np.asarray(x)


def as_polygon(points) -> Polygon | None:
    """A shapely polygon from (P, 2) points, repaired if self-intersecting; None when it has no area
    (padding rows of a batch, degenerate labels)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(points) < 3:
        return None
    polygon = Polygon(points)
    if not polygon.is_valid:
        polygon = polygon.buffer(0)
    if polygon.is_empty or polygon.area <= 0:
        return None
    return polygon


def iou(a: Polygon, b: Polygon) -> float:
    """Intersection over union of two polygons."""
    inter = a.intersection(b).area
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def match_pairs(
    preds: list[Polygon], gts: list[Polygon], pred_care: list[bool], gt_care: list[bool], threshold: float,
    same=None,
) -> list[tuple[int, int]]:
    """One-to-one (gt, pred) matches with IoU >= ``threshold``, greedily in ground-truth then prediction
    order as PaddleOCR does; ``same(gt_index, pred_index)`` adds a condition (equal text)."""
    pairs = []
    used_preds = set()
    for g, gt in enumerate(gts):
        if not gt_care[g]:
            continue
        for p, pred in enumerate(preds):
            if p in used_preds or not pred_care[p]:
                continue
            if iou(gt, pred) >= threshold and (same is None or same(g, p)):
                pairs.append((g, p))
                used_preds.add(p)
                break
    return pairs


def split_ignored(
    preds: list[Polygon], gts: list[Polygon], ignores: list[bool], ignore_area_threshold: float
) -> tuple[list[bool], list[bool]]:
    """Which ground truths and predictions count: ignored ground truths do not, and neither does a
    prediction with more than ``ignore_area_threshold`` of its area inside one ignored ground truth."""
    gt_care = [not bool(ig) for ig in ignores]
    ignored = [gt for gt, care in zip(gts, gt_care) if not care]
    pred_care = []
    for pred in preds:
        inside = max((pred.intersection(gt).area / pred.area for gt in ignored), default=0.0)
        pred_care.append(inside <= ignore_area_threshold)
    return pred_care, gt_care


def _clean(polys, flags=None) -> tuple[list[Polygon], list]:
    polygons, kept = [], []
    for i, points in enumerate(polys):
        polygon = as_polygon(points)
        if polygon is not None:
            polygons.append(polygon)
            kept.append(flags[i] if flags is not None else None)
    return polygons, kept


def score_detections(
    preds, gts, ignores, iou_threshold: float = 0.5, ignore_area_threshold: float = 0.5
) -> dict:
    """Score one image: predicted polygons ``preds`` (K, P, 2) against ground truths ``gts`` (M, P, 2)
    with ``ignores`` (M,) bool. Polygons without area (batch padding) are dropped.

    Returns ``{"gt_care", "det_care", "matched", "pairs"}``: counted ground truths and predictions, the
    number of one-to-one matches at IoU >= ``iou_threshold``, and the matched (gt, pred) index pairs
    (indices into the kept polygons).
    """
    ignores = [bool(x) for x in to_numpy(ignores).reshape(-1)]
    if len(ignores) != len(gts):
        raise ValueError(f"score_detections: {len(gts)} ground-truth polygons but {len(ignores)} ignore tags.")
    pred_polygons, _ = _clean(preds)
    gt_polygons, gt_ignores = _clean(gts, ignores)
    pred_care, gt_care = split_ignored(pred_polygons, gt_polygons, gt_ignores, ignore_area_threshold)
    pairs = match_pairs(pred_polygons, gt_polygons, pred_care, gt_care, iou_threshold)
    return {"gt_care": sum(gt_care), "det_care": sum(pred_care), "matched": len(pairs), "pairs": pairs}


def precision_recall_hmean(matched: int, det_care: int, gt_care: int) -> dict:
    """PaddleOCR's figures from summed counts: 0 where a denominator is 0."""
    precision = matched / det_care if det_care else 0.0
    recall = matched / gt_care if gt_care else 0.0
    hmean = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "hmean": hmean}


class CountingMetric:
    """A metric whose state is a few summed counters (named in ``counters``), so that the trainer can
    merge it across data-parallel processes: ``accumulated()`` gives the counters, ``set_accumulated()``
    takes the sums back."""

    counters: tuple[str, ...] = ()

    def reset(self) -> None:
        for name in self.counters:
            setattr(self, name, 0)

    def accumulated(self) -> dict:
        return {name: getattr(self, name) for name in self.counters}

    def set_accumulated(self, state: dict) -> None:
        for name in self.counters:
            setattr(self, name, state[name])


@METRICS.register()
class DetMetric(CountingMetric):
    """Accumulates detection matches over a data set; ``get_metric()`` gives precision, recall, hmean.

    Call it with ``(post_result, batch)``: ``post_result`` is a list per image of ``{"points": (K, 4, 2)}``
    (what ``DBPostProcess`` returns) and ``batch`` the eval batch ``[image, shape, polys (N, M, 4, 2),
    ignore_tags (N, M), ...]``.
    """

    counters = ("matched", "det_care", "gt_care")

    def __init__(self, main_indicator: str = "hmean", iou_threshold: float = 0.5, **kwargs):
        self.main_indicator = main_indicator
        self.iou_threshold = iou_threshold
        self.reset()

    def __call__(self, post_result: list, batch: list, **kwargs) -> None:
        if len(batch) < 4:
            raise ValueError(
                f"DetMetric needs the eval batch [image, shape, polys, ignore_tags]; got {len(batch)} items. "
                f"Check KeepKeys in the Eval transforms."
            )
        polys_batch, ignores_batch = to_numpy(batch[2]), to_numpy(batch[3])
        if len(post_result) != len(polys_batch):
            raise ValueError(f"DetMetric: {len(post_result)} predictions for a batch of {len(polys_batch)} images.")
        for pred, polys, ignores in zip(post_result, polys_batch, ignores_batch):
            result = score_detections(pred["points"], polys, ignores, self.iou_threshold)
            self.matched += result["matched"]
            self.det_care += result["det_care"]
            self.gt_care += result["gt_care"]

    def get_metric(self) -> dict:
        """``{"precision", "recall", "hmean"}`` since the last reset; then resets."""
        figures = precision_recall_hmean(self.matched, self.det_care, self.gt_care)
        self.reset()
        return figures


@METRICS.register()
class DetGridMetric(DetMetric):
    """:class:`DetMetric` of every post-process pair of a
    :class:`~ocrforge.postprocess.DBPostProcessGrid` result, reported at the best pair: a detector validated as
    it will be deployed, its pair chosen on the val split after training.

    ``get_metric()`` gives the best pair's ``precision``, ``recall`` and ``hmean`` (ties: the pair nearest the
    configured one, as the post-process search breaks them), that pair as ``unclip_ratio`` and ``box_thresh``,
    and the configured pair's hmean as ``hmean_configured``; then resets.
    """

    configured_pair: tuple[float, float] | None = None  # from the post-process results (kept across resets)

    def reset(self) -> None:
        super().reset()
        self.pairs: dict[tuple[float, float], list[int]] = {}

    def __call__(self, post_result: list, batch: list, **kwargs) -> None:
        if len(batch) < 4:
            raise ValueError(f"DetGridMetric needs the eval batch [image, shape, polys, ignore_tags]; got {len(batch)} "
                             f"items. Check KeepKeys in the Eval transforms.")
        polys_batch, ignores_batch = to_numpy(batch[2]), to_numpy(batch[3])
        for pred, polys, ignores in zip(post_result, polys_batch, ignores_batch):
            if "grid" not in pred:
                raise ValueError("DetGridMetric scores a DBPostProcessGrid result (each image's 'grid' of "
                                 "boxes per post-process pair); set PostProcess.name: DBPostProcessGrid")
            self.configured_pair = tuple(pred["configured"])
            for pair, points in pred["grid"].items():
                result = score_detections(points, polys, ignores, self.iou_threshold)
                counts = self.pairs.setdefault(tuple(pair), [0, 0, 0])
                for k, key in enumerate(self.counters):
                    counts[k] += result[key]

    def accumulated(self) -> dict:
        flat = {}
        for (unclip, thresh), counts in self.pairs.items():
            flat.update({f"{key}@{unclip}@{thresh}": n for key, n in zip(self.counters, counts)})
        return flat

    def set_accumulated(self, state: dict) -> None:
        self.pairs = {}
        for name, n in state.items():
            if "@" in name:
                key, unclip, thresh = name.split("@")
                self.pairs.setdefault((float(unclip), float(thresh)), [0, 0, 0])[self.counters.index(key)] = n

    def get_metric(self) -> dict:
        if not self.pairs:
            self.reset()
            return precision_recall_hmean(0, 0, 0)
        rows = {pair: precision_recall_hmean(*counts) for pair, counts in self.pairs.items()}
        home = self.configured_pair or min(rows)
        configured = rows[home]  # the grid holds the configured pair: it is scored once, with the others
        best = min(rows, key=lambda pair: (-round(rows[pair]["hmean"], 6),
                                           abs(pair[0] - home[0]) + abs(pair[1] - home[1])))
        self.reset()
        return {**rows[best], "unclip_ratio": best[0], "box_thresh": best[1], "hmean_configured": configured["hmean"]}


@METRICS.register()
class DistillationMetric:
    """One ``base_metric_name`` metric (DetMetric) per member of a distillation post-process result.

    Call it with ``(post_result, batch)``, ``post_result`` being ``{member: that member's post-process
    result}`` (what ``DistillationDBPostProcess`` returns). ``get_metric()`` gives the ``key`` member's
    figures under their own names (``hmean``, which picks the best checkpoint) and every other member's
    as ``<member>_<name>``; then resets. Extra keyword arguments go to the base metric.
    """

    def __init__(self, key: str | None = None, base_metric_name: str = "DetMetric", main_indicator: str = "hmean",
                 **kwargs):
        self.key = key
        self.base_metric_name = base_metric_name
        self.main_indicator = main_indicator
        self.kwargs = kwargs
        self.metrics: dict = {}
        METRICS.get(base_metric_name)  # fail now, with the known names, on a misspelt base metric

    def _metric(self, member: str):
        if member not in self.metrics:
            self.metrics[member] = METRICS.get(self.base_metric_name)(main_indicator=self.main_indicator, **self.kwargs)
        return self.metrics[member]

    def __call__(self, post_result: dict, batch: list, **kwargs) -> None:
        if not isinstance(post_result, dict):
            raise TypeError(
                f"DistillationMetric needs {{member: result}} from a distillation post-process "
                f"(DistillationDBPostProcess); got {type(post_result).__name__}"
            )
        for member, result in post_result.items():
            self._metric(member)(result, batch, **kwargs)

    def get_metric(self) -> dict:
        if self.key is not None and self.key not in self.metrics:
            raise KeyError(
                f"DistillationMetric key {self.key!r} got no results; the post-process gave {sorted(self.metrics)}. "
                f"Make Metric.key one of PostProcess.model_name."
            )
        figures = {}
        for member, metric in self.metrics.items():
            values = metric.get_metric()
            if member == self.key or (self.key is None and len(self.metrics) == 1):
                figures.update(values)
            else:
                figures.update({f"{member}_{k}": v for k, v in values.items()})
        return figures

    def reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset()

    def accumulated(self) -> dict:
        """Every member's counters as ``<member>/<counter>``, for the trainer's cross-process merge."""
        return {f"{m}/{k}": v for m, metric in self.metrics.items() for k, v in metric.accumulated().items()}

    def set_accumulated(self, state: dict) -> None:
        by_member: dict = {}
        for name, value in state.items():
            member, counter = name.split("/", 1)
            by_member.setdefault(member, {})[counter] = value
        for member, counters in by_member.items():
            self._metric(member).set_accumulated(counters)
