"""The exported models as ONNX, for onnxruntime from Java, C++, C# or RapidOCR: paddle2onnx on the PIR
inference programs (``<export>/det``, ``<export>/rec``), checked against paddle inference.

``export_onnx(model_dir, onnx_file)`` converts one model; ``check_onnx_parity`` compares the two runtimes on the
same inputs. The recogniser's file carries its dictionary in the metadata key ``character`` (one class a line,
RapidOCR 3.x's convention), and every file carries ``ocrforge_preprocess`` (JSON): what a caller in another
language must do to an image before the model sees it.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np

ONNX_DIR = "onnx"
OPSET = 14
# onnxruntime vs paddle inference on the same input: the largest absolute difference allowed per model output
# (det: probabilities of the shrink map; rec: CTC probabilities). Measured on the demo test images: det 1.5e-5,
# rec 7.8e-5 (the fine-tuned recogniser; 1e-5 with the shipped weights), from summation order; a perturbed
# model is off by 1e-2 and more. The whole-system reads are compared too (same texts, boxes within 1 px).
ONNX_TOLERANCE = 1e-3


class OnnxExportError(RuntimeError):
    """paddle2onnx could not convert a model, or the ONNX model does not compute what the Paddle one does."""


def export_onnx(model_dir: str | os.PathLike, onnx_file: str | os.PathLike, metadata: dict | None = None,
                opset: int = OPSET) -> Path:
    """Convert the PIR inference model of ``model_dir`` (``inference.json`` + ``inference.pdiparams``) to
    ``onnx_file`` with paddle2onnx at ``opset``; ``metadata`` (str -> str) goes into the model's metadata props.
    The converter's own messages are kept off the console and shown only if it fails."""
    import onnx
    import paddle2onnx

    model_dir, onnx_file = Path(model_dir), Path(onnx_file)
    program, params = model_dir / "inference.json", model_dir / "inference.pdiparams"
    for path in (program, params):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: convert the folder the export stage wrote (models/export/det "
                                    f"or rec), which holds inference.json and inference.pdiparams")
    data, error, captured = None, None, []
    with _captured_output(captured):
        try:
            data = paddle2onnx.export(str(program), str(params), save_file=None, opset_version=opset,
                                      enable_onnx_checker=True, optimize_tool="None", verbose=False)
        except Exception as exc:  # paddle2onnx raises whatever its converter met
            error = exc
    if not isinstance(data, (bytes, bytearray)) or not data:
        reason = f": {error}" if error else " (an op without an ONNX mapping?)"
        raise OnnxExportError(f"paddle2onnx could not convert {program}{reason}\n{''.join(captured)[-2000:]}")
    model = onnx.load_model_from_string(bytes(data))
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx_file.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(onnx_file))
    return onnx_file


@contextlib.contextmanager
def _captured_output(into: list):
    """Send this process's stdout and stderr (file descriptors 1 and 2, so a C++ extension's prints too) to a
    temporary file while the block runs; what was written is appended to ``into``."""
    import sys
    import tempfile

    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sink.seek(0)
            into.append(sink.read())


def dictionary_metadata(dict_file: str | os.PathLike) -> str:
    """The ``character`` metadata value: the dictionary file's classes, one a line (the space class and CTC's
    blank are added by the reader, as RapidOCR and PaddleOCR do)."""
    return "\n".join(Path(dict_file).read_text(encoding="utf-8").splitlines())


def preprocess_metadata(kind: str, settings: dict) -> str:
    """What a caller outside Python must do to an image for model ``kind`` (det or rec), as JSON."""
    if kind == "det":
        info = {"input": "x: (N, 3, H, W) float32, BGR channel order, H and W multiples of 32",
                "resize": {"limit_side_len": settings["det_limit_side_len"], "limit_type": settings["det_limit_type"]},
                "normalize": {"scale": settings.get("det_norm_scale", 1 / 255),
                              "mean": list(settings.get("det_norm_mean", (0.485, 0.456, 0.406))),
                              "std": list(settings.get("det_norm_std", (0.229, 0.224, 0.225)))},
                "output": "(N, 1, H, W) probability that a pixel lies in shrunk text",
                "postprocess": {k: settings[k] for k in ("det_db_thresh", "det_db_box_thresh", "det_db_unclip_ratio",
                                                         "det_db_max_candidates", "det_db_score_mode")}}
    else:
        channels, height, width = settings["rec_image_shape"]
        info = {"input": f"x: (N, {channels}, {height}, W) float32, BGR channel order, W >= {width} "
                         f"(crop resized to height {height}, ratio kept, right-padded with 0)",
                "normalize": {"scale": 1 / 255, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
                "output": "(N, T, C) CTC probabilities; class 0 is the blank, then the `character` lines, then space"
                          if settings.get("use_space_char", True) else
                          "(N, T, C) CTC probabilities; class 0 is the blank, then the `character` lines",
                "drop_score": settings.get("drop_score")}
    return json.dumps(info)


class OnnxRunner:
    """An ONNX model run by one onnxruntime session on the CPU, created once: ``(N, 3, H, W) float32 -> ndarray``.

    ``threads`` is onnxruntime's intra-op thread count (None: every core); graph optimisations all on.
    """

    def __init__(self, onnx_file: str | os.PathLike, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError("the onnx backend needs onnxruntime (pip install onnxruntime)") from exc
        onnx_file = Path(onnx_file)
        if not onnx_file.is_file():
            raise FileNotFoundError(f"{onnx_file} not found: this export has no ONNX models; rerun the export "
                                    f"stage (dvc repro export) or use backend='paddle'")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # paddle2onnx leaves unused initialisers; onnxruntime warns about each
        self.model_file = onnx_file
        self.threads = options.intra_op_num_threads
        self.use_onednn = False  # the paddle runner's attribute, read by reports
        self.session = ort.InferenceSession(str(onnx_file), sess_options=options, providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name
        self._output = self.session.get_outputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self._output], {self._input: np.ascontiguousarray(batch, dtype=np.float32)})[0]

    def metadata(self) -> dict:
        return dict(self.session.get_modelmeta().custom_metadata_map)


def check_onnx_parity(paddle_runner, onnx_runner, batches: list[np.ndarray], kind: str,
                      tolerance: float = ONNX_TOLERANCE) -> dict:
    """Largest absolute output difference between the two runners over ``batches``; raises OnnxExportError
    naming the model and the difference when it exceeds ``tolerance``."""
    worst, worst_at = 0.0, None
    for index, batch in enumerate(batches):
        expected, got = paddle_runner(batch), onnx_runner(batch)
        if expected.shape != got.shape:
            raise OnnxExportError(f"the {kind} ONNX model ({onnx_runner.model_file}) gives outputs of shape "
                                  f"{got.shape} where paddle inference gives {expected.shape} (input {batch.shape})")
        diff = float(np.abs(expected - got).max())
        if diff > worst:
            worst, worst_at = diff, list(batch.shape)
    report = {"inputs": len(batches), "max_abs_diff": worst, "tolerance": tolerance, "worst_input_shape": worst_at}
    if not worst <= tolerance:
        raise OnnxExportError(f"the {kind} ONNX model ({onnx_runner.model_file}) differs from paddle inference by "
                              f"{worst:.3g} (tolerance {tolerance:g}) on an input of shape {worst_at}: do not deploy "
                              f"it; report the paddle2onnx version and the model")
    return report
