"""environment.yml (conda) and pyproject.toml (pip) describe the same course environment."""

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent

# conda-forge name -> PyPI name, where they differ.
CONDA_TO_PYPI = {"pytorch": "torch"}
# conda entries that are tooling, not course packages (checked separately).
CONDA_TOOLING = {"python", "pip"}

PIP_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;=,]+)$")
CONDA_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==?\s*([^\s=,]+)$")


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_pins(requirements):
    pins = {}
    for req in requirements:
        m = PIP_PIN.match(req.strip())
        assert m, f"not pinned exactly with ==: {req!r}"
        pins[normalize(m.group(1))] = m.group(3)
    return pins


@pytest.fixture(scope="module")
def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.fixture(scope="module")
def conda_env():
    return yaml.safe_load((ROOT / "environment.yml").read_text())


@pytest.fixture(scope="module")
def pyproject_pins(pyproject):
    runtime = pip_pins(pyproject["dependencies"])
    dev = pip_pins(pyproject["optional-dependencies"]["dev"])
    for name in runtime.keys() & dev.keys():
        assert runtime[name] == dev[name], f"{name}: {runtime[name]} vs {dev[name]}"
    return runtime | dev


@pytest.fixture(scope="module")
def conda_pins(conda_env):
    """Every package environment.yml installs, PyPI names, conda and pip sections together."""
    pins, seen_editable = {}, False
    for dep in conda_env["dependencies"]:
        if isinstance(dep, dict):
            assert set(dep) == {"pip"}, f"unexpected section {dep!r}"
            for req in dep["pip"]:
                if req.strip() == "-e .":
                    seen_editable = True
                    continue
                ((name, version),) = pip_pins([req]).items()
                assert name not in pins, f"{name} listed twice in environment.yml"
                pins[name] = version
            continue
        m = CONDA_PIN.match(dep.strip())
        if m is None:
            assert dep.strip() in CONDA_TOOLING, f"not pinned in environment.yml: {dep!r}"
            continue
        name = normalize(CONDA_TO_PYPI.get(m.group(1), m.group(1)))
        if name in CONDA_TOOLING:
            continue
        assert name not in pins, f"{name} listed twice in environment.yml"
        pins[name] = m.group(2)
    assert seen_editable, "environment.yml's pip section must install the package: '-e .'"
    return pins


def test_same_packages(pyproject_pins, conda_pins):
    only_pip = sorted(pyproject_pins.keys() - conda_pins.keys())
    only_conda = sorted(conda_pins.keys() - pyproject_pins.keys())
    assert not only_pip, f"in pyproject.toml but not environment.yml: {only_pip}"
    assert not only_conda, f"in environment.yml but not pyproject.toml: {only_conda}"


def test_same_versions(pyproject_pins, conda_pins):
    differ = {
        name: (pyproject_pins[name], conda_pins[name])
        for name in pyproject_pins.keys() & conda_pins.keys()
        if pyproject_pins[name] != conda_pins[name]
    }
    assert not differ, f"versions differ (pyproject, environment.yml): {differ}"


def test_torch_pinned(pyproject_pins, conda_pins):
    # The CPU wheel the course is set up with is torch 2.13.0; anything else pulls CUDA.
    assert pyproject_pins["torch"] == "2.13.0"
    assert conda_pins["torch"] == "2.13.0"


def test_python_and_channels(conda_env):
    assert conda_env["name"] == "clusterlab"
    assert conda_env["channels"] == ["conda-forge"]
    assert "python=3.11" in conda_env["dependencies"]


def test_extras_agree_with_dev(pyproject, pyproject_pins):
    """Every extra (keops, faiss, widgets, lab) pins a subset of runtime + dev, same versions,
    so environment.yml, which mirrors runtime + dev, covers them all."""
    for extra, reqs in pyproject["optional-dependencies"].items():
        for name, version in pip_pins(reqs).items():
            assert name in pyproject_pins, f"extra {extra!r}: {name} is not in the dev extra"
            assert version == pyproject_pins[name], (
                f"extra {extra!r}: {name}=={version}, dev has {pyproject_pins[name]}"
            )
