"""soft_kmeans (autograd) and minibatch_kmeans (a DataLoader): against Lloyd, types, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score
from torch.utils.data import DataLoader, TensorDataset

import clusterlab as cl
from tests._helpers import loop_assign, six_blobs

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def blobs():
    return six_blobs(seed=0)


@pytest.fixture(scope="module")
def lloyd(blobs):
    x, _, _ = blobs
    return cl.kmeans(x, 6, seed=0, tol=0, max_iter=50)


def centroid_gap(a, b):
    """Largest distance between matched centroids (matched by the Hungarian algorithm)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d2 = ((a[:, None] - b[None]) ** 2).sum(-1)
    r, c = linear_sum_assignment(d2)
    return float(np.sqrt(d2[r, c].max()))


def loader_of(x, batch_size=128, seed=0, extra=None):
    tensors = [torch.as_tensor(x)] + ([] if extra is None else [torch.as_tensor(extra)])
    return DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))


# --- soft k-means ----------------------------------------------------------------------


def test_soft_kmeans_finds_the_blobs(blobs, lloyd):
    x, y, _ = blobs
    res = cl.soft_kmeans(x, 6, seed=0)
    assert adjusted_rand_score(y, res.labels) == 1.0
    assert res.inertia == pytest.approx(lloyd.inertia, rel=1e-3)
    assert isinstance(res.centroids, np.ndarray) and res.centroids.dtype == np.float32
    assert res.labels.shape == (len(x),)
    assert 0 < res.n_iter == len(res.history) <= 300
    # the soft loss is below the hard objective at the same centroids, by at most T log k
    for h in res.history:
        assert h["obj"] <= h["inertia"] + 1e-6 * h["inertia"]


def test_soft_kmeans_at_low_temperature_lands_on_lloyds_centroids(blobs, lloyd):
    x, _, _ = blobs
    x = x.astype(np.float64)
    res = cl.soft_kmeans(x, 6, temperature=1e-3, tol=1e-10, max_iter=2000, seed=0)
    scale = float(np.sqrt(x.var(0).mean()))  # about 20
    assert centroid_gap(res.centroids, lloyd.centroids) < 1e-3 * scale
    assert res.inertia == pytest.approx(lloyd.inertia, rel=1e-5)
    # a hot run blurs the clusters: its centroids are pulled towards each other
    hot = cl.soft_kmeans(x, 6, temperature=0.5, seed=0)
    assert centroid_gap(hot.centroids, lloyd.centroids) > 0.05 * scale


def test_soft_kmeans_inertia_is_computed_as_kmeans_does(blobs):
    x, _, _ = blobs
    res = cl.soft_kmeans(x, 6, seed=0, max_iter=20)
    dist, labels = loop_assign(x, res.centroids)
    np.testing.assert_array_equal(res.labels, labels)
    assert res.inertia == pytest.approx(dist.sum(), rel=1e-5)
    given = cl.kmeans(x, 6, init=res.centroids, max_iter=0)
    assert res.inertia == pytest.approx(given.inertia, rel=1e-6)  # (float32 centroids)


def test_soft_kmeans_is_seeded_and_starts_where_kmeans_starts(blobs):
    x, _, _ = blobs
    a = cl.soft_kmeans(x, 6, seed=3, max_iter=5, tol=0)
    b = cl.soft_kmeans(x, 6, seed=3, max_iter=5, tol=0)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    assert a.history[0]["obj"] == b.history[0]["obj"]
    start = cl.soft_kmeans(x, 6, seed=3, max_iter=0)
    np.testing.assert_array_equal(start.centroids, cl.kmeans(x, 6, seed=3, max_iter=0).centroids)
    assert start.n_iter == 0 and start.history == []


def test_results_do_not_depend_on_the_machines_load(monkeypatch):
    # the number of threads chosen from the load must not change a result (torch's
    # reductions round differently on 1 and 2 threads: soft_kmeans differed by 1e-6)
    from clusterlab.engines import cpu_kernels

    x = np.random.default_rng(0).normal(size=(3000, 16)).astype(np.float32)
    runs = []
    for free in (1, 2):
        monkeypatch.setattr(cpu_kernels, "threads_for", lambda n, free=free: min(n, free))
        runs.append((cl.soft_kmeans(x, 10, seed=0, max_iter=5, tol=0),
                     cl.minibatch_kmeans(x, 10, batch_size=1000, n_epochs=2, seed=0)))
    (soft1, mb1), (soft2, mb2) = runs
    np.testing.assert_array_equal(soft1.centroids, soft2.centroids)
    assert soft1.history[-1]["obj"] == soft2.history[-1]["obj"]
    np.testing.assert_array_equal(mb1.centroids, mb2.centroids)
    assert mb1.inertia == mb2.inertia


@pytest.mark.parametrize(("optimizer", "lr"), [("adam", 0.05), ("sgd", 0.5)])
def test_soft_kmeans_is_the_plain_autograd_loop_of_its_docstring(blobs, optimizer, lr):
    x, _, _ = blobs
    x = x[::3].astype(np.float64)
    c0 = cl.kmeans_plusplus(x, 6, seed=0)
    res = cl.soft_kmeans(x, 6, temperature=0.05, init=c0, max_iter=25, tol=0, lr=lr,
                         optimizer=optimizer)
    xt = torch.from_numpy(x)
    var = xt.var(0, unbiased=False).mean()
    t = 0.05 * var
    c = torch.nn.Parameter(torch.from_numpy(c0).clone())
    if optimizer == "adam":
        opt = torch.optim.Adam([c], lr=float(lr * var.sqrt()))
    else:
        opt = torch.optim.SGD([c], lr=lr, momentum=0.9)
    objs = []
    for _ in range(25):
        opt.zero_grad()
        d2 = torch.cdist(xt, c) ** 2
        loss = (-t * torch.logsumexp(-d2 / t, dim=1)).mean()
        objs.append(float(loss.detach()) * len(x))
        loss.backward()
        opt.step()
    # (Adam's eps is 1e-8 in units of s there, s = 24: a coordinate whose gradient is
    # near 0 moves a little differently)
    np.testing.assert_allclose(res.centroids, c.detach().numpy(), rtol=0, atol=1e-3)
    np.testing.assert_allclose([h["obj"] for h in res.history], objs, rtol=1e-5)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_soft_kmeans_optimizers_decrease_the_loss(blobs, optimizer):
    x, y, _ = blobs
    res = cl.soft_kmeans(x, 6, optimizer=optimizer, init="random", seed=1, max_iter=150)
    objs = [h["obj"] for h in res.history]
    assert objs[-1] < 0.5 * objs[0]
    assert adjusted_rand_score(y, res.labels) > 0.9


def test_soft_kmeans_torch_in_torch_out_and_float64(blobs):
    x, _, _ = blobs
    xt = torch.from_numpy(x.astype(np.float64))
    res = cl.soft_kmeans(xt, 6, seed=0, max_iter=30)
    assert isinstance(res.centroids, torch.Tensor) and res.centroids.dtype == torch.float64
    assert isinstance(res.labels, torch.Tensor) and res.labels.dtype == torch.int64
    ref = cl.soft_kmeans(x.astype(np.float64), 6, seed=0, max_iter=30)
    np.testing.assert_allclose(res.centroids.numpy(), ref.centroids, rtol=1e-12)


def test_soft_kmeans_chunks_and_weights(blobs):
    x, _, _ = blobs
    x = x.astype(np.float64)
    one = cl.soft_kmeans(x, 6, seed=0, max_iter=10, tol=0)
    blocks = cl.soft_kmeans(x, 6, seed=0, max_iter=10, tol=0, chunk_size=97)
    np.testing.assert_allclose(blocks.centroids, one.centroids, rtol=1e-9, atol=1e-9)
    # a weight of 2 is two copies of the point
    w = np.ones(len(x))
    w[:100] = 2.0
    twice = np.concatenate([x, x[:100]])
    init = x[[0, 250, 500, 750, 1000, 1250]]
    a = cl.soft_kmeans(x, 6, weights=w, init=init, max_iter=10, tol=0)
    b = cl.soft_kmeans(twice, 6, init=init, max_iter=10, tol=0)
    np.testing.assert_allclose(a.centroids, b.centroids, rtol=1e-6, atol=1e-6)
    assert a.inertia == pytest.approx(b.inertia, rel=1e-9)


def test_soft_kmeans_runs_under_no_grad_and_far_from_one(blobs):
    x, y, _ = blobs
    with torch.no_grad():
        res = cl.soft_kmeans(x, 6, seed=0, max_iter=50)
    assert res.history[-1]["obj"] < res.history[0]["obj"]
    far = cl.soft_kmeans(x.astype(np.float64) * 1e150, 6, seed=0, max_iter=50)
    np.testing.assert_allclose(far.centroids / 1e150, cl.soft_kmeans(
        x.astype(np.float64), 6, seed=0, max_iter=50).centroids, rtol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"temperature": 0}, ValueError, "temperature must be > 0, got 0"),
        ({"temperature": float("nan")}, ValueError, "temperature must be finite"),
        ({"temperature": "hot"}, TypeError, "temperature must be a real number"),
        ({"lr": -1.0}, ValueError, "lr must be > 0, got -1.0"),
        ({"optimizer": "lbfgs"}, ValueError, "optimizer must be one of 'adam', 'sgd'; got 'lbfgs'"),
        ({"max_iter": -1}, ValueError, "max_iter must be >= 0, got -1"),
        ({"init": "kmeans++"}, ValueError, "init must be one of"),
        ({"init": np.zeros((5, 2))}, ValueError, r"init must have shape \(6, 2\)"),
        ({"weights": np.ones(3)}, ValueError, r"weights must have shape \(1500,\)"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
        ({"chunk_size": 0}, ValueError, "chunk_size must be >= 1, got 0"),
        ({"tol": -1e-3}, ValueError, "tol must be >= 0"),
        ({"temperature": 1e-13}, ValueError, "temperature must be >= 1e-12, got 1e-13"),
        ({"temperature": 1e13}, ValueError, r"temperature must be <= 1e\+?12|<= 1000000000000"),
    ],
)
def test_soft_kmeans_bad_arguments(blobs, kwargs, error, match):
    x, _, _ = blobs
    with pytest.raises(error, match=match):
        cl.soft_kmeans(x, 6, **kwargs)


def test_soft_kmeans_divergence_is_an_error(blobs):
    x, _, _ = blobs
    with pytest.raises(FloatingPointError, match=r"diverged.*optimizer='sgd', lr=10000.0\); lower lr"):
        cl.soft_kmeans(x, 6, optimizer="sgd", lr=1e4, max_iter=50)


def test_soft_kmeans_never_holds_the_n_by_k_matrix():
    from clusterlab.checks import _largest_tensor

    x = np.random.default_rng(0).normal(size=(3000, 2)).astype(np.float32)
    res, largest = _largest_tensor(lambda: cl.soft_kmeans(x, 30, chunk_size=100, max_iter=3))
    assert res.n_iter == 3
    # the data, k-means++'s (n, 2 + log k) candidates, or one block; (n, k) is 90,000
    assert largest <= max(3000 * 2, 3000 * 5, 100 * 30)
    _, whole = _largest_tensor(lambda: cl.soft_kmeans(x, 30, max_iter=3))
    assert whole >= 3000 * 30  # (the default budget takes all the rows in one block here)


def test_soft_kmeans_bad_data():
    with pytest.raises(ValueError, match="contains NaN"):
        cl.soft_kmeans(np.array([[0.0, 1.0], [np.nan, 2.0]]), 1)
    with pytest.raises(ValueError, match="k=3 is larger than the number of points n=2"):
        cl.soft_kmeans(np.zeros((2, 2)), 3)


# --- mini-batch k-means ----------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [64, 256])
def test_minibatch_finds_the_blobs(blobs, lloyd, batch_size):
    x, y, _ = blobs
    res = cl.minibatch_kmeans(x, 6, batch_size=batch_size, n_epochs=10, seed=0)
    assert adjusted_rand_score(y, res.labels) == 1.0
    assert res.inertia == pytest.approx(lloyd.inertia, rel=0.01)
    assert res.n_iter == 10 and len(res.history) == 10
    assert res.history[0]["n_steps"] == -(-len(x) // batch_size)
    assert res.history[-1]["n_empty"] == 0
    assert isinstance(res.centroids, np.ndarray) and res.centroids.dtype == np.float32


def test_minibatch_with_all_rows_in_one_batch_is_lloyd(blobs):
    x, _, _ = blobs
    x = x.astype(np.float64)
    init = x[[0, 1, 2, 300, 301, 900]]  # a poor start: the steps are big
    one = cl.minibatch_kmeans(x, 6, batch_size=len(x), n_epochs=1, init=init)
    step = cl.kmeans(x, 6, init=init, max_iter=1, tol=0)
    np.testing.assert_allclose(one.centroids, step.centroids, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(one.labels, step.labels)
    assert one.inertia == pytest.approx(step.inertia, rel=1e-12)
    # more epochs settle where Lloyd's iterations settle (from a good start: a poor one
    # is forgotten only as 1 / epochs, each epoch's mean weighing the same)
    good = cl.kmeans_plusplus(x, 6, seed=0)
    many = cl.minibatch_kmeans(x, 6, batch_size=len(x), n_epochs=50, init=good)
    ref = cl.kmeans(x, 6, init=good, max_iter=100, tol=0)
    assert centroid_gap(many.centroids, ref.centroids) < 0.05
    assert many.inertia == pytest.approx(ref.inertia, rel=1e-4)
    slow = cl.minibatch_kmeans(x, 6, batch_size=len(x), n_epochs=50, init=init)
    far = cl.kmeans(x, 6, init=init, max_iter=100, tol=0)
    assert centroid_gap(slow.centroids, far.centroids) > 0.05


def sculley_point_by_point(x, c, batches, n_epochs):
    """Sculley's algorithm as published: a batch's centres cached, then each point in turn."""
    c = np.array(c, dtype=np.float64)
    v = np.zeros(len(c))
    for _ in range(n_epochs):
        for idx in batches:
            _, near = loop_assign(x[idx], c)
            for i, j in zip(idx, near, strict=True):
                v[j] += 1
                c[j] = (1 - 1 / v[j]) * c[j] + x[i] / v[j]
    return c


def test_minibatch_is_sculleys_point_by_point_algorithm(blobs):
    x, _, _ = blobs
    x = x[::5].astype(np.float64)  # 300 points
    init = x[[0, 1, 2, 3, 4, 5]]  # all in one blob: centres travel, some get no point at first
    res = cl.minibatch_kmeans(x, 6, batch_size=64, n_epochs=3, init=init, shuffle=False)
    batches = [np.arange(s, min(s + 64, len(x))) for s in range(0, len(x), 64)]
    ref = sculley_point_by_point(x, init, batches, 3)
    np.testing.assert_allclose(res.centroids, ref, rtol=1e-10, atol=1e-10)


def test_minibatch_over_a_loader_is_the_loop_of_its_docstring(blobs):
    x, _, _ = blobs
    x = x.astype(np.float64)
    c0 = cl.kmeans_plusplus(x, 6, seed=1)
    res = cl.minibatch_kmeans(loader_of(x, batch_size=100, seed=3), 6, n_epochs=2, init=c0)
    k, c = 6, torch.from_numpy(c0).clone()
    counts = torch.zeros(k, dtype=c.dtype)
    loader = loader_of(x, batch_size=100, seed=3)
    for _ in range(2):
        for (xb,) in loader:
            labels = torch.cdist(xb, c).argmin(1)
            n_j = torch.bincount(labels, minlength=k).to(c.dtype)
            sums = torch.zeros_like(c).index_add_(0, labels, xb)
            counts += n_j
            hit = n_j > 0
            c[hit] += (sums[hit] - n_j[hit, None] * c[hit]) / counts[hit, None]
    np.testing.assert_allclose(res.centroids.numpy(), c.numpy(), rtol=1e-10, atol=1e-10)


def test_minibatch_is_seeded(blobs):
    x, _, _ = blobs
    a = cl.minibatch_kmeans(x, 6, batch_size=100, n_epochs=2, seed=5)
    b = cl.minibatch_kmeans(x, 6, batch_size=100, n_epochs=2, seed=5)
    c = cl.minibatch_kmeans(x, 6, batch_size=100, n_epochs=2, seed=6)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    assert a.history[0]["obj"] == b.history[0]["obj"]
    assert a.history[0]["obj"] != c.history[0]["obj"]


def test_minibatch_torch_in_torch_out(blobs):
    x, _, _ = blobs
    res = cl.minibatch_kmeans(torch.from_numpy(x), 6, batch_size=200, n_epochs=3, seed=0)
    assert isinstance(res.centroids, torch.Tensor) and res.centroids.dtype == torch.float32
    assert isinstance(res.labels, torch.Tensor) and res.labels.shape == (len(x),)
    ref = cl.minibatch_kmeans(x, 6, batch_size=200, n_epochs=3, seed=0)
    np.testing.assert_array_equal(res.centroids.numpy(), ref.centroids)


def test_minibatch_numpy_backend_matches_torch(blobs):
    x, _, _ = blobs
    x = x.astype(np.float64)
    a = cl.minibatch_kmeans(x, 6, batch_size=200, n_epochs=3, seed=0, backend="numpy")
    b = cl.minibatch_kmeans(x, 6, batch_size=200, n_epochs=3, seed=0, backend="torch")
    np.testing.assert_allclose(a.centroids, b.centroids, rtol=1e-9)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_minibatch_over_a_dataloader(blobs, lloyd):
    x, y, _ = blobs
    res = cl.minibatch_kmeans(loader_of(x, extra=y), 6, n_epochs=10, seed=0)
    assert isinstance(res.centroids, torch.Tensor) and res.labels is None
    _, labels = cl.assign(x, res.centroids.numpy())
    assert adjusted_rand_score(y, labels) == 1.0
    assert res.inertia == pytest.approx(lloyd.inertia, rel=0.01)
    dist, _ = loop_assign(x, res.centroids.numpy())
    assert res.inertia == pytest.approx(dist.sum(), rel=1e-5)  # the final pass
    again = cl.minibatch_kmeans(loader_of(x, extra=y), 6, n_epochs=10, seed=0)
    np.testing.assert_array_equal(again.centroids.numpy(), res.centroids.numpy())


def test_minibatch_dataloader_of_plain_tensors_and_odd_batches(blobs):
    x, y, _ = blobs

    class Rows(torch.utils.data.Dataset):  # a dataset that returns bare rows
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return torch.from_numpy(x[i])

    # (the rows are sorted by blob: the loader must shuffle for its first batches,
    # the initial sample, to hold every blob)
    shuffled = DataLoader(Rows(), batch_size=100, shuffle=True,
                          generator=torch.Generator().manual_seed(0))
    res = cl.minibatch_kmeans(shuffled, 6, n_epochs=5)
    _, labels = cl.assign(x, res.centroids.numpy())
    assert adjusted_rand_score(y, labels) == 1.0
    init = x[[0, 250, 500, 750, 1000, 1250]]
    given = cl.minibatch_kmeans(DataLoader(Rows(), batch_size=100), 6, n_epochs=1, init=init)
    assert given.history[0]["n_steps"] == 15


def test_minibatch_bad_arguments(blobs):
    x, _, _ = blobs
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        cl.minibatch_kmeans(x, 6, batch_size=0)
    with pytest.raises(ValueError, match="n_epochs must be >= 1, got 0"):
        cl.minibatch_kmeans(x, 6, n_epochs=0)
    with pytest.raises(ValueError, match="k=2000 is larger than the number of points n=1500"):
        cl.minibatch_kmeans(x, 2000)
    with pytest.raises(ValueError, match="init must be one of"):
        cl.minibatch_kmeans(x, 6, init="first")
    with pytest.raises(TypeError, match="shuffle must be True or False, got 1"):
        cl.minibatch_kmeans(x, 6, shuffle=1)
    with pytest.raises(ValueError, match="device='cuda' is for a DataLoader"):
        cl.minibatch_kmeans(x, 6, device="cuda")
    with pytest.raises(ValueError, match="init_size must be >= 1, got 0"):
        cl.minibatch_kmeans(x, 6, init_size=0)
    for data in (x, loader_of(x)):
        with pytest.raises(ValueError, match="init_size=3 is smaller than k=6"):
            cl.minibatch_kmeans(data, 6, init_size=3, init="random")
    given = cl.minibatch_kmeans(x, 6, init_size=3, init=x[:6], n_epochs=1)  # nothing drawn
    assert given.n_iter == 1
    with pytest.raises(ValueError, match="backend must be one of"):
        cl.minibatch_kmeans(x, 6, backend="gpu")
    with pytest.raises(ValueError, match="batch_size=64 was given with a DataLoader"):
        cl.minibatch_kmeans(loader_of(x), 6, batch_size=64)
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        cl.minibatch_kmeans(loader_of(x), 0)
    with pytest.raises(ValueError, match="k=6 is larger than the 4 rows of the initial sample"):
        cl.minibatch_kmeans(loader_of(x[:4], batch_size=2), 6)
    with pytest.raises(ValueError, match="yields no batch"):
        cl.minibatch_kmeans(DataLoader(TensorDataset(torch.zeros(0, 2))), 1)
    with pytest.raises(ValueError, match="device='nowhere' is not a torch device"):
        cl.minibatch_kmeans(loader_of(x), 6, device="nowhere")


def test_minibatch_never_holds_more_than_a_batch_by_k():
    from clusterlab.checks import _largest_tensor

    x = np.random.default_rng(0).normal(size=(3000, 2)).astype(np.float32)
    for data in (x, loader_of(x, batch_size=100)):
        res, largest = _largest_tensor(
            lambda data=data: cl.minibatch_kmeans(data, 30, batch_size=None if data is not x
                                                  else 100, n_epochs=2, backend="torch"))
        assert res.n_iter == 2
        assert largest <= 3000 * 2  # the data at most; (n, k) is 90,000


def test_minibatch_checks_every_batch(blobs):
    x, _, _ = blobs
    bad = x.copy()
    bad[1400, 1] = np.nan
    loader = DataLoader(TensorDataset(torch.from_numpy(bad)), batch_size=500)
    with pytest.raises(ValueError, match=r"batch 2 of data contains NaN or inf .* index \(400, 1\)"):
        cl.minibatch_kmeans(loader, 2, n_epochs=1)

    def widths():
        yield torch.zeros(10, 2)
        yield torch.zeros(10, 3)

    class Ragged(torch.utils.data.IterableDataset):
        def __iter__(self):
            return widths()

    with pytest.raises(ValueError, match="batch 1 of data has 3 features, the first batch had 2"):
        cl.minibatch_kmeans(DataLoader(Ragged(), batch_size=None), 2, init_size=10)
    with pytest.raises(TypeError, match="batch 0 of data is a dict"):
        cl.minibatch_kmeans(DataLoader([{"x": torch.zeros(2)}] * 4, batch_size=2), 1)


# --- on a GPU --------------------------------------------------------------------------


@CUDA
def test_variants_on_cuda(blobs, lloyd):
    x, y, _ = blobs
    xc = torch.from_numpy(x).cuda()
    soft = cl.soft_kmeans(xc, 6, seed=0)
    assert soft.centroids.device == xc.device and soft.labels.device == xc.device
    assert adjusted_rand_score(y, soft.labels.cpu().numpy()) == 1.0
    mb = cl.minibatch_kmeans(xc, 6, batch_size=256, n_epochs=5, seed=0)
    assert mb.centroids.device == xc.device
    assert mb.inertia == pytest.approx(lloyd.inertia, rel=0.01)
    on_gpu = cl.minibatch_kmeans(loader_of(x), 6, n_epochs=5, device="cuda")
    assert on_gpu.centroids.device.type == "cuda"
    assert on_gpu.inertia == pytest.approx(lloyd.inertia, rel=0.01)
