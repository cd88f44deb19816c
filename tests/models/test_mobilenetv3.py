"""The backbones and neck of the CML distillation: MobileNetV3 (students), ResNet_vd + LKPAN (teacher)."""

import ocrforge  # noqa: F401  (sets the thread count before paddle loads)

import paddle
import pytest

from ocrforge.models.architectures import build_model
from ocrforge.models.layers import SqueezeExcite
from ocrforge.models.distillation import count_parameters
from ocrforge.registry import BACKBONES, NECKS

STUDENT = {
    "model_type": "det",
    "algorithm": "DB",
    "Backbone": {"name": "MobileNetV3", "scale": 0.5, "model_name": "large", "disable_se": True},
    "Neck": {"name": "RSEFPN", "out_channels": 96, "shortcut": True},
    "Head": {"name": "DBHead", "k": 50},
}
# The user's exported inference Student (PaddleOCR en_PP-OCRv3_det): every saved tensor, BN statistics included.
USER_EXPORTED_STUDENT_PARAMETERS = 592_625


def shapes(maps):
    return [list(m.shape) for m in maps]


def test_large_half_scale_without_se_gives_four_maps_at_strides_4_to_32():
    net = BACKBONES.build({"name": "MobileNetV3", "scale": 0.5, "model_name": "large", "disable_se": True})
    assert net.out_channels == [16, 24, 56, 480]
    assert not any(isinstance(layer, SqueezeExcite) for layer in net.sublayers())
    net.eval()
    maps = net(paddle.zeros([1, 3, 64, 64]))
    assert shapes(maps) == [[1, 16, 16, 16], [1, 24, 8, 8], [1, 56, 4, 4], [1, 480, 2, 2]]


def test_small_full_scale_keeps_its_squeeze_excitation():
    net = BACKBONES.build({"name": "MobileNetV3", "scale": 1.0, "model_name": "small"})
    assert net.out_channels == [16, 24, 48, 576]
    assert sum(isinstance(layer, SqueezeExcite) for layer in net.sublayers()) == 9
    net.eval()
    assert shapes(net(paddle.zeros([1, 3, 64, 64]))) == [[1, 16, 16, 16], [1, 24, 8, 8], [1, 48, 4, 4], [1, 576, 2, 2]]


def test_mobilenetv3_uses_paddleocr_weight_names():
    net = BACKBONES.build({"name": "MobileNetV3", "scale": 0.5, "model_name": "large"})
    names = set(net.state_dict())
    assert {"conv.conv.weight", "conv.bn._mean", "stage0.0.expand_conv.conv.weight",
            "stage1.0.mid_se.conv1.weight", "stage3.3.conv.weight"} <= names


def test_mobilenetv3_rejects_an_unknown_model_name():
    with pytest.raises(ValueError, match="model_name 'medium'"):
        BACKBONES.build({"name": "MobileNetV3", "model_name": "medium"})


def test_student_has_the_parameter_count_of_the_users_exported_student():
    model = build_model(STUDENT)
    exported = count_parameters(model, skip_prefixes=("head.thresh",))  # export drops the threshold branch
    print(f"student: {exported:,} exported parameters ({count_parameters(model):,} while training); "
          f"user's exported Student: {USER_EXPORTED_STUDENT_PARAMETERS:,}")
    assert exported == USER_EXPORTED_STUDENT_PARAMETERS


@pytest.mark.parametrize("layers, channels", [(18, [64, 128, 256, 512]), (34, [64, 128, 256, 512]),
                                              (50, [256, 512, 1024, 2048])])
def test_resnet_vd_gives_four_maps_at_strides_4_to_32(layers, channels):
    net = BACKBONES.build({"name": "ResNet_vd", "layers": layers})
    assert net.out_channels == channels
    net.eval()
    maps = net(paddle.zeros([1, 3, 64, 64]))
    assert shapes(maps) == [[1, c, 64 // s, 64 // s] for c, s in zip(channels, (4, 8, 16, 32))]
    assert "bb_1_0.short._conv.weight" in net.state_dict()


def test_resnet_vd_rejects_unsupported_depths():
    with pytest.raises(ValueError, match="layers=20"):
        BACKBONES.build({"name": "ResNet_vd", "layers": 20})


@pytest.mark.parametrize("mode", ["large", "lite"])
def test_lkpan_merges_four_maps_at_stride_4(mode):
    neck = NECKS.build({"name": "LKPAN", "out_channels": 32, "mode": mode}, in_channels=[8, 16, 24, 40])
    maps = [paddle.randn([2, c, 32 // s, 32 // s]) for c, s in zip([8, 16, 24, 40], (4, 8, 16, 32))]
    neck.eval()
    out = neck(maps)
    assert list(out.shape) == [2, 32, 8, 8]
    assert neck.out_channels == 32


def test_lkpan_needs_four_maps():
    with pytest.raises(ValueError, match="four input maps"):
        NECKS.build({"name": "LKPAN", "out_channels": 32}, in_channels=[8, 16, 24])


def test_teacher_resnet50_lkpan_dbhead_with_a_7x7_head_kernel():
    teacher = build_model({
        "model_type": "det", "algorithm": "DB",
        "Backbone": {"name": "ResNet_vd", "layers": 50},
        "Neck": {"name": "LKPAN", "out_channels": 256},
        "Head": {"name": "DBHead", "kernel_list": [7, 2, 2], "k": 50},
    })
    assert list(teacher.head.binarize.conv1.weight.shape) == [64, 256, 7, 7]
    print(f"teacher: {count_parameters(teacher):,} parameters")
    teacher.train()
    assert list(teacher(paddle.zeros([1, 3, 64, 64]))["maps"].shape) == [1, 3, 64, 64]
