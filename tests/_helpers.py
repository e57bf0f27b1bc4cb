"""Reference implementations and helpers for the tests (plain loops, no clusterlab code)."""

from __future__ import annotations

import numpy as np


def six_blobs(seed=0, n=250, dtype=np.float32):
    """The six-blob data of the mean-shift lesson, written out here independently."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-35, 35, size=(6, 2))
    x = np.concatenate([rng.normal(c, np.sqrt(5.0), size=(n, 2)) for c in centers])
    return x.astype(dtype), np.repeat(np.arange(6), n), centers


def loop_assign(x, c):
    """Nearest centroid by two Python loops (the reference)."""
    x = np.asarray(x, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    labels = np.empty(len(x), dtype=np.int64)
    dist = np.empty(len(x))
    for i, xi in enumerate(x):
        best, best_j = np.inf, -1
        for j, cj in enumerate(c):
            d = float(((xi - cj) ** 2).sum())
            if d < best:
                best, best_j = d, j
        labels[i], dist[i] = best_j, best
    return dist, labels


def loop_lloyd(x, c0, n_iter):
    """Lloyd's algorithm with loops, from given centroids, for ``n_iter`` iterations."""
    x = np.asarray(x, dtype=np.float64)
    c = np.array(c0, dtype=np.float64)
    for _ in range(n_iter):
        _, labels = loop_assign(x, c)
        for j in range(len(c)):
            members = x[labels == j]
            if len(members):
                c[j] = members.mean(0)
    dist, labels = loop_assign(x, c)
    return c, labels, dist.sum()


def same_partition(a, b) -> bool:
    """True when two labelings are equal up to a permutation of the label values."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))
