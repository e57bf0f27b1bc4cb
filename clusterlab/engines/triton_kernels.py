"""Fused Triton kernels: nearest centroid, per-cluster sums, one mean-shift step.

Every kernel walks tiles of the (n, k) (or (m, n)) matrix and keeps what it needs in
registers, so no (n, k) block is ever written to memory -- the idea of flash attention,
applied to an argmin (assignment), a segmented sum (update) and an online softmax (mean
shift). The launchers at the bottom take torch tensors and choose tile sizes.

Importing this module imports Triton. Set ``TRITON_INTERPRET=1`` *before* that import to
run the kernels on CPU tensors through Triton's interpreter (slow; used by the tests).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

#: Triton's names for the product precision of :func:`tl.dot`, by clusterlab's name.
DOT_PRECISION = {"highest": "ieee", "high": "tf32", "medium": "ieee"}
#: Largest d the fused mean-shift kernel takes (one tile of d in registers).
SHIFT_MAX_D = 128


def interpreted() -> bool:
    """True when Triton runs kernels through its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


# --------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------


@triton.jit
def _lowp(v, LOW: tl.constexpr):
    """Round a tile for the products: LOW 0 keeps it, 1 casts to bf16, 2 rounds through
    bf16 back to float32 (the same products, for Triton's interpreter, whose bf16 dot is
    wrong; a bf16 x bf16 product is exact in float32)."""
    if LOW == 1:
        return v.to(tl.bfloat16)
    elif LOW == 2:
        return v.to(tl.bfloat16).to(tl.float32)
    else:
        return v


@triton.jit
def _assign_kernel(
    x_ptr, c_ptr, cb_ptr, dist_ptr, lab_ptr,
    n, k, d, stride_x, stride_c, alpha,
    COSINE: tl.constexpr, LOW: tl.constexpr, PREC: tl.constexpr, ONE_D: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """Rows ``BLOCK_N`` of x against all centroids, a ``BLOCK_K`` tile at a time.

    score_ij = cb_j + alpha * <x_i, c_j>  (cb = ||c||^2, alpha = -2; or cb = 0, alpha = -1)
    A running (min, argmin) per row lives in registers; the (n, k) scores never leave.
    """
    pid = tl.program_id(0)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)  # (BN,)
    rmask = rows < n
    dd = tl.arange(0, BLOCK_D)
    best = tl.full([BLOCK_N], float("inf"), tl.float32)
    best_j = tl.zeros([BLOCK_N], tl.int32)
    if ONE_D:  # the whole row fits one tile: load it once, reuse it for every centroid tile
        xt = tl.load(x_ptr + rows[:, None] * stride_x + dd[None, :],
                     mask=rmask[:, None] & (dd[None, :] < d), other=0.0)  # (BN, BD)
        xt = _lowp(xt, LOW)
    for k0 in range(0, k, BLOCK_K):
        cols = k0 + tl.arange(0, BLOCK_K)  # (BK,)
        cmask = cols < k
        acc = tl.zeros([BLOCK_N, BLOCK_K], tl.float32)  # (BN, BK) inner products
        if ONE_D:
            ct = tl.load(c_ptr + cols[:, None] * stride_c + dd[None, :],
                         mask=cmask[:, None] & (dd[None, :] < d), other=0.0)  # (BK, BD)
            ct = _lowp(ct, LOW)
            acc = tl.dot(xt, tl.trans(ct), acc, input_precision=PREC)
        else:
            for d0 in range(0, d, BLOCK_D):
                dm = (d0 + dd) < d
                xs = tl.load(x_ptr + rows[:, None] * stride_x + (d0 + dd)[None, :],
                             mask=rmask[:, None] & dm[None, :], other=0.0)
                cs = tl.load(c_ptr + cols[:, None] * stride_c + (d0 + dd)[None, :],
                             mask=cmask[:, None] & dm[None, :], other=0.0)
                acc = tl.dot(_lowp(xs, LOW), tl.trans(_lowp(cs, LOW)), acc, input_precision=PREC)
        cb = tl.load(cb_ptr + cols, mask=cmask, other=0.0)  # (BK,)
        score = tl.where(cmask[None, :], cb[None, :] + alpha * acc, float("inf"))  # (BN, BK)
        tile_best = tl.min(score, 1)
        tile_j = tl.argmin(score, 1).to(tl.int32) + k0  # first index on ties, as torch
        better = tile_best < best  # strict: an earlier tile wins ties
        best = tl.where(better, tile_best, best)
        best_j = tl.where(better, tile_j, best_j)
    # The distance to the chosen centroid, recomputed directly in float32 (one gather of
    # a centroid row per point): exact whatever precision the products used.
    tot = tl.zeros([BLOCK_N], tl.float32)
    for d0 in range(0, d, BLOCK_D):
        m2 = rmask[:, None] & ((d0 + dd) < d)[None, :]
        xs = tl.load(x_ptr + rows[:, None] * stride_x + (d0 + dd)[None, :], mask=m2, other=0.0)
        cs = tl.load(c_ptr + best_j[:, None] * stride_c + (d0 + dd)[None, :], mask=m2, other=0.0)
        xs = xs.to(tl.float32)
        cs = cs.to(tl.float32)
        if COSINE:
            tot += tl.sum(xs * cs, 1)
        else:
            diff = xs - cs
            tot += tl.sum(diff * diff, 1)
    if COSINE:
        tot = tl.maximum(1.0 - tot, 0.0)
    tl.store(dist_ptr + rows, tot.to(dist_ptr.dtype.element_ty), mask=rmask)
    tl.store(lab_ptr + rows, best_j.to(tl.int64), mask=rmask)


@triton.jit
def _segsum_combine(f1, v1, f2, v2):
    # segmented sum: a flag starts a new segment, which forgets what came before it
    return f1 | f2, tl.where(f2 != 0, v2, v1 + v2)


@triton.jit
def _cluster_sums_kernel(
    x_ptr, w_ptr, perm_ptr, slab_ptr, sums_ptr, counts_ptr,
    n, d, stride_x,
    WEIGHTED: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """Per-cluster sums over points sorted by label, one (BLOCK_N, BLOCK_D) tile a program.

    The tile's points come in label order, so each cluster is one contiguous segment: a
    segmented scan sums every segment in registers and only its last row is added to
    the (k, d) float64 sums -- one atomic per cluster present in the tile, not per point.
    """
    pid_n = tl.program_id(0)
    pid_d = tl.program_id(1)
    pos = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # (BN,) positions in sorted order
    valid = pos < n
    lab = tl.load(slab_ptr + pos, mask=valid, other=-1)  # (BN,)
    prev = tl.load(slab_ptr + pos - 1, mask=valid & (pos > 0), other=-1)
    nxt = tl.load(slab_ptr + pos + 1, mask=(pos + 1) < n, other=-1)
    first = tl.arange(0, BLOCK_N) == 0
    last = tl.arange(0, BLOCK_N) == BLOCK_N - 1
    start = (lab != prev) | first  # (BN,) a segment starts here
    end = valid & ((lab != nxt) | last)  # (BN,) a segment ends here
    idx = tl.load(perm_ptr + pos, mask=valid, other=0)  # (BN,) original rows
    cols = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    cmask = cols < d
    xt = tl.load(x_ptr + idx[:, None] * stride_x + cols[None, :],
                 mask=valid[:, None] & cmask[None, :], other=0.0).to(tl.float32)  # (BN, BD)
    if WEIGHTED:
        wv = tl.load(w_ptr + idx, mask=valid, other=0.0).to(tl.float32)  # (BN,)
    else:
        wv = valid.to(tl.float32)
    xt = xt * wv[:, None]
    flags = tl.broadcast_to(start[:, None], [BLOCK_N, BLOCK_D]).to(tl.int32)
    _, seg = tl.associative_scan((flags, xt), 0, _segsum_combine)  # (BN, BD) running sums
    tl.atomic_add(sums_ptr + lab[:, None] * d + cols[None, :], seg.to(tl.float64),
                  mask=end[:, None] & cmask[None, :])
    if pid_d == 0:
        _, segw = tl.associative_scan((start.to(tl.int32), wv), 0, _segsum_combine)
        tl.atomic_add(counts_ptr + lab, segw.to(tl.float64), mask=end)


@triton.jit
def _shift_kernel(
    y_ptr, x_ptr, xsq_ptr, out_ptr,
    m, n, d, stride_y, stride_x, scale, h2,
    GAUSSIAN: tl.constexpr, LOW: tl.constexpr, PREC: tl.constexpr, NUM_PREC: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """One mean-shift step for ``BLOCK_M`` queries: an online softmax over source tiles.

    Gaussian: out_i = sum_j softmax_j(-||y_i - x_j||^2 / 2h^2) x_j, with a running max,
    a running sum and a running weighted sum rescaled tile by tile (flash attention).
    Flat: the mean of the sources within distance h.  ``scale`` = log2(e) / (2 h^2).
    """
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = rows < m
    dd = tl.arange(0, BLOCK_D)
    dmask = dd < d
    yt = tl.load(y_ptr + rows[:, None] * stride_y + dd[None, :],
                 mask=rmask[:, None] & dmask[None, :], other=0.0).to(tl.float32)  # (BM, BD)
    y_sq = tl.sum(yt * yt, 1)  # (BM,)
    yq = _lowp(yt, LOW)
    run_max = tl.full([BLOCK_M], float("-inf"), tl.float32)
    tot = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)  # (BM, BD) weighted sum of sources
    for s0 in range(0, n, BLOCK_S):
        src = s0 + tl.arange(0, BLOCK_S)
        smask = src < n
        xt = tl.load(x_ptr + src[:, None] * stride_x + dd[None, :],
                     mask=smask[:, None] & dmask[None, :], other=0.0).to(tl.float32)  # (BS, BD)
        x_sq = tl.load(xsq_ptr + src, mask=smask, other=0.0).to(tl.float32)
        xq = _lowp(xt, LOW)
        dot = tl.dot(yq, tl.trans(xq), input_precision=PREC)  # (BM, BS)
        d2 = tl.maximum(y_sq[:, None] + x_sq[None, :] - 2.0 * dot, 0.0)  # squared distances
        if GAUSSIAN:
            logit = tl.where(smask[None, :], -d2 * scale, float("-inf"))  # log2 of weights
            new_max = tl.maximum(run_max, tl.max(logit, 1))
            p = tl.exp2(logit - new_max[:, None])  # (BM, BS)
            corr = tl.exp2(run_max - new_max)  # (BM,), 0 on the first tile
            tot = tot * corr + tl.sum(p, 1)
            acc = acc * corr[:, None]
            run_max = new_max
        else:
            p = ((d2 <= h2) & smask[None, :]).to(tl.float32)
            tot = tot + tl.sum(p, 1)
        acc = tl.dot(p, xt, acc, input_precision=NUM_PREC)  # (BM, BD) weighted sum
    ok = tot > 0  # a flat window may hold no point: the point stays
    res = tl.where(ok[:, None], acc / tl.maximum(tot, 1e-30)[:, None], yt)
    tl.store(out_ptr + rows[:, None] * stride_y + dd[None, :],
             res.to(out_ptr.dtype.element_ty), mask=rmask[:, None] & dmask[None, :])


# --------------------------------------------------------------------------------------
# Launchers (torch tensors in, torch tensors out)
# --------------------------------------------------------------------------------------


def _low(precision: str) -> int:
    """The kernels' LOW switch: bf16 products for "medium" (emulated when interpreted)."""
    if precision != "medium":
        return 0
    return 2 if interpreted() else 1


def _pow2(v: int, low: int = 16) -> int:
    return max(low, triton.next_power_of_2(int(v)))


def assign_tiles(n: int, k: int, d: int) -> dict:
    """Tile sizes and launch options of the assignment kernel for an (n, k, d) problem."""
    if interpreted():  # small tiles: the tests cross tile edges with small shapes
        return {"BLOCK_N": 32, "BLOCK_K": 16, "BLOCK_D": _pow2(min(d, 32))}
    bd = _pow2(d)
    if bd <= 128:  # one tile of d: x stays in registers for the whole centroid loop
        bk = 128 if bd <= 64 else 64
        return {"BLOCK_N": 128, "BLOCK_K": min(bk, _pow2(k)), "BLOCK_D": bd,
                "num_warps": 8, "num_stages": 2}
    return {"BLOCK_N": 128, "BLOCK_K": min(64, _pow2(k)), "BLOCK_D": 64,
            "num_warps": 8, "num_stages": 3}


def assign(x, c, *, metric="euclidean", precision="highest", tiles=None):
    """Nearest centroid of every row of ``x``: fused distances + argmin, no (n, k) block.

    Parameters
    ----------
    x : torch.Tensor, shape (n, d), float32 (or float64, cast to float32 per tile)
    c : torch.Tensor, shape (k, d)
    metric : {"euclidean", "cosine"}
        For ``"cosine"`` the rows of ``x`` and ``c`` are unit vectors.
    precision : {"highest", "high", "medium"}
        Products in IEEE float32, TF32, or bf16 (float32 accumulation). The returned
        distance is recomputed in float32 for the chosen centroid whatever the precision.

    Returns
    -------
    dist : torch.Tensor, shape (n,)
        Squared distance (or ``1 - cos``) to the nearest centroid, dtype of ``x``.
    labels : torch.Tensor, shape (n,), int64
    """
    n, d = x.shape
    k = c.shape[0]
    x = x.contiguous()
    c = c.contiguous()
    cosine = metric == "cosine"
    cb = torch.zeros(k, dtype=torch.float32, device=x.device) if cosine else (
        (c.float() * c.float()).sum(1))  # (k,) ||c||^2
    dist = torch.empty(n, dtype=x.dtype, device=x.device)
    labels = torch.empty(n, dtype=torch.int64, device=x.device)
    if n == 0:
        return dist, labels
    t = dict(tiles or assign_tiles(n, k, d))
    grid = (triton.cdiv(n, t["BLOCK_N"]),)
    _assign_kernel[grid](
        x, c, cb, dist, labels, n, k, d, x.stride(0), c.stride(0),
        -1.0 if cosine else -2.0,
        COSINE=cosine, LOW=_low(precision), PREC=DOT_PRECISION[precision],
        ONE_D=t["BLOCK_D"] >= d, **t,
    )
    return dist, labels


def cluster_sums(x, labels, w, k, *, tiles=None):
    """(k, d) per-cluster (weighted) sums and (k,) counts, accumulated in float64.

    Points are sorted by label (``torch.sort``), then each tile of sorted points adds one
    row per cluster it holds: hot clusters get no storm of atomics.
    """
    n, d = x.shape
    sums = torch.zeros(k, d, dtype=torch.float64, device=x.device)
    counts = torch.zeros(k, dtype=torch.float64, device=x.device)
    if n == 0:
        return sums, counts
    slab, perm = torch.sort(labels)  # (n,), (n,)
    x = x.contiguous()
    t = tiles or ({"BLOCK_N": 32, "BLOCK_D": _pow2(min(d, 32))} if interpreted()
                  else {"BLOCK_N": 128, "BLOCK_D": _pow2(min(d, 64))})
    grid = (triton.cdiv(n, t["BLOCK_N"]), triton.cdiv(d, t["BLOCK_D"]))
    _cluster_sums_kernel[grid](
        x, x if w is None else w.contiguous(), perm, slab, sums, counts, n, d, x.stride(0),
        WEIGHTED=w is not None, **t,
    )
    return sums, counts


def shift(y, x, x_sq, bandwidth, *, kernel="gaussian", precision="highest", tiles=None):
    """One mean-shift step of the points ``y`` over the data ``x`` (d <= SHIFT_MAX_D).

    Parameters
    ----------
    y : torch.Tensor, shape (m, d)
        The moving points (queries).
    x : torch.Tensor, shape (n, d)
        The data (keys = values), best centred.
    x_sq : torch.Tensor, shape (n,)
        Squared norms of the rows of ``x``.

    Returns
    -------
    torch.Tensor, shape (m, d)
        The kernel-weighted mean of ``x`` around each row of ``y``.
    """
    m, d = y.shape
    n = x.shape[0]
    y = y.contiguous()
    x = x.contiguous()
    out = torch.empty_like(y)
    if m == 0:
        return out
    bd = _pow2(d)
    t = tiles or ({"BLOCK_M": 16, "BLOCK_S": 32} if interpreted()
                  else {"BLOCK_M": 64, "BLOCK_S": 64, "num_warps": 4, "num_stages": 2})
    h2 = float(bandwidth) * float(bandwidth)
    grid = (triton.cdiv(m, t["BLOCK_M"]),)
    _shift_kernel[grid](
        y, x, x_sq.contiguous(), out, m, n, d, y.stride(0), x.stride(0),
        1.4426950408889634 / (2.0 * h2), h2,
        GAUSSIAN=kernel == "gaussian", LOW=_low(precision),
        PREC=DOT_PRECISION[precision], BLOCK_D=bd, **t,
        # the weighted sum of positions: bf16 would move every mode by ~0.4 %, so
        # "medium" takes its distances in bf16 but sums positions in TF32
        NUM_PREC="ieee" if precision == "highest" or interpreted() else "tf32",
    )
    return out
