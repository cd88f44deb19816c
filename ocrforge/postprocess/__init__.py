"""Post-processing registered in ``ocrforge.registry.POSTPROCESS``: PaddleOCR's own classes from the
``paddleocr`` wheel, wrapped only to accept what our models and data loaders hand them (paddle tensors,
the training-mode MultiHead dict)."""

from __future__ import annotations

import numpy as np
import paddle
import paddleocr  # noqa: F401  (puts the wheel's ``ppocr`` package on sys.path)
from ppocr.postprocess.db_postprocess import DBPostProcess as _WheelDBPostProcess
from ppocr.postprocess.rec_postprocess import CTCLabelDecode as _WheelCTCLabelDecode
from ppocr.postprocess.rec_postprocess import NRTRLabelDecode as _WheelNRTRLabelDecode

from ocrforge.registry import POSTPROCESS


def _numpy(x):
    return x.numpy() if isinstance(x, paddle.Tensor) else x


@POSTPROCESS.register()
class DBPostProcess(_WheelDBPostProcess):
    """PaddleOCR's DB box extraction (``thresh``, ``box_thresh``, ``max_candidates``, ``unclip_ratio``,
    ``use_dilation``, ``score_mode``, ``box_type``).

    ``__call__(outs_dict, shape_list)``: ``outs_dict["maps"]`` (or the maps themselves) is (N, C, H, W)
    with the shrink probability in channel 0; ``shape_list`` (N, 4) holds ``[src_h, src_w, ratio_h,
    ratio_w]`` per image (DetResizeForTest's ``shape``). Returns a list per image of ``{"points": (K, 4, 2)}``
    in source-image pixels (``(K, P, 2)`` polygons with ``box_type: poly``).
    """

    def __call__(self, outs_dict, shape_list):
        if not isinstance(outs_dict, dict):
            outs_dict = {"maps": outs_dict}
        return super().__call__({"maps": _numpy(outs_dict["maps"])}, np.asarray(_numpy(shape_list)))


def db_grid(configured: tuple[float, float], unclip_ratios=(), box_threshes=()) -> list[tuple[float, float]]:
    """The ``(unclip_ratio, box_thresh)`` pairs of a grid with the configured pair's values in it, sorted."""
    unclips = sorted({float(configured[0]), *(float(u) for u in unclip_ratios)})
    threshes = sorted({float(configured[1]), *(float(b) for b in box_threshes)})
    return [(u, b) for u in unclips for b in threshes]


@POSTPROCESS.register()
class DBPostProcessGrid(DBPostProcess):
    """:class:`DBPostProcess` at its configured pair and at every ``(unclip_ratio, box_thresh)`` pair of
    ``unclip_ratios`` x ``box_threshes``, for validating a detector as it will be deployed: after training, the
    pair is chosen on the val split (ocrforge.postprocess_search), so each epoch is judged at its best pair
    (:class:`~ocrforge.metrics.det_metric.DetGridMetric`), not at one fixed pair.

    Returns a list per image of ``{"points": the configured pair's boxes, "grid": {(unclip_ratio, box_thresh):
    boxes}, "configured": (unclip_ratio, box_thresh)}``; a metric reading only ``points`` sees
    :class:`DBPostProcess`'s output.
    """

    def __init__(self, unclip_ratios=(), box_threshes=(), **kwargs):
        super().__init__(**kwargs)
        fixed = {k: v for k, v in kwargs.items() if k not in ("unclip_ratio", "box_thresh")}
        self.pairs = db_grid((float(self.unclip_ratio), float(self.box_thresh)), unclip_ratios, box_threshes)
        self._pair_posts = {pair: DBPostProcess(unclip_ratio=pair[0], box_thresh=pair[1], **fixed)
                            for pair in self.pairs}

    def __call__(self, outs_dict, shape_list):
        home = (float(self.unclip_ratio), float(self.box_thresh))
        per_pair = {pair: post(outs_dict, shape_list) for pair, post in self._pair_posts.items()}
        return [{"points": per_pair[home][i]["points"], "configured": home,
                 "grid": {pair: results[i]["points"] for pair, results in per_pair.items()}}
                for i in range(len(per_pair[home]))]


@POSTPROCESS.register()
class DistillationDBPostProcess:
    """DB box extraction for the members ``model_name`` of a DistillationModel's output.

    ``__call__(predicts, shape_list)``: ``predicts`` is ``{member: {"maps": (N, C, H, W)}}``; returns
    ``{member: [{"points": (K, 4, 2)}, ...]}``. ``key`` picks the entry of each member's output (``"maps"``;
    PaddleOCR's configs say ``head_out``, which is taken to mean the head's maps). The other settings are
    :class:`DBPostProcess`'s.
    """

    def __init__(self, model_name=("Student",), key: str | None = None, **kwargs):
        self.model_name = [model_name] if isinstance(model_name, str) else list(model_name)
        self.key = None if key in (None, "head_out") else key
        self.post_process = DBPostProcess(**kwargs)

    def __call__(self, predicts: dict, shape_list):
        results = {}
        for name in self.model_name:
            if name not in predicts:
                raise KeyError(
                    f"DistillationDBPostProcess: no output of {name!r}; the model gave {sorted(predicts)}. "
                    f"Set PostProcess.model_name to members of Architecture.Models."
                )
            out = predicts[name]
            results[name] = self.post_process(out[self.key] if self.key else out, shape_list)
        return results


@POSTPROCESS.register()
class CTCLabelDecode(_WheelCTCLabelDecode):
    """PaddleOCR's greedy CTC decoding (blank 0, repeats merged) with ``character_dict_path`` and
    ``use_space_char``.

    ``__call__(preds, label=None)``: ``preds`` is (N, T, C) logits or probabilities, or the training-mode
    MultiHead dict (its ``"ctc"`` entry is decoded). Returns a list of ``(text, score)``, the score being
    the mean of the kept steps' maxima (a probability only when ``preds`` are probabilities), or
    ``(texts, labels)`` when the ``label_ctc`` ids (N, L) are given.
    """

    def __call__(self, preds, label=None, *args, **kwargs):
        if isinstance(preds, dict):
            preds = preds["ctc"]
        label = None if label is None else np.asarray(_numpy(label))
        return super().__call__(_numpy(preds), label, *args, **kwargs)


@POSTPROCESS.register()
class NRTRLabelDecode(_WheelNRTRLabelDecode):
    """PaddleOCR's NRTR decoding (stops at ``</s>``; dictionary ``blank, <unk>, <s>, </s>, chars...``).

    ``__call__(preds, label=None)``: ``preds`` is (N, T, C) scores, ``(ids, probs)``, or the training-mode
    MultiHead dict (its ``"nrtr"`` entry). ``label`` is ``label_gtc`` (N, L), starting with ``<s>``.
    """

    def __call__(self, preds, label=None, *args, **kwargs):
        if isinstance(preds, dict):
            preds = preds["nrtr"]
        if isinstance(preds, (list, tuple)):
            preds = [_numpy(p) for p in preds]
        else:
            # The wheel reads any 2-long input as (ids, probs), a batch of two score maps included.
            scores = _numpy(preds)
            preds = [scores.argmax(axis=2), scores.max(axis=2)]
        label = None if label is None else np.asarray(_numpy(label))
        return super().__call__(preds, label, *args, **kwargs)


__all__ = ["CTCLabelDecode", "DBPostProcess", "DistillationDBPostProcess", "NRTRLabelDecode"]
