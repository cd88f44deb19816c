"""The engine on a GPU: mixed precision and data-parallel training (skipped where paddle sees no CUDA device)."""

import json
import math
import os
import subprocess
import sys

import pytest

import ocrforge  # noqa: F401
import paddle

from engine_tiny import make_trainer

HERE = os.path.dirname(__file__)


@pytest.fixture
def on_gpu():
    paddle.set_device("gpu:0")
    yield
    paddle.set_device("cpu")


@pytest.mark.gpu
@pytest.mark.parametrize("level", ["O1", "O2"])
def test_mixed_precision_trains_the_tiny_task(tmp_path, on_gpu, level):
    """AMP O1 (autocast) and O2 (fp16 weights with fp32 masters) learn the tiny task as fp32 does on the CPU
    (test_trainer: val acc >= 0.9 after 3 epochs), with a loss scaler and finite losses."""
    trainer = make_trainer(tmp_path, epoch_num=3, use_amp=True, amp_level=level, scale_loss=1024.0)
    assert trainer.use_amp is True and trainer.scaler is not None
    summary = trainer.fit()
    history = trainer.state.history
    assert summary["epochs_run"] == 3 and all(math.isfinite(h["train/loss"]) for h in history)
    assert history[-1]["train/loss"] < 0.8 * history[0]["train/loss"] and history[-1]["val/acc"] >= 0.9


@pytest.mark.gpu(2)
def test_data_parallel_trains_on_two_gpus(tmp_path):
    """`python -m paddle.distributed.launch --gpus 0,1` (NCCL): 2 processes train the tiny task for 2 epochs,
    their replicas identical, and rank 0 writes the checkpoint (the CPU test, with gloo, also compares them
    with one process of the same global batch)."""
    worker = os.path.join(HERE, "ddp_worker.py")
    proc = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--gpus", "0,1", "--log_dir",
                           str(tmp_path / "log"), worker, str(tmp_path / "ddp"), "gpu"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / "ddp" / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world"] for r in ranks] == [2, 2] and [r["summary"]["epochs_run"] for r in ranks] == [2, 2]
    assert ranks[0]["weights"] == ranks[1]["weights"]  # the replicas stay identical
    assert (tmp_path / "ddp" / "latest.pdparams").is_file()
