"""One logger setup for stages and the CLI: plain lines on stderr, optionally mirrored to a file."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def get_logger(name: str = "ocrforge", log_file: str | Path | None = None) -> logging.Logger:
    """A logger under ``ocrforge`` that writes to stderr (once) and, if given, appends to ``log_file`` (in a
    data-parallel run only rank 0 does)."""
    root = logging.getLogger("ocrforge")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT, "%H:%M:%S"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
    if log_file is not None and os.environ.get("PADDLE_TRAINER_ID", "0") != "0":
        log_file = None  # data parallel: rank 0 writes the log file; paddle.distributed.launch keeps the others'
    if log_file is not None:
        path = Path(log_file).resolve()
        if not any(getattr(h, "baseFilename", None) == str(path) for h in root.handlers):
            path.parent.mkdir(parents=True, exist_ok=True)
            file_handler = logging.FileHandler(path, encoding="utf-8")
            file_handler.setFormatter(logging.Formatter(_FORMAT))
            root.addHandler(file_handler)
    return logging.getLogger(name if name.startswith("ocrforge") else f"ocrforge.{name}")
