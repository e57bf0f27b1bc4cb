"""The fused CPU kernels give the same answers as the plain torch/NumPy path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import clusterlab as cl
from clusterlab.engines import cpu_kernels
from tests._helpers import loop_assign

pytestmark = pytest.mark.skipif(not cpu_kernels.available(), reason="numba is not installed")


@pytest.mark.parametrize(("n", "d", "k"), [(1000, 2, 7), (777, 8, 50), (500, 1, 3)])
def test_assign_direct_matches_the_double_loop(n, d, k):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, d)).astype(np.float32)
    c = rng.normal(size=(k, d)).astype(np.float32)
    labels = np.empty(n, dtype=np.int64)
    dist = np.empty(n, dtype=np.float32)
    cpu_kernels.assign_direct(x, np.ascontiguousarray(c.T), labels, dist)
    ref_dist, ref_labels = loop_assign(x, c)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, rows", [(1, 7), (41, 300), (1000, 513), (3, 256)])
def test_argmin_cols_matches_numpy(k, rows, dtype):
    # (k, rows) blocks; rows not a multiple of the 256-column strip, k = 1 included
    g = np.random.default_rng(k).normal(size=(k, rows)).astype(dtype)
    lab = np.full(rows, -1, dtype=np.int64)
    best = np.empty(rows, dtype=dtype)
    cpu_kernels.argmin_cols(g, lab, best)
    np.testing.assert_array_equal(lab, g.argmin(0))
    np.testing.assert_array_equal(best, g.min(0))


def test_argmin_cols_keeps_the_first_index_on_ties():
    # few distinct values: most columns have ties, and argmin's rule is the first index
    g = np.random.default_rng(3).integers(0, 3, size=(50, 700)).astype(np.float32)
    lab = np.empty(700, dtype=np.int64)
    best = np.empty(700, dtype=np.float32)
    cpu_kernels.argmin_cols(g, lab, best)
    np.testing.assert_array_equal(lab, g.argmin(0))


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
