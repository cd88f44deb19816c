"""Seeds, random-number-generator states, and a batch sampler whose order is a pure function of (seed, epoch).

Exact resume rests on three rules, which the data loaders follow:

1. The order of an epoch's batches depends on ``(seed, epoch)`` only. The trainer calls
   ``set_epoch(epoch, start_step=n)`` on the loader (or its batch sampler) before each epoch, ``n`` being
   the batches a resumed epoch has already trained on, which the next iteration must leave out; ``len()``
   is then the batches still to come and ``batches_per_epoch`` the full count. ``ocrforge.data.samplers``
   and :class:`SeededBatchSampler` (a small reference used by the engine's tests) both follow this.
2. Random augmentation draws from :func:`sample_rng` ``(seed, epoch, index)``, not from global generators:
   loader threads and worker processes read ahead, so the global generators' state at a checkpoint says
   nothing about which samples they have already served.
3. Worker processes get :func:`make_worker_init_fn` so that code still using ``random``/``numpy.random``
   is seeded from ``(seed, epoch, worker_id)``.
"""

from __future__ import annotations

import math
import random
from typing import Any, Callable, Iterator

import numpy as np


def _paddle():
    import ocrforge  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
    import paddle

    return paddle


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and paddle's generators (CPU and GPU)."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    _paddle().seed(seed)


def _paddle_states_to_json(states: list) -> list[dict]:
    """Paddle's generator states as JSON: each ``GeneratorState`` is (device, seed, offset, engine text)."""
    out = []
    for st in states:
        device, seed, offset, engine = st.__getstate__()
        out.append({"device": int(device), "seed": int(seed), "offset": int(offset),
                    "engine": bytes(engine).decode("ascii")})
    return out


def _paddle_states_from_json(states: list[dict]) -> list:
    from paddle.base.libpaddle import GeneratorState

    out = []
    for st in states:
        state = GeneratorState.__new__(GeneratorState)
        state.__setstate__((int(st["device"]), int(st["seed"]), int(st["offset"]), list(st["engine"].encode("ascii"))))
        out.append(state)
    return out


def get_rng_state() -> dict[str, Any]:
    """The state of every global generator as plain JSON data (numbers, strings, lists; no pickle), for
    ``states.json``; :func:`set_rng_state` restores it."""
    paddle = _paddle()
    version, internal, gauss_next = random.getstate()
    _, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = {
        "python": {"version": int(version), "internal": [int(v) for v in internal], "gauss_next": gauss_next},
        "numpy": {"key": [int(v) for v in key], "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "paddle": _paddle_states_to_json(paddle.get_rng_state()),
    }
    if paddle.is_compiled_with_cuda():
        state["paddle_cuda"] = _paddle_states_to_json(paddle.get_cuda_rng_state())
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators from a :func:`get_rng_state` dict; absent entries are left alone."""
    paddle = _paddle()
    if "python" in state:
        py = state["python"]
        random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    if "numpy" in state:
        npy = state["numpy"]
        np.random.set_state(("MT19937", np.array(npy["key"], dtype=np.uint32), npy["pos"], npy["has_gauss"],
                             npy["cached_gaussian"]))
    if "paddle" in state:
        paddle.set_rng_state(_paddle_states_from_json(state["paddle"]))
    if "paddle_cuda" in state and paddle.is_compiled_with_cuda():
        paddle.set_cuda_rng_state(_paddle_states_from_json(state["paddle_cuda"]))


def derive_seed(*parts: int) -> int:
    """A 32-bit seed mixed from integers (``seed, epoch, worker_id``...), well spread even for 0, 1, 2."""
    return int(np.random.SeedSequence([int(p) % 2**63 for p in parts]).generate_state(1)[0])


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator that augments sample ``index`` in ``epoch``: same inputs, same draws, in any process."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])


def make_worker_init_fn(seed: int, epoch_source: Any = None) -> Callable[[int], None]:
    """A DataLoader ``worker_init_fn`` seeding each worker from ``(seed, epoch, worker_id)``.

    ``epoch_source`` is read when a worker starts: an object with an ``epoch`` attribute (the
    :class:`SeededBatchSampler`) or a zero-argument callable; None means epoch 0. Workers are started
    afresh every epoch unless the loader keeps them (``persistent_workers``), so keep that off.
    """

    def worker_init_fn(worker_id: int) -> None:
        if epoch_source is None:
            epoch = 0
        elif callable(epoch_source):
            epoch = int(epoch_source())
        else:
            epoch = int(getattr(epoch_source, "epoch"))
        s = derive_seed(seed, epoch, worker_id)
        random.seed(s)
        np.random.seed(s)
        _paddle().seed(s)

    return worker_init_fn


class SeededBatchSampler:
    """Batches of dataset indices whose order depends on ``(seed, epoch)`` only, sharded across ranks.

    Use it as ``paddle.io.DataLoader(dataset, batch_sampler=SeededBatchSampler(len(dataset), 8, seed=s))``.
    Under data parallelism each rank gets ``ceil(n / world_size)`` samples of the same permutation
    (padded by wrapping round, as paddle's DistributedBatchSampler does), rank ``r`` taking every
    ``world_size``-th one from ``r``. ``rank``/``world_size`` default to paddle.distributed's.
    """

    def __init__(self, num_samples: int, batch_size: int, *, shuffle: bool = True, drop_last: bool = False,
                 seed: int = 0, rank: int | None = None, world_size: int | None = None):
        if num_samples <= 0 or batch_size <= 0:
            raise ValueError(f"SeededBatchSampler needs num_samples > 0 and batch_size > 0, "
                             f"got {num_samples} and {batch_size}")
        if rank is None or world_size is None:
            dist = _paddle().distributed
            rank = dist.get_rank() if rank is None else rank
            world_size = dist.get_world_size() if world_size is None else world_size
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.epoch = 0
        self.start_step = 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Make the next iterations yield epoch ``epoch``'s batches from batch ``start_step`` on."""
        if not 0 <= start_step <= self.batches_per_epoch:
            raise ValueError(f"start_step {start_step} is outside 0..{self.batches_per_epoch} "
                             f"(the batches of one epoch)")
        self.epoch = int(epoch)
        self.start_step = int(start_step)

    @property
    def samples_per_rank(self) -> int:
        return math.ceil(self.num_samples / self.world_size)

    @property
    def batches_per_epoch(self) -> int:
        n = self.samples_per_rank
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_step

    def indices(self) -> list[int]:
        """This rank's sample indices for the current epoch, in order."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_samples)
        else:
            order = np.arange(self.num_samples)
        total = self.samples_per_rank * self.world_size
        if total > len(order):
            order = np.concatenate([order, order[: total - len(order)]])
        return [int(i) for i in order[self.rank:total:self.world_size]]

    def __iter__(self) -> Iterator[list[int]]:
        idx = self.indices()
        for b in range(self.start_step, self.batches_per_epoch):
            yield idx[b * self.batch_size:(b + 1) * self.batch_size]
