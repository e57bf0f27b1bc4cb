"""Fused CPU kernels (numba) behind the torch engine on a CPU.

On a CPU the cost of k-means is not the matrix product alone: a separate argmin pass
over the (n, k) distances, and a serial scatter-add for the cluster sums, cost as much
again. scikit-learn and faiss fuse these steps in compiled loops; these kernels do the
same, in parallel over blocks of points (``numba.prange``):

* :func:`assign_blocks` — per-thread blocks of points: one
  single-threaded BLAS product into a (k, rows) block that fits the core's L2 cache,
  then a column-wise argmin in SIMD lanes (16 points at a time), and the distance
  (``||x||^2`` added, clamped at 0) written in the same pass;
* :func:`cluster_sums` — (k, d) sums in float64 over a fixed number of parts of the
  rows, added up at the end;
* :func:`weighted_total` — the (weighted) sum of a vector in float64, the same way;
* :func:`centre_rows` — centred rows and their squared norms in one pass (no
  temporaries); the mean itself is :func:`cluster_sums` with one cluster.

A busy machine. Every parallel loop is an OpenMP region (numba's ``omp`` layer shares
torch's OpenMP runtime), and a region ends only when each of its threads has done its
share. When other processes keep the cores busy, a thread of ours waits for a time
slice (4 ms and more) and every region costs that wait, while the runtime's idle
threads spin for the next region and take time from the thread that works: measured
on 2 cores with two busy processes, a 2-thread region summing 100,000 numbers took
16–32 ms instead of 0.05 ms. So the number of threads is chosen per call
(:func:`parallel_threads`, :func:`threads_for`): those that the other processes leave
free, at least one (no region at all with one thread); only a loop big enough that a
few lost time slices do not matter (:data:`BIG_WORK`) keeps all its threads. Results do
not depend on it: the blocks and parts are fixed, whatever the number of threads that
runs them.

numba is optional: without it the torch engine falls back to torch/NumPy operations.
Each kernel is compiled on first use (about a second) and cached on disk.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
import time

import numpy as np

from clusterlab.device import cpu_ticks, process_ticks, usable_cpus

try:
    import numba
    from numba import njit, prange
except ImportError:  # the engine falls back to torch / NumPy
    numba = None

#: Bytes of one thread's (k, rows) block in :func:`assign_blocks`: a core's L2 (1 MiB
#: on the AMD EPYC measured; 256 rows at k = 1000 are as fast as 128 and faster than 512).
L2_BLOCK_BYTES = 2**20
MAX_BLOCK_ROWS = 256
#: Seconds over which the other processes' use of the CPUs is measured (and the
#: measurement reused) by :func:`threads_for`.
LOAD_INTERVAL_S = 0.25
#: Multiply-adds from which a parallel loop keeps all its threads on a busy machine
#: (about 25 ms of one core's BLAS): there the waits for time slices cost less than the
#: second core brings (measured, 200,000 x 128, k = 1000, with other processes on both
#: cores: 23 s with 2 threads, 28 s with 1).
BIG_WORK = 10**9


def available() -> bool:
    """True when numba is installed."""
    return numba is not None


if numba is not None:

    @njit(cache=True, fastmath={"nnan"}, inline="always")
    def _argmin_strip(g, bias, i0, w, best, lab):  # pragma: no cover - compiled
        """Argmin over k of ``g[j, i] + bias[j]`` for the columns ``i0 .. i0+w``.

        The loop runs down the k rows of a (k, B) block and across ``w`` neighbouring
        columns: each column keeps its own running minimum, so the inner loop has no
        dependency between iterations and no branch (an add, a compare and two
        selects), which the compiler turns into AVX-512/AVX2 lanes — 16 points at a
        time instead of one. A strict ``<`` keeps the first index on ties, as
        ``argmin`` does. ``nnan`` is the one fast-math flag it needs: distances of
        finite (validated) data are not NaN.
        """
        k = g.shape[0]
        b0 = bias[0]
        for i in range(w):
            best[i] = g[0, i0 + i] + b0
            lab[i] = 0
        for j in range(1, k):
            row = g[j, i0:i0 + w]
            bj = bias[j]
            jj = np.int32(j)
            for i in range(w):
                v = row[i] + bj
                lt = v < best[i]
                best[i] = min(v, best[i])
                lab[i] = jj if lt else lab[i]

    @njit(parallel=True, cache=True, fastmath={"nnan"})
    def assign_blocks(x, cs, bias, x_sq, add, rows, labels, dist):  # pragma: no cover - compiled
        """Nearest centroid by blocks of ``rows`` points, each block on one thread.

        ``x`` (n, d); ``cs`` (k, d) the scaled centroids (``-2 c`` for Euclidean, ``-c``
        for cosine); ``bias`` (k,) (``||c||^2``, or zeros). For each block the thread
        makes one single-threaded BLAS call, ``(k, d) @ (d, B) -> (k, B)`` (the caller
        limits BLAS to one thread), adds ``bias`` and takes the argmin down each column
        while the block is still in that core's L2 cache. ``dist`` gets
        ``max(0, x_sq_i + min_j (bias_j + cs_j . x_i))`` (``x_sq`` the (n,) squared
        norms for Euclidean; an empty ``x_sq`` means the constant ``add``: 1 for
        cosine), in the same pass: no second pass over n, no region of torch's.

        This is scikit-learn's design (per-thread chunks that fit in L2) with a SIMD
        column argmin. Measured on a 2-core AMD EPYC: as fast as a multithreaded GEMM
        over 4 MiB blocks followed by the argmin when the machine is quiet, and about
        twice as fast when another tenant of the shared L3 cache is busy.
        """
        n = x.shape[0]
        per_row = x_sq.shape[0] > 0
        strip = 256  # columns per argmin strip: the running minima stay in L1
        for b in prange((n + rows - 1) // rows):
            s = b * rows
            e = min(s + rows, n)
            g = np.dot(cs, x[s:e].T)  # (k, B) = -2 c.x, this thread's BLAS call
            bv = np.empty(strip, dtype=g.dtype)
            bl = np.empty(strip, dtype=np.int32)
            for i0 in range(0, e - s, strip):
                w = min(strip, e - s - i0)
                _argmin_strip(g, bias, i0, w, bv, bl)
                for i in range(w):
                    j = s + i0 + i
                    v = bv[i] + (x_sq[j] if per_row else add)
                    dist[j] = v if v > 0 else 0.0
                    labels[j] = bl[i]

    @njit(parallel=True, cache=True)
    def cluster_sums(x, labels, w, k, n_parts):  # pragma: no cover - compiled
        """(k, d) weighted sums and (k,) weighted counts, float64 accumulators.

        The rows are cut into ``n_parts`` parts (:func:`parts`), each summed by one
        thread, the parts then added in order: the result depends on ``n_parts``, not
        on how many threads run them. ``w`` is used as it is (float32 or float64, no
        per-iteration copy); an empty ``w`` (shape (0,)) means every weight is 1, so no
        (n,) array of ones is made.
        """
        n, d = x.shape
        sums = np.zeros((n_parts, k, d), dtype=np.float64)
        counts = np.zeros((n_parts, k), dtype=np.float64)
        per = (n + n_parts - 1) // n_parts
        for t in prange(n_parts):
            for i in range(t * per, min((t + 1) * per, n)):
                j = labels[i]
                wi = w[i] if w.shape[0] > 0 else 1.0
                counts[t, j] += wi
                for q in range(d):
                    sums[t, j, q] += wi * x[i, q]
        return sums.sum(0), counts.sum(0)

    @njit(parallel=True, cache=True, fastmath={"reassoc"})
    def weighted_total(v, w, n_parts):  # pragma: no cover - compiled
        """``sum(v * w)`` (``sum(v)`` for an empty ``w``) in float64, by ``n_parts`` parts.

        ``reassoc`` lets each part be added in SIMD lanes (a fixed order for a given
        build, like torch's sum).
        """
        n = v.shape[0]
        part = np.zeros(n_parts, dtype=np.float64)
        per = (n + n_parts - 1) // n_parts
        for t in prange(n_parts):
            s = 0.0
            if w.shape[0] > 0:
                for i in range(t * per, min((t + 1) * per, n)):
                    s += np.float64(v[i]) * w[i]
            else:
                for i in range(t * per, min((t + 1) * per, n)):
                    s += v[i]
            part[t] = s
        return part.sum()

    @njit(parallel=True, cache=True, fastmath=True)
    def centre_rows(x, offset, out, sq):  # pragma: no cover - compiled
        """``out = x - offset`` and ``sq = (out * out).sum(1)`` in one pass over ``x``.

        ``fastmath`` only lets the row sum be added in SIMD order (inputs are finite).
        """
        n, d = x.shape
        for i in prange(n):
            s = 0.0
            for j in range(d):
                v = x[i, j] - offset[j]
                out[i, j] = v
                s += v * v
            sq[i] = s


def block_rows(k: int, itemsize: int, chunk_size=None, n=None) -> int:
    """Points per thread block in :func:`assign_blocks`: a (k, rows) block fits L2.

    A given ``chunk_size`` is used as it is, clipped to ``n`` (the number of points, when
    given) and to ``2**31 - 1``, so that no block is larger than the data or than numba's
    loop bounds (the public functions validate ``chunk_size`` before it gets here).
    """
    if chunk_size is not None:
        rows = min(int(chunk_size), 2**31 - 1)
        return max(1, rows if n is None else min(rows, int(n)))
    rows = L2_BLOCK_BYTES // max(1, k * itemsize)
    return max(16, min(MAX_BLOCK_ROWS, rows // 16 * 16))


@functools.lru_cache(maxsize=1)
def _blas_controller():
    # numba's np.dot calls SciPy's BLAS: load it first so that the controller sees it
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def single_threaded_blas():
    """Context manager: BLAS libraries (OpenBLAS of NumPy/SciPy) on one thread.

    :func:`assign_blocks` calls BLAS from each of its threads; a multithreaded BLAS
    inside would start threads of its own on the same cores. torch's BLAS (linked
    into torch) is not affected. Costs about 12 µs.
    """
    return _blas_controller().limit(limits=1, user_api="blas")


def _launch():
    """Start numba's thread pool without changing torch's number of threads.

    numba's ``omp`` layer runs on the OpenMP runtime that torch loaded, and starting its
    pool sets that runtime's thread count to numba's pool size: a
    ``torch.set_num_threads(1)`` made before would be undone. It is put back.
    """
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    numba.get_num_threads()  # launches the pool, once
    if before is not None and torch.get_num_threads() != before:
        torch.set_num_threads(before)


_launched = False


@contextlib.contextmanager
def parallel_threads(n: int, *, work=0, busy=True):
    """Inside the block, numba's parallel loops use up to ``n`` threads (at most its pool).

    The torch engine passes ``torch.get_num_threads()``, so that the one knob users
    know, ``torch.set_num_threads``, also holds for these kernels. With ``busy`` (the
    default) fewer are used while other processes keep the CPUs busy
    (:func:`threads_for`), unless ``work`` (the loop's multiply-adds) is at least
    :data:`BIG_WORK`. numba's setting is per calling thread, and restored on exit.
    """
    global _launched
    if not _launched:
        _launch()
        _launched = True
    before = numba.get_num_threads()
    want = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads_for(want) if busy and work < BIG_WORK else want)
    try:
        yield
    finally:
        numba.set_num_threads(before)


@contextlib.contextmanager
def torch_threads(*, work=0, by_load=True, device_type="cpu"):
    """torch's own CPU operations inside the block on the threads the machine has free.

    For loops of many small torch operations (mean shift's blocks, soft and mini-batch
    k-means's steps): each of them is an OpenMP region, and on a busy machine each region
    waits for its slowest thread's time slice — a 2-thread region over a (1500, 6) block
    was measured at 25 ms instead of 0.2 ms on one thread. The same choice as
    :func:`parallel_threads` makes for numba's loops: ``torch.get_num_threads()`` at most,
    fewer while other processes keep the CPUs busy (:func:`threads_for`), unless ``work``
    (the multiply-adds of one step) is at least :data:`BIG_WORK` or ``device_type`` is not
    ``"cpu"`` (then nothing changes).

    ``by_load=True`` is for operations whose results do not depend on the number of threads
    (mean shift's products and row-wise sums give each row to one thread; tested); the
    block gets a function that measures the load again, to call once per step (the first
    measurement of a process sees no load). ``by_load=False`` runs a small block on one
    thread: for reductions over rows and BLAS calls that round differently with another
    number of threads, whose result must not depend on the machine's load. torch's setting
    is restored on exit.
    """
    import torch

    before = torch.get_num_threads()
    small = device_type == "cpu" and work < BIG_WORK

    def adjust():
        want = threads_for(before) if by_load else 1
        if torch.get_num_threads() != want:
            torch.set_num_threads(want)

    if small:
        adjust()
    try:
        yield adjust if small and by_load else (lambda: None)
    finally:
        if small and torch.get_num_threads() != before:
            torch.set_num_threads(before)


def threads() -> int:
    """Threads numba's parallel loops use."""
    return numba.get_num_threads() if numba is not None else 1


def parts() -> int:
    """Parts that :func:`cluster_sums` and :func:`weighted_total` cut the rows into.

    numba's pool size (the machine's CPUs unless ``NUMBA_NUM_THREADS`` says otherwise):
    fixed for the process, so that the float64 sums come out the same whatever the
    number of threads of a call.
    """
    return numba.config.NUMBA_NUM_THREADS if numba is not None else 1


# --------------------------------------------------------------------------------------
# How busy the machine is
# --------------------------------------------------------------------------------------


class _Load:
    """The other processes' CPU use, measured over the last :data:`LOAD_INTERVAL_S`."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sample = None  # (time, busy ticks, total ticks, own ticks)
        self.others = 0.0  # CPUs busy with other processes' work
        self.broken = False  # no /proc (not Linux) or an unreadable one

    def busy_cpus(self, cpus) -> float:
        if self.broken:
            return 0.0
        now = time.monotonic()
        last = self.sample
        if last is not None and now - last[0] < LOAD_INTERVAL_S:
            return self.others
        with self.lock:
            try:
                busy, total = cpu_ticks(cpus)
                own = process_ticks()
            except (OSError, ValueError, IndexError):
                self.broken = True
                return 0.0
            if last is not None and total > last[2]:
                ticks_per_cpu = (total - last[2]) / len(cpus)
                used = (busy - last[1]) - (own - last[3])
                self.others = max(0.0, used / ticks_per_cpu)
            self.sample = (now, busy, total, own)
        return self.others


_load = _Load()


def busy_cpus() -> float:
    """CPUs that other processes kept busy lately (0.0 where /proc is not available).

    Measured from /proc/stat over the CPUs this process may run on, less this process's
    own time, over the last :data:`LOAD_INTERVAL_S` seconds; the first call of a
    process has nothing to compare with and says 0.0.
    """
    return _load.busy_cpus(_cpus())


@functools.lru_cache(maxsize=1)
def _cpus():
    return usable_cpus()


def threads_for(n: int) -> int:
    """Threads for a parallel loop that could use ``n``: those the machine has free.

    ``n`` less the CPUs other processes keep busy (:func:`busy_cpus`, rounded), and at
    least 1. On a quiet machine that is ``n``; with two busy processes on two cores it
    is 1, which runs the loop on the calling thread with no OpenMP region to wait for.
    """
    n = max(1, int(n))
    if n == 1:
        return 1
    free = len(_cpus()) - round(busy_cpus())
    return max(1, min(n, free))
