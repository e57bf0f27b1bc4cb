"""The Triton engine: every fused kernel against torch, on small awkward shapes.

Without a GPU the kernels run on CPU tensors through Triton's interpreter (conftest sets
``TRITON_INTERPRET=1``), which is slow: shapes stay small but cross every tile edge (the
interpreter's tiles are 32 rows, 16 centroids, 32 features). On a GPU the same tests run
natively on CUDA tensors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import clusterlab as cl
from clusterlab.engines import get_engine
from clusterlab.engines.torch_engine import TorchEngine
from tests._helpers import six_blobs

triton_kernels = pytest.importorskip(
    "clusterlab.engines.triton_kernels", reason="Triton is not installed", exc_type=ImportError
)
from clusterlab.engines.triton_engine import TritonEngine, triton_works  # noqa: E402

DEV = "cuda" if torch.cuda.is_available() else "cpu"
if DEV == "cpu" and not triton_kernels.interpreted():
    pytest.skip("no GPU and TRITON_INTERPRET is not 1", allow_module_level=True)

SHAPES = [(203, 5, 40), (97, 37, 3), (64, 2, 1), (33, 70, 17)]  # (n, d, k)


def _t(a, dtype=torch.float32):
    return torch.as_tensor(np.asarray(a), dtype=dtype, device=DEV)


def _rand(*shape, seed=0):
    return _t(np.random.default_rng(seed).normal(size=shape))


# --- kernels -----------------------------------------------------------------------------


@pytest.mark.parametrize("n,d,k", SHAPES)
@pytest.mark.parametrize("precision", ["highest", "high"])
def test_assign_kernel_equals_cdist_argmin(n, d, k, precision):
    x, c = _rand(n, d, seed=n), _rand(k, d, seed=k)
    dist, labels = triton_kernels.assign(x, c, precision=precision)
    d2 = torch.cdist(x.double(), c.double()) ** 2  # (n, k) reference
    if precision == "highest":
        torch.testing.assert_close(labels, d2.argmin(1))
    else:  # TF32 may swap near ties only: the chosen centroid is nearly the nearest
        assert (d2.gather(1, labels[:, None])[:, 0] - d2.min(1).values).max() < 1e-2
    torch.testing.assert_close(dist.double(), d2.gather(1, labels[:, None])[:, 0],
                               rtol=1e-5, atol=1e-5)
    assert dist.dtype == torch.float32 and labels.dtype == torch.int64


def test_assign_kernel_many_centroids():
    x, c = _rand(40, 3, seed=1), _rand(70_000, 3, seed=2)  # k beyond 2**16
    # wide centroid tiles in the interpreter (its cost is per tile); the GPU's own tiles there
    tiles = {"BLOCK_N": 64, "BLOCK_K": 4096, "BLOCK_D": 16} if DEV == "cpu" else None
    dist, labels = triton_kernels.assign(x, c, tiles=tiles)
    torch.testing.assert_close(labels, torch.cdist(x.double(), c.double()).argmin(1))


@pytest.mark.parametrize("n,d,k", SHAPES)
def test_assign_kernel_cosine(n, d, k):
    x = torch.nn.functional.normalize(_rand(n, d, seed=1), dim=1)
    c = torch.nn.functional.normalize(_rand(k, d, seed=2), dim=1)
    dist, labels = triton_kernels.assign(x, c, metric="cosine")
    cos = x.double() @ c.double().T  # (n, k)
    torch.testing.assert_close(labels, cos.argmax(1))
    torch.testing.assert_close(dist.double(), (1 - cos.max(1).values).clamp_min(0),
                               rtol=1e-5, atol=1e-6)


def test_assign_kernel_medium_keeps_labels_of_separated_data():
    x, y, _ = six_blobs(seed=3, n=30)
    x, centers = _t(x), _t(np.stack([x[y == j].mean(0) for j in range(6)]))
    dist, labels = triton_kernels.assign(x, centers, precision="medium")
    torch.testing.assert_close(labels.cpu(), torch.as_tensor(y))
    exact = ((x - centers[labels]) ** 2).sum(1)  # the distance is recomputed in float32
    torch.testing.assert_close(dist, exact, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n,d,k", [(203, 5, 40), (150, 37, 3), (100, 2, 1)])
@pytest.mark.parametrize("weighted", [False, True])
def test_cluster_sums_kernel_equals_index_add(n, d, k, weighted):
    x = _rand(n, d, seed=5)
    labels = torch.as_tensor(np.random.default_rng(6).integers(0, k, n), device=DEV)
    labels[labels == k - 1] = 0  # one empty cluster (when k > 1) and a hot one
    w = _t(np.random.default_rng(7).uniform(0, 3, n)) if weighted else None
    sums, counts = triton_kernels.cluster_sums(x, labels, w, k)
    xw = x.double() if w is None else x.double() * w.double()[:, None]
    ref = torch.zeros(k, d, dtype=torch.float64, device=DEV).index_add_(0, labels, xw)
    ref_n = torch.bincount(labels, weights=None if w is None else w.double(), minlength=k)
    torch.testing.assert_close(sums, ref, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(counts, ref_n.double(), rtol=1e-6, atol=1e-5)
    if k > 1:
        assert counts[k - 1] == 0 and sums[k - 1].abs().max() == 0


def test_cluster_sums_kernel_one_hot_cluster_spans_many_tiles():
    x = _rand(300, 3, seed=8)  # ten tiles of 32 sorted points, all in cluster 2
    labels = torch.full((300,), 2, dtype=torch.int64, device=DEV)
    sums, counts = triton_kernels.cluster_sums(x, labels, None, 4)
    torch.testing.assert_close(sums[2], x.double().sum(0), rtol=1e-6, atol=1e-5)
    assert counts.tolist() == [0, 0, 300, 0]


@pytest.mark.parametrize("m,n,d", [(37, 101, 2), (50, 70, 5), (20, 45, 16)])
@pytest.mark.parametrize("kernel", ["gaussian", "flat"])
@pytest.mark.parametrize("precision", ["highest", "high"])
def test_shift_kernel_equals_torch_engine(m, n, d, kernel, precision):
    x = _rand(n, d, seed=9) * 3
    y = x[:m] + 0.1
    x_sq = (x * x).sum(1)
    out = triton_kernels.shift(y, x, x_sq, 1.5, kernel=kernel, precision=precision)
    ref = TorchEngine(DEV).shift(y, x, 1.5, kernel=kernel, x_sq=x_sq)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_shift_flat_window_with_no_point_stays():
    x = _rand(40, 2, seed=10)
    y = x[:5] + 100.0  # far from every point: the window is empty
    out = triton_kernels.shift(y, x, (x * x).sum(1), 0.5, kernel="flat")
    torch.testing.assert_close(out, y)


# --- the engine inside the loops ------------------------------------------------------------


@pytest.fixture(scope="module")
def small_blobs():
    x, y, _ = six_blobs(seed=0, n=40)  # 240 points
    return _t(x), y


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("weighted", [False, True])
def test_kmeans_triton_equals_torch(small_blobs, metric, weighted):
    x, _ = small_blobs
    w = _t(np.random.default_rng(1).uniform(0.5, 2, len(x))) if weighted else None
    kw = {"metric": metric, "weights": w, "seed": 0, "max_iter": 6, "tol": 0}
    a = cl.kmeans(x, 9, backend="triton", **kw)
    b = cl.kmeans(x, 9, backend="torch", **kw)
    torch.testing.assert_close(a.labels, b.labels)
    torch.testing.assert_close(a.centroids, b.centroids, rtol=1e-4, atol=1e-4)
    # float32 sums of (1 - cos) ~ 1e-3 each: the two engines round them differently
    assert a.inertia == pytest.approx(b.inertia, rel=1e-4)
    assert a.n_iter == b.n_iter == 6
    assert a.centroids.device == x.device


def test_kmeans_triton_repairs_empty_clusters_as_torch(small_blobs):
    x, _ = small_blobs
    init = x[:1].repeat(5, 1)  # five equal centroids: four clusters start empty
    a = cl.kmeans(x, 5, init=init, backend="triton", max_iter=4, tol=0)
    b = cl.kmeans(x, 5, init=init, backend="torch", max_iter=4, tol=0)
    assert [h["n_split"] for h in a.history] == [h["n_split"] for h in b.history]
    assert a.history[0]["n_split"] == 4
    torch.testing.assert_close(a.centroids, b.centroids, rtol=1e-4, atol=1e-4)
    assert not torch.isnan(a.centroids).any()


def test_float64_takes_the_torch_kernels_and_stays_float64(small_blobs):
    x = small_blobs[0].double()
    a = cl.kmeans(x, 6, backend="triton", seed=0, max_iter=3)
    b = cl.kmeans(x, 6, backend="torch", seed=0, max_iter=3)
    assert a.centroids.dtype == torch.float64
    torch.testing.assert_close(a.centroids, b.centroids)


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("precision", ["high", "medium"])
def test_lower_precision_same_labels_on_separated_data(small_blobs, backend, precision):
    x, y = small_blobs
    ref = cl.kmeans(x, 6, backend="torch", seed=0, max_iter=5)
    low = cl.kmeans(x, 6, backend=backend, seed=0, max_iter=5, precision=precision)
    torch.testing.assert_close(low.labels, ref.labels)
    dist, labels = cl.assign(x, ref.centroids, backend=backend, precision=precision)
    torch.testing.assert_close(labels, ref.labels)


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("precision", ["high", "medium"])
def test_lower_precision_inertia_close_on_a_random_cloud(backend, precision):
    x = _rand(1000, 12, seed=11)  # enough points that a few swapped labels weigh little
    init = x[:10].clone()
    ref = cl.kmeans(x, 10, init=init, backend="torch", max_iter=4, tol=0)
    low = cl.kmeans(x, 10, init=init, backend=backend, max_iter=4, tol=0, precision=precision)
    assert low.inertia == pytest.approx(ref.inertia, rel=1e-3)


@pytest.mark.parametrize("kernel", ["gaussian", "flat"])
def test_meanshift_triton_equals_torch(small_blobs, kernel):
    x, _ = small_blobs
    a = cl.meanshift(x, 4.0, kernel=kernel, backend="triton", max_iter=8)
    b = cl.meanshift(x, 4.0, kernel=kernel, backend="torch", max_iter=8)
    torch.testing.assert_close(a.points, b.points, rtol=1e-3, atol=1e-3)
    assert len(a.centers) == len(b.centers)
    assert a.n_iter == b.n_iter


# --- choice of engine and errors --------------------------------------------------------------


def test_probe_says_the_kernels_work_here():
    ok, reason = triton_works(DEV)
    assert ok, reason


def test_triton_on_cpu_without_interpreter_is_refused(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="backend='triton' needs a CUDA GPU"):
        TritonEngine("cpu")
    ok, reason = triton_works.__wrapped__("cpu")
    assert not ok and "CUDA" in reason


def test_auto_never_picks_triton_for_cpu_data():
    assert get_engine("auto", torch.zeros(3, 2)).name == "torch"


@pytest.mark.skipif(DEV != "cuda", reason="needs a CUDA GPU")
def test_auto_picks_triton_on_a_gpu():
    x = torch.zeros(3, 2, device="cuda")
    assert get_engine("auto", x).name == "triton"
    assert get_engine("auto", x, "high").name == "triton"


@pytest.mark.parametrize("backend", ["numpy", "keops"])
def test_precision_refused_where_the_engine_has_only_ieee(backend):
    pytest.importorskip("pykeops") if backend == "keops" else None
    with pytest.raises(ValueError, match=r"precision='medium' is not available with backend="):
        cl.kmeans(np.zeros((4, 2), np.float32), 2, backend=backend, precision="medium")


def test_bad_precision_names_the_argument():
    with pytest.raises(ValueError, match=r"precision must be one of .* got 'fp8'"):
        cl.assign(np.zeros((4, 2)), np.zeros((2, 2)), precision="fp8")


# --- the lesson's self-check ------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_check_fused_assign_accepts_a_kernel_and_refuses_a_stored_matrix(metric, capsys):
    fused = cl.checks.check_fused_assign(
        lambda x, c: triton_kernels.assign(x, c, metric=metric)[1], metric=metric)
    assert fused
    if metric == "cosine":
        stored = cl.checks.check_fused_assign(lambda x, c: (x @ c.T).argmax(1), metric=metric)
    else:
        stored = cl.checks.check_fused_assign(lambda x, c: torch.cdist(x, c).argmin(1))
    assert not stored
    assert "the (n, k) matrix was stored" in capsys.readouterr().out
    wrong = cl.checks.check_fused_assign(
        lambda x, c: torch.zeros(len(x), dtype=torch.int64), metric=metric)
    assert not wrong


def _intensity(k, d, stored):
    return 2 * k * d / ((8 * k if stored else 12) + 4 * d)


@pytest.mark.parametrize("ridge", [3.0, 25.0, 400.0])
def test_check_memory_bound_passes_the_roofline_and_fails_rules_of_thumb(ridge, capsys):
    from clusterlab import checks

    assert checks.check_memory_bound(lambda k, d, s: _intensity(k, d, s) < ridge, ridge)
    # a rule of thumb instead of the roofline, the inequality reversed, and a ridge off by 10 %
    assert not checks.check_memory_bound(lambda k, d, s: d < 64, ridge)
    assert not checks.check_memory_bound(lambda k, d, s: _intensity(k, d, s) > ridge, ridge)
    assert not checks.check_memory_bound(lambda k, d, s: _intensity(k, d, s) < 1.1 * ridge, ridge)
    assert "compare flops per byte with the ridge" in capsys.readouterr().out


def test_check_memory_bound_reports_stubs_and_bad_ridges(capsys):
    from clusterlab import checks

    def stub(k, d, stored):
        raise NotImplementedError

    assert not checks.check_memory_bound(stub, 25.0)
    assert "not written yet" in capsys.readouterr().out
    for bad in ("fast", 0.0, float("nan")):
        assert not checks.check_memory_bound(lambda k, d, s: True, bad)
        assert "ridge must be" in capsys.readouterr().out
