"""The teaching rungs: the slow, obvious versions that the notebooks and the benchmark time.

Each rung does a fixed number of steps (no tolerance) and gives, up to rounding, the
same answer as the package:

* ``kmeans_*(x, c, n_iter)`` equals ``cl.kmeans(x, k, init=c, max_iter=n_iter, tol=0)``;
* ``meanshift_*(x, h, n_iter)`` equals ``cl.meanshift(x, h, max_iter=n_iter, tol=0).points``
  (non-blurring: the data stay fixed, the points move).

They are written for reading, not for speed; the speed ladder in notebook 05 and
``python -m clusterlab.bench`` measure how much each step up the ladder buys.
"""

from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------------------
# k-means
# --------------------------------------------------------------------------------------


def kmeans_loops(x, centroids, n_iter=1):
    """Lloyd's algorithm with Python loops over points and clusters (NumPy).

    Parameters
    ----------
    x : numpy.ndarray, shape (n, d)
    centroids : numpy.ndarray, shape (k, d)
        Initial centroids.
    n_iter : int
        Number of update steps.

    Returns
    -------
    centroids : numpy.ndarray, shape (k, d)
    labels : numpy.ndarray, shape (n,)
        Nearest centroid of each point, for the returned centroids.
    """
    x = np.asarray(x)
    c = np.array(centroids, dtype=x.dtype)
    k = len(c)

    def assign():
        labels = np.empty(len(x), dtype=np.int64)
        for i, xi in enumerate(x):
            best, best_j = np.inf, 0
            for j in range(k):
                d = ((xi - c[j]) ** 2).sum()
                if d < best:
                    best, best_j = d, j
            labels[i] = best_j
        return labels

    labels = assign()
    for _ in range(n_iter):
        for j in range(k):
            members = x[labels == j]
            if len(members):  # an empty cluster keeps its centroid here
                c[j] = members.mean(0)
        labels = assign()
    return c, labels


def kmeans_broadcast(x, centroids, n_iter=1, *, max_bytes=2**30):
    """Lloyd's algorithm with one (n, k, d) broadcast per assignment (NumPy).

    Raises
    ------
    MemoryError
        When the (n, k, d) temporary would need more than ``max_bytes``.
    """
    x = np.asarray(x)
    c = np.array(centroids, dtype=x.dtype)
    n, d = x.shape
    k = len(c)
    need = n * k * d * x.itemsize
    if need > max_bytes:
        raise MemoryError(
            f"the (n, k, d) = ({n}, {k}, {d}) difference tensor needs {need:,} bytes, "
            f"more than max_bytes={max_bytes:,}"
        )

    def assign():
        diff = x[:, None, :] - c[None, :, :]  # (N, K, D) differences
        return (diff**2).sum(2).argmin(1)  # (N,)

    labels = assign()
    for _ in range(n_iter):
        onehot = labels[:, None] == np.arange(k)[None, :]  # (N, K)
        counts = onehot.sum(0)  # (K,)
        sums = onehot.T.astype(x.dtype) @ x  # (K, D)
        c = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], c)
        labels = assign()
    return c, labels


def kmeans_torch_naive(x, centroids, n_iter=1):
    """Lloyd's algorithm as a first PyTorch port: ``torch.cdist`` + a loop over clusters."""
    import torch

    c = torch.as_tensor(centroids, dtype=x.dtype, device=x.device).clone()
    labels = torch.cdist(x, c).argmin(1)  # (N,)
    for _ in range(n_iter):
        for j in range(len(c)):
            members = x[labels == j]
            if len(members):
                c[j] = members.mean(0)
        labels = torch.cdist(x, c).argmin(1)
    return c, labels


def kmeans_torch_vectorized(x, centroids, n_iter=1):
    """Lloyd's algorithm in PyTorch with a vectorised update: ``index_add_`` + ``bincount``."""
    import torch

    c = torch.as_tensor(centroids, dtype=x.dtype, device=x.device).clone()
    k = len(c)
    labels = torch.cdist(x, c).argmin(1)  # (N,)
    for _ in range(n_iter):
        sums = torch.zeros_like(c).index_add_(0, labels, x)  # (K, D)
        counts = torch.bincount(labels, minlength=k).to(x.dtype)  # (K,)
        c = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], c)
        labels = torch.cdist(x, c).argmin(1)
    return c, labels


def memory_bytes(n, k, d, itemsize=4, chunk_rows=None):
    """Bytes of the temporaries of three ways to find nearest centroids.

    Returns
    -------
    dict
        ``"broadcast"``: the (n, k, d) differences; ``"distances"``: the (n, k) matrix;
        ``"chunked"``: one (rows, k) block (``chunk_rows`` defaults to the package's
        CPU budget, :func:`clusterlab.engines.base.chunk_rows`).
    """
    from clusterlab.engines.base import chunk_rows as _rows

    rows = _rows(n, k, itemsize, "cpu", chunk_rows)
    return {
        "broadcast": n * k * d * itemsize,
        "distances": n * k * itemsize,
        "chunked": rows * k * itemsize,
    }


# --------------------------------------------------------------------------------------
# mean shift (Gaussian kernel exp(-d^2 / 2h^2), non-blurring)
# --------------------------------------------------------------------------------------


def meanshift_loop_numpy(x, bandwidth, n_iter=1):
    """Mean shift with a Python loop over points (NumPy): each point, all data."""
    x = np.asarray(x)
    y = x.copy()
    for _ in range(n_iter):
        new = np.empty_like(y)
        for i, yi in enumerate(y):
            d2 = ((x - yi) ** 2).sum(1)  # (N,) squared distances to the data
            w = np.exp(-d2 / (2 * bandwidth**2))  # (N,) Gaussian weights
            new[i] = (w[:, None] * x).sum(0) / w.sum()
        y = new
    return y


def meanshift_loop_torch(x, bandwidth, n_iter=1):
    """The same loop over a torch tensor: one small kernel launch per operation."""
    import torch

    y = x.clone()
    for _ in range(n_iter):
        new = torch.empty_like(y)
        for i in range(len(y)):
            d2 = ((x - y[i]) ** 2).sum(1)  # (N,)
            w = torch.exp(-d2 / (2 * bandwidth**2))  # (N,)
            new[i] = (w[:, None] * x).sum(0) / w.sum()
        y = new
    return y


def meanshift_broadcast_torch(x, bandwidth, n_iter=1):
    """Mean shift with the whole (N, N) weight matrix at once (torch)."""
    import torch

    x_sq = (x * x).sum(1)  # (N,)
    y = x.clone()
    for _ in range(n_iter):
        d2 = (y * y).sum(1)[:, None] - 2 * y @ x.T + x_sq[None, :]  # (N, N)
        w = torch.softmax(-d2 / (2 * bandwidth**2), dim=1)  # (N, N) rows sum to 1
        y = w @ x  # (N, D)
    return y


def meanshift_attention(x, bandwidth, n_iter=1):
    """Mean shift as softmax attention: one step is one ``scaled_dot_product_attention``.

    ``softmax_j(-||y - x_j||^2 / 2h^2)`` equals ``softmax_j(y.x_j / h^2 - ||x_j||^2 / 2h^2)``
    (the ``-||y||^2`` term is the same for every ``j`` and cancels). With queries
    ``[y/h, 1]``, keys ``[x/h, -||x||^2 / 2h^2]``, values ``x`` and ``scale=1`` this is
    exactly attention.
    """
    import torch
    import torch.nn.functional as F

    h = float(bandwidth)
    offset = x.mean(0)
    xc = x - offset  # centred: the expanded form keeps its digits
    keys = torch.cat([xc / h, -(xc * xc).sum(1, keepdim=True) / (2 * h * h)], 1)  # (N, D+1)
    ones = torch.ones(len(x), 1, dtype=x.dtype, device=x.device)
    y = xc.clone()
    for _ in range(n_iter):
        queries = torch.cat([y / h, ones], 1)  # (N, D+1)
        y = F.scaled_dot_product_attention(
            queries[None, None], keys[None, None], xc[None, None], scale=1.0
        )[0, 0]  # (N, D)
    return y + offset
