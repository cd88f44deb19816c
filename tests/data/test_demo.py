"""The demo generator: deterministic, PPOCRLabel layout, labels that match the pixels."""

import cv2
import numpy as np
import pytest

from ocrforge.data.demo import DemoConfig, generate_demo_dataset, ink_mask, make_sample, random_code
from ocrforge.data.ppocrlabel import load_ppocrlabel


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    config = DemoConfig(num_images=4, seed=11, width=200, height=150)
    generate_demo_dataset(tmp_path / "a", config)
    generate_demo_dataset(tmp_path / "b", config)
    generate_demo_dataset(tmp_path / "c", DemoConfig(num_images=4, seed=12, width=200, height=150))
    for name in ("Label.txt", "fileState.txt", "images/00003.jpg"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "Label.txt").read_bytes() != (tmp_path / "c" / "Label.txt").read_bytes()


def test_written_folder_reads_back_as_ppocrlabel(tmp_path):
    stats = generate_demo_dataset(tmp_path, DemoConfig(num_images=6, seed=1))
    labels = load_ppocrlabel(tmp_path / "Label.txt")
    assert len(labels.images) == 6 and labels.num_lines == stats["lines"]
    assert labels.problems == [] and labels.unchecked == []
    assert all(1 <= len(im.lines) <= 3 for im in labels.images)
    assert (tmp_path / "fileState.txt").read_text().splitlines()[0] == "images/00000.jpg\t1"


def assert_quads_cover_the_ink(boxes, geometry):
    for box, line in zip(boxes, geometry["lines"]):
        assert box["transcription"] == line.text
        plate_mask = ink_mask([line], geometry["plate_size"])
        ink = cv2.warpPerspective(plate_mask, geometry["homography"], (480, 360)) > 127
        quad = np.zeros((360, 480), np.uint8)
        cv2.fillPoly(quad, [np.array(box["points"], np.int32)], 1)
        inside = (ink & (quad > 0)).sum() / ink.sum()
        assert inside > 0.99, f"only {inside:.3f} of the ink of {line.text!r} lies inside its quad"
        ys, xs = np.nonzero(ink)
        (_, _), (w, h), _ = cv2.minAreaRect(np.stack([xs, ys], 1).astype(np.float32))
        looseness = quad.sum() / max(w * h, 1)
        assert looseness < 1.6, f"the quad of {line.text!r} is {looseness:.2f}x the ink's area"


@pytest.mark.parametrize("seed", range(8))
def test_quads_cover_the_ink_tightly(seed):
    config = DemoConfig(width=480, height=360)
    image, boxes, geometry = make_sample(np.random.default_rng(seed), config)
    assert image.shape == (360, 480, 3) and image.dtype == np.uint8
    assert_quads_cover_the_ink(boxes, geometry)


def test_the_hard_print_styles_occur_and_their_labels_cover_the_ink():
    seen = {"dot_matrix": 0, "tight": 0, "wide": 0, "embossed": 0, "stamped": 0, "plain": 0}
    for seed in range(60):
        _, boxes, geometry = make_sample(np.random.default_rng(seed), DemoConfig())
        style = geometry["style"]
        kinds = [name for name, on in (("dot_matrix", style.dot_pitch > 0), ("tight", style.tracking < 0),
                                       ("wide", style.tracking > 0), ("embossed", style.finish == "embossed"),
                                       ("stamped", style.finish == "stamped")) if on]
        for name in kinds or ["plain"]:
            seen[name] += 1
        if kinds:
            assert_quads_cover_the_ink(boxes, geometry)
    assert all(seen.values()), seen  # every style occurs in a 60-image demo ...
    assert seen["plain"] < 45, seen  # ... and the hard ones are a good share of it


def test_a_dot_matrix_line_is_made_of_separate_dots():
    from PIL import ImageFont

    from ocrforge.data.demo import PrintStyle, render_line
    from ocrforge.resources import font_path

    font = ImageFont.truetype(str(font_path("DejaVuSans-Bold.ttf")), 36)
    solid = render_line("LOT 8808", font, PrintStyle()) > 127
    dotted = render_line("LOT 8808", font, PrintStyle(dot_pitch=6, dot_radius=0.35)) > 127
    count = lambda mask: cv2.connectedComponents(mask.astype(np.uint8))[0] - 1
    assert count(solid) <= 8  # one blob per glyph (two for the 0s' holes don't count)
    assert count(dotted) > 5 * count(solid)  # every glyph falls apart into dots
    assert abs(dotted.shape[1] - solid.shape[1]) <= 2 * 6  # the same line, the same width (within a pitch each side)


def test_tracking_moves_the_characters_together_or_apart():
    from PIL import ImageFont

    from ocrforge.data.demo import PrintStyle, render_line
    from ocrforge.resources import font_path

    font = ImageFont.truetype(str(font_path("DejaVuSansMono.ttf")), 30)
    widths = {t: render_line("MDJJS5100AAA", font, PrintStyle(tracking=t)).shape[1] for t in (-4, 0, 6)}
    assert widths[-4] == pytest.approx(widths[0] - 11 * 4, abs=2)
    assert widths[6] == pytest.approx(widths[0] + 11 * 6, abs=2)


def test_codes_look_like_the_domain():
    rng = np.random.default_rng(0)
    codes = [random_code(rng) for _ in range(200)]
    assert all(3 <= len(c) <= 25 for c in codes)
    assert all(set(c) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -/:") for c in codes)
    assert any(c[:4].isdigit() and len(c) == 17 for c in codes)  # 0317WS2022D100012-like serials
    assert any(any(a * 3 in c for a in c) for c in codes)  # runs a CTC reader collapses (100AAA)
    assert any(set(c) <= set("0O1I8B5S2Z") for c in codes)  # look-alike pairs side by side


def test_plain_print_changes_the_style_only():
    from ocrforge.data.demo import PrintStyle

    styled = [make_sample(np.random.default_rng(seed), DemoConfig()) for seed in range(12)]
    plain = [make_sample(np.random.default_rng(seed), DemoConfig(print_styles=False)) for seed in range(12)]
    assert all(g["style"] == PrintStyle() for _, _, g in plain)
    assert any(g["style"] != PrintStyle() for _, _, g in styled)
    # the same codes, surfaces and placement: only how the ink is laid down differs
    assert [[b["transcription"] for b in boxes] for _, boxes, _ in styled] == \
        [[b["transcription"] for b in boxes] for _, boxes, _ in plain]
    np.testing.assert_array_equal(styled[0][2]["homography"].shape, plain[0][2]["homography"].shape)
