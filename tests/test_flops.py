"""FLOP counts of ONNX models (hand-made graphs with hand-computed counts, and the shipped PP-OCR models),
the detector's input shapes, the matmul peak and the achieved fraction of it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ocrforge.flops import (achieved, count_flops, det_flops, det_input_shape, distance_to_limit, matmul_peak,
                           model_flops, rec_flops, rec_flops_over_crops, rec_input_width)


def _save(tmp_path, nodes, inputs, outputs, initializers, name="model.onnx"):
    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def _float(name, rank=4):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"{name}{i}" for i in range(rank)])


@pytest.fixture
def conv_matmul(tmp_path):
    """x (1, 2, 5, 5) -> Conv 3x3, 4 filters, bias, pad 1 -> (1, 4, 5, 5) -> Reshape (4, 25) -> MatMul (25, 3)."""
    rng = np.random.default_rng(0)
    return _save(tmp_path, [
        helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Reshape", ["y", "shape"], ["z"]),
        helper.make_node("MatMul", ["z", "m"], ["out"]),
    ], [_float("x")], [_float("out", 2)], {
        "w": rng.random((4, 2, 3, 3), dtype=np.float32), "b": np.zeros(4, np.float32),
        "shape": np.array([4, 25], np.int64), "m": rng.random((25, 3), dtype=np.float32)})


def test_one_conv_and_one_matmul(conv_matmul):
    flops = count_flops(conv_matmul, np.zeros((1, 2, 5, 5), np.float32))
    conv = 2 * (4 * 5 * 5) * (2 * 3 * 3) + 4 * 5 * 5  # 2 x outputs x MACs per output, + one bias add per output
    matmul = 2 * 4 * 3 * 25
    assert flops == {"total": 4300, "by_op": {"Conv": 3700, "MatMul": 600}, "input_shape": [1, 2, 5, 5]}
    assert (conv, matmul) == (3700, 600)
    # the count follows the input's shape
    assert count_flops(conv_matmul, np.zeros((1, 2, 5, 5), np.float32) + 7)["total"] == 4300


def test_grouped_conv_transposed_conv_and_batched_matmul(tmp_path):
    rng = np.random.default_rng(0)
    path = _save(tmp_path, [
        # (1, 4, 6, 6) -> 8 filters of 2 channels x 3x3, 2 groups, stride 2, pad 1 -> (1, 8, 3, 3)
        helper.make_node("Conv", ["x", "w"], ["y"], group=2, strides=[2, 2], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        # (1, 8, 3, 3) -> 2x2 stride 2 to 2 channels -> (1, 2, 6, 6)
        helper.make_node("ConvTranspose", ["y", "wt"], ["up"], strides=[2, 2], kernel_shape=[2, 2]),
        # attention-like (2, 3, 4) x (2, 4, 5)
        helper.make_node("MatMul", ["q", "k"], ["attn"]),
        helper.make_node("Sigmoid", ["attn"], ["gate"]),
    ], [_float("x"), _float("q", 3), _float("k", 3)], [_float("up"), _float("gate", 3)], {
        "w": rng.random((8, 2, 3, 3), dtype=np.float32), "wt": rng.random((8, 2, 2, 2), dtype=np.float32)})
    flops = count_flops(path, {"x": np.zeros((1, 4, 6, 6), np.float32), "q": np.zeros((2, 3, 4), np.float32),
                               "k": np.zeros((2, 4, 5), np.float32)})
    assert flops["by_op"] == {"Conv": 2 * (8 * 3 * 3) * (2 * 3 * 3),        # 2592
                              "ConvTranspose": 2 * (8 * 3 * 3) * (2 * 2 * 2),  # each input pixel x Cout x k: 1152
                              "MatMul": 2 * (2 * 3 * 5) * 4,                 # 240
                              "Sigmoid": 2 * 3 * 5}
    assert flops["total"] == 2592 + 1152 + 240 + 30
    with pytest.raises(ValueError, match="has several inputs; pass {name: array}"):
        count_flops(path, np.zeros((1, 4, 6, 6), np.float32))


def test_det_input_shapes_are_paddleocrs():
    # checked against ppocr's DetResizeForTest (PaddleOCR 2.10) on these sizes
    assert [det_input_shape(h, w) for h, w in [(360, 480), (933, 461), (1280, 300), (20, 20), (77, 1999)]] == \
        [(352, 480), (928, 448), (960, 224), (32, 32), (32, 960)]
    assert [det_input_shape(h, w, 736, "min") for h, w in [(360, 480), (933, 461), (1000, 3000)]] == \
        [(736, 992), (1504, 736), (992, 3008)]
    with pytest.raises(ValueError, match="limit_type must be 'max' or 'min', got 'long'"):
        det_input_shape(10, 10, 960, "long")


def test_det_flops_per_image_at_each_resized_shape(tmp_path):
    rng = np.random.default_rng(0)
    conv = _save(tmp_path, [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1])],
                 [_float("x")], [_float("y")], {"w": rng.random((2, 3, 1, 1), dtype=np.float32)}, "conv.onnx")
    # 2 images at 352x480 and one at 960x224 (1280x300 shrunk): 2 filters x 3 channels x 2 FLOPs per pixel
    figures = det_flops(conv, [(360, 480), (361, 479), (1280, 300)])
    assert figures["shapes"] == {"352x480": [2, 12 * 352 * 480], "960x224": [1, 12 * 960 * 224]}
    assert figures["mean"] == (2 * 12 * 352 * 480 + 12 * 960 * 224) / 3
    assert (figures["min"], figures["max"], figures["images"]) == (12 * 352 * 480, 12 * 960 * 224, 3)


def test_the_shipped_pp_ocr_models_are_counted():
    from ocrforge.offtheshelf import ppocrv4_model_files, ppocrv6_model_files

    v4, v6 = ppocrv4_model_files(), ppocrv6_model_files()
    v4_rec = count_flops(v4["rec"], np.zeros((1, 3, 48, 320), np.float32))
    # by hand: PP-OCRv4 rec's SVTR neck has 2 blocks over 40 time steps x 120 features, 8 heads of 15: qkv,
    # q.k, attention.v, projection, MLP 120->240->120; then the CTC head maps 120 features to 6,625 classes
    block = 2 * 40 * (120 * 360 + 120 * 120 + 120 * 240 + 240 * 120) + 2 * 2 * 8 * 40 * 40 * 15
    assert v4_rec["by_op"]["MatMul"] == 2 * block + 2 * 40 * 120 * 6625 == 83_568_000
    assert v4_rec["total"] == rec_flops(v4["rec"]) == 1_455_812_360
    assert rec_flops(v6["rec"]) == 2_206_561_920
    assert count_flops(v6["det"], np.zeros((1, 3, 352, 480), np.float32))["total"] == 3_633_926_544


def test_rec_flops_per_crop_at_each_input_width(tmp_path):
    # read alone, a crop is scaled to height 48 and zero-padded to at least 320 wide
    assert [rec_input_width(h, w) for h, w in [(20, 100), (24, 160), (30, 300), (10, 101)]] == [320, 320, 480, 484]
    rng = np.random.default_rng(0)
    conv = _save(tmp_path, [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1])],
                 [_float("x")], [_float("y")], {"w": rng.random((2, 3, 1, 1), dtype=np.float32)}, "conv.onnx")
    figures = rec_flops_over_crops(conv, [(20, 100), (24, 160), (30, 300)])
    assert figures["widths"] == {320: [2, 12 * 48 * 320], 480: [1, 12 * 48 * 480]}
    assert figures["mean"] == 12 * 48 * (2 * 320 + 480) / 3 and figures["crops"] == 3


def test_achieved_fraction_of_the_peak(tmp_path):
    assert achieved(2e9, 10.0, 80.0) == {"gflops": 20.0, "fraction_of_peak": 0.25}
    rng = np.random.default_rng(0)
    conv = _save(tmp_path, [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1])],
                 [_float("x")], [_float("y")], {"w": rng.random((2, 3, 1, 1), dtype=np.float32)}, "conv.onnx")
    figures = model_flops(conv, conv, [(360, 480)], [(24, 160)])
    assert (figures["det"]["mean"], figures["rec_48x320"], figures["rec"]["mean"]) == \
        (12 * 352 * 480, 12 * 48 * 320, 12 * 48 * 320)
    # 1,000 images/s of 2,027,520 FLOPs = 2.03 GFLOP/s; 2,000 crops/s of 184,320 FLOPs = 0.37 GFLOP/s
    assert distance_to_limit(figures, 1000.0, 2000.0, 4.0) == {
        "det": {"gflops": 2.02752, "fraction_of_peak": 2.02752 / 4},
        "rec": {"gflops": 0.36864, "fraction_of_peak": 0.36864 / 4}}


def test_matmul_peak_measures_both_backends():
    peak = matmul_peak(threads=1, size=256, repeats=2)
    assert set(peak["by_backend"]) == {"numpy", "onnxruntime"}
    assert peak["gflops"] == max(peak["by_backend"].values()) == peak["by_backend"][peak["backend"]]
    assert all(value > 0.5 for value in peak["by_backend"].values())
    assert (peak["threads"], peak["size"], peak["repeats"]) == (1, 256, 2)


@pytest.mark.slow  # the export fixture takes about 40 s on 2 cores
def test_our_exported_onnx_models_are_counted(exported_dir):
    from ocrforge.offtheshelf import ppocrv4_model_files

    characters = (exported_dir / "dict.txt").read_text(encoding="utf-8").splitlines()
    rec = count_flops(exported_dir / "onnx" / "rec.onnx", np.zeros((1, 3, 48, 320), np.float32))
    # the PP-OCRv4 SVTR neck (see above) and a CTC head over blank + dictionary + space
    block = 2 * 40 * (120 * 360 + 120 * 120 + 120 * 240 + 240 * 120) + 2 * 2 * 8 * 40 * 40 * 15
    assert rec["by_op"]["MatMul"] == 2 * block + 2 * 40 * 120 * (len(characters) + 2)
    det = count_flops(exported_dir / "onnx" / "det.onnx", np.zeros((1, 3, 352, 480), np.float32))
    v4_det = count_flops(ppocrv4_model_files()["det"], np.zeros((1, 3, 352, 480), np.float32))
    assert det["by_op"]["ConvTranspose"] == v4_det["by_op"]["ConvTranspose"]  # the same DB head
    assert abs(det["by_op"]["Conv"] / v4_det["by_op"]["Conv"] - 1) < 0.01   # the same backbone and neck
