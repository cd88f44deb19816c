"""The training engine: optimizers and schedules, the trainer, its stopping rules and checkpoints (seeding:
:mod:`ocrforge.seeding`, re-exported here).

Importing this package registers the optimizers (``OPTIMIZERS``) and schedules (``SCHEDULERS``).
"""

from ocrforge.engine import optim  # noqa: F401  (registers optimizers and schedules)
from ocrforge.engine.callbacks import EarlyStopping, WallTimeLimit
from ocrforge.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ocrforge.engine.optim import build_lr_scheduler, build_optimizer
from ocrforge.engine.trainer import NonFiniteLossError, Trainer, TrainState
from ocrforge.seeding import get_rng_state, make_worker_init_fn, sample_rng, seed_everything, set_rng_state

__all__ = [
    "CheckpointError",
    "EarlyStopping",
    "NonFiniteLossError",
    "TrainState",
    "Trainer",
    "WallTimeLimit",
    "build_lr_scheduler",
    "build_optimizer",
    "get_rng_state",
    "load_checkpoint",
    "make_worker_init_fn",
    "sample_rng",
    "save_checkpoint",
    "seed_everything",
    "set_rng_state",
]
