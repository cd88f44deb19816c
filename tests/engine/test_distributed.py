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


def launch(tmp_path, out, audit, kill_at, name):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
         str(tmp_path / f"log_{name}"), os.path.join(HERE, "ddp_resume_worker.py"), str(out), str(audit),
         str(kill_at)],
        cwd=os.path.dirname(os.path.dirname(HERE)), env=env, capture_output=True, text=True, timeout=300)


def worker_logs(tmp_path, name):
    return "".join((tmp_path / f"log_{name}" / f"workerlog.{r}").read_text() for r in range(2)
                   if (tmp_path / f"log_{name}" / f"workerlog.{r}").exists())


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_to_one_process_weights_and_only_rank_0_writes(tmp_path):
    """Issue 22: 2 CPU processes (gloo), 4 samples each per step, against 1 process with the same global batch
    of 8; rank 0 is killed with SIGKILL at step 5 (checkpoint at step 4), and the rerun resumes."""
    import paddle

    from engine_tiny import AccMetric, TinyLoss, TinyNet, argmax_post, make_config, make_loader, weights
    from ocrforge.engine import Trainer, seed_everything

    out, audit = tmp_path / "out", tmp_path / "audit"
    killed = launch(tmp_path, out, audit, 5, "killed")
    assert killed.returncode != 0, "the killed run should fail"
    assert json.loads((out / "latest.states.json").read_text())["state"]["global_step"] == 4
    resumed = launch(tmp_path, out, audit, 0, "resumed")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:] + worker_logs(tmp_path, "resumed")
    assert "resumed from" in worker_logs(tmp_path, "resumed")
    states = json.loads((out / "latest.states.json").read_text())
    assert states["world_size"] == 2 and states["state"]["global_step"] == 6  # 24 samples / 8 a step, 2 epochs
    # the train metric counts both ranks' samples, the resumed epoch's steps before the kill included
    assert [h["train/total"] for h in states["state"]["history"]] == [24.0, 24.0]

    # only rank 0 wrote under the output folder: checkpoints, dvclive metrics, the summary
    written = {r: set((audit / f"rank{r}.writes").read_text().split()) for r in range(2)}
    assert written[1] == set()
    names = {os.path.relpath(p, out).split(os.sep)[0] for p in written[0]}
    assert {"latest.pdparams", "best_accuracy.states.json", "dvclive", "train_summary.json"} <= {
        n.split(".tmp")[0] for n in names}

    cfg = make_config(tmp_path / "one", epoch_num=2)
    seed_everything(cfg["Global"]["seed"])
    model = TinyNet()
    model.drop = paddle.nn.Dropout(0.0)
    Trainer(cfg, model, TinyLoss(), make_loader(batch_size=8),  # the same global batch as 2 x 4
            eval_loader=make_loader(n=12, batch_size=6, seed=99, shuffle=False), post_process=argmax_post,
            metric=AccMetric()).fit()
    ref = weights(model)
    ranks = [dict(np.load(audit / f"rank{r}.npz")) for r in range(2)]
    for k in ref:
        np.testing.assert_array_equal(ranks[0][k], ranks[1][k], err_msg=k)  # the replicas stay identical
    diff = max(float(np.abs(ranks[0][k] - ref[k]).max()) for k in ref)
    print(f"max abs weight difference, 2 processes x 4 vs 1 process x 8: {diff:.3g}")
    assert diff < 1e-5, diff


@pytest.mark.slow
def test_the_train_rec_stage_runs_data_parallel_and_only_rank_0_writes(tmp_path, repo_root):
    """What `python -m paddle.distributed.launch --nproc_per_node 2 stages/train_rec.py` runs: the real
    PP-OCRv4 recogniser on 8 + 4 tiny crops, 2 CPU processes of 2 crops a step."""
    sys.path.insert(0, str(repo_root / "tests" / "data"))
    from test_loader_data import REC_TEXTS, write_rec_data

    data, models, reports, audit = (tmp_path / n for n in ("data", "rec", "reports", "audit"))
    write_rec_data(data, REC_TEXTS[:8])
    write_rec_data(data, REC_TEXTS[8:], split="val")
    proc = subprocess.run(
        [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
         str(tmp_path / "log"), os.path.join(HERE, "ddp_stage_worker.py"), str(repo_root), str(data), str(models),
         str(reports), str(audit)],
        cwd=str(repo_root), env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=400)
    logs = "".join((tmp_path / "log" / f"workerlog.{r}").read_text() for r in range(2)
                   if (tmp_path / "log" / f"workerlog.{r}").exists())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + logs[-3000:]
    written = {r: {os.path.relpath(p, tmp_path) for p in (audit / f"rank{r}.writes").read_text().split()}
               for r in range(2)}
    assert written[1] == set(), sorted(written[1])[:10]
    assert {"rec/config.yml", "rec/latest.pdparams", "rec/best_accuracy.pdparams", "rec/train.log",
            "reports/report.md", "reports/summary.json"} <= written[0]
    states = json.loads((models / "latest.states.json").read_text())
    assert states["world_size"] == 2 and states["state"]["global_step"] == 2  # 8 crops / (2 ranks x 2)
    assert json.loads((reports / "summary.json").read_text())["epochs_run"] == 1
