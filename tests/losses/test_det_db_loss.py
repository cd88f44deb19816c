import ocrforge  # noqa: F401  (sets the thread count before paddle loads)

import numpy as np
import paddle
import paddleocr  # noqa: F401  (puts the wheel's ppocr on sys.path)
import pytest
from ppocr.data.imaug.make_shrink_map import MakeShrinkMap

from ocrforge.losses import DBLoss, balanced_bce_loss, dice_loss
from ocrforge.registry import LOSSES

H = W = 16


def make_batch():
    """One 16x16 image with a text rectangle: the five DB labels as paddle tensors, maps (1, H, W)."""
    shrink_map = np.zeros((1, H, W), np.float32)
    shrink_map[0, 4:10, 3:13] = 1.0
    threshold_map = np.full((1, H, W), 0.3, np.float32)
    threshold_map[0, 3:11, 2:14] = 0.7
    masks = np.ones((1, H, W), np.float32)
    image = np.zeros((1, 3, H, W), np.float32)
    return [paddle.to_tensor(x) for x in (image, threshold_map, masks, shrink_map, masks.copy())]


def perfect_maps(batch):
    return paddle.stack([batch[3], batch[1], batch[3]], axis=1)


@pytest.mark.parametrize("main_loss_type", ["DiceLoss", "BCELoss"])
def test_perfect_prediction_has_near_zero_loss_and_a_bad_one_a_large_loss(main_loss_type):
    batch = make_batch()
    loss = DBLoss(main_loss_type=main_loss_type)
    perfect = loss({"maps": perfect_maps(batch)}, batch)
    assert set(perfect) == {"loss", "loss_shrink_maps", "loss_threshold_maps", "loss_binary_maps"}
    assert perfect["loss"].shape == []
    assert float(perfect["loss"]) < 1e-4
    bad = loss({"maps": 1.0 - perfect_maps(batch)}, batch)
    assert float(bad["loss"]) > 5.0


def test_total_is_alpha_shrink_plus_beta_threshold_plus_binary():
    batch = make_batch()
    maps = paddle.full([1, 3, H, W], 0.5)
    out = DBLoss(alpha=5, beta=10)(({"maps": maps}), batch)
    # threshold: mean |0.5 - t| over all pixels, t is 0.7 on 96 pixels and 0.3 elsewhere -> 0.2 everywhere
    np.testing.assert_allclose(float(out["loss_threshold_maps"]), 10 * 0.2, rtol=1e-5)
    # binary dice with p = 0.5 everywhere: 1 - 2 * 0.5 * 60 / (0.5 * 256 + 60)
    np.testing.assert_allclose(float(out["loss_binary_maps"]), 1 - 60 / 188, rtol=1e-5)
    np.testing.assert_allclose(float(out["loss_shrink_maps"]), 5 * (1 - 60 / 188), rtol=1e-5)
    total = out["loss_shrink_maps"] + out["loss_threshold_maps"] + out["loss_binary_maps"]
    np.testing.assert_allclose(float(out["loss"]), float(total), rtol=1e-6)


def test_balanced_bce_keeps_positives_and_the_three_hardest_negatives_per_positive():
    gt = paddle.to_tensor([[1.0, 0, 0, 0, 0, 0, 0, 0]])
    pred = paddle.to_tensor([[0.8, 0.1, 0.9, 0.2, 0.6, 0.05, 0.3, 0.4]])
    mask = paddle.ones_like(gt)
    # positive: -log 0.8; hardest negatives: p = 0.9, 0.6, 0.4 -> -log(1 - p)
    expected = (-np.log(0.8) - np.log(0.1) - np.log(0.4) - np.log(0.6)) / 4
    np.testing.assert_allclose(float(balanced_bce_loss(pred, gt, mask, 3.0)), expected, rtol=1e-5)
    # with ratio 1 only the hardest negative (0.9) is kept
    expected_1 = (-np.log(0.8) - np.log(0.1)) / 2
    np.testing.assert_allclose(float(balanced_bce_loss(pred, gt, mask, 1.0)), expected_1, rtol=1e-5)


def test_dice_loss_hand_value():
    pred = paddle.to_tensor([0.5, 0.5])
    gt = paddle.to_tensor([1.0, 0.0])
    np.testing.assert_allclose(float(dice_loss(pred, gt, paddle.ones([2]))), 0.5, rtol=1e-5)


@pytest.mark.parametrize("main_loss_type", ["DiceLoss", "BCELoss"])
def test_pixels_outside_the_masks_do_not_count(main_loss_type):
    batch = make_batch()
    batch[2][0, 8:, :] = 0.0  # rows 8-15 ignored: the bottom of the text and background below it
    batch[4][0, 8:, :] = 0.0
    loss = DBLoss(main_loss_type=main_loss_type)
    maps = perfect_maps(batch) * 0.8 + 0.1
    before = float(loss({"maps": maps}, batch)["loss"])
    spoiled = maps.numpy()
    spoiled[0, :, 8:, :] = 1.0 - spoiled[0, :, 8:, :]  # wrong everywhere in the ignored rows
    after = float(loss({"maps": paddle.to_tensor(spoiled)}, batch)["loss"])
    assert after == pytest.approx(before, rel=1e-6)
    spoiled[0, :, 0, :] = 0.99  # and wrong in a counted row
    assert float(loss({"maps": paddle.to_tensor(spoiled)}, batch)["loss"]) > before + 0.01


def test_make_shrink_map_zeroes_the_mask_of_ignored_text():
    """DBLoss relies on the wheel's MakeShrinkMap to drop ``###`` text from shrink_mask."""
    polys = np.array([[[2, 2], [14, 2], [14, 8], [2, 8]], [[2, 20], [14, 20], [14, 28], [2, 28]]], np.float32)
    data = {"image": np.zeros((32, 32, 3), np.uint8), "polys": polys, "ignore_tags": np.array([False, True])}
    out = MakeShrinkMap(shrink_ratio=0.4, min_text_size=3)(data)
    assert out["shrink_mask"][20:29, 2:15].sum() == 0
    assert out["shrink_map"][20:29, 2:15].sum() == 0
    assert out["shrink_mask"][2:9, 2:15].min() == 1
    assert out["shrink_map"][4:7, 4:13].min() == 1


def test_gradients_reach_the_maps():
    batch = make_batch()
    maps = paddle.full([1, 3, H, W], 0.5)
    maps.stop_gradient = False
    DBLoss(main_loss_type="BCELoss")({"maps": maps}, batch)["loss"].backward()
    grad = maps.grad.numpy()
    assert np.isfinite(grad).all()
    assert (np.abs(grad).sum(axis=(0, 2, 3)) > 0).all()


@pytest.mark.parametrize("main_loss_type", ["DiceLoss", "BCELoss"])
def test_a_few_adam_steps_fit_a_tiny_conv_net_to_a_target(main_loss_type):
    paddle.seed(0)
    batch = make_batch()
    image = paddle.to_tensor(np.random.default_rng(0).normal(size=(1, 3, H, W)).astype(np.float32))
    net = paddle.nn.Sequential(paddle.nn.Conv2D(3, 8, 3, padding=1), paddle.nn.ReLU(), paddle.nn.Conv2D(8, 3, 3, padding=1))
    loss_fn = LOSSES.build({"name": "DBLoss", "balance_loss": True, "main_loss_type": main_loss_type})
    optimizer = paddle.optimizer.Adam(learning_rate=0.01, parameters=net.parameters())
    losses = []
    for _ in range(30):
        loss = loss_fn({"maps": paddle.nn.functional.sigmoid(net(image))}, batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        losses.append(float(loss))
    assert losses[-1] < 0.7 * losses[0]  # measured: DiceLoss 6.83 -> 4.37, BCELoss 7.28 -> 3.03


def test_wrong_map_shape_is_reported():
    batch = make_batch()
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        DBLoss()({"maps": paddle.zeros([1, 1, H, W])}, batch)
    with pytest.raises(ValueError, match="input image size"):
        DBLoss()({"maps": paddle.zeros([1, 3, H // 2, W // 2])}, batch)
    with pytest.raises(ValueError, match="main_loss_type"):
        DBLoss(main_loss_type="Euclidean")
