"""Bad input: a clear ValueError/TypeError naming the argument and its value, one by one."""

from __future__ import annotations

import sys

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
