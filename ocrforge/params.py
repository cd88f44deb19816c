"""Read the pipeline's ``params.yaml`` (the hyperparameters DVC tracks)."""

from __future__ import annotations

from pathlib import Path

import yaml

DEFAULT_PARAMS = Path("params.yaml")


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict:
    """The parsed params file; a clear error if it is missing or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path.resolve()} not found; run the stages from the repository root")
    with open(path, encoding="utf-8") as fh:
        params = yaml.safe_load(fh)
    if not isinstance(params, dict):
        raise ValueError(f"{path} must hold a YAML mapping of sections (demo, split, ...)")
    return params


def section(params: dict, name: str) -> dict:
    """One section of the params, with an error that names it when it is absent."""
    if name not in params or not isinstance(params[name], dict):
        raise KeyError(f"params.yaml has no '{name}' section; restore it from the repository's params.yaml")
    return params[name]
