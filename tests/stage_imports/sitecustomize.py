"""On PYTHONPATH only in tests/test_pipeline.py's DVC runs: when a stage script exits, it records which
ocrforge source files it loaded, so the test can check that dvc.yaml lists each of them in that stage's deps."""

import atexit
import json
import os
import sys
from pathlib import Path


def _record_loaded_modules() -> None:
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    package = sys.modules.get("ocrforge")
    if script is None or script.parent.name != "stages" or package is None:
        return
    root = Path(package.__file__).resolve().parents[1]
    loaded = sorted({
        Path(module.__file__).resolve().relative_to(root).as_posix()
        for name, module in list(sys.modules.items())
        if (name == "ocrforge" or name.startswith("ocrforge.")) and getattr(module, "__file__", None)
    })
    out = Path(os.environ["OCRFORGE_IMPORT_TRACE"]) / f"{script.stem}.{os.getpid()}.json"
    out.write_text(json.dumps(loaded))


if os.environ.get("OCRFORGE_IMPORT_TRACE"):
    atexit.register(_record_loaded_modules)
