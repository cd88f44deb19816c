"""Finding PaddleOCR's dictionaries, also from a model folder trained on another machine."""

import pytest

from ocrforge.resources import paddleocr_dir, resolve_dict_path
from ocrforge.config import with_dict_path


def test_a_dictionary_inside_the_wheel_is_found_by_its_path_in_the_package():
    assert resolve_dict_path("ppocr/utils/en_dict.txt") == paddleocr_dir() / "ppocr/utils/en_dict.txt"


def test_another_machines_absolute_path_into_paddleocr_is_found_in_this_install():
    elsewhere = "/home/someone/proj/.venv/lib/python3.11/site-packages/paddleocr/ppocr/utils/en_dict.txt"
    assert resolve_dict_path(elsewhere) == paddleocr_dir() / "ppocr/utils/en_dict.txt"


def test_a_missing_dictionary_names_the_path_and_where_it_looked():
    with pytest.raises(FileNotFoundError, match="my_dict.txt not found"):
        resolve_dict_path("/nowhere/my_dict.txt")


def test_the_saved_config_keeps_the_dictionary_as_given():
    resolved = str(paddleocr_dir() / "ppocr/utils/en_dict.txt")
    config = {"Global": {"character_dict_path": resolved}, "PostProcess": {"character_dict_path": resolved}}
    saved = with_dict_path(config, "ppocr/utils/en_dict.txt")
    assert saved["Global"]["character_dict_path"] == saved["PostProcess"]["character_dict_path"] == \
        "ppocr/utils/en_dict.txt"
    assert config["Global"]["character_dict_path"] == resolved  # the running config is left alone
