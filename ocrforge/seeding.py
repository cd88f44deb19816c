"""Seeds and random-number-generator states: the one seeding module of training, data loading and augmentation.

Exact resume rests on three rules, which the data loaders follow:

1. The order of an epoch's batches depends on ``(seed, epoch)`` only. The trainer calls
   ``set_epoch(epoch, start_step=n)`` on the loader (or its batch sampler) before each epoch, ``n`` being
   the batches a resumed epoch has already trained on, which the next iteration must leave out; ``len()``
   is then the batches still to come and ``batches_per_epoch`` the full count (``ocrforge.data.samplers``).
2. Random augmentation draws from :func:`sample_rng` ``(seed, epoch, index)``, not from global generators:
   loader threads and worker processes read ahead, so the global generators' state at a checkpoint says
   nothing about which samples they have already served.
3. Worker processes get a :class:`WorkerSeeder` so that code still using ``random``/``numpy.random``
   is seeded from ``(seed, epoch, worker_id)``.
"""

from __future__ import annotations

import random
from typing import Any, Callable

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


class WorkerSeeder:
    """A DataLoader ``worker_init_fn`` seeding ``random``, ``numpy.random`` and paddle in each worker from
    ``derive_seed(seed, epoch, worker_id, *salt)``. A class, so that spawned workers can unpickle it.

    ``epoch_source`` is read when a worker starts: an object with an ``epoch`` attribute (the dataset or the
    batch sampler) or a zero-argument callable; None means epoch 0. Workers are started afresh every epoch
    unless the loader keeps them (``persistent_workers``), so keep that off.
    """

    def __init__(self, seed: int, epoch_source: Any = None, *salt: int):
        self.seed = int(seed)
        self.epoch_source = epoch_source
        self.salt = tuple(int(s) for s in salt)

    def __call__(self, worker_id: int) -> None:
        source = self.epoch_source
        if source is None:
            epoch = 0
        elif callable(source):
            epoch = int(source())
        else:
            epoch = int(getattr(source, "epoch", 0))
        s = derive_seed(self.seed, epoch, worker_id, *self.salt)
        random.seed(s)
        np.random.seed(s)
        _paddle().seed(s)


def make_worker_init_fn(seed: int, epoch_source: Any = None) -> Callable[[int], None]:
    """A DataLoader ``worker_init_fn`` seeding each worker from ``(seed, epoch, worker_id)``: a
    :class:`WorkerSeeder`."""
    return WorkerSeeder(seed, epoch_source)
