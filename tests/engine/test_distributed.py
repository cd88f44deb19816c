import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(__file__)


@pytest.mark.slow
def test_two_cpu_processes_train_in_step_and_gather_the_metric(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
         str(tmp_path / "log"), os.path.join(HERE, "ddp_worker.py"), str(out)],
        cwd=os.path.dirname(os.path.dirname(HERE)), env=env, capture_output=True, text=True, timeout=240)
    logs = "".join((tmp_path / "log" / f"workerlog.{r}").read_text() for r in range(2)
                   if (tmp_path / "log" / f"workerlog.{r}").exists())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + logs[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world"] for r in ranks] == [2, 2]
    for k in ranks[0]["weights"]:  # gradients were averaged, so both replicas hold the same weights
        np.testing.assert_allclose(ranks[0]["weights"][k], ranks[1]["weights"][k], atol=1e-6, err_msg=k)
    for r in ranks:
        # 24 samples over 2 ranks in batches of 4: 3 steps an epoch; the eval metric covers all 12 samples
        assert r["summary"]["global_steps"] == 6
        assert [h["val/total"] for h in r["history"]] == [12.0, 12.0]
    assert (out / "latest.states.json").exists() and (out / "train_summary.json").exists()
    assert json.loads((out / "latest.states.json").read_text())["world_size"] == 2
