"""NRTR head: a Transformer decoder over the backbone's feature sequence, PP-OCRv4's training-only guide branch.

It reads ``label_gtc`` from NRTRLabelEncode: ``<s>`` (2), the character ids (4 + dictionary index), ``</s>``
(3), then padding (0). Class ids: 0 blank, 1 ``<unk>``, 2 ``<s>``, 3 ``</s>``, then the dictionary.
Layer names follow PaddleOCR's ``Transformer`` (``decoder.0.self_attn.qkv``, ``tgt_word_prj``, ...).
"""

from __future__ import annotations

import math

import numpy as np
import paddle
from paddle import nn
from paddle.nn import initializer as init

from ocrforge.registry import HEADS

PAD, UNK, SOS, EOS = 0, 1, 2, 3


class MultiheadAttention(nn.Layer):
    """Scaled dot-product attention. query (N, Lq, D), key (N, Lk, D) or None for self-attention -> (N, Lq, D)."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, self_attn: bool = False):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"NRTR attention: nrtr_dim {embed_dim} must be a multiple of the head count {num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.scale = self.head_dim**-0.5
        self.self_attn = self_attn
        if self_attn:
            self.qkv = nn.Linear(embed_dim, embed_dim * 3)
        else:
            self.q = nn.Linear(embed_dim, embed_dim)
            self.kv = nn.Linear(embed_dim, embed_dim * 2)
        self.attn_drop = nn.Dropout(dropout)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, query: paddle.Tensor, key: paddle.Tensor | None = None, attn_mask=None) -> paddle.Tensor:
        if self.self_attn:
            qkv = self.qkv(query).reshape([0, -1, 3, self.num_heads, self.head_dim]).transpose([2, 0, 3, 1, 4])
            q, k, v = qkv[0], qkv[1], qkv[2]
        else:
            q = self.q(query).reshape([0, -1, self.num_heads, self.head_dim]).transpose([0, 2, 1, 3])
            kv = self.kv(key).reshape([0, -1, 2, self.num_heads, self.head_dim]).transpose([2, 0, 3, 1, 4])
            k, v = kv[0], kv[1]
        attn = q.matmul(k.transpose([0, 1, 3, 2])) * self.scale
        if attn_mask is not None:
            attn = attn + attn_mask
        attn = self.attn_drop(nn.functional.softmax(attn, axis=-1))
        out = attn.matmul(v).transpose([0, 2, 1, 3]).reshape([0, -1, self.embed_dim])
        return self.out_proj(out)


class DecoderFeedForward(nn.Layer):
    """Linear -> ReLU -> Linear, with dropout. (N, L, D) -> (N, L, D)."""

    def __init__(self, dim: int, hidden: int, drop: float):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class DecoderLayer(nn.Layer):
    """Post-norm decoder layer: masked self-attention, cross-attention to the image memory, feed-forward."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, attention_dropout: float, residual_dropout: float):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, attention_dropout, self_attn=True)
        self.norm1 = nn.LayerNorm(d_model, epsilon=1e-5)
        self.dropout1 = nn.Dropout(residual_dropout)
        self.cross_attn = MultiheadAttention(d_model, nhead, attention_dropout)
        self.norm2 = nn.LayerNorm(d_model, epsilon=1e-5)
        self.dropout2 = nn.Dropout(residual_dropout)
        self.mlp = DecoderFeedForward(d_model, dim_feedforward, residual_dropout)
        self.norm3 = nn.LayerNorm(d_model, epsilon=1e-5)
        self.dropout3 = nn.Dropout(residual_dropout)

    def forward(self, tgt: paddle.Tensor, memory: paddle.Tensor, self_mask: paddle.Tensor) -> paddle.Tensor:
        tgt = self.norm1(tgt + self.dropout1(self.self_attn(tgt, attn_mask=self_mask)))
        tgt = self.norm2(tgt + self.dropout2(self.cross_attn(tgt, key=memory)))
        return self.norm3(tgt + self.dropout3(self.mlp(tgt)))


class TokenEmbedding(nn.Layer):
    """Token ids (N, L) int64 -> (N, L, D) embeddings scaled by sqrt(D); id 0 is padding."""

    def __init__(self, vocab: int, d_model: int):
        super().__init__()
        self.embedding = nn.Embedding(
            vocab,
            d_model,
            padding_idx=PAD,
            weight_attr=paddle.ParamAttr(initializer=init.Normal(0.0, d_model**-0.5)),
        )
        self.scale = math.sqrt(d_model)

    def forward(self, ids: paddle.Tensor) -> paddle.Tensor:
        return self.embedding(ids) * self.scale


class PositionalEncoding(nn.Layer):
    """Adds the sinusoidal position code to (N, L, D) and applies dropout. ``pe`` is (1, max_len, D), not saved."""

    def __init__(self, d_model: int, max_len: int, dropout: float):
        super().__init__()
        position = np.arange(max_len, dtype=np.float32)[:, None]
        freq = np.exp(np.arange(0, d_model, 2, dtype=np.float32) * (-math.log(10000.0) / d_model))
        pe = np.zeros((max_len, d_model), dtype=np.float32)
        pe[:, 0::2] = np.sin(position * freq)
        pe[:, 1::2] = np.cos(position * freq)
        self.register_buffer("pe", paddle.to_tensor(pe[None]), persistable=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        length = x.shape[1]
        if length > self.pe.shape[1]:
            raise ValueError(
                f"NRTRHead: a sequence of {length} tokens is longer than the position table ({self.pe.shape[1]}); "
                f"raise max_text_length in the config"
            )
        return self.dropout(x + self.pe[:, :length])


def causal_mask(length: int) -> paddle.Tensor:
    """(1, 1, L, L) additive mask: 0 on and below the diagonal, -inf above, so a token sees only its past."""
    mask = np.triu(np.full((length, length), -np.inf, dtype=np.float32), k=1)
    return paddle.to_tensor(mask[None, None])


@HEADS.register()
class NRTRHead(nn.Layer):
    """Transformer decoder reading a (N, L, nrtr_dim) image memory.

    Training: ``forward(memory, targets)`` with ``targets`` either ``[label_gtc, length, ...]`` (PaddleOCR's
    batch order after the image and ``label_ctc``) or the ``label_gtc`` tensor alone, (N, max_text_length)
    int64. Returns teacher-forced logits (N, 1 + max(length), out_channels), predicting ``label_gtc[:, 1:]``.
    Eval: greedy decoding from ``<s>``; returns per-step probabilities (N, steps, out_channels), steps at most
    ``max_text_length + 1``.
    """

    def __init__(
        self,
        out_channels: int,
        in_channels: int | None = None,
        nrtr_dim: int = 384,
        max_text_length: int = 25,
        num_decoder_layers: int = 4,
        nhead: int | None = None,
        dim_feedforward: int | None = None,
        attention_dropout_rate: float = 0.0,
        residual_dropout_rate: float = 0.1,
    ):
        super().__init__()
        if in_channels is not None and in_channels != nrtr_dim:
            raise ValueError(
                f"NRTRHead reads a memory of width nrtr_dim={nrtr_dim} but gets in_channels={in_channels}; "
                f"project the features first (MultiHead does, with before_gtc) or set nrtr_dim: {in_channels}"
            )
        nhead = nhead or nrtr_dim // 32
        dim_feedforward = dim_feedforward or nrtr_dim * 4
        self.out_channels = out_channels
        self.max_text_length = max_text_length
        self.embedding = TokenEmbedding(out_channels, nrtr_dim)
        self.positional_encoding = PositionalEncoding(nrtr_dim, max_text_length + 2, residual_dropout_rate)
        self.decoder = nn.LayerList(
            [
                DecoderLayer(nrtr_dim, nhead, dim_feedforward, attention_dropout_rate, residual_dropout_rate)
                for _ in range(num_decoder_layers)
            ]
        )
        self.tgt_word_prj = nn.Linear(nrtr_dim, out_channels, bias_attr=False)
        for layer in self.sublayers():
            if isinstance(layer, nn.Linear):
                init.XavierNormal()(layer.weight)
                if layer.bias is not None:
                    init.Constant(0.0)(layer.bias)

    def decode(self, tokens: paddle.Tensor, memory: paddle.Tensor) -> paddle.Tensor:
        """Token ids (N, L) and memory (N, S, D) -> logits (N, L, out_channels), each step seeing its past only."""
        x = self.positional_encoding(self.embedding(tokens))
        mask = causal_mask(tokens.shape[1])
        for layer in self.decoder:
            x = layer(x, memory, self_mask=mask)
        return self.tgt_word_prj(x)

    def forward(self, memory: paddle.Tensor, targets=None) -> paddle.Tensor:
        if not self.training:
            return self.greedy(memory)
        if targets is None:
            raise ValueError(
                "NRTRHead needs targets in training: the label_gtc batch element (NRTRLabelEncode), "
                "or [label_gtc, length]; check that KeepKeys keeps label_gtc and length"
            )
        if isinstance(targets, (list, tuple)):
            labels = targets[0]
            lengths = targets[1] if len(targets) > 1 else None
        else:
            labels, lengths = targets, None
        if lengths is None:
            lengths = (labels != PAD).astype("int64").sum(axis=1) - 2
        longest = int(lengths.max())
        tokens = labels[:, : longest + 2].astype("int64")
        return self.decode(tokens[:, :-1], memory)

    @paddle.no_grad()
    def greedy(self, memory: paddle.Tensor) -> paddle.Tensor:
        n = memory.shape[0]
        tokens = paddle.full([n, 1], SOS, dtype="int64")
        probs = []
        for _ in range(self.max_text_length + 1):
            step = nn.functional.softmax(self.decode(tokens, memory)[:, -1], axis=-1)
            probs.append(step)
            nxt = step.argmax(axis=-1, keepdim=True)
            tokens = paddle.concat([tokens, nxt], axis=1)
            if bool((tokens == EOS).any(axis=1).all()):
                break
        return paddle.stack(probs, axis=1)
