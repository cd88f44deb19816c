"""Tiny real data for the loader tests: recognition crops and detection images written with cv2, their label
files in the split stage's layout, and PaddleOCR transform configs. Helpers only; no tests here."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ocrforge.resources import paddleocr_dir

EN_DICT = str(paddleocr_dir() / "ppocr" / "utils" / "en_dict.txt")
MAX_TEXT_LENGTH = 25
GLOBAL = {"character_dict_path": EN_DICT, "use_space_char": True, "max_text_length": MAX_TEXT_LENGTH}

REC_TEXTS = [
    "HELLO 12", "total 4.50", "abc", "Receipt", "x", "CASH", "No. 7", "item two",
    "ok", "THANK YOU", "9.99", "sum",
]
TOO_LONG = "this text is far too long for the model"  # 39 characters > MAX_TEXT_LENGTH


def write_rec_data(root: Path, texts: list[str] = REC_TEXTS, split: str = "train") -> Path:
    """PNG crops ``rec/<split>/<i>.png`` with their text drawn, and ``rec/<split>.txt``. Returns the label file."""
    (root / "rec" / split).mkdir(parents=True, exist_ok=True)
    lines = []
    for i, text in enumerate(texts):
        width = max(24, 9 * len(text) + 8)
        img = np.full((24, width, 3), 255, np.uint8)
        cv2.putText(img, text, (2, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
        rel = f"rec/{split}/{i:03d}.png"
        cv2.imwrite(str(root / rel), img)
        lines.append(f"{rel}\t{text}")
    label_file = root / "rec" / f"{split}.txt"
    label_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return label_file


def write_det_data(root: Path, n_images: int = 4, split: str = "train") -> Path:
    """JPEG pages ``det/images/<i>.jpg`` with i+1 dark text boxes each, and ``det/<split>.txt``."""
    (root / "det" / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n_images):
        img = np.full((96, 128, 3), 235, np.uint8)
        boxes = []
        for b in range(i % 3 + 1):
            x0, y0 = 8 + 10 * b, 10 + 28 * b
            x1, y1 = x0 + 80, y0 + 18
            cv2.rectangle(img, (x0, y0), (x1, y1), (30, 30, 30), -1)
            boxes.append({"transcription": f"w{b}", "points": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]],
                          "difficult": False})
        rel = f"det/images/{i:03d}.jpg"
        cv2.imwrite(str(root / rel), img)
        lines.append(f"{rel}\t{json.dumps(boxes)}")
    label_file = root / "det" / f"{split}.txt"
    label_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return label_file


REC_KEEP = ["image", "label_ctc", "label_gtc", "length", "valid_ratio"]


def rec_transforms(resize: bool = True) -> list[dict]:
    """PP-OCRv4 recognition transforms; without ``resize`` for MultiScaleDataSet."""
    ops = [
        {"DecodeImage": {"img_mode": "BGR", "channel_first": False}},
        {"MultiLabelEncode": {"gtc_encode": "NRTRLabelEncode"}},
    ]
    if resize:
        ops.append({"RecResizeImg": {"image_shape": [3, 48, 320]}})
    ops.append({"KeepKeys": {"keep_keys": REC_KEEP}})
    return ops


NORMALIZE = {"NormalizeImage": {"scale": "1./255.", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                                "order": "hwc"}}


# configs/det's augmentation: albumentations underneath, with a random generator of its own
IAA_AUGMENT = {"IaaAugment": {"augmenter_args": [
    {"type": "Fliplr", "args": {"p": 0.5}},
    {"type": "Affine", "args": {"rotate": [-10, 10]}},
    {"type": "Resize", "args": {"size": [0.5, 3]}},
]}}


def det_train_transforms() -> list[dict]:
    return [
        {"DecodeImage": {"img_mode": "BGR", "channel_first": False}},
        {"DetLabelEncode": None},
        IAA_AUGMENT,
        {"EastRandomCropData": {"size": [64, 64], "max_tries": 50, "keep_ratio": True}},
        {"MakeBorderMap": {"shrink_ratio": 0.4, "thresh_min": 0.3, "thresh_max": 0.7}},
        {"MakeShrinkMap": {"shrink_ratio": 0.4, "min_text_size": 8}},
        NORMALIZE,
        {"ToCHWImage": None},
        {"KeepKeys": {"keep_keys": ["image", "threshold_map", "threshold_mask", "shrink_map", "shrink_mask"]}},
    ]


def det_eval_transforms() -> list[dict]:
    return [
        {"DecodeImage": {"img_mode": "BGR", "channel_first": False}},
        {"DetLabelEncode": None},
        {"DetResizeForTest": {"image_shape": [64, 64]}},
        NORMALIZE,
        {"ToCHWImage": None},
        {"KeepKeys": {"keep_keys": ["image", "shape", "polys", "ignore_tags"]}},
    ]


def section(data_dir: Path, label_file: Path, transforms: list[dict], batch_size: int = 4, shuffle: bool = True,
            name: str = "SimpleDataSet", num_workers: int = 0, drop_last: bool = False, **dataset_keys) -> dict:
    """A PaddleOCR ``Train``/``Eval`` section."""
    return {
        "dataset": {"name": name, "data_dir": str(data_dir), "label_file_list": [str(label_file)],
                    "transforms": transforms, **dataset_keys},
        "loader": {"shuffle": shuffle, "drop_last": drop_last, "batch_size_per_card": batch_size,
                   "num_workers": num_workers},
    }
