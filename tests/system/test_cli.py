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
    assert code == 1
    assert json.loads(out) == {"success": False, "error": (
        "unknown stage 'no_such_stage'. Known stages: benchmark, demo_data, distill_det, eval, export, ppocrv3_det, split, "
        "train_det, train_rec, tune_system. A plugin package can add one through the 'ocrforge.plugins' entry-point group.")}


def test_pipeline_stages_are_the_dvc_stages_and_scripts(repo_root):
    import yaml

    from ocrforge.stages_registry import DVC_FILES, PIPELINE_STAGES

    for dvc_file, names in DVC_FILES.items():
        assert list(yaml.safe_load((repo_root / dvc_file).read_text())["stages"]) == list(names)
    found = [*repo_root.glob("dvc.yaml"), *(repo_root / "stages").rglob("dvc.yaml")]
    assert sorted(p.relative_to(repo_root).as_posix() for p in found) == sorted(DVC_FILES)
    scripts = sorted(p.stem for p in (repo_root / "stages").glob("*.py"))
    assert sorted(PIPELINE_STAGES) == scripts


def test_stage_split_runs_the_real_stage(repo_root, tmp_path, monkeypatch):
    """``ocrforge stage split`` in a project folder runs stages/split.py on its params.yaml, as dvc repro would."""
    import shutil

    import yaml

    from ocrforge.data.demo import DemoConfig, generate_demo_dataset

    generate_demo_dataset(tmp_path / "labels", DemoConfig(num_images=10, seed=3, width=160, height=120))
    (tmp_path / "stages").mkdir()
    shutil.copy(repo_root / "stages" / "split.py", tmp_path / "stages" / "split.py")
    shutil.copy(repo_root / "dvc.yaml", tmp_path / "dvc.yaml")
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["split"]["input"] = "labels"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"split": params["split"],
                                                          "dictionary": params["dictionary"]}))
    monkeypatch.chdir(tmp_path)
    code, out = run("stage", "split")
    assert code == 0, out
    report = json.loads((tmp_path / "reports" / "split.json").read_text())
    assert {name: counts["images"] for name, counts in report["splits"].items()} == {"train": 6, "val": 2, "test": 2}
    assert (tmp_path / "data" / "split").is_dir()
    # arguments after the name follow dvc.yaml's: an option given again wins
    code, out = run("stage", "split", "--out", "data/other", "--report", "reports/other.json")
    assert code == 0, out
    assert json.loads((tmp_path / "reports" / "other.json").read_text())["splits"] == report["splits"]
    assert (tmp_path / "data" / "other" / "det" / "train.txt").is_file()
    # a cmd naming a param that params.yaml lacks says so
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"split": {}, "dictionary": params["dictionary"]}))
    code, out = run("stage", "split")
    error = json.loads(out)["error"]
    assert code == 1 and "stage split" in error and "Could not find 'split.input'" in error, error


def test_stage_outside_a_project_says_where_to_run_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = run("stage", "split")
    assert code == 1
    assert json.loads(out) == {"success": False, "error": (
        f"{tmp_path / 'stages' / 'split.py'} not found; run `ocrforge stage split` in the ocrforge project folder "
        f"(the one holding dvc.yaml, params.yaml and stages/)")}


def test_plugin_stage_through_entry_points(install_plugin, tmp_path, monkeypatch):
    """A third-party package's stage, declared only through the ``ocrforge.plugins`` entry point, runs."""
    from ocrforge import registry

    install_plugin("acme_stage_plugin", f"""
        from pathlib import Path

        from ocrforge.registry import STAGES

        @STAGES.register("acme_count")
        def acme_count():
            Path({str(tmp_path / "ran.txt")!r}).write_text("acme ran\\n")
    """)
    monkeypatch.setattr(registry, "STAGES", registry.Registry("stage", ("ocrforge.stages_registry",)))
    code, out = run("stage", "acme_count")
    assert (code, out) == (0, "")
    assert (tmp_path / "ran.txt").read_text() == "acme ran\n"


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
    drawn = cv2.imread(str(tmp_path / "drawn" / "known.png.png"))
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
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == ["a_known.png.png", "c_demo0.png.png",
                                                                      "c_demo1.png.png", "c_demo2.png.png"]


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
def test_a_broken_pool_kills_its_workers_rather_than_asking_them_to_stop(exported_dir, capfd):
    """Discarding a pool SIGKILLs its live workers: paddle handles SIGTERM by printing a stack trace from the
    signal handler, which can hang the worker and the executor waiting for it (it held CI for 90 minutes)."""
    import signal

    from ocrforge.pool import OCRPool

    pool = OCRPool(exported_dir, workers=2)
    processes = list(pool._pool._processes.values())
    pool._discard()
    assert [p.exitcode for p in processes] == [-signal.SIGKILL] * 2
    assert "Termination signal" not in capfd.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("backend, damaged", [("paddle", "det/inference.pdiparams"), ("onnx", "onnx/det.onnx")])
def test_pool_on_a_broken_export_fails_with_a_message(exported_dir, tmp_path, backend, damaged):
    import shutil

    from ocrforge.pool import OCRPool

    broken = tmp_path / "export"
    shutil.copytree(exported_dir, broken)
    (broken / damaged).write_bytes(b"not a model")
    with pytest.raises(RuntimeError, match="could not load the models"):
        OCRPool(broken, workers=2, backend=backend)


def bad_files_folder(folder, known):
    """A folder of two good images around a zero-byte file and a PNG declaring 40000 x 40000 pixels."""
    from image_files import png_with_header

    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), known)
    (folder / "b.jpg").write_bytes(b"")
    (folder / "c.png").write_bytes(png_with_header(40000, 40000))
    cv2.imwrite(str(folder / "d.jpg"), known)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_empty_and_over_size_images_are_error_lines(exported_dir, known_image, tmp_path, workers):
    """Zero bytes and too many pixels: an error line each, the good images read, exit 2; one or two processes."""
    folder = bad_files_folder(tmp_path / "images", known_image[0])
    code, out = run("infer", folder, "--model-dir", exported_dir, "--workers", workers)
    assert code == 2
    results = json.loads(out)
    assert [r["image"] for r in results] == [str(folder / n) for n in ("a.jpg", "b.jpg", "c.png", "d.jpg")]
    assert [r.get("full_text") for r in results] == [KNOWN_FULL_TEXT, None, None, KNOWN_FULL_TEXT]
    assert results[1]["error"] == f"{folder / 'b.jpg'} is an empty file (0 bytes), not an image"
    assert results[2]["error"].startswith(f"{folder / 'c.png'} is too large: 40000 x 40000 pixels exceeds OpenCV's "
                                          f"limit of 1073741824 pixels")

    code, out = run("infer", folder, "--model-dir", exported_dir, "--workers", workers, "--jsonl")
    assert code == 2 and [json.loads(line) for line in out.splitlines()] == results


@pytest.mark.slow
def test_black_text_on_transparent_reads_as_on_white(exported_dir, known_image, tmp_path):
    from image_files import transparent_text

    image = tmp_path / "transparent.png"
    cv2.imwrite(str(image), transparent_text(cv2.cvtColor(known_image[0], cv2.COLOR_BGR2GRAY)))
    code, out = run("infer", image, "--model-dir", exported_dir)
    assert code == 0 and json.loads(out)["full_text"] == KNOWN_FULL_TEXT


def test_draw_at_a_file_is_refused_before_reading(tmp_path):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), 255 * __import__("numpy").ones((20, 20, 3), "uint8"))
    (tmp_path / "notes.txt").write_text("mine\n")
    # the model folder does not exist either: the --draw error comes first, before anything is loaded or read
    code, out = run("infer", image, "--model-dir", tmp_path / "no_export", "--draw", tmp_path / "notes.txt")
    assert code == 1
    assert json.loads(out) == {"success": False, "error": (
        f"--draw {tmp_path / 'notes.txt'} is a file, not a folder; give a folder for the drawings (created if missing)")}
    assert (tmp_path / "notes.txt").read_text() == "mine\n"

    code, out = run("infer", tmp_path, "--model-dir", tmp_path / "no_export", "--draw", tmp_path)
    assert code == 1 and json.loads(out)["error"].startswith(f"--draw {tmp_path} is the folder of the images;")


@pytest.mark.slow
def test_draw_names_never_collide_nor_follow_symlinks(exported_dir, known_image, tmp_path):
    import numpy as np

    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), known_image[0])
    cv2.imwrite(str(folder / "a.png"), known_image[0][:, ::-1])  # mirrored: another drawing
    drawn = tmp_path / "drawn"
    drawn.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (drawn / "a.png.png").symlink_to(victim)
    code, out = run("infer", folder, "--model-dir", exported_dir, "--draw", drawn, "--workers", "2")
    assert code == 0
    assert [r["full_text"] for r in json.loads(out)][0] == KNOWN_FULL_TEXT
    assert sorted(p.name for p in drawn.iterdir()) == ["a.jpg.png", "a.png.png"]
    assert victim.read_text() == "precious\n"  # the link was replaced by the drawing, not written through
    assert not (drawn / "a.png.png").is_symlink()
    from_jpg, from_png = cv2.imread(str(drawn / "a.jpg.png")), cv2.imread(str(drawn / "a.png.png"))
    assert from_jpg.shape == from_png.shape == known_image[0].shape and not np.array_equal(from_jpg, from_png)


@pytest.mark.slow
def test_a_drawing_that_cannot_be_written_keeps_the_result(exported_dir, known_image, tmp_path):
    image = tmp_path / "known.png"
    cv2.imwrite(str(image), known_image[0])
    (tmp_path / "drawn" / "known.png.png").mkdir(parents=True)  # a folder where the drawing should go
    code, out = run("infer", image, "--model-dir", exported_dir, "--draw", tmp_path / "drawn")
    assert code == 2
    result = json.loads(out)
    assert result["success"] is True and result["full_text"] == KNOWN_FULL_TEXT
    assert result["draw_error"].startswith(
        f"drawing {image} into {tmp_path / 'drawn' / 'known.png.png'} failed: IsADirectoryError")
    assert [p.name for p in (tmp_path / "drawn").iterdir()] == ["known.png.png"]  # no temporary file left
