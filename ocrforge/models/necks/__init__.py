"""Necks: backbone features to what a head reads. Importing this package registers them."""

from ocrforge.models.necks import svtr  # noqa: F401 - registers the SVTR neck
from ocrforge.models.necks.lkpan import LKPAN
from ocrforge.models.necks.rsefpn import RSEFPN

__all__ = ["LKPAN", "RSEFPN"]
