"""The embedded default dataset: synthetic stamped and printed codes, written as a PPOCRLabel folder.

Every image shows one to three lines of alphanumeric codes (serial numbers, lot codes, dates) on a metal
plate, a paper label or a piece of packaging, placed with perspective and rotation on a cluttered
background, then lit unevenly, blurred and noised. The label of each line is the exact quadrilateral of
its ink box, mapped through the same homography as the pixels. Everything derives from one seed.

Some lines are printed the way industrial codes are and the stock models misread (so the default run has
something to learn, and its curves mean something): ink-jet dot-matrix print, low-contrast embossing on
metal, tight or wide character spacing, and codes with runs of one character (``100AAA``) or the O/0, I/1
pairs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ocrforge.resources import font_path

FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
)
SURFACES = ("metal", "label", "packaging")
LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
DIGITS = "0123456789"
LOOKALIKES = "0O1I8B5S2Z"  # pairs a reader confuses
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


@dataclass(frozen=True)
class DemoConfig:
    """Knobs of the generator; the defaults are those of params.yaml's ``demo`` section."""

    num_images: int = 300
    seed: int = 2024
    width: int = 480
    height: int = 360
    max_lines: int = 3
    print_styles: bool = True  # False: every line in plain print (dot-matrix, embossing, spacing off), for tests


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _chars(rng: np.random.Generator, alphabet: str, n: int) -> str:
    return "".join(_pick(rng, alphabet) for _ in range(n))


def random_code(rng: np.random.Generator) -> str:
    """One line of the domain: serial numbers, lot codes, part numbers, dates, e.g. ``0317WS2022D100012``."""
    kind = int(rng.integers(11))
    year = int(rng.integers(2015, 2031))
    month = int(rng.integers(1, 13))
    day = int(rng.integers(1, 29))
    if kind == 0:
        return f"{month:02d}{day:02d}{_chars(rng, LETTERS, 2)}{year}{_pick(rng, LETTERS)}{_chars(rng, DIGITS, 6)}"
    if kind == 1:
        return f"LOT {_chars(rng, LETTERS, 1)}{_chars(rng, DIGITS, 4)}-{_chars(rng, DIGITS, 2)}"
    if kind == 2:
        return f"S/N {_chars(rng, LETTERS + DIGITS, int(rng.integers(6, 11)))}"
    if kind == 3:
        return f"EXP {year}-{month:02d}-{day:02d}"
    if kind == 4:
        return f"MFG {day:02d} {_pick(rng, MONTHS)} {year}"
    if kind == 5:
        return f"P/N {_chars(rng, DIGITS, 4)}-{_chars(rng, DIGITS, 2)}{_pick(rng, LETTERS)}"
    if kind == 6:
        return f"{_chars(rng, LETTERS, 2)}{_chars(rng, DIGITS, int(rng.integers(5, 9)))}"
    if kind == 7:
        return f"BATCH:{_chars(rng, DIGITS, 2)}{_pick(rng, LETTERS)}{_chars(rng, DIGITS, 3)}"
    if kind == 8:  # runs of one character, which CTC readers collapse: 100AAA, MDJJS5
        runs = [_pick(rng, LETTERS + DIGITS) * int(rng.integers(1, 4)) for _ in range(int(rng.integers(3, 6)))]
        return "".join(runs)[:14]
    if kind == 9:  # the O/0, I/1, B/8 ... pairs side by side
        return _chars(rng, LOOKALIKES, int(rng.integers(5, 10)))
    return _chars(rng, LETTERS + DIGITS, int(rng.integers(5, 15)))


def _smooth_noise(rng: np.random.Generator, h: int, w: int, scale: int) -> np.ndarray:
    """Low-frequency noise in [0, 1], (h, w) float32: a small random grid upsampled."""
    grid = rng.random((max(2, h // scale), max(2, w // scale))).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _surface(rng: np.random.Generator, kind: str, h: int, w: int) -> tuple[np.ndarray, tuple[int, int, int]]:
    """A plate texture (h, w, 3) uint8 RGB and an ink colour suited to it."""
    if kind == "metal":
        base = rng.uniform(120, 200)
        brushed = rng.normal(0, 1, (h, 1)).astype(np.float32) * rng.uniform(4, 10)
        brushed = np.repeat(brushed, w, axis=1) + rng.normal(0, 3, (h, w)).astype(np.float32)
        tint = np.array([1.0, rng.uniform(0.97, 1.02), rng.uniform(0.95, 1.05)], dtype=np.float32)
        img = (base + brushed + 30 * (_smooth_noise(rng, h, w, 40) - 0.5))[..., None] * tint
        ink = tuple(int(v) for v in rng.uniform(20, 70, 3)) if rng.random() < 0.5 else (int(base * 0.4),) * 3
    elif kind == "label":
        paper = np.array([rng.uniform(225, 255), rng.uniform(220, 252), rng.uniform(200, 245)], dtype=np.float32)
        img = np.ones((h, w, 3), np.float32) * paper + rng.normal(0, 3, (h, w, 1)).astype(np.float32)
        ink = _pick(rng, ((15, 15, 20), (20, 30, 110), (120, 20, 20), (40, 40, 40)))
    else:
        colour = rng.uniform(60, 230, 3).astype(np.float32)
        img = np.ones((h, w, 3), np.float32) * colour + 12 * (_smooth_noise(rng, h, w, 25)[..., None] - 0.5)
        dark = colour.mean() > 140
        ink = (10, 10, 10) if dark else (245, 245, 240)
    return img.clip(0, 255).astype(np.uint8), ink


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A cluttered scene (h, w, 3) uint8 RGB: gradient, texture, shapes, stripes and marks that are not text."""
    top, bottom = rng.uniform(30, 220, 3), rng.uniform(30, 220, 3)
    ramp = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = (top * (1 - ramp) + bottom * ramp) * np.ones((1, w, 1), np.float32)
    img += 40 * (_smooth_noise(rng, h, w, 30)[..., None] - 0.5)
    img = img.clip(0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(4, 12))):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = int(rng.integers(4))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if shape == 0:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(10, 120)), y + int(rng.integers(10, 90))), colour, -1)
        elif shape == 1:
            cv2.circle(img, (x, y), int(rng.integers(5, 50)), colour, int(rng.choice([-1, 2, 4])))
        elif shape == 2:
            cv2.line(img, (x, y), (int(rng.integers(0, w)), int(rng.integers(0, h))), colour, int(rng.integers(1, 5)))
        else:  # barcode-like stripes
            for i in range(int(rng.integers(10, 30))):
                bx = x + i * 3
                cv2.line(img, (bx, y), (bx, y + 40), (20, 20, 20), int(rng.integers(1, 3)))
    return img


@dataclass(frozen=True)
class PrintStyle:
    """How a plate's lines are printed: ``tracking`` px added between characters (negative: touching
    characters), ``dot_pitch`` > 0 for ink-jet dot-matrix print (dots this many px apart, ``dot_radius`` of
    the pitch), ``finish`` ``ink``, ``stamped`` (ink with a highlight and a shadow) or ``embossed`` (no ink:
    a low-contrast relief of highlight and shadow)."""

    tracking: int = 0
    dot_pitch: int = 0
    dot_radius: float = 0.45
    finish: str = "ink"


def print_style(rng: np.random.Generator, kind: str, size: int) -> PrintStyle:
    """A random style for a plate of surface ``kind`` and font ``size``: about half the plates print plainly."""
    tracking = 0
    spacing = rng.random()
    if spacing < 0.25:
        tracking = -int(round(size * rng.uniform(0.06, 0.16)))
    elif spacing < 0.35:
        tracking = int(round(size * rng.uniform(0.15, 0.4)))
    dot_pitch = max(3, int(round(size / rng.uniform(6.5, 8.5)))) if kind != "metal" and rng.random() < 0.3 else 0
    finish = "ink"
    if kind == "metal":
        finish = _pick(rng, ("ink", "stamped", "stamped", "embossed"))
    return PrintStyle(tracking, dot_pitch, float(rng.uniform(0.4, 0.6)), finish)


@dataclass
class _Line:
    text: str
    alpha: np.ndarray  # (h, w) uint8: the line's ink, cropped to its ink box
    ink_box: tuple[int, int, int, int]  # x0, y0, x1, y1 in plate pixels


def _dot_matrix(alpha: np.ndarray, pitch: int, radius: float) -> np.ndarray:
    """The glyphs of ``alpha`` (h, w) uint8 redrawn as round dots on a ``pitch`` grid, as an ink-jet prints."""
    h, w = alpha.shape
    rows, cols = h // pitch, w // pitch
    cells = alpha[: rows * pitch, : cols * pitch].reshape(rows, pitch, cols, pitch).mean(axis=(1, 3))
    out = np.zeros_like(alpha)
    for r, c in zip(*np.nonzero(cells > 90)):
        centre = (int(c * pitch + pitch // 2), int(r * pitch + pitch // 2))
        cv2.circle(out, centre, max(1, int(round(radius * pitch))), 255, -1, lineType=cv2.LINE_AA)
    return out


def render_line(text: str, font: ImageFont.FreeTypeFont, style: PrintStyle) -> np.ndarray:
    """The ink of one line (h, w) uint8, cropped to its ink box: characters placed one by one with the
    style's tracking, then dotted for dot-matrix print."""
    size = int(font.size)
    advance = sum(font.getlength(ch) for ch in text) + style.tracking * max(0, len(text) - 1)
    canvas = Image.new("L", (int(advance) + 3 * size, 3 * size), 0)
    draw = ImageDraw.Draw(canvas)
    x = float(size)
    for ch in text:
        draw.text((x, size), ch, font=font, fill=255)
        x += font.getlength(ch) + style.tracking
    alpha = np.asarray(canvas)
    if style.dot_pitch:
        alpha = _dot_matrix(alpha, style.dot_pitch, style.dot_radius)
    ys, xs = np.nonzero(alpha)
    if not len(xs):
        raise RuntimeError(f"line {text!r} rendered no ink")
    return np.ascontiguousarray(alpha[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])


def _layout(rng: np.random.Generator, texts: list[str], font_file: Path, size: int, style: PrintStyle):
    """Place the lines on a plate; returns the plate size and the lines with their ink boxes in plate pixels."""
    font = ImageFont.truetype(str(font_file), size)
    margin_x, margin_y = int(size * rng.uniform(0.5, 1.2)), int(size * rng.uniform(0.4, 0.9))
    gap = int(size * rng.uniform(0.35, 0.8))
    lines, y = [], margin_y
    align = _pick(rng, ("left", "centre"))
    alphas = [render_line(t, font, style) for t in texts]
    plate_w = max(a.shape[1] for a in alphas) + 2 * margin_x
    for text, alpha in zip(texts, alphas):
        h, w = alpha.shape
        x = margin_x if align == "left" else (plate_w - w) // 2
        lines.append(_Line(text, alpha, (x, y, x + w, y + h)))
        y += h + gap
    plate_h = y - gap + margin_y
    return (plate_w, plate_h), lines


def _blend(plate: np.ndarray, line: _Line, colour, shift: tuple[int, int] = (0, 0), strength: float = 1.0):
    """Paint ``colour`` into the float plate through the line's ink, moved by ``shift`` px."""
    x0, y0 = line.ink_box[0] + shift[0], line.ink_box[1] + shift[1]
    h, w = line.alpha.shape
    region = plate[y0 : y0 + h, x0 : x0 + w]
    alpha = (line.alpha[: region.shape[0], : region.shape[1]].astype(np.float32) / 255.0)[..., None] * strength
    region[:] = region * (1 - alpha) + np.asarray(colour, np.float32) * alpha


def _draw_text(plate: np.ndarray, lines: list[_Line], ink, style: PrintStyle, rng: np.random.Generator) -> np.ndarray:
    """Draw the lines on the plate (RGB uint8) in the style's finish."""
    out = plate.astype(np.float32)
    base = out.mean(axis=(0, 1))
    for line in lines:
        if style.finish == "stamped":
            _blend(out, line, (235, 235, 235), (-1, -1))
            _blend(out, line, (25, 25, 25), (1, 1))
        if style.finish == "embossed":  # relief only: the face keeps nearly the plate's own colour
            depth = int(rng.integers(1, 3))
            _blend(out, line, np.minimum(base + 60, 255), (-depth, -depth), 0.8)
            _blend(out, line, base * 0.45, (depth, depth), 0.8)
            _blend(out, line, base * rng.uniform(0.8, 0.92))
        else:
            _blend(out, line, ink)
    return out.clip(0, 255).astype(np.uint8)


def ink_mask(lines: list[_Line], plate_size: tuple[int, int]) -> np.ndarray:
    """(h, w) uint8 mask of the glyph pixels of the lines in plate coordinates."""
    mask = np.zeros((plate_size[1], plate_size[0]), np.uint8)
    for line in lines:
        x0, y0, x1, y1 = line.ink_box
        mask[y0:y1, x0:x1] = np.maximum(mask[y0:y1, x0:x1], line.alpha)
    return mask


def _placement(rng: np.random.Generator, plate_size, width: int, height: int) -> np.ndarray:
    """Homography (3x3) taking the plate into the image with scale, rotation and perspective."""
    pw, ph = plate_size
    angle = np.deg2rad(rng.normal(0, 6) if rng.random() < 0.8 else rng.uniform(-25, 25))
    for _ in range(50):
        scale = rng.uniform(0.55, 0.92) * min(width / pw, height / ph, 2.5)
        corners = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
        centred = (corners - [pw / 2, ph / 2]) * scale
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
        dst = centred @ rot.T
        jitter = rng.uniform(-0.07, 0.07, (4, 2)) * [pw * scale, ph * scale]
        dst = dst + jitter
        span = dst.max(axis=0) - dst.min(axis=0)
        if span[0] >= width - 8 or span[1] >= height - 8:
            angle *= 0.7
            continue
        lo = -dst.min(axis=0) + 4
        hi = np.array([width, height]) - dst.max(axis=0) - 4
        centre = rng.uniform(lo, hi)
        return cv2.getPerspectiveTransform(corners, (dst + centre).astype(np.float32))
    raise RuntimeError("could not place the plate inside the image")


def _photometric(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Uneven light, blur and noise on an RGB uint8 image."""
    h, w = img.shape[:2]
    light = 0.55 + 0.75 * _smooth_noise(rng, h, w, int(rng.integers(60, 200)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    spot = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (rng.uniform(0.2, 0.6) * w) ** 2))
    light = light * (0.8 + 0.4 * spot)
    out = img.astype(np.float32) * light[..., None]
    kind = int(rng.integers(3))
    if kind == 1:
        k = int(rng.choice([3, 5]))
        out = cv2.GaussianBlur(out, (k, k), 0)
    elif kind == 2:
        k = int(rng.integers(3, 6))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k
        rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (k, k))
        out = cv2.filter2D(out, -1, kernel / max(kernel.sum(), 1e-6))
    out += rng.normal(0, rng.uniform(2, 9), out.shape).astype(np.float32)
    return out.clip(0, 255).astype(np.uint8)


def make_sample(rng: np.random.Generator, config: DemoConfig) -> tuple[np.ndarray, list[dict], dict]:
    """One image (HWC uint8 BGR), its PPOCRLabel boxes, and the geometry used (for tests)."""
    kind = _pick(rng, SURFACES)
    n_lines = int(rng.integers(1, config.max_lines + 1))
    texts = [random_code(rng) for _ in range(n_lines)]
    font_file = font_path(_pick(rng, FONTS))
    size = int(rng.integers(22, 40))
    style = print_style(rng, kind, size)  # drawn either way, so the rest of the image is the same
    if not config.print_styles:
        style = PrintStyle()
    plate_size, lines = _layout(rng, texts, font_file, size, style)
    plate, ink = _surface(rng, kind, plate_size[1], plate_size[0])
    if kind == "label" and rng.random() < 0.6:
        cv2.rectangle(plate, (3, 3), (plate_size[0] - 4, plate_size[1] - 4), ink, 2)
    plate = _draw_text(plate, lines, ink, style, rng)

    width, height = config.width, config.height
    homography = _placement(rng, plate_size, width, height)
    scene = _background(rng, height, width)
    warped = cv2.warpPerspective(plate, homography, (width, height), flags=cv2.INTER_LINEAR)
    alpha = cv2.warpPerspective(np.full(plate.shape[:2], 255, np.uint8), homography, (width, height))
    alpha = (alpha.astype(np.float32) / 255.0)[..., None]
    scene = (warped * alpha + scene * (1 - alpha)).astype(np.uint8)
    scene = _photometric(rng, scene)

    boxes = []
    for line in lines:
        x0, y0, x1, y1 = line.ink_box
        pad = max(1.0, 0.08 * (y1 - y0))
        quad = np.array([[x0 - pad, y0 - pad], [x1 + pad, y0 - pad], [x1 + pad, y1 + pad], [x0 - pad, y1 + pad]])
        mapped = cv2.perspectiveTransform(quad[None].astype(np.float64), homography)[0]
        mapped[:, 0] = mapped[:, 0].clip(0, width - 1)
        mapped[:, 1] = mapped[:, 1].clip(0, height - 1)
        boxes.append(
            {
                "transcription": line.text,
                "points": [[int(round(x)), int(round(y))] for x, y in mapped],
                "difficult": False,
            }
        )
    geometry = {"homography": homography, "plate_size": plate_size, "lines": lines, "style": style}
    return cv2.cvtColor(scene, cv2.COLOR_RGB2BGR), boxes, geometry


def generate_demo_dataset(out_dir: str | Path, config: DemoConfig = DemoConfig(), image_dir: str = "images") -> dict:
    """Write ``config.num_images`` samples as a PPOCRLabel folder: ``Label.txt``, ``fileState.txt``, images."""
    out_dir = Path(out_dir)
    (out_dir / image_dir).mkdir(parents=True, exist_ok=True)
    seeds = np.random.SeedSequence(config.seed).spawn(config.num_images)
    label_rows, state_rows, n_lines = [], [], 0
    for index, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        image, boxes, _ = make_sample(rng, config)
        key = f"{image_dir}/{index:05d}.jpg"
        quality = int(rng.integers(70, 96))
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError(f"could not encode demo image {key}")
        encoded.tofile(str(out_dir / key))
        label_rows.append(f"{key}\t{json.dumps(boxes, ensure_ascii=False)}\n")
        state_rows.append(f"{key}\t1\n")
        n_lines += len(boxes)
    (out_dir / "Label.txt").write_text("".join(label_rows), encoding="utf-8")
    (out_dir / "fileState.txt").write_text("".join(state_rows), encoding="utf-8")
    return {"images": config.num_images, "lines": n_lines, "seed": config.seed}
