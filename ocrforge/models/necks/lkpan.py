"""LKPAN, the large-kernel path-aggregation neck of PaddleOCR's PP-OCRv3 det teacher.

A top-down pyramid (as in DBFPN), then a bottom-up path (stride-2 3x3 convs), with 9x9 convolutions on
the lateral branches; four maps merged at stride 4. Layer names equal PaddleOCR's (``ins_conv``,
``inp_conv``, ``pan_head_conv``, ``pan_lat_conv``).
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ocrforge.models.layers import top_down, upsample_nearest
from ocrforge.registry import NECKS

LARGE_KERNEL = 9


class DSConv(nn.Layer):
    """Depthwise-separable stand-in for a large conv (LKPAN ``mode: lite``): depthwise kxk + BN, 1x1 to 4x
    channels + BN + ReLU, 1x1 to ``out_channels``; plus a 1x1 projection of the input when widths differ."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int, stride: int = 1,
                 **kwargs):
        super().__init__()
        self.conv1 = nn.Conv2D(in_channels, in_channels, kernel_size, stride=stride, padding=padding,
                               groups=in_channels, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(in_channels)
        self.conv2 = nn.Conv2D(in_channels, in_channels * 4, 1, bias_attr=False)
        self.bn2 = nn.BatchNorm2D(in_channels * 4)
        self.conv3 = nn.Conv2D(in_channels * 4, out_channels, 1, bias_attr=False)
        self.project = in_channels != out_channels
        if self.project:
            self.conv_end = nn.Conv2D(in_channels, out_channels, 1, bias_attr=False)

    def forward(self, inputs):
        x = self.bn1(self.conv1(inputs))
        x = self.conv3(F.relu(self.bn2(self.conv2(x))))
        return x + self.conv_end(inputs) if self.project else x


def _kaiming_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Conv2D:
    return nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
                     weight_attr=paddle.ParamAttr(initializer=nn.initializer.KaimingUniform()), bias_attr=False)


@NECKS.register()
class LKPAN(nn.Layer):
    """Four backbone maps (strides 4, 8, 16, 32; ``in_channels`` their widths) -> (N, out_channels, H/4, W/4).

    ``mode``: ``large`` (plain 9x9 convs, the teacher's) or ``lite`` (depthwise-separable 9x9).
    H and W must be multiples of 32.
    """

    def __init__(self, in_channels: list[int], out_channels: int = 256, mode: str = "large", **kwargs):
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f"LKPAN needs four input maps (strides 4, 8, 16, 32); got in_channels={in_channels}")
        if mode.lower() not in ("large", "lite"):
            raise ValueError(f"LKPAN mode must be 'large' or 'lite'; got {mode!r}")
        if out_channels % 4:
            raise ValueError(f"LKPAN out_channels must be a multiple of 4; got {out_channels}")
        self.out_channels = out_channels
        quarter = out_channels // 4

        def lateral(cin: int, cout: int) -> nn.Layer:
            if mode.lower() == "lite":
                return DSConv(cin, cout, LARGE_KERNEL, padding=LARGE_KERNEL // 2)
            return _kaiming_conv(cin, cout, LARGE_KERNEL)

        self.ins_conv = nn.LayerList([_kaiming_conv(c, out_channels, 1) for c in in_channels])
        self.inp_conv = nn.LayerList([lateral(out_channels, quarter) for _ in in_channels])
        self.pan_head_conv = nn.LayerList([_kaiming_conv(quarter, quarter, 3, stride=2) for _ in in_channels[1:]])
        self.pan_lat_conv = nn.LayerList([lateral(quarter, quarter) for _ in in_channels])

    def forward(self, x):
        out2, out3, out4, in5 = top_down(self.ins_conv, x)
        f5 = self.inp_conv[3](in5)
        f4 = self.inp_conv[2](out4)
        f3 = self.inp_conv[1](out3)
        f2 = self.inp_conv[0](out2)
        pan3 = f3 + self.pan_head_conv[0](f2)
        pan4 = f4 + self.pan_head_conv[1](pan3)
        pan5 = f5 + self.pan_head_conv[2](pan4)

        p2 = self.pan_lat_conv[0](f2)
        p3 = upsample_nearest(self.pan_lat_conv[1](pan3), 2)
        p4 = upsample_nearest(self.pan_lat_conv[2](pan4), 4)
        p5 = upsample_nearest(self.pan_lat_conv[3](pan5), 8)
        return paddle.concat([p5, p4, p3, p2], axis=1)
