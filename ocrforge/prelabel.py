"""Pre-label a folder of new images for PPOCRLabel with an ocrforge export, least certain first.

PPOCRLabel opens a folder of images and keeps its files inside it (facts from its source, PPOCRLabel.py):

- ``Label.txt``: ``<folder name>/<image><TAB><JSON list of {"transcription", "points", "difficult"}>``, one
  line per image; PPOCRLabel itself writes only the images that are checked;
- ``fileState.txt``: ``<image path><TAB>1``, one line per checked image (the path absolute in older
  versions, ``<folder name>/<image>`` in newer ones). PPOCRLabel's loader counts *every* listed image as
  checked, whatever its state column says, so an unchecked image is one that is not listed;
- ``Cache.cach``: its auto-label results, in Label.txt's format; on opening the folder it shows Label.txt's
  boxes for an image and Cache.cach's where Label.txt has none.

:func:`prelabel_folder` reads every image of the folder that no line of fileState.txt names, writes its
predicted lines to Label.txt and Cache.cach (so they survive PPOCRLabel's own save, which keeps only checked
images in Label.txt), leaves fileState.txt alone (an empty one is created where none exists, so that the split
stage, which reads every image when fileState.txt is absent, never trains on unreviewed predictions), and ranks
the predicted images least certain first.

Merging never loses a label: a line of Label.txt or Cache.cach is replaced only when it names an image of the
folder that fileState.txt does not list and that was just read; every other line (checked images, images
deleted since, lines this module cannot parse) is kept byte for byte, in place.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

LABEL_FILE = "Label.txt"
STATE_FILE = "fileState.txt"
CACHE_FILE = "Cache.cach"
REPORT_FILE = "prelabel_report.json"
ORDER_FILE = "prelabel_order.txt"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
BOM = b"\xef\xbb\xbf"


def _min_score(kept: Sequence[float], read: Sequence[float]) -> float:
    return min(kept, default=0.0)


def _mean_score(kept: Sequence[float], read: Sequence[float]) -> float:
    return sum(kept) / len(kept) if kept else 0.0


def _min_read_score(kept: Sequence[float], read: Sequence[float]) -> float:
    return min(read, default=0.0)


def _product_score(kept: Sequence[float], read: Sequence[float]) -> float:
    out = 1.0 if kept else 0.0
    for score in kept:
        out *= score
    return out


# Confidence of an image's pre-label from its line scores: ``kept`` are the lines written (score >= the drop
# score), ``read`` every line the recogniser read, dropped ones included. Lower: less certain. An image with no
# kept line scores 0 (something to label by hand, or nothing there to check). The default, the product (the
# chance every written line is right, were the scores calibrated; an extra line lowers it), ranked the wrong
# pre-labels first best over three models on plates_eu_br (README, "Pre-label new images").
CONFIDENCE_MEASURES: dict[str, Callable[[Sequence[float], Sequence[float]], float]] = {
    "min_score": _min_score,
    "mean_score": _mean_score,
    "min_read_score": _min_read_score,
    "product_score": _product_score,
}
DEFAULT_MEASURE = "product_score"


@dataclass
class PrelabelResult:
    """What :func:`prelabel_folder` did. ``ranking``: the predicted images least certain first, each
    ``{"image", "confidence", "lines", "min_score", "mean_score", "min_read_score", "product_score"}``."""

    folder: Path
    predicted: list[str] = field(default_factory=list)
    kept_checked: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    missing_images: list[str] = field(default_factory=list)
    ranking: list[dict] = field(default_factory=list)
    measure: str = DEFAULT_MEASURE
    expected_lines: int | None = None
    report_path: Path | None = None
    order_path: Path | None = None

    def summary(self) -> dict:
        return {
            "success": not self.failed,
            "folder": str(self.folder),
            "predicted": len(self.predicted),
            "kept_checked": len(self.kept_checked),
            "failed": len(self.failed),
            "labels_of_missing_images_kept": len(self.missing_images),
            "measure": self.measure,
            "report": str(self.report_path),
            "order": str(self.order_path),
            "least_certain": [row["image"] for row in self.ranking[:5]],
        }


def image_key(folder: Path, name: str) -> str:
    """The key PPOCRLabel gives an image of ``folder``: ``<folder name>/<file name>``."""
    return f"{folder.name}/{name}"


def path_tail(path: str) -> str:
    """The last two parts of a path, ``/``-joined, either slash accepted: how PPOCRLabel matches fileState.txt
    and Label.txt entries to images (an absolute path of another machine still matches)."""
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    return "/".join(parts[-2:]) if parts else path


def list_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, by name (PPOCRLabel's list order without natural sort)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def list_folder(folder: Path) -> list[Path]:
    """:func:`list_images`, or FileNotFoundError saying what to give when ``folder`` is not a folder of images."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; give the folder of images you open in PPOCRLabel")
    images = list_images(folder)
    if not images:
        raise FileNotFoundError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}); give the folder of "
                                f"images you open in PPOCRLabel, not the folder above it")
    return images


def _split_rows(data: bytes) -> list[bytes]:
    """The lines of a file, each with its own line ending; a leading UTF-8 BOM stays on the first line."""
    return data.splitlines(keepends=True)


def _row_key(row: bytes, first: bool) -> str | None:
    """The image key of a Label.txt / Cache.cach / fileState.txt line, or None for a line with no tab."""
    if first and row.startswith(BOM):
        row = row[len(BOM):]
    key, sep, _ = row.partition(b"\t")
    if not sep:
        return None
    return key.decode("utf-8", errors="surrogateescape").strip()


def listed_images(state_file: Path) -> set[str]:
    """Path tails of every image fileState.txt lists, whatever its state (PPOCRLabel counts each as checked)."""
    if not state_file.is_file():
        return set()
    tails = set()
    for i, row in enumerate(_split_rows(state_file.read_bytes())):
        if i == 0 and row.startswith(BOM):
            row = row[len(BOM):]
        text = row.decode("utf-8", errors="surrogateescape").rstrip("\r\n")
        if not text.strip():
            continue
        path, sep, _state = text.rpartition("\t")
        tails.add(path_tail((path if sep else text).strip()))
    return tails


def label_row(key: str, lines: Iterable) -> str:
    """One Label.txt / Cache.cach line for ``lines`` (objects with ``.box`` (4, 2) and ``.text``), as
    PPOCRLabel writes it: integer points, ``difficult`` false, JSON with non-ASCII kept."""
    boxes = [
        {
            "transcription": line.text,
            "points": [[int(round(float(x))), int(round(float(y)))] for x, y in line.box],
            "difficult": False,
        }
        for line in lines
    ]
    return f"{key}\t{json.dumps(boxes, ensure_ascii=False)}\n"


def merge_rows(existing: bytes, new_rows: dict[str, str]) -> tuple[bytes, list[str]]:
    """``existing`` (a label file's bytes) with the line of each key in ``new_rows`` (path tail -> line)
    replaced in place, later duplicates of such a key dropped, and the keys not yet present appended in the
    given order. Every other line is kept byte for byte. Returns the bytes and the tails that were replaced."""
    out: list[bytes] = []
    placed: set[str] = set()
    for i, row in enumerate(_split_rows(existing)):
        key = _row_key(row, first=i == 0)
        tail = path_tail(key) if key else None
        if tail is not None and tail in new_rows:
            if tail not in placed:
                bom = BOM if i == 0 and row.startswith(BOM) else b""
                out.append(bom + new_rows[tail].encode("utf-8"))
                placed.add(tail)
            continue
        out.append(row)
    if out and not out[-1].endswith((b"\n", b"\r")):
        out[-1] += b"\n"
    replaced = [t for t in new_rows if t in placed]
    out.extend(new_rows[t].encode("utf-8") for t in new_rows if t not in placed)
    return b"".join(out), replaced


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``, so a crash
    leaves either the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_image_file(path: Path):
    """Decode an image file (HWC uint8 BGR); ImageReadError, naming the file, for an empty or undecodable one."""
    import cv2

    from ocrforge.data.images import ImageReadError, read_image

    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise ImageReadError(f"{path} is empty (0 bytes); copy the image again or remove it")
    try:
        return read_image(path)
    except cv2.error as exc:
        raise ImageReadError(f"{path} is not an image OpenCV can decode: {str(exc).strip()}") from exc


def open_reader(model_dir: str | os.PathLike, workers: int = 1):
    """``(reader, close)`` for :func:`prelabel_folder`: ``reader(paths)`` yields each image's OcrResult, or
    the exception that reading it raised, in order, read with drop score 0 (the lines are filtered, and ranked
    on, here). ``workers`` > 1 reads in that many processes (:class:`ocrforge.pool.OCRPool`)."""
    if workers > 1:
        from ocrforge.pool import OCRPool

        pool = OCRPool(model_dir, workers=workers, drop_score=0.0)

        def read_pooled(paths):
            images = []
            for path in paths:
                try:
                    images.append(read_image_file(path))
                except Exception as exc:  # noqa: BLE001 - reported per image by prelabel_folder
                    images.append(exc)
            arrays = [im for im in images if not isinstance(im, Exception)]
            results = iter(pool.imap(arrays, errors="return"))
            for image in images:
                yield image if isinstance(image, Exception) else next(results)

        return read_pooled, pool.close
    from ocrforge.api import OCR

    ocr = OCR(model_dir, drop_score=0.0)

    def read_each(paths):
        for path in paths:
            try:
                yield ocr.read(read_image_file(path))
            except Exception as exc:  # noqa: BLE001 - one failing image must not stop a folder
                yield exc

    return read_each, lambda: None


def confidence_row(key: str, kept: Sequence[float], read: Sequence[float], measure: str,
                   expected_lines: int | None = None) -> dict:
    """The ranking entry of one image: every measure, and ``confidence`` = the chosen one. With
    ``expected_lines`` (the number of lines every image should hold, e.g. 1 for a plate), the confidence is
    lowered by ``|lines - expected_lines|``, so an image with another count ranks before every image with the
    expected count (the measures lie in [0, 1])."""
    values = {name: round(float(fn(kept, read)), 5) for name, fn in CONFIDENCE_MEASURES.items()}
    confidence = values[measure]
    if expected_lines is not None:
        confidence = round(confidence - abs(len(kept) - expected_lines), 5)
    return {"image": key, "confidence": confidence, "lines": len(kept), **values}


def rank(rows: list[dict]) -> list[dict]:
    """Least certain first; ties by image key, so the order is stable."""
    return sorted(rows, key=lambda r: (r["confidence"], r["image"]))


def prelabel_folder(
    folder: str | os.PathLike,
    reader,
    *,
    drop_score: float,
    measure: str = DEFAULT_MEASURE,
    expected_lines: int | None = None,
    report: str | os.PathLike | None = None,
    model_dir: str | os.PathLike | None = None,
    on_error: Callable[[dict], None] | None = None,
) -> PrelabelResult:
    """Pre-label the images of ``folder`` (the folder PPOCRLabel opens) that fileState.txt does not list.

    ``reader(paths) -> iterable of OcrResult | Exception`` in input order (read with drop score 0, so the
    dropped lines still count in ``min_read_score``); lines scoring under ``drop_score`` are not written.
    ``expected_lines``: see :func:`confidence_row`. ``report``: the JSON report's path (default
    ``<folder>/prelabel_report.json``); the order file ``prelabel_order.txt`` goes beside it. ``on_error`` gets
    ``{"image", "error"}`` for each image that could not be read, as it happens.
    """
    if measure not in CONFIDENCE_MEASURES:
        raise ValueError(f"unknown confidence measure {measure!r}; choose one of {sorted(CONFIDENCE_MEASURES)}")
    folder = Path(folder)
    images = list_folder(folder)
    result = PrelabelResult(folder=folder, measure=measure, expected_lines=expected_lines)
    report_path = Path(report) if report else folder / REPORT_FILE
    result.report_path, result.order_path = report_path, report_path.parent / ORDER_FILE
    listed = listed_images(folder / STATE_FILE)
    todo = []
    for path in images:
        key = image_key(folder, path.name)
        (result.kept_checked if path_tail(key) in listed else todo).append((path, key))

    new_rows: dict[str, str] = {}
    ranking = []
    unnamable = [(p, k) for p, k in todo if any(c in p.name for c in "\t\r\n")]
    for path, _ in unnamable:
        error = {"image": str(path), "error": "its file name holds a tab or line break, which Label.txt cannot "
                                             "hold; rename the file"}
        result.failed.append(error)
        if on_error:
            on_error(error)
    todo = [item for item in todo if item not in unnamable]
    for (path, key), outcome in zip(todo, reader([p for p, _ in todo])):
        if isinstance(outcome, Exception):
            error = {"image": str(path), "error": f"{type(outcome).__name__}: {outcome}"}
            result.failed.append(error)
            if on_error:
                on_error(error)
            continue
        kept = [line for line in outcome.lines if line.score >= drop_score]
        new_rows[path_tail(key)] = label_row(key, kept)
        result.predicted.append(key)
        ranking.append(confidence_row(key, [l.score for l in kept], [l.score for l in outcome.lines], measure,
                                      expected_lines))
    result.kept_checked = [key for _, key in result.kept_checked]
    result.ranking = rank(ranking)

    present = {path_tail(image_key(folder, p.name)) for p in images}
    for name in (LABEL_FILE, CACHE_FILE):
        path = folder / name
        existing = path.read_bytes() if path.is_file() else b""
        merged, _ = merge_rows(existing, new_rows)
        if merged != existing or not path.exists():
            write_atomic(path, merged)
        if name == LABEL_FILE:
            for i, row in enumerate(_split_rows(merged)):
                key = _row_key(row, first=i == 0)
                if key and path_tail(key) not in present:
                    result.missing_images.append(key)
    if not (folder / STATE_FILE).exists():
        write_atomic(folder / STATE_FILE, b"")

    _write_report(result, model_dir, drop_score)
    return result


def _write_report(result: PrelabelResult, model_dir, drop_score: float) -> None:
    confidences = [row["confidence"] for row in result.ranking]
    report = {
        "folder": str(result.folder.resolve()),
        "model_dir": str(Path(model_dir).resolve()) if model_dir else None,
        "measure": result.measure,
        "expected_lines": result.expected_lines,
        "drop_score": drop_score,
        "predicted": len(result.predicted),
        "kept_checked": result.kept_checked,
        "failed": result.failed,
        "labels_of_missing_images_kept": result.missing_images,
        "median_confidence": round(statistics.median(confidences), 5) if confidences else None,
        "order": [{"rank": i + 1, **row} for i, row in enumerate(result.ranking)],
    }
    result.report_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(result.report_path, (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    names = "".join(f"{row['image'].rsplit('/', 1)[-1]}\n" for row in result.ranking)
    write_atomic(result.order_path, names.encode("utf-8"))
