"""The images and ground-truth crops a benchmark reads: a split folder's test split or a PPOCRLabel folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ocrforge.data.crop import crop_text_line
from ocrforge.data.ppocrlabel import TextLine


@dataclass
class BenchmarkData:
    """Images (HWC uint8 BGR) with their labelled lines, and ground-truth crops with their texts."""

    source: str
    names: list[str]
    images: list[np.ndarray]
    labels: list[list[TextLine]]      # per image
    crops: list[np.ndarray]
    crop_texts: list[str]

    def __post_init__(self):
        if not self.images:
            raise ValueError(f"no images to benchmark in {self.source}; check the label file or folder")
        if not self.crops:
            raise ValueError(f"no text-line crops to benchmark in {self.source}; every line is ignored or unlabelled")


def load_benchmark_data(source: str | os.PathLike = "data/split", limit: int = 0) -> BenchmarkData:
    """The labelled test images of ``source`` (:func:`ocrforge.data.det_labels.load_testset`: a split folder's
    test split or a PPOCRLabel folder; the first ``limit``, 0: all) and their ground-truth crops: for a split
    folder the crops the split stage cut (``rec/test.txt``, those of the kept images), for a PPOCRLabel folder
    each non-ignored line cut out by ``crop_text_line``."""
    from ocrforge.data.det_labels import is_split_folder, load_testset
    from ocrforge.data.images import read_image

    samples = load_testset(source, limit)
    images = [read_image(s.path) for s in samples]
    if is_split_folder(source):
        crops, texts = _split_crops(Path(source), {Path(s.name).stem for s in samples} if limit else None)
        label = f"{source} (test split)"
    else:
        crops, texts = [], []
        for sample, image in zip(samples, images):
            for line in sample.lines:
                if not line.ignore:
                    crops.append(crop_text_line(image, line.box))
                    texts.append(line.text)
        label = str(source)
    return BenchmarkData(label, [s.name for s in samples], images, [s.lines for s in samples], crops, texts)


def _split_crops(data_dir: Path, stems: set[str] | None) -> tuple[list[np.ndarray], list[str]]:
    """The split stage's test crops and texts (``rec/test.txt``); with ``stems``, those cut from these images."""
    from ocrforge.data.images import read_image

    rec_file = data_dir / "rec" / "test.txt"
    if not rec_file.is_file():
        raise FileNotFoundError(f"{rec_file} not found; run the split stage (dvc repro split) first")
    crops, texts = [], []
    for line_no, raw in enumerate(rec_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        name, sep, text = raw.partition("\t")
        if not sep:
            raise ValueError(f"{rec_file}:{line_no}: expected '<crop path><TAB><text>'")
        if stems is not None and Path(name).stem.rsplit("_", 1)[0] not in stems:
            continue
        crops.append(read_image(data_dir / name))
        texts.append(text)
    return crops, texts
