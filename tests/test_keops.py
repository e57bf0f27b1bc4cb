"""The KeOps engine agrees with the NumPy engine (CPU here; CUDA where there is one).

Every formula is compiled once per dimension and dtype (g++ on a CPU, ~6-8 s each) and
cached in KEOPS_CACHE_FOLDER, so the tests share one data shape: float32, d = 2.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import clusterlab as cl
from tests._helpers import same_partition, six_blobs


@pytest.fixture(scope="module")
def keops_ok(keops_lazytensor):
    return keops_lazytensor


@pytest.fixture(scope="module")
def blobs():
    x, y, centers = six_blobs(seed=0, dtype=np.float32)
    return x, y, centers


def test_missing_pykeops_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pykeops", None)
    monkeypatch.setitem(sys.modules, "pykeops.torch", None)
    with pytest.raises(ImportError, match=r"pip install pykeops==2.3"):
        cl.kmeans(np.zeros((10, 2)), 2, backend="keops")


def test_auto_never_picks_keops(blobs):
    from clusterlab.engines import get_engine

    assert get_engine("auto", blobs[0]).name == "torch"


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_kmeans_agrees_with_numpy(keops_ok, blobs, metric):
    x, y, _ = blobs
    a = cl.kmeans(x, 6, seed=0, metric=metric, backend="keops")
    b = cl.kmeans(x, 6, seed=0, metric=metric, backend="numpy")
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.inertia == pytest.approx(b.inertia, rel=1e-4)
    np.testing.assert_allclose(a.centroids, b.centroids, rtol=1e-4, atol=1e-4)
    if metric == "euclidean":
        assert same_partition(a.labels, y)
    else:
        np.testing.assert_allclose(np.linalg.norm(a.centroids, axis=1), 1.0, atol=1e-5)


def test_assign_agrees_with_numpy(keops_ok, blobs):
    x, _, centers = blobs
    c = centers.astype(np.float32)
    d1, l1 = cl.assign(x, c, backend="keops")
    d2, l2 = cl.assign(x, c, backend="numpy")
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_allclose(d1, d2, rtol=1e-4, atol=1e-3)


def test_assign_keeps_digits_far_from_the_origin(keops_ok, blobs):
    x, _, centers = blobs
    far = (x.astype(np.float64) + 1e4).astype(np.float32)
    _, near_labels = cl.assign(x, centers.astype(np.float32), backend="keops")
    _, far_labels = cl.assign(far, (centers + 1e4).astype(np.float32), backend="keops")
    assert (near_labels != far_labels).mean() < 0.01


@pytest.mark.parametrize("kernel", ["gaussian", "flat"])
def test_meanshift_finds_the_same_centres(keops_ok, blobs, kernel):
    x, _, _ = blobs
    a = cl.meanshift(x, 3.0, kernel=kernel, backend="keops")
    b = cl.meanshift(x, 3.0, kernel=kernel, backend="numpy")
    assert a.centers.shape == b.centers.shape
    np.testing.assert_allclose(a.centers, b.centers, atol=1e-2)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_torch_in_torch_out(keops_ok, blobs):
    t = torch.from_numpy(blobs[0])
    res = cl.kmeans(t, 6, seed=0, backend="keops")
    assert isinstance(res.centroids, torch.Tensor) and res.labels.dtype == torch.int64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_agrees_with_cpu(keops_ok, blobs):
    x, _, _ = blobs
    g = cl.kmeans(torch.from_numpy(x).cuda(), 6, seed=0, backend="keops")
    c = cl.kmeans(x, 6, seed=0, backend="numpy")
    np.testing.assert_array_equal(g.labels.cpu().numpy(), c.labels)
    ms = cl.meanshift(torch.from_numpy(x).cuda(), 3.0, backend="keops")
    assert ms.centers.is_cuda and len(ms.centers) == 6
