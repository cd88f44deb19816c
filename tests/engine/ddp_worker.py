"""Run by test_distributed.py under ``python -m paddle.distributed.launch``: 2 CPU processes (gloo); by
test_gpu.py with ``gpu`` as the second argument: 2 GPU processes (NCCL)."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import ocrforge  # noqa: E402,F401
import paddle  # noqa: E402
import paddle.distributed as dist  # noqa: E402

from engine_tiny import AccMetric, TinyLoss, TinyNet, argmax_post, make_config, make_loader  # noqa: E402
from ocrforge.engine import Trainer, seed_everything  # noqa: E402

out_dir = sys.argv[1]
paddle.set_device(sys.argv[2] if len(sys.argv) > 2 else "cpu")  # gpu: the device launch assigned
rank, world = dist.get_rank(), dist.get_world_size()
cfg = make_config(out_dir, epoch_num=2)
seed_everything(cfg["Global"]["seed"])
model = TinyNet()  # the trainer calls init_parallel_env() and wraps it in DataParallel
trainer = Trainer(cfg, model, TinyLoss(), make_loader(rank=rank, world_size=world),
                  eval_loader=make_loader(n=12, batch_size=3, seed=99, shuffle=False, rank=rank, world_size=world),
                  post_process=argmax_post, metric=AccMetric())
summary = trainer.fit()
w = {k: v.numpy().ravel()[:4].tolist() for k, v in trainer.model._layers.state_dict().items()}
with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
    json.dump({"world": world, "summary": summary, "weights": w, "history": trainer.state.history}, f)
