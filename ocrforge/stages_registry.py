"""The pipeline's stages in :data:`ocrforge.registry.STAGES`, for ``ocrforge stage NAME``.

Each built-in stage runs the project's own script ``stages/NAME.py`` from the current folder (the project
root, where ``dvc.yaml`` and ``params.yaml`` are), exactly as ``dvc repro`` runs its ``cmd`` (``python
stages/NAME.py``), but without DVC: nothing is recorded in ``dvc.lock``, so ``dvc status`` then shows the
stage as changed. The scripts stay outside the package (they are the DVC stages' ``cmd``); this module only
names them. A plugin registers a stage of its own with ``@STAGES.register("name")`` on a function taking no
arguments.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from ocrforge.registry import STAGES

# The stages of dvc.yaml (what `dvc repro` runs), then those of the optional distillation's
# stages/distill/dvc.yaml; each is the script stages/<name>.py (tests check the lists agree).
DEFAULT_STAGES = ("demo_data", "split", "train_det", "train_rec", "eval", "export", "benchmark")
DISTILL_STAGES = ("ppocrv3_det", "distill_det")
PIPELINE_STAGES = DEFAULT_STAGES + DISTILL_STAGES
# where each group's stages are declared
DVC_FILES = {"dvc.yaml": DEFAULT_STAGES, "stages/distill/dvc.yaml": DISTILL_STAGES}


class StageScriptMissing(FileNotFoundError):
    """``ocrforge stage NAME`` was run outside a project folder holding ``stages/NAME.py``."""


def stage_script(name: str, root: str | Path = ".") -> Path:
    """The script of pipeline stage ``name`` under the project folder ``root``."""
    return Path(root) / "stages" / f"{name}.py"


def run_stage_script(name: str, root: str | Path = ".") -> None:
    """Run ``stages/<name>.py`` of the project in ``root`` as ``python stages/<name>.py`` would (its
    ``__main__`` block, no command-line arguments, so every setting comes from ``params.yaml``)."""
    script = stage_script(name, root)
    if not script.is_file():
        raise StageScriptMissing(
            f"{script.resolve()} not found; run `ocrforge stage {name}` in the ocrforge project folder "
            f"(the one holding dvc.yaml, params.yaml and stages/)"
        )
    argv = sys.argv
    sys.argv = [str(script)]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv


def _register(name: str) -> None:
    def run() -> None:
        run_stage_script(name)

    run.__name__ = run.__qualname__ = f"stage_{name}"
    run.__doc__ = f"The pipeline stage {name}: stages/{name}.py of the project in the current folder."
    STAGES.register(name)(run)


for _name in PIPELINE_STAGES:
    _register(_name)
