"""DB (Differentiable Binarization) loss, the loss PaddleOCR trains PP-OCRv4's text detector with."""

from __future__ import annotations

import paddle
import paddle.nn.functional as F

from ocrforge.registry import LOSSES

MAIN_LOSS_TYPES = ("DiceLoss", "BCELoss")


def dice_loss(pred: paddle.Tensor, gt: paddle.Tensor, mask: paddle.Tensor, eps: float = 1e-6) -> paddle.Tensor:
    """1 - 2|P∩G| / (|P| + |G|) over the pixels where ``mask`` is 1; all (N, H, W), returns a 0-d tensor."""
    intersection = (pred * gt * mask).sum()
    union = (pred * mask).sum() + (gt * mask).sum() + eps
    return 1.0 - 2.0 * intersection / union


def masked_l1_loss(pred: paddle.Tensor, gt: paddle.Tensor, mask: paddle.Tensor, eps: float = 1e-6) -> paddle.Tensor:
    """Mean absolute error over the pixels where ``mask`` is 1; all (N, H, W), returns a 0-d tensor."""
    return ((pred - gt).abs() * mask).sum() / (mask.sum() + eps)


def balanced_bce_loss(
    pred: paddle.Tensor, gt: paddle.Tensor, mask: paddle.Tensor, negative_ratio: float = 3.0, eps: float = 1e-6
) -> paddle.Tensor:
    """Binary cross-entropy over every positive pixel and the hardest negatives (OHEM).

    At most ``negative_ratio`` negatives per positive are kept, those with the largest loss; pixels where
    ``mask`` is 0 (ignored text, padding) count for nothing. ``pred`` holds probabilities; all (N, H, W).
    """
    positive = gt * mask
    negative = (1.0 - gt) * mask
    positive_count = int(positive.sum())
    negative_count = int(min(float(negative.sum()), positive_count * negative_ratio))
    loss = F.binary_cross_entropy(pred, gt, reduction="none")
    positive_loss = (positive * loss).sum()
    if negative_count == 0:
        return positive_loss / (positive_count + eps)
    hardest_negatives = paddle.topk((negative * loss).flatten(), k=negative_count)[0]
    return (positive_loss + hardest_negatives.sum()) / (positive_count + negative_count + eps)


@LOSSES.register()
class DBLoss(paddle.nn.Layer):
    """DB loss: ``alpha * shrink + beta * threshold + binary``.

    ``predicts["maps"]`` is (N, 3, H, W): shrink probability, threshold, approximate binary map.
    ``batch`` is ``[image, threshold_map, threshold_mask, shrink_map, shrink_mask]`` as PaddleOCR's
    ``MakeBorderMap`` / ``MakeShrinkMap`` + ``KeepKeys`` produce it, maps (N, H, W).

    ``main_loss_type`` is the loss on the shrink map, as in PaddleOCR's ``BalanceLoss``:
    ``"BCELoss"`` is the DB paper's balanced BCE with hard negatives at ``ohem_ratio`` negatives per
    positive; ``"DiceLoss"`` (PaddleOCR's PP-OCRv4 setting, and the default) is the Dice loss on the
    shrink map. The threshold map gets a masked L1 loss and the binary map a Dice loss. Pixels outside
    ``shrink_mask`` (text tagged ``###`` or too small; MakeShrinkMap zeroes them) count for nothing.

    Returns ``{"loss", "loss_shrink_maps", "loss_threshold_maps", "loss_binary_maps"}``, 0-d tensors; as
    in PaddleOCR the shrink and threshold parts are reported already multiplied by alpha and beta.
    """

    def __init__(
        self,
        balance_loss: bool = True,
        main_loss_type: str = "DiceLoss",
        alpha: float = 5.0,
        beta: float = 10.0,
        ohem_ratio: float = 3.0,
        eps: float = 1e-6,
        **kwargs,
    ):
        super().__init__()
        if main_loss_type not in MAIN_LOSS_TYPES:
            raise ValueError(
                f"DBLoss main_loss_type {main_loss_type!r} is not supported; use one of {MAIN_LOSS_TYPES} "
                f"in the Loss section of the config."
            )
        self.balance_loss = balance_loss
        self.main_loss_type = main_loss_type
        self.alpha = alpha
        self.beta = beta
        self.ohem_ratio = ohem_ratio
        self.eps = eps

    def shrink_loss(self, pred: paddle.Tensor, gt: paddle.Tensor, mask: paddle.Tensor) -> paddle.Tensor:
        """The loss on the shrink probability map, as ``main_loss_type`` and ``balance_loss`` choose."""
        if self.main_loss_type == "DiceLoss":
            return dice_loss(pred, gt, mask, self.eps)
        if self.balance_loss:
            return balanced_bce_loss(pred, gt, mask, self.ohem_ratio, self.eps)
        loss = F.binary_cross_entropy(pred, gt, reduction="none")
        return (loss * mask).sum() / (mask.sum() + self.eps)

    def forward(self, predicts: dict, batch: list) -> dict:
        maps = predicts["maps"] if isinstance(predicts, dict) else predicts
        if maps.ndim != 4 or maps.shape[1] < 3:
            raise ValueError(
                f"DBLoss needs predicts['maps'] of shape (N, 3, H, W) (shrink, threshold, binary) from a "
                f"DBHead in training mode; got shape {list(maps.shape)}."
            )
        if len(batch) < 5:
            raise ValueError(
                f"DBLoss needs batch [image, threshold_map, threshold_mask, shrink_map, shrink_mask]; got "
                f"{len(batch)} items. Check KeepKeys in the Train transforms."
            )
        threshold_map, threshold_mask, shrink_map, shrink_mask = (
            paddle.to_tensor(b, dtype="float32") if not isinstance(b, paddle.Tensor) else b.astype("float32")
            for b in batch[1:5]
        )
        if list(shrink_map.shape) != [maps.shape[0], maps.shape[2], maps.shape[3]]:
            raise ValueError(
                f"DBLoss: predicted maps are {list(maps.shape)} but the shrink_map label is "
                f"{list(shrink_map.shape)}; the head must output maps at the input image size."
            )
        shrink_pred, threshold_pred, binary_pred = maps[:, 0], maps[:, 1], maps[:, 2]

        loss_shrink = self.alpha * self.shrink_loss(shrink_pred, shrink_map, shrink_mask)
        loss_threshold = self.beta * masked_l1_loss(threshold_pred, threshold_map, threshold_mask, self.eps)
        loss_binary = dice_loss(binary_pred, shrink_map, shrink_mask, self.eps)
        return {
            "loss": loss_shrink + loss_threshold + loss_binary,
            "loss_shrink_maps": loss_shrink,
            "loss_threshold_maps": loss_threshold,
            "loss_binary_maps": loss_binary,
        }
