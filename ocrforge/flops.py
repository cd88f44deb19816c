"""How far a model runs from the machine's limit: FLOPs of one forward pass, the CPU's measured matmul peak,
and the achieved GFLOP/s of an engine as a fraction of that peak.

- :func:`count_flops`: FLOPs of an ONNX model at one input's shape, every intermediate shape measured by
  onnxruntime (shape inference alone stops at PaddleOCR's dynamic reshapes);
- :func:`det_input_shapes` / :func:`det_flops`: a detector's FLOPs per image at the shapes
  ``DetResizeForTest`` gives the images (``limit_side_len`` / ``limit_type``, sides rounded to 32);
- :func:`rec_flops` / :func:`rec_flops_over_crops`: a recogniser's FLOPs per crop (48 x 320, or each crop
  at its own input width);
- :func:`matmul_peak`: single-precision matmul GFLOP/s of this CPU at a thread count;
- :func:`achieved` / :func:`distance_to_limit`: GFLOP/s an engine reaches, and its fraction of the peak
  (:func:`model_flops` gives one det/rec pair's FLOPs on a data set).

A FLOP is one floating-point multiply or add: a multiply-accumulate counts 2. Convolutions and matrix
products (``Conv``, ``ConvTranspose``, ``MatMul``, ``Gemm``) are counted exactly; element-wise and
normalisation operators count what their formula does per output element (see :data:`ELEMENTWISE`), so
``by_op`` shows they are a few per cent of the total in PP-OCR models. Operators that only move data
(``Reshape``, ``Transpose``, ``Concat``, ``Resize`` by nearest neighbour, ...) count 0.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import numpy as np

# FLOPs per output element: arithmetic operators (a transcendental function counts 1, as in most FLOP counters)
ELEMENTWISE = {
    "Add": 1, "Sub": 1, "Mul": 1, "Div": 1, "Pow": 1, "Sqrt": 1, "Exp": 1, "Log": 1, "Erf": 1, "Tanh": 1,
    "Relu": 1, "LeakyRelu": 1, "Sigmoid": 1, "Clip": 1, "Max": 1, "Min": 1, "Neg": 1, "Reciprocal": 1,
    "HardSigmoid": 2, "HardSwish": 3, "Gelu": 4, "BatchNormalization": 2, "Softmax": 3,
}
# FLOPs per input element: reductions and pooling read each input once
REDUCTIONS = {"ReduceMean": 1, "ReduceSum": 1, "GlobalAveragePool": 1, "ReduceMax": 1}
LAYER_NORMS = {"LayerNormalization": 5, "InstanceNormalization": 5, "GroupNormalization": 5}


def _attribute(node, name: str, default=None):
    for attr in node.attribute:
        if attr.name == name:
            import onnx

            return onnx.helper.get_attribute_value(attr)
    return default


def tensor_shapes(onnx_path: str | os.PathLike, inputs: dict[str, np.ndarray] | np.ndarray) -> dict[str, tuple]:
    """The shape of every tensor of the model (inputs, weights, each node's outputs) when it runs on ``inputs``
    (an array for a one-input model, or ``{name: array}``): onnxruntime runs once, unoptimised, with every
    intermediate tensor made a graph output. They are all held at once: PP-OCRv6 small det takes the
    process to a peak RSS of 3.2 GB at 1504 x 736, 0.6 GB at 352 x 480."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(onnx_path))
    graph = model.graph
    if isinstance(inputs, np.ndarray):
        if len(graph.input) - len({i.name for i in graph.initializer} & {i.name for i in graph.input}) != 1:
            raise ValueError(f"{onnx_path} has several inputs; pass {{name: array}}")
        inputs = {graph.input[0].name: inputs}
    shapes = {name: tuple(array.shape) for name, array in inputs.items()}
    shapes.update({init.name: tuple(init.dims) for init in graph.initializer})
    known = {output.name for output in graph.output}
    for node in graph.node:
        for name in node.output:
            if name and name not in known and name not in shapes:
                graph.output.append(onnx.ValueInfoProto(name=name))
                known.add(name)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    for name, value in zip(names, session.run(names, inputs)):
        shapes[name] = tuple(np.shape(value))
    return shapes


def _conv_flops(node, shapes) -> int:
    x, w, out = shapes[node.input[0]], shapes[node.input[1]], shapes[node.output[0]]
    groups = _attribute(node, "group", 1)
    kernel = math.prod(w[2:])
    if node.op_type == "Conv":      # W: (Cout, Cin / groups, k...)
        macs = math.prod(out) * w[1] * kernel
    else:                           # ConvTranspose, W: (Cin, Cout / groups, k...): every input pixel scatters
        macs = math.prod(x) * w[1] * kernel
    bias = math.prod(out) if len(node.input) > 2 and node.input[2] else 0
    if x[1] != (w[1] * groups if node.op_type == "Conv" else w[0]):
        raise ValueError(f"{node.op_type} {node.name!r}: input {x} does not fit weights {w} in {groups} groups")
    return 2 * macs + bias


def _matmul_flops(node, shapes) -> int:
    a, _, out = shapes[node.input[0]], shapes[node.input[1]], shapes[node.output[0]]
    k = a[-1]
    return 2 * math.prod(out) * k


def _gemm_flops(node, shapes) -> int:
    a, out = shapes[node.input[0]], shapes[node.output[0]]
    k = a[0] if _attribute(node, "transA", 0) else a[1]
    bias = math.prod(out) if len(node.input) > 2 and node.input[2] else 0
    return 2 * math.prod(out) * k + bias


def node_flops(node, shapes: dict[str, tuple]) -> int:
    """FLOPs of one ONNX node given every tensor's shape (see the module docstring for what counts)."""
    op = node.op_type
    if op in ("Conv", "ConvTranspose"):
        return _conv_flops(node, shapes)
    if op == "MatMul":
        return _matmul_flops(node, shapes)
    if op == "Gemm":
        return _gemm_flops(node, shapes)
    if op in ELEMENTWISE:
        return ELEMENTWISE[op] * math.prod(shapes[node.output[0]])
    if op in REDUCTIONS:
        return REDUCTIONS[op] * math.prod(shapes[node.input[0]])
    if op in LAYER_NORMS:
        return LAYER_NORMS[op] * math.prod(shapes[node.output[0]])
    if op in ("AveragePool", "MaxPool"):
        return math.prod(shapes[node.output[0]]) * math.prod(_attribute(node, "kernel_shape", [1]))
    return 0


def count_flops(onnx_path: str | os.PathLike, input_array: np.ndarray | dict) -> dict:
    """FLOPs of one forward pass of ``onnx_path`` on ``input_array`` (e.g. ``(1, 3, H, W)`` float32; the
    values do not matter, the shape does): ``{"total": int, "by_op": {op_type: int}, "input_shape": [...]}``,
    ``by_op`` sorted largest first, operators that count 0 left out."""
    import onnx

    shapes = tensor_shapes(onnx_path, input_array)
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    by_op: dict[str, int] = {}
    for node in graph.node:
        flops = node_flops(node, shapes)
        if flops:
            by_op[node.op_type] = by_op.get(node.op_type, 0) + flops
    first = input_array if isinstance(input_array, np.ndarray) else next(iter(input_array.values()))
    return {"total": sum(by_op.values()), "by_op": dict(sorted(by_op.items(), key=lambda kv: -kv[1])),
            "input_shape": list(first.shape)}


# ---------------------------------------------------------------------------- detector input shapes


def det_input_shape(height: int, width: int, limit_side_len: int = 960, limit_type: str = "max") -> tuple[int, int]:
    """``(H, W)`` the detector sees for an image of ``height`` x ``width``: PaddleOCR's ``DetResizeForTest``
    (``max``: the longer side shrunk to ``limit_side_len`` if above; ``min``: the shorter side grown to it if
    below), then each side rounded to a multiple of 32 (at least 32)."""
    if limit_type == "max":
        ratio = limit_side_len / max(height, width) if max(height, width) > limit_side_len else 1.0
    elif limit_type == "min":
        ratio = limit_side_len / min(height, width) if min(height, width) < limit_side_len else 1.0
    else:
        raise ValueError(f"limit_type must be 'max' or 'min', got {limit_type!r}")
    return tuple(max(int(round(int(side * ratio) / 32) * 32), 32) for side in (height, width))


def det_flops(onnx_path: str | os.PathLike, image_sizes, limit_side_len: int = 960, limit_type: str = "max") -> dict:
    """A detector's FLOPs per image over images of ``image_sizes`` (``[(height, width)]``), each at its
    resized shape (:func:`det_input_shape`); each distinct shape is measured once. ``mean`` (per image),
    ``min``, ``max`` and ``shapes`` (``"HxW": [images, FLOPs]``)."""
    counts: dict[tuple, int] = {}
    for height, width in image_sizes:
        shape = det_input_shape(int(height), int(width), limit_side_len, limit_type)
        counts[shape] = counts.get(shape, 0) + 1
    flops = {shape: count_flops(onnx_path, np.zeros((1, 3, *shape), np.float32))["total"] for shape in counts}
    total = sum(flops[s] * n for s, n in counts.items())
    images = sum(counts.values())
    return {"mean": total / images, "min": min(flops.values()), "max": max(flops.values()), "images": images,
            "resize": {"limit_side_len": limit_side_len, "limit_type": limit_type},
            "shapes": {f"{h}x{w}": [counts[(h, w)], flops[(h, w)]] for h, w in sorted(counts)}}


# ---------------------------------------------------------------------------- the machine's peak

_NUMPY_PROBE = """
import sys, time, numpy as np
n, repeats = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
a @ b
best = min((lambda t: (a @ b, time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(repeats))
print(2.0 * n ** 3 / best / 1e9)
"""


def _numpy_matmul_gflops(threads: int, size: int, repeats: int) -> float:
    """numpy float32 matmul, best of ``repeats``, in a fresh process whose BLAS has ``threads`` threads (the
    BLAS reads its thread count when it loads; threadpoolctl is not installed)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", _NUMPY_PROBE, str(size), str(repeats)], env=env, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def _onnxruntime_matmul_gflops(threads: int, size: int, repeats: int) -> float:
    """onnxruntime's MatMul (float32, ``size`` x ``size``), ``threads`` intra-op threads, best of ``repeats``."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [size, size]),
                               helper.make_tensor_value_info("b", TensorProto.FLOAT, [size, size])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    onnx.checker.check_model(model)
    rng = np.random.default_rng(0)
    feed = {"a": rng.random((size, size), dtype=np.float32), "b": rng.random((size, size), dtype=np.float32)}
    session.run(None, feed)
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(None, feed)
        best = min(best, time.perf_counter() - started)
    return 2.0 * size ** 3 / best / 1e9


def matmul_peak(threads: int, size: int = 2048, repeats: int = 5) -> dict:
    """This CPU's measured single-precision matmul throughput at ``threads`` threads: square ``size`` x
    ``size`` float32 products, best of ``repeats``, through numpy's BLAS and onnxruntime's MatMul.
    ``{"gflops": the faster, "backend": which, "by_backend": {"numpy": ..., "onnxruntime": ...}, ...}``.
    Other load on the machine lowers it: take it on a quiet machine, and best of several runs."""
    by_backend = {"numpy": round(_numpy_matmul_gflops(threads, size, repeats), 2),
                  "onnxruntime": round(_onnxruntime_matmul_gflops(threads, size, repeats), 2)}
    backend = max(by_backend, key=by_backend.get)
    return {"gflops": by_backend[backend], "backend": backend, "by_backend": by_backend, "threads": threads,
            "size": size, "repeats": repeats}


def achieved(flops_per_item: float, items_per_s: float, peak_gflops: float) -> dict:
    """GFLOP/s an engine reaches doing ``items_per_s`` items of ``flops_per_item`` FLOPs each, and that as a
    fraction of ``peak_gflops`` (the matmul peak at the engine's thread count)."""
    gflops = flops_per_item * items_per_s / 1e9
    return {"gflops": gflops, "fraction_of_peak": gflops / peak_gflops}


def rec_flops(onnx_path: str | os.PathLike, height: int = 48, width: int = 320) -> int:
    """A recogniser's FLOPs for one crop resized to ``height`` x ``width`` (PP-OCR: 48 x 320)."""
    return count_flops(onnx_path, np.zeros((1, 3, height, width), np.float32))["total"]


def rec_input_width(height: int, width: int, rec_height: int = 48, rec_width: int = 320) -> int:
    """Width of the recogniser's input for one crop of ``height`` x ``width`` read alone (PaddleOCR's and
    RapidOCR's ``resize_norm_img``): the crop scaled to ``rec_height``, zero-padded to at least ``rec_width``."""
    return int(rec_height * max(rec_width / rec_height, width / height))


def rec_flops_over_crops(onnx_path: str | os.PathLike, crop_sizes, rec_height: int = 48,
                         rec_width: int = 320) -> dict:
    """A recogniser's FLOPs per crop over crops of ``crop_sizes`` (``[(height, width)]``), each read alone
    at its input width (:func:`rec_input_width`); each distinct width measured once. ``mean``, ``min``,
    ``max``, ``crops`` and ``widths`` (``{width: [crops, FLOPs]}``)."""
    counts: dict[int, int] = {}
    for height, width in crop_sizes:
        w = rec_input_width(int(height), int(width), rec_height, rec_width)
        counts[w] = counts.get(w, 0) + 1
    flops = {w: rec_flops(onnx_path, rec_height, w) for w in counts}
    crops = sum(counts.values())
    return {"mean": sum(flops[w] * n for w, n in counts.items()) / crops, "min": min(flops.values()),
            "max": max(flops.values()), "crops": crops,
            "widths": {w: [counts[w], flops[w]] for w in sorted(counts)}}


def model_flops(det_onnx: str | os.PathLike, rec_onnx: str | os.PathLike, image_sizes, crop_sizes=None,
                limit_side_len: int = 960, limit_type: str = "max") -> dict:
    """FLOPs of one det/rec pair on a data set: ``det`` (:func:`det_flops` over ``image_sizes`` at this
    resize), ``rec_48x320`` (one crop at 48 x 320) and, with ``crop_sizes``, ``rec`` (:func:`rec_flops_over_crops`)."""
    figures = {"det": det_flops(det_onnx, image_sizes, limit_side_len, limit_type), "rec_48x320": rec_flops(rec_onnx)}
    if crop_sizes is not None:
        figures["rec"] = rec_flops_over_crops(rec_onnx, crop_sizes)
    return figures


def distance_to_limit(figures: dict, det_images_per_s: float, rec_crops_per_s: float, peak_gflops: float) -> dict:
    """How far an engine runs from the machine's limit: achieved GFLOP/s and fraction of ``peak_gflops``
    (:func:`matmul_peak` at the engine's thread count) for detection (``figures["det"]["mean"]`` FLOPs per
    image) and recognition read alone (``figures["rec"]["mean"]`` per crop, else ``rec_48x320``)."""
    rec = figures["rec"]["mean"] if "rec" in figures else figures["rec_48x320"]
    return {"det": achieved(figures["det"]["mean"], det_images_per_s, peak_gflops),
            "rec": achieved(rec, rec_crops_per_s, peak_gflops)}
