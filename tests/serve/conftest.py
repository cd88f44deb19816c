"""One real ``ocrforge serve`` for the serve tests: a subprocess on 127.0.0.1 and a free port, on the export
of the shipped PP-OCRv4 weights (``exported_dir``), with small limits so that the refusals are cheap to hit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from serve_client import MAX_BYTES, MAX_PIXELS, TIMEOUT, UPLOAD_TIMEOUT, WORKERS, Server, free_port, wait_until


@pytest.fixture(scope="session")
def server(exported_dir, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    command = [sys.executable, "-m", "ocrforge.cli", "serve", "--model-dir", str(exported_dir), "--port", str(port),
               "--workers", str(WORKERS), "--max-bytes", str(MAX_BYTES), "--max-pixels", str(MAX_PIXELS),
               "--timeout", str(TIMEOUT), "--upload-timeout", str(UPLOAD_TIMEOUT)]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    running = Server(process, port, log)

    def up():
        if process.poll() is not None:
            raise AssertionError(f"ocrforge serve exited with {process.returncode}:\n{running.log_tail()}")
        try:
            return running.request("GET", "/health", timeout=5)[0] == 200
        except OSError:
            return False

    try:
        wait_until(up, 300, "the server did not answer /health", running)
        workers = [w["pid"] for w in running.health()["workers"]["processes"]]
        yield running
        workers = [w["pid"] for w in running.health()["workers"]["processes"]]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    # uvicorn shuts down cleanly on SIGTERM, then ends by that signal again, as a well-behaved server does
    assert process.returncode in (0, -signal.SIGTERM), running.log_tail()
    assert "Application shutdown complete." in running.log_tail()
    for pid in workers:  # stopping the server stops its workers
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower(), \
            f"worker {pid} outlived the server"


@pytest.fixture(scope="session")
def reference_ocr(exported_dir):
    """The Python API on the same export: what the server's answers must equal."""
    from ocrforge import OCR

    return OCR(exported_dir)


@pytest.fixture(scope="session")
def demo_images() -> list:
    """Three small demo-like images (320x240, HWC uint8 BGR) from the dataset generator."""
    import numpy as np

    from ocrforge.data.demo import DemoConfig, make_sample

    return [make_sample(np.random.default_rng(seed), DemoConfig(width=320, height=240))[0] for seed in range(3)]
