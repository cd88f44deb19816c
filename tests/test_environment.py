"""A stage started by a Python without the project's packages stops with one line saying what to run
(issue 17: `.venv/bin/dvc repro` without the venv on PATH ran `python stages/x.py` with the system Python and
failed with `ModuleNotFoundError: No module named 'ocrforge'` inside the stage)."""

import subprocess
import sys

import pytest

from ocrforge.environment import REQUIRED_MODULES, missing_modules, wrong_python_message
from ocrforge.stages_registry import PIPELINE_STAGES


def test_missing_modules_names_only_the_absent_ones():
    assert missing_modules(("json", "no_such_module_17", "paddle")) == ["no_such_module_17"]
    assert missing_modules() == []  # the Python running the tests is the project's


@pytest.mark.parametrize("stage", PIPELINE_STAGES)
def test_a_stage_under_a_python_without_the_stack_says_what_to_run(repo_root, tmp_path, stage):
    # -S: no site-packages, -E: no PYTHONPATH, as a bare system Python; run outside the project's folder too
    run = subprocess.run([sys.executable, "-S", "-E", str(repo_root / "stages" / f"{stage}.py")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stdout == ""
    assert run.stderr == wrong_python_message(list(REQUIRED_MODULES), sys.executable) + "\n"
    assert run.stderr.startswith(f"ocrforge: {sys.executable} lacks paddle, paddleocr, dvclive, numpy, cv2, so it "
                                 f"is not the project's Python. Run the pipeline with .venv/bin first on PATH: "
                                 f"`make repro`, or `source .venv/bin/activate` and then `dvc repro`")
