import math

import numpy as np
import pytest

import ocrforge  # noqa: F401
import paddle

from ocrforge.engine.optim import build_lr_scheduler, build_optimizer
from ocrforge.registry import OPTIMIZERS, SCHEDULERS


def lrs(schedule, n):
    out = []
    for _ in range(n):
        out.append(schedule())  # last_lr; get_lr() would compute the next value
        schedule.step()
    return out


def test_cosine_with_linear_warmup_at_known_steps():
    # 10 steps per epoch, 5 epochs, 1 warm-up epoch: 0 -> 0.1 over steps 0..9, then cosine over 50 steps.
    values = lrs(build_lr_scheduler({"name": "Cosine", "learning_rate": 0.1, "warmup_epoch": 1}, 5, 10), 61)
    assert values[0] == 0.0
    assert values[5] == pytest.approx(0.05)
    assert values[10] == pytest.approx(0.1)
    assert values[10 + 25] == pytest.approx(0.05)
    assert values[10 + 10] == pytest.approx(0.05 * (1 + math.cos(math.pi * 10 / 50)))
    assert values[60] == pytest.approx(0.0, abs=1e-12)


def test_cosine_without_warmup_starts_at_the_base_rate():
    values = lrs(build_lr_scheduler({"name": "Cosine", "learning_rate": 0.2}, 2, 5), 6)
    assert values[0] == pytest.approx(0.2) and values[5] == pytest.approx(0.1)


def test_const_and_piecewise():
    assert lrs(build_lr_scheduler(0.003, 3, 4), 12) == [0.003] * 12
    const = lrs(build_lr_scheduler({"name": "Const", "learning_rate": 0.01, "warmup_epoch": 0.5}, 3, 4), 4)
    assert const == pytest.approx([0.0, 0.005, 0.01, 0.01])
    pw = lrs(build_lr_scheduler({"name": "Piecewise", "decay_epochs": [2, 4], "values": [0.1, 0.01, 0.001]}, 6, 3), 13)
    assert pw[5] == 0.1 and pw[6] == 0.01 and pw[11] == 0.01 and pw[12] == 0.001
    with pytest.raises(ValueError, match="one more value than decay_epochs"):
        build_lr_scheduler({"name": "Piecewise", "decay_epochs": [2], "values": [0.1]}, 6, 3)


def test_registries_know_the_builtins():
    assert {"Adam", "AdamW", "Momentum", "SGD"} <= set(OPTIMIZERS.names())
    assert {"Cosine", "Const", "Piecewise", "Linear", "Step"} <= set(SCHEDULERS.names())
    with pytest.raises(KeyError, match="unknown optimizer 'Adamm'"):
        build_optimizer({"name": "Adamm"}, 1, 1, [paddle.create_parameter([1], "float32")])


def _param(values):
    p = paddle.create_parameter([len(values)], "float32",
                                default_initializer=paddle.nn.initializer.Assign(np.array(values, "float32")))
    return p


def test_clip_norm_clips_the_global_gradient_norm():
    p = _param([0.0, 0.0])
    opt, _ = build_optimizer({"name": "SGD", "clip_norm": 0.5, "lr": {"name": "Const", "learning_rate": 1.0}},
                             1, 1, [p])
    (p * paddle.to_tensor([30.0, 40.0])).sum().backward()  # gradient norm 50
    opt.step()
    assert np.linalg.norm(p.numpy()) == pytest.approx(0.5, rel=1e-5)
    assert p.numpy() == pytest.approx([-0.3, -0.4], rel=1e-5)


def test_l2_regularizer_decays_weights():
    p = _param([1.0, -2.0])
    opt, _ = build_optimizer({"name": "SGD", "regularizer": {"name": "L2", "factor": 0.1},
                              "lr": {"name": "Const", "learning_rate": 1.0}}, 1, 1, [p])
    (p * 0.0).sum().backward()
    opt.step()
    assert p.numpy() == pytest.approx([0.9, -1.8], rel=1e-6)


def test_adam_from_a_paddleocr_section_trains_and_steps_its_schedule():
    p = _param([3.0])
    opt, sched = build_optimizer({"name": "Adam", "beta1": 0.9, "beta2": 0.999, "clip_norm": 10,
                                  "lr": {"name": "Cosine", "learning_rate": 0.1, "warmup_epoch": 1},
                                  "regularizer": {"name": "L2", "factor": 0.0}}, epochs=10, step_each_epoch=5,
                                 parameters=[p])
    assert isinstance(opt, paddle.optimizer.Adam) and opt.get_lr() == 0.0
    for _ in range(50):
        (p ** 2).sum().backward()
        opt.step()
        opt.clear_grad()
        sched.step()
    assert abs(float(p.numpy()[0])) < 2.0


def test_adamw_skips_decay_of_one_dim_parameters():
    w = paddle.create_parameter([2, 2], "float32", default_initializer=paddle.nn.initializer.Constant(1.0))
    b = _param([1.0, 1.0])
    opt, _ = build_optimizer({"name": "AdamW", "weight_decay": 0.5, "one_dim_param_no_weight_decay": True,
                              "lr": {"name": "Const", "learning_rate": 0.1}}, 1, 1, [w, b])
    ((w * 0.0).sum() + (b * 0.0).sum()).backward()
    opt.step()
    assert w.numpy() == pytest.approx(np.full((2, 2), 0.95), rel=1e-6)
    assert b.numpy() == pytest.approx([1.0, 1.0])


def test_optimizer_section_errors():
    with pytest.raises(KeyError, match="needs a 'name'"):
        build_optimizer({"lr": 0.1}, 1, 1, [])
    with pytest.raises(ValueError, match="step_each_epoch must be > 0"):
        build_optimizer({"name": "Adam"}, 1, 0, [])
    with pytest.raises(KeyError, match="regularizer.name 'L3'"):
        build_optimizer({"name": "Adam", "regularizer": {"name": "L3", "factor": 1}}, 1, 1, [_param([1.0])])
