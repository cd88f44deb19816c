"""Loading pretrained weights by name: what loads, what is reported missing, what is refused."""

from __future__ import annotations

import logging

import numpy as np
import paddle
import pytest

from ocrforge.models.architectures import build_model
from ocrforge.models.pretrained import (
    SHIPPED_DET_DIR,
    SHIPPED_KEYS,
    SHIPPED_REC_DIR,
    load_inference_weights,
    load_pdparams,
    read_inference_params,
)

THRESHOLD_BRANCH = sorted(
    f"head.thresh.{layer}.{p}"
    for layer, params in {
        "conv1": ["weight"],
        "conv_bn1": ["weight", "bias", "_mean", "_variance"],
        "conv2": ["weight", "bias"],
        "conv_bn2": ["weight", "bias", "_mean", "_variance"],
        "conv3": ["weight", "bias"],
    }.items()
    for p in params
)


def det_arch(scale: float = 0.75) -> dict:
    return {
        "model_type": "det",
        "algorithm": "DB",
        "Backbone": {"name": "PPLCNetV3", "scale": scale, "det": True},
        "Neck": {"name": "RSEFPN", "out_channels": 96, "shortcut": True},
        "Head": {"name": "DBHead", "k": 50},
    }


def test_shipped_paths_exist():
    assert (SHIPPED_DET_DIR / "inference.pdiparams").is_file()
    assert (SHIPPED_REC_DIR / "inference.pdiparams").is_file()
    assert len(SHIPPED_KEYS.read_text(encoding="utf-8").splitlines()) == 6623


def test_read_inference_params_gives_dygraph_names_and_shapes():
    weights = read_inference_params(SHIPPED_DET_DIR)
    assert len(weights) == 234
    assert weights["backbone.conv1.conv.weight"].shape == (16, 3, 3, 3)
    assert weights["backbone.blocks6.3.pw_conv.reparam_conv.weight"].shape == (384, 384, 1, 1)
    assert weights["head.binarize.conv3.weight"].shape == (24, 1, 2, 2)
    assert all(a.dtype == np.float32 for a in weights.values())
    assert not any(name.startswith("head.thresh.") for name in weights)


def test_report_lists_threshold_branch_as_missing_and_names_them_at_debug_level(caplog):
    model = build_model(det_arch())
    before = model.state_dict()["head.thresh.conv1.weight"].numpy().copy()
    with caplog.at_level(logging.DEBUG, logger="ocrforge.models.pretrained"):
        report = load_inference_weights(model, SHIPPED_DET_DIR)
    assert sorted(report.missing) == THRESHOLD_BRANCH
    assert report.unexpected == []
    assert len(report.loaded) == 234
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert caplog.records[0].getMessage() == (f"weights not in {SHIPPED_DET_DIR}, which keep their initial value: "
                                              + ", ".join(report.missing))
    assert str(report) == (f"loaded 234 tensors from {SHIPPED_DET_DIR}; 13 weights of the model are not in it and "
                           f"keep their initial value (13 under head.thresh)")
    shipped = read_inference_params(SHIPPED_DET_DIR)
    state = model.state_dict()
    np.testing.assert_array_equal(state["backbone.blocks2.0.dw_conv.w"].numpy(), shipped["backbone.blocks2.0.dw_conv.w"])
    np.testing.assert_array_equal(state["head.thresh.conv1.weight"].numpy(), before)


def test_shape_mismatch_raises_a_clear_error():
    model = build_model(det_arch(scale=0.5))
    with pytest.raises(ValueError) as err:
        load_inference_weights(model, SHIPPED_DET_DIR)
    message = str(err.value)
    assert "backbone.layer_list.3.weight: checkpoint (360, 384, 1, 1), model (240, 256, 1, 1)" in message
    assert "Backbone.scale" in message


def test_transform_rewrites_one_tensor_before_loading():
    model = build_model(det_arch())
    shipped = read_inference_params(SHIPPED_DET_DIR)["head.binarize.conv3.bias"]
    report = load_inference_weights(model, SHIPPED_DET_DIR, transforms={"head.binarize.conv3.bias": lambda a: a + 1})
    assert report.transformed == ["head.binarize.conv3.bias"]
    np.testing.assert_allclose(model.state_dict()["head.binarize.conv3.bias"].numpy(), shipped + 1)


def test_transform_for_an_unknown_name_is_refused():
    model = build_model(det_arch())
    with pytest.raises(KeyError, match="head.ctc_head.fc.weight"):
        load_inference_weights(model, SHIPPED_DET_DIR, transforms={"head.ctc_head.fc.weight": lambda a: a})


def test_prefix_map_loads_a_part_and_reports_the_rest_unused():
    from ocrforge.models.backbones import PPLCNetV3

    backbone = PPLCNetV3(scale=0.95, det=False)
    report = load_inference_weights(backbone, SHIPPED_REC_DIR, prefix_map={"backbone.": ""})
    assert report.missing == []
    assert report.unexpected and all(name.startswith("head.") for name in report.unexpected)
    assert "conv1.conv.weight" in report.loaded


def test_load_pdparams_round_trip(tmp_path):
    trained = build_model(det_arch())
    load_inference_weights(trained, SHIPPED_DET_DIR)
    paddle.save(trained.state_dict(), str(tmp_path / "best.pdparams"))
    fresh = build_model(det_arch())
    report = load_pdparams(fresh, tmp_path / "best.pdparams")
    assert report.missing == [] and report.unexpected == []
    assert len(report.loaded) == len(fresh.state_dict())
    for name, value in trained.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[name].numpy(), value.numpy(), err_msg=name)


def test_missing_files_say_what_to_give(tmp_path):
    model = build_model(det_arch())
    with pytest.raises(FileNotFoundError, match="inference.pdmodel"):
        load_inference_weights(model, tmp_path)
    with pytest.raises(FileNotFoundError, match="pdparams"):
        load_pdparams(model, tmp_path / "nothing.pdparams")


def test_the_params_info_of_an_inference_folder_is_read_as_plain_data_only(tmp_path):
    """Issue 22, defect 12: inference.pdiparams.info is a pickle; one from someone else's folder must not
    run code. The shipped one still reads (the names our layers use)."""
    import pickle
    import shutil

    from ocrforge.models.pretrained import SHIPPED_DET_DIR, read_inference_params, read_params_info

    names = read_params_info(SHIPPED_DET_DIR / "inference.pdiparams.info")
    assert len(names) > 100 and "backbone.conv1.conv.weight" in names.values()
    folder = tmp_path / "someone_elses_model"
    shutil.copytree(SHIPPED_DET_DIR, folder)
    proof = tmp_path / "code_ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(proof), "w"))

    (folder / "inference.pdiparams.info").write_bytes(pickle.dumps({"conv2d_0.w_0": Payload()}))
    with pytest.raises(ValueError, match=r"inference.pdiparams.info was not read \(it names (io|builtins).open, and only "
                                         r"plain data is read from it\)"):
        read_inference_params(folder)
    assert not proof.exists()


def test_a_training_logs_its_start_weights_in_one_line(caplog, repo_root):
    """Issue 17: each training printed 13 (det) to 83 (rec) lines "weight ... is not in ...; it keeps its
    initial value"; now one line with the counts and where the fresh weights are."""
    from ocrforge.config import load_config, resolve_dict_paths
    from ocrforge.models.build import build_pretrained_model

    config = load_config(repo_root / "configs" / "rec" / "ppocrv4_rec.yml")
    config["Global"]["pretrained_model"] = "shipped"
    resolve_dict_paths(config)
    with caplog.at_level(logging.INFO, logger="tests.build"):  # outside ocrforge's logger, which stages detach
        build_pretrained_model(config, logger=logging.getLogger("tests.build"))
    assert [r.getMessage() for r in caplog.records] == [
        f"rec, shipped PP-OCRv4 recogniser: loaded 234 tensors from {SHIPPED_REC_DIR}; 83 weights of the model are "
        f"not in it and keep their initial value (1 under head.before_gtc, 82 under head.gtc_head); 2 transformed"]


def test_name_groups_count_by_prefix_and_cut_the_list():
    from ocrforge.models.pretrained import name_groups

    names = ["a.b.w", "a.b.v", "a.c.w", "d.w", "e.x.y", "f.g.h", "a.b.z"]
    assert name_groups(names) == "3 under a.b, 1 under a.c, 1 under d.w, 1 under e.x and 1 more groups"
    assert name_groups(names, shown=6) == "3 under a.b, 1 under a.c, 1 under d.w, 1 under e.x, 1 under f.g"
