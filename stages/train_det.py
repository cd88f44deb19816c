"""DVC stage train_det: fine-tune the PP-OCRv4 text detector on data/split (params: train_det)."""

import json
from pathlib import Path

from ocrforge.analysis import TrainingMonitor, history_from_checkpoint
from ocrforge.config import load_config
from ocrforge.log import get_logger
from ocrforge.params import load_params, section
from ocrforge.report import write_training_report
from ocrforge.training import det_config_from_params, train

DATA_DIR = "data/split"
OUT_DIR = "models/det"
REPORT_DIR = Path("reports/train_det")


def main() -> None:
    log = get_logger("stage.train_det", log_file=Path(OUT_DIR) / "train.log")
    p = section(load_params(), "train_det")
    config = det_config_from_params(load_config(p["config"]), p, DATA_DIR, OUT_DIR, str(REPORT_DIR / "dvclive"))
    monitor = TrainingMonitor.from_params(p.get("analysis"), logger=log)
    summary = train(config, on_eval=[monitor], logger=log)
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    (REPORT_DIR / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    history = history_from_checkpoint(OUT_DIR)
    verdict = monitor.finish(history)
    write_training_report(summary, history, verdict, REPORT_DIR / "report.md", REPORT_DIR / "report.json")
    log.info("verdict: %s. %s", verdict.reason, verdict.recommendation)
    log.info("best %s %.4f at epoch %s; %.0f s", summary["main_indicator"], summary["best_metric"] or 0,
             summary["best_epoch"], summary["wall_time_s"])


if __name__ == "__main__":
    main()
