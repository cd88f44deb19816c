"""The worker pool behind the server, without HTTP: an image over the timeout is a 504 and its worker replaced,
a request that finds every worker busy for the timeout is a 503, and the replaced pool reads again."""

from __future__ import annotations

import asyncio
import time

import cv2
import numpy as np
import pytest

from serve_client import encode
from system.system_known import make_known_image

pytestmark = pytest.mark.slow


def test_overrun_is_504_busy_is_503_then_the_replacement_reads(exported_dir, reference_ocr, tmp_path):
    from ocrforge.serve.workers import WorkerError, WorkerPool

    tile = cv2.resize(make_known_image()[0], (600, 400))
    big = encode(np.vstack([np.hstack([tile] * 3)] * 3), ".jpg")  # 27 words: far over 50 ms of OCR
    known = tmp_path / "known.png"
    known.write_bytes(encode(make_known_image()[0], ".png"))
    pool = WorkerPool(exported_dir, workers=1, timeout=0.05)
    pool.start()
    first_pid = pool.describe()[0]["pid"]

    async def scenario():
        await pool.open()
        overrun, busy = await asyncio.gather(pool.read(big, {}), pool.read(big, {}), return_exceptions=True)
        assert isinstance(overrun, WorkerError) and overrun.status == 504
        assert str(overrun) == ("reading this image took over 0.05 s (--timeout); the worker was stopped and is "
                                "being replaced; send a smaller image")
        assert isinstance(busy, WorkerError) and busy.status == 503
        assert str(busy) == ("all 1 OCR workers stayed busy for 0.05 s; send the image again later, or start the "
                             "server with more --workers")
        assert pool.restarts == 1
        pool.timeout = 60.0
        deadline = time.monotonic() + 120
        while pool.ready < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert pool.ready == 1 and pool.describe()[0]["pid"] != first_pid
        return await pool.read(known.read_bytes(), {})

    try:
        answer = asyncio.run(scenario())
    finally:
        pool.close()
    assert answer == reference_ocr.ocr(known)
