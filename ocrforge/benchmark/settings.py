"""What a benchmark run measures: the engines it knows, the speed figures, and its settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from ocrforge.pool import usable_cores

ENGINES = ("paddleocr", "paddleocr_default", "rapidocr", "rapidocr_v6", "ocrforge", "ocrforge_paddle", "ocrforge_pool")
REFERENCE = "paddleocr"
SPEED_KEYS = ("det_images_per_s", "rec_crops_per_s_bs1", "rec_crops_per_s_batch", "e2e_images_per_s")


@dataclass
class BenchmarkSettings:
    """The knobs of a benchmark run (``benchmark`` section of params.yaml)."""

    warmup: int = 1
    repeats: int = 3
    rec_batch_size: int = 6
    threads: int = 0                       # math-library threads of every engine; 0: every core this process may use
    case_sensitive: bool = True
    engines: tuple[str, ...] = ENGINES
    memory_alone: bool = True              # each engine's memory measured in a fresh process of its own
    reference_args: dict = field(default_factory=dict)  # PaddleOCR(...) arguments over the equal-threads ones
    flops: bool = True                     # FLOPs per input, the matmul peak and each engine's share of it

    def __post_init__(self):
        unknown = sorted(set(self.engines) - set(ENGINES))
        if unknown:
            raise ValueError(f"unknown benchmark engines {unknown}; choose from {list(ENGINES)}")
        if self.repeats < 1 or self.warmup < 0 or self.rec_batch_size < 1:
            raise ValueError(f"benchmark needs repeats >= 1, warmup >= 0 and rec_batch_size >= 1; got {self}")
        self.engines = tuple(self.engines)

    @property
    def thread_count(self) -> int:
        return self.threads or usable_cores()
