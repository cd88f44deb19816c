"""The paddle device and flags of this process: which device runs, and flags set for one block of work."""

from __future__ import annotations

import contextlib

import ocrforge  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
import paddle


def set_device(device: str | None) -> str:
    """Use ``device`` (cpu, gpu, gpu:0, auto); auto picks the GPU when paddle was built with CUDA and sees one."""
    device = (device or "auto").lower()
    if device == "auto":
        device = "gpu" if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0 else "cpu"
    if device.startswith("gpu") and not paddle.device.is_compiled_with_cuda():
        raise RuntimeError(
            "device: gpu was asked but this paddle has no CUDA; install paddlepaddle-gpu (make install GPU=1) "
            "or set device: cpu"
        )
    paddle.set_device(device)
    return device


@contextlib.contextmanager
def paddle_flags(flags: dict):
    """Set paddle ``flags`` inside the block and put their previous values back after it."""
    previous = paddle.get_flags(list(flags)) if flags else {}
    paddle.set_flags(flags)
    try:
        yield
    finally:
        if previous:
            paddle.set_flags(previous)
