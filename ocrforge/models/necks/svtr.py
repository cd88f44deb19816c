"""The SVTR sequence neck of PP-OCRv4 recognition: a few global-attention blocks over the backbone's feature row.

Layer names follow PaddleOCR's dygraph model (``encoder.conv1.conv``, ``encoder.svtr_block.0.mixer.qkv``, ...),
so the shipped PP-OCRv4 weights load by name.
"""

from __future__ import annotations

import paddle
from paddle import nn
from paddle.nn import initializer as init

from ocrforge.registry import NECKS


class ConvBNSwish(nn.Layer):
    """Conv (no bias) -> BatchNorm -> Swish. Sub-layers ``conv`` and ``norm``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2D(
            in_channels,
            out_channels,
            kernel_size,
            padding=padding,
            weight_attr=paddle.ParamAttr(initializer=init.KaimingUniform()),
            bias_attr=False,
        )
        self.norm = nn.BatchNorm2D(out_channels)
        self.act = nn.Swish()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.act(self.norm(self.conv(x)))


class GlobalAttention(nn.Layer):
    """Multi-head self-attention over a sequence. (N, L, C) -> (N, L, C)."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"SVTR attention: dims {dim} must be a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias_attr=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        n, length, dim = x.shape
        qkv = self.qkv(x).reshape([0, -1, 3, self.num_heads, self.head_dim]).transpose([2, 0, 3, 1, 4])
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = nn.functional.softmax(q.matmul(k.transpose([0, 1, 3, 2])), axis=-1)
        out = self.attn_drop(attn).matmul(v).transpose([0, 2, 1, 3]).reshape([0, -1, dim])
        return self.proj_drop(self.proj(out))


class FeedForward(nn.Layer):
    """Linear -> Swish -> Linear, with dropout. (N, L, C) -> (N, L, C)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.Swish()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class SVTRBlock(nn.Layer):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)). (N, L, C) -> (N, L, C)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop: float, attn_drop: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, epsilon=1e-5)
        self.mixer = GlobalAttention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.norm2 = nn.LayerNorm(dim, epsilon=1e-5)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x + self.mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class EncoderWithSVTR(nn.Layer):
    """SVTR neck. (N, C_in, H, W) backbone features -> (N, dims, H, W), H is 1 for PP-OCRv4.

    Reduces channels by 8 with a ``kernel_size`` conv, runs ``depth`` global-attention blocks of width
    ``hidden_dims`` over the H*W positions, projects back to C_in, concatenates the input (a shortcut) and
    fuses down to ``dims``. With ``use_guide`` the shortcut and the attention path see the input without
    gradient, so the NRTR branch (trained on the same backbone output) is the only one that guides it.
    """

    def __init__(
        self,
        in_channels: int,
        dims: int = 64,
        depth: int = 2,
        hidden_dims: int = 120,
        use_guide: bool = False,
        num_heads: int = 8,
        qkv_bias: bool = True,
        mlp_ratio: float = 2.0,
        drop_rate: float = 0.1,
        attn_drop_rate: float = 0.1,
        kernel_size=(3, 3),
    ):
        super().__init__()
        kernel_size = list(kernel_size)
        padding = [kernel_size[0] // 2, kernel_size[1] // 2]
        reduced = in_channels // 8
        self.use_guide = use_guide
        self.conv1 = ConvBNSwish(in_channels, reduced, kernel_size, padding)
        self.conv2 = ConvBNSwish(reduced, hidden_dims, 1)
        self.svtr_block = nn.LayerList(
            [SVTRBlock(hidden_dims, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(hidden_dims, epsilon=1e-6)
        self.conv3 = ConvBNSwish(hidden_dims, in_channels, 1)
        self.conv4 = ConvBNSwish(2 * in_channels, reduced, kernel_size, padding)
        self.conv1x1 = ConvBNSwish(reduced, dims, 1)
        self.out_channels = dims
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(layer: nn.Layer) -> None:
        if isinstance(layer, nn.Linear):
            init.TruncatedNormal(std=0.02)(layer.weight)
            if layer.bias is not None:
                init.Constant(0.0)(layer.bias)
        elif isinstance(layer, nn.LayerNorm):
            init.Constant(1.0)(layer.weight)
            init.Constant(0.0)(layer.bias)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.use_guide:
            z = x.clone()
            z.stop_gradient = True
        else:
            z = x
        shortcut = z
        z = self.conv2(self.conv1(z))
        n, c, h, w = z.shape
        z = z.flatten(2).transpose([0, 2, 1])  # (N, H*W, C)
        for block in self.svtr_block:
            z = block(z)
        z = self.norm(z)
        z = z.reshape([0, h, w, c]).transpose([0, 3, 1, 2])
        z = self.conv3(z)
        z = paddle.concat([shortcut, z], axis=1)
        return self.conv1x1(self.conv4(z))


class Im2Seq(nn.Layer):
    """(N, C, 1, W) feature row -> (N, W, C) sequence."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.out_channels = in_channels

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if x.shape[2] != 1:
            raise ValueError(
                f"Im2Seq needs a feature map of height 1, got shape {list(x.shape)}; "
                f"check the input height (48 for PP-OCRv4) and the backbone's rec-mode pooling"
            )
        return x.squeeze(axis=2).transpose([0, 2, 1])


ENCODERS = {"svtr": EncoderWithSVTR}


@NECKS.register()
class SequenceEncoder(nn.Layer):
    """PaddleOCR's ``SequenceEncoder``: turns (N, C, 1, W) features into an (N, W, out_channels) sequence.

    ``encoder_type`` ``reshape`` only reshapes; ``svtr`` runs :class:`EncoderWithSVTR` (kwargs ``dims``,
    ``depth``, ``hidden_dims``, ``use_guide``, ``kernel_size``, ...) first. The sub-layer is called
    ``encoder`` as in PaddleOCR, so weights keep their dygraph names.
    """

    def __init__(self, in_channels: int, encoder_type: str = "svtr", **kwargs):
        super().__init__()
        self.encoder_type = encoder_type
        if encoder_type == "reshape":
            self.encoder_reshape = Im2Seq(in_channels)
            self.out_channels = in_channels
            return
        if encoder_type not in ENCODERS:
            raise KeyError(
                f"SequenceEncoder: unknown encoder_type {encoder_type!r}; known: reshape, {', '.join(sorted(ENCODERS))}"
            )
        self.encoder = ENCODERS[encoder_type](in_channels, **kwargs)
        self.encoder_reshape = Im2Seq(self.encoder.out_channels)
        self.out_channels = self.encoder.out_channels

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.encoder_type != "reshape":
            x = self.encoder(x)
        return self.encoder_reshape(x)

