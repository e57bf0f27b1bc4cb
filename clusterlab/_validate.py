"""Input checks at the public boundary: one place, messages that quote the values.

Everything a user passes to ``clusterlab`` goes through these functions before any
kernel runs, so that bad input fails with a ``ValueError`` or ``TypeError`` that names
the argument and its value, never with a traceback from deep inside NumPy or torch.
"""

from __future__ import annotations

import math
import numbers
import sys
import warnings

import numpy as np

#: The largest count (``n_init``, ``max_iter``, ...) accepted: a C ``int``, as faiss and
#: scikit-learn take. More iterations or restarts than this would never finish.
MAX_COUNT = 2**31 - 1


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


def _refuse_sparse_or_masked(x, name: str) -> None:
    """Refuse sparse matrices (SciPy, torch) and masked arrays with a message that says
    how to make them dense; a masked array with nothing masked passes."""
    if is_torch(x):
        layout = getattr(x, "layout", None)
        if layout is not None and str(layout) != "torch.strided":
            raise TypeError(
                f"{name} is a sparse torch tensor (layout {layout}); clusterlab needs dense "
                f"data: pass {name}.to_dense()"
            )
        if type(x).__name__ == "MaskedTensor":
            raise TypeError(
                f"{name} is a torch MaskedTensor; clusterlab does not apply masks: pass "
                f"{name}.get_data() after filling or dropping the masked rows"
            )
        return
    sparse = sys.modules.get("scipy.sparse")  # loaded whenever x is a SciPy sparse matrix
    if (sparse is not None and sparse.issparse(x)) or (
        not isinstance(x, np.ndarray) and hasattr(x, "nnz") and hasattr(x, "todense")
    ):
        shape = getattr(x, "shape", "?")
        raise TypeError(
            f"{name} is a sparse matrix ({type(x).__name__}, shape {shape}); clusterlab "
            f"needs dense data: pass {name}.toarray() (every zero is then stored)"
        )
    if isinstance(x, np.ma.MaskedArray):
        n_masked = int(np.ma.count_masked(x))
        if n_masked:
            keep = f"~{name}.mask.any(1)" if np.ndim(x) == 2 else f"~{name}.mask"
            raise TypeError(
                f"{name} is a masked array with {n_masked} masked value(s); clusterlab "
                f"does not apply masks (the hidden values would be used): fill them "
                f"({name}.filled(value)) or drop the masked rows ({name}[{keep}]) first"
            )


def check_dense(x, name: str):
    """``x`` itself, refusing sparse matrices and masked arrays with masked values
    (a TypeError that says how to densify or fill); a masked array with nothing masked
    is returned as its data."""
    _refuse_sparse_or_masked(x, name)
    if isinstance(x, np.ma.MaskedArray):
        return np.ma.getdata(x)
    return x


def _to_float64(arr: np.ndarray, name: str) -> np.ndarray:
    """Extended-precision floats (``np.longdouble``) as float64, the best the engines
    have: refused if a value is beyond float64's range, with a warning naming the cast."""
    _check_finite(arr, name)  # in the array's own precision: 1e300 is not inf here
    with np.errstate(over="ignore"):
        big = float(np.abs(arr).max()) if arr.size else 0.0  # inf when beyond float64
    if not big <= np.finfo(np.float64).max:
        top = np.format_float_scientific(np.abs(arr).max(), precision=3, unique=False)
        raise ValueError(
            f"{name} has dtype {arr.dtype} with values up to {top}, "
            f"beyond float64's range ({np.finfo(np.float64).max:.4g}), the widest type "
            f"clusterlab computes in; rescale {name} first"
        )
    warnings.warn(
        f"{name} has dtype {arr.dtype} (extended precision); clusterlab computes in "
        f"float64 at most, so it is cast to float64 (digits beyond float64's ~16 are "
        f"dropped); pass {name}.astype(np.float64) to silence this warning",
        UserWarning,
        stacklevel=4,
    )
    return arr.astype(np.float64)


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
        Extended precision (``np.longdouble``, float96/float128) is cast to float64,
        the widest type the engines compute in, with a ``UserWarning`` that says so;
        its finite values are never refused as inf (values beyond float64's range are
        refused with a ``ValueError``). A ``numpy.ma.MaskedArray`` with nothing masked
        is read as its data.

    Raises
    ------
    TypeError
        Complex, string or object data; sparse matrices (SciPy's, torch's sparse
        layouts: densify with ``x.toarray()`` / ``x.to_dense()``); masked arrays with
        masked values (fill them with ``x.filled(v)`` or drop the rows).
    ValueError
        Not two-dimensional, empty, or holding NaN or inf.
    """
    x = check_dense(x, name)
    if is_torch(x):
        import torch

        if x.is_complex():
            raise TypeError(f"{name} must be real, got a complex tensor of dtype {x.dtype}")
        # clustering is not differentiated through (labels are discrete): no autograd graph,
        # and no warning from converting a tensor that requires grad to a number
        x = x.detach()
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
        elif arr.dtype.itemsize > 8:  # longdouble: float64 is the engines' best
            arr = _to_float64(arr, name)
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


def check_count(value, name: str, *, low: int = 0) -> int:
    """Validate a count of repetitions (``n_init``, ``max_iter``, ``niter``): an integer
    in ``[low, MAX_COUNT]`` (``MAX_COUNT = 2**31 - 1``, a C ``int``; a loop of more
    iterations than that would never finish, and C libraries could not take it)."""
    value = check_int(value, name, low=low)
    if value > MAX_COUNT:
        raise ValueError(
            f"{name} must be <= 2**31 - 1 = {MAX_COUNT} (the largest count clusterlab takes, "
            f"a C int), got {value}"
        )
    return value


def check_rows(value, name: str, n: int):
    """Validate an "at most this many rows at a time" argument (``chunk_size``,
    ``batch_size``, ``n_samples``): ``None`` passes through, otherwise an integer >= 1,
    returned clipped to ``n`` (a value above ``n`` means all the rows), so that no size
    beyond the data ever reaches a kernel's index arithmetic."""
    if value is None:
        return None
    return min(check_int(value, name, low=1), int(n))


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
    so that a silent host-device copy never hides in a loop. Sparse matrices and masked
    arrays are refused as in :func:`check_array`; finite values that the cast to ``x``'s
    dtype would turn into inf are refused with their magnitude.
    """
    value = check_dense(value, name)
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
            out = value.to(x.dtype)
            if value.dtype == torch.float64 and x.dtype != torch.float64:
                grown = torch.isinf(out) & torch.isfinite(value)
                if bool(grown.any()):  # one wait, as the finiteness check makes anyway
                    idx = tuple(int(i) for i in torch.nonzero(grown)[0])
                    raise _overflow(name, float(value[grown].abs().max()), idx, np.float32)
            return out
        arr = np.asarray(value)
        if np.iscomplexobj(arr) or arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        want = np.float64 if x.dtype == torch.float64 else np.float32
        return torch.as_tensor(_narrow(arr, want, name), device=x.device)
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
    return _narrow(arr, x.dtype, name)


def _narrow(arr: np.ndarray, dtype, name: str) -> np.ndarray:
    """``arr`` cast to ``dtype``, refusing finite values that the cast makes inf."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(dtype, copy=False)
    if arr.dtype.kind == "f" and arr.dtype.itemsize > np.dtype(dtype).itemsize:
        with np.errstate(invalid="ignore"):
            grown = np.isinf(out) & np.isfinite(arr)
        if grown.any():
            idx = tuple(int(i) for i in np.argwhere(grown)[0])
            raise _overflow(name, np.abs(arr[grown]).max(), idx, dtype)
    return out


def _overflow(name: str, top, idx, dtype) -> ValueError:
    top = np.format_float_scientific(top, precision=3, unique=False)
    return ValueError(
        f"{name} has values up to {top} (first at index {idx}), beyond the range of x's "
        f"dtype {np.dtype(dtype)} ({np.finfo(dtype).max:.4g}); rescale, or pass x as float64"
    )


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
