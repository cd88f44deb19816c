"""DVC stage train_rec: fine-tune the PP-OCRv4 text recogniser on data/split (params: train_rec, dictionary)."""

import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # this project's ocrforge, whichever Python runs it
import ocrforge.environment  # noqa: E402,F401  (one line saying what to run when this Python lacks the stack)
from ocrforge.config import load_config
from ocrforge.log import get_logger
from ocrforge.params import load_params, section
from ocrforge.training import rec_config_from_params, run_training_stage

DATA_DIR = "data/split"
OUT_DIR = "models/rec"
REPORT_DIR = Path("reports/train_rec")


def main() -> None:
    log = get_logger("stage.train_rec", log_file=Path(OUT_DIR) / "train.log")
    params = load_params()
    p = section(params, "train_rec")
    config = rec_config_from_params(
        load_config(p["config"]), p, section(params, "dictionary"), DATA_DIR, OUT_DIR, str(REPORT_DIR / "dvclive")
    )
    run_training_stage(config, p.get("analysis"), REPORT_DIR, log)


if __name__ == "__main__":
    main()
