"""Check recognition labels against the dictionary and ``max_text_length`` before training.

PaddleOCR's label encoders treat such labels silently: a text longer than ``max_text_length`` is dropped from
training, a character outside the dictionary would be deleted from the text (ocrforge's datasets skip such a
label instead, see ``SimpleDataSet``: training on ``caf`` for an image of ``café`` teaches a wrong reading), and
the GTC/NRTR branch of ``MultiLabelEncode`` also drops texts of ``max_text_length - 1`` or more
in-dictionary characters. This report says how many labels that affects and where they are.

Also home of ``read_label_file``, the label-file parser the datasets use (kept here, free of paddle).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

MAX_LOCATIONS = 5


@dataclass(frozen=True)
class LabelLine:
    """One sample: where it was read (``label_file``:``line_no``, 1-based) and what it says."""

    label_file: str
    line_no: int
    image: str  # path relative to data_dir, as written in the label file
    label: str

    @property
    def where(self) -> str:
        return f"{self.label_file}:{self.line_no}"


def read_label_file(path: str | Path, delimiter: str = "\t", json_labels: bool = False) -> list[LabelLine]:
    """Parse a PaddleOCR label file; a malformed line raises ValueError naming ``file:line``.

    The line is split at the first ``delimiter`` (a recognition text may itself hold the delimiter). With
    ``json_labels`` (detection label files) the label must be valid JSON.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"label file {path} not found; check Train/Eval.dataset.label_file_list")
    lines = []
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}:{line_no}: not UTF-8 ({exc}); re-save the label file as UTF-8") from None
            if not text.strip():
                continue
            image, sep, label = text.partition(delimiter)
            if not sep or not image.strip():
                raise ValueError(
                    f"{path}:{line_no}: expected '<image path>{delimiter!r}<label>', got {text[:80]!r}; "
                    f"fix the line or set dataset.delimiter"
                )
            if json_labels:
                try:
                    json.loads(label)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{line_no}: the detection label is not valid JSON ({exc})") from None
            lines.append(LabelLine(path, line_no, image, label))
    return lines


def label_alphabet(label_files: Sequence[str | Path]) -> str:
    """Every character the labels of ``label_files`` (recognition label files) use, sorted, once each."""
    return "".join(sorted({c for path in label_files for line in read_label_file(path) for c in line.label}))


@dataclass
class RecLabelReport:
    """Counts of problem labels, with the first ``MAX_LOCATIONS`` ``file:line`` locations of each."""

    max_text_length: int
    labels: int = 0
    empty: list[str] = field(default_factory=list)
    too_long: list[str] = field(default_factory=list)
    too_long_for_nrtr: list[str] = field(default_factory=list)
    with_unknown_chars: list[str] = field(default_factory=list)
    only_unknown_chars: list[str] = field(default_factory=list)
    unknown_chars: Counter = field(default_factory=Counter)
    counts: Counter = field(default_factory=Counter)

    def _add(self, kind: str, where: str) -> None:
        self.counts[kind] += 1
        locations = getattr(self, kind)
        if len(locations) < MAX_LOCATIONS:
            locations.append(where)

    @property
    def ok(self) -> bool:
        """True when no label is dropped or altered by the encoders."""
        return not any(self.counts.values())

    def format(self) -> str:
        """A few lines for the training log."""
        lines = [f"label check: {self.labels} recognition labels, max_text_length {self.max_text_length}"]
        if self.ok:
            lines.append("  all labels fit the dictionary and the length limit")
            return "\n".join(lines)
        described = [
            ("empty", "empty text (dropped)"),
            ("too_long", f"longer than {self.max_text_length} characters (dropped)"),
            ("too_long_for_nrtr", f"{self.max_text_length - 1}+ known characters (dropped by MultiLabelEncode)"),
            ("with_unknown_chars", "with characters outside the dictionary (skipped)"),
            ("only_unknown_chars", "with no dictionary character at all (skipped)"),
        ]
        for kind, text in described:
            if self.counts[kind]:
                where = ", ".join(getattr(self, kind))
                more = " ..." if self.counts[kind] > MAX_LOCATIONS else ""
                lines.append(f"  {self.counts[kind]} {text}: {where}{more}")
        if self.unknown_chars:
            shown = " ".join(f"{ch!r}x{n}" for ch, n in self.unknown_chars.most_common(30))
            lines.append(f"  characters outside the dictionary: {shown}")
        return "\n".join(lines)


def check_rec_labels(
    label_files: Sequence[str | Path] | str | Path,
    chars: Sequence[str],
    max_text_length: int,
    delimiter: str = "\t",
) -> RecLabelReport:
    """Count recognition labels the encoders would drop or alter.

    ``chars`` is the dictionary in class order (``ocrforge.resources.read_dictionary``, space included when
    ``use_space_char``). A label file line is ``<image><delimiter><text>``; a malformed line raises
    ValueError naming ``file:line``.
    """
    if isinstance(label_files, (str, Path)):
        label_files = [label_files]
    known = set(chars)
    report = RecLabelReport(max_text_length=int(max_text_length))
    for path in label_files:
        for line in read_label_file(path, delimiter):
            report.labels += 1
            text = line.label
            if not text:
                report._add("empty", line.where)
                continue
            unknown = [ch for ch in text if ch not in known]
            n_known = len(text) - len(unknown)
            if len(text) > max_text_length:
                report._add("too_long", line.where)
            elif n_known >= max_text_length - 1:
                report._add("too_long_for_nrtr", line.where)
            if unknown:
                report.unknown_chars.update(unknown)
                report._add("only_unknown_chars" if n_known == 0 else "with_unknown_chars", line.where)
    return report
