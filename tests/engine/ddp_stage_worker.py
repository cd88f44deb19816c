"""Run by test_distributed.py under ``python -m paddle.distributed.launch --nproc_per_node 2``: the train_rec
stage's code path (``run_training_stage``) on tiny data, each rank's writes under the model and report
folders recorded (``audit_dir/rank<r>.writes``).

argv: repo_root data_dir model_dir report_dir audit_dir
"""

import os
import sys

repo, data_dir, model_dir, report_dir, audit_dir = sys.argv[1:6]
sys.path.insert(0, os.path.dirname(__file__))
from write_audit import record_writes  # noqa: E402

record_writes(audit_dir, (model_dir, report_dir))

from pathlib import Path  # noqa: E402

from ocrforge.config import load_config  # noqa: E402
from ocrforge.log import get_logger  # noqa: E402
from ocrforge.params import load_params, section  # noqa: E402
from ocrforge.recipe import rec_config_from_params  # noqa: E402
from ocrforge.training import run_training_stage  # noqa: E402

params = load_params(Path(repo) / "params.yaml")
p = {**section(params, "train_rec"), "epochs": 1, "batch_size": 2, "eval_batch_size": 4, "save_every_steps": 2,
     "device": "cpu"}
log = get_logger("stage.train_rec", log_file=Path(model_dir) / "train.log")
config = rec_config_from_params(load_config(Path(repo) / p["config"]), p, section(params, "dictionary"), data_dir,
                                model_dir, str(Path(report_dir) / "dvclive"))
config["Global"]["progress_bar"] = False
run_training_stage(config, p.get("analysis"), Path(report_dir), log)
