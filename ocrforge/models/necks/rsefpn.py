"""RSEFPN, the feature pyramid of PP-OCRv4 mobile detection: four backbone maps to one (N, 4 * out/4, H/4, W/4)."""

from __future__ import annotations

import paddle
import paddle.nn as nn
from ocrforge.models.layers import SqueezeExcite, top_down, upsample_nearest
from ocrforge.registry import NECKS


class RSELayer(nn.Layer):
    """Convolution without bias, then channel attention, added back to the conv output when ``shortcut``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, shortcut: bool = True):
        super().__init__()
        self.shortcut = shortcut
        self.in_conv = nn.Conv2D(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias_attr=False)
        self.se_block = SqueezeExcite(out_channels, slope=0.2, offset=0.5)

    def forward(self, x):
        x = self.in_conv(x)
        return x + self.se_block(x) if self.shortcut else self.se_block(x)


@NECKS.register()
class RSEFPN(nn.Layer):
    """Top-down pyramid over the maps at strides 4, 8, 16, 32.

    Input: a list of four (N, C_i, H/s_i, W/s_i) maps (``in_channels`` = their C_i). Output:
    (N, out_channels, H/4, W/4), the concatenation of four ``out_channels // 4`` maps brought to stride 4.
    H and W must be multiples of 32.
    """

    def __init__(self, in_channels: list[int], out_channels: int = 96, shortcut: bool = True, **kwargs):
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f"RSEFPN needs four input maps (strides 4, 8, 16, 32); got in_channels={in_channels}")
        self.out_channels = out_channels
        self.ins_conv = nn.LayerList([RSELayer(c, out_channels, 1, shortcut) for c in in_channels])
        self.inp_conv = nn.LayerList([RSELayer(out_channels, out_channels // 4, 3, shortcut) for _ in in_channels])

    def forward(self, x):
        out2, out3, out4, in5 = top_down(self.ins_conv, x)
        p5 = upsample_nearest(self.inp_conv[3](in5), 8)
        p4 = upsample_nearest(self.inp_conv[2](out4), 4)
        p3 = upsample_nearest(self.inp_conv[1](out3), 2)
        p2 = self.inp_conv[0](out2)
        return paddle.concat([p5, p4, p3, p2], axis=1)
