"""Choosing the system's drop_score and unclip ratio on val (ocrforge.system_search, stage tune_system)."""

import json

import cv2
import numpy as np
import pytest

from ocrforge.data.det_labels import Sample
from ocrforge.data.ppocrlabel import TextLine
from ocrforge.system import OcrLine
from ocrforge.system_search import (choose, read_every_line, score_drop_scores, score_settings, search_system,
                                    tuned_overrides)


def _box(x: float, y: float, w: float = 60, h: float = 20):
    return ((x, y), (x + w, y), (x + w, y + h), (x, y + h))


def _line(text: str, score: float, x: float, y: float) -> OcrLine:
    return OcrLine(np.array(_box(x, y), np.float32), text, score)


def _samples(tmp_path):
    # image a: its label read at 0.95, and other text (not labelled) read at 0.55;
    # image b: its label read at 0.65
    a = Sample("a.png", tmp_path / "a.png", [TextLine(_box(10, 10), "ABC")])
    b = Sample("b.png", tmp_path / "b.png", [TextLine(_box(10, 10), "DEF")])
    readings = [[_line("ABC", 0.95, 10, 10), _line("XY", 0.55, 10, 60)], [_line("DEF", 0.65, 11, 10)]]
    return [a, b], readings


def test_each_threshold_keeps_its_lines_and_the_best_is_chosen(tmp_path):
    samples, readings = _samples(tmp_path)
    rows = score_drop_scores(readings, samples, [0.7, 0.5, 0.6, 0.62, 0.5])
    assert [r["drop_score"] for r in rows] == [0.5, 0.6, 0.62, 0.7]  # sorted, each once
    by = {r["drop_score"]: r for r in rows}
    assert by[0.5] == {"drop_score": 0.5, "precision": 0.6667, "recall": 1.0, "hmean": 0.8, "full_text_acc": 0.5,
                       "lines_kept": 3}
    assert by[0.6]["hmean"] == by[0.62]["hmean"] == 1.0 and by[0.6]["full_text_acc"] == 1.0
    assert by[0.7] == {"drop_score": 0.7, "precision": 1.0, "recall": 0.5, "hmean": 0.6667, "full_text_acc": 0.5,
                       "lines_kept": 1}
    assert choose(rows)["drop_score"] == 0.6  # a tie goes to the lowest threshold, which keeps the most lines


def test_case_follows_the_eval_setting(tmp_path):
    samples, readings = _samples(tmp_path)
    readings[0][0].text = "abc"
    strict = score_drop_scores(readings, samples, [0.6])[0]
    loose = score_drop_scores(readings, samples, [0.6], case_sensitive=False)[0]
    assert (strict["recall"], loose["recall"]) == (0.5, 1.0)


def test_no_val_images_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="val split is empty"):
        score_drop_scores([], [], [0.5])


def test_each_unclip_ratio_is_scored_and_ties_go_to_the_detectors_own(tmp_path):
    samples, readings = _samples(tmp_path)
    wide = [[_line("ABC", 0.95, 0, 0), _line("XY", 0.55, 10, 60)], [_line("DEF", 0.65, 11, 10)]]  # a box too large
    rows = score_settings({2.0: wide, 1.5: readings, 2.5: readings}, samples, [0.5, 0.6])
    assert [(r["unclip_ratio"], r["drop_score"]) for r in rows] == [(1.5, 0.5), (1.5, 0.6), (2.0, 0.5), (2.0, 0.6),
                                                                    (2.5, 0.5), (2.5, 0.6)]
    assert [r["hmean"] for r in rows] == [0.8, 1.0, 0.4, 0.5, 0.8, 1.0]
    # 1.5 and 2.5 tie at 1.0: the detector's own ratio wins the tie, else the lowest
    assert (choose(rows, 2.5)["unclip_ratio"], choose(rows, 2.5)["drop_score"]) == (2.5, 0.6)
    assert (choose(rows, 2.0)["unclip_ratio"], choose(rows, 2.0)["drop_score"]) == (1.5, 0.6)


def test_the_choice_applies_only_where_params_set_none(tmp_path):
    tuned = tmp_path / "system.json"
    assert tuned_overrides({"det_db_thresh": 0.3}, tuned) == {"det_db_thresh": 0.3}  # not run yet
    tuned.write_text(json.dumps({"searched": False}))
    assert tuned_overrides({}, tuned) == {}
    tuned.write_text(json.dumps({"searched": True, "best": {"drop_score": 0.8}}))  # written before unclip was searched
    assert tuned_overrides({"det_db_thresh": 0.3}, tuned) == {"det_db_thresh": 0.3, "drop_score": 0.8}
    assert tuned_overrides({"drop_score": 0.6}, tuned) == {"drop_score": 0.6}
    tuned.write_text(json.dumps({"searched": True, "best": {"drop_score": 0.8, "unclip_ratio": 2.5}}))
    assert tuned_overrides({}, tuned) == {"drop_score": 0.8, "det_db_unclip_ratio": 2.5}
    assert tuned_overrides({"det_db_unclip_ratio": 1.5}, tuned) == {"drop_score": 0.8, "det_db_unclip_ratio": 1.5}
    tuned.write_text("{not json")
    with pytest.raises(ValueError, match="system.json is not valid JSON.*dvc repro tune_system"):
        tuned_overrides({}, tuned)


def test_the_trained_system_reads_every_line_once_and_scores_each_setting(trained_models, known_image, tmp_path):
    from ocrforge.system import load_trained_system

    image, labels = known_image
    path = tmp_path / "known.png"
    cv2.imwrite(str(path), image)
    sample = Sample("known.png", path, [TextLine(tuple(map(tuple, lb["points"])), lb["transcription"])
                                        for lb in labels])
    # a system configured to drop everything still reads every line for the search
    strict = load_trained_system(trained_models / "det", trained_models / "rec", drop_score=1.0)
    own = strict.settings.det_db_unclip_ratio
    readings = read_every_line(strict, [sample], [own, 8.0])
    assert sorted(readings) == sorted({own, 8.0})
    assert sorted(line.text for line in readings[own][0]) == sorted(lb["transcription"] for lb in labels)
    # one detector run, post-processed per ratio: the system's own ratio gives the boxes it detects itself
    assert sorted(line.box.ravel().tolist() for line in readings[own][0]) == sorted(
        box.ravel().tolist() for box in strict.detect(image))
    result = search_system(strict, [sample], [0.5, 0.9], [8.0])
    assert [(r["unclip_ratio"], r["drop_score"]) for r in result["rows"]] == [
        (u, d) for u in sorted({own, 8.0}) for d in (0.5, 0.9, 1.0)]
    assert result["configured"]["drop_score"] == 1.0 and result["configured"]["lines_kept"] == 0
    # boxes 8 times unclipped no longer match the labels: the detector's own ratio is kept
    assert (result["best"]["unclip_ratio"], result["best"]["drop_score"]) == (own, 0.5)
    assert result["best"]["hmean"] == 1.0 and result["best"]["full_text_acc"] == 1.0 and result["images"] == 1
