"""Mean shift: kernels, one batched shift loop over an engine, mode merging, bandwidth.

Each point ``y`` climbs the kernel density estimate of the data by moving to the
kernel-weighted mean of the data around it,

    y <- sum_j K(||y - x_j||^2 / h^2) x_j / sum_j K(||y - x_j||^2 / h^2),

with the Gaussian kernel ``K(u) = exp(-u / 2)`` or the flat kernel ``K(u) = [u <= 1]``.
For the Gaussian kernel this step is a softmax over ``-||y - x_j||^2 / 2h^2``: one step
of mean shift is one step of softmax attention with queries ``y`` and keys = values =
``x``. Non-blurring mean shift (the default) keeps the data ``x`` fixed; blurring mean
shift moves the data themselves. Points stop once they move less than ``tol * h``;
converged points are merged into modes (``centers``) that label the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from clusterlab import _scale
from clusterlab._validate import (
    check_array,
    check_choice,
    check_count,
    check_float,
    check_rows,
    check_seed,
)
from clusterlab.engines import get_engine

KERNELS = ("gaussian", "flat")
#: Queries used by :func:`estimate_bandwidth` when ``n_samples`` is None and n is larger.
DEFAULT_BANDWIDTH_SAMPLES = 10_000


@dataclass
class MeanShiftResult:
    """The result of :func:`meanshift`.

    Attributes
    ----------
    points : array, shape (n, d)
        Where each point converged (same kind and device as the input).
    centers : array, shape (m, d)
        The merged modes, largest cluster first.
    labels : array, shape (n,), int64
        Index into ``centers`` of each point.
    n_iter : int
        Number of shift steps performed.
    bandwidth : float
        The bandwidth used (estimated when ``bandwidth=None`` was passed).
    """

    points: object
    centers: object
    labels: object
    n_iter: int
    bandwidth: float

    def __repr__(self) -> str:
        return (
            f"MeanShiftResult(centers: {tuple(self.centers.shape)}, n_iter={self.n_iter}, "
            f"bandwidth={self.bandwidth:.4g})"
        )


def estimate_bandwidth(x, *, quantile=0.3, n_samples=None, seed=0, backend="auto"):
    """Estimate a mean-shift bandwidth: the mean distance to the ``quantile``-th neighbour.

    As scikit-learn's ``estimate_bandwidth``: on a sample of the points, the distance of
    each point to its ``int(n * quantile)``-th nearest neighbour (itself counted first),
    averaged. Larger ``quantile`` gives a larger bandwidth and fewer clusters.

    Parameters
    ----------
    x : array_like or torch.Tensor, shape (n, d)
    quantile : float in (0, 1]
    n_samples : int, optional
        Number of points to sample (seeded). By default all points when
        ``n <= 10_000``, else a sample of 10,000 (scikit-learn uses all points, which
        costs O(n^2) and does not finish for a million points).
    seed : int
    backend : {"auto", "numpy", "torch", "keops"}

    Returns
    -------
    bandwidth : float
    """
    x = check_array(x, "x")
    quantile = check_float(quantile, "quantile", positive=True, high=1.0)
    seed = check_seed(seed)
    n = x.shape[0]
    if n_samples is None:
        n_samples = min(n, DEFAULT_BANDWIDTH_SAMPLES)
    n_samples = check_rows(n_samples, "n_samples", n)
    f = _scale.factor(x)
    if f != 1.0:  # far from 1: work on x * 2**e (exact), scale back
        return estimate_bandwidth(x * f, quantile=quantile, n_samples=n_samples, seed=seed,
                                  backend=backend) / f
    eng = get_engine(backend, x)
    xe = eng.from_input(x)
    xe = xe - eng.mean_rows(xe)
    if n_samples < n:
        idx = np.random.default_rng(seed).permutation(n)[:n_samples]
        xe = xe[eng.index(idx)]
    m = xe.shape[0]
    kth = max(1, int(m * quantile))
    (h,) = eng.scalars(eng.kth_distance(xe, xe, kth).mean())
    return float(h)


#: Multiply-adds a step from which meanshift shows a progress bar, by device type.
PROGRESS_WORK = {"cpu": 2e10, "cuda": 2e13}


def _progress_bar(progress, n, d, max_iter, device_type):
    """A tqdm bar over the steps when ``progress`` is True, or None-and-the-work-is-large."""
    if progress is None:
        progress = max_iter > 0 and n * n * d >= PROGRESS_WORK.get(device_type, 2e10)
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=max_iter, desc=f"mean shift, {n:,} points", unit="step")


def _tick(bar, moving):
    if bar is not None:
        bar.set_postfix(moving=int(moving), refresh=False)
        bar.update(1)


def _check_resolution(bandwidth, max_sq, dtype):
    """Refuse a bandwidth below what the data's precision resolves.

    Squared distances are expanded as ``||y||^2 - 2 y.x + ||x||^2``, whose rounding is
    about ``eps * max||x||^2`` on centred data; once that passes ``h^2`` the kernel
    weights are noise. ``h >= 4 sqrt(eps) max||x||`` keeps their error below 1/16.
    """
    eps = float(np.finfo(np.dtype(str(dtype).replace("torch.", ""))).eps)
    low = 4.0 * math.sqrt(eps * max_sq)
    if bandwidth < low:
        name = str(dtype).replace("torch.", "")
        hint = ", or float64 data" if name != "float64" else ""
        raise ValueError(
            f"bandwidth={bandwidth:.3g} is below what {name} data resolve here: points lie "
            f"up to {math.sqrt(max_sq):.3g} from the data's mean, where squared distances "
            f"carry rounding errors of about {eps * max_sq:.2g}, more than bandwidth^2; "
            f"use bandwidth >= {low:.2g}{hint}"
        )


def _merge_modes(points, radius, weights=None):
    """Merge converged points into modes: greedy, densest first, within ``radius``.

    Points are first binned on a grid whose cells have a diagonal of ``radius / 2`` (so
    the thousands of points that converged to one mode become one cell); then, densest
    cell first, every unclaimed cell whose mean lies within ``radius`` joins it.

    Parameters
    ----------
    points : numpy.ndarray, shape (n, d)
    radius : float

    Returns
    -------
    centers : numpy.ndarray, shape (m, d)
        Mean of the points of each mode, largest mode first.
    labels : numpy.ndarray, shape (n,), int64
    """
    n, d = points.shape
    cell = radius / (2.0 * math.sqrt(d))
    # float keys: integer cells would overflow int64 once points / cell passes 9.2e18
    keys = np.floor(points / cell)
    if not np.isfinite(keys).all():  # a radius below what float64 resolves: no binning
        keys = np.arange(n, dtype=np.float64)[:, None]
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    n_cells = len(counts)
    reps = np.zeros((n_cells, d), dtype=np.float64)
    np.add.at(reps, inverse, points)
    reps /= counts[:, None]  # (cells, d) mean of each cell
    cell_label = np.full(n_cells, -1, dtype=np.int64)
    n_modes = 0
    for i in np.argsort(-counts, kind="stable"):
        if cell_label[i] >= 0:
            continue
        free = cell_label < 0
        near = free & (((reps - reps[i]) ** 2).sum(1) <= radius * radius)
        cell_label[near] = n_modes
        n_modes += 1
    labels = cell_label[inverse]
    sizes = np.bincount(labels, minlength=n_modes)
    centers = np.stack(
        [np.bincount(labels, weights=points[:, j], minlength=n_modes) for j in range(d)], 1
    ) / sizes[:, None]
    order = np.argsort(-sizes, kind="stable")  # largest mode first
    rank = np.empty_like(order)
    rank[order] = np.arange(n_modes)
    return centers[order], rank[labels]


def meanshift(
    x,
    bandwidth=None,
    *,
    kernel="gaussian",
    max_iter=100,
    tol=1e-3,
    batch_size=None,
    blurring=False,
    seed=0,
    backend="auto",
    merge_radius=None,
    precision="highest",
    progress=None,
):
    """Mean-shift clustering, batched over points.

    Parameters
    ----------
    x : array_like or torch.Tensor, shape (n, d)
        Data. float32 and float64 are kept; integers and float16 are upcast.
    bandwidth : float, optional
        Kernel width ``h`` (the Gaussian's standard deviation, the flat window's
        radius). ``None`` uses :func:`estimate_bandwidth` (quantile 0.3, seeded).
    kernel : {"gaussian", "flat"}
    max_iter : int
        Maximum number of shift steps.
    tol : float
        A point has converged once a step moves it less than ``tol * bandwidth``.
    batch_size : int, optional
        Points shifted together in one (batch, n) block; by default sized from a
        memory budget. Sources are tiled too, so memory stays bounded for any n.
    blurring : bool
        If True, the data move with the points (blurring mean shift: faster collapse,
        but it can over-merge). By default the data stay fixed.
    seed : int
        Seed of the bandwidth estimate's sample.
    backend : {"auto", "numpy", "torch", "keops", "triton"}
    merge_radius : float, optional
        Converged points closer than this merge into one centre (default: bandwidth,
        as scikit-learn's ``MeanShift``).
    precision : {"highest", "high", "medium"}
        Precision of the point-point products for float32 data (see
        :func:`clusterlab.kmeans`): ``"high"`` TF32, ``"medium"`` bf16 distances (the
        Triton engine still sums positions in TF32). A lower precision perturbs the
        kernel weights (bf16: by about ``0.4 % * ||y|| ||x|| / h^2`` in the exponent)
        and so the converged points; NumPy and KeOps offer ``"highest"`` only.

    progress : bool, optional
        Show a progress bar over the steps (tqdm). By default only for calls that will
        take a while: mean shift is quadratic, each step costs ``n_active * n * d``
        (the points still moving against all the data), so 100,000 points are 10^10
        kernel evaluations a step -- about 15 s on a 2-core CPU, milliseconds on a GPU.
        The default shows the bar from 2 * 10^10 multiply-adds a step on a CPU and
        2 * 10^13 on a GPU.

    Returns
    -------
    MeanShiftResult
        ``points`` (n, d), ``centers`` (m, d), ``labels`` (n,), ``n_iter``, ``bandwidth``.
    """
    x = check_array(x, "x")
    kernel = check_choice(kernel, "kernel", KERNELS)
    max_iter = check_count(max_iter, "max_iter", low=0)
    tol = check_float(tol, "tol", nonnegative=True)
    seed = check_seed(seed)
    if batch_size is not None:
        batch_size = check_rows(batch_size, "batch_size", x.shape[0])
    if not isinstance(blurring, (bool, np.bool_)):
        raise TypeError(f"blurring must be True or False, got {blurring!r}")
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be True, False or None, got {progress!r}")
    if bandwidth is None:
        bandwidth = estimate_bandwidth(x, seed=seed, backend=backend)
        if bandwidth <= 0:
            raise ValueError(
                "the estimated bandwidth is 0 (are most points duplicates?); pass bandwidth > 0"
            )
    bandwidth = check_float(bandwidth, "bandwidth", positive=True)
    merge_radius = (
        bandwidth if merge_radius is None
        else check_float(merge_radius, "merge_radius", positive=True)
    )

    f = _scale.factor(x)
    if f != 1.0:  # far from 1: shift x * 2**e (exact) with h * 2**e, scale back
        res = meanshift(
            x * f, bandwidth * f, kernel=kernel, max_iter=max_iter, tol=tol,
            batch_size=batch_size, blurring=blurring, seed=seed, backend=backend,
            merge_radius=merge_radius * f, precision=precision, progress=progress,
        )
        res.points, res.centers, res.bandwidth = res.points / f, res.centers / f, bandwidth
        return res

    eng = get_engine(backend, x, precision)
    xe = eng.from_input(x)
    xp, offset, x_sq = eng.centre(xe)  # centred: the distance expansion keeps its digits
    _check_resolution(bandwidth, eng.scalars(x_sq.max())[0], x.dtype)
    y = eng.copy(xp)
    thr2 = (tol * bandwidth) * (tol * bandwidth)  # inf, not OverflowError, when huge
    active = eng.index(np.arange(x.shape[0]))  # points still moving (non-blurring)
    n_iter = 0
    bar = _progress_bar(progress, x.shape[0], x.shape[1], max_iter, eng.device_type)
    for _ in range(max_iter):
        n_iter += 1
        if blurring:
            new = eng.shift(y, y, bandwidth, kernel=kernel, chunk_size=batch_size,
                            precision=precision)
            (moved,) = eng.scalars(eng.row_sqnorms(new - y).max())
            y = new
            _tick(bar, x.shape[0])
            if moved <= thr2:
                break
        else:
            ya = y[active]
            new = eng.shift(ya, xp, bandwidth, kernel=kernel, x_sq=x_sq, chunk_size=batch_size,
                            precision=precision)
            still = eng.row_sqnorms(new - ya) > thr2  # (n_active,)
            y[active] = new
            active = active[still]
            _tick(bar, active.shape[0])
            if active.shape[0] == 0:
                break

    if bar is not None:
        bar.close()
    centers, labels = _merge_modes(eng.to_host(y).astype(np.float64), merge_radius)
    centers = eng.from_input(centers.astype(eng.to_host(xp[:1]).dtype))
    return MeanShiftResult(
        points=eng.to_output(y + offset, x),
        centers=eng.to_output(centers + offset, x),
        labels=eng.to_output(eng.index(labels), x),
        n_iter=n_iter,
        bandwidth=float(bandwidth),
    )
