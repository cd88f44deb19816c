"""The end-to-end OCR system: detect text boxes, cut each out, read it, and return the lines in reading order.

One ``TextSystem`` runs on any backend behind the same interface, a callable ``(N, 3, H, W) float32 ->
ndarray``: the trained dygraph models (``load_trained_system``: ``config.yml`` + ``best_accuracy.pdparams``,
used by the eval stage), or the export (``load_exported_system``: ``manifest.json`` + the ONNX models in
``onnx/`` run by onnxruntime, or the Paddle inference models in ``det/`` + ``rec/``; used by ``ocrforge infer``
and :class:`ocrforge.api.OCR`). Pre- and post-processing
are PaddleOCR's: the wheel's ``DetResizeForTest`` / ``NormalizeImage`` and ``DBPostProcess`` /
``CTCLabelDecode``, and the recogniser's batching of ``predict_rec`` (width-sorted crops, each resized to the
model height and padded to the batch's widest ratio).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

import ocrforge  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from ocrforge.data.crop import UPRIGHT_RATIO, crop_size
from ocrforge.reading_order import full_text, reading_order

MANIFEST = "manifest.json"
DICT_FILE = "dict.txt"
# in a detector's training run: the DB post-process values its val split chose (ocrforge.postprocess_search)
POSTPROCESS_FILE = "postprocess.json"

Runner = Callable[[np.ndarray], np.ndarray]


@dataclass
class SystemSettings:
    """Every knob of the system, named as PaddleOCR's command line names them (``--det_db_thresh`` ...)."""

    det_limit_side_len: int = 960
    det_limit_type: str = "max"
    # the detector's input normalisation, (pixel * scale - mean) / std per BGR-ordered channel, as its config's
    # Eval NormalizeImage says (PP-OCR's detectors: ImageNet's statistics)
    det_norm_scale: float = 1.0 / 255.0
    det_norm_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    det_norm_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    det_db_thresh: float = 0.3
    det_db_box_thresh: float = 0.6
    det_db_unclip_ratio: float = 1.5
    det_db_max_candidates: int = 1000
    det_db_score_mode: str = "fast"
    use_dilation: bool = False
    rec_image_shape: tuple[int, int, int] = (3, 48, 320)
    rec_batch_num: int = 6
    character_dict_path: str = ""
    use_space_char: bool = True
    drop_score: float = 0.5

    def with_overrides(self, **overrides) -> "SystemSettings":
        """A copy with the given fields replaced; ``None`` values keep the current one."""
        unknown = sorted(set(overrides) - set(asdict(self)))
        if unknown:
            raise TypeError(f"unknown system settings {unknown}; known: {sorted(asdict(self))}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class OcrLine:
    """One read text line: its quadrilateral (4, 2) in source-image pixels, clockwise from top-left."""

    box: np.ndarray
    text: str
    score: float

    def to_json(self) -> dict:
        return {
            "box": [[int(round(x)), int(round(y))] for x, y in np.asarray(self.box).reshape(-1, 2)],
            "text": self.text,
            "score": round(float(self.score), 5),
        }


@dataclass
class OcrResult:
    """The lines of one image in reading order, and their full text (see ``E2EMetric.full_text``)."""

    lines: list[OcrLine] = field(default_factory=list)
    full_text: str = ""

    def to_json(self) -> dict:
        """``{"success": true, "full_text": ..., "lines": [{"box", "text", "score"}, ...]}``."""
        return {"success": True, "full_text": self.full_text, "lines": [line.to_json() for line in self.lines]}


# ---------------------------------------------------------------------------- backends


class DygraphRunner:
    """A dygraph model in eval mode as a runner: ``(N, 3, H, W) float32 -> (N, 1, H, W) maps | (N, T, C) probs``."""

    def __init__(self, model):
        import paddle

        self._paddle = paddle
        self.model = model
        self.model.eval()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        paddle = self._paddle
        with paddle.no_grad():
            out = self.model(paddle.to_tensor(np.ascontiguousarray(batch, dtype=np.float32)))
        if isinstance(out, dict):
            out = out["maps"]
        return out.numpy()


class PredictorRunner:
    """An exported inference model (``inference.json`` or ``.pdmodel`` + ``.pdiparams``) run by one
    ``paddle.inference`` predictor, created once. ``use_onednn`` turns on oneDNN kernels on the CPU."""

    def __init__(self, model_dir: str | os.PathLike, use_onednn: bool = False, threads: int | None = None,
                 model_file: str | None = None):
        import paddle.inference as pi

        model_dir = Path(model_dir)
        names = [model_file] if model_file else ["inference.json", "inference.pdmodel"]
        found = [model_dir / n for n in names if (model_dir / n).is_file()]
        params = model_dir / "inference.pdiparams"
        if not found or not params.is_file():
            raise FileNotFoundError(
                f"{model_dir} holds no inference model ({' or '.join(names)} plus inference.pdiparams); "
                f"run the export stage (dvc repro export) or give the folder it wrote"
            )
        config = pi.Config(str(found[0]), str(params))
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(threads or os.cpu_count() or 1)
        if use_onednn:
            config.enable_mkldnn()
        else:
            config.disable_mkldnn()
        config.disable_glog_info()
        self.model_file = found[0]
        self.use_onednn = use_onednn
        self.predictor = pi.create_predictor(config)
        (input_name,) = self.predictor.get_input_names()
        self._input = self.predictor.get_input_handle(input_name)
        self._output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        self._input.reshape(list(batch.shape))
        self._input.copy_from_cpu(batch)
        self.predictor.run()
        return self._output.copy_to_cpu()


# ---------------------------------------------------------------------------- pre- and post-processing


# uint8 value -> (value / 255 - 0.5) / 0.5 in float32, the same operations PaddleOCR applies pixel by pixel.
REC_LUT = ((np.arange(256, dtype=np.float32) / 255.0 - 0.5) / 0.5).astype(np.float32)
_REC_LUT_BGR = np.ascontiguousarray(np.repeat(REC_LUT.reshape(1, 256, 1), 3, axis=2))


def resize_norm_rec(crop: np.ndarray, image_shape: Sequence[int], max_wh_ratio: float,
                    out: np.ndarray | None = None) -> np.ndarray:
    """A crop (HWC uint8 BGR) as the recogniser's input (3, H, H * max_wh_ratio) in [-1, 1], zero-padded
    on the right: resized to the model height keeping its ratio (at most the padded width).

    ``out`` (3, H, W) float32, if given, is filled in place (a row of a batch) and returned.
    """
    channels, height, _ = image_shape
    width = int(height * max_wh_ratio)
    h, w = crop.shape[:2]
    resized_w = min(width, int(math.ceil(height * w / float(h))))
    resized = cv2.resize(crop, (resized_w, height))
    if out is None:
        out = np.zeros((channels, height, width), dtype=np.float32)
    else:
        out[:, :, resized_w:] = 0.0
    out[:, :, :resized_w] = cv2.LUT(resized, _REC_LUT_BGR).reshape(height, resized_w, channels).transpose((2, 0, 1))
    return out


def order_clockwise(points: np.ndarray) -> np.ndarray:
    """4 points ordered top-left, top-right, bottom-right, bottom-left (PaddleOCR's rule: by x + y and y - x)."""
    pts = np.asarray(points, dtype=np.float32).reshape(4, 2)
    rect = np.zeros((4, 2), dtype=np.float32)
    sums = pts.sum(axis=1)
    rect[0], rect[2] = pts[np.argmin(sums)], pts[np.argmax(sums)]
    rest = np.delete(pts, (np.argmin(sums), np.argmax(sums)), axis=0)
    diff = np.diff(rest, axis=1).ravel()
    rect[1], rect[3] = rest[np.argmin(diff)], rest[np.argmax(diff)]
    return rect


def boxes_from_maps(post_process, maps: np.ndarray, shape: np.ndarray) -> list[np.ndarray]:
    """The boxes a DB ``post_process`` finds in shrink ``maps`` (1, 1, H', W'), in the source image of ``shape``
    (the (1, 4) row of :meth:`TextSystem.detect_maps`), cleaned by :func:`clean_boxes`: what the system detects,
    and what the post-process search scores for each pair of its grid."""
    boxes = post_process({"maps": maps}, shape)[0]["points"]
    return clean_boxes(np.asarray(boxes).reshape(-1, 4, 2), (int(shape[0, 0]), int(shape[0, 1])))


def clean_boxes(boxes: np.ndarray, image_shape: tuple[int, ...]) -> list[np.ndarray]:
    """Boxes ordered clockwise, clipped to the image in whole pixels; boxes 3 px or less wide or high dropped."""
    height, width = image_shape[:2]
    kept = []
    for box in boxes:
        box = order_clockwise(box)
        box[:, 0] = np.floor(np.clip(box[:, 0], 0, width - 1))
        box[:, 1] = np.floor(np.clip(box[:, 1], 0, height - 1))
        if int(np.linalg.norm(box[0] - box[1])) <= 3 or int(np.linalg.norm(box[0] - box[3])) <= 3:
            continue
        kept.append(box)
    return kept


def crop_detected_box(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The crop of a detected box (4, 2), its points taken in the detector's order (clockwise from the corner
    PaddleOCR's ``order_points_clockwise`` chose), as PaddleOCR's system cuts it; unlike
    :func:`~ocrforge.data.crop.crop_text_line` for labels, the points are not re-ordered, which for a box
    turned 45 degrees picks another corner and another crop."""
    quad = np.asarray(box, dtype=np.float32).reshape(4, 2)
    width, height = crop_size(quad)
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    crop = cv2.warpPerspective(image, cv2.getPerspectiveTransform(quad, target), (width, height),
                               flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(np.rot90(crop)) if height >= UPRIGHT_RATIO * width else crop


def crop_order(boxes: Sequence[np.ndarray]) -> list[int]:
    """The order in which PaddleOCR's system crops and recognises boxes: by the top-left corner's y then x,
    then neighbours whose top-left y differ by less than 10 px swapped into left-to-right order. Recognising
    in the same order matters: crops of equal width/height ratio can otherwise be batched (and so padded)
    differently, which changes borderline reads."""
    order = sorted(range(len(boxes)), key=lambda i: (float(boxes[i][0][1]), float(boxes[i][0][0])))
    for i in range(len(order) - 1):
        for j in range(i, -1, -1):
            upper, lower = boxes[order[j]][0], boxes[order[j + 1]][0]
            if abs(float(lower[1]) - float(upper[1])) < 10 and float(lower[0]) < float(upper[0]):
                order[j], order[j + 1] = order[j + 1], order[j]
            else:
                break
    return order


# ---------------------------------------------------------------------------- the system


class TextSystem:
    """Detector + recogniser + PaddleOCR's pre/post-processing.

    ``detector`` maps a normalised batch (1, 3, H, W) to the shrink maps (1, 1, H, W); ``recognizer`` maps
    (N, 3, 48, W) to CTC probabilities (N, T, C) over ``settings.character_dict_path`` (+ space).
    """

    def __init__(self, detector: Runner, recognizer: Runner, settings: SystemSettings):
        import paddleocr  # noqa: F401  (puts the wheel's ``ppocr`` package on sys.path)
        from ppocr.data.imaug.operators import DetResizeForTest, NormalizeImage, ToCHWImage

        from ocrforge.postprocess import CTCLabelDecode, DBPostProcess

        if recognizer is not None and (not settings.character_dict_path
                                       or not Path(settings.character_dict_path).is_file()):
            raise FileNotFoundError(
                f"character dictionary {settings.character_dict_path!r} not found; the recogniser's classes "
                f"are read from it (Global.character_dict_path of the rec config, or dict.txt of the export)"
            )
        self.detector = detector
        self.recognizer = recognizer
        self.settings = settings
        self.backend = "dygraph"  # load_exported_system names the export's backend here
        self._resize = DetResizeForTest(limit_side_len=settings.det_limit_side_len, limit_type=settings.det_limit_type)
        self._normalize = NormalizeImage(scale=settings.det_norm_scale, mean=list(settings.det_norm_mean),
                                         std=list(settings.det_norm_std), order="hwc")
        self._to_chw = ToCHWImage()
        # NormalizeImage as a per-channel table over the 256 uint8 values: the same float32 operations, one pass.
        values = np.arange(256, dtype=np.float32).reshape(256, 1) * self._normalize.scale
        table = (values - self._normalize.mean.reshape(1, 3)) / self._normalize.std.reshape(1, 3)
        self._det_luts = [np.ascontiguousarray(table[:, c], dtype=np.float32) for c in range(3)]
        self._db = DBPostProcess(
            thresh=settings.det_db_thresh,
            box_thresh=settings.det_db_box_thresh,
            max_candidates=settings.det_db_max_candidates,
            unclip_ratio=settings.det_db_unclip_ratio,
            use_dilation=settings.use_dilation,
            score_mode=settings.det_db_score_mode,
        )
        self._decode = None if recognizer is None else CTCLabelDecode(
            character_dict_path=settings.character_dict_path, use_space_char=settings.use_space_char
        )

    def detect_input(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The detector's input (1, 3, H', W') for an HWC uint8 BGR image, and its shape row
        ``[src_h, src_w, ratio_h, ratio_w]`` (1, 4)."""
        data = self._resize({"image": image})
        resized = data["image"]
        batch = np.empty((1, 3, *resized.shape[:2]), dtype=np.float32)
        for c, channel in enumerate(cv2.split(resized)):
            batch[0, c] = cv2.LUT(channel, self._det_luts[c]).reshape(channel.shape)
        return batch, np.asarray(data["shape"], dtype=np.float32)[None]

    def detect_maps(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The detector's shrink maps (1, 1, H', W') of an HWC uint8 BGR image, and the shape row
        ``[src_h, src_w, ratio_h, ratio_w]`` (1, 4) that maps them back to the image."""
        batch, shape = self.detect_input(image)
        return self.detector(batch), shape

    def detect(self, image: np.ndarray) -> list[np.ndarray]:
        """Text boxes of an HWC uint8 BGR image: a list of (4, 2) float32 quads, clockwise from top-left."""
        return self.boxes_in_maps(*self.detect_maps(image))

    def boxes_in_maps(self, maps: np.ndarray, shape: np.ndarray) -> list[np.ndarray]:
        """The boxes this system's DB post-process finds in :meth:`detect_maps`' output (as :meth:`detect`):
        one detector run can so be post-processed by systems of other DB settings."""
        return boxes_from_maps(self._db, maps, shape)

    def recognize(self, crops: Sequence[np.ndarray], batch_size: int | None = None) -> list[tuple[str, float]]:
        """``(text, score)`` for each crop (HWC uint8 BGR), in the given order; batches of ``batch_size``
        (None: ``settings.rec_batch_num``) are width-sorted."""
        results: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        channels, height, width = self.settings.rec_image_shape
        # numpy's default (unstable) sort, as PaddleOCR's recogniser: equal ratios land in the same batches
        order = np.argsort([c.shape[1] / float(c.shape[0]) for c in crops])
        step = max(1, int(batch_size or self.settings.rec_batch_num))
        for start in range(0, len(crops), step):
            indices = order[start : start + step]
            max_ratio = max([width / height] + [crops[i].shape[1] / float(crops[i].shape[0]) for i in indices])
            batch = np.empty((len(indices), channels, height, int(height * max_ratio)), dtype=np.float32)
            for row, i in enumerate(indices):
                resize_norm_rec(crops[i], (channels, height, width), max_ratio, out=batch[row])
            probs = self.recognizer(batch)
            for i, (text, score) in zip(indices, self._decode(probs)):
                results[i] = (text, float(score))
        return results

    def __call__(self, image: np.ndarray) -> OcrResult:
        """Read an HWC uint8 BGR image: lines over ``drop_score``, in reading order."""
        check_image(image)
        return self.read_boxes(image, self.detect(image))

    def read_boxes(self, image: np.ndarray, boxes: Sequence[np.ndarray]) -> OcrResult:
        """Recognise the given boxes of ``image``: crop, read, drop lines under ``drop_score``, reading order."""
        boxes = [boxes[i] for i in crop_order(boxes)]
        crops = [crop_detected_box(image, box) for box in boxes]
        reads = self.recognize(crops) if crops else []
        lines = [OcrLine(np.asarray(box, dtype=np.float32), text, score) for box, (text, score) in zip(boxes, reads)
                 if score >= self.settings.drop_score and text.strip()]
        order = reading_order([line.box for line in lines])
        lines = [lines[i] for i in order]
        text = full_text([line.box for line in lines], [line.text for line in lines])
        return OcrResult(lines=lines, full_text=text)


def check_image(image) -> None:
    """Raise ValueError unless ``image`` is an HWC uint8 BGR array (H, W, 3)."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"the OCR system reads HWC uint8 BGR images (H, W, 3); got {desc}")


# ---------------------------------------------------------------------------- loading


def settings_from_configs(det_config: dict, rec_config: dict | None = None) -> SystemSettings:
    """The settings a trained det and rec config imply (Eval transforms, PostProcess, dictionary); without a
    rec config, the recogniser's are the defaults (a detection-only system)."""
    from ocrforge.config import eval_transform_args

    import paddleocr  # noqa: F401  (puts the wheel's ``ppocr`` package on sys.path)
    from ppocr.data.imaug.operators import NormalizeImage

    det_resize = eval_transform_args(det_config, "DetResizeForTest")
    rec_resize = eval_transform_args(rec_config or {}, "RecResizeImg")
    rec_sampler = ((rec_config or {}).get("Eval") or {}).get("sampler") or {}
    if not rec_resize and rec_sampler.get("scales"):
        # validation resized by its sampler (reading_width): its first scale [w, h] is the model input
        width, height = rec_sampler["scales"][0]
        rec_resize = {"image_shape": [3, height, width]}
    post = det_config.get("PostProcess") or {}
    defaults = SystemSettings()
    glob = rec_config["Global"] if rec_config else {"character_dict_path": defaults.character_dict_path,
                                                    "use_space_char": defaults.use_space_char}
    # parsed by PaddleOCR's own transform, which training used: its scale may be a string such as "1./255."
    norm = NormalizeImage(**{"scale": defaults.det_norm_scale, "mean": list(defaults.det_norm_mean),
                             "std": list(defaults.det_norm_std),
                             **eval_transform_args(det_config, "NormalizeImage"), "order": "hwc"})
    return SystemSettings(
        det_limit_side_len=int(det_resize.get("limit_side_len", defaults.det_limit_side_len)),
        det_limit_type=str(det_resize.get("limit_type", defaults.det_limit_type)),
        # float32 values written shortest (0.485, not 0.48500001430511475): the same float32 when read back
        det_norm_scale=float(str(norm.scale)),
        det_norm_mean=tuple(float(str(v)) for v in norm.mean.ravel()),
        det_norm_std=tuple(float(str(v)) for v in norm.std.ravel()),
        det_db_thresh=float(post.get("thresh", defaults.det_db_thresh)),
        det_db_box_thresh=float(post.get("box_thresh", defaults.det_db_box_thresh)),
        det_db_unclip_ratio=float(post.get("unclip_ratio", defaults.det_db_unclip_ratio)),
        det_db_max_candidates=int(post.get("max_candidates", defaults.det_db_max_candidates)),
        det_db_score_mode=str(post.get("score_mode", defaults.det_db_score_mode)),
        use_dilation=bool(post.get("use_dilation", defaults.use_dilation)),
        rec_image_shape=tuple(int(v) for v in rec_resize.get("image_shape", defaults.rec_image_shape)),
        character_dict_path=str(glob["character_dict_path"]),
        use_space_char=bool(glob.get("use_space_char", False)),
    )


def read_choice_file(path: str | os.PathLike, rerun: str) -> dict | None:
    """The JSON a stage wrote to record what it chose on the val split (``postprocess.json``, tune_system's
    ``system.json``); None where the file is absent. ``rerun`` ends the error for a file that is not JSON
    (which stage to rerun)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); {rerun}") from exc


def detector_postprocess(det_dir: str | os.PathLike) -> dict:
    """The DB post-process values (``thresh``, ``box_thresh``, ``unclip_ratio``) and the detection side length
    (``limit_side_len``) the detector's training run in ``det_dir`` chose on its val split (its
    ``postprocess.json``); {} for a run that has none."""
    chosen = read_choice_file(Path(det_dir) / POSTPROCESS_FILE,
                              "rerun the detector's training stage (dvc repro train_det), which writes it")
    if chosen is None:
        return {}
    return {key: chosen[key] for key in ("thresh", "box_thresh", "unclip_ratio", "limit_side_len")
            if chosen.get(key) is not None}


def trained_settings(det_dir: str | os.PathLike, det_config: dict, rec_config: dict | None = None) -> SystemSettings:
    """The settings of the trained models: what their configs imply (:func:`settings_from_configs`), with the
    post-process values the detector's run chose on its val split (:func:`detector_postprocess`). Callers then
    apply the user's own (params.yaml's ``system`` section, a command line's options) with ``with_overrides``."""
    chosen = detector_postprocess(det_dir)
    return settings_from_configs(det_config, rec_config).with_overrides(
        det_db_thresh=chosen.get("thresh"), det_db_box_thresh=chosen.get("box_thresh"),
        det_db_unclip_ratio=chosen.get("unclip_ratio"), det_limit_side_len=chosen.get("limit_side_len"))


def load_trained_model(model_dir: str | os.PathLike, checkpoint: str = "best_accuracy"):
    """The dygraph model a training run left in ``model_dir`` (``config.yml`` + ``<checkpoint>.pdparams``),
    in eval mode, and its config; for a DistillationModel, the member it deploys."""
    from ocrforge.config import load_config, resolve_dict_paths
    from ocrforge.models.build import load_checkpoint

    model_dir = Path(model_dir)
    config_file, weights = model_dir / "config.yml", model_dir / f"{checkpoint}.pdparams"
    for f in (config_file, weights):
        if not f.is_file():
            raise FileNotFoundError(
                f"{f} not found: a trained model folder holds config.yml and {checkpoint}.pdparams; "
                f"run the training stage (dvc repro train_det / train_rec) first"
            )
    config = load_config(config_file)
    if config["Architecture"]["model_type"] == "rec":
        resolve_dict_paths(config)
    from ocrforge.models.distillation import deployed_model

    # A distillation run's checkpoint holds every member; the system runs the one it deploys (the Student).
    model = deployed_model(load_checkpoint(config, weights), config)
    model.eval()
    return model, config


def load_trained_system(det_dir: str | os.PathLike = "models/det", rec_dir: str | os.PathLike = "models/rec",
                        checkpoint: str = "best_accuracy", **overrides) -> TextSystem:
    """The system on the trained dygraph models, with :func:`trained_settings`; ``overrides`` replace
    :class:`SystemSettings` fields (None keeps the trained value)."""
    det_model, det_config = load_trained_model(det_dir, checkpoint)
    rec_model, rec_config = load_trained_model(rec_dir, checkpoint)
    settings = trained_settings(det_dir, det_config, rec_config).with_overrides(**overrides)
    return TextSystem(DygraphRunner(det_model), DygraphRunner(rec_model), settings)


def read_manifest(export_dir: str | os.PathLike) -> dict:
    """The ``manifest.json`` the export stage wrote into ``export_dir``."""
    path = Path(export_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: {export_dir} is not an ocrforge export; run the export stage "
            f"(dvc repro export) or pass the folder it wrote (models/export)"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def settings_from_manifest(export_dir: str | os.PathLike, manifest: dict) -> SystemSettings:
    values = dict(manifest["settings"])
    values["rec_image_shape"] = tuple(values["rec_image_shape"])
    for key in ("det_norm_mean", "det_norm_std"):  # absent from exports written before they were recorded
        if key in values:
            values[key] = tuple(values[key])
    values["character_dict_path"] = str(Path(export_dir) / DICT_FILE)
    return SystemSettings(**values)


BACKENDS = ("onnx", "paddle")


def default_backend(manifest: dict) -> str:
    """onnx where the export has ONNX models (faster end to end on the CPUs measured, README "Benchmark"),
    otherwise paddle (exports written before the ONNX models existed)."""
    return "onnx" if manifest.get("onnx") else "paddle"


def load_exported_system(export_dir: str | os.PathLike = "models/export", use_onednn: bool | None = None,
                         threads: int | None = None, backend: str | None = None, **overrides) -> TextSystem:
    """The system on the exported models; each predictor or session is created once here.

    ``backend``: ``onnx`` (onnxruntime on ``onnx/det.onnx`` + ``onnx/rec.onnx``), ``paddle`` (paddle inference on
    ``det/`` + ``rec/``) or None (:func:`default_backend`). ``use_onednn`` (paddle only) None follows the
    manifest (oneDNN where the export stage found it gives the same result); ``threads`` is each model's
    math-library thread count (None: every core).
    """
    export_dir = Path(export_dir)
    manifest = read_manifest(export_dir)
    backend = backend or default_backend(manifest)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {list(BACKENDS)}")
    settings = settings_from_manifest(export_dir, manifest).with_overrides(**overrides)
    if backend == "onnx":
        from ocrforge.onnx_export import OnnxRunner

        files = manifest.get("onnx") or {}
        if not files:
            raise FileNotFoundError(f"{export_dir} has no ONNX models (its manifest lists none): rerun the export "
                                    f"stage (dvc repro export) with this ocrforge, or use backend='paddle'")
        system = TextSystem(OnnxRunner(export_dir / files["det"], threads),
                            OnnxRunner(export_dir / files["rec"], threads), settings)
    else:
        onednn = manifest.get("use_onednn", {})
        det = PredictorRunner(export_dir / "det", onednn.get("det", False) if use_onednn is None else use_onednn,
                              threads)
        rec = PredictorRunner(export_dir / "rec", onednn.get("rec", False) if use_onednn is None else use_onednn,
                              threads)
        system = TextSystem(det, rec, settings)
    system.backend = backend
    return system
