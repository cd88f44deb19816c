"""Labelled test images: a PaddleOCR det label file (the split stage's ``det/*.txt``) or a PPOCRLabel folder, as
samples of :class:`~ocrforge.data.ppocrlabel.TextLine`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ocrforge.data.label_check import read_label_file
from ocrforge.data.ppocrlabel import TextLine


@dataclass
class Sample:
    """One labelled image: ``name`` (as in the label file), its path, and its lines."""

    name: str
    path: Path
    lines: list[TextLine]


def load_det_label_file(label_file: str | os.PathLike, data_dir: str | os.PathLike) -> list[Sample]:
    """Samples of a PaddleOCR det label file: ``<path relative to data_dir><TAB><JSON boxes>`` per line."""
    label_file = Path(label_file)
    if not label_file.is_file():
        raise FileNotFoundError(f"{label_file} not found; run the split stage (dvc repro split) first")
    samples = []
    for row in read_label_file(label_file, json_labels=True):
        name, boxes = row.image, json.loads(row.label)
        lines = [TextLine(tuple((float(x), float(y)) for x, y in b["points"]), b["transcription"],
                          bool(b.get("difficult", False))) for b in boxes]
        samples.append(Sample(name, Path(data_dir) / name, lines))
    return samples


def load_ppocrlabel_folder(folder: str | os.PathLike) -> list[Sample]:
    """Samples of a PPOCRLabel folder (``Label.txt``, checked images only; bad images left out)."""
    from ocrforge.data.ppocrlabel import load_ppocrlabel

    label_set = load_ppocrlabel(Path(folder) / "Label.txt", on_error="skip")
    return [Sample(im.key, im.path, list(im.lines)) for im in label_set.images]


def is_split_folder(source: str | os.PathLike) -> bool:
    """Whether ``source`` is a folder the split stage wrote (it holds ``det/test.txt``)."""
    return (Path(source) / "det" / "test.txt").is_file()


def load_testset(source: str | os.PathLike, limit: int = 0) -> list[Sample]:
    """The labelled test images of ``source``: the test split of a folder the split stage wrote
    (``det/test.txt``), or the checked images of a PPOCRLabel folder (``Label.txt``); the first ``limit``
    (0: all)."""
    source = Path(source)
    if is_split_folder(source):
        samples = load_det_label_file(source / "det" / "test.txt", source)
    elif (source / "Label.txt").is_file():
        samples = load_ppocrlabel_folder(source)
    else:
        raise FileNotFoundError(f"{source} holds neither det/test.txt (a split folder: run the split stage, dvc "
                                f"repro split) nor Label.txt (a PPOCRLabel folder)")
    return samples[:limit] if limit else samples
