"""Shared pytest set-up for the unit tests and for nbval over notebooks/."""

import os

import pytest

# Quiet KeOps, and no GUI windows from matplotlib in the test process.
os.environ.setdefault("KEOPS_VERBOSE", "0")
os.environ.setdefault("PYKEOPS_VERBOSE", "0")
os.environ.setdefault("MPLBACKEND", "Agg")


def _no_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return True
    return not torch.cuda.is_available()


# Without a GPU the Triton kernels run on CPU tensors through Triton's interpreter; the
# variable must be set before triton is first imported. On a GPU they run natively.
if _no_cuda():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def _kernel_env(setup):
    """Start a notebook's kernel as `make notebooks` did when it stored the outputs:
    without MPLBACKEND, so ipykernel picks its inline backend (Agg would display no
    figures), and on the CPU unless CLUSTERLAB_DEVICE says otherwise (on a GPU the
    notebooks choose bigger sizes and their outputs differ)."""

    def wrapped():
        saved = {key: os.environ.get(key) for key in ("MPLBACKEND", "CLUSTERLAB_DEVICE")}
        os.environ.pop("MPLBACKEND", None)
        os.environ.setdefault("CLUSTERLAB_DEVICE", "cpu")
        try:
            setup()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    return wrapped


def pytest_collection_modifyitems(session, config, items):
    # nbval (0.11) compares every output field of a checked cell, stderr included. C code
    # (faiss, KeOps' compiler) writes to file descriptor 2 at moments ipykernel forwards
    # late or not at all, so stderr is never compared: it is added to the fields each
    # notebook skips. Errors still fail a cell; stdout and results are still compared.
    # This is a global hook, so it applies to notebooks/ although this file is in tests/.
    for nbfile in {item.parent for item in items if type(item.parent).__name__ == "IPyNbFile"}:
        if "stderr" not in nbfile.skip_compare:
            nbfile.skip_compare = (*nbfile.skip_compare, "stderr")
            nbfile.setup = _kernel_env(nbfile.setup)


@pytest.fixture
def agg_backend():
    """Draw off-screen with Agg, and close every figure the test made."""
    import matplotlib
    import matplotlib.pyplot as plt

    old = matplotlib.get_backend()
    plt.switch_backend("Agg")
    yield
    plt.close("all")
    if old.lower() != "agg":
        plt.switch_backend(old)


@pytest.fixture(scope="session")
def keops_lazytensor():
    """pykeops' LazyTensor, once a tiny formula compiled; else skip, saying why."""
    import torch

    try:
        from clusterlab.engines.keops_engine import import_keops

        LazyTensor = import_keops()
        LazyTensor(torch.randn(10, 2)[:, None, :]).sum(dim=1)  # compiles a tiny formula
    except Exception as exc:  # no pykeops, or no compiler: say which
        pytest.skip(f"pykeops cannot compile here: {type(exc).__name__}: {exc}")
    return LazyTensor
