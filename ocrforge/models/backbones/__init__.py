"""Backbones: image (N, 3, H, W) to feature maps. Importing this package registers them."""

from ocrforge.models.backbones.mobilenetv3 import MobileNetV3
from ocrforge.models.backbones.pplcnetv3 import PPLCNetV3
from ocrforge.models.backbones.resnet_vd import ResNet_vd

__all__ = ["MobileNetV3", "PPLCNetV3", "ResNet_vd"]
