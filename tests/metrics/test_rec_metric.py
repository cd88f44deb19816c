import pytest

from ocrforge.metrics import RecMetric
from ocrforge.registry import METRICS


def pairs(*texts):
    return [(t, 1.0) for t in texts]


def test_acc_and_norm_edit_dis_on_hand_made_lists():
    metric = METRICS.build({"name": "RecMetric", "main_indicator": "acc"})
    assert metric.main_indicator == "acc"
    batch_figures = metric((pairs("TOTAL", "12.50", "CASH"), pairs("TOTAL", "12.60", "CARD")), None)
    # distances: 0, 1/5, 2/4
    assert batch_figures["acc"] == pytest.approx(1 / 3)
    assert batch_figures["norm_edit_dis"] == pytest.approx(1 - (0 + 0.2 + 0.5) / 3)
    metric((pairs("abc"), pairs("abc")), None)
    figures = metric.get_metric()
    assert figures == {"acc": pytest.approx(2 / 4), "norm_edit_dis": pytest.approx(1 - 0.7 / 4)}
    assert metric.get_metric() == {"acc": 0.0, "norm_edit_dis": 0.0}  # reset after reading


def test_ignore_space_and_case():
    preds, labels = pairs("TOTAL  RM", "Tax"), pairs("TOTAL RM", "TAX")
    strict = RecMetric(ignore_space=False)
    strict((preds, labels))
    assert strict.get_metric()["acc"] == 0.0
    spaces = RecMetric(ignore_space=True)
    spaces((preds, labels))
    assert spaces.get_metric()["acc"] == 0.5
    caseless = RecMetric(ignore_space=True, case_sensitive=False)
    caseless((preds, labels))
    assert caseless.get_metric() == {"acc": 1.0, "norm_edit_dis": 1.0}


def test_is_filter_keeps_letters_and_digits_lower_cased():
    metric = RecMetric(is_filter=True)
    metric((pairs("R.M-12"), pairs("rm12")))
    assert metric.get_metric()["acc"] == 1.0


def test_mismatched_lengths_are_reported():
    with pytest.raises(ValueError, match="2 predictions but 1 labels"):
        RecMetric()((pairs("a", "b"), pairs("a")))


def test_acc_normalised_ignores_case_and_characters_no_label_uses():
    """Issue 17: a zero-shot model read 0.233 raw on upper-case plates and 0.71 once normalised to the labels'
    upper-case letters and digits; both figures are reported."""
    metric = RecMetric(ignore_space=False, label_alphabet="0123456789ABCDEFGHJKLMNPRSTUVWXYZ")
    preds = pairs("abc123", "ABC-123", "A B C 1 2 3", "AB0123", "ABC123", "abc12")
    labels = pairs("ABC123", "ABC123", "ABC123", "ABC123", "ABC123", "ABC123")
    batch = metric((preds, labels))
    # lower case, a dash, spaces: only conventions; a 0 for a C and a missing 3: real errors
    assert batch["acc"] == pytest.approx(1 / 6) and batch["acc_normalised"] == pytest.approx(4 / 6)
    assert metric.normalise_to_labels("Ab-c 1.2") == "abc12"
    assert metric.get_metric() == {"acc": pytest.approx(1 / 6), "norm_edit_dis": pytest.approx(batch["norm_edit_dis"]),
                                   "acc_normalised": pytest.approx(4 / 6)}
    assert RecMetric().get_metric() == {"acc": 0.0, "norm_edit_dis": 0.0}  # without an alphabet, as before


def test_acc_normalised_merges_across_processes():
    one, two = RecMetric(label_alphabet="AB"), RecMetric(label_alphabet="AB")
    one((pairs("a"), pairs("A")))
    two((pairs("b", "x"), pairs("B", "A")))
    merged = {k: one.accumulated()[k] + two.accumulated()[k] for k in one.accumulated()}
    one.set_accumulated(merged)
    assert one.get_metric()["acc_normalised"] == pytest.approx(2 / 3)
