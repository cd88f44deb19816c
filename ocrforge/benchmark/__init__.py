"""Benchmark the exported OCR system against PaddleOCR's own class and off-the-shelf PP-OCRv4 / PP-OCRv6 engines.

``run_benchmark(export_dir, data, settings)`` measures, on the same images and crops and in the same process,
these engines side by side:

- ``paddleocr``: PaddleOCR 2.10's ``PaddleOCR`` class running our export (``models/export/paddleocr/``) at the
  same thread count as ours (``enable_mkldnn=True, cpu_threads=threads``: the class sets its thread count only
  with oneDNN on): the reference every speed is divided by;
- ``paddleocr_default``: the same class as it comes (no thread or oneDNN argument: paddle inference's 1 thread);
- ``rapidocr``: ``rapidocr_onnxruntime``'s ``RapidOCR`` with its own PP-OCRv4 ONNX models (not ours);
- ``rapidocr_v6``: ``rapidocr`` 3.x's ``RapidOCR`` with the PP-OCRv6 small ONNX models its wheel ships;
- ``ocrforge``: ours, :class:`ocrforge.api.OCR` on ``models/export`` with its default backend (onnxruntime),
  one image at a time;
- ``ocrforge_paddle``: ours on the paddle inference backend;
- ``ocrforge_pool``: ours, :class:`ocrforge.pool.OCRPool`: one process per core (1 thread each) reading whole
  images side by side, the way to read a folder. Its ms/image is the pass time over the images (amortised, not
  one image's latency).

Speed (after ``warmup`` passes, ``repeats`` timed passes, engines interleaved pass by pass so background load
hits them alike): detection images/s, recognition crops/s at batch size 1 and ``rec_batch_size``, end-to-end
images/s and ms/image. Each figure is ``{"median", "p90"}``: for a rate, over the passes (p90 is the rate of
the 90th-percentile slowest pass); for ms/image, over every image of every pass. Accuracy: end-to-end line
precision/recall/hmean (:class:`~ocrforge.metrics.E2EMetric`) and recognition accuracy on the ground-truth
crops, each crop read alone through the engine's own single-crop call. Memory: resident set size (RSS, read
with psutil) of the process, sampled every 5 ms while an engine runs, and its growth when the engine loads;
plus the process peak (``ru_maxrss``). Models: parameter counts read from the saved ``inference.pdiparams``
and the exported files' sizes.

The package, by job: ``settings`` (engines, figures, :class:`BenchmarkSettings`), ``data`` (the test images and
crops), ``engines`` (one adapter per engine), ``measure`` (speed, accuracy, memory, read parity), ``limit``
(distance to the CPU's matmul peak), ``machine`` (CPU, versions, model sizes) and ``report`` (JSON, markdown);
:func:`run_benchmark` here puts them together.
"""

from __future__ import annotations

import gc
import json
import os
import resource
from dataclasses import asdict

import ocrforge  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from ocrforge.benchmark.data import BenchmarkData, load_benchmark_data
from ocrforge.benchmark.engines import (OcrforgeEngine, OcrforgePoolEngine, PaddleOCREngine, build_engine,
                                        equal_threads_args)
from ocrforge.benchmark.limit import distance_to_limit
from ocrforge.benchmark.machine import count_parameters, cpu_model, machine_info, model_figures
from ocrforge.benchmark.measure import (PeakRSS, compare_engines, measure_accuracy, measure_memory_alone,
                                        measure_speed, summarize)
from ocrforge.benchmark.report import benchmark_markdown, write_reports
from ocrforge.benchmark.settings import ENGINES, REFERENCE, SPEED_KEYS, BenchmarkSettings

__all__ = [
    "ENGINES", "REFERENCE", "SPEED_KEYS", "BenchmarkData", "BenchmarkSettings", "OcrforgeEngine", "OcrforgePoolEngine",
    "PaddleOCREngine", "PeakRSS", "benchmark_markdown", "build_engine", "compare_engines", "count_parameters", "cpu_model",
    "distance_to_limit", "equal_threads_args", "load_benchmark_data", "machine_info", "measure_accuracy",
    "measure_memory_alone", "measure_speed", "model_figures", "run_benchmark", "summarize", "write_reports",
]


def run_benchmark(export_dir: str | os.PathLike, data: BenchmarkData,
                  settings: BenchmarkSettings | None = None, logger=None) -> dict:
    """Load every engine, measure speed, accuracy and memory on ``data``; the report as a JSON-ready dict.

    ``speedup_vs_paddleocr`` divides each engine's median rate by the reference's (> 1: faster).
    """
    settings = settings or BenchmarkSettings()
    log = logger.info if logger is not None else (lambda *a: None)
    engines, memory = {}, {}
    for name in settings.engines:
        gc.collect()
        with PeakRSS() as load:
            before = load.rss()
            engines[name] = build_engine(name, export_dir, settings)
        after = PeakRSS(pids=getattr(engines[name], "pids", ())).rss()  # with the engine's worker processes
        memory[name] = {"load_mb": round((after - before) / 2**20, 1)}
        log("loaded %s: %s", name, engines[name].label)
    log("timing %d images and %d crops, %d warm-up + %d passes", len(data.images), len(data.crops),
        settings.warmup, settings.repeats)
    speed, peaks = measure_speed(engines, data, settings)
    report_engines = {}
    for name, engine in engines.items():
        accuracy = measure_accuracy(engine, data, settings.case_sensitive)
        memory[name]["shared_process_peak_rss_mb"] = peaks[name]
        if settings.memory_alone:
            memory[name]["alone"] = measure_memory_alone(name, export_dir, settings, data)
        report_engines[name] = {"label": engine.label, "speed": speed[name], "accuracy": accuracy,
                                "memory": memory[name]}
        log("%s: %s", name, json.dumps({"speed": speed[name], "accuracy": accuracy}))
    if REFERENCE in engines:
        ref = speed[REFERENCE]
        for name in engines:
            report_engines[name]["speedup_vs_paddleocr"] = {
                key: round(speed[name][key]["median"] / ref[key]["median"], 3) for key in SPEED_KEYS}
    report = {
        "machine": machine_info(),
        "data": {"source": data.source, "images": len(data.images), "crops": len(data.crops)},
        "settings": {**asdict(settings), "engines": list(settings.engines), "threads": settings.thread_count},
        "engines": report_engines,
        "models": model_figures(export_dir),
        "process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "memory_note": "alone: each engine in a fresh process, load_mb = RSS growth (psutil) when it was built, "
                       "peak_rss_mb = peak RSS (psutil, 5 ms) over loading, one end-to-end and one batched recognition pass; "
                       "shared_process_peak_rss_mb: RSS (psutil, sampled every 5 ms) while it was timed in the "
                       "shared process; process_peak_rss_mb: ru_maxrss of the shared process",
    }
    for name in ("ocrforge", "ocrforge_paddle", "ocrforge_pool"):
        if REFERENCE in engines and name in engines:
            report[f"{name}_vs_paddleocr_reads"] = compare_engines(engines[REFERENCE], engines[name], data)
    if settings.flops:
        report["limit"] = distance_to_limit(export_dir, list(engines), speed, data, settings.thread_count)
    for engine in engines.values():
        if hasattr(engine, "close"):
            engine.close()
    return report
