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

import itertools
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
    check_int,
    check_k,
    check_rows,
    check_seed,
    check_weights,
)
from clusterlab.engines import get_engine
from clusterlab.engines.base import chunk_rows

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


# --------------------------------------------------------------------------------------
# Variants: soft k-means by autograd, mini-batch k-means over a DataLoader
# --------------------------------------------------------------------------------------

OPTIMIZERS = ("adam", "sgd")
#: Default learning rates of :func:`soft_kmeans` (in units of the data's standard deviation).
SOFT_LR = {"adam": 0.05, "sgd": 0.5}
#: Temperatures :func:`soft_kmeans` takes: below, ``distance / T`` could overflow float32
#: (and it is hard k-means already); above, every centroid is the data's mean.
TEMPERATURES = (1e-12, 1e12)
#: Autograd keeps about this many (rows, k) tensors per block for the backward pass.
_AUTOGRAD_BLOCKS = 4


def _torch(what: str):
    """Import torch, or say that ``what`` needs it."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is part of the course environment
        raise ImportError(f"{what} needs PyTorch: pip install torch==2.13.0") from exc
    return torch


def _initial(eng, xp, k, w, rng, init, given, offset, x_sq):
    """Initial centroids in the prepared (centred) frame, exactly as :func:`kmeans` draws them."""
    if given is not None:
        return _frame(eng, eng.from_input(given), offset, "euclidean")
    if init == "k-means++":
        return eng.copy(xp[eng.index(_kmeans_plusplus(eng, xp, k, w, rng, "euclidean", x_sq))])
    return _random_init(eng, xp, k, w, rng)


def _check_init(init, x, k):
    """``None`` for a named init (checked), else the validated (k, d) array."""
    if isinstance(init, str):
        check_choice(init, "init", INITS)
        return None
    return check_centroids(init, x, k, name="init")


def _unscale_result(res, f):
    """Results of a run on ``x * f`` brought back to the units of ``x``."""
    for h in res.history:
        for key in ("obj", "inertia", "shift"):
            if key in h:
                h[key] = h[key] / f / f
    res.centroids = res.centroids / f
    res.inertia = _scale.unscale_squares(res.inertia, f, "the inertia")
    return res


def soft_kmeans(
    x,
    k,
    *,
    temperature=0.01,
    init="k-means++",
    max_iter=300,
    lr=None,
    optimizer="adam",
    tol=1e-7,
    seed=0,
    weights=None,
    chunk_size=None,
):
    """k-means as an optimisation: soft assignments, a loss, autograd and a torch optimizer.

    The centroids are a ``torch.nn.Parameter``; each step computes the soft k-means loss
    over all points (in blocks of rows), back-propagates it, and lets the optimizer move
    the centroids. The loss of a point is the *soft minimum* of its squared distances,

    .. math:: \\ell_i = -T \\log \\sum_j \\exp(-\\lVert x_i - c_j \\rVert^2 / T),

    summed with the weights. Its gradient with respect to ``c_j`` is
    ``2 sum_i w_i r_ij (c_j - x_i)`` with the softmax responsibilities
    ``r_ij = softmax_j(-||x_i - c_j||^2 / T)``: every point pulls every centroid, in
    proportion to how much it belongs to it, and the stationary points are the soft
    (fuzzy) means ``c_j = sum_i r_ij x_i / sum_i r_ij``. The loss lies between
    ``min_j ||x_i - c_j||^2 - T log k`` and ``min_j ||x_i - c_j||^2``, so as the
    temperature goes to 0 it tends to the k-means inertia, the responsibilities to the
    nearest-centroid labels, and the minimisers to Lloyd's fixed points. A high
    temperature blurs clusters together (at very high temperature every centroid goes
    to the mean of the data).

    The data are centred and measured in units of their standard deviation ``s`` (the
    square root of the mean per-feature variance, as :func:`kmeans`'s ``tol``), so that
    ``temperature`` and ``lr`` mean the same on any data: the softmax uses
    ``T = temperature * s**2`` and the optimizer moves ``c / s``.

    Parameters
    ----------
    x : array_like or torch.Tensor, shape (n, d)
        Data, NumPy or torch on any device (the optimisation runs on that device).
        float32 and float64 are kept; integers and float16 are upcast.
    k : int
        Number of clusters, ``1 <= k <= n``.
    temperature : float
        Softness, relative to the data's variance (see above), in ``[1e-12, 1e12]``.
        Two clusters share one centroid when ``T = temperature * s**2`` is above about
        twice their joint variance along the line between them (deterministic
        annealing's critical temperature): centres closer than about ``sqrt(2 T)``
        merge. On the six blobs (``s`` = 24, nearest centres 15 apart) 0.01 gives
        Lloyd's centroids to 0.05 %, 0.1 moves them by ~0.4, 0.3 merges two blobs.
    init : {"k-means++", "random"} or array of shape (k, d)
        As in :func:`kmeans`, with the same draws: the same ``seed`` starts both from the
        same centroids.
    max_iter : int
        Maximum number of optimizer steps (0 returns the initial centroids).
    lr : float, optional
        Learning rate, in units of ``s``; by default 0.05 for Adam and 0.5 for SGD (with
        momentum 0.9).
    optimizer : {"adam", "sgd"}
        ``torch.optim.Adam`` or ``torch.optim.SGD`` (momentum 0.9).
    tol : float
        Stop when a step moves the centroids by at most ``tol`` times the mean
        per-feature variance (sum of squared moves, :func:`kmeans`'s rule; one wait for
        the device per step). ``tol=0`` runs exactly ``max_iter`` steps.
    seed : int
        Seed of the initialisation; the optimisation itself has no randomness.
    weights : array_like, shape (n,), optional
        Non-negative sample weights (not all zero): a point of weight 2 counts twice.
    chunk_size : int, optional
        Rows per (rows, k) block. Each block is back-propagated on its own (its gradient
        accumulated in the parameter), so memory holds one block and its autograd
        intermediates, never the (n, k) matrix; by default sized from the memory budget
        (:data:`clusterlab.engines.base.BLOCK_BUDGET`). On a CPU the steps run on one
        thread unless one step is big (``n * k * d`` at least
        :data:`~clusterlab.engines.cpu_kernels.BIG_WORK`), then on torch's threads:
        results never depend on how busy the machine is.

    Returns
    -------
    KMeansResult
        ``centroids`` (k, d) same kind and device as ``x``; ``labels`` (n,) nearest
        centroid (hard labels); ``inertia`` the sum of (weighted) squared distances to the
        nearest centroid, computed exactly as :func:`kmeans` does (so the two compare);
        ``n_iter`` the number of optimizer steps; ``history`` one dict per step with
        ``obj`` (the soft loss, summed over the points, at the centroids the step's
        gradient was taken at), ``inertia`` (the hard objective at the same centroids),
        ``time`` (seconds since the start) and ``shift`` (sum of squared centroid moves of
        the step).

    Raises
    ------
    FloatingPointError
        When the optimisation diverges (a learning rate too large for SGD): the loss
        or the centroids became inf or NaN.
    ImportError
        Without PyTorch (autograd is the point).

    Notes
    -----
    Without weights, from initial centroids ``c0``, the centroids are those of this
    plain loop on a float tensor ``x`` (Adam does not care about the loss's scale, and
    its steps in units of ``s`` are steps of ``lr * s``), up to rounding and Adam's
    ``eps`` (1e-8 in units of ``s`` here, so that results do not depend on the units)::

        var = x.var(0, unbiased=False).mean()            # s**2
        t = temperature * var
        c = torch.nn.Parameter(c0.clone())
        opt = torch.optim.Adam([c], lr=lr * var.sqrt())  # SGD: lr itself, momentum=0.9
        for _ in range(max_iter):                        # with tol=0
            opt.zero_grad()
            d2 = torch.cdist(x, c) ** 2                  # (n, k) squared distances
            loss = (-t * torch.logsumexp(-d2 / t, dim=1)).mean()
            loss.backward()
            opt.step()

    Examples
    --------
    >>> import clusterlab as cl
    >>> x, y, centers = cl.data.make_six_blobs(seed=0)
    >>> res = cl.soft_kmeans(x, 6, temperature=0.01, seed=0)
    >>> res.centroids.shape
    (6, 2)
    """
    x = check_array(x, "x")
    n, d = x.shape
    k = check_k(k, n)
    temperature = check_float(temperature, "temperature", positive=True,
                              low=TEMPERATURES[0], high=TEMPERATURES[1])
    max_iter = check_count(max_iter, "max_iter", low=0)
    optimizer = check_choice(optimizer, "optimizer", OPTIMIZERS)
    lr = SOFT_LR[optimizer] if lr is None else check_float(lr, "lr", positive=True)
    tol = check_float(tol, "tol", nonnegative=True)
    seed = check_seed(seed)
    chunk_size = check_rows(chunk_size, "chunk_size", n)
    w = check_weights(weights, x)
    given = _check_init(init, x, k)
    torch = _torch("soft_kmeans")
    from clusterlab.engines import cpu_kernels  # numba: imported on use
    f = _scale.factor(x)
    if f != 1.0:  # far from 1: optimise on x * 2**e (exact) and scale the results back
        res = soft_kmeans(
            x * f, k, temperature=temperature, init=init if given is None else given * f,
            max_iter=max_iter, lr=lr, optimizer=optimizer, tol=tol, seed=seed, weights=w,
            chunk_size=chunk_size,
        )
        return _unscale_result(res, f)

    eng = get_engine("torch", x)
    we = None if w is None else eng.from_input(w)
    xp, offset, x_sq = _prepare(eng, x, we, "euclidean")  # centred rows, (n,) squared norms
    total_w = float(n) if we is None else float(we.sum())
    (var,) = eng.scalars((x_sq if we is None else x_sq * we).sum() / total_w / d)
    var = var if var > 0 else 1.0  # all points equal: any unit will do
    s, t_abs = math.sqrt(var), temperature * var
    c0 = _initial(eng, xp, k, we, np.random.default_rng(seed), init, given, offset, x_sq)

    u = torch.nn.Parameter(c0 / s)  # (k, d) the centroids in units of s
    if optimizer == "adam":
        opt = torch.optim.Adam([u], lr=lr)
    else:
        opt = torch.optim.SGD([u], lr=lr, momentum=0.9)
    rows = chunk_rows(n, k, xp.element_size() * _AUTOGRAD_BLOCKS, eng.device_type, chunk_size)
    scale = 1.0 / (total_w * var)  # the loss optimised is dimensionless: mean loss / s**2
    stats, marks, start = [], [], eng.mark()
    # one thread on a CPU unless a step is big: the same result whatever the load
    with torch.enable_grad(), cpu_kernels.torch_threads(
            work=n * k * d, by_load=False, device_type=eng.device_type):
        for _ in range(max_iter):
            opt.zero_grad()
            soft = hard = torch.zeros((), dtype=torch.float64, device=xp.device)
            for i in range(0, n, rows):
                c = u * s  # (k, d)
                # (B, k) squared distances, ||x||^2 - 2 x.c + ||c||^2 on centred rows
                dist = torch.addmm(x_sq[i:i + rows, None], xp[i:i + rows], c.T, alpha=-2.0)
                dist = dist + (c * c).sum(1)  # (rounding may leave -1e-7: harmless here)
                loss = -t_abs * torch.logsumexp(dist / -t_abs, dim=1)  # (B,) soft minimum
                near = dist.detach().amin(1).clamp_min_(0.0)  # (B,) hard minimum
                if we is not None:
                    loss, near = loss * we[i:i + rows], near * we[i:i + rows]
                block = loss.sum()
                (block * scale).backward()  # frees this block's graph; the gradient adds up
                soft = soft + block.detach().double()
                hard = hard + near.sum(dtype=torch.float64)
            before = u.detach().clone()
            opt.step()
            shift = ((u.detach() - before) ** 2).sum() * var
            stats.append((soft, hard, shift))
            marks.append(eng.mark())
            if tol > 0 and eng.scalars(shift)[0] <= tol * var:  # the step's one wait
                break
    c = u.detach() * s
    values = eng.scalars(*[v for row in stats for v in row]) if stats else []
    bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
    if bad or not bool(torch.isfinite(c).all()):
        i = bad[0] // 3 if bad else len(stats) - 1
        raise FloatingPointError(
            f"soft_kmeans diverged: the loss or the centroids are not finite after step "
            f"{i + 1} of {len(stats)} (optimizer={optimizer!r}, lr={lr}); lower lr"
        )
    dist, labels = eng.assign(xp, c, metric="euclidean", x_sq=x_sq, chunk_size=chunk_size)
    values = eng.scalars(eng.total(dist, we)) + values
    history = [
        {"obj": values[1 + 3 * i], "inertia": values[2 + 3 * i], "time": t,
         "shift": values[3 + 3 * i]}
        for i, t in enumerate(eng.seconds(start, marks))
    ]
    return KMeansResult(
        centroids=eng.to_output(_unframe(c, offset), x),
        labels=eng.to_output(labels, x),
        inertia=float(values[0]),
        n_iter=len(history),
        history=history,
    )



def _is_loader(data) -> bool:
    """True for a ``torch.utils.data.DataLoader`` (checked without importing torch)."""
    return any(
        t.__module__.startswith("torch.utils.data") and t.__name__ == "DataLoader"
        for t in type(data).__mro__
    )


def _loader_batches(torch, loader, *, d=None, dtype=None, device=None):
    """The rows of each batch a DataLoader yields: checked, in one dtype, on one device.

    A batch is a tensor (or array) of shape (rows, d), or a tuple/list whose first item
    is one (``TensorDataset`` yields ``(x,)``, labelled data ``(x, y)``). Each is checked
    as :func:`kmeans` checks ``x`` (on its own device, before it moves), with the batch's
    number in the message. ``d``, ``dtype`` and ``device`` default to the first batch's.
    """
    for i, batch in enumerate(loader):
        b = batch[0] if isinstance(batch, (tuple, list)) and len(batch) else batch
        if isinstance(b, (dict, str, bytes)):
            raise TypeError(
                f"batch {i} of data is a {type(b).__name__}; the DataLoader must yield "
                "tensors of shape (rows, d) or tuples whose first item is one"
            )
        b = check_array(b, f"batch {i} of data")  # (rows, d)
        if not isinstance(b, torch.Tensor):  # a collate_fn that returns NumPy arrays
            b = torch.from_numpy(np.ascontiguousarray(b))
        if d is None:
            d, dtype = b.shape[1], b.dtype
            device = b.device if device is None else device
        elif b.shape[1] != d:
            raise ValueError(f"batch {i} of data has {b.shape[1]} features, the first batch had {d}")
        yield b.to(device=device, dtype=dtype)


def _check_init_size(init_size, k, init):
    """An initial sample too small to draw ``k`` centroids from is refused up front."""
    if init_size is not None and isinstance(init, str) and init_size < k:
        raise ValueError(
            f"init_size={init_size} is smaller than k={k}: init={init!r} draws the k "
            "initial centroids from init_size rows; raise init_size (or leave it None)"
        )


class _RowBatches:
    """A DataLoader's sampler of index batches over ``n`` rows, ``step`` at a time.

    Every pass draws a new permutation from ``generator`` (in order without one), cut
    into index tensors: no Python int per row, as ``BatchSampler(RandomSampler(...))``
    makes.
    """

    def __init__(self, torch, n, step, generator=None):
        self.torch, self.n, self.step, self.generator = torch, n, step, generator

    def __len__(self):
        return -(-self.n // self.step)

    def __iter__(self):
        torch = self.torch
        if self.generator is None:
            order = torch.arange(self.n)
        else:
            order = torch.randperm(self.n, generator=self.generator)
        return iter(order.split(self.step))


def _first_rows(torch, batches, init_size):
    """Batches from the iterator ``batches`` until they hold ``init_size`` rows.

    ``init_size`` may be a function of the first batch. Returns the batches taken (the
    iterator goes on after them), their first ``init_size`` rows as one tensor (the
    initial sample; ``None`` when there was no batch) and ``init_size``.
    """
    taken, got = [], 0
    for b in batches:
        if not taken and callable(init_size):
            init_size = init_size(b)
        taken.append(b)
        got += len(b)
        if got >= init_size:
            break
    return taken, (torch.cat(taken)[:init_size] if taken else None), init_size


def _sculley(eng, c, epoch, n_epochs, chunk_size, adjust_threads):
    """Sculley's mini-batch updates of centroids ``c`` (k, d) over ``n_epochs`` passes.

    ``epoch(e)`` yields the (B, d) rows of pass ``e`` in the frame of ``c``. Returns the
    centroids and one ``(obj, shift, n_empty, n_steps)`` row and device mark per epoch.
    """
    k = c.shape[0]
    counts = c[:, 0] * 0  # (k,) points each centre has received, in the data's dtype
    stats, marks, start = [], [], eng.mark()
    for e in range(n_epochs):
        obj, shift, n_steps = eng.total(counts) * 0, counts.sum() * 0, 0
        for bp in epoch(e):
            adjust_threads()
            dist, labels = eng.assign(bp, c, metric="euclidean", x_sq=eng.row_sqnorms(bp),
                                      chunk_size=chunk_size)  # (B,), (B,)
            sums, cnt = eng.cluster_sums(bp, labels, None, k)  # (k, d), (k,)
            counts = counts + cnt
            got = cnt > 0  # (k,)
            one = cnt * 0 + 1
            rate = eng.where(got, cnt / eng.where(got, counts, one), cnt * 0)  # n_j / count_j
            mean = sums / eng.where(got, cnt, one)[:, None]  # (k, d) the batch's means
            new_c = c + rate[:, None] * (mean - c)  # = every point at rate 1 / count in turn
            shift = shift + eng.row_sqnorms(new_c - c).sum()
            obj = obj + eng.total(dist)
            c, n_steps = new_c, n_steps + 1
        stats.append((obj, shift, (counts <= 0).sum(), n_steps))
        marks.append(eng.mark())
    return c, stats, start, marks


def minibatch_kmeans(
    data,
    k,
    *,
    batch_size=None,
    n_epochs=10,
    init="k-means++",
    init_size=None,
    shuffle=True,
    seed=0,
    device=None,
    backend="auto",
    chunk_size=None,
):
    """Mini-batch k-means (Sculley 2010) over a ``torch.utils.data.DataLoader``.

    For data that do not fit in memory (or on the device) at once: the centroids are
    updated from one batch at a time. Each batch is assigned to the current centroids
    (the engine's :func:`assign` kernel); every centre then takes its new points into a
    running mean, each point with learning rate ``1 / count``, ``count`` being the
    number of points the centre has received so far. Done point by point that is
    Sculley's algorithm; for a whole batch it adds up to
    ``c_j <- c_j + (n_j / count_j) (mean_j - c_j)`` (``n_j`` points of the batch, with
    mean ``mean_j``), which is what is computed. With one batch of all the data the
    first epoch is exactly one Lloyd step; later epochs average with what came before,
    so the steps shrink (``1 / count``) and the centroids settle at or near a Lloyd
    fixed point -- slowly after a poor start: after T epochs of one batch, a centroid is
    the average of its T batch means, and the first ones are forgotten only as 1 / T.

    A centre that receives no point keeps its place: there is no empty-cluster repair,
    as in Sculley's algorithm (``history`` counts such centres).

    Parameters
    ----------
    data : torch.utils.data.DataLoader, array_like or torch.Tensor
        A DataLoader yielding tensors of shape (rows, d), or tuples ``(x, ...)`` whose
        first item is one (each batch is checked as ``x`` is in :func:`kmeans`); or an
        (n, d) array or tensor, which is wrapped in a DataLoader over its rows
        (``batch_size`` rows a batch, one gather each, reshuffled every epoch when
        ``shuffle``).
    k : int
        Number of clusters: ``k <= n`` for an array, at most the rows of the initial
        sample for a DataLoader.
    batch_size : int, optional
        Rows per batch for an array (default 1024, at most n). A DataLoader has its
        own: passing one with a DataLoader is an error.
    n_epochs : int
        Passes over the data, every batch once per pass.
    init : {"k-means++", "random"} or array of shape (k, d)
        Greedy k-means++ (as :func:`kmeans_plusplus`) or k random rows, drawn from the
        first ``init_size`` rows of the first epoch's first batches (the epoch then goes
        on with them: no batch is read twice); or given centroids.
    init_size : int, optional
        Rows of the initial sample: by default three batches (``3 * batch_size``), at
        least ``3 * k``, at most the rows there are. They must represent the data: a
        DataLoader over rows sorted by cluster should shuffle.
    shuffle : bool
        For an array: a new random order of the rows every epoch (seeded by ``seed``).
        A DataLoader keeps its own order (pass it a seeded ``generator=``).
    seed : int
        Seed of the initial draws and of an array's shuffling.
    device : str or torch.device, optional
        For a DataLoader: where the centroids live and every batch is moved to (e.g.
        ``"cuda"`` for batches the loader makes on the CPU); by default the first
        batch's device. An array is clustered on its own device (move it first).
    backend : {"auto", "numpy", "torch", "keops", "triton"}
        Engine of the assignments and sums, as in :func:`kmeans`.
    chunk_size : int, optional
        Rows per (rows, k) block of a batch's assignment; by default from the budget.

    Returns
    -------
    KMeansResult
        ``centroids`` (k, d): for an array the same kind and device as ``data``; for a
        DataLoader a torch tensor on ``device``. For an array, ``labels`` (n,) and
        ``inertia`` come from one final pass of the assignment over all the rows,
        exactly as :func:`kmeans` computes them. For a DataLoader, ``labels`` is
        ``None`` (a shuffling loader's order is not the data's; call :func:`assign` on
        the rows you need) and ``inertia`` is the sum of squared distances over one
        final pass of the loader. ``n_iter`` is the number of epochs; ``history`` has one
        dict per epoch: ``obj`` (the sum over the epoch of each batch's squared
        distances to the centroids it was assigned to at the time: an estimate of the
        inertia that costs nothing), ``time``, ``shift`` (sum of squared centroid moves
        over the epoch), ``n_steps`` (batches) and ``n_empty`` (centres that have
        received no point yet).

    Notes
    -----
    With given initial centroids ``c`` (a float tensor), over a DataLoader ``loader`` of
    tensors, the centroids are, up to rounding, those of this loop::

        counts = torch.zeros(k, dtype=c.dtype)
        for epoch in range(n_epochs):
            for xb in loader:
                labels = torch.cdist(xb, c).argmin(1)                 # (B,) nearest centre
                n_j = torch.bincount(labels, minlength=k).to(c.dtype)  # (k,) its new points
                sums = torch.zeros_like(c).index_add_(0, labels, xb)   # (k, d)
                counts += n_j
                hit = n_j > 0
                c[hit] += (sums[hit] - n_j[hit, None] * c[hit]) / counts[hit, None]

    Examples
    --------
    >>> import clusterlab as cl
    >>> x, y, centers = cl.data.make_six_blobs(seed=0)
    >>> res = cl.minibatch_kmeans(x, 6, batch_size=256, n_epochs=5, seed=0)
    >>> res.centroids.shape
    (6, 2)
    """
    from clusterlab.engines import BACKENDS

    n_epochs = check_count(n_epochs, "n_epochs", low=1)
    seed = check_seed(seed)
    if not isinstance(shuffle, bool):
        raise TypeError(f"shuffle must be True or False, got {shuffle!r} ({type(shuffle).__name__})")
    check_choice(backend, "backend", BACKENDS)
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", low=1)
    if init_size is not None:
        init_size = check_int(init_size, "init_size", low=1)
    if _is_loader(data):
        if batch_size is not None:
            raise ValueError(
                f"batch_size={batch_size!r} was given with a DataLoader, which has its own "
                "batch size; leave batch_size=None (or pass an array)"
            )
        k = check_int(k, "k", low=1)
        _check_init_size(init_size, k, init)
        return _minibatch_loader(data, k, n_epochs=n_epochs, init=init, init_size=init_size,
                                 seed=seed, device=device, backend=backend, chunk_size=chunk_size)
    if device is not None:
        raise ValueError(
            f"device={device!r} is for a DataLoader; an array is clustered on its own "
            "device (move it there first)"
        )
    x = check_array(data, "data")
    n, d = x.shape
    k = check_k(k, n)
    _check_init_size(init_size, k, init)
    step = check_rows(1024 if batch_size is None else batch_size, "batch_size", n)
    given = _check_init(init, x, k)
    torch = _torch("minibatch_kmeans")
    from clusterlab.engines import cpu_kernels  # numba: imported on use
    f = _scale.factor(x)
    if f != 1.0:  # far from 1: cluster x * 2**e (exact) and scale the results back
        res = minibatch_kmeans(
            x * f, k, batch_size=step, n_epochs=n_epochs,
            init=init if given is None else given * f, init_size=init_size,
            shuffle=shuffle, seed=seed, backend=backend, chunk_size=chunk_size,
        )
        return _unscale_result(res, f)
    init_size = min(n, max(3 * step, 3 * k) if init_size is None else init_size)

    from torch.utils.data import DataLoader, TensorDataset

    eng = get_engine(backend, x)
    xp, offset, x_sq = _prepare(eng, x, None, "euclidean")  # centred once
    rows = torch.as_tensor(xp)  # (n, d), no copy
    # A DataLoader of index batches: one gather per batch, not one __getitem__ per row.
    gen = torch.Generator().manual_seed(seed) if shuffle else None
    loader = DataLoader(TensorDataset(rows), batch_size=None,
                        sampler=_RowBatches(torch, n, step, gen))

    # The initial sample: the first init_size rows of the first epoch's first batches.
    first_epoch = (b for (b,) in loader)
    taken, sample, _ = _first_rows(torch, first_epoch, init_size)
    sample = eng.from_input(sample)
    rng = np.random.default_rng(seed)
    c = _initial(eng, sample, k, None, rng, init, given, offset, eng.row_sqnorms(sample))

    def epoch(e):  # (B, d) centred rows; the first epoch goes on after the sample
        for b in itertools.chain(taken, first_epoch) if e == 0 else (b for (b,) in loader):
            yield eng.from_input(b)

    with cpu_kernels.torch_threads(work=step * k * d, device_type=eng.device_type) as adjust_threads:
        c, stats, start, marks = _sculley(eng, c, epoch, n_epochs, chunk_size, adjust_threads)
        # one pass of the assignment over all the rows, as kmeans scores its result
        dist, labels = eng.assign(xp, c, metric="euclidean", x_sq=x_sq, chunk_size=chunk_size)
        inertia = eng.total(dist)
    return _minibatch_result(eng, c, offset, x, eng.to_output(labels, x), inertia, stats,
                             start, marks)


def _minibatch_loader(loader, k, *, n_epochs, init, init_size, seed, device, backend,
                      chunk_size):
    """:func:`minibatch_kmeans` over a DataLoader (arguments checked)."""
    torch = _torch("minibatch_kmeans")
    from clusterlab.engines import cpu_kernels  # numba: imported on use
    if device is not None:
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device={device!r} is not a torch device: {exc}") from exc
    # The initial sample: the first init_size rows of the first epoch's first batches.
    first_epoch = _loader_batches(torch, loader, device=device)
    want = init_size if init_size is not None else (lambda b: max(3 * len(b), 3 * k))
    taken, sample, init_size = _first_rows(torch, first_epoch, want)
    if not taken:
        raise ValueError("data is a DataLoader that yields no batch")
    first = taken[0]
    d, dtype, dev = first.shape[1], first.dtype, first.device
    given = _check_init(init, first, k)
    if given is None and len(sample) < k:
        raise ValueError(
            f"k={k} is larger than the {len(sample)} rows of the initial sample "
            f"(init_size={init_size}): the DataLoader yields fewer than k rows"
        )
    eng = get_engine(backend, first)
    sp, offset, s_sq = _prepare(eng, eng.from_input(sample), None, "euclidean")
    c = _initial(eng, sp, k, None, np.random.default_rng(seed), init, given, offset, s_sq)

    def epoch(e):  # (B, d) rows centred on the sample's mean; a new pass of the loader
        if e == 0:  # the first epoch goes on after the sample
            batches = itertools.chain(taken, first_epoch)
        else:
            batches = _loader_batches(torch, loader, d=d, dtype=dtype, device=dev)
        for b in batches:
            yield eng.from_input(b) - offset

    with cpu_kernels.torch_threads(work=len(first) * k * d,
                                   device_type=eng.device_type) as adjust_threads:
        c, stats, start, marks = _sculley(eng, c, epoch, n_epochs, chunk_size, adjust_threads)
        inertia = eng.total(c[:1, 0]) * 0  # one pass of the loader with the final centroids
        for bp in epoch(1):
            dist, _ = eng.assign(bp, c, metric="euclidean", x_sq=eng.row_sqnorms(bp),
                                 chunk_size=chunk_size)
            inertia = inertia + eng.total(dist)
    return _minibatch_result(eng, c, offset, first, None, inertia, stats, start, marks)


def _minibatch_result(eng, c, offset, like, labels, inertia, stats, start, marks):
    values = eng.scalars(inertia, *[v for row in stats for v in row[:3]])
    history = [
        {"obj": values[1 + 3 * i], "time": t, "shift": values[2 + 3 * i],
         "n_steps": stats[i][3], "n_empty": int(values[3 + 3 * i])}
        for i, t in enumerate(eng.seconds(start, marks))
    ]
    return KMeansResult(
        centroids=eng.to_output(_unframe(c, offset), like),
        labels=labels,
        inertia=float(values[0]),
        n_iter=len(history),
        history=history,
    )
