"""The training recipe: params.yaml's ``train_det`` / ``distill_det`` / ``train_rec`` sections turned into a
PaddleOCR-style training config (a base YAML of configs/ with the values the params tune), and the user's own
``overrides`` checked and applied on top. Nothing here trains; :func:`ocrforge.training.train` runs the result.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

from ocrforge.engine.trainer import GLOBAL_KEYS
from ocrforge.params import validate_section


def set_transform_arg(config: dict, mode: str, op_name: str, key: str, value: Any) -> None:
    """Set ``key`` of transform ``op_name`` in ``config[mode].dataset.transforms``; error if the op is absent."""
    for op in config[mode]["dataset"]["transforms"]:
        if op_name in op:
            op[op_name] = {**(op[op_name] or {}), key: value}
            return
    raise KeyError(f"{mode}.dataset.transforms has no {op_name}; the param that sets {key} needs it")


def set_box_jitter(config: dict, jitter: float) -> None:
    """Train the recogniser on boxes moved by up to ``jitter`` times their thickness (``RecBoxJitter``, right
    after ``DecodeImage``, so that the extra samples of ``RecConAug`` get it too); 0: on the labelled boxes
    exactly. The op's other args stay as the config has them."""
    dataset = config["Train"]["dataset"]
    ops = dataset["transforms"]
    found = [op for op in ops if "RecBoxJitter" in op]
    rest = [op for op in ops if "RecBoxJitter" not in op]
    if jitter > 0:
        if not rest or "DecodeImage" not in rest[0]:
            raise KeyError("train_rec.box_jitter needs Train.dataset.transforms to start with DecodeImage")
        args = {**((found[0]["RecBoxJitter"] or {}) if found else {"prob": 0.5}), "jitter": jitter}
        rest.insert(1, {"RecBoxJitter": args})
        dataset["ext_op_transform_idx"] = max(2, int(dataset.get("ext_op_transform_idx", 1)))
    elif found:
        dataset["ext_op_transform_idx"] = max(1, int(dataset.get("ext_op_transform_idx", 2)) - 1)
    dataset["transforms"] = rest


TRAIN_CROPS = {"east": "EastRandomCropData", "native": "NativeScaleCrop"}


def set_train_crop(config: dict, crop: str, size: int, text_prob: float | None = None) -> None:
    """Make the det training crop ``crop`` (``east``: PaddleOCR's EastRandomCropData, which rescales a random
    region to the window; ``native``: NativeScaleCrop, a window at the image's own scale) of ``size`` px;
    ``text_prob`` (native only): the share of windows placed to hold a whole text box."""
    if crop not in TRAIN_CROPS:
        raise ValueError(f"train_det.crop must be one of {sorted(TRAIN_CROPS)}; got {crop!r}")
    transforms = config["Train"]["dataset"]["transforms"]
    at = [i for i, op in enumerate(transforms) if any(name in op for name in TRAIN_CROPS.values())]
    if not at:
        raise KeyError(f"Train.dataset.transforms has no crop ({', '.join(TRAIN_CROPS.values())}); "
                       f"train_det.crop and crop_size need one")
    (name, args), = transforms[at[0]].items()
    wanted = TRAIN_CROPS[crop]
    if name != wanted:
        args = {}
    args = {**(args or {}), "size": [size, size]}
    if text_prob is not None and crop == "native":
        args["text_prob"] = float(text_prob)
    transforms[at[0]] = {wanted: args}


def set_resize_range(config: dict, scale_range: Sequence[float]) -> None:
    """Set the ``[low, high]`` scale factors of IaaAugment's Resize in the det training transforms."""
    wrong = ValueError(f"train_det.scale_range must be [low, high] with 0 < low <= high (or [] for the config's "
                       f"range); got {scale_range!r}")
    try:
        low, high = (float(v) for v in scale_range)
    except (TypeError, ValueError):
        raise wrong from None
    if not 0 < low <= high:
        raise wrong
    for op in config["Train"]["dataset"]["transforms"]:
        augmenters = (op.get("IaaAugment") or {}).get("augmenter_args") or []
        for augmenter in augmenters:
            if augmenter.get("type") == "Resize":
                augmenter["args"] = {**(augmenter.get("args") or {}), "size": [low, high]}
                return
    raise KeyError("Train.dataset.transforms has no IaaAugment Resize; train_det.scale_range needs one")


def _common_overrides(p: dict) -> dict:
    out = {
        "Global.epoch_num": int(p["epochs"]),
        "Global.seed": int(p["seed"]),
        "Global.device": p.get("device", "auto"),
        "Global.pretrained_model": p.get("pretrained_model") or "",
        "Global.freeze": list(p.get("freeze") or []),
        "Global.freeze_bn": bool(p.get("freeze_bn", False)),
        "Global.eval_batch_epoch": int(p.get("eval_every", 1)),
        "Global.early_stopping_patience": int(p.get("early_stopping_patience", 0)),
        "Global.early_stopping_min_delta": float(p.get("early_stopping_min_delta", 0.0)),
        "Global.max_minutes": float(p.get("max_minutes") or 0),
        "Global.save_every_steps": int(p.get("save_every_steps", 0)),
        "Optimizer.lr.learning_rate": float(p["lr"]),
        "Optimizer.lr.warmup_epoch": float(p.get("warmup_epoch", 0)),
        "Train.loader.batch_size_per_card": int(p["batch_size"]),
        "Train.loader.num_workers": int(p.get("num_workers", 0)),
        "Eval.loader.num_workers": int(p.get("num_workers", 0)),
    }
    return out


# Global keys a training config may set although its YAML file does not list them: the engine's (see
# ocrforge.engine.trainer) and those train() reads.
NEW_GLOBAL_KEYS = frozenset(GLOBAL_KEYS) | {"device", "pretrained_model", "freeze", "freeze_bn", "eval_before_training",
                                            "teacher_model", "character_dict_path", "use_space_char",
                                            "max_text_length"}


def apply_user_overrides(config: dict, overrides: dict | None, section_name: str) -> dict:
    """``config`` with params.yaml's ``<section>.overrides`` applied (they win over every other value).

    Each dotted key must name a key the config has (list items by index); only the documented Global keys
    (:data:`NEW_GLOBAL_KEYS`) may be added. Otherwise a misspelt key would be ignored or make a new section."""
    from ocrforge.config import ConfigError, merge_overrides

    overrides = dict(overrides or {})
    new_global = {k: v for k, v in overrides.items()
                  if isinstance(k, str) and k.startswith("Global.") and k.count(".") == 1
                  and k.split(".", 1)[1] in NEW_GLOBAL_KEYS}
    existing = {k: v for k, v in overrides.items() if k not in new_global}
    for key in existing:
        if isinstance(key, str) and key.startswith("Global.") and key.count(".") == 1 \
                and key[7:] not in (config.get("Global") or {}):
            import difflib

            known = sorted(set(config.get("Global") or {}) | NEW_GLOBAL_KEYS)
            close = difflib.get_close_matches(key[7:], known, n=1, cutoff=0.6)
            raise ConfigError(f"params.yaml {section_name}.overrides: override {key!r}: no key {key[7:]!r} in "
                              f"Global{f'; did you mean {close[0]!r}?' if close else ''} (keys that may be set: "
                              f"{', '.join(known)}). Fix the spelling.")
    try:
        config = merge_overrides(config, existing, allow_new_keys=False)
    except ConfigError as exc:
        raise ConfigError(f"params.yaml {section_name}.overrides: {exc}".replace(
            "Fix the spelling, or pass allow_new_keys=True to add it.",
            "Fix the spelling (a key the config lacks may be added only in Global, and only one the engine "
            "documents: ocrforge.recipe.NEW_GLOBAL_KEYS).")) from None
    return merge_overrides(config, new_global, allow_new_keys=True)


def det_config_from_params(base: dict, p: dict, data_dir: str, out_dir: str, live_dir: str,
                           section_name: str = "train_det") -> dict:
    """The det config: ``base`` (configs/det/...) with the values params.yaml's ``train_det`` (or
    ``section_name``: ``distill_det``) tunes; ``p`` is checked against that section's schema first."""
    from ocrforge.config import merge_overrides

    validate_section(section_name, p)
    config = copy.deepcopy(base)
    set_train_crop(config, p.get("crop", "east"), int(p["crop_size"]), p.get("text_crop_prob"))
    if p.get("scale_range"):
        set_resize_range(config, p["scale_range"])
    set_transform_arg(config, "Eval", "DetResizeForTest", "limit_side_len", int(p.get("eval_side_len", 960)))
    overrides = _common_overrides(p)
    overrides.update({
        "Global.save_model_dir": out_dir,
        "Global.dvclive_dir": live_dir,
        "Train.dataset.data_dir": data_dir,
        "Train.dataset.label_file_list": [f"{data_dir}/det/train.txt"],
        "Eval.dataset.data_dir": data_dir,
        "Eval.dataset.label_file_list": [f"{data_dir}/det/val.txt"],
        "PostProcess.thresh": float(p["thresh"]),
        "PostProcess.box_thresh": float(p["box_thresh"]),
        "PostProcess.unclip_ratio": float(p["unclip_ratio"]),
    })
    config = merge_overrides(config, overrides, allow_new_keys=True)
    validate_over_grid(config, p.get("postprocess_search") or {})
    return apply_user_overrides(config, p.get("overrides"), section_name)


def validate_over_grid(config: dict, grid: dict) -> None:
    """With ``grid["every_epoch"]`` and a grid to search: each epoch's validation scores every (unclip_ratio,
    box_thresh) pair of ``grid`` and reports the best (DBPostProcessGrid + DetGridMetric), as the post-process
    search after training will deploy it, so the epoch kept is the one that reads best at its own pair. A
    config with another post-process or metric (a distillation) is left as it is."""
    unclips, threshes = list(grid.get("unclip_ratio") or []), list(grid.get("box_thresh") or [])
    if not grid.get("every_epoch") or not (unclips or threshes):
        return
    if (config["PostProcess"].get("name"), config["Metric"].get("name")) != ("DBPostProcess", "DetMetric"):
        return
    config["PostProcess"].update(name="DBPostProcessGrid", unclip_ratios=unclips, box_threshes=threshes)
    config["Metric"]["name"] = "DetGridMetric"


def rec_config_from_params(base: dict, p: dict, dictionary: dict, data_dir: str, out_dir: str, live_dir: str) -> dict:
    """The rec config: ``base`` (configs/rec/...) with the values of params.yaml's ``train_rec`` and
    ``dictionary`` sections (the dictionary is shared with the split stage's check)."""
    from ocrforge.config import merge_overrides

    validate_section("train_rec", p)
    validate_section("dictionary", dictionary)
    config = copy.deepcopy(base)
    channels, height, width = (int(v) for v in p["image_shape"])
    eval_batch = int(p.get("eval_batch_size", 6))
    if (config["Eval"].get("sampler") or {}).get("reading_width"):
        config["Eval"]["sampler"].update(scales=[[width, height]], first_bs=eval_batch)
    else:
        set_transform_arg(config, "Eval", "RecResizeImg", "image_shape", [channels, height, width])
    if "reading_width" in p:
        config["Train"]["sampler"]["reading_width"] = bool(p["reading_width"])
    max_len = int(dictionary["max_text_length"])
    for op in config["Train"]["dataset"]["transforms"]:
        if "RecConAug" in op:
            op["RecConAug"] = {**(op["RecConAug"] or {}), "image_shape": [height, width, channels], "max_text_length": max_len}
    train_list = f"{data_dir}/rec/train.txt"
    if "box_jitter" in p:
        set_box_jitter(config, float(p["box_jitter"] or 0))
    if any("RecBoxJitter" in op for op in config["Train"]["dataset"]["transforms"]):
        train_list = f"{data_dir}/rec/train_context.txt"  # the crops with image around them that it cuts
    overrides = _common_overrides(p)
    overrides.update({
        "Global.save_model_dir": out_dir,
        "Global.dvclive_dir": live_dir,
        "Global.character_dict_path": dictionary["character_dict_path"],
        "Global.use_space_char": bool(dictionary["use_space_char"]),
        "Global.max_text_length": max_len,
        "Architecture.Head.head_list.1.NRTRHead.max_text_length": max_len,
        "Train.dataset.data_dir": data_dir,
        "Train.dataset.label_file_list": [train_list],
        "Train.sampler.scales": [[width, int(h)] for h in p["heights"]],
        "Train.sampler.first_bs": int(p["batch_size"]),
        "Eval.dataset.data_dir": data_dir,
        "Eval.dataset.label_file_list": [f"{data_dir}/rec/val.txt"],
        "Eval.loader.batch_size_per_card": eval_batch,
    })
    config = merge_overrides(config, overrides, allow_new_keys=True)
    return apply_user_overrides(config, p.get("overrides"), "train_rec")
