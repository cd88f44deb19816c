"""DBHead: the differentiable-binarisation head of DB / PP-OCR detection."""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ocrforge.registry import HEADS


class DBMapBranch(nn.Layer):
    """3x3 conv + BN + ReLU at stride 4, two 2x2 transposed convs back to the input size, sigmoid.

    (N, C, H/4, W/4) -> (N, 1, H, W) in [0, 1].
    """

    def __init__(self, in_channels: int):
        super().__init__()
        mid = in_channels // 4
        self.conv1 = nn.Conv2D(in_channels, mid, 3, padding=1, bias_attr=False)
        self.conv_bn1 = nn.BatchNorm2D(mid)
        self.conv2 = nn.Conv2DTranspose(mid, mid, 2, stride=2)
        self.conv_bn2 = nn.BatchNorm2D(mid)
        self.conv3 = nn.Conv2DTranspose(mid, 1, 2, stride=2)

    def forward(self, x):
        x = F.relu(self.conv_bn1(self.conv1(x)))
        x = F.relu(self.conv_bn2(self.conv2(x)))
        return F.sigmoid(self.conv3(x))


@HEADS.register()
class DBHead(nn.Layer):
    """Probability (``binarize``) and threshold (``thresh``) maps, combined by the step ``1/(1+exp(-k(P-T)))``.

    Training: ``{"maps": (N, 3, H, W)}`` = shrink probability, threshold, approximate binary map.
    Eval: ``{"maps": (N, 1, H, W)}`` = shrink probability only (what the shipped inference model outputs).
    """

    def __init__(self, in_channels: int, k: float = 50, **kwargs):
        super().__init__()
        self.k = k
        self.binarize = DBMapBranch(in_channels)
        self.thresh = DBMapBranch(in_channels)

    def step_function(self, shrink: paddle.Tensor, threshold: paddle.Tensor) -> paddle.Tensor:
        return paddle.reciprocal(1 + paddle.exp(-self.k * (shrink - threshold)))

    def forward(self, x, targets=None):
        shrink = self.binarize(x)
        if not self.training:
            return {"maps": shrink}
        threshold = self.thresh(x)
        binary = self.step_function(shrink, threshold)
        return {"maps": paddle.concat([shrink, threshold, binary], axis=1)}
