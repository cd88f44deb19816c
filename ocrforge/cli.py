"""The ``ocrforge`` command: ``ocrforge infer IMAGE|DIR`` reads images with the exported models and prints JSON;
``ocrforge prelabel DIR`` writes the models' reading of a folder for PPOCRLabel (see ocrforge/prelabel.py);
``ocrforge serve`` serves them over HTTP (see :mod:`ocrforge.serve`); ``ocrforge stage NAME`` runs a stage
registered in ``ocrforge.registry.STAGES`` (the pipeline's stages, ``ocrforge/stages_registry.py``, and those
plugins add).

Output of ``infer``: for one image, one JSON object ``{"success": true, "full_text": ..., "lines": [{"box":
[[x, y] x4], "text": ..., "score": ...}]}``; for a folder, a JSON array of such objects, each with an extra
``"image"`` key first (the file's path), or with ``--jsonl`` one object per line, printed as each image is read.
Errors are JSON objects too, ``{"success": false, "error": ...}``. Exit codes: 0 all read; 1 a missing input or
model folder, or a ``--draw`` path that is not a folder; 2 an image that cannot be decoded (empty, too large,
not an image), a failure inside OCR, or a drawing that could not be written (its result then keeps
``"success": true`` and adds ``"draw_error"``). Over a folder one bad image never stops the others, with one
process or several, and the exit code is the worst one.

``--draw DIR`` writes the drawing of ``a.jpg`` as ``DIR/a.jpg.png`` (the whole file name plus ``.png``), so
``a.jpg`` and ``a.png`` of one folder get two drawings; each is written to a temporary file and renamed into
place, so a symlink in ``DIR`` is replaced, never written through.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

from ocrforge.prelabel import CONFIDENCE_MEASURES, DEFAULT_MEASURE

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
EXIT_OK, EXIT_MISSING, EXIT_BAD_IMAGE = 0, 1, 2


def _echo(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


def _error(message: str) -> dict:
    return {"success": False, "error": message}


@contextlib.contextmanager
def _loading_models(model_dir: Path):
    """Exit 1 with a JSON error for a missing file or folder, 2 for an export that fails to load."""
    try:
        yield
    except FileNotFoundError as exc:
        _echo(_error(str(exc)))
        sys.exit(EXIT_MISSING)
    except Exception as exc:  # noqa: BLE001 - a broken export is reported as JSON, not a traceback
        _echo(_error(f"loading the models in {model_dir} failed: {type(exc).__name__}: {exc}"))
        sys.exit(EXIT_BAD_IMAGE)


def list_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


@click.group()
@click.version_option(package_name="ocrforge")
def main() -> None:
    """ocrforge: train, export and run a custom PP-OCRv4 text detector and recogniser."""


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--model-dir", type=click.Path(path_type=Path), default=Path("models/export"), show_default=True,
              help="The folder the export stage wrote (manifest.json, det/, rec/, dict.txt).")
@click.option("--draw", "draw_dir", type=click.Path(path_type=Path), default=None,
              help="Save each image with its boxes and texts drawn into this folder, as <file name>.png "
                   "(a.jpg -> a.jpg.png); created if missing.")
@click.option("--jsonl", is_flag=True, help="Over a folder: one JSON object per line instead of one array.")
@click.option("--det-db-thresh", type=float, default=None, help="Pixel threshold of DB (default: manifest).")
@click.option("--det-db-box-thresh", type=float, default=None, help="Box score threshold (default: manifest).")
@click.option("--det-db-unclip-ratio", type=float, default=None, help="Box expansion (default: manifest).")
@click.option("--drop-score", type=float, default=None, help="Drop lines read below this score (default: manifest).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Over a folder: read images in this many processes at once (1 thread each); the same "
                   "results, more images per second on several cores (e.g. one per core).")
@click.option("--backend", type=click.Choice(["auto", "onnx", "paddle"]), default="auto", show_default=True,
              help="Runtime of the exported models: onnx (onnxruntime on onnx/), paddle (paddle inference on det/ "
                   "and rec/), or auto: onnx where the export has it (the faster one, README Benchmark).")
def infer(path: Path, model_dir: Path, draw_dir: Path | None, jsonl: bool, det_db_thresh, det_db_box_thresh,
          det_db_unclip_ratio, drop_score, workers: int, backend: str) -> None:
    """Read the text of IMAGE, or of every image in DIR, and print it as JSON."""
    if not path.exists():
        _echo(_error(f"{path} not found; give an image file or a folder of images"))
        sys.exit(EXIT_MISSING)
    images = list_images(path) if path.is_dir() else [path]
    if path.is_dir() and not images:
        _echo(_error(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)})"))
        sys.exit(EXIT_MISSING)
    if draw_dir is not None:
        problem = _prepare_draw_dir(draw_dir, path if path.is_dir() else None)
        if problem:
            _echo(_error(problem))
            sys.exit(EXIT_MISSING)
    options = dict(det_db_thresh=det_db_thresh, det_db_box_thresh=det_db_box_thresh,
                   det_db_unclip_ratio=det_db_unclip_ratio, drop_score=drop_score,
                   backend=None if backend == "auto" else backend)
    pooled = workers > 1 and len(images) > 1
    with _loading_models(model_dir):
        if pooled:
            from ocrforge.pool import OCRPool

            ocr = OCRPool(model_dir, workers=min(workers, len(images)), **options)
        else:
            from ocrforge.api import OCR

            ocr = OCR(model_dir, **options)

    worst, results = EXIT_OK, []
    outcomes = ocr.imap(images, errors="return") if pooled else (None for _ in images)
    for image_path, outcome in zip(images, outcomes):
        result, code = _pooled_one(outcome, image_path, draw_dir) if pooled else _read_one(ocr, image_path, draw_dir)
        worst = max(worst, code)
        if path.is_dir():
            result = {"image": str(image_path), **result}
            if jsonl:
                _echo(result)
            else:
                results.append(result)
        else:
            _echo(result)
    if path.is_dir() and not jsonl:
        _echo(results)
    if pooled:
        ocr.close()
    sys.exit(worst)


def _read_one(ocr, image_path: Path, draw_dir: Path | None) -> tuple[dict, int]:
    from ocrforge.data.images import ImageReadError, read_image

    try:
        image = read_image(image_path)
    except FileNotFoundError as exc:
        return _error(str(exc)), EXIT_MISSING
    except ImageReadError as exc:
        return _error(str(exc)), EXIT_BAD_IMAGE
    except Exception as exc:  # noqa: BLE001 - e.g. MemoryError on a huge image; one image must not stop a folder
        return _error(f"reading {image_path} failed: {type(exc).__name__}: {exc}"), EXIT_BAD_IMAGE
    try:
        result = ocr.read(image)
    except Exception as exc:  # noqa: BLE001 - one failing image must not stop a folder
        return _error(f"OCR failed on {image_path}: {type(exc).__name__}: {exc}"), EXIT_BAD_IMAGE
    return _with_drawing(image, result, draw_dir, image_path)


def _pooled_one(outcome, image_path: Path, draw_dir: Path | None) -> tuple[dict, int]:
    """``_read_one`` for what a pool worker handed back: an OcrResult or the exception it raised."""
    from ocrforge.data.images import ImageReadError

    if isinstance(outcome, FileNotFoundError):
        return _error(str(outcome)), EXIT_MISSING
    if isinstance(outcome, ImageReadError):
        return _error(str(outcome)), EXIT_BAD_IMAGE
    if isinstance(outcome, Exception):
        return _error(f"OCR failed on {image_path}: {type(outcome).__name__}: {outcome}"), EXIT_BAD_IMAGE
    return _with_drawing(None, outcome, draw_dir, image_path)


def drawing_path(draw_dir: Path, image_path: Path) -> Path:
    """Where ``--draw`` puts the drawing of ``image_path``: its whole file name plus ``.png`` (a.jpg -> a.jpg.png),
    so two images of one folder never share a drawing."""
    return Path(draw_dir) / f"{image_path.name}.png"


def _prepare_draw_dir(draw_dir: Path, image_dir: Path | None) -> str | None:
    """Create the ``--draw`` folder before any image is read; the error to report if it cannot be one."""
    if draw_dir.exists() and not draw_dir.is_dir():
        return f"--draw {draw_dir} is a file, not a folder; give a folder for the drawings (created if missing)"
    if image_dir is not None and draw_dir.resolve() == image_dir.resolve():
        return (f"--draw {draw_dir} is the folder of the images; give another folder, so that no drawing "
                f"(a.jpg.png) replaces an image or is read as one next time")
    try:
        draw_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the --draw folder {draw_dir}: {exc.strerror or exc}"
    return None


def _with_drawing(image, result, draw_dir: Path | None, image_path: Path) -> tuple[dict, int]:
    """The result's JSON, after drawing it if asked; a drawing that fails keeps the result and adds
    ``"draw_error"`` (exit code 2)."""
    out = result.to_json()
    if draw_dir is None:
        return out, EXIT_OK
    from ocrforge.drawing import draw_lines, write_image
    from ocrforge.data.images import read_image

    target = drawing_path(draw_dir, image_path)
    try:
        if image is None:
            image = read_image(image_path)
        drawn = draw_lines(image, [line.box for line in result.lines], [line.text for line in result.lines])
        write_image(target, drawn)
    except Exception as exc:  # noqa: BLE001 - the OCR result is printed whatever happens to its drawing
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        out["draw_error"] = f"drawing {image_path} into {target} failed: {type(exc).__name__}: {detail}"
        return out, EXIT_BAD_IMAGE
    return out, EXIT_OK


@main.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--model-dir", type=click.Path(path_type=Path), default=Path("models/export"), show_default=True,
              help="The folder the export stage wrote (your trained model).")
@click.option("--report", type=click.Path(path_type=Path), default=None,
              help="Where to write the ranking report (default FOLDER/prelabel_report.json); "
                   "prelabel_order.txt goes beside it.")
@click.option("--measure", type=click.Choice(sorted(CONFIDENCE_MEASURES)), default=DEFAULT_MEASURE,
              show_default=True, help="How an image's confidence is scored for the ranking (README).")
@click.option("--expected-lines", type=click.IntRange(min=0), default=None,
              help="The number of lines each image should hold (e.g. 1 for a plate): images with another "
                   "count rank first.")
@click.option("--drop-score", type=float, default=None,
              help="Do not write lines read below this score (default: the export's manifest).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Read images in this many processes at once (1 thread each).")
def prelabel(folder: Path, model_dir: Path, report: Path | None, measure: str, expected_lines: int | None,
             drop_score, workers: int) -> None:
    """Pre-label the images of FOLDER for PPOCRLabel with your model, least certain first.

    Writes FOLDER/Label.txt and FOLDER/Cache.cach (predictions of every image not listed in fileState.txt;
    listed, i.e. checked, images keep their labels byte for byte), and the ranking report. Prints a JSON
    summary; each unreadable image is a JSON line on stderr. Exit codes: 0 all read; 1 a missing folder or
    model; 2 some images could not be read (the others were labelled).
    """
    from ocrforge import prelabel as pl
    from ocrforge.system import read_manifest

    with _loading_models(model_dir):
        pl.list_folder(folder)
        threshold = float(read_manifest(model_dir)["settings"]["drop_score"]) if drop_score is None else drop_score
        reader, close = pl.open_reader(model_dir, workers)
    try:
        result = pl.prelabel_folder(folder, reader, drop_score=threshold, measure=measure, report=report,
                                    expected_lines=expected_lines,
                                    model_dir=model_dir,
                                    on_error=lambda e: click.echo(json.dumps({"success": False, **e},
                                                                             ensure_ascii=False), err=True))
    except FileNotFoundError as exc:
        _echo(_error(str(exc)))
        sys.exit(EXIT_MISSING)
    finally:
        close()
    _echo(result.summary())
    sys.exit(EXIT_BAD_IMAGE if result.failed else EXIT_OK)


@main.command()
@click.option("--model-dir", type=click.Path(path_type=Path), default=Path("models/export"), show_default=True,
              help="The folder the export stage wrote (manifest.json, det/, rec/, dict.txt).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on: 127.0.0.1 serves this machine only; 0.0.0.0 every network (then put a "
                   "proxy with TLS and access control in front).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="OCR processes, each with its own copy of the models (default: one per usable core).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="Math-library threads of each worker.")
@click.option("--backend", type=click.Choice(["auto", "onnx", "paddle"]), default="auto", show_default=True,
              help="Runtime of the exported models: onnx (onnxruntime on onnx/), paddle (paddle inference on det/ "
                   "and rec/), or auto: onnx where the export has it (the faster one, README Benchmark).")
@click.option("--max-bytes", type=click.IntRange(min=1), default=20 * 1024 * 1024, show_default=True,
              help="Largest image file accepted, in bytes (413 past it).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=50_000_000, show_default=True,
              help="Largest image accepted, in pixels (width x height, read from its header before decoding; 413).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              help="Seconds one image may take in a worker (504, the worker is replaced), and may wait for one (503).")
@click.option("--upload-timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds a client may take to send its image (408 past it).")
@click.option("--det-db-thresh", type=float, default=None, help="Pixel threshold of DB (default: manifest).")
@click.option("--det-db-box-thresh", type=float, default=None, help="Box score threshold (default: manifest).")
@click.option("--det-db-unclip-ratio", type=float, default=None, help="Box expansion (default: manifest).")
@click.option("--drop-score", type=float, default=None, help="Drop lines read below this score (default: manifest).")
def serve(model_dir: Path, host: str, port: int, workers: int | None, threads: int, backend: str, max_bytes: int,
          max_pixels: int, timeout: float, upload_timeout: float, det_db_thresh, det_db_box_thresh,
          det_db_unclip_ratio, drop_score) -> None:
    """Serve the exported models over HTTP until stopped: POST /ocr (an image -> infer's JSON), GET /health, and a
    page to try them at GET /. Each request may set the thresholds as query parameters (?drop_score=0.6)."""
    from ocrforge.pool import usable_cores
    from ocrforge.serve.app import serve as run_server

    try:
        run_server(model_dir, host=host, port=port, workers=workers or usable_cores(), threads=threads,
                   backend=None if backend == "auto" else backend, max_bytes=max_bytes, max_pixels=max_pixels, timeout=timeout,
                   upload_timeout=upload_timeout, det_db_thresh=det_db_thresh, det_db_box_thresh=det_db_box_thresh,
                   det_db_unclip_ratio=det_db_unclip_ratio, drop_score=drop_score)
    except FileNotFoundError as exc:
        _echo(_error(str(exc)))
        sys.exit(EXIT_MISSING)
    except RuntimeError as exc:
        _echo(_error(f"the OCR workers could not start: {exc}"))
        sys.exit(EXIT_BAD_IMAGE)


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("name")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def stage(name: str, args: tuple[str, ...]) -> None:
    """Run the stage registered as NAME in ocrforge.registry.STAGES: a pipeline stage (split, train_rec, ...;
    the script stages/NAME.py of the project in the current folder with the arguments of its cmd in dvc.yaml,
    as DVC runs it, but without recording it in dvc.lock) or one a plugin registered. ARGS go to a pipeline
    stage's script after dvc.yaml's; an option given again wins (eval and benchmark: --input FOLDER --out PATH
    score any PPOCRLabel folder)."""
    from ocrforge.registry import STAGES

    try:
        run = STAGES.get(name)
    except KeyError as exc:
        _echo(_error(exc.args[0] if exc.args else str(exc)))
        sys.exit(EXIT_MISSING)
    from ocrforge.stages_registry import PIPELINE_STAGES, StageCommandError, StageScriptMissing

    if args and name not in PIPELINE_STAGES:
        _echo(_error(f"stage {name!r} (a plugin's) takes no arguments; got {' '.join(args)}"))
        sys.exit(EXIT_MISSING)
    try:
        run(*args)
    except (StageScriptMissing, StageCommandError) as exc:
        _echo(_error(str(exc)))
        sys.exit(EXIT_MISSING)


if __name__ == "__main__":
    main()
