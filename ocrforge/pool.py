"""Read many images at once: worker processes, each with its own exported system.

Paddle's predictors hold Python's GIL while they run, so threads cannot overlap two inferences, and on a
small CPU one inference does not keep every core busy (det+rec on this repo's 2-core machine: 1.25x faster
with 2 threads than with 1). ``OCRPool`` runs ``workers`` processes with ``threads`` math-library threads each
and hands them whole images; each image is read exactly as :class:`ocrforge.api.OCR` reads it, so the
results are the same, only more images are read per second. Latency of one image does not improve.

    with OCRPool("models/export", workers=2) as pool:
        results = pool.read_many(paths_or_arrays)   # list of OcrResult, in input order

The pool must be created under ``if __name__ == "__main__":`` in a script: its workers are spawned, and each
imports the script's main module again. A worker that dies while reading (killed, out of memory) costs no
results: the images it lost are read again on a fresh pool, one at a time, and an image that kills its worker
a second time gets a :class:`WorkerDiedError` as its result instead.
"""

from __future__ import annotations

import inspect
import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from ocrforge.system import OcrResult

_OCR = None  # the worker process's OCR, built once by _init_worker


class WorkerDiedError(RuntimeError):
    """An image whose worker process died while reading it, twice (the second time alone in the pool)."""


def _init_worker(model_dir: str, threads: int, options: dict) -> None:
    global _OCR
    os.environ["OMP_NUM_THREADS"] = str(threads)
    from ocrforge.api import OCR

    _OCR = OCR(model_dir, threads=threads, **options)
    # paddle's handler for SIGTERM prints a stack trace from inside the signal handler, which can hang a worker
    # whose other threads hold a lock; the executor stops the surviving workers of a broken pool with SIGTERM
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


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
        self.model_dir = Path(model_dir)
        self.options = options
        self.restarts = 0  # fresh pools started after a worker died
        self._seen: dict = {}  # pid -> worker process of the current executor, as last seen
        self._pool = self._start()
        try:  # every worker loads its predictors now, not in the first timed call
            list(self._pool.map(_read, [np.zeros((32, 32, 3), np.uint8)] * self.workers))
        except BrokenProcessPool as exc:
            self._discard()
            raise self._start_failure() from exc

    def _start(self) -> ProcessPoolExecutor:
        # spawn, not fork: a forked paddle (its thread pools, oneDNN caches) is not safe to use. An executor,
        # not multiprocessing.Pool: a worker that cannot load the models breaks it with an error instead of
        # being restarted forever.
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker,
                                   initargs=(str(self.model_dir), self.threads, self.options))

    def _start_failure(self) -> RuntimeError:
        """The error to raise when the workers died while starting: the models' own error if they fail to
        load here too, else the missing ``__main__`` guard when that is the cause, else a pointer to the
        workers' output."""
        from ocrforge.api import OCR

        try:
            OCR(self.model_dir, threads=1, **self.options)
        except Exception as exc:  # noqa: BLE001 - re-raised as the cause, with the folder named
            return RuntimeError(f"the OCRPool workers could not load the models in {self.model_dir}: "
                                f"{type(exc).__name__}: {exc}")
        if created_by_main_module():
            main_file = getattr(sys.modules["__main__"], "__file__", "your script")
            return RuntimeError(
                f"the OCRPool workers died while starting (the models in {self.model_dir} load fine in this "
                f"process). The pool is created while {main_file} runs its top-level code: each spawned "
                f"worker imports that file again and so tries to start a pool of its own, which Python refuses. "
                f"Create the pool under `if __name__ == \"__main__\":` (or in a function called from there)."
            )
        return RuntimeError(f"the OCRPool workers died while starting (the models in {self.model_dir} load fine "
                            f"in this process); their error output above says why")

    @property
    def pids(self) -> list[int]:
        return sorted(self._pool._processes)

    def read_many(self, images: Iterable[str | os.PathLike | np.ndarray]) -> list[OcrResult]:
        """The :class:`OcrResult` of each image (path or HWC uint8 BGR array), in input order. A path that is
        missing or cannot be decoded raises as :meth:`OCR.read` does; an image that killed its worker twice
        raises :class:`WorkerDiedError`."""
        return list(self.imap(images))

    def imap(self, images: Iterable[str | os.PathLike | np.ndarray],
             errors: str = "raise") -> Iterator[OcrResult | Exception]:
        """Like :meth:`read_many`, yielding each result as soon as it and those before it are read. With
        ``errors="return"`` an image that fails yields its exception instead, and the others go on.

        At most ``4 * workers`` images are in flight. When a worker dies, the images in flight are read
        again on a fresh pool, each alone; one that kills that worker too fails with :class:`WorkerDiedError`.
        """
        if errors not in ("raise", "return"):
            raise ValueError(f"errors must be 'raise' or 'return', not {errors!r}")
        items = [image if isinstance(image, np.ndarray) else str(image) for image in images]
        return self._results(items, _read if errors == "raise" else _read_or_error, errors == "raise")

    def _results(self, items: list, read, raise_errors: bool) -> Iterator[OcrResult | Exception]:
        window = 4 * self.workers  # enough queued work that no worker waits on the order results are yielded in
        pending: dict[int, Future] = {}
        done: dict[int, OcrResult | Exception] = {}
        submitted = 0
        for i in range(len(items)):
            while submitted < len(items) and len(pending) < window:
                pending[submitted] = self._submit(read, items[submitted])
                submitted += 1
            if i not in done:
                try:
                    done[i] = pending.pop(i).result()
                except BrokenProcessPool:
                    died = self._dead_workers()
                    lost = [j for j, f in pending.items() if isinstance(f.exception(), BrokenProcessPool)]
                    pending = {j: f for j, f in pending.items() if j not in lost}
                    for j, f in pending.items():  # finished before the worker died
                        done[j] = f.exception() or f.result()
                    pending.clear()
                    self._restart()
                    for j in [i, *lost]:
                        done[j] = self._read_alone(read, items[j], died)
            result = done.pop(i)
            if raise_errors and isinstance(result, Exception):
                raise result
            yield result

    def _submit(self, read, item) -> Future:
        try:
            future = self._pool.submit(read, item)
        except BrokenProcessPool:  # a worker died while the pool was idle
            self._restart()
            future = self._pool.submit(read, item)
        # the executor forgets its dead workers when it breaks; keep them to say how they ended
        self._seen.update((getattr(self._pool, "_processes", None) or {}).items())
        return future

    def _read_alone(self, read, item, died_before: str) -> OcrResult | Exception:
        """Read one image that was in flight when a worker died, alone on the pool, so that a second death is
        its own doing."""
        try:
            return self._submit(read, item).result()
        except BrokenProcessPool:
            died = self._dead_workers()
            self._restart()
            name = f"image {item}" if isinstance(item, str) else f"an array image {getattr(item, 'shape', '')}"
            return WorkerDiedError(f"{name} was not read: the worker process reading it died twice ({died_before}; "
                                   f"then alone: {died}); out of memory, or something in the image crashes the "
                                   f"decoder or the models")
        except Exception as exc:  # noqa: BLE001 - raised (errors="raise") when its turn comes, in input order
            return exc

    def _dead_workers(self, wait_s: float = 2.0) -> str:
        """How the pool's dead workers ended, e.g. ``killed by SIGKILL`` (not those the executor itself then
        terminated with SIGTERM, unless nothing else is known).

        The executor's own thread reaps its workers too. When it wins, our ``waitpid`` finds no child and
        ``exitcode`` stays None until that thread has stored the status, so this waits (``wait_s`` at most,
        in all) for each exit status rather than reading it once."""
        processes = list({**self._seen, **(getattr(self._pool, "_processes", None) or {})}.values())
        deadline = time.monotonic() + wait_s
        for process in processes:
            while process.exitcode is None and time.monotonic() < deadline:
                process.join(timeout=0.05)
                time.sleep(0.005)  # join returns at once for a child already reaped: let the other thread run
        codes = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
        codes = [c for c in codes if c != -signal.SIGTERM] or codes
        ends = []
        for code in codes:
            if code < 0:
                try:
                    ends.append(f"killed by {signal.Signals(-code).name}")
                except ValueError:
                    ends.append(f"killed by signal {-code}")
            else:
                ends.append(f"exit code {code}")
        return ", ".join(ends) or "a worker died"

    def _discard(self) -> None:
        """Shut a broken executor down, killing its surviving workers first. The executor itself would stop
        them with SIGTERM and wait for them; a worker still loading its models has paddle's SIGTERM handler,
        which prints a stack trace from inside the signal handler and can hang, and the wait with it.
        SIGKILL cannot be caught."""
        for process in list((getattr(self._pool, "_processes", None) or {}).values()):
            if process.is_alive():
                process.kill()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _restart(self) -> None:
        """Replace a broken executor with a fresh one (its workers load the models on their first image)."""
        self._discard()
        self._seen = {}
        self._pool = self._start()
        self.restarts += 1

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


def created_by_main_module() -> bool:
    """Whether the caller runs in the top-level code of a ``__main__`` module that spawned workers import
    again (a script file, or ``python -m module``): there an unguarded pool makes every worker start one."""
    main = sys.modules.get("__main__")
    if main is None or not getattr(main, "__file__", None):
        return False  # an interactive session or python -c: spawned workers do not re-run it
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals is vars(main):
            return True
        frame = frame.f_back
    return False
