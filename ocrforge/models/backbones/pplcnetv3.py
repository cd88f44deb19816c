"""PPLCNetV3, the backbone of PP-OCRv4 mobile detection and recognition, in its re-parameterised layout.

The shipped PP-OCRv4 inference models fold each learnable re-parameterisation block (several conv+BN
branches at training time) into one ``reparam_conv``. This module builds that folded layout, so that
``state_dict()`` names equal the dygraph names stored in ``inference.pdiparams.info`` and the shipped
weights load by name. Fine-tuning trains the folded convolutions directly.
"""

from __future__ import annotations

import paddle.nn as nn
import paddle.nn.functional as F

from ocrforge.models.layers import SqueezeExcite
from ocrforge.registry import BACKBONES

# One row per block: (kernel size, in channels, out channels, stride, squeeze-excitation), at scale 1.0.
# Detection halves height and width at each stage; recognition keeps width early and halves height.
DET_BLOCKS = {
    "blocks2": [(3, 16, 32, 1, False)],
    "blocks3": [(3, 32, 64, 2, False), (3, 64, 64, 1, False)],
    "blocks4": [(3, 64, 128, 2, False), (3, 128, 128, 1, False)],
    "blocks5": [(3, 128, 256, 2, False)] + [(5, 256, 256, 1, False)] * 4,
    "blocks6": [(5, 256, 512, 2, True), (5, 512, 512, 1, True), (5, 512, 512, 1, False), (5, 512, 512, 1, False)],
}
REC_BLOCKS = {
    "blocks2": [(3, 16, 32, 1, False)],
    "blocks3": [(3, 32, 64, 1, False), (3, 64, 64, 1, False)],
    "blocks4": [(3, 64, 128, (2, 1), False), (3, 128, 128, 1, False)],
    "blocks5": [(3, 128, 256, (1, 2), False)] + [(5, 256, 256, 1, False)] * 4,
    "blocks6": [
        (5, 256, 512, (2, 1), True),
        (5, 512, 512, 1, True),
        (5, 512, 512, (2, 1), False),
        (5, 512, 512, 1, False),
    ],
}
# Channels of the 1x1 convolutions that project the four detection stages (stride 4, 8, 16, 32), at scale 1.0.
DET_OUT_CHANNELS = (16, 24, 56, 480)
STEM_CHANNELS = 16
REC_POOL = (3, 2)  # inference pooling of the (N, C, 3, W/4) recognition map to (N, C, 1, W/8)
REC_TRAIN_POOL = (1, 40)  # training pooling: a fixed 40-step sequence whatever the input size


def make_divisible(value: float, divisor: int = 16) -> int:
    """Round a scaled channel count to a multiple of ``divisor``, never below 90% of ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class AffineHardswish(nn.Layer):
    """``scale * hardswish(x) + bias`` with two learnable scalars."""

    def __init__(self):
        super().__init__()
        self.scale = self.create_parameter([1], default_initializer=nn.initializer.Constant(1.0))
        self.bias = self.create_parameter([1], default_initializer=nn.initializer.Constant(0.0))

    def forward(self, x):
        return self.scale * F.hardswish(x) + self.bias


class ConvBN(nn.Layer):
    """Convolution without bias followed by batch norm; no activation (the stem of PPLCNetV3)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride=1, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2D(
            in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2,
            groups=groups, bias_attr=False,
        )
        self.bn = nn.BatchNorm2D(out_channels)

    def forward(self, x):
        return self.bn(self.conv(x))


class RepConv(nn.Layer):
    """A folded learnable re-parameterisation block: ``w * conv(x) + b``, then an affine hardswish.

    The activation is skipped when ``stride == 2`` (plain int), as in the shipped models; recognition's
    ``(2, 1)`` and ``(1, 2)`` strides keep it.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride=1, groups: int = 1):
        super().__init__()
        self.stride = stride
        self.reparam_conv = nn.Conv2D(
            in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, groups=groups
        )
        self.w = self.create_parameter([1], default_initializer=nn.initializer.Constant(1.0))
        self.b = self.create_parameter([1], default_initializer=nn.initializer.Constant(0.0))
        self.activation = None if stride == 2 else AffineHardswish()

    def forward(self, x):
        x = self.w * self.reparam_conv(x) + self.b
        if self.activation is not None:
            x = self.activation(x)
        return x


class LCNetV3Block(nn.Layer):
    """Depthwise RepConv (k x k, stride), optional squeeze-excitation, pointwise RepConv (1 x 1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride, use_se: bool):
        super().__init__()
        self.dw_conv = RepConv(in_channels, in_channels, kernel_size, stride, groups=in_channels)
        self.se = SqueezeExcite(in_channels) if use_se else None
        self.pw_conv = RepConv(in_channels, out_channels, 1, 1)

    def forward(self, x):
        x = self.dw_conv(x)
        if self.se is not None:
            x = self.se(x)
        return self.pw_conv(x)


@BACKBONES.register()
class PPLCNetV3(nn.Layer):
    """PP-LCNetV3 backbone (PP-OCRv4 mobile): ``scale`` 0.75 for detection, 0.95 for recognition.

    Input ``(N, 3, H, W)`` float32. ``det=True`` returns four maps at strides 4, 8, 16, 32 with
    ``out_channels`` channels (a list; ``[12, 18, 42, 360]`` at scale 0.75). ``det=False`` returns
    ``(N, out_channels, 1, W/8)`` for ``H == 48`` (480 channels at scale 0.95); in training the map is
    pooled to a fixed ``(1, 40)``, in eval by a 3 x 2 average as the shipped inference model does.
    """

    def __init__(self, scale: float = 1.0, det: bool = False, in_channels: int = 3, **kwargs):
        super().__init__()
        unknown = sorted(set(kwargs) - {"conv_kxk_num", "lr_mult_list", "lab_lr", "data_format"})
        if unknown:
            raise TypeError(f"PPLCNetV3 got unknown arguments {unknown}; it takes scale, det, in_channels")
        self.scale = scale
        self.det = det
        table = DET_BLOCKS if det else REC_BLOCKS

        def ch(c: int) -> int:
            return make_divisible(c * scale)

        self.conv1 = ConvBN(in_channels, ch(STEM_CHANNELS), 3, stride=2)
        for stage, rows in table.items():
            blocks = nn.Sequential(*[LCNetV3Block(ch(i), ch(o), k, s, se) for k, i, o, s, se in rows])
            setattr(self, stage, blocks)

        if det:
            stage_channels = [ch(table[s][-1][2]) for s in ("blocks3", "blocks4", "blocks5", "blocks6")]
            self.out_channels = [int(c * scale) for c in DET_OUT_CHANNELS]
            self.layer_list = nn.LayerList(
                [nn.Conv2D(c_in, c_out, 1) for c_in, c_out in zip(stage_channels, self.out_channels)]
            )
        else:
            self.out_channels = ch(table["blocks6"][-1][2])

    def forward(self, x):
        x = self.blocks2(self.conv1(x))
        c3 = self.blocks3(x)
        c4 = self.blocks4(c3)
        c5 = self.blocks5(c4)
        c6 = self.blocks6(c5)
        if self.det:
            return [proj(f) for proj, f in zip(self.layer_list, (c3, c4, c5, c6))]
        if self.training:
            return F.adaptive_avg_pool2d(c6, list(REC_TRAIN_POOL))
        return F.avg_pool2d(c6, list(REC_POOL))
