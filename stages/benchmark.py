"""DVC stage benchmark: speed, accuracy, memory and distance to the CPU's limit of the exported system (ours,
``ocrforge.OCR`` on onnxruntime and on paddle inference) beside PaddleOCR 2.10's own class on the same export and
the off-the-shelf PP-OCRv4 and PP-OCRv6 small (RapidOCR) (params: benchmark).

Writes reports/benchmark.json (DVC metrics) and reports/benchmark.md. Any PPOCRLabel folder can be benchmarked
the same way, outside the pipeline:

    ocrforge stage benchmark --input ../shared/datasets/sroie100 --limit 20 --case-insensitive \\
        --out reports/benchmark_sroie100
"""

import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # this project's ocrforge, whichever Python runs it
import ocrforge.environment  # noqa: E402,F401  (one line saying what to run when this Python lacks the stack)
import ocrforge  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from ocrforge.benchmark import ENGINES, BenchmarkSettings, load_benchmark_data, run_benchmark, write_reports
from ocrforge.log import get_logger
from ocrforge.params import evaluation_parser, load_params


def main() -> None:
    p = load_params().get("benchmark") or {}
    parser = evaluation_parser(__doc__, p, data="the split folder (its det/test.txt is the test set)",
                               export="the export stage's folder", out="writes <out>.json and <out>.md")
    parser.add_argument("--repeats", type=int, default=int(p.get("repeats", 3)))
    parser.add_argument("--warmup", type=int, default=int(p.get("warmup", 1)))
    parser.add_argument("--threads", type=int, default=int(p.get("threads", 0)), help="0: every usable core")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(p.get("engines", ENGINES)))
    args = parser.parse_args()
    log = get_logger("stage.benchmark")
    data = load_benchmark_data(args.input or args.data, args.limit)
    settings = BenchmarkSettings(
        warmup=args.warmup, repeats=args.repeats, rec_batch_size=int(p.get("rec_batch_size", 6)),
        threads=args.threads, case_sensitive=not args.case_insensitive, engines=tuple(args.engines),
        memory_alone=bool(p.get("memory_alone", True)), reference_args=dict(p.get("reference_args") or {}),
        flops=bool(p.get("flops", True)),
    )
    report = run_benchmark(args.export, data, settings, logger=log)
    out = Path(args.out)
    write_reports(report, out.with_suffix(".json"), out.with_suffix(".md"))
    log.info("wrote %s.json and %s.md", out, out)


if __name__ == "__main__":
    main()
