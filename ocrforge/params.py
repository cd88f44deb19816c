"""Read the pipeline's ``params.yaml`` (the hyperparameters DVC tracks) and check it against one schema.

:data:`SCHEMA` lists every section and key the stages read, with the values each accepts. A key that is not
in it (``train_rec.epoch`` for ``epochs``) or a value out of range (``batch_size: 0``) is an error naming the
key, and the closest valid key, before any stage does anything (in particular before a training stage
deletes an old checkpoint).
"""

from __future__ import annotations

import argparse
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

DEFAULT_PARAMS = Path("params.yaml")


class ParamsError(ValueError):
    """params.yaml names a key no stage reads, lacks a required one, or holds a value a key does not accept."""


# ---------------------------------------------------------------------------- value rules
# A rule takes the value and returns None when it is fine, else what the key needs ("an integer >= 1").

Rule = Callable[[Any], "str | None"]


def _number(value: Any, kind: type) -> Any:
    """``value`` as an int or float (YAML reads ``1e-3`` as a string), or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and not (kind is int and isinstance(value, float)):
        return value
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            return None
    return None


def integer(low: int | None = None) -> Rule:
    need = "an integer" + (f" >= {low}" if low is not None else "")

    def rule(value: Any) -> str | None:
        v = _number(value, int)
        return need if v is None or (low is not None and v < low) else None

    return rule


def real(low: float | None = None, high: float | None = None, *, low_open: bool = False) -> Rule:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"<= {high:g}")
    need = "a number" + (" " + " and ".join(parts) if parts else "")

    def rule(value: Any) -> str | None:
        v = _number(value, float)
        if v is None or v != v:
            return need
        if low is not None and (v <= low if low_open else v < low):
            return need
        if high is not None and v > high:
            return need
        return None

    return rule


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def text(*, empty: bool = True) -> Rule:
    def rule(value: Any) -> str | None:
        if value is None and empty:
            return None
        if not isinstance(value, str) or (not empty and not value.strip()):
            return "a non-empty string" if not empty else "a string"
        return None

    return rule


def choice(*options: str) -> Rule:
    def rule(value: Any) -> str | None:
        return None if value in options else f"one of {list(options)}"

    return rule


def device(value: Any) -> str | None:
    ok = isinstance(value, str) and (value in ("auto", "cpu", "gpu") or
                                     (value.startswith("gpu:") and value[4:].isdigit()))
    return None if ok else "auto, cpu, gpu or gpu:N"


def optional(rule: Rule) -> Rule:
    """``rule``, or an empty value (``max_minutes:`` with nothing after it)."""
    def check(value: Any) -> str | None:
        if value is None:
            return None
        problem = rule(value)
        return f"{problem} (or empty)" if problem else None

    return check


def list_of(item: Rule, *, length: int | None = None, nonempty: bool = False) -> Rule:
    def rule(value: Any) -> str | None:
        shape = f"a list of {length} items" if length else "a non-empty list" if nonempty else "a list"
        if not isinstance(value, list) or (length and len(value) != length) or (nonempty and not value):
            return f"{shape}, each {item(object())}"
        for v in value:
            problem = item(v)
            if problem:
                return f"{shape}, each {problem}"
        return None

    return rule


def scale_pair(value: Any) -> str | None:
    """IaaAugment Resize's ``[low, high]`` factors, or ``[]`` for the config's own."""
    need = "[low, high] with 0 < low <= high (or [] for the config's range)"
    if value == []:
        return None
    if not isinstance(value, list) or len(value) != 2:
        return need
    low, high = (_number(v, float) for v in value)
    return None if low is not None and high is not None and 0 < low <= high else need


def mapping(value: Any) -> str | None:
    return None if value is None or isinstance(value, dict) else "a mapping (key: value, ...)"


def overrides(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
        return "a mapping of dotted config keys to values, e.g. {Optimizer.regularizer.factor: 1.0e-4}"
    return None


@dataclass(frozen=True)
class Key:
    rule: Rule | dict
    required: bool = False


def _schema_of(**keys: Key | Rule | dict) -> dict[str, Key]:
    return {k: v if isinstance(v, Key) else Key(v) for k, v in keys.items()}


def req(rule: Rule | dict) -> Key:
    return Key(rule, required=True)


ANALYSIS = _schema_of(
    window=integer(1), rel_loss_tol=real(0), metric_tol=real(0), overfit_patience=integer(1), overfit_tol=real(0),
    metric_drop_tol=real(0), diverge_factor=real(1), stop_on_overfitting=boolean, stop_on_diverging=boolean,
    stop_on_convergence=boolean,
)

_TRAINING = dict(
    config=req(text(empty=False)), pretrained_model=text(), device=device, seed=req(integer()),
    epochs=req(integer(1)), lr=req(real(0, low_open=True)), warmup_epoch=real(0), batch_size=req(integer(1)),
    num_workers=integer(0), freeze=list_of(text(empty=False)), freeze_bn=boolean,
    eval_every=integer(1),  # the eval and export stages read best_accuracy, which only an evaluation writes
    early_stopping_patience=integer(0), early_stopping_min_delta=real(0), max_minutes=optional(real(0)),
    save_every_steps=integer(0), analysis=ANALYSIS, overrides=overrides,
)
_DET = dict(
    crop_size=req(integer(1)), eval_side_len=integer(1), thresh=req(real(0, 1, low_open=True)),
    box_thresh=req(real(0, 1)), unclip_ratio=req(real(0, low_open=True)),
)

SCHEMA: dict[str, dict[str, Key]] = {
    "demo": _schema_of(seed=req(integer()), num_images=req(integer(1)), width=req(integer(1)),
                       height=req(integer(1)), max_lines=req(integer(1))),
    "split": _schema_of(input=req(text(empty=False)), ratio=req(text(empty=False)), seed=req(integer()),
                        on_label_error=req(choice("stop", "skip"))),
    "dictionary": _schema_of(character_dict_path=req(text(empty=False)), use_space_char=req(boolean),
                             max_text_length=req(integer(1))),
    "train_det": _schema_of(**_TRAINING, **_DET, crop=choice("east", "native"), text_crop_prob=real(0, 1),
                            scale_range=scale_pair,
                            postprocess_search=_schema_of(unclip_ratio=list_of(real(0, low_open=True)),
                                                          box_thresh=list_of(real(0, 1)),
                                                          limit_side_len=list_of(integer(32)),
                                                          compare_pretrained=boolean, every_epoch=boolean)),
    "distill_det": _schema_of(**_TRAINING, **_DET, teacher_model=req(text(empty=False))),
    "train_rec": _schema_of(**_TRAINING, image_shape=req(list_of(integer(1), length=3)),
                            heights=req(list_of(integer(1), nonempty=True)), eval_batch_size=integer(1),
                            box_jitter=real(0, 0.25), reading_width=boolean),
    "system": _schema_of(det_limit_side_len=optional(integer(32)), det_db_thresh=optional(real(0, 1, low_open=True)),
                         det_db_box_thresh=optional(real(0, 1)), det_db_unclip_ratio=optional(real(0, low_open=True)),
                         drop_score=optional(real(0, 1))),
    "tune_system": _schema_of(drop_score=list_of(real(0, 1)), unclip_ratio=list_of(real(0, low_open=True))),
    "eval": _schema_of(input=text(), detector=text(empty=False), checkpoint=choice("best_accuracy", "latest"),
                       case_sensitive=boolean, gallery_size=integer(0), limit=integer(0),
                       zero_shot=list_of(choice("ppocrv4", "ppocrv6"))),
    "export": _schema_of(checkpoint=choice("best_accuracy", "latest"), parity_images=integer(0)),
    "benchmark": _schema_of(input=text(), limit=integer(0), warmup=integer(0), repeats=integer(1),
                            rec_batch_size=integer(1), threads=integer(0), case_sensitive=boolean,
                            engines=list_of(choice("paddleocr", "paddleocr_default", "rapidocr", "rapidocr_v6",
                                                   "ocrforge", "ocrforge_paddle", "ocrforge_pool"), nonempty=True),
                            memory_alone=boolean, reference_args=mapping, flops=boolean),
}


def _closest(key: str, known) -> str:
    match = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""


def _check(where: str, values: Any, schema: dict[str, Key], errors: list[str]) -> None:
    if not isinstance(values, dict):
        errors.append(f"{where} must be a mapping of keys ({', '.join(schema)}), got {type(values).__name__}")
        return
    for key, value in values.items():
        if key not in schema:
            errors.append(f"{where}.{key} is not a key any stage reads{_closest(key, schema)} "
                          f"(keys there: {', '.join(schema)})")
            continue
        rule = schema[key].rule
        if isinstance(rule, dict):
            if value is not None:
                _check(f"{where}.{key}", value, rule, errors)
            continue
        problem = rule(value)
        if problem:
            errors.append(f"{where}.{key} must be {problem}; got {value!r}")
    for key, spec in schema.items():
        if spec.required and key not in values:
            errors.append(f"{where}.{key} is missing; restore it from the repository's params.yaml")


def _message(source: str, errors: list[str]) -> str:
    head = f"{source}: " + (errors[0] if len(errors) == 1 else f"{len(errors)} problems:" + "".join(
        f"\n  {e}" for e in errors))
    return head + f"\nFix {'it' if len(errors) == 1 else 'them'} in {source} (its comments say what each key takes)."


def validate_section(name: str, values: Any, source: str = "params.yaml") -> None:
    """Raise ParamsError listing every unknown key, missing key and invalid value of section ``name``."""
    errors: list[str] = []
    _check(name, values, SCHEMA[name], errors)
    if errors:
        raise ParamsError(_message(source, errors))


def validate_params(params: dict, source: str = "params.yaml") -> None:
    """Check every section of a params file against :data:`SCHEMA` (all problems in one error)."""
    errors: list[str] = []
    for name, values in params.items():
        if name not in SCHEMA:
            errors.append(f"'{name}' is not a section any stage reads{_closest(name, SCHEMA)} "
                          f"(sections: {', '.join(SCHEMA)})")
        else:
            _check(name, values, SCHEMA[name], errors)
    if errors:
        raise ParamsError(_message(source, errors))


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict:
    """The parsed params file, checked (:func:`validate_params`); a clear error if it is missing or wrong.

    Read as DVC reads and writes it (ruamel.yaml, YAML 1.2): `dvc exp run -S` rewrites params.yaml without the
    quotes YAML 1.1 needs, and PyYAML would then read ``ratio: 6:2:2`` as the base-60 integer 21722 and
    ``lr: 1e-4`` as a string, so a stage would run on other values than the ones DVC records.
    """
    from ruamel.yaml import YAML

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path.resolve()} not found; run the stages from the repository root")
    with open(path, encoding="utf-8-sig") as fh:
        params = YAML(typ="safe", pure=True).load(fh)
    if not isinstance(params, dict):
        raise ValueError(f"{path} must hold a YAML mapping of sections (demo, split, ...)")
    validate_params(params, str(path))
    return params


def section(params: dict, name: str) -> dict:
    """One section of the params, with an error that names it when it is absent."""
    if name not in params or not isinstance(params[name], dict):
        raise KeyError(f"params.yaml has no '{name}' section; restore it from the repository's params.yaml")
    return params[name]


def system_overrides(params: dict) -> dict:
    """The ``system`` section as :class:`~ocrforge.system.SystemSettings` overrides: the values it sets (an empty
    one keeps what the trained detector chose: its config, then its val split's post-process search)."""
    return {key: value for key, value in section(params, "system").items() if value is not None}


def stage_parser(description: str, **paths: str) -> argparse.ArgumentParser:
    """The command line of a pipeline stage script: a required ``--NAME PATH`` for each folder or file it reads
    or writes (``paths`` maps NAME to its help). dvc.yaml's ``cmd`` gives them, so dvc.yaml alone shows each
    stage's data flow; ``ocrforge stage NAME`` runs the script with the same arguments."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, help_text in paths.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, required=True, metavar="PATH", help=help_text)
    return parser


def evaluation_parser(description: str, p: dict, **paths: str) -> argparse.ArgumentParser:
    """The command line of a stage that scores a test set (eval, benchmark): its ``paths`` (as
    :func:`stage_parser`), ``--input``, ``--limit`` and ``--case-insensitive``, their defaults from the stage's
    params section ``p``."""
    parser = stage_parser(description, **paths)
    parser.add_argument("--input", default=p.get("input") or "", help="a PPOCRLabel folder (default: the test split)")
    parser.add_argument("--limit", type=int, default=int(p.get("limit", 0)), help="the first N images (0: all)")
    parser.add_argument("--case-insensitive", action="store_true", default=not p.get("case_sensitive", True),
                        help="compare texts ignoring case")
    return parser
