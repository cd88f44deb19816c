"""Training configs: PaddleOCR-style YAML (``Global``, ``Architecture``, ``Loss``, ``Optimizer``, ``Train``, ...).

Overrides use dotted paths in the same section names, as ``tools/train.py -o`` does in PaddleOCR::

    cfg = load_config("configs/rec/ppocrv4_rec.yml")
    cfg = merge_overrides(cfg, {"Global.epoch_num": 10, "Optimizer.lr.learning_rate": 1e-3})
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
from typing import Any, Mapping

import yaml

from ocrforge.resources import resolve_dict_path


class ConfigError(KeyError):
    """A config file or override that names something that is not there."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


def load_config(path: str | os.PathLike) -> dict:
    """Read a YAML config into a plain dict; the top level must be a mapping of sections."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path!r} does not exist; check the path (cwd is {os.getcwd()!r})")
    with open(path, encoding="utf-8") as f:
        try:
            cfg = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (Global, Train, ...), "
                          f"got {type(cfg).__name__}")
    return cfg


def _parse_value(value: Any) -> Any:
    """A string from the command line is read as YAML (``"1e-3"`` -> 0.001, ``"[1, 2]"`` -> list)."""
    if isinstance(value, str):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        if isinstance(parsed, str):
            try:  # YAML 1.1 reads "1e-3" (no dot) as a string
                return float(parsed)
            except ValueError:
                return parsed
        return parsed
    return value


def merge_overrides(cfg: Mapping, overrides: Mapping[str, Any] | None, *, allow_new_keys: bool = False,
                    parse_strings: bool = False) -> dict:
    """Return a copy of ``cfg`` with dotted-key ``overrides`` applied (``{"Global.epoch_num": 10}``).

    A path whose keys do not exist raises ConfigError naming the key and the keys that do exist, unless
    ``allow_new_keys`` is set (then missing sections are created). List items are addressed by index
    (``"Train.dataset.transforms.0.DecodeImage.img_mode"``). With ``parse_strings`` string values are
    read as YAML, as values typed on a command line should be.
    """
    out = copy.deepcopy(dict(cfg))
    for dotted, value in (overrides or {}).items():
        if not isinstance(dotted, str) or not dotted or any(p == "" for p in dotted.split(".")):
            raise ConfigError(f"override key {dotted!r} is not a dotted path like 'Global.epoch_num'")
        if parse_strings:
            value = _parse_value(value)
        parts = dotted.split(".")
        node: Any = out
        for depth, key in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[:depth]) or "<top level>"
            if isinstance(node, list):
                if not key.lstrip("-").isdigit() or not -len(node) <= int(key) < len(node):
                    raise ConfigError(f"override {dotted!r}: {where} is a list of {len(node)} items; "
                                      f"{key!r} is not a valid index")
                if last:
                    node[int(key)] = value
                else:
                    node = node[int(key)]
                continue
            if not isinstance(node, dict):
                raise ConfigError(f"override {dotted!r}: {where} is a {type(node).__name__} "
                                  f"({node!r}), not a section, so it has no key {key!r}")
            if key not in node:
                if not allow_new_keys:
                    known = ", ".join(map(str, node)) or "none"
                    close = difflib.get_close_matches(key, [str(k) for k in node], n=1, cutoff=0.6)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    raise ConfigError(f"override {dotted!r}: no key {key!r} in {where}{hint} (keys there: {known}). "
                                      f"Fix the spelling, or pass allow_new_keys=True to add it.")
                if not last:
                    node[key] = {}
            if last:
                node[key] = value
            else:
                if node[key] is None and allow_new_keys:
                    node[key] = {}
                node = node[key]
    return out


def parse_cli_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Turn ``["Global.epoch_num=10", "Optimizer.lr.learning_rate=1e-3"]`` into an overrides dict."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} needs the form Section.key=value, e.g. Global.epoch_num=10")
        key, value = item.split("=", 1)
        out[key.strip()] = _parse_value(value)
    return out


def dump_config(cfg: Mapping, path: str | os.PathLike) -> None:
    """Write ``cfg`` as YAML, keeping the section order, atomically (temp file + rename)."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        yaml.safe_dump(_plain(cfg), f, sort_keys=False, allow_unicode=True, default_flow_style=False)
    os.replace(tmp, path)


def config_hash(cfg: Mapping) -> str:
    """A short sha256 of the config's content, independent of key order."""
    text = json.dumps(_plain(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _plain(obj: Any) -> Any:
    """Tuples to lists and numpy scalars to Python numbers, so YAML and JSON can write the config."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", None) == 0:
        return obj.item()
    return obj


def resolve_dict_paths(config: dict) -> None:
    """Make every ``character_dict_path`` absolute, since the wheel's transforms open the path as given."""
    glob = config["Global"]
    if glob.get("character_dict_path"):
        glob["character_dict_path"] = str(resolve_dict_path(glob["character_dict_path"]))
    post = config.get("PostProcess") or {}
    if "character_dict_path" in post or config["Architecture"]["model_type"] == "rec":
        post["character_dict_path"] = glob["character_dict_path"]
        post.setdefault("use_space_char", glob.get("use_space_char", False))


def with_dict_path(config: dict, path: str | None) -> dict:
    """A copy of ``config`` whose ``character_dict_path`` entries are ``path``: the trained model's config.yml keeps
    the path as the params gave it (``ppocr/utils/en_dict.txt``), not this machine's resolved one, so the model
    folder loads wherever DVC brings it."""
    config = copy.deepcopy(config)
    if path:
        for section in (config["Global"], config.get("PostProcess") or {}):
            if "character_dict_path" in section:
                section["character_dict_path"] = path
    return config


def eval_transform_args(config: Mapping, op_name: str) -> dict:
    """The arguments of transform ``op_name`` in the config's Eval pipeline (``{}`` when it has none): how a
    trained model wants its images resized and normalised at inference."""
    for op in (config.get("Eval") or {}).get("dataset", {}).get("transforms", []):
        if isinstance(op, dict) and op_name in op:
            return dict(op[op_name] or {})
    return {}
