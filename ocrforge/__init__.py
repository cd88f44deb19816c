"""ocrforge: a reproducible pipeline from labelled images to a custom PP-OCRv4 text detector and recogniser."""

import os as _os

# Paddle reads OMP_NUM_THREADS once, when it is first imported, and defaults to a single thread.
_os.environ.setdefault("OMP_NUM_THREADS", str(_os.cpu_count() or 1))

__version__ = "0.1.0"


def __getattr__(name):
    """``from ocrforge import OCR`` without importing paddle at ``import ocrforge`` time."""
    if name == "OCR":
        from ocrforge.api import OCR

        return OCR
    raise AttributeError(f"module 'ocrforge' has no attribute {name!r}")
