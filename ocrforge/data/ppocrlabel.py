"""Read a folder labelled with PPOCRLabel: the one way labelled data enters ocrforge.

PPOCRLabel writes, next to the image folder:
- ``Label.txt``: one line per image, ``<folder>/<image><TAB><JSON list of boxes>``, each box
  ``{"transcription": str, "points": [[x, y], ...], "difficult": bool}``;
- ``fileState.txt``: ``<image path><TAB>1`` for the images a person has checked (0 or absent: not checked).

Boxes whose transcription is ``###`` or ``*``, or that are marked ``difficult``, are ignore regions: detection
keeps them as "do not care" areas, recognition leaves them out.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ocrforge.data.images import ImageReadError, read_image

# transcriptions that mark a box as "text here, not to be read": an ignore region for detection, left out of
# recognition (PaddleOCR's convention); the one definition, used by the label reader and the metrics alike
IGNORE_TEXTS = ("###", "*")
# Points may lie this many pixels outside the image (annotators click on the border) and are clipped.
OUT_OF_IMAGE_TOLERANCE_PX = 2.0


class LabelError(ValueError):
    """Raised when labelled data has problems and the reader was asked to stop on them."""

    def __init__(self, problems: list["Problem"], label_file: Path, headline: str | None = None):
        self.problems = problems
        lines = "".join(f"\n  {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        files = sorted({str(p.file) for p in problems}) or [str(label_file)]
        headline = headline or f"{len(problems)} problem(s) in {' and '.join(files)}:"
        super().__init__(
            f"{headline}{lines}{more}\n"
            f"Fix these lines (PPOCRLabel can re-open the folder), or set "
            f"split.on_label_error: skip in params.yaml to leave the bad images out and count them."
        )


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the labels, located by file and 1-based line number."""

    file: Path
    line: int
    message: str
    image: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True)
class TextLine:
    """One labelled box: its polygon in image pixels (clockwise, >= 4 points) and its transcription. The one
    labelled-line type, from the PPOCRLabel reader and the split's label files to the metrics and drawings."""

    points: tuple[tuple[float, float], ...]
    text: str
    difficult: bool = False

    @property
    def ignore(self) -> bool:
        """True for regions detection must not care about and recognition must leave out."""
        return self.difficult or self.text in IGNORE_TEXTS

    @property
    def box(self) -> np.ndarray:
        """The polygon as a (P, 2) float32 array."""
        return np.asarray(self.points, dtype=np.float32).reshape(-1, 2)


@dataclass
class LabeledImage:
    """An image and its text lines. ``key`` is the path as written in Label.txt (unique per image)."""

    key: str
    path: Path
    width: int
    height: int
    lines: list[TextLine]
    line_no: int


@dataclass
class LabelSet:
    """What ``load_ppocrlabel`` read: the usable images and a full account of what was left out and why."""

    label_file: Path
    images: list[LabeledImage]
    problems: list[Problem] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    skipped_images: int = 0

    @property
    def num_lines(self) -> int:
        return sum(len(im.lines) for im in self.images)

    def summary(self) -> dict:
        return {
            "images": len(self.images),
            "lines": self.num_lines,
            "ignore_lines": sum(line.ignore for im in self.images for line in im.lines),
            "unchecked_images": len(self.unchecked),
            "skipped_images": self.skipped_images,
            "problems": len(self.problems),
        }


def _image_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` of an image file, decoded as inference decodes it; None when it cannot be read."""
    try:
        image = read_image(path)
    except (FileNotFoundError, ImageReadError):
        return None
    return image.shape[1], image.shape[0]


def read_text_lines(path: Path, problems: list[Problem] | None = None) -> list[tuple[int, str]]:
    """The lines of a UTF-8 text file as ``(1-based line number, text)``; a byte-order mark is dropped.

    A line that is not valid UTF-8 is left out and reported as a Problem in ``problems`` (with its line and
    what to do); without ``problems`` it raises LabelError right away."""
    data = Path(path).read_bytes()
    try:
        return list(enumerate(data.decode("utf-8-sig").splitlines(), start=1))
    except UnicodeDecodeError:
        pass
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines, bad = [], []
    for line_no, raw in enumerate(data.splitlines(), start=1):
        try:
            lines.append((line_no, raw.decode("utf-8")))
        except UnicodeDecodeError as exc:
            bad.append(Problem(Path(path), line_no, (
                f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); the line is left out. "
                f"Re-save {Path(path).name} as UTF-8 (PPOCRLabel writes UTF-8; in an editor: save with encoding "
                f"UTF-8), e.g. `iconv -f latin1 -t utf-8`")))
    if problems is None:
        raise LabelError(bad, Path(path))
    problems.extend(bad)
    return lines


def read_file_state(state_file: Path, problems: list[Problem] | None = None) -> dict[str, bool]:
    """Map each image listed in fileState.txt to whether it was checked (state 1). A line that is not UTF-8
    goes to ``problems`` (its image counts as unchecked), or raises LabelError when ``problems`` is None."""
    states: dict[str, bool] = {}
    for _, raw in read_text_lines(state_file, problems):
        raw = raw.rstrip("\r\n")
        if not raw.strip():
            continue
        path, _, state = raw.rpartition("\t")
        if not path:
            path, state = raw, "0"
        states[path] = state.strip() == "1"
    return states


def _state_keys(key: str, abs_path: Path) -> list[str]:
    """The spellings under which fileState.txt may name an image: as in Label.txt, absolute, with either slash."""
    spellings = {key, str(abs_path), abs_path.as_posix(), os.path.normpath(str(abs_path))}
    return [s for s in spellings] + [s.replace("/", "\\") for s in spellings]


def _is_checked(states: dict[str, bool], key: str, abs_path: Path) -> bool:
    for spelling in _state_keys(key, abs_path):
        if spelling in states:
            return states[spelling]
    # PPOCRLabel writes absolute paths of the labelling machine; match on the last two path parts.
    tail = "/".join(Path(key).parts[-2:])
    for path, checked in states.items():
        if "/".join(Path(path.replace("\\", "/")).parts[-2:]) == tail:
            return checked
    return False


def _image_path(root: Path, key: str) -> Path:
    """Where the image of ``key`` is. PPOCRLabel keeps Label.txt inside the image folder and writes keys as
    ``<that folder's name>/<image>``; other layouts put Label.txt beside the image folder."""
    path = (root / key).resolve()
    parts = Path(key.replace("\\", "/")).parts
    if not path.exists() and len(parts) == 2 and parts[0] == root.name:
        return (root / parts[1]).resolve()
    return path


def polygon_area(points: np.ndarray) -> float:
    """The area of a polygon ``(P, 2)`` in square pixels (shoelace formula)."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _parse_box(box: object, index: int, width: int, height: int) -> tuple[TextLine | None, str | None]:
    """Validate one box of a Label.txt line. Returns (line, None) or (None, what is wrong)."""
    where = f"box {index + 1}"
    if not isinstance(box, dict):
        return None, f"{where} is {type(box).__name__}, expected an object with 'transcription' and 'points'"
    missing = [k for k in ("transcription", "points") if k not in box]
    if missing:
        return None, f"{where} has no {' or '.join(repr(k) for k in missing)} key"
    text = box["transcription"]
    if not isinstance(text, str):
        return None, f"{where} transcription is {type(text).__name__}, expected a string"
    if not text.strip():
        return None, f"{where} has an empty transcription; type the text, or '###' to mark an ignore region"
    if "\t" in text or "\n" in text or "\r" in text:
        return None, f"{where} transcription {text!r} contains a tab or line break, which label files cannot hold"
    try:
        points = np.asarray(box["points"], dtype=np.float64)
    except (TypeError, ValueError):
        return None, f"{where} points {box['points']!r} are not a list of [x, y] numbers"
    if points.ndim != 2 or points.shape[1] != 2:
        return None, f"{where} points {box['points']!r} are not a list of [x, y] pairs"
    if len(points) < 4:
        return None, f"{where} has {len(points)} point(s); a text box needs at least 4 (a quadrilateral)"
    if not np.all(np.isfinite(points)):
        return None, f"{where} has a non-finite coordinate"
    tol = OUT_OF_IMAGE_TOLERANCE_PX
    outside = (points[:, 0] < -tol) | (points[:, 0] > width - 1 + tol) | (points[:, 1] < -tol) | (
        points[:, 1] > height - 1 + tol
    )
    if outside.any():
        x, y = points[outside][0]
        return None, (
            f"{where} ({text!r}) has point ({x:g}, {y:g}) outside the {width}x{height} image; "
            f"redraw the box inside the image"
        )
    points[:, 0] = points[:, 0].clip(0, width - 1)
    points[:, 1] = points[:, 1].clip(0, height - 1)
    if polygon_area(points) < 1.0:
        return None, f"{where} ({text!r}) has zero area; redraw it around the text"
    difficult = bool(box.get("difficult", False))
    pts = tuple((float(x), float(y)) for x, y in points)
    return TextLine(points=pts, text=text, difficult=difficult), None


def load_ppocrlabel(
    label_file: str | os.PathLike,
    *,
    file_state: str | os.PathLike | None = "auto",
    on_error: str = "stop",
) -> LabelSet:
    """Read a PPOCRLabel ``Label.txt``; image paths are resolved relative to the label file's folder.

    ``file_state``: "auto" uses ``fileState.txt`` beside the label file when it exists (only checked images
    are read), None reads every image, or a path. ``on_error``: "stop" raises ``LabelError`` listing every
    problem with its file and line; "skip" leaves out each image that has a problem and reports it.
    """
    if on_error not in ("stop", "skip"):
        raise ValueError(f"on_error must be 'stop' or 'skip', got {on_error!r}")
    label_file = Path(label_file).resolve()
    if not label_file.is_file():
        raise FileNotFoundError(
            f"label file {label_file} not found; point split.input at the Label.txt that PPOCRLabel wrote "
            f"(it sits next to the image folder)"
        )
    root = label_file.parent
    result = LabelSet(label_file=label_file, images=[])
    states = None
    if file_state == "auto":
        auto = root / "fileState.txt"
        states = read_file_state(auto, result.problems) if auto.is_file() else None
    elif file_state is not None:
        states = read_file_state(Path(file_state), result.problems)
    state_problems = len(result.problems)

    seen: dict[str, int] = {}
    lines = read_text_lines(label_file, result.problems)
    result.skipped_images += len(result.problems) - state_problems  # each undecodable Label.txt line: one image
    for line_no, raw in lines:
        if not raw.strip():
            continue
        problems: list[str] = []
        key, sep, payload = raw.partition("\t")
        key = key.strip()
        if not sep or not key:
            result.problems.append(
                Problem(label_file, line_no, "expected '<image path><TAB><JSON list of boxes>', found no tab")
            )
            result.skipped_images += 1
            continue
        abs_path = _image_path(root, key)
        if states is not None and not _is_checked(states, key, abs_path):
            result.unchecked.append(key)
            continue
        if key in seen:
            result.problems.append(
                Problem(label_file, line_no, f"image {key!r} is labelled again (first at line {seen[key]})", key)
            )
            result.skipped_images += 1
            continue
        seen[key] = line_no
        try:
            boxes = json.loads(payload)
        except json.JSONDecodeError as exc:
            result.problems.append(Problem(label_file, line_no, f"the boxes of {key!r} are not valid JSON: {exc}", key))
            result.skipped_images += 1
            continue
        if not isinstance(boxes, list):
            result.problems.append(
                Problem(label_file, line_no, f"the boxes of {key!r} are a JSON {type(boxes).__name__}, expected a list", key)
            )
            result.skipped_images += 1
            continue
        if not abs_path.is_file():
            result.problems.append(
                Problem(label_file, line_no, f"image {key!r} not found at {abs_path}", key)
            )
            result.skipped_images += 1
            continue
        size = _image_size(abs_path)
        if size is None:
            result.problems.append(
                Problem(label_file, line_no, f"image {key!r} cannot be decoded (corrupt or not an image)", key)
            )
            result.skipped_images += 1
            continue
        width, height = size
        lines = []
        for i, box in enumerate(boxes):
            text_line, problem = _parse_box(box, i, width, height)
            if problem:
                problems.append(problem)
            else:
                lines.append(text_line)
        if problems:
            for message in problems:
                result.problems.append(Problem(label_file, line_no, f"{key}: {message}", key))
            result.skipped_images += 1
            continue
        result.images.append(LabeledImage(key, abs_path, width, height, lines, line_no))

    if result.problems and on_error == "stop":
        raise LabelError(result.problems, label_file)
    if not result.images:
        why = []
        if result.unchecked:
            why.append(f"{len(result.unchecked)} image(s) are not marked checked (1) in fileState.txt")
        if result.problems:
            why.append(f"{len(result.problems)} problem(s) left images out")
        reason = "; ".join(why) or "the file lists no images"
        raise LabelError(
            result.problems,
            label_file,
            headline=f"no usable labelled image in {label_file} ({reason}).",
        )
    return result
