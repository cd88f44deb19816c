"""Read many images at once: worker processes, each with its own exported system.

Paddle's predictors hold Python's GIL while they run, so threads cannot overlap two inferences, and on a
small CPU one inference does not keep every core busy (det+rec on this repo's 2-core machine: 1.25x faster
with 2 threads than with 1). ``OCRPool`` runs ``workers`` processes with ``threads`` math-library threads each
and hands them whole images; each image is read exactly as :class:`ocrforge.api.OCR` reads it, so the
results are the same, only more images are read per second. Latency of one image does not improve.

    with OCRPool("models/export", workers=2) as pool:
        results = pool.read_many(paths_or_arrays)   # list of OcrResult, in input order
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from ocrforge.system import OcrResult

_OCR = None  # the worker process's OCR, built once by _init_worker


def _init_worker(model_dir: str, threads: int, options: dict) -> None:
    global _OCR
    os.environ["OMP_NUM_THREADS"] = str(threads)
    from ocrforge.api import OCR

    _OCR = OCR(model_dir, threads=threads, **options)


def _read(image) -> OcrResult:
    return _OCR.read(image)


def _read_or_error(image) -> OcrResult | Exception:
    try:
        return _OCR.read(image)
    except Exception as exc:  # noqa: BLE001 - handed back to the caller, who decides
        return exc


def _detect(image: np.ndarray) -> list:
    return _OCR.system.detect(image)


def _recognize(crops: Sequence[np.ndarray]) -> list:
    return _OCR.system.recognize(crops, batch_size=len(crops))


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask), at least 1: the default number of workers."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class OCRPool:
    """``workers`` processes reading images with the export in ``model_dir`` (``threads`` each; the options
    are :class:`ocrforge.api.OCR`'s). Use as a context manager, or call :meth:`close`."""

    def __init__(self, model_dir: str | os.PathLike = "models/export", *, workers: int | None = None,
                 threads: int = 1, **options):
        from ocrforge.system import read_manifest

        read_manifest(model_dir)  # a missing export fails here, with the export's message, not in a worker
        self.workers = int(workers or usable_cores())
        if self.workers < 1 or threads < 1:
            raise ValueError(f"OCRPool needs workers >= 1 and threads >= 1; got {self.workers} and {threads}")
        self.threads = int(threads)
        # spawn, not fork: a forked paddle (its thread pools, oneDNN caches) is not safe to use. An executor,
        # not multiprocessing.Pool: a worker that cannot load the models breaks it with an error instead of
        # being restarted forever.
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init_worker,
                                         initargs=(str(Path(model_dir)), self.threads, options))
        try:  # every worker loads its predictors now, not in the first timed call
            list(self._pool.map(_read, [np.zeros((32, 32, 3), np.uint8)] * self.workers))
        except BrokenProcessPool as exc:
            self._pool.shutdown(cancel_futures=True)
            raise RuntimeError(f"the OCRPool workers could not load the models in {model_dir}; "
                               f"check it with OCR({str(model_dir)!r}) in one process for the error") from exc

    @property
    def pids(self) -> list[int]:
        return sorted(self._pool._processes)

    def read_many(self, images: Iterable[str | os.PathLike | np.ndarray]) -> list[OcrResult]:
        """The :class:`OcrResult` of each image (path or HWC uint8 BGR array), in input order. A path that is
        missing or cannot be decoded raises as :meth:`OCR.read` does."""
        return list(self.imap(images))

    def imap(self, images: Iterable[str | os.PathLike | np.ndarray],
             errors: str = "raise") -> Iterator[OcrResult | Exception]:
        """Like :meth:`read_many`, yielding each result as soon as it and those before it are read. With
        ``errors="return"`` an image that fails yields its exception instead, and the others go on."""
        if errors not in ("raise", "return"):
            raise ValueError(f"errors must be 'raise' or 'return', not {errors!r}")
        items = [image if isinstance(image, np.ndarray) else str(image) for image in images]
        return self._pool.map(_read if errors == "raise" else _read_or_error, items)

    def detect_many(self, images: Sequence[np.ndarray]) -> list[list]:
        """Boxes of each image, as :meth:`TextSystem.detect`."""
        return list(self._pool.map(_detect, images))

    def recognize(self, crops: Sequence[np.ndarray], batch_size: int) -> list[tuple[str, float]]:
        """``(text, score)`` of each crop; batches of ``batch_size`` crops are spread over the workers."""
        chunks = [list(crops[i:i + batch_size]) for i in range(0, len(crops), batch_size)]
        return [read for chunk in self._pool.map(_recognize, chunks) for read in chunk]

    def close(self) -> None:
        self._pool.shutdown()

    def __enter__(self) -> "OCRPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
