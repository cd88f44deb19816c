"""Build the PP-OCRv4 recogniser of a config and start it from the shipped PP-OCRv4 weights.

The shipped model reads 6,623 characters (``ppocr_keys_v1.txt``) + space; a config usually has another
dictionary (``ppocr/utils/en_dict.txt``). The CTC head's classes are then taken from the shipped classes of
the same characters (see :func:`ocrforge.models.dictionary.remap_ctc_rows`); everything else loads by name.
The NRTR branch is not in the inference model: it starts from its initialisation, and is reported so.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field

import numpy as np

from ocrforge.models.dictionary import SHIPPED_REC_USE_SPACE, load_dictionary, rec_out_channels, remap_ctc_rows
from ocrforge.models.pretrained import SHIPPED_KEYS, SHIPPED_REC_DIR, LoadReport, load_inference_weights

log = logging.getLogger(__name__)


@dataclass
class RecPortReport(LoadReport):
    """A :class:`LoadReport` plus the characters of the new dictionary that the shipped model does not know."""

    new_chars: list[str] = field(default_factory=list)


def rec_architecture(config: dict, chars: list[str]) -> dict:
    """A copy of ``config["Architecture"]`` with the head's class counts set from the dictionary ``chars``."""
    if "Architecture" not in config:
        raise KeyError(f"the config has no 'Architecture' section; its sections are {sorted(config)}")
    arch = copy.deepcopy(config["Architecture"])
    head = arch.get("Head") or {}
    if head.get("name") == "MultiHead":
        head["out_channels_list"] = rec_out_channels(chars)
    elif head.get("name") == "CTCHead":
        head["out_channels"] = len(chars) + 1
    return arch


def build_rec_model_from_shipped(config: dict | str | os.PathLike, infer_dir=SHIPPED_REC_DIR, logger=None):
    """Build the rec model of ``config`` (a dict or a YAML path) and load the shipped PP-OCRv4 weights.

    Uses ``Global.character_dict_path`` and ``Global.use_space_char``. Returns ``(model, report)``: the
    model in train mode, and a :class:`RecPortReport` whose ``missing`` lists every weight left at its
    initial value (the NRTR branch, by name; each is also logged) and ``new_chars`` the characters that got
    a fresh CTC class.
    """
    from ocrforge.config import load_config
    from ocrforge.models.architectures import build_model

    if not isinstance(config, dict):
        config = load_config(config)
    glob = config.get("Global") or {}
    if "character_dict_path" not in glob:
        raise KeyError("Global.character_dict_path is not set: the recogniser needs a character dictionary")
    chars = load_dictionary(glob["character_dict_path"], bool(glob.get("use_space_char", False)))
    model = build_model(rec_architecture(config, chars))

    shipped_chars = load_dictionary(SHIPPED_KEYS, SHIPPED_REC_USE_SPACE)
    state = model.state_dict()
    fc_names = [n for n in state if n.endswith("ctc_head.fc.weight") or n.endswith("ctc_head.fc.bias")]
    if len(fc_names) != 2:
        raise KeyError(f"expected one CTC head (…ctc_head.fc.weight/.bias) in the model, found {fc_names}")
    weight_name = next(n for n in fc_names if n.endswith("weight"))
    bias_name = next(n for n in fc_names if n.endswith("bias"))
    new_chars: list[str] = []

    def remap_weight(weight: np.ndarray) -> np.ndarray:
        rows = remap_ctc_rows(weight, np.zeros(weight.shape[1], weight.dtype), shipped_chars, chars)
        new_chars.extend(rows.missing)
        return rows.weight

    def remap_bias(bias: np.ndarray) -> np.ndarray:
        return remap_ctc_rows(np.zeros((1, bias.shape[0]), bias.dtype), bias, shipped_chars, chars).bias

    report = load_inference_weights(
        model, infer_dir, transforms={weight_name: remap_weight, bias_name: remap_bias}, logger=logger
    )
    if new_chars:
        (logger or log).warning(
            "%d characters of %s are not in the shipped dictionary and start untrained: %s",
            len(new_chars), glob["character_dict_path"], "".join(new_chars),
        )
    return model, RecPortReport(**vars(report), new_chars=new_chars)
