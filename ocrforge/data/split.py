"""Split a labelled set into train/val/test by source image and write PaddleOCR's det and rec label files.

Replaces PPOCRLabel's ``gen_ocr_train_val_test.py`` and fixes its faults: any positive integer ratio, a seed,
splitting by *source image* (a recognition crop always lands in the split of the image it was cut from, so
nothing leaks between detection and recognition splits), and no deletion outside its own output folder.

Output layout under ``out_dir`` (PaddleOCR's ``data_dir``; every path in a label file is relative to it)::

    det/images/<name>            copies of the source images
    det/{train,val,test}.txt     det/images/<name><TAB>[{"transcription", "points", "difficult"}, ...]
    rec/{train,val,test}/<name>  text-line crops (PNG)
    rec/{train,val,test}.txt     rec/<split>/<name><TAB><text>
    rec/train_context/<name>     the train crops with image around them (CONTEXT_MARGIN; RecBoxJitter cuts them)
    rec/train_context.txt        rec/train_context/<name><TAB><text>
    summary.json                 counts per split and the dictionary check
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ocrforge.data.crop import CONTEXT_MARGIN, crop_text_line
from ocrforge.data.images import read_image
from ocrforge.data.ppocrlabel import LabeledImage, LabelSet, polygon_area

SPLITS = ("train", "val", "test")
MARKER = ".ocrforge-split"

# A folder of single-line crops (plates, text lines): this share of its images hold exactly one box that covers
# this share of the image.
CROP_IMAGE_SHARE = 0.9
CROP_BOX_COVER = 0.9
SINGLE_LINE_CROPS = "single_line_crops"
SCENES = "scenes"


@dataclass(frozen=True)
class SplitRatio:
    train: int
    val: int
    test: int

    @classmethod
    def parse(cls, ratio: str | list | tuple) -> "SplitRatio":
        """Parse ``"6:2:2"`` or ``[6, 2, 2]``; each part a positive integer."""
        parts = ratio.split(":") if isinstance(ratio, str) else list(ratio)
        values = []
        for part in parts:
            text = str(part).strip()
            if isinstance(part, bool) or not text.isdigit() or int(text) <= 0:
                values = []
                break
            values.append(int(text))
        if len(values) != 3:
            raise ValueError(f"split ratio {ratio!r} must be three positive integers train:val:test, e.g. 6:2:2")
        return cls(*values)

    def counts(self, n: int) -> dict[str, int]:
        """Images per split for ``n`` images: largest-remainder rounding, every split non-empty when n >= 3."""
        weights = np.array([self.train, self.val, self.test], dtype=np.float64)
        exact = n * weights / weights.sum()
        counts = np.floor(exact).astype(int)
        for i in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
            counts[i] += 1
        if n >= 3:
            for i in range(3):
                if counts[i] == 0:
                    donor = int(np.argmax(counts))
                    counts[donor] -= 1
                    counts[i] += 1
        return dict(zip(SPLITS, (int(c) for c in counts)))


def assign_splits(images: list[LabeledImage], ratio: SplitRatio, seed: int) -> dict[str, list[LabeledImage]]:
    """Shuffle the images with ``seed`` (independent of the input order) and cut them by ``ratio``."""
    ordered = sorted(images, key=lambda im: im.key)
    order = np.random.default_rng(seed).permutation(len(ordered))
    shuffled = [ordered[i] for i in order]
    counts = ratio.counts(len(shuffled))
    out, start = {}, 0
    for name in SPLITS:
        out[name] = sorted(shuffled[start : start + counts[name]], key=lambda im: im.key)
        start += counts[name]
    return out


def flat_name(key: str, taken: set[str]) -> str:
    """A file name for an image key (``a/b/c.jpg`` -> ``a__b__c.jpg``) unique among ``taken``."""
    name = key.replace("\\", "/").strip("/").replace("/", "__")
    if name in taken:
        stem, dot, ext = name.rpartition(".")
        digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]
        name = f"{stem}_{digest}.{ext}" if dot else f"{name}_{digest}"
    taken.add(name)
    return name


def box_cover(image: LabeledImage, line) -> float:
    """The share of ``image`` that ``line``'s box covers (1.0: corner to corner, pixel centres 0 to size - 1)."""
    extent = max(image.width - 1, 1) * max(image.height - 1, 1)
    return polygon_area(np.asarray(line.points, dtype=np.float64)) / extent


def dataset_layout(images: list[LabeledImage]) -> dict:
    """``single_line_crops`` when at least 90% of the images hold exactly one box covering at least 90% of the
    image (a folder of plate or text-line crops), else ``scenes``; with the counts and, for crops, a warning.

    On such crops the detector learns to outline the whole image: its hmean, and the end-to-end figures built
    on its boxes, measure that convention, not reading; the recogniser's accuracy is the figure to read.
    """
    whole = sum(len(im.lines) == 1 and box_cover(im, im.lines[0]) >= CROP_BOX_COVER for im in images)
    crops = bool(images) and whole >= CROP_IMAGE_SHARE * len(images)
    warning = None
    if crops:
        warning = (f"{whole} of {len(images)} images hold a single box covering at least {CROP_BOX_COVER:.0%} of "
                   f"the image: a folder of single-line crops. Detection and end-to-end figures on it (train_det, "
                   f"distill_det, eval's det and e2e) measure how the boxes were drawn, not reading: read the "
                   f"recogniser's accuracy (train_rec val acc, eval rec acc)")
    return {"layout": SINGLE_LINE_CROPS if crops else SCENES, "images": len(images), "single_box_images": whole,
            "warning": warning}


def dictionary_report(texts: list[tuple[str, str]], chars: list[str], max_text_length: int) -> dict:
    """Characters of ``(location, text)`` labels that are missing from ``chars``, and labels too long."""
    known = set(chars)
    missing: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    too_long: list[str] = []
    for where, text in texts:
        for ch in text:
            if ch not in known:
                missing[ch] += 1
                examples.setdefault(ch, [])
                if len(examples[ch]) < 3:
                    examples[ch].append(where)
        if len(text) > max_text_length:
            too_long.append(where)
    return {
        "missing_chars": {ch: {"count": n, "examples": examples[ch]} for ch, n in missing.most_common()},
        "labels_with_missing_chars": sum(any(ch not in known for ch in t) for _, t in texts),
        "labels_too_long": len(too_long),
        "too_long_examples": too_long[:5],
        "max_text_length": max_text_length,
    }


def _prepare_out_dir(out_dir: Path, source_dir: Path) -> None:
    out_dir = out_dir.resolve()
    source_dir = source_dir.resolve()
    if out_dir == source_dir or out_dir in source_dir.parents:
        raise ValueError(f"split output {out_dir} contains the input folder {source_dir}; choose another output folder")
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MARKER).exists():
        raise FileExistsError(
            f"{out_dir} is not empty and was not written by the split stage; choose an empty or new folder "
            f"(the split never deletes files it did not write)"
        )
    for sub in ("det", "rec"):
        if (out_dir / sub).exists():
            shutil.rmtree(out_dir / sub)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER).write_text("written by ocrforge split; safe to delete with this folder\n")


def split_dataset(
    label_set: LabelSet,
    out_dir: str | Path,
    *,
    ratio: SplitRatio | str = "6:2:2",
    seed: int = 0,
    chars: list[str] | None = None,
    max_text_length: int = 25,
) -> dict:
    """Split ``label_set`` by source image and write the det/rec label files and crops. Returns the summary."""
    ratio = SplitRatio.parse(ratio) if isinstance(ratio, str) else ratio
    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir, label_set.label_file.parent)
    assignment = assign_splits(label_set.images, ratio, seed)

    det_dir = out_dir / "det" / "images"
    det_dir.mkdir(parents=True)
    taken: set[str] = set()
    summary: dict = {"seed": seed, "ratio": f"{ratio.train}:{ratio.val}:{ratio.test}", "splits": {}}
    rec_texts: list[tuple[str, str]] = []
    for split in SPLITS:
        rec_dir = out_dir / "rec" / split
        rec_dir.mkdir(parents=True)
        # the recogniser trains on context crops (RecBoxJitter); val and test score exact crops
        context_dir = out_dir / "rec" / "train_context" if split == "train" else None
        if context_dir:
            context_dir.mkdir(parents=True)
        det_rows, rec_rows, context_rows = [], [], []
        ignored = 0
        for image in assignment[split]:
            name = flat_name(image.key, taken)
            shutil.copyfile(image.path, det_dir / name)
            boxes = [
                {
                    "transcription": line.text,
                    "points": [[round(x, 2), round(y, 2)] for x, y in line.points],
                    "difficult": line.difficult,
                }
                for line in image.lines
            ]
            det_rows.append(f"det/images/{name}\t{json.dumps(boxes, ensure_ascii=False)}")
            pixels = read_image(image.path)
            stem = name.rsplit(".", 1)[0]
            for index, line in enumerate(image.lines):
                if line.ignore:
                    ignored += 1
                    continue
                crop_name = f"{stem}_{index:03d}.png"
                _write_png(crop_text_line(pixels, np.array(line.points)), rec_dir / crop_name, image.key, index)
                rec_rows.append(f"rec/{split}/{crop_name}\t{line.text}")
                if context_dir:
                    _write_png(crop_text_line(pixels, np.array(line.points), CONTEXT_MARGIN),
                               context_dir / crop_name, image.key, index)
                    context_rows.append(f"rec/train_context/{crop_name}\t{line.text}")
                rec_texts.append((f"{label_set.label_file}:{image.line_no} box {index + 1}", line.text))
        (out_dir / "det" / f"{split}.txt").write_text("".join(r + "\n" for r in det_rows), encoding="utf-8")
        (out_dir / "rec" / f"{split}.txt").write_text("".join(r + "\n" for r in rec_rows), encoding="utf-8")
        if context_dir:
            (out_dir / "rec" / "train_context.txt").write_text("".join(r + "\n" for r in context_rows),
                                                               encoding="utf-8")
        summary["splits"][split] = {
            "images": len(assignment[split]),
            "det_boxes": sum(len(im.lines) for im in assignment[split]),
            "ignore_boxes": ignored,
            "rec_crops": len(rec_rows),
        }
    summary["input"] = label_set.summary()
    summary["layout"] = dataset_layout(label_set.images)
    summary["unchecked_examples"] = label_set.unchecked[:5]
    summary["problems"] = [str(p) for p in label_set.problems]
    if chars is not None:
        summary["dictionary"] = dictionary_report(rec_texts, chars, max_text_length)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary


def _write_png(crop: np.ndarray, path: Path, key: str, index: int) -> None:
    ok, encoded = cv2.imencode(".png", crop)
    if not ok:
        raise RuntimeError(f"could not encode the crop of {key} box {index + 1}")
    encoded.tofile(str(path))


def format_summary(summary: dict) -> str:
    """A few lines for the log: counts per split and what the dictionary check found."""
    lines = [f"split {summary['ratio']} (seed {summary['seed']}):"]
    for name, c in summary["splits"].items():
        lines.append(
            f"  {name:5s} {c['images']:5d} images {c['det_boxes']:6d} boxes {c['rec_crops']:6d} crops "
            f"({c['ignore_boxes']} ignore boxes)"
        )
    layout = summary.get("layout")
    if layout:
        lines.append(f"  layout: {layout['layout']} ({layout['single_box_images']} of {layout['images']} images "
                     f"hold a single box covering at least {CROP_BOX_COVER:.0%} of the image)")
    inp = summary["input"]
    if inp["unchecked_images"] or inp["skipped_images"]:
        lines.append(
            f"  left out: {inp['unchecked_images']} unchecked image(s), {inp['skipped_images']} with problems"
        )
    for problem in summary["problems"][:20]:
        lines.append(f"  skipped: {problem}")
    report = summary.get("dictionary")
    if report:
        if report["missing_chars"]:
            shown = ", ".join(f"{ch!r} x{v['count']}" for ch, v in list(report["missing_chars"].items())[:20])
            lines.append(
                f"  {report['labels_with_missing_chars']} label(s) use characters missing from the dictionary: {shown}"
                f" (first at {next(iter(report['missing_chars'].values()))['examples'][0]}); add them to the"
                f" dictionary or those labels will be skipped in recognition training and validation"
            )
        if report["labels_too_long"]:
            lines.append(
                f"  {report['labels_too_long']} label(s) longer than max_text_length={report['max_text_length']}"
                f" (e.g. {report['too_long_examples'][0]}); they will be skipped in recognition training"
            )
    return "\n".join(lines)
