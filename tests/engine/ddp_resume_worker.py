"""Run by test_distributed.py under ``python -m paddle.distributed.launch --nproc_per_node 2``: a tiny
training over gloo on the CPU, every file a rank writes recorded, optionally killed (SIGKILL) on rank 0.

argv: out_dir audit_dir kill_at_step (0: never). Writes ``audit_dir/rank<r>.writes`` (one path a line: files
it opened for writing, renamed or removed under out_dir) and, when training finishes, ``rank<r>.npz``.
"""

import os
import signal
import sys

out_dir, audit_dir, kill_at = os.path.abspath(sys.argv[1]), sys.argv[2], int(sys.argv[3])
rank = int(os.environ.get("PADDLE_TRAINER_ID", "0"))
sys.path.insert(0, os.path.dirname(__file__))
from write_audit import record_writes  # noqa: E402

record_writes(audit_dir, (out_dir,))

import numpy as np  # noqa: E402

import ocrforge  # noqa: E402,F401
import paddle  # noqa: E402
import paddle.distributed as dist  # noqa: E402

from engine_tiny import AccMetric, TinyLoss, TinyNet, argmax_post, make_config, make_loader  # noqa: E402
from ocrforge.engine import Trainer, seed_everything  # noqa: E402

paddle.set_device("cpu")
world = dist.get_world_size()


def kill(trainer, logs):
    if rank == 0 and logs["global_step"] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)


cfg = make_config(out_dir, epoch_num=2, save_every_steps=2, use_dvclive=True, cal_metric_during_train=True)
seed_everything(cfg["Global"]["seed"])
model = TinyNet()
model.drop = paddle.nn.Dropout(0.0)  # no dropout: one process and two draw the same (no) masks
trainer = Trainer(cfg, model, TinyLoss(), make_loader(batch_size=4, rank=rank, world_size=world),
                  eval_loader=make_loader(n=12, batch_size=3, seed=99, shuffle=False, rank=rank, world_size=world),
                  post_process=argmax_post, metric=AccMetric(), on_step=[kill])
summary = trainer.fit()
np.savez(os.path.join(audit_dir, f"rank{rank}.npz"),
         **{k: v.numpy() for k, v in trainer.model._layers.state_dict().items()})
