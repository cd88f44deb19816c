import random

import numpy as np
import pytest

import ocrforge  # noqa: F401
import paddle

from ocrforge.engine.seeding import (
    SeededBatchSampler,
    derive_seed,
    get_rng_state,
    make_worker_init_fn,
    sample_rng,
    seed_everything,
    set_rng_state,
)


def draws():
    return random.random(), float(np.random.rand()), float(paddle.rand([1]).numpy()[0])


def test_seed_everything_and_state_round_trip():
    seed_everything(3)
    first = draws()
    seed_everything(3)
    assert draws() == first
    state = get_rng_state()
    ahead = draws()
    set_rng_state(state)
    assert draws() == ahead
    assert draws() != ahead


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    a = SeededBatchSampler(10, 3, seed=5, rank=0, world_size=1)
    b = SeededBatchSampler(10, 3, seed=5, rank=0, world_size=1)
    a.set_epoch(2)
    list(a)  # iterating does not change the next order
    b.set_epoch(2)
    assert list(a) == list(b)
    assert len(a) == 4 and sorted(sum(list(a), [])) == list(range(10))
    b.set_epoch(3)
    assert list(b) != list(a)
    c = SeededBatchSampler(10, 3, seed=6, rank=0, world_size=1)
    c.set_epoch(2)
    assert list(c) != list(a)


def test_start_step_leaves_out_the_batches_already_trained_on():
    s = SeededBatchSampler(10, 3, seed=1, rank=0, world_size=1)
    s.set_epoch(4)
    full = list(s)
    s.set_epoch(4, start_step=2)
    assert list(s) == full[2:] and len(s) == 2 and s.batches_per_epoch == 4
    with pytest.raises(ValueError, match="start_step 5 is outside 0..4"):
        s.set_epoch(4, start_step=5)


def test_ranks_share_one_permutation_without_overlap():
    shards = []
    for rank in range(2):
        s = SeededBatchSampler(9, 2, seed=0, rank=rank, world_size=2, drop_last=False)
        s.set_epoch(1)
        shards.append(sum(list(s), []))
    assert len(shards[0]) == len(shards[1]) == 5
    assert set(shards[0]) | set(shards[1]) == set(range(9))
    assert len(set(shards[0]) & set(shards[1])) == 1  # the one padding sample
    ordered = SeededBatchSampler(4, 2, shuffle=False, rank=1, world_size=2)
    assert list(ordered) == [[1, 3]]


def test_sampler_argument_errors():
    with pytest.raises(ValueError, match="num_samples > 0"):
        SeededBatchSampler(0, 2, rank=0, world_size=1)
    with pytest.raises(ValueError, match="rank 2 is outside 0..1"):
        SeededBatchSampler(4, 2, rank=2, world_size=2)


def test_sample_rng_and_worker_seeds():
    assert sample_rng(1, 2, 3).random() == sample_rng(1, 2, 3).random()
    assert sample_rng(1, 2, 3).random() != sample_rng(1, 3, 3).random()
    assert len({derive_seed(0, e, w) for e in range(3) for w in range(3)}) == 9

    class Holder:
        epoch = 4

    init = make_worker_init_fn(10, Holder())
    init(1)
    x = np.random.rand()
    np.random.seed(derive_seed(10, 4, 1))
    assert np.random.rand() == x
