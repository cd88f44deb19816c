"""The serve tests' client side: the test server's limits, an http.client wrapper, form and image builders."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import time
import uuid
from pathlib import Path

import cv2
import numpy as np

# The limits the test server runs with (the `server` fixture in conftest.py passes them).
WORKERS = 2
MAX_BYTES = 1_000_000
MAX_PIXELS = 4_000_000
TIMEOUT = 30.0
UPLOAD_TIMEOUT = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A running ``ocrforge serve`` and a small HTTP client for it (http.client, one connection a request)."""

    def __init__(self, process: subprocess.Popen, port: int, log: Path):
        self.process, self.port, self.log = process, port, log
        self.url = f"http://127.0.0.1:{port}"

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 120.0) -> tuple[int, dict, bytes]:
        """``(status, headers with lower-case names, body)``."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def post(self, body: bytes, content_type: str | None = "image/png", query: str = "") -> tuple[int, dict]:
        """POST /ocr with ``body``; ``(status, JSON answer)``."""
        headers = {"Content-Type": content_type} if content_type else {}
        status, _, data = self.request("POST", "/ocr" + query, body, headers)
        return status, json.loads(data)

    def health(self) -> dict:
        return json.loads(self.request("GET", "/health")[2])

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def multipart(data: bytes, filename: str = "image.png", field: str = "file",
              content_type: str = "image/png") -> tuple[bytes, str]:
    """A multipart/form-data body holding one file; ``(body, Content-Type)``."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def encode(image: np.ndarray, ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def wait_until(predicate, timeout: float, what: str, server: Server | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout} s" + (f"; server log:\n{server.log_tail()}" if server else ""))
