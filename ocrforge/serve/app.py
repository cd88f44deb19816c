"""The HTTP service (FastAPI on uvicorn): ``POST /ocr``, ``GET /health`` and ``GET /``, a page to try it.

``POST /ocr`` takes the image as the body (``Content-Type: image/*`` or ``application/octet-stream``) or as the
file of a ``multipart/form-data`` form, and the optional query parameters ``det_db_thresh``,
``det_db_box_thresh``, ``det_db_unclip_ratio``, ``drop_score`` (as ``ocrforge infer``'s options), and answers
the JSON of :meth:`ocrforge.api.OCR.ocr`. Every refusal and failure is JSON too, ``{"success": false,
"error": ...}``, with its status: 400 bad request (empty, cut short, bad query parameter, a form without a
file), 408 an upload that stalls past ``upload_timeout``, 413 over ``max_bytes`` or ``max_pixels``, 415
another content type, 422 not a readable image, 500 a worker that failed or died (it is replaced), 503 every
worker busy for ``timeout`` seconds, 504 one image over ``timeout``. The server reads nothing but the
request: no path from a request is ever opened.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import math
import platform
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from ocrforge.serve.images import FORMAT_LIST, UploadError
from ocrforge.serve.workers import WorkerError, WorkerPool

log = logging.getLogger("ocrforge.serve")

PAGE = Path(__file__).with_name("static") / "index.html"
# query parameter -> (lowest, highest) accepted value
THRESHOLDS = {"det_db_thresh": (0.0, 1.0), "det_db_box_thresh": (0.0, 1.0), "det_db_unclip_ratio": (0.1, 10.0),
              "drop_score": (0.0, 1.0)}
MULTIPART_SLACK = 64 * 1024  # bytes a form may hold besides the image: boundaries, part headers, small fields
BODY_TYPES = ("image/*", "application/octet-stream", "multipart/form-data")
PAGE_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src blob: data:; "
               "connect-src 'self'; form-action 'none'; base-uri 'none'")


def error_body(message: str) -> dict:
    return {"success": False, "error": message}


def parse_thresholds(items: list[tuple[str, str]]) -> dict[str, float]:
    """The threshold overrides in a request's query string; UploadError(400) for an unknown name or a bad value."""
    overrides = {}
    for name, text in items:
        if name not in THRESHOLDS:
            raise UploadError(400, f"unknown query parameter {name!r}; the known ones are {', '.join(THRESHOLDS)}")
        low, high = THRESHOLDS[name]
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not low <= value <= high:
            raise UploadError(400, f"query parameter {name}={text!r} must be a number from {low} to {high}")
        overrides[name] = value
    return overrides


async def read_body(request, limit: int, upload_timeout: float, what: str = "the body") -> bytes:
    """The request body, at most ``limit`` bytes within ``upload_timeout`` seconds; UploadError 413 past the
    size, 408 past the time (a client that sent less than its Content-Length and waits), 400 if it hangs up."""
    import asyncio

    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UploadError(413, f"{what} is {int(declared)} bytes, over this server's limit of {limit} bytes "
                               f"(--max-bytes); send a smaller image")
    chunks, size = [], 0
    of = f" of the {declared} announced" if declared else ""
    try:
        async with asyncio.timeout(upload_timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise UploadError(413, f"{what} is over this server's limit of {limit} bytes (--max-bytes); "
                                           f"send a smaller image")
                chunks.append(chunk)
    except TimeoutError:
        raise UploadError(408, f"the upload stalled: {size} bytes{of} arrived in {upload_timeout:g} s "
                               f"(--upload-timeout); send the whole file") from None
    except ClientDisconnect:
        raise UploadError(400, f"the upload was cut short after {size} bytes{of}; send the whole file") from None
    return b"".join(chunks)


async def read_form_file(request, limit: int, upload_timeout: float) -> bytes:
    """The file of a ``multipart/form-data`` body (its first part with a file name, else one named ``file`` or
    ``image``), at most ``limit`` bytes; UploadError 400 for a malformed or cut-short form or one without a file."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise UploadError(400, "the multipart/form-data body has no boundary in its Content-Type; let the client "
                               "library build the form (curl -F file=@photo.jpg)")
    parts: list[dict] = []
    header: dict = {"field": b"", "value": b""}
    ended = []

    def on_part_begin():
        parts.append({"headers": {}, "data": []})

    def on_header_field(data, start, end):
        header["field"] += data[start:end]

    def on_header_value(data, start, end):
        header["value"] += data[start:end]

    def on_header_end():
        parts[-1]["headers"][header["field"].decode("latin-1").lower()] = header["value"]
        header["field"], header["value"] = b"", b""

    def on_part_data(data, start, end):
        parts[-1]["data"].append(bytes(data[start:end]))

    callbacks = {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                 "on_header_value": on_header_value, "on_header_end": on_header_end,
                 "on_part_data": on_part_data, "on_end": lambda: ended.append(True)}
    body = await read_body(request, limit + MULTIPART_SLACK, upload_timeout,
                           what=f"the form (the image plus up to {MULTIPART_SLACK} bytes of form headers)")
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # noqa: BLE001 - python-multipart's errors (MultipartParseError ...) vary by version
        raise UploadError(400, f"the multipart/form-data body is malformed ({exc}); let the client library build "
                               f"the form (curl -F file=@photo.jpg)") from None
    if not ended:
        raise UploadError(400, "the multipart/form-data body ends before its closing boundary (the upload was cut "
                               "short); send the whole form")
    chosen = None
    for part in parts:
        _, disposition = parse_options_header(part["headers"].get("content-disposition", b""))
        if b"filename" in disposition or disposition.get(b"name") in (b"file", b"image"):
            chosen = part
            break
    if chosen is None:
        raise UploadError(400, "the multipart/form-data body holds no file; send the image as a file field named "
                               "file (curl -F file=@photo.jpg)")
    data = b"".join(chosen["data"])
    if len(data) > limit:
        raise UploadError(413, f"the file is {len(data)} bytes, over this server's limit of {limit} bytes "
                               f"(--max-bytes); send a smaller image")
    return data


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in ("ocrforge", "paddlepaddle", "paddleocr", "fastapi", "uvicorn"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    import ocrforge

    found["ocrforge"] = ocrforge.__version__
    return found


def create_app(pool: WorkerPool, *, max_bytes: int, max_pixels: int, upload_timeout: float = 30.0,
               backend: str = "paddle", settings: dict | None = None):
    """The FastAPI app on a started :class:`WorkerPool`; it stops the pool when the server stops.

    ``settings`` are the thresholds in effect (shown by ``/health``)."""
    from ocrforge.system import MANIFEST, read_manifest

    manifest_bytes = (pool.model_dir / MANIFEST).read_bytes()
    manifest = read_manifest(pool.model_dir)
    page = PAGE.read_text(encoding="utf-8")
    software = versions()

    @asynccontextmanager
    async def lifespan(app):
        await pool.open()
        try:
            yield
        finally:
            pool.close()

    app = FastAPI(title="ocrforge", version=software["ocrforge"], lifespan=lifespan, docs_url=None,
                  redoc_url=None, summary="Text detection and recognition with the exported ocrforge models.")

    def refuse(status: int, message: str) -> JSONResponse:
        return JSONResponse(error_body(message), status_code=status, headers={"X-Content-Type-Options": "nosniff"})

    @app.exception_handler(UploadError)
    async def upload_error(request, exc: UploadError):
        return refuse(exc.status, str(exc))

    @app.exception_handler(WorkerError)
    async def worker_error(request, exc: WorkerError):
        headers = {"Retry-After": "5"} if exc.status == 503 else {}
        response = refuse(exc.status, str(exc))
        response.headers.update(headers)
        return response

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        if exc.status_code == 404:
            message = f"no such endpoint {request.url.path!r}; this server has POST /ocr, GET /health and GET /"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see GET / for how to call this server"
        else:
            message = str(exc.detail)
        return refuse(exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        return refuse(400, f"bad request: {exc.errors()}")

    @app.exception_handler(Exception)
    async def unexpected(request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return refuse(500, f"internal error ({type(exc).__name__}); the server's log has the details")

    @app.get("/", response_class=HTMLResponse, summary="A page to try the service in a browser")
    async def index():
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_POLICY, "X-Content-Type-Options": "nosniff"})

    @app.get("/health", summary="Whether the models are loaded; versions; the export's manifest hash")
    async def health():
        ready = pool.ready
        body = {
            "success": ready > 0,
            "status": "ok" if ready == pool.size else ("degraded" if ready else "unavailable"),
            "models_loaded": ready == pool.size,
            "backend": backend,
            "workers": {"wanted": pool.size, "ready": ready, "restarts": pool.restarts, "processes": pool.describe()},
            "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
            "export": {"format": manifest.get("format"), "versions": manifest.get("versions"),
                       "params_sha256": manifest.get("params_sha256")},
            "settings": settings or {},
            "limits": {"max_bytes": max_bytes, "max_pixels": max_pixels, "timeout_s": pool.timeout,
                       "upload_timeout_s": upload_timeout},
            "versions": software,
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    ocr_doc = {
        "parameters": [{"name": name, "in": "query", "required": False,
                        "schema": {"type": "number", "minimum": low, "maximum": high}}
                       for name, (low, high) in THRESHOLDS.items()],
        "requestBody": {"required": True, "content": {
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "file": {"type": "string", "format": "binary"}}}}}},
    }

    @app.post("/ocr", summary=f"Read the text of one image ({FORMAT_LIST})", openapi_extra=ocr_doc)
    async def ocr(request: Request):
        overrides = parse_thresholds(request.query_params.multi_items())
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media == "multipart/form-data":
            data = await read_form_file(request, max_bytes, upload_timeout)
        elif media in ("", "application/octet-stream") or media.startswith("image/"):
            data = await read_body(request, max_bytes, upload_timeout)
        else:
            raise UploadError(415, f"Content-Type {media!r} is not an image; send the image as the body with "
                                   f"Content-Type image/jpeg (or image/png, application/octet-stream ...), or as "
                                   f"a multipart/form-data file (curl -F file=@photo.jpg)")
        return JSONResponse(await pool.read(data, overrides))

    return app


def serve(model_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, threads: int = 1,
          backend: str | None = None, max_bytes: int = 20 * 1024 * 1024, max_pixels: int = 50_000_000,
          timeout: float = 60.0, upload_timeout: float = 30.0, **thresholds) -> None:
    """Load ``workers`` OCR processes on the export in ``model_dir`` (``backend`` onnx, paddle, or None: the
    export's default), then serve them on ``host:port`` until stopped (Ctrl-C / SIGTERM). Raises
    FileNotFoundError (no export) or RuntimeError (models fail to load)."""
    import uvicorn

    from ocrforge.system import BACKENDS, default_backend, read_manifest, settings_from_manifest

    manifest = read_manifest(model_dir)
    backend = backend or default_backend(manifest)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {list(BACKENDS)}")
    defaults = settings_from_manifest(model_dir, manifest).with_overrides(**thresholds)
    pool = WorkerPool(model_dir, workers=workers, threads=threads, timeout=timeout, max_pixels=max_pixels,
                      backend=backend, **thresholds)
    pool.start()
    try:
        app = create_app(pool, max_bytes=max_bytes, max_pixels=max_pixels, upload_timeout=upload_timeout,
                         backend=backend, settings={name: getattr(defaults, name) for name in THRESHOLDS})
    except BaseException:
        pool.close()
        raise
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=int(timeout) + 5)
    finally:
        pool.close()  # also when uvicorn could not bind, and so never ran the app's shutdown
