"""Read the pipeline's ``params.yaml`` (the hyperparameters DVC tracks)."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_PARAMS = Path("params.yaml")


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict:
    """The parsed params file; a clear error if it is missing or not a mapping.

    Read as DVC reads and writes it (ruamel.yaml, YAML 1.2): `dvc exp run -S` rewrites params.yaml without the
    quotes YAML 1.1 needs, and PyYAML would then read ``ratio: 6:2:2`` as the base-60 integer 21722 and
    ``lr: 1e-4`` as a string, so a stage would run on other values than the ones DVC records.
    """
    from ruamel.yaml import YAML

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path.resolve()} not found; run the stages from the repository root")
    with open(path, encoding="utf-8") as fh:
        params = YAML(typ="safe", pure=True).load(fh)
    if not isinstance(params, dict):
        raise ValueError(f"{path} must hold a YAML mapping of sections (demo, split, ...)")
    return params


def section(params: dict, name: str) -> dict:
    """One section of the params, with an error that names it when it is absent."""
    if name not in params or not isinstance(params[name], dict):
        raise KeyError(f"params.yaml has no '{name}' section; restore it from the repository's params.yaml")
    return params[name]


def evaluation_parser(description: str, p: dict) -> argparse.ArgumentParser:
    """The command line of a stage that scores a test set (eval, benchmark): ``--input``, ``--limit`` and
    ``--case-insensitive``, their defaults from the stage's params section ``p``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", default=p.get("input") or "", help="a PPOCRLabel folder (default: the test split)")
    parser.add_argument("--limit", type=int, default=int(p.get("limit", 0)), help="the first N images (0: all)")
    parser.add_argument("--case-insensitive", action="store_true", default=not p.get("case_sensitive", True),
                        help="compare texts ignoring case")
    return parser
