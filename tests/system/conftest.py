"""Shared fixtures of the system tests: trained-model folders made from the shipped PP-OCRv4 weights, their
export, and images with known text."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

from system_known import make_known_image


@pytest.fixture(scope="session")
def known_image():
    return make_known_image()


@pytest.fixture(scope="session")
def demo_images() -> list[np.ndarray]:
    """Three small demo-like images (320x240) from the dataset generator."""
    from ocrforge.data.demo import DemoConfig, make_sample

    return [make_sample(np.random.default_rng(seed), DemoConfig(width=320, height=240))[0] for seed in range(3)]


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory) -> Path:
    """``models/det`` and ``models/rec`` as the train stages leave them (best_accuracy + config.yml), made
    from the shipped PP-OCRv4 weights."""
    import paddle

    from ocrforge.config import dump_config, load_config
    from ocrforge.training import _resolve_dict_paths, build_pretrained_model

    root = tmp_path_factory.mktemp("models")
    quiet = logging.getLogger("ocrforge.tests.quiet")
    quiet.setLevel(logging.ERROR)
    for kind in ("det", "rec"):
        config = load_config(REPO_ROOT / "configs" / kind / f"ppocrv4_{kind}.yml")
        if kind == "rec":
            _resolve_dict_paths(config)
        model = build_pretrained_model(config, logger=quiet)
        out = root / kind
        out.mkdir()
        paddle.save(model.state_dict(), str(out / "best_accuracy.pdparams"))
        config["Global"]["save_model_dir"] = str(out)
        dump_config(config, out / "config.yml")
    return root


@pytest.fixture(scope="session")
def trained_system(trained_models):
    from ocrforge.system import load_trained_system

    return load_trained_system(trained_models / "det", trained_models / "rec")


@pytest.fixture(scope="session")
def exported_dir(trained_models, tmp_path_factory) -> Path:
    """The export of ``trained_models`` (about 40 s on 2 cores)."""
    from ocrforge.export import export_system

    out = tmp_path_factory.mktemp("export") / "export"
    export_system(trained_models / "det", trained_models / "rec", out, params_file=REPO_ROOT / "params.yaml")
    return out
