"""Heads: features to the maps or sequences a loss and a post-processor read. Importing registers them."""

from ocrforge.models.heads import ctc_head, multi_head, nrtr_head  # noqa: F401 - register CTC, NRTR, MultiHead
from ocrforge.models.heads.db_head import DBHead

__all__ = ["DBHead"]
