"""The load test's own machinery on a tiny run: every request answered, the same answers as OCRPool's."""

from __future__ import annotations

import pytest

from serve_client import encode

pytestmark = pytest.mark.slow


def test_tiny_loadtest_reports_served_and_pooled(exported_dir, demo_images, tmp_path):
    from ocrforge.serve.loadtest import find_images, loadtest_markdown, run_loadtest

    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(demo_images[:2]):
        (folder / f"{i}.jpg").write_bytes(encode(image, ".jpg"))
    images = find_images(folder)
    assert [p.name for p in images] == ["0.jpg", "1.jpg"]
    report = run_loadtest(exported_dir, images, workers=1, requests=4, clients=2, max_seconds=120, rounds=2,
                          log_dir=tmp_path / "logs")
    assert report["served"]["requests"] == 4 and report["served"]["errors"] == 0
    assert report["pool"]["images"] == 4 and report["mismatches"] == 0
    assert report["served"]["rss_mib_before"]["worker_processes"] == 1
    ratio = report["served"]["images_per_s"] / report["pool"]["images_per_s"]
    assert report["served_vs_pool"] == pytest.approx(ratio, abs=0.002)
    assert "| ocrforge serve (HTTP) |" in loadtest_markdown(report)

