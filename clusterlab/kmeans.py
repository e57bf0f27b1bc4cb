"""k-means: initialisation, one Lloyd loop over an engine, empty-cluster repair, results.

The loop is written once, against the small interface of :mod:`clusterlab.engines`;
the NumPy and torch engines (CPU or CUDA) supply the kernels.

Two details keep results right:

* **Precision.** Distances are computed as ``||x||^2 - 2 x.c + ||c||^2`` (one matrix
  product), which cancels badly for data far from the origin. The data are therefore
  centred once (``x - mean``) before any distance is computed, and the mean is added
  back to the returned centroids: data offset by 1e4 cluster exactly as centred data.
* **Empty clusters.** A cluster that loses all its points takes the point that is
  currently worst served (the largest squared distance to its centroid), and that point
  leaves the cluster it was in -- exactly scikit-learn's relocation. Unlike faiss's split
  of a large cluster with a small perturbation, this never increases the objective. A
  point already at distance 0 is never taken (duplicated initial centroids over
  duplicated points): that cluster stays empty and keeps its centroid, on every engine.
  Each relocation is counted in ``history[i]["n_split"]``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from clusterlab import _scale
from clusterlab._validate import (
    check_array,
    check_centroids,
    check_choice,
    check_count,
    check_float,
    check_k,
    check_rows,
    check_seed,
    check_weights,
)
from clusterlab.engines import get_engine

METRICS = ("euclidean", "cosine")
INITS = ("k-means++", "random")


@dataclass
class KMeansResult:
    """The result of :func:`kmeans`.

    Attributes
    ----------
    centroids : array, shape (k, d)
        Same kind as the input (NumPy in, NumPy out; torch in, torch out, same device).
        Unit rows for ``metric="cosine"``.
    labels : array, shape (n,), int64
        Index of the nearest centroid of each point, for the returned centroids.
    inertia : float
        The objective of the returned centroids and labels: the sum of (weighted)
        squared distances, or of ``1 - cos`` for ``metric="cosine"``.
    n_iter : int
        Number of Lloyd updates performed (in the best of the ``n_init`` runs).
    history : list of dict
        One dict per iteration, like faiss's ``iteration_stats``: ``obj`` (the objective
        after the iteration), ``time`` (seconds since the run started), ``imbalance``
        (``k * sum(n_j^2) / n^2``, 1 when all clusters have the same size), ``n_split``
        (empty clusters repaired in the iteration) and ``shift`` (sum of squared
        centroid moves).
    """

    centroids: object
    labels: object
    inertia: float
    n_iter: int
    history: list = field(default_factory=list)

    def __repr__(self) -> str:
        shape = tuple(self.centroids.shape)
        return (
            f"KMeansResult(centroids: {shape}, inertia={self.inertia:.6g}, "
            f"n_iter={self.n_iter})"
        )


# --------------------------------------------------------------------------------------
# Preparation shared by kmeans, assign and kmeans_plusplus
# --------------------------------------------------------------------------------------


def _prepare(eng, x, w, metric, name="x"):
    """Move validated data into the engine and into the frame distances are taken in.

    Returns ``(xp, offset, x_sq)``: centred data (Euclidean) or unit rows (cosine), the
    offset to add back to centroids (or ``None``), and the (n,) squared norms of ``xp``.
    """
    xe = eng.from_input(x)
    if metric == "cosine":
        zero = eng.to_host(eng.row_absmax(xe) <= 0)  # (norms of rows near 1e-30 underflow)
        if zero.any():
            i = int(np.flatnonzero(zero)[0])
            raise ValueError(
                f"{name} has {int(zero.sum())} row(s) of norm zero (first: row {i}); "
                "metric='cosine' is undefined for them"
            )
        xp = eng.normalize_rows(xe)
        return xp, None, None
    return eng.centre(xe, w)


def _frame(eng, c, offset, metric):
    """Put user centroids into the frame of the prepared data."""
    if metric == "cosine":
        sq = eng.to_host(eng.row_absmax(c) <= 0)
        if sq.any():
            raise ValueError(
                f"initial centroid {int(np.flatnonzero(sq)[0])} has norm zero; "
                "metric='cosine' needs non-zero centroids"
            )
        return eng.normalize_rows(c)
    return c - offset


def _unframe(c, offset):
    return c if offset is None else c + offset


# --------------------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------------------


def _kmeans_plusplus(eng, xp, k, w, rng, metric, x_sq, n_trials=None):
    """Greedy k-means++ (D^2 sampling with local trials), in the prepared frame.

    Each new centre is drawn with probability proportional to the (weighted) distance to
    the nearest centre chosen so far; of ``n_trials`` draws (``2 + log k``, as in
    Arthur & Vassilvitskii and scikit-learn) the one that lowers the potential most is
    kept. Costs O(n k d * n_trials); the random draws come from ``rng`` only.
    Returns the (k,) NumPy indices of the chosen points.
    """
    n = xp.shape[0]
    if n_trials is None:
        n_trials = 2 + int(math.log(k))
    # The first centre is drawn with probability proportional to the weight, in a way
    # that consumes the same random number with or without weights.
    cum_w = np.arange(1.0, n + 1) if w is None else np.cumsum(eng.to_host(w).astype(np.float64))
    first = min(int(np.searchsorted(cum_w, rng.random() * cum_w[-1], side="right")), n - 1)
    chosen = [eng.index([first])[0]]
    closest = eng.pairwise(xp, xp[first:first + 1], metric=metric, x_sq=x_sq)[:, 0]  # (n,)
    # Nothing below waits for the device: the draws are scaled by the total on the device
    # and the best candidate is picked there (k-means++ for k = 1000 on a GPU would
    # otherwise wait three times per centre).
    for _ in range(1, k):
        pot = closest if w is None else closest * w  # (n,)
        cum = eng.cumsum(pot)
        cand = eng.sample_cumulative(cum, rng.random(n_trials))  # (t,) candidate indices
        d_c = eng.pairwise(xp, xp[cand], metric=metric, x_sq=x_sq)  # (n, t)
        d_c = eng.minimum(d_c, closest[:, None])
        pots = (d_c if w is None else d_c * w[:, None]).sum(0)  # (t,)
        best = pots.argmin()  # 0-d, on the device
        closest = d_c[:, best]
        chosen.append(cand[best])
    return eng.to_host(eng.stack(chosen)).astype(np.int64)


def _random_init(eng, xp, k, w, rng):
    """k distinct points, drawn with probability proportional to their weight.

    As in :func:`kmeans_plusplus`, a weight is that many copies: a point of weight 1000
    among points of weight 1 is almost always drawn. Without weights, uniformly. When
    fewer than k points have a positive weight, they are all taken and the rest is drawn
    uniformly among the others.
    """
    n = xp.shape[0]
    if w is None:
        idx = rng.choice(np.arange(n), size=k, replace=False)
        return eng.copy(xp[eng.index(idx)])
    wh = eng.to_host(w).astype(np.float64)
    positive = np.flatnonzero(wh > 0)
    if len(positive) >= k:
        idx = rng.choice(n, size=k, replace=False, p=wh / wh.sum())
    else:
        rest = rng.choice(np.flatnonzero(wh <= 0), size=k - len(positive), replace=False)
        idx = np.concatenate([positive, rest])
    return eng.copy(xp[eng.index(idx)])


# --------------------------------------------------------------------------------------
# The Lloyd loop
# --------------------------------------------------------------------------------------


def _dead(eng, sums, counts, metric):
    """(k,) clusters without a centroid: no weight (or, cosine, a zero sum of directions)."""
    dead = counts <= 0
    if metric == "cosine":
        dead = dead | (eng.row_sqnorms(sums) <= 0)
    return dead


def _relocate(eng, xp, w, dist, labels, sums, counts, empty, n_empty, want):
    """Empty clusters take the points farthest from their centroids, as scikit-learn does.

    The j-th empty cluster (in index order) takes the j-th farthest point (unweighted
    squared distance to its current centroid); the point leaves the sums of the cluster
    it was in. A point already at distance 0 is never taken (nothing would improve), so
    that cluster stays empty and keeps its centroid. ``want`` far points are looked at
    (at least ``n_empty``, or a fixed number on a GPU, where ``n_empty`` stays on the
    device). Returns the new ``sums``, ``counts`` and the number of relocations (0-d).
    """
    worst = eng.topk(dist, want)  # (want,) farthest points first
    far = dist[worst]  # (want,)
    move = (eng.arange(want) < n_empty) & (far > 0)  # (want,) relocations made
    one = far * 0 + 1
    wt = eng.where(move, one if w is None else w[worst] * one, one * 0)  # (want,) weight moved
    xw = xp[worst] * wt[:, None]  # (want, d) weighted rows that move
    sums = eng.add_rows(sums, labels[worst], -xw)  # they leave their old clusters
    counts = eng.add_rows(counts, labels[worst], -wt)
    j = (eng.cumsum(empty) - 1) % want  # (k,) the far point each empty cluster takes
    take = empty & move[j]  # (k,)
    sums = eng.where_rows(take, xw[j], sums)
    counts = eng.where(take, wt[j], counts)
    return sums, counts, move.sum()


#: Empty clusters a GPU iteration can repair without asking the host how many there are.
#: A run that empties more clusters in one iteration is repeated with room for all k.
REPAIR_SLOTS = 32


def _lloyd(eng, xp, w, c, *, max_iter, tol_abs, metric, x_sq, chunk_size, precision,
           slots=None):
    """Lloyd iterations from centroids ``c``; returns (c, dist, labels, obj, history).

    Every iteration is an update (M-step, with empty-cluster repair) followed by an
    assignment (E-step), so the returned labels and objective always belong to the
    returned centroids.

    The loop waits for the device at most once per iteration (to test ``tol``) and not
    at all with ``tol=0``: the repair runs on the device, the history stays there until
    the end, and iteration times come from device events. The i-th empty cluster (in
    index order) moves onto the i-th worst-served point; on a GPU the ``slots`` worst
    points are found every iteration without knowing how many clusters are empty, and a
    run that needed more than that is repeated with ``slots = k`` (same result, rarer).
    """
    k, n = c.shape[0], xp.shape[0]
    on_host = eng.device_type == "cpu"  # reading a number costs nothing there
    room = min(k, n)
    slots = min(room, REPAIR_SLOTS) if slots is None else slots
    c0 = c
    start = eng.mark()
    dist, labels = eng.assign(xp, c, metric=metric, x_sq=x_sq, chunk_size=chunk_size,
                              precision=precision)
    obj = eng.total(dist, w)  # 0-d, on the device
    stats, marks = [], []  # per iteration: (obj, imbalance, n_empty, shift), device marks
    for _ in range(max_iter):
        sums, counts = eng.cluster_sums(xp, labels, w, k)  # (k, d), (k,)
        empty = _dead(eng, sums, counts, metric)  # (k,)
        n_empty = empty.sum()
        want = int(eng.scalars(n_empty)[0]) if on_host else slots
        n_split = n_empty * 0
        if want:
            sums, counts, n_split = _relocate(eng, xp, w, dist, labels, sums, counts, empty,
                                              n_empty, want)
        alive = ~_dead(eng, sums, counts, metric)
        if metric == "cosine":
            new_c = eng.normalize_rows(eng.where_rows(alive, sums, c))
        else:
            new_c = sums / eng.where(alive, counts, counts * 0 + 1)[:, None]
        new_c = eng.where_rows(alive, new_c, c)  # a cluster left empty keeps its centroid
        imbalance = (counts * counts).sum() * k / counts.sum() ** 2
        shift = eng.row_sqnorms(new_c - c).sum()
        c = new_c
        dist, labels = eng.assign(xp, c, metric=metric, x_sq=x_sq, chunk_size=chunk_size,
                                  precision=precision)
        obj = eng.total(dist, w)
        stats.append((obj, imbalance, n_split, n_empty, shift))
        marks.append(eng.mark())
        if tol_abs > 0 and eng.scalars(shift)[0] <= tol_abs:  # the iteration's one wait
            break
    values = eng.scalars(obj, *[v for row in stats for v in row])  # one transfer
    obj, rows = values[0], [values[1 + 5 * i:6 + 5 * i] for i in range(len(stats))]
    if not on_host and slots < room and any(r[3] > slots for r in rows):
        return _lloyd(eng, xp, w, c0, max_iter=max_iter, tol_abs=tol_abs, metric=metric,
                      x_sq=x_sq, chunk_size=chunk_size, precision=precision, slots=room)
    history = [
        {"obj": o, "time": t, "imbalance": imb, "n_split": int(ns), "shift": sh}
        for (o, imb, ns, _, sh), t in zip(rows, eng.seconds(start, marks), strict=True)
    ]
    return c, dist, labels, obj, history


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------


def kmeans(
    x,
    k,
    *,
    init="k-means++",
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
    """Cluster the rows of ``x`` into ``k`` groups with Lloyd's algorithm.

    Parameters
    ----------
    x : array_like or torch.Tensor, shape (n, d)
        Data. float32 and float64 are kept; integers and float16 are upcast.
    k : int
        Number of clusters, ``1 <= k <= n``.
    init : {"k-means++", "random"} or array of shape (k, d)
        Greedy k-means++ (D^2 sampling), k distinct random points (drawn in proportion
        to ``weights``: a weight is that many copies), or given centroids.
        With given centroids only one run is made (``n_init`` is ignored, with a warning).
    n_init : int
        Number of runs from different initialisations; the lowest inertia is kept.
    max_iter : int
        Maximum number of Lloyd iterations per run (0 returns the initial centroids).
    tol : float
        Stop when the sum of squared centroid moves is at most ``tol`` times the mean
        per-feature variance of ``x`` (scikit-learn's rule). ``tol=0`` runs exactly
        ``max_iter`` iterations, as benchmarks need.
    metric : {"euclidean", "cosine"}
        ``"cosine"`` is spherical k-means: rows are compared by angle, centroids have
        unit norm and the inertia is the sum of ``1 - cos``.
    weights : array_like, shape (n,), optional
        Non-negative sample weights (not all zero).
    seed : int
        Seed of all random choices; the same seed gives the same result.
    backend : {"auto", "numpy", "torch", "keops", "triton"}
        Engine; ``"auto"`` uses the fused Triton kernels for CUDA tensors when they
        compile there, torch otherwise (NumPy when torch is missing).
    chunk_size : int, optional
        Rows per block of the (n, k) distance matrix; by default sized from a memory
        budget (:data:`clusterlab.engines.base.BLOCK_BUDGET`). The Triton engine stores
        no such block and ignores it.
    precision : {"highest", "high", "medium"}
        Precision of the point-centroid products for float32 data (torch's names):
        ``"highest"`` IEEE float32 (the default); ``"high"`` TF32 (10-bit mantissa
        products, float32 sums: several times faster on recent NVIDIA GPUs, no change
        on a CPU); ``"medium"`` bf16 inputs (8-bit mantissa) with float32 sums.
        Lower precision can only swap the labels of points nearly equidistant from two
        centroids; distances, centroids and inertia are still computed in float32 from
        those labels. The torch engine emulates ``"medium"`` (same numbers, no speed-up),
        the Triton engine runs it on tensor cores; NumPy and KeOps offer ``"highest"``
        only. float64 data are always computed in float64.

    Returns
    -------
    KMeansResult
        ``centroids`` (k, d), ``labels`` (n,), ``inertia``, ``n_iter``, ``history``.

    Examples
    --------
    >>> import clusterlab as cl
    >>> x, y, centers = cl.data.make_six_blobs(seed=0)
    >>> res = cl.kmeans(x, 6, seed=0)
    >>> res.centroids.shape
    (6, 2)
    """
    x = check_array(x, "x")
    n = x.shape[0]
    k = check_k(k, n)
    metric = check_choice(metric, "metric", METRICS)
    n_init = check_count(n_init, "n_init", low=1)
    max_iter = check_count(max_iter, "max_iter", low=0)
    tol = check_float(tol, "tol", nonnegative=True)
    seed = check_seed(seed)
    if chunk_size is not None:
        chunk_size = check_rows(chunk_size, "chunk_size", n)
    w = check_weights(weights, x)
    given = None
    if isinstance(init, str):
        check_choice(init, "init", INITS)
    else:
        given = check_centroids(init, x, k, name="init")
        if n_init > 1:
            warnings.warn(
                f"init is an array, so one run is made (n_init={n_init} ignored)",
                stacklevel=2,
            )
            n_init = 1
    f = _scale.factor(x) if metric == "euclidean" else 1.0  # (cosine rows scale themselves)
    if f != 1.0:  # far from 1: cluster x * 2**e (exact) and scale the results back
        res = kmeans(
            x * f, k, init=init if given is None else given * f, n_init=n_init,
            max_iter=max_iter, tol=tol, metric=metric, weights=w, seed=seed,
            backend=backend, chunk_size=chunk_size, precision=precision,
        )
        for h in res.history:
            h["obj"], h["shift"] = h["obj"] / f / f, h["shift"] / f / f
        res.centroids = res.centroids / f
        res.inertia = _scale.unscale_squares(res.inertia, f, "the inertia")
        return res

    eng = get_engine(backend, x, precision)
    we = None if w is None else eng.from_input(w)
    xp, offset, x_sq = _prepare(eng, x, we, metric)
    # scikit-learn's tolerance: tol times the mean per-feature variance.
    sq = eng.row_sqnorms(xp) if x_sq is None else x_sq  # (n,)
    if offset is not None and we is None:
        (mean_sq,) = eng.scalars(sq.mean())  # xp is centred on its own mean
        centre_sq = 0.0
    else:
        (mean_sq, centre_sq) = eng.scalars(sq.mean(), (eng.mean_rows(xp) ** 2).sum())
    tol_abs = tol * max(mean_sq - centre_sq, 0.0) / x.shape[1]

    rng = np.random.default_rng(seed)
    best = None
    for _ in range(n_init):
        if given is not None:
            c0 = _frame(eng, eng.from_input(given), offset, metric)
        elif init == "k-means++":
            c0 = eng.copy(xp[eng.index(_kmeans_plusplus(eng, xp, k, we, rng, metric, x_sq))])
        else:
            c0 = _random_init(eng, xp, k, we, rng)
        run = _lloyd(
            eng, xp, we, c0, max_iter=max_iter, tol_abs=tol_abs, metric=metric,
            x_sq=x_sq, chunk_size=chunk_size, precision=precision,
        )
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


def assign(x, centroids, *, metric="euclidean", chunk_size=None, backend="auto",
           precision="highest"):
    """Nearest centroid of every point, computed in blocks (no (n, k, d) tensor).

    Parameters
    ----------
    x : array_like or torch.Tensor, shape (n, d)
    centroids : array_like or torch.Tensor, shape (k, d)
        On the same device as ``x``.
    metric : {"euclidean", "cosine"}
    chunk_size : int, optional
        Rows per (rows, k) block; by default sized from a memory budget.
    backend : {"auto", "numpy", "torch", "keops", "triton"}
    precision : {"highest", "high", "medium"}
        Product precision for float32 data (see :func:`kmeans`); the returned distance
        is computed in float32 for the chosen centroid whatever the precision.

    Returns
    -------
    dist : array, shape (n,)
        Squared Euclidean distance to the nearest centroid (as faiss returns), or
        ``1 - cos`` for ``metric="cosine"``.
    labels : array, shape (n,), int64
        Index of the nearest centroid.
    """
    x = check_array(x, "x")
    c = check_centroids(centroids, x, name="centroids")
    metric = check_choice(metric, "metric", METRICS)
    if chunk_size is not None:
        chunk_size = check_rows(chunk_size, "chunk_size", x.shape[0])
    m = _scale.magnitude(x) if metric == "euclidean" else 1.0
    f = _scale.factor(x, m)
    if f != 1.0:  # far from 1: work on x * 2**e (exact) and scale the distances back
        dist, labels = assign(x * f, c * f, metric=metric, chunk_size=chunk_size,
                              backend=backend, precision=precision)
        return _scale.unscale_squares(dist, f), labels
    eng = get_engine(backend, x, precision)
    ce = eng.from_input(c)
    if metric == "cosine":
        xp, _, x_sq = _prepare(eng, x, None, metric)
        cp = _frame(eng, ce, None, metric)
    else:
        # Centre on the centroids' mean (cheap: k rows) so distances keep their digits,
        # kept inside the data's range: a centroid far away must not carry the frame off.
        xe = eng.from_input(x)
        centre = eng.mean_rows(ce)
        if eng.scalars((abs(centre) > m).sum())[0]:
            centre = eng.mean_rows(xe)
        xp, offset, x_sq = eng.centre(xe, offset=centre)
        cp = ce - offset
    dist, labels = eng.assign(xp, cp, metric=metric, x_sq=x_sq, chunk_size=chunk_size,
                              precision=precision)
    return eng.to_output(dist, x), eng.to_output(labels, x)


def kmeans_plusplus(x, k, *, seed=0, weights=None, backend="auto"):
    """Greedy k-means++ initial centroids.

    Parameters
    ----------
    x : array_like or torch.Tensor, shape (n, d)
    k : int
        Number of centroids, ``1 <= k <= n``.
    seed : int
        Seed of the D^2 draws.
    weights : array_like, shape (n,), optional
        Non-negative sample weights: a point of weight 2 counts as two copies.
    backend : {"auto", "numpy", "torch", "keops"}

    Returns
    -------
    centroids : array, shape (k, d)
        Rows of ``x``, same kind as ``x``.
    """
    x = check_array(x, "x")
    k = check_k(k, x.shape[0])
    seed = check_seed(seed)
    w = check_weights(weights, x)
    f = _scale.factor(x)
    if f != 1.0:  # rows of x * 2**e, scaled back: exactly rows of x
        return kmeans_plusplus(x * f, k, seed=seed, weights=w, backend=backend) / f
    eng = get_engine(backend, x)
    we = None if w is None else eng.from_input(w)
    xp, _, x_sq = _prepare(eng, x, we, "euclidean")
    idx = _kmeans_plusplus(eng, xp, k, we, np.random.default_rng(seed), "euclidean", x_sq)
    return eng.to_output(eng.copy(eng.from_input(x)[eng.index(idx)]), x)
