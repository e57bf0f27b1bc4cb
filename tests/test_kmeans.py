"""k-means and assign: every engine against references, invariants, repair, precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, load_iris, load_wine

import clusterlab as cl
from tests._helpers import loop_assign, loop_lloyd, same_partition, six_blobs

BACKENDS = ["numpy", "torch"]
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def blobs():
    return six_blobs(seed=0)


# --- against references ----------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_assign_matches_double_loop(backend):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 5))
    c = rng.normal(size=(7, 5))
    dist, labels = cl.assign(x, c, backend=backend)
    ref_dist, ref_labels = loop_assign(x, c)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("chunk_size", [1, 7, 10_000])
def test_assign_chunks_do_not_change_the_answer(backend, chunk_size):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(250, 3)).astype(np.float32)
    c = rng.normal(size=(9, 3)).astype(np.float32)
    dist, labels = cl.assign(x, c, chunk_size=chunk_size, backend=backend)
    ref_dist, ref_labels = loop_assign(x, c)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lloyd_matches_loop_reference_from_the_same_init(backend, blobs):
    x, _, _ = blobs
    x = x.astype(np.float64)
    init = x[[0, 1, 2, 300, 301, 900]]  # a poor start, so several iterations happen
    ref_c, ref_labels, ref_obj = loop_lloyd(x, init, n_iter=5)
    res = cl.kmeans(x, 6, init=init, max_iter=5, tol=0, backend=backend)
    assert res.n_iter == 5
    np.testing.assert_array_equal(res.labels, ref_labels)
    np.testing.assert_allclose(res.centroids, ref_c, rtol=1e-9, atol=1e-9)
    assert res.inertia == pytest.approx(ref_obj, rel=1e-9)


def test_engines_agree_with_each_other(blobs):
    x, _, _ = blobs
    a = cl.kmeans(x, 6, seed=3, backend="numpy")
    b = cl.kmeans(x, 6, seed=3, backend="torch")
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.centroids, b.centroids, rtol=1e-4, atol=1e-4)
    assert a.inertia == pytest.approx(b.inertia, rel=1e-5)


@pytest.mark.parametrize(
    ("loader", "k"), [(load_digits, 10), (load_iris, 3), (load_wine, 3)],
    ids=["digits", "iris", "wine"],
)
def test_inertia_within_one_percent_of_scikit_learn(loader, k):
    x = loader().data.astype(np.float64)
    n_init = 10
    ours = cl.kmeans(x, k, n_init=n_init, seed=0).inertia
    theirs = KMeans(k, n_init=n_init, random_state=0).fit(x).inertia_
    assert ours <= theirs * 1.01, (ours, theirs)


def test_finds_the_six_blobs(blobs):
    x, y, _ = blobs
    res = cl.kmeans(x, 6, n_init=3, seed=0)
    assert same_partition(res.labels, y)


# --- the result is honest ----------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_labels_and_inertia_belong_to_the_returned_centroids(backend, metric):
    x = load_digits().data.astype(np.float32) + 0.1  # no zero rows for cosine
    res = cl.kmeans(x, 10, max_iter=7, tol=0, metric=metric, seed=0, backend=backend)
    dist, labels = cl.assign(x, res.centroids, metric=metric)
    np.testing.assert_array_equal(res.labels, labels)
    assert res.inertia == pytest.approx(float(dist.astype(np.float64).sum()), rel=1e-5)
    if metric == "euclidean":
        ref = ((x.astype(np.float64) - res.centroids[res.labels]) ** 2).sum()
    else:
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        ref = (1.0 - (xn * res.centroids[res.labels]).sum(1)).sum()
    assert res.inertia == pytest.approx(ref, rel=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_objective_never_increases(backend, init):
    x = load_digits().data
    res = cl.kmeans(x, 20, init=init, max_iter=50, tol=0, seed=1, backend=backend)
    objs = np.array([h["obj"] for h in res.history])
    assert len(objs) == 50
    assert np.all(np.diff(objs) <= 1e-9 * objs[0]), objs
    assert objs[-1] < objs[0]


def test_history_fields(blobs):
    x, _, _ = blobs
    res = cl.kmeans(x, 6, max_iter=4, tol=0, seed=0)
    assert len(res.history) == res.n_iter == 4
    times = [h["time"] for h in res.history]
    assert all(b >= a for a, b in zip(times, times[1:], strict=False))
    for h in res.history:
        assert set(h) >= {"obj", "time", "imbalance", "n_split"}
        assert h["imbalance"] >= 1.0 - 1e-6
        assert h["n_split"] == 0
    assert res.history[-1]["obj"] == pytest.approx(res.inertia)


def test_tolerance_stops_early_and_zero_runs_max_iter(blobs):
    x, _, _ = blobs
    early = cl.kmeans(x, 6, max_iter=100, tol=1e-4, seed=0)
    full = cl.kmeans(x, 6, max_iter=30, tol=0, seed=0)
    assert early.n_iter < 100
    assert full.n_iter == 30


def test_same_seed_same_result_and_seeds_matter():
    x = load_digits().data
    a = cl.kmeans(x, 10, seed=5)
    b = cl.kmeans(x, 10, seed=5)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    inits = {tuple(cl.kmeans_plusplus(x, 10, seed=s)[:, 20].round(6)) for s in range(4)}
    assert len(inits) > 1


def test_n_init_keeps_the_best_run():
    x = load_digits().data
    singles = [cl.kmeans(x, 10, init="random", seed=s, max_iter=20).inertia for s in range(1)]
    best = cl.kmeans(x, 10, init="random", n_init=4, seed=0, max_iter=20).inertia
    assert best <= singles[0] + 1e-9


def test_kmeans_plusplus_returns_distinct_data_points(blobs):
    x, y, _ = blobs
    c = cl.kmeans_plusplus(x, 6, seed=0)
    assert c.shape == (6, 2) and c.dtype == x.dtype
    rows = {tuple(r) for r in x.tolist()}
    assert all(tuple(r) in rows for r in c.tolist())
    # D^2 sampling lands one seed in each well-separated blob.
    _, labels = loop_assign(c, six_blobs(seed=0)[2])
    assert len(set(labels.tolist())) == 6


def test_kmeans_plusplus_beats_random_init_on_average():
    x = load_digits().data
    pp = np.mean([cl.kmeans(x, 10, max_iter=0, seed=s).inertia for s in range(5)])
    rnd = np.mean([cl.kmeans(x, 10, init="random", max_iter=0, seed=s).inertia for s in range(5)])
    assert pp < rnd


# --- cosine, weights ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_cosine_gives_unit_centroids_and_angle_clusters(backend):
    rng = np.random.default_rng(0)
    directions = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]) / [[1], [1], [np.sqrt(2)]]
    scales = rng.uniform(0.1, 100.0, size=(300, 1))  # lengths vary wildly: only angles matter
    truth = np.repeat(np.arange(3), 100)
    x = directions[truth] * scales + rng.normal(scale=0.05, size=(300, 2)) * scales
    res = cl.kmeans(x, 3, metric="cosine", seed=0, backend=backend)
    np.testing.assert_allclose(np.linalg.norm(res.centroids, axis=1), 1.0, atol=1e-12)
    assert same_partition(res.labels, truth)
    assert 0 <= res.inertia < 300 * 0.01


@pytest.mark.parametrize("backend", BACKENDS)
def test_weights_of_two_double_the_inertia_only(backend, blobs):
    x, _, _ = blobs
    x = x.astype(np.float64)
    plain = cl.kmeans(x, 6, seed=0, backend=backend)
    doubled = cl.kmeans(x, 6, seed=0, weights=np.full(len(x), 2.0), backend=backend)
    np.testing.assert_array_equal(plain.labels, doubled.labels)
    np.testing.assert_allclose(plain.centroids, doubled.centroids, rtol=1e-12)
    assert doubled.inertia == pytest.approx(2 * plain.inertia, rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_weights_equal_repeated_points(backend):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(120, 3))
    w = rng.integers(0, 4, size=120)
    w[0] = 1
    repeated = np.repeat(x, w, axis=0)
    init = x[:5]
    a = cl.kmeans(x, 5, init=init, weights=w, max_iter=20, tol=0, backend=backend)
    b = cl.kmeans(repeated, 5, init=init, max_iter=20, tol=0, backend=backend)
    np.testing.assert_allclose(a.centroids, b.centroids, rtol=1e-10, atol=1e-10)
    assert a.inertia == pytest.approx(b.inertia, rel=1e-10)
    np.testing.assert_array_equal(np.repeat(a.labels, w), b.labels)


# --- empty clusters ----------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_init_repairs_empty_clusters(backend, blobs):
    x, y, _ = blobs
    far = np.array([[1e3, 1e3], [2e3, 2e3], [3e3, 3e3], [0.0, 0.0], [4e3, 4e3], [5e3, 5e3]])
    res = cl.kmeans(x, 6, init=far, max_iter=50, backend=backend)
    assert res.history[0]["n_split"] == 5  # five centroids own no point at first
    assert np.isfinite(res.centroids).all()
    assert len(np.unique(res.labels)) == 6
    objs = [h["obj"] for h in res.history]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(objs, objs[1:], strict=False))


@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicated_points_never_give_nan(backend):
    x = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]), 50, axis=0)
    res = cl.kmeans(x, 6, seed=0, backend=backend, max_iter=10)
    assert np.isfinite(res.centroids).all()
    assert res.inertia == pytest.approx(0.0, abs=1e-12)
    assert len(np.unique(res.labels)) == 3
    same = cl.kmeans(np.zeros((10, 2)), 3, seed=0, backend=backend)
    assert np.isfinite(same.centroids).all() and same.inertia == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_relocation_removes_the_point_from_its_old_cluster(backend):
    # scikit-learn's test_relocate_empty_clusters: everything starts in cluster 0
    x = np.array([-10.0, -9.5, -9, -8.5, -8, -1, 1, 9, 9.5, 10]).reshape(-1, 1)
    res = cl.kmeans(x, 3, init=np.full((3, 1), -10.0), max_iter=1, backend=backend)
    np.testing.assert_allclose(res.centroids.ravel(), [-36 / 8, 10, 9.5])
    assert res.history[0]["n_split"] == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_relocated_clusters_converge_as_scikit_learn(backend):
    # scikit-learn's test_kmeans_relocated_clusters
    x = np.array([[0, 0], [0.5, 0], [0.5, 1], [1, 1]])
    init = np.array([[0.5, 0.5], [3, 3]])
    res = cl.kmeans(x, 2, init=init, backend=backend)
    ref = KMeans(2, n_init=1, init=init).fit(x)
    assert res.n_iter == ref.n_iter_ == 3
    assert res.inertia == pytest.approx(ref.inertia_) == 0.25
    assert same_partition(res.labels, ref.labels_)
    order = np.lexsort(res.centroids.T[::-1])
    np.testing.assert_allclose(res.centroids[order], [[0.25, 0], [0.75, 1]])


def test_no_relocation_onto_a_point_at_distance_zero_and_engines_agree():
    x = np.array([[0.0, 0], [0, 0], [1, 1], [1, 1]])
    init = np.array([[0.0, 0], [1, 1], [1, 1]])  # cluster 2 is a duplicate: it stays empty
    runs = [cl.kmeans(x, 3, init=init, backend=b) for b in BACKENDS]
    for res in runs:
        assert res.n_iter == 1 and res.history[0]["n_split"] == 0
        np.testing.assert_array_equal(res.labels, [0, 0, 1, 1])
        np.testing.assert_array_equal(res.centroids, init)


def test_engines_break_ties_between_far_points_alike():
    x = np.array([[0, 0], [0.5, 0], [0.5, 1], [1, 1]])  # (0, 0) and (1, 1) equally far
    runs = [cl.kmeans(x, 2, init=np.array([[0.5, 0.5], [3, 3]]), backend=b) for b in BACKENDS]
    np.testing.assert_array_equal(runs[0].labels, runs[1].labels)
    np.testing.assert_allclose(runs[0].centroids, runs[1].centroids)


@pytest.mark.parametrize("backend", BACKENDS)
def test_random_init_draws_in_proportion_to_weight(backend):
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    w = np.array([1.0, 1.0, 1000.0, 1.0])
    hits = sum(
        cl.kmeans(x, 1, init="random", weights=w, seed=s, max_iter=0, backend=backend)
        .centroids[0, 0] == 2.0 for s in range(200)
    )
    assert hits >= 190  # 1000 / 1003 of the draws; uniform would give about 50
    # fewer positive weights than k: all of them, then the others
    res = cl.kmeans(x, 3, init="random", weights=[0, 0, 5, 0], seed=0, max_iter=0,
                    backend=backend)
    assert 2.0 in res.centroids.ravel()


# --- precision, dtypes, devices -------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_offset_data_cluster_like_centred_data(backend, dtype):
    rng = np.random.default_rng(7)
    centred = rng.normal(size=(2000, 4)) * 0.5 + rng.integers(-3, 3, size=(2000, 1))
    centred = centred.astype(dtype)
    offset = (centred.astype(np.float64) + 1e4).astype(dtype)
    a = cl.kmeans(centred, 8, seed=0, backend=backend)
    b = cl.kmeans(offset, 8, seed=0, backend=backend)
    if dtype == np.float64:
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_allclose(b.centroids - 1e4, a.centroids, atol=1e-8)
        assert b.inertia == pytest.approx(a.inertia, rel=1e-8)
    else:
        # float32 stores 1e4 + x to ~1e-3, so points move a little; clusters must not.
        assert (a.labels != b.labels).mean() < 0.01
        assert b.inertia == pytest.approx(a.inertia, rel=1e-2)


def test_dtypes_are_kept_or_upcast(blobs):
    x, _, _ = blobs
    assert cl.kmeans(x, 3, seed=0).centroids.dtype == np.float32
    assert cl.kmeans(x.astype(np.float64), 3, seed=0).centroids.dtype == np.float64
    assert cl.kmeans(x.astype(np.float16), 3, seed=0).centroids.dtype == np.float32
    assert cl.kmeans(np.round(x).astype(np.int64), 3, seed=0).centroids.dtype == np.float64
    t = torch.from_numpy(x).to(torch.float16)
    assert cl.kmeans(t, 3, seed=0).centroids.dtype == torch.float32
    assert cl.kmeans([[0, 0], [1, 1], [9, 9]], 2, seed=0).centroids.dtype == np.float64


def test_torch_in_torch_out(blobs):
    x, _, _ = blobs
    t = torch.from_numpy(x)
    res = cl.kmeans(t, 6, seed=0)
    assert isinstance(res.centroids, torch.Tensor) and isinstance(res.labels, torch.Tensor)
    assert res.centroids.device == t.device and res.labels.dtype == torch.int64
    ref = cl.kmeans(x, 6, seed=0)
    np.testing.assert_array_equal(res.labels.numpy(), ref.labels)
    d, lab = cl.assign(t, res.centroids)
    assert isinstance(d, torch.Tensor) and torch.equal(lab, res.labels)
    # the NumPy engine on a tensor still answers with tensors
    n = cl.kmeans(t, 6, seed=0, backend="numpy")
    assert isinstance(n.centroids, torch.Tensor)


@CUDA
def test_cuda_matches_cpu(blobs):
    x, _, _ = blobs
    g = torch.from_numpy(x).cuda()
    res = cl.kmeans(g, 6, seed=0)
    assert res.centroids.is_cuda and res.labels.is_cuda
    ref = cl.kmeans(x, 6, seed=0)
    np.testing.assert_array_equal(res.labels.cpu().numpy(), ref.labels)
    assert res.inertia == pytest.approx(ref.inertia, rel=1e-4)
    d, lab = cl.assign(g, res.centroids)
    assert lab.is_cuda
    with pytest.raises(ValueError, match="device"):
        cl.assign(g, res.centroids.cpu())


# --- memory ------------------------------------------------------------------------------


def test_no_block_is_larger_than_the_budget(monkeypatch):
    """The (rows, k) blocks follow the budget: shrink it and the answer stays the same."""
    from clusterlab.engines import base

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 4)).astype(np.float32)
    c = x[:50]
    ref = cl.assign(x, c)
    seen = []
    real = base.chunk_rows

    def spy(n, k, itemsize, device_type="cpu", chunk_size=None):
        rows = real(n, k, itemsize, device_type, chunk_size)
        seen.append(rows * k * itemsize)
        return rows

    monkeypatch.setitem(base.BLOCK_BUDGET, "cpu", 4096)
    monkeypatch.setattr("clusterlab.engines.numpy_engine.chunk_rows", spy)
    got = cl.assign(x, c, backend="numpy")
    assert seen and max(seen) <= 4096
    np.testing.assert_array_equal(got[1], ref[1])


# --- the Lloyd loop's waits for the device -----------------------------------------------


class _DeviceLike:
    """The torch engine on CPU tensors, but taking the GPU path of the Lloyd loop (its
    device type is not "cpu"), counting every wait for the device (``scalars``)."""

    @staticmethod
    def make():
        from clusterlab.engines.torch_engine import TorchEngine

        eng = TorchEngine("cpu")
        eng.device_type = "gpu-like"
        eng.waits = 0
        fetch = eng.scalars

        def counted(*values):
            eng.waits += 1
            return fetch(*values)

        eng.scalars = counted
        return eng


def _run_lloyd(eng, x, init, **kw):
    from clusterlab.kmeans import _lloyd, _prepare

    xp, offset, x_sq = _prepare(eng, torch.as_tensor(x), None, "euclidean")
    c0 = torch.as_tensor(init) - offset
    c, _, labels, obj, hist = _lloyd(eng, xp, None, c0, metric="euclidean", x_sq=x_sq,
                                     chunk_size=None, precision="highest", **kw)
    return c + offset, labels, obj, hist


def test_lloyd_with_tol_zero_waits_once_in_all(blobs):
    from clusterlab.engines.torch_engine import TorchEngine

    x = blobs[0]
    init = x[[0, 1, 2, 300, 301, 900]]
    eng = _DeviceLike.make()
    c, labels, obj, hist = _run_lloyd(eng, x, init, max_iter=7, tol_abs=0.0)
    assert eng.waits == 1  # the history, fetched once at the end
    assert len(hist) == 7
    ref = _run_lloyd(TorchEngine("cpu"), x, init, max_iter=7, tol_abs=0.0)
    torch.testing.assert_close(c, ref[0])
    torch.testing.assert_close(labels, ref[1])
    assert [h["obj"] for h in hist] == pytest.approx([h["obj"] for h in ref[3]], rel=1e-5)
    assert all(h["time"] >= 0 for h in hist)


def test_lloyd_with_tol_waits_once_per_iteration(blobs):
    x = blobs[0]
    eng = _DeviceLike.make()
    _, _, _, hist = _run_lloyd(eng, x, x[[0, 1, 2, 300, 301, 900]], max_iter=50, tol_abs=1e-3)
    assert len(hist) < 50  # it converged
    assert eng.waits <= len(hist) + 1


def test_lloyd_repairs_more_empty_clusters_than_device_slots():
    from clusterlab.engines.torch_engine import TorchEngine
    from clusterlab.kmeans import REPAIR_SLOTS

    x = np.random.default_rng(3).normal(size=(500, 3)).astype(np.float32)
    k = REPAIR_SLOTS + 8
    init = np.repeat(x[:1], k, 0)  # k equal centroids: k - 1 clusters start empty
    eng = _DeviceLike.make()
    c, labels, _, hist = _run_lloyd(eng, x, init, max_iter=3, tol_abs=0.0)
    ref = _run_lloyd(TorchEngine("cpu"), x, init, max_iter=3, tol_abs=0.0)
    assert hist[0]["n_split"] == k - 1 == ref[3][0]["n_split"]
    torch.testing.assert_close(c, ref[0])
    torch.testing.assert_close(labels, ref[1])
    assert len(torch.unique(labels)) == k
