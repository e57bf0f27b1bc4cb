"""Fused CPU kernels (numba) behind the torch engine on a CPU.

On a CPU the cost of k-means is not the matrix product alone: a separate argmin pass
over the (n, k) distances, and a serial scatter-add for the cluster sums, cost as much
again. scikit-learn and faiss fuse these steps in compiled loops; these kernels do the
same, in parallel over blocks of points (``numba.prange``):

* :func:`assign_direct` — for small d, ``sum_d (x_id - c_jd)^2`` and the running
  minimum in one pass, no (n, k) matrix at all;
* :func:`argmin_rows` — the argmin of a (rows, k) block that a BLAS GEMM produced;
* :func:`cluster_sums` — per-thread (k, d) sums in float64, added up at the end.

numba is optional: without it the torch engine falls back to torch/NumPy operations.
Each kernel is compiled on first use (about a second) and cached on disk.
"""

from __future__ import annotations

import numpy as np

try:
    import numba
    from numba import njit, prange
except ImportError:  # the engine falls back to torch / NumPy
    numba = None

#: Up to this many features the direct (no GEMM) kernel is used on a CPU.
DIRECT_MAX_D = 8


def available() -> bool:
    """True when numba is installed."""
    return numba is not None


if numba is not None:

    @njit(parallel=True, cache=True, fastmath=True)
    def assign_direct(x, ct, labels, dist):  # pragma: no cover - compiled
        """Nearest centroid by direct squared distances; (n, d) x, (d, k) transposed c.

        The distances of one point to all k centroids are built feature by feature over
        a contiguous row (a loop the compiler turns into SIMD), then scanned for the
        minimum. The inputs are finite (validated), so ``fastmath`` changes nothing but
        the order of additions.
        """
        n, d = x.shape
        k = ct.shape[1]
        block = 512
        n_blocks = (n + block - 1) // block
        for b in prange(n_blocks):
            row = np.empty(k, dtype=x.dtype)  # (k,) squared distances of one point
            for i in range(b * block, min((b + 1) * block, n)):
                xi = x[i, 0]
                for j in range(k):
                    diff = xi - ct[0, j]
                    row[j] = diff * diff
                for t in range(1, d):
                    xi = x[i, t]
                    for j in range(k):
                        diff = xi - ct[t, j]
                        row[j] += diff * diff
                best = row[0]
                arg = 0
                for j in range(1, k):
                    if row[j] < best:
                        best = row[j]
                        arg = j
                labels[i] = arg
                dist[i] = best

    @njit(parallel=True, cache=True)
    def argmin_rows(g, labels, best):  # pragma: no cover - compiled
        """Row-wise argmin and minimum of a (rows, k) block."""
        rows, k = g.shape
        for i in prange(rows):
            m = g[i, 0]
            arg = 0
            for j in range(1, k):
                v = g[i, j]
                if v < m:
                    m = v
                    arg = j
            labels[i] = arg
            best[i] = m

    @njit(parallel=True, cache=True)
    def cluster_sums(x, labels, w, k, n_threads):  # pragma: no cover - compiled
        """(k, d) weighted sums and (k,) weighted counts, float64 accumulators.

        An empty ``w`` (shape (0,)) means every weight is 1, so no (n,) array of ones
        is allocated per iteration.
        """
        n, d = x.shape
        sums = np.zeros((n_threads, k, d), dtype=np.float64)
        counts = np.zeros((n_threads, k), dtype=np.float64)
        per = (n + n_threads - 1) // n_threads
        for t in prange(n_threads):
            for i in range(t * per, min((t + 1) * per, n)):
                j = labels[i]
                wi = w[i] if w.shape[0] > 0 else 1.0
                counts[t, j] += wi
                for q in range(d):
                    sums[t, j, q] += wi * x[i, q]
        return sums.sum(0), counts.sum(0)


def threads() -> int:
    """Threads numba's parallel loops use."""
    return numba.get_num_threads() if numba is not None else 1
