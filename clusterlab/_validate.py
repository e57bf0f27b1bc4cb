"""Input checks at the public boundary: one place, messages that quote the values.

Everything a user passes to ``clusterlab`` goes through these functions before any
kernel runs, so that bad input fails with a ``ValueError`` or ``TypeError`` that names
the argument and its value, never with a traceback from deep inside NumPy or torch.
"""

from __future__ import annotations

import math
import numbers

import numpy as np


def is_torch(x) -> bool:
    """True when ``x`` is a torch tensor (checked without importing torch)."""
    mod = type(x).__module__
    return mod.startswith("torch") and hasattr(x, "device") and hasattr(x, "dtype")


def to_numpy(x) -> np.ndarray:
    """Return ``x`` (NumPy array, torch tensor on any device, list) as a NumPy array."""
    if is_torch(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _short(value) -> str:
    """A short repr of a value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_array(x, name: str = "x"):
    """Validate a data matrix and return it as a floating array of its own kind.

    Parameters
    ----------
    x : array_like or torch.Tensor, shape (n, d)
        NumPy arrays, nested lists and torch tensors (any device) are accepted.
    name : str
        The argument's name, quoted in error messages.

    Returns
    -------
    x : numpy.ndarray or torch.Tensor, shape (n, d)
        float32 and float64 are kept; integers, booleans and float16/bfloat16 are
        upcast (to float64 for NumPy, as scikit-learn does; to float32 for torch).

    Raises
    ------
    TypeError
        Complex, string or object data.
    ValueError
        Not two-dimensional, empty, or holding NaN or inf.
    """
    if is_torch(x):
        import torch

        if x.is_complex():
            raise TypeError(f"{name} must be real, got a complex tensor of dtype {x.dtype}")
        if x.dtype not in (torch.float32, torch.float64):
            x = x.to(torch.float32)
        shape = tuple(x.shape)
    else:
        if isinstance(x, np.ndarray):
            arr = x
        else:
            try:
                arr = np.asarray(x)
            except (ValueError, TypeError) as exc:
                raise TypeError(f"{name} must be a 2-D array of numbers, got {_short(x)}") from exc
        if np.iscomplexobj(arr):
            raise TypeError(f"{name} must be real, got complex data of dtype {arr.dtype}")
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
        if arr.dtype.kind in "biu":
            arr = arr.astype(np.float64)
        elif arr.dtype not in (np.float32, np.float64):
            arr = arr.astype(np.float32)
        x = arr
        shape = arr.shape
    if len(shape) != 2:
        raise ValueError(
            f"{name} must be 2-D with shape (n_samples, n_features), got {len(shape)}-D "
            f"with shape {shape}; reshape 1-D data with x.reshape(-1, 1)"
        )
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {shape}; need at least one point and feature")
    _check_finite(x, name)
    return x


def _check_finite(x, name: str) -> None:
    # Fast path: a NaN or an inf anywhere makes the sum NaN or inf, so a finite sum proves
    # every value finite (one vectorised reduction, one number fetched from a GPU). A sum
    # that overflows with finite values falls through to the exact check below.
    if is_torch(x):
        total = float(x.sum())
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            total = float(x.sum())
    if math.isfinite(total):
        return
    if is_torch(x):
        import torch

        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            n_nan = int(torch.isnan(x).sum())
            idx = tuple(int(i) for i in torch.nonzero(bad)[0])
            value = float(x[idx])
            raise ValueError(
                f"{name} contains NaN or inf ({n_nan} NaN, {int(bad.sum()) - n_nan} inf); "
                f"first at index {idx}: {value}"
            )
    else:
        if not np.isfinite(x).all():
            bad = ~np.isfinite(x)
            n_nan = int(np.isnan(x).sum())
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{name} contains NaN or inf ({n_nan} NaN, {int(bad.sum()) - n_nan} inf); "
                f"first at index {idx}: {x[idx]}"
            )


def check_int(value, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """Validate an integer argument in ``[low, high]``; bools are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {_short(value)} ({type(value).__name__})")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def check_k(k, n: int, name: str = "k") -> int:
    """Validate the number of clusters against the number of points."""
    k = check_int(k, name)
    if k < 1:
        raise ValueError(f"{name} must be at least 1, got {k}")
    if k > n:
        raise ValueError(f"{name}={k} is larger than the number of points n={n}")
    return k


def check_float(
    value,
    name: str,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    low: float | None = None,
    high: float | None = None,
) -> float:
    """Validate a finite real number, optionally > 0, >= 0 or within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {_short(value)} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if nonnegative and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def check_choice(value, name: str, options) -> str:
    """Validate a string option."""
    if not isinstance(value, str) or value not in options:
        choices = ", ".join(repr(o) for o in options)
        raise ValueError(f"{name} must be one of {choices}; got {_short(value)}")
    return value


def check_seed(seed, name: str = "seed") -> int:
    """Validate a seed: an integer in [0, 2**32) (global random state is never used)."""
    return check_int(seed, name, low=0, high=2**32 - 1)


def like(value, x, name: str):
    """Convert ``value`` to the kind, dtype and device of ``x`` (refusing other devices).

    A torch tensor already on another device than ``x`` is refused rather than moved,
    so that a silent host-device copy never hides in a loop.
    """
    if is_torch(x):
        import torch

        if is_torch(value):
            if value.device != x.device:
                raise ValueError(
                    f"{name} is on device {value.device} but x is on {x.device}; "
                    f"move it with {name}.to(x.device)"
                )
            if value.is_complex():
                raise TypeError(f"{name} must be real, got complex dtype {value.dtype}")
            return value.to(x.dtype)
        arr = np.asarray(value)
        if np.iscomplexobj(arr) or arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        return torch.as_tensor(arr, dtype=x.dtype, device=x.device)
    if is_torch(value):
        if value.device.type != "cpu":
            raise ValueError(
                f"{name} is a tensor on device {value.device} but x is a NumPy array; "
                f"pass {name}.cpu().numpy() or put x on the same device"
            )
        value = value.detach().numpy()
    arr = np.asarray(value)
    if np.iscomplexobj(arr) or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr.astype(x.dtype, copy=False)


def check_weights(weights, x, name: str = "weights"):
    """Validate sample weights: shape (n,), finite, non-negative, not all zero.

    Returns ``None`` for ``None``, else the weights as the kind, dtype and device of ``x``.
    """
    if weights is None:
        return None
    n = x.shape[0]
    w = like(weights, x, name)
    if tuple(w.shape) != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match x, got shape {tuple(w.shape)}")
    _check_finite(w.reshape(-1, 1), name)
    wmin = float(w.min())
    if wmin < 0:
        raise ValueError(f"{name} must be non-negative, got a minimum of {wmin}")
    if float(w.sum()) <= 0:
        raise ValueError(f"{name} are all zero; at least one point needs a positive weight")
    return w


def check_centroids(centroids, x, k: int | None = None, name: str = "centroids"):
    """Validate centroids of shape (k, d) against data ``x`` of shape (n, d)."""
    c = like(centroids, x, name)
    d = x.shape[1]
    shape = tuple(c.shape)
    if len(shape) != 2 or shape[1] != d or (k is not None and shape[0] != k):
        want = f"({k}, {d})" if k is not None else f"(k, {d})"
        raise ValueError(f"{name} must have shape {want} to match x of shape {tuple(x.shape)}, got {shape}")
    if shape[0] == 0:
        raise ValueError(f"{name} is empty: shape {shape}")
    _check_finite(c, name)
    return c
