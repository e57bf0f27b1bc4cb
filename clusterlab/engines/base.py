"""The engine interface shared by the NumPy, torch (and later KeOps) engines."""

from __future__ import annotations

import time

#: Bytes of scratch memory one (rows, K) block may use, by device type. A block of
#: 4 MiB stays in a CPU core's share of cache (measured faster than 8 or 32 MiB); a GPU
#: wants large blocks.
BLOCK_BUDGET = {"cpu": 4 * 2**20, "cuda": 1 * 2**30}


def chunk_rows(n: int, k: int, itemsize: int, device_type: str = "cpu", chunk_size=None) -> int:
    """Rows per block so that a (rows, k) block fits the memory budget.

    Parameters
    ----------
    n, k : int
        The full problem is an (n, k) matrix that is never stored whole.
    itemsize : int
        Bytes per element (4 for float32, 8 for float64).
    device_type : str
        ``"cpu"`` or ``"cuda"``: picks the budget from :data:`BLOCK_BUDGET`.
    chunk_size : int or None
        An explicit number of rows, which wins when given.
    """
    if chunk_size is not None:
        return max(1, min(int(chunk_size), n))
    budget = BLOCK_BUDGET.get(device_type, BLOCK_BUDGET["cpu"])
    rows = budget // max(1, k * itemsize)
    return max(1, min(n, rows))


class Engine:
    """What the Lloyd and shift loops need from an array library.

    Arrays are the engine's own kind. ``x`` is (n, d) data, ``c`` (k, d) centroids,
    ``w`` (n,) weights or ``None``, ``labels`` (n,) int64.
    """

    name = "base"
    #: Precisions this engine offers (float32 data); the others are refused up front.
    precisions = ("highest",)

    # --- crossing the boundary -------------------------------------------------
    def from_input(self, a):
        """Convert a validated array to this engine's kind (no copy when possible)."""
        raise NotImplementedError

    def to_output(self, a, like):
        """Convert an engine array back to the kind and device of ``like``."""
        raise NotImplementedError

    def to_host(self, a):
        """Return ``a`` as a NumPy array (a device-to-host copy for GPU arrays)."""
        raise NotImplementedError

    def index(self, idx):
        """Turn a NumPy integer array into this engine's index array."""
        raise NotImplementedError

    # --- the kernels -----------------------------------------------------------
    def assign(self, x, c, *, metric="euclidean", x_sq=None, chunk_size=None, precision="highest"):
        """Nearest centroid of every row of ``x``, in blocks of rows.

        Returns ``(dist, labels)``: (n,) squared Euclidean distance (or 1 - cos for
        ``metric="cosine"``, where ``x`` and ``c`` are unit rows) and (n,) int64.
        ``x_sq`` is the precomputed (n,) squared norm of ``x``. ``precision`` is
        ``"highest"`` (IEEE), ``"high"`` (TF32) or ``"medium"`` (bf16 products) for
        float32 data on engines that support it (``precisions``).
        """
        raise NotImplementedError

    def pairwise(self, x, c, *, metric="euclidean", x_sq=None):
        """(n, t) distances from every row of ``x`` to a few rows ``c`` (t small)."""
        raise NotImplementedError

    def cluster_sums(self, x, labels, w, k):
        """(k, d) per-cluster (weighted) sums and (k,) (weighted) counts."""
        raise NotImplementedError

    def shift(self, y, x, bandwidth, *, kernel="gaussian", x_sq=None, chunk_size=None,
              precision="highest"):
        """One mean-shift step: the kernel-weighted mean of ``x`` around each row of ``y``."""
        raise NotImplementedError

    def kth_distance(self, q, x, kth, *, chunk_size=None):
        """(m,) Euclidean distance from each row of ``q`` to its ``kth`` nearest row of ``x``."""
        raise NotImplementedError

    # --- small helpers the loops use (O(n) or O(k) work) -------------------------
    def centre(self, x, w=None, offset=None):
        """Rows of ``x`` minus ``offset`` (default: their (weighted) mean).

        Returns ``(xp, offset, x_sq)``: (n, d) centred rows, the (d,) offset and the
        (n,) squared norms of ``xp``. Distances expanded as ``||x||^2 - 2 x.c + ||c||^2``
        keep their digits only on centred data.
        """
        if offset is None:
            offset = self.mean_rows(x, w)
        xp = x - offset
        return xp, offset, self.row_sqnorms(xp)

    def copy(self, a):
        raise NotImplementedError

    def mean_rows(self, x, w=None):
        """(d,) (weighted) mean of the rows of ``x``."""
        raise NotImplementedError

    def normalize_rows(self, x):
        """Rows of ``x`` divided by their Euclidean norm (safely for any finite magnitude)."""
        raise NotImplementedError

    def row_absmax(self, x):
        """(n,) largest absolute value of each row."""
        raise NotImplementedError

    def row_sqnorms(self, x):
        """(n,) squared Euclidean norm of each row."""
        raise NotImplementedError

    def total(self, v, w=None):
        """0-d float64 sum of ``v`` (weighted by ``w``): objectives keep their digits."""
        raise NotImplementedError

    def cumsum(self, v):
        raise NotImplementedError

    def sample_cumulative(self, cum, u):
        """Indices drawn by inverting the cumulative weights ``cum`` at the fractions ``u``.

        ``u`` is a NumPy array of uniform draws in [0, 1); index ``i`` is returned for a
        draw that falls in ``(cum[i-1], cum[i]]`` once scaled by ``cum[-1]`` (the scaling
        happens on the device, so nothing waits for it).
        """
        raise NotImplementedError

    def stack(self, values):
        """Stack 0-d engine arrays into one 1-D array."""
        raise NotImplementedError

    def topk(self, v, m):
        """Indices of the ``m`` largest entries of the 1-D array ``v``, largest first.

        Ties go to the lower index (on a GPU, in torch's order: finding them would wait).
        """
        raise NotImplementedError

    def minimum(self, a, b):
        raise NotImplementedError

    def where(self, mask, a, b):
        """Elementwise ``a`` where ``mask`` holds, else ``b``."""
        raise NotImplementedError

    def arange(self, n):
        """0, 1, ..., n - 1 as engine integers."""
        raise NotImplementedError

    def add_rows(self, a, idx, rows):
        """A copy of ``a`` with ``rows[i]`` added to ``a[idx[i]]`` (repeated indices add up)."""
        raise NotImplementedError

    def where_rows(self, mask, a, b):
        """Rows of ``a`` where the (n,) boolean ``mask`` holds, else rows of ``b``."""
        raise NotImplementedError

    def scalars(self, *values):
        """Python floats of 0-d arrays, fetched from the device in one transfer."""
        raise NotImplementedError

    def mark(self):
        """A point in time on the engine's device, read later by :meth:`seconds`.

        The host clock here; a recorded CUDA event on a GPU, so that a loop can mark its
        iterations without waiting for the device.
        """
        return time.perf_counter()

    def seconds(self, start, marks):
        """Seconds from ``start`` to each of ``marks`` (waits for the device once)."""
        return [m - start for m in marks]


def shift_blocks(m: int, n: int, itemsize: int, device_type: str = "cpu", batch_size=None):
    """Block sizes ``(queries, sources)`` for the (m, n) kernel matrix of mean shift.

    Queries are taken ``batch_size`` at a time (or as many as fit the budget against all
    sources, at least 64); the sources are then tiled so that one (queries, sources)
    block fits :data:`BLOCK_BUDGET`. A million points thus never need a (m, n) matrix.
    """
    budget = BLOCK_BUDGET.get(device_type, BLOCK_BUDGET["cpu"])
    if batch_size is not None:
        bq = max(1, min(int(batch_size), m))
    else:
        bq = max(1, min(m, max(64, budget // max(1, n * itemsize))))
    bs = max(1, min(n, max(64, budget // max(1, bq * itemsize))))
    return bq, bs
