"""Layers that several networks share: nearest upsampling that exports, squeeze-excitation, the FPN top-down path."""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

PADDLE_HARDSIGMOID_SLOPE = 0.1666667  # paddle's default for F.hardsigmoid; PaddleOCR's necks use 0.2


def upsample_nearest(x: paddle.Tensor, factor: int) -> paddle.Tensor:
    """Nearest-neighbour upsampling of (N, C, H, W) by an integer ``factor`` -> (N, C, H*f, W*f).

    Written as unsqueeze + expand + flatten, the one form found here that runs alike in dygraph, in paddle
    inference with oneDNN (the interpolate op failed there) and in onnxruntime after paddle2onnx (its
    ``repeat_interleave`` becomes a ``Tile`` that onnxruntime rejects); equal, value for value, to
    ``F.interpolate(mode="nearest", scale_factor=factor)``.
    """
    if factor == 1:
        return x
    wide = paddle.flatten(x.unsqueeze(-1).expand([-1, -1, -1, -1, factor]), start_axis=3, stop_axis=4)
    return paddle.flatten(wide.unsqueeze(3).expand([-1, -1, -1, factor, -1]), start_axis=2, stop_axis=3)


class SqueezeExcite(nn.Layer):
    """Channel attention: global average, 1x1 conv C -> C/reduction, ReLU, 1x1 conv back to C, hard sigmoid
    (``slope``, ``offset``), times the input. (N, C, H, W) -> same. Parameters: ``conv1``, ``conv2``."""

    def __init__(self, channels: int, reduction: int = 4, slope: float = PADDLE_HARDSIGMOID_SLOPE,
                 offset: float = 0.5):
        super().__init__()
        self.slope = slope
        self.offset = offset
        self.conv1 = nn.Conv2D(channels, channels // reduction, 1)
        self.conv2 = nn.Conv2D(channels // reduction, channels, 1)

    def forward(self, x):
        att = F.adaptive_avg_pool2d(x, 1)
        att = F.hardsigmoid(self.conv2(F.relu(self.conv1(att))), slope=self.slope, offset=self.offset)
        return x * att


def top_down(lateral: nn.LayerList, maps: list[paddle.Tensor]) -> list[paddle.Tensor]:
    """The FPN top-down path over the maps at strides 4, 8, 16, 32.

    Each map goes through its ``lateral`` layer; from the coarsest down, the running sum is upsampled x2 and
    added to the next finer one. Returns the four sums, finest first (strides 4, 8, 16, 32).
    """
    c2, c3, c4, c5 = maps
    in5 = lateral[3](c5)
    out4 = lateral[2](c4) + upsample_nearest(in5, 2)
    out3 = lateral[1](c3) + upsample_nearest(out4, 2)
    out2 = lateral[0](c2) + upsample_nearest(out3, 2)
    return [out2, out3, out4, in5]
