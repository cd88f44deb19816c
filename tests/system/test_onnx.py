"""The ONNX models of the export: files and metadata, parity with paddle inference (and its failure on a
perturbed model), the onnx backend of OCR / infer / OCRPool, and the choice of the default backend."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from system_known import KNOWN_FULL_TEXT

pytestmark = pytest.mark.slow  # the export fixture takes about 40 s on 2 cores


def test_export_writes_onnx_models_with_dictionary_and_preprocessing(exported_dir):
    import onnx

    manifest = json.loads((exported_dir / "manifest.json").read_text())
    assert manifest["onnx"] == {"det": "onnx/det.onnx", "rec": "onnx/rec.onnx"} and manifest["onnx_opset"] == 14
    for kind in ("det", "rec"):
        assert manifest["onnx_checks"][kind]["max_abs_diff"] < 1e-4  # the probe: shipped weights, random input
        model = onnx.load(str(exported_dir / manifest["onnx"][kind]))
        assert model.opset_import[0].version == 14
        meta = {p.key: p.value for p in model.metadata_props}
        preprocess = json.loads(meta["ocrforge_preprocess"])
        assert preprocess["normalize"]["std"] == ([0.229, 0.224, 0.225] if kind == "det" else [0.5, 0.5, 0.5])
    rec = onnx.load(str(exported_dir / "onnx" / "rec.onnx"))
    characters = {p.key: p.value for p in rec.metadata_props}["character"].splitlines()
    assert characters == (exported_dir / "dict.txt").read_text(encoding="utf-8").splitlines()
    # blank + the dictionary + space: the classes the model's output has
    assert rec.graph.output[0].type.tensor_type.shape.dim[2].dim_value == len(characters) + 2


def test_onnx_models_compute_what_the_paddle_ones_do(exported_dir, demo_images, known_image):
    from ocrforge import OCR
    from ocrforge.export import check_export

    images = [known_image[0], *demo_images]
    report = check_export(exported_dir, images)
    paddle = OCR(exported_dir, backend="paddle")
    assert report["models"]["det"]["inputs"] == len(images)
    assert report["models"]["rec"]["inputs"] >= len(images)  # one batch or more per image with text
    for kind in ("det", "rec"):
        assert report["models"][kind]["max_abs_diff"] < 1e-4
    assert report["system"]["same"], report["system"]
    assert report["system"]["lines"] == sum(len(paddle.read(image).lines) for image in images) >= 5
    assert report["system"]["max_box_diff_px"] <= 1.0


def test_a_perturbed_onnx_model_fails_the_check_naming_it(exported_dir, known_image, tmp_path):
    import onnx
    from onnx import numpy_helper

    from ocrforge.export import check_export
    from ocrforge.onnx_export import OnnxExportError

    broken = tmp_path / "export"
    shutil.copytree(exported_dir, broken)
    model = onnx.load(str(broken / "onnx" / "det.onnx"))
    kernel = next(n for n in model.graph.node if n.op_type == "Conv").input[1]  # the first convolution's kernel,
    constant = next(n for n in model.graph.node if n.output[0] == kernel)     # a Constant node in paddle2onnx's output
    tensor = constant.attribute[0].t
    tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * 1.05, tensor.name))
    onnx.save(model, str(broken / "onnx" / "det.onnx"))
    with pytest.raises(OnnxExportError, match=r"the det ONNX model \(.*det.onnx\) differs from paddle inference "
                                              r"by [0-9.e-]+ \(tolerance 0.001\)"):
        check_export(broken, [known_image[0]])


def test_ocr_defaults_to_onnx_and_both_backends_read_alike(exported_dir, known_image, demo_images):
    from ocrforge import OCR
    from ocrforge.export import compare_systems

    default, paddle = OCR(exported_dir), OCR(exported_dir, backend="paddle")
    assert default.backend == "onnx" and paddle.backend == "paddle"
    assert type(default.system.detector).__name__ == "OnnxRunner"
    assert default.ocr(known_image[0])["full_text"] == KNOWN_FULL_TEXT
    report = compare_systems(paddle.system, default.system, [known_image[0], *demo_images])
    assert report["same"], report


def test_infer_backend_option(exported_dir, known_image, tmp_path):
    import cv2

    from ocrforge.cli import main

    image = tmp_path / "known.png"
    cv2.imwrite(str(image), known_image[0])
    outputs = {}
    for backend in ("auto", "onnx", "paddle"):
        result = CliRunner().invoke(main, ["infer", str(image), "--model-dir", str(exported_dir), "--backend", backend])
        assert result.exit_code == 0, result.output
        outputs[backend] = json.loads(result.output)
        assert outputs[backend]["full_text"] == KNOWN_FULL_TEXT
    assert outputs["auto"] == outputs["onnx"]
    assert [line["text"] for line in outputs["onnx"]["lines"]] == [line["text"] for line in outputs["paddle"]["lines"]]
    result = CliRunner().invoke(main, ["infer", str(image), "--backend", "tflite"])
    assert result.exit_code == 2 and "'tflite' is not one of 'auto', 'onnx', 'paddle'" in result.output


def test_an_export_without_onnx_models_runs_on_paddle(exported_dir, tmp_path):
    """Exports written before the ONNX models existed: paddle by default, a clear error when onnx is asked for."""
    from ocrforge import OCR

    old = tmp_path / "export"
    shutil.copytree(exported_dir, old)
    manifest = json.loads((old / "manifest.json").read_text())
    for key in ("onnx", "onnx_opset", "onnx_checks"):
        del manifest[key]
    (old / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(old / "onnx")
    assert OCR(old).backend == "paddle"
    with pytest.raises(FileNotFoundError, match=r"has no ONNX models .* rerun the export stage .* or use "
                                                r"backend='paddle'"):
        OCR(old, backend="onnx")
    with pytest.raises(ValueError, match=r"unknown backend 'tensorrt'; choose from \['onnx', 'paddle'\]"):
        OCR(exported_dir, backend="tensorrt")


def test_onnx_runner_honours_threads(exported_dir):
    from ocrforge.onnx_export import OnnxRunner

    runner = OnnxRunner(exported_dir / "onnx" / "rec.onnx", threads=1)
    assert runner.threads == 1 and runner.session.get_session_options().intra_op_num_threads == 1
    out = runner(np.zeros((2, 3, 48, 320), np.float32))
    assert out.shape == (2, 40, 97) and np.allclose(out.sum(-1), 1.0, atol=1e-4)
