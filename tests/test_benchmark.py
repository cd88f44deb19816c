"""The benchmark stage's library on a tiny export of the shipped PP-OCRv4 weights and two small images."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from ocrforge.benchmark import (
    ENGINES,
    SPEED_KEYS,
    BenchmarkData,
    BenchmarkSettings,
    count_parameters,
    load_benchmark_data,
    summarize,
)



@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory) -> Path:
    """A split folder as the split stage writes it: 2 demo images (320x240, plain print, which the shipped
    models read) in det/test.txt, their crops in rec/test.txt."""
    from ocrforge.data.crop import crop_text_line
    from ocrforge.data.demo import DemoConfig, make_sample

    root = tmp_path_factory.mktemp("split")
    (root / "det" / "images").mkdir(parents=True)
    (root / "rec" / "test").mkdir(parents=True)
    det_lines, rec_lines = [], []
    for seed in range(2):
        image, boxes, _ = make_sample(np.random.default_rng(seed), DemoConfig(width=320, height=240, print_styles=False))
        name = f"img{seed}"
        cv2.imwrite(str(root / "det" / "images" / f"{name}.png"), image)
        det_lines.append(f"det/images/{name}.png\t{json.dumps(boxes)}")
        for k, box in enumerate(boxes):
            crop_name = f"rec/test/{name}_{k:03d}.png"
            cv2.imwrite(str(root / crop_name), crop_text_line(image, np.asarray(box["points"], np.float32)))
            rec_lines.append(f"{crop_name}\t{box['transcription']}")
    (root / "det" / "test.txt").write_text("\n".join(det_lines) + "\n", encoding="utf-8")
    (root / "rec" / "test.txt").write_text("\n".join(rec_lines) + "\n", encoding="utf-8")
    return root


def test_load_split_data_pairs_images_and_crops(tiny_split):
    data = load_benchmark_data(tiny_split)
    rec_lines = (tiny_split / "rec" / "test.txt").read_text().splitlines()
    assert len(data.images) == 2 and len(data.crops) == len(rec_lines) >= 2
    assert data.crop_texts == [line.split("\t")[1] for line in rec_lines]
    assert all(img.dtype == np.uint8 and img.shape == (240, 320, 3) for img in data.images)
    first = load_benchmark_data(tiny_split, limit=1)
    assert len(first.images) == 1
    assert len(first.crops) == sum(line.startswith("rec/test/img0_") for line in rec_lines)


def test_load_folder_data_cuts_the_labelled_lines(sroie_dir):
    data = load_benchmark_data(sroie_dir, limit=2)
    assert len(data.images) == 2
    cared = sum(not line.ignore for lines in data.labels for line in lines)
    assert len(data.crops) == len(data.crop_texts) == cared > 0
    assert all(c.ndim == 3 and c.shape[1] >= c.shape[0] * 0.6 for c in data.crops)


def test_empty_data_is_refused():
    with pytest.raises(ValueError, match="no images to benchmark"):
        BenchmarkData("nowhere", [], [], [], [], [])


def test_settings_refuse_an_unknown_engine():
    with pytest.raises(ValueError, match="unknown benchmark engines"):
        BenchmarkSettings(engines=("ocrforge", "tesseract"))


def test_summarize_takes_the_slow_end_for_p90():
    rates = summarize([10.0, 20.0, 30.0, 40.0, 50.0], higher_is_better=True)
    assert rates == {"median": 30.0, "p90": 14.0}
    times = summarize([10.0, 20.0, 30.0, 40.0, 50.0], higher_is_better=False)
    assert times == {"median": 30.0, "p90": 46.0}


# Branches used only in training, which the exported inference programs leave out.
TRAINING_ONLY = {"det": ("head.thresh.",), "rec": ("head.before_gtc.", "head.gtc_head.")}


@pytest.mark.slow
def test_parameter_count_equals_the_dygraph_model(trained_models, exported_dir):
    from ocrforge.system import load_trained_model

    for kind in ("det", "rec"):
        model, _ = load_trained_model(trained_models / kind)
        counted = count_parameters(exported_dir / "paddleocr" / kind)
        state = {k: v for k, v in model.state_dict().items() if not k.startswith(TRAINING_ONLY[kind])}
        params = [p for n, p in model.named_parameters() if not n.startswith(TRAINING_ONLY[kind])]
        assert len(state) < len(model.state_dict())  # the training branch exists and is left out
        assert counted["parameters"] == sum(int(np.prod(p.shape)) for p in params)
        assert counted["parameters"] == sum(int(np.prod(v.shape)) for v in state.values())
        assert counted["tensors"] == len(state)
        bn_stats = [v for k, v in state.items() if k.endswith(("_mean", "_variance"))]
        assert counted["bn_statistics"] == sum(int(np.prod(v.shape)) for v in bn_stats) > 0


@pytest.mark.slow
def test_benchmark_writes_every_engine(exported_dir, tiny_split, tmp_path):
    from ocrforge.benchmark import run_benchmark, write_reports

    data = load_benchmark_data(tiny_split)
    settings = BenchmarkSettings(warmup=0, repeats=1, rec_batch_size=2, threads=1, memory_alone=False)
    report = run_benchmark(exported_dir, data, settings)
    write_reports(report, tmp_path / "benchmark.json", tmp_path / "benchmark.md")
    saved = json.loads((tmp_path / "benchmark.json").read_text())

    assert set(saved["engines"]) == set(ENGINES)
    assert saved["data"]["images"] == 2 and saved["data"]["crops"] == len(data.crops)
    reference = saved["engines"]["paddleocr"]["speed"]
    for name, engine in saved["engines"].items():
        for key in SPEED_KEYS:  # one timed pass: its one figure is both the median and the slow end
            assert engine["speed"][key]["median"] == engine["speed"][key]["p90"] > 0, (name, key)
        # the e2e pass is timed whole and image by image: ms/image x images/s = 1000, up to the loop's own time
        ms, rate = engine["speed"]["e2e_ms_per_image"]["median"], engine["speed"]["e2e_images_per_s"]["median"]
        assert ms * rate / 1000 == pytest.approx(1, rel=0.05), (name, ms, rate)
        for key in SPEED_KEYS:  # each ratio is the engine's median rate over the reference's
            assert engine["speedup_vs_paddleocr"][key] == round(engine["speed"][key]["median"]
                                                                / reference[key]["median"], 3)
        assert engine["memory"]["shared_process_peak_rss_mb"] > 0
    assert saved["engines"]["paddleocr"]["speedup_vs_paddleocr"] == {key: 1.0 for key in SPEED_KEYS}
    # Ours (onnxruntime and paddle inference) and PaddleOCR's class run the same models: the same lines and figures.
    ours, theirs = saved["engines"]["ocrforge"]["accuracy"], saved["engines"]["paddleocr"]["accuracy"]
    assert ours == saved["engines"]["ocrforge_paddle"]["accuracy"] == theirs
    assert ours["rec"]["acc"] >= 0.5 and ours["e2e"]["hmean"] > 0.5
    assert "backend=onnx" in saved["engines"]["ocrforge"]["label"]
    assert "backend=paddle" in saved["engines"]["ocrforge_paddle"]["label"]
    for name in ("ocrforge", "ocrforge_paddle"):
        reads = saved[f"{name}_vs_paddleocr_reads"]
        assert {k: reads[k] for k in ("images", "identical", "all_identical", "mismatches")} == \
            {"images": 2, "identical": 2, "all_identical": True, "mismatches": []}
        assert reads["lines"] > 0 and reads["max_box_diff_px"] <= 1.0
    # The process pool reads exactly as ours in one process; its worker's memory is counted.
    assert saved["engines"]["ocrforge_pool"]["accuracy"] == ours
    assert saved["ocrforge_pool_vs_paddleocr_reads"]["identical"] == saved["ocrforge_vs_paddleocr_reads"]["identical"]
    assert saved["engines"]["ocrforge_pool"]["memory"]["load_mb"] > 100
    # distance to the limit: each engine's GFLOP/s is its model set's FLOPs times its median rate
    from ocrforge.flops import det_flops

    limit = saved["limit"]
    assert set(limit["models"]) == {"export", "ppocrv4", "ppocrv6_small"}
    expected_det = det_flops(exported_dir / "onnx" / "det.onnx", [image.shape[:2] for image in data.images])["mean"]
    assert limit["models"]["export"]["det_gflops_per_image"] == round(expected_det / 1e9, 3)
    assert limit["matmul_peak"]["threads"] == 1 and limit["matmul_peak"]["gflops"] > 0
    for name, engine in limit["engines"].items():
        det_rate = saved["engines"][name]["speed"]["det_images_per_s"]["median"]
        assert engine["det"]["gflops"] == pytest.approx(expected_det * det_rate / 1e9, rel=2e-3, abs=0.006) \
            if engine["models"] == "export" else engine["det"]["gflops"] > 0
        assert engine["det"]["fraction_of_peak"] == pytest.approx(
            engine["det"]["gflops"] / limit["matmul_peak"]["gflops"], rel=1e-2, abs=1e-4)
    assert {"ocrforge", "ocrforge_paddle", "paddleocr", "paddleocr_default", "ocrforge_pool"} <= \
        {name for name, e in limit["engines"].items() if e["models"] == "export"}
    for kind in ("det", "rec"):
        assert saved["models"][kind]["parameters"] > 100_000
        assert saved["models"][kind]["files"][f"{kind}/inference.pdiparams"] > 0
    assert saved["machine"]["cores"] >= 1 and saved["machine"]["paddlepaddle"]
    markdown = (tmp_path / "benchmark.md").read_text()
    assert all(f"| {name} |" in markdown for name in ENGINES) and saved["machine"]["cpu"] in markdown


@pytest.mark.slow
def test_paddleocr_reference_runs_at_our_thread_count_and_the_default_as_it_comes(exported_dir):
    from ocrforge.benchmark import build_engine

    settings = BenchmarkSettings(threads=2)
    reference, default = build_engine("paddleocr", exported_dir, settings), \
        build_engine("paddleocr_default", exported_dir, settings)
    assert reference.threads == 2 and "enable_mkldnn=True" in reference.label and "2 thread(s)" in reference.label
    assert reference.engine.text_recognizer.config.cpu_math_library_num_threads() == 2
    assert default.threads == 1 and "enable_mkldnn=False" in default.label and "1 thread(s)" in default.label
    # reference_args still win over the equal-threads ones
    override = build_engine("paddleocr", exported_dir, BenchmarkSettings(threads=2, reference_args={"cpu_threads": 1}))
    assert override.threads == 1


@pytest.mark.slow
def test_memory_alone_runs_the_engine_in_a_fresh_process(exported_dir, tiny_split):
    from ocrforge.benchmark import measure_memory_alone

    data = load_benchmark_data(tiny_split, limit=1)
    memory = measure_memory_alone("ocrforge", exported_dir, BenchmarkSettings(threads=1), data)
    assert memory["load_mb"] > 1 and memory["peak_rss_mb"] > memory["load_mb"]


def test_params_schema_accepts_exactly_the_benchmark_engines():
    from ocrforge.params import ParamsError, validate_section

    validate_section("benchmark", {"engines": list(ENGINES)})
    with pytest.raises(ParamsError, match=r"benchmark.engines must be a non-empty list, each one of "
                                          + re.escape(str(list(ENGINES)))):
        validate_section("benchmark", {"engines": ["tesseract"]})


class ScriptedEngine:
    """A fake engine for the measuring code: reads every image as ``reads`` says, logs each call."""

    def __init__(self, name: str, reads: dict, calls: list):
        self.name, self.label, self.reads, self.calls = name, f"scripted {name}", reads, calls

    def detect(self, image):
        self.calls.append((self.name, "det"))
        return [box for box, _, _ in self.reads[image.shape[1]]]

    def read(self, image):
        self.calls.append((self.name, "e2e"))
        return self.reads[image.shape[1]]

    def recognize(self, crops, batch_size):
        self.calls.append((self.name, f"rec{batch_size}"))
        return [self.recognize_one(crop) for crop in crops]

    def recognize_one(self, crop):
        return {40: ("AB12", 0.9), 41: ("CD34", 0.9)}.get(crop.shape[1], ("", 0.0))


def test_measuring_with_scripted_engines():
    """Passes are interleaved engine by engine after the warm-ups, every figure is counted per pass, and
    accuracy and read parity score what each engine returned."""
    from ocrforge.benchmark import compare_engines, measure_accuracy, measure_speed
    from ocrforge.data.ppocrlabel import TextLine

    box_a, box_b = ((10, 10), (50, 10), (50, 30), (10, 30)), ((10, 40), (51, 40), (51, 60), (10, 60))
    images = [np.zeros((80, 100, 3), np.uint8), np.zeros((80, 101, 3), np.uint8)]
    labels = [[TextLine(box_a, "AB12")], [TextLine(box_b, "CD34"), TextLine(box_a, "###")]]
    crops = [np.zeros((20, 40, 3), np.uint8), np.zeros((20, 41, 3), np.uint8)]
    data = BenchmarkData("scripted", ["a", "b"], images, labels, crops, ["AB12", "CD34"])
    right = {100: [(np.array(box_a), "AB12", 0.9)], 101: [(np.array(box_b), "CD34", 0.9)]}
    wrong = {100: [(np.array(box_a), "AB13", 0.9)], 101: []}
    calls = []
    engines = {"good": ScriptedEngine("good", right, calls), "bad": ScriptedEngine("bad", wrong, calls)}
    settings = BenchmarkSettings(warmup=1, repeats=2, rec_batch_size=2, engines=("paddleocr",))
    speed, _ = measure_speed(engines, data, settings)

    det_calls = [c for c in calls if c[1] == "det"]  # per pass, one call per image
    assert det_calls == [("good", "det")] * 2 + [("bad", "det")] * 2 + [("good", "det")] * 2 + [("bad", "det")] * 2 \
        + [("good", "det")] * 2 + [("bad", "det")] * 2
    assert [c for c in calls if c[1] == "rec2"] == [("good", "rec2"), ("bad", "rec2")] * 3
    assert set(speed) == {"good", "bad"} and set(speed["good"]) == {*SPEED_KEYS, "e2e_ms_per_image"}
    for figures in speed.values():
        assert all(figures[key]["median"] >= figures[key]["p90"] > 0 for key in SPEED_KEYS)

    good, bad = measure_accuracy(engines["good"], data), measure_accuracy(engines["bad"], data)
    assert good["e2e"]["hmean"] == 1.0 and good["e2e"]["full_text_acc"] == 1.0 and good["rec"]["acc"] == 1.0
    assert bad["e2e"]["precision"] == 0.0 and bad["e2e"]["recall"] == 0.0 and bad["e2e"]["full_text_acc"] == 0.0
    parity = compare_engines(engines["good"], engines["bad"], data)
    assert parity["identical"] == 0 and parity["mismatches"][1] == {"image": "b", "good": ["CD34"], "bad": []}
    assert compare_engines(engines["good"], engines["good"], data)["all_identical"] is True
