"""PP-OCRv4's recognition head: a CTC branch (SVTR neck + CTCHead) guided in training by an NRTR branch."""

from __future__ import annotations

import copy

import paddle
from paddle import nn

from ocrforge.registry import HEADS, NECKS


class FCTranspose(nn.Layer):
    """(N, C_in, L) -> (N, L, C_out): transpose, then a bias-free linear layer ``fc``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.fc = nn.Linear(in_channels, out_channels, bias_attr=False)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.fc(x.transpose([0, 2, 1]))


@HEADS.register()
class MultiHead(nn.Layer):
    """CTC + NRTR heads on one backbone output (N, C, 1, W).

    ``head_list`` is PaddleOCR's: ``[{CTCHead: {Neck: {name: svtr, ...}, Head: {fc_decay: ...}}},
    {NRTRHead: {nrtr_dim: 384, max_text_length: 25}}]``; ``out_channels_list`` gives the class counts,
    ``{"CTCLabelDecode": n_ctc, "NRTRLabelDecode": n_ctc + 3}``.

    Training, with ``targets`` = the batch after the image (``[label_ctc, label_gtc, length, valid_ratio]``):
    returns ``{"ctc": (N, W, n_ctc) logits, "ctc_neck": (N, W, dims) features, "nrtr": (N, 1 + max(length),
    n_nrtr) logits}``. Eval: the CTC probabilities (N, W, n_ctc) only, as the inference model.
    """

    def __init__(self, in_channels: int, out_channels_list: dict, head_list: list, **kwargs):
        super().__init__()
        missing = {"CTCLabelDecode", "NRTRLabelDecode"} - set(out_channels_list or {})
        self.has_nrtr = False
        for entry in head_list:
            if not isinstance(entry, dict) or len(entry) != 1:
                raise ValueError(f"MultiHead: each head_list entry is one mapping {{HeadName: options}}, got {entry!r}")
            (name, options), = entry.items()
            options = copy.deepcopy(options) or {}
            if name == "CTCHead":
                if "CTCLabelDecode" in missing:
                    raise KeyError("MultiHead: out_channels_list needs 'CTCLabelDecode' (blank + characters)")
                neck_cfg = options.get("Neck") or {"name": "reshape"}
                encoder_type = neck_cfg.pop("name")
                self.ctc_encoder = NECKS.build(
                    {"name": "SequenceEncoder"}, in_channels=in_channels, encoder_type=encoder_type, **neck_cfg
                )
                head_cfg = dict(options.get("Head") or {})
                self.ctc_head = HEADS.build(
                    {"name": "CTCHead", **head_cfg},
                    in_channels=self.ctc_encoder.out_channels,
                    out_channels=out_channels_list["CTCLabelDecode"],
                )
            elif name == "NRTRHead":
                if "NRTRLabelDecode" in missing:
                    raise KeyError("MultiHead: out_channels_list needs 'NRTRLabelDecode' (CTC classes + 3)")
                nrtr_dim = options.get("nrtr_dim", 384)
                self.before_gtc = nn.Sequential(nn.Flatten(2), FCTranspose(in_channels, nrtr_dim))
                self.gtc_head = HEADS.build(
                    {"name": "NRTRHead", **options}, out_channels=out_channels_list["NRTRLabelDecode"]
                )
                self.has_nrtr = True
            else:
                raise KeyError(f"MultiHead: unsupported head {name!r} in head_list; use CTCHead and NRTRHead")
        if not hasattr(self, "ctc_head"):
            raise KeyError("MultiHead: head_list needs a CTCHead entry (it is the head used at inference)")
        self.out_channels = out_channels_list["CTCLabelDecode"]

    def forward(self, x: paddle.Tensor, targets=None):
        feats = self.ctc_encoder(x)
        ctc = self.ctc_head(feats)
        if not self.training:
            return ctc
        out = {"ctc": ctc, "ctc_neck": feats}
        if self.has_nrtr:
            if targets is None:
                raise ValueError(
                    "MultiHead needs targets in training (the batch after the image: label_ctc, label_gtc, "
                    "length, valid_ratio) for its NRTR branch; call model(images, data=batch[1:])"
                )
            out["nrtr"] = self.gtc_head(self.before_gtc(x), targets[1:])
        return out
