"""The decoded-image LMDB cache: identical samples, built once, rebuilt when an image changes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ocrforge.data.lmdb_cache import decode_record, encode_image, read_meta
from ocrforge.data.loader import build_dataloader
from ocrforge.data.sources import SimpleDataSet
from test_loader_data import GLOBAL, det_train_transforms, rec_transforms, section, write_det_data, write_rec_data


def test_record_round_trip_and_undecodable_marker():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    back = decode_record(encode_image(image))
    np.testing.assert_array_equal(back, image)
    back[0, 0, 0] = 99  # writable: the wheel's ops may change images in place
    assert decode_record(encode_image(None)) is None
    with pytest.raises(ValueError, match="bad magic"):
        decode_record(b"JUNK" + bytes(8))


@pytest.mark.parametrize("kind, num_workers", [("rec", 0), ("det", 0), ("det", 2)])
def test_samples_through_the_cache_are_identical(tmp_path, kind, num_workers):
    if kind == "rec":
        label_file, transforms = write_rec_data(tmp_path), rec_transforms()
    else:
        label_file, transforms = write_det_data(tmp_path, n_images=4), det_train_transforms()
    plain = section(tmp_path, label_file, transforms, batch_size=2)
    cached = section(tmp_path, label_file, transforms, batch_size=2, num_workers=num_workers,
                     lmdb_cache=str(tmp_path / "cache"))
    a = list(build_dataloader({"Train": plain}, "Train", GLOBAL, seed=3, epoch=1))
    b = list(build_dataloader({"Train": cached}, "Train", GLOBAL, seed=3, epoch=1))
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u.numpy(), v.numpy())
    assert read_meta(tmp_path / "cache")["images"] == sum(1 for _ in open(label_file))


def test_cache_is_built_once_and_rebuilt_when_an_image_changes(tmp_path):
    label_file = write_rec_data(tmp_path, ["ab", "cd"])
    cache = tmp_path / "cache"

    def dataset():
        return SimpleDataSet(str(tmp_path), [str(label_file)], rec_transforms(), lmdb_cache=str(cache),
                             global_config=GLOBAL)

    dataset()
    built = read_meta(cache)["fingerprint"]
    mtime = os.stat(cache / "data.mdb").st_mtime_ns
    ds = dataset()
    assert os.stat(cache / "data.mdb").st_mtime_ns == mtime  # reused, not rewritten
    assert ds.cache is not None and ds.cache.get("rec/train/000.png").shape == (24, 26, 3)

    image = tmp_path / "rec" / "train" / "000.png"
    os.utime(image, ns=(mtime + 10**9, mtime + 10**9))
    dataset()
    assert read_meta(cache)["fingerprint"] != built


def test_cache_refuses_a_folder_that_is_not_its_own(tmp_path):
    label_file = write_rec_data(tmp_path, ["ab"])
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="is not an ocrforge image cache"):
        SimpleDataSet(str(tmp_path), [str(label_file)], rec_transforms(), lmdb_cache=str(other),
                      global_config=GLOBAL)
    assert (other / "keep.txt").read_text() == "mine"


def test_cache_needs_decode_image_first(tmp_path):
    label_file = write_rec_data(tmp_path, ["ab"])
    with pytest.raises(ValueError, match="first transform must be DecodeImage"):
        SimpleDataSet(str(tmp_path), [str(label_file)], rec_transforms()[1:], lmdb_cache=str(tmp_path / "c"),
                      global_config=GLOBAL)


def test_undecodable_image_is_rejected_and_counted_through_the_cache(tmp_path):
    label_file = write_rec_data(tmp_path, ["ab", "cd", "ef"])
    (tmp_path / "rec" / "train" / "001.png").write_bytes(b"not a png")
    ds = SimpleDataSet(str(tmp_path), [str(label_file)], rec_transforms(), lmdb_cache=str(tmp_path / "cache"),
                       global_config=GLOBAL)
    assert ds[1][0].shape == (3, 48, 320)
    assert ds.stats["rejected"] == {"DecodeImage": 1}
