"""MobileNetV3 (large / small, any width scale, squeeze-excitation on or off) for DB text detection.

The detection variant of PaddleOCR (the student of PP-OCRv3 det distillation): the blocks are cut into four
stages ending at strides 4, 8, 16 and 32, and the last stage ends with a 1x1 conv. Layer names equal
PaddleOCR's (``conv``, ``stage0.0.expand_conv.conv``, ``...mid_se.conv1``), so its checkpoints load by name.
"""

from __future__ import annotations

import paddle.nn as nn
import paddle.nn.functional as F

from ocrforge.models.layers import SqueezeExcite
from ocrforge.registry import BACKBONES

# One row per residual unit: (kernel, expanded channels, out channels, squeeze-excitation, activation, stride),
# at scale 1.0. ``LAST_CHANNELS`` is the width of the final 1x1 conv.
BLOCKS = {
    "large": [
        (3, 16, 16, False, "relu", 1),
        (3, 64, 24, False, "relu", 2),
        (3, 72, 24, False, "relu", 1),
        (5, 72, 40, True, "relu", 2),
        (5, 120, 40, True, "relu", 1),
        (5, 120, 40, True, "relu", 1),
        (3, 240, 80, False, "hardswish", 2),
        (3, 200, 80, False, "hardswish", 1),
        (3, 184, 80, False, "hardswish", 1),
        (3, 184, 80, False, "hardswish", 1),
        (3, 480, 112, True, "hardswish", 1),
        (3, 672, 112, True, "hardswish", 1),
        (5, 672, 160, True, "hardswish", 2),
        (5, 960, 160, True, "hardswish", 1),
        (5, 960, 160, True, "hardswish", 1),
    ],
    "small": [
        (3, 16, 16, True, "relu", 2),
        (3, 72, 24, False, "relu", 2),
        (3, 88, 24, False, "relu", 1),
        (5, 96, 40, True, "hardswish", 2),
        (5, 240, 40, True, "hardswish", 1),
        (5, 240, 40, True, "hardswish", 1),
        (5, 120, 48, True, "hardswish", 1),
        (5, 144, 48, True, "hardswish", 1),
        (5, 288, 96, True, "hardswish", 2),
        (5, 576, 96, True, "hardswish", 1),
        (5, 576, 96, True, "hardswish", 1),
    ],
}
LAST_CHANNELS = {"large": 960, "small": 576}
# A stride-2 unit starts a new stage only after this unit index: the stem and the first units of "large"
# already bring the map to stride 4 inside stage 0.
FIRST_CUT_AFTER = {"large": 2, "small": 0}
STEM_CHANNELS = 16


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled channel count to a multiple of ``divisor`` (at least ``divisor``), never below 90% of it."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def activation(x, name: str | None):
    if name is None:
        return x
    if name == "relu":
        return F.relu(x)
    if name == "hardswish":
        return F.hardswish(x)
    raise ValueError(f"MobileNetV3 activation {name!r} is unknown; use 'relu' or 'hardswish'")


class ConvBNLayer(nn.Layer):
    """Convolution without bias, batch norm, optional activation (``relu`` / ``hardswish`` / None)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
                 act: str | None = None):
        super().__init__()
        self.act = act
        self.conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2,
                              groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm2D(out_channels)

    def forward(self, x):
        return activation(self.bn(self.conv(x)), self.act)


class ResidualUnit(nn.Layer):
    """Inverted residual: 1x1 expand, depthwise ``kernel_size`` conv (carries the stride), optional SE, 1x1
    linear projection; the input is added back when stride is 1 and the channel count is unchanged."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, kernel_size: int, stride: int,
                 use_se: bool, act: str):
        super().__init__()
        self.use_shortcut = stride == 1 and in_channels == out_channels
        self.use_se = use_se
        self.expand_conv = ConvBNLayer(in_channels, mid_channels, 1, act=act)
        self.bottleneck_conv = ConvBNLayer(mid_channels, mid_channels, kernel_size, stride=stride,
                                           groups=mid_channels, act=act)
        if use_se:
            self.mid_se = SqueezeExcite(mid_channels, slope=0.2, offset=0.5)
        self.linear_conv = ConvBNLayer(mid_channels, out_channels, 1, act=None)

    def forward(self, inputs):
        x = self.bottleneck_conv(self.expand_conv(inputs))
        if self.use_se:
            x = self.mid_se(x)
        x = self.linear_conv(x)
        return inputs + x if self.use_shortcut else x


@BACKBONES.register()
class MobileNetV3(nn.Layer):
    """MobileNetV3 for detection: (N, 3, H, W) -> four maps at strides 4, 8, 16, 32.

    ``model_name``: ``large`` or ``small``; ``scale`` multiplies every width (PaddleOCR offers 0.35, 0.5,
    0.75, 1.0, 1.25; any positive value works); ``disable_se`` drops every squeeze-excitation (PP-OCRv3's
    student does, it is faster on CPUs). ``out_channels`` lists the channels of the four maps.
    """

    def __init__(self, in_channels: int = 3, model_name: str = "large", scale: float = 0.5,
                 disable_se: bool = False, **kwargs):
        super().__init__()
        if model_name not in BLOCKS:
            raise ValueError(f"MobileNetV3 model_name {model_name!r} is unknown; use one of {sorted(BLOCKS)}")
        if not scale or scale <= 0:
            raise ValueError(f"MobileNetV3 scale must be positive; got {scale!r}")
        self.model_name = model_name
        self.scale = scale
        self.disable_se = disable_se

        channels = make_divisible(STEM_CHANNELS * scale)
        self.conv = ConvBNLayer(in_channels, channels, 3, stride=2, act="hardswish")
        self.out_channels: list[int] = []
        stages, units = [], []
        for i, (kernel, expanded, out, se, act, stride) in enumerate(BLOCKS[model_name]):
            if stride == 2 and i > FIRST_CUT_AFTER[model_name]:
                stages.append(units)
                self.out_channels.append(channels)
                units = []
            units.append(ResidualUnit(channels, make_divisible(scale * expanded), make_divisible(scale * out),
                                      kernel, stride, se and not disable_se, act))
            channels = make_divisible(scale * out)
        last = make_divisible(scale * LAST_CHANNELS[model_name])
        units.append(ConvBNLayer(channels, last, 1, act="hardswish"))
        stages.append(units)
        self.out_channels.append(last)
        self.stages = [self.add_sublayer(f"stage{i}", nn.Sequential(*layers)) for i, layers in enumerate(stages)]

    def forward(self, x):
        x = self.conv(x)
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps
