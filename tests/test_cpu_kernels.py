"""The fused CPU kernels give the same answers as the plain torch/NumPy path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import clusterlab as cl
from clusterlab.engines import cpu_kernels
from tests._helpers import loop_assign

pytestmark = pytest.mark.skipif(not cpu_kernels.available(), reason="numba is not installed")


@pytest.mark.parametrize(("n", "d", "k"), [(1000, 2, 7), (777, 8, 50), (500, 1, 3), (900, 40, 300)])
def test_torch_engine_assign_matches_the_double_loop(n, d, k):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, d)).astype(np.float32)
    c = rng.normal(size=(k, d)).astype(np.float32)
    dist, labels = cl.assign(x, c, backend="torch")
    ref_dist, ref_labels = loop_assign(x, c)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, k, rows", [(7, 1, 16), (300, 41, 256), (1300, 1000, 48), (700, 3, 300)])
def test_assign_blocks_matches_numpy(n, k, rows, dtype):
    # blocks and 256-column strips that do not divide n, k = 1 included
    rng = np.random.default_rng(k)
    x = rng.normal(size=(n, 6)).astype(dtype)
    c = rng.normal(size=(k, 6)).astype(dtype)
    bias = (c * c).sum(1)
    x_sq = (x * x).sum(1)
    lab = np.full(n, -1, dtype=np.int64)
    dist = np.empty(n, dtype=dtype)
    with cpu_kernels.single_threaded_blas():
        cpu_kernels.assign_blocks(x, -2 * c, bias, x_sq, 0.0, rows, lab, dist)
    g = bias[None, :] - 2 * x @ c.T  # (n, k)
    np.testing.assert_array_equal(lab, g.argmin(1))
    np.testing.assert_allclose(dist, np.maximum(g.min(1) + x_sq, 0), rtol=1e-5, atol=1e-5)
    # cosine: no per-row norms, a constant added instead
    cpu_kernels.assign_blocks(x, -c, np.zeros(k, dtype), np.empty(0, dtype), 1.0, rows, lab, dist)
    g = 1.0 - x @ c.T
    np.testing.assert_array_equal(lab, g.argmin(1))
    np.testing.assert_allclose(dist, np.maximum(g.min(1), 0), rtol=1e-5, atol=1e-5)


def test_assign_blocks_keeps_the_first_index_on_ties():
    # duplicated centroids: every point ties between j and j + 10; argmin keeps the first
    rng = np.random.default_rng(3)
    x = rng.integers(-2, 3, size=(700, 4)).astype(np.float32)
    c = np.concatenate([x[:10], x[:10]])
    lab = np.empty(700, dtype=np.int64)
    dist = np.empty(700, dtype=np.float32)
    cpu_kernels.assign_blocks(x, -2 * c, (c * c).sum(1), (x * x).sum(1), 0.0, 64, lab, dist)
    g = (c * c).sum(1)[None, :] - 2 * x @ c.T
    np.testing.assert_array_equal(lab, g.argmin(1))
    assert lab.max() < 10


def test_block_rows_fit_the_cache_budget():
    assert cpu_kernels.block_rows(100, 4) == cpu_kernels.MAX_BLOCK_ROWS
    rows = cpu_kernels.block_rows(1000, 4)
    assert rows % 16 == 0 and rows * 1000 * 4 <= cpu_kernels.L2_BLOCK_BYTES
    assert cpu_kernels.block_rows(10**6, 8) == 16  # never below 16 points
    assert cpu_kernels.block_rows(1000, 4, chunk_size=37) == 37
    # a chunk larger than the data, or than numba's loop bounds, is clipped (no overflow)
    assert cpu_kernels.block_rows(1000, 4, chunk_size=2**63 - 1, n=500) == 500
    assert cpu_kernels.block_rows(1000, 4, chunk_size=2**63 - 1) == 2**31 - 1
    assert cpu_kernels.block_rows(1000, 4, chunk_size=0, n=500) == 1


def test_cluster_sums_match_bincount():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1001, 5))
    labels = rng.integers(0, 9, size=1001)
    w = rng.uniform(0, 2, size=1001)
    sums, counts = cpu_kernels.cluster_sums(x, labels, w, 9, 2)
    ref = np.stack([np.bincount(labels, weights=w * x[:, j], minlength=9) for j in range(5)], 1)
    np.testing.assert_allclose(sums, ref, rtol=1e-12)
    np.testing.assert_allclose(counts, np.bincount(labels, weights=w, minlength=9), rtol=1e-12)
    # no weights: an empty array stands for all ones
    sums1, counts1 = cpu_kernels.cluster_sums(x, labels, np.empty(0), 9, 2)
    np.testing.assert_allclose(sums1, np.stack([np.bincount(labels, weights=x[:, j], minlength=9) for j in range(5)], 1))
    np.testing.assert_array_equal(counts1, np.bincount(labels, minlength=9))


@pytest.mark.parametrize("d", [2, 32])
def test_kmeans_is_the_same_with_and_without_numba(monkeypatch, d):
    x = cl.data.make_gaussian_cloud(3000, d, seed=0)
    c0 = x[:20]
    fast = cl.kmeans(x, 20, init=c0, max_iter=5, tol=0, backend="torch")
    monkeypatch.setattr(cpu_kernels, "available", lambda: False)
    plain = cl.kmeans(x, 20, init=c0, max_iter=5, tol=0, backend="torch")
    np.testing.assert_array_equal(fast.labels, plain.labels)
    np.testing.assert_allclose(fast.centroids, plain.centroids, rtol=1e-4, atol=1e-5)
    assert fast.inertia == pytest.approx(plain.inertia, rel=1e-5)
    t = torch.from_numpy(x)
    assert isinstance(cl.kmeans(t, 3, seed=0).centroids, torch.Tensor)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("chunk_size", [None, 37])
def test_assign_blocks_are_the_same_with_and_without_numba(monkeypatch, metric, chunk_size):
    # d = 16 takes the GEMM + column-argmin path; 37-row blocks leave a short last block
    x = cl.data.make_gaussian_cloud(1000, 16, seed=2)
    c = x[::50]
    fast = cl.assign(x, c, metric=metric, chunk_size=chunk_size, backend="torch")
    monkeypatch.setattr(cpu_kernels, "available", lambda: False)
    plain = cl.assign(x, c, metric=metric, chunk_size=chunk_size, backend="torch")
    ref = cl.assign(x, c, metric=metric, backend="numpy")
    np.testing.assert_array_equal(fast[1], plain[1])  # labels
    np.testing.assert_array_equal(fast[1], ref[1])
    np.testing.assert_allclose(fast[0], ref[0], rtol=1e-4, atol=1e-4)  # distances


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_centre_matches_mean_subtract_square(dtype):
    from clusterlab.engines.base import Engine
    from clusterlab.engines.torch_engine import TorchEngine

    rng = np.random.default_rng(4)
    x = torch.from_numpy((rng.normal(size=(2001, 7)) * 3 + 100).astype(dtype))
    w = torch.from_numpy(rng.uniform(0, 2, size=2001).astype(dtype))
    eng = TorchEngine("cpu")
    for kwargs in ({}, {"w": w}, {"offset": x[:5].mean(0)}):
        xp, off, sq = eng.centre(x, **kwargs)
        ref_xp, ref_off, ref_sq = Engine.centre(eng, x, **kwargs)  # mean, subtract, square
        assert xp.dtype == off.dtype == sq.dtype == x.dtype
        np.testing.assert_allclose(off, ref_off, rtol=1e-6)
        np.testing.assert_allclose(xp, ref_xp, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(sq, ref_sq, rtol=1e-4, atol=1e-3)


def test_kernels_follow_torch_threads():
    import numba

    before = numba.get_num_threads()
    with cpu_kernels.parallel_threads(1):
        assert numba.get_num_threads() == 1
    with cpu_kernels.parallel_threads(10**6, busy=False):  # capped at numba's pool
        assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    with cpu_kernels.parallel_threads(10**6):  # and fewer while the machine is busy
        assert 1 <= numba.get_num_threads() <= numba.config.NUMBA_NUM_THREADS
    assert numba.get_num_threads() == before
    x = cl.data.make_gaussian_cloud(2000, 12, seed=5)
    ref = cl.kmeans(x, 9, max_iter=4, tol=0, backend="torch")
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = cl.kmeans(x, 9, max_iter=4, tol=0, backend="torch")
    finally:
        torch.set_num_threads(torch_threads)
    np.testing.assert_array_equal(one.labels, ref.labels)
    assert one.inertia == pytest.approx(ref.inertia, rel=1e-6)
    assert numba.get_num_threads() == before


# --------------------------------------------------------------------------------------
# a busy machine: fewer threads, the same results
# --------------------------------------------------------------------------------------


def test_weighted_total_matches_numpy():
    rng = np.random.default_rng(6)
    v = rng.uniform(0, 3, size=10_001).astype(np.float32)
    w = rng.uniform(0, 2, size=10_001).astype(np.float32)
    for parts in (1, 2, 7):
        assert cpu_kernels.weighted_total(v, np.empty(0), parts) == pytest.approx(v.astype(np.float64).sum(), rel=1e-12)
        ref = (v.astype(np.float64) * w).sum()
        assert cpu_kernels.weighted_total(v, w, parts) == pytest.approx(ref, rel=1e-12)


def test_threads_follow_the_other_processes_load(monkeypatch):
    cpus = frozenset(range(4))
    monkeypatch.setattr(cpu_kernels, "_cpus", lambda: cpus)
    for busy, want, got in ((0.0, 4, 4), (0.3, 4, 4), (1.0, 4, 3), (2.6, 4, 1), (3.9, 4, 1), (9.0, 4, 1),
                            (0.0, 2, 2), (1.0, 2, 2), (2.0, 2, 2), (3.0, 2, 1), (0.0, 1, 1)):
        monkeypatch.setattr(cpu_kernels, "busy_cpus", lambda busy=busy: busy)
        assert cpu_kernels.threads_for(want) == got, (busy, want)


def test_a_big_loop_keeps_its_threads_on_a_busy_machine(monkeypatch):
    import numba

    pool = numba.config.NUMBA_NUM_THREADS
    monkeypatch.setattr(cpu_kernels, "threads_for", lambda n: 1)  # as if every core were busy
    with cpu_kernels.parallel_threads(pool):
        assert numba.get_num_threads() == 1
    with cpu_kernels.parallel_threads(pool, work=cpu_kernels.BIG_WORK):
        assert numba.get_num_threads() == pool
    with cpu_kernels.parallel_threads(pool, busy=False):
        assert numba.get_num_threads() == pool


def test_busy_cpus_is_measured_over_an_interval(monkeypatch):
    ticks = {"busy": 1000, "total": 4000, "own": 100}
    monkeypatch.setattr(cpu_kernels, "cpu_ticks", lambda cpus: (ticks["busy"], ticks["total"]))
    monkeypatch.setattr(cpu_kernels, "process_ticks", lambda: ticks["own"])
    now = [100.0]
    monkeypatch.setattr(cpu_kernels.time, "monotonic", lambda: now[0])
    load = cpu_kernels._Load()
    cpus = frozenset(range(2))
    assert load.busy_cpus(cpus) == 0.0  # nothing to compare with yet
    # 0.5 s on 2 CPUs = 100 ticks: 80 busy, of which 20 ours -> 60 ticks = 1.2 CPUs of others
    ticks.update(busy=1080, total=4100, own=120)
    now[0] += 0.5
    assert load.busy_cpus(cpus) == pytest.approx(1.2)
    ticks.update(busy=1180, total=4200, own=220)  # within the interval: the last measurement
    now[0] += cpu_kernels.LOAD_INTERVAL_S / 2
    assert load.busy_cpus(cpus) == pytest.approx(1.2)
    now[0] += cpu_kernels.LOAD_INTERVAL_S
    assert load.busy_cpus(cpus) == pytest.approx(0.0)  # all of it was ours
    monkeypatch.setattr(cpu_kernels, "cpu_ticks", lambda cpus: open("/nonexistent/proc/stat"))
    now[0] += 1
    assert load.busy_cpus(cpus) == 0.0 and load.broken  # no /proc: never fewer threads


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_results_do_not_depend_on_the_threads_a_call_gets(monkeypatch, metric):
    # the same bits with 1 thread (a busy machine) and with all of numba's pool
    x = cl.data.make_gaussian_cloud(5000, 12, seed=7)
    w = np.random.default_rng(7).uniform(0.5, 2, size=5000).astype(np.float32)
    runs = []
    for threads in (1, 10**6):
        monkeypatch.setattr(cpu_kernels, "threads_for", lambda n, t=threads: max(1, min(n, t)))
        runs.append(cl.kmeans(x, 17, max_iter=6, tol=0, weights=w, metric=metric, backend="torch"))
    one, many = runs
    np.testing.assert_array_equal(one.labels, many.labels)
    np.testing.assert_array_equal(one.centroids, many.centroids)
    assert one.inertia == many.inertia


def test_numba_s_pool_does_not_change_torch_s_threads():
    # numba's omp layer starts on torch's OpenMP runtime and sets its thread count
    code = ("import torch; torch.set_num_threads(1)\n"
            "import numpy as np, clusterlab as cl\n"
            "cl.kmeans(np.random.default_rng(0).normal(size=(500, 3)), 4, backend='torch')\n"
            "print(torch.get_num_threads())")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_mean_shift_on_a_busy_cpu_runs_torch_on_the_free_threads(monkeypatch):
    import torch

    import clusterlab as cl
    from clusterlab.engines.torch_engine import TorchEngine

    x = torch.as_tensor(np.random.default_rng(3).normal(size=(700, 3)))
    before = torch.get_num_threads()
    seen = []
    blocks = TorchEngine._shift_blocks

    def spy(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return blocks(self, *args, **kwargs)

    monkeypatch.setattr(TorchEngine, "_shift_blocks", spy)
    monkeypatch.setattr(cpu_kernels, "threads_for", lambda n: n)  # as if the machine were quiet
    quiet = cl.meanshift(x, 1.0, max_iter=3, tol=0, backend="torch")
    assert set(seen) == {before}
    monkeypatch.setattr(cpu_kernels, "threads_for", lambda n: 1)  # as if every core were busy
    seen.clear()
    busy = cl.meanshift(x, 1.0, max_iter=3, tol=0, backend="torch")
    assert set(seen) == {1} and torch.get_num_threads() == before  # restored after each step
    assert torch.equal(busy.points, quiet.points)  # the same numbers on fewer threads
    with cpu_kernels.torch_threads(work=cpu_kernels.BIG_WORK):  # a big step keeps its threads
        assert torch.get_num_threads() == before


def test_torch_threads_by_load_one_thread_or_untouched(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.setattr(cpu_kernels, "threads_for", lambda n: n)  # a quiet machine
    with cpu_kernels.torch_threads(work=10, by_load=False) as adjust:
        # results that depend on the thread count: one thread, whatever the load
        assert torch.get_num_threads() == 1
        adjust()
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    monkeypatch.setattr(cpu_kernels, "threads_for", lambda n: 1)  # a busy machine
    with cpu_kernels.torch_threads(work=10, device_type="cuda"):  # not a CPU: untouched
        assert torch.get_num_threads() == before
    with cpu_kernels.torch_threads(work=10) as adjust:
        assert torch.get_num_threads() == 1
        monkeypatch.setattr(cpu_kernels, "threads_for", lambda n: n)  # the load went away
        adjust()
        assert torch.get_num_threads() == before
    assert torch.get_num_threads() == before
