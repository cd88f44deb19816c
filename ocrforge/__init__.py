"""ocrforge: a reproducible pipeline from labelled images to a custom PP-OCRv4 text detector and recogniser."""

import os as _os

# Paddle reads OMP_NUM_THREADS once, when it is first imported, and defaults to a single thread.
_os.environ.setdefault("OMP_NUM_THREADS", str(_os.cpu_count() or 1))

__version__ = "0.1.0"
