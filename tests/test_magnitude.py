"""Data of any finite magnitude: k-means and mean shift commute with scaling by 2**e.

Float32 data near 1e19 overflow squared distances and data near 1e-30 underflow them;
clusterlab works on the data scaled by a power of two (exact) and scales results back,
so the answer is the one for the unscaled data -- never NaN, never unrelated labels.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import clusterlab as cl
from tests._helpers import same_partition, six_blobs

BACKENDS = ["numpy", "torch"]
SCALES = [(1e19, np.float32), (1e-30, np.float32), (1e200, np.float64), (1e-200, np.float64),
          (2.0**40, np.float32)]


@pytest.fixture(scope="module")
def blobs():
    x, y, _ = six_blobs(seed=0, n=60)
    return x.astype(np.float64)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scale,dtype", SCALES)
def test_kmeans_at_any_magnitude_equals_the_unscaled_run(blobs, backend, scale, dtype):
    base = cl.kmeans(blobs.astype(dtype), 6, seed=0, backend=backend)
    x = blobs.astype(dtype) * dtype(scale)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an inertia beyond the dtype: inf
        res = cl.kmeans(x, 6, seed=0, backend=backend)
        dist, labels = cl.assign(x, res.centroids, backend=backend)
    assert same_partition(res.labels, base.labels)
    np.testing.assert_array_equal(labels, res.labels)
    assert np.isfinite(res.centroids).all()
    np.testing.assert_allclose(res.centroids / dtype(scale), base.centroids, rtol=1e-4,
                               atol=1e-4)
    assert not np.isnan(dist).any() and not np.isnan(res.inertia)
    if np.isfinite(res.inertia) and res.inertia > 0:
        assert res.inertia / scale / scale == pytest.approx(base.inertia, rel=1e-4)


@pytest.mark.parametrize("scale,dtype", SCALES)
def test_plusplus_and_bandwidth_at_any_magnitude(blobs, scale, dtype):
    x = blobs.astype(dtype) * dtype(scale)
    seeds = cl.kmeans_plusplus(x, 6, seed=0)
    assert len(np.unique(seeds, axis=0)) == 6  # distinct points, not duplicates
    np.testing.assert_array_equal(seeds, cl.kmeans_plusplus(blobs.astype(dtype), 6, seed=0)
                                  * dtype(scale))
    h = cl.estimate_bandwidth(x)
    assert np.isfinite(h) and h / scale == pytest.approx(cl.estimate_bandwidth(blobs), rel=1e-4)


@pytest.mark.parametrize("scale,dtype", SCALES)
def test_meanshift_at_any_magnitude(blobs, scale, dtype):
    x = blobs.astype(dtype) * dtype(scale)
    base = cl.meanshift(blobs.astype(dtype), 3.0, max_iter=30)
    res = cl.meanshift(x, 3.0 * scale, max_iter=30)
    assert len(res.centers) == len(base.centers)
    assert same_partition(res.labels, base.labels)
    assert res.bandwidth == 3.0 * scale
    np.testing.assert_allclose(res.centers / dtype(scale), base.centers, rtol=1e-4, atol=1e-4)


def test_a_far_centroid_gives_no_nan():
    x = six_blobs(seed=1, n=20)[0]
    c = np.array([[0.0, 0.0], [10.0, 10.0], [1e30, 1e30]], dtype=np.float32)
    for backend in BACKENDS:
        dist, labels = cl.assign(x, c, backend=backend)
        assert np.isfinite(dist).all() and labels.max() <= 1
        ref = ((x[:, None, :].astype(np.float64) - c[None, :2]) ** 2).sum(-1).argmin(1)
        np.testing.assert_array_equal(labels, ref)


def test_an_overflowing_inertia_warns_instead_of_nan(blobs):
    with pytest.warns(RuntimeWarning, match="do not fit the data's dtype"):
        res = cl.kmeans(blobs * 1e200, 6, seed=0)
    assert res.inertia == np.inf


@pytest.mark.parametrize("backend", BACKENDS)
def test_cosine_rows_near_1e20_give_unit_centroids(blobs, backend):
    x = (blobs + 50).astype(np.float32) * np.float32(1e20)
    res = cl.kmeans(x, 3, metric="cosine", seed=0, backend=backend)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(res.centroids), axis=1), 1, rtol=1e-5)
    base = cl.kmeans((blobs + 50).astype(np.float32), 3, metric="cosine", seed=0, backend=backend)
    assert same_partition(res.labels, base.labels)
    tiny = cl.kmeans(x * np.float32(1e-45), 3, metric="cosine", seed=0, backend=backend)
    assert same_partition(tiny.labels, base.labels)  # rows near 1e-25: norms underflow


def test_cosine_zero_rows_are_refused():
    with pytest.raises(ValueError, match="norm zero"):
        cl.kmeans(np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]), 2, metric="cosine")


@pytest.mark.parametrize("bandwidth", [1e-20, 1e-170])
def test_meanshift_bandwidth_below_resolution_is_refused(blobs, bandwidth):
    with pytest.raises(ValueError, match=r"bandwidth=.* is below what float64 data resolve"):
        cl.meanshift(blobs, bandwidth)
    with pytest.raises(ValueError, match=r"or float64 data"):
        cl.meanshift(torch.as_tensor(blobs, dtype=torch.float32), bandwidth)


def test_meanshift_huge_bandwidth_and_tol_merge_everything(blobs):
    res = cl.meanshift(blobs, 1e155, tol=1e200)
    assert len(res.centers) == 1
    np.testing.assert_allclose(res.centers[0], blobs.mean(0), rtol=1e-6)


def test_merging_with_a_tiny_radius_keeps_distinct_points_apart(blobs):
    x = blobs[:100]
    res = cl.meanshift(x, 3.0, max_iter=0, merge_radius=1e-30)
    assert len(res.centers) == len(np.unique(x, axis=0))
    far = cl.meanshift(np.array([[0.0], [1.0], [9.22e18]]) / 9.22e18 * 1e-2, 1e-3, max_iter=0)
    assert len(far.centers) == 2  # 0 and 1 (1e-21 apart) merge; the far point does not
