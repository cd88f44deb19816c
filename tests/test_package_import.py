"""Importing ocrforge and then paddle prints nothing (issue 17: every training began with paddle's
OMP_NUM_THREADS notice and a ccache warning, neither of which applies to ocrforge)."""

import io
import os
import subprocess
import sys

from ocrforge import _WithoutOmpNotice


def test_paddle_imported_after_ocrforge_prints_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "OMP_NUM_THREADS")}
    env["OMP_NUM_THREADS"] = "2"  # > 1: what makes paddle print its notice
    run = subprocess.run([sys.executable, "-c", "import ocrforge, paddle, sys; print(paddle.__version__, "
                          "__import__('os').environ['OMP_NUM_THREADS'], file=sys.stderr)"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0
    assert run.stderr == "3.3.1 2\n"  # the notice and the warning are gone; the thread count is kept


def test_a_stage_script_start_prints_nothing_either(tmp_path):
    """A stage script first checks the stack is installed (``find_spec("paddle")``, ocrforge.environment), then
    imports paddle: the lookup must not use up the quiet import (the notice was back in every stage's log)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "OMP_NUM_THREADS")}
    env["OMP_NUM_THREADS"] = "2"
    run = subprocess.run([sys.executable, "-c", "import ocrforge.environment, ocrforge, paddle; print('ok')"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout == "ok\n"
    assert run.stderr == ""


def test_only_the_omp_notice_is_left_out_of_stderr():
    out = io.StringIO()
    stream = _WithoutOmpNotice(out)
    print("WARNING: OMP_NUM_THREADS set to 2, not 1. The computation speed will not be optimized", file=stream)
    print("PLEASE USE OMP_NUM_THREADS WISELY.", file=stream)
    print("a real problem", file=stream)
    print("", file=stream)
    assert out.getvalue() == "a real problem\n\n"
