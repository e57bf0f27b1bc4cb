"""environment.yml (conda) and pyproject.toml (pip) describe the same course environment."""

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent

# conda-forge name -> PyPI name, where they differ.
CONDA_TO_PYPI = {"pytorch": "torch"}
# conda entries that are tooling, not course packages (checked separately).
CONDA_TOOLING = {"python", "pip"}

# name[extras]==version, optionally followed by "; <environment marker>".
PIP_PIN = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;=,]+)\s*(?:;\s*(\S.*))?$"
)
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


def pip_markers(requirements):
    """name -> normalized environment marker (str), for the requirements that have one."""
    markers = {}
    for req in requirements:
        m = PIP_PIN.match(req.strip())
        if m and m.group(4):
            markers[normalize(m.group(1))] = str(Marker(m.group(4)))
    return markers


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


@pytest.fixture(scope="module")
def pyproject_markers(pyproject):
    reqs = pyproject["dependencies"]
    return pip_markers(reqs) | pip_markers(pyproject["optional-dependencies"]["dev"])


@pytest.fixture(scope="module")
def conda_markers(conda_env):
    """Markers of environment.yml's pip section (conda entries can't carry any)."""
    markers = {}
    for dep in conda_env["dependencies"]:
        if isinstance(dep, dict):
            markers |= pip_markers(r for r in dep["pip"] if r.strip() != "-e .")
    return markers


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


def test_same_markers(pyproject_markers, conda_markers):
    """A package installed only on some platforms is so in both files, under the same marker."""
    assert pyproject_markers == conda_markers


# torch version -> the triton version its CUDA Linux wheels require (Requires-Dist of
# torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl:
# `triton==3.7.1; platform_system == "Linux" and python_version < "3.15"`). Our triton pin must
# be that one, or pip can't install the CUDA torch the same pin takes off this machine.
TORCH_TRITON = {"2.13.0": "3.7.1"}


def test_triton_matches_cuda_torch(pyproject_pins, pyproject_markers):
    torch = pyproject_pins["torch"]
    assert torch in TORCH_TRITON, f"torch {torch}: look up its CUDA wheel's triton pin"
    assert pyproject_pins["triton"] == TORCH_TRITON[torch]
    # Linux x86-64 only (where triton wheels are and CUDA torch wants one), not past 3.14
    # (where torch 2.13.0 requires no triton and 3.7.1 has no wheels).
    marker = Marker(pyproject_markers["triton"])

    def env(system, machine, python):
        return {"platform_system": system, "platform_machine": machine, "python_version": python}

    for python in ("3.10", "3.11", "3.12", "3.13", "3.14"):
        assert marker.evaluate(env("Linux", "x86_64", python)), python
    assert not marker.evaluate(env("Linux", "x86_64", "3.15"))
    assert not marker.evaluate(env("Linux", "aarch64", "3.11"))
    assert not marker.evaluate(env("Darwin", "arm64", "3.11"))
    assert not marker.evaluate(env("Windows", "AMD64", "3.11"))


def test_installed_torch_accepts_triton_pin(pyproject_pins):
    """Where the installed torch is a build that requires triton (CUDA), our pin satisfies it.
    The CPU build used locally requires none, so this skips there."""
    try:
        torch_version = Version(metadata.version("torch"))
    except metadata.PackageNotFoundError:
        pytest.skip("torch is not installed")
    if torch_version.base_version != pyproject_pins["torch"]:
        pytest.skip(f"installed torch {torch_version} is not the pinned one")
    triton_reqs = [
        r
        for r in map(Requirement, metadata.requires("torch") or [])
        if normalize(r.name) == "triton"
    ]
    if not triton_reqs:
        pytest.skip(f"installed torch {torch_version} requires no triton")
    for req in triton_reqs:
        assert req.specifier.contains(pyproject_pins["triton"]), f"torch requires {req}"
