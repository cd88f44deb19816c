"""Do two OCR pipelines read alike? The one comparison behind the export's parity checks (trained against exported,
Paddle inference against ONNX) and the benchmark's (ours against PaddleOCR's class).

A pipeline here is a callable ``image (HWC uint8 BGR) -> [(box (4, 2), text, score), ...]``. On each image the
two reads are paired in reading order (:func:`ocrforge.reading_order.reading_order` of each side's boxes), so a
pipeline that lists its lines in another order compares line by line all the same.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ocrforge.reading_order import box_points, reading_order

Read = tuple  # (box (4, 2) in source pixels, text, score)


def system_reads(system) -> Callable[[np.ndarray], list[Read]]:
    """An :class:`ocrforge.system.TextSystem` (or anything returning an ``OcrResult``) as a pipeline here."""
    return lambda image: [(line.box, line.text, line.score) for line in system(image).lines]


def compare_reads(reference: Callable[[np.ndarray], list[Read]], candidate: Callable[[np.ndarray], list[Read]],
                  images: Sequence[np.ndarray], names: Sequence[str] | None = None, *,
                  box_tolerance_px: float = 1.0, score_tolerance: float | None = None,
                  labels: tuple[str, str] = ("reference", "candidate")) -> dict:
    """Read ``images`` with both pipelines and measure how far apart they read.

    An image reads identically when both find as many lines, with the same texts, every paired box within
    ``box_tolerance_px`` (largest corner difference) and, where ``score_tolerance`` is given, every score within
    it. Returns ``{"images", "identical", "all_identical", "same"`` (= all_identical)``, "lines"`` (paired),
    ``"max_box_diff_px", "max_score_diff", "text_mismatches", "line_count_mismatches", "mismatches"`` (the first
    10 images that differ, with each side's texts)``}``; ``labels`` name the two sides in the mismatch records.
    """
    names = list(names) if names is not None else [f"image {i}" for i in range(len(images))]
    ref_label, cand_label = labels
    report = {"images": len(images), "identical": 0, "lines": 0, "max_box_diff_px": 0.0, "max_score_diff": 0.0,
              "text_mismatches": [], "line_count_mismatches": [], "mismatches": []}
    for name, image in zip(names, images):
        a, b = _in_reading_order(reference(image)), _in_reading_order(candidate(image))
        same = len(a) == len(b)
        if not same:
            report["line_count_mismatches"].append({"image": name, ref_label: len(a), cand_label: len(b)})
        else:
            report["lines"] += len(a)
            for (box_a, text_a, score_a), (box_b, text_b, score_b) in zip(a, b):
                box_diff = float(np.abs(box_points(box_a) - box_points(box_b)).max())
                score_diff = abs(float(score_a) - float(score_b))
                report["max_box_diff_px"] = max(report["max_box_diff_px"], box_diff)
                report["max_score_diff"] = max(report["max_score_diff"], score_diff)
                if text_a != text_b:
                    report["text_mismatches"].append({"image": name, ref_label: text_a, cand_label: text_b})
                same = same and text_a == text_b and box_diff <= box_tolerance_px and (
                    score_tolerance is None or score_diff <= score_tolerance)
        if same:
            report["identical"] += 1
        elif len(report["mismatches"]) < 10:
            report["mismatches"].append({"image": name, ref_label: sorted(t for _, t, _ in a),
                                         cand_label: sorted(t for _, t, _ in b)})
    report["all_identical"] = report["same"] = report["identical"] == len(images)
    return report


def _in_reading_order(reads: list[Read]) -> list[Read]:
    reads = list(reads)
    return [reads[i] for i in reading_order([box_points(box) for box, _, _ in reads])] if reads else []
