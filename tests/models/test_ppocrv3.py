"""PP-OCRv3 detector weights for the MobileNetV3 student: the pinned PyPI wheel, the conversion from its ONNX
(every inference tensor, execution order), parity with onnxruntime, and the students that start from it."""

import ocrforge  # noqa: F401  (sets the thread count before paddle loads)

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import paddle
import pytest

from ocrforge.models import ppocrv3
from ocrforge.models.distillation import count_parameters

THRESH_BRANCH = sorted(f"head.thresh.{layer}.{key}" for layer, keys in {
    "conv1": ["weight"], "conv2": ["weight", "bias"], "conv3": ["weight", "bias"],
    "conv_bn1": ["weight", "bias", "_mean", "_variance"], "conv_bn2": ["weight", "bias", "_mean", "_variance"],
}.items() for key in keys)


@pytest.fixture(scope="session")
def ppocrv3_wheel(request, tmp_path_factory):
    """The pinned wheel, downloaded from PyPI once (kept in pytest's cache dir when the cache plugin is on)."""
    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir("ocrforge_ppocrv3_wheel") if cache is not None else tmp_path_factory.mktemp("wheel")
    return ppocrv3.fetch_wheel(folder)


@pytest.fixture(scope="session")
def ppocrv3_converted(ppocrv3_wheel, tmp_path_factory):
    """(report, .pdparams path) of the conversion."""
    out = tmp_path_factory.mktemp("ppocrv3") / "ch_PP-OCRv3_det.pdparams"
    return ppocrv3.convert_wheel(ppocrv3_wheel, out), out


def test_conversion_maps_every_inference_tensor_and_matches_onnxruntime(ppocrv3_converted):
    report, path = ppocrv3_converted
    assert (report["layer_pairs"], report["onnx_groups"], report["converted_values"]) == (123, 123, 592_625)
    assert report["converted_tensors"] == 288 and report["fresh"] == THRESH_BRANCH
    assert report["parity_max_abs_diff"] < 1e-4 and report["parity_image_hw"] == [360, 480]
    state = paddle.load(str(path))
    assert sum(int(v.size) for v in state.values()) == 592_625
    model = ppocrv3.build_student()
    assert count_parameters(model, ("head.thresh",)) == 592_625  # the inference layout: all of it converted
    assert set(model.state_dict()) - set(state) == set(THRESH_BRANCH)


def test_converted_student_matches_onnxruntime_on_a_real_photo(ppocrv3_wheel, ppocrv3_converted, sroie_dir):
    import cv2

    from ocrforge.models.pretrained import load_pdparams

    _, path = ppocrv3_converted
    model = ppocrv3.build_student()
    load_pdparams(model, path)
    image = cv2.imread(str(sroie_dir / "sroie" / "003.jpg"))
    scale = 640 / max(image.shape[:2])
    image = cv2.resize(image, None, fx=scale, fy=scale)
    onnx_bytes = ppocrv3.read_onnx_bytes(ppocrv3_wheel)
    assert ppocrv3.parity(model, onnx_bytes, image) < 1e-4


def test_pairing_out_of_execution_order_fails_the_parity_check_and_writes_nothing(ppocrv3_wheel, tmp_path,
                                                                                  monkeypatch):
    """RSEFPN's four inp_conv layers share one shape: swapping two passes every shape check, not parity."""
    real = ppocrv3.execution_order

    def swapped(model, *args, **kwargs):
        order = real(model, *args, **kwargs)
        at = {name: i for i, (name, _) in enumerate(order)}
        i, j = at["neck.inp_conv.0.in_conv"], at["neck.inp_conv.1.in_conv"]
        order[i], order[j] = order[j], order[i]
        return order

    monkeypatch.setattr(ppocrv3, "execution_order", swapped)
    out = tmp_path / "w.pdparams"
    with pytest.raises(ValueError, match=r"differs from onnxruntime .* tolerance 0.0001.*nothing written"):
        ppocrv3.convert_wheel(ppocrv3_wheel, out)
    assert not out.exists()


def test_another_architecture_is_refused_with_every_mismatch(ppocrv3_wheel):
    from ocrforge.models.architectures import build_model

    arch = {**ppocrv3.STUDENT_ARCHITECTURE, "Neck": {"name": "RSEFPN", "out_channels": 64, "shortcut": True}}
    with pytest.raises(ValueError, match=r"does not fit this model \(52 problems\).*\n  neck\.ins_conv\.3\.in_conv\."
                                         r"weight: ours \(64, 480, 1, 1\), ONNX conv2d_243\.tmp_0 \(96, 480, 1, 1\)\n"):
        ppocrv3.convert_state(ppocrv3.read_onnx_bytes(ppocrv3_wheel), build_model(arch))


def test_a_missing_wheel_names_the_file_and_the_download_command(tmp_path):
    missing = tmp_path / ppocrv3.WHEEL_NAME
    with pytest.raises(FileNotFoundError) as err:
        ppocrv3.read_onnx_bytes(missing)
    assert str(err.value) == (
        f"{missing} not found: the PP-OCRv3 detector comes from that wheel; run `python -m pip download "
        f"--no-deps --ignore-requires-python rapidocr_onnxruntime==1.2.13 -d {tmp_path}`"
    )


def test_a_corrupt_wheel_names_the_file_its_sha256_and_what_to_run(tmp_path):
    corrupt = tmp_path / ppocrv3.WHEEL_NAME
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError) as err:
        ppocrv3.read_onnx_bytes(corrupt)
    message = str(err.value)
    assert message.startswith(f"{corrupt} is not the rapidocr_onnxruntime==1.2.13 wheel (sha256 ")
    assert ppocrv3.sha256_file(corrupt) in message and ppocrv3.WHEEL_SHA256 in message
    assert message.endswith(f"Delete it and run `{ppocrv3.download_command(tmp_path)}`")
    assert corrupt.read_bytes() == b"PK\x03\x04 truncated"  # left for the user to inspect
    with pytest.raises(ValueError, match="is not the rapidocr_onnxruntime==1.2.13 wheel"):
        ppocrv3.fetch_wheel(tmp_path)  # never overwritten silently


def test_missing_converted_weights_say_which_stage_makes_them(tmp_path, monkeypatch):
    monkeypatch.setenv("OCRFORGE_PPOCRV3_DET", str(tmp_path / "none.pdparams"))
    with pytest.raises(FileNotFoundError,
                       match=r"none\.pdparams not found: .*`dvc repro stages/distill/dvc\.yaml:ppocrv3_det`"):
        ppocrv3.converted_weights()


def _same(model, state, names):
    own = model.state_dict()
    return all(np.array_equal(own[n].numpy(), state[n].numpy()) for n in names)


def test_the_mobilenetv3_config_starts_from_the_converted_weights(ppocrv3_converted, repo_root, monkeypatch):
    from ocrforge.config import load_config
    from ocrforge.models.build import build_pretrained_model

    _, path = ppocrv3_converted
    monkeypatch.setenv("OCRFORGE_PPOCRV3_DET", str(path))
    config = load_config(repo_root / "configs/det/mobilenetv3_det.yml")
    assert config["Global"]["pretrained_model"] == "shipped"
    model = build_pretrained_model(config)
    state = paddle.load(str(path))
    assert _same(model, state, state)


@pytest.mark.slow
def test_shipped_distillation_starts_both_students_from_ppocrv3_and_the_teacher_from_its_own(
        ppocrv3_converted, repo_root, monkeypatch, tmp_path):
    from ocrforge.config import load_config
    from ocrforge.models.architectures import build_model
    from ocrforge.models.build import build_pretrained_model
    from ocrforge.models.distillation import load_distillation_weights
    from ocrforge.models.pretrained import SHIPPED_DET_DIR, read_inference_params

    _, path = ppocrv3_converted
    monkeypatch.setenv("OCRFORGE_PPOCRV3_DET", str(path))
    teacher_file = tmp_path / "teacher.pdparams"  # a train_det checkpoint: PP-OCRv4 + its threshold branch
    paddle.save(build_pretrained_model(load_config(repo_root / "configs/det/ppocrv4_det.yml")).state_dict(),
                str(teacher_file))
    config = load_config(repo_root / "configs/det/distill_det.yml")
    assert config["Global"]["pretrained_model"] == "shipped"
    config["Global"]["teacher_model"] = str(teacher_file)
    model = build_model(config["Architecture"])
    reports = load_distillation_weights(model, config)
    state = paddle.load(str(path))
    for student in ("Student", "Student2"):
        assert reports[student].source == str(path) and sorted(reports[student].missing) == THRESH_BRANCH
        assert _same(model.sub(student), state, state)
    v4 = read_inference_params(SHIPPED_DET_DIR)
    teacher = model.sub("Teacher").state_dict()
    assert reports["Teacher"].missing == [] and np.array_equal(
        teacher["backbone.conv1.conv.weight"].numpy(), v4["backbone.conv1.conv.weight"])


@pytest.mark.slow
def test_default_distill_det_tiny_run_starts_from_the_converted_weights(ppocrv3_converted, tmp_path):
    """stages/distill_det.py with params.yaml's defaults (pretrained_model: shipped) on tiny settings."""
    from pipeline_copy import copy_repo

    from ocrforge.config import load_config
    from ocrforge.models.build import build_pretrained_model

    _, path = ppocrv3_converted
    repo = copy_repo(tmp_path / "repo", {
        "demo.num_images": 10, "demo.width": 240, "demo.height": 180, "distill_det.epochs": 1,
        "distill_det.batch_size": 2, "distill_det.crop_size": 160, "distill_det.eval_side_len": 320,
        "distill_det.save_every_steps": 0})
    (repo / "models/ppocrv3_det").mkdir(parents=True)
    shutil.copy(path, repo / ppocrv3.CONVERTED_FILE)
    teacher = build_pretrained_model(load_config(repo / "configs/det/ppocrv4_det.yml"))
    (repo / "models/det").mkdir(parents=True)
    paddle.save(teacher.state_dict(), str(repo / "models/det/best_accuracy.pdparams"))
    env = {k: v for k, v in os.environ.items() if k != "OCRFORGE_PPOCRV3_DET"}
    env["PYTHONPATH"] = str(repo)
    for stage in ("demo_data", "split", "distill_det"):
        done = subprocess.run([sys.executable, "-m", "ocrforge.cli", "stage", stage], cwd=repo, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    log = (repo / "models/distill_det/train.log").read_text()
    for student in ("Student", "Student2"):
        assert (f"{student}: loaded 288 tensors from models/ppocrv3_det/ch_PP-OCRv3_det.pdparams; 13 weights of "
                f"the model are not in it and keep their initial value (13 under head.thresh)\n") in log
    assert "keeps its initial value" not in log
    assert "before training (zero-shot): precision=" in log
    summary = json.loads((repo / "reports/distill_det/summary.json").read_text())
    assert set(summary["zero_shot"]) >= {"precision", "recall", "hmean"} and summary["epochs_run"] == 1
