"""The machine and the models a benchmark ran on: CPU, versions, parameter counts, file sizes."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ocrforge.pool import usable_cores

BN_STATISTICS = ("_mean", "_variance")  # BatchNorm running statistics: saved, but not trained parameters


def count_parameters(infer_dir: str | os.PathLike) -> dict:
    """Sizes of the tensors saved in an old-format inference folder (``inference.pdmodel`` + ``.pdiparams``):
    ``parameters`` (all of them, as paddle's ``model.parameters()`` counts them: BatchNorm running statistics
    included), of which ``bn_statistics`` (running mean/variance), and ``tensors``. Branches used only in
    training (DB threshold map, the GTC/NRTR head) are not in an inference model, so not counted."""
    from ocrforge.models.pretrained import read_inference_params

    arrays = read_inference_params(infer_dir)
    stats = sum(a.size for name, a in arrays.items() if name.endswith(BN_STATISTICS))
    return {"parameters": int(sum(a.size for a in arrays.values())), "bn_statistics": int(stats),
            "tensors": len(arrays)}


def model_figures(export_dir: str | os.PathLike) -> dict:
    """Per model (det, rec): parameter counts from the saved weights and the exported files' sizes in bytes."""
    from ocrforge.export import PADDLEOCR_DIR

    export_dir = Path(export_dir)
    figures = {}
    for kind in ("det", "rec"):
        files = {str(p.relative_to(export_dir)): p.stat().st_size
                 for folder in (export_dir / kind, export_dir / PADDLEOCR_DIR / kind) if folder.is_dir()
                 for p in sorted(folder.iterdir()) if p.is_file()}
        params_file = export_dir / kind / "inference.pdiparams"
        figures[kind] = {**count_parameters(export_dir / PADDLEOCR_DIR / kind),
                         "params_file_mb": round(params_file.stat().st_size / 2**20, 2), "files": files}
    return figures


def package_version(package: str) -> str | None:
    """The installed version of ``package``, or None when it is not installed."""
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "paddlepaddle": package_version("paddlepaddle"),
        "paddleocr": package_version("paddleocr"),
        "onnxruntime": package_version("onnxruntime"),
        "rapidocr_onnxruntime": package_version("rapidocr_onnxruntime"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }
