"""Checkpoints as PaddleOCR lays them out: ``<dir>/<name>.pdparams`` (model weights), ``<name>.pdopt``
(optimizer state, the lr schedule's included) and ``<name>.states.json`` (epoch, steps, best metric,
generator states, config hash).

Each file is written to a temporary name and renamed into place, and ``states.json`` goes last and holds
the sha256 of the other two, so a run killed while saving leaves either the old checkpoint or the new
one, and a mixed set is detected on load instead of being trained on.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import pickle
import warnings
from typing import Any

import ocrforge  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
import paddle

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that is missing a file, is inconsistent, or does not fit the model."""


def _atomic_write(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _paddle_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    paddle.save(obj, buf)
    return buf.getvalue()


def checkpoint_paths(directory: str, name: str) -> dict[str, str]:
    prefix = os.path.join(directory, name)
    return {"params": prefix + ".pdparams", "opt": prefix + ".pdopt", "states": prefix + ".states.json"}


def checkpoint_exists(directory: str, name: str) -> bool:
    return os.path.isfile(checkpoint_paths(directory, name)["states"])


def unwrap(model: paddle.nn.Layer) -> paddle.nn.Layer:
    """The model inside a ``paddle.DataParallel``, so checkpoints load with or without it."""
    return getattr(model, "_layers", model) if isinstance(model, paddle.DataParallel) else model


def encode_pickle(obj: Any) -> str:
    """Objects JSON cannot hold (generator states) as base64 text inside ``states.json``."""
    return base64.b64encode(pickle.dumps(obj)).decode("ascii")


def decode_pickle(text: str) -> Any:
    return pickle.loads(base64.b64decode(text.encode("ascii")))


PORTABLE_KEY = "ocrforge_structured_names"


def _rename_prefixes(state: dict, mapping: dict[str, str]) -> dict:
    """Rename keys ``<old>_<accumulator>`` (and ``master_weights`` entries) to ``<new>_<accumulator>``."""
    olds = sorted(mapping, key=len, reverse=True)

    def rename(key: str) -> str:
        for old in olds:
            if key == old or key.startswith(old + "_"):
                return mapping[old] + key[len(old):]
        return key

    out = {}
    for key, value in state.items():
        if key == "master_weights" and isinstance(value, dict):
            out[key] = {rename(k): v for k, v in value.items()}
        elif key == "LR_Scheduler":
            out[key] = value
        else:
            out[rename(key)] = value
    return out


def portable_optimizer_state(optimizer: paddle.optimizer.Optimizer, model: paddle.nn.Layer) -> dict:
    """The optimizer's state keyed by the model's structured parameter names (``backbone.conv1.weight``)
    instead of paddle's per-process unique names (``conv2d_12.w_0``), so it loads into a model built
    in another order or process."""
    to_structured = {p.name: n for n, p in unwrap(model).named_parameters()}
    state = _rename_prefixes(optimizer.state_dict(), to_structured)
    state[PORTABLE_KEY] = True
    return state


def load_portable_optimizer_state(optimizer: paddle.optimizer.Optimizer, model: paddle.nn.Layer,
                                  state: dict) -> None:
    state = dict(state)
    if state.pop(PORTABLE_KEY, False):
        to_current = {n: p.name for n, p in unwrap(model).named_parameters()}
        state = _rename_prefixes(state, to_current)
    with warnings.catch_warnings():  # LinearWarmup's nested schedule state trips a spurious warning
        warnings.filterwarnings("ignore", message="There are some unused values in state_dict")
        optimizer.set_state_dict(state)


def save_checkpoint(directory: str, name: str, model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer | None,
                    states: dict[str, Any]) -> dict[str, str]:
    """Write ``<name>.pdparams``, ``<name>.pdopt`` and ``<name>.states.json`` atomically; returns the paths.

    ``states`` must be JSON-serialisable (encode other objects with :func:`encode_pickle`).
    """
    os.makedirs(directory, exist_ok=True)
    paths = checkpoint_paths(directory, name)
    params = _paddle_bytes(unwrap(model).state_dict())
    opt = _paddle_bytes(portable_optimizer_state(optimizer, model)) if optimizer is not None else b""
    record = dict(states)
    record["format_version"] = FORMAT_VERSION
    record["sha256"] = {"pdparams": hashlib.sha256(params).hexdigest(), "pdopt": hashlib.sha256(opt).hexdigest()}
    text = json.dumps(record, indent=1, sort_keys=True).encode("utf-8")
    _atomic_write(paths["params"], params)
    if optimizer is not None:
        _atomic_write(paths["opt"], opt)
    _atomic_write(paths["states"], text)
    return paths


def read_states(directory: str, name: str) -> dict[str, Any]:
    path = checkpoint_paths(directory, name)["states"]
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint {name!r} in {directory!r}: {path} is missing") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); delete the checkpoint to start afresh") from exc


def load_checkpoint(directory: str, name: str, model: paddle.nn.Layer,
                    optimizer: paddle.optimizer.Optimizer | None = None) -> dict[str, Any]:
    """Load weights (and optimizer state) of checkpoint ``name`` into ``model``; returns its states dict.

    Raises CheckpointError when a file is missing, when the files do not belong together (a save was
    interrupted), or when a weight is missing or has another shape than the model's.
    """
    paths = checkpoint_paths(directory, name)
    states = read_states(directory, name)
    blobs = {}
    for kind, key in (("params", "pdparams"), ("opt", "pdopt")):
        if kind == "opt" and optimizer is None:
            continue
        try:
            with open(paths[kind], "rb") as f:
                blobs[kind] = f.read()
        except FileNotFoundError:
            raise CheckpointError(f"checkpoint {name!r} in {directory!r} lacks {paths[kind]}") from None
        digest = states.get("sha256", {}).get(key)
        if digest and hashlib.sha256(blobs[kind]).hexdigest() != digest:
            raise CheckpointError(f"{paths[kind]} does not match {paths['states']} (a save was interrupted?); "
                                  f"delete the '{name}' checkpoint files to fall back to another one")
    weights = paddle.load(io.BytesIO(blobs["params"]))
    target = unwrap(model)
    own = target.state_dict()
    missing = sorted(set(own) - set(weights))
    wrong = [f"{k}: checkpoint {list(weights[k].shape)} vs model {list(v.shape)}"
             for k, v in own.items() if k in weights and list(weights[k].shape) != list(v.shape)]
    if missing or wrong:
        raise CheckpointError(f"{paths['params']} does not fit the model: "
                              f"{len(missing)} missing ({', '.join(missing[:5])}), "
                              f"{len(wrong)} of another shape ({'; '.join(wrong[:5])})")
    target.set_state_dict(weights)
    if optimizer is not None and blobs.get("opt"):
        load_portable_optimizer_state(optimizer, model, paddle.load(io.BytesIO(blobs["opt"])))
    return states
