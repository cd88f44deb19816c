"""Batch samplers: order a pure function of (seed, epoch), disjoint rank shares, start_step, scale batch sizes."""

from __future__ import annotations

import pytest

from ocrforge.data.samplers import MultiScaleSampler, ShuffleBatchSampler

SCALES = [[320, 32], [320, 48], [320, 64]]


def flat(batches) -> list[int]:
    return [i if isinstance(i, int) else i[2] for b in batches for i in b]


def test_shuffle_sampler_is_a_function_of_seed_and_epoch():
    sampler = ShuffleBatchSampler(range(10), batch_size=3, seed=1)
    first = list(sampler)
    assert [len(b) for b in first] == [3, 3, 3, 1]
    assert sorted(flat(first)) == list(range(10))
    assert list(ShuffleBatchSampler(range(10), batch_size=3, seed=1)) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first
    assert list(ShuffleBatchSampler(range(10), batch_size=3, seed=2)) != first


def test_unshuffled_sampler_keeps_file_order_and_drop_last_drops_the_short_batch():
    sampler = ShuffleBatchSampler(range(7), batch_size=3, shuffle=False, drop_last=True)
    assert list(sampler) == [[0, 1, 2], [3, 4, 5]]
    assert len(sampler) == 2


def test_start_step_skips_exactly_k_batches_of_that_epoch_only():
    sampler = ShuffleBatchSampler(range(10), batch_size=2, seed=3)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start_step=3)
    assert list(sampler) == full[3:] and len(sampler) == 2 and sampler.batches_per_epoch == 5
    sampler.set_epoch(2)
    assert list(sampler) == full
    sampler.set_epoch(2, start_step=6)
    with pytest.raises(ValueError, match="start_step 6 is past the end of epoch 2"):
        list(sampler)


def test_shards_are_disjoint_equal_and_cover_all_but_the_tail():
    shares = [flat(ShuffleBatchSampler(range(11), batch_size=2, seed=4, rank=r, world_size=3)) for r in range(3)]
    assert [len(s) for s in shares] == [3, 3, 3]
    assert len(set().union(*map(set, shares))) == 9
    same_epoch = [ShuffleBatchSampler(range(11), batch_size=2, seed=4, rank=r, world_size=3) for r in range(3)]
    assert [len(s) for s in same_epoch] == [2, 2, 2]  # every rank steps the same number of times


def test_rank_must_be_inside_world_size():
    with pytest.raises(ValueError, match="rank must be in"):
        ShuffleBatchSampler(range(4), batch_size=2, rank=2, world_size=2)


def test_multi_scale_batch_size_scales_with_area():
    sampler = MultiScaleSampler(range(100), SCALES, first_bs=12, fix_bs=False, seed=0)
    assert sampler.scales == [(320, 32, 12), (320, 48, 8), (320, 64, 6)]
    fixed = MultiScaleSampler(range(100), SCALES, first_bs=12, fix_bs=True, seed=0)
    assert [s[2] for s in fixed.scales] == [12, 12, 12]


def test_multi_scale_rounds_to_divided_factor_and_batches_share_one_scale():
    sampler = MultiScaleSampler(range(50), [[330, 40], [300, 50]], first_bs=4, divided_factor=[8, 16], seed=0)
    assert [(w, h) for w, h, _ in sampler.scales] == [(328, 32), (296, 48)]
    batches = list(sampler)
    for batch in batches:
        assert len({(w, h) for w, h, _ in batch}) == 1
    assert sorted(flat(batches)) == list(range(50))


def test_multi_scale_order_depends_on_seed_and_epoch_only():
    a = MultiScaleSampler(range(40), SCALES, first_bs=4, fix_bs=False, seed=7)
    b = MultiScaleSampler(range(40), SCALES, first_bs=4, fix_bs=False, seed=7)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    a.set_epoch(1, start_step=2)
    b.set_epoch(1)
    assert list(a) == list(b)[2:]


def test_multi_scale_shards_are_disjoint_and_step_together():
    samplers = [MultiScaleSampler(range(40), SCALES, first_bs=4, fix_bs=False, seed=7, rank=r, world_size=2)
                for r in range(2)]
    batches = [list(s) for s in samplers]
    assert not set(flat(batches[0])) & set(flat(batches[1]))
    assert len(flat(batches[0])) == len(flat(batches[1])) == 20
    # at every step both ranks use the same scale, so their step times match
    assert [b[0][:2] for b in batches[0]] == [b[0][:2] for b in batches[1]]


def test_multi_scale_eval_uses_the_first_scale_in_file_order():
    sampler = MultiScaleSampler(range(5), SCALES, first_bs=2, is_training=False)
    assert list(sampler) == [[(320, 32, 0), (320, 32, 1)], [(320, 32, 2), (320, 32, 3)], [(320, 32, 4)]]


class Crops:
    """A data source of crops with the given width / height ratios."""

    def __init__(self, ratios):
        self.ratios = list(ratios)

    def __len__(self):
        return len(self.ratios)

    def aspect_ratios(self):
        return self.ratios


def test_reading_width_validation_batches_crops_as_the_system_reads_them():
    # TextSystem.recognize: crops sorted by ratio, batches of rec_batch_num, each int(48 * max(320/48, ratios))
    ratios = [1.0, 10.0, 3.0, 7.0, 2.0]
    sampler = MultiScaleSampler(Crops(ratios), [[320, 48]], first_bs=2, is_training=False, reading_width=True)
    assert list(sampler) == [[(320, 48, 0), (320, 48, 4)], [(336, 48, 2), (336, 48, 3)], [(480, 48, 1)]]
    capped = MultiScaleSampler(Crops(ratios), [[320, 48]], first_bs=2, is_training=False, reading_width=True,
                               max_width=400)
    assert list(capped)[-1] == [(400, 48, 1)]


def test_reading_width_training_keeps_every_crop_unsqueezed_and_draws_new_batches_each_epoch():
    ratios = [1 + (i * 7919 % 97) / 8 for i in range(200)]  # 1 .. 13
    sampler = MultiScaleSampler(Crops(ratios), SCALES, first_bs=8, fix_bs=False, seed=3, drop_last=True,
                                reading_width=True)
    batches = list(sampler)
    assert sorted(flat(batches)) == list(range(200))  # drop_last joins the widest tail to a batch, drops none
    for batch in batches:
        width, height = batch[0][:2]
        assert all((w, h) == (width, height) for w, h, _ in batch)
        assert all(width >= int(height * ratios[i]) for _, _, i in batch)
        assert width >= 320
    wide = [b for b in batches if b[0][0] > 480]
    assert wide and all(len(b) < 8 for b in wide)  # pixels per batch stay level
    sampler.set_epoch(1)
    assert [sorted(flat([b])) for b in sampler] != [sorted(flat([b])) for b in batches]


def test_reading_width_ranks_step_through_the_same_widths():
    ratios = [1 + (i * 31 % 23) / 2 for i in range(61)]
    samplers = [MultiScaleSampler(Crops(ratios), SCALES, first_bs=4, fix_bs=False, seed=5, rank=r, world_size=2,
                                  reading_width=True) for r in range(2)]
    batches = [list(s) for s in samplers]
    assert len(batches[0]) == len(batches[1])
    assert [b[0][:2] for b in batches[0]] == [b[0][:2] for b in batches[1]]
    assert not set(flat(batches[0])) & set(flat(batches[1]))
    assert len(flat(batches[0])) + len(flat(batches[1])) == 60


def test_reading_width_needs_the_image_ratios():
    with pytest.raises(TypeError, match="aspect_ratios"):
        MultiScaleSampler(range(5), SCALES, reading_width=True)
    with pytest.raises(ValueError, match="max_width"):
        MultiScaleSampler(Crops([1.0]), SCALES, reading_width=True, max_width=200)
