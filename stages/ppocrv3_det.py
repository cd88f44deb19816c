"""DVC stage ppocrv3_det: the PP-OCRv3 detector's weights for the MobileNetV3 student (no params).

Downloads the wheel rapidocr_onnxruntime==1.2.13 from PyPI once into the user cache (sha256 pinned in
ocrforge/models/ppocrv3.py; ``$OCRFORGE_CACHE`` moves it), converts its ch_PP-OCRv3_det_infer.onnx to a
``.pdparams`` of our student, and fails unless our student matches onnxruntime within 1e-4 on a demo image.
"""

import json
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # this project's ocrforge, whichever Python runs it
import ocrforge.environment  # noqa: E402,F401  (one line saying what to run when this Python lacks the stack)
from ocrforge.log import get_logger
from ocrforge.models.ppocrv3 import CONVERTED_FILE, convert_wheel, fetch_wheel
from ocrforge.params import stage_parser


def main() -> None:
    # the weights go where `pretrained_model: shipped` looks for them (CONVERTED_FILE), so only the report moves
    args = stage_parser(__doc__, report="the conversion's report (JSON): values converted, parity").parse_args()
    log = get_logger("stage.ppocrv3_det")
    wheel = fetch_wheel()
    report = convert_wheel(wheel, CONVERTED_FILE)
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps({k: v for k, v in report.items() if k != "out"}, indent=2) + "\n")
    log.info("converted %d tensors (%d values, %d layer pairs) from %s into %s; %d start fresh (threshold "
             "branch); max |ours - onnxruntime| = %.3g", report["converted_tensors"], report["converted_values"],
             report["layer_pairs"],
             wheel, CONVERTED_FILE, len(report["fresh"]), report["parity_max_abs_diff"])


if __name__ == "__main__":
    main()
