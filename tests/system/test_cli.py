"""``ocrforge infer`` and ``ocrforge stage``: JSON output, drawing, every error path and its exit code; the API."""

import json
import subprocess
import sys

import cv2
import pytest
from click.testing import CliRunner

from ocrforge.cli import main
from system_known import KNOWN_FULL_TEXT


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def test_missing_image_is_a_json_error_with_exit_1(tmp_path):
    code, out = run("infer", tmp_path / "nope.jpg")
    assert code == 1
    assert json.loads(out) == {"success": False, "error": f"{tmp_path / 'nope.jpg'} not found; give an image file or a folder of images"}


def test_missing_model_dir_is_exit_1(tmp_path):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), 255 * __import__("numpy").ones((20, 20, 3), "uint8"))
    code, out = run("infer", image, "--model-dir", tmp_path / "no_export")
    assert code == 1
    error = json.loads(out)
    assert error["success"] is False and "manifest.json not found" in error["error"]


def test_import_ocrforge_does_not_import_paddle():
    code = "import sys, ocrforge; assert 'paddle' not in sys.modules; from ocrforge import OCR; print(OCR.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "OCR"


def test_unknown_stage_is_exit_1():
    code, out = run("stage", "no_such_stage")
    assert code == 1 and json.loads(out)["success"] is False


def test_registered_stage_runs():
    from ocrforge.registry import STAGES

    calls = []
    STAGES.register("cli_test_stage", force=True)(lambda: calls.append("ran"))
    code, _ = run("stage", "cli_test_stage")
    assert code == 0 and calls == ["ran"]


@pytest.mark.slow
def test_infer_one_image_prints_the_schema_and_draws(exported_dir, known_image, tmp_path):
    image = tmp_path / "known.png"
    cv2.imwrite(str(image), known_image[0])
    code, out = run("infer", image, "--model-dir", exported_dir, "--draw", tmp_path / "drawn")
    assert code == 0
    result = json.loads(out)
    assert list(result) == ["success", "full_text", "lines"]
    assert result["full_text"] == KNOWN_FULL_TEXT
    drawn = cv2.imread(str(tmp_path / "drawn" / "known.png"))
    assert drawn.shape == known_image[0].shape and (drawn != known_image[0]).any()

    from ocrforge import OCR

    assert OCR(exported_dir).ocr(image) == result
    assert OCR(exported_dir).ocr(known_image[0]) == result


@pytest.mark.slow
def test_infer_folder_keeps_going_past_bad_images(exported_dir, known_image, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "a_good.png"), known_image[0])
    (folder / "b_broken.jpg").write_bytes(b"not an image")
    cv2.imwrite(str(folder / "c_good.png"), known_image[0])
    code, out = run("infer", folder, "--model-dir", exported_dir)
    assert code == 2
    results = json.loads(out)
    assert [r["image"] for r in results] == [str(folder / n) for n in ("a_good.png", "b_broken.jpg", "c_good.png")]
    assert [r["success"] for r in results] == [True, False, True]
    assert "cannot decode" in results[1]["error"] or "not an image" in results[1]["error"]

    code, out = run("infer", folder, "--model-dir", exported_dir, "--jsonl", "--drop-score", "1.01")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 2 and len(lines) == 3
    assert lines[0] == {"image": str(folder / "a_good.png"), "success": True, "full_text": "", "lines": []}


@pytest.mark.slow
def test_unreadable_single_image_is_exit_2(exported_dir, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    code, out = run("infer", bad, "--model-dir", exported_dir)
    assert code == 2 and json.loads(out)["success"] is False


def test_empty_folder_is_exit_1(tmp_path):
    code, out = run("infer", tmp_path)
    assert code == 1 and "holds no images" in json.loads(out)["error"]


@pytest.mark.slow
def test_infer_folder_with_workers_reads_as_one_process(exported_dir, known_image, demo_images, tmp_path):
    """--workers 2 (a process pool): the same JSON, in the same order, bad images reported alike."""
    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "a_known.png"), known_image[0])
    (folder / "b_broken.jpg").write_bytes(b"not an image")
    for i, image in enumerate(demo_images):
        cv2.imwrite(str(folder / f"c_demo{i}.png"), image)
    code_one, out_one = run("infer", folder, "--model-dir", exported_dir)
    code_pool, out_pool = run("infer", folder, "--model-dir", exported_dir, "--workers", "2",
                              "--draw", tmp_path / "drawn")
    assert code_pool == code_one == 2
    assert json.loads(out_pool) == json.loads(out_one)
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == ["a_known.png", "c_demo0.png", "c_demo1.png",
                                                                      "c_demo2.png"]


@pytest.mark.slow
def test_pool_reads_arrays_like_the_api(exported_dir, known_image, demo_images):
    from ocrforge import OCR
    from ocrforge.pool import OCRPool

    images = [known_image[0], *demo_images]
    single = [OCR(exported_dir).ocr(image) for image in images]
    with OCRPool(exported_dir, workers=2) as pool:
        assert len(pool.pids) == 2
        assert [result.to_json() for result in pool.read_many(images)] == single
        outcomes = list(pool.imap([known_image[0], exported_dir / "missing.png"], errors="return"))
    assert outcomes[0].to_json() == single[0] and isinstance(outcomes[1], FileNotFoundError)


@pytest.mark.slow
def test_pool_on_a_broken_export_fails_with_a_message(exported_dir, tmp_path):
    import shutil

    from ocrforge.pool import OCRPool

    broken = tmp_path / "export"
    shutil.copytree(exported_dir, broken)
    (broken / "det" / "inference.pdiparams").write_bytes(b"not paddle parameters")
    with pytest.raises(RuntimeError, match="could not load the models"):
        OCRPool(broken, workers=2)
