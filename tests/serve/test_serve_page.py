"""The page at ``GET /`` in a real headless browser (Debian's chromium, driven by Playwright): upload an image
through the file input, and the text and the drawn boxes appear; a file that is not an image shows the error."""

from __future__ import annotations

import os
import shutil

import cv2
import numpy as np
import pytest

from serve_client import encode
from system.system_known import KNOWN_FULL_TEXT, make_known_image

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _red_pixels(image_bgr: np.ndarray) -> int:
    """Pixels of the page's box colour, rgb(255, 0, 0), give or take anti-aliasing."""
    b, g, r = (image_bgr[..., c].astype(int) for c in range(3))
    return int(((r > 200) & (g < 70) & (b < 70)).sum())


@pytest.fixture(scope="module")
def browser():
    """Headless chromium (the system's, never a downloaded one); absent: skipped here, a failure in CI."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if chromium is None or sync_playwright is None:
        missing = "chromium (apt-get install chromium)" if chromium is None else "playwright (make install)"
        if os.environ.get("CI"):
            pytest.fail(f"{missing} is missing; .ci/run installs it before the tests")
        pytest.skip(f"{missing} is not installed")
    with sync_playwright() as playwright:
        # Playwright gives each launch a fresh temporary profile (its --user-data-dir) and removes it after.
        launched = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def test_upload_shows_the_text_and_draws_the_boxes(server, browser, tmp_path):
    image_file = tmp_path / "known.png"
    image_file.write_bytes(encode(make_known_image()[0], ".png"))
    status, expected = server.post(image_file.read_bytes(), "image/png")
    assert status == 200 and expected["full_text"] == KNOWN_FULL_TEXT

    page = browser.new_page(viewport={"width": 1000, "height": 900})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url + "/")
    page.set_input_files("#file", str(image_file))
    page.wait_for_selector("#result[data-state=done]", timeout=60_000)

    assert page.inner_text("#result") == expected["full_text"]
    canvas = page.evaluate("""() => {
        const c = document.getElementById('canvas');
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let red = 0;
        for (let i = 0; i < px.length; i += 4) if (px[i] > 200 && px[i + 1] < 70 && px[i + 2] < 70) red++;
        return {width: c.width, height: c.height, boxes: Number(c.dataset.boxes), red: red};
    }""")
    assert canvas["width"] == 400 and canvas["height"] == 200 and canvas["boxes"] == len(expected["lines"]) == 3
    assert canvas["red"] > 0  # the known image is black on white: red is the drawn boxes
    rows = page.eval_on_selector_all("#lines tbody tr", "rows => rows.map(r => r.cells[1].textContent)")
    assert rows == [line["text"] for line in expected["lines"]]

    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    picture = cv2.imread(str(shot))
    assert picture is not None and picture.shape[1] == 1000
    assert _red_pixels(picture) > 0  # the boxes are on screen, not only in the canvas's memory
    text_shot = tmp_path / "result.png"
    page.locator("#result").screenshot(path=str(text_shot))
    text_picture = cv2.imread(str(text_shot), cv2.IMREAD_GRAYSCALE)
    assert (text_picture < 100).any()  # the text is drawn in the result element
    assert errors == []
    page.close()


def test_a_file_that_is_not_an_image_shows_the_servers_error(server, browser, tmp_path):
    not_image = tmp_path / "notes.png"
    not_image.write_bytes(b"these are notes, not an image")
    status, answer = server.post(not_image.read_bytes(), "image/png")
    assert status == 422

    page = browser.new_page()
    page.goto(server.url + "/")
    page.set_input_files("#file", str(not_image))
    page.wait_for_selector("#result[data-state=error]", timeout=60_000)
    assert page.inner_text("#status") == f"HTTP 422: {answer['error']}"
    assert page.inner_text("#result") == ""
    page.close()
