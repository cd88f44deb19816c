"""Recognition losses for PP-OCRv4's two-branch head: CTC, NRTR (attention) and their sum.

Batch layout (PaddleOCR's ``MultiLabelEncode`` with ``gtc_encode: NRTRLabelEncode`` then ``KeepKeys``):
``[image, label_ctc, label_gtc, length, valid_ratio]``.

- ``label_ctc`` (N, max_text_length) int: character ids, 0 is the CTC blank and the padding.
- ``label_gtc`` (N, max_text_length) int: ``[2 (<s>), ids..., 3 (</s>), 0 (pad)...]``; the NRTR dictionary
  starts with ``blank, <unk>, <s>, </s>``.
- ``length`` (N,) int: the number of characters.

``CTCLoss`` alone reads ``[image, label, length, ...]`` and ``NRTRLoss`` alone ``[image, label_gtc, length, ...]``;
``MultiLoss`` hands each its slice, as PaddleOCR does.
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F

from ocrforge.registry import LOSSES


def _as_tensor(x, dtype: str) -> paddle.Tensor:
    if isinstance(x, paddle.Tensor):
        return x.astype(dtype)
    return paddle.to_tensor(x, dtype=dtype)


def ctc_loss_per_sample(logits: paddle.Tensor, labels, lengths) -> paddle.Tensor:
    """CTC loss (blank 0) of each sample, (N,), from logits (N, T, C), labels (N, L) and lengths (N,).

    The logits are unnormalised: paddle's CTC applies the softmax itself.
    """
    if logits.ndim != 3:
        raise ValueError(f"CTC loss needs logits of shape (N, T, C); got shape {list(logits.shape)}.")
    labels = _as_tensor(labels, "int32")
    lengths = _as_tensor(lengths, "int64").flatten()
    batch_size, steps = logits.shape[0], logits.shape[1]
    if labels.shape[0] != batch_size or lengths.shape[0] != batch_size:
        raise ValueError(
            f"CTC loss: {batch_size} predictions but labels {list(labels.shape)} and lengths "
            f"{list(lengths.shape)}; check the batch layout [image, label, length, ...]."
        )
    input_lengths = paddle.full([batch_size], steps, dtype="int64")
    return F.ctc_loss(
        logits.transpose([1, 0, 2]), labels, input_lengths, lengths, blank=0, reduction="none"
    )


def ctc_loss_from_probs(probs: paddle.Tensor, labels, lengths, eps: float = 1e-12) -> paddle.Tensor:
    """Mean CTC loss from softmax probabilities (N, T, C), as the eval-mode CTC head returns them.

    ``log(probs)`` are logits whose softmax is ``probs``, so this equals the training CTC loss; use it for
    a validation loss. Returns a 0-d tensor.
    """
    return ctc_loss_per_sample(paddle.log(probs.clip(min=eps)), labels, lengths).mean()


@LOSSES.register()
class CTCLoss(paddle.nn.Layer):
    """Mean CTC loss (blank 0) of ``predicts`` (N, T, C) logits (or ``predicts["ctc"]``).

    ``batch`` is ``[image, label (N, L), length (N,), ...]``. With ``use_focal_loss`` each sample's loss is
    weighted by ``(1 - exp(-loss))**2``. Returns ``{"loss": 0-d tensor}``.
    """

    def __init__(self, use_focal_loss: bool = False, **kwargs):
        super().__init__()
        self.use_focal_loss = use_focal_loss

    def forward(self, predicts, batch: list) -> dict:
        if isinstance(predicts, dict):
            predicts = predicts["ctc"]
        elif isinstance(predicts, (list, tuple)):
            predicts = predicts[-1]
        loss = ctc_loss_per_sample(predicts, batch[1], batch[2])
        if self.use_focal_loss:
            loss = loss * (1.0 - paddle.exp(-loss)) ** 2
        return {"loss": loss.mean()}


@LOSSES.register()
class NRTRLoss(paddle.nn.Layer):
    """Cross-entropy of the NRTR (attention) branch, label-smoothed by 0.1 when ``smoothing``.

    ``predicts`` (or ``predicts["nrtr"]``) is (N, T, C) logits, one step per target token: the NRTR head
    is fed ``label_gtc[:, :T]`` (``<s>`` and the characters) and predicts ``label_gtc[:, 1:T+1]`` (the
    characters and ``</s>``), where PaddleOCR's head uses ``T = max(length) + 1``. ``batch`` is
    ``[image, label_gtc (N, L), length (N,), ...]``. Targets equal to ``ignore_index`` (padding) are left out.
    """

    def __init__(self, smoothing: bool = True, ignore_index: int = 0, **kwargs):
        super().__init__()
        self.smoothing = smoothing
        self.ignore_index = ignore_index
        self.label_smoothing = 0.1

    def forward(self, predicts, batch: list) -> dict:
        logits = predicts["nrtr"] if isinstance(predicts, dict) else predicts
        if logits.ndim != 3:
            raise ValueError(f"NRTRLoss needs logits of shape (N, T, C); got shape {list(logits.shape)}.")
        labels = _as_tensor(batch[1], "int64")
        lengths = _as_tensor(batch[2], "int64")
        steps, num_classes = logits.shape[1], logits.shape[2]
        longest = int(lengths.max())
        if steps < longest + 1 or labels.shape[1] < steps + 1:
            raise ValueError(
                f"NRTRLoss: the head predicts {steps} steps but the longest text has {longest} characters "
                f"(+1 for </s>) and label_gtc has {labels.shape[1]} columns; the head must predict "
                f"max(length) + 1 steps and max_text_length must cover <s>, the text and </s>."
            )
        target = labels[:, 1 : steps + 1].flatten()
        logits = logits.reshape([-1, num_classes])
        keep = target != self.ignore_index
        if self.smoothing:
            eps = self.label_smoothing
            one_hot = F.one_hot(target, num_classes)
            soft_target = one_hot * (1.0 - eps) + (1.0 - one_hot) * eps / (num_classes - 1)
            token_loss = -(soft_target * F.log_softmax(logits, axis=-1)).sum(axis=-1)
            loss = paddle.masked_select(token_loss, keep).mean()
        else:
            loss = F.cross_entropy(logits, target, ignore_index=self.ignore_index, reduction="mean")
        return {"loss": loss}


@LOSSES.register()
class MultiLoss(paddle.nn.Layer):
    """Sum of the losses of PP-OCRv4's two recognition branches: ``CTCLoss`` and ``NRTRLoss``.

    ``loss_config_list`` reads as in PaddleOCR: ``[{"CTCLoss": None}, {"NRTRLoss": {"smoothing": True}}]``.
    ``predicts`` is the training-mode MultiHead output ``{"ctc": (N, T, C), "nrtr": (N, T', C'), ...}``;
    ``batch`` is ``[image, label_ctc, label_gtc, length, ...]``. CTC is weighted by ``weight_1``, NRTR by
    ``weight_2``. Returns ``{"loss", "CTCLoss", "NRTRLoss"}``.
    """

    BRANCHES = {"CTCLoss": ("ctc", "weight_1"), "NRTRLoss": ("nrtr", "weight_2")}

    def __init__(self, loss_config_list: list, weight_1: float = 1.0, weight_2: float = 1.0, **kwargs):
        super().__init__()
        self.weights = {"weight_1": weight_1, "weight_2": weight_2}
        self.loss_funcs = paddle.nn.LayerDict()
        for entry in loss_config_list:
            if not isinstance(entry, dict) or len(entry) != 1:
                raise ValueError(
                    f"MultiLoss loss_config_list entries are one-key mappings like {{CTCLoss: null}}; got {entry!r}."
                )
            (name, params), = entry.items()
            if name not in self.BRANCHES:
                raise ValueError(
                    f"MultiLoss supports {sorted(self.BRANCHES)}; got {name!r} in loss_config_list."
                )
            self.loss_funcs[name] = LOSSES.build({"name": name, **(params or {})})

    def forward(self, predicts: dict, batch: list) -> dict:
        if not isinstance(predicts, dict):
            raise TypeError(
                f"MultiLoss needs the training-mode MultiHead output, a dict with 'ctc' and 'nrtr'; got "
                f"{type(predicts).__name__}. Is the model in eval mode?"
            )
        out = {}
        total = 0.0
        for name, loss_func in self.loss_funcs.items():
            key, weight = self.BRANCHES[name]
            if key not in predicts:
                raise KeyError(f"MultiLoss: {name} needs predicts[{key!r}]; the head returned {sorted(predicts)}.")
            # CTC reads [image, label_ctc, length, ...]; NRTR reads [image, label_gtc, length, ...].
            sub_batch = batch[:2] + batch[3:] if name == "CTCLoss" else batch[:1] + batch[2:]
            loss = loss_func(predicts[key], sub_batch)["loss"] * self.weights[weight]
            out[name] = loss
            total = total + loss
        out["loss"] = total
        return out
