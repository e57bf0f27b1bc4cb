"""The Triton engine: the torch engine with its O(n k) kernels fused in Triton.

Assignment, per-cluster sums and the mean-shift step run as the kernels of
:mod:`clusterlab.engines.triton_kernels`; everything O(n) or O(k) (centring, norms,
sampling, the loop's bookkeeping) is the torch engine's. Float32 data take the fused
kernels; float64 data (and mean shift with d > 128) take the torch engine's kernels.

On a CUDA device the kernels are compiled for the GPU. Without a GPU, setting
``TRITON_INTERPRET=1`` before Triton is imported runs the same kernels on CPU tensors
through Triton's interpreter: slow, and meant for tests and for reading the kernels.
"""

from __future__ import annotations

import functools
import os

import torch

from clusterlab.engines.torch_engine import TorchEngine

INSTALL_HINT = "pip install triton (Linux x86-64; CUDA builds of torch bring it along)"


def import_kernels():
    """Import :mod:`clusterlab.engines.triton_kernels`, or raise an ImportError naming Triton."""
    try:
        from clusterlab.engines import triton_kernels
    except ImportError as exc:
        raise ImportError(f"backend='triton' needs Triton: {INSTALL_HINT}") from exc
    return triton_kernels


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@functools.cache
def triton_works(device: str = "cuda") -> tuple[bool, str]:
    """Whether the fused kernels compile and give right answers on ``device`` (cached).

    Runs a tiny assignment and compares it with torch. Triton's compile errors are
    Python exceptions (no crash), so the check runs in this process.

    Returns
    -------
    ok : bool
    reason : str
        Empty when ok, else one line saying why the Triton engine is not used.
    """
    dev = torch.device(device)
    if dev.type == "cpu" and not _interpreting():
        return False, "Triton needs a CUDA GPU (or TRITON_INTERPRET=1 on a CPU)"
    if dev.type == "cuda" and not torch.cuda.is_available():
        return False, "no CUDA device is visible"
    try:
        tk = import_kernels()
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(37, 5, generator=gen).to(dev)
        c = torch.randn(19, 5, generator=gen).to(dev)
        _, labels = tk.assign(x, c)
        ref = torch.cdist(x, c).argmin(1)
        agree = float((labels == ref).float().mean())
    except Exception as exc:  # compile or launch failure: say which, fall back to torch
        return False, f"the Triton kernels did not run on {dev}: {type(exc).__name__}: {exc}"
    if agree < 1.0:
        return False, f"the Triton assignment disagreed with torch on {dev} ({agree:.0%} equal)"
    return True, ""


class TritonEngine(TorchEngine):
    """Engine over torch tensors whose O(n k) kernels are fused Triton kernels."""

    name = "triton"
    precisions = ("highest", "high", "medium")

    def __init__(self, device="cuda"):
        super().__init__(device)
        if self.device_type == "cpu" and not _interpreting():
            raise ValueError(
                "backend='triton' needs a CUDA GPU: the data are on the CPU. Move them to "
                "the GPU (x.cuda()), use backend='torch', or set TRITON_INTERPRET=1 before "
                "importing triton to run the kernels through Triton's (slow) interpreter"
            )
        self.kernels = import_kernels()

    @torch.no_grad()
    def assign(self, x, c, *, metric="euclidean", x_sq=None, chunk_size=None, precision="highest"):
        # No (rows, k) block is stored, so chunk_size has nothing to bound here.
        if x.dtype != torch.float32:
            return super().assign(x, c, metric=metric, x_sq=x_sq, chunk_size=chunk_size)
        return self.kernels.assign(x, c, metric=metric, precision=precision)

    @torch.no_grad()
    def cluster_sums(self, x, labels, w, k):
        if x.dtype != torch.float32:
            return super().cluster_sums(x, labels, w, k)
        sums, counts = self.kernels.cluster_sums(x, labels, w, k)  # float64 accumulation
        return sums.to(x.dtype), counts.to(x.dtype)

    @torch.no_grad()
    def shift(self, y, x, bandwidth, *, kernel="gaussian", x_sq=None, chunk_size=None,
              precision="highest"):
        if x.dtype != torch.float32 or x.shape[1] > self.kernels.SHIFT_MAX_D:
            return super().shift(y, x, bandwidth, kernel=kernel, x_sq=x_sq,
                                 chunk_size=chunk_size, precision=precision)
        if x_sq is None:
            x_sq = self.row_sqnorms(x)
        return self.kernels.shift(y, x, x_sq, bandwidth, kernel=kernel, precision=precision)
