"""Files ocrforge uses from installed packages: PaddleOCR's dictionaries, fonts."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def paddleocr_dir() -> Path:
    """The installed ``paddleocr`` package folder, found without importing it (importing pulls in paddle)."""
    spec = importlib.util.find_spec("paddleocr")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("paddleocr is not installed; run `make install`")
    return Path(list(spec.submodule_search_locations)[0])


def resolve_dict_path(path: str | Path) -> Path:
    """Find a character dictionary: as given, else relative to the paddleocr package (``ppocr/utils/en_dict.txt``).

    An absolute path into another machine's paddleocr install (a model folder trained elsewhere, brought by
    ``dvc pull``) is looked up again in this one's, from its last ``paddleocr`` folder on.
    """
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    inside = candidate
    if candidate.is_absolute() and "paddleocr" in candidate.parts:
        parts = candidate.parts
        last = len(parts) - 1 - parts[::-1].index("paddleocr")
        inside = Path(*parts[last + 1:])
    in_wheel = paddleocr_dir() / inside
    if in_wheel.is_file():
        return in_wheel
    raise FileNotFoundError(
        f"character dictionary {path} not found (also looked in {in_wheel}); give a file with one character per line"
    )


def read_dictionary(path: str | Path, use_space_char: bool) -> list[str]:
    """The characters of a dictionary file in class order, one per line, then space if ``use_space_char``.

    This is the order PaddleOCR's label encoders and decoders use (a space line in the file and the added
    space both stay, as there), so class counts agree with the wheel's transforms.
    """
    with open(resolve_dict_path(path), "rb") as fh:
        chars = [line.decode("utf-8").strip("\n").strip("\r\n") for line in fh.readlines()]
    if use_space_char:
        chars.append(" ")
    return chars


def font_dir() -> Path:
    """The folder of TrueType fonts that matplotlib ships (DejaVu family), available offline."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("matplotlib (which ships the DejaVu fonts) is not installed; run `make install`")
    return Path(list(spec.submodule_search_locations)[0]) / "mpl-data" / "fonts" / "ttf"


def font_path(name: str = "DejaVuSans.ttf") -> Path:
    path = font_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"font {path} not found; reinstall matplotlib")
    return path
