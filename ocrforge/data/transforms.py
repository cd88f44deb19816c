"""Building a config's transform list: PaddleOCR's data ops from the wheel, plus ops registered with ocrforge.

A ``transforms`` entry is ``{OpName: {arg: value}}``, as in PaddleOCR's configs. ``OpName`` is looked up first
among the ops registered in :data:`ocrforge.registry.TRANSFORMS` (ocrforge's own, and those a plugin package
adds), then among the wheel's ``ppocr.data.imaug`` ops. A name defined in both places is refused rather than
silently shadowing the wheel's op.

An op is a callable ``op(data: dict) -> dict | None`` (None rejects the sample), like the wheel's.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np

import paddleocr  # noqa: F401  - puts the wheel's ``ppocr`` package on sys.path
import ppocr.data.imaug as wheel_ops  # noqa: E402

from ocrforge.registry import TRANSFORMS


def _wheel_op(name: str) -> Any:
    op = getattr(wheel_ops, name, None)
    return op if isinstance(op, type) else None


def wheel_transform_names() -> list[str]:
    """The data ops the installed paddleocr wheel offers (classes of ``ppocr.data.imaug``)."""
    return sorted(n for n in dir(wheel_ops) if not n.startswith("_") and _wheel_op(n) is not None)


def resolve_transform(name: str) -> Any:
    """The class of the transform ``name``: an ocrforge/plugin op, else the wheel's op of that name."""
    ours = TRANSFORMS.get(name) if name in TRANSFORMS else None
    theirs = _wheel_op(name)
    if ours is not None and theirs is not None:
        raise KeyError(
            f"transform {name!r} is defined both by paddleocr and by {ours.__module__}; "
            f"register it under another name so configs stay unambiguous"
        )
    if ours is None and theirs is None:
        raise KeyError(
            f"unknown transform {name!r}. ocrforge's: {', '.join(TRANSFORMS.names()) or 'none'}; the paddleocr "
            f"wheel's: {', '.join(wheel_transform_names())}. A plugin package can add one by registering it "
            f"with ocrforge.registry.TRANSFORMS"
        )
    return ours if ours is not None else theirs


def build_transforms(op_list: Sequence[dict], global_config: dict | None = None) -> list[Any]:
    """Instantiate a config's transform list; ``global_config`` is merged into every op's arguments.

    That merge is what PaddleOCR does too (it passes e.g. the dictionary path to label encoders), so ops
    accept and ignore unknown keyword arguments.
    """
    if not isinstance(op_list, (list, tuple)):
        raise TypeError(f"transforms must be a list of {{OpName: args}} entries; got {type(op_list).__name__}")
    ops = []
    for position, entry in enumerate(op_list):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ValueError(
                f"transforms[{position}] must be a single {{OpName: args}} mapping; got {entry!r}"
            )
        (name, args), = entry.items()
        kwargs = copy.deepcopy(dict(args or {}))
        kwargs.update(copy.deepcopy(global_config or {}))
        op_class = resolve_transform(name)
        try:
            ops.append(op_class(**kwargs))
        except TypeError as exc:
            raise TypeError(f"transforms[{position}] {name} with arguments {sorted(kwargs)}: {exc}") from exc
    return ops


def _free_starts(covered: np.ndarray, size: int) -> np.ndarray:
    """Window starts ``s`` whose first and last line (``s`` and ``s + size - 1``) cross no text."""
    free = ~covered
    return np.flatnonzero(free[: len(covered) - size + 1] & free[size - 1 :])


@TRANSFORMS.register()
class NativeScaleCrop:
    """A random ``size`` (w, h) window of the image at its own scale, zero-padded where the image is smaller.

    ``EastRandomCropData`` picks a random region and resizes it to fill the window, so the text a model trains on
    is mostly larger than at inference (a tenth of a receipt blown up to 640 px). This crop keeps the scale the
    detector will read at (``DetResizeForTest`` leaves images under its limit alone): scale augmentation is left
    to ``IaaAugment``'s Resize. The window edges are placed in rows and columns that cross no text box when such
    a placement exists; a box the window still cuts is clipped and marked ignored, so the loss does not learn a
    truncated line as a whole one.

    In a large photo with little text (a plate of 150 px in 1280), most such windows hold background only.
    ``text_prob`` is the share of windows placed to hold one text box, drawn at random, whole (where it fits);
    the rest are placed anywhere, so the model still sees text-free background. Reads and writes ``image``
    (HWC), ``polys`` (N, P, 2), ``ignore_tags``, ``texts``; draws from ``numpy.random``.
    """

    def __init__(self, size: Sequence[int] = (640, 640), text_prob: float = 0.0, **kwargs: Any):
        if len(size) != 2 or min(int(s) for s in size) < 32:
            raise ValueError(f"NativeScaleCrop size must be [width, height], each >= 32; got {list(size)}")
        if not 0.0 <= float(text_prob) <= 1.0:
            raise ValueError(f"NativeScaleCrop text_prob must be in [0, 1]; got {text_prob!r}")
        self.width, self.height = int(size[0]), int(size[1])
        self.text_prob = float(text_prob)

    def _start(self, covered: np.ndarray, size: int, span: tuple[int, int] | None = None) -> int:
        """A window start along one axis: one whose edges cross no text where possible; with ``span`` (the
        text box's first and last pixel), only starts whose window holds the span (or, for a span longer than
        the window, starts inside it)."""
        length = len(covered)
        if length <= size:
            return 0
        low, high = 0, length - size
        if span is not None:
            first, last = span
            low, high = (max(low, last - size + 1), min(high, first)) if last - first + 1 <= size else \
                (max(low, first), min(high, last - size + 1))
            low, high = min(low, high), max(low, high)
        starts = _free_starts(covered, size)
        starts = starts[(starts >= low) & (starts <= high)]
        if len(starts):
            return int(np.random.choice(starts))
        return int(np.random.randint(low, high + 1))

    def __call__(self, data: dict) -> dict:
        image = data["image"]
        polys = np.asarray(data["polys"], dtype=np.float32)
        if polys.size == 0:
            polys = polys.reshape(0, 4, 2)
        tags = list(data["ignore_tags"])
        texts = list(data["texts"])
        height, width = image.shape[:2]
        rows = np.zeros(height, bool)
        cols = np.zeros(width, bool)
        for poly, ignored in zip(polys, tags):
            if ignored:
                continue
            y1, y2 = max(0, int(np.floor(poly[:, 1].min()))), min(height, int(np.ceil(poly[:, 1].max())))
            x1, x2 = max(0, int(np.floor(poly[:, 0].min()))), min(width, int(np.ceil(poly[:, 0].max())))
            rows[y1:y2] = True
            cols[x1:x2] = True
        spans = [None, None]
        kept = [poly for poly, ignored in zip(polys, tags) if not ignored]
        if kept and self.text_prob > 0 and np.random.rand() < self.text_prob:
            poly = kept[np.random.randint(len(kept))]
            spans = [(int(np.floor(poly[:, axis].min())), int(np.ceil(poly[:, axis].max())) - 1) for axis in (0, 1)]
        y0 = self._start(rows, self.height, spans[1])
        x0 = self._start(cols, self.width, spans[0])
        window = image[y0 : y0 + self.height, x0 : x0 + self.width]
        crop_h, crop_w = window.shape[:2]
        out = np.zeros((self.height, self.width) + image.shape[2:], image.dtype)
        out[:crop_h, :crop_w] = window

        kept_polys, kept_tags, kept_texts = [], [], []
        for poly, ignored, text in zip(polys, tags, texts):
            shifted = poly - (x0, y0)
            xs, ys = shifted[:, 0], shifted[:, 1]
            if xs.max() <= 0 or ys.max() <= 0 or xs.min() >= crop_w or ys.min() >= crop_h:
                continue
            cut = xs.min() < 0 or ys.min() < 0 or xs.max() > crop_w or ys.max() > crop_h
            shifted[:, 0] = np.clip(xs, 0, crop_w)
            shifted[:, 1] = np.clip(ys, 0, crop_h)
            kept_polys.append(shifted)
            kept_tags.append(bool(ignored or cut))
            kept_texts.append(text)
        data["image"] = out
        data["polys"] = np.array(kept_polys, dtype=np.float32).reshape((-1,) + polys.shape[1:])
        data["ignore_tags"] = kept_tags
        data["texts"] = kept_texts
        return data


@TRANSFORMS.register()
class RecBoxJitter:
    """The recogniser's training crop as a detector would cut it: a line's box moved by a little on each side.

    A recogniser trained on crops of the labelled boxes alone reads the detector's boxes worse: they sit a few
    pixels wider, narrower or off-centre (on the plates_eu_br val split, one plate in 44 lost its first letter
    to a box that cut it). The split stage also writes each training line as a context crop
    (``rec/train_context.txt``: the box with ``margin`` times its thickness of image around it, see
    :func:`ocrforge.data.crop.crop_text_line`); this op cuts the line out of it again, with probability ``prob``
    each side moved by up to ``jitter`` times the line's thickness, in or out; else the labelled box exactly.
    Reads and writes ``image`` (HWC); draws from ``numpy.random``. Must come right after ``DecodeImage``.
    """

    def __init__(self, prob: float = 0.5, jitter: float = 0.15, margin: float | None = None, **kwargs: Any):
        from ocrforge.data.crop import CONTEXT_MARGIN

        self.margin = CONTEXT_MARGIN if margin is None else float(margin)
        if not 0.0 <= float(prob) <= 1.0:
            raise ValueError(f"RecBoxJitter prob must be in [0, 1]; got {prob!r}")
        if not 0.0 <= float(jitter) <= self.margin:
            raise ValueError(f"RecBoxJitter jitter must be in [0, margin = {self.margin}] (a box cannot move "
                             f"further out than the context the crop keeps); got {jitter!r}")
        self.prob, self.jitter = float(prob), float(jitter)

    def __call__(self, data: dict) -> dict:
        from ocrforge.data.crop import context_pad

        image = data["image"]
        height, width = image.shape[:2]
        pad = context_pad(image.shape, self.margin)
        top, bottom, left, right = pad, height - pad, pad, width - pad
        if pad and self.jitter and np.random.rand() < self.prob:
            thickness = min(height, width) - 2 * pad
            moves = np.rint(np.random.uniform(-self.jitter, self.jitter, 4) * thickness).astype(int)
            top, bottom = max(0, top + moves[0]), min(height, bottom + moves[1])
            left, right = max(0, left + moves[2]), min(width, right + moves[3])
            # never less than half the line in either direction
            if bottom - top < (height - 2 * pad + 1) // 2 or right - left < (width - 2 * pad + 1) // 2:
                top, bottom, left, right = pad, height - pad, pad, width - pad
        data["image"] = np.ascontiguousarray(image[top:bottom, left:right])
        return data
