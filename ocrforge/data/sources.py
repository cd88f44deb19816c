"""Training and evaluation datasets over PaddleOCR label files, transformed by the wheel's own data ops.

A label file has one sample a line, ``<image path relative to data_dir><TAB><label>``: the label is PPOCRLabel's
JSON box list for detection, the text for recognition. Transforms are PaddleOCR's ``Train.dataset.transforms``
list: the wheel's ops, plus those registered in ``ocrforge.registry.TRANSFORMS`` (ocrforge.data.transforms).

Determinism: every random choice a sample makes is seeded from ``(seed, epoch, index)``, so a sample is the
same whichever worker or process loads it and however many workers there are. That covers the global
``random`` and ``numpy.random`` (most of the wheel's ops draw from them), the generators an op keeps for itself
(``IaaAugment``'s albumentations pipeline has its own, which global seeds do not reach), the replacement of a
rejected sample and the extra samples ``RecConAug``/``CopyPaste`` mix in. ``set_epoch(epoch)`` moves to the
next epoch's draws.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import random
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import paddle

from ocrforge.data.label_check import LabelLine, read_label_file
from ocrforge.data.transforms import build_transforms
from ocrforge.data.wheel_compat import apply_wheel_fixes
from ocrforge.models.dictionary import load_dictionary
from ocrforge.registry import DATASETS
from ocrforge.seeding import derive_seed

MAX_REPLACEMENTS = 100


apply_wheel_fixes()


class _SeededGlobals:
    """Seed the global ``random`` and ``numpy.random`` (which the wheel's ops draw from) and restore them after."""

    def __init__(self, seed: int):
        self.seed = seed

    def __enter__(self):
        self._py_state = random.getstate()
        self._np_state = np.random.get_state()
        random.seed(self.seed)
        np.random.seed(self.seed)

    def __exit__(self, *exc):
        random.setstate(self._py_state)
        np.random.set_state(self._np_state)
        return False


def private_generators(ops: Sequence[Any]) -> list[tuple[Any, str]]:
    """``(op, attribute)`` for each random generator an op keeps in an attribute of its own: an albumentations
    pipeline (it has ``set_random_seed``) or a ``numpy.random.Generator``. Seeding the globals misses them."""
    found = []
    for op in ops:
        for name, value in vars(op).items():
            if isinstance(value, np.random.Generator) or callable(getattr(value, "set_random_seed", None)):
                found.append((op, name))
    return found


def reseed_private_generators(generators: list[tuple[Any, str]], seed: int) -> None:
    """Give every generator of :func:`private_generators` its own seed derived from ``seed``."""
    for number, (op, name) in enumerate(generators):
        value = getattr(op, name)
        own_seed = derive_seed(seed, number, 0xA1B)
        if isinstance(value, np.random.Generator):
            setattr(op, name, np.random.default_rng(own_seed))
        else:
            value.set_random_seed(own_seed)


class SampleRejected(Exception):
    """A transform returned None for a sample (label too long, crop failed, ...)."""

    def __init__(self, op_index: int):
        self.op_index = op_index


@DATASETS.register()
class SimpleDataSet(paddle.io.Dataset):
    """Samples of PaddleOCR label files, each run through the configured transforms.

    Args (PaddleOCR's ``dataset`` keys): ``data_dir`` (image paths in label files are relative to it),
    ``label_file_list``, ``transforms`` (the wheel's op list), ``ratio_list`` (fraction of each file to use,
    drawn once from ``seed``), ``delimiter``, ``ext_op_transform_idx`` (ops applied to the extra samples of
    ``RecConAug``/``CopyPaste``), ``lmdb_cache`` (path of a decoded-image cache, see ``lmdb_cache.py``).
    Keyword-only: ``global_config`` (``Global``: ``character_dict_path``, ``use_space_char``,
    ``max_text_length`` reach the label encoders), ``mode`` (``Train``/``Eval``), ``seed``.

    A sample is whatever the last op returns: with ``KeepKeys`` a list in ``keep_keys`` order. A sample that
    an op rejects (returns None) is replaced by another drawn from ``(seed, epoch, index)`` and counted in
    ``stats``; a missing image or an op that raises is an error naming the label file and line.
    """

    def __init__(
        self,
        data_dir: str,
        label_file_list: Sequence[str] | str,
        transforms: list[dict],
        ratio_list: float | Sequence[float] = 1.0,
        delimiter: str = "\t",
        ext_op_transform_idx: int = 2,
        lmdb_cache: str | None = None,
        ds_width: bool = False,
        *,
        global_config: dict | None = None,
        mode: str = "Train",
        seed: int = 0,
    ):
        super().__init__()
        if ds_width:
            raise NotImplementedError(
                "dataset.ds_width (batches grouped by aspect ratio) is not supported; remove it from the config"
            )
        if isinstance(label_file_list, (str, Path)):
            label_file_list = [label_file_list]
        if isinstance(ratio_list, (int, float)):
            ratio_list = [float(ratio_list)] * len(label_file_list)
        if len(ratio_list) != len(label_file_list):
            raise ValueError(
                f"dataset.ratio_list has {len(ratio_list)} entries but label_file_list has "
                f"{len(label_file_list)}; give one ratio per label file"
            )
        self.data_dir = str(data_dir)
        self.mode = mode
        self.seed = int(seed)
        self.epoch = 0
        self.delimiter = delimiter
        configured_ops = [next(iter(op)) for op in transforms if isinstance(op, dict) and op]
        json_labels = "DetLabelEncode" in configured_ops
        self.lines = self._read_lines(label_file_list, ratio_list, json_labels=json_labels)
        if not self.lines:
            raise ValueError(f"no samples in {list(label_file_list)}; the label files are empty")
        self.skipped_unknown_chars: list[str] = []
        if not json_labels and (global_config or {}).get("character_dict_path"):
            self._skip_unknown_chars(global_config, list(label_file_list))
        self._check_images_exist()

        self.ops = build_transforms(transforms, global_config)
        self.op_names = [type(op).__name__ for op in self.ops]
        self._generators = private_generators(self.ops)
        self.keep_keys = list(getattr(self.ops[-1], "keep_keys", [])) if self.ops else []
        self.unscored_labels: list[str] = []
        if mode == "Eval" and not json_labels:
            self._leave_out_unencodable()
        self.ext_op_transform_idx = int(ext_op_transform_idx)
        self.ext_data_num = next((int(op.ext_data_num) for op in self.ops if hasattr(op, "ext_data_num")), 0)

        self.cache = None
        self._first_op = 0
        if lmdb_cache:
            from ocrforge.data.lmdb_cache import open_or_build_cache

            if not self.ops or self.op_names[0] != "DecodeImage":
                raise ValueError(
                    "dataset.lmdb_cache stores decoded images, so the first transform must be DecodeImage; "
                    f"got {self.op_names[:1]}"
                )
            self.cache = open_or_build_cache(
                lmdb_cache, self.data_dir, sorted({ln.image for ln in self.lines}), self.ops[0]
            )
            self._first_op = 1

        # Counters shared with DataLoader workers (forked): one per op (rejections), then samples served.
        self._counts = multiprocessing.Array("q", len(self.ops) + 1)

    # ----------------------------------------------------------------------------------------- reading
    def _read_lines(self, label_files: Sequence[str], ratios: Sequence[float], json_labels: bool) -> list[LabelLine]:
        lines: list[LabelLine] = []
        for file_no, (path, ratio) in enumerate(zip(label_files, ratios)):
            file_lines = read_label_file(path, self.delimiter, json_labels)
            if ratio < 1.0:
                keep = round(len(file_lines) * ratio)
                rng = np.random.default_rng([self.seed, file_no])
                chosen = sorted(rng.choice(len(file_lines), size=keep, replace=False).tolist())
                file_lines = [file_lines[i] for i in chosen]
            lines.extend(file_lines)
        return lines

    def _skip_unknown_chars(self, global_config: dict, label_files: list) -> None:
        """Leave out recognition labels that hold a character outside the dictionary, as the split stage says.

        PaddleOCR's encoders would delete such characters and train on the rest (``café`` as ``caf``), which
        teaches the model to read a text that is not in the image. ``skipped_unknown_chars`` keeps their
        ``file:line``.
        """
        known = set(load_dictionary(global_config["character_dict_path"], bool(global_config.get("use_space_char"))))
        kept = []
        for line in self.lines:
            if all(ch in known for ch in line.label):
                kept.append(line)
            else:
                self.skipped_unknown_chars.append(line.where)
        if not kept:
            raise ValueError(
                f"every label in {label_files} holds a character outside the dictionary "
                f"{global_config['character_dict_path']} (first at {self.skipped_unknown_chars[0]}), so none can "
                f"be trained on; add the characters to the dictionary (dictionary.character_dict_path in params.yaml)"
            )
        self.lines = kept

    def _leave_out_unencodable(self) -> None:
        """Validation: leave out the labels the label encoders refuse (too long for ``max_text_length``), and
        keep their ``file:line`` in ``unscored_labels``. Replacing them by other samples, as training does,
        would score some crops twice and the refused ones never, while the metric claims the whole split."""
        encoders = [op for op in self.ops if type(op).__name__.endswith("LabelEncode")]
        if not encoders:
            return
        kept = []
        for line in self.lines:
            data = {"label": line.label, "image": None, "img_path": line.image}
            for op in encoders:
                data = op(data) if data is not None else None
            if data is None:
                self.unscored_labels.append(line.where)
            else:
                kept.append(line)
        if not kept:
            raise ValueError(
                f"every validation label ({self.unscored_labels[0]} and the rest) is refused by the label encoder: "
                f"raise dictionary.max_text_length in params.yaml above the longest label"
            )
        self.lines = kept

    def _check_images_exist(self) -> None:
        missing = [ln for ln in self.lines if not os.path.isfile(os.path.join(self.data_dir, ln.image))]
        if missing:
            shown = "; ".join(f"{ln.where}: {os.path.join(self.data_dir, ln.image)}" for ln in missing[:5])
            raise FileNotFoundError(
                f"{len(missing)} image(s) named in the label files do not exist under data_dir "
                f"{self.data_dir!r}: {shown}. Re-run the split stage or fix data_dir."
            )

    def aspect_ratios(self) -> np.ndarray:
        """Each sample's image width / height, read from the file headers (once; not decoded), for samplers
        that size batches by the images (``MultiScaleSampler`` with ``reading_width``)."""
        if getattr(self, "_aspect_ratios", None) is None:
            from PIL import Image

            ratios = np.empty(len(self.lines), dtype=np.float64)
            for i, line in enumerate(self.lines):
                path = os.path.join(self.data_dir, line.image)
                try:
                    with Image.open(path) as image:
                        width, height = image.size
                except (OSError, ValueError) as exc:
                    raise ValueError(f"{line.where}: cannot read the size of image {path}: {exc}; replace or "
                                     f"remove the image and re-run the split stage") from None
                ratios[i] = width / float(max(1, height))
            self._aspect_ratios = ratios
        return self._aspect_ratios

    def _load(self, line: LabelLine) -> dict:
        """The raw sample dict the ops start from: encoded bytes, or the decoded image from the cache."""
        img_path = os.path.join(self.data_dir, line.image)
        if self.cache is not None:
            image = self.cache.get(line.image)
        else:
            try:
                with open(img_path, "rb") as fh:
                    image = fh.read()
            except OSError as exc:
                raise FileNotFoundError(f"{line.where}: cannot read image {img_path}: {exc}") from None
        return {"img_path": img_path, "filename": img_path, "label": line.label, "image": image}

    # ----------------------------------------------------------------------------------------- transforms
    def _apply(self, data: dict | None, start: int, stop: int, line: LabelLine) -> Any:
        """Run ops[start:stop]; raise SampleRejected with the op's index when one returns None."""
        if data["image"] is None:  # the cache holds an image DecodeImage could not decode
            raise SampleRejected(0)
        for op_index in range(start, stop):
            try:
                data = self.ops[op_index](data)
            except Exception as exc:  # noqa: BLE001 - re-raised with the sample's location
                raise RuntimeError(
                    f"{line.where}: transform {self.op_names[op_index]} failed on "
                    f"{os.path.join(self.data_dir, line.image)}: {type(exc).__name__}: {exc}"
                ) from exc
            if data is None:
                raise SampleRejected(op_index)
        return data

    def _ext_data(self, rng: np.random.Generator) -> list[dict]:
        """Extra decoded samples for ops with ``ext_data_num`` (RecConAug, CopyPaste)."""
        extra: list[dict] = []
        stop = max(self._first_op, self.ext_op_transform_idx)
        for _ in range(self.ext_data_num * 10):
            if len(extra) >= self.ext_data_num:
                break
            line = self.lines[int(rng.integers(len(self.lines)))]
            try:
                data = self._apply(self._load(line), self._first_op, stop, line)
            except SampleRejected:
                continue
            if "polys" in data and np.asarray(data["polys"]).ndim == 3 and data["polys"].shape[1] != 4:
                continue
            extra.append(data)
        return extra

    def _transform(self, data: dict, line: LabelLine, scale: tuple[int, int] | None) -> Any:
        return self._apply(data, self._first_op, len(self.ops), line)

    def _sample(self, index: int, scale: tuple[int, int] | None = None) -> Any:
        """Transformed sample ``index``, replacing rejected ones deterministically."""
        n = len(self.lines)
        current = index
        for attempt in range(MAX_REPLACEMENTS + 1):
            line = self.lines[current]
            sample_seed = derive_seed(self.seed, self.epoch, index, attempt)
            with _SeededGlobals(sample_seed):
                reseed_private_generators(self._generators, sample_seed)
                try:
                    data = self._load(line)
                    if self.ext_data_num:
                        data["ext_data"] = self._ext_data(np.random.default_rng(sample_seed))
                    out = self._transform(data, line, scale)
                except SampleRejected as rejected:
                    with self._counts.get_lock():
                        self._counts[rejected.op_index] += 1
                    current = int(np.random.default_rng([self.seed, self.epoch, index, attempt, 7]).integers(n))
                    continue
            with self._counts.get_lock():
                self._counts[-1] += 1
            return out
        raise RuntimeError(
            f"{MAX_REPLACEMENTS + 1} samples in a row were rejected by the transforms (starting at "
            f"{self.lines[index].where}); run `check_rec_labels` on the label files and check max_text_length, "
            f"the dictionary and the crop sizes. Rejections so far: {self.stats['rejected']}"
        )

    def __getitem__(self, index: int) -> Any:
        if isinstance(index, (tuple, list)):
            raise TypeError(
                f"{type(self).__name__} takes an int index, got {index!r}; a (width, height, index) tuple "
                f"is for MultiScaleDataSet"
            )
        return self._sample(int(index))

    def __len__(self) -> int:
        return len(self.lines)

    # ----------------------------------------------------------------------------------------- epochs, stats
    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s random draws (augmentations, replacements)."""
        self.epoch = int(epoch)

    @property
    def stats(self) -> dict:
        """``{"samples": lines, "served": n, "rejected": {op name: n}, "rejected_total": n}``, all workers."""
        counts = list(self._counts[:])
        rejected: dict[str, int] = {}
        for name, count in zip(self.op_names, counts[:-1]):
            if count:
                rejected[name] = rejected.get(name, 0) + int(count)
        return {
            "samples": len(self.lines),
            "served": int(counts[-1]),
            "rejected": rejected,
            "rejected_total": int(sum(counts[:-1])),
        }

    def reset_stats(self) -> None:
        with self._counts.get_lock():
            for i in range(len(self._counts)):
                self._counts[i] = 0


def resize_norm_padded(image: np.ndarray, width: int, height: int) -> tuple[np.ndarray, float]:
    """Resize an HWC uint8 image to ``height`` keeping its aspect ratio (width capped at ``width``), scale to
    ``(x/255 - 0.5)/0.5`` and right-pad with zeros, as PaddleOCR's ``RecResizeImg``.

    Returns the ``(3, height, width)`` float32 image and ``valid_ratio`` = resized width / ``width``.
    """
    h, w = image.shape[:2]
    resized_w = min(width, int(math.ceil(height * w / float(h))))
    resized = cv2.resize(image, (resized_w, height)).astype(np.float32)
    if resized.ndim == 2:
        resized = resized[:, :, None]
    resized = (resized.transpose((2, 0, 1)) / 255.0 - 0.5) / 0.5
    out = np.zeros((resized.shape[0], height, width), dtype=np.float32)
    out[:, :, :resized_w] = resized
    return out, min(1.0, resized_w / float(width))


@DATASETS.register()
class MultiScaleDataSet(SimpleDataSet):
    """Recognition samples resized to the scale the ``MultiScaleSampler`` picks for each batch.

    The index is a tuple ``(width, height, index)``. The transforms run up to the last op (normally
    ``KeepKeys``), then the image is resized with ``resize_norm_padded`` to ``(3, height, width)`` and
    ``valid_ratio`` is set, then the last op runs. So the transforms must not resize themselves.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if len(self.ops) - self._first_op < 1 or self.op_names[-1] != "KeepKeys":
            raise ValueError(
                "MultiScaleDataSet resizes before the last transform, which must be KeepKeys; "
                f"got transforms {self.op_names}"
            )

    def _transform(self, data: dict, line: LabelLine, scale: tuple[int, int] | None) -> Any:
        width, height = scale
        last = len(self.ops) - 1
        data = self._apply(data, self._first_op, last, line)
        data["image"], data["valid_ratio"] = resize_norm_padded(data["image"], width, height)
        return self._apply(data, last, last + 1, line)

    def __getitem__(self, index: Any) -> Any:
        if not isinstance(index, (tuple, list)) or len(index) < 3:
            raise TypeError(
                f"MultiScaleDataSet needs (width, height, index) from a MultiScaleSampler, got {index!r}; "
                f"set Train.sampler.name: MultiScaleSampler (or use SimpleDataSet with RecResizeImg)"
            )
        width, height, idx = int(index[0]), int(index[1]), int(index[2])
        return self._sample(idx, (width, height))
