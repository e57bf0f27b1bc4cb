"""Engines: the few array kernels that the k-means and mean-shift loops are built on.

Every engine implements the same small interface (see :class:`Engine`), so the Lloyd
loop in :mod:`clusterlab.kmeans` and the shift loop in :mod:`clusterlab.meanshift` are
written once. An engine works on arrays of its own kind (NumPy arrays, torch tensors);
:meth:`Engine.from_input` and :meth:`Engine.to_output` move data across the boundary.

Engines are imported lazily: ``import clusterlab`` imports neither torch nor pykeops.
"""

from __future__ import annotations

from clusterlab._validate import check_choice, is_torch

BACKENDS = ("auto", "numpy", "torch", "keops", "triton")
PRECISIONS = ("highest", "high", "medium")


def torch_available() -> bool:
    """True when torch can be imported."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _auto(x) -> str:
    """The engine ``backend="auto"`` picks for data ``x``.

    CUDA tensors: Triton when its kernels compile and check out on that device (tested
    once per device, quietly), else torch. CPU data: torch when installed, else NumPy.
    Never KeOps, whose compile cost should be a choice.
    """
    if is_torch(x) and x.device.type == "cuda":
        from clusterlab.engines.triton_engine import triton_works

        return "triton" if triton_works(str(x.device))[0] else "torch"
    return "torch" if (is_torch(x) or torch_available()) else "numpy"


def get_engine(backend: str, x, precision: str = "highest"):
    """Return the engine for ``backend`` and data ``x``.

    Parameters
    ----------
    backend : {"auto", "numpy", "torch", "keops", "triton"}
        ``"auto"`` picks Triton for CUDA tensors when its kernels work there, else torch
        when it is installed (multi-threaded on a CPU), else NumPy; never KeOps.
        ``"keops"`` needs pykeops, ``"triton"`` needs Triton and a CUDA device (or
        ``TRITON_INTERPRET=1``); each raises an error naming what is missing.
    x : numpy.ndarray or torch.Tensor
        The (validated) data; its device decides the torch engine's device.
    precision : {"highest", "high", "medium"}
        Checked against what the engine offers: NumPy and KeOps only ``"highest"``.
    """
    check_choice(backend, "backend", BACKENDS)
    precision = check_choice(precision, "precision", PRECISIONS)
    if backend == "auto":
        backend = _auto(x)
    eng = _make(backend, x)
    if precision not in eng.precisions:
        raise ValueError(
            f"precision={precision!r} is not available with backend={eng.name!r}, which "
            f"computes in IEEE float32/float64 only; use precision='highest', or "
            "backend='torch' or 'triton' for TF32 ('high') and bf16 ('medium') products"
        )
    return eng


def _make(backend: str, x):
    device = x.device if is_torch(x) else "cpu"
    if backend == "numpy":
        from clusterlab.engines.numpy_engine import NumpyEngine

        return NumpyEngine()
    if not torch_available():
        raise ImportError(
            f"backend={backend!r} needs PyTorch: pip install torch==2.13.0 "
            "(or use backend='numpy')"
        )
    if backend == "torch":
        from clusterlab.engines.torch_engine import TorchEngine

        return TorchEngine(device)
    if backend == "triton":
        from clusterlab.engines.triton_engine import TritonEngine

        return TritonEngine(device)
    # backend == "keops": torch tensors through pykeops (imported lazily, with a hint).
    from clusterlab.engines.keops_engine import KeopsEngine

    return KeopsEngine(device)
