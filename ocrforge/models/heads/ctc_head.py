"""CTC head: one linear layer from the sequence features to the character classes (class 0 is the blank)."""

from __future__ import annotations

import math

import paddle
from paddle import nn
from paddle.nn import initializer as init

from ocrforge.registry import HEADS


@HEADS.register()
class CTCHead(nn.Layer):
    """(N, T, C_in) sequence -> (N, T, out_channels) class scores.

    Training returns logits (what the CTC loss wants); eval returns softmax probabilities, as the exported
    PP-OCRv4 inference model does. ``fc_decay`` is the L2 weight decay of the projection (PaddleOCR's key).
    The layer is called ``fc`` so shipped weights load as ``...ctc_head.fc.weight`` / ``.bias``.
    """

    def __init__(self, in_channels: int, out_channels: int, fc_decay: float = 0.0004, **kwargs):
        super().__init__()
        if kwargs.get("mid_channels"):
            raise NotImplementedError("CTCHead: mid_channels (a two-layer head) is not supported; leave it unset")
        bound = 1.0 / math.sqrt(in_channels)
        self.fc = nn.Linear(
            in_channels,
            out_channels,
            weight_attr=paddle.ParamAttr(
                regularizer=paddle.regularizer.L2Decay(fc_decay), initializer=init.Uniform(-bound, bound)
            ),
            bias_attr=paddle.ParamAttr(
                regularizer=paddle.regularizer.L2Decay(fc_decay), initializer=init.Uniform(-bound, bound)
            ),
        )
        self.out_channels = out_channels

    def forward(self, x: paddle.Tensor, targets=None) -> paddle.Tensor:
        logits = self.fc(x)
        if self.training:
            return logits
        return nn.functional.softmax(logits, axis=2)
