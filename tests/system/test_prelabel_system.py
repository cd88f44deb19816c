"""``ocrforge prelabel`` with a real export on real photos (plates_eu_br, downscaled copies in tmp_path): the
round trip through the split stage's reader, a rerun that keeps every checked label byte for byte, bad images
reported and skipped, the ranking as the scores say."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

from ocrforge.cli import main
from ocrforge.data.ppocrlabel import LabelError, load_ppocrlabel

SHARED = Path(os.environ.get("OCRFORGE_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
PLATES = SHARED / "datasets" / "plates_eu_br"
GOOD = ["eu_eu1.jpg", "eu_eu10.jpg", "eu_eu11.jpg"]
MAX_SIDE = 640  # px: downscaled, so the test reads three photos in seconds


def prelabel(*args):
    result = CliRunner().invoke(main, ["prelabel", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def copy_photo(name: str, folder: Path) -> None:
    image = cv2.imread(str(PLATES / "plates" / name))
    scale = MAX_SIDE / max(image.shape[:2])
    cv2.imwrite(str(folder / name), cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))


def rows(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


@pytest.fixture(scope="module")
def first_run(exported_dir, tmp_path_factory):
    """A folder of 3 photos, a zero-byte .jpg and a corrupt .png, pre-labelled once: (folder, code, out, err)."""
    if not (PLATES / "Label.txt").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{PLATES} is missing; CI must run with ../shared beside the clone")
        pytest.skip(f"{PLATES} not found (set OCRFORGE_SHARED to the shared folder)")
    folder = tmp_path_factory.mktemp("prelabel") / "new_batch"
    folder.mkdir()
    for name in GOOD:
        copy_photo(name, folder)
    (folder / "eu_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (folder / "eu_zero.jpg").write_bytes(b"")
    code, out, err = prelabel(folder, "--model-dir", exported_dir)
    return folder, code, out, err


@pytest.fixture(scope="module")
def direct_reads(first_run, exported_dir):
    """What the public API reads on each good photo, at the export's own drop score."""
    from ocrforge import OCR

    ocr = OCR(exported_dir)
    return {name: ocr.read(first_run[0] / name) for name in GOOD}


@pytest.fixture
def batch(first_run, tmp_path):
    """A private copy of the pre-labelled folder (same folder name, so the keys stay)."""
    folder = tmp_path / "new_batch"
    shutil.copytree(first_run[0], folder)
    return folder


@pytest.mark.slow
def test_bad_images_are_reported_and_the_rest_labelled(first_run):
    folder, code, out, err = first_run
    assert code == 2
    summary = json.loads(out)
    assert (summary["success"], summary["predicted"], summary["kept_checked"], summary["failed"]) == (False, 3, 0, 2)
    errors = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert [e["image"] for e in errors] == [str(folder / "eu_corrupt.png"), str(folder / "eu_zero.jpg")]
    assert "not an image OpenCV can decode" in errors[0]["error"]
    assert errors[1]["error"] == (f"ImageReadError: {folder / 'eu_zero.jpg'} is empty (0 bytes); "
                                  f"copy the image again or remove it")
    report = json.loads((folder / "prelabel_report.json").read_text())
    assert report["failed"] == [{"image": e["image"], "error": e["error"]} for e in errors]
    keys = [row.split(b"\t")[0] for row in rows(folder / "Label.txt")]
    assert keys == [f"new_batch/{n}".encode() for n in GOOD]
    assert (folder / "Cache.cach").read_bytes() == (folder / "Label.txt").read_bytes()
    assert (folder / "fileState.txt").read_bytes() == b""  # every image unchecked: none listed


@pytest.mark.slow
def test_round_trip_checked_prelabels_reach_the_split_stage(batch, direct_reads, tmp_path):
    from ocrforge.data.split import split_dataset
    from ocrforge.resources import read_dictionary

    with pytest.raises(LabelError, match="3 image\\(s\\) are not marked checked"):
        load_ppocrlabel(batch / "Label.txt")  # unreviewed predictions never train
    # the user checks them in PPOCRLabel (older versions write absolute paths)
    (batch / "fileState.txt").write_text("".join(f"{(batch / n).resolve()}\t1\n" for n in GOOD), encoding="utf-8")
    labels = load_ppocrlabel(batch / "Label.txt")
    got = {im.path.name: [(line.text, line.points) for line in im.lines] for im in labels.images}
    expected = {
        name: [(line.text, tuple((float(round(x)), float(round(y))) for x, y in line.box)) for line in read.lines]
        for name, read in direct_reads.items()
    }
    assert got == expected
    assert sum(len(v) for v in got.values()) > 0
    assert "BS47040" in [text for text, _ in got["eu_eu11.jpg"]]  # the plate of eu_eu11, read by the stock model

    summary = split_dataset(labels, tmp_path / "split", ratio="6:2:2", seed=42,
                            chars=read_dictionary("ppocr/utils/en_dict.txt", True))
    assert sum(s["images"] for s in summary["splits"].values()) == 3
    split_texts = sorted(
        box["transcription"]
        for part in ("train", "val", "test")
        for row in (tmp_path / "split" / "det" / f"{part}.txt").read_text(encoding="utf-8").splitlines()
        for box in json.loads(row.split("\t", 1)[1])
    )
    assert split_texts == sorted(text for lines in got.values() for text, _ in lines)


@pytest.mark.slow
def test_rerun_keeps_checked_labels_byte_for_byte_and_merges(batch, exported_dir, first_run):
    label, cache, state = batch / "Label.txt", batch / "Cache.cach", batch / "fileState.txt"
    first = rows(label)
    # the user corrects eu_eu1 and checks it; eu_eu10 is listed with state 0 (PPOCRLabel counts it checked);
    # a checked image was deleted since; eu_eu11 stays unchecked with a stale line; a new photo arrives.
    human = ('new_batch/eu_eu1.jpg\t[{"transcription": "M5XSX", "points": [[199, 170], [300, 170], [300, 193], '
             '[199, 193]], "difficult": false}]\n').encode()
    gone = ('new_batch/gone.jpg\t[{"transcription": "ÄB", "points": [[1, 1], [9, 1], [9, 5], [1, 5]], '
            '"difficult": false}]\r\n').encode()
    label.write_bytes(human + first[1] + b"new_batch/eu_eu11.jpg\t[stale]\n" + gone)
    state_bytes = b"new_batch/eu_eu1.jpg\t1\n/some/other/machine/new_batch/eu_eu10.jpg\t0\nnew_batch/gone.jpg\t1\n"
    state.write_bytes(state_bytes)
    cache_before = rows(cache)
    copy_photo("eu_eu2.jpg", batch)

    code, out, _ = prelabel(batch, "--model-dir", exported_dir)
    assert code == 2  # the two bad images are still there
    summary = json.loads(out)
    assert (summary["predicted"], summary["kept_checked"], summary["labels_of_missing_images_kept"]) == (2, 2, 1)
    after = rows(label)
    assert after[:2] == [human, first[1]]      # checked: byte for byte, in place
    assert after[2] == first[2]                # unchecked: predicted again (the same model reads the same)
    assert after[3] == gone                    # a deleted image's checked label is never dropped
    assert after[4].startswith(b"new_batch/eu_eu2.jpg\t[") and len(after) == 5
    assert state.read_bytes() == state_bytes
    assert rows(cache)[:2] == cache_before[:2] and rows(cache)[2] == first[2] and rows(cache)[3] == after[4]
    report = json.loads((batch / "prelabel_report.json").read_text())
    assert report["kept_checked"] == ["new_batch/eu_eu1.jpg", "new_batch/eu_eu10.jpg"]
    assert sorted(r["image"] for r in report["order"]) == ["new_batch/eu_eu11.jpg", "new_batch/eu_eu2.jpg"]
    assert sorted(p.name for p in batch.iterdir() if p.name.endswith(".tmp")) == []


@pytest.mark.slow
def test_ranking_follows_the_scores(first_run, direct_reads, exported_dir, tmp_path):
    folder = first_run[0]
    report = json.loads((folder / "prelabel_report.json").read_text())
    assert report["measure"] == "product_score"
    by_image = {r["image"].split("/")[1]: r for r in report["order"]}
    for name, read in direct_reads.items():
        scores = [line.score for line in read.lines]
        assert by_image[name]["min_score"] == pytest.approx(min(scores, default=0.0), abs=1e-5)
        assert by_image[name]["mean_score"] == pytest.approx(sum(scores) / len(scores) if scores else 0.0, abs=1e-5)
        assert by_image[name]["product_score"] == pytest.approx(math.prod(scores) if scores else 0.0, abs=1e-5)
        assert by_image[name]["confidence"] == by_image[name]["product_score"]
        assert by_image[name]["lines"] == len(scores)
    expected = sorted(by_image, key=lambda n: (by_image[n]["product_score"], n))
    assert [r["image"].split("/")[1] for r in report["order"]] == expected
    assert [r["rank"] for r in report["order"]] == [1, 2, 3]
    assert (folder / "prelabel_order.txt").read_text().splitlines() == expected

    batch = tmp_path / "new_batch"
    shutil.copytree(folder, batch)
    code, _, _ = prelabel(batch, "--model-dir", exported_dir, "--measure", "min_score", "--expected-lines", "1",
                          "--report", tmp_path / "reports" / "r.json")
    assert code == 2
    other = json.loads((tmp_path / "reports" / "r.json").read_text())
    assert (other["measure"], other["expected_lines"]) == ("min_score", 1)
    want = sorted((round(by_image[n]["min_score"] - abs(by_image[n]["lines"] - 1), 5), f"new_batch/{n}")
                  for n in by_image)
    assert [(r["confidence"], r["image"]) for r in other["order"]] == want
    assert (tmp_path / "reports" / "prelabel_order.txt").is_file()
