"""An uploaded body as an image, or the 4xx that says why not (run in the OCR worker, before any model).

The checks go from cheap to costly: empty; the format and the size in the header (Pillow reads only the
header), so an image of too many pixels is refused before it is decoded; a full decode by Pillow, which
refuses truncated or corrupt data that OpenCV would silently fill with grey; then OpenCV's decode by
:func:`ocrforge.data.images.decode_image`, the one :func:`ocrforge.data.images.read_image` uses (alpha composited on
white), so the pixels, and so the result, equal ``OCR(...).ocr(path)`` on the same file.
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np

from ocrforge.data.images import ImageReadError, decode_image

# Pillow's names of the formats OpenCV's wheel decodes too.
FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "PPM")
FORMAT_LIST = "JPEG, PNG, BMP, TIFF or WebP"


class UploadError(ValueError):
    """A request the server refuses; ``status`` is its HTTP status (4xx), the message says what to send."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def decode_upload(data: bytes, max_pixels: int) -> np.ndarray:
    """The image in ``data`` (an encoded file) as HWC uint8 BGR, at most ``max_pixels`` pixels (width x height).

    Raises UploadError: 400 empty, 413 too many pixels, 422 not an image, a format OpenCV does not read, or
    truncated / corrupt data.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise UploadError(400, "the image is empty (0 bytes); send the bytes of an image file")
    kind = "uploaded"
    pillow_limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            # max_pixels replaces Pillow's own decompression-bomb limit (one worker decodes one image at a time)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = None
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
                kind = probe.format
                if width * height > max_pixels:
                    raise UploadError(413, f"the image is {width}x{height} = {width * height} pixels, over this "
                                           f"server's limit of {max_pixels} (--max-pixels); send a smaller image")
                if kind not in FORMATS:
                    raise UploadError(422, f"the image is {kind}, which this server does not read; send {FORMAT_LIST}")
                probe.load()
    except UploadError:
        raise
    except UnidentifiedImageError as exc:
        raise UploadError(422, f"the body is not an image ({len(data)} bytes that no image format recognises); "
                               f"send the file of a {FORMAT_LIST} image") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        raise UploadError(422, f"the {kind} image is truncated or corrupt ({exc}); send the whole file") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit
    try:
        return decode_image(np.frombuffer(data, dtype=np.uint8))
    except (ImageReadError, cv2.error) as exc:
        raise UploadError(422, f"OpenCV could not decode the {kind} image ({str(exc).strip().splitlines()[-1]}); "
                               f"send {FORMAT_LIST}") from None
