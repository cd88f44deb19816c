"""ocrforge.prelabel without a model: merging label files byte for byte, what fileState.txt marks checked,
atomic writes, the ranking, the command's errors; and the PPOCRLabel reader on PPOCRLabel's own layout."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
from click.testing import CliRunner

from ocrforge.cli import main
from ocrforge.data.ppocrlabel import load_ppocrlabel
from ocrforge.prelabel import (
    BOM,
    confidence_row,
    image_key,
    listed_images,
    merge_rows,
    path_tail,
    rank,
    write_atomic,
)


def test_path_tail_matches_ppocrlabel_keys_and_absolute_paths():
    assert path_tail("imgs/a.jpg") == "imgs/a.jpg"
    assert path_tail("/home/me/data/imgs/a.jpg") == "imgs/a.jpg"
    assert path_tail("C:\\Users\\me\\imgs\\a.jpg") == "imgs/a.jpg"
    assert path_tail("a.jpg") == "a.jpg"


def test_every_listed_image_counts_as_checked_whatever_its_state(tmp_path):
    """PPOCRLabel's loader marks each listed image checked (it ignores the state column), so prelabel must
    leave each of them alone: 0, 1, absolute, Windows, BOM, no tab."""
    state = tmp_path / "fileState.txt"
    state.write_bytes(BOM + b"/abs/path/imgs/a.jpg\t1\nimgs/b.jpg\t0\r\nD:\\x\\imgs\\c.jpg\t1\nimgs/d.jpg\n\n")
    assert listed_images(state) == {"imgs/a.jpg", "imgs/b.jpg", "imgs/c.jpg", "imgs/d.jpg"}
    assert listed_images(tmp_path / "none.txt") == set()


def test_merge_replaces_in_place_keeps_every_other_byte_and_appends():
    existing = (
        BOM + b"imgs/a.jpg\t[old a]\r\n"
        b"imgs/checked.jpg\t[{\"transcription\": \"caf\xe9\"}]\n"   # not UTF-8: kept as is
        b"no tab here\n"
        b"imgs/a.jpg\t[duplicate of a]\n"
        b"/elsewhere/imgs/gone.jpg\t[1]"                                # no final newline
    )
    new = {"imgs/a.jpg": "imgs/a.jpg\t[new a]\n", "imgs/z.jpg": "imgs/z.jpg\t[new z]\n"}
    merged, replaced = merge_rows(existing, new)
    assert replaced == ["imgs/a.jpg"]
    assert merged == (
        BOM + b"imgs/a.jpg\t[new a]\n"
        b"imgs/checked.jpg\t[{\"transcription\": \"caf\xe9\"}]\n"
        b"no tab here\n"
        b"/elsewhere/imgs/gone.jpg\t[1]\n"
        b"imgs/z.jpg\t[new z]\n"
    )
    assert merge_rows(b"", new)[0] == b"imgs/a.jpg\t[new a]\nimgs/z.jpg\t[new z]\n"
    assert merge_rows(existing, {}) == (existing + b"\n", [])


def test_write_atomic_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "Label.txt"
    target.write_bytes(b"old\n")
    os.chmod(target, 0o600)
    write_atomic(target, b"new\n")
    assert target.read_bytes() == b"new\n"
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Label.txt"]


def test_ranking_is_by_confidence_then_name():
    rows = [
        confidence_row("f/b.jpg", [0.9, 0.6], [0.9, 0.6, 0.2], "min_score"),
        confidence_row("f/a.jpg", [], [0.3], "min_score"),
        confidence_row("f/c.jpg", [0.6], [0.6], "min_score"),
    ]
    assert rows[0] == {"image": "f/b.jpg", "confidence": 0.6, "lines": 2, "min_score": 0.6, "mean_score": 0.75,
                       "min_read_score": 0.2, "product_score": 0.54}
    assert [r["image"] for r in rank(rows)] == ["f/a.jpg", "f/b.jpg", "f/c.jpg"]
    expected_one = [confidence_row(r["image"], [r["min_score"]] * r["lines"], [], "min_score", expected_lines=1)
                    for r in rows]
    assert [(r["image"], r["confidence"]) for r in rank(expected_one)] == [
        ("f/a.jpg", -1.0), ("f/b.jpg", -0.4), ("f/c.jpg", 0.6)]
    by_read = [confidence_row(r["image"], [], [r["min_read_score"]], "min_read_score") for r in rows]
    assert [r["image"] for r in rank(by_read)] == ["f/b.jpg", "f/a.jpg", "f/c.jpg"]


def test_reader_finds_images_when_label_txt_is_inside_the_image_folder(tmp_path):
    """PPOCRLabel writes <folder>/Label.txt with keys '<folder name>/<image>'; the split stage reads it."""
    folder = tmp_path / "new_batch"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((40, 60, 3), 255, np.uint8))
    box = {"transcription": "AB12", "points": [[5, 5], [50, 5], [50, 30], [5, 30]], "difficult": False}
    (folder / "Label.txt").write_text(f"{image_key(folder, 'a.png')}\t{json.dumps([box])}\n", encoding="utf-8")
    (folder / "fileState.txt").write_text(f"{folder / 'a.png'}\t1\n", encoding="utf-8")
    (image,) = load_ppocrlabel(folder / "Label.txt").images
    assert image.key == "new_batch/a.png" and image.path == (folder / "a.png").resolve()
    assert [(line.text, line.points) for line in image.lines] == [("AB12", ((5, 5), (50, 5), (50, 30), (5, 30)))]


def run(*args):
    result = CliRunner().invoke(main, ["prelabel", *map(str, args)])
    return result.exit_code, result.stdout


def test_missing_folder_and_missing_model_are_exit_1_and_write_nothing(tmp_path):
    code, out = run(tmp_path / "nope")
    assert code == 1 and json.loads(out) == {
        "success": False,
        "error": f"{tmp_path / 'nope'} is not a folder; give the folder of images you open in PPOCRLabel"}
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    code, out = run(tmp_path, "--model-dir", tmp_path / "no_export")
    assert code == 1 and "manifest.json not found" in json.loads(out)["error"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_a_folder_without_images_is_exit_1_and_nothing_is_written(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    code, out = run(tmp_path, "--model-dir", tmp_path / "no_export")
    assert code == 1 and json.loads(out)["error"] == (
        f"{tmp_path} holds no images (.jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp); give the folder of images you "
        f"open in PPOCRLabel, not the folder above it")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
