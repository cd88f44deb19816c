"""Shared fixtures: paths to the repository and to the real datasets in ../shared."""

from __future__ import annotations

import logging
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


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory) -> Path:
    """``models/det`` and ``models/rec`` as the train stages leave them (best_accuracy + config.yml), made
    from the shipped PP-OCRv4 weights."""
    import paddle

    from ocrforge.config import dump_config, load_config
    from ocrforge.config import resolve_dict_paths
    from ocrforge.models.build import build_pretrained_model

    root = tmp_path_factory.mktemp("models")
    quiet = logging.getLogger("ocrforge.tests.quiet")
    quiet.setLevel(logging.ERROR)
    for kind in ("det", "rec"):
        config = load_config(REPO_ROOT / "configs" / kind / f"ppocrv4_{kind}.yml")
        if kind == "rec":
            resolve_dict_paths(config)
        model = build_pretrained_model(config, logger=quiet)
        out = root / kind
        out.mkdir()
        paddle.save(model.state_dict(), str(out / "best_accuracy.pdparams"))
        config["Global"]["save_model_dir"] = str(out)
        dump_config(config, out / "config.yml")
    return root


@pytest.fixture(scope="session")
def exported_dir(trained_models, tmp_path_factory) -> Path:
    """The export of ``trained_models`` (about 40 s on 2 cores)."""
    from ocrforge.export import export_system

    out = tmp_path_factory.mktemp("export") / "export"
    export_system(trained_models / "det", trained_models / "rec", out, params_file=REPO_ROOT / "params.yaml")
    return out


@pytest.fixture
def install_plugin(tmp_path, monkeypatch):
    """``install_plugin(module, source)``: a third-party package declaring ``module`` under the
    ``ocrforge.plugins`` entry-point group, importable for this test, with the plugins not yet loaded."""
    import textwrap

    from ocrforge import registry

    def install(module: str, source: str, entry_name: str = "acme") -> None:
        root = tmp_path / f"plugin_{module}"
        root.mkdir()
        (root / f"{module}.py").write_text(textwrap.dedent(source))
        dist = root / f"{module}-0.1.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text(f"[ocrforge.plugins]\n{entry_name} = {module}\n")
        monkeypatch.syspath_prepend(str(root))
        monkeypatch.setattr(registry, "_plugins_loaded", False)

    return install


def _cuda_device_count() -> int:
    import paddle

    return paddle.device.cuda.device_count() if paddle.is_compiled_with_cuda() else 0


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` run where paddle sees a CUDA device (paddlepaddle-gpu, `make install GPU=1`), and are
    skipped elsewhere with the reason; ``gpu(2)`` asks for two devices."""
    marked = [item for item in items if item.get_closest_marker("gpu")]
    if not marked:
        return
    devices = _cuda_device_count()
    for item in marked:
        needed = (item.get_closest_marker("gpu").args or (1,))[0]
        if devices < needed:
            item.add_marker(pytest.mark.skip(reason=f"needs {needed} CUDA device(s); paddle sees {devices}"))
