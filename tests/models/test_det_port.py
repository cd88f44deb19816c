"""The PP-OCRv4 det network, loaded with the shipped weights, reproduces the shipped inference model."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import paddle
import pytest
import yaml

from ocrforge.models.architectures import build_model
from ocrforge.models.backbones import PPLCNetV3
from ocrforge.models.pretrained import (
    SHIPPED_DET_DIR,
    SHIPPED_REC_DIR,
    load_inference_weights,
    run_inference_model,
)

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def det_config(repo_root) -> dict:
    with open(repo_root / "configs/det/ppocrv4_det.yml") as fh:
        return yaml.safe_load(fh)


def first_receipt(sroie_dir):
    """(image path, PPOCRLabel JSON string) of the first labelled image of sroie100."""
    line = (sroie_dir / "Label.txt").read_text(encoding="utf-8").splitlines()[0]
    rel_path, label = line.split("\t")
    return sroie_dir / rel_path, label


@pytest.fixture(scope="module")
def receipt_batch(sroie_dir):
    """A real receipt resized to a multiple of 32 (longer side 640), normalised: (1, 3, H, W), and its boxes scaled."""
    path, label = first_receipt(sroie_dir)
    image = cv2.imread(str(path))
    h, w = image.shape[:2]
    ratio = 640 / max(h, w)
    new_h, new_w = max(32, round(h * ratio / 32) * 32), max(32, round(w * ratio / 32) * 32)
    resized = cv2.resize(image, (new_w, new_h)).astype(np.float32) / 255.0
    chw = ((resized - MEAN) / STD).transpose(2, 0, 1)[None]
    boxes = [np.array(b["points"], dtype=np.float32) * [new_w / w, new_h / h] for b in json.loads(label)]
    return np.ascontiguousarray(chw), boxes


@pytest.fixture(scope="module")
def det_model(repo_root):
    model = build_model(det_config(repo_root)["Architecture"])
    load_inference_weights(model, SHIPPED_DET_DIR)
    model.eval()
    return model


def test_det_probability_map_matches_shipped_inference_model(det_model, receipt_batch):
    batch, boxes = receipt_batch
    reference = run_inference_model(SHIPPED_DET_DIR, batch)[0]
    with paddle.no_grad():
        ours = det_model(paddle.to_tensor(batch))["maps"].numpy()
    diff = float(np.abs(ours - reference).max())
    print(f"det port parity on {batch.shape}: max abs difference {diff:.3e}")
    assert ours.shape == reference.shape == (1, 1, *batch.shape[2:])
    assert diff < 1e-4
    # The map is a real detection, not a blank that any network would match: labelled lines light up.
    prob = reference[0, 0]
    inside = np.zeros(prob.shape, np.uint8)
    found = []
    for box in boxes:
        mask = np.zeros(prob.shape, np.uint8)
        cv2.fillPoly(mask, [box.round().astype(np.int32)], 1)
        inside |= mask
        found.append(prob[mask == 1].max() > 0.5)
    print(f"labelled lines with probability > 0.5: {np.mean(found):.2%}; mean outside: {prob[inside == 0].mean():.4f}")
    assert np.mean(found) > 0.9
    assert prob[inside == 0].mean() < 0.05


def test_det_training_forward_returns_shrink_threshold_binary(det_model, receipt_batch):
    batch = paddle.to_tensor(receipt_batch[0][:, :, :128, :128])
    det_model.train()
    try:
        maps = det_model(batch)["maps"]
    finally:
        det_model.eval()
    assert maps.shape == [1, 3, 128, 128]
    shrink, threshold, binary = maps[:, 0], maps[:, 1], maps[:, 2]
    expected = 1 / (1 + paddle.exp(-50 * (shrink - threshold)))
    np.testing.assert_allclose(binary.numpy(), expected.numpy(), atol=1e-6)


@pytest.mark.slow
def test_det_jit_save_runs_under_paddle_inference(det_model, receipt_batch, tmp_path):
    batch = receipt_batch[0][:, :, :256, :192]
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", "x")]
    static = paddle.jit.to_static(det_model, input_spec=spec, full_graph=True)
    paddle.jit.save(static, str(tmp_path / "inference"))
    exported = run_inference_model(tmp_path, batch)[0]
    with paddle.no_grad():
        eager = det_model(paddle.to_tensor(batch))["maps"].numpy()
    diff = float(np.abs(exported - eager).max())
    print(f"jit.save round trip on {batch.shape}: max abs difference {diff:.3e}")
    assert exported.shape == eager.shape == (1, 1, 256, 192)
    assert diff < 1e-4


SHIPPED_REC_BACKBONE = textwrap.dedent(
    """
    import os, sys
    os.environ["FLAGS_enable_pir_api"] = "0"
    import numpy as np, paddle
    paddle.enable_static()
    exe = paddle.static.Executor(paddle.CPUPlace())
    program, feeds, _ = paddle.static.load_inference_model(sys.argv[1] + "/inference", exe)
    # The backbone ends with the only non-adaptive average pool of the program (3 x 2).
    pool = [op for op in program.global_block().ops if op.type == "pool2d" and not op.attr("adaptive")]
    out_name = pool[-1].output("Out")[0]
    x = np.load(sys.argv[2])
    (out,) = exe.run(program, feed={feeds[0]: x}, fetch_list=[program.global_block().var(out_name)])
    np.save(sys.argv[3], out)
    """
)


@pytest.mark.slow
def test_rec_backbone_matches_shipped_rec_model_backbone(tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 48, 320)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, FLAGS_enable_pir_api="0")
    subprocess.run(
        [sys.executable, "-c", SHIPPED_REC_BACKBONE, str(SHIPPED_REC_DIR), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        check=True, env=env, capture_output=True,
    )
    reference = np.load(tmp_path / "y.npy")

    backbone = PPLCNetV3(scale=0.95, det=False)
    report = load_inference_weights(backbone, SHIPPED_REC_DIR, prefix_map={"backbone.": ""})
    assert report.missing == []
    backbone.eval()
    with paddle.no_grad():
        ours = backbone(paddle.to_tensor(x)).numpy()
    assert reference.shape == ours.shape == (1, 480, 1, 40)
    assert np.abs(reference).mean() > 0.01
    assert backbone.out_channels == 480
    diff = float(np.abs(ours - reference).max())
    print(f"rec backbone parity: max abs difference {diff:.3e}")
    assert diff < 1e-4


def test_det_backbone_out_channels_match_the_shipped_layout():
    backbone = PPLCNetV3(scale=0.75, det=True)
    assert backbone.out_channels == [12, 18, 42, 360]
    backbone.eval()
    feats = backbone(paddle.zeros([1, 3, 64, 96]))
    assert [f.shape for f in feats] == [[1, 12, 16, 24], [1, 18, 8, 12], [1, 42, 4, 6], [1, 360, 2, 3]]


def test_config_transforms_build_and_run_on_a_real_image(repo_root, sroie_dir, monkeypatch):
    import paddleocr  # noqa: F401  (puts the wheel's ppocr package on sys.path)
    from ppocr.data.imaug import create_operators, random_crop_data, transform

    def pick_span(regions, max_size):
        # The wheel's version calls int() on a 1-element array, which NumPy 2 rejects.
        picks = [int(np.random.choice(regions[i])) for i in np.random.choice(len(regions), 2)]
        return min(picks), max(picks)

    monkeypatch.setattr(random_crop_data, "region_wise_random_select", pick_span)
    cfg = det_config(repo_root)
    path, label = first_receipt(sroie_dir)
    sample = {"img_path": str(path), "label": label, "image": path.read_bytes()}

    np.random.seed(0)
    train_ops = create_operators(copy.deepcopy(cfg["Train"]["dataset"]["transforms"]), {})
    image, threshold_map, threshold_mask, shrink_map, shrink_mask = transform(dict(sample), train_ops)
    assert image.shape == (3, 640, 640) and image.dtype == np.float32
    assert threshold_map.shape == threshold_mask.shape == shrink_map.shape == shrink_mask.shape == (640, 640)
    assert shrink_map.sum() > 0

    eval_ops = create_operators(copy.deepcopy(cfg["Eval"]["dataset"]["transforms"]), {})
    image, shape, polys, ignore_tags = transform(dict(sample), eval_ops)
    assert image.shape[0] == 3 and image.shape[1] % 32 == 0 and image.shape[2] % 32 == 0
    assert max(image.shape[1:]) <= 960
    assert len(polys) == len(json.loads(label)) == len(ignore_tags)
    assert shape[:2].tolist() == list(cv2.imread(str(path)).shape[:2])
