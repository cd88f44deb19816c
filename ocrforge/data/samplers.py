"""Batch samplers whose order is a pure function of ``(seed, epoch)``, shardable and resumable mid-epoch.

Contract shared by both samplers:

- ``set_epoch(epoch, start_step=0)`` picks the epoch; iterating yields that epoch's batches, skipping the
  first ``start_step`` (an exact resume continues at the batch after the last one trained);
- every data-parallel rank builds the same permutation from the seed and takes its own disjoint share
  (``rank``-th of every ``world_size`` samples; the ``len % world_size`` tail of the permutation is left out
  that epoch so every rank gets the same number of samples and batches);
- ``len(sampler)`` is the number of batches the next iteration yields (after the skip);
  ``batches_per_epoch`` the full count.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import paddle


def default_rank_and_world_size(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """``rank``/``world_size`` as given, else from ``paddle.distributed`` (0 and 1 outside a parallel run)."""
    if world_size is None:
        world_size = paddle.distributed.get_world_size()
    if rank is None:
        rank = paddle.distributed.get_rank()
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size); got rank={rank}, world_size={world_size}")
    return int(rank), int(world_size)


def epoch_indices(n: int, seed: int, epoch: int, shuffle: bool, rank: int, world_size: int) -> np.ndarray:
    """This rank's sample indices for one epoch: a seeded permutation (or ``range(n)``), sharded."""
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    usable = n - n % world_size
    return order[rank:usable:world_size]


class _EpochBatchSampler(paddle.io.BatchSampler):
    """Common ``set_epoch``/``start_step`` bookkeeping; subclasses build ``_epoch_batches()``."""

    def _init_common(self, seed: int, rank: int | None, world_size: int | None, drop_last: bool) -> None:
        # paddle.io.BatchSampler.__init__ wants a dataset or sampler it would iterate itself; set what the
        # DataLoader reads instead.
        self.sampler = None
        self.shuffle = False
        self.drop_last = bool(drop_last)
        self._acc_steps = 1
        self.seed = int(seed)
        self.rank, self.world_size = default_rank_and_world_size(rank, world_size)
        self.epoch = 0
        self.start_step = 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Yield epoch ``epoch``'s batches next, skipping its first ``start_step`` batches."""
        if start_step < 0:
            raise ValueError(f"start_step must be >= 0, got {start_step}")
        self.epoch = int(epoch)
        self.start_step = int(start_step)

    def _epoch_batches(self) -> list[list]:
        raise NotImplementedError

    @property
    def batches_per_epoch(self) -> int:
        return len(self._epoch_batches())

    def __iter__(self) -> Iterator[list]:
        batches = self._epoch_batches()
        if self.start_step > len(batches):
            raise ValueError(
                f"start_step {self.start_step} is past the end of epoch {self.epoch} ({len(batches)} batches); "
                f"the resume point does not match this data (did the label files or batch size change?)"
            )
        yield from batches[self.start_step :]

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch - self.start_step)


class ShuffleBatchSampler(_EpochBatchSampler):
    """Fixed-size batches of a seeded per-epoch permutation (``shuffle``) or of the file order.

    ``dataset`` is anything with ``len()``. Batches are lists of int indices.
    """

    def __init__(
        self,
        dataset,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self._init_common(seed, rank, world_size, drop_last)
        self.num_samples = len(dataset)
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)

    def _epoch_batches(self) -> list[list[int]]:
        indices = epoch_indices(self.num_samples, self.seed, self.epoch, self.shuffle, self.rank, self.world_size)
        batches = [indices[i : i + self.batch_size].tolist() for i in range(0, len(indices), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches


class MultiScaleSampler(_EpochBatchSampler):
    """Batches of ``(width, height, index)`` tuples, one scale per batch, for ``MultiScaleDataSet``.

    ``scales`` is ``[[w, h], ...]`` (or ``[s, ...]`` for square); each is rounded down to a multiple of
    ``divided_factor`` ``[fw, fh]``. With ``fix_bs`` every batch has ``first_bs`` samples, otherwise
    ``first_bs * w0 * h0 / (w * h)`` (``(w0, h0)`` the first scale) so that pixels per batch stay level.
    Training cycles through the scales (in a per-epoch order) while cutting the permutation into batches,
    then shuffles the batches; ``is_training: false`` gives first-scale batches in file order.
    The last, short batch is kept unless ``drop_last``.

    ``reading_width: true`` sizes each batch's width the way the reading system does (``TextSystem.recognize``,
    PaddleOCR's recogniser): samples are ordered by their image's aspect ratio (``data_source.aspect_ratios()``)
    and a batch is ``int(h * max(w / h, widest ratio in it))`` wide, at most ``max_width``, so a long line keeps
    its aspect ratio instead of being squeezed into ``w``. Training draws the order afresh each epoch (ratio
    classes ``width_step`` pixels wide, shuffled within a class, then the batches shuffled); without
    ``fix_bs`` a wider batch holds fewer samples, to keep its pixels level. ``is_training: false`` orders by
    ratio exactly as the system does, so validation reads the crops as the deployed model will.
    """

    def __init__(
        self,
        data_source,
        scales: Sequence,
        first_bs: int = 128,
        fix_bs: bool = True,
        divided_factor: Sequence[int] = (8, 16),
        is_training: bool = True,
        seed: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        drop_last: bool = False,
        reading_width: bool = False,
        max_width: int = 2560,
        width_step: int = 32,
        **ignored,
    ):
        if ignored.get("ds_width"):
            raise NotImplementedError("MultiScaleSampler: ds_width (aspect-ratio buckets) is not supported")
        if not scales:
            raise ValueError("MultiScaleSampler needs at least one scale in sampler.scales")
        if seed is None:
            seed = getattr(data_source, "seed", 0)
        self._init_common(seed, rank, world_size, drop_last)
        self.num_samples = len(data_source)
        self.shuffle = bool(is_training)
        sizes = [(int(s[0]), int(s[1])) if isinstance(s, (list, tuple)) else (int(s), int(s)) for s in scales]
        base_w, base_h = sizes[0]
        if not is_training:
            sizes = sizes[:1]
        fw, fh = int(divided_factor[0]), int(divided_factor[1])
        self.scales: list[tuple[int, int, int]] = []
        for w, h in sizes:
            w, h = (w // fw) * fw, (h // fh) * fh
            if w <= 0 or h <= 0:
                raise ValueError(f"scale {[w, h]} rounds to zero with divided_factor {[fw, fh]}")
            bs = first_bs if fix_bs else max(1, int(first_bs * base_w * base_h / (w * h)))
            self.scales.append((w, h, int(bs)))
        self.batch_size = int(first_bs)
        self.fix_bs = bool(fix_bs)
        self.reading_width = bool(reading_width)
        self.max_width = int(max_width)
        self.width_step = max(1, int(width_step))
        self.ratios = None
        if self.reading_width:
            if not hasattr(data_source, "aspect_ratios"):
                raise TypeError(f"MultiScaleSampler reading_width needs a dataset with aspect_ratios(); "
                                f"{type(data_source).__name__} has none")
            if self.max_width < max(w for w, _, _ in self.scales):
                raise ValueError(f"sampler.max_width {self.max_width} is below the widest scale "
                                 f"{max(w for w, _, _ in self.scales)}")
            self.ratios = np.asarray(data_source.aspect_ratios(), dtype=np.float64)

    def batch_width(self, width: int, height: int, ratios: Sequence[float]) -> int:
        """The width the reading system gives a batch of crops with these aspect ratios at ``height``
        (``width`` the least), capped at ``max_width``."""
        return min(self.max_width, int(height * max([width / float(height), *ratios])))

    def _epoch_batches(self) -> list[list[tuple[int, int, int]]]:
        rng = np.random.default_rng([self.seed, self.epoch, 1])
        scale_order = [self.scales[i] for i in rng.permutation(len(self.scales))] if self.shuffle else self.scales
        if self.reading_width:
            return self._reading_width_batches(scale_order, rng)
        indices = epoch_indices(self.num_samples, self.seed, self.epoch, self.shuffle, self.rank, self.world_size)
        batches, start, k = [], 0, 0
        while start < len(indices):
            w, h, bs = scale_order[k % len(scale_order)]
            chunk = indices[start : start + bs]
            start, k = start + bs, k + 1
            if len(chunk) < bs and self.drop_last:
                break
            batches.append([(w, h, int(i)) for i in chunk])
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def _reading_width_batches(self, scale_order: list, rng) -> list[list[tuple[int, int, int]]]:
        # Batches are planned over every rank's samples at world_size times the batch size, then each rank
        # takes its share of every batch: all ranks step through the same number of batches of one width.
        world = self.world_size
        indices = epoch_indices(self.num_samples, self.seed, self.epoch, self.shuffle, 0, 1)
        indices = indices[: len(indices) - len(indices) % world]
        ratios = self.ratios[indices]
        if self.shuffle:
            # ratio classes of width_step pixels at the first height: random order within a class (indices
            # are a fresh permutation), so batches differ from epoch to epoch
            base_h = self.scales[0][1]
            order = np.argsort(np.ceil(ratios * base_h / self.width_step), kind="stable")
        else:
            order = np.argsort(ratios)  # numpy's default sort, as the reading system orders its crops
        indices, ratios = indices[order], ratios[order]
        batches, start, k = [], 0, 0
        while start < len(indices):
            w, h, bs = scale_order[k % len(scale_order)]
            k += 1
            width = self.batch_width(w, h, ratios[start : start + bs * world])
            if not self.fix_bs and width > w:
                bs = max(1, int(bs * w / width))  # fewer, wider samples; the widest of them is no wider
                width = self.batch_width(w, h, ratios[start : start + bs * world])
            chunk, chunk_ratios = indices[start : start + bs * world], ratios[start : start + bs * world]
            start += bs * world
            if len(chunk) < bs * world and self.drop_last and batches:
                # the widest samples come last: join them to the batch before rather than drop them every epoch
                chunk, chunk_ratios = np.concatenate([batches[-1][3], chunk]), np.concatenate([batches[-1][4], chunk_ratios])
                w, h = batches[-1][1], batches[-1][2]
                width = self.batch_width(w, h, chunk_ratios)
                batches.pop()
            batches.append((width, w, h, chunk, chunk_ratios))
        batches = [[(width, h, int(i)) for i in chunk[self.rank :: world]] for width, _, h, chunk, _ in batches]
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches


SAMPLERS = {"MultiScaleSampler": MultiScaleSampler, "ShuffleBatchSampler": ShuffleBatchSampler}
