"""ResNet-vd for DB text detection: the teacher backbone of PaddleOCR's PP-OCRv3 det distillation (layers 50).

"vd" is ResNet with a three-conv stem and shortcuts that average-pool before their 1x1 conv when they
downsample. Layer names equal PaddleOCR's (``conv1_1._conv``, ``bb_0_0.conv0._batch_norm``, ``bb_1_0.short``),
so its checkpoints load by name. Deformable convolutions (``dcn_stage``) are not supported.
"""

from __future__ import annotations

import paddle.nn as nn
import paddle.nn.functional as F

from ocrforge.registry import BACKBONES

DEPTHS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3],
          200: [3, 12, 48, 3]}
STAGE_WIDTHS = [64, 128, 256, 512]  # bottleneck widths; a bottleneck stage outputs 4x this


class ConvBNLayer(nn.Layer):
    """Convolution without bias, batch norm, optional ReLU; ``is_vd_mode`` average-pools 2x2 (stride 2) first."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 is_vd_mode: bool = False, act: str | None = None):
        super().__init__()
        self.is_vd_mode = is_vd_mode
        self.act = act
        self._pool2d_avg = nn.AvgPool2D(kernel_size=2, stride=2, padding=0, ceil_mode=True)
        self._conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride,
                               padding=(kernel_size - 1) // 2, bias_attr=False)
        self._batch_norm = nn.BatchNorm2D(out_channels)

    def forward(self, x):
        if self.is_vd_mode:
            x = self._pool2d_avg(x)
        x = self._batch_norm(self._conv(x))
        return F.relu(x) if self.act == "relu" else x


class BottleneckBlock(nn.Layer):
    """1x1 -> 3x3 (stride) -> 1x1 x4 channels, plus the input (projected by ``short`` unless ``shortcut``)."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int, shortcut: bool, if_first: bool):
        super().__init__()
        self.conv0 = ConvBNLayer(in_channels, width, 1, act="relu")
        self.conv1 = ConvBNLayer(width, width, 3, stride=stride, act="relu")
        self.conv2 = ConvBNLayer(width, width * 4, 1)
        self.shortcut = shortcut
        if not shortcut:
            self.short = ConvBNLayer(in_channels, width * 4, 1, is_vd_mode=not if_first)

    def forward(self, x):
        y = self.conv2(self.conv1(self.conv0(x)))
        return F.relu(y + (x if self.shortcut else self.short(x)))


class BasicBlock(nn.Layer):
    """3x3 (stride) -> 3x3, plus the input (projected by ``short`` unless ``shortcut``); ResNet-18/34."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int, shortcut: bool, if_first: bool):
        super().__init__()
        self.conv0 = ConvBNLayer(in_channels, width, 3, stride=stride, act="relu")
        self.conv1 = ConvBNLayer(width, width, 3)
        self.shortcut = shortcut
        if not shortcut:
            self.short = ConvBNLayer(in_channels, width, 1, is_vd_mode=not if_first)

    def forward(self, x):
        y = self.conv1(self.conv0(x))
        return F.relu(y + (x if self.shortcut else self.short(x)))


@BACKBONES.register()
class ResNet_vd(nn.Layer):  # noqa: N801 - PaddleOCR's name, which configs use
    """ResNet-vd: (N, 3, H, W) -> the maps of the stages in ``out_indices`` (default all four: strides 4, 8,
    16, 32). ``layers``: 18, 34, 50, 101, 152 or 200. ``out_channels`` lists the channels of the maps
    (50: 256, 512, 1024, 2048; 18/34: 64, 128, 256, 512).
    """

    def __init__(self, in_channels: int = 3, layers: int = 50, out_indices: list[int] | None = None,
                 dcn_stage: list[bool] | None = None, **kwargs):
        super().__init__()
        if layers not in DEPTHS:
            raise ValueError(f"ResNet_vd layers={layers!r} is not supported; use one of {sorted(DEPTHS)}")
        if dcn_stage and any(dcn_stage):
            raise ValueError("ResNet_vd dcn_stage (deformable convolutions) is not supported by ocrforge; remove it")
        self.layers = layers
        self.out_indices = list(out_indices) if out_indices is not None else [0, 1, 2, 3]
        block = BottleneckBlock if layers >= 50 else BasicBlock

        self.conv1_1 = ConvBNLayer(in_channels, 32, 3, stride=2, act="relu")
        self.conv1_2 = ConvBNLayer(32, 32, 3, act="relu")
        self.conv1_3 = ConvBNLayer(32, 64, 3, act="relu")
        self.pool2d_max = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)

        self.stages = []
        self.out_channels: list[int] = []
        channels = 64
        for s, depth in enumerate(DEPTHS[layers]):
            units = []
            for i in range(depth):
                unit = block(channels, STAGE_WIDTHS[s], stride=2 if i == 0 and s != 0 else 1,
                             shortcut=i != 0, if_first=s == 0 and i == 0)
                units.append(self.add_sublayer(f"bb_{s}_{i}", unit))
                channels = STAGE_WIDTHS[s] * block.expansion
            self.stages.append(nn.Sequential(*units))
            if s in self.out_indices:
                self.out_channels.append(channels)

    def forward(self, x):
        x = self.pool2d_max(self.conv1_3(self.conv1_2(self.conv1_1(x))))
        maps = []
        for s, stage in enumerate(self.stages):
            x = stage(x)
            if s in self.out_indices:
                maps.append(x)
        return maps
