"""Shared fixtures of the system tests: a trained system and images with known text (the trained-model
folders and their export are in tests/conftest.py, shared with the benchmark tests)."""

from __future__ import annotations


import numpy as np
import pytest


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
def trained_system(trained_models):
    from ocrforge.system import load_trained_system

    return load_trained_system(trained_models / "det", trained_models / "rec")
