"""Optimizers and learning-rate schedules built from PaddleOCR's ``Optimizer`` section::

    Optimizer:
      name: Adam            # Adam | AdamW | Momentum | SGD
      beta1: 0.9
      beta2: 0.999
      clip_norm: 10         # optional: clip the global gradient norm
      lr:
        name: Cosine        # Cosine | Const | Piecewise | Linear | Step
        learning_rate: 0.001
        warmup_epoch: 2
      regularizer:
        name: L2            # L2 | L1 (paddle's L2Decay / L1Decay)
        factor: 5.0e-05

Schedules are stepped once per training step (not per epoch), so they are sized by ``step_each_epoch``
and ``epochs``; warm-up rises linearly from 0 to the base rate over ``round(warmup_epoch *
step_each_epoch)`` steps, after which the decay starts from its own step 0 (PaddleOCR's convention).
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

import ocrforge  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
import paddle
from paddle.optimizer import lr as _lr

from ocrforge.registry import OPTIMIZERS, SCHEDULERS


def _with_warmup(schedule: _lr.LRScheduler, peak: float, warmup_steps: int) -> _lr.LRScheduler:
    if warmup_steps <= 0:
        return schedule
    return _lr.LinearWarmup(learning_rate=schedule, warmup_steps=warmup_steps, start_lr=0.0, end_lr=peak)


def _warmup_steps(warmup_epoch: float, step_each_epoch: int) -> int:
    return int(round(float(warmup_epoch) * step_each_epoch))


@SCHEDULERS.register()
def Cosine(learning_rate: float, step_each_epoch: int, epochs: int, warmup_epoch: float = 0,
           **_: Any) -> _lr.LRScheduler:
    """Cosine decay from ``learning_rate`` over ``epochs * step_each_epoch`` steps, after a linear warm-up."""
    decay = _lr.CosineAnnealingDecay(learning_rate=learning_rate, T_max=max(1, step_each_epoch * epochs))
    return _with_warmup(decay, learning_rate, _warmup_steps(warmup_epoch, step_each_epoch))


@SCHEDULERS.register()
def Const(learning_rate: float, step_each_epoch: int, warmup_epoch: float = 0, **_: Any) -> _lr.LRScheduler:
    """A constant rate, after an optional linear warm-up."""
    const = _lr.LambdaDecay(learning_rate=learning_rate, lr_lambda=_one)
    return _with_warmup(const, learning_rate, _warmup_steps(warmup_epoch, step_each_epoch))


def _one(_: int) -> float:
    return 1.0


@SCHEDULERS.register()
def Piecewise(decay_epochs: list[float], values: list[float], step_each_epoch: int, warmup_epoch: float = 0,
              **_: Any) -> _lr.LRScheduler:
    """``values[i]`` until epoch ``decay_epochs[i]`` (one more value than boundaries), stepped per step."""
    if len(values) != len(decay_epochs) + 1:
        raise ValueError(f"Piecewise lr needs one more value than decay_epochs; got {len(values)} values "
                         f"for {len(decay_epochs)} boundaries ({decay_epochs})")
    bounds = [int(round(e * step_each_epoch)) for e in decay_epochs]
    decay = _lr.PiecewiseDecay(boundaries=bounds, values=list(values))
    return _with_warmup(decay, values[0], _warmup_steps(warmup_epoch, step_each_epoch))


@SCHEDULERS.register()
def Linear(learning_rate: float, step_each_epoch: int, epochs: int, end_lr: float = 0.0, power: float = 1.0,
           warmup_epoch: float = 0, **_: Any) -> _lr.LRScheduler:
    """Polynomial decay to ``end_lr`` over ``epochs * step_each_epoch`` steps, after a linear warm-up."""
    decay = _lr.PolynomialDecay(learning_rate=learning_rate, decay_steps=max(1, step_each_epoch * epochs),
                                end_lr=end_lr, power=power)
    return _with_warmup(decay, learning_rate, _warmup_steps(warmup_epoch, step_each_epoch))


@SCHEDULERS.register()
def Step(learning_rate: float, step_size: float, step_each_epoch: int, gamma: float = 0.1,
         warmup_epoch: float = 0, **_: Any) -> _lr.LRScheduler:
    """Multiply the rate by ``gamma`` every ``step_size`` epochs."""
    decay = _lr.StepDecay(learning_rate=learning_rate, step_size=max(1, int(round(step_size * step_each_epoch))),
                          gamma=gamma)
    return _with_warmup(decay, learning_rate, _warmup_steps(warmup_epoch, step_each_epoch))


def build_lr_scheduler(lr_cfg: dict | float, epochs: int, step_each_epoch: int) -> _lr.LRScheduler:
    """The per-step schedule of an ``Optimizer.lr`` section; a bare number means a constant rate."""
    if isinstance(lr_cfg, (int, float)):
        lr_cfg = {"name": "Const", "learning_rate": float(lr_cfg)}
    if not isinstance(lr_cfg, dict):
        raise TypeError(f"Optimizer.lr must be a number or a mapping with 'name', got {lr_cfg!r}")
    cfg = dict(lr_cfg)
    cfg.setdefault("name", "Const")
    return SCHEDULERS.build(cfg, epochs=int(epochs), step_each_epoch=int(step_each_epoch))


def _regularizer(cfg: dict | float | None):
    if cfg is None:
        return None
    if isinstance(cfg, (int, float)):
        return float(cfg)
    name = cfg.get("name", "L2")
    factor = float(cfg.get("factor", 0.0))
    kinds = {"L2": paddle.regularizer.L2Decay, "L2Decay": paddle.regularizer.L2Decay,
             "L1": paddle.regularizer.L1Decay, "L1Decay": paddle.regularizer.L1Decay}
    if name not in kinds:
        raise KeyError(f"Optimizer.regularizer.name {name!r} is unknown; use one of {sorted(kinds)}")
    return kinds[name](factor)


def _clip(clip_norm: float | None):
    return paddle.nn.ClipGradByGlobalNorm(clip_norm=float(clip_norm)) if clip_norm else None


@OPTIMIZERS.register()
def Adam(learning_rate, parameters, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8,
         weight_decay=None, grad_clip=None, **_: Any) -> paddle.optimizer.Optimizer:
    return paddle.optimizer.Adam(learning_rate=learning_rate, beta1=beta1, beta2=beta2, epsilon=epsilon,
                                 parameters=parameters, weight_decay=weight_decay, grad_clip=grad_clip)


@OPTIMIZERS.register()
def AdamW(learning_rate, parameters, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8,
          weight_decay=0.01, grad_clip=None, no_weight_decay_name: str = "",
          one_dim_param_no_weight_decay: bool = False, **_: Any) -> paddle.optimizer.Optimizer:
    """Decoupled weight decay; parameters whose name contains a word of ``no_weight_decay_name``, or
    (with ``one_dim_param_no_weight_decay``) 1-D parameters such as biases and norms, are not decayed."""
    params = list(parameters)
    skip_words = no_weight_decay_name.split() if no_weight_decay_name else []
    no_decay = {p.name for p in params
                if any(w in p.name for w in skip_words) or (one_dim_param_no_weight_decay and len(p.shape) == 1)}
    if isinstance(weight_decay, paddle.regularizer.WeightDecayRegularizer):
        weight_decay = float(weight_decay._coeff)
    return paddle.optimizer.AdamW(learning_rate=learning_rate, beta1=beta1, beta2=beta2, epsilon=epsilon,
                                  parameters=params, weight_decay=0.0 if weight_decay is None else weight_decay,
                                  grad_clip=grad_clip, apply_decay_param_fun=lambda n: n not in no_decay)


@OPTIMIZERS.register()
def Momentum(learning_rate, parameters, momentum: float = 0.9, weight_decay=None, grad_clip=None,
             use_nesterov: bool = False, **_: Any) -> paddle.optimizer.Optimizer:
    return paddle.optimizer.Momentum(learning_rate=learning_rate, momentum=momentum, parameters=parameters,
                                     use_nesterov=use_nesterov, weight_decay=weight_decay, grad_clip=grad_clip)


@OPTIMIZERS.register()
def SGD(learning_rate, parameters, weight_decay=None, grad_clip=None, **_: Any) -> paddle.optimizer.Optimizer:
    return paddle.optimizer.SGD(learning_rate=learning_rate, parameters=parameters, weight_decay=weight_decay,
                                grad_clip=grad_clip)


def build_optimizer(opt_cfg: dict, epochs: int, step_each_epoch: int,
                    parameters: Iterable) -> tuple[paddle.optimizer.Optimizer, _lr.LRScheduler]:
    """Build ``(optimizer, lr_scheduler)`` from an ``Optimizer`` section; step the scheduler once per step.

    ``regularizer`` (``{name: L2, factor}``) or a plain ``weight_decay`` number sets the weight decay;
    ``clip_norm`` clips the global gradient norm inside ``optimizer.step()``.
    """
    if not isinstance(opt_cfg, dict) or "name" not in opt_cfg:
        raise KeyError(f"the Optimizer section needs a 'name' (Adam, AdamW, Momentum, SGD); got {opt_cfg!r}")
    if step_each_epoch <= 0:
        raise ValueError(f"step_each_epoch must be > 0 (the train loader has no batches?), got {step_each_epoch}")
    cfg = copy.deepcopy(opt_cfg)
    schedule = build_lr_scheduler(cfg.pop("lr", {"name": "Const", "learning_rate": 0.001}), epochs, step_each_epoch)
    reg_cfg = cfg.pop("regularizer", None)
    weight_decay = _regularizer(reg_cfg) if reg_cfg is not None else cfg.pop("weight_decay", None)
    cfg.pop("weight_decay", None)
    grad_clip = _clip(cfg.pop("clip_norm", None) or cfg.pop("clip_norm_global", None))
    cfg.pop("clip_norm_global", None)
    name = cfg.pop("name")
    optimizer = OPTIMIZERS.build({"name": name, **cfg}, learning_rate=schedule, parameters=list(parameters),
                                 weight_decay=weight_decay, grad_clip=grad_clip)
    return optimizer, schedule


def current_lr(optimizer: paddle.optimizer.Optimizer) -> float:
    return float(optimizer.get_lr())
