"""Off-the-shelf OCR models as anchors: PP-OCRv4 (rapidocr_onnxruntime) and PP-OCRv6 small (rapidocr 3.x).

Neither is trained on the user's data; they show what a user gets without fine-tuning. Each runs through
its own package's pipeline (its own resize, thresholds and dictionary), on the ONNX files shipped inside
the installed wheel: nothing is downloaded.

- :func:`ppocrv4_model_files` / :func:`ppocrv6_model_files`: the det and rec ONNX files in the installed
  packages, with an error naming what to install when they are missing;
- :func:`onnx_dictionary`: a recogniser's characters from its ONNX metadata (key ``character``);
- :class:`RapidOCREngine` (PP-OCRv4) and :class:`RapidOCRv6Engine` (PP-OCRv6 small): benchmark engines with
  the interface of :mod:`ocrforge.benchmark`'s (``name``, ``label``, ``read``, ``detect``, ``recognize``,
  ``recognize_one``); :data:`ANCHORS` and :func:`build_anchor` build them by the names params.yaml uses.
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Sequence

import numpy as np

PPOCRV4_PACKAGE = "rapidocr_onnxruntime"
PPOCRV4_FILES = {"det": "ch_PP-OCRv4_det_infer.onnx", "rec": "ch_PP-OCRv4_rec_infer.onnx"}
PPOCRV6_PACKAGE = "rapidocr"
PPOCRV6_FILES = {"det": "PP-OCRv6_det_small.onnx", "rec": "PP-OCRv6_rec_small.onnx"}
DICTIONARY_KEY = "character"


def _package_models_dir(package: str, install_hint: str) -> Path:
    """``<package>/models`` of the installed ``package``, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"{package} is not installed; {install_hint}")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def _model_files(package: str, names: dict, install_hint: str) -> dict[str, Path]:
    models = _package_models_dir(package, install_hint)
    files = {kind: models / name for kind, name in names.items()}
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} not found in the installed {package} "
                                f"{_version(package)}; {install_hint}")
    return files


def ppocrv4_model_files() -> dict[str, Path]:
    """``{"det": ..., "rec": ...}``: the PP-OCRv4 ONNX files shipped in the rapidocr_onnxruntime wheel."""
    return _model_files(PPOCRV4_PACKAGE, PPOCRV4_FILES,
                        "pip install rapidocr_onnxruntime==1.4.4 (its wheel ships the PP-OCRv4 det/rec ONNX files)")


def ppocrv6_model_files() -> dict[str, Path]:
    """``{"det": ..., "rec": ...}``: the PP-OCRv6 small ONNX files shipped in the rapidocr 3.x wheel."""
    return _model_files(PPOCRV6_PACKAGE, PPOCRV6_FILES,
                        "pip install rapidocr==3.10.0 (its wheel ships PP-OCRv6_det_small.onnx and "
                        "PP-OCRv6_rec_small.onnx; rapidocr_onnxruntime is another package)")


def onnx_dictionary(onnx_file: str | Path, key: str = DICTIONARY_KEY) -> list[str]:
    """The recogniser's characters stored in the ONNX metadata ``key``, one per line, in CTC class order
    (class 0 is the blank, class i the i-th character; RapidOCR appends a space as the last class)."""
    import onnx

    model = onnx.load(str(onnx_file), load_external_data=False)
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    if key not in metadata:
        raise KeyError(f"{onnx_file} has no metadata key {key!r} (keys: {sorted(metadata)}); a recogniser "
                       f"exported for RapidOCR stores its dictionary there, one character per line")
    return metadata[key].splitlines()


def engine_charset(onnx_file: str | Path) -> set[str]:
    """Every character RapidOCR can output with this recogniser: its dictionary plus the space it appends."""
    return set(onnx_dictionary(onnx_file)) | {" "}


def dictionary_coverage(charset: set[str], texts: Sequence[str], case_sensitive: bool = True) -> dict:
    """How far ``texts`` can be read at all with ``charset``: ``chars`` (fraction of the texts' characters,
    counted with repeats, in it) and ``lines`` (fraction of texts wholly inside it). Compared case-folded
    (a character counts when its upper or lower case is in the set) unless ``case_sensitive``."""
    def known(char: str) -> bool:
        return char in charset or (not case_sensitive and (char.lower() in charset or char.upper() in charset))

    chars = [known(c) for text in texts for c in text]
    lines = [all(known(c) for c in text) for text in texts]
    missing = sorted({c for text in texts for c in text if not known(c)})
    return {"chars": sum(chars) / len(chars) if chars else 1.0,
            "lines": sum(lines) / len(lines) if lines else 1.0,
            "missing": "".join(missing)}


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


# ---------------------------------------------------------------------------- engines


class RapidOCREngine:
    """PP-OCRv4 off the shelf: ``rapidocr_onnxruntime.RapidOCR`` with the det/rec ONNX models of its wheel
    (Chinese + English dictionary of 6,623 characters), its own defaults (det: shorter side resized to 736),
    no angle classifier. ``threads``: onnxruntime intra-op threads of each session."""

    name = "rapidocr"
    version = "PP-OCRv4"

    def __init__(self, threads: int):
        files = ppocrv4_model_files()
        from rapidocr_onnxruntime import RapidOCR

        self.model_files = files
        self.engine = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1)  # runs ``files``
        self.threads = threads
        self.package = f"{PPOCRV4_PACKAGE} {_version(PPOCRV4_PACKAGE)}"
        self.label = f"{self.package} (its PP-OCRv4 ONNX models), onnxruntime {_version('onnxruntime')}, " \
                     f"{threads} thread(s)"

    def sessions(self) -> dict:
        """The onnxruntime sessions, ``{"det": ..., "rec": ...}``."""
        return {"det": self.engine.text_det.infer.session, "rec": self.engine.text_rec.session.session}

    def read(self, image: np.ndarray) -> list[tuple[np.ndarray, str, float]]:
        """Lines of an HWC uint8 BGR image: ``[(box (4, 2) float32, text, score)]``."""
        lines, _ = self.engine(image, use_det=True, use_cls=False, use_rec=True)
        return [(np.asarray(box, dtype=np.float32), text, float(score)) for box, text, score in lines or []]

    def detect(self, image: np.ndarray) -> list:
        boxes, _ = self.engine.text_det(image)
        return [] if boxes is None else list(boxes)

    def recognize(self, crops: Sequence[np.ndarray], batch_size: int) -> list[tuple[str, float]]:
        self.engine.text_rec.rec_batch_num = batch_size
        reads, _ = self.engine.text_rec(list(crops))
        return [(read[0], float(read[1])) for read in reads]

    def recognize_one(self, crop: np.ndarray) -> tuple[str, float]:
        reads, _ = self.engine(crop, use_det=False, use_cls=False, use_rec=True)
        return (reads[0][0], float(reads[0][1])) if reads else ("", 0.0)


class RapidOCRv6Engine:
    """PP-OCRv6 small off the shelf: rapidocr 3.x's ``RapidOCR`` on the ONNX files of its wheel (dictionary
    of 18,708 characters: Chinese, Japanese, Latin scripts, symbols), onnxruntime, its own defaults (det:
    shorter side resized to 736), no angle classifier. ``threads``: onnxruntime intra-op threads of each
    session."""

    name = "rapidocr_v6"
    version = "PP-OCRv6 small"

    def __init__(self, threads: int):
        files = ppocrv6_model_files()
        from rapidocr import RapidOCR

        self.model_files = files
        self.engine = RapidOCR(params={
            "Global.use_cls": False,
            "Global.log_level": "warning",
            "Det.model_path": str(files["det"]),
            "Rec.model_path": str(files["rec"]),
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        })
        # rapidocr 3 loads models on first use; load them now so construction is the loading cost
        self.text_det = self.engine._load_det_model()
        self.text_rec = self.engine._load_rec_model()
        self.threads = threads
        self.package = f"{PPOCRV6_PACKAGE} {_version(PPOCRV6_PACKAGE)}"
        self.label = f"{self.package} (its PP-OCRv6 small ONNX models), onnxruntime {_version('onnxruntime')}, " \
                     f"{threads} thread(s)"

    def sessions(self) -> dict:
        """The onnxruntime sessions, ``{"det": ..., "rec": ...}``."""
        return {"det": self.text_det.session.session, "rec": self.text_rec.session.session}

    def read(self, image: np.ndarray) -> list[tuple[np.ndarray, str, float]]:
        """Lines of an HWC uint8 BGR image: ``[(box (4, 2) float32, text, score)]``."""
        out = self.engine(image, use_det=True, use_cls=False, use_rec=True)
        if getattr(out, "boxes", None) is None or out.txts is None:
            return []
        return [(np.asarray(box, dtype=np.float32), text, float(score))
                for box, text, score in zip(out.boxes, out.txts, out.scores)]

    def detect(self, image: np.ndarray) -> list:
        boxes = self.text_det(image).boxes
        return [] if boxes is None else list(boxes)

    def recognize(self, crops: Sequence[np.ndarray], batch_size: int) -> list[tuple[str, float]]:
        from rapidocr.ch_ppocr_rec import TextRecInput

        self.text_rec.rec_batch_num = batch_size
        out = self.text_rec(TextRecInput(img=list(crops)))
        return [(text, float(score)) for text, score in zip(out.txts, out.scores)]

    def recognize_one(self, crop: np.ndarray) -> tuple[str, float]:
        out = self.engine(crop, use_det=False, use_cls=False, use_rec=True)
        return (out.txts[0], float(out.scores[0])) if getattr(out, "txts", None) else ("", 0.0)


ANCHORS = {"ppocrv4": RapidOCREngine, "ppocrv6": RapidOCRv6Engine}


def build_anchor(name: str, threads: int):
    """The off-the-shelf engine called ``name`` in params.yaml (``ppocrv4``, ``ppocrv6``)."""
    if name not in ANCHORS:
        raise ValueError(f"unknown off-the-shelf model {name!r}; choose from {list(ANCHORS)}")
    return ANCHORS[name](threads)


def anchor_charset(name: str) -> set[str]:
    """The characters the off-the-shelf recogniser ``name`` can output (see :func:`engine_charset`)."""
    files = {"ppocrv4": ppocrv4_model_files, "ppocrv6": ppocrv6_model_files}[name]()
    return engine_charset(files["rec"])
