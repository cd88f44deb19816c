"""Is this the project's Python? A stage script imports this module first, so that a stage started by a Python
without ocrforge's dependencies stops with one line saying what to run, not a ModuleNotFoundError deep inside.

dvc.yaml runs each stage as ``python stages/NAME.py``: the ``python`` found on PATH. ``.venv/bin/dvc repro``
without the virtual environment on PATH therefore runs the stages with the system Python. ``make repro`` puts
``.venv/bin`` first on PATH. Standard library only: it must run where nothing else is installed.
"""

from __future__ import annotations

import sys
from importlib.util import find_spec

# what a stage imports first from the pinned stack (pyproject.toml); any one missing means the wrong Python
REQUIRED_MODULES = ("paddle", "paddleocr", "dvclive", "numpy", "cv2")


def missing_modules(names: tuple[str, ...] = REQUIRED_MODULES) -> list[str]:
    """The top-level modules of ``names`` this Python cannot import."""
    return [name for name in names if find_spec(name) is None]


def wrong_python_message(missing: list[str], executable: str = sys.executable) -> str:
    """The one line a stage prints when ``executable`` lacks ``missing``."""
    return (f"ocrforge: {executable} lacks {', '.join(missing)}, so it is not the project's Python. Run the "
            f"pipeline with .venv/bin first on PATH: `make repro`, or `source .venv/bin/activate` and then "
            f"`dvc repro` (`.venv/bin/dvc repro` alone runs each stage's `python` from PATH)")


def require_project_python() -> None:
    """Exit with :func:`wrong_python_message` (status 1) unless this Python has ocrforge's dependencies."""
    missing = missing_modules()
    if missing:
        raise SystemExit(wrong_python_message(missing))


require_project_python()
