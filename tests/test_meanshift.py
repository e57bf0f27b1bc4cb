"""Mean shift and the bandwidth estimate against hand computations and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import MeanShift
from sklearn.cluster import estimate_bandwidth as sk_estimate_bandwidth

import clusterlab as cl
from tests._helpers import same_partition, six_blobs

BACKENDS = ["numpy", "torch"]


@pytest.fixture(scope="module")
def blobs():
    return six_blobs(seed=0)


def hand_step(x, h, kernel):
    """One mean-shift step written as a loop over points."""
    out = np.empty_like(x, dtype=np.float64)
    for i, y in enumerate(x):
        d2 = ((x - y) ** 2).sum(1)
        w = np.exp(-d2 / (2 * h * h)) if kernel == "gaussian" else (d2 <= h * h).astype(float)
        out[i] = (w[:, None] * x).sum(0) / w.sum()
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kernel", ["gaussian", "flat"])
def test_one_step_is_the_kernel_weighted_mean(backend, kernel):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)) * 2.0
    res = cl.meanshift(x, 1.5, kernel=kernel, max_iter=1, tol=0, backend=backend)
    assert res.n_iter == 1
    np.testing.assert_allclose(res.points, hand_step(x, 1.5, kernel), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_blocks_over_queries_and_sources_give_the_same_step(backend, monkeypatch):
    from clusterlab.engines import base

    rng = np.random.default_rng(1)
    x = rng.normal(size=(700, 2))
    whole = cl.meanshift(x, 0.7, max_iter=3, tol=0, backend=backend).points
    # A tiny budget forces (64 queries, 64 sources) blocks: the online softmax path.
    monkeypatch.setitem(base.BLOCK_BUDGET, "cpu", 1024)
    tiled = cl.meanshift(x, 0.7, max_iter=3, tol=0, backend=backend).points
    batched = cl.meanshift(x, 0.7, max_iter=3, tol=0, batch_size=7, backend=backend).points
    np.testing.assert_allclose(tiled, whole, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(batched, whole, rtol=1e-10, atol=1e-10)
    flat_whole = cl.meanshift(x, 0.7, kernel="flat", max_iter=2, tol=0, backend=backend).points
    step2 = hand_step(x, 0.7, "flat")
    # the flat kernel's second step uses the *original* data (non-blurring)
    ref = np.empty_like(step2)
    for i, y in enumerate(step2):
        w = (((x - y) ** 2).sum(1) <= 0.49).astype(float)
        ref[i] = (w[:, None] * x).sum(0) / w.sum()
    np.testing.assert_allclose(flat_whole, ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_six_blobs_give_six_centres_near_the_truth(backend, blobs):
    x, y, true_centers = blobs
    res = cl.meanshift(x, 3.0, backend=backend)
    assert res.centers.shape == (6, 2)
    # every true centre has a found centre within 1 (blob std is sqrt(5) ~ 2.2)
    d = np.linalg.norm(true_centers[:, None, :] - res.centers[None, :, :], axis=2)
    assert d.min(1).max() < 1.0, d.min(1)
    assert same_partition(res.labels, y) or (res.labels != y).mean() < 0.01
    assert res.n_iter < 100
    # labels index centres, largest first
    sizes = np.bincount(res.labels)
    assert np.all(np.diff(sizes) <= 0)


def test_engines_agree(blobs):
    x, _, _ = blobs
    a = cl.meanshift(x, 3.0, backend="numpy")
    b = cl.meanshift(x, 3.0, backend="torch")
    # points stop once a step is below tol * h = 3e-3, so they agree to that scale
    np.testing.assert_allclose(a.points, b.points, atol=3e-3)
    np.testing.assert_allclose(a.centers, b.centers, atol=1e-3)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_estimate_bandwidth_matches_scikit_learn(blobs):
    x, _, _ = blobs
    x = x.astype(np.float64)
    for q in (0.05, 0.3, 0.8):
        ours = cl.estimate_bandwidth(x, quantile=q)
        theirs = sk_estimate_bandwidth(x, quantile=q)
        assert ours == pytest.approx(theirs, rel=1e-9)
    assert cl.estimate_bandwidth(x, quantile=0.3, n_samples=500, seed=1) == pytest.approx(
        cl.estimate_bandwidth(x, quantile=0.3, n_samples=500, seed=1)
    )
    assert cl.estimate_bandwidth(x, quantile=0.3, n_samples=500, seed=1) != pytest.approx(
        cl.estimate_bandwidth(x, quantile=0.3, n_samples=500, seed=2), rel=1e-9
    )


def test_bandwidth_none_uses_the_estimate(blobs):
    x, _, _ = blobs
    res = cl.meanshift(x[:600], None, max_iter=2)
    assert res.bandwidth == pytest.approx(cl.estimate_bandwidth(x[:600]))


def test_flat_kernel_finds_what_scikit_learn_finds(blobs):
    x, _, _ = blobs
    x = x.astype(np.float64)
    ours = cl.meanshift(x, 4.0, kernel="flat")
    sk = MeanShift(bandwidth=4.0).fit(x)
    assert len(ours.centers) == len(sk.cluster_centers_)
    d = np.linalg.norm(sk.cluster_centers_[:, None] - ours.centers[None], axis=2)
    assert d.min(1).max() < 0.5
    assert same_partition(ours.labels, sk.labels_) or (ours.labels != sk.labels_).mean() < 0.02


@pytest.mark.parametrize("backend", BACKENDS)
def test_blurring_mean_shift_collapses_the_blobs(backend, blobs):
    x, y, _ = blobs
    res = cl.meanshift(x, 3.0, blurring=True, backend=backend)
    assert len(res.centers) == 6
    assert same_partition(res.labels, y) or (res.labels != y).mean() < 0.01
    # blurring collapses each blob to (nearly) a point
    spread = max(np.ptp(res.points[res.labels == j], axis=0).max() for j in range(6))
    assert spread < 0.1


@pytest.mark.parametrize("backend", BACKENDS)
def test_isolated_points_stay_finite(backend):
    x = np.array([[0.0, 0.0], [1e3, 0.0], [0.0, 1e3], [0.1, 0.0]])
    res = cl.meanshift(x, 0.5, backend=backend)
    assert np.isfinite(res.points).all()
    assert len(res.centers) == 3
    flat = cl.meanshift(x, 0.01, kernel="flat", backend=backend)
    np.testing.assert_allclose(flat.points, x)  # nothing else is within reach
    assert len(flat.centers) == 4


def test_torch_in_torch_out(blobs):
    x, _, _ = blobs
    t = torch.from_numpy(x)
    res = cl.meanshift(t, 3.0)
    for a in (res.points, res.centers, res.labels):
        assert isinstance(a, torch.Tensor) and a.device == t.device
    assert res.labels.dtype == torch.int64 and res.centers.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(blobs):
    x, _, _ = blobs
    res = cl.meanshift(torch.from_numpy(x).cuda(), 3.0)
    assert res.points.is_cuda and res.centers.is_cuda
    ref = cl.meanshift(x, 3.0)
    np.testing.assert_allclose(res.centers.cpu().numpy(), ref.centers, atol=1e-3)


def test_progress_bar_on_request_and_for_long_calls_only(capsys):
    from clusterlab.meanshift import _progress_bar

    x = np.random.default_rng(0).normal(size=(300, 2))
    res = cl.meanshift(x, 1.0, max_iter=4, tol=0, progress=True)
    err = capsys.readouterr().err
    assert "mean shift, 300 points" in err and f"{res.n_iter}/4" in err
    cl.meanshift(x, 1.0, max_iter=4)
    assert "mean shift" not in capsys.readouterr().err  # 300 points: quick, no bar
    bar = _progress_bar(None, 100_000, 2, 5, "cpu")  # 2e10 a step
    assert bar is not None
    bar.close()
    assert _progress_bar(None, 100_000, 2, 5, "cuda") is None  # milliseconds on a GPU
    with pytest.raises(TypeError, match="progress must be True, False or None, got 'yes'"):
        cl.meanshift(x, 1.0, progress="yes")
