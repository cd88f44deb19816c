"""params.yaml's train_rec.box_jitter picks the recogniser's training crops: jittered context crops, or the
labelled boxes exactly."""

import pytest

from ocrforge.config import load_config, resolve_dict_paths
from ocrforge.data.transforms import build_transforms
from ocrforge.params import load_params, section
from ocrforge.recipe import rec_config_from_params


def rec_config(repo_root, **changes):
    params = load_params(repo_root / "params.yaml")
    p = {**section(params, "train_rec"), **changes}
    return rec_config_from_params(load_config(repo_root / p["config"]), p, section(params, "dictionary"), "d",
                                  "out", "live")


def loader_data(repo_root):
    """tests/data/test_loader_data.py: tiny real crops and their label files."""
    import importlib
    import sys

    sys.path.insert(0, str(repo_root / "tests" / "data"))
    return importlib.import_module("test_loader_data")


def loader_on_crops(repo_root, tmp_path, texts, mode, **changes):
    """The rec config of params.yaml (with ``changes``) and its ``mode`` loader, on crops of ``texts`` written
    under ``tmp_path``."""
    from ocrforge.data.loader import build_dataloader

    write_rec_data = loader_data(repo_root).write_rec_data

    split = "val" if mode == "Eval" else "train"
    write_rec_data(tmp_path, texts, split=split)
    config = rec_config(repo_root, **changes)
    config[mode]["dataset"]["data_dir"] = str(tmp_path)
    config[mode]["dataset"]["label_file_list"] = [str(tmp_path / "rec" / f"{split}.txt")]
    config[mode]["loader"]["num_workers"] = 0
    resolve_dict_paths(config)
    return config, build_dataloader(config, mode, None, seed=0)


def op_names(config):
    return [next(iter(op)) for op in config["Train"]["dataset"]["transforms"]]


def test_box_jitter_trains_on_jittered_context_crops(repo_root):
    config = rec_config(repo_root, box_jitter=0.15)
    dataset = config["Train"]["dataset"]
    assert op_names(config)[:3] == ["DecodeImage", "RecBoxJitter", "RecConAug"]
    assert dataset["transforms"][1]["RecBoxJitter"] == {"prob": 0.5, "jitter": 0.15}
    assert dataset["label_file_list"] == ["d/rec/train_context.txt"]
    assert dataset["ext_op_transform_idx"] == 2  # RecConAug's extra samples are jittered too
    assert config["Eval"]["dataset"]["label_file_list"] == ["d/rec/val.txt"]  # scored on the labelled boxes
    resolve_dict_paths(config)
    build_transforms(dataset["transforms"], config["Global"])  # the op list builds


def test_zero_jitter_trains_on_the_labelled_boxes(repo_root):
    assert section(load_params(repo_root / "params.yaml"), "train_rec")["box_jitter"] == 0  # the default
    config = rec_config(repo_root)
    assert "RecBoxJitter" not in op_names(config)
    assert config["Train"]["dataset"]["label_file_list"] == ["d/rec/train.txt"]
    assert config["Train"]["dataset"]["ext_op_transform_idx"] == 1


def test_jitter_beyond_the_context_is_a_params_error(repo_root):
    from ocrforge.params import ParamsError, validate_section

    params = load_params(repo_root / "params.yaml")
    with pytest.raises(ParamsError, match="train_rec.box_jitter must be"):
        validate_section("train_rec", {**section(params, "train_rec"), "box_jitter": 0.4})


def test_validation_reads_the_crops_as_the_deployed_system_does(repo_root, tmp_path):
    """Training's val acc is measured on the very arrays the system feeds its recogniser: aspect ratio kept,
    like-ratio batches as wide as their widest, so a long line is not squeezed into 320 px."""
    import cv2
    import numpy as np

    from ocrforge.system import resize_norm_rec, settings_from_configs

    texts = ["CASH", "TOTAL 4.50", "x", "a long receipt line 12", "THANK YOU", "another long line 345"]
    config, loader = loader_on_crops(repo_root, tmp_path, texts, "Eval")
    assert settings_from_configs({}, config).rec_image_shape == (3, 48, 320)  # what export and eval deploy

    crops = [cv2.imread(str(tmp_path / f"rec/val/{i:03d}.png")) for i in range(len(texts))]
    ratios = [c.shape[1] / c.shape[0] for c in crops]
    order = np.argsort(ratios)  # TextSystem.recognize's order and batches of rec_batch_num (6 here: one batch)
    batches = list(loader)
    assert sum(int(b[0].shape[0]) for b in batches) == len(texts)
    images = np.concatenate([b[0].numpy() for b in batches])
    max_ratio = max(320 / 48, *ratios)
    assert images.shape[1:] == (3, 48, int(48 * max_ratio)) and images.shape[3] > 320  # not squeezed
    for row, i in enumerate(order):
        np.testing.assert_allclose(images[row], resize_norm_rec(crops[i], (3, 48, 320), max_ratio), atol=1e-6)


def test_reading_width_trains_long_lines_at_their_own_aspect_ratio(repo_root, tmp_path):
    assert section(load_params(repo_root / "params.yaml"), "train_rec")["reading_width"] is False  # the default
    texts = ["CASH", "a long receipt line 12", "x", "ok", "THANK YOU", "another long line 345"]
    for reading_width, widest in ((True, int(48 * 206 / 24)), (False, 320)):
        config, loader = loader_on_crops(repo_root, tmp_path, texts, "Train", reading_width=reading_width,
                                         batch_size=2, heights=[48])
        assert config["Train"]["sampler"]["reading_width"] is reading_width
        widths = sorted(int(b[0].shape[3]) for b in loader)
        assert widths[-1] == widest  # the 22-character crop, 206 x 24 px: 412 px wide, or squeezed into 320


def test_an_unreadable_crop_is_named_when_the_sampler_reads_its_size(tmp_path):
    from ocrforge.data.sources import SimpleDataSet

    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "bad.png").write_bytes(b"not a png")
    (tmp_path / "rec" / "val.txt").write_text("rec/bad.png\tCASH\n")
    dataset = SimpleDataSet(str(tmp_path), [str(tmp_path / "rec" / "val.txt")], [{"DecodeImage": {"img_mode": "BGR"}}])
    with pytest.raises(ValueError, match=r"val.txt:1: cannot read the size of image .*bad.png.*re-run the split"):
        dataset.aspect_ratios()


def test_validation_leaves_out_labels_too_long_to_encode_instead_of_scoring_others_twice(repo_root, tmp_path):
    too_long = loader_data(repo_root).TOO_LONG  # 39 characters: max_text_length is 25
    texts = ["CASH", too_long, "x", "ok", "THANK YOU"]
    _, loader = loader_on_crops(repo_root, tmp_path, texts, "Eval")
    assert loader.dataset.unscored_labels == [f"{tmp_path / 'rec' / 'val.txt'}:2"]
    lengths = sorted(int(n) for batch in loader for n in batch[3].numpy())
    assert lengths == sorted(len(t) for t in texts if t != too_long)  # each other crop exactly once
    assert loader.dataset.stats["rejected_total"] == 0
