"""k-means over torch.distributed: every process holds a shard, one all-reduce per iteration.

Lloyd's algorithm splits cleanly over processes. Each process (a *rank*) holds its own
rows of the data, assigns them to the nearest centroid, and sums them per cluster; one
all-reduce of the (k, d) sums and the (k,) counts then gives every rank the same new
centroids. The labels never leave their rank. The same code runs on CPUs (the gloo
backend), on several GPUs (NCCL) and across machines: ``torchrun`` starts the processes
and :func:`torch.distributed.init_process_group` connects them; this module only calls
collectives of the group it is given.

Everything :func:`clusterlab.kmeans` guarantees holds over the concatenated data:

* **The same result.** The data are centred on the global (weighted) mean, the tolerance
  is scikit-learn's rule on the global variance, the objective and the history are global,
  and an empty cluster takes the globally worst-served point (every rank proposes its own
  farthest points, the global top wins, its owner's cluster loses it). With the same
  ``init`` array, ``kmeans`` on any sharding gives the centroids, labels and ``n_iter`` of
  ``cl.kmeans`` on the concatenated data (up to the rounding of sums in another order).
* **No deadlock.** Every rank calls the same collectives in the same order, whatever its
  shard holds (an empty shard included). Bad input on one rank is reported on every rank
  (after one exchange of what each rank got), so no rank waits for a collective that
  another rank will never make.
* **Scalable initialisation.** ``init="k-means||"`` (Bahmani et al., 2012, the default)
  draws about ``2k`` candidates per round in parallel, in 5 rounds, and runs a weighted
  k-means++ on them; ``"k-means++"`` is exact (``k`` sequential rounds of collectives);
  ``"random"`` draws ``k`` distinct points over all ranks. Per-point random draws come
  from a counter-based generator indexed by the point's global position, so the result
  does not depend on how the data are sharded.

The module imports torch on first use; ``import clusterlab`` does not load it.
"""

from __future__ import annotations

import math
import os
import pickle
import tempfile
import threading
import time
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np

from clusterlab import _scale
from clusterlab._validate import (
    check_array,
    check_centroids,
    check_choice,
    check_count,
    check_dense,
    check_float,
    check_int,
    check_rows,
    check_seed,
    is_torch,
    like,
)
from clusterlab.engines import get_engine
from clusterlab.kmeans import METRICS, KMeansResult, _dead, _frame, _prepare, _unframe
from clusterlab.kmeans import assign as _assign_one
from clusterlab.kmeans import kmeans_plusplus as _kmeans_plusplus_one
from clusterlab.meanshift import KERNELS

__all__ = [
    "INITS",
    "assign",
    "bench_scaling",
    "check_allreduce_update",
    "kmeans",
    "meanshift_step",
    "run_local",
]

INITS = ("k-means||", "k-means++", "random")
#: Oversampling rounds of k-means|| (Bahmani et al. found 5 enough) and candidates per
#: round, as a multiple of k (their l = 2k).
PARALLEL_ROUNDS = 5
OVERSAMPLING = 2.0
_ERRORS = {"ValueError": ValueError, "TypeError": TypeError, "RuntimeError": RuntimeError}


def _torch():
    try:
        import torch
        import torch.distributed
    except ImportError as exc:  # pragma: no cover - torch is a course dependency
        raise ImportError(
            "clusterlab.distributed needs PyTorch with torch.distributed: pip install torch"
        ) from exc
    return torch


# --------------------------------------------------------------------------------------
# The process group: a handful of collectives on float64 buffers, timed
# --------------------------------------------------------------------------------------


class _Comm:
    """The collectives of one process group, on float64 buffers, with their time kept.

    Buffers live on the group's device (the current CUDA device for NCCL, the CPU
    otherwise); engine arrays are packed into one buffer per collective. Each collective's
    time is kept as a span: host clock readings on a CPU, a pair of CUDA events on the
    current stream with NCCL (from the moment the stream's earlier work is done to the
    moment the collective is), read only by :meth:`seconds` -- timing adds no wait.
    """

    def __init__(self, group=None):
        torch = _torch()
        dist = torch.distributed
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError(
                "clusterlab.distributed needs an initialised process group: call "
                "torch.distributed.init_process_group(...) on every process first "
                "(torchrun sets the environment it reads), or use cl.kmeans on one process"
            )
        self.torch, self.dist, self.group = torch, dist, group
        self.rank = dist.get_rank(group)
        if self.rank < 0:
            raise RuntimeError("this process is not a member of the process group `group`")
        self.world = dist.get_world_size(group)
        self.backend = str(dist.get_backend(group))
        on_gpu = self.backend == "nccl"
        self.device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else torch.device("cpu")
        self._src0 = 0 if group is None else dist.get_global_rank(group, 0)
        self.spans = []  # per collective: seconds (CPU) or a (start, end) CUDA event pair

    def _timed(self, fn):
        if self.device.type == "cuda":
            ev = [self.torch.cuda.Event(enable_timing=True) for _ in range(2)]
            ev[0].record()
            out = fn()
            ev[1].record()
            self.spans.append(ev)
            return out
        t0 = time.perf_counter()
        out = fn()
        self.spans.append(time.perf_counter() - t0)
        return out

    def seconds(self, start=0, stop=None):
        """Seconds spent in the collectives ``spans[start:stop]`` (waits for the last one)."""
        spans = self.spans[start:stop]
        if spans and not isinstance(spans[-1], float):
            spans[-1][1].synchronize()
        return sum(s if isinstance(s, float) else s[0].elapsed_time(s[1]) / 1000.0
                   for s in spans)

    # --- conversions ----------------------------------------------------------
    def buf(self, a):
        """An engine array, NumPy array or number as a float64 tensor on the group's device."""
        torch = self.torch
        t = a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a, dtype=np.float64))
        return t.detach().to(device=self.device, dtype=torch.float64)

    def zeros(self, *shape):
        return self.torch.zeros(*shape, dtype=self.torch.float64, device=self.device)

    # --- collectives ----------------------------------------------------------
    def allreduce(self, *arrays, op="sum"):
        """Sum (or max) of each array over the ranks, in one collective; float64 tensors."""
        parts = [self.buf(a) for a in arrays]
        flat = self.torch.cat([p.reshape(-1) for p in parts]) if parts else self.zeros(0)
        red = self.dist.ReduceOp.MAX if op == "max" else self.dist.ReduceOp.SUM
        self._timed(lambda: self.dist.all_reduce(flat, op=red, group=self.group))
        out, at = [], 0
        for p in parts:
            out.append(flat[at:at + p.numel()].reshape(p.shape))
            at += p.numel()
        return out

    def allgather(self, a):
        """(world, *shape) float64 tensor of every rank's ``a`` (same shape on every rank)."""
        t = self.buf(a).contiguous()
        out = [self.torch.empty_like(t) for _ in range(self.world)]
        self._timed(lambda: self.dist.all_gather(out, t, group=self.group))
        return self.torch.stack(out)

    def broadcast(self, a):
        """Rank 0's ``a`` on every rank (float64 tensor of the same shape)."""
        t = self.buf(a).contiguous().clone()
        self._timed(lambda: self.dist.broadcast(t, src=self._src0, group=self.group))
        return t

    def objects(self, obj):
        """Every rank's picklable ``obj``, as a list indexed by rank (setup only)."""
        out = [None] * self.world
        self._timed(lambda: self.dist.all_gather_object(out, obj, group=self.group))
        return out


def _host(t) -> np.ndarray:
    return t.detach().cpu().numpy()


def _np_dtype(a) -> np.dtype:
    if is_torch(a):
        return _torch().empty(0, dtype=a.dtype).numpy().dtype
    return np.asarray(a).dtype


def _to_engine(eng, a, like_arr):
    """A NumPy array or float64 tensor as an engine array with the dtype of ``like_arr``."""
    dt = _np_dtype(like_arr)
    if is_torch(a):
        if is_torch(like_arr):
            return a.to(device=like_arr.device, dtype=like_arr.dtype)
        a = _host(a)
    return eng.from_input(np.ascontiguousarray(np.asarray(a).astype(dt, copy=False)))


def _searchsorted(cum, values):
    """Indices ``i`` with ``cum[i-1] <= v < cum[i]`` (side="right"), as NumPy integers."""
    if is_torch(cum):
        v = _torch().as_tensor(np.asarray(values, dtype=np.float64), device=cum.device)
        return _host(_torch().searchsorted(cum, v.to(cum.dtype), right=True))
    return np.searchsorted(cum, values, side="right")


def _cumsum64(v):
    if is_torch(v):
        return _torch().cumsum(v, 0, dtype=_torch().float64)
    return np.cumsum(v, dtype=np.float64)


def _sum64(x, w=None, rows=65536):
    """(d,) float64 sum of the rows of ``x`` (weighted by ``w``), in blocks (no float64 copy of x)."""
    d = x.shape[1]
    if is_torch(x):
        torch = _torch()
        acc = torch.zeros(d, dtype=torch.float64, device=x.device)
        for s in range(0, x.shape[0], rows):
            blk = x[s:s + rows].to(torch.float64)
            acc += blk.sum(0) if w is None else w[s:s + rows].to(torch.float64) @ blk
        return acc
    acc = np.zeros(d)
    for s in range(0, x.shape[0], rows):
        blk = x[s:s + rows].astype(np.float64)
        acc += blk.sum(0) if w is None else w[s:s + rows].astype(np.float64) @ blk
    return acc


# --------------------------------------------------------------------------------------
# Validation: checked locally, reported everywhere
# --------------------------------------------------------------------------------------


def _check_shard(x_local, name="x_local"):
    """Validate one rank's shard; an empty shard (0, d) is allowed."""
    x = check_dense(x_local, name)
    if not is_torch(x) and not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{name} must be a 2-D array of numbers") from exc
    shape = tuple(x.shape)
    if len(shape) == 2 and shape[0] == 0 and shape[1] > 0:
        # An empty shard: no point to check, but the dtype follows check_array's rules.
        probe = check_array(_one_row(x), name)
        return x.to(probe.dtype) if is_torch(x) else x.astype(probe.dtype)
    return check_array(x, name)


def _one_row(x):
    """A (1, d) zero row of the kind, dtype and device of the empty array ``x``."""
    if is_torch(x):
        return _torch().zeros(1, x.shape[1], dtype=x.dtype, device=x.device)
    return np.zeros((1, x.shape[1]), dtype=x.dtype)


def _check_local_weights(weights, x):
    """Shape (n_local,), finite, non-negative; "not all zero" is checked globally."""
    if weights is None:
        return None
    n = x.shape[0]
    w = like(weights, x, "weights")
    if tuple(w.shape) != (n,):
        raise ValueError(f"weights must have shape ({n},) to match x_local, got shape {tuple(w.shape)}")
    if n:
        wh = _host(w) if is_torch(w) else np.asarray(w)
        if not np.isfinite(wh).all():
            i = int(np.flatnonzero(~np.isfinite(wh))[0])
            raise ValueError(f"weights contains NaN or inf; first at index {i}: {wh[i]}")
        if wh.min() < 0:
            raise ValueError(f"weights must be non-negative, got a minimum of {wh.min()}")
    return w


def _raise_everywhere(comm, infos):
    """Raise, on every rank, the first error any rank met (all ranks saw the same list)."""
    for r, info in enumerate(infos):
        if info.get("error"):
            kind, msg = info["error"]
            where = "" if comm.world == 1 else f" (on rank {r} of {comm.world})"
            if kind not in _ERRORS:
                kind, msg = "RuntimeError", f"{kind}: {msg}"
            raise _ERRORS[kind](f"{msg}{where}")


def _agree(comm, infos, names):
    """Refuse arguments that differ between ranks (they decide which collectives run)."""
    for name in names:
        values = [info[name] for info in infos]
        if any(v != values[0] for v in values[1:]):
            per_rank = ", ".join(f"rank {r}: {v!r}" for r, v in enumerate(values))
            if name in ("d", "dtype"):
                what = "number of features d" if name == "d" else "dtype"
                raise ValueError(
                    f"x_local has a different {what} on different ranks ({per_rank}); "
                    "every shard must have the same d and dtype"
                )
            raise ValueError(
                f"{name} differs across ranks ({per_rank}); every rank must pass the same {name}"
            )


# --------------------------------------------------------------------------------------
# Global draws, rows by global index
# --------------------------------------------------------------------------------------


def _uniforms(key, start, n):
    """(n,) uniforms in [0, 1) of the points ``start .. start + n - 1`` of one global stream.

    Philox is counter-based: the stream is cut at the shard's global offset, so the draw
    of a point does not depend on how the data are sharded.
    """
    gen = np.random.Generator(np.random.Philox(key=key))
    gen.bit_generator.advance(start // 4)  # one counter step holds four 64-bit draws
    gen.random(start % 4)
    return gen.random(n)


def _owners(totals, values, sizes):
    """Owner rank and local value of each draw ``v`` in ``[0, sum(totals))``.

    ``totals`` are the ranks' parts of the cumulative weight, in rank order; a draw past
    the end (rounding) goes to the last rank that holds points, as ``cl.kmeans`` clamps
    to the last point.
    """
    ends = np.cumsum(totals)
    r = np.searchsorted(ends, values, side="right")
    last = int(np.flatnonzero(np.asarray(sizes) > 0)[-1])
    r = np.minimum(r, last)
    before = np.concatenate([[0.0], ends])[r]
    return r, np.asarray(values) - before


def _rows(comm, eng, xp, gidx, start):
    """(m, d) rows of the global data at the global indices ``gidx`` (one all-reduce).

    Each owner writes its rows into a zero buffer; the sum over ranks has them all.
    """
    m, d, n = len(gidx), xp.shape[1], xp.shape[0]
    buf = comm.zeros(m, d)
    gidx = np.asarray(gidx, dtype=np.int64)
    mine = np.flatnonzero((gidx >= start) & (gidx < start + n))
    if len(mine):
        buf[comm.buf(mine).long()] = comm.buf(xp[eng.index(gidx[mine] - start)])
    (out,) = comm.allreduce(buf)
    return _to_engine(eng, out, xp)


def _first_index(comm, w, rng, sizes, wtot, start):
    """Global index of the first centre of k-means++ / k-means||, drawn by weight.

    Consumes one number of ``rng``, as ``cl.kmeans`` does, and locates it in the global
    cumulative weight (unweighted: no collective; weighted: the owner rank finds the
    point and one all-reduce of a number tells the others).
    """
    u = rng.random()
    if wtot is None:
        n = int(sum(sizes))
        return min(int(math.floor(u * n)), n - 1)  # searchsorted(1..n, u * n, "right")
    v = u * float(sum(wtot))
    r, local = _owners(np.asarray(wtot, dtype=np.float64), np.array([v]), sizes)
    g = 0.0
    if int(r[0]) == comm.rank:
        cum = _cumsum64(w)
        i = min(int(_searchsorted(cum, local)[0]), w.shape[0] - 1)
        g = float(start + i)
    (out,) = comm.allreduce(np.array([g]))
    return int(round(float(out[0])))


# --------------------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------------------


def _init_random(comm, eng, xp, w, k, rng, sizes, start):
    """k distinct points over all ranks, drawn as ``cl.kmeans`` draws them.

    Unweighted: the same draw over the global indices (no data moves but the k rows).
    Weighted: the weights are gathered (N numbers) to draw exactly as ``cl.kmeans``.
    """
    n_total = int(sum(sizes))
    if w is None:
        idx = rng.choice(np.arange(n_total), size=k, replace=False)
        return _rows(comm, eng, xp, idx, start)
    m = max(sizes)
    buf = comm.zeros(m)
    if xp.shape[0]:
        buf[: xp.shape[0]] = comm.buf(w)
    g = _host(comm.allgather(buf))
    wh = np.concatenate([g[r, : sizes[r]] for r in range(comm.world)])
    positive = np.flatnonzero(wh > 0)
    if len(positive) >= k:
        idx = rng.choice(n_total, size=k, replace=False, p=wh / wh.sum())
    else:
        rest = rng.choice(np.flatnonzero(wh <= 0), size=k - len(positive), replace=False)
        idx = np.concatenate([positive, rest])
    return _rows(comm, eng, xp, idx, start)


def _init_plusplus(comm, eng, xp, w, k, rng, metric, x_sq, sizes, wtot, start):
    """Exact greedy k-means++ over all ranks: two small collectives per centre.

    The draws and their order are ``cl.kmeans``'s (``rng.random()`` for the first centre,
    ``rng.random(n_trials)`` for each next one); each draw is located on its owner rank
    by the ranks' shares of the potential, the owners send the candidate rows, and the
    potentials of the candidates are summed over the ranks.
    """
    n_trials = 2 + int(math.log(k))
    first = _first_index(comm, w, rng, sizes, wtot, start)
    chosen = [_rows(comm, eng, xp, [first], start)]
    closest = eng.pairwise(xp, chosen[0], metric=metric, x_sq=x_sq)[:, 0]  # (n,)
    pot = closest if w is None else closest * w
    totals = _host(comm.allgather(np.array([float(_host_sum(pot))])))[:, 0]
    n = xp.shape[0]
    d = xp.shape[1]
    for _ in range(1, k):
        pot = closest if w is None else closest * w  # (n,)
        v = rng.random(n_trials) * float(totals.sum())
        owner, local = _owners(totals, v, sizes)
        buf = comm.zeros(n_trials, d)
        mine = np.flatnonzero(owner == comm.rank)
        if len(mine) and n:
            idx = np.minimum(_searchsorted(_cumsum64(pot), local[mine]), n - 1)
            buf[comm.buf(mine).long()] = comm.buf(xp[eng.index(idx)])
        (cand,) = comm.allreduce(buf)
        cand = _to_engine(eng, cand, xp)  # (t, d) candidate rows
        d_c = eng.minimum(eng.pairwise(xp, cand, metric=metric, x_sq=x_sq), closest[:, None])
        pots_local = _col_sums64(d_c if w is None else d_c * w[:, None], n_trials)  # (t,)
        pots = _host(comm.allgather(pots_local))  # (world, t)
        best = int(np.argmin(pots.sum(0)))
        totals = pots[:, best]
        closest = d_c[:, best]
        chosen.append(cand[best:best + 1])
    return _cat(chosen)


def _host_sum(v):
    if is_torch(v):
        return float(v.sum(dtype=_torch().float64)) if v.numel() else 0.0
    return float(np.sum(v, dtype=np.float64))


def _col_sums64(a, t):
    if a.shape[0] == 0:
        return np.zeros(t)
    if is_torch(a):
        return a.sum(0, dtype=_torch().float64)
    return a.sum(0, dtype=np.float64)


def _cat(rows):
    if is_torch(rows[0]):
        return _torch().cat(rows)
    return np.concatenate(rows)


def _init_parallel(comm, eng, xp, w, k, rng, metric, x_sq, sizes, wtot, start, chunk_size,
                   precision):
    """k-means|| (Bahmani et al., 2012): oversample in a few rounds, then k-means++.

    From one first centre, each round keeps every point independently with probability
    ``min(1, l * w * D^2 / phi)`` (``l = 2k`` candidates expected per round, ``D^2`` the
    squared distance to the nearest candidate so far, ``phi`` its global sum). After
    :data:`PARALLEL_ROUNDS` rounds each candidate is weighted by the weight of the points
    nearest to it, and a weighted k-means++ on the candidates (a few thousand rows, on
    every rank alike) picks the k initial centroids. Three small collectives per round,
    plus the candidates' rows.
    """
    n_total = int(sum(sizes))
    n, d = xp.shape
    first = _first_index(comm, w, rng, sizes, wtot, start)
    cands = [_rows(comm, eng, xp, [first], start)]
    key = int(rng.integers(2**63))
    closest, _ = eng.assign(xp, cands[0], metric=metric, x_sq=x_sq, chunk_size=chunk_size,
                            precision=precision)
    ell = OVERSAMPLING * k
    for rnd in range(PARALLEL_ROUNDS):
        pot = closest if w is None else closest * w
        (phi,) = comm.allreduce(np.array([_host_sum(pot)]))
        phi = float(phi[0])
        if not phi > 0:  # every point sits on a candidate
            break
        u = _uniforms([key, rnd], start, n)
        p = _host(pot) if is_torch(pot) else np.asarray(pot)
        pick = np.flatnonzero(u < ell * p.astype(np.float64) / phi)
        counts = _host(comm.allgather(np.array([float(len(pick))])))[:, 0].astype(np.int64)
        m = int(counts.max())
        if m == 0:
            continue
        buf = comm.zeros(m, d)
        if len(pick):
            buf[: len(pick)] = comm.buf(xp[eng.index(pick)])
        g = comm.allgather(buf)  # (world, m, d)
        new = _to_engine(eng, comm.torch.cat([g[r, : counts[r]] for r in range(comm.world)]), xp)
        cands.append(new)
        dist_new, _ = eng.assign(xp, new, metric=metric, x_sq=x_sq, chunk_size=chunk_size,
                                 precision=precision)
        closest = eng.minimum(closest, dist_new)
    cand = _cat(cands)
    if cand.shape[0] < k:  # fewer distinct points than k: top up with random points
        extra = rng.choice(n_total, size=k - cand.shape[0], replace=False)
        cand = _cat([cand, _rows(comm, eng, xp, extra, start)])
    m = cand.shape[0]
    _, lab = eng.assign(xp, cand, metric=metric, x_sq=x_sq, chunk_size=chunk_size,
                        precision=precision)
    _, cw = eng.cluster_sums(xp, lab, w, m)
    (cw,) = comm.allreduce(cw)  # (m,) weight of the points nearest to each candidate
    seed = int(rng.integers(2**32))
    cand_h = _host(cand) if is_torch(cand) else np.asarray(cand)
    chosen = _kmeans_plusplus_one(cand_h, k, seed=seed, weights=_host(cw))
    return _to_engine(eng, chosen, xp)


# --------------------------------------------------------------------------------------
# The Lloyd loop over ranks
# --------------------------------------------------------------------------------------


def _update(eng, sums, counts, c, metric):
    """New centroids from global sums (a cluster left empty keeps its centroid)."""
    alive = ~_dead(eng, sums, counts, metric)
    if metric == "cosine":
        new_c = eng.normalize_rows(eng.where_rows(alive, sums, c))
    else:
        new_c = sums / eng.where(alive, counts, counts * 0 + 1)[:, None]
    return eng.where_rows(alive, new_c, c)


def _relocate(comm, eng, xp, w, dist, labels, sums, counts, empty, n_empty, start):
    """Empty clusters take the globally farthest points, exactly as ``cl.kmeans`` does.

    Every rank proposes its ``n_empty`` farthest points (distance, global index, label,
    weight, row); one all-gather gives every rank all proposals; the global top
    ``n_empty`` (farther first, ties to the lower global index) move, leaving the sums of
    the clusters they were in. Points at distance 0 never move.
    """
    want, (n, d) = n_empty, xp.shape
    m = min(want, n)
    buf = comm.zeros(want, d + 4)
    buf[:, 0] = -1.0  # padding: never farther than a real point
    if m:
        idx = eng.topk(dist, m)
        buf[:m, 0] = comm.buf(dist[idx])
        buf[:m, 1] = comm.buf(eng.to_host(idx) + start)
        buf[:m, 2] = comm.buf(labels[idx])
        buf[:m, 3] = 1.0 if w is None else comm.buf(w[idx])
        buf[:m, 4:] = comm.buf(xp[idx])
    g = _host(comm.allgather(buf)).reshape(-1, d + 4)
    top = g[np.lexsort((g[:, 1], -g[:, 0]))[:want]]  # farthest first, lower index on ties
    move = top[:, 0] > 0
    wt = _to_engine(eng, np.where(move, top[:, 3], 0.0), xp)  # (want,) weight moved
    xw = _to_engine(eng, top[:, 4:], xp) * wt[:, None]  # (want, d) weighted rows that move
    lab = eng.index(top[:, 2].astype(np.int64))
    sums = eng.add_rows(sums, lab, -xw)  # they leave their old clusters
    counts = eng.add_rows(counts, lab, -wt)
    j = (eng.cumsum(empty) - 1) % want  # (k,) the far point each empty cluster takes
    take = empty & eng.from_input(move)[j]
    sums = eng.where_rows(take, xw[j], sums)
    counts = eng.where(take, wt[j], counts)
    return sums, counts, int(move.sum())


def _lloyd(comm, eng, xp, w, c, *, max_iter, tol_abs, metric, x_sq, chunk_size, precision,
           start):
    """Lloyd iterations over all ranks from centroids ``c`` (identical on every rank).

    Each iteration makes one all-reduce: the local (k, d) sums and (k,) counts of the
    current labels, the local objective of those labels (the previous iteration's, so the
    history arrives one iteration late) and a stop flag. The last all-reduce carries only
    the final objective. Empty clusters add one all-gather in the iterations that have
    them. Returns (c, dist, labels, obj, history) like ``cl.kmeans``'s loop.
    """
    k = c.shape[0]
    t_start = eng.mark()
    dist, labels = eng.assign(xp, c, metric=metric, x_sq=x_sq, chunk_size=chunk_size,
                              precision=precision)
    obj = eng.total(dist, w)
    objs, stats, marks, comms = [], [], [], []
    it, stop = 0, max_iter == 0
    while True:
        c_before = len(comm.spans)
        if stop:  # only the objective travels
            sums, counts = c * 0, c[:, 0] * 0
        else:
            sums, counts = eng.cluster_sums(xp, labels, w, k)  # (k, d), (k,) local
        g_sums, g_counts, g_obj, g_stop = comm.allreduce(sums, counts, obj, float(stop))
        sums, counts = _to_engine(eng, g_sums, c), _to_engine(eng, g_counts, c)
        obj_g = float(_host(g_obj)) if comm.device.type == "cpu" else g_obj
        if it:
            objs.append(obj_g)  # the objective after iteration it - 1
        empty = _dead(eng, sums, counts, metric)
        new_c = _update(eng, sums, counts, c, metric)
        shift = eng.row_sqnorms(new_c - c).sum()
        n_stop, n_empty, shift_v = eng.scalars(g_stop, empty.sum(), shift)  # the one wait
        if n_stop:
            if int(n_stop) != comm.world:
                raise RuntimeError(
                    f"ranks disagree on when to stop ({int(n_stop)} of {comm.world} stopped); "
                    "every rank must run the same clusterlab version with the same arguments"
                )
            final = obj_g
            break
        n_split = 0
        if n_empty:
            sums, counts, n_split = _relocate(comm, eng, xp, w, dist, labels, sums, counts,
                                              empty, int(n_empty), start)
            new_c = _update(eng, sums, counts, c, metric)
            (shift_v,) = eng.scalars(eng.row_sqnorms(new_c - c).sum())
        imbalance = (counts * counts).sum() * k / counts.sum() ** 2
        c = new_c
        dist, labels = eng.assign(xp, c, metric=metric, x_sq=x_sq, chunk_size=chunk_size,
                                  precision=precision)
        obj = eng.total(dist, w)
        stats.append((imbalance, n_split, shift_v))
        marks.append(eng.mark())
        comms.append((c_before, len(comm.spans)))
        it += 1
        stop = it >= max_iter or (tol_abs > 0 and shift_v <= tol_abs)
    values = [float(_host(v)) if is_torch(v) else float(v) for v in [final, *objs]]
    imb = eng.scalars(*[s[0] for s in stats]) if stats else []
    times = eng.seconds(t_start, marks)
    comms = [comm.seconds(a, b) for a, b in comms]
    history = [
        {"obj": o, "time": t, "imbalance": i, "n_split": int(ns), "shift": float(sh), "comm": cs}
        for o, t, i, (_, ns, sh), cs in zip(values[1:], times, imb, stats, comms, strict=True)
    ]
    return c, dist, labels, values[0], history


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------


def kmeans(
    x_local,
    k,
    *,
    group=None,
    init="k-means||",
    n_init=1,
    max_iter=100,
    tol=1e-4,
    metric="euclidean",
    weights=None,
    seed=0,
    backend="auto",
    chunk_size=None,
    precision="highest",
):
    """k-means over the shards of every rank of a torch.distributed process group.

    Call it on every rank of an initialised group (``torch.distributed.init_process_group``,
    e.g. under ``torchrun``), each rank with its own rows of the data. The arguments are
    :func:`clusterlab.kmeans`'s; ``k``, ``init`` (its kind), ``n_init``, ``max_iter``,
    ``tol``, ``metric``, ``seed`` and whether ``weights`` are given must be the same on
    every rank.

    Parameters
    ----------
    x_local : array_like or torch.Tensor, shape (n_local, d)
        This rank's rows. Shards may differ in size; one may be empty, shape (0, d).
        Every shard has the same ``d`` and dtype. With NCCL, pass CUDA tensors on this
        rank's device.
    k : int
        Number of clusters, ``1 <= k <=`` the total number of points.
    group : torch.distributed.ProcessGroup, optional
        The group to work over (default: the whole world).
    init : {"k-means||", "k-means++", "random"} or array of shape (k, d)
        ``"k-means||"`` (the default): parallel oversampling, then a weighted k-means++
        on the candidates (see :func:`_init_parallel`). ``"k-means++"``: exact greedy
        k-means++ (two small collectives per centre: fine for k up to a few thousand).
        ``"random"``: k distinct points (with weights, the weights are gathered to draw
        them). An array: rank 0's is broadcast to every rank (the others' values are not
        used, but every rank passes an array).
    n_init, max_iter, tol, metric, weights, seed, backend, chunk_size, precision
        As in :func:`clusterlab.kmeans`. ``weights`` has shape (n_local,). ``tol`` is
        relative to the global variance; the stop decision is the same on every rank.

    Returns
    -------
    KMeansResult
        ``centroids`` (k, d), ``inertia``, ``n_iter`` and ``history`` are global and
        the same on every rank; ``labels`` (n_local,) are this rank's. Each history entry
        has ``comm``: seconds spent in collectives in that iteration (waiting for the
        slowest rank included).

    Raises
    ------
    RuntimeError
        No initialised process group (call ``init_process_group``, or use ``cl.kmeans``).
    ValueError, TypeError
        Bad input on any rank (reported on every rank, naming the rank); different ``d``
        or dtype across ranks; ``k`` larger than the total number of points; arguments
        that differ across ranks.

    Examples
    --------
    Under ``torchrun --nproc-per-node 2 script.py``::

        import torch.distributed as dist
        import clusterlab.distributed as cld
        dist.init_process_group("gloo")
        res = cld.kmeans(x_local, 8, seed=0)   # every rank: the same res.centroids
    """
    comm = _Comm(group)
    info = {"error": None}
    x = given = we = None
    try:
        x = _check_shard(x_local)
        info.update(n=int(x.shape[0]), d=int(x.shape[1]), dtype=str(_np_dtype(x)))
        info["k"] = check_int(k, "k", low=1)
        info["metric"] = check_choice(metric, "metric", METRICS)
        info["n_init"] = check_count(n_init, "n_init", low=1)
        info["max_iter"] = check_count(max_iter, "max_iter", low=0)
        info["tol"] = check_float(tol, "tol", nonnegative=True)
        info["seed"] = check_seed(seed)
        if chunk_size is not None:
            chunk_size = check_rows(chunk_size, "chunk_size", max(1, x.shape[0]))
        we = _check_local_weights(weights, x)
        info["weighted"] = we is not None
        info["wsum"] = _host_sum(we) if we is not None else float(x.shape[0])
        if isinstance(init, str):
            info["init"] = check_choice(init, "init", INITS)
        else:
            info["init"] = "array"
            given = check_centroids(init, x, info["k"], name="init")
        info["mag"] = _scale.magnitude(x)
        get_engine(backend, x, precision)  # refuse a bad backend / precision everywhere
    except Exception as exc:  # reported on every rank, so that no rank waits for this one
        info["error"] = (type(exc).__name__, str(exc))
    infos = comm.objects(info)
    if all("d" in i for i in infos):  # shards of another shape first: the likely cause
        _agree(comm, infos, ["d", "dtype"])
    _raise_everywhere(comm, infos)
    _agree(comm, infos, ["k", "init", "metric", "n_init", "max_iter", "tol", "seed", "weighted"])
    k, metric, n_init = info["k"], info["metric"], info["n_init"]
    sizes = [i["n"] for i in infos]
    n_total = sum(sizes)
    if k > n_total:
        raise ValueError(
            f"k={k} is larger than the total number of points N={n_total} "
            f"(shards of {sizes} rows on ranks 0..{comm.world - 1})"
        )
    wtot = [i["wsum"] for i in infos] if info["weighted"] else None
    if wtot is not None and not sum(wtot) > 0:
        raise ValueError("weights are all zero on every rank; at least one point needs a positive weight")
    if given is not None and n_init > 1:
        warnings.warn(f"init is an array, so one run is made (n_init={n_init} ignored)",
                      stacklevel=2)
        n_init = 1

    f = _scale.factor(x, max(i["mag"] for i in infos)) if metric == "euclidean" else 1.0
    if f != 1.0:  # far from 1: cluster x * 2**e (exact) and scale the results back
        x, given = x * f, None if given is None else given * f
    res = _fit(comm, x, we, given, k, init=info["init"], n_init=n_init,
               max_iter=info["max_iter"], tol=info["tol"], metric=metric, seed=info["seed"],
               backend=backend, chunk_size=chunk_size, precision=precision, sizes=sizes,
               wtot=wtot)
    if f != 1.0:
        for h in res.history:
            h["obj"], h["shift"] = h["obj"] / f / f, h["shift"] / f / f
        res.centroids = res.centroids / f
        res.inertia = _scale.unscale_squares(res.inertia, f, "the inertia")
    return res


def _fit(comm, x, w, given, k, *, init, n_init, max_iter, tol, metric, seed, backend,
         chunk_size, precision, sizes, wtot):
    eng = get_engine(backend, x, precision)
    we = None if w is None else eng.from_input(w)
    start = int(sum(sizes[: comm.rank]))
    n_total, d = int(sum(sizes)), x.shape[1]
    xe = eng.from_input(x)
    if metric == "euclidean":
        # The global (weighted) mean, rounded as cl.kmeans rounds it: sums / counts in x's dtype.
        s, cnt = comm.allreduce(_sum64(xe, we), np.array([_host_sum(we) if we is not None
                                                            else float(x.shape[0])]))
        offset = _to_engine(eng, s, xe) / _to_engine(eng, cnt, xe)[0]
        xp, offset, x_sq = eng.centre(xe, offset=offset)
    else:
        xp, offset, x_sq = _prepare(eng, x, we, metric, name="x_local")
    # scikit-learn's tolerance on the global (unweighted) per-feature variance
    sq = eng.row_sqnorms(xp) if x_sq is None else x_sq
    tot_sq, tot_x = comm.allreduce(np.array([_host_sum(sq)]), _sum64(xp))
    mean_sq = float(tot_sq[0]) / n_total
    centre_sq = 0.0 if (offset is not None and we is None) else float(((tot_x / n_total) ** 2).sum())
    tol_abs = tol * max(mean_sq - centre_sq, 0.0) / d

    rng = np.random.default_rng(seed)
    best = None
    for _ in range(n_init):
        if given is not None:
            c0 = _to_engine(eng, comm.broadcast(given if comm.rank == 0 else np.zeros((k, d))),
                            xe)
            c0 = _frame(eng, c0, offset, metric)
        elif init == "k-means||":
            c0 = _init_parallel(comm, eng, xp, we, k, rng, metric, x_sq, sizes, wtot, start,
                                chunk_size, precision)
        elif init == "k-means++":
            c0 = _init_plusplus(comm, eng, xp, we, k, rng, metric, x_sq, sizes, wtot, start)
        else:
            c0 = _init_random(comm, eng, xp, we, k, rng, sizes, start)
        run = _lloyd(comm, eng, xp, we, c0, max_iter=max_iter, tol_abs=tol_abs, metric=metric,
                     x_sq=x_sq, chunk_size=chunk_size, precision=precision, start=start)
        if best is None or run[3] < best[3]:
            best = run
    c, _, labels, obj, history = best
    return KMeansResult(
        centroids=eng.to_output(_unframe(c, offset), x),
        labels=eng.to_output(labels, x),
        inertia=float(obj),
        n_iter=len(history),
        history=history,
    )


def assign(x_local, centroids, *, metric="euclidean", chunk_size=None, backend="auto",
           precision="highest"):
    """Nearest centroid of each of this rank's points: the prediction step (no collective).

    Every rank already holds the global centroids (from :func:`kmeans`), so predicting
    needs no communication; an empty shard gives empty results.

    Parameters
    ----------
    x_local : array_like or torch.Tensor, shape (n_local, d)
    centroids : array_like or torch.Tensor, shape (k, d)
    metric, chunk_size, backend, precision
        As in :func:`clusterlab.assign`.

    Returns
    -------
    dist : array, shape (n_local,)
        Squared distance to the nearest centroid (``1 - cos`` for cosine).
    labels : array, shape (n_local,), int64
    """
    x = _check_shard(x_local)
    if x.shape[0]:
        return _assign_one(x, centroids, metric=metric, chunk_size=chunk_size,
                           backend=backend, precision=precision)
    check_centroids(centroids, x, name="centroids")
    check_choice(metric, "metric", METRICS)
    if is_torch(x):
        torch = _torch()
        return (torch.empty(0, dtype=x.dtype, device=x.device),
                torch.empty(0, dtype=torch.int64, device=x.device))
    return np.empty(0, dtype=x.dtype), np.empty(0, dtype=np.int64)


def meanshift_step(y_local, x_local, bandwidth, *, group=None, kernel="gaussian",
                   chunk_size=None):
    """One mean-shift step of this rank's points over the data of every rank.

    Each rank's shard of the data is broadcast in turn (one shard in memory at a time);
    each rank accumulates, for its own points ``y_local``, the kernel-weighted sums over
    that shard with a running maximum (an online softmax, as flash attention), so the
    result equals one step over the concatenated data. Collectives: one all-gather of
    the shard sizes, then one broadcast per rank.

    Parameters
    ----------
    y_local : array_like or torch.Tensor, shape (m_local, d)
        The points this rank moves (often its own data, or where they have moved to).
    x_local : array_like or torch.Tensor, shape (n_local, d)
        This rank's shard of the data (may be empty).
    bandwidth : float
        Kernel width ``h`` (Gaussian standard deviation, or flat radius).
    group : torch.distributed.ProcessGroup, optional
    kernel : {"gaussian", "flat"}
    chunk_size : int, optional
        Points of ``y_local`` per (rows, n_shard) block (default: a 4 MiB block).

    Returns
    -------
    array, shape (m_local, d)
        The shifted points, same kind as ``y_local``. A point with no data in its flat
        window stays where it is.
    """
    comm = _Comm(group)
    torch = comm.torch
    info = {"error": None}
    try:
        y = _check_shard(y_local, "y_local")
        x = _check_shard(x_local, "x_local")
        if y.shape[1] != x.shape[1]:
            raise ValueError(f"y_local has d={y.shape[1]} but x_local has d={x.shape[1]}")
        h = check_float(bandwidth, "bandwidth", positive=True)
        check_choice(kernel, "kernel", KERNELS)
        info.update(d=int(x.shape[1]), dtype=str(_np_dtype(x)), n=int(x.shape[0]),
                    kernel=kernel, h=h)
    except Exception as exc:  # reported on every rank
        info["error"] = (type(exc).__name__, str(exc))
    infos = comm.objects(info)
    _raise_everywhere(comm, infos)
    _agree(comm, infos, ["d", "dtype", "kernel", "h"])
    sizes = [i["n"] for i in infos]
    yt = y if is_torch(y) else torch.from_numpy(np.ascontiguousarray(y))
    xt = x if is_torch(x) else torch.from_numpy(np.ascontiguousarray(x))
    dev = comm.device if comm.device.type == "cuda" else yt.device
    yt, xt = yt.to(dev), xt.to(dev)
    m, d = yt.shape
    run_max = torch.full((m,), -torch.inf, dtype=yt.dtype, device=dev)
    tot = torch.zeros(m, dtype=yt.dtype, device=dev)
    num = torch.zeros(m, d, dtype=yt.dtype, device=dev)
    h2 = h * h
    y_sq = (yt * yt).sum(1)
    for r in range(comm.world):
        nr = sizes[r]
        if nr == 0:
            continue
        shard = torch.zeros(nr, d, dtype=xt.dtype, device=comm.device)
        if r == comm.rank:
            shard.copy_(xt)
        src = r if group is None else comm.dist.get_global_rank(group, r)
        comm._timed(lambda s=shard, src=src: comm.dist.broadcast(s, src=src, group=group))
        shard = shard.to(dev)
        s_sq = (shard * shard).sum(1)
        rows = check_rows(chunk_size, "chunk_size", max(m, 1)) or max(1, (4 << 20) // (8 * nr))
        for s in range(0, m, rows):
            d2 = torch.addmm(s_sq[None, :], yt[s:s + rows], shard.T, beta=1.0, alpha=-2.0)
            d2.add_(y_sq[s:s + rows, None]).clamp_min_(0.0)  # (rows, nr)
            if kernel == "gaussian":
                logits = d2.mul_(-0.5 / h2)
                new_max = torch.maximum(run_max[s:s + rows], logits.amax(1))
                scale = torch.exp(run_max[s:s + rows] - new_max)  # 0 on the first shard
                wts = torch.exp((logits - new_max[:, None]).clamp_(min=-80.0))
                tot[s:s + rows] = tot[s:s + rows] * scale + wts.sum(1)
                num[s:s + rows] = num[s:s + rows] * scale[:, None] + wts @ shard
                run_max[s:s + rows] = new_max
            else:
                wts = (d2 <= h2).to(yt.dtype)
                tot[s:s + rows] += wts.sum(1)
                num[s:s + rows] += wts @ shard
    ok = (tot > 0)[:, None]
    out = torch.where(ok, num / tot.clamp_min(1e-30)[:, None], yt)
    if is_torch(y_local):
        return out.to(y.device)
    return out.cpu().numpy()


# --------------------------------------------------------------------------------------
# Running a function on N local processes (tests, benchmark, notebooks)
# --------------------------------------------------------------------------------------


def _child(rank, fn, world, backend, threads, timeout, out_dir, args):
    torch = _torch()
    dist = torch.distributed
    if threads:
        torch.set_num_threads(threads)
    if backend == "nccl":
        torch.cuda.set_device(rank % torch.cuda.device_count())
    # a file store in the run's own fresh folder: no port to pick, so no other process can
    # take it between the choice and the bind
    store = (Path(out_dir) / "store").as_uri()
    dist.init_process_group(backend, init_method=store, rank=rank,
                            world_size=world, timeout=timedelta(seconds=timeout))
    try:
        out = fn(rank, world, *args)
        with open(Path(out_dir) / f"rank{rank}.pkl", "wb") as fh:
            pickle.dump(out, fh)
    finally:
        dist.destroy_process_group()


def run_local(fn, nprocs, *args, backend="gloo", timeout=120.0, threads=None):
    """Run ``fn(rank, world, *args)`` on ``nprocs`` local processes joined in one group.

    Each process is spawned (a fresh interpreter: ``fn`` must be importable, i.e. defined
    in a module, not in a notebook cell), joins a group through a file store in a fresh
    temporary folder (no network port to choose), runs ``fn`` and returns its (picklable)
    result.

    Parameters
    ----------
    fn : callable
        ``fn(rank, world, *args)``, a module-level function.
    nprocs : int
        Number of processes.
    backend : {"gloo", "nccl"}
        ``"nccl"`` puts rank ``r`` on GPU ``r``.
    timeout : float
        Seconds for the whole run; a run that takes longer is killed (TimeoutError).
        Collectives time out after the same number of seconds.
    threads : int, optional
        torch threads per process (default: the CPU cores divided among the processes).

    Returns
    -------
    list
        ``fn``'s return value on each rank, indexed by rank.

    Raises
    ------
    RuntimeError
        A child failed: the message holds its traceback.
    TimeoutError
        The run took longer than ``timeout`` seconds.
    """
    torch = _torch()
    mp = torch.multiprocessing
    nprocs = check_int(nprocs, "nprocs", low=1)
    check_choice(backend, "backend", ("gloo", "nccl"))
    timeout = check_float(timeout, "timeout", positive=True)
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // nprocs)
    with tempfile.TemporaryDirectory(prefix="clusterlab-dist-") as out_dir:
        ctx = mp.start_processes(
            _child, args=(fn, nprocs, backend, threads, timeout, out_dir, args),
            nprocs=nprocs, join=False, start_method="spawn",
        )
        deadline = time.monotonic() + timeout
        try:
            while not ctx.join(timeout=max(0.1, min(1.0, deadline - time.monotonic()))):
                if time.monotonic() > deadline:
                    alive = [r for r, p in enumerate(ctx.processes) if p.is_alive()]
                    raise TimeoutError(
                        f"{nprocs} processes running {getattr(fn, '__name__', fn)} took more "
                        f"than {timeout:g} s; ranks still running: {alive}"
                    )
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as exc:
            raise RuntimeError(f"a child process failed:\n{exc}") from None
        finally:
            for p in ctx.processes:
                if p.is_alive():
                    p.kill()
                    p.join(5)
        out = []
        for r in range(nprocs):
            with open(Path(out_dir) / f"rank{r}.pkl", "rb") as fh:
                out.append(pickle.load(fh))
    return out


# --------------------------------------------------------------------------------------
# Scaling measurement (python -m clusterlab.bench --distributed N)
# --------------------------------------------------------------------------------------


def _scaling_worker(rank, world, path, k, iters, device, procs, repeat, cores):
    """Interleaved rounds: in each round, the first p ranks run k-means for each p in turn.

    One group per process count (``new_group`` of ranks 0..p-1); the other ranks wait at a
    barrier of the whole world meanwhile. CPU threads are divided as ``cores // p``.
    """
    torch = _torch()
    dist = torch.distributed
    x = np.load(path, mmap_mode="r")
    c0 = np.ascontiguousarray(x[:: max(1, len(x) // k)][:k])
    groups = {p: dist.new_group(list(range(p))) for p in procs}  # every rank, same order
    shards = {}
    for p in procs:
        if rank < p:
            bounds = np.linspace(0, len(x), p + 1).astype(np.int64)
            shards[p] = np.ascontiguousarray(x[bounds[rank]:bounds[rank + 1]])
            if device == "cuda":
                dev = torch.device("cuda", torch.cuda.current_device())
                shards[p] = torch.as_tensor(shards[p], device=dev)
    if device == "cuda":
        init = torch.as_tensor(c0, device=torch.device("cuda", torch.cuda.current_device()))
    else:
        init = c0
    out = {p: {"time": [], "comm": [], "n_local": len(shards[p]) if p in shards else 0}
           for p in procs}
    for rnd in range(repeat + 1):  # round 0 is a warm-up (JIT, allocator, connections)
        for p in procs:
            if rank < p:
                if device != "cuda":
                    torch.set_num_threads(max(1, cores // p))
                res = kmeans(shards[p], k, group=groups[p], init=init,
                             max_iter=iters if rnd else 1, tol=0.0)
                if rnd:
                    out[p]["time"].append(np.diff([0.0] + [h["time"] for h in res.history]).tolist())
                    out[p]["comm"].append([h["comm"] for h in res.history])
                    out[p]["inertia"] = res.inertia
                    out[p]["threads"] = torch.get_num_threads()
            dist.barrier()
    return out


def bench_scaling(n=200_000, d=32, k=64, procs=(1, 2, 4), iters=10, *, repeat=3, seed=0,
                  backend=None, cores=None, timeout=600.0):
    """Time per Lloyd iteration and the share spent in communication, by process count.

    The same data (``n`` points in ``d`` dimensions around ``k`` centres, float32) are
    cut into ``p`` equal shards for each ``p`` in ``procs``. ``max(procs)`` local
    processes are started once; in each of ``repeat`` rounds the first ``p`` of them run
    :func:`kmeans` on a group of their own, for each ``p`` in turn, from the same initial
    centroids for ``iters`` iterations (``tol=0``), after a warm-up round. Interleaving
    the rounds means a machine that slows down for a while slows every count alike. On
    CPUs (gloo) the ``cores`` are divided among the processes that run
    (``torch.set_num_threads(cores // p)``), so every count uses the same hardware; with
    NCCL each process has its own GPU.

    Parameters
    ----------
    n, d, k : int
        Data size and number of clusters.
    procs : sequence of int
        Process counts to measure.
    iters : int
        Timed iterations per run.
    repeat : int
        Rounds; the reported time is the median over rounds.
    seed : int
        Seed of the data.
    backend : {"gloo", "nccl"}, optional
        Default: NCCL when there are at least ``max(procs)`` CUDA devices, gloo otherwise.
    cores : int, optional
        CPU threads to divide among the processes (default: ``os.cpu_count()``).
    timeout : float
        Seconds allowed for the whole measurement.

    Returns
    -------
    list of dict
        One per process count: ``procs``, ``backend``, ``threads`` (per process),
        ``time_per_iter`` (seconds: the median over rounds of the median iteration of the
        slowest rank), ``spread`` (the fastest and slowest round's value), ``comm_share``
        (share of the time spent in the all-reduce on the rank that waited least, i.e.
        the transfer rather than waiting for a slower rank; median over rounds),
        ``speedup`` (relative to the first entry), ``n_local`` (shard sizes) and
        ``inertia`` (the same for every count).
    """
    torch = _torch()
    n = check_int(n, "n", low=1)
    d = check_int(d, "d", low=1)
    k = check_int(k, "k", low=1, high=n)
    iters = check_count(iters, "iters", low=1)
    repeat = check_count(repeat, "repeat", low=1)
    procs = [check_int(p, "procs", low=1) for p in procs]
    if not procs:
        raise ValueError("procs is empty: give at least one process count")
    if max(procs) > n:
        raise ValueError(f"procs={max(procs)} processes need at least as many points, n={n}")
    cores = check_int(cores, "cores", low=1) if cores is not None else (os.cpu_count() or 1)
    world = max(procs)
    be = backend or ("nccl" if torch.cuda.device_count() >= world else "gloo")
    check_choice(be, "backend", ("gloo", "nccl"))
    rng = np.random.default_rng(check_seed(seed))
    centres = rng.uniform(-10, 10, size=(k, d)).astype(np.float32)
    x = centres[rng.integers(k, size=n)] + rng.standard_normal((n, d), dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="clusterlab-scaling-") as tmp:
        path = os.path.join(tmp, "x.npy")
        np.save(path, x)
        del x
        ranks = run_local(_scaling_worker, world, path, k, iters,
                          "cuda" if be == "nccl" else "cpu", procs, repeat, cores,
                          backend=be, timeout=timeout, threads=max(1, cores // world))
    out = []
    for p in procs:
        rows = [r[p] for r in ranks[:p]]
        times = np.array([r["time"] for r in rows])  # (p, repeat, iters)
        comms = np.array([r["comm"] for r in rows])
        per_round = np.median(times.max(0), axis=1)  # the slowest rank's median iteration
        share = comms.min(0).sum(1) / np.maximum(times.max(0).sum(1), 1e-30)
        out.append({
            "procs": p, "backend": be, "threads": rows[0]["threads"],
            "time_per_iter": float(np.median(per_round)),
            "spread": (float(per_round.min()), float(per_round.max())),
            "comm_share": float(np.median(share)),
            "n_local": [r["n_local"] for r in rows], "inertia": rows[0]["inertia"],
        })
    for row in out:
        row["speedup"] = out[0]["time_per_iter"] / row["time_per_iter"]
    return out


# --------------------------------------------------------------------------------------
# Self-check for the lesson's exercise
# --------------------------------------------------------------------------------------


class _FakeGroup:
    """``world`` simulated ranks in threads, with an all-reduce that really waits for all.

    ``all_reduce(t)`` sums ``t`` in place over the simulated ranks, like
    ``torch.distributed.all_reduce``; the ranks' calls are matched in order, and a rank
    that waits for a call the others never make is reported as a deadlock.
    """

    def __init__(self, world, timeout=5.0):
        self.world, self.timeout = world, timeout
        self.barrier = threading.Barrier(world, timeout=timeout)
        self.slots = [None] * world
        self.calls = [0] * world
        self.lock = threading.Lock()

    def all_reduce_for(self, rank):
        torch = _torch()

        def all_reduce(t, op=None, group=None, async_op=False):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"all_reduce needs a torch tensor, got {type(t).__name__}")
            self.calls[rank] += 1
            self.slots[rank] = t.detach().clone()
            self.barrier.wait()
            shapes = {tuple(s.shape) for s in self.slots}
            if len(shapes) != 1:
                raise ValueError(f"the ranks all-reduced tensors of different shapes {sorted(shapes)}")
            total = torch.stack([s.to(t.dtype) for s in self.slots]).sum(0)
            self.barrier.wait()
            t.copy_(total)

        return all_reduce


def check_allreduce_update(fn, *, seed=0):
    """Check a learner's distributed k-means update step on simulated ranks.

    ``fn(sums, counts, centroids, all_reduce)`` gets one rank's local (k, d) cluster sums
    and (k,) counts (torch tensors), the current (k, d) centroids (the same on every
    rank), and an ``all_reduce(tensor)`` that behaves as ``torch.distributed.all_reduce``
    (sums the tensor in place over the ranks). It must return the new (k, d) global
    centroids; a cluster with no point anywhere keeps its centroid. The check runs it on
    3 simulated ranks (threads whose all-reduce really waits for the others; in the
    second case one rank has no point) and compares every rank's answer with the
    centroids of the concatenated data.

    Prints one line per case (``✓`` or ``✗`` and what is wrong) and returns True when
    every case passed; never raises.
    """
    torch = _torch()
    if not callable(fn):
        print(f"✗ check_allreduce_update: expected a function, got {type(fn).__name__}")
        return False
    rng = np.random.default_rng(seed)
    cases = [("3 ranks, uneven shards", [40, 7, 23], 4),
             ("an empty shard and an empty cluster", [0, 30, 12], 5)]
    passed = True
    for label, sizes, k in cases:
        d = 3
        c = torch.as_tensor(rng.normal(size=(k, d)))
        xs = [torch.as_tensor(rng.normal(size=(n, d))) for n in sizes]
        labs = [torch.as_tensor(rng.integers(k - 1 if "empty cluster" in label else k, size=n))
                for n in sizes]
        sums = [torch.zeros(k, d, dtype=torch.float64).index_add_(0, lb, x)
                for x, lb in zip(xs, labs, strict=True)]
        counts = [torch.bincount(lb, minlength=k).double() for lb in labs]
        tot_s, tot_c = sum(sums), sum(counts)
        want = torch.where((tot_c > 0)[:, None], tot_s / tot_c.clamp_min(1)[:, None], c)
        group = _FakeGroup(len(sizes))
        results, errors = [None] * len(sizes), [None] * len(sizes)

        def rank_main(r, group=group, sums=sums, counts=counts, c=c, results=results,
                      errors=errors):
            try:
                results[r] = fn(sums[r].clone(), counts[r].clone(), c.clone(),
                                group.all_reduce_for(r))
            except NotImplementedError:
                errors[r] = (0, "not written yet (the function raises NotImplementedError)")
            except threading.BrokenBarrierError:
                errors[r] = (2, f"rank {r} waited for an all-reduce that another rank did not "
                                "make (a deadlock: every rank must make the same calls in the "
                                "same order)")
            except Exception as exc:  # the learner's code failed: report, do not crash
                errors[r] = (1, f"rank {r} raised {type(exc).__name__}: {exc}")
            if errors[r]:
                group.barrier.abort()  # release the ranks waiting for this one

        threads = [threading.Thread(target=rank_main, args=(r,), daemon=True)
                   for r in range(len(sizes))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(group.timeout * 4)
        problem = min((e for e in errors if e), default=(None, None))[1]
        if problem is None and any(t.is_alive() for t in threads):
            problem = "a rank did not finish (a deadlock?)"
        if problem is None:
            for r, out in enumerate(results):
                if not isinstance(out, torch.Tensor) or tuple(out.shape) != (k, d):
                    shape = tuple(getattr(out, "shape", ()))
                    problem = f"rank {r} returned {type(out).__name__} of shape {shape}, expected ({k}, {d})"
                    break
                if not torch.allclose(out.double(), want, rtol=1e-6, atol=1e-9):
                    local = torch.where((counts[r] > 0)[:, None],
                                        sums[r] / counts[r].clamp_min(1)[:, None], c)
                    hint = (" — these are the rank's local means: all-reduce the sums and "
                            "counts first" if torch.allclose(out.double(), local) else "")
                    problem = f"rank {r}'s centroids differ from the global means{hint}"
                    break
        if problem is None and min(group.calls) == 0:
            problem = "no all_reduce was called"
        if problem:
            print(f"✗ check_allreduce_update — {label}: {problem}")
            passed = False
        else:
            n_calls = group.calls[0]
            print(f"✓ check_allreduce_update — {label} ({n_calls} all-reduce"
                  f"{'' if n_calls == 1 else 's'} per rank)")
    return passed

