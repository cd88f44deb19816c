"""Detection ground truth: a PaddleOCR det label file (the split stage's ``det/*.txt``) as samples."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ocrforge.data.label_check import read_label_file
from ocrforge.data.ppocrlabel import IGNORE_TEXTS


@dataclass
class Sample:
    """One labelled image: ``name`` (as in the label file), its path, and its lines
    ``[{"points": (P, 2), "text": str, "ignore": bool}]``."""

    name: str
    path: Path
    lines: list[dict]


def load_det_label_file(label_file: str | os.PathLike, data_dir: str | os.PathLike) -> list[Sample]:
    """Samples of a PaddleOCR det label file: ``<path relative to data_dir><TAB><JSON boxes>`` per line."""
    label_file = Path(label_file)
    if not label_file.is_file():
        raise FileNotFoundError(f"{label_file} not found; run the split stage (dvc repro split) first")
    samples = []
    for row in read_label_file(label_file, json_labels=True):
        name, boxes = row.image, json.loads(row.label)
        lines = [{"points": np.asarray(b["points"], dtype=np.float32), "text": b["transcription"],
                  "ignore": bool(b.get("difficult", False)) or b["transcription"] in IGNORE_TEXTS} for b in boxes]
        samples.append(Sample(name, Path(data_dir) / name, lines))
    return samples
