"""Export the trained detector and recogniser as Paddle inference models, and check they read as trained.

``export_system(det_dir, rec_dir, out_dir)`` writes::

    out_dir/det/, rec/         inference.json + inference.pdiparams: the PIR programs ``ocrforge infer`` runs
    out_dir/paddleocr/det/, rec/  inference.pdmodel + inference.pdiparams(.info): the same models in the old
                                  program format, which PaddleOCR 2.10's ``PaddleOCR`` class needs to find
    out_dir/onnx/det.onnx, rec.onnx  the same models as ONNX (opset 14) for onnxruntime, the default backend;
                               rec.onnx carries the dictionary (metadata ``character``), both how to preprocess
    out_dir/dict.txt           the recogniser's character dictionary
    out_dir/manifest.json      settings (image shapes, post-process), configs, versions, sha256 of params.yaml

The two formats cannot share a folder: PIR and the old format order the tensors of ``inference.pdiparams``
differently. The old-format save runs in a subprocess with ``FLAGS_enable_pir_api=0``; export checks that
both programs, and the ONNX models, give the same outputs on probe inputs; :func:`check_export` (the export
stage) then checks the ONNX models on the real inputs of test images and the whole system's reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np

import ocrforge
from ocrforge.system import DICT_FILE, MANIFEST, settings_from_configs, trained_settings

PADDLEOCR_DIR = "paddleocr"
PARITY_BOX_TOLERANCE_PX = 1.0
PARITY_SCORE_TOLERANCE = 1e-3


def input_spec_shape(config: dict) -> list:
    """The exported input shape: det ``[None, 3, None, None]``; rec ``[None, 3, H, None]``, H the height of
    the recogniser's validation input (Eval ``RecResizeImg``, or the reading-width sampler's first scale; the
    SVTR neck needs a fixed height)."""
    if config["Architecture"]["model_type"] == "det":
        return [None, 3, None, None]
    channels, height, _ = settings_from_configs({}, config).rec_image_shape
    return [None, channels, height, None]


def _legacy_static_shims() -> None:
    """Paddle 3.3 builds a few ops (``F.sigmoid``, ``Tensor.matmul``) only for PIR; give them their old
    static-graph form so the old-format program can be traced. Used only in the legacy-export subprocess."""
    import paddle.nn.functional as F
    from paddle.base.framework import Variable
    from paddle.base.layer_helper import LayerHelper
    from paddle.framework import in_dynamic_or_pir_mode

    pir_sigmoid, pir_matmul = F.sigmoid, Variable.matmul

    def sigmoid(x, name=None):
        if in_dynamic_or_pir_mode():
            return pir_sigmoid(x)
        helper = LayerHelper("sigmoid")
        out = helper.create_variable_for_type_inference(x.dtype)
        helper.append_op(type="sigmoid", inputs={"X": x}, outputs={"Out": out})
        return out

    def matmul(x, y, transpose_x=False, transpose_y=False, name=None):
        if in_dynamic_or_pir_mode():
            return pir_matmul(x, y, transpose_x, transpose_y)
        helper = LayerHelper("matmul_v2")
        out = helper.create_variable_for_type_inference(x.dtype)
        helper.append_op(type="matmul_v2", inputs={"X": x, "Y": y}, outputs={"Out": out},
                         attrs={"trans_x": transpose_x, "trans_y": transpose_y})
        return out

    F.sigmoid = sigmoid
    Variable.matmul = matmul


def save_inference_model(model_dir: str | os.PathLike, out_dir: str | os.PathLike,
                         checkpoint: str = "best_accuracy") -> Path:
    """Trace the trained model of ``model_dir`` (eval mode, full graph) and ``paddle.jit.save`` it as
    ``out_dir/inference.*`` in the program format of this process (PIR unless FLAGS_enable_pir_api=0)."""
    import paddle

    from ocrforge.system import load_trained_model

    if os.environ.get("FLAGS_enable_pir_api", "1").lower() in ("0", "false"):
        _legacy_static_shims()
    from ocrforge.models.distillation import deployed_model
    from ocrforge.device import paddle_flags

    model, config = load_trained_model(model_dir, checkpoint)
    model = deployed_model(model, config)  # a DistillationModel exports its Student only
    spec = [paddle.static.InputSpec(input_spec_shape(config), "float32", "x")]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # traced with oneDNN on (a training run earlier in this process sets it), conv_transpose is saved in a
    # training-mode oneDNN form that paddle inference refuses
    with paddle_flags({"FLAGS_use_onednn": False}):
        static = paddle.jit.to_static(model, input_spec=spec, full_graph=True)
        paddle.jit.save(static, str(out_dir / "inference"))
    return out_dir


def save_legacy_program(model_dir: str | os.PathLike, out_dir: str | os.PathLike,
                        checkpoint: str = "best_accuracy") -> Path:
    """Save the trained model of ``model_dir`` as ``out_dir/inference.pdmodel`` + ``.pdiparams`` (+ ``.info``)
    in the old program format, in a subprocess with ``FLAGS_enable_pir_api=0``."""
    env = {**os.environ, "FLAGS_enable_pir_api": "0"}
    code = ("import sys; from ocrforge.export import save_inference_model; "
            "save_inference_model(sys.argv[1], sys.argv[2], sys.argv[3])")
    proc = subprocess.run([sys.executable, "-c", code, str(model_dir), str(out_dir), checkpoint], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0 or not (Path(out_dir) / "inference.pdmodel").is_file():
        raise RuntimeError(f"saving {model_dir} in the old program format failed:\n{proc.stderr[-3000:]}")
    return Path(out_dir)


def sha256_of(path: str | os.PathLike) -> str | None:
    path = Path(path)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _versions() -> dict:
    return {"paddlepaddle": version("paddlepaddle"), "paddleocr": version("paddleocr"),
            "paddle2onnx": version("paddle2onnx"), "onnxruntime": version("onnxruntime"), "ocrforge": ocrforge.__version__}


def _same_outputs(runner_a, runner_b, batch: np.ndarray) -> float:
    return float(np.abs(runner_a(batch) - runner_b(batch)).max())


def check_program_formats(pir_dir: Path, legacy_dir: Path, batch: np.ndarray) -> dict:
    """Largest output difference between the PIR program and the old-format one, and with/without oneDNN."""
    from ocrforge.system import PredictorRunner

    pir = PredictorRunner(pir_dir, model_file="inference.json")
    legacy = PredictorRunner(legacy_dir, model_file="inference.pdmodel")
    pir_onednn = PredictorRunner(pir_dir, use_onednn=True, model_file="inference.json")
    return {
        "legacy_vs_pir": _same_outputs(pir, legacy, batch),
        "onednn_vs_plain": _same_outputs(pir, pir_onednn, batch),
    }


def export_system(det_dir: str | os.PathLike, rec_dir: str | os.PathLike, out_dir: str | os.PathLike,
                  params_file: str | os.PathLike = "params.yaml", checkpoint: str = "best_accuracy",
                  onednn_tolerance: float = 1e-4, **overrides) -> dict:
    """Export both trained models into ``out_dir`` (see the module docstring); returns the manifest.

    The settings are the trained models' (:func:`~ocrforge.system.trained_settings`: their configs and the
    detector's val-chosen post-process); ``overrides`` replace fields of them (the export stage passes
    params.yaml's ``system`` section, as the eval stage does, so the deployed system is the evaluated one).

    oneDNN is switched on in the manifest for a model only when its outputs with oneDNN stay within
    ``onednn_tolerance`` of the plain CPU kernels on a probe input.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    configs = {}
    for kind, model_dir in (("det", det_dir), ("rec", rec_dir)):
        save_inference_model(model_dir, out_dir / kind, checkpoint)
        save_legacy_program(model_dir, out_dir / PADDLEOCR_DIR / kind, checkpoint)
        configs[kind] = _read_config(model_dir)
    settings = trained_settings(det_dir, configs["det"], configs["rec"]).with_overrides(**overrides)
    shutil.copyfile(settings.character_dict_path, out_dir / DICT_FILE)

    rng = np.random.default_rng(0)
    channels, height, width = settings.rec_image_shape
    probes = {"det": rng.uniform(-2, 2, (1, 3, 320, 480)).astype(np.float32),
              "rec": rng.uniform(-1, 1, (2, channels, height, width)).astype(np.float32)}
    formats = {kind: check_program_formats(out_dir / kind, out_dir / PADDLEOCR_DIR / kind, probes[kind])
               for kind in ("det", "rec")}
    use_onednn = {kind: formats[kind]["onednn_vs_plain"] <= onednn_tolerance for kind in formats}
    for kind, diffs in formats.items():
        if diffs["legacy_vs_pir"] > 1e-5:
            raise RuntimeError(
                f"{out_dir / PADDLEOCR_DIR / kind}/inference.pdmodel and {out_dir / kind}/inference.json give "
                f"different outputs (max diff "
                f"{diffs['legacy_vs_pir']:.3g}); the old-format export is wrong, do not use it with PaddleOCR"
            )
    from ocrforge.config import with_dict_path
    from ocrforge.onnx_export import (ONNX_DIR, OPSET, OnnxRunner, check_onnx_parity, dictionary_metadata,
                                      export_onnx, preprocess_metadata)
    from ocrforge.system import PredictorRunner

    saved = {k: v for k, v in vars(settings).items() if k != "character_dict_path"}
    saved["rec_image_shape"] = list(settings.rec_image_shape)
    onnx_files, onnx_checks = {}, {}
    for kind in ("det", "rec"):
        metadata = {"ocrforge_preprocess": preprocess_metadata(kind, saved), "ocrforge_version": ocrforge.__version__}
        if kind == "rec":
            metadata["character"] = dictionary_metadata(out_dir / DICT_FILE)
        onnx_files[kind] = f"{ONNX_DIR}/{kind}.onnx"
        export_onnx(out_dir / kind, out_dir / onnx_files[kind], metadata)
        onnx_checks[kind] = check_onnx_parity(PredictorRunner(out_dir / kind, model_file="inference.json"),
                                              OnnxRunner(out_dir / onnx_files[kind]), [probes[kind]], kind)
    manifest = {
        "format": 1,
        "settings": saved,
        "dictionary": DICT_FILE,
        "input_shapes": {kind: input_spec_shape(configs[kind]) for kind in configs},
        "use_onednn": use_onednn,
        "onnx": onnx_files,
        "onnx_opset": OPSET,
        "onnx_checks": onnx_checks,
        "paddleocr": {"det_model_dir": f"{PADDLEOCR_DIR}/det", "rec_model_dir": f"{PADDLEOCR_DIR}/rec",
                      "rec_char_dict_path": DICT_FILE, "rec_image_shape": ", ".join(map(str, settings.rec_image_shape))},
        "program_checks": formats,
        "versions": _versions(),
        "params_sha256": sha256_of(params_file),
        "source": {"det": str(det_dir), "rec": str(rec_dir), "checkpoint": checkpoint},
        "configs": {kind: with_dict_path(config, DICT_FILE) for kind, config in configs.items()},
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    return manifest


def _read_config(model_dir) -> dict:
    from ocrforge.config import load_config, resolve_dict_paths

    config = load_config(Path(model_dir) / "config.yml")
    if config["Architecture"]["model_type"] == "rec":
        resolve_dict_paths(config)
    return config


def compare_systems(reference, candidate, images: list[np.ndarray], names: list[str] | None = None) -> dict:
    """How far apart two systems read the same images (:func:`ocrforge.parity.compare_reads`), ``"same"`` only
    within the export's tolerances: boxes within PARITY_BOX_TOLERANCE_PX, scores within PARITY_SCORE_TOLERANCE."""
    from ocrforge.parity import compare_reads, system_reads

    return compare_reads(system_reads(reference), system_reads(candidate), images, names,
                         box_tolerance_px=PARITY_BOX_TOLERANCE_PX, score_tolerance=PARITY_SCORE_TOLERANCE)


class _Recording:
    """A runner that also keeps every batch it was given (to replay the same inputs on another runtime)."""

    def __init__(self, runner):
        self.runner, self.batches = runner, []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(np.array(batch, copy=True))
        return self.runner(batch)


def check_export(export_dir: str | os.PathLike, images: list[np.ndarray], names: list[str] | None = None) -> dict:
    """The export's ONNX models against its Paddle inference models on real inputs: the detector's and the
    recogniser's outputs on exactly the batches the Paddle system built for ``images``, against paddle
    inference's plain CPU kernels (max abs difference within ``ONNX_TOLERANCE``, else :class:`~ocrforge.onnx_export.OnnxExportError` naming the model and the
    difference), then the two whole systems' reads (:func:`compare_systems`; ``"same"`` false if they differ)."""
    from ocrforge.onnx_export import OnnxRunner, check_onnx_parity
    from ocrforge.system import PredictorRunner, TextSystem, load_exported_system, read_manifest

    export_dir = Path(export_dir)
    paddle_system = load_exported_system(export_dir, backend="paddle")
    onnx_system = load_exported_system(export_dir, backend="onnx")
    recording = TextSystem(_Recording(paddle_system.detector), _Recording(paddle_system.recognizer),
                           paddle_system.settings)
    for image in images:
        recording(image)
    files = read_manifest(export_dir)["onnx"]
    models = {}
    for kind, recorder in (("det", recording.detector), ("rec", recording.recognizer)):
        plain = PredictorRunner(export_dir / kind, use_onednn=False, model_file="inference.json")  # the reference kernels
        models[kind] = check_onnx_parity(plain, OnnxRunner(export_dir / files[kind]), recorder.batches, kind)
    return {"models": models, "system": compare_systems(paddle_system, onnx_system, images, names)}
