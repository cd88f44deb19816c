"""Evaluation metrics, registered in ``ocrforge.registry.METRICS`` under PaddleOCR's names."""

from ocrforge.metrics.det_metric import DetMetric, DistillationMetric, precision_recall_hmean, score_detections
from ocrforge.metrics.e2e_metric import E2EMetric, score_end_to_end
from ocrforge.metrics.interval import hmean_interval
from ocrforge.metrics.rec_metric import RecMetric
from ocrforge.reading_order import full_text, reading_lines, reading_order

__all__ = [
    "DetMetric",
    "DistillationMetric",
    "E2EMetric",
    "RecMetric",
    "full_text",
    "hmean_interval",
    "precision_recall_hmean",
    "reading_lines",
    "reading_order",
    "score_detections",
    "score_end_to_end",
]
