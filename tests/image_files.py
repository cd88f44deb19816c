"""Real image files that break naive readers, built in the tests: a PNG declaring a huge size, ink on alpha."""

import struct
import zlib

import numpy as np


def png_with_header(width: int, height: int) -> bytes:
    """A real PNG file (valid signature, IHDR and CRCs) declaring ``width`` x ``height`` 1-bit grey pixels,
    with the pixel data of its first rows only: what a decoder sees first is the header's size."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = (b"\x00" + b"\xff" * ((width + 7) // 8)) * 4
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def transparent_text(gray: np.ndarray) -> np.ndarray:
    """Black ink on a transparent background (BGRA): the ink's darkness as alpha, every colour 0."""
    bgra = np.zeros((*gray.shape, 4), np.uint8)
    bgra[..., 3] = 255 - gray
    return bgra
