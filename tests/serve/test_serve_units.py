"""The server's pieces without a server: an upload's checks and decoding, the query parameters, the command."""

from __future__ import annotations

import io
import json
import zlib

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ocrforge.serve.images import UploadError, decode_upload


def _image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tiff", ".webp"])
def test_decode_upload_is_opencvs_decode(ext):
    data = cv2.imencode(ext, _image())[1].tobytes()
    decoded = decode_upload(data, max_pixels=40 * 60)
    assert np.array_equal(decoded, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))


def _raises(data: bytes, max_pixels: int = 10_000) -> UploadError:
    with pytest.raises(UploadError) as info:
        decode_upload(data, max_pixels)
    return info.value


def test_decode_upload_composites_alpha_as_read_image_does(tmp_path):
    from ocrforge.data.images import read_image

    rgba = np.dstack([_image(), np.tile(np.arange(60, dtype=np.uint8) * 4, (40, 1))])
    path = tmp_path / "alpha.png"
    path.write_bytes(cv2.imencode(".png", rgba)[1].tobytes())
    decoded = decode_upload(path.read_bytes(), max_pixels=40 * 60)
    assert decoded.shape == (40, 60, 3) and np.array_equal(decoded, read_image(path))
    assert not np.array_equal(decoded, cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR))


def test_decode_upload_refusals():
    png = cv2.imencode(".png", _image())[1].tobytes()
    error = _raises(b"")
    assert (error.status, str(error)) == (400, "the image is empty (0 bytes); send the bytes of an image file")
    error = _raises(png, max_pixels=40 * 60 - 1)
    assert (error.status, str(error)) == (413, "the image is 60x40 = 2400 pixels, over this server's limit of 2399 "
                                               "(--max-pixels); send a smaller image")
    error = _raises(b"GIF89a but not really")
    assert error.status == 422 and str(error).startswith("the body is not an image (21 bytes")
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    error = _raises(gif.getvalue())
    assert (error.status, str(error)) == (422, "the image is GIF, which this server does not read; send JPEG, PNG, "
                                               "BMP, TIFF or WebP")
    jpg = cv2.imencode(".jpg", _image())[1].tobytes()
    for kind, data in (("JPEG", jpg), ("PNG", png)):
        error = _raises(data[: len(data) // 2])
        assert error.status == 422 and str(error).startswith(f"the {kind} image is truncated or corrupt (")


def test_decode_upload_checks_pixels_before_decoding():
    # a PNG header that claims 100000 x 100000 pixels over a few bytes of data: refused from the header alone
    big = io.BytesIO()
    Image.new("L", (1, 1)).save(big, format="PNG")
    data = bytearray(big.getvalue())
    data[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR's width and height, then its checksum
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    error = _raises(bytes(data), max_pixels=50_000_000)
    assert (error.status, str(error)) == (413, "the image is 100000x100000 = 10000000000 pixels, over this server's "
                                               "limit of 50000000 (--max-pixels); send a smaller image")


def test_parse_thresholds():
    from ocrforge.serve.app import parse_thresholds

    assert parse_thresholds([("drop_score", "0.7"), ("det_db_unclip_ratio", "2")]) == {
        "drop_score": 0.7, "det_db_unclip_ratio": 2.0}
    with pytest.raises(UploadError, match=r"^query parameter drop_score='nan' must be a number from 0.0 to 1.0$"):
        parse_thresholds([("drop_score", "nan")])
    with pytest.raises(UploadError, match=r"^unknown query parameter 'x'"):
        parse_thresholds([("x", "1")])


def test_serve_without_an_export_is_exit_1(tmp_path):
    from ocrforge.cli import main

    result = CliRunner().invoke(main, ["serve", "--model-dir", str(tmp_path / "nothing")])
    assert result.exit_code == 1
    error = json.loads(result.output)
    assert error["success"] is False and "manifest.json not found" in error["error"]


def test_serve_backend_is_one_of_auto_onnx_paddle():
    from ocrforge.cli import main

    result = CliRunner().invoke(main, ["serve", "--backend", "tensorrt"])
    assert result.exit_code == 2
    assert "Invalid value for '--backend': 'tensorrt' is not one of 'auto', 'onnx', 'paddle'" in result.output


def test_loadtest_find_images_says_what_it_needs(tmp_path):
    from ocrforge.serve.loadtest import find_images

    with pytest.raises(FileNotFoundError, match="is neither a split folder"):
        find_images(tmp_path)


@pytest.mark.parametrize("target,variable,expected", [
    ("serve", "MODEL_DIR=my models/it's", ["ocrforge", "serve", "--model-dir", "my models/it's", "--host",
                                           "127.0.0.1", "--port", "8000", "--workers", "3"]),
    ("serve-bench", "BENCH_IMAGES=a b", ["python", "-m", "ocrforge.serve.loadtest", "--model-dir", "models/export",
                                         "--images", "a b", "--workers", "2", "--out", "reports/serve_bench"]),
])
def test_make_serve_passes_each_value_as_one_argument(repo_root, tmp_path, target, variable, expected):
    import shlex
    import shutil
    import subprocess

    shutil.copy(repo_root / "Makefile", tmp_path / "Makefile")
    done = subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", "-n", target, variable,
                           "WORKERS=3"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert shlex.split(done.stdout.replace("\\\n", " ")) == expected
