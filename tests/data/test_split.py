"""The split stage's library: seeded, leak-free, any ratio, safe with folders, real on sroie100."""

import filecmp
import json
from pathlib import Path

import pytest

from ocrforge.data.demo import DemoConfig, generate_demo_dataset
from ocrforge.data.ppocrlabel import load_ppocrlabel
from ocrforge.data.split import SPLITS, SplitRatio, split_dataset
from ocrforge.resources import read_dictionary


@pytest.fixture(scope="module")
def demo_labels(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    generate_demo_dataset(root, DemoConfig(num_images=20, seed=7, width=240, height=180))
    return load_ppocrlabel(root / "Label.txt")


def read_rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(
    "ratio,n,expected",
    [("6:2:2", 10, (6, 2, 2)), ("6:2:2", 100, (60, 20, 20)), ("7:2:1", 20, (14, 4, 2)), ("1:1:1", 7, (3, 2, 2)),
     ("8:1:1", 5, (3, 1, 1)), ("6:2:2", 2, (1, 1, 0))],
)
def test_ratio_counts(ratio, n, expected):
    counts = SplitRatio.parse(ratio).counts(n)
    assert tuple(counts[s] for s in SPLITS) == expected


@pytest.mark.parametrize("bad", ["6:2", "0:1:1", "1.5:1:1", "a:b:c", [6, 2, -1]])
def test_bad_ratio_is_rejected(bad):
    with pytest.raises(ValueError, match="must be three positive integers"):
        SplitRatio.parse(bad)


def test_same_seed_same_files(demo_labels, tmp_path):
    split_dataset(demo_labels, tmp_path / "a", seed=3)
    split_dataset(demo_labels, tmp_path / "b", seed=3)
    for sub in ("det", "rec"):
        for name in SPLITS:
            assert (tmp_path / "a" / sub / f"{name}.txt").read_bytes() == (tmp_path / "b" / sub / f"{name}.txt").read_bytes()
    cmp = filecmp.dircmp(tmp_path / "a" / "rec" / "train", tmp_path / "b" / "rec" / "train")
    assert cmp.left_only == cmp.right_only == [] and cmp.diff_files == []
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "a" / "rec" / "train", tmp_path / "b" / "rec" / "train",
                                           cmp.common_files, shallow=False)
    assert mismatch == errors == []


def test_other_seed_other_split(demo_labels, tmp_path):
    a = split_dataset(demo_labels, tmp_path / "a", seed=3)
    split_dataset(demo_labels, tmp_path / "b", seed=4)
    rows_a = read_rows(tmp_path / "a" / "det" / "test.txt")
    rows_b = read_rows(tmp_path / "b" / "det" / "test.txt")
    assert [r[0] for r in rows_a] != [r[0] for r in rows_b]
    assert a["splits"]["train"]["images"] == 12


def test_no_leakage_between_splits(demo_labels, tmp_path):
    split_dataset(demo_labels, tmp_path, seed=1)
    images_of = {s: {r[0].split("/")[-1].rsplit(".", 1)[0] for r in read_rows(tmp_path / "det" / f"{s}.txt")} for s in SPLITS}
    assert not (images_of["train"] & images_of["val"]) and not (images_of["train"] & images_of["test"])
    assert not (images_of["val"] & images_of["test"])
    assert sum(len(v) for v in images_of.values()) == len(demo_labels.images)
    for split in SPLITS:
        for path, text in read_rows(tmp_path / "rec" / f"{split}.txt"):
            assert path.startswith(f"rec/{split}/")
            source = Path(path).stem.rsplit("_", 1)[0]
            assert source in images_of[split], f"crop {path} of {source} is not in the {split} split's images"
            assert (tmp_path / path).is_file()


def test_det_rows_keep_the_labels(demo_labels, tmp_path):
    split_dataset(demo_labels, tmp_path, seed=1)
    rows = read_rows(tmp_path / "det" / "train.txt")
    by_key = {im.key.replace("/", "__"): im for im in demo_labels.images}
    for path, payload in rows:
        image = by_key[Path(path).name]
        boxes = json.loads(payload)
        assert [b["transcription"] for b in boxes] == [line.text for line in image.lines]
        assert (tmp_path / path).read_bytes() == image.path.read_bytes()


def test_refuses_foreign_non_empty_output_and_deletes_nothing(demo_labels, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not written by the split stage"):
        split_dataset(demo_labels, out)
    assert (out / "precious.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="contains the input folder"):
        split_dataset(demo_labels, demo_labels.label_file.parent.parent)


def test_rerun_replaces_its_own_output(demo_labels, tmp_path):
    split_dataset(demo_labels, tmp_path, seed=1)
    (tmp_path / "notes.txt").write_text("user file")
    split_dataset(demo_labels, tmp_path, seed=2)
    assert (tmp_path / "notes.txt").read_text() == "user file"


def test_dictionary_report_names_missing_characters(demo_labels, tmp_path):
    chars = [c for c in read_dictionary("ppocr/utils/en_dict.txt", True) if c != "7"]
    summary = split_dataset(demo_labels, tmp_path, seed=1, chars=chars, max_text_length=8)
    report = summary["dictionary"]
    assert list(report["missing_chars"]) == ["7"]
    assert report["missing_chars"]["7"]["examples"][0].startswith(str(demo_labels.label_file) + ":")
    expected_long = sum(len(l.text) > 8 for im in demo_labels.images for l in im.lines)
    assert report["labels_too_long"] == expected_long > 0


def test_real_sroie100_counts(sroie_dir, tmp_path):
    labels = load_ppocrlabel(sroie_dir / "Label.txt")
    chars = read_dictionary("ppocr/utils/en_dict.txt", True)
    summary = split_dataset(labels, tmp_path, seed=42, chars=chars)
    assert {s: summary["splits"][s]["images"] for s in SPLITS} == {"train": 60, "val": 20, "test": 20}
    assert sum(summary["splits"][s]["rec_crops"] for s in SPLITS) == 5437
    assert sum(len(read_rows(tmp_path / "rec" / f"{s}.txt")) for s in SPLITS) == 5437
    assert summary["dictionary"]["labels_with_missing_chars"] == 0


# ---------------------------------------------------------------- layout: a folder of single-line crops


def write_crops_folder(root: Path, sizes: list[tuple[int, int]], scenes: int = 0) -> Path:
    """A PPOCRLabel folder of text-line crops (grey, dark text drawn on them), each labelled with one box from
    corner to corner, plus ``scenes`` larger images with two small boxes each."""
    import cv2
    import numpy as np

    rows, states = [], []
    for i, (w, h) in enumerate(sizes):
        text = f"AB{i:02d}CD"
        image = np.full((h, w, 3), 215, np.uint8)
        cv2.putText(image, text, (2, h - 4), cv2.FONT_HERSHEY_SIMPLEX, h / 40, (20, 20, 20), 1)
        (root / "crops").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "crops" / f"{i:03d}.png"), image)
        box = {"transcription": text, "points": [[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], "difficult": False}
        rows.append(f"crops/{i:03d}.png\t{json.dumps([box])}")
        states.append(f"crops/{i:03d}.png\t1")
    for i in range(scenes):
        image = np.full((180, 240, 3), 215, np.uint8)
        cv2.imwrite(str(root / "crops" / f"scene{i}.png"), image)
        boxes = [{"transcription": t, "points": [[20, y], [120, y], [120, y + 30], [20, y + 30]], "difficult": False}
                 for t, y in (("LOT 1", 20), ("EXP 2", 90))]
        rows.append(f"crops/scene{i}.png\t{json.dumps(boxes)}")
        states.append(f"crops/scene{i}.png\t1")
    (root / "Label.txt").write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    (root / "fileState.txt").write_text("".join(s + "\n" for s in states), encoding="utf-8")
    return root / "Label.txt"


CROP_SIZES = [(120, 32), (96, 24), (160, 40), (40, 10), (200, 48), (64, 16), (150, 30), (110, 28), (90, 22),
              (130, 36)]


def test_a_folder_of_single_line_crops_is_detected(tmp_path):
    from ocrforge.data.split import dataset_layout, format_summary

    labels = load_ppocrlabel(write_crops_folder(tmp_path / "plates", CROP_SIZES))
    summary = split_dataset(labels, tmp_path / "out", seed=1)
    assert summary["layout"] == {
        "layout": "single_line_crops", "images": 10, "single_box_images": 10,
        "warning": "10 of 10 images hold a single box covering at least 90% of the image: a folder of single-line "
                   "crops. Detection and end-to-end figures on it (train_det, distill_det, eval's det and e2e) "
                   "measure how the boxes were drawn, not reading: read the recogniser's accuracy (train_rec val "
                   "acc, eval rec acc)"}
    assert ("  layout: single_line_crops (10 of 10 images hold a single box covering at least 90% of the image)"
            in format_summary(summary).splitlines())
    # the 90% rule at its edge: 9 crops of 10 images still are a crops folder, 8 of 10 are not
    nine = load_ppocrlabel(write_crops_folder(tmp_path / "nine", CROP_SIZES[:9], scenes=1))
    eight = load_ppocrlabel(write_crops_folder(tmp_path / "eight", CROP_SIZES[:8], scenes=2))
    assert (dataset_layout(nine.images)["layout"], dataset_layout(nine.images)["single_box_images"]) == \
        ("single_line_crops", 9)
    assert dataset_layout(eight.images) == {"layout": "scenes", "images": 10, "single_box_images": 8, "warning": None}


def test_the_demo_scenes_are_not_crops(demo_labels, tmp_path):
    assert split_dataset(demo_labels, tmp_path / "out", seed=1)["layout"] == {
        "layout": "scenes", "images": 20, "single_box_images": 0, "warning": None}


def test_the_split_stage_warns_and_writes_the_layout_to_its_metrics(tmp_path, repo_root):
    import subprocess
    import sys

    import yaml

    write_crops_folder(tmp_path / "plates", CROP_SIZES)
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["split"]["input"] = str(tmp_path / "plates")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    run = subprocess.run([sys.executable, str(repo_root / "stages" / "split.py"), "--input", str(tmp_path / "plates"),
                          "--out", "data/split", "--report", "reports/split.json"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    warnings = [line for line in run.stderr.splitlines() if " WARNING ocrforge.stage.split: " in line]
    assert len(warnings) == 1 and warnings[0].endswith(
        "measure how the boxes were drawn, not reading: read the recogniser's accuracy (train_rec val acc, eval rec acc)")
    metrics = json.loads((tmp_path / "reports" / "split.json").read_text())
    assert metrics["layout"] == "single_line_crops"
    assert metrics["layout_warning"].startswith("10 of 10 images hold a single box covering at least 90%")


def test_train_lines_also_get_context_crops_for_the_recogniser(demo_labels, tmp_path):
    from ocrforge.data.crop import CONTEXT_MARGIN, context_pad
    from ocrforge.data.images import read_image

    split_dataset(demo_labels, tmp_path, seed=1)
    exact, context = read_rows(tmp_path / "rec" / "train.txt"), read_rows(tmp_path / "rec" / "train_context.txt")
    assert [text for _, text in context] == [text for _, text in exact] and len(exact) > 0
    for (exact_path, _), (context_path, _) in zip(exact, context):
        assert context_path == exact_path.replace("rec/train/", "rec/train_context/")
        crop, wide = read_image(tmp_path / exact_path), read_image(tmp_path / context_path)
        pad = context_pad(wide.shape, CONTEXT_MARGIN)
        assert wide.shape[:2] == (crop.shape[0] + 2 * pad, crop.shape[1] + 2 * pad)
    assert not (tmp_path / "rec" / "val_context.txt").exists() and not (tmp_path / "rec" / "test_context").exists()
