"""``ocrforge serve`` over real HTTP: the answers equal the Python API's, every bad input gets its 4xx JSON, a
killed worker is replaced and its request answered, concurrent requests use every worker."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

import ocrforge
from serve_client import MAX_BYTES, MAX_PIXELS, TIMEOUT, UPLOAD_TIMEOUT, WORKERS, encode, multipart, wait_until
from system.system_known import KNOWN_FULL_TEXT, make_known_image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def known(tmp_path_factory) -> dict:
    """The known image as PNG and JPEG files: ``{ext: (path, bytes)}``."""
    image = make_known_image()[0]
    folder = tmp_path_factory.mktemp("known")
    files = {}
    for ext in (".png", ".jpg"):
        path = folder / f"known{ext}"
        path.write_bytes(encode(image, ext))
        files[ext] = (path, path.read_bytes())
    # black text on transparent black: readable only once composited on white, as read_image does
    ink = 255 - cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    rgba = np.dstack([np.zeros_like(image), ink])
    path = folder / "known_alpha.png"
    path.write_bytes(encode(rgba, ".png"))
    files[".rgba.png"] = (path, path.read_bytes())
    return files


@pytest.fixture(scope="module")
def big_image(tmp_path_factory):
    """A 1800x1200 JPEG of 3x3 known images (27 words): about a second of OCR in one worker."""
    tile = cv2.resize(make_known_image()[0], (600, 400))
    path = tmp_path_factory.mktemp("big") / "big.jpg"
    path.write_bytes(encode(np.vstack([np.hstack([tile] * 3)] * 3), ".jpg"))
    return path


def test_health_reports_the_models_versions_and_manifest(server, exported_dir):
    health = server.health()
    assert health["success"] is True and health["status"] == "ok" and health["models_loaded"] is True
    assert health["backend"] == "onnx"  # the default where the export has ONNX models
    assert health["workers"]["wanted"] == WORKERS and health["workers"]["ready"] == WORKERS
    assert len(health["workers"]["processes"]) == WORKERS
    assert health["manifest_sha256"] == hashlib.sha256((exported_dir / "manifest.json").read_bytes()).hexdigest()
    manifest = json.loads((exported_dir / "manifest.json").read_text())
    assert health["export"] == {"format": manifest["format"], "versions": manifest["versions"],
                                "params_sha256": manifest["params_sha256"]}
    assert health["settings"] == {k: manifest["settings"][k] for k in
                                  ("det_db_thresh", "det_db_box_thresh", "det_db_unclip_ratio", "drop_score")}
    assert health["limits"] == {"max_bytes": MAX_BYTES, "max_pixels": MAX_PIXELS, "timeout_s": TIMEOUT,
                                "upload_timeout_s": UPLOAD_TIMEOUT}
    assert health["versions"]["ocrforge"] == ocrforge.__version__
    assert health["versions"]["paddlepaddle"] == importlib.metadata.version("paddlepaddle")
    assert health["versions"]["fastapi"] == importlib.metadata.version("fastapi")


@pytest.mark.parametrize("ext,content_type", [(".png", "image/png"), (".jpg", "image/jpeg"),
                                              (".png", "application/octet-stream"), (".jpg", None),
                                              (".rgba.png", "image/png")])
def test_raw_body_answer_equals_the_api(server, reference_ocr, known, ext, content_type):
    path, data = known[ext]
    status, answer = server.post(data, content_type)
    assert status == 200
    assert answer == reference_ocr.ocr(path)
    assert answer["full_text"] == KNOWN_FULL_TEXT


def test_multipart_answer_equals_the_api(server, reference_ocr, known):
    path, data = known[".jpg"]
    body, content_type = multipart(data, "label.jpg", content_type="image/jpeg")
    status, answer = server.post(body, content_type)
    assert status == 200 and answer == reference_ocr.ocr(path)


def test_a_demo_image_answer_equals_the_api(server, reference_ocr, demo_images, tmp_path):
    path = tmp_path / "demo.jpg"
    path.write_bytes(encode(demo_images[0], ".jpg"))
    status, answer = server.post(path.read_bytes(), "image/jpeg")
    assert status == 200 and answer == reference_ocr.ocr(path) and answer["lines"]


def test_thresholds_as_query_parameters(server, exported_dir, reference_ocr, known):
    from ocrforge import OCR

    path, data = known[".png"]
    status, answer = server.post(data, "image/png", "?det_db_unclip_ratio=2.5&drop_score=0.6")
    assert status == 200
    assert answer == OCR(exported_dir, det_db_unclip_ratio=2.5, drop_score=0.6).ocr(path)
    assert answer["lines"] != reference_ocr.ocr(path)["lines"]  # the boxes grew: the parameters were applied


def _png(width: int, height: int) -> bytes:
    return encode(np.full((height, width, 3), 255, np.uint8), ".png")


def _gif() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (20, 20), "white").save(out, format="GIF")
    return out.getvalue()


def _bad_cases(known_png: bytes, known_jpg: bytes) -> dict:
    """name -> (body, content type, query, status, exact error or (prefix, suffix))."""
    form, boundary_type = multipart(known_png)
    form_cut = form[: form.rindex(b"\r\n--")]
    form_without_file = (b"--b\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--b--\r\n",
                         "multipart/form-data; boundary=b")
    too_big = np.random.default_rng(0).integers(0, 256, MAX_BYTES + 1, dtype=np.uint8).tobytes()
    return {
        "not an image": (b"this is not an image", "image/jpeg", "", 422,
                         "the body is not an image (20 bytes that no image format recognises); send the file "
                         "of a JPEG, PNG, BMP, TIFF or WebP image"),
        "zero bytes": (b"", "image/png", "", 400, "the image is empty (0 bytes); send the bytes of an image file"),
        "too many bytes": (too_big, "image/jpeg", "", 413,
                           f"the body is {MAX_BYTES + 1} bytes, over this server's limit of {MAX_BYTES} bytes "
                           f"(--max-bytes); send a smaller image"),
        "too many pixels": (_png(2001, 2000), "image/png", "", 413,
                            f"the image is 2001x2000 = 4002000 pixels, over this server's limit of {MAX_PIXELS} "
                            f"(--max-pixels); send a smaller image"),
        "wrong content type": (known_png, "text/plain", "", 415,
                               "Content-Type 'text/plain' is not an image; send the image as the body with "
                               "Content-Type image/jpeg (or image/png, application/octet-stream ...), or as a "
                               "multipart/form-data file (curl -F file=@photo.jpg)"),
        "curl's default form type": (known_png, "application/x-www-form-urlencoded", "", 415,
                                     ("Content-Type 'application/x-www-form-urlencoded' is not an image;", "")),
        "truncated JPEG": (known_jpg[: len(known_jpg) // 2], "image/jpeg", "", 422,
                           ("the JPEG image is truncated or corrupt (", "); send the whole file")),
        "truncated PNG": (known_png[: len(known_png) // 2], "image/png", "", 422,
                          ("the PNG image is truncated or corrupt (", "); send the whole file")),
        "GIF": (_gif(), "image/gif", "", 422,
                "the image is GIF, which this server does not read; send JPEG, PNG, BMP, TIFF or WebP"),
        "form cut short": (form_cut, boundary_type, "", 400,
                           "the multipart/form-data body ends before its closing boundary (the upload was cut "
                           "short); send the whole form"),
        "form without a file": (*form_without_file, "", 400,
                                "the multipart/form-data body holds no file; send the image as a file field named "
                                "file (curl -F file=@photo.jpg)"),
        "form without boundary": (known_png, "multipart/form-data", "", 400,
                                  "the multipart/form-data body has no boundary in its Content-Type; let the client "
                                  "library build the form (curl -F file=@photo.jpg)"),
        "unknown query parameter": (known_png, "image/png", "?det_db_tresh=0.3", 400,
                                    "unknown query parameter 'det_db_tresh'; the known ones are det_db_thresh, "
                                    "det_db_box_thresh, det_db_unclip_ratio, drop_score"),
        "threshold not a number": (known_png, "image/png", "?drop_score=high", 400,
                                   "query parameter drop_score='high' must be a number from 0.0 to 1.0"),
        "threshold out of range": (known_png, "image/png", "?det_db_thresh=1.5", 400,
                                   "query parameter det_db_thresh='1.5' must be a number from 0.0 to 1.0"),
    }


BAD_CASES = list(_bad_cases(b"", b""))


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_gets_its_4xx_json(server, known, case):
    body, content_type, query, status, error = _bad_cases(known[".png"][1], known[".jpg"][1])[case]
    got_status, answer = server.post(body, content_type, query)
    assert got_status == status and answer["success"] is False and list(answer) == ["success", "error"]
    if isinstance(error, tuple):
        assert answer["error"].startswith(error[0]) and answer["error"].endswith(error[1]), answer["error"]
    else:
        assert answer["error"] == error


def test_bad_inputs_cost_no_worker(server, known):
    before = server.health()["workers"]
    for body, content_type, query, status, _ in _bad_cases(known[".png"][1], known[".jpg"][1]).values():
        assert server.post(body, content_type, query)[0] == status
    after = server.health()["workers"]
    assert after["restarts"] == before["restarts"] and after["ready"] == WORKERS
    assert [w["pid"] for w in after["processes"]] == [w["pid"] for w in before["processes"]]


def test_chunked_body_over_the_limit_is_413(server):
    chunks = (bytes(100_000) for _ in range(MAX_BYTES // 100_000 + 1))  # no Content-Length: counted as it comes
    status, _, data = server.request("POST", "/ocr", chunks, {"Content-Type": "image/jpeg"})  # sent chunked
    assert status == 413
    assert json.loads(data) == {"success": False, "error": f"the body is over this server's limit of {MAX_BYTES} "
                                                           f"bytes (--max-bytes); send a smaller image"}


def _raw_upload(server, announced: int, sent: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=UPLOAD_TIMEOUT + 30)
    sock.sendall(b"POST /ocr HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                 b"Content-Length: %d\r\n\r\n" % announced + sent)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_stalled_upload_gets_408(server, known):
    data = known[".jpg"][1]
    sock = _raw_upload(server, len(data), data[:1000])  # less than announced, then nothing
    started = time.monotonic()
    with sock:
        response = _read_all(sock)
    assert time.monotonic() - started >= UPLOAD_TIMEOUT - 0.5
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert json.loads(body) == {"success": False, "error": f"the upload stalled: 1000 bytes of the {len(data)} "
                                                           f"announced arrived in {UPLOAD_TIMEOUT:g} s "
                                                           f"(--upload-timeout); send the whole file"}


def test_client_hanging_up_mid_upload_leaves_the_server_serving(server, known, reference_ocr):
    path, data = known[".jpg"]
    before = server.health()["workers"]
    sock = _raw_upload(server, len(data), data[:1000])
    sock.shutdown(socket.SHUT_WR)  # the client is gone: no answer can reach it, the connection just closes
    with sock:
        assert _read_all(sock) == b""
    after = server.health()["workers"]
    assert [w["served"] for w in after["processes"]] == [w["served"] for w in before["processes"]]
    assert server.post(data, "image/jpeg") == (200, reference_ocr.ocr(path))


def test_concurrent_requests_are_spread_over_every_worker(server, reference_ocr, known, demo_images, tmp_path):
    paths = [known[".png"][0], known[".jpg"][0]]
    for i, image in enumerate(demo_images):
        paths.append(tmp_path / f"demo{i}.png")
        paths[-1].write_bytes(encode(image, ".png"))
    expected = [reference_ocr.ocr(p) for p in paths]
    before = {w["pid"]: w["served"] for w in server.health()["workers"]["processes"]}
    with ThreadPoolExecutor(len(paths)) as clients:
        answers = list(clients.map(lambda p: server.post(p.read_bytes(), "image/png"), paths))
    assert answers == [(200, e) for e in expected]
    after = {w["pid"]: w["served"] for w in server.health()["workers"]["processes"]}
    assert sorted(after) == sorted(before)
    assert sum(after.values()) - sum(before.values()) == len(paths)
    assert all(after[pid] > before[pid] for pid in after), (before, after)


def test_killed_worker_is_replaced_and_its_request_answered(server, big_image, reference_ocr, known):
    before = server.health()["workers"]
    answer = {}
    request = threading.Thread(target=lambda: answer.update(reply=server.post(big_image.read_bytes(), "image/jpeg")))
    request.start()

    def busy_pid():
        return next((w["pid"] for w in server.health()["workers"]["processes"] if w["state"] == "busy"), None)

    pid = wait_until(busy_pid, 30, "no worker became busy", server)
    os.kill(pid, signal.SIGKILL)
    request.join(TIMEOUT)
    assert not request.is_alive(), "the request whose worker was killed hung"
    status, body = answer["reply"]
    assert status == 500 and body == {
        "success": False,
        "error": f"the OCR worker (pid {pid}) died while reading this image (exit code -9); it is being replaced. "
                 f"If the image is what crashed it, sending it again will fail again"}

    def replaced():
        workers = server.health()["workers"]
        return workers if workers["ready"] == WORKERS else None

    workers = wait_until(replaced, 120, "the killed worker was not replaced", server)
    pids = [w["pid"] for w in workers["processes"]]
    assert workers["restarts"] == before["restarts"] + 1 and pid not in pids and len(pids) == WORKERS
    path, data = known[".png"]
    assert server.post(data, "image/png") == (200, reference_ocr.ocr(path))


def test_unknown_endpoint_and_method_are_json(server):
    status, _, data = server.request("GET", "/nope")
    assert status == 404 and json.loads(data) == {
        "success": False, "error": "no such endpoint '/nope'; this server has POST /ocr, GET /health and GET /"}
    status, _, data = server.request("GET", "/ocr")
    assert status == 405 and json.loads(data) == {
        "success": False, "error": "GET is not allowed on /ocr; see GET / for how to call this server"}


def test_page_is_self_contained(server):
    status, headers, data = server.request("GET", "/")
    page = data.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert 'id="result"' in page and 'id="file"' in page and 'id="canvas"' in page
    assert "://" not in page  # nothing loaded from elsewhere: the network may be closed
    assert "default-src 'none'" in headers["content-security-policy"]
