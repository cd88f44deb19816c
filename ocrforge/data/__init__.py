"""Labelled data: reading PPOCRLabel folders, splitting, cropping, the demo generator and training loaders.

Importing this package imports no paddle; ``build_dataloader`` and ``check_rec_labels`` are loaded on first use.
"""

_LAZY = {
    "build_dataloader": "ocrforge.data.loader",
    "check_rec_labels": "ocrforge.data.label_check",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ocrforge.data' has no attribute {name!r}")
