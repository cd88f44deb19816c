"""The evaluation: metrics on a tiny split with known answers, reports written, PPOCRLabel folders read."""

import json

import cv2

import numpy as np
import pytest

from ocrforge.evaluate import evaluate, load_det_label_file, load_ppocrlabel_folder


def _write_split(tmp_path, image, boxes, wrong_text: str):
    """Two copies of the known image: one labelled right, one with the last line labelled ``wrong_text``."""
    (tmp_path / "det" / "images").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "det" / "images" / "right.png"), image)
    cv2.imwrite(str(tmp_path / "det" / "images" / "wrong.png"), image)
    wrong = [dict(b) for b in boxes]
    wrong[-1]["transcription"] = wrong_text
    rows = [f"det/images/right.png\t{json.dumps(boxes)}", f"det/images/wrong.png\t{json.dumps(wrong)}"]
    (tmp_path / "det" / "test.txt").write_text("\n".join(rows) + "\n")
    return load_det_label_file(tmp_path / "det" / "test.txt", tmp_path)


def test_eval_metrics_reports_and_gallery(trained_system, known_image, tmp_path):
    samples = _write_split(tmp_path / "split", *known_image, wrong_text="SN99999")
    metrics = evaluate(trained_system, samples, tmp_path / "eval", gallery_size=5)

    assert metrics["images"] == 2 and metrics["lines"] == 6
    assert metrics["det"] == {"precision": 1.0, "recall": 1.0, "hmean": 1.0,
                              "hmean_ci95_low": 1.0, "hmean_ci95_high": 1.0}
    # resampling the two images (3/3 and 2/3 lines read) gives 2/3, 5/6 or 1 as the set's e2e hmean
    assert abs(metrics["e2e"]["hmean_ci95_low"] - 2 / 3) < 1e-9 and metrics["e2e"]["hmean_ci95_high"] == 1.0
    assert metrics["rec"]["acc"] == 5 / 6
    assert abs(metrics["e2e"]["precision"] - 5 / 6) < 1e-9 and abs(metrics["e2e"]["recall"] - 5 / 6) < 1e-9
    assert metrics["e2e"]["full_text_acc"] == 0.5
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text()) == metrics

    records = [json.loads(r) for r in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert [r["image"] for r in records] == ["det/images/right.png", "det/images/wrong.png"]
    assert records[1]["e2e"] == {"gt_care": 3, "det_care": 3, "matched": 2, "full_text_match": False}
    assert records[1]["det"] == {"gt_care": 3, "det_care": 3, "matched": 3}
    assert records[0]["pred"]["full_text"] == "LOT4711 EXP2027\nSN12345"

    gallery = sorted(p.name for p in (tmp_path / "eval" / "gallery").iterdir())
    assert gallery == ["01_wrong.png"]  # the correct image is no error
    assert cv2.imread(str(tmp_path / "eval" / "gallery" / "01_wrong.png")).shape[1] > 2 * known_image[0].shape[1]
    assert "01_wrong.png" in (tmp_path / "eval" / "README.md").read_text()


def test_case_insensitive_eval(trained_system, known_image, tmp_path):
    samples = _write_split(tmp_path / "split", *known_image, wrong_text="sn12345")
    strict = evaluate(trained_system, samples, tmp_path / "strict")
    loose = evaluate(trained_system, samples, tmp_path / "loose", case_sensitive=False)
    assert strict["e2e"]["full_text_acc"] == 0.5 and loose["e2e"]["full_text_acc"] == 1.0


def test_reads_a_ppocrlabel_folder(sroie_dir):
    samples = load_ppocrlabel_folder(sroie_dir)
    assert len(samples) > 50
    first = samples[0]
    assert first.path.is_file() and first.lines
    assert set(first.lines[0]) == {"points", "text", "ignore"} and first.lines[0]["points"].shape[1] == 2
