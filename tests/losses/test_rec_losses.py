import ocrforge  # noqa: F401  (sets the thread count before paddle loads)

import numpy as np
import paddle
import paddle.nn.functional as F
import paddleocr  # noqa: F401  (puts the wheel's ppocr on sys.path)
import pytest
from ppocr.data.imaug.label_ops import MultiLabelEncode

from ocrforge.losses import CTCLoss, MultiLoss, NRTRLoss, ctc_loss_from_probs
from ocrforge.registry import LOSSES


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def encode(texts, max_text_length=8):
    """The real PP-OCRv4 label layout: MultiLabelEncode(gtc_encode=NRTRLabelEncode), default 0-9a-z dict."""
    encoder = MultiLabelEncode(max_text_length, gtc_encode="NRTRLabelEncode")
    outs = [encoder({"image": np.zeros((2, 2, 3)), "label": t}) for t in texts]
    image = paddle.zeros([len(texts), 3, 4, 4])
    return [
        image,
        paddle.to_tensor(np.stack([o["label_ctc"] for o in outs])),
        paddle.to_tensor(np.stack([o["label_gtc"] for o in outs])),
        paddle.to_tensor(np.stack([o["length"] for o in outs])),
    ]


def test_multilabelencode_layout_is_what_the_losses_assume():
    _, label_ctc, label_gtc, length = encode(["ab", "c"], max_text_length=6)
    # CTC dict: blank, 0-9, a-z -> 'a' = 11; NRTR dict: blank, <unk>, <s>, </s>, 0-9, a-z -> 'a' = 14
    assert label_ctc.numpy().tolist() == [[11, 12, 0, 0, 0, 0], [13, 0, 0, 0, 0, 0]]
    assert label_gtc.numpy().tolist() == [[2, 14, 15, 3, 0, 0], [2, 16, 3, 0, 0, 0]]
    assert length.numpy().tolist() == [2, 1]


def test_ctc_loss_matches_a_hand_computed_two_step_case():
    logits = np.array([[[0.2, 1.0, -0.5], [0.7, 0.1, 0.3]]], np.float32)  # (N=1, T=2, C=3)
    p = softmax(logits[0])
    # paths for label [1] over two steps: (1,1), (0,1), (1,0)
    expected = -np.log(p[0, 1] * p[1, 1] + p[0, 0] * p[1, 1] + p[0, 1] * p[1, 0])
    batch = [None, paddle.to_tensor([[1, 0]]), paddle.to_tensor([1])]
    out = CTCLoss()(paddle.to_tensor(logits), batch)
    assert out["loss"].shape == []
    np.testing.assert_allclose(float(out["loss"]), expected, rtol=1e-5)
    np.testing.assert_allclose(float(CTCLoss()({"ctc": paddle.to_tensor(logits)}, batch)["loss"]), expected, rtol=1e-5)
    focal = float(CTCLoss(use_focal_loss=True)(paddle.to_tensor(logits), batch)["loss"])
    np.testing.assert_allclose(focal, expected * (1 - np.exp(-expected)) ** 2, rtol=1e-5)


def test_ctc_loss_from_eval_probabilities_equals_the_training_loss():
    rng = np.random.default_rng(0)
    logits = paddle.to_tensor(rng.normal(size=(2, 10, 37)).astype(np.float32))
    _, label_ctc, _, length = encode(["ab1", "zz"])
    train = CTCLoss()(logits, [None, label_ctc, length])["loss"]
    valid = ctc_loss_from_probs(F.softmax(logits, axis=-1), label_ctc, length)
    assert valid.shape == []
    np.testing.assert_allclose(float(valid), float(train), rtol=1e-4)


def nrtr_reference(logits, target, smoothing):
    """Numpy reference: mean over non-pad targets of (smoothed) cross-entropy."""
    logp = np.log(softmax(logits.reshape(-1, logits.shape[-1])))
    target = target.reshape(-1)
    n_class = logp.shape[1]
    soft = np.eye(n_class)[target]
    if smoothing:
        soft = soft * 0.9 + (1 - soft) * 0.1 / (n_class - 1)
    per_token = -(soft * logp).sum(axis=1)
    return per_token[target != 0].mean()


@pytest.mark.parametrize("smoothing", [True, False])
def test_nrtr_loss_matches_numpy_on_shifted_targets_and_skips_padding(smoothing):
    rng = np.random.default_rng(1)
    image, _, label_gtc, length = encode(["ab", "c"])
    steps = int(length.max()) + 1  # what the NRTR head predicts: the characters and </s>
    logits = rng.normal(size=(2, steps, 40)).astype(np.float32)
    loss = NRTRLoss(smoothing=smoothing)(paddle.to_tensor(logits), [image, label_gtc, length])["loss"]
    target = label_gtc.numpy()[:, 1 : steps + 1]
    assert target.tolist() == [[14, 15, 3], [16, 3, 0]]
    np.testing.assert_allclose(float(loss), nrtr_reference(logits, target, smoothing), rtol=1e-5)
    logits[1, 2] += 100.0  # the pad position of the shorter text
    again = NRTRLoss(smoothing=smoothing)({"nrtr": paddle.to_tensor(logits)}, [image, label_gtc, length])["loss"]
    assert float(again) == pytest.approx(float(loss), rel=1e-6)


def test_nrtr_loss_rejects_too_few_steps():
    image, _, label_gtc, length = encode(["abc"])
    with pytest.raises(ValueError, match=r"max\(length\) \+ 1"):
        NRTRLoss()(paddle.zeros([1, 2, 40]), [image, label_gtc, length])


def multi_head_outputs(model_ctc, model_nrtr, features, steps_nrtr):
    return {"ctc": model_ctc(features), "nrtr": model_nrtr(features[:, :steps_nrtr])}


def test_multiloss_is_the_sum_of_its_parts_and_falls_over_a_few_steps():
    paddle.seed(0)
    rng = np.random.default_rng(2)
    batch = encode(["ab1", "zz"])
    batch.append(paddle.ones([2]))  # valid_ratio, as KeepKeys keeps it
    features = paddle.to_tensor(rng.normal(size=(2, 12, 16)).astype(np.float32))
    ctc_fc, nrtr_fc = paddle.nn.Linear(16, 37), paddle.nn.Linear(16, 40)
    loss_fn = LOSSES.build({"name": "MultiLoss", "loss_config_list": [{"CTCLoss": None}, {"NRTRLoss": {"smoothing": True}}]})
    steps = int(batch[3].max()) + 1

    out = loss_fn(multi_head_outputs(ctc_fc, nrtr_fc, features, steps), batch)
    assert set(out) == {"loss", "CTCLoss", "NRTRLoss"}
    preds = multi_head_outputs(ctc_fc, nrtr_fc, features, steps)
    ctc = CTCLoss()(preds["ctc"], [batch[0], batch[1], batch[3]])["loss"]
    nrtr = NRTRLoss()(preds["nrtr"], [batch[0], batch[2], batch[3]])["loss"]
    np.testing.assert_allclose(float(out["CTCLoss"]), float(ctc), rtol=1e-5)
    np.testing.assert_allclose(float(out["NRTRLoss"]), float(nrtr), rtol=1e-5)
    np.testing.assert_allclose(float(out["loss"]), float(ctc) + float(nrtr), rtol=1e-5)

    optimizer = paddle.optimizer.Adam(learning_rate=0.05, parameters=ctc_fc.parameters() + nrtr_fc.parameters())
    losses = []
    for _ in range(20):
        loss = loss_fn(multi_head_outputs(ctc_fc, nrtr_fc, features, steps), batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]


def test_multiloss_reports_bad_configs_and_eval_mode_outputs():
    with pytest.raises(ValueError, match="SARLoss"):
        MultiLoss(loss_config_list=[{"CTCLoss": None}, {"SARLoss": None}])
    loss_fn = MultiLoss(loss_config_list=[{"CTCLoss": None}, {"NRTRLoss": None}])
    with pytest.raises(TypeError, match="eval mode"):
        loss_fn(paddle.zeros([1, 4, 37]), encode(["a"]))
    with pytest.raises(KeyError, match="nrtr"):
        loss_fn({"ctc": paddle.zeros([1, 4, 37])}, encode(["a"]))
