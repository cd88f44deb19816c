"""DVC stage train_det: fine-tune the PP-OCRv4 text detector on data/split (params: train_det)."""

import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # this project's ocrforge, whichever Python runs it
import ocrforge.environment  # noqa: E402,F401  (one line saying what to run when this Python lacks the stack)
from ocrforge.config import load_config
from ocrforge.log import get_logger
from ocrforge.params import load_params, section
from ocrforge.postprocess_search import search_after_training
from ocrforge.training import det_config_from_params, run_training_stage

DATA_DIR = "data/split"
OUT_DIR = "models/det"
REPORT_DIR = Path("reports/train_det")


def main() -> None:
    log = get_logger("stage.train_det", log_file=Path(OUT_DIR) / "train.log")
    p = section(load_params(), "train_det")
    config = det_config_from_params(load_config(p["config"]), p, DATA_DIR, OUT_DIR, str(REPORT_DIR / "dvclive"))
    run_training_stage(config, p.get("analysis"), REPORT_DIR, log)
    search_after_training(OUT_DIR, DATA_DIR, p.get("postprocess_search"), REPORT_DIR, log)


if __name__ == "__main__":
    main()
