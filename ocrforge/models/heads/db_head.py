"""DBHead: the differentiable-binarisation head of DB / PP-OCR detection."""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ocrforge.registry import HEADS


class DBMapBranch(nn.Layer):
    """k0 x k0 conv + BN + ReLU at stride 4, two stride-2 transposed convs (k1, k2) back to the input size,
    sigmoid; ``kernel_list`` = (k0, k1, k2), default (3, 2, 2). (N, C, H/4, W/4) -> (N, 1, H, W) in [0, 1].
    """

    def __init__(self, in_channels: int, kernel_list=(3, 2, 2)):
        super().__init__()
        mid = in_channels // 4
        k0, k1, k2 = kernel_list
        self.conv1 = nn.Conv2D(in_channels, mid, k0, padding=k0 // 2, bias_attr=False)
        self.conv_bn1 = nn.BatchNorm2D(mid)
        self.conv2 = nn.Conv2DTranspose(mid, mid, k1, stride=2)
        self.conv_bn2 = nn.BatchNorm2D(mid)
        self.conv3 = nn.Conv2DTranspose(mid, 1, k2, stride=2)

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

    def __init__(self, in_channels: int, k: float = 50, kernel_list=(3, 2, 2), **kwargs):
        super().__init__()
        if len(kernel_list) != 3:
            raise ValueError(f"DBHead kernel_list needs three kernel sizes (conv, deconv, deconv); got {kernel_list}")
        self.k = k
        self.binarize = DBMapBranch(in_channels, kernel_list)
        self.thresh = DBMapBranch(in_channels, kernel_list)

    def step_function(self, shrink: paddle.Tensor, threshold: paddle.Tensor) -> paddle.Tensor:
        return paddle.reciprocal(1 + paddle.exp(-self.k * (shrink - threshold)))

    def forward(self, x, targets=None):
        shrink = self.binarize(x)
        if not self.training:
            return {"maps": shrink}
        threshold = self.thresh(x)
        binary = self.step_function(shrink, threshold)
        return {"maps": paddle.concat([shrink, threshold, binary], axis=1)}
