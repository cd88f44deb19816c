"""The pipeline's stages in :data:`ocrforge.registry.STAGES`, for ``ocrforge stage NAME``.

Each built-in stage runs the project's own script ``stages/NAME.py`` from the current folder (the project
root, where ``dvc.yaml`` and ``params.yaml`` are), with the arguments of its ``cmd`` in dvc.yaml (resolved by
DVC itself: ``${...}`` from params.yaml), exactly as ``dvc repro`` runs it, but without DVC: nothing is recorded in
``dvc.lock``, so ``dvc status`` then shows the stage as changed. Arguments given after the name follow
dvc.yaml's, so an option given again wins (``ocrforge stage eval --input FOLDER --out reports/x``). The
scripts stay outside the package (they are the DVC stages' ``cmd``); this module only names them. A plugin
registers a stage of its own with ``@STAGES.register("name")`` on a function taking no arguments.
"""

from __future__ import annotations

import runpy
import shlex
import sys
from pathlib import Path
from typing import Sequence

from ocrforge.registry import STAGES

# The stages of dvc.yaml (what `dvc repro` runs), then those of the optional distillation's
# stages/distill/dvc.yaml; each is the script stages/<name>.py (tests check the lists agree).
DEFAULT_STAGES = ("demo_data", "split", "train_det", "train_rec", "tune_system", "eval", "export", "benchmark")
DISTILL_STAGES = ("ppocrv3_det", "distill_det")
PIPELINE_STAGES = DEFAULT_STAGES + DISTILL_STAGES
# where each group's stages are declared
DVC_FILES = {"dvc.yaml": DEFAULT_STAGES, "stages/distill/dvc.yaml": DISTILL_STAGES}


class StageScriptMissing(FileNotFoundError):
    """``ocrforge stage NAME`` was run outside a project folder holding ``stages/NAME.py``."""


class StageCommandError(ValueError):
    """A stage's ``cmd`` in dvc.yaml that ``ocrforge stage`` cannot turn into the script's arguments."""


def stage_script(name: str, root: str | Path = ".") -> Path:
    """The script of pipeline stage ``name`` under the project folder ``root``."""
    return Path(root) / "stages" / f"{name}.py"


def stage_arguments(name: str, root: str | Path = ".") -> list[str]:
    """The arguments dvc.yaml's ``cmd`` gives ``stages/<name>.py`` in the project in ``root``, resolved by DVC's
    own templating (``vars``, ``${...}`` from params.yaml), so they are exactly what ``dvc repro`` runs."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    root = Path(root)
    dvc_file = next((f for f, names in DVC_FILES.items() if name in names), "dvc.yaml")
    if not (root / dvc_file).is_file():
        raise StageScriptMissing(f"{(root / dvc_file).resolve()} not found; run `ocrforge stage {name}` in the "
                                 f"ocrforge project folder (the one holding dvc.yaml, params.yaml and stages/)")
    try:
        # uninitialized: a project folder without .dvc/ (a copy of the scripts) still resolves its cmd
        with Repo(str(root), uninitialized=True) as repo:
            cmd = repo.stage.collect(f"{dvc_file}:{name}")[0].cmd
    except DvcException as exc:
        raise StageCommandError(f"{dvc_file}'s stage {name}: {exc}; fix dvc.yaml or params.yaml "
                                f"(every ${{key}} of a cmd must be in params.yaml)") from exc
    words = shlex.split(str(cmd), comments=True)
    script = f"stages/{name}.py"
    if script not in words:
        raise StageCommandError(f"{dvc_file}'s {name} cmd does not run {script}: {cmd!r}")
    return words[words.index(script) + 1:]


def run_stage_script(name: str, root: str | Path = ".", extra_args: Sequence[str] = ()) -> None:
    """Run ``stages/<name>.py`` of the project in ``root`` as dvc.yaml's ``cmd`` runs it (its ``__main__``
    block, with :func:`stage_arguments`), then ``extra_args``."""
    script = stage_script(name, root)
    if not script.is_file():
        raise StageScriptMissing(
            f"{script.resolve()} not found; run `ocrforge stage {name}` in the ocrforge project folder "
            f"(the one holding dvc.yaml, params.yaml and stages/)"
        )
    argv = sys.argv
    sys.argv = [str(script), *stage_arguments(name, root), *extra_args]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv


def _register(name: str) -> None:
    def run(*extra_args: str) -> None:
        run_stage_script(name, ".", extra_args)

    run.__name__ = run.__qualname__ = f"stage_{name}"
    run.__doc__ = (f"The pipeline stage {name}: stages/{name}.py of the project in the current folder, with "
                   f"dvc.yaml's arguments, then ``extra_args``.")
    STAGES.register(name)(run)


for _name in PIPELINE_STAGES:
    _register(_name)
