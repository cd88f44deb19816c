"""DVC stage export: both trained models (the detector params.yaml's eval.detector names) as Paddle inference
models and ONNX models in models/export (params: export, and eval's detector and drop_score, so the deployed
system is the evaluated one), then two parity checks on the test images, each failing the stage (exit 1):
the exported system must read as the trained one, and the ONNX models must compute what the Paddle ones do
(model outputs within tolerance, the same reads). Writes the figures to reports/export.json."""

import json
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # this project's ocrforge, whichever Python runs it
import ocrforge.environment  # noqa: E402,F401  (one line saying what to run when this Python lacks the stack)
import ocrforge  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from ocrforge.evaluate import load_det_label_file
from ocrforge.export import check_export, compare_systems, export_system
from ocrforge.log import get_logger
from ocrforge.onnx_export import OnnxExportError
from ocrforge.params import load_params
from ocrforge.system import load_exported_system, load_trained_system, read_image

DATA_DIR = "data/split"
OUT_DIR = "models/export"
REPORT = Path("reports/export.json")


def main() -> None:
    log = get_logger("stage.export")
    params = load_params()
    p = params.get("export") or {}
    evaluation = params.get("eval") or {}
    det_dir = evaluation.get("detector") or "models/det"  # export what eval measured
    checkpoint = p.get("checkpoint", "best_accuracy")
    manifest = export_system(det_dir, "models/rec", OUT_DIR, checkpoint=checkpoint,
                             drop_score=evaluation.get("drop_score"))
    samples = load_det_label_file(Path(DATA_DIR) / "det" / "test.txt", DATA_DIR)[: int(p.get("parity_images", 10))]
    images, names = [read_image(s.path) for s in samples], [s.name for s in samples]
    parity = compare_systems(load_trained_system(det_dir, "models/rec", checkpoint,
                                                 drop_score=evaluation.get("drop_score")),
                             load_exported_system(OUT_DIR, backend="paddle"), images, names)
    try:
        onnx = check_export(OUT_DIR, images, names)
    except OnnxExportError as exc:
        log.error("%s", exc)
        sys.exit(1)
    report = {"parity": parity, "onnx": onnx, "program_checks": manifest["program_checks"],
              "use_onednn": manifest["use_onednn"], "versions": manifest["versions"]}
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    log.info("parity on %d images, %d lines: max box diff %.3f px, max score diff %.2e, %d text mismatches",
             parity["images"], parity["lines"], parity["max_box_diff_px"], parity["max_score_diff"],
             len(parity["text_mismatches"]))
    log.info("ONNX vs paddle inference: det outputs max diff %.2e, rec %.2e; reads: max box diff %.3f px, "
             "%d text mismatches", onnx["models"]["det"]["max_abs_diff"], onnx["models"]["rec"]["max_abs_diff"],
             onnx["system"]["max_box_diff_px"], len(onnx["system"]["text_mismatches"]))
    if not parity["same"]:
        log.error("the exported models do not read as the trained ones: %s", json.dumps(parity))
        sys.exit(1)
    if not onnx["system"]["same"]:
        log.error("the ONNX models do not read as the Paddle ones: %s", json.dumps(onnx["system"]))
        sys.exit(1)


if __name__ == "__main__":
    main()
