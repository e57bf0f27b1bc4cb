"""Bad input: a clear ValueError/TypeError naming the argument and its value, one by one."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch

import clusterlab as cl

X = np.random.default_rng(0).normal(size=(20, 2))


def with_nan():
    x = X.copy()
    x[3, 1] = np.nan
    return x


def with_inf():
    x = X.copy()
    x[5, 0] = np.inf
    return x


BAD_X = [
    (with_nan(), ValueError, r"x contains NaN or inf \(1 NaN, 0 inf\); first at index \(3, 1\)"),
    (with_inf(), ValueError, r"x contains NaN or inf \(0 NaN, 1 inf\); first at index \(5, 0\)"),
    (X[:, 0], ValueError, r"x must be 2-D .* got 1-D with shape \(20,\)"),
    (X[None], ValueError, r"x must be 2-D .* got 3-D with shape \(1, 20, 2\)"),
    (np.empty((0, 2)), ValueError, r"x is empty: shape \(0, 2\)"),
    (np.empty((4, 0)), ValueError, r"x is empty: shape \(4, 0\)"),
    (X.astype(complex), TypeError, r"x must be real, got complex data of dtype complex128"),
    (np.array([["a", "b"]]), TypeError, r"x must hold numbers, got dtype <U1"),
    (torch.from_numpy(with_nan()), ValueError, r"x contains NaN or inf"),
    (torch.from_numpy(X).to(torch.complex64), TypeError, r"x must be real, got a complex tensor"),
    (torch.zeros(3), ValueError, r"x must be 2-D .* got 1-D"),
]


@pytest.mark.parametrize(("x", "exc", "match"), BAD_X)
@pytest.mark.parametrize("fn", ["kmeans", "meanshift", "assign", "kmeans_plusplus", "bandwidth"])
def test_bad_data_is_refused_by_every_entry_point(fn, x, exc, match):
    calls = {
        "kmeans": lambda: cl.kmeans(x, 2),
        "meanshift": lambda: cl.meanshift(x, 1.0),
        "assign": lambda: cl.assign(x, np.zeros((2, 2))),
        "kmeans_plusplus": lambda: cl.kmeans_plusplus(x, 2),
        "bandwidth": lambda: cl.estimate_bandwidth(x),
    }
    with pytest.raises(exc, match=match):
        calls[fn]()


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"k": 0}, ValueError, r"k must be at least 1, got 0"),
        ({"k": -3}, ValueError, r"k must be at least 1, got -3"),
        ({"k": 21}, ValueError, r"k=21 is larger than the number of points n=20"),
        ({"k": 2.5}, TypeError, r"k must be an integer, got 2.5"),
        ({"k": True}, TypeError, r"k must be an integer, got True"),
        ({"k": 2, "init": "kmeans++"}, ValueError, r"init must be one of 'k-means\+\+', 'random'; got 'kmeans\+\+'"),
        ({"k": 2, "init": np.zeros((3, 2))}, ValueError, r"init must have shape \(2, 2\) to match x of shape \(20, 2\), got \(3, 2\)"),
        ({"k": 2, "init": np.zeros((2, 3))}, ValueError, r"init must have shape \(2, 2\).* got \(2, 3\)"),
        ({"k": 2, "init": np.array([[0, np.nan], [1, 1]])}, ValueError, r"init contains NaN"),
        ({"k": 2, "metric": "manhattan"}, ValueError, r"metric must be one of 'euclidean', 'cosine'; got 'manhattan'"),
        ({"k": 2, "n_init": 0}, ValueError, r"n_init must be >= 1, got 0"),
        ({"k": 2, "max_iter": -1}, ValueError, r"max_iter must be >= 0, got -1"),
        ({"k": 2, "tol": -1e-3}, ValueError, r"tol must be >= 0, got -0.001"),
        ({"k": 2, "tol": float("nan")}, ValueError, r"tol must be finite, got nan"),
        ({"k": 2, "seed": -1}, ValueError, r"seed must be >= 0, got -1"),
        ({"k": 2, "seed": "a"}, TypeError, r"seed must be an integer, got 'a'"),
        ({"k": 2, "backend": "cupy"}, ValueError, r"backend must be one of .*; got 'cupy'"),
        ({"k": 2, "chunk_size": 0}, ValueError, r"chunk_size must be >= 1, got 0"),
        ({"k": 2, "weights": np.ones(19)}, ValueError, r"weights must have shape \(20,\) to match x, got shape \(19,\)"),
        ({"k": 2, "weights": -np.ones(20)}, ValueError, r"weights must be non-negative, got a minimum of -1.0"),
        ({"k": 2, "weights": np.zeros(20)}, ValueError, r"weights are all zero"),
        ({"k": 2, "weights": np.full(20, np.nan)}, ValueError, r"weights contains NaN or inf"),
        ({"k": 2, "weights": np.ones((20, 1))}, ValueError, r"weights must have shape \(20,\)"),
    ],
)
def test_bad_kmeans_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cl.kmeans(X, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"bandwidth": 0.0}, ValueError, r"bandwidth must be > 0, got 0.0"),
        ({"bandwidth": -2}, ValueError, r"bandwidth must be > 0, got -2.0"),
        ({"bandwidth": float("nan")}, ValueError, r"bandwidth must be finite, got nan"),
        ({"bandwidth": float("inf")}, ValueError, r"bandwidth must be finite, got inf"),
        ({"bandwidth": "wide"}, TypeError, r"bandwidth must be a real number, got 'wide'"),
        ({"bandwidth": 1.0, "kernel": "epanechnikov"}, ValueError, r"kernel must be one of 'gaussian', 'flat'; got 'epanechnikov'"),
        ({"bandwidth": 1.0, "batch_size": 0}, ValueError, r"batch_size must be >= 1, got 0"),
        ({"bandwidth": 1.0, "blurring": "yes"}, TypeError, r"blurring must be True or False, got 'yes'"),
        ({"bandwidth": 1.0, "max_iter": -5}, ValueError, r"max_iter must be >= 0, got -5"),
    ],
)
def test_bad_meanshift_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cl.meanshift(X, **kwargs)


def test_bad_bandwidth_estimate_arguments():
    with pytest.raises(ValueError, match=r"quantile must be > 0, got 0.0"):
        cl.estimate_bandwidth(X, quantile=0.0)
    with pytest.raises(ValueError, match=r"quantile must be <= 1.0, got 1.5"):
        cl.estimate_bandwidth(X, quantile=1.5)
    with pytest.raises(ValueError, match=r"n_samples must be >= 1, got 0"):
        cl.estimate_bandwidth(X, n_samples=0)
    with pytest.raises(ValueError, match=r"estimated bandwidth is 0"):
        cl.meanshift(np.zeros((10, 2)))


def test_bad_assign_arguments():
    with pytest.raises(ValueError, match=r"centroids must have shape \(k, 2\) .* got \(3,\)"):
        cl.assign(X, np.zeros(3))
    with pytest.raises(ValueError, match=r"centroids must have shape \(k, 2\) .* got \(3, 5\)"):
        cl.assign(X, np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"centroids contains NaN or inf"):
        cl.assign(X, np.full((3, 2), np.inf))
    with pytest.raises(TypeError, match=r"centroids must hold real numbers, got dtype complex128"):
        cl.assign(X, np.zeros((3, 2), dtype=complex))


def test_cosine_refuses_zero_rows():
    x = X.copy()
    x[4] = 0.0
    with pytest.raises(ValueError, match=r"x has 1 row\(s\) of norm zero \(first: row 4\)"):
        cl.kmeans(x, 2, metric="cosine")


def test_centroids_on_another_device_are_refused():
    # a "meta" tensor lives on another device than the CPU: no GPU needed to test this
    meta = torch.zeros((2, 2), device="meta")
    with pytest.raises(ValueError, match=r"centroids is on device meta but x is on cpu"):
        cl.assign(torch.from_numpy(X), meta)
    with pytest.raises(ValueError, match=r"init is a tensor on device meta but x is a NumPy array"):
        cl.kmeans(X, 2, init=meta)


def test_missing_backend_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails
    with pytest.raises(ImportError, match=r"pip install torch==2.13.0"):
        cl.kmeans(X, 2, backend="torch")
    res = cl.kmeans(X, 2, backend="auto")  # auto falls back to NumPy
    assert isinstance(res.centroids, np.ndarray)


def test_import_is_light():
    import subprocess

    code = "import sys, clusterlab; print(sorted(m for m in ('torch', 'matplotlib', 'sklearn', 'pykeops', 'faiss') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("as_torch", [False, True])
def test_huge_finite_values_are_accepted_even_when_their_sum_overflows(as_torch):
    from clusterlab._validate import check_array

    x = np.full((10, 2), 3e38, dtype=np.float32)  # finite; the float32 sum is inf
    x_in = torch.from_numpy(x) if as_torch else x
    with np.errstate(over="ignore"):
        assert np.isinf(x.sum())  # the fast path's sum overflows
    out = check_array(x_in, "x")  # and no overflow warning
    assert out.shape == (10, 2)
    x[3, 1] = np.nan  # and a NaN among them is still found, with its index
    with pytest.raises(ValueError, match=r"x contains NaN or inf \(1 NaN, 0 inf\); first at index \(3, 1\)"):
        check_array(torch.from_numpy(x) if as_torch else x, "x")


# --------------------------------------------------------------------------- sparse input


def _scipy_sparse():
    sp = pytest.importorskip("scipy.sparse")
    return [
        sp.csr_matrix(X), sp.csc_matrix(X), sp.coo_matrix(X), sp.lil_matrix(X),
        sp.csr_array(X), sp.coo_array(X),
    ]


def _torch_sparse():
    t = torch.from_numpy(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return [t.to_sparse(), t.to_sparse_csr(), t.to_sparse_csc(),
                t.to_sparse_bsr((1, 1)), t.to_sparse_bsc((1, 1))]


ENTRY_POINTS = {
    "kmeans": lambda x: cl.kmeans(x, 2),
    "meanshift": lambda x: cl.meanshift(x, 1.0),
    "assign": lambda x: cl.assign(x, np.zeros((2, 2))),
    "kmeans_plusplus": lambda x: cl.kmeans_plusplus(x, 2),
    "bandwidth": lambda x: cl.estimate_bandwidth(x),
}


@pytest.mark.parametrize("fn", sorted(ENTRY_POINTS))
def test_scipy_sparse_is_refused_with_how_to_densify(fn):
    for x in _scipy_sparse():
        kind = type(x).__name__
        with pytest.raises(TypeError, match=rf"x is a sparse matrix \({kind}, shape \(20, 2\)\).*x\.toarray\(\)"):
            ENTRY_POINTS[fn](x)
    # and the advice works: the dense copy gives what the dense array gives
    if fn == "kmeans":
        np.testing.assert_array_equal(cl.kmeans(x.toarray(), 2).labels, cl.kmeans(X, 2).labels)


@pytest.mark.parametrize("fn", sorted(ENTRY_POINTS))
def test_torch_sparse_is_refused_in_every_layout(fn):
    for x in _torch_sparse():
        with pytest.raises(TypeError, match=rf"x is a sparse torch tensor \(layout {x.layout}\).*x\.to_dense\(\)"):
            ENTRY_POINTS[fn](x)


def test_sparse_centroids_weights_and_init_are_refused():
    sp = pytest.importorskip("scipy.sparse")
    c = np.zeros((2, 2))
    with pytest.raises(TypeError, match=r"centroids is a sparse matrix .*centroids\.toarray\(\)"):
        cl.assign(X, sp.csr_matrix(c))
    with pytest.raises(TypeError, match=r"init is a sparse matrix"):
        cl.kmeans(X, 2, init=sp.csr_matrix(c))
    with pytest.raises(TypeError, match=r"weights is a sparse matrix"):
        cl.kmeans(X, 2, weights=sp.csr_matrix(np.ones((1, 20))))
    xt = torch.from_numpy(X)
    with pytest.raises(TypeError, match=r"centroids is a sparse torch tensor \(layout torch.sparse_coo\)"):
        cl.assign(xt, torch.zeros((2, 2), dtype=xt.dtype).to_sparse())
    with pytest.raises(TypeError, match=r"weights is a sparse torch tensor .*weights\.to_dense\(\)"):
        cl.kmeans(xt, 2, weights=torch.ones(20, dtype=xt.dtype).to_sparse())


def test_torch_masked_tensor_is_refused():
    masked = pytest.importorskip("torch.masked")
    mask = torch.ones(20, 2, dtype=torch.bool)
    mask[3, 1] = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "MaskedTensor is in prototype"
        mt = masked.masked_tensor(torch.from_numpy(X), mask)
    with pytest.raises(TypeError, match=r"x is a torch MaskedTensor"):
        cl.kmeans(mt, 2)


# --------------------------------------------------------------------------- masked arrays


def _masked_nan():
    """A NaN hidden by the mask: used as a value, it would reach the kernels."""
    return np.ma.masked_invalid(with_nan())


@pytest.mark.parametrize("fn", sorted(ENTRY_POINTS))
def test_masked_arrays_with_masked_values_are_refused(fn):
    with pytest.raises(TypeError, match=r"x is a masked array with 1 masked value\(s\).*x\.filled\(value\).*x\[~x\.mask\.any\(1\)\]"):
        ENTRY_POINTS[fn](_masked_nan())


def test_masked_arrays_the_advice_works_and_nothing_masked_is_plain_data():
    m = _masked_nan()
    kept = m[~m.mask.any(1)]  # the message's advice: a masked array with nothing masked
    ref = cl.kmeans(np.delete(X, 3, axis=0), 2)
    np.testing.assert_array_equal(cl.kmeans(kept, 2).labels, ref.labels)
    filled = cl.kmeans(m.filled(0.0), 2)  # the other advice
    assert np.isfinite(filled.centroids).all()
    plain = np.ma.masked_array(X)  # nothing masked: read as its data
    res = cl.kmeans(plain, 2)
    assert type(res.centroids) is np.ndarray
    np.testing.assert_array_equal(res.labels, cl.kmeans(X, 2).labels)


def test_masked_weights_and_centroids_are_refused():
    w = np.ma.masked_array(np.ones(20), mask=np.arange(20) == 7)
    with pytest.raises(TypeError, match=r"weights is a masked array with 1 masked value\(s\).*weights\[~weights\.mask\]"):
        cl.kmeans(X, 2, weights=w)
    c = np.ma.masked_invalid(np.array([[0.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(TypeError, match=r"centroids is a masked array"):
        cl.assign(X, c)


# --------------------------------------------------------------------------- longdouble


needs_longdouble = pytest.mark.skipif(
    np.finfo(np.longdouble).max <= np.finfo(np.float64).max,
    reason="np.longdouble is float64 on this platform",
)


@needs_longdouble
def test_longdouble_is_cast_to_float64_with_a_warning():
    from clusterlab._validate import check_array

    xl = X.astype(np.longdouble)
    with pytest.warns(UserWarning, match=rf"x has dtype {xl.dtype} \(extended precision\).*cast to float64"):
        out = check_array(xl, "x")
    assert out.dtype == np.float64  # not float32: the best precision the engines have
    np.testing.assert_array_equal(out, X)
    with pytest.warns(UserWarning, match="cast to float64"):
        res = cl.kmeans(xl, 2)
    assert res.centroids.dtype == np.float64
    np.testing.assert_array_equal(res.labels, cl.kmeans(X, 2).labels)


@needs_longdouble
def test_finite_longdouble_is_never_refused_as_inf():
    from clusterlab._validate import check_array

    big = (X * 1e300).astype(np.longdouble)  # finite in float64 too; inf in float32
    with pytest.warns(UserWarning, match="cast to float64"):
        out = check_array(big, "x")
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out, X * 1e300)
    huge = X.astype(np.longdouble) * np.longdouble("1e4000")  # beyond float64: said so
    with pytest.raises(ValueError, match=r"x has dtype .* values up to .*e\+4000, beyond float64's range"):
        check_array(huge, "x")
    nan = with_nan().astype(np.longdouble)  # and NaN is still NaN
    with pytest.raises(ValueError, match=r"x contains NaN or inf \(1 NaN, 0 inf\); first at index \(3, 1\)"):
        check_array(nan, "x")


def test_centroids_beyond_the_range_of_x_dtype_are_not_called_inf():
    x32 = X.astype(np.float32)
    with pytest.raises(ValueError, match=r"centroids has values up to 1\.000e\+300 \(first at index \(1, 0\)\), beyond the range of x's dtype float32"):
        cl.assign(x32, np.array([[0.0, 0.0], [1e300, 0.0]]))
    with pytest.raises(ValueError, match=r"init has values up to 1\.000e\+300 .* float32"):
        cl.kmeans(torch.from_numpy(x32), 2, init=torch.tensor([[0.0, 0.0], [1e300, 0.0]], dtype=torch.float64))


# --------------------------------------------------------------------------- size arguments


def test_check_rows_clips_to_n_and_check_count_bounds_counts():
    from clusterlab._validate import MAX_COUNT, check_count, check_rows

    assert check_rows(None, "chunk_size", 10) is None
    assert check_rows(2**63 - 1, "chunk_size", 10) == 10
    assert check_rows(np.int64(3), "chunk_size", 10) == 3
    with pytest.raises(ValueError, match=r"chunk_size must be >= 1, got 0"):
        check_rows(0, "chunk_size", 10)
    with pytest.raises(TypeError, match=r"batch_size must be an integer, got 2.5"):
        check_rows(2.5, "batch_size", 10)
    assert MAX_COUNT == 2**31 - 1
    assert check_count(MAX_COUNT, "max_iter") == MAX_COUNT
    with pytest.raises(ValueError, match=r"max_iter must be <= 2\*\*31 - 1 = 2147483647 .*got 2147483648"):
        check_count(2**31, "max_iter")


def test_engine_block_sizes_never_exceed_the_data():
    from clusterlab.engines.base import chunk_rows, shift_blocks

    assert chunk_rows(10, 3, 4, "cpu", 2**63 - 1) == 10
    assert shift_blocks(10, 12, 4, "cpu", 2**63 - 1)[0] == 10


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: cl.kmeans(X, 2, n_init=2**63 - 1), r"n_init must be <= 2\*\*31 - 1 = 2147483647 .*got 9223372036854775807"),
        (lambda: cl.kmeans(X, 2, max_iter=2**31), r"max_iter must be <= 2\*\*31 - 1 .*got 2147483648"),
        (lambda: cl.meanshift(X, 1.0, max_iter=2**40), r"max_iter must be <= 2\*\*31 - 1 .*got 1099511627776"),
    ],
)
def test_counts_beyond_a_c_int_are_refused_quoting_the_value(call, match, monkeypatch):
    # Refused before any work: were a count let through, 2**63 restarts would never end,
    # so the engines are replaced by a stub that fails at once.
    import importlib

    def no_engine(*args, **kwargs):
        raise AssertionError("an engine was requested before the counts were checked")

    for mod in ("clusterlab.kmeans", "clusterlab.meanshift"):
        monkeypatch.setattr(importlib.import_module(mod), "get_engine", no_engine)
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("as_torch", [False, True])
def test_huge_chunk_size_means_all_rows(backend, as_torch):
    x = np.random.default_rng(1).normal(size=(300, 3)).astype(np.float32)
    c = x[:4].copy()
    if as_torch:
        x, c = torch.from_numpy(x), torch.from_numpy(c)
    d0, l0 = cl.assign(x, c, backend=backend)
    d1, l1 = cl.assign(x, c, chunk_size=2**63 - 1, backend=backend)
    np.testing.assert_array_equal(np.asarray(l1), np.asarray(l0))  # not labels near 1e18
    np.testing.assert_allclose(np.asarray(d1), np.asarray(d0), rtol=1e-5)
    m0 = cl.meanshift(x, 1.0, backend=backend)
    m1 = cl.meanshift(x, 1.0, batch_size=2**63 - 1, backend=backend)
    np.testing.assert_array_equal(np.asarray(m1.labels), np.asarray(m0.labels))
    h = cl.estimate_bandwidth(x, backend=backend)
    assert cl.estimate_bandwidth(x, n_samples=2**63 - 1, backend=backend) == pytest.approx(h)


def test_huge_chunk_size_in_the_lloyd_loop_with_torch():
    # Before the bound, the torch engine's CPU kernels overflowed their block count and
    # crashed the process in cluster_sums: run it in a child process.
    import subprocess

    code = (
        "import numpy as np, torch, clusterlab as cl\n"
        "x = torch.from_numpy(np.random.default_rng(1).normal(size=(300, 3)).astype(np.float32))\n"
        "a = cl.kmeans(x, 4, chunk_size=2**63 - 1, backend='torch')\n"
        "b = cl.kmeans(x, 4, backend='torch')\n"
        "print(bool((a.labels == b.labels).all()), a.inertia == b.inertia)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["True", "True"]


def test_a_tensor_that_requires_grad_is_clustered_without_a_graph_or_warning():
    import warnings

    import torch

    import clusterlab as cl

    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(0), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when a tensor that requires grad becomes a number
        res = cl.kmeans(x, 3, seed=0)
        dist, labels = cl.assign(x, res.centroids)
        ms = cl.meanshift(x, 1.0, max_iter=3)
    assert not (res.centroids.requires_grad or dist.requires_grad or ms.points.requires_grad)
    assert torch.equal(res.labels, cl.kmeans(x.detach(), 3, seed=0).labels)
