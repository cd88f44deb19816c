"""Training losses, registered in ``ocrforge.registry.LOSSES`` under PaddleOCR's names."""

from ocrforge.losses.det_db_loss import DBLoss, balanced_bce_loss, dice_loss, masked_l1_loss
from ocrforge.losses.distillation_losses import (
    CombinedLoss,
    DistillationDBLoss,
    DistillationDilaDBLoss,
    DistillationDMLLoss,
    dilate_binary_map,
    symmetric_kl,
)
from ocrforge.losses.rec_losses import CTCLoss, MultiLoss, NRTRLoss, ctc_loss_from_probs, ctc_loss_per_sample

__all__ = [
    "CTCLoss",
    "CombinedLoss",
    "DBLoss",
    "DistillationDBLoss",
    "DistillationDMLLoss",
    "DistillationDilaDBLoss",
    "MultiLoss",
    "NRTRLoss",
    "balanced_bce_loss",
    "ctc_loss_from_probs",
    "ctc_loss_per_sample",
    "dice_loss",
    "dilate_binary_map",
    "masked_l1_loss",
    "symmetric_kl",
]
