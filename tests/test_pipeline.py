"""Real `dvc repro` runs of the pipeline in a temporary copy of the repository, on tiny settings."""

import ast
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline_copy import REPO_ROOT, copy_repo, dvc

TINY = {
    "demo.num_images": 10, "demo.width": 240, "demo.height": 180,
    "train_det.epochs": 1, "train_det.batch_size": 2, "train_det.crop_size": 160, "train_det.eval_side_len": 320,
    "train_det.save_every_steps": 1, "train_det.postprocess_search.unclip_ratio": [1.5, 2.5],
    "train_det.postprocess_search.box_thresh": [],
    "distill_det.epochs": 1, "distill_det.batch_size": 2, "distill_det.crop_size": 160,
    "distill_det.eval_side_len": 320, "distill_det.save_every_steps": 0,
    "train_rec.epochs": 1, "train_rec.batch_size": 4, "train_rec.eval_batch_size": 8,
    "export.parity_images": 2, "eval.gallery_size": 2,
    "benchmark.limit": 2, "benchmark.repeats": 1, "benchmark.memory_alone": False,
}

# loaded by stages but unable to change what one writes: the package's thread-count default, the log format,
# a package that only forwards two names to modules whose own files are traced, and the check that the stage
# runs under the project's Python
NOT_STAGE_DEPS = {"ocrforge/__init__.py", "ocrforge/log.py", "ocrforge/data/__init__.py", "ocrforge/environment.py"}


def _docstring_only(relative: str) -> bool:
    body = ast.parse((REPO_ROOT / relative).read_text()).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def tracing_imports(trace_dir: Path) -> dict:
    """Environment that makes each stage script record the ocrforge files it loaded into ``trace_dir``."""
    sitecustomize_dir = Path(__file__).parent / "stage_imports"
    path = os.pathsep.join(filter(None, [str(sitecustomize_dir), os.environ.get("PYTHONPATH")]))
    return {"OCRFORGE_IMPORT_TRACE": str(trace_dir), "PYTHONPATH": path}


def undeclared_code_deps(repo: Path, trace_dir: Path) -> dict:
    """For each stage that ran, the ocrforge files it loaded that its dvc.yaml ``deps`` do not cover: editing
    one of them would leave that stage's outputs stale after `dvc repro`."""
    from ocrforge.stages_registry import DVC_FILES

    stages = {name: stage for dvc_file in DVC_FILES
              for name, stage in yaml.safe_load((repo / dvc_file).read_text())["stages"].items()}
    by_script = {next(Path(word).stem for word in stage["cmd"].split() if word.endswith(".py")): name
                 for name, stage in stages.items()}
    loaded: dict[str, set] = {}
    for record in trace_dir.glob("*.json"):
        loaded.setdefault(by_script[record.name.split(".")[0]], set()).update(json.loads(record.read_text()))
    gaps = {}
    for name, files in sorted(loaded.items()):
        deps = [dep if isinstance(dep, str) else next(iter(dep)) for dep in stages[name]["deps"]]
        missing = sorted(f for f in files - NOT_STAGE_DEPS if not _docstring_only(f)
                         and not any(f == dep or f.startswith(dep.rstrip("/") + "/") for dep in deps))
        if missing:
            gaps[name] = missing
    return gaps


@pytest.mark.slow
def test_dvc_repro_split_then_nothing_to_do(tmp_path):
    repo = copy_repo(tmp_path, {"demo.num_images": 10, "demo.width": 240, "demo.height": 180})
    first = dvc(repo, "repro", "split")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Running stage 'demo_data'" in first.stdout and "Running stage 'split'" in first.stdout
    metrics = json.loads((repo / "reports" / "split.json").read_text())
    assert {s: c["images"] for s, c in metrics["splits"].items()} == {"train": 6, "val": 2, "test": 2}
    assert (repo / "data" / "split" / "det" / "train.txt").is_file()

    again = dvc(repo, "repro", "split")
    assert again.returncode == 0, again.stderr
    assert "Running stage" not in again.stdout

    params = (repo / "params.yaml").read_text().replace("seed: 42", "seed: 43", 1)
    (repo / "params.yaml").write_text(params)
    changed = dvc(repo, "repro", "split")
    assert "Running stage 'split'" in changed.stdout and "Running stage 'demo_data'" not in changed.stdout


@pytest.mark.slow
def test_whole_pipeline_on_tiny_settings(tmp_path, tmp_path_factory):
    repo = copy_repo(tmp_path, TINY)
    trace_dir = tmp_path_factory.mktemp("stage_imports")
    run = dvc(repo, "repro", env_extra=tracing_imports(trace_dir))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    from ocrforge.stages_registry import DEFAULT_STAGES, DISTILL_STAGES

    assert re.findall(r"Running stage '(\w+)'", run.stdout) == list(DEFAULT_STAGES)  # not the distillation
    assert not (repo / "models/distill_det").exists()
    assert len({record.name.split(".")[0] for record in trace_dir.glob("*.json")}) == 8
    assert undeclared_code_deps(repo, trace_dir) == {}
    det = json.loads((repo / "reports/train_det/report.json").read_text())
    assert det["verdict"]["status"] in {"improving", "stalled", "converged", "overfitting", "diverging"}
    assert det["training"]["stopped_by"] in {"epoch_cap", "early_stopping"} and det["training"]["epochs_cap"] == 1
    assert (repo / "reports/train_rec/dvclive/plots/metrics/val/acc.tsv").is_file()
    assert (repo / "models/det/best_accuracy.pdparams").is_file()
    metrics = json.loads((repo / "reports/eval/metrics.json").read_text())
    # the shipped detector finds the demo's printed lines after a tiny fine-tune, and some are read right; a line
    # read right was found, so e2e cannot beat det
    assert metrics["det"]["hmean"] > 0.5 and 0.0 < metrics["e2e"]["hmean"] <= metrics["det"]["hmean"], metrics
    misses = json.loads((repo / "reports/eval/misses.json").read_text())  # every line read or put in one kind
    assert misses["lines"] == metrics["lines"] and misses["read"] == round(metrics["e2e"]["recall"] * metrics["lines"])
    assert misses["read"] + sum(entry["count"] for entry in misses["kinds"].values()) == misses["lines"]
    export = json.loads((repo / "reports/export.json").read_text())
    assert export["parity"]["same"] is True
    assert (repo / "models/export/det/inference.json").is_file()
    # the post-process pair chosen on val (train_det) is the one evaluated and exported
    search = json.loads((repo / "reports/train_det/postprocess.json").read_text())
    trained_320 = [r for r in search["rows"] if (r["weights"], r["limit_side_len"]) == ("trained", 320)]
    assert [r["unclip_ratio"] for r in trained_320] == [1.5, 2.0, 2.5]
    assert {(r["weights"], r["limit_side_len"]) for r in search["rows"]} == {
        (weights, side) for weights in ("trained", "pretrained") for side in (320, 960, 1280)}
    assert search["best"]["hmean"] == max(r["hmean"] for r in search["rows"])
    manifest = json.loads((repo / "models/export/manifest.json").read_text())
    assert manifest["settings"]["det_limit_side_len"] == search["best"]["limit_side_len"]
    # the unclip ratio and drop_score chosen on val end to end (tune_system), around the detector's own choice,
    # are the ones evaluated and exported
    tuned = json.loads((repo / "reports/tune_system/system.json").read_text())
    ratios = sorted({search["best"]["unclip_ratio"], 1.5, 2.0, 2.5, 3.0})
    assert [(r["unclip_ratio"], r["drop_score"]) for r in tuned["rows"]] == [
        (u, d) for u in ratios for d in (0.5, 0.6, 0.7, 0.8, 0.9)]
    assert tuned["configured"]["unclip_ratio"] == search["best"]["unclip_ratio"]
    assert tuned["best"]["hmean"] == max(r["hmean"] for r in tuned["rows"])
    assert manifest["settings"]["drop_score"] == tuned["best"]["drop_score"]
    assert manifest["settings"]["det_db_unclip_ratio"] == tuned["best"]["unclip_ratio"]
    bench = json.loads((repo / "reports/benchmark.json").read_text())
    from ocrforge.benchmark import ENGINES

    engines = yaml.safe_load((repo / "params.yaml").read_text())["benchmark"]["engines"]
    assert set(bench["engines"]) == set(engines) <= set(ENGINES)
    assert bench["limit"]["engines"]["ocrforge"]["models"] == "export"
    assert export["onnx"]["system"]["same"] is True and manifest["onnx"] == {"det": "onnx/det.onnx",
                                                                           "rec": "onnx/rec.onnx"}
    shown = dvc(repo, "metrics", "show")
    assert "reports/eval/metrics.json" in shown.stdout
    nothing = dvc(repo, "repro")
    assert "Running stage" not in nothing.stdout, nothing.stdout
    # the trained models' configs keep the dictionary as params.yaml names it, not this machine's path
    rec_config = (repo / "models/rec/config.yml").read_text()
    assert "character_dict_path: ppocr/utils/en_dict.txt" in rec_config and "site-packages" not in rec_config
    assert "site-packages" not in (repo / "models/export/manifest.json").read_text()
    # training is deterministic: retraining the detector gives the same weights, so nothing downstream reruns
    weights = (repo / "models/det/best_accuracy.pdparams").read_bytes()
    again = dvc(repo, "repro", "--force", "--single-item", "train_det")
    assert again.returncode == 0 and "Running stage 'train_det'" in again.stdout, again.stdout[-3000:]
    assert (repo / "models/det/best_accuracy.pdparams").read_bytes() == weights
    after = dvc(repo, "repro")
    assert "Running stage" not in after.stdout, after.stdout
    # the optional distillation: its own dvc.yaml, run on demand; the default pipeline stays as it was
    distill = dvc(repo, "repro", "stages/distill/dvc.yaml", env_extra=tracing_imports(trace_dir))
    assert distill.returncode == 0, distill.stdout[-3000:] + distill.stderr[-3000:]
    assert re.findall(r"Running stage '(?:stages/distill/dvc.yaml:)?(\w+)'", distill.stdout) == list(DISTILL_STAGES)
    assert len({record.name.split(".")[0] for record in trace_dir.glob("*.json")}) == 10
    assert undeclared_code_deps(repo, trace_dir) == {}
    converted = json.loads((repo / "reports/ppocrv3_det.json").read_text())
    assert converted["converted_values"] == 592_625 and converted["parity_max_abs_diff"] < 1e-4
    assert "Running stage" not in dvc(repo, "repro").stdout
    distilled = json.loads((repo / "reports/distill_det/summary.json").read_text())
    assert distilled["epochs_run"] == 1 and "val/hmean" in distilled["last_record"]

    # eval.detector picks the distilled Student: eval and export run again on it, the rest stays
    params = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(params.replace("detector: models/det", "detector: models/distill_det", 1))
    student = dvc(repo, "repro", "eval", "export", env_extra=tracing_imports(trace_dir))
    assert student.returncode == 0, student.stdout[-3000:] + student.stderr[-3000:]
    assert undeclared_code_deps(repo, trace_dir) == {}
    assert "Running stage 'eval'" in student.stdout and "Running stage 'export'" in student.stdout
    assert "Running stage 'train_det'" not in student.stdout and "Running stage 'distill_det'" not in student.stdout
    assert json.loads((repo / "reports/export.json").read_text())["parity"]["same"] is True
    from ocrforge.benchmark import count_parameters

    assert count_parameters(repo / "models/export/paddleocr/det")["parameters"] == 592_625  # the Student alone


@pytest.mark.slow
def test_killed_training_resumes_from_its_checkpoint(tmp_path):
    """A train_det killed after its first checkpoint continues from it when `dvc repro` runs again."""
    repo = copy_repo(tmp_path, {**TINY, "train_det.epochs": 2, "train_det.early_stopping_patience": 0})
    assert dvc(repo, "repro", "split").returncode == 0
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dvc"), "repro", "train_det"], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    states = repo / "models/det/latest.states.json"
    deadline = time.time() + 600
    while not states.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert states.exists(), "no checkpoint was written"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    step_before = json.loads(states.read_text())["state"]["global_step"]
    assert step_before >= 1
    again = dvc(repo, "repro", "train_det")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    log = (repo / "models/det/train.log").read_text()
    assert "resumed from models/det/latest" in log
    summary = json.loads((repo / "reports/train_det/summary.json").read_text())
    assert summary["resumed_from"] == "models/det/latest"
    assert summary["epochs_run"] == 2
