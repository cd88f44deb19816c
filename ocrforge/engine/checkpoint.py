"""Checkpoints as PaddleOCR lays them out: ``<dir>/<name>.pdparams`` (model weights), ``<name>.pdopt``
(optimizer state, the lr schedule's included) and ``<name>.states.json`` (epoch, steps, best metric,
generator states as plain JSON, config hash).

A save is one unit: the three files are first written whole to ``<file>.tmp<pid>`` (``states.json`` last,
holding the sha256 of the other two), and only then renamed over the previous ones. So the previous
checkpoint stays untouched until the new one is complete on disk; a run killed while the temporaries are
written leaves them incomplete, and :func:`recover_checkpoints` (run when training starts) deletes them; a run
killed between the renames leaves a complete new ``states.json.tmp<pid>``, and recovery finishes the renames.
A full disk during a save removes the temporaries, keeps the previous checkpoint and says so.

Nothing here unpickles: ``states.json`` is JSON; the ``.pdparams``/``.pdopt`` files are paddle's own format,
which is pickle-based, so only load model folders you trust (README, "Which files are trusted").
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any, Sequence

import ocrforge  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
import paddle

FORMAT_VERSION = 2  # 2: generator states as JSON (1 held them pickled, which is no longer read)

logger = logging.getLogger("ocrforge.engine")

_KINDS = (("params", "pdparams"), ("opt", "pdopt"), ("states", "states.json"))
_TMP = re.compile(r"^(?P<name>.+)\.(?P<kind>pdparams|pdopt|states\.json)\.tmp(?P<pid>\d+)$")
_OTHER_TMP = re.compile(r"^.+\.tmp\d+$")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing a file, is inconsistent, does not fit the model, or could not be saved."""


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` and flush it to the disk (a temporary, renamed later)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


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


def _sha256_file(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return None


def _complete_save(directory: str, name: str, pid: str) -> dict | None:
    """The states of save ``(name, pid)`` when its temporaries form a whole checkpoint, else None.

    Whole: ``<name>.states.json.tmp<pid>`` is valid JSON and each file it hashes is either still a
    temporary of that save or (already renamed) the final file, with that hash."""
    paths = checkpoint_paths(directory, name)
    try:
        with open(f"{paths['states']}.tmp{pid}", encoding="utf-8") as f:
            states = json.load(f)
    except (OSError, ValueError):
        return None
    digests = states.get("sha256") if isinstance(states, dict) else None
    if not isinstance(digests, dict) or "pdparams" not in digests:
        return None
    for kind, key in _KINDS[:2]:
        if key not in digests:
            continue
        tmp = f"{paths[kind]}.tmp{pid}"
        found = _sha256_file(tmp) if os.path.exists(tmp) else _sha256_file(paths[kind])
        if found != digests[key]:
            return None
    return states


def recover_checkpoints(directory: str, log: logging.Logger = logger) -> list[str]:
    """Finish or undo the saves a killed run left in ``directory``; remove every other stale temporary
    (``*.tmp<pid>``), so none stays on the disk or is committed by DVC. Returns what was done, one line each.

    Call it when no save is running (at the start of training); several processes may call it at once."""
    if not os.path.isdir(directory):
        return []
    saves: dict[tuple[str, str], list[str]] = {}
    others = []
    for entry in sorted(os.listdir(directory)):
        m = _TMP.match(entry)
        if m:
            saves.setdefault((m["name"], m["pid"]), []).append(entry)
        elif _OTHER_TMP.match(entry) and os.path.isfile(os.path.join(directory, entry)):
            others.append(entry)
    done = []
    for (name, pid), entries in sorted(saves.items()):
        paths = checkpoint_paths(directory, name)
        if _complete_save(directory, name, pid) is not None:
            for kind, _ in _KINDS:  # states last, as in a save
                try:
                    os.replace(f"{paths[kind]}.tmp{pid}", paths[kind])
                except FileNotFoundError:
                    pass  # renamed before the kill (or by another process just now)
            done.append(f"finished the interrupted save of checkpoint {name!r} in {directory} "
                        f"(it was whole; {len(entries)} file(s) renamed into place)")
        else:
            for entry in entries:
                try:
                    os.remove(os.path.join(directory, entry))
                except FileNotFoundError:
                    pass
            done.append(f"removed {len(entries)} temporary file(s) of an interrupted save of checkpoint {name!r} "
                        f"in {directory} ({', '.join(entries)}); the previous {name!r} is kept")
    for entry in others:
        try:
            os.remove(os.path.join(directory, entry))
        except FileNotFoundError:
            continue
        done.append(f"removed the stale temporary file {os.path.join(directory, entry)}")
    if done:
        _fsync_dir(directory)
    for line in done:
        log.warning("%s", line)
    return done


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


def _disk_full_error(exc: OSError, path: str, directory: str, name: str, needed: int) -> CheckpointError:
    return CheckpointError(
        f"the disk is full: writing {path} failed ({exc.strerror}); checkpoint {name!r} was not saved and the "
        f"previous one in {directory} is kept, so a rerun resumes from it. Free at least {needed / 1e6:.0f} MB on "
        f"the disk that holds {os.path.abspath(directory)} (`df -h {directory}`; `dvc gc` removes unused cached "
        f"versions), then run again.")


def save_checkpoint(directory: str, name: str, model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer | None,
                    states: dict[str, Any]) -> dict[str, str]:
    """Write ``<name>.pdparams``, ``<name>.pdopt`` and ``<name>.states.json`` as one unit; returns the paths.

    ``states`` must be JSON-serialisable (plain numbers, strings, lists, dicts). A full disk raises
    CheckpointError and leaves the previous checkpoint as it was.
    """
    os.makedirs(directory, exist_ok=True)
    paths = checkpoint_paths(directory, name)
    blobs = {"params": _paddle_bytes(unwrap(model).state_dict())}
    if optimizer is not None:
        blobs["opt"] = _paddle_bytes(portable_optimizer_state(optimizer, model))
    record = dict(states)
    record["format_version"] = FORMAT_VERSION
    record["sha256"] = {key: hashlib.sha256(blobs[kind]).hexdigest() for kind, key in _KINDS[:2] if kind in blobs}
    blobs["states"] = json.dumps(record, indent=1, sort_keys=True, allow_nan=True).encode("utf-8")
    suffix = f".tmp{os.getpid()}"
    order = [kind for kind, _ in _KINDS if kind in blobs]  # states.json last: it makes the new set whole
    written = []
    try:
        for kind in order:
            written.append(paths[kind] + suffix)
            _write_file(paths[kind] + suffix, blobs[kind])
        _fsync_dir(directory)
    except OSError as exc:
        for tmp in written:
            try:
                os.remove(tmp)
            except OSError:
                pass
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _disk_full_error(exc, written[-1], directory, name, sum(map(len, blobs.values()))) from exc
        raise CheckpointError(f"writing {written[-1]} failed ({exc}); checkpoint {name!r} was not saved and the "
                              f"previous one in {directory} is kept") from exc
    for kind in order:
        os.replace(paths[kind] + suffix, paths[kind])
    _fsync_dir(directory)
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
            if kind == "opt" and "pdopt" not in states.get("sha256", {"pdopt": 1}):
                continue  # saved without an optimizer
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


def clear_stale_checkpoints(config: dict, logger: logging.Logger = logger, derived: Sequence[str] = ()) -> bool:
    """Remove ``latest`` when it was written under another config (or finished), so a changed experiment
    starts fresh while an interrupted run of the same config resumes; with it go ``best_accuracy`` and the
    files named in ``derived`` that were made from the old run (the caller knows them: a detector's
    ``postprocess.json``). Returns True when something was removed."""
    from ocrforge.config import config_hash
    
    out_dir = Path(config["Global"]["save_model_dir"])
    if not checkpoint_exists(out_dir, "latest"):
        return False
    states = read_states(out_dir, "latest")
    state = states.get("state", {})
    finished = state.get("epoch", 0) >= int(config["Global"]["epoch_num"]) or state.get("stopped_reason")
    if states.get("config_hash") == config_hash(config) and not finished:
        return False
    if finished:
        # DVC runs a stage again only when a dependency changed: a finished run is trained again.
        logger.info("%s/latest is a finished run: training starts fresh", out_dir)
    else:
        logger.info("the config or data changed since %s/latest was written: training starts fresh", out_dir)
    for name in ("latest", "best_accuracy"):
        for path in checkpoint_paths(out_dir, name).values():
            Path(path).unlink(missing_ok=True)
    for name in derived:
        (out_dir / name).unlink(missing_ok=True)
    return True
