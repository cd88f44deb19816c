"""Micro-benchmarks of the inference path's hot helpers (``make bench``); each checks its output, so under
``make test`` (``--benchmark-disable``) they run once as ordinary tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ocrforge.data.crop import crop_text_line
from ocrforge.system import SystemSettings, TextSystem, resize_norm_rec


@pytest.fixture(scope="module")
def en_dict() -> Path:
    import paddleocr

    return Path(paddleocr.__file__).parent / "ppocr" / "utils" / "en_dict.txt"


@pytest.fixture(scope="module")
def system(en_dict) -> TextSystem:
    """A system whose pre- and post-processing are real; its models are never called here."""

    def no_model(batch):
        raise AssertionError("the micro-benchmarks time the helpers, not the models")

    return TextSystem(no_model, no_model, SystemSettings(character_dict_path=str(en_dict)))


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """A 640x480 grey image with a white band, corners (100, 200) (400, 180) (405, 240) (105, 260)."""
    image = np.full((480, 640, 3), 60, np.uint8)
    cv2.fillPoly(image, [np.array([[100, 200], [400, 180], [405, 240], [105, 260]], np.int32)], (255, 255, 255))
    return image


def test_crop_text_line(benchmark, scene):
    quad = np.array([[100, 200], [400, 180], [405, 240], [105, 260]], np.float32)
    crop = benchmark(crop_text_line, scene, quad)
    assert crop.shape == (60, 300, 3)  # longer opposite sides (300.67 and 60.2 px), truncated as PaddleOCR does
    assert crop[20:40, 20:280].min() == 255  # the band's inside is white


def test_det_resize_normalize(benchmark, system):
    image = np.full((720, 1280, 3), (0, 128, 255), np.uint8)
    batch, shape = benchmark(system.detect_input, image)
    assert batch.shape == (1, 3, 544, 960) and batch.dtype == np.float32  # longer side to 960, multiples of 32
    assert np.allclose(shape, [[720, 1280, 544 / 720, 960 / 1280]])
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    expected = (np.array([0, 128, 255], np.float32) / 255 - mean) / std
    assert np.allclose(batch[0, :, 100, 100], expected, atol=1e-6)


def test_rec_resize_normalize_batch(benchmark):
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (32, 100 + 40 * k, 3), dtype=np.uint8) for k in range(6)]
    max_ratio = max(c.shape[1] / c.shape[0] for c in crops)  # 300 / 32
    width = int(48 * max_ratio)

    def make_batch():
        batch = np.empty((len(crops), 3, 48, width), np.float32)
        for row, crop in enumerate(crops):
            resize_norm_rec(crop, (3, 48, 320), max_ratio, out=batch[row])
        return batch

    batch = benchmark(make_batch)
    assert batch.shape == (6, 3, 48, 450)
    assert batch.min() >= -1.0 and batch.max() <= 1.0
    first_w = int(np.ceil(48 * 100 / 32))  # 150 px, the rest zero padding
    assert np.all(batch[0, :, :, first_w:] == 0.0) and np.any(batch[0, :, :, :first_w] != 0.0)
    resized = cv2.resize(crops[0], (first_w, 48)).astype(np.float32).transpose(2, 0, 1)
    assert np.array_equal(batch[0, :, :, :first_w], (resized / 255.0 - 0.5) / 0.5)


def test_db_postprocess(benchmark, system):
    maps = np.zeros((1, 1, 480, 640), np.float32)
    maps[0, 0, 100:130, 50:300] = 0.95   # two text regions of the shrink map
    maps[0, 0, 300:340, 200:600] = 0.9
    shape = np.array([[480, 640, 1.0, 1.0]], np.float32)
    result = benchmark(system._db, {"maps": maps}, shape)
    boxes = sorted(np.asarray(result[0]["points"]).reshape(-1, 4, 2).tolist(), key=lambda b: b[0][1])
    assert len(boxes) == 2
    first = np.asarray(boxes[0])
    # unclipped by 1.5 x area / perimeter around the 250x30 region: wider and taller than it, same centre
    assert first[:, 0].min() < 50 and first[:, 0].max() > 299 and first[:, 1].min() < 100 and first[:, 1].max() > 129
    assert abs(first[:, 1].mean() - 114.5) < 2


def test_ctc_decode(benchmark, system):
    chars = system._decode.character  # index 0 is the CTC blank
    target = "LOT 4711"
    ids = []
    for ch in target:  # each character twice then a blank, as a CTC path reads
        ids += [chars.index(ch)] * 2 + [0]
    probs = np.full((8, 40, len(chars)), 1e-4, np.float32)
    probs[:, np.arange(40), 0] = 0.9
    probs[:, np.arange(len(ids)), ids] = 0.99
    probs[:, np.arange(len(ids)), 0] = np.where(np.array(ids) == 0, 0.99, 1e-4)
    result = benchmark(system._decode, probs)
    assert len(result) == 8
    assert all(text == target for text, _ in result)
    assert all(abs(score - 0.99) < 1e-5 for _, score in result)
