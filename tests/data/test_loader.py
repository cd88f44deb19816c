"""build_dataloader over tiny real data with PaddleOCR's own transforms: shapes, determinism, resume, rejections."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ocrforge.data.loader import BatchCollator, build_dataloader
from ocrforge.data.sources import MultiScaleDataSet, SimpleDataSet, resize_norm_padded
from test_loader_data import (
    GLOBAL,
    MAX_TEXT_LENGTH,
    REC_TEXTS,
    TOO_LONG,
    det_eval_transforms,
    det_train_transforms,
    rec_transforms,
    section,
    write_det_data,
    write_rec_data,
)

MULTI_SCALE = {"name": "MultiScaleSampler", "scales": [[320, 32], [320, 48], [320, 64]], "first_bs": 4,
               "fix_bs": False, "divided_factor": [8, 16], "is_training": True}


def arrays(batch) -> list[np.ndarray]:
    return [x.numpy() for x in batch]


def test_rec_batches_have_paddleocr_shapes_and_dtypes(tmp_path):
    label_file = write_rec_data(tmp_path)
    loader = build_dataloader({"Train": section(tmp_path, label_file, rec_transforms(), batch_size=5)},
                              "Train", GLOBAL, seed=0)
    batches = list(loader)
    assert [len(b[0]) for b in batches] == [5, 5, 2]
    image, label_ctc, label_gtc, length, valid_ratio = batches[0]
    assert image.shape == [5, 3, 48, 320] and image.dtype == paddle.float32
    assert label_ctc.shape == [5, MAX_TEXT_LENGTH] and label_ctc.dtype == paddle.int64
    assert label_gtc.shape == [5, MAX_TEXT_LENGTH] and label_gtc.dtype == paddle.int64
    assert length.shape == [5] and length.dtype == paddle.int64
    assert valid_ratio.shape == [5] and valid_ratio.dtype == paddle.float32
    assert -1.0 <= float(image.min()) and float(image.max()) <= 1.0
    # every text is encoded once: lengths are the text lengths (all characters are in the English dict)
    all_lengths = sorted(int(n) for b in batches for n in b[3].numpy())
    assert all_lengths == sorted(len(t) for t in REC_TEXTS)


def test_multi_scale_batches_group_by_scale_with_area_scaled_batch_size(tmp_path):
    label_file = write_rec_data(tmp_path)
    train = section(tmp_path, label_file, rec_transforms(resize=False), name="MultiScaleDataSet")
    train["sampler"] = MULTI_SCALE
    loader = build_dataloader({"Train": train}, "Train", GLOBAL, seed=0)
    seen = 0
    for image, label_ctc, label_gtc, length, valid_ratio in loader:
        n, c, h, w = image.shape
        assert (c, w) == (3, 320) and h in (32, 48, 64)
        assert n <= {32: 4, 48: 2, 64: 2}[h]  # 4 * 320*32 / (320*h)
        assert label_ctc.shape == [n, MAX_TEXT_LENGTH]
        assert np.all((valid_ratio.numpy() > 0) & (valid_ratio.numpy() <= 1))
        seen += n
    assert seen == len(REC_TEXTS)


def test_resize_norm_padded_keeps_aspect_ratio_and_pads_with_zero():
    image = np.full((10, 20, 3), 255, np.uint8)
    out, valid_ratio = resize_norm_padded(image, 100, 32)
    assert out.shape == (3, 32, 100) and out.dtype == np.float32
    assert valid_ratio == pytest.approx(64 / 100)
    assert np.all(out[:, :, :64] == 1.0) and np.all(out[:, :, 64:] == 0.0)


def test_det_train_batches_have_db_maps(tmp_path):
    label_file = write_det_data(tmp_path, n_images=4)
    loader = build_dataloader({"Train": section(tmp_path, label_file, det_train_transforms(), batch_size=2)},
                              "Train", GLOBAL, seed=0)
    batches = list(loader)
    assert len(batches) == 2
    image, threshold_map, threshold_mask, shrink_map, shrink_mask = batches[0]
    assert image.shape == [2, 3, 64, 64] and image.dtype == paddle.float32
    for m in (threshold_map, threshold_mask, shrink_map, shrink_mask):
        assert m.shape == [2, 64, 64] and m.dtype == paddle.float32
    assert float(shrink_map.sum()) > 0  # the crop keeps text


@pytest.mark.parametrize("num_workers", [0, 2])
def test_det_eval_keeps_per_image_polygons(tmp_path, num_workers):
    label_file = write_det_data(tmp_path, n_images=3)  # images hold 1, 2 and 3 boxes
    loader = build_dataloader({"Eval": section(tmp_path, label_file, det_eval_transforms(), batch_size=3,
                                               shuffle=False, num_workers=num_workers)}, "Eval", GLOBAL, seed=0)
    (image, shape, polys, ignore_tags), = list(loader)
    assert image.shape == [3, 3, 64, 64]
    assert shape.shape == [3, 4]
    assert isinstance(polys, list) and [p.shape for p in polys] == [[1, 4, 2], [2, 4, 2], [3, 4, 2]]
    assert [t.shape for t in ignore_tags] == [[1], [2], [3]] and ignore_tags[0].dtype == paddle.bool
    np.testing.assert_allclose(polys[0].numpy()[0], [[8, 10], [88, 10], [88, 28], [8, 28]])


def test_collator_stacks_equal_shapes_and_names_the_ragged_field_it_cannot_stack():
    collate = BatchCollator(["image", "texts"])
    batch = collate([[np.zeros((2, 3)), ["a"]], [np.ones((2, 3)), ["b", "c"]]])
    assert batch[0].shape == (2, 2, 3) and batch[1] == [["a"], ["b", "c"]]
    with pytest.raises(ValueError, match="'image' has different shapes"):
        collate([[np.zeros((2, 3)), []], [np.zeros((2, 4)), []]])


def order_of(loader) -> list[tuple]:
    """The sample order of an epoch: each rec text is distinct, so its CTC label row identifies it."""
    return [tuple(row) for b in loader for row in b[1].numpy().tolist()]


def rec_loader(tmp_path, **kwargs):
    label_file = write_rec_data(tmp_path)
    return build_dataloader({"Train": section(tmp_path, label_file, rec_transforms(), batch_size=3)},
                            "Train", GLOBAL, **kwargs)


def test_same_seed_and_epoch_give_the_same_batches_and_another_epoch_another_order(tmp_path):
    first = order_of(rec_loader(tmp_path, seed=5, epoch=2))
    again = order_of(rec_loader(tmp_path, seed=5, epoch=2))
    other_epoch = order_of(rec_loader(tmp_path, seed=5, epoch=3))
    assert first == again
    assert other_epoch != first and sorted(other_epoch) == sorted(first)


def test_det_augmentation_is_a_function_of_seed_and_epoch(tmp_path):
    label_file = write_det_data(tmp_path, n_images=4)
    cfg = {"Train": section(tmp_path, label_file, det_train_transforms(), batch_size=2)}
    a = [arrays(b) for b in build_dataloader(cfg, "Train", GLOBAL, seed=1, epoch=0)]
    b = [arrays(b) for b in build_dataloader(cfg, "Train", GLOBAL, seed=1, epoch=0)]
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)


def test_det_augmentation_does_not_depend_on_the_dataset_instance_or_the_order_of_reads(tmp_path):
    """IaaAugment's albumentations pipeline keeps its own generator, seeded afresh by each new instance unless the
    dataset reseeds it: two runs of one config (two processes, or two DVC clones) would train on other crops."""
    label_file = write_det_data(tmp_path, n_images=4)

    def dataset():
        return SimpleDataSet(str(tmp_path), [str(label_file)], det_train_transforms(), global_config=GLOBAL,
                             seed=3)

    first, second = dataset(), dataset()
    forward = [first[i] for i in range(4)]
    backward = [second[i] for i in reversed(range(4))][::-1]
    for x, y in zip(forward, backward):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
    first.set_epoch(1)
    assert any(not np.array_equal(u, v) for u, v in zip(first[0], forward[0]))


def test_set_epoch_and_start_step_skip_exactly_k_batches(tmp_path):
    loader = rec_loader(tmp_path, seed=5)
    loader.set_epoch(4)
    full = [b[1].numpy() for b in loader]
    assert len(loader) == 4
    loader.set_epoch(4, start_step=2)
    assert len(loader) == 2
    resumed = [b[1].numpy() for b in loader]
    assert len(resumed) == 2
    for x, y in zip(full[2:], resumed):
        np.testing.assert_array_equal(x, y)
    # built directly at a resume point, too
    built = [b[1].numpy() for b in rec_loader(tmp_path, seed=5, epoch=4, start_step=3)]
    assert len(built) == 1
    np.testing.assert_array_equal(built[0], full[3])


def test_ranks_read_disjoint_shares(tmp_path):
    shares = [set(order_of(rec_loader(tmp_path, seed=5, rank=r, world_size=3))) for r in range(3)]
    assert all(len(s) == 4 for s in shares)
    assert not (shares[0] & shares[1]) and not (shares[0] & shares[2]) and not (shares[1] & shares[2])


def test_rejected_sample_is_replaced_deterministically_and_counted(tmp_path):
    label_file = write_rec_data(tmp_path, REC_TEXTS[:5] + [TOO_LONG])
    cfg = {"Train": section(tmp_path, label_file, rec_transforms(), batch_size=6)}
    loader = build_dataloader(cfg, "Train", GLOBAL, seed=0)
    (image, label_ctc, *_), = list(loader)
    assert image.shape[0] == 6  # the too-long text was replaced, not dropped
    assert loader.stats == {"samples": 6, "served": 6, "rejected": {"MultiLabelEncode": 1}, "rejected_total": 1}
    again = build_dataloader(cfg, "Train", GLOBAL, seed=0)
    np.testing.assert_array_equal(next(iter(again))[1].numpy(), label_ctc.numpy())


def test_malformed_label_line_names_file_and_line(tmp_path):
    label_file = write_rec_data(tmp_path, ["ab", "cd"])
    with open(label_file, "a", encoding="utf-8") as fh:
        fh.write("rec/train/002.png no tab here\n")
    with pytest.raises(ValueError, match=rf"{label_file}:3: expected '<image path>"):
        SimpleDataSet(str(tmp_path), [str(label_file)], rec_transforms(), global_config=GLOBAL)


def test_bad_detection_json_names_file_and_line(tmp_path):
    label_file = write_det_data(tmp_path, n_images=2)
    lines = label_file.read_text().splitlines()
    label_file.write_text(lines[0] + "\n" + lines[1][:-5] + "\n")
    with pytest.raises(ValueError, match=rf"{label_file}:2: the detection label is not valid JSON"):
        SimpleDataSet(str(tmp_path), [str(label_file)], det_train_transforms(), global_config=GLOBAL)


def test_missing_image_names_file_line_and_path(tmp_path):
    label_file = write_rec_data(tmp_path, ["ab", "cd"])
    (tmp_path / "rec" / "train" / "001.png").unlink()
    with pytest.raises(FileNotFoundError, match=rf"1 image\(s\).*{label_file}:2: .*rec/train/001.png"):
        SimpleDataSet(str(tmp_path), [str(label_file)], rec_transforms(), global_config=GLOBAL)


def test_multi_scale_dataset_needs_the_sampler_tuple(tmp_path):
    label_file = write_rec_data(tmp_path, ["ab"])
    ds = MultiScaleDataSet(str(tmp_path), [str(label_file)], rec_transforms(resize=False), global_config=GLOBAL)
    assert ds[(160, 32, 0)][0].shape == (3, 32, 160)
    with pytest.raises(TypeError, match="needs \\(width, height, index\\)"):
        ds[0]


def test_two_workers_give_the_same_batches_and_shared_stats(tmp_path):
    label_file = write_det_data(tmp_path, n_images=6)
    cfg = {"Train": section(tmp_path, label_file, det_train_transforms(), batch_size=2)}
    in_process = [arrays(b) for b in build_dataloader(cfg, "Train", GLOBAL, seed=2, epoch=1)]
    cfg["Train"]["loader"]["num_workers"] = 2
    loader = build_dataloader(cfg, "Train", GLOBAL, seed=2, epoch=1)
    workers = [arrays(b) for b in loader]
    assert len(workers) == len(in_process) == 3
    for x, y in zip(in_process, workers):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
    assert loader.stats["served"] == 6


def test_an_ops_own_numpy_generator_is_reseeded_per_sample():
    from ocrforge.data.sources import private_generators, reseed_private_generators

    class DrawsFromItsOwn:
        def __init__(self):
            self.rng = np.random.default_rng()
            self.scale = 2.0

    ops = [DrawsFromItsOwn(), DrawsFromItsOwn()]
    generators = private_generators(ops)
    assert generators == [(ops[0], "rng"), (ops[1], "rng")]
    reseed_private_generators(generators, 11)
    first = [op.rng.random() for op in ops]
    reseed_private_generators(generators, 11)
    assert [op.rng.random() for op in ops] == first and first[0] != first[1]
