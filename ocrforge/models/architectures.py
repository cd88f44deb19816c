"""Model containers built from a PaddleOCR ``Architecture`` config section."""

from __future__ import annotations

import copy
import inspect

import paddle.nn as nn

from ocrforge.registry import BACKBONES, HEADS, MODELS, NECKS


def _accepts(layer: nn.Layer, arg: str) -> bool:
    params = inspect.signature(layer.forward).parameters
    return arg in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


@MODELS.register()
class BaseModel(nn.Layer):
    """Backbone, optional neck, head, chained as in PaddleOCR; each built by name from the registries.

    ``config`` is the ``Architecture`` section: ``model_type`` (det/rec), ``algorithm``, ``Backbone``,
    optional ``Neck``, ``Head``; each part gets ``in_channels`` = the previous part's ``out_channels``.
    ``forward(x, data=None)``: ``x`` (N, 3, H, W) float32; ``data`` is the rest of the batch (labels),
    passed to the head as ``targets`` when the head takes it. Returns the head's output (det: ``{"maps": ...}``).
    """

    def __init__(self, config: dict):
        super().__init__()
        config = copy.deepcopy(dict(config))
        self.model_type = config.get("model_type")
        self.algorithm = config.get("algorithm")
        if config.get("Transform"):
            raise ValueError(
                f"Architecture.Transform {config['Transform'].get('name')!r} is not supported by ocrforge; "
                f"remove the Transform section (PP-OCRv4 uses none)."
            )
        for part in ("Backbone", "Head"):
            if not config.get(part):
                raise KeyError(f"the Architecture config needs a {part!r} section with a 'name'; got {sorted(config)}")
        backbone_cfg = dict(config["Backbone"])
        backbone_cfg.setdefault("in_channels", config.get("in_channels", 3))
        self.backbone = BACKBONES.build(backbone_cfg)
        channels = self.backbone.out_channels
        self.use_neck = bool(config.get("Neck"))
        if self.use_neck:
            self.neck = NECKS.build(config["Neck"], in_channels=channels)
            channels = self.neck.out_channels
        self.head = HEADS.build(config["Head"], in_channels=channels)
        self._head_takes_targets = _accepts(self.head, "targets")

    def forward(self, x, data=None):
        x = self.backbone(x)
        if self.use_neck:
            x = self.neck(x)
        if self._head_takes_targets:
            return self.head(x, targets=data)
        return self.head(x)


def build_model(arch_cfg: dict) -> nn.Layer:
    """Build the network an ``Architecture`` section describes; ``name`` picks the container (default BaseModel)."""
    return MODELS.get(arch_cfg.get("name", "BaseModel"))(arch_cfg)


from ocrforge.models import distillation  # noqa: E402,F401 - registers DistillationModel in MODELS
