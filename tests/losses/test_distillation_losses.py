import ocrforge  # noqa: F401  (sets the thread count before paddle loads)

import cv2
import numpy as np
import paddle
import pytest

from ocrforge.losses import (
    CombinedLoss,
    DBLoss,
    DistillationDBLoss,
    DistillationDilaDBLoss,
    DistillationDMLLoss,
    dilate_binary_map,
    symmetric_kl,
)
from ocrforge.registry import LOSSES

H = W = 16


def make_batch(n: int = 2):
    """n 16x16 images with a text rectangle: the five DB labels, maps (n, H, W)."""
    shrink_map = np.zeros((n, H, W), np.float32)
    shrink_map[:, 4:10, 3:13] = 1.0
    threshold_map = np.full((n, H, W), 0.3, np.float32)
    threshold_map[:, 3:11, 2:14] = 0.7
    masks = np.ones((n, H, W), np.float32)
    image = np.zeros((n, 3, H, W), np.float32)
    return [paddle.to_tensor(x) for x in (image, threshold_map, masks, shrink_map, masks.copy())]


def maps_param(values: np.ndarray) -> paddle.Tensor:
    t = paddle.to_tensor(values.astype(np.float32))
    t.stop_gradient = False
    return t


def random_maps(seed: int, n: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.05, 0.95, (n, 3, H, W)).astype(np.float32)


def test_dilation_matches_cv2_dilate_with_a_2x2_kernel_of_the_teacher_map_binarised_at_0_3():
    probs = np.random.default_rng(0).uniform(0, 1, (3, 20, 24)).astype(np.float32) ** 4
    got = dilate_binary_map(paddle.to_tensor(probs)).numpy()
    expected = np.stack([cv2.dilate((p > 0.3).astype(np.uint8), np.ones((2, 2), np.uint8)) for p in probs])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected.astype(np.float32))
    assert 0 < (probs > 0.3).sum() < got.sum()  # the dilation grew the regions


def test_symmetric_kl_is_zero_for_equal_maps_symmetric_and_matches_the_formula():
    p1 = paddle.full([2, 4, 4], 0.2)
    p2 = paddle.full([2, 4, 4], 0.6)
    eps = 1e-5
    expected = 0.5 * (0.6 * np.log((0.6 + eps) / (0.2 + eps) + eps) + 0.2 * np.log((0.2 + eps) / (0.6 + eps) + eps))
    got = symmetric_kl(p1, p2).numpy()
    assert got.shape == (2,)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(symmetric_kl(p2, p1).numpy(), got, rtol=1e-6)
    # PaddleOCR's eps inside the log leaves p * log(1 + 1e-5) for equal maps.
    assert float(symmetric_kl(p1, p1).abs().max()) < 1e-5


def test_dila_db_loss_is_near_zero_when_the_student_copies_the_dilated_teacher_and_trains_only_the_student():
    batch = make_batch()
    teacher_np = random_maps(1)
    target = dilate_binary_map(paddle.to_tensor(teacher_np[:, 0])).numpy()
    perfect = random_maps(2)
    perfect[:, 0] = target
    perfect[:, 2] = target
    teacher, student = maps_param(teacher_np), maps_param(perfect)
    loss = DistillationDilaDBLoss(model_name_pairs=[["Student", "Teacher"]], key="maps", alpha=5)
    out = loss({"Student": {"maps": student}, "Teacher": {"maps": teacher}}, batch)
    assert set(out) == {"loss", "dila_dbloss_Student_Teacher"}
    assert float(out["loss"]) < 1e-4
    bad = maps_param(1.0 - perfect)
    out_bad = loss({"Student": {"maps": bad}, "Teacher": {"maps": teacher}}, batch)
    assert float(out_bad["loss"]) > 5.0  # alpha * dice (~1) + dice (~1)
    out_bad["loss"].backward()
    assert bad.grad is not None and float(bad.grad.abs().sum()) > 0
    assert teacher.grad is None
    # Only the shrink (0) and binary (2) channels are taught; the threshold channel gets nothing.
    assert float(bad.grad[:, 1].abs().sum()) == 0.0


def test_dml_loss_equals_the_symmetric_kl_of_the_shrink_maps_and_trains_both_students():
    a, b = maps_param(random_maps(3)), maps_param(random_maps(4))
    loss = DistillationDMLLoss(model_name_pairs=[["Student", "Student2"]], maps_name="thrink_maps", key="maps")
    out = loss({"Student": {"maps": a}, "Student2": {"maps": b}}, make_batch())
    assert set(out) == {"loss", "dml_thrink_maps_0"}
    expected = symmetric_kl(a[:, 0], b[:, 0]).mean()
    np.testing.assert_allclose(float(out["loss"]), float(expected), rtol=1e-6)
    assert float(out["loss"]) > 0.01
    out["loss"].backward()
    for t in (a, b):
        assert float(t.grad[:, 0].abs().sum()) > 0 and float(t.grad[:, 1:].abs().sum()) == 0.0
    same = DistillationDMLLoss(model_name_pairs=["Student", "Student2"], maps_name="thrink_maps", key="maps")
    assert float(same({"Student": {"maps": a}, "Student2": {"maps": a}}, [])["loss"]) < 1e-5


def test_dml_loss_rejects_an_unknown_map_name():
    with pytest.raises(ValueError, match="maps_name"):
        DistillationDMLLoss(model_name_pairs=[["A", "B"]], maps_name="shrnk")


def test_distillation_db_loss_is_the_db_loss_of_each_member_with_prefixed_part_names():
    batch = make_batch()
    a, b = maps_param(random_maps(5)), maps_param(random_maps(6))
    loss = DistillationDBLoss(model_name_list=["Student", "Student2"], alpha=5, beta=10)
    out = loss({"Student": {"maps": a}, "Student2": {"maps": b}, "Teacher": {"maps": a}}, batch)
    plain = DBLoss(alpha=5, beta=10)
    expected = float(plain({"maps": a}, batch)["loss"]) + float(plain({"maps": b}, batch)["loss"])
    np.testing.assert_allclose(float(out["loss"]), expected, rtol=1e-5)
    assert "db_Student_loss_shrink_maps" in out and "db_Student2_loss_binary_maps" in out
    assert len(out) == 7


def test_a_missing_member_is_reported_with_the_members_there_are():
    loss = DistillationDBLoss(model_name_list=["Student"])
    with pytest.raises(KeyError, match="Student.*Teacher"):
        loss({"Teacher": {"maps": paddle.zeros([1, 3, H, W])}}, make_batch(1))


def test_combined_loss_weights_each_loss_and_sums_them():
    batch = make_batch()
    a, b, t = maps_param(random_maps(7)), maps_param(random_maps(8)), maps_param(random_maps(9))
    predicts = {"Student": {"maps": a}, "Student2": {"maps": b}, "Teacher": {"maps": t}}
    config = {
        "name": "CombinedLoss",
        "loss_config_list": [
            {"DistillationDilaDBLoss": {"weight": 2.0, "model_name_pairs": [["Student", "Teacher"]], "key": "maps"}},
            {"DistillationDMLLoss": {"weight": 0.5, "model_name_pairs": [["Student", "Student2"]],
                                     "maps_name": "thrink_maps", "key": "maps"}},
        ],
    }
    combined = LOSSES.build(config)
    assert isinstance(combined, CombinedLoss)
    out = combined(predicts, batch)
    dila = DistillationDilaDBLoss(model_name_pairs=[["Student", "Teacher"]], key="maps")(predicts, batch)["loss"]
    dml = DistillationDMLLoss(model_name_pairs=[["Student", "Student2"]], maps_name="thrink_maps",
                              key="maps")(predicts, batch)["loss"]
    np.testing.assert_allclose(float(out["dila_dbloss_Student_Teacher"]), 2.0 * float(dila), rtol=1e-6)
    np.testing.assert_allclose(float(out["dml_thrink_maps_0"]), 0.5 * float(dml), rtol=1e-6)
    np.testing.assert_allclose(float(out["loss"]), 2.0 * float(dila) + 0.5 * float(dml), rtol=1e-6)
    assert out["loss"].shape == []


def test_combined_loss_needs_a_weight_and_a_known_loss():
    with pytest.raises(KeyError, match="weight"):
        CombinedLoss([{"DistillationDBLoss": {"model_name_list": ["Student"]}}])
    with pytest.raises(KeyError, match="unknown loss 'NoSuchLoss'"):
        CombinedLoss([{"NoSuchLoss": {"weight": 1.0}}])
