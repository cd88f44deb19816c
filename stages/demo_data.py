"""DVC stage demo_data: generate the embedded default dataset as a PPOCRLabel folder (params: demo)."""

import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # this project's ocrforge, whichever Python runs it
import ocrforge.environment  # noqa: E402,F401  (one line saying what to run when this Python lacks the stack)
from ocrforge.data.demo import DemoConfig, generate_demo_dataset
from ocrforge.log import get_logger
from ocrforge.params import load_params, section, stage_parser


def main() -> None:
    args = stage_parser(__doc__, out="the PPOCRLabel folder to write").parse_args()
    log = get_logger("stage.demo_data")
    p = section(load_params(), "demo")
    config = DemoConfig(
        num_images=int(p["num_images"]),
        seed=int(p["seed"]),
        width=int(p["width"]),
        height=int(p["height"]),
        max_lines=int(p["max_lines"]),
    )
    stats = generate_demo_dataset(Path(args.out), config)
    log.info("wrote %d images with %d text lines to %s (seed %d)", stats["images"], stats["lines"], args.out, config.seed)


if __name__ == "__main__":
    main()
