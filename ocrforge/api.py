"""The Python API: ``OCR("models/export").ocr(path_or_array) -> dict``, the same JSON ``ocrforge infer`` prints."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ocrforge.data.images import read_image
from ocrforge.system import OcrResult, load_exported_system


class OCR:
    """The exported detector and recogniser, loaded once (one predictor each) and reused for every image.

    ``det_db_thresh``, ``det_db_box_thresh``, ``det_db_unclip_ratio`` and ``drop_score`` default to the
    values in the export's ``manifest.json``; ``backend`` is ``onnx`` (onnxruntime), ``paddle`` (paddle
    inference) or None (onnx where the export has ONNX models: the faster one); ``use_onednn`` (paddle) None
    follows the manifest; ``threads`` (None: every core) is each model's math-library thread count.
    """

    def __init__(self, model_dir: str | os.PathLike = "models/export", *, det_db_thresh: float | None = None,
                 det_db_box_thresh: float | None = None, det_db_unclip_ratio: float | None = None,
                 drop_score: float | None = None, use_onednn: bool | None = None, threads: int | None = None,
                 backend: str | None = None):
        self.model_dir = Path(model_dir)
        self.system = load_exported_system(
            self.model_dir, use_onednn=use_onednn, threads=threads, backend=backend, det_db_thresh=det_db_thresh,
            det_db_box_thresh=det_db_box_thresh, det_db_unclip_ratio=det_db_unclip_ratio, drop_score=drop_score,
        )
        self.backend = self.system.backend

    def read(self, image: str | os.PathLike | np.ndarray) -> OcrResult:
        """The :class:`OcrResult` of an image file or an HWC uint8 BGR array.

        Raises FileNotFoundError (no such file), ImageReadError (an empty file, one over OpenCV's pixel limit,
        not an image; the message says which) or ValueError (bad array). An alpha channel is composited on white.
        """
        if not isinstance(image, np.ndarray):
            image = read_image(image)
        return self.system(image)

    def ocr(self, image: str | os.PathLike | np.ndarray) -> dict:
        """``{"success": true, "full_text": str, "lines": [{"box": [[x, y] x4], "text": str, "score": float}]}``,
        lines in reading order."""
        return self.read(image).to_json()
