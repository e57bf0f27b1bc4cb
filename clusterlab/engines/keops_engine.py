"""The KeOps engine: symbolic (N, K) matrices that are never stored, on CPU or CUDA.

KeOps (``pykeops``) compiles each formula once (g++ on the CPU, nvrtc on a GPU) and
caches it in ``KEOPS_CACHE_FOLDER``; later calls only run. The engine reuses the torch
engine for everything that is O(n) (sums per cluster, norms, sampling) and replaces the
two O(n k) kernels: the nearest-centroid argmin and the kernel-weighted mean of mean
shift. Both compute ``||x_i - c_j||^2`` directly in registers, so they need neither
chunking nor the ``||x||^2 - 2 x.c + ||c||^2`` expansion.
"""

from __future__ import annotations

import os

import torch

from clusterlab.engines.torch_engine import TorchEngine

INSTALL_HINT = "pip install pykeops==2.3 (and a C++ compiler, g++, for its CPU mode)"


def import_keops():
    """Import ``pykeops.torch.LazyTensor`` quietly, or raise an ImportError saying what to install."""
    # Both variables must be set before pykeops is first imported to silence compile logs.
    os.environ.setdefault("KEOPS_VERBOSE", "0")
    os.environ.setdefault("PYKEOPS_VERBOSE", "0")
    try:
        from pykeops.torch import LazyTensor
    except ImportError as exc:
        raise ImportError(f"backend='keops' needs pykeops: {INSTALL_HINT}") from exc
    return LazyTensor


def keops_available() -> bool:
    """True when pykeops can be imported (it may still fail to compile)."""
    try:
        import_keops()
    except ImportError:
        return False
    return True


class KeopsEngine(TorchEngine):
    """Engine over torch tensors whose O(n k) kernels are KeOps reductions."""

    name = "keops"

    def __init__(self, device="cpu"):
        super().__init__(device)
        self.LazyTensor = import_keops()

    @torch.no_grad()
    def assign(self, x, c, *, metric="euclidean", x_sq=None, chunk_size=None):
        LT = self.LazyTensor
        x_i = LT(x[:, None, :].contiguous())  # (N, 1, D) symbolic rows
        c_j = LT(c[None, :, :].contiguous())  # (1, K, D) symbolic columns
        if metric == "euclidean":
            d_ij = ((x_i - c_j) ** 2).sum(-1)  # (N, K) squared distances, never stored
        else:
            d_ij = -(x_i | c_j)  # (N, K) minus the cosines of unit rows
        labels = d_ij.argmin(dim=1).view(-1).long()  # (N,)
        nearest = c[labels]  # (N, D)
        if metric == "euclidean":
            dist = ((x - nearest) ** 2).sum(1)
        else:
            dist = (1.0 - (x * nearest).sum(1)).clamp_min_(0.0)
        return dist, labels

    @torch.no_grad()
    def shift(self, y, x, bandwidth, *, kernel="gaussian", x_sq=None, chunk_size=None):
        LT = self.LazyTensor
        y_i = LT(y[:, None, :].contiguous())  # (M, 1, D) the moving points
        x_j = LT(x[None, :, :].contiguous())  # (1, N, D) the data
        d_ij = ((y_i - x_j) ** 2).sum(-1)  # (M, N) squared distances
        h2 = float(bandwidth) ** 2
        if kernel == "gaussian":
            # a stable softmax-weighted sum of the data: mean shift as attention
            return (-d_ij / (2.0 * h2)).sumsoftmaxweight(x_j, dim=1)  # (M, D)
        k_ij = (h2 - d_ij).step()  # (M, N) flat kernel: 1 inside the window
        num = (k_ij * x_j).sum(dim=1)  # (M, D)
        tot = k_ij.sum(dim=1)  # (M, 1)
        return torch.where(tot > 0, num / tot.clamp_min(1e-30), y)
