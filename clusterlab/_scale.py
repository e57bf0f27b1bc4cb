"""Working at a safe magnitude: k-means and mean shift commute with scaling by 2**e.

Squared distances of float32 data near 1e19 overflow, and those of data near 1e-30
underflow to 0. Both algorithms are scale-equivariant, and multiplying by a power of two
is exact, so data outside a safe range are scaled into it, clustered, and the results
scaled back: every finite input then works, with the same answer as its scaled copy.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

#: |values| inside [2**-E, 2**E] are left alone (no copy); E by the data's precision.
SAFE_EXPONENT = {4: 30, 8: 200}


def magnitude(a) -> float:
    """Largest absolute value of a finite NumPy array or torch tensor (0 when empty)."""
    if isinstance(a, np.ndarray):
        return float(max(a.max(), -a.min())) if a.size else 0.0
    if a.numel() == 0:
        return 0.0
    lo, hi = a.aminmax()
    return float(max(hi, -lo))  # one wait for the device


def factor(x, m=None) -> float:
    """The power of two to multiply ``x`` by (1.0 when its magnitude is already safe).

    A scaled array has its largest absolute value in [0.5, 1). ``m`` is
    :func:`magnitude` of ``x`` when already known.
    """
    m = magnitude(x) if m is None else m
    if m == 0.0 or not math.isfinite(m):
        return 1.0
    e = SAFE_EXPONENT.get(x.dtype.itemsize, SAFE_EXPONENT[4])
    if 2.0 ** -e <= m <= 2.0 ** e:
        return 1.0
    return math.ldexp(1.0, -math.frexp(m)[1])


def unscale_squares(v, f: float, what: str = "squared distances"):
    """``v / f**2`` for squared quantities computed on data scaled by ``f``.

    The true values of data near 1e19 (float32) or 1e200 (float64) may not fit the
    dtype: they come back as inf (or 0 below its range) with one warning saying so;
    the clusters, centroids and labels are exact all the same.
    """
    with np.errstate(over="ignore", under="ignore"):
        out = v / f / f
    bad = (out == math.inf) | ((out == 0) & (v != 0)) if isinstance(out, float) else None
    if bad is None:
        bad = bool(((out == math.inf) | ((out == 0) & (v != 0))).any())
    if bad:
        warnings.warn(
            f"{what} of data this far from 1 (scaled by {f:.3g} to cluster them) do not fit "
            "the data's dtype: some are inf or 0; labels and centroids are exact",
            RuntimeWarning, stacklevel=3,
        )
    return out
