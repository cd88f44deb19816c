"""The OCR worker processes behind the server: each loads the export once, then reads whole images.

Paddle's predictors hold Python's GIL, so the server's own process only takes requests: it hands each upload
to an idle worker process over a pipe and waits for the answer in a thread, so the workers run side by side on
the cores and the event loop stays free. A request waits for an idle worker (at most ``timeout`` seconds, then
503); a worker that dies while reading (killed, out of memory, a crash in native code) or overruns
``timeout`` answers its request with a 500 or 504 and is replaced by a fresh process; the others go on.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

log = logging.getLogger("ocrforge.serve")

MAX_VARIANTS = 16  # threshold combinations each worker keeps built (they share its predictors)


class WorkerError(RuntimeError):
    """The server could not read an image for a reason of its own (not the request's): a 5xx ``status``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class _Died(Exception):
    pass


class _Overran(Exception):
    pass


def _worker_main(conn, model_dir: str, threads: int, options: dict) -> None:
    """A worker process: load the export, say ``("ready", pid)``, then answer each ``(bytes, max_pixels,
    overrides)`` with ``("ok", json)``, ``("bad", status, message)`` or ``("error", message)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, and the server stops its workers
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        from ocrforge.api import OCR
        from ocrforge.serve.images import UploadError, decode_upload
        from ocrforge.system import TextSystem

        ocr = OCR(model_dir, threads=threads, **options)
        ocr.read(np.zeros((32, 32, 3), np.uint8))  # the first inference is slow; not in a request
    except BaseException as exc:  # noqa: BLE001 - handed to the server, which reports it
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    variants: dict[tuple, TextSystem] = {}
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the server is gone
            return
        if job is None:
            return
        data, max_pixels, overrides = job
        try:
            image = decode_upload(data, max_pixels)
            if overrides:
                key = tuple(sorted(overrides.items()))
                if key not in variants:
                    if len(variants) >= MAX_VARIANTS:
                        variants.clear()
                    base = ocr.system
                    settings = base.settings.with_overrides(**overrides)
                    variants[key] = TextSystem(base.detector, base.recognizer, settings)
                reply = ("ok", variants[key](image).to_json())
            else:
                reply = ("ok", ocr.read(image).to_json())
        except UploadError as exc:
            reply = ("bad", exc.status, str(exc))
        except Exception as exc:  # noqa: BLE001 - one failing image must not stop the worker
            reply = ("error", f"{type(exc).__name__}: {exc}")
        conn.send(reply)


class _Worker:
    """The server's end of one worker process."""

    def __init__(self, ctx, args: tuple):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, *args), name="ocrforge-serve-worker", daemon=True)
        self.process.start()
        child.close()  # only the worker holds its end: its death reads as end-of-file here
        self.pid = self.process.pid
        self.state = "starting"
        self.served = 0

    def wait_ready(self, timeout: float) -> None:
        """Block until the worker has loaded the models; RuntimeError (worker stopped) if it cannot."""
        if not self.conn.poll(timeout):
            self.kill()
            raise RuntimeError(f"OCR worker {self.pid} did not load the models within {timeout:.0f} s")
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            self.kill()
            raise RuntimeError(f"OCR worker {self.pid} exited (code {self.process.exitcode}) while loading the models")
        if message[0] != "ready":
            self.kill()
            raise RuntimeError(f"OCR worker {self.pid} could not load the models: {message[1]}")
        self.state = "idle"

    def call(self, job: tuple, timeout: float) -> tuple:
        """Send one job and wait for its reply; _Died or _Overran (after ``timeout`` seconds) if none comes."""
        try:
            self.conn.send(job)
        except (OSError, ValueError) as exc:
            raise _Died() from exc
        if not self.conn.poll(timeout):
            raise _Overran()
        try:
            return self.conn.recv()
        except (EOFError, OSError) as exc:
            raise _Died() from exc

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(10)
        self.conn.close()
        self.state = "stopped"

    def stop(self) -> None:
        """Ask the worker to exit, then make sure it has."""
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.process.join(5)
        self.kill()


class WorkerPool:
    """``workers`` OCR processes on the export in ``model_dir`` (``threads`` math threads each; ``options``
    are :class:`ocrforge.api.OCR`'s thresholds). :meth:`start` loads them (blocking), :meth:`read` is awaited
    from the event loop."""

    def __init__(self, model_dir: str | os.PathLike, *, workers: int, threads: int = 1, timeout: float = 60.0,
                 max_pixels: int = 50_000_000, load_timeout: float = 300.0, **options):
        if workers < 1 or threads < 1:
            raise ValueError(f"WorkerPool needs workers >= 1 and threads >= 1; got {workers} and {threads}")
        self.model_dir = Path(model_dir)
        self.size = int(workers)
        self.timeout = float(timeout)
        self.max_pixels = int(max_pixels)
        self.load_timeout = float(load_timeout)
        self.restarts = 0
        # spawn, not fork: a forked paddle (its thread pools, oneDNN caches) is not safe to use
        self._ctx = multiprocessing.get_context("spawn")
        self._args = (str(self.model_dir), int(threads), {k: v for k, v in options.items() if v is not None})
        self._workers: list[_Worker] = []
        self._idle: asyncio.Queue | None = None
        self._threads = ThreadPoolExecutor(self.size + 2, thread_name_prefix="ocrforge-serve")
        self._tasks: set[asyncio.Task] = set()

    def start(self) -> None:
        """Start every worker and wait until each has loaded the models; RuntimeError (all stopped) if one cannot."""
        started = [_Worker(self._ctx, self._args) for _ in range(self.size)]
        try:
            for worker in started:
                worker.wait_ready(self.load_timeout)
        except BaseException:
            for worker in started:
                worker.kill()
            raise
        self._workers = started

    async def open(self) -> None:
        """Hand the started workers to the running event loop."""
        self._idle = asyncio.Queue()
        for worker in self._workers:
            self._idle.put_nowait(worker)

    def describe(self) -> list[dict]:
        """``{"pid", "state", "served"}`` of each worker; state is starting, idle, busy or dead."""
        return [{"pid": w.pid, "state": w.state if w.process.is_alive() else "dead", "served": w.served}
                for w in self._workers]

    @property
    def ready(self) -> int:
        return sum(w.state in ("idle", "busy") and w.process.is_alive() for w in self._workers)

    async def read(self, data: bytes, overrides: dict) -> dict:
        """The OCR JSON of the encoded image ``data``, with ``overrides`` of the thresholds.

        Raises UploadError (the image's fault, 4xx) or WorkerError (the server's, 5xx)."""
        from ocrforge.serve.images import UploadError

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            try:
                worker = await asyncio.wait_for(self._idle.get(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise WorkerError(503, f"all {self.size} OCR workers stayed busy for {self.timeout:g} s; send the "
                                       f"image again later, or start the server with more --workers") from None
            if worker.process.is_alive():
                break
            self._replace(worker, "died while idle")
        worker.state = "busy"
        future = loop.run_in_executor(self._threads, worker.call, (data, self.max_pixels, overrides), self.timeout)
        try:
            reply = await asyncio.shield(future)
        except asyncio.CancelledError:  # the request went away; the worker is put back once it has answered
            future.add_done_callback(lambda f: self._after_cancel(worker, f))
            raise
        except _Died:
            code = self._replace(worker, "died while reading an image")
            raise WorkerError(500, f"the OCR worker (pid {worker.pid}) died while reading this image (exit code "
                                   f"{code}); it is being replaced. If the image is what crashed it, sending it "
                                   f"again will fail again") from None
        except _Overran:
            self._replace(worker, f"overran --timeout {self.timeout:g} s")
            raise WorkerError(504, f"reading this image took over {self.timeout:g} s (--timeout); the worker "
                                   f"was stopped and is being replaced; send a smaller image") from None
        except Exception:  # the exchange itself broke: the worker's state is unknown, so it is not reused
            self._replace(worker, "failed to exchange a job")
            raise
        self._release(worker)
        if reply[0] == "ok":
            worker.served += 1
            return reply[1]
        if reply[0] == "bad":
            raise UploadError(reply[1], reply[2])
        raise WorkerError(500, f"OCR failed on this image: {reply[1]}")

    def _after_cancel(self, worker: _Worker, future) -> None:
        if future.cancelled():  # the server is shutting down
            return
        if future.exception() is None:
            self._release(worker)
        else:
            self._replace(worker, "failed after its request was cancelled")

    def _release(self, worker: _Worker) -> None:
        worker.state = "idle"
        self._idle.put_nowait(worker)

    def _replace(self, old: _Worker, reason: str) -> int | None:
        """Stop ``old``, start a new worker in its place (it joins the idle ones once loaded); ``old``'s exit code."""
        old.kill()
        self.restarts += 1
        log.error("OCR worker %s %s (exit code %s); starting another", old.pid, reason, old.process.exitcode)
        if old in self._workers:
            self._workers.remove(old)
        new = _Worker(self._ctx, self._args)
        self._workers.append(new)
        task = asyncio.get_running_loop().create_task(self._add_when_ready(new))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return old.process.exitcode

    async def _add_when_ready(self, worker: _Worker) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self._threads, worker.wait_ready, self.load_timeout)
        except RuntimeError as exc:
            log.error("%s; trying again in 10 s", exc)
            await asyncio.sleep(10)
            self._replace(worker, "could not load the models")
            return
        self._idle.put_nowait(worker)

    def close(self) -> None:
        """Stop every worker (and any being started)."""
        for task in list(self._tasks):
            task.cancel()
        for worker in self._workers:
            worker.stop()
        self._workers = []
        self._threads.shutdown(wait=False, cancel_futures=True)
