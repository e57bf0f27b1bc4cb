"""Every teaching rung gives the package's answer (same init, same number of steps)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import clusterlab as cl
from clusterlab import ladder
from tests._helpers import six_blobs


@pytest.fixture(scope="module")
def data():
    x, _, _ = six_blobs(seed=2, n=60, dtype=np.float64)
    return x, x[[0, 1, 2, 60, 61, 200]]  # a poor start so the steps matter


def test_kmeans_rungs_match_the_package(data):
    x, c0 = data
    ref = cl.kmeans(x, 6, init=c0, max_iter=3, tol=0)
    t = torch.from_numpy(x)
    rungs = {
        "loops": ladder.kmeans_loops(x, c0, 3),
        "broadcast": ladder.kmeans_broadcast(x, c0, 3),
        "torch_naive": ladder.kmeans_torch_naive(t, c0, 3),
        "torch_vectorized": ladder.kmeans_torch_vectorized(t, c0, 3),
    }
    for name, (c, labels) in rungs.items():
        np.testing.assert_allclose(cl._validate.to_numpy(c), ref.centroids, atol=1e-9, err_msg=name)
        np.testing.assert_array_equal(cl._validate.to_numpy(labels), ref.labels, err_msg=name)


def test_broadcast_refuses_a_tensor_over_its_limit(data):
    x, c0 = data
    with pytest.raises(MemoryError, match=r"\(360, 6, 2\) difference tensor needs 34,560 bytes"):
        ladder.kmeans_broadcast(x, c0, 1, max_bytes=1000)


def test_memory_bytes():
    m = ladder.memory_bytes(1_000_000, 1000, 100, itemsize=4, chunk_rows=1000)
    assert m == {"broadcast": 400_000_000_000, "distances": 4_000_000_000, "chunked": 4_000_000}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_meanshift_rungs_match_the_package(dtype):
    x, _, _ = six_blobs(seed=3, n=40, dtype=dtype)
    ref = cl.meanshift(x, 2.5, max_iter=3, tol=0).points
    t = torch.from_numpy(x)
    tol = 1e-9 if dtype == np.float64 else 2e-4
    rungs = {
        "loop_numpy": ladder.meanshift_loop_numpy(x, 2.5, 3),
        "loop_torch": ladder.meanshift_loop_torch(t, 2.5, 3),
        "broadcast_torch": ladder.meanshift_broadcast_torch(t, 2.5, 3),
        "attention": ladder.meanshift_attention(t, 2.5, 3),
    }
    for name, pts in rungs.items():
        np.testing.assert_allclose(cl._validate.to_numpy(pts), ref, atol=tol, rtol=0, err_msg=name)
