"""Write notebooks/07_triton.ipynb from the cells below (outputs come from run_notebooks.py).

Kept as a script so the lesson's source reads as plain text in review; the notebook is
the artefact learners open. Usage: ``python scripts/make_triton_notebook.py``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent


def md(text):
    return nbformat.v4.new_markdown_cell(text.strip())


def code(text, hidden=False):
    cell = nbformat.v4.new_code_cell(text.strip())
    if hidden:  # JupyterLab shows it collapsed: try the exercise first
        cell.metadata["jupyter"] = {"source_hidden": True}
    return cell


CELLS = [
    md(r"""
# 07 · Writing the fused kernel yourself: Triton

Notebook 03 computed the k-means assignment as one matrix product and an argmin: fast, but the
product writes an (N, K) matrix to memory and the argmin reads it back. Notebook 06 let KeOps
compile a formula that never stores that matrix. This lesson does the same thing **by hand**, in
[Triton](https://triton-lang.org): a Python dialect for GPU kernels in which you say what one
*program* does with one *tile* of the data, and Triton compiles it for the GPU. It is what KeOps
generates for you, what flash attention does for transformers, and what `backend="triton"` runs.

**Learning goals.** After this notebook you can

- say how many bytes a GEMM + argmin moves, and why that matters at small D;
- read and write a tiled Triton kernel: program ids, `tl.arange` tiles, masked `tl.load`,
  `tl.dot`, a running minimum kept in registers;
- check a kernel against `cl.assign`, and time it fairly against the other rungs;
- write mean shift's step as an *online softmax* over tiles of the data (flash attention);
- place a kernel on this device's roofline (compute rate, memory bandwidth, arithmetic
  intensity), and say what TF32 and bf16 buy and cost.

**On a CPU** Triton runs the kernels through its *interpreter* (`TRITON_INTERPRET=1`): the same
code, executed tile by tile in NumPy. It is slow, so the data are tiny here and the timings are
not the point — the kernels' correctness is. The GPU numbers come from the recorded benchmark.
"""),
    md(r"""
## Setup

`TRITON_INTERPRET` must be set **before** `triton` is imported, so the device is chosen first.
"""),
    code(r"""
import json
import os
from pathlib import Path

import clusterlab as cl

device = cl.device.default_device()
ON_GPU = device.type == "cuda"
if not ON_GPU:
    os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported: kernels run on the CPU

import matplotlib.pyplot as plt
import numpy as np
import torch
import triton
import triton.language as tl

from clusterlab.device import timeit

SEED = 0
# The interpreter runs a tile at a time in NumPy: tiny on a CPU, the real size on a GPU.
N, D, K = (1_000_000, 100, 1000) if ON_GPU else (3_000, 8, 40)
gen = torch.Generator().manual_seed(SEED)
x = torch.randn(N, D, generator=gen).to(device)  # (N, D) a Gaussian cloud
c = x[torch.randperm(N, generator=gen)[:K].to(device)].clone()  # (K, D) K data points
print(f"device: {cl.device.device_name(device)}; torch {torch.__version__}, triton {triton.__version__}")
print(f"Triton runs {'natively on the GPU' if ON_GPU else 'through its interpreter (correctness only)'}")
print(f"N = {N:,} points, D = {D}, K = {K} centroids")
"""),
    md(r"""
## 1 · What a GEMM + argmin writes to memory

The assignment of notebook 03, written plainly: one matrix product gives every
$\lVert c_j\rVert^2 - 2\,x_i\cdot c_j$ (the $\lVert x_i\rVert^2$ term does not change the argmin),
then an argmin over each row.
"""),
    code(r"""
def gemm_argmin(x, c):
    scores = (c * c).sum(1) - 2.0 * (x @ c.T)  # (N, K) written to memory...
    return scores.argmin(1)  # ...and read back, to keep N numbers


block = N * K * 4  # bytes of the float32 (N, K) matrix
data = (N * D + K * D) * 4  # bytes of the inputs
print(f"inputs: {data / 2**20:,.1f} MiB; the (N, K) matrix: {block / 2**20:,.1f} MiB, "
      f"written once and read once = {2 * block / data:.1f}x the inputs' traffic")
"""),
    md(r"""
At D = 100 and K = 1000 the matrix is ten times the size of the data; at D = 2 it would be
five hundred times. Its arithmetic is $2D$ flops per (point, centroid) pair; its traffic is 8
bytes per pair (4 written, 4 read). Below about $D = 4 \times$ (flops per byte the device can
feed), moving the matrix costs more than computing it — section 5 puts numbers on that.
KeOps (06) removes the matrix by compiling a formula. Here we remove it ourselves.
"""),
    md(r"""
## 2 · A tiled distance + argmin kernel

A Triton kernel is a function of **one program**; the launch grid runs many programs in
parallel. Program `pid` owns a tile of `BLOCK_N` rows of `x`. It loads them once, then walks over
the centroids a tile of `BLOCK_K` at a time: one `tl.dot` gives the (BLOCK_N, BLOCK_K) block of
$x\cdot c$, which lives only in registers; a running minimum and its index are updated and the
block is forgotten. Only N labels are ever written.

Three details that every Triton kernel has:

- `tl.arange(0, BLOCK)` makes a vector of offsets; `ptr + offsets` is a tile of addresses;
- `mask=` on `tl.load`/`tl.store` protects the edges (N and K need not be multiples of the tiles;
  D is padded up to a power of two, at least 16 for `tl.dot`);
- `tl.dot(..., input_precision="ieee")` asks for exact float32 products: Triton's default on a
  recent GPU is TF32 (section 6).
"""),
    code(r"""
@triton.jit
def nearest_kernel(x_ptr, c_ptr, c_sq_ptr, labels_ptr, n, k, d,
                   BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    pid = tl.program_id(0)  # which tile of rows this program owns
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)  # (BN,) row numbers
    feats = tl.arange(0, BLOCK_D)  # (BD,) feature numbers, D padded
    x = tl.load(x_ptr + rows[:, None] * d + feats[None, :],
                mask=(rows[:, None] < n) & (feats[None, :] < d), other=0.0)  # (BN, BD) tile
    best = tl.full([BLOCK_N], float("inf"), tl.float32)  # running minimum, in registers
    best_j = tl.zeros([BLOCK_N], tl.int32)  # and its centroid
    for k0 in range(0, k, BLOCK_K):
        cols = k0 + tl.arange(0, BLOCK_K)  # (BK,) centroid numbers
        ct = tl.load(c_ptr + cols[:, None] * d + feats[None, :],
                     mask=(cols[:, None] < k) & (feats[None, :] < d), other=0.0)  # (BK, BD)
        c_sq = tl.load(c_sq_ptr + cols, mask=cols < k, other=float("inf"))  # (BK,)
        score = c_sq[None, :] - 2.0 * tl.dot(x, tl.trans(ct), input_precision="ieee")  # (BN, BK)
        tile_best = tl.min(score, 1)
        tile_j = tl.argmin(score, 1) + k0
        better = tile_best < best  # strict: the earlier centroid wins a tie, as argmin
        best = tl.where(better, tile_best, best)
        best_j = tl.where(better, tile_j, best_j)
    tl.store(labels_ptr + rows, best_j, mask=rows < n)  # N numbers: all that leaves


def nearest(x, c, block_n=64, block_k=32):
    n, d = x.shape
    labels = torch.empty(n, dtype=torch.int32, device=x.device)
    c_sq = (c * c).sum(1)  # (K,) a small vector, computed once
    grid = (triton.cdiv(n, block_n),)  # one program per tile of rows
    nearest_kernel[grid](x.contiguous(), c.contiguous(), c_sq, labels, n, c.shape[0], d,
                         BLOCK_N=block_n, BLOCK_K=block_k,
                         BLOCK_D=max(16, triton.next_power_of_2(d)))
    return labels
"""),
    md(r"""
Checked against the package (`cl.assign`, which centres the data and computes the distances
of the chosen centroids exactly) and against the GEMM + argmin above:
"""),
    code(r"""
# NBVAL_CHECK_OUTPUT
mine = nearest(x, c).long()
_, by_package = cl.assign(x, c)
by_gemm = gemm_argmin(x, c)
for name, other in (("cl.assign", by_package), ("GEMM + argmin", by_gemm)):
    agree = (mine == other).float().mean().item()
    print(f"labels equal to {name}: {'all' if agree == 1 else f'{agree:.4%}'}")
"""),
    md(r"""
(Where two centroids are almost equally near, float32 rounding may pick either; on random data
that happens to a handful of points in a million, if at all.)

## 3 · Timing the rungs

The same labels four ways: the GEMM + argmin (the matrix stored), this lesson's kernel, the
package's Triton engine (`backend="triton"`: the same idea plus a distance recomputed exactly,
tuned tiles and any D) and the torch engine. Timings are synchronised and warmed up (the first
call compiles the kernel; its time is reported apart). In Triton's interpreter a timing would
measure NumPy, not the kernel, so on a CPU the recorded GPU run is shown instead.
"""),
    code(r"""
if ON_GPU:
    rungs = {
        "GEMM + argmin (stores N x K)": lambda: gemm_argmin(x, c),
        "this lesson's kernel": lambda: nearest(x, c),
        "cl.assign, backend='triton'": lambda: cl.assign(x, c, backend="triton"),
        "cl.assign, backend='torch'": lambda: cl.assign(x, c, backend="torch"),
    }
    times = {name: timeit(fn, repeat=5, device=device) for name, fn in rungs.items()}
    base = times["GEMM + argmin (stores N x K)"].median
    for name, t in times.items():
        print(f"{name:30s} {t}  ({t.median / base:.2f}x the GEMM)")
else:
    records = [json.loads(p.read_text()) for p in sorted(Path("../data/benchmarks").glob("*.json"))]
    gpu = [r for r in records if r.get("meta", {}).get("device_type") == "cuda"]
    if gpu:
        print(cl.bench.recorded("kmeans", prefer="cuda",
                                engines=("clusterlab-triton", "clusterlab-torch", "flash-kmeans",
                                         "fast-pytorch-kmeans", "faiss-gpu")))
    else:
        print("No GPU run is recorded yet: the interpreter checks correctness only. On a GPU,\n"
              "scripts/device_check.sh records the k-means benchmark with backend='triton'\n"
              "against flash-kmeans and the torch engine; this cell then shows it.")
"""),
    md(r"""
## 4 · Mean shift as an online softmax

Notebook 05 showed that one Gaussian mean-shift step is softmax attention: each point $y_i$
moves to $\sum_j \operatorname{softmax}_j(-\lVert y_i - x_j\rVert^2 / 2h^2)\, x_j$. A softmax
needs the maximum and the sum of a whole row — but the row is N long and we want to see it a
tile at a time. Flash attention's trick: keep a running maximum $m$, a running sum $\ell$ of
$e^{s - m}$ and a running weighted sum $a$; when a new tile raises the maximum to $m'$, rescale
what you have by $e^{m - m'}$ and add the tile. At the end $a / \ell$ is the exact softmax
average, and no (M, N) matrix was ever stored.
"""),
    code(r"""
@triton.jit
def shift_kernel(y_ptr, x_ptr, out_ptr, m, n, d, inv_2h2,
                 BLOCK_M: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    feats = tl.arange(0, BLOCK_D)
    fmask = feats[None, :] < d
    y = tl.load(y_ptr + rows[:, None] * d + feats[None, :], mask=(rows[:, None] < m) & fmask,
                other=0.0)  # (BM, BD) the moving points
    y_sq = tl.sum(y * y, 1)  # (BM,)
    run_max = tl.full([BLOCK_M], float("-inf"), tl.float32)  # m
    total = tl.zeros([BLOCK_M], tl.float32)  # l
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)  # a
    for s0 in range(0, n, BLOCK_S):
        src = s0 + tl.arange(0, BLOCK_S)
        xs = tl.load(x_ptr + src[:, None] * d + feats[None, :], mask=(src[:, None] < n) & fmask,
                     other=0.0)  # (BS, BD) a tile of the data
        d2 = y_sq[:, None] + tl.sum(xs * xs, 1)[None, :] - 2.0 * tl.dot(
            y, tl.trans(xs), input_precision="ieee")  # (BM, BS) squared distances
        logit = tl.where(src[None, :] < n, -d2 * inv_2h2, float("-inf"))
        new_max = tl.maximum(run_max, tl.max(logit, 1))
        scale = tl.exp(run_max - new_max)  # rescale what was summed so far
        p = tl.exp(logit - new_max[:, None])  # (BM, BS) this tile's weights
        total = total * scale + tl.sum(p, 1)
        acc = acc * scale[:, None] + tl.dot(p, xs, input_precision="ieee")
        run_max = new_max
    tl.store(out_ptr + rows[:, None] * d + feats[None, :], acc / total[:, None],
             mask=(rows[:, None] < m) & fmask)


def shift_step(y, x, h, block_m=32, block_s=64):
    out = torch.empty_like(y)
    grid = (triton.cdiv(len(y), block_m),)
    shift_kernel[grid](y.contiguous(), x.contiguous(), out, len(y), len(x), y.shape[1],
                       1.0 / (2.0 * h * h), BLOCK_M=block_m, BLOCK_S=block_s,
                       BLOCK_D=max(16, triton.next_power_of_2(y.shape[1])))
    return out


H = 2.5
blobs, _, _ = cl.data.make_six_blobs(1_000 if ON_GPU else 100, seed=SEED)
xb = torch.as_tensor(blobs, device=device)
xb = xb - xb.mean(0)  # centred, as notebook 05 teaches: the expansion keeps its digits
one_step = shift_step(xb, xb, H)
"""),
    code(r"""
# NBVAL_CHECK_OUTPUT
by_package = cl.meanshift(xb, H, max_iter=1, tol=0).points  # the torch/Triton engine, one step
err = (one_step - by_package).abs().max().item()
print(f"{len(xb):,} points, one step: largest difference from cl.meanshift {'< 1e-4' if err < 1e-4 else err}")
"""),
    md(r"""
The package's kernel (`clusterlab/engines/triton_kernels.py`, `_shift_kernel`) is this one plus
the flat kernel, `exp2` instead of `exp` (one multiplication folded into the scale), bf16 inputs
for `precision="medium"` and tuned tiles.

## 5 · A performance model: the roofline

A kernel is limited either by arithmetic (flops per second) or by memory traffic (bytes per
second). Its **arithmetic intensity** $I$ — flops per byte moved — decides which: the attainable
rate is $\min(\text{peak flops},\ I \times \text{bandwidth})$. Both ceilings, measured on this
device: a large matrix product for flops, a large copy for bytes.
"""),
    code(r"""
size = 4096 if ON_GPU else 1024
a = torch.randn(size, size, device=device)
t_mm = timeit(lambda: a @ a, repeat=5, device=device)
flops = 2 * size**3 / t_mm.median
big = torch.ones(64 * 2**20 if ON_GPU else 16 * 2**20, device=device)  # float32
dst = torch.empty_like(big)  # written before: no page faults inside the timing
t_copy = timeit(lambda: dst.copy_(big), repeat=5, device=device)
bandwidth = 2 * big.numel() * 4 / t_copy.median  # read + write
ridge = flops / bandwidth
print(f"{cl.device.device_name(device)}: {flops / 1e9:,.0f} GFLOP/s (float32 GEMM), "
      f"{bandwidth / 1e9:,.0f} GB/s (copy); ridge at {ridge:.0f} flops per byte")
"""),
    md(r"""
For an assignment of N points to K centroids in D dimensions (float32, N large):

- **stored**: $2NKD$ flops; the inputs ($4ND$ bytes) plus the (N, K) matrix written and read
  ($8NK$): $I \approx \dfrac{2KD}{8K + 4D}$, about $D/4$ when $K \gg D$;
- **fused**: the same flops over the inputs and the N labels only: $I \approx \dfrac{2KD}{4D + 12}$,
  about $K/2$.
"""),
    code(r"""
def intensity(k, d, stored):
    # flops per byte of an assignment, per point (N cancels)
    return 2 * k * d / ((8 * k if stored else 12) + 4 * d)


cases = [(50, 2), (256, 64), (1000, 100)]  # (K, D) of the benchmark sizes
fig, ax = plt.subplots(figsize=(6.5, 4))
ii = np.logspace(-1, 4, 200)
ax.loglog(ii, np.minimum(flops, ii * bandwidth) / 1e9, "k-", lw=1)
for (k, d), col in zip(cases, ("C0", "C1", "C2"), strict=True):
    for stored, mark in ((True, "o"), (False, "*")):
        i = intensity(k, d, stored)
        ax.loglog(i, min(flops, i * bandwidth) / 1e9, mark, color=col, ms=9,
                  label=f"K={k}, D={d}, {'stored' if stored else 'fused'}")
ax.axvline(ridge, color="grey", ls=":", lw=1)
ax.set(xlabel="arithmetic intensity (flop / byte)", ylabel="attainable GFLOP/s",
       title=f"roofline of {cl.device.device_name(device)}")
ax.legend(fontsize=7, loc="lower right")
plt.show()
for k, d in cases:
    print(f"K={k:4d}, D={d:3d}: stored I = {intensity(k, d, True):6.1f}, "
          f"fused I = {intensity(k, d, False):7.1f} flop/byte (ridge {ridge:.0f})")
"""),
    md(r"""
Read the plot: a point left of the ridge is memory-bound, its speed set by bytes; right of it,
compute-bound. At D = 2 the stored matrix makes the assignment badly memory-bound, and fusing
moves it right across the ridge — the whole win of KeOps and of this kernel at small D. At
D = 100 the stored version is already near the ridge: a GEMM, which runs at the full compute
rate, is hard to beat, which is what 06's sweep measured. (On a GPU the tensor cores raise the
compute ceiling far above the float32 line, section 6, which moves the ridge right again.)

## 6 · Precision: TF32 and bf16

`precision="high"` multiplies in TF32 (10-bit mantissas, float32 sums), `"medium"` in bf16
(8-bit mantissas, float32 sums); on a recent NVIDIA GPU both run on tensor cores, several times
the float32 rate. A lower precision can only swap the labels of points nearly equidistant from
two centroids; the package then recomputes the distances in float32. Measured here (a CPU has
no TF32, so "high" is plain float32 there, and the torch engine *emulates* bf16 — the same
labels a GPU would give, but slower, not faster):
"""),
    code(r"""
ref_dist, ref_labels = cl.assign(x, c, precision="highest")
for precision in ("highest", "high", "medium"):
    dist, labels = cl.assign(x, c, precision=precision)
    moved = (labels != ref_labels).sum().item()
    gap = (dist.double().sum() / ref_dist.double().sum() - 1).item()
    t = timeit(lambda p=precision: cl.assign(x, c, precision=p), repeat=3, device=device)
    print(f"{precision:8s}: {moved:6,} of {N:,} labels differ from 'highest'; "
          f"sum of distances {gap:+.1e} relative; {t}")
"""),
    md(r"""
## 7 · Where one Lloyd iteration spends its time

`torch.profiler` lists the kernels (on a GPU) or operators (on a CPU) of one iteration of
`cl.kmeans` with the default engine. On a GPU the assignment kernel dominates and the update
(sorting by label, the segmented sums) and the bookkeeping are small. On a CPU the package's
assignment and sums are numba kernels, which torch's profiler does not see: the table then
shows only the bookkeeping around them — a reminder to check what a profiler can measure.
"""),
    code(r"""
from torch.profiler import ProfilerActivity, profile

acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if ON_GPU else [])
cl.kmeans(x, K, init=c, max_iter=1, tol=0)  # warm-up: compiles, fills caches
with profile(activities=acts) as prof:
    cl.kmeans(x, K, init=c, max_iter=1, tol=0)
key = "self_cuda_time_total" if ON_GPU else "self_cpu_time_total"
print(prof.key_averages().table(sort_by=key, row_limit=8, max_name_column_width=40))
"""),
    md(r"""
## Exercises

### Exercise 1 · Cosine in your own kernel

Spherical k-means (03) assigns unit rows to the centroid of **largest cosine**. Write
`my_nearest_cosine(x, c)` returning the (N,) labels, with a Triton kernel like `nearest_kernel`
(the rows of `x` and `c` are unit vectors). The self-check compares the labels and also watches
every torch operation inside your function: one that makes an (N, K) tensor fails it.
"""),
    code(r"""
def my_nearest_cosine(x, c):
    raise NotImplementedError  # your kernel and its launch here


ok = cl.checks.check_fused_assign(my_nearest_cosine, metric="cosine")
"""),
    md(r"""
**Solution** (collapsed — expand it once you have tried): the largest cosine is the smallest
$-x\cdot c$, so the Euclidean kernel works with the $\lVert c\rVert^2$ term removed.
"""),
    code(r"""
@triton.jit
def nearest_cosine_kernel(x_ptr, c_ptr, labels_ptr, n, k, d,
                          BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    feats = tl.arange(0, BLOCK_D)
    x = tl.load(x_ptr + rows[:, None] * d + feats[None, :],
                mask=(rows[:, None] < n) & (feats[None, :] < d), other=0.0)
    best = tl.full([BLOCK_N], float("inf"), tl.float32)
    best_j = tl.zeros([BLOCK_N], tl.int32)
    for k0 in range(0, k, BLOCK_K):
        cols = k0 + tl.arange(0, BLOCK_K)
        ct = tl.load(c_ptr + cols[:, None] * d + feats[None, :],
                     mask=(cols[:, None] < k) & (feats[None, :] < d), other=0.0)
        score = -tl.dot(x, tl.trans(ct), input_precision="ieee")  # (BN, BK) minus the cosines
        score = tl.where(cols[None, :] < k, score, float("inf"))
        tile_best = tl.min(score, 1)
        better = tile_best < best
        best = tl.where(better, tile_best, best)
        best_j = tl.where(better, tl.argmin(score, 1) + k0, best_j)
    tl.store(labels_ptr + rows, best_j, mask=rows < n)


def my_nearest_cosine(x, c, block_n=64, block_k=32):
    labels = torch.empty(len(x), dtype=torch.int64, device=x.device)
    nearest_cosine_kernel[(triton.cdiv(len(x), block_n),)](
        x.contiguous(), c.contiguous(), labels, len(x), len(c), x.shape[1],
        BLOCK_N=block_n, BLOCK_K=block_k, BLOCK_D=max(16, triton.next_power_of_2(x.shape[1])))
    return labels


assert cl.checks.check_fused_assign(my_nearest_cosine, metric="cosine")
""", hidden=True),
    md(r"""
### Exercise 2 · Which side of the ridge?

Using `intensity` and this device's `ridge` from section 5, write `memory_bound(k, d, stored)`
returning True when that assignment is memory-bound here. Then find the smallest D at which the
*stored* assignment with K = 1000 becomes compute-bound on this device.
"""),
    code(r"""
def memory_bound(k, d, stored):
    raise NotImplementedError


ok = cl.checks.check_memory_bound(memory_bound, ridge)
"""),
    md("**Solution** (collapsed — expand it once you have tried): compare the flops per byte "
       "with the ridge; then walk D up until the stored assignment crosses it."),
    code(r"""
def memory_bound(k, d, stored):
    return intensity(k, d, stored) < ridge


assert cl.checks.check_memory_bound(memory_bound, ridge)
d_star = next(d for d in range(1, 100_000) if not memory_bound(1000, d, True))
print(f"stored, K = 1000: compute-bound from D = {d_star} on this device "
      f"(fused: from D = {next(d for d in range(1, 100_000) if not memory_bound(1000, d, False))})")
""", hidden=True),
    md(r"""
## Summary

- A GEMM + argmin writes and re-reads an (N, K) matrix: 8 bytes per pair for $2D$ flops, so at
  small D it is memory-bound however fast the GEMM is.
- A Triton kernel is written for one program and one tile: `tl.arange` offsets, masked loads,
  `tl.dot` into registers, a running (min, argmin) — and only N labels leave. It gives the same
  labels as `cl.assign`; `backend="triton"` is the tuned version of it.
- Mean shift's Gaussian step is an online softmax over tiles of the data: a running maximum,
  sum and weighted sum, rescaled when the maximum grows — flash attention's trick.
- The roofline: intensity $\approx D/4$ stored against $\approx K/2$ fused, compared with this
  device's ridge (flops ÷ bandwidth), says when fusing pays (small D) and when a GEMM is as good.
- TF32 and bf16 buy tensor-core speed on a GPU and can only swap near-ties; the package
  recomputes the distances in float32.

Next, **08 · faiss**: a library built around GEMM-based k-means and nearest-neighbour search,
measured against clusterlab and scikit-learn.
"""),
]


def main():
    nb = nbformat.v4.new_notebook()
    nb.cells = CELLS
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    path = ROOT / "notebooks" / "07_triton.ipynb"
    nbformat.write(nb, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
