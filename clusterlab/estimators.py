"""``KMeans`` and ``MeanShift`` with scikit-learn's interface, over :func:`clusterlab.kmeans`
and :func:`clusterlab.meanshift`.

The estimators are thin: ``__init__`` stores the parameters, ``fit`` validates the data
the scikit-learn way (:func:`sklearn.utils.validation.validate_data`: ``n_features_in_``,
``feature_names_in_``, the standard messages for NaN, complex or sparse input) and calls
the function with every parameter passed through; the result becomes the fitted
attributes. They work in a :class:`~sklearn.pipeline.Pipeline`, with
:func:`~sklearn.base.clone` and in :class:`~sklearn.model_selection.GridSearchCV`.

NumPy in, NumPy out: array-likes (lists, pandas frames, CPU tensors) are converted to a
NumPy array and every fitted attribute and result is a NumPy array. For tensors on a GPU
call :func:`clusterlab.kmeans` / :func:`clusterlab.meanshift` directly, which keep them
on the device.

Randomness follows the house rule rather than scikit-learn's: ``random_state=None``
means seed 0, never NumPy's global random state, so two fits give the same result.

>>> import clusterlab as cl
>>> x, y, centers = cl.data.make_six_blobs(seed=0)
>>> km = cl.KMeans(n_clusters=6, random_state=0).fit(x)
>>> km.cluster_centers_.shape
(6, 2)

This module imports scikit-learn; ``import clusterlab`` does not import it, and
``cl.KMeans`` / ``cl.MeanShift`` load it on first use.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
)
from sklearn.metrics.pairwise import cosine_distances, euclidean_distances
from sklearn.utils.validation import check_is_fitted, validate_data

from clusterlab._validate import check_int, is_torch
from clusterlab.kmeans import assign, kmeans
from clusterlab.meanshift import meanshift

__all__ = ["KMeans", "MeanShift"]


def _seed(random_state) -> int:
    """The clusterlab seed for a scikit-learn ``random_state``.

    ``None`` gives 0 (global random state is never used); an int is the seed itself; a
    ``numpy.random.RandomState`` or ``Generator`` supplies one draw from itself.
    """
    if random_state is None:
        return 0
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return check_int(random_state, "random_state", low=0, high=2**32 - 1)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**32))
    raise TypeError(
        "random_state must be None, an int in [0, 2**32), a numpy.random.RandomState or "
        f"a numpy.random.Generator; got {random_state!r}"
    )


def _check_x(estimator, X, *, reset):
    """Validate ``X`` as scikit-learn does and return a float64 or float32 NumPy array.

    CPU tensors are converted to NumPy; tensors on another device are refused with a
    pointer to the functional API (which keeps them there).
    """
    if is_torch(X):
        if X.device.type != "cpu":
            raise TypeError(
                f"{type(estimator).__name__} takes NumPy arrays (scikit-learn's interface), got "
                f"a tensor on {X.device}; call clusterlab.kmeans / clusterlab.meanshift to "
                "cluster it on its device, or pass X.cpu().numpy()"
            )
        X = X.detach().numpy()
    return validate_data(
        estimator, X, reset=reset, accept_sparse=False, dtype=[np.float64, np.float32],
        order="C",
    )


class KMeans(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator):
    """k-means (Lloyd) with scikit-learn's interface, over :func:`clusterlab.kmeans`.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters, at most the number of samples.
    init : {"k-means++", "random"} or array of shape (n_clusters, n_features), default="k-means++"
        Greedy k-means++, ``n_clusters`` distinct random samples, or given centres.
    n_init : int or "auto", default=1
        Runs from different initialisations; the lowest inertia is kept. ``"auto"`` is
        scikit-learn's rule: 1 run for "k-means++" or given centres, 10 for "random".
    max_iter : int, default=300
        Maximum Lloyd iterations per run (scikit-learn's default; the function's is 100).
    tol : float, default=1e-4
        Stop when the sum of squared centre moves is at most ``tol`` times the mean
        per-feature variance of ``X`` (scikit-learn's rule).
    metric : {"euclidean", "cosine"}, default="euclidean"
        ``"cosine"`` is spherical k-means (unit-norm centres, inertia the sum of ``1 - cos``).
    random_state : None, int, numpy.random.RandomState or numpy.random.Generator, default=None
        Seed of the initialisation. ``None`` means seed 0 (clusterlab never draws from
        NumPy's global state, unlike scikit-learn), so repeated fits agree.
    backend : {"auto", "numpy", "torch", "keops", "triton"}, default="auto"
        Engine, as in :func:`clusterlab.kmeans`.
    chunk_size : int, optional
        Rows per block of the (n, k) distance matrix; by default sized from a memory budget.
    precision : {"highest", "high", "medium"}, default="highest"
        Precision of the products for float32 data, as in :func:`clusterlab.kmeans`.

    Attributes
    ----------
    cluster_centers_ : numpy.ndarray, shape (n_clusters, n_features)
        The centres, float32 for float32 data and float64 otherwise.
    labels_ : numpy.ndarray, shape (n_samples,), int64
        Index of the nearest centre of each training sample.
    inertia_ : float
        Sum of the (weighted) squared distances of the samples to their centres (sum of
        ``1 - cos`` for ``metric="cosine"``).
    n_iter_ : int
        Lloyd iterations of the kept run.
    history_ : list of dict
        Per-iteration statistics of the kept run (see :class:`clusterlab.KMeansResult`).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : numpy.ndarray, shape (n_features_in_,)
        Column names seen in ``fit``, when ``X`` had string column names.

    Examples
    --------
    >>> import numpy as np
    >>> import clusterlab as cl
    >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    >>> km = cl.KMeans(n_clusters=2).fit(X)
    >>> int(km.predict([[5.0, 4.9]])[0]) == int(km.labels_[2])
    True
    """

    def __init__(
        self,
        n_clusters=8,
        *,
        init="k-means++",
        n_init=1,
        max_iter=300,
        tol=1e-4,
        metric="euclidean",
        random_state=None,
        backend="auto",
        chunk_size=None,
        precision="highest",
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.metric = metric
        self.random_state = random_state
        self.backend = backend
        self.chunk_size = chunk_size
        self.precision = precision

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _n_init(self) -> int:
        if isinstance(self.n_init, str):
            if self.n_init != "auto":
                raise ValueError(f"n_init must be a positive integer or 'auto'; got {self.n_init!r}")
            return 10 if isinstance(self.init, str) and self.init == "random" else 1
        return self.n_init

    def fit(self, X, y=None, sample_weight=None):
        """Cluster ``X``.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
            Training data; float32 stays float32, other numbers become float64.
        y : None
            Ignored (scikit-learn's API).
        sample_weight : array_like, shape (n_samples,), optional
            Non-negative weights (passed to :func:`clusterlab.kmeans` as ``weights``).

        Returns
        -------
        self : KMeans
        """
        X = _check_x(self, X, reset=True)
        n_clusters = check_int(self.n_clusters, "n_clusters", low=1)
        if X.shape[0] < n_clusters:
            raise ValueError(f"n_samples={X.shape[0]} should be >= n_clusters={n_clusters}")
        init = self.init
        if not isinstance(init, str):
            init = np.asarray(init, dtype=X.dtype)
        res = kmeans(
            X, n_clusters, init=init, n_init=self._n_init(), max_iter=self.max_iter,
            tol=self.tol, metric=self.metric, weights=sample_weight,
            seed=_seed(self.random_state), backend=self.backend, chunk_size=self.chunk_size,
            precision=self.precision,
        )
        self.cluster_centers_ = np.asarray(res.centroids)
        self.labels_ = np.asarray(res.labels, dtype=np.int64)
        self.inertia_ = float(res.inertia)
        self.n_iter_ = int(res.n_iter)
        self.history_ = res.history
        self._n_features_out = n_clusters
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit and return the cluster index of each sample.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
        y : None
            Ignored.
        sample_weight : array_like, shape (n_samples,), optional

        Returns
        -------
        labels : numpy.ndarray, shape (n_samples,), int64
        """
        return self.fit(X, sample_weight=sample_weight).labels_

    def _assign(self, X):
        check_is_fitted(self)
        X = _check_x(self, X, reset=False)
        dist, labels = assign(
            X, self.cluster_centers_, metric=self.metric, chunk_size=self.chunk_size,
            backend=self.backend, precision=self.precision,
        )
        return X, np.asarray(dist), np.asarray(labels, dtype=np.int64)

    def predict(self, X):
        """Index of the nearest centre of each sample (:func:`clusterlab.assign`).

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)

        Returns
        -------
        labels : numpy.ndarray, shape (n_samples,), int64
        """
        return self._assign(X)[2]

    def transform(self, X):
        """Distance of each sample to every centre.

        Euclidean distance (not squared), as scikit-learn's ``KMeans.transform``; for
        ``metric="cosine"``, the cosine distance ``1 - cos``.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)

        Returns
        -------
        distances : numpy.ndarray, shape (n_samples, n_clusters)
            float32 for float32 input, float64 otherwise.
        """
        check_is_fitted(self)
        X = _check_x(self, X, reset=False)
        c = self.cluster_centers_.astype(X.dtype, copy=False)
        if self.metric == "cosine":
            return cosine_distances(X, c).astype(X.dtype, copy=False)
        return euclidean_distances(X, c)

    def fit_transform(self, X, y=None, sample_weight=None):
        """Fit, then return the distances of ``X`` to the centres (see :meth:`transform`).

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
        y : None
            Ignored.
        sample_weight : array_like, shape (n_samples,), optional

        Returns
        -------
        distances : numpy.ndarray, shape (n_samples, n_clusters)
        """
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def score(self, X, y=None, sample_weight=None):
        """Opposite of the inertia of ``X`` with the fitted centres (higher is better).

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
        y : None
            Ignored.
        sample_weight : array_like, shape (n_samples,), optional
            Weights of the samples in the sum.

        Returns
        -------
        score : float
            ``-sum(w * d)``, ``d`` the squared distance to the nearest centre (``1 - cos``
            for ``metric="cosine"``).
        """
        X, dist, _ = self._assign(X)
        dist = dist.astype(np.float64)
        if sample_weight is None:
            return -float(dist.sum())
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.shape != dist.shape:
            raise ValueError(
                f"sample_weight must have shape ({X.shape[0]},) to match X, got shape {w.shape}"
            )
        return -float(w @ dist)


class MeanShift(ClusterMixin, BaseEstimator):
    """Mean-shift clustering with scikit-learn's interface, over :func:`clusterlab.meanshift`.

    Parameters
    ----------
    bandwidth : float, optional
        Kernel width (the Gaussian's standard deviation, the flat window's radius).
        ``None`` estimates it with :func:`clusterlab.estimate_bandwidth` (quantile 0.3).
    kernel : {"gaussian", "flat"}, default="gaussian"
        scikit-learn's ``MeanShift`` uses the flat kernel.
    max_iter : int, default=300
        Maximum shift steps (scikit-learn's default; the function's is 100).
    tol : float, default=1e-3
        A point has converged once a step moves it less than ``tol * bandwidth``.
    batch_size : int, optional
        Points shifted together; by default sized from a memory budget.
    blurring : bool, default=False
        Blurring mean shift (the data move with the points).
    random_state : None, int, numpy.random.RandomState or numpy.random.Generator, default=None
        Seed of the bandwidth estimate's sample; ``None`` means seed 0.
    backend : {"auto", "numpy", "torch", "keops", "triton"}, default="auto"
    merge_radius : float, optional
        Converged points closer than this become one centre (default: the bandwidth).
    precision : {"highest", "high", "medium"}, default="highest"
        Precision of the products for float32 data, as in :func:`clusterlab.meanshift`.

    Attributes
    ----------
    cluster_centers_ : numpy.ndarray, shape (n_centers, n_features)
        The merged modes, largest cluster first.
    labels_ : numpy.ndarray, shape (n_samples,), int64
        Index into ``cluster_centers_`` of the mode each training sample climbed to.
    n_iter_ : int
        Shift steps performed.
    bandwidth_ : float
        The bandwidth used (the estimate when ``bandwidth=None``).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : numpy.ndarray, shape (n_features_in_,)
        Column names seen in ``fit``, when ``X`` had string column names.

    Examples
    --------
    >>> import clusterlab as cl
    >>> x, y, centers = cl.data.make_six_blobs(seed=0)
    >>> ms = cl.MeanShift(bandwidth=2.5).fit(x)
    >>> ms.cluster_centers_.shape[1]
    2
    """

    def __init__(
        self,
        bandwidth=None,
        *,
        kernel="gaussian",
        max_iter=300,
        tol=1e-3,
        batch_size=None,
        blurring=False,
        random_state=None,
        backend="auto",
        merge_radius=None,
        precision="highest",
    ):
        self.bandwidth = bandwidth
        self.kernel = kernel
        self.max_iter = max_iter
        self.tol = tol
        self.batch_size = batch_size
        self.blurring = blurring
        self.random_state = random_state
        self.backend = backend
        self.merge_radius = merge_radius
        self.precision = precision

    def fit(self, X, y=None):
        """Find the modes of ``X``'s kernel density and label every sample.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
        y : None
            Ignored.

        Returns
        -------
        self : MeanShift
        """
        X = _check_x(self, X, reset=True)
        if self.bandwidth is None and X.shape[0] == 1:
            raise ValueError(
                "n_samples=1: a bandwidth cannot be estimated from one sample; pass bandwidth > 0"
            )
        res = meanshift(
            X, self.bandwidth, kernel=self.kernel, max_iter=self.max_iter, tol=self.tol,
            batch_size=self.batch_size, blurring=self.blurring, seed=_seed(self.random_state),
            backend=self.backend, merge_radius=self.merge_radius, precision=self.precision,
        )
        self.cluster_centers_ = np.asarray(res.centers)
        self.labels_ = np.asarray(res.labels, dtype=np.int64)
        self.n_iter_ = int(res.n_iter)
        self.bandwidth_ = float(res.bandwidth)
        return self

    def predict(self, X):
        """Index of the nearest centre of each sample (:func:`clusterlab.assign`).

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)

        Returns
        -------
        labels : numpy.ndarray, shape (n_samples,), int64
        """
        check_is_fitted(self)
        X = _check_x(self, X, reset=False)
        _, labels = assign(X, self.cluster_centers_, backend=self.backend,
                           precision=self.precision)
        return np.asarray(labels, dtype=np.int64)
