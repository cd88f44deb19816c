"""Shared fixtures: paths to the repository and to the real datasets in ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import ocrforge  # noqa: F401  (sets OMP_NUM_THREADS before anything imports paddle)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OCRFORGE_SHARED", REPO_ROOT.parent / "shared"))
SROIE = SHARED / "datasets" / "sroie100"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def sroie_dir() -> Path:
    """The real sroie100 dataset; CI always has it, elsewhere its absence skips the test."""
    if not (SROIE / "Label.txt").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{SROIE} is missing; CI must run with ../shared beside the clone")
        pytest.skip(f"{SROIE} not found (set OCRFORGE_SHARED to the shared folder)")
    return SROIE
