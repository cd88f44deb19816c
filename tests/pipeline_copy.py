"""Make a throw-away copy of this repository (tracked and untracked-but-not-ignored files) to run DVC in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def copy_repo(dest: Path, params: dict | None = None) -> Path:
    """Copy the repository's files into ``dest`` as a fresh git repo, with ``params`` merged into params.yaml.

    ``params`` maps dotted keys to values, e.g. ``{"demo.num_images": 12}``.
    """
    listed = _run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], REPO_ROOT)
    files = [f for f in listed.stdout.split("\0") if f]
    for rel in files:
        src = REPO_ROOT / rel
        if not src.is_file():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    if params:
        path = dest / "params.yaml"
        data = yaml.safe_load(path.read_text())
        for dotted, value in params.items():
            node = data
            *parents, leaf = dotted.split(".")
            for key in parents:
                node = node[key]
            if leaf not in node:
                raise KeyError(f"params.yaml has no key {dotted}")
            node[leaf] = value
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy"]):
        result = _run(cmd, dest)
        assert result.returncode == 0, result.stderr
    return dest


def dvc(dest: Path, *args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``dvc ARGS`` in ``dest`` with this interpreter's environment first on PATH (and ``env_extra`` set)."""
    env = dict(os.environ, **(env_extra or {}))
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return _run([str(Path(sys.executable).parent / "dvc"), *args], dest, env)
