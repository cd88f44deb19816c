"""A tiny but real classification task for the engine tests: model, loss, metric, post-process, data.

Images are ``(1, 8, 8)`` float32; class 1 has a bright top half. Each sample's noise comes from
``sample_rng(seed, epoch, index)``, so the data are a pure function of (seed, epoch, index).
"""

from __future__ import annotations

import numpy as np

import ocrforge  # noqa: F401
import paddle
from paddle import nn

from ocrforge.data.samplers import ShuffleBatchSampler
from ocrforge.seeding import sample_rng


class TinyNet(nn.Layer):
    """(N, 1, 8, 8) -> {"logits": (N, 2)}; dropout makes the paddle generator matter for resume."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(1, 4, 3, padding=1)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(4 * 2 * 2, 2)

    def forward(self, x, data=None):
        y = paddle.nn.functional.relu(self.conv(x))
        y = paddle.nn.functional.adaptive_avg_pool2d(y, 2).flatten(1)
        return {"logits": self.fc(self.drop(y))}


class TinyLoss(nn.Layer):
    """Cross entropy plus a tiny logit penalty, so there are two loss parts to log."""

    def __init__(self, nan_at_call: int | None = None):
        super().__init__()
        self.calls = 0
        self.nan_at_call = nan_at_call

    def forward(self, preds, batch):
        self.calls += 1
        logits = preds["logits"]
        ce = nn.functional.cross_entropy(logits, batch[1].reshape([-1, 1]).astype("int64"))
        penalty = 1e-3 * (logits ** 2).mean()
        total = ce + penalty
        if self.nan_at_call is not None and self.calls == self.nan_at_call:
            total = total * float("nan")
        return {"loss": total, "ce": ce, "penalty": penalty}


def argmax_post(preds, labels):
    """Post-process: (predicted classes, true classes) as numpy arrays."""
    return preds["logits"].numpy().argmax(axis=1), np.asarray(labels).reshape(-1)


class AccMetric:
    main_indicator = "acc"

    def __init__(self):
        self.correct = 0
        self.total = 0

    def __call__(self, post_result, batch):
        pred, true = post_result
        self.correct += int((pred == true).sum())
        self.total += len(true)

    def accumulated(self):
        return {"correct": self.correct, "total": self.total}

    def set_accumulated(self, acc):
        self.correct, self.total = acc["correct"], acc["total"]

    def get_metric(self):
        out = {"acc": self.correct / max(self.total, 1), "total": float(self.total)}
        self.correct = self.total = 0
        return out


class ScriptedMetric(AccMetric):
    """Reports a given sequence of 'acc' values, one per evaluation, to drive early stopping."""

    def __init__(self, values):
        super().__init__()
        self.values = list(values)
        self.calls = 0

    def get_metric(self):
        super().get_metric()
        value = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        return {"acc": value}


class TinyDataset(paddle.io.Dataset):
    def __init__(self, n: int, seed: int, sampler_ref: list | None = None):
        self.n = n
        self.seed = seed
        self.sampler_ref = sampler_ref if sampler_ref is not None else []
        base = np.random.default_rng(1234 + n)
        self.labels = (np.arange(n) % 2).astype("int64")
        self.base = base.random((n, 1, 8, 8)).astype("float32") * 0.2

    def __len__(self):
        return self.n

    def __getitem__(self, idx):
        epoch = self.sampler_ref[0].epoch if self.sampler_ref else 0
        img = self.base[idx].copy()
        if self.labels[idx] == 1:
            img[:, :4] += 0.8
        img += sample_rng(self.seed, epoch, idx).normal(0, 0.1, img.shape).astype("float32")
        return img, self.labels[idx]


BLANK_VAL_IMAGES = 12


def blank_val_loader():
    """Validation images that are all zeros, labelled half 0, half 1: whatever the model learns, it gives
    every one of them the same class, so val acc is exactly 0.5 at every evaluation (a real plateau)."""
    labels = TinyDataset(BLANK_VAL_IMAGES, seed=99).labels

    class Blank(paddle.io.Dataset):
        def __len__(self):
            return BLANK_VAL_IMAGES

        def __getitem__(self, idx):
            return np.zeros((1, 8, 8), "float32"), labels[idx]

    return paddle.io.DataLoader(Blank(), batch_size=6, shuffle=False)


def make_loader(n: int = 24, batch_size: int = 4, seed: int = 7, shuffle: bool = True, num_workers: int = 0,
                rank: int = 0, world_size: int = 1):
    ref: list = []
    ds = TinyDataset(n, seed, ref)
    sampler = ShuffleBatchSampler(range(n), batch_size, shuffle=shuffle, seed=seed, rank=rank, world_size=world_size)
    ref.append(sampler)
    return paddle.io.DataLoader(ds, batch_sampler=sampler, num_workers=num_workers)


def make_config(out_dir, **global_overrides):
    g = {"epoch_num": 3, "save_model_dir": str(out_dir), "seed": 11, "progress_bar": False,
         "use_dvclive": False}
    g.update(global_overrides)
    return {
        "Global": g,
        "Optimizer": {"name": "Adam", "beta1": 0.9, "beta2": 0.999, "clip_norm": 5.0,
                      "lr": {"name": "Cosine", "learning_rate": 0.02, "warmup_epoch": 1},
                      "regularizer": {"name": "L2", "factor": 1e-5}},
    }


def make_trainer(out_dir, *, metric=None, num_workers=0, loss=None, on_step=(), on_eval=(), val_loss=None,
                 eval_loader="default", loggers=(), **global_overrides):
    from ocrforge.engine import Trainer, seed_everything

    cfg = make_config(out_dir, **global_overrides)
    seed_everything(cfg["Global"]["seed"])
    model = TinyNet()
    if eval_loader == "default":
        eval_loader = make_loader(n=12, batch_size=6, seed=99, shuffle=False)
    return Trainer(cfg, model, loss or TinyLoss(), make_loader(num_workers=num_workers),
                   eval_loader=eval_loader, post_process=argmax_post, metric=metric or AccMetric(),
                   on_step=on_step, on_eval=on_eval, val_loss=val_loss, loggers=loggers)


def weights(model) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}
