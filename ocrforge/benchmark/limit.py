"""How far each engine runs from this CPU's limit: model FLOPs per input against the matmul peak."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence


from ocrforge.benchmark.data import BenchmarkData


# each engine's det/rec ONNX pair and the detector's resize: ours (any runtime) read the export's; the
# off-the-shelf ones their wheel's, at their packages' own default resize (shorter side to 736)
OFF_THE_SHELF_RESIZE = {"limit_side_len": 736, "limit_type": "min"}


def _flops_models(name: str, export_dir: Path) -> tuple[str, dict, dict] | None:
    """``(model set, {"det": path, "rec": path}, resize)`` whose FLOPs engine ``name`` computes, or None."""
    if name in ("rapidocr", "rapidocr_v6"):
        from ocrforge.offtheshelf import ppocrv4_model_files, ppocrv6_model_files

        files = (ppocrv4_model_files if name == "rapidocr" else ppocrv6_model_files)()
        return ("ppocrv4" if name == "rapidocr" else "ppocrv6_small"), files, OFF_THE_SHELF_RESIZE
    from ocrforge.system import read_manifest

    manifest = read_manifest(export_dir)
    if not manifest.get("onnx"):
        return None
    settings = manifest["settings"]
    return ("export", {kind: export_dir / manifest["onnx"][kind] for kind in ("det", "rec")},
            {"limit_side_len": settings["det_limit_side_len"], "limit_type": settings["det_limit_type"]})


def distance_to_limit(export_dir: str | os.PathLike, engines: Sequence[str], speed: dict, data: BenchmarkData,
                      threads: int, peak: dict | None = None) -> dict:
    """FLOPs of each model set on ``data`` (detector per image at its resized shape, recogniser per crop at its
    own input width, :mod:`ocrforge.flops`), this CPU's float32 matmul peak at ``threads`` threads, and each
    engine's achieved GFLOP/s (median det images/s and batch-1 rec crops/s times the FLOPs) as a fraction of it.
    The pool's processes together run ``threads`` threads, as the other engines do."""
    from ocrforge.flops import distance_to_limit as limit_of, matmul_peak, model_flops

    export_dir = Path(export_dir)
    peak = peak or matmul_peak(threads)
    image_sizes = [image.shape[:2] for image in data.images]
    crop_sizes = [crop.shape[:2] for crop in data.crops]
    models, per_engine = {}, {}
    for name in engines:
        found = _flops_models(name, export_dir)
        if found is None:
            continue
        model_set, files, resize = found
        if model_set not in models:
            figures = model_flops(files["det"], files["rec"], image_sizes, crop_sizes, **resize)
            models[model_set] = {"det_gflops_per_image": round(figures["det"]["mean"] / 1e9, 3),
                                 "rec_gflops_per_crop": round(figures["rec"]["mean"] / 1e9, 3),
                                 "rec_gflops_48x320": round(figures["rec_48x320"] / 1e9, 3),
                                 "det_resize": resize, "_figures": figures}
        reached = limit_of(models[model_set]["_figures"], speed[name]["det_images_per_s"]["median"],
                           speed[name]["rec_crops_per_s_bs1"]["median"], peak["gflops"])
        per_engine[name] = {"models": model_set, **{
            kind: {"gflops": round(v["gflops"], 2), "fraction_of_peak": round(v["fraction_of_peak"], 4)}
            for kind, v in reached.items()}}
    for figures in models.values():
        del figures["_figures"]
    return {"matmul_peak": peak, "models": models, "engines": per_engine}
