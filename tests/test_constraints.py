"""configs/constraints.txt pins the stack `make install` builds, so a fresh clone reproduces the committed run."""

import tomllib
from importlib.metadata import PackageNotFoundError, version

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pipeline_copy import REPO_ROOT


def _pins() -> dict:
    pins = {}
    for number, line in enumerate((REPO_ROOT / "configs/constraints.txt").read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, pinned = line.partition("==")
        assert sep and pinned.strip(), f"configs/constraints.txt line {number}: {line!r} is not name==version"
        pins[canonicalize_name(name)] = pinned.strip()
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]


def test_every_declared_dependency_is_pinned_within_its_range():
    pins = _pins()
    for req in _declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in pyproject.toml but not pinned in configs/constraints.txt (make lock)"
        assert req.specifier.contains(pins[name], prereleases=True), f"{req.name}=={pins[name]} breaks {req}"


def test_installed_stack_matches_the_pins():
    """`make install` installs exactly the pinned versions, dependencies of dependencies included (opencv's
    version changes the demo images); paddlepaddle-gpu replaces paddlepaddle on GPU."""
    for name, pinned in _pins().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            assert name == "paddlepaddle", f"{name}=={pinned} is pinned but not installed: run `make install`"
            installed = version("paddlepaddle-gpu")
        assert installed == pinned, (
            f"{name} {installed} is installed but configs/constraints.txt pins {pinned}: run `make install`, "
            f"or `make lock` if you upgraded it on purpose (then `dvc repro`)"
        )
