"""check_rec_labels: counts and file:line locations of labels the encoders would drop or alter."""

from __future__ import annotations

import pytest

from ocrforge.data.label_check import check_rec_labels
from ocrforge.resources import read_dictionary
from test_loader_data import EN_DICT

CHARS = read_dictionary(EN_DICT, use_space_char=True)


def write_labels(path, texts):
    path.write_text("".join(f"rec/train/{i}.png\t{t}\n" for i, t in enumerate(texts)), encoding="utf-8")
    return path


def test_counts_and_locations(tmp_path):
    labels = write_labels(tmp_path / "train.txt", [
        "fine",               # 1 ok
        "x" * 11,             # 2 too long for max_text_length 10
        "ÄÖ",                 # 3 nothing known
        "café",               # 4 one unknown char
        "",                   # 5 empty
        "123456789",          # 6 9 known chars >= 10 - 1: dropped by the NRTR branch
        "[1] a",              # 7 brackets are fine in a recognition label
    ])
    report = check_rec_labels([labels], CHARS, max_text_length=10)
    assert report.labels == 7
    assert dict(report.counts) == {"too_long": 1, "only_unknown_chars": 1, "with_unknown_chars": 1, "empty": 1,
                                   "too_long_for_nrtr": 1}
    assert report.too_long == [f"{labels}:2"]
    assert report.only_unknown_chars == [f"{labels}:3"]
    assert report.with_unknown_chars == [f"{labels}:4"]
    assert report.empty == [f"{labels}:5"]
    assert report.too_long_for_nrtr == [f"{labels}:6"]
    assert report.unknown_chars == {"Ä": 1, "Ö": 1, "é": 1}
    assert not report.ok
    text = report.format()
    assert "7 recognition labels" in text
    assert f"1 longer than 10 characters (dropped): {labels}:2" in text
    assert "'é'x1" in text


def test_locations_are_capped_but_counts_are_not(tmp_path):
    labels = write_labels(tmp_path / "train.txt", ["y" * 30] * 8)
    report = check_rec_labels(labels, CHARS, max_text_length=25)
    assert report.counts["too_long"] == 8 and len(report.too_long) == 5
    assert report.format().splitlines()[1].endswith(" ...")


def test_clean_labels_report_ok(tmp_path):
    report = check_rec_labels(write_labels(tmp_path / "t.txt", ["abc", "A B"]), CHARS, 25)
    assert report.ok and "all labels fit" in report.format()


def test_malformed_line_names_file_and_line(tmp_path):
    labels = tmp_path / "t.txt"
    labels.write_text("rec/train/0.png\tok\njust-a-path\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{labels}:2: expected"):
        check_rec_labels(labels, CHARS, 25)
