"""The training loop shared by the detector and the recogniser.

Contracts with the other parts (all PaddleOCR's):

* ``model(images, data=batch[1:])`` in training and ``model(images)`` in evaluation, ``images = batch[0]``
  of shape ``(N, C, H, W)``; both return what the loss and the post-process expect (dicts).
* ``loss(preds, batch) -> {"loss": total, part: value, ...}`` (scalars).
* ``post_process(preds, batch_numpy[1])`` then ``metric(post_result, batch_numpy)``;
  ``metric.get_metric()`` returns a dict and resets; ``metric.main_indicator`` names the key that decides
  the best checkpoint and early stopping (higher is better).
* The train loader is an iterable of batches (a ``paddle.io.DataLoader``) or a callable ``epoch -> iterable``.
  Before each epoch the trainer calls ``set_epoch(epoch, start_step=n)`` on the loader, else on its
  ``batch_sampler``, ``n`` being the batches of a resumed epoch already trained on (0 otherwise); a hook
  without ``start_step`` gets ``set_epoch(epoch)`` and the trainer draws and drops the ``n`` batches.
  ``batches_per_epoch`` (else ``len()`` before any skip) sizes the lr schedule and the progress bar.
  See :mod:`ocrforge.seeding` for why this makes a resumed run exact.
* Under data parallelism, a metric that can be merged across processes exposes ``accumulated() -> dict``
  (numbers are summed, lists concatenated over ranks) and ``set_accumulated(dict)``; the trainer merges
  before ``get_metric()``. A metric without them reports rank 0's shard only, with a warning.

Keys read from ``Global`` (PaddleOCR's where PaddleOCR has one):

==========================  =========  =======================================================================
key                         default    meaning
==========================  =========  =======================================================================
epoch_num                   required   epochs to train at most (a cap: the stopping rules may end sooner)
save_model_dir              required   checkpoints ``latest`` / ``best_accuracy`` and ``train_summary.json``
seed                        1024       seed of the generators (the data order's seed is the loader's)
eval_batch_epoch            1          evaluate every N epochs (and after the last); 0: never
save_every_steps            0          also write ``latest`` every N steps inside an epoch; 0: at epoch ends
resume                      true       continue from ``<save_model_dir>/latest`` when it exists
checkpoints                 none       explicit checkpoint prefix to resume from (``out/latest``)
early_stopping_patience     0          stop after N evaluations without improvement; 0: off
early_stopping_min_delta    0.0        an improvement must exceed this
early_stopping_ceiling      1.0        with patience on, stop once the main metric reaches this; null: never
max_minutes                 0          stop between two steps once the run has taken this long; 0: no cap
cal_metric_during_train     false      post-process training outputs and report a train metric
use_amp                     false      mixed precision (GPU only; ignored with a warning on CPU)
amp_level / scale_loss      O1 / 1.0   ``paddle.amp.auto_cast`` level; initial loss scale
use_dynamic_loss_scaling    true       GradScaler's dynamic scaling
amp_custom_black_list       []         ops kept in float32
use_dvclive                 true       log epoch metrics with dvclive
dvclive_dir                 <save_model_dir>/dvclive
progress_bar                true       tqdm bar per epoch (rank 0 only)
==========================  =========  =======================================================================
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Iterable

import numpy as np

import ocrforge  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
import paddle
import paddle.distributed as dist

from ocrforge.config import config_hash
from ocrforge.engine.callbacks import EarlyStopping, WallTimeLimit
from ocrforge.engine.loggers import DvcLiveLogger
from ocrforge.engine.checkpoint import (
    checkpoint_exists,
    checkpoint_paths,
    load_checkpoint,
    recover_checkpoints,
    save_checkpoint,
    unwrap,
)
from ocrforge.engine.optim import build_optimizer
from ocrforge.seeding import get_rng_state, seed_everything, set_rng_state

logger = logging.getLogger("ocrforge.engine")

# The Global keys of the table above: a config may set them even where its YAML file does not list them.
GLOBAL_KEYS = ("epoch_num", "save_model_dir", "seed", "eval_batch_epoch", "save_every_steps", "resume", "checkpoints",
               "early_stopping_patience", "early_stopping_min_delta", "early_stopping_ceiling", "max_minutes",
               "cal_metric_during_train", "use_amp",
               "amp_level", "scale_loss", "use_dynamic_loss_scaling", "amp_custom_black_list", "use_dvclive",
               "dvclive_dir", "dvclive_dvcyaml", "progress_bar")

# PaddleOCR's tools/train.py reads these Global keys and this engine does not: what it uses instead.
PADDLEOCR_ONLY_KEYS = {
    "eval_batch_step": "Global.eval_batch_epoch (params.yaml: eval_every), epochs between validations",
    "print_batch_step": "the progress bar and the per-epoch log line",
    "log_smooth_window": "the progress bar and the per-epoch log line",
    "save_epoch_step": "Global.save_every_steps (params.yaml: save_every_steps), plus a checkpoint each epoch end",
}

LATEST = "latest"
BEST = "best_accuracy"


def ignored_global_keys(global_config: dict) -> list[str]:
    """One sentence per key of ``global_config`` that PaddleOCR's trainer honours and this engine ignores."""
    return [f"Global.{key} is PaddleOCR's and is ignored here; ocrforge uses {instead}"
            for key, instead in PADDLEOCR_ONLY_KEYS.items() if key in (global_config or {})]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stopped without writing a checkpoint."""


@dataclass
class TrainState:
    """Where training stands; saved in ``<name>.states.json`` and restored on resume."""

    epoch: int = 0  # the epoch in progress (0-based); equal to epoch_num when done
    step_in_epoch: int = 0  # batches of ``epoch`` already trained on
    global_step: int = 0
    best_metric: float | None = None
    best_epoch: int | None = None  # 1-based, as logged
    history: list = field(default_factory=list)  # one record per finished epoch
    epoch_sums: dict = field(default_factory=dict)  # running sums of loss parts in the current epoch
    epoch_samples: int = 0
    epoch_wait_s: float = 0.0
    epoch_busy_s: float = 0.0
    total_samples: int = 0
    total_wait_s: float = 0.0
    total_busy_s: float = 0.0
    elapsed_s: float = 0.0  # wall time of the run up to this checkpoint, over every process that trained it
    stopped_reason: str | None = None  # why a stopping rule ended the run (None: running, or the epoch cap)
    stopped_by: str | None = None  # the ``name`` of the callback that stopped it


def _to_numpy(x: Any) -> Any:
    return x.numpy() if isinstance(x, paddle.Tensor) else x


def _scalar(x: Any) -> float:
    return float(x.item()) if isinstance(x, paddle.Tensor) else float(x)


def _find_hook(loader: Any, name: str) -> Callable | None:
    for obj in (loader, getattr(loader, "batch_sampler", None)):
        if obj is not None and callable(getattr(obj, name, None)):
            return getattr(obj, name)
    return None


def _json_plain(obj: Any) -> Any:
    """Numbers, strings, lists and dicts only (numpy and paddle scalars and arrays converted), for states.json."""
    if isinstance(obj, dict):
        return {str(k): _json_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_plain(v) for v in obj]
    if isinstance(obj, paddle.Tensor):
        obj = obj.numpy()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _merge_accumulated(parts: list[dict]) -> dict:
    merged: dict = {}
    for part in parts:
        for k, v in part.items():
            if isinstance(v, (list, tuple)):
                merged.setdefault(k, []).extend(v)
            else:
                merged[k] = merged.get(k, 0) + v
    return merged


class Trainer:
    """Runs epochs of forward, loss, backward and optimizer steps, with evaluation, checkpoints and logs.

    ``optimizer``/``lr_scheduler`` default to ``build_optimizer(config["Optimizer"], epoch_num,
    len(train_loader), model.parameters())``. ``val_loss(preds, batch) -> number | dict`` adds a validation
    loss computed on evaluation outputs. ``on_eval`` callbacks get ``(epoch, history)`` after each
    evaluation (``epoch`` 1-based, ``history`` the per-epoch records) and ``on_step`` callbacks get
    ``(trainer, logs)`` after each optimizer step; either may return a string to stop training with that
    reason (see :mod:`ocrforge.engine.callbacks`). A stop between steps ends the epoch there: it is
    recorded and evaluated as the last one. ``early_stopping_patience`` and ``max_minutes`` add the
    callbacks of that module ahead of the given ones. ``loggers`` receive each epoch's record
    (:mod:`ocrforge.engine.loggers`); ``use_dvclive`` adds :class:`~ocrforge.engine.loggers.DvcLiveLogger`.
    """

    def __init__(self, config: dict, model: paddle.nn.Layer, loss: Callable, train_loader: Any, *,
                 eval_loader: Iterable | None = None, post_process: Callable | None = None,
                 metric: Any = None, optimizer: paddle.optimizer.Optimizer | None = None,
                 lr_scheduler: paddle.optimizer.lr.LRScheduler | None = None,
                 val_loss: Callable | None = None, on_eval: Iterable[Callable] = (),
                 on_step: Iterable[Callable] = (), loggers: Iterable[Any] = ()):
        if "Global" not in config:
            raise KeyError("the config has no 'Global' section; the trainer reads epoch_num and "
                           "save_model_dir from it")
        g = config["Global"]
        for key in ("epoch_num", "save_model_dir"):
            if g.get(key) is None:
                raise KeyError(f"Global.{key} is required by the trainer; add it to the config")
        self.config = config
        self.g = g
        self.epoch_num = int(g["epoch_num"])
        self.output_dir = str(g["save_model_dir"])
        self.seed = int(g.get("seed", 1024))
        self.eval_every = int(g.get("eval_batch_epoch", 1) or 0)
        self.save_every_steps = int(g.get("save_every_steps", 0) or 0)
        self.cal_train_metric = bool(g.get("cal_metric_during_train", False))
        self.progress = bool(g.get("progress_bar", True))

        self.world_size = dist.get_world_size()
        self.rank = dist.get_rank()
        self.is_main = self.rank == 0
        if self.world_size > 1:
            if not dist.is_initialized():
                dist.init_parallel_env()
            if not isinstance(model, paddle.DataParallel):
                model = paddle.DataParallel(model)

        self.model = model
        self.loss = loss
        self.train_loader = train_loader
        self.eval_loader = eval_loader
        self.post_process = post_process
        self.metric = metric
        self.val_loss = val_loss
        self.on_eval = self._stopping_rules_on_eval() + list(on_eval)
        self.on_step = self._stopping_rules_on_step() + list(on_step)
        # where epoch records go (ocrforge.engine.loggers): rank 0 only; Global.use_dvclive adds dvclive's
        self.loggers = (self._configured_loggers() + list(loggers)) if self.is_main else []
        if self.is_main:
            for sentence in ignored_global_keys(self.g):
                logger.warning("%s", sentence)

        if optimizer is None:
            steps = self._steps_per_epoch(train_loader)
            if steps is None:
                raise ValueError("the train loader has no len(); build the optimizer yourself with "
                                 "build_optimizer(cfg, epochs, step_each_epoch, params) and pass it in")
            optimizer, lr_scheduler = build_optimizer(config["Optimizer"], self.epoch_num, steps,
                                                      unwrap(model).parameters())
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler

        self.use_amp = bool(g.get("use_amp", False))
        if self.use_amp and not paddle.device.get_device().startswith("gpu"):
            logger.warning("Global.use_amp is set but training runs on %s; mixed precision is off",
                           paddle.device.get_device())
            self.use_amp = False
        self.amp_level = str(g.get("amp_level", "O1"))
        self.amp_black_list = list(g.get("amp_custom_black_list", []) or [])
        self.scaler = None
        if self.use_amp:
            self.scaler = paddle.amp.GradScaler(init_loss_scaling=float(g.get("scale_loss", 1.0)),
                                                use_dynamic_loss_scaling=bool(g.get("use_dynamic_loss_scaling",
                                                                                    True)))
            if self.amp_level == "O2":
                self.model, self.optimizer = paddle.amp.decorate(models=self.model, optimizers=self.optimizer,
                                                                 level="O2", master_weight=True)

        self.state = TrainState()
        self._elapsed_before = 0.0
        self.resumed_from: str | None = None
        self._warned = set()

    # ------------------------------------------------------------------ stopping rules
    def _stopping_rules_on_eval(self) -> list[Callable]:
        patience = int(self.g.get("early_stopping_patience", 0) or 0)
        if not patience:
            return []
        key = self._main_indicator()
        if key is None:
            logger.warning("Global.early_stopping_patience=%d is ignored: the metric has no main_indicator to "
                           "watch", patience)
            return []
        ceiling = self.g.get("early_stopping_ceiling", 1.0)
        return [EarlyStopping(key, patience, float(self.g.get("early_stopping_min_delta", 0.0) or 0.0),
                              None if ceiling is None else float(ceiling))]

    def _stopping_rules_on_step(self) -> list[Callable]:
        minutes = float(self.g.get("max_minutes", 0) or 0)
        return [WallTimeLimit(minutes)] if minutes > 0 else []

    def _ask(self, callbacks: list[Callable], *args: Any) -> tuple[str, str] | None:
        """Call every callback (each sees every event); the first stop answer as (reason, callback name)."""
        stop = None
        for cb in callbacks:
            answer = cb(*args)
            if isinstance(answer, str) and answer and stop is None:
                stop = (answer, getattr(cb, "name", None) or getattr(cb, "__name__", None) or type(cb).__name__)
        return stop

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _steps_per_epoch(loader: Any) -> int | None:
        for obj in (loader, getattr(loader, "batch_sampler", None)):
            if obj is not None and isinstance(getattr(obj, "batches_per_epoch", None), int):
                return obj.batches_per_epoch
        try:
            return len(loader)
        except TypeError:
            return None

    def _warn_once(self, key: str, msg: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(msg, *args)

    def _epoch_batches(self, epoch: int, skip: int) -> tuple[Iterable, int | None]:
        loader = self.train_loader
        if not hasattr(loader, "__iter__") and callable(loader):
            loader = loader(epoch)
        set_epoch = _find_hook(loader, "set_epoch")
        drop = skip
        if set_epoch is None:
            self._warn_once("set_epoch", "the train loader has no set_epoch(epoch, start_step) hook; a resumed "
                            "epoch sees the same batches only if the loader's order never changes")
        elif "start_step" in inspect.signature(set_epoch).parameters:
            set_epoch(epoch, start_step=skip)
            drop = 0
        else:
            set_epoch(epoch)
        total = self._steps_per_epoch(loader)
        it = iter(loader)
        for _ in range(drop):
            next(it)
        return it, total

    def current_lr(self) -> float:
        return float(self.optimizer.get_lr())

    # ------------------------------------------------------------------ checkpoints
    def _gather(self, obj: Any) -> list:
        """``obj`` of every rank, in rank order (``[obj]`` in a single process)."""
        if self.world_size == 1:
            return [obj]
        out: list = []
        dist.all_gather_object(out, obj)
        return out

    def _mean_over_ranks(self, sums: dict[str, float]) -> dict[str, float]:
        """Per-rank loss sums averaged over the ranks, so every rank logs (and judges) the same record."""
        if self.world_size == 1 or not sums:
            return sums
        keys = sorted(sums)
        t = paddle.to_tensor(np.array([sums[k] for k in keys], dtype="float64"))
        dist.all_reduce(t)
        return {k: float(v) / self.world_size for k, v in zip(keys, t.numpy())}

    def _train_metric_state(self) -> dict | None:
        """The train metric's running counters (``cal_metric_during_train``), so a resumed epoch counts the
        steps trained before the interruption too."""
        if not (self.cal_train_metric and self.metric is not None and hasattr(self.metric, "accumulated")):
            return None
        return _json_plain(self.metric.accumulated())

    def _states_record(self) -> dict:
        self.state.elapsed_s = self.elapsed_s()
        record = {"state": asdict(self.state), "rng": self._gather(get_rng_state()),
                  "train_metric": self._gather(self._train_metric_state()),
                  "rank_epoch_sums": self._gather(dict(self.state.epoch_sums)),
                  "config_hash": config_hash(self.config), "world_size": self.world_size, "epoch_num": self.epoch_num}
        if self.scaler is not None:
            record["grad_scaler"] = _json_plain(self.scaler.state_dict())
        return record

    def elapsed_s(self) -> float:
        """Wall time of the whole run: the processes before the last resume plus this one (seconds)."""
        start = getattr(self, "_start", None)
        return self._elapsed_before + (time.perf_counter() - start if start is not None else 0.0)

    def save(self, name: str) -> None:
        """Write checkpoint ``name`` (rank 0 only; every rank must call it, for the RNG gather)."""
        record = self._states_record()
        if self.is_main:
            save_checkpoint(self.output_dir, name, self.model, self.optimizer, record)

    def _resume(self) -> bool:
        explicit = self.g.get("checkpoints")
        if explicit:
            directory, name = os.path.split(str(explicit))
            for suffix in (".pdparams", ".pdopt", ".states.json"):
                if name.endswith(suffix):
                    name = name[: -len(suffix)]
            if not checkpoint_exists(directory, name):
                raise FileNotFoundError(f"Global.checkpoints = {explicit!r}, but "
                                        f"{checkpoint_paths(directory, name)['states']} does not exist")
        elif self.g.get("resume", True) and checkpoint_exists(self.output_dir, LATEST):
            directory, name = self.output_dir, LATEST
        else:
            return False
        record = load_checkpoint(directory, name, self.model, self.optimizer)
        known = {f.name for f in fields(TrainState)}  # an older checkpoint may hold fields since dropped
        self.state = TrainState(**{k: v for k, v in record["state"].items() if k in known})
        self._elapsed_before = float(self.state.elapsed_s)
        rngs = record.get("rng")
        if isinstance(rngs, list) and rngs:
            self._pending_rng = rngs[self.rank] if self.rank < len(rngs) else rngs[0]
        else:  # format 1 pickled them: never unpickled, as a model folder from elsewhere could run code
            logger.warning("%s/%s.states.json holds its generator states in the old pickled form, which is not "
                           "loaded (unpickling can run code); training continues from the checkpoint with the "
                           "generators seeded from Global.seed and the step, so dropout draws differ from an "
                           "uninterrupted run", directory, name)
            seed_everything(self.seed + self.state.global_step)
        sums = record.get("rank_epoch_sums") or []
        if self.rank < len(sums):  # this rank's own loss sums of the resumed epoch (``state`` holds rank 0's)
            self.state.epoch_sums = dict(sums[self.rank])
        metrics = record.get("train_metric") or []
        metric_state = metrics[self.rank] if self.rank < len(metrics) else None
        if metric_state is not None and self.state.step_in_epoch > 0 and hasattr(self.metric, "set_accumulated"):
            self._pending_metric = metric_state
        if self.scaler is not None and isinstance(record.get("grad_scaler"), dict):
            self.scaler.load_state_dict(record["grad_scaler"])
        if record.get("config_hash") != config_hash(self.config):
            logger.warning("resuming %s/%s, which was written with another config (hash %s, now %s)",
                           directory, name, record.get("config_hash"), config_hash(self.config))
        self.resumed_from = os.path.join(directory, name)
        logger.info("resumed from %s at epoch %d, step %d (global step %d)", self.resumed_from,
                    self.state.epoch + 1, self.state.step_in_epoch, self.state.global_step)
        return True

    # ------------------------------------------------------------------ training
    def _forward_loss(self, batch: list) -> dict:
        images = batch[0]
        if self.use_amp:
            with paddle.amp.auto_cast(level=self.amp_level, custom_black_list=self.amp_black_list):
                preds = self.model(images, data=batch[1:])
                losses = self.loss(preds, batch)
        else:
            preds = self.model(images, data=batch[1:])
            losses = self.loss(preds, batch)
        if not isinstance(losses, dict) or "loss" not in losses:
            raise TypeError(f"the loss must return a dict with a 'loss' entry, got {type(losses).__name__}"
                            f"{sorted(losses) if isinstance(losses, dict) else ''}")
        self._last_preds = preds
        return losses

    def _check_finite(self, parts: dict[str, float], epoch: int) -> None:
        bad = not all(math.isfinite(v) for v in parts.values())
        if self.world_size > 1:
            flag = paddle.to_tensor([1.0 if bad else 0.0])
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            bad = bool(flag.item() > 0)
        if bad:
            shown = ", ".join(f"{k}={v:.6g}" for k, v in parts.items())
            raise NonFiniteLossError(
                f"the loss is not finite at epoch {epoch + 1}, step {self.state.step_in_epoch + 1} "
                f"(global step {self.state.global_step + 1}) on rank {self.rank}: {shown}. Training stopped; "
                f"the last good checkpoint {os.path.join(self.output_dir, LATEST)} was left as it was. "
                f"Lower Optimizer.lr.learning_rate, set Optimizer.clip_norm, or check this batch's labels.")

    def train_step(self, batch: list, epoch: int) -> dict[str, float]:
        """One optimizer step on ``batch``; returns the loss parts as floats."""
        losses = self._forward_loss(batch)
        parts = {k: _scalar(v) for k, v in losses.items()}
        self._check_finite(parts, epoch)
        total = losses["loss"]
        if self.scaler is not None:
            scaled = self.scaler.scale(total)
            scaled.backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            total.backward()
            self.optimizer.step()
        self.optimizer.clear_grad()
        if self.lr_scheduler is not None:
            self.lr_scheduler.step()
        if self.cal_train_metric and self.post_process is not None and self.metric is not None:
            batch_np = [_to_numpy(b) for b in batch]
            self.metric(self.post_process(self._last_preds, batch_np[1]), batch_np)
        return parts

    def _train_epoch(self, epoch: int) -> tuple[str, str] | None:
        """Train on the rest of epoch ``epoch``; returns (reason, callback name) when an ``on_step`` callback
        stopped it between two steps, else None."""
        st = self.state
        batches, total = self._epoch_batches(epoch, st.step_in_epoch)
        if st.step_in_epoch == 0 and self.cal_train_metric and self.metric is not None:
            self.metric.get_metric()  # start the epoch's train metric from zero
        if hasattr(self, "_pending_metric"):  # a resumed epoch: the counters of its steps before the interruption
            self.metric.get_metric()
            self.metric.set_accumulated(self._pending_metric)
            del self._pending_metric
        if hasattr(self, "_pending_rng"):
            set_rng_state(self._pending_rng)
            del self._pending_rng
        bar = None
        if self.progress and self.is_main:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=st.step_in_epoch, desc=f"epoch {epoch + 1}/{self.epoch_num}",
                       unit="batch", dynamic_ncols=True, leave=False)
        self.model.train()
        try:
            while True:
                t0 = time.perf_counter()
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                t1 = time.perf_counter()
                parts = self.train_step(batch, epoch)
                t2 = time.perf_counter()
                n = int(batch[0].shape[0]) * self.world_size
                st.step_in_epoch += 1
                st.global_step += 1
                st.epoch_samples += n
                st.epoch_wait_s += t1 - t0
                st.epoch_busy_s += t2 - t1
                for k, v in parts.items():
                    st.epoch_sums[k] = st.epoch_sums.get(k, 0.0) + v
                logs = {"epoch": epoch + 1, "step": st.step_in_epoch, "global_step": st.global_step,
                        "lr": self.current_lr(), **parts}
                if self.save_every_steps and st.global_step % self.save_every_steps == 0:
                    self.save(LATEST)
                if bar is not None:
                    busy = st.epoch_wait_s + st.epoch_busy_s
                    bar.set_postfix(loss=f"{parts['loss']:.4g}", lr=f"{logs['lr']:.3g}",
                                    samples_s=f"{st.epoch_samples / busy:.1f}" if busy else "-", refresh=False)
                    bar.update(1)
                stop = self._ask(self.on_step, self, logs)
                if self.world_size > 1 and self.on_step:
                    stop = self._gather(stop)[0]  # every rank stops at rank 0's step, whatever its own clock says
                if stop:
                    return stop
        finally:
            if bar is not None:
                bar.close()
        return None

    # ------------------------------------------------------------------ evaluation
    def _gather_metric(self) -> None:
        if self.world_size == 1 or self.metric is None:
            return
        if not (hasattr(self.metric, "accumulated") and hasattr(self.metric, "set_accumulated")):
            self._warn_once("gather", "%s has no accumulated()/set_accumulated(); each rank reports the "
                            "metric of its own shard of the eval data", type(self.metric).__name__)
            return
        parts: list = []
        dist.all_gather_object(parts, self.metric.accumulated())
        self.metric.set_accumulated(_merge_accumulated(parts))

    def evaluate(self) -> dict[str, float]:
        """Run the eval loader through model, post-process and metric (and the val loss); returns
        ``{metric keys..., "loss": val loss, ...}`` without prefixes."""
        if self.eval_loader is None:
            return {}
        self.model.eval()
        loss_sums: dict[str, float] = {}
        n_batches = 0
        with paddle.no_grad():
            for batch in self.eval_loader:
                preds = self.model(batch[0])
                if self.val_loss is not None:
                    value = self.val_loss(preds, batch)
                    value = value if isinstance(value, dict) else {"loss": value}
                    for k, v in value.items():
                        loss_sums[k] = loss_sums.get(k, 0.0) + _scalar(v)
                    n_batches += 1
                if self.post_process is not None and self.metric is not None:
                    batch_np = [_to_numpy(b) for b in batch]
                    self.metric(self.post_process(preds, batch_np[1]), batch_np)
        self.model.train()
        result: dict[str, float] = {}
        if self.metric is not None and self.post_process is not None:
            self._gather_metric()
            result.update({k: float(v) for k, v in self.metric.get_metric().items()
                           if np.isscalar(v) or np.ndim(v) == 0})
        if loss_sums:
            sums = np.array([loss_sums[k] for k in sorted(loss_sums)] + [n_batches], dtype="float64")
            if self.world_size > 1:
                t = paddle.to_tensor(sums)
                dist.all_reduce(t)
                sums = t.numpy()
            for i, k in enumerate(sorted(loss_sums)):
                result[k] = float(sums[i] / max(sums[-1], 1))
        return result

    # ------------------------------------------------------------------ logging
    def _configured_loggers(self) -> list[Any]:
        if not self.g.get("use_dvclive", True):
            return []
        return [DvcLiveLogger(self.g.get("dvclive_dir") or os.path.join(self.output_dir, "dvclive"),
                              self.g.get("dvclive_dvcyaml", None))]

    # ------------------------------------------------------------------ the run
    def _main_indicator(self) -> str | None:
        return getattr(self.metric, "main_indicator", None) if self.metric is not None else None

    def _after_eval(self, epoch: int, record: dict) -> tuple[tuple[str, str] | None, bool]:
        """Update the best metric and ask the ``on_eval`` callbacks; returns (a stop as (reason, callback
        name) or None, is this evaluation the best so far)."""
        st = self.state
        key = self._main_indicator()
        value = record.get(f"val/{key}") if key else None
        is_best = value is not None and (st.best_metric is None or value > st.best_metric)
        if is_best:
            st.best_metric, st.best_epoch = float(value), epoch + 1
        return self._ask(self.on_eval, epoch + 1, st.history + [record]), is_best

    def fit(self) -> dict[str, Any]:
        """Train up to ``Global.epoch_num`` epochs, or until a callback stops it (resuming from ``latest`` when
        there is one); returns the summary."""
        self._start = time.perf_counter()
        if self.is_main:
            recover_checkpoints(self.output_dir)
        if self.world_size > 1:
            dist.barrier()
        resumed = self._resume()
        if not resumed:
            seed_everything(self.seed)
        if self.is_main:
            os.makedirs(self.output_dir, exist_ok=True)
        for sink in self.loggers:
            sink.start(self, resumed)
        st = self.state
        summary = None
        try:
            while st.epoch < self.epoch_num and st.stopped_reason is None:
                epoch = st.epoch
                stop = self._train_epoch(epoch)
                busy = st.epoch_wait_s + st.epoch_busy_s
                steps = max(st.step_in_epoch, 1)
                record: dict[str, Any] = {"epoch": epoch + 1}
                record.update({f"train/{k}": v / steps for k, v in self._mean_over_ranks(st.epoch_sums).items()})
                record["train/lr"] = self.current_lr()
                record["train/samples_per_s"] = st.epoch_samples / busy if busy else 0.0
                record["train/data_wait_share"] = st.epoch_wait_s / busy if busy else 0.0
                if self.cal_train_metric and self.metric is not None and self.post_process is not None:
                    self._gather_metric()
                    record.update({f"train/{k}": float(v) for k, v in self.metric.get_metric().items()
                                   if np.isscalar(v) or np.ndim(v) == 0})
                last = epoch + 1 == self.epoch_num or stop is not None
                is_best = False
                if self.eval_loader is not None and self.eval_every and ((epoch + 1) % self.eval_every == 0 or last):
                    record.update({f"val/{k}": v for k, v in self.evaluate().items()})
                    eval_stop, is_best = self._after_eval(epoch, record)
                    eval_stop = self._gather(eval_stop)[0]  # every rank stops with rank 0, whatever its own said
                    stop = stop or eval_stop
                st.total_samples += st.epoch_samples
                st.total_wait_s += st.epoch_wait_s
                st.total_busy_s += st.epoch_busy_s
                st.history.append(record)
                st.epoch, st.step_in_epoch = epoch + 1, 0
                st.epoch_sums, st.epoch_samples, st.epoch_wait_s, st.epoch_busy_s = {}, 0, 0.0, 0.0
                if stop:
                    st.stopped_reason, st.stopped_by = stop
                for sink in self.loggers:
                    sink.log_epoch(record)
                if is_best:
                    self.save(BEST)
                self.save(LATEST)
                if self.is_main:
                    logger.info("epoch %d/%d: %s", epoch + 1, self.epoch_num,
                                ", ".join(f"{k}={v:.4g}" for k, v in record.items()
                                          if k != "epoch" and isinstance(v, float)))
                    if stop:
                        logger.info("training stops after epoch %d: %s", epoch + 1, st.stopped_reason)
            summary = self.summary(self.elapsed_s())
        finally:
            for sink in self.loggers:
                sink.finish(summary)
        return summary

    def summary(self, wall_time_s: float) -> dict[str, Any]:
        """Best epoch and metric, timing and why training stopped; also written to ``train_summary.json``.

        ``wall_time_s`` is the whole run's (a resumed run adds the time its earlier processes trained up to
        their last checkpoint)."""
        st = self.state
        busy = st.total_wait_s + st.total_busy_s
        out = {
            "main_indicator": self._main_indicator(),
            "best_metric": st.best_metric,
            "best_epoch": st.best_epoch,
            "epochs_run": st.epoch,
            "global_steps": st.global_step,
            "wall_time_s": wall_time_s,
            "samples_per_s": st.total_samples / busy if busy else 0.0,
            "data_wait_share": st.total_wait_s / busy if busy else 0.0,
            "epochs_cap": self.epoch_num,
            "stopped_reason": st.stopped_reason or (f"epoch cap reached (epochs={self.epoch_num})"
                                                    if st.epoch >= self.epoch_num else None),
            "stopped_by": st.stopped_by or ("epoch_cap" if st.epoch >= self.epoch_num else None),
            "resumed_from": self.resumed_from,
            "last_record": st.history[-1] if st.history else None,
            "best_record": next((r for r in st.history if r.get("epoch") == st.best_epoch), None),
        }
        if self.is_main:
            import json

            tmp = os.path.join(self.output_dir, f"train_summary.json.tmp{os.getpid()}")
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(out, f, indent=1)
            os.replace(tmp, os.path.join(self.output_dir, "train_summary.json"))
        return out
