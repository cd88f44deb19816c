"""The PPOCRLabel reader on good input, on every kind of bad input, and on the real sroie100 folder."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ocrforge.data.ppocrlabel import LabelError, load_ppocrlabel

BOX = {"transcription": "AB12", "points": [[10, 10], [60, 10], [60, 30], [10, 30]], "difficult": False}


def write_image(path: Path, size=(100, 80)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((size[1], size[0], 3), 200, np.uint8))


def write_folder(root: Path, rows: list[str], states: list[str] | None = None) -> Path:
    (root / "Label.txt").write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    if states is not None:
        (root / "fileState.txt").write_text("".join(s + "\n" for s in states), encoding="utf-8")
    return root / "Label.txt"


def row(key: str, boxes: list) -> str:
    return f"{key}\t{json.dumps(boxes)}"


def test_reads_boxes_ignore_regions_and_resolves_paths(tmp_path):
    write_image(tmp_path / "imgs" / "a.jpg")
    boxes = [BOX, {**BOX, "transcription": "###"}, {**BOX, "transcription": "X", "difficult": True}]
    label = write_folder(tmp_path, [row("imgs/a.jpg", boxes)])
    result = load_ppocrlabel(label)
    (image,) = result.images
    assert image.path == (tmp_path / "imgs" / "a.jpg").resolve()
    assert (image.width, image.height) == (100, 80)
    assert [line.text for line in image.lines] == ["AB12", "###", "X"]
    assert [line.ignore for line in image.lines] == [False, True, True]
    assert image.lines[0].points == ((10.0, 10.0), (60.0, 10.0), (60.0, 30.0), (10.0, 30.0))
    assert result.summary()["ignore_lines"] == 2


def test_only_checked_images_when_file_state_exists(tmp_path):
    for name in ("a", "b", "c"):
        write_image(tmp_path / "imgs" / f"{name}.jpg")
    rows = [row(f"imgs/{n}.jpg", [BOX]) for n in "abc"]
    # PPOCRLabel writes absolute paths of the labelling machine; "b" is unchecked, "c" missing.
    label = write_folder(tmp_path, rows, ["C:\\labelling\\imgs\\a.jpg\t1", "imgs/b.jpg\t0"])
    result = load_ppocrlabel(label)
    assert [im.key for im in result.images] == ["imgs/a.jpg"]
    assert sorted(result.unchecked) == ["imgs/b.jpg", "imgs/c.jpg"]
    assert len(load_ppocrlabel(label, file_state=None).images) == 3


def test_same_file_name_in_two_folders_kept_apart(tmp_path):
    write_image(tmp_path / "x" / "001.jpg", (100, 80))
    write_image(tmp_path / "y" / "001.jpg", (120, 90))
    label = write_folder(tmp_path, [row("x/001.jpg", [BOX]), row("y/001.jpg", [BOX])])
    result = load_ppocrlabel(label)
    assert [(im.key, im.width) for im in result.images] == [("x/001.jpg", 100), ("y/001.jpg", 120)]


BAD_CASES = [
    ("no tab", lambda: "imgs/a.jpg [..]", "expected '<image path><TAB><JSON list of boxes>', found no tab"),
    ("bad json", lambda: "imgs/a.jpg\t[{oops", "the boxes of 'imgs/a.jpg' are not valid JSON: "),
    ("not a list", lambda: "imgs/a.jpg\t{}", "the boxes of 'imgs/a.jpg' are a JSON dict, expected a list"),
    ("missing image", lambda: row("imgs/zz.jpg", [BOX]), "image 'imgs/zz.jpg' not found at "),
    ("unreadable image", lambda: row("imgs/broken.jpg", [BOX]), "image 'imgs/broken.jpg' cannot be decoded (corrupt or not an image)"),
    ("three points", lambda: row("imgs/a.jpg", [{**BOX, "points": [[1, 1], [5, 1], [5, 5]]}]),
     "imgs/a.jpg: box 1 has 3 point(s); a text box needs at least 4 (a quadrilateral)"),
    ("zero area", lambda: row("imgs/a.jpg", [{**BOX, "points": [[1, 1], [50, 1], [50, 1], [1, 1]]}]),
     "imgs/a.jpg: box 1 ('AB12') has zero area; redraw it around the text"),
    ("outside", lambda: row("imgs/a.jpg", [{**BOX, "points": [[10, 10], [160, 10], [160, 30], [10, 30]]}]),
     "imgs/a.jpg: box 1 ('AB12') has point (160, 10) outside the 100x80 image; redraw the box inside the image"),
    ("empty text", lambda: row("imgs/a.jpg", [{**BOX, "transcription": " "}]),
     "imgs/a.jpg: box 1 has an empty transcription; type the text, or '###' to mark an ignore region"),
    ("no points key", lambda: row("imgs/a.jpg", [{"transcription": "A"}]), "imgs/a.jpg: box 1 has no 'points' key"),
]


@pytest.mark.parametrize("name,make_row,expected", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_each_bad_input_is_reported_with_file_and_line(tmp_path, name, make_row, expected):
    write_image(tmp_path / "imgs" / "a.jpg")
    (tmp_path / "imgs" / "broken.jpg").write_bytes(b"not a jpeg at all")
    label = write_folder(tmp_path, [make_row()])
    with pytest.raises(LabelError) as info:
        load_ppocrlabel(label)
    (problem,) = info.value.problems
    assert problem.line == 1
    assert str(problem).startswith(f"{label}:1: {expected}")
    assert "split.on_label_error: skip" in str(info.value)


def test_skip_mode_keeps_good_images_and_counts_bad_ones(tmp_path):
    write_image(tmp_path / "imgs" / "a.jpg")
    write_image(tmp_path / "imgs" / "b.jpg")
    label = write_folder(tmp_path, [row("imgs/a.jpg", [BOX]), "imgs/b.jpg\t[bad", row("imgs/gone.jpg", [BOX])])
    result = load_ppocrlabel(label, on_error="skip")
    assert [im.key for im in result.images] == ["imgs/a.jpg"]
    assert result.skipped_images == 2
    assert [p.line for p in result.problems] == [2, 3]


def test_empty_dataset_is_a_clear_error(tmp_path):
    label = write_folder(tmp_path, [])
    with pytest.raises(LabelError, match=r"no usable labelled image in .*Label.txt \(the file lists no images\)"):
        load_ppocrlabel(label)


def test_missing_label_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="point split.input at the Label.txt"):
        load_ppocrlabel(tmp_path / "Label.txt")


def test_points_on_the_border_are_clipped(tmp_path):
    write_image(tmp_path / "imgs" / "a.jpg")
    box = {**BOX, "points": [[-1.5, 0], [100.5, 0], [100.5, 30], [-1.5, 30]]}
    result = load_ppocrlabel(write_folder(tmp_path, [row("imgs/a.jpg", [box])]))
    assert result.images[0].lines[0].points == ((0.0, 0.0), (99.0, 0.0), (99.0, 30.0), (0.0, 30.0))


def test_real_sroie100(sroie_dir):
    result = load_ppocrlabel(sroie_dir / "Label.txt")
    assert len(result.images) == 100
    assert result.num_lines == 5437
    assert result.problems == [] and result.unchecked == []


# ---------------------------------------------------------------- encodings (issue 22, defects 3 and 4)

def three_images(root: Path) -> None:
    for name in ("a", "b", "c"):
        write_image(root / "imgs" / f"{name}.jpg")


def test_a_byte_order_mark_in_filestate_keeps_the_first_image(tmp_path):
    """Before: the BOM became part of the first path, so that image counted as unchecked, without a word."""
    three_images(tmp_path)
    label = write_folder(tmp_path, [row(f"imgs/{n}.jpg", [BOX]) for n in "abc"])
    (tmp_path / "fileState.txt").write_bytes(b"\xef\xbb\xbf" + "".join(
        f"imgs/{n}.jpg\t1\n" for n in "abc").encode("utf-8"))  # as Notepad saves it
    result = load_ppocrlabel(label)
    assert [im.key for im in result.images] == ["imgs/a.jpg", "imgs/b.jpg", "imgs/c.jpg"]
    assert result.unchecked == [] and result.problems == []


@pytest.mark.parametrize("where", ["Label.txt", "fileState.txt"])
def test_a_byte_that_is_not_utf8_is_reported_with_its_file_and_line(tmp_path, where):
    """Before: UnicodeDecodeError with no file or line, in 'stop' and 'skip' alike."""
    three_images(tmp_path)
    rows = [row(f"imgs/{n}.jpg", [BOX]) for n in "abc"]
    states = [f"{tmp_path}/imgs/{n}.jpg\t1" for n in "abc"]
    lines = rows if where == "Label.txt" else states
    data = [line.encode("utf-8") for line in lines]
    data[1] = data[1].replace(b"imgs/b.jpg", b"imgs/b\xe9.jpg") if where == "fileState.txt" else \
        data[1].replace(b"AB12", b"AB\xe912")  # latin-1 e-acute
    label = write_folder(tmp_path, rows, states)
    (tmp_path / where).write_bytes(b"".join(d + b"\n" for d in data))
    column = data[1].index(b"\xe9") + 1
    expected = (f"{tmp_path / where}:2: not valid UTF-8 (byte 0xe9 at column {column}); the line is left out. "
                f"Re-save {where} as UTF-8")
    with pytest.raises(LabelError) as info:
        load_ppocrlabel(label, on_error="stop")
    assert expected in str(info.value) and str(info.value).startswith(f"1 problem(s) in {tmp_path / where}:")
    result = load_ppocrlabel(label, on_error="skip")
    assert [im.key for im in result.images] == ["imgs/a.jpg", "imgs/c.jpg"]
    assert [str(p) for p in result.problems][0].startswith(expected) and len(result.problems) == 1
    assert result.summary()["problems"] == 1
    if where == "Label.txt":
        assert result.skipped_images == 1
    else:  # the image whose fileState line is unreadable is not marked checked
        assert result.unchecked == ["imgs/b.jpg"]
