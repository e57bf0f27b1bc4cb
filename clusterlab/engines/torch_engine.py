"""The PyTorch engine: blocked GEMM + fused argmin, on CPU threads or a CUDA device."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import torch

from clusterlab.engines import cpu_kernels
from clusterlab.engines.base import Engine, chunk_rows, shift_blocks


@contextlib.contextmanager
def matmul_precision(precision: str):
    """torch's float32 matmul precision inside the block ("high": TF32 on GPUs), restored after."""
    old = torch.get_float32_matmul_precision()
    want = "high" if precision == "high" else "highest"
    if want != old:
        torch.set_float32_matmul_precision(want)
    try:
        yield
    finally:
        if want != old:
            torch.set_float32_matmul_precision(old)


def rounded(t, precision: str):
    """``t`` rounded to bf16 and back for ``precision="medium"`` (float32 only).

    A product of two bf16 numbers is exact in float32, so a float32 GEMM of rounded
    inputs gives the numbers of a bf16 GEMM that accumulates in float32 (its cost aside).
    """
    if precision == "medium" and t.dtype == torch.float32:
        return t.to(torch.bfloat16).to(torch.float32)
    return t


class TorchEngine(Engine):
    """Engine over torch tensors on one device (CPU or CUDA)."""

    name = "torch"
    precisions = ("highest", "high", "medium")

    def __init__(self, device="cpu"):
        self.device = torch.device(device)
        self.device_type = self.device.type

    def from_input(self, a):
        if isinstance(a, torch.Tensor):
            return a.detach()
        a = np.ascontiguousarray(a)
        if not a.flags.writeable:  # torch warns about read-only memory; nothing writes to it
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return torch.from_numpy(a).to(self.device)
        return torch.from_numpy(a).to(self.device)

    def to_output(self, a, like):
        if isinstance(like, torch.Tensor):
            return a.to(like.device)
        return a.cpu().numpy()

    def to_host(self, a):
        return a.cpu().numpy()

    def index(self, idx):
        return torch.as_tensor(np.asarray(idx, dtype=np.int64), device=self.device)

    @torch.no_grad()
    def assign(self, x, c, *, metric="euclidean", x_sq=None, chunk_size=None, precision="highest"):
        exact = precision == "highest" or (precision == "high" and self.device_type == "cpu")
        if exact or x.dtype != torch.float32:  # (a CPU has no TF32: "high" is float32 there)
            return self._assign(x, c, metric=metric, x_sq=x_sq, chunk_size=chunk_size)
        # Lower precision picks the labels; the distances are then recomputed exactly.
        with matmul_precision(precision):
            _, labels = self._assign(rounded(x, precision), rounded(c, precision),
                                     metric=metric, x_sq=x_sq, chunk_size=chunk_size)
        return self.nearest_dist(x, c, labels, metric=metric, chunk_size=chunk_size), labels

    @torch.no_grad()
    def nearest_dist(self, x, c, labels, *, metric="euclidean", chunk_size=None):
        """(n,) distance of each row of ``x`` to its centroid ``c[labels]``, computed directly."""
        n = x.shape[0]
        out = torch.empty(n, dtype=x.dtype, device=x.device)
        rows = chunk_rows(n, x.shape[1], x.element_size(), self.device_type, chunk_size)
        for s in range(0, n, rows):
            near = c[labels[s:s + rows]]  # (B, d)
            if metric == "cosine":
                out[s:s + rows] = (1.0 - (x[s:s + rows] * near).sum(1)).clamp_min_(0.0)
            else:
                diff = x[s:s + rows] - near
                out[s:s + rows] = (diff * diff).sum(1)
        return out

    def _assign(self, x, c, *, metric="euclidean", x_sq=None, chunk_size=None):
        n, k = x.shape[0], c.shape[0]
        if self.device_type == "cpu" and cpu_kernels.available():
            return self._assign_blocks_cpu(x, c, metric, x_sq, chunk_size)
        if metric == "euclidean":
            # argmin_j ||x - c_j||^2 = argmin_j (||c_j||^2 - 2 x.c_j); ||x||^2 comes back after
            bias, alpha = (c * c).sum(1), -2.0  # (K,)
            if x_sq is None:
                x_sq = self.row_sqnorms(x)
        else:
            bias, alpha = torch.zeros(k, dtype=x.dtype, device=x.device), -1.0  # minus the cosines
        best = torch.empty(n, dtype=x.dtype, device=x.device)
        labels = torch.empty(n, dtype=torch.int64, device=x.device)
        rows = chunk_rows(n, k, x.element_size(), self.device_type, chunk_size)
        ct = c.T.contiguous()  # (d, K)
        for s in range(0, n, rows):
            g = torch.addmm(bias, x[s:s + rows], ct, beta=1.0, alpha=alpha)  # (B, K)
            if self.device_type == "cpu":  # no numba: NumPy's SIMD argmin over the block
                lab = torch.from_numpy(g.numpy().argmin(1))
                best[s:s + rows], labels[s:s + rows] = g.gather(1, lab[:, None])[:, 0], lab
            else:
                torch.min(g, 1, out=(best[s:s + rows], labels[s:s + rows]))
        if metric == "euclidean":
            return (best + x_sq).clamp_min_(0.0), labels
        return (best + 1.0).clamp_min_(0.0), labels

    def _assign_blocks_cpu(self, x, c, metric, x_sq, chunk_size):
        """Distances and nearest centroids with the fused per-thread kernel (``cpu_kernels``).

        Everything over n happens in the kernel, on the threads the machine has free;
        the few operations on the (k, d) centroids are NumPy's (one thread): no OpenMP
        region of torch's, each of which costs a time slice on a busy machine.
        """
        n, k = x.shape[0], c.shape[0]
        xn = x.contiguous().numpy()
        cn = c.contiguous().numpy()
        if metric == "euclidean":
            # argmin_j ||x - c_j||^2 = argmin_j (||c_j||^2 - 2 x.c_j); ||x||^2 added in the kernel
            bias, cs, add = np.einsum("ij,ij->i", cn, cn), cn * -2.0, 0.0  # -2 c: exact
            xs = (self.row_sqnorms(x) if x_sq is None else x_sq).contiguous().numpy()
        else:  # 1 - cos: minus the cosines, plus 1
            bias, cs, add = np.zeros(k, dtype=xn.dtype), -cn, 1.0
            xs = np.empty(0, dtype=xn.dtype)
        dist = np.empty(n, dtype=xn.dtype)
        labels = np.empty(n, dtype=np.int64)
        rows = cpu_kernels.block_rows(k, xn.itemsize, chunk_size, n=n)
        work = n * k * xn.shape[1]  # multiply-adds: a big product keeps its threads on a busy machine
        with cpu_kernels.parallel_threads(torch.get_num_threads(), work=work), cpu_kernels.single_threaded_blas():
            cpu_kernels.assign_blocks(xn, cs, bias, xs, add, rows, labels, dist)
        return torch.from_numpy(dist), torch.from_numpy(labels)

    @torch.no_grad()
    def pairwise(self, x, c, *, metric="euclidean", x_sq=None):
        g = x @ c.T  # (n, t)
        if metric == "cosine":
            return (1.0 - g).clamp_min_(0.0)
        if x_sq is None:
            x_sq = self.row_sqnorms(x)
        return (x_sq[:, None] - 2.0 * g + (c * c).sum(1)[None, :]).clamp_min_(0.0)

    @torch.no_grad()
    def cluster_sums(self, x, labels, w, k):
        if self.device_type == "cpu" and cpu_kernels.available():
            # float64 sums by fixed parts (the same bits whatever the threads); index_add_ is serial
            xn = x.contiguous().numpy()
            wn = np.empty(0, dtype=np.float64) if w is None else w.numpy()
            with cpu_kernels.parallel_threads(torch.get_num_threads()):
                sums, counts = cpu_kernels.cluster_sums(xn, labels.numpy(), wn, k, cpu_kernels.parts())
            # cast by NumPy (one thread): no OpenMP region of torch's (see cpu_kernels)
            return torch.from_numpy(sums.astype(xn.dtype)), torch.from_numpy(counts.astype(xn.dtype))
        sums = torch.zeros(k, x.shape[1], dtype=x.dtype, device=x.device)  # (k, d)
        sums.index_add_(0, labels, x if w is None else x * w[:, None])
        counts = torch.bincount(labels, weights=w, minlength=k).to(x.dtype)  # (k,)
        return sums, counts

    @torch.no_grad()
    def shift(self, y, x, bandwidth, *, kernel="gaussian", x_sq=None, chunk_size=None,
              precision="highest"):
        if precision == "highest" or x.dtype != torch.float32:
            return self._shift(y, x, bandwidth, kernel=kernel, x_sq=x_sq, chunk_size=chunk_size)
        with matmul_precision(precision):
            xr = rounded(x, precision)
            return self._shift(rounded(y, precision), xr, bandwidth, kernel=kernel,
                               x_sq=self.row_sqnorms(xr), chunk_size=chunk_size)

    def _shift(self, y, x, bandwidth, *, kernel="gaussian", x_sq=None, chunk_size=None):
        # on a CPU, torch's regions on the threads that other processes leave free
        with cpu_kernels.torch_threads(work=y.shape[0] * x.shape[0] * x.shape[1],
                                       device_type=self.device_type):
            return self._shift_blocks(y, x, bandwidth, kernel=kernel, x_sq=x_sq,
                                      chunk_size=chunk_size)

    def _shift_blocks(self, y, x, bandwidth, *, kernel="gaussian", x_sq=None, chunk_size=None):
        m, n = y.shape[0], x.shape[0]
        bq, bs = shift_blocks(m, n, x.element_size(), self.device_type, chunk_size)
        if x_sq is None:
            x_sq = self.row_sqnorms(x)
        out = torch.empty_like(y)
        h2 = float(bandwidth) * float(bandwidth)  # inf, not OverflowError, for a huge h
        for s in range(0, m, bq):
            ys = y[s:s + bq]
            y_sq = self.row_sqnorms(ys)[:, None]  # (B, 1)
            if bs >= n:
                # All sources in one block: the kernel weights are one softmax.
                d2 = torch.addmm(x_sq[None, :], ys, x.T, beta=1.0, alpha=-2.0).add_(y_sq)  # (B, N)
                if kernel == "gaussian":
                    out[s:s + bq] = torch.softmax(d2.mul_(-0.5 / h2), dim=1) @ x  # (B, d)
                    continue
                wts = (d2 <= h2).to(x.dtype)  # (B, N) flat kernel
                tot, num = wts.sum(1), wts @ x
            else:
                # Online softmax over source blocks (as flash attention).
                run_max = torch.full((len(ys),), -torch.inf, dtype=x.dtype, device=x.device)
                tot = torch.zeros(len(ys), dtype=x.dtype, device=x.device)  # (B,)
                num = torch.zeros_like(ys)  # (B, d)
                for t in range(0, n, bs):
                    xs = x[t:t + bs]
                    d2 = torch.addmm(x_sq[None, t:t + bs], ys, xs.T, beta=1.0, alpha=-2.0)
                    d2.add_(y_sq)  # (B, S) squared distances
                    if kernel == "gaussian":
                        d2.mul_(-0.5 / h2)
                        new_max = torch.maximum(run_max, d2.amax(1))  # (B,)
                        scale = torch.exp(run_max - new_max)  # (B,), 0 on the first block
                        # exp() of very negative numbers gives denormals, which are
                        # ~30x slower on a CPU; below -80 a weight is < 2e-35 of the top one.
                        wts = torch.exp((d2 - new_max[:, None]).clamp_(min=-80.0))  # (B, S)
                        tot = tot * scale + wts.sum(1)
                        num = num * scale[:, None] + wts @ xs
                        run_max = new_max
                    else:
                        wts = (d2 <= h2).to(x.dtype)  # (B, S) flat kernel
                        tot += wts.sum(1)
                        num += wts @ xs
            ok = (tot > 0)[:, None]  # a flat window may hold no point: the point stays
            out[s:s + bq] = torch.where(ok, num / tot.clamp_min(1e-30)[:, None], ys)
        return out

    @torch.no_grad()
    def kth_distance(self, q, x, kth, *, chunk_size=None):
        m, n = q.shape[0], x.shape[0]
        rows = chunk_rows(m, n, x.element_size(), self.device_type, chunk_size)
        x_sq = self.row_sqnorms(x)
        out = torch.empty(m, dtype=x.dtype, device=x.device)
        for s in range(0, m, rows):
            qs = q[s:s + rows]
            d2 = torch.addmm(x_sq[None, :], qs, x.T, beta=1.0, alpha=-2.0)  # (B, N)
            d2 += self.row_sqnorms(qs)[:, None]
            out[s:s + rows] = torch.kthvalue(d2, kth, dim=1).values
        return out.clamp_min_(0.0).sqrt_()

    # --- small helpers -------------------------------------------------------
    def centre(self, x, w=None, offset=None):
        if self.device_type != "cpu" or not cpu_kernels.available():
            return super().centre(x, w, offset)
        # one pass, no (n, d) temporaries: ~6x faster than mean, subtract, square, sum
        xn = x.contiguous().numpy()
        if offset is None:
            # the (weighted) mean: cluster sums (float64) with every point in cluster 0
            zeros = torch.from_numpy(np.zeros(len(x), dtype=np.int64))  # not torch.zeros: a region
            sums, counts = self.cluster_sums(x, zeros, w, 1)
            offset = sums[0] / counts[0]
        off = np.ascontiguousarray(offset.numpy(), dtype=xn.dtype)
        with cpu_kernels.parallel_threads(torch.get_num_threads()):
            xp = np.empty_like(xn)
            x_sq = np.empty(xn.shape[0], dtype=xn.dtype)
            cpu_kernels.centre_rows(xn, off, xp, x_sq)
        return torch.from_numpy(xp), torch.from_numpy(off), torch.from_numpy(x_sq)

    def copy(self, a):
        return a.clone()

    def mean_rows(self, x, w=None):
        if w is None:
            return x.mean(0)
        return (w @ x) / w.sum()

    def normalize_rows(self, x):
        # divided by the largest entry first: rows near 1e20 (float32) keep a finite norm
        x = x / x.abs().amax(1, keepdim=True)
        return x / torch.linalg.vector_norm(x, dim=1, keepdim=True)

    def row_absmax(self, x):
        return x.abs().amax(1)

    def row_sqnorms(self, x):
        return (x * x).sum(1)

    def total(self, v, w=None):
        if self.device_type == "cpu" and cpu_kernels.available():  # threads as the machine allows
            wn = np.empty(0, dtype=np.float64) if w is None else w.contiguous().numpy()
            with cpu_kernels.parallel_threads(torch.get_num_threads()):
                tot = cpu_kernels.weighted_total(v.contiguous().numpy(), wn, cpu_kernels.parts())
            return torch.tensor(tot, dtype=torch.float64)
        return v.sum(dtype=torch.float64) if w is None else (v * w).sum(dtype=torch.float64)

    def cumsum(self, v):
        return torch.cumsum(v, 0)

    def sample_cumulative(self, cum, u):
        u = torch.as_tensor(np.asarray(u, dtype=np.float64), device=cum.device)
        vals = (u * cum[-1].double()).to(cum.dtype)  # scaled on the device: no wait
        idx = torch.searchsorted(cum, vals, right=True)
        return idx.clamp_max_(len(cum) - 1)

    def stack(self, values):
        return torch.stack(values)

    def topk(self, v, m):
        if self.device_type != "cpu":  # no wait for the device; ties in torch's order
            return torch.topk(v, m).indices
        t = torch.topk(v, m).values[-1]  # the m-th largest value
        gt = torch.nonzero(v > t)[:, 0]
        idx = torch.cat([gt, torch.nonzero(v == t)[: m - len(gt), 0]])  # ties: lower index
        order = np.lexsort((idx.numpy(), -v[idx].numpy()))
        return idx[torch.from_numpy(order)]

    def minimum(self, a, b):
        return torch.minimum(a, b)

    def where(self, mask, a, b):
        return torch.where(mask, a, b)

    def arange(self, n):
        return torch.arange(n, device=self.device)

    def add_rows(self, a, idx, rows):
        return a.index_add(0, idx, rows.to(a.dtype))

    def where_rows(self, mask, a, b):
        return torch.where(mask[:, None], a, b)

    def mark(self):
        if self.device_type != "cuda":
            return super().mark()
        ev = torch.cuda.Event(enable_timing=True)
        ev.record()
        return ev

    def seconds(self, start, marks):
        if self.device_type != "cuda":
            return super().seconds(start, marks)
        if marks:
            marks[-1].synchronize()
        return [start.elapsed_time(m) / 1000.0 for m in marks]

    def scalars(self, *values):
        vals = [torch.as_tensor(v, dtype=torch.float64, device=self.device) for v in values]
        return torch.stack(vals).tolist()
