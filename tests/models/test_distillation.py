"""DistillationModel: named members, frozen teachers, the user's CML config training, Student-only export."""

import ocrforge  # noqa: F401  (sets the thread count before paddle loads)

import copy

import numpy as np
import paddle
import paddleocr  # noqa: F401  (puts the wheel's ppocr on sys.path)
import pytest
import yaml
from ppocr.data.imaug.make_border_map import MakeBorderMap
from ppocr.data.imaug.make_shrink_map import MakeShrinkMap

from ocrforge.models.architectures import BaseModel, build_model
from ocrforge.models.distillation import DistillationModel, deployed_model, load_distillation_weights
from ocrforge.registry import LOSSES, METRICS, POSTPROCESS

BOX = [[8, 16], [56, 16], [56, 40], [8, 40]]


def small_det(backbone: dict, freeze: bool = False) -> dict:
    return {"freeze_params": freeze, "model_type": "det", "algorithm": "DB", "Backbone": backbone,
            "Neck": {"name": "RSEFPN", "out_channels": 32, "shortcut": True}, "Head": {"name": "DBHead", "k": 50}}


def tiny_config() -> dict:
    """A small distillation: a frozen MobileNetV3-small teacher and a MobileNetV3-large student."""
    return {
        "Global": {},
        "Architecture": {
            "model_type": "det", "name": "DistillationModel", "algorithm": "Distillation",
            "Models": {
                "Teacher": small_det({"name": "MobileNetV3", "model_name": "small", "scale": 0.35}, freeze=True),
                "Student": small_det({"name": "MobileNetV3", "model_name": "large", "scale": 0.35,
                                      "disable_se": True}),
            },
        },
        "PostProcess": {"name": "DistillationDBPostProcess", "model_name": ["Student"], "key": "head_out"},
    }


def db_batch(n: int = 2) -> list:
    """n black 64x64 images with one labelled text box, labelled by PaddleOCR's own MakeBorderMap/MakeShrinkMap."""
    sample = {"image": np.zeros((64, 64, 3), np.float32), "polys": np.array([BOX], np.float32),
              "ignore_tags": np.array([False])}
    sample = MakeShrinkMap()(MakeBorderMap()(sample))
    labels = [paddle.to_tensor(np.stack([sample[k]] * n))
              for k in ("threshold_map", "threshold_mask", "shrink_map", "shrink_mask")]
    return [paddle.to_tensor(np.random.default_rng(0).normal(size=(n, 3, 64, 64)).astype(np.float32))] + labels


def user_config(repo_root) -> dict:
    with open(repo_root / "configs/det/en_PP-OCRv3_det_cml.yml") as fh:
        return yaml.safe_load(fh)


def snapshot(layer) -> dict:
    return {k: v.numpy().copy() for k, v in layer.state_dict().items()}


def test_members_are_named_sub_models_in_config_order():
    model = build_model(tiny_config()["Architecture"])
    assert isinstance(model, DistillationModel)
    assert model.model_names == ["Teacher", "Student"]
    assert model.frozen_names == ["Teacher"]
    assert isinstance(model.sub("Student"), BaseModel)
    assert "Teacher.backbone.conv.conv.weight" in model.state_dict()
    with pytest.raises(KeyError, match=r"no member 'Student2'.*\['Teacher', 'Student'\]"):
        model.sub("Student2")
    model.eval()
    out = model(paddle.zeros([1, 3, 64, 64]))
    assert set(out) == {"Teacher", "Student"} and list(out["Student"]["maps"].shape) == [1, 1, 64, 64]


def test_a_frozen_member_has_no_gradient_and_uses_running_batch_norm_statistics():
    model = build_model(tiny_config()["Architecture"])
    assert all(p.stop_gradient for p in model.sub("Teacher").parameters())
    student = dict(model.sub("Student").named_parameters())
    assert not any(p.stop_gradient for name, p in student.items() if not name.endswith(("_mean", "_variance")))
    bns = [m for m in model.sub("Teacher").sublayers() if isinstance(m, paddle.nn.BatchNorm2D)]
    assert bns and all(bn._use_global_stats for bn in bns)


def test_users_cml_config_trains_two_steps_and_leaves_the_teacher_unchanged(repo_root):
    config = user_config(repo_root)
    paddle.seed(0)
    model = build_model(config["Architecture"])
    assert model.model_names == ["Teacher", "Student", "Student2"] and model.frozen_names == ["Teacher"]
    loss_fn = LOSSES.build(config["Loss"])
    batch = db_batch()
    optimizer = paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.parameters())
    teacher_before, student_before = snapshot(model.sub("Teacher")), snapshot(model.sub("Student"))
    model.train()
    for _ in range(2):
        losses = loss_fn(model(batch[0], data=batch[1:]), batch)
        losses["loss"].backward()
        optimizer.step()
        optimizer.clear_grad()
    assert {"loss", "dila_dbloss_Student_Teacher", "dila_dbloss_Student2_Teacher", "dml_thrink_maps_0",
            "db_Student_loss_shrink_maps", "db_Student2_loss_threshold_maps"} <= set(losses)
    assert np.isfinite(float(losses["loss"])) and float(losses["loss"]) > 0
    teacher_after, student_after = snapshot(model.sub("Teacher")), snapshot(model.sub("Student"))
    assert all(np.array_equal(teacher_before[k], teacher_after[k]) for k in teacher_before)  # BN stats too
    changed = [k for k in student_before if not np.array_equal(student_before[k], student_after[k])]
    assert "backbone.conv.conv.weight" in changed and "backbone.conv.bn._mean" in changed


def test_users_config_post_process_and_metric_score_the_student(repo_root):
    config = user_config(repo_root)
    post = POSTPROCESS.build(config["PostProcess"])
    metric = METRICS.build(config["Metric"])
    perfect = np.zeros((1, 1, 64, 64), np.float32)
    perfect[:, :, 19:37, 11:53] = 1.0  # the box shrunk about as MakeShrinkMap does; unclip brings it back
    predicts = {"Student": {"maps": paddle.to_tensor(perfect)}, "Student2": {"maps": paddle.zeros([1, 1, 64, 64])}}
    result = post(predicts, np.array([[64, 64, 1.0, 1.0]], np.float32))
    assert set(result) == {"Student"} and len(result["Student"][0]["points"]) == 1
    result["Student2"] = post.post_process(predicts["Student2"], np.array([[64, 64, 1.0, 1.0]], np.float32))
    metric(result, [None, None, np.array([[BOX]], np.float32), np.array([[False]])])
    figures = metric.get_metric()
    assert figures["hmean"] == 1.0 and figures["Student2_recall"] == 0.0
    assert metric.main_indicator == "hmean"


@pytest.mark.slow
def test_the_student_alone_exports_with_jit_save_and_matches_the_dygraph_model(tmp_path):
    config = tiny_config()
    model = build_model(config["Architecture"])
    model.eval()
    student = deployed_model(model, config)
    assert student is model.sub("Student")
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", "x")]
    paddle.jit.save(paddle.jit.to_static(student, input_spec=spec, full_graph=True), str(tmp_path / "inference"))
    loaded = paddle.jit.load(str(tmp_path / "inference"))
    x = paddle.to_tensor(np.random.default_rng(1).normal(size=(1, 3, 64, 96)).astype(np.float32))
    expected = student(x)["maps"].numpy()
    got = loaded(x)
    got = (got["maps"] if isinstance(got, dict) else got[0] if isinstance(got, (list, tuple)) else got).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    exported = sum(int(np.prod(p.shape)) for p in loaded.parameters())
    assert 0 < exported < sum(int(p.size) for p in student.parameters())  # no teacher, no threshold branch


def test_teacher_weights_come_from_a_single_network_checkpoint(tmp_path):
    config = tiny_config()
    teacher_alone = build_model(config["Architecture"]["Models"]["Teacher"])
    paddle.save(teacher_alone.state_dict(), str(tmp_path / "teacher.pdparams"))
    config["Global"]["teacher_model"] = str(tmp_path / "teacher.pdparams")
    model = build_model(config["Architecture"])
    reports = load_distillation_weights(model, config)
    assert set(reports) == {"Teacher"} and not reports["Teacher"].missing
    for k, v in teacher_alone.state_dict().items():
        np.testing.assert_array_equal(model.sub("Teacher").state_dict()[k].numpy(), v.numpy())


def test_a_whole_checkpoint_reloads_every_member_without_the_teacher_file(tmp_path):
    config = tiny_config()
    trained = build_model(config["Architecture"])
    paddle.save(trained.state_dict(), str(tmp_path / "best_accuracy.pdparams"))
    config["Global"] = {"pretrained_model": str(tmp_path / "best_accuracy.pdparams"),
                        "teacher_model": str(tmp_path / "gone.pdparams")}
    model = build_model(config["Architecture"])
    reports = load_distillation_weights(model, config)
    assert set(reports) == {"all"} and not reports["all"].missing
    np.testing.assert_array_equal(model.state_dict()["Student.head.binarize.conv1.weight"].numpy(),
                                  trained.state_dict()["Student.head.binarize.conv1.weight"].numpy())


def test_a_frozen_teacher_without_weights_or_with_another_networks_weights_is_refused(tmp_path):
    config = tiny_config()
    model = build_model(config["Architecture"])
    with pytest.raises(ValueError, match="frozen member 'Teacher' has no weights"):
        load_distillation_weights(model, config)
    other = build_model(config["Architecture"]["Models"]["Student"])  # a different backbone
    paddle.save(other.state_dict(), str(tmp_path / "student.pdparams"))
    config["Global"]["teacher_model"] = str(tmp_path / "student.pdparams")
    with pytest.raises(ValueError, match="do not fit|lacks"):
        load_distillation_weights(model, config)


def test_our_variant_config_builds_a_pplcnetv3_teacher_and_mobilenetv3_students(repo_root):
    with open(repo_root / "configs/det/distill_det.yml") as fh:
        config = yaml.safe_load(fh)
    model = build_model(copy.deepcopy(config["Architecture"]))
    assert type(model.sub("Teacher").backbone).__name__ == "PPLCNetV3"
    assert type(model.sub("Student").backbone).__name__ == "MobileNetV3"
    assert config["Global"]["teacher_model"] == "models/det/best_accuracy.pdparams"


@pytest.mark.slow
def test_export_of_a_trained_distillation_run_saves_the_student_only(tmp_path):
    from ocrforge.config import dump_config
    from ocrforge.export import save_inference_model

    config = tiny_config()
    trained = build_model(config["Architecture"])
    paddle.save(trained.state_dict(), str(tmp_path / "best_accuracy.pdparams"))
    config["Global"] = {"teacher_model": "models/det/not-there.pdparams"}  # the whole checkpoint suffices
    dump_config(config, tmp_path / "config.yml")
    out = save_inference_model(tmp_path, tmp_path / "export")
    loaded = paddle.jit.load(str(out / "inference"))
    x = paddle.to_tensor(np.random.default_rng(2).normal(size=(1, 3, 64, 64)).astype(np.float32))
    trained.eval()
    got = loaded(x)
    got = (got[0] if isinstance(got, (list, tuple)) else got).numpy()
    np.testing.assert_allclose(got, trained.sub("Student")(x)["maps"].numpy(), atol=1e-5)
