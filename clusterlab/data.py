"""The course's data sets: seeded, NumPy in and out, nothing downloaded.

Every generator takes a ``seed`` (all randomness comes from
``np.random.default_rng(seed)`` or scikit-learn's ``random_state=seed``) and a
``dtype`` (``np.float32`` by default). Labels are ``int64``. scikit-learn is
imported inside the functions that need it, so ``import clusterlab.data`` is cheap.
"""

from __future__ import annotations

import numbers

import numpy as np

from clusterlab._validate import check_int, check_seed

__all__ = [
    "IMAGE_NAMES",
    "load_digits_2d",
    "load_digits_data",
    "load_image_pixels",
    "make_gaussian_cloud",
    "make_moons_data",
    "make_scaled_blobs",
    "make_six_blobs",
]

#: Names accepted by :func:`load_image_pixels` (the images shipped with scikit-learn).
IMAGE_NAMES = ("china.jpg", "flower.jpg")



# --------------------------------------------------------------------------- checks


def _check_dtype(dtype) -> np.dtype:
    """Return ``dtype`` as a floating NumPy dtype, or raise."""
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"dtype must be a NumPy floating dtype, got {dtype!r}") from err
    if dt.kind != "f":
        raise ValueError(f"dtype must be a floating dtype (float16/32/64), got {dt.name!r}")
    return dt


# --------------------------------------------------------------------------- generators


def make_six_blobs(n_per_blob=250, n_blobs=6, *, seed=0, dtype=np.float32):
    """Gaussian blobs of the mean-shift lesson.

    Centres are drawn uniformly in ``[-35, 35]²``; blob ``i`` holds ``n_per_blob``
    points drawn from ``N(centre_i, diag(5, 5))`` (variance 5, std ``sqrt(5)``).
    Points are stored blob after blob, so ``x[i * n_per_blob:(i + 1) * n_per_blob]``
    is blob ``i`` (the block layout the lesson's ``plot_data`` relies on).

    Parameters
    ----------
    n_per_blob : int, default 250
        Points per blob, ``>= 1``.
    n_blobs : int, default 6
        Number of blobs, ``>= 1``.
    seed : int, default 0
        Seed of ``np.random.default_rng``.
    dtype : numpy floating dtype, default ``np.float32``
        Dtype of ``x`` and ``centers``.

    Returns
    -------
    x : ndarray of shape (n_blobs * n_per_blob, 2)
        The points.
    y : ndarray of shape (n_blobs * n_per_blob,), int64
        Blob index of each point.
    centers : ndarray of shape (n_blobs, 2)
        The true centres.
    """
    n_per_blob = check_int(n_per_blob, "n_per_blob", low=1)
    n_blobs = check_int(n_blobs, "n_blobs", low=1)
    rng = np.random.default_rng(check_seed(seed))
    dt = _check_dtype(dtype)
    centers = rng.uniform(-35.0, 35.0, size=(n_blobs, 2))
    noise = rng.normal(0.0, np.sqrt(5.0), size=(n_blobs, n_per_blob, 2))
    x = (centers[:, None, :] + noise).reshape(n_blobs * n_per_blob, 2)
    y = np.repeat(np.arange(n_blobs, dtype=np.int64), n_per_blob)
    return x.astype(dt), y, centers.astype(dt)


def make_scaled_blobs(n_samples=300, centers=4, *, seed=0, dtype=np.float32):
    """Isotropic blobs from scikit-learn's ``make_blobs``, standardised.

    Each feature is scaled to mean 0 and standard deviation 1 with
    ``StandardScaler``.

    Parameters
    ----------
    n_samples : int, default 300
        Total number of points, ``>= 1``.
    centers : int or array-like of shape (n_centers, n_features), default 4
        Number of blobs (2-D points, centres drawn by ``make_blobs``) or the
        centres themselves.
    seed : int, default 0
        ``random_state`` of ``make_blobs``.
    dtype : numpy floating dtype, default ``np.float32``
        Dtype of ``x``.

    Returns
    -------
    x : ndarray of shape (n_samples, n_features)
        Standardised points (``n_features`` is 2 when ``centers`` is an int).
    y : ndarray of shape (n_samples,), int64
        Blob index of each point.
    """
    n_samples = check_int(n_samples, "n_samples", low=1)
    if isinstance(centers, bool):
        raise TypeError(f"centers must be an int or a 2-D array of centres, got {centers!r}")
    if isinstance(centers, numbers.Integral):
        centers = check_int(centers, "centers", low=1)
    else:
        try:
            arr = np.asarray(centers, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"centers must be an int or a 2-D array of centres, got {centers!r}"
            ) from err
        if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
            raise ValueError(
                f"centers must be a 2-D array of shape (n_centers, n_features), "
                f"got shape {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError("centers must be finite, got NaN or inf")
        centers = arr
    seed = check_seed(seed)
    dt = _check_dtype(dtype)

    from sklearn.datasets import make_blobs
    from sklearn.preprocessing import StandardScaler

    x, y = make_blobs(n_samples=n_samples, centers=centers, random_state=seed)
    x = StandardScaler().fit_transform(x)
    return x.astype(dt), y.astype(np.int64)


def make_gaussian_cloud(n, d, *, seed=0, dtype=np.float32):
    """Standard normal points, generated directly in the requested dtype.

    No float64 intermediate is made for float32/float64, so ``n=5_000_000, d=8``
    in float32 costs 160 MB, not more.

    Parameters
    ----------
    n : int
        Number of points, ``>= 1``.
    d : int
        Dimension, ``>= 1``.
    seed : int, default 0
        Seed of ``np.random.default_rng``.
    dtype : numpy floating dtype, default ``np.float32``
        Dtype of the result (float16 is drawn in float32 and cast).

    Returns
    -------
    x : ndarray of shape (n, d)
    """
    n = check_int(n, "n", low=1)
    d = check_int(d, "d", low=1)
    rng = np.random.default_rng(check_seed(seed))
    dt = _check_dtype(dtype)
    if dt in (np.dtype(np.float32), np.dtype(np.float64)):
        return rng.standard_normal((n, d), dtype=dt)
    return rng.standard_normal((n, d), dtype=np.float32).astype(dt)


def make_moons_data(n_samples=400, *, noise=0.06, seed=0, dtype=np.float32):
    """Two interleaved half circles: a shape k-means cannot separate.

    Parameters
    ----------
    n_samples : int, default 400
        Total number of points, ``>= 2``.
    noise : float, default 0.06
        Standard deviation of the Gaussian noise, ``>= 0``.
    seed : int, default 0
        ``random_state`` of scikit-learn's ``make_moons``.
    dtype : numpy floating dtype, default ``np.float32``
        Dtype of ``x``.

    Returns
    -------
    x : ndarray of shape (n_samples, 2)
    y : ndarray of shape (n_samples,), int64
        Moon (0 or 1) of each point.
    """
    n_samples = check_int(n_samples, "n_samples", low=2)
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real):
        raise TypeError(f"noise must be a real number, got {noise!r}")
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be finite and >= 0, got {noise}")
    seed = check_seed(seed)
    dt = _check_dtype(dtype)

    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n_samples, noise=float(noise), random_state=seed)
    return x.astype(dt), y.astype(np.int64)


# --------------------------------------------------------------------------- loaders


def load_digits_data(*, dtype=np.float32):
    """scikit-learn's 8×8 handwritten digits (shipped with scikit-learn).

    Parameters
    ----------
    dtype : numpy floating dtype, default ``np.float32``
        Dtype of ``x``.

    Returns
    -------
    x : ndarray of shape (1797, 64)
        Pixel intensities in ``[0, 16]``.
    y : ndarray of shape (1797,), int64
        The digit, 0 to 9.
    """
    dt = _check_dtype(dtype)

    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x.astype(dt), y.astype(np.int64)


def load_digits_2d(*, seed=0, dtype=np.float32):
    """The digits projected on their first two principal components, for plots.

    Parameters
    ----------
    seed : int, default 0
        ``random_state`` of ``PCA``. The projection uses the exact (full SVD)
        solver, so the result does not depend on it; it is kept so that every
        function of this module has the same signature shape.
    dtype : numpy floating dtype, default ``np.float32``
        Dtype of ``x2``.

    Returns
    -------
    x2 : ndarray of shape (1797, 2)
        PCA coordinates (centred).
    y : ndarray of shape (1797,), int64
        The digit, 0 to 9.
    """
    seed = check_seed(seed)
    dt = _check_dtype(dtype)

    from sklearn.decomposition import PCA

    x, y = load_digits_data(dtype=np.float64)
    x2 = PCA(n_components=2, svd_solver="full", random_state=seed).fit_transform(x)
    return x2.astype(dt), y


def load_image_pixels(name="china.jpg", *, max_pixels=None, seed=0, dtype=np.float32):
    """RGB pixels of one of scikit-learn's sample images, scaled to ``[0, 1]``.

    Parameters
    ----------
    name : {"china.jpg", "flower.jpg"}, default "china.jpg"
        The image (the ``.jpg`` may be left out).
    max_pixels : int or None, default None
        If given and smaller than the number of pixels, a seeded random subset
        of ``max_pixels`` pixels (without replacement, kept in image order).
    seed : int, default 0
        Seed of ``np.random.default_rng`` for the subsample.
    dtype : numpy floating dtype, default ``np.float32``
        Dtype of ``pixels``.

    Returns
    -------
    pixels : ndarray of shape (n, 3)
        RGB values in ``[0, 1]``; ``n = height * width`` or ``max_pixels``.
    image_shape : tuple of int
        ``(height, width, 3)`` of the full image, for reshaping a full set of
        pixels back into an image.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {name!r} ({type(name).__name__})")
    full = name if name.endswith(".jpg") else name + ".jpg"
    if full not in IMAGE_NAMES:
        raise ValueError(f"name must be one of {IMAGE_NAMES}, got {name!r}")
    if max_pixels is not None:
        max_pixels = check_int(max_pixels, "max_pixels", low=1)
    seed = check_seed(seed)
    dt = _check_dtype(dtype)

    from sklearn.datasets import load_sample_image

    image = load_sample_image(full)
    image_shape = tuple(int(s) for s in image.shape)
    flat = image.reshape(-1, image.shape[-1])
    if max_pixels is not None and max_pixels < flat.shape[0]:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(flat.shape[0], size=max_pixels, replace=False))
        flat = flat[idx]
    pixels = flat.astype(dt) / dt.type(255)
    return pixels, image_shape
