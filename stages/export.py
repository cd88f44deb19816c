"""DVC stage export: both trained models (the detector params.yaml's eval.detector names) as Paddle inference
models and ONNX models (params: export, eval's detector and the system section, which the eval stage
reads alike, with the drop_score and unclip ratio stage tune_system chose where the system section sets none, so
the deployed system is the evaluated one), then two parity checks on the test images, each failing the stage (exit 1):
the exported system must read as the trained one, and the ONNX models must compute what the Paddle ones do
(model outputs within tolerance, the same reads). Writes the figures to a JSON report."""

import json
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # this project's ocrforge, whichever Python runs it
import ocrforge.environment  # noqa: E402,F401  (one line saying what to run when this Python lacks the stack)
import ocrforge  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from ocrforge.data.det_labels import load_testset
from ocrforge.data.images import read_image
from ocrforge.export import check_export, compare_systems, export_system
from ocrforge.log import get_logger
from ocrforge.onnx_export import OnnxExportError
from ocrforge.params import load_params, stage_parser, system_overrides
from ocrforge.system import load_exported_system, load_trained_system
from ocrforge.system_search import tuned_overrides


def main() -> None:
    args = stage_parser(__doc__, data="the split folder (parity on its det/test.txt images)",
                        det="the detector's training run (params eval.detector)", rec="the recogniser's training run",
                        out="the export folder to write", report="the parity report (JSON)",
                        tuned="the drop_score and unclip ratio tune_system chose (its system.json)").parse_args()
    log = get_logger("stage.export")
    params = load_params()
    p = params.get("export") or {}
    settings = tuned_overrides(system_overrides(params), args.tuned)
    checkpoint = p.get("checkpoint", "best_accuracy")
    manifest = export_system(args.det, args.rec, args.out, checkpoint=checkpoint, **settings)
    samples = load_testset(args.data, int(p.get("parity_images", 10)))
    images, names = [read_image(s.path) for s in samples], [s.name for s in samples]
    parity = compare_systems(load_trained_system(args.det, args.rec, checkpoint, **settings),
                             load_exported_system(args.out, backend="paddle"), images, names)
    try:
        onnx = check_export(args.out, images, names)
    except OnnxExportError as exc:
        log.error("%s", exc)
        sys.exit(1)
    report = {"parity": parity, "onnx": onnx, "program_checks": manifest["program_checks"],
              "use_onednn": manifest["use_onednn"], "versions": manifest["versions"]}
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
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
