"""Measuring engines: speed over interleaved passes, accuracy, memory (shared process and alone), read parity."""

from __future__ import annotations

import os
import threading
import time
from typing import Sequence

import numpy as np

from ocrforge.benchmark.data import BenchmarkData
from ocrforge.benchmark.engines import build_engine
from ocrforge.benchmark.settings import BenchmarkSettings


class PeakRSS:
    """Context manager sampling the RSS (psutil) of this process, plus the processes ``pids`` (an engine's
    workers), every ``interval`` s; ``peak_mb`` after exit."""

    def __init__(self, interval: float = 0.005, pids: Sequence[int] = ()):
        import psutil

        self._processes = [psutil.Process()] + [psutil.Process(pid) for pid in pids]
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0

    def rss(self) -> int:
        return sum(process.memory_info().rss for process in self._processes)

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self._stop.wait(self._interval)

    def __enter__(self):
        self.peak = self.rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def peak_mb(self) -> float:
        return round(self.peak / 2**20, 1)


def summarize(values: Sequence[float], higher_is_better: bool) -> dict:
    """``{"median", "p90"}`` of a list of figures; p90 is taken at the slow end (the 10th percentile of a rate)."""
    values = np.asarray(values, dtype=np.float64)
    tail = np.percentile(values, 10 if higher_is_better else 90)
    return {"median": round(float(np.median(values)), 3), "p90": round(float(tail), 3)}


def _timed_pass(engine, task: str, data: BenchmarkData, batch_size: int) -> tuple[float, list[float]]:
    """Seconds of one pass of ``task`` over the data, and per-image seconds where the task is per image."""
    per_item = []
    started = time.perf_counter()
    batch_call = {"det": "detect_all", "e2e": "read_all"}.get(task)
    if batch_call and hasattr(engine, batch_call):  # an engine reading many images at once (a process pool)
        getattr(engine, batch_call)(data.images)
        seconds = time.perf_counter() - started
        return seconds, [seconds / len(data.images)] * len(data.images)
    if task == "det":
        for image in data.images:
            t = time.perf_counter()
            engine.detect(image)
            per_item.append(time.perf_counter() - t)
    elif task == "e2e":
        for image in data.images:
            t = time.perf_counter()
            engine.read(image)
            per_item.append(time.perf_counter() - t)
    else:
        engine.recognize(data.crops, batch_size)
    return time.perf_counter() - started, per_item


def measure_speed(engines: dict, data: BenchmarkData, settings: BenchmarkSettings) -> tuple[dict, dict]:
    """Speed of every engine, passes interleaved engine by engine; also each engine's peak RSS while timed."""
    tasks = {"det_images_per_s": ("det", 1, len(data.images)),
             "rec_crops_per_s_bs1": ("rec", 1, len(data.crops)),
             "rec_crops_per_s_batch": ("rec", settings.rec_batch_size, len(data.crops)),
             "e2e_images_per_s": ("e2e", 1, len(data.images))}
    rates = {name: {key: [] for key in tasks} for name in engines}
    e2e_ms = {name: [] for name in engines}
    peaks = {name: 0 for name in engines}
    for key, (task, batch_size, count) in tasks.items():
        for name, engine in engines.items():
            for _ in range(settings.warmup):
                _timed_pass(engine, task, data, batch_size)
        for _ in range(settings.repeats):
            for name, engine in engines.items():
                with PeakRSS(pids=getattr(engine, "pids", ())) as memory:
                    seconds, per_item = _timed_pass(engine, task, data, batch_size)
                peaks[name] = max(peaks[name], memory.peak)
                rates[name][key].append(count / seconds)
                if task == "e2e":
                    e2e_ms[name].extend(1000.0 * s for s in per_item)
    speed = {}
    for name in engines:
        speed[name] = {key: summarize(values, higher_is_better=True) for key, values in rates[name].items()}
        speed[name]["e2e_ms_per_image"] = summarize(e2e_ms[name], higher_is_better=False)
    return speed, {name: round(peak / 2**20, 1) for name, peak in peaks.items()}


def measure_accuracy(engine, data: BenchmarkData, case_sensitive: bool = True) -> dict:
    """End-to-end line scores on the images and recognition accuracy on the ground-truth crops (each crop
    read alone), texts compared case-folded unless ``case_sensitive``."""
    from ocrforge.metrics import E2EMetric, RecMetric

    e2e = E2EMetric(case_sensitive=case_sensitive)
    for image, gts in zip(data.images, data.labels):
        preds = [{"points": box, "text": text} for box, text, _ in engine.read(image)]
        e2e([preds], [gts])
    rec = RecMetric(ignore_space=False, case_sensitive=case_sensitive)
    rec(([engine.recognize_one(crop) for crop in data.crops], [(text, 1.0) for text in data.crop_texts]))
    figures = {"e2e": {k: round(v, 4) for k, v in e2e.get_metric().items()}}
    figures["rec"] = {k: round(v, 4) for k, v in rec.get_metric().items()}
    return figures


def compare_engines(reference, candidate, data: BenchmarkData, box_tolerance_px: float = 1.0) -> dict:
    """Do two engines read the images alike (:func:`ocrforge.parity.compare_reads` of their ``read``): the same
    texts and boxes within ``box_tolerance_px``; scores are not compared (each engine computes its own)."""
    from ocrforge.parity import compare_reads

    return compare_reads(reference.read, candidate.read, data.images, data.names, box_tolerance_px=box_tolerance_px,
                         labels=(reference.name, candidate.name))


def _memory_probe(name: str, export_dir: str, settings: BenchmarkSettings, data: BenchmarkData, queue) -> None:
    with PeakRSS() as memory:
        baseline = memory.rss()
        engine = build_engine(name, export_dir, settings)
    # an engine's worker processes count too
    with PeakRSS(pids=getattr(engine, "pids", ())) as memory_all:
        loaded = memory_all.rss()
        if hasattr(engine, "read_all"):
            engine.read_all(data.images)
        else:
            for image in data.images:
                engine.read(image)
        engine.recognize(data.crops, settings.rec_batch_size)
    if hasattr(engine, "close"):
        engine.close()
    queue.put({"load_mb": round((loaded - baseline) / 2**20, 1),
               "peak_rss_mb": round(max(memory.peak, memory_all.peak) / 2**20, 1)})


def measure_memory_alone(name: str, export_dir: str | os.PathLike, settings: BenchmarkSettings,
                         data: BenchmarkData) -> dict:
    """One engine's memory in a fresh process (spawned): RSS growth when it loads and the peak RSS over loading,
    one end-to-end pass and one batched recognition pass (psutil, sampled every 5 ms; not ``ru_maxrss``, which
    Linux carries over from the parent through fork and exec)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_memory_probe, args=(name, str(export_dir), settings, data, queue))
    process.start()
    try:
        result = queue.get(timeout=600)
    finally:
        process.join(timeout=60)
    return result
