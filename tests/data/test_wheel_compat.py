"""EastRandomCropData from the paddleocr wheel runs under NumPy 2 once ocrforge's fix is applied."""

import numpy as np

from ocrforge.data.wheel_compat import apply_wheel_fixes


def test_east_random_crop_with_several_text_regions():
    apply_wheel_fixes()
    from ppocr.data.imaug.random_crop_data import EastRandomCropData, crop_area

    image = np.zeros((200, 300, 3), np.uint8)
    # Three separate text boxes leave several free spans on both axes: the code path that broke.
    polys = np.array(
        [[[10, 10], [60, 10], [60, 30], [10, 30]],
         [[120, 80], [180, 80], [180, 100], [120, 100]],
         [[220, 150], [290, 150], [290, 170], [220, 170]]], np.float32)
    np.random.seed(0)
    for _ in range(20):
        x, y, w, h = crop_area(image, polys, min_crop_side_ratio=0.1, max_tries=10)
        assert 0 <= x and 0 <= y and x + w <= 300 and y + h <= 200
    crop = EastRandomCropData(size=[64, 64], keep_ratio=True)
    data = {"image": image, "polys": polys, "ignore_tags": [False] * 3, "texts": ["a", "b", "c"]}
    out = crop(data)
    assert out["image"].shape == (64, 64, 3)
