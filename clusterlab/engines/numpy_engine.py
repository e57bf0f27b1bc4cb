"""The NumPy engine: blocked BLAS matrix products, no Python loop over points."""

from __future__ import annotations

import numpy as np

from clusterlab.engines.base import Engine, chunk_rows, shift_blocks


class NumpyEngine(Engine):
    """Engine over NumPy arrays on the CPU."""

    name = "numpy"
    device_type = "cpu"

    def from_input(self, a):
        from clusterlab._validate import to_numpy

        return to_numpy(a)

    def to_output(self, a, like):
        from clusterlab._validate import is_torch

        if is_torch(like):
            import torch

            return torch.from_numpy(np.ascontiguousarray(a)).to(like.device)
        return a

    def to_host(self, a):
        return np.asarray(a)

    def index(self, idx):
        return np.asarray(idx, dtype=np.int64)

    def assign(self, x, c, *, metric="euclidean", x_sq=None, chunk_size=None, precision="highest"):
        n, k = x.shape[0], c.shape[0]
        rows = chunk_rows(n, k, x.itemsize, "cpu", chunk_size)
        dist = np.empty(n, dtype=x.dtype)
        labels = np.empty(n, dtype=np.int64)
        ct = np.ascontiguousarray(c.T)  # (d, K)
        if metric == "euclidean":
            with np.errstate(over="ignore"):  # a centroid beyond sqrt(max): inf, never nearest
                c_sq = (c * c).sum(1)  # (K,)
            if x_sq is None:
                x_sq = self.row_sqnorms(x)
        for s in range(0, n, rows):
            e = min(s + rows, n)
            g = x[s:e] @ ct  # (B, K) inner products
            if metric == "euclidean":
                g *= -2.0
                g += c_sq  # (B, K) squared distance minus ||x||^2
                lab = g.argmin(1)
                best = np.take_along_axis(g, lab[:, None], 1)[:, 0]
                np.maximum(best + x_sq[s:e], 0.0, out=dist[s:e])
            else:
                lab = g.argmax(1)
                best = np.take_along_axis(g, lab[:, None], 1)[:, 0]
                np.maximum(1.0 - best, 0.0, out=dist[s:e])
            labels[s:e] = lab
        return dist, labels

    def pairwise(self, x, c, *, metric="euclidean", x_sq=None):
        g = x @ c.T  # (n, t)
        if metric == "cosine":
            return np.maximum(1.0 - g, 0.0)
        if x_sq is None:
            x_sq = self.row_sqnorms(x)
        d = x_sq[:, None] - 2.0 * g + (c * c).sum(1)[None, :]
        return np.maximum(d, 0.0)

    def cluster_sums(self, x, labels, w, k):
        from scipy.sparse import csc_matrix

        n = x.shape[0]
        data = np.ones(n, dtype=x.dtype) if w is None else w
        # (k, n) one-hot membership matrix, one entry per column: building it is O(n).
        onehot = csc_matrix((data, labels, np.arange(n + 1)), shape=(k, n))
        sums = np.asarray(onehot @ x)  # (k, d)
        counts = np.bincount(labels, weights=w, minlength=k).astype(x.dtype)  # (k,)
        return sums, counts

    def shift(self, y, x, bandwidth, *, kernel="gaussian", x_sq=None, chunk_size=None,
              precision="highest"):
        m, n = y.shape[0], x.shape[0]
        bq, bs = shift_blocks(m, n, x.itemsize, "cpu", chunk_size)
        if x_sq is None:
            x_sq = self.row_sqnorms(x)
        out = np.empty_like(y)
        h2 = float(bandwidth) * float(bandwidth)  # inf, not OverflowError, for a huge h
        for s in range(0, m, bq):
            ys = y[s:s + bq]
            y_sq = self.row_sqnorms(ys)  # (B,)
            run_max = np.full(len(ys), -np.inf, dtype=x.dtype)  # (B,) running max logit
            tot = np.zeros(len(ys), dtype=x.dtype)  # (B,) sum of kernel weights
            num = np.zeros_like(ys)  # (B, d) weighted sum of sources
            for t in range(0, n, bs):
                xs = x[t:t + bs]
                d2 = y_sq[:, None] - 2.0 * (ys @ xs.T) + x_sq[None, t:t + bs]  # (B, S)
                if kernel == "gaussian":
                    # Online softmax of -d2 / 2h^2 over source blocks (as flash attention):
                    # rescale what was summed so far whenever the running maximum grows.
                    d2 *= -0.5 / h2
                    new_max = np.maximum(run_max, d2.max(1))  # (B,)
                    scale = np.exp(run_max - new_max)  # (B,), 0 on the first block
                    # clamped: exp() of very negative numbers gives slow denormals
                    wts = np.exp(np.maximum(d2 - new_max[:, None], -80.0))  # (B, S)
                    tot = tot * scale + wts.sum(1)
                    num = num * scale[:, None] + wts @ xs
                    run_max = new_max
                else:
                    wts = (d2 <= h2).astype(x.dtype)  # (B, S) flat kernel
                    tot += wts.sum(1)
                    num += wts @ xs
            ok = tot > 0  # a flat window may hold no point: the point stays
            out[s:s + bq] = np.where(ok[:, None], num / np.where(ok, tot, 1.0)[:, None], ys)
        return out

    def kth_distance(self, q, x, kth, *, chunk_size=None):
        m, n = q.shape[0], x.shape[0]
        rows = chunk_rows(m, n, x.itemsize, "cpu", chunk_size)
        x_sq = self.row_sqnorms(x)
        out = np.empty(m, dtype=x.dtype)
        for s in range(0, m, rows):
            qs = q[s:s + rows]
            d2 = self.row_sqnorms(qs)[:, None] - 2.0 * (qs @ x.T) + x_sq[None, :]  # (B, N)
            out[s:s + rows] = np.partition(d2, kth - 1, axis=1)[:, kth - 1]
        return np.sqrt(np.maximum(out, 0.0))

    # --- small helpers -------------------------------------------------------
    def copy(self, a):
        return a.copy()

    def mean_rows(self, x, w=None):
        if w is None:
            return x.mean(0)
        return (w @ x) / w.sum()

    def normalize_rows(self, x):
        # divided by the largest entry first: rows near 1e20 (float32) keep a finite norm
        x = x / np.abs(x).max(1, keepdims=True)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def row_absmax(self, x):
        return np.abs(x).max(1)

    def row_sqnorms(self, x):
        return np.einsum("ij,ij->i", x, x)

    def total(self, v, w=None):
        return v.sum(dtype=np.float64) if w is None else np.dot(v.astype(np.float64), w)

    def cumsum(self, v):
        return np.cumsum(v)

    def sample_cumulative(self, cum, u):
        vals = (np.asarray(u, dtype=np.float64) * float(cum[-1])).astype(cum.dtype)
        idx = np.searchsorted(cum, vals, side="right")
        return np.minimum(idx, len(cum) - 1)

    def stack(self, values):
        return np.stack(values)

    def topk(self, v, m):
        t = v[np.argpartition(-v, m - 1)[:m]].min()  # the m-th largest value
        gt = np.flatnonzero(v > t)
        idx = np.concatenate([gt, np.flatnonzero(v == t)[: m - len(gt)]])  # ties: lower index
        return idx[np.lexsort((idx, -v[idx]))]

    def minimum(self, a, b):
        return np.minimum(a, b)

    def where(self, mask, a, b):
        return np.where(mask, a, b)

    def arange(self, n):
        return np.arange(n)

    def add_rows(self, a, idx, rows):
        out = a.copy()
        np.add.at(out, idx, rows.astype(a.dtype, copy=False))
        return out

    def where_rows(self, mask, a, b):
        return np.where(mask[:, None], a, b)

    def scalars(self, *values):
        return [float(v) for v in values]
