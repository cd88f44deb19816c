"""Losses of PaddleOCR's detection distillation (PP-OCRv3 CML: a teacher, two students learning together).

They read the ``{member: output}`` dict a :class:`~ocrforge.models.distillation.DistillationModel` returns,
``output["maps"]`` being a DBHead's training maps (N, 3, H, W): shrink probability, threshold, binary.
``batch`` is the DB training batch ``[image, threshold_map, threshold_mask, shrink_map, shrink_mask]``.
Each returns ``{"loss": sum of its parts, part: value, ...}`` with PaddleOCR's part names.
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F

from ocrforge.losses.det_db_loss import DBLoss, dice_loss
from ocrforge.registry import LOSSES

# DMLLoss ``maps_name`` -> channel of the DB maps. "thrink_maps" is PaddleOCR's spelling, which configs use.
DB_MAP_CHANNELS = {"thrink_maps": 0, "shrink_maps": 0, "threshold_maps": 1, "binary_maps": 2}
TEACHER_BINARY_THRESH = 0.3


def _member(predicts: dict, name: str, key: str | None, loss_name: str):
    if not isinstance(predicts, dict) or name not in predicts:
        got = sorted(predicts) if isinstance(predicts, dict) else type(predicts).__name__
        raise KeyError(
            f"{loss_name}: no output of model {name!r}; the DistillationModel gave {got}. "
            f"Check the loss's model names against Architecture.Models."
        )
    out = predicts[name]
    if key is not None:
        out = out[key]
    elif isinstance(out, dict) and "maps" in out:
        out = out["maps"]
    return out


def _check_pairs(pairs, loss_name: str) -> list[tuple[str, str]]:
    if isinstance(pairs, (list, tuple)) and len(pairs) == 2 and all(isinstance(p, str) for p in pairs):
        pairs = [pairs]
    if not pairs or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
        raise ValueError(f"{loss_name} model_name_pairs must be a list of [student, other] pairs; got {pairs!r}")
    return [tuple(p) for p in pairs]


def _with_total(parts: dict) -> dict:
    total = paddle.add_n(list(parts.values())) if parts else paddle.zeros([])
    return {"loss": total, **parts}


def dilate_binary_map(shrink: paddle.Tensor, thresh: float = TEACHER_BINARY_THRESH) -> paddle.Tensor:
    """Binarise (N, H, W) probabilities at ``thresh`` and dilate with a 2x2 square, as ``cv2.dilate`` with a
    2x2 kernel does (out[y, x] = max of in[y-1..y, x-1..x]). No gradient flows through the result."""
    binary = (shrink.detach() > thresh).astype("float32").unsqueeze(1)
    padded = F.pad(binary, [1, 0, 1, 0], value=0.0)
    return F.max_pool2d(padded, kernel_size=2, stride=1).squeeze(1)


@LOSSES.register()
class DistillationDilaDBLoss(DBLoss):
    """A student learns the teacher's text regions: the teacher's shrink map, binarised at 0.3 and dilated
    2x2, is the target of the student's shrink map (``alpha`` x the ``main_loss_type`` loss) and binary map
    (Dice), over the label's ``shrink_mask``. Parts: ``dila_dbloss_<student>_<teacher>``."""

    def __init__(self, model_name_pairs=(), key: str | None = "maps", balance_loss: bool = True,
                 main_loss_type: str = "DiceLoss", alpha: float = 5.0, beta: float = 10.0, ohem_ratio: float = 3.0,
                 eps: float = 1e-6, name: str = "dila_dbloss", **kwargs):
        super().__init__(balance_loss=balance_loss, main_loss_type=main_loss_type, alpha=alpha, beta=beta,
                         ohem_ratio=ohem_ratio, eps=eps)
        self.model_name_pairs = _check_pairs(model_name_pairs, "DistillationDilaDBLoss")
        self.key = key
        self.name = name

    def forward(self, predicts: dict, batch: list) -> dict:
        if len(batch) < 5:
            raise ValueError(f"DistillationDilaDBLoss needs the DB training batch (5 items); got {len(batch)}")
        mask = batch[4]
        shrink_mask = (mask if isinstance(mask, paddle.Tensor) else paddle.to_tensor(mask)).astype("float32")
        parts = {}
        for student, teacher in self.model_name_pairs:
            student_maps = _member(predicts, student, self.key, "DistillationDilaDBLoss")
            teacher_maps = _member(predicts, teacher, self.key, "DistillationDilaDBLoss")
            if student_maps.shape[1] < 3:
                raise ValueError(
                    f"DistillationDilaDBLoss: {student} gave maps {list(student_maps.shape)}; a student needs the "
                    f"training-mode DBHead output (N, 3, H, W)"
                )
            target = dilate_binary_map(teacher_maps[:, 0])
            shrink = self.alpha * self.shrink_loss(student_maps[:, 0], target, shrink_mask)
            binary = dice_loss(student_maps[:, 2], target, shrink_mask, self.eps)
            parts[f"{self.name}_{student}_{teacher}"] = shrink + binary
        return _with_total(parts)


def symmetric_kl(p1: paddle.Tensor, p2: paddle.Tensor, eps: float = 1e-5) -> paddle.Tensor:
    """PaddleOCR's detection DML distance between two probability maps (N, H, W):
    ``0.5 * (p2 log((p2+e)/(p1+e)+e) + p1 log((p1+e)/(p2+e)+e))``, averaged over pixels -> (N,)."""
    loss = p2 * paddle.log((p2 + eps) / (p1 + eps) + eps) + p1 * paddle.log((p1 + eps) / (p2 + eps) + eps)
    return (0.5 * loss).mean(axis=[1, 2])


@LOSSES.register()
class DistillationDMLLoss(paddle.nn.Layer):
    """Deep mutual learning between two networks on the same map: the symmetric KL of their probabilities
    (``maps_name``: ``thrink_maps`` / ``threshold_maps`` / ``binary_maps`` of the DB maps), pixel mean,
    batch mean. Both networks get its gradient. ``act`` (softmax / sigmoid) turns logits into probabilities
    first; ``use_log`` uses the recognition form (batch-mean KL of log-probabilities both ways).

    Parts: ``dml_<maps_name>_<pair index>`` (``dml_<pair index>`` without ``maps_name``). PaddleOCR keeps the
    (N,) per-image values and lets backward sum them; that scales every loss of the batch by N alike, so the
    batch mean gives the same balance between the losses.
    """

    def __init__(self, model_name_pairs=(), act: str | None = None, use_log: bool = False, key: str | None = None,
                 maps_name=None, name: str = "dml", **kwargs):
        super().__init__()
        if act not in (None, "softmax", "sigmoid"):
            raise ValueError(f"DistillationDMLLoss act must be softmax, sigmoid or empty; got {act!r}")
        self.model_name_pairs = _check_pairs(model_name_pairs, "DistillationDMLLoss")
        self.act = act
        self.use_log = use_log
        self.key = key
        self.name = name
        names = [maps_name] if isinstance(maps_name, str) else list(maps_name or [])
        unknown = [m for m in names if m not in DB_MAP_CHANNELS]
        if unknown:
            raise ValueError(f"DistillationDMLLoss maps_name {unknown} unknown; use {sorted(DB_MAP_CHANNELS)}")
        self.maps_names = names

    def distance(self, out1: paddle.Tensor, out2: paddle.Tensor) -> paddle.Tensor:
        if self.act == "softmax":
            out1, out2 = F.softmax(out1, axis=-1) + 1e-10, F.softmax(out2, axis=-1) + 1e-10
        elif self.act == "sigmoid":
            out1, out2 = F.sigmoid(out1) + 1e-10, F.sigmoid(out2) + 1e-10
        if self.use_log:
            log1, log2 = paddle.log(out1), paddle.log(out2)

            def kl(log_p, q):
                return (q * (paddle.log(q + 1e-10) - log_p)).sum() / q.shape[0]

            return (kl(log1, out2) + kl(log2, out1)) / 2.0
        return symmetric_kl(out1, out2).mean()

    def forward(self, predicts: dict, batch: list) -> dict:
        parts = {}
        for idx, (first, second) in enumerate(self.model_name_pairs):
            out1 = _member(predicts, first, self.key, "DistillationDMLLoss")
            out2 = _member(predicts, second, self.key, "DistillationDMLLoss")
            if not self.maps_names:
                parts[f"{self.name}_{idx}"] = self.distance(out1, out2)
                continue
            for maps_name in self.maps_names:
                channel = DB_MAP_CHANNELS[maps_name]
                parts[f"{self.name}_{maps_name}_{idx}"] = self.distance(out1[:, channel], out2[:, channel])
        return _with_total(parts)


@LOSSES.register()
class DistillationDBLoss(DBLoss):
    """The plain DB loss (against the labels) for each of ``model_name_list``.
    Parts: ``db_<model>_loss_shrink_maps``, ``..._loss_threshold_maps``, ``..._loss_binary_maps``."""

    def __init__(self, model_name_list=(), key: str | None = None, balance_loss: bool = True,
                 main_loss_type: str = "DiceLoss", alpha: float = 5.0, beta: float = 10.0, ohem_ratio: float = 3.0,
                 eps: float = 1e-6, name: str = "db", **kwargs):
        super().__init__(balance_loss=balance_loss, main_loss_type=main_loss_type, alpha=alpha, beta=beta,
                         ohem_ratio=ohem_ratio, eps=eps)
        if isinstance(model_name_list, str):
            model_name_list = [model_name_list]
        if not model_name_list:
            raise ValueError("DistillationDBLoss needs model_name_list, the members trained on the labels")
        self.model_name_list = list(model_name_list)
        self.key = key
        self.name = name

    def forward(self, predicts: dict, batch: list) -> dict:
        parts = {}
        for model_name in self.model_name_list:
            maps = _member(predicts, model_name, self.key, "DistillationDBLoss")
            for part, value in super().forward({"maps": maps}, batch).items():
                if part != "loss":
                    parts[f"{self.name}_{model_name}_{part}"] = value
        return _with_total(parts)


@LOSSES.register()
class CombinedLoss(paddle.nn.Layer):
    """A weighted sum of losses: ``loss_config_list`` is a list of ``{LossName: {weight: w, ...kwargs}}``,
    each built from the LOSSES registry. Returns ``{"loss": sum of w * each loss, part: w * value, ...}``;
    the parts keep the names the losses give them (each part already multiplied by its loss's weight)."""

    def __init__(self, loss_config_list=None, **kwargs):
        super().__init__()
        if not isinstance(loss_config_list, (list, tuple)) or not loss_config_list:
            raise ValueError("CombinedLoss needs loss_config_list: a list of {LossName: {weight: ..., ...}}")
        self.names, self.weights, losses = [], [], []
        for i, entry in enumerate(loss_config_list):
            if not isinstance(entry, dict) or len(entry) != 1:
                raise ValueError(
                    f"Loss.loss_config_list[{i}] must be a mapping with one loss name; got {entry!r}"
                )
            (name, params), = entry.items()
            params = dict(params or {})
            if "weight" not in params:
                raise KeyError(f"Loss.loss_config_list[{i}] ({name}) needs a 'weight'; got keys {sorted(params)}")
            self.weights.append(float(params.pop("weight")))
            self.names.append(name)
            losses.append(LOSSES.build({"name": name, **params}))
        self.losses = paddle.nn.LayerList(losses)

    def forward(self, predicts, batch: list, **kwargs) -> dict:
        result, total = {}, None
        for name, weight, loss_fn in zip(self.names, self.weights, self.losses):
            out = loss_fn(predicts, batch, **kwargs)
            if isinstance(out, paddle.Tensor):
                out = {f"loss_{name}": out}
            weighted = {k: v * weight for k, v in out.items()}
            subtotal = weighted.pop("loss") if "loss" in weighted else paddle.add_n(list(weighted.values()))
            total = subtotal if total is None else total + subtotal
            result.update(weighted)
        return {"loss": total, **result}
