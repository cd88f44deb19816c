"""The DVC workflow of the README in a temporary copy of the repository, on tiny settings, real DVC: remote storage
(push, a fresh clone's pull, `dvc artifacts get`), experiments (a queued grid, one in the workspace, exp show /
exp diff / metrics diff / plots diff, the winner as a git commit) and a rerun that changes only timing files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline_copy import REPO_ROOT, copy_repo, dvc
from test_pipeline import TINY

WORKFLOW_TINY = {**TINY, "benchmark.engines": ["paddleocr", "ocrforge"]}

# the files a rerun of train_rec that trains the same weights rewrites (README, Experiments): the clock's figures
RERUN_CHANGES = {
    "dvc.lock",
    "reports/train_rec/timing.json",
    "reports/train_rec/summary.json",
    "reports/train_rec/report.md",
    "reports/train_rec/dvclive/metrics.json",
    "reports/train_rec/dvclive/plots/metrics/train/samples_per_s.tsv",
    "reports/train_rec/dvclive/plots/metrics/train/data_wait_share.tsv",
}
DECLARED_METRICS = {"reports/split.json", "reports/train_det/report.json", "reports/train_rec/report.json",
                    "reports/distill_det/report.json", "reports/eval/metrics.json", "reports/export.json",
                    "reports/ppocrv3_det.json"}
TIMING_WORDS = ("time", "samples_per_s", "wait", "per_s", "timestamp")


def _ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def git(repo: Path, *args: str) -> str:
    return _ok(subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=repo,
                              capture_output=True, text=True, check=False)).stdout


def _flat(data, prefix: str = "") -> dict:
    if not isinstance(data, dict):
        return {prefix: data}
    out = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _experiments(shown: list) -> dict:
    """``dvc exp show --json`` -> {experiment name: {"params": flat params.yaml, "metrics": {file: flat data}}}."""
    found = {}
    for baseline in shown:
        for group in baseline.get("experiments") or []:
            for exp in group["revs"]:
                data = exp["data"]
                found[exp["name"]] = {
                    "params": _flat(data["params"]["params.yaml"]["data"]),
                    "metrics": {path: _flat(m["data"]) for path, m in data["metrics"].items() if "data" in m},
                }
    return found


class Timings:
    """Wall time of each step, written to ``path`` (the README's figures); never asserted on."""

    def __init__(self, path: Path):
        self.path, self.rows, self.start = path, [], time.perf_counter()

    def __call__(self, label: str, result):
        now = time.perf_counter()
        self.rows.append(f"{now - self.start:8.1f} s  {label}")
        self.start = now
        self.path.write_text("\n".join(self.rows) + "\n")
        return result


def _wait_for_queue(repo: Path, timeout_s: float = 1500) -> str:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        status = _ok(dvc(repo, "queue", "status")).stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            return status
        time.sleep(5)
    raise AssertionError(f"the queue did not finish in {timeout_s} s:\n{status}")


def test_the_stages_read_params_yaml_as_dvc_writes_and_records_it(tmp_path):
    """`dvc exp run -S` rewrites params.yaml in YAML 1.2, dropping the quotes of ``ratio: "6:2:2"``; read as
    YAML 1.1 that is the base-60 integer 21722 and the split stage failed on any experiment that reran it."""
    from dvc.utils.hydra import apply_overrides
    from dvc.utils.serialize import load_yaml

    from ocrforge.params import load_params

    path = tmp_path / "params.yaml"
    shutil.copy(REPO_ROOT / "params.yaml", path)
    apply_overrides(str(path), ["train_rec.lr=1e-4", "split.seed=7"])  # what `dvc exp run -S` runs
    assert re.search(r"^  ratio: 6:2:2 ", path.read_text(), re.M)
    params = load_params(path)
    assert params == load_yaml(str(path))  # the values DVC records in dvc.lock
    assert (params["split"]["ratio"], params["split"]["seed"], params["train_rec"]["lr"]) == ("6:2:2", 7, 1e-4)


def test_make_targets_run_the_readme_commands():
    def dry(*args: str) -> list[str]:
        run = subprocess.run(["make", "-n", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        assert run.returncode == 0, run.stderr
        return run.stdout.splitlines()

    assert "dvc exp run --queue -S 'train_rec.lr=0.0001,0.001' -S 'train_det.epochs=3' eval" in \
        dry("exp", "S=train_rec.lr=0.0001,0.001 train_det.epochs=3", "TARGETS=eval", "QUEUE=1")
    assert "dvc exp run  -S 'train_rec.lr=0.0005' " in dry("exp", "S=train_rec.lr=0.0005")
    assert {"dvc metrics diff 'HEAD' 'exp-a'", "dvc plots diff 'HEAD' 'exp-a' --out dvc_plots"} <= \
        set(dry("compare", "B=exp-a"))
    assert "dvc remote add --default --force storage '/mnt/share/ocrforge-dvc'" in \
        dry("remote", "URL=/mnt/share/ocrforge-dvc")
    assert "dvc push" in dry("push") and "dvc pull" in dry("pull")


@pytest.mark.slow
def test_the_readme_dvc_workflow_end_to_end(tmp_path):
    took = Timings(tmp_path / "timings.txt")
    repo = copy_repo(tmp_path / "repo", WORKFLOW_TINY)
    took("dvc repro (every stage)", _ok(dvc(repo, "repro")))
    storage = tmp_path / "storage"
    _ok(dvc(repo, "remote", "add", "--default", "storage", str(storage)))  # what `make remote URL=...` runs
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "tiny run, remote storage")
    git(repo, "tag", "-a", "ocrforge-system@v0.1.0", "-m", "the tiny export")  # a model-registry version

    # ---- remote storage: push, and a fresh clone that pulls a workspace with nothing to rerun
    pushed = took("dvc push", _ok(dvc(repo, "push")))
    files = sum(1 for p in storage.rglob("*") if p.is_file())
    took(f"({pushed.stdout.strip().splitlines()[-1]}: {files} files, "
         f"{sum(p.stat().st_size for p in storage.rglob('*') if p.is_file()) / 1e6:.1f} MB)", None)
    assert re.search(rf"\b{files} files? pushed", pushed.stdout), pushed.stdout
    clone = tmp_path / "clone"
    _ok(subprocess.run(["git", "clone", "-q", str(repo), str(clone)], capture_output=True, text=True, check=False))
    assert not (clone / "models/export/manifest.json").exists()  # git holds only DVC's .gitignore files there
    # the optional distillation never ran here: its model folders are not cached, so pull does not look for them
    took("git clone + dvc pull", _ok(dvc(clone, "pull")))
    # the default pipeline (dvc.yaml): the optional distillation (stages/distill/dvc.yaml) never ran here
    assert "Data and pipelines are up to date" in took("dvc status", _ok(dvc(clone, "status", "dvc.yaml"))).stdout
    again = took("dvc repro (nothing to do)", _ok(dvc(clone, "repro")))
    assert "Running stage" not in again.stdout and "Data and pipelines are up to date" in again.stdout, again.stdout
    image = sorted((repo / "data/demo/images").glob("*.jpg"))[0].relative_to(repo)
    reads = {}
    for where in (repo, clone):
        run = _ok(subprocess.run([sys.executable, "-m", "ocrforge.cli", "infer", str(image)], cwd=where,
                                 capture_output=True, text=True, check=False))
        reads[where] = json.loads(run.stdout.strip().splitlines()[-1])
    took("ocrforge infer (twice)", None)
    assert reads[clone]["success"] is True and reads[clone] == reads[repo]

    # the exported system as an artifact, straight from the repo's remote: no clone, no pipeline
    dvc_bin = str(Path(sys.executable).parent / "dvc")
    fetched = tmp_path / "fetched"
    got = took("dvc artifacts get", _ok(subprocess.run(
        [dvc_bin, "artifacts", "get", str(repo), "ocrforge-system", "-o", str(fetched)], cwd=tmp_path,
        capture_output=True, text=True, check=False)))
    export = repo / "models/export"
    exported = sorted(p.relative_to(export) for p in export.rglob("*") if p.is_file())
    assert sorted(p.relative_to(fetched) for p in fetched.rglob("*") if p.is_file()) == exported, got.stdout
    for rel in exported:
        assert (fetched / rel).read_bytes() == (export / rel).read_bytes()
    _ok(subprocess.run([dvc_bin, "artifacts", "get", str(repo), "ocrforge-system", "--rev", "v0.1.0", "-o",
                        str(tmp_path / "v0.1.0")], cwd=tmp_path, capture_output=True, text=True, check=False))
    assert (tmp_path / "v0.1.0/manifest.json").read_bytes() == (export / "manifest.json").read_bytes()

    # ---- experiments: a queued two-value grid, one at a time; each reruns only train_rec and eval
    _ok(dvc(repo, "exp", "run", "--queue", "-S", "train_rec.lr=0.0001,0.001", "eval"))
    _ok(dvc(repo, "queue", "start", "-j", "1"))
    status = took("dvc exp run --queue (2 values) + dvc queue start -j 1, until done", _wait_for_queue(repo))
    assert len(re.findall(r"\bSuccess\b", status)) == 2 and "Failed" not in status, status
    # one experiment in the workspace, the same value as one of the grid's
    one = took("dvc exp run -S (workspace)", _ok(dvc(repo, "exp", "run", "-n", "lr-high", "-S",
                                                     "train_rec.lr=0.001", "eval")))
    assert "Running stage 'train_rec'" in one.stdout and "Running stage 'eval'" in one.stdout, one.stdout
    assert "Running stage 'train_det'" not in one.stdout and "Running stage 'split'" not in one.stdout

    exps = _experiments(json.loads(took("dvc exp show --json", _ok(dvc(repo, "exp", "show", "--json"))).stdout))
    by_lr = {}
    for name, exp in exps.items():
        by_lr.setdefault(exp["params"]["train_rec.lr"], []).append(name)
        assert exp["params"]["train_rec.epochs"] == 1 and exp["params"]["demo.num_images"] == 10
        metrics = exp["metrics"]
        assert set(metrics) == DECLARED_METRICS
        assert metrics["reports/train_rec/report.json"]["training.epochs_run"] == 1
        assert 0.0 <= metrics["reports/eval/metrics.json"]["e2e.hmean"] <= 1.0
        # what `dvc exp show` compares holds no timing
        assert not [k for m in metrics.values() for k in m
                    if any(w in k for w in TIMING_WORDS) and not k.startswith("versions.")]  # onnxruntime: a package
    assert sorted(by_lr) == [0.0001, 0.001] and len(by_lr[0.001]) == 2 and "lr-high" in by_lr[0.001]
    low = by_lr[0.0001][0]
    high = next(n for n in by_lr[0.001] if n != "lr-high")
    # training is deterministic: the queued run (in a temp dir) and the workspace run of one value agree
    assert exps["lr-high"]["metrics"] == exps[high]["metrics"]

    diff = json.loads(took("dvc exp diff", _ok(dvc(repo, "exp", "diff", low, high, "--json"))).stdout)
    assert {k: (v["old"], v["new"]) for k, v in diff["params"]["params.yaml"].items()} == \
        {"train_rec.lr": (0.0001, 0.001)}
    metrics_diff = json.loads(took("dvc metrics diff", _ok(dvc(repo, "metrics", "diff", low, high,
                                                               "--json"))).stdout)
    # only the recogniser's figures (and what eval reads with it) move; the val loss always does with the lr
    assert set(metrics_diff) <= {"reports/train_rec/report.json", "reports/eval/metrics.json"}
    assert "last.val/loss" in metrics_diff["reports/train_rec/report.json"]

    out = tmp_path / "plots"
    took("dvc plots diff", _ok(dvc(repo, "plots", "diff", low, high, "--out", str(out))))
    html = (out / "index.html").read_text()
    for title in ("rec loss (train total, CTC, NRTR; val CTC)", "rec accuracy (train and val)", "det learning rate"):
        assert title in html
    assert low in html and high in html

    # the winner (lowest last val loss) becomes a branch, then a commit on the main line through exp apply
    def val_loss(name):
        return exps[name]["metrics"]["reports/train_rec/report.json"]["last.val/loss"]

    winner = min((low, high), key=val_loss)
    winner_lr = exps[winner]["params"]["train_rec.lr"]
    _ok(dvc(repo, "exp", "branch", winner, "winner"))
    changed = set(git(repo, "diff", "--name-only", "HEAD", "winner").split())
    assert {"params.yaml", "dvc.lock", "reports/train_rec/report.json", "reports/train_rec/summary.json",
            "reports/train_rec/dvclive/metrics.json"} <= changed
    assert not [p for p in changed if p.startswith(("reports/train_det", "reports/split", "reports/distill", "data/"))]
    assert f"+  lr: {winner_lr}" in git(repo, "diff", "HEAD", "winner", "--", "params.yaml")

    took("dvc exp branch + dvc exp apply", _ok(dvc(repo, "exp", "apply", winner)))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"train_rec.lr={winner_lr}: experiment {winner}")
    assert set(git(repo, "diff", "--name-only", "HEAD~1", "HEAD").split()) == changed
    assert git(repo, "diff", "--name-only", "winner", "HEAD").strip() == ""
    assert "Data and pipelines are up to date" in _ok(dvc(repo, "status", "eval")).stdout

    # retraining the same config gives the same weights: no metric moves, only the timing files change
    took("dvc repro --force --single-item train_rec", _ok(dvc(repo, "repro", "--force", "--single-item",
                                                              "train_rec")))
    assert json.loads(_ok(dvc(repo, "metrics", "diff", "--json")).stdout) == {}
    assert set(git(repo, "diff", "--name-only", "HEAD").split()) == RERUN_CHANGES  # dvc.lock is autostaged
    assert "Running stage" not in _ok(dvc(repo, "repro", "eval")).stdout
