"""The Makefile's own logic, run with ``-o .venv/.installed`` so that make never (re)installs anything."""

import json
import os
import shlex
import shutil
import subprocess
import sys

import cv2
import pytest


def make(cwd, *args):
    return subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"})


@pytest.mark.parametrize("images", ["dir with spaces", "it's here", "plain/a.jpg"])
def test_make_infer_passes_images_as_one_argument(repo_root, tmp_path, images):
    shutil.copy(repo_root / "Makefile", tmp_path / "Makefile")
    done = make(tmp_path, "-n", "infer", f"IMAGES={images}")
    assert done.returncode == 0, done.stderr
    (command,) = done.stdout.splitlines()
    argv = shlex.split(command.split(" $(")[0])
    assert argv == ["ocrforge", "infer", images, "--draw", "reports/infer"]


@pytest.mark.slow
def test_make_infer_reads_a_folder_with_spaces(repo_root, exported_dir, tmp_path):
    from system.system_known import KNOWN_FULL_TEXT, make_known_image

    shutil.copy(repo_root / "Makefile", tmp_path / "Makefile")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "export").symlink_to(exported_dir)
    folder = tmp_path / "my scans"
    folder.mkdir()
    cv2.imwrite(str(folder / "label one.png"), make_known_image()[0])
    done = make(tmp_path, "infer", "IMAGES=my scans")
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    assert printed[0].startswith("ocrforge infer 'my scans' --draw reports/infer")  # make echoes the command
    result = json.loads(printed[1])  # a folder: --jsonl, one object per image
    assert result["image"] == "my scans/label one.png" and result["full_text"] == KNOWN_FULL_TEXT
    assert (tmp_path / "reports" / "infer" / "label one.png.png").is_file()
