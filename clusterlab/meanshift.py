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

from clusterlab._validate import (
    check_array,
    check_choice,
    check_float,
    check_int,
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
    n_samples = check_int(n_samples, "n_samples", low=1)
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
    keys = np.floor(points / cell).astype(np.int64)
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

    Returns
    -------
    MeanShiftResult
        ``points`` (n, d), ``centers`` (m, d), ``labels`` (n,), ``n_iter``, ``bandwidth``.
    """
    x = check_array(x, "x")
    kernel = check_choice(kernel, "kernel", KERNELS)
    max_iter = check_int(max_iter, "max_iter", low=0)
    tol = check_float(tol, "tol", nonnegative=True)
    seed = check_seed(seed)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", low=1)
    if not isinstance(blurring, (bool, np.bool_)):
        raise TypeError(f"blurring must be True or False, got {blurring!r}")
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

    eng = get_engine(backend, x, precision)
    xe = eng.from_input(x)
    xp, offset, x_sq = eng.centre(xe)  # centred: the distance expansion keeps its digits
    y = eng.copy(xp)
    thr2 = (tol * bandwidth) ** 2
    active = eng.index(np.arange(x.shape[0]))  # points still moving (non-blurring)
    n_iter = 0
    for _ in range(max_iter):
        n_iter += 1
        if blurring:
            new = eng.shift(y, y, bandwidth, kernel=kernel, chunk_size=batch_size,
                            precision=precision)
            (moved,) = eng.scalars(eng.row_sqnorms(new - y).max())
            y = new
            if moved <= thr2:
                break
        else:
            ya = y[active]
            new = eng.shift(ya, xp, bandwidth, kernel=kernel, x_sq=x_sq, chunk_size=batch_size,
                            precision=precision)
            still = eng.row_sqnorms(new - ya) > thr2  # (n_active,)
            y[active] = new
            active = active[still]
            if active.shape[0] == 0:
                break

    centers, labels = _merge_modes(eng.to_host(y).astype(np.float64), merge_radius)
    centers = eng.from_input(centers.astype(eng.to_host(xp[:1]).dtype))
    return MeanShiftResult(
        points=eng.to_output(y + offset, x),
        centers=eng.to_output(centers + offset, x),
        labels=eng.to_output(eng.index(labels), x),
        n_iter=n_iter,
        bandwidth=float(bandwidth),
    )
