"""Backbones: image (N, 3, H, W) to feature maps. Importing this package registers them."""

from ocrforge.models.backbones.pplcnetv3 import PPLCNetV3

__all__ = ["PPLCNetV3"]
