"""ocrforge: a reproducible pipeline from labelled images to a custom PP-OCRv4 text detector and recogniser."""

import os as _os
import sys as _sys
import warnings as _warnings
from importlib.abc import MetaPathFinder as _MetaPathFinder
from importlib.util import find_spec as _find_spec

# Paddle reads OMP_NUM_THREADS once, when it is first imported, and defaults to a single thread.
_os.environ.setdefault("OMP_NUM_THREADS", str(_os.cpu_count() or 1))

# Two notices paddle prints on import that do not apply here: ccache is for compiling C++ extensions, which
# ocrforge never does; and OMP_NUM_THREADS > 1 is set on purpose above (the notice is about data parallelism
# and OpenBLAS builds; the pinned wheel uses MKL, and data-parallel runs set OMP_NUM_THREADS per process).
_warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)
_OMP_NOTICE = ("WARNING: OMP_NUM_THREADS set to", "PLEASE USE OMP_NUM_THREADS WISELY")


class _WithoutOmpNotice:
    """``sys.stderr`` while paddle imports: everything but paddle's two-line OMP_NUM_THREADS notice."""

    def __init__(self, stream):
        self._stream = stream
        self._dropping = False

    def write(self, text):
        if text.startswith(_OMP_NOTICE) or (self._dropping and text == "\n"):  # print() writes the end apart
            self._dropping = text != "\n"
            return len(text)
        self._dropping = False
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


class _QuietPaddleImport(_MetaPathFinder):
    """Imports ``paddle`` (once, the first time anything does) with its OMP_NUM_THREADS notice left out.

    It stays in ``sys.meta_path`` until paddle is actually imported: a mere lookup (the stage scripts' check
    that the pinned stack is installed calls ``find_spec("paddle")``) must not use it up."""

    def __init__(self):
        self._looking = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "paddle" or self._looking:
            return None
        self._looking = True  # the lookup below asks the other finders, not this one again
        try:
            spec = _find_spec("paddle")
        finally:
            self._looking = False
        if spec is not None and spec.loader is not None:
            run = spec.loader.exec_module

            def exec_module(module):
                if self in _sys.meta_path:
                    _sys.meta_path.remove(self)
                stderr = _sys.stderr
                _sys.stderr = _WithoutOmpNotice(stderr)
                try:
                    run(module)
                finally:
                    _sys.stderr = stderr

            spec.loader.exec_module = exec_module
        return spec


if "paddle" not in _sys.modules:
    _sys.meta_path.insert(0, _QuietPaddleImport())

__version__ = "0.1.0"


def __getattr__(name):
    """``from ocrforge import OCR`` without importing paddle at ``import ocrforge`` time."""
    if name == "OCR":
        from ocrforge.api import OCR

        return OCR
    raise AttributeError(f"module 'ocrforge' has no attribute {name!r}")
