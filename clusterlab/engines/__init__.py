"""Engines: the few array kernels that the k-means and mean-shift loops are built on.

Every engine implements the same small interface (see :class:`Engine`), so the Lloyd
loop in :mod:`clusterlab.kmeans` and the shift loop in :mod:`clusterlab.meanshift` are
written once. An engine works on arrays of its own kind (NumPy arrays, torch tensors);
:meth:`Engine.from_input` and :meth:`Engine.to_output` move data across the boundary.

Engines are imported lazily: ``import clusterlab`` imports neither torch nor pykeops.
"""

from __future__ import annotations

from clusterlab._validate import check_choice, is_torch

BACKENDS = ("auto", "numpy", "torch", "keops")


def torch_available() -> bool:
    """True when torch can be imported."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def get_engine(backend: str, x):
    """Return the engine for ``backend`` and data ``x``.

    Parameters
    ----------
    backend : {"auto", "numpy", "torch", "keops"}
        ``"auto"`` picks torch when it is installed (it is multi-threaded on CPU and
        runs on CUDA), else NumPy; it never picks KeOps, whose compile cost should be a
        choice. ``"keops"`` needs pykeops and raises an ImportError naming it otherwise.
    x : numpy.ndarray or torch.Tensor
        The (validated) data; its device decides the torch engine's device.
    """
    check_choice(backend, "backend", BACKENDS)
    if backend == "auto":
        backend = "torch" if (is_torch(x) or torch_available()) else "numpy"
    if backend == "numpy":
        from clusterlab.engines.numpy_engine import NumpyEngine

        return NumpyEngine()
    if backend == "torch":
        if not torch_available():
            raise ImportError(
                "backend='torch' needs PyTorch: pip install torch==2.13.0 "
                "(or use backend='numpy')"
            )
        from clusterlab.engines.torch_engine import TorchEngine

        return TorchEngine(x.device if is_torch(x) else "cpu")
    # backend == "keops": torch tensors through pykeops (imported lazily, with a hint).
    from clusterlab.engines.keops_engine import KeopsEngine

    return KeopsEngine(x.device if is_torch(x) else "cpu")
