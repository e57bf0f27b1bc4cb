"""Tests of clusterlab.data: shapes, dtypes, seeds, statistics, argument checks."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from clusterlab.data import (
    IMAGE_NAMES,
    load_digits_2d,
    load_digits_data,
    load_image_pixels,
    make_gaussian_cloud,
    make_moons_data,
    make_scaled_blobs,
    make_six_blobs,
)


def test_import_is_cheap():
    code = (
        "import sys, clusterlab.data, clusterlab.plotting, clusterlab.device; "
        "heavy = [m for m in ('torch', 'matplotlib', 'sklearn') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# --------------------------------------------------------------------------- six blobs


def test_six_blobs_shapes_and_dtypes():
    x, y, centers = make_six_blobs()
    assert x.shape == (1500, 2) and x.dtype == np.float32
    assert y.shape == (1500,) and y.dtype == np.int64
    assert centers.shape == (6, 2) and centers.dtype == np.float32
    x64, _, c64 = make_six_blobs(10, 3, dtype=np.float64)
    assert x64.shape == (30, 2) and x64.dtype == np.float64 and c64.dtype == np.float64


def test_six_blobs_layout_and_statistics():
    n = 250
    x, y, centers = make_six_blobs(n, 6, seed=0)
    assert np.all(np.abs(centers) <= 35)
    # stored blob after blob
    np.testing.assert_array_equal(y, np.repeat(np.arange(6), n))
    for i in range(6):
        block = x[i * n : (i + 1) * n].astype(np.float64)
        assert np.all(np.abs(block.mean(axis=0) - centers[i]) < 0.5)
        var = block.var(axis=0, ddof=1)
        assert np.all((var > 3.5) & (var < 6.5)), var


def test_six_blobs_variance_is_five_on_large_sample():
    x, y, centers = make_six_blobs(20000, 2, seed=3)
    for i in range(2):
        block = x[y == i].astype(np.float64)
        np.testing.assert_allclose(block.mean(axis=0), centers[i], atol=0.1)
        np.testing.assert_allclose(block.var(axis=0, ddof=1), [5.0, 5.0], rtol=0.05)
        # independent coordinates (diagonal covariance)
        assert abs(np.corrcoef(block.T)[0, 1]) < 0.05


def test_six_blobs_seeds():
    a = make_six_blobs(seed=1)
    b = make_six_blobs(seed=1)
    c = make_six_blobs(seed=2)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[2], c[2])


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"n_per_blob": 0}, ValueError, "n_per_blob.*0"),
        ({"n_blobs": -2}, ValueError, "n_blobs.*-2"),
        ({"n_per_blob": 2.5}, TypeError, "n_per_blob.*2.5"),
        ({"n_blobs": True}, TypeError, "n_blobs.*True"),
        ({"seed": -1}, ValueError, "seed.*-1"),
        ({"seed": "a"}, TypeError, "seed.*'a'"),
        ({"dtype": np.int32}, ValueError, "dtype.*int32"),
        ({"dtype": "nope"}, TypeError, "dtype.*'nope'"),
    ],
)
def test_six_blobs_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        make_six_blobs(**kwargs)


# --------------------------------------------------------------------------- scaled blobs


def test_scaled_blobs_standardised():
    x, y = make_scaled_blobs(500, 5, seed=4)
    assert x.shape == (500, 2) and x.dtype == np.float32
    assert y.shape == (500,) and y.dtype == np.int64
    assert set(np.unique(y)) == set(range(5))
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=0), 1.0, atol=1e-4)


def test_scaled_blobs_seeds_and_given_centers():
    a, ya = make_scaled_blobs(seed=0)
    b, yb = make_scaled_blobs(seed=0)
    c, _ = make_scaled_blobs(seed=1)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a, c)
    x, y = make_scaled_blobs(90, [[0, 0, 0], [10, 10, 10], [-10, 5, 0]], dtype=np.float64)
    assert x.shape == (90, 3) and x.dtype == np.float64
    assert set(np.unique(y)) == {0, 1, 2}


def test_scaled_blobs_bad_arguments():
    with pytest.raises(ValueError, match="n_samples.*0"):
        make_scaled_blobs(0)
    with pytest.raises(ValueError, match="centers.*0"):
        make_scaled_blobs(10, 0)
    with pytest.raises(ValueError, match=r"centers.*\(3,\)"):
        make_scaled_blobs(10, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="centers.*NaN"):
        make_scaled_blobs(10, [[0.0, np.nan]])


# --------------------------------------------------------------------------- gaussian cloud


def test_gaussian_cloud_shape_dtype_and_moments():
    x = make_gaussian_cloud(20000, 3, seed=0)
    assert x.shape == (20000, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.03)
    np.testing.assert_allclose(x.std(axis=0), 1.0, atol=0.03)
    assert make_gaussian_cloud(4, 2, dtype=np.float64).dtype == np.float64
    assert make_gaussian_cloud(4, 2, dtype=np.float16).dtype == np.float16


def test_gaussian_cloud_seeds():
    np.testing.assert_array_equal(
        make_gaussian_cloud(50, 4, seed=7), make_gaussian_cloud(50, 4, seed=7)
    )
    assert not np.array_equal(
        make_gaussian_cloud(50, 4, seed=7), make_gaussian_cloud(50, 4, seed=8)
    )


@pytest.mark.slow
def test_gaussian_cloud_five_million_points_memory():
    n, d = 5_000_000, 8
    tracemalloc.start()
    try:
        x = make_gaussian_cloud(n, d, seed=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert x.shape == (n, d) and x.dtype == np.float32
    assert x.nbytes == n * d * 4
    # no float64 intermediate: peak within 10 % of the result itself
    assert peak < 1.1 * x.nbytes, peak


def test_gaussian_cloud_bad_arguments():
    with pytest.raises(ValueError, match="n.*0"):
        make_gaussian_cloud(0, 2)
    with pytest.raises(TypeError, match="d.*'3'"):
        make_gaussian_cloud(10, "3")


# --------------------------------------------------------------------------- moons


def test_moons():
    x, y = make_moons_data(300, seed=0)
    assert x.shape == (300, 2) and x.dtype == np.float32
    assert np.bincount(y).tolist() == [150, 150]
    x2, _ = make_moons_data(300, seed=0)
    x3, _ = make_moons_data(300, seed=1)
    np.testing.assert_array_equal(x, x2)
    assert not np.array_equal(x, x3)
    # noise=0: points on the two unit half circles
    x0, y0 = make_moons_data(100, noise=0.0, dtype=np.float64)
    r_upper = np.hypot(x0[y0 == 0, 0], x0[y0 == 0, 1])
    np.testing.assert_allclose(r_upper, 1.0, atol=1e-12)


def test_moons_bad_arguments():
    with pytest.raises(ValueError, match="noise.*-0.1"):
        make_moons_data(noise=-0.1)
    with pytest.raises(ValueError, match="n_samples.*1"):
        make_moons_data(1)


# --------------------------------------------------------------------------- digits


def test_digits():
    x, y = load_digits_data()
    assert x.shape == (1797, 64) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0 and x.max() == 16
    assert set(np.unique(y)) == set(range(10))
    assert load_digits_data(dtype=np.float64)[0].dtype == np.float64


def test_digits_2d_is_the_pca_projection():
    x2, y = load_digits_2d()
    assert x2.shape == (1797, 2) and x2.dtype == np.float32
    assert y.shape == (1797,)
    np.testing.assert_allclose(x2.mean(axis=0), 0.0, atol=1e-3)
    # first component carries more variance than the second
    v = x2.astype(np.float64).var(axis=0)
    assert v[0] > v[1] > 0
    # matches a centred projection on the top-2 right singular vectors (up to sign)
    x, _ = load_digits_data(dtype=np.float64)
    xc = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    ref = xc @ vt[:2].T
    np.testing.assert_allclose(np.abs(x2), np.abs(ref), atol=1e-3)


# --------------------------------------------------------------------------- image pixels


def test_image_pixels_full():
    pixels, shape = load_image_pixels()
    assert shape == (427, 640, 3)
    assert pixels.shape == (427 * 640, 3) and pixels.dtype == np.float32
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0
    assert pixels.max() > 0.9  # really scaled by 255, not by something larger
    assert pixels.reshape(shape).shape == shape


def test_image_pixels_subsample():
    a, shape = load_image_pixels("flower", max_pixels=1000, seed=0)
    b, _ = load_image_pixels("flower.jpg", max_pixels=1000, seed=0)
    c, _ = load_image_pixels("flower.jpg", max_pixels=1000, seed=1)
    assert a.shape == (1000, 3)
    assert shape == (427, 640, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0.0 and a.max() <= 1.0
    # subsample rows are rows of the full image
    full, _ = load_image_pixels("flower.jpg")
    full_rows = {tuple(r) for r in full}
    assert all(tuple(r) in full_rows for r in a)
    # max_pixels larger than the image: the whole image
    assert load_image_pixels(max_pixels=10**7)[0].shape == (427 * 640, 3)


def test_image_pixels_bad_arguments():
    assert "china.jpg" in IMAGE_NAMES
    with pytest.raises(ValueError, match="'mona.jpg'"):
        load_image_pixels("mona.jpg")
    with pytest.raises(TypeError, match="name.*3"):
        load_image_pixels(3)
    with pytest.raises(ValueError, match="max_pixels.*0"):
        load_image_pixels(max_pixels=0)
