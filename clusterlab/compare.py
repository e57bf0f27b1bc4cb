"""Fair comparisons with faiss and scikit-learn, and cluster-based retrieval (IVF).

Comparing k-means implementations fairly takes more care than timing three calls:

* **same data** (float32 for everyone, since faiss only takes float32),
* **same start** (the same k-means++ centroids, given to every library),
* **same work** (the same number of Lloyd iterations, no early stop; faiss's silent
  subsampling to ``256 * k`` points switched off),
* **same yardstick** (the final objective recomputed the same way for every result, with
  :func:`clusterlab.assign` in float64, not each library's own number: faiss reports the
  objective *before* its last update, scikit-learn and clusterlab the one after),
* **fair timing** (a warm-up call, then the median of several, via
  :func:`clusterlab.device.timeit`).

:func:`run_comparison` does all of that. :func:`ivf_recall` measures the idea behind
faiss's IVF indexes: k-means centroids split a database into lists, and a query scans only
its ``nprobe`` nearest lists. :func:`capture_c_output` catches what C code (faiss) prints
to file descriptors 1 and 2, so a notebook can show it as ordinary output.

faiss and scikit-learn are imported inside the functions that need them; a missing faiss
raises an ``ImportError`` that says what to install. So are the optional GPU peers of
:data:`PEERS` (flash-kmeans, fast-pytorch-kmeans, faiss with ``gpu=True``):
:func:`peer_unavailable` says in one line why one cannot run here.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from clusterlab._validate import (
    check_array,
    check_centroids,
    check_choice,
    check_count,
    check_int,
    check_k,
    check_seed,
    check_weights,
    is_torch,
    to_numpy,
)

__all__ = [
    "ENGINES",
    "ENGINE_CHOICES",
    "PEERS",
    "PEER_INSTALL",
    "PRECISIONS",
    "CapturedOutput",
    "PeerRun",
    "capture_c_output",
    "faiss_kmeans",
    "format_table",
    "import_faiss",
    "engine_precision",
    "ivf_recall",
    "peer_unavailable",
    "plot_comparison",
    "run_comparison",
    "same_yardstick",
    "sklearn_kmeans",
]

#: The implementations :func:`run_comparison` knows.
ENGINES = ("clusterlab", "faiss", "sklearn")
#: What :func:`run_comparison` can time: :data:`ENGINES` and ``"faiss+labels"`` — faiss's
#: ``train`` followed by ``index.search(x, 1)``, the labels of the returned centroids.
#: clusterlab and scikit-learn return those labels (one more assignment pass than
#: ``niter``); faiss's ``train`` alone does not, so this row times the same output.
#: ``"clusterlab-<backend>"`` (``torch``, ``numpy``, ``keops``, ``triton``) names one
#: engine of clusterlab explicitly, so that several can be timed in the same rounds.
#: The optional peers of :data:`PEERS` (flash-kmeans, fast-pytorch-kmeans, faiss on the
#: GPU) are timed the same way when installed (see :func:`peer_unavailable`).
ENGINE_CHOICES = ENGINES + (
    "faiss+labels", "clusterlab-torch", "clusterlab-numpy", "clusterlab-keops",
    "clusterlab-triton", "flash-kmeans", "fast-pytorch-kmeans", "faiss-gpu",
)
FAISS_INSTALL = "pip install faiss-cpu==1.15.1"
#: What to install for each optional peer (the versions whose API the adapters follow).
PEER_INSTALL = {
    "flash-kmeans": "pip install flash-kmeans==0.3.1",
    "fast-pytorch-kmeans": "pip install fast-pytorch-kmeans==0.2.2",
    "faiss-gpu": "a GPU build of faiss (conda install -c pytorch faiss-gpu)",
}
#: clusterlab's ``precision=`` values: IEEE float32, TF32 products, bf16/fp16 inputs.
PRECISIONS = ("highest", "high", "medium")
#: Bytes allowed for one (queries, n) block of exact distances in :func:`ivf_recall`.
DISTANCE_BUDGET = 64 * 2**20


# --------------------------------------------------------------------------------------
# faiss: import, C-level output
# --------------------------------------------------------------------------------------


def import_faiss():
    """Import and return the ``faiss`` module, or raise an ImportError saying what to install."""
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(
            f"faiss is not installed: {FAISS_INSTALL} "
            "(or, with conda: conda install -c pytorch faiss-cpu)"
        ) from exc
    return faiss


@dataclass
class CapturedOutput:
    """What C code wrote to file descriptors 1 (``stdout``) and 2 (``stderr``)."""

    stdout: str = ""
    stderr: str = ""


def _c_fflush() -> None:
    """Flush C's stdio buffers (faiss's ``printf`` output is buffered), where possible."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):  # no C library to call (e.g. Windows)
        pass


@contextlib.contextmanager
def capture_c_output():
    """Capture what C and C++ code prints to the process's stdout and stderr.

    faiss prints from C++ (``printf`` / ``fprintf(stderr, ...)``): its warnings, and with
    ``verbose=True`` its progress. That text bypasses Python's ``sys.stdout`` and
    ``sys.stderr``, so ``contextlib.redirect_stderr`` cannot catch it; in Jupyter it shows
    up late, in a red stderr box, or only in the terminal that started the server. This
    context manager points file descriptors 1 and 2 at temporary files while its body runs
    (``os.dup2``), then restores them and hands the text back.

    Yields
    ------
    CapturedOutput
        Filled when the ``with`` block ends: ``.stdout`` and ``.stderr`` (str).

    Examples
    --------
    >>> with capture_c_output() as out:  # doctest: +SKIP
    ...     faiss.Kmeans(2, 20).train(x[:100])
    >>> print(out.stderr)  # doctest: +SKIP
    WARNING clustering 100 points to 20 centroids: please provide at least 780 training points
    """
    captured = CapturedOutput()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.flush()
    _c_fflush()
    fds = (1, 2)
    saved = {fd: os.dup(fd) for fd in fds}
    files = {fd: tempfile.TemporaryFile() for fd in fds}
    try:
        for fd in fds:
            os.dup2(files[fd].fileno(), fd)
        yield captured
    finally:
        # Python-level writes made inside the block to a stream on fd 1 or 2 (a terminal
        # script's print) land in the files too, rather than after the restore.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(AttributeError, ValueError, OSError):
                stream.flush()
        _c_fflush()
        for fd in fds:
            os.dup2(saved[fd], fd)
            os.close(saved[fd])
        texts = {}
        for fd, f in files.items():
            f.seek(0)
            texts[fd] = f.read().decode("utf-8", errors="replace")
            f.close()
        captured.stdout, captured.stderr = texts[1], texts[2]


# --------------------------------------------------------------------------------------
# One run of each library
# --------------------------------------------------------------------------------------


def _host_array(x, name="x"):
    """Validated data as a NumPy array (torch tensors are copied to the host)."""
    return to_numpy(check_array(x, name))


def _check_float32_range(x, w=None, c0=None):
    """Refuse data on which faiss's float32 distances or objective would overflow.

    faiss computes squared distances as ``||x||^2 + ||c||^2 - 2 x.c`` and sums them in
    float32 (at most 3.4e38). An infinite distance makes it assign a point to no
    cluster and abort the whole process (``faiss::FaissException``: invalid cluster
    assignment); an infinite sum makes ``obj`` inf. Every distance is at most
    ``2 ||x_i||^2 + 2 max(||x||^2, ||c||^2)``, so the (weighted) objective is bounded by
    ``2 sum w_i ||x_i||^2 + 2 sum w_i max ||.||^2``; data for which that bound (or the
    sum of the weights) is not below float32's largest value is refused.
    """
    big = float(np.finfo(np.float32).max)
    with np.errstate(over="ignore", invalid="ignore"):
        # (n,) squared row norms in float64, without a float64 copy of x
        sq = np.einsum("ij,ij->i", x, x, dtype=np.float64)
        top = float(sq.max())
        if c0 is not None:
            top = max(top, float(np.einsum("ij,ij->i", c0, c0, dtype=np.float64).max()))
        bound = 2.0 * float(sq.sum()) + 2.0 * x.shape[0] * top
        if w is not None:
            w64 = np.asarray(w, dtype=np.float64)
            total = float(w64.sum())
            bound = max(bound, 2.0 * float(w64 @ sq) + 2.0 * total * top, total)
    if bound < big:
        return
    what = "x is" if c0 is None else "x and init are"
    arrays = [x] if c0 is None else [x, c0]
    magnitude = max(max(float(a.max()), -float(a.min())) for a in arrays)  # no |x| copy
    weighted = "" if w is None else " weighted"
    raise ValueError(
        f"{what} too large for faiss, which computes squared distances and their sum in "
        f"float32 (at most {big:.3g}): values reach {magnitude:.3g} in magnitude (squared "
        f"row norms up to {top:.3g}), so the{weighted} objective could reach {bound:.3g} and "
        f"overflow (faiss would then abort the process or return inf); rescale the data "
        f"first, e.g. x / {magnitude:.3g}"
    )


def faiss_kmeans(
    x,
    k,
    *,
    init=None,
    niter=10,
    seed=0,
    subsample=False,
    early_stop=False,
    weights=None,
    gpu=False,
    **params,
):
    """Run ``faiss.Kmeans`` on float32 data, by default on *all* the points.

    faiss's defaults include a silent subsample: with more than
    ``max_points_per_centroid * k`` points (256·k by default) ``train`` draws a random
    256·k of them and clusters only those — with ``verbose=False`` it says nothing, and
    ``kmeans.obj`` is then the objective on the subsample. That is a fine speed trick,
    but it makes timings and objectives incomparable with libraries that use every
    point. Here ``subsample=False`` (the default) sets ``max_points_per_centroid`` to
    ``ceil(n / k)``, so that ``n <= k * max_points_per_centroid`` and faiss trains on all
    ``n`` points; ``subsample=True`` keeps faiss's own setting.

    Likewise faiss (1.15) stops as soon as an iteration lowers the objective by a
    relative amount of at most ``early_stop_threshold`` (0 by default: when it stops
    decreasing). ``early_stop=False`` (the default) sets that threshold to ``-inf``, so
    exactly ``niter`` iterations run, as clusterlab's ``tol=0`` does.

    Parameters
    ----------
    x : array_like or torch.Tensor, shape (n, d)
        Data; converted to contiguous float32 (the only type faiss clusters).
    k : int
        Number of clusters, ``1 <= k <= n``.
    init : array_like, shape (k, d), optional
        Initial centroids (``kmeans.train(x, init_centroids=init)``). ``None``: faiss's
        own initialisation (``k`` random points chosen with ``seed``).
    niter : int, default 10
        Lloyd iterations (faiss never stops early unless asked to).
    seed : int, default 0
        Seed of faiss's random choices (initial points, subsample, cluster splits).
    subsample : bool, default False
        ``False``: train on every point (see above). ``True``: faiss's default
        subsampling to ``max_points_per_centroid * k`` points.
    early_stop : bool, default False
        ``False``: run all ``niter`` iterations. ``True``: faiss's own early stop.
    weights : array_like, shape (n,), optional
        Non-negative sample weights.
    gpu : bool, default False
        ``True``: ``faiss.Kmeans(..., gpu=True)``, the assignment on every GPU faiss
        sees (a GPU build of faiss; ``faiss.get_num_gpus() > 0``). The data stay a
        NumPy array in host memory, which is what ``train`` takes.
    **params
        Other fields of ``faiss.ClusteringParameters``, passed to ``faiss.Kmeans``:
        ``nredo``, ``spherical``, ``verbose``, ``min_points_per_centroid``,
        ``max_points_per_centroid`` (only with ``subsample=True``),
        ``early_stop_threshold`` (only with ``early_stop=True``), ``init_method``, ...

    Returns
    -------
    faiss.Kmeans
        The trained object: ``.centroids`` (k, d) float32, ``.obj`` (niter,) the
        objective of the assignment made at the *start* of each iteration (so
        ``obj[-1]`` predates the last update), ``.iteration_stats`` (list of dicts:
        obj, time, time_search, imbalance_factor, nsplit), ``.index`` (a flat index of
        the final centroids: ``.index.search(x, 1)``) and ``.assign(x)``.

    Raises
    ------
    ImportError
        faiss is not installed.
    RuntimeError
        ``gpu=True`` and faiss sees no GPU.
    TypeError
        An unknown parameter in ``params``.
    ValueError
        Bad data, ``k``, ``init`` or ``niter`` (``niter`` at most ``2**31 - 1``); data
        whose squared distances or objective would overflow faiss's float32 (row norms
        above about ``3e17 / sqrt(n)``; see :func:`_check_float32_range`), on which faiss
        would abort the process; ``max_points_per_centroid`` given with ``subsample=False``, or
        ``early_stop_threshold`` with ``early_stop=False``.

    Notes
    -----
    faiss also warns (on C-level stderr, see :func:`capture_c_output`) when there are
    fewer than ``min_points_per_centroid * k`` points (39·k by default). With
    ``spherical=True`` faiss normalises the centroids, not the data: pass unit rows.
    """
    faiss = import_faiss()
    x = _host_array(x)  # validated, in its own precision until the range is checked
    n, d = x.shape
    k = check_k(k, n)
    niter = check_count(niter, "niter", low=1)
    seed = check_int(seed, "seed", low=0, high=2**31 - 1)  # a C int in faiss
    for name, flag in (("subsample", subsample), ("early_stop", early_stop), ("gpu", gpu)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    known = faiss.ClusteringParameters()
    for name in params:
        if name in ("k", "d", "gpu") or name.startswith("_") or not hasattr(known, name):
            raise TypeError(f"faiss_kmeans got an unknown parameter {name!r}")
    if not subsample:
        if "max_points_per_centroid" in params:
            raise ValueError(
                "max_points_per_centroid is set from n and k when subsample=False; "
                "pass subsample=True to choose it yourself"
            )
        params["max_points_per_centroid"] = -(-n // k)  # ceil(n / k)
    if not early_stop and hasattr(known, "early_stop_threshold"):
        if "early_stop_threshold" in params:
            raise ValueError(
                "early_stop_threshold only applies with early_stop=True "
                "(early_stop=False runs exactly niter iterations)"
            )
        params["early_stop_threshold"] = -math.inf
    c0 = None
    if init is not None:
        c0 = to_numpy(check_centroids(init, x, k, name="init"))
    w = None
    if weights is not None:
        w = to_numpy(check_weights(weights, x))
    _check_float32_range(x, w, c0)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if c0 is not None:
        c0 = np.ascontiguousarray(c0, dtype=np.float32)
    if w is not None:
        w = np.ascontiguousarray(w, dtype=np.float32)
    if gpu:
        n_gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        if n_gpus < 1:
            raise RuntimeError(
                f"gpu=True but faiss {faiss.__version__} sees no GPU (faiss.get_num_gpus() == "
                f"{n_gpus}); install {PEER_INSTALL['faiss-gpu']}"
            )
        params["gpu"] = True
    km = faiss.Kmeans(d, k, niter=niter, seed=seed, **params)
    km.train(x, weights=w, init_centroids=c0)
    return km


def sklearn_kmeans(x, k, *, init="k-means++", niter=10, seed=0):
    """Run scikit-learn's ``KMeans`` as a plain Lloyd loop of ``niter`` iterations.

    ``KMeans(algorithm="lloyd", n_init=1, init=init, max_iter=niter, tol=0)``: one run,
    no centroid-shift tolerance. scikit-learn still stops early when an iteration leaves
    every label unchanged (a fixed point: more iterations would not move anything), so
    ``n_iter_`` can be below ``niter``.

    Parameters
    ----------
    x : array_like or torch.Tensor, shape (n, d)
        Data (float32 stays float32, float64 stays float64).
    k : int
        Number of clusters, ``1 <= k <= n``.
    init : {"k-means++", "random"} or array_like of shape (k, d), default "k-means++"
        Initialisation; an array gives the initial centroids.
    niter : int, default 10
        Maximum number of Lloyd iterations.
    seed : int, default 0
        ``random_state`` (used by string inits only).

    Returns
    -------
    sklearn.cluster.KMeans
        Fitted: ``.cluster_centers_`` (k, d), ``.labels_`` (n,), ``.inertia_``,
        ``.n_iter_``.
    """
    from sklearn.cluster import KMeans

    x = _host_array(x)
    k = check_k(k, x.shape[0])
    niter = check_int(niter, "niter", low=1)
    seed = check_seed(seed)
    if isinstance(init, str):
        check_choice(init, "init", ("k-means++", "random"))
    else:
        init = to_numpy(check_centroids(init, x, k, name="init"))
    est = KMeans(
        n_clusters=k,
        init=init,
        n_init=1,
        max_iter=niter,
        tol=0.0,
        algorithm="lloyd",
        random_state=seed,
    )
    return est.fit(x)


# --------------------------------------------------------------------------------------
# Optional peers: flash-kmeans, fast-pytorch-kmeans, faiss on the GPU
# --------------------------------------------------------------------------------------


@dataclass
class PeerRun:
    """One optional peer, prepared for :func:`run_comparison` (data already in place).

    ``call()`` is what is timed; ``read(result)`` turns its result into
    ``(centroids, reported objective or nan, n_iter)``. The objective in the table is not
    the peer's: :func:`run_comparison` recomputes it from the centroids, as for every row.
    """

    call: object
    read: object
    device: object  # synchronised around each timed call; None: nothing to synchronise
    version: str
    where: str
    precision: str  # the arithmetic of its distance products
    note: str = ""


def _package_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def _import_peer(name: str, module: str):
    """Import ``module`` of the peer ``name``, or raise an ImportError saying what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except Exception as exc:  # missing, or a dependency of it missing or broken
        raise ImportError(
            f"{name} cannot be imported ({type(exc).__name__}: {exc}); "
            f"install it with: {PEER_INSTALL[name]}"
        ) from exc


def _torch_device(device):
    from clusterlab.device import _as_device, default_device

    return default_device() if device is None else _as_device(device)


def peer_unavailable(name, device=None) -> str | None:
    """Why the optional peer ``name`` cannot run here, in one line; ``None`` if it can.

    Parameters
    ----------
    name : {"flash-kmeans", "fast-pytorch-kmeans", "faiss-gpu"}
        A key of :data:`PEERS`.
    device : str or torch.device, optional
        Where the comparison runs (``None``: the default device). flash-kmeans needs
        CUDA; fast-pytorch-kmeans runs on either; faiss-gpu needs a GPU build of faiss
        that sees a GPU, whatever ``device`` is.
    """
    check_choice(name, "name", tuple(PEERS))
    reasons = []
    if name == "faiss-gpu":
        try:
            faiss = import_faiss()
        except ImportError:
            return f"faiss is not installed; install {PEER_INSTALL[name]}"
        n_gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        if n_gpus < 1:
            return (f"faiss {faiss.__version__} sees no GPU (faiss.get_num_gpus() == {n_gpus}); "
                    f"needs {PEER_INSTALL[name]} and a GPU")
        return None
    module = {"flash-kmeans": "flash_kmeans.kmeans_triton_impl",
              "fast-pytorch-kmeans": "fast_pytorch_kmeans"}[name]
    try:
        _import_peer(name, module)
    except ImportError as exc:
        reasons.append(str(exc))
    if name == "flash-kmeans":
        try:
            dev_type = _torch_device(device).type
        except (ImportError, ValueError, TypeError, RuntimeError) as exc:
            dev_type = f"unusable ({exc})"
        if dev_type != "cuda":
            reasons.append(f"flash-kmeans runs only on CUDA (its Triton kernels need a GPU); "
                           f"this run's device is {dev_type}")
    return "; ".join(reasons) or None


def _flash_kmeans(x32, c0, *, niter, seed, device, precision) -> PeerRun:
    """flash-kmeans 0.3: ``batch_kmeans_Euclid`` on (1, n, d) data, on CUDA.

    Its assignment kernel multiplies with ``tl.dot`` at Triton's default precision: TF32
    for float32 input (the peer of ``precision="high"``), fp16 products with float32 sums
    for fp16 input (the peer of ``"medium"``). The function is imported from
    ``flash_kmeans.kmeans_triton_impl``: the package's top-level name falls back silently to
    a plain-torch loop when the Triton kernels fail to import.
    """
    import torch

    impl = _import_peer("flash-kmeans", "flash_kmeans.kmeans_triton_impl")
    if device.type != "cuda":
        raise RuntimeError(f"flash-kmeans runs only on CUDA; this run's device is {device.type}")
    dtype_name, label, note = _flash_input(precision)
    dtype = getattr(torch, dtype_name)
    xt = torch.as_tensor(x32, device=device).to(dtype).unsqueeze(0).contiguous()  # (1, n, d)
    ct = torch.as_tensor(c0, device=device).to(dtype).unsqueeze(0).contiguous()  # (1, k, d)
    k = int(c0.shape[0])

    def call():
        # its stop is `center_shift < tol` with shift >= 0: a negative tol never stops
        return impl.batch_kmeans_Euclid(xt, k, max_iters=niter, tol=-1.0, init_centroids=ct)

    def read(res):
        _, cents, n_iter = res
        return cents[0].float(), math.nan, int(n_iter)

    return PeerRun(call, read, device, _package_version("flash-kmeans"),
                   _where(device), label, note)


def _flash_input(precision):
    """flash-kmeans's input for clusterlab's ``precision``: (torch dtype name, label, note)."""
    if precision == "medium":
        return ("float16", "fp16",
                "fp16 data and centroids (and its ||x||²), fp32 accumulation; "
                "an empty cluster keeps its old centroid")
    note = "float32 data, TF32 products (tl.dot's default)"
    if precision == "highest":
        note += ": not like-for-like with precision='highest'"
    label = "tf32" if precision == "high" else "tf32 (not like-for-like)"
    return "float32", label, note + "; an empty cluster keeps its old centroid"


def _fast_pytorch_kmeans(x32, c0, *, niter, seed, device, precision) -> PeerRun:
    """fast-pytorch-kmeans 0.2: ``KMeans(...).fit_predict(x, centroids=c0)`` in plain torch.

    It takes the initial centroids; ``tol=-1`` switches its stop off (it stops when the
    squared centroid movement is ``<= tol``), so it runs ``max_iter`` iterations, a count
    it does not report.
    """
    import torch

    mod = _import_peer("fast-pytorch-kmeans", "fast_pytorch_kmeans")
    xt = torch.as_tensor(x32, device=device)
    ct = torch.as_tensor(c0, device=device)
    k = int(c0.shape[0])

    def call():
        km = mod.KMeans(n_clusters=k, max_iter=niter, tol=-1.0, mode="euclidean")
        km.fit_predict(xt, centroids=ct)
        return km

    def read(km):
        return km.centroids, math.nan, niter

    tf32 = device.type == "cuda" and torch.get_float32_matmul_precision() != "highest"
    note = ("float32 torch matmul" + (" (TF32 allowed by torch's matmul precision)" if tf32 else "")
            + "; an empty cluster's centroid goes to the origin; n_iter not reported "
            "(tol=-1 runs max_iter)")
    if precision != "highest":
        note += f"; --precision {precision} does not apply to it"
    return PeerRun(call, read, device, _package_version("fast-pytorch-kmeans"),
                   _where(device), "tf32" if tf32 else "float32", note)


def _faiss_gpu(x32, c0, *, niter, seed, device, precision) -> PeerRun:
    """faiss's k-means with ``gpu=True`` (see :func:`faiss_kmeans`), host data."""
    faiss = import_faiss()
    k = int(c0.shape[0])

    def call():
        return faiss_kmeans(x32, k, init=c0, niter=niter, seed=seed, gpu=True)

    def read(km):
        return km.centroids, float(km.obj[-1]), len(km.obj)

    note = "float32 (faiss's GPU flat index, useFloat16 off); data passed from host memory"
    if precision != "highest":
        note += f"; --precision {precision} does not apply to it"
    where = f"{faiss.get_num_gpus()} GPU(s) (faiss)"
    return PeerRun(call, read, None, faiss.__version__, where, "float32", note)


def _where(device) -> str:
    from clusterlab.device import device_name

    return device_name(device)


#: The optional peers :func:`run_comparison` can time: name -> adapter
#: ``(x32, c0, *, niter, seed, device, precision) -> PeerRun``. Each is imported lazily,
#: inside its adapter.
PEERS = {
    "flash-kmeans": _flash_kmeans,
    "fast-pytorch-kmeans": _fast_pytorch_kmeans,
    "faiss-gpu": _faiss_gpu,
}


# --------------------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------------------


def _check_engines(engines) -> tuple:
    if isinstance(engines, str):
        engines = (engines,)
    try:
        engines = tuple(engines)
    except TypeError:
        raise TypeError(
            f"engines must be a sequence of names from {ENGINE_CHOICES}, got {engines!r}"
        ) from None
    if not engines:
        raise ValueError(f"engines is empty; choose from {ENGINE_CHOICES}")
    for name in engines:
        check_choice(name, "engines", ENGINE_CHOICES)
    if len(set(engines)) != len(engines):
        raise ValueError(f"engines has repeated names: {engines}")
    return engines


def _openmp_threads() -> int | None:
    """Threads of the OpenMP runtime scikit-learn uses (via threadpoolctl), if known."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    for info in threadpool_info():
        if info.get("user_api") == "openmp":
            return int(info.get("num_threads", 0)) or None
    return None


def run_comparison(
    x,
    k,
    *,
    niter=10,
    seed=0,
    repeat=3,
    engines=ENGINES,
    device=None,
    backend="auto",
    precision="highest",
    skipped=None,
):
    """Time k-means in clusterlab, faiss and scikit-learn on equal terms.

    Every engine gets the same float32 data, the same initial centroids
    (:func:`clusterlab.kmeans_plusplus` with ``seed``) and ``niter`` Lloyd iterations
    (clusterlab ``tol=0, max_iter=niter``; scikit-learn ``tol=0, max_iter=niter``, which
    still stops at a fixed point where no label changes; faiss ``niter`` with
    subsampling and early stop off, see :func:`faiss_kmeans`; the optional peers of
    :data:`PEERS` with their own early stop off, see each adapter). They are timed with
    :func:`clusterlab.device.timeit_interleaved`: one warm-up call each, then
    ``repeat`` rounds that time every engine once (so a machine that slows down for a
    while slows all of them alike), and the median of each engine's rounds.
    The objective of each result is then computed the *same* way — nearest-centroid
    squared distances of all ``n`` points by :func:`clusterlab.assign` in float64,
    summed — so the inertias are comparable (each library's own number is kept as
    ``reported_inertia``; NaN where a library reports none).

    Parameters
    ----------
    x : array_like or torch.Tensor, shape (n, d)
        Data; cast to float32.
    k : int
        Number of clusters.
    niter : int, default 10
        Lloyd iterations for every engine.
    seed : int, default 0
        Seed of the shared k-means++ initialisation.
    repeat : int, default 3
        Timed calls per engine (after one warm-up call).
    engines : sequence of names from :data:`ENGINE_CHOICES`
        Which implementations to run, in this order; default ``("clusterlab", "faiss",
        "sklearn")``. ``"faiss+labels"`` adds faiss's ``index.search`` for the final
        labels, which clusterlab and scikit-learn include; ``"clusterlab-numpy"`` etc.
        pick a clusterlab engine by name (``"clusterlab"`` uses ``backend``);
        ``"flash-kmeans"``, ``"fast-pytorch-kmeans"`` and ``"faiss-gpu"`` are the
        optional peers of :data:`PEERS` (run where ``device`` says; faiss-gpu on the GPU).
    device : str or torch.device, optional
        Where clusterlab runs (the data are copied there once, before timing).
        ``None``: :func:`clusterlab.device.default_device` (the GPU if there is one).
        faiss (faiss-cpu) and scikit-learn always run on the CPU.
    backend : {"auto", "numpy", "torch", "keops", "triton"}, default "auto"
        clusterlab's engine. ``"numpy"`` runs on the CPU whatever ``device`` is.
    precision : {"highest", "high", "medium"}, default "highest"
        Passed to :func:`clusterlab.kmeans` (only when not ``"highest"``) and used by the
        peers that have a like-for-like mode: flash-kmeans gets float32 data for
        ``"highest"`` and ``"high"`` (its products are TF32 either way) and fp16 data for
        ``"medium"``. faiss, scikit-learn and fast-pytorch-kmeans run as they are. Each
        row says what it ran in ``precision`` and ``note``.
    skipped : dict, optional
        Where an optional peer that fails (an error in its call, or centroids that are
        not finite) is recorded as ``name -> one-line reason`` and left out of the
        rows. ``None``: such a failure raises.

    Returns
    -------
    list of dict
        One dict per engine, in ``engines`` order, with keys ``engine`` (name),
        ``version``, ``device`` (where it ran), ``seconds`` (median), ``times`` (all
        timed calls), ``first`` (the warm-up call), ``inertia`` (float64, computed the
        same way for all), ``reported_inertia`` (the library's own final objective),
        ``n_iter``, ``ratio`` (``seconds`` / fastest median, so 1.0 for the fastest),
        ``centroids`` ((k, d) float32 NumPy array), ``precision`` (the arithmetic of
        its distance products), ``note`` (what is not like-for-like, or ``""``) and the
        problem size ``n``, ``d``, ``k``, ``niter``.
    """
    import clusterlab as cl
    from clusterlab.device import _as_device, default_device, device_name, timeit_interleaved
    from clusterlab.engines import BACKENDS, torch_available

    x32 = np.ascontiguousarray(_host_array(x), dtype=np.float32)
    n, d = x32.shape
    k = check_k(k, n)
    niter = check_int(niter, "niter", low=1)
    seed = check_seed(seed)
    repeat = check_int(repeat, "repeat", low=1)
    engines = _check_engines(engines)
    backend = check_choice(backend, "backend", BACKENDS)
    precision = check_choice(precision, "precision", PRECISIONS)
    if skipped is not None and not isinstance(skipped, dict):
        raise TypeError(f"skipped must be a dict or None, got {type(skipped).__name__}")

    c0 = cl.kmeans_plusplus(x32, k, seed=seed)  # (k, d) float32, the shared start
    cpu_name = device_name("cpu") if torch_available() else "CPU"
    x_eval = x32.astype(np.float64)  # the yardstick: float64 (on the GPU if one is used)
    runners = {}  # name -> (fn, device to synchronise, version, where it runs)
    results = {}  # name -> the last result of that engine
    labels = {}  # name -> (precision, note)
    peers = {}  # name -> PeerRun
    failed = {}  # optional peer -> why its call failed
    for name in engines:
        if name == "clusterlab" or name.startswith("clusterlab-"):
            be = backend if name == "clusterlab" else name[len("clusterlab-"):]
            if be == "numpy" or not torch_available():
                dev = None  # the NumPy engine: host arrays, nothing to synchronise
                x_cl, c0_cl = x32, c0
            else:
                import torch

                dev = default_device() if device is None else _as_device(device)
                x_cl = torch.as_tensor(x32, device=dev)  # copied there once, before timing
                c0_cl = torch.as_tensor(c0, device=dev)
                if dev.type == "cuda" and isinstance(x_eval, np.ndarray):
                    x_eval = x_cl.to(torch.float64)
            version = f"{cl.__version__} ({be}"
            if be != "numpy" and torch_available():
                import torch

                version += f", torch {torch.__version__}"
            version += ")"

            prec, note = engine_precision(be, x_cl, precision)
            kwargs = {} if prec == "highest" else {"precision": prec}

            def fn(name=name, x_cl=x_cl, c0_cl=c0_cl, be=be, kwargs=kwargs):
                results[name] = cl.kmeans(
                    x_cl, k, init=c0_cl, max_iter=niter, tol=0, backend=be, **kwargs
                )

            where = device_name(dev) if dev is not None else cpu_name
            runners[name] = (fn, dev, version, where)
            labels[name] = (prec, note)
        elif name in PEERS:
            dev = _torch_device(device) if name != "faiss-gpu" else None
            try:
                peer = PEERS[name](x32, c0, niter=niter, seed=seed, device=dev, precision=precision)
            except Exception as exc:
                if skipped is None:
                    raise
                skipped[name] = f"{name} could not start: {type(exc).__name__}: {exc}".splitlines()[0]
                continue
            peers[name] = peer

            def fn(name=name, call=peer.call):
                if name in failed:
                    return  # failed at its first call: timed as nothing, left out below
                try:
                    results[name] = call()
                except Exception as exc:
                    if skipped is None:
                        raise
                    failed[name] = f"{name} failed: {type(exc).__name__}: {exc}".splitlines()[0]

            runners[name] = (fn, peer.device, peer.version, peer.where)
            labels[name] = (peer.precision, peer.note)
        elif name in ("faiss", "faiss+labels"):
            faiss = import_faiss()

            def fn(name=name):
                km = faiss_kmeans(x32, k, init=c0, niter=niter, seed=seed)
                if name == "faiss+labels":
                    km.index.search(x32, 1)  # (n, 1) labels of the returned centroids
                results[name] = km

            where = f"CPU, {faiss.omp_get_max_threads()} threads (faiss-cpu)"
            runners[name] = (fn, None, faiss.__version__, where)
            labels[name] = ("float32", "")
        else:
            import sklearn

            def fn(name=name):
                results[name] = sklearn_kmeans(x32, k, init=c0, niter=niter, seed=seed)

            threads = _openmp_threads()
            where = "CPU" + (f", {threads} threads" if threads else "")
            runners[name] = (fn, None, sklearn.__version__, where)
            labels[name] = ("float32", "")

    # every round times each engine once: a machine that slows down for a while
    # slows all of them alike
    timings = timeit_interleaved(
        {name: (fn, dev) for name, (fn, dev, _, _) in runners.items()}, repeat=repeat, warmup=1
    )
    rows = []
    for name, (_, _, version, where) in runners.items():
        if name in failed:
            skipped[name] = failed[name]
            continue
        res, timing = results[name], timings[name]
        if name in peers:
            cents, reported, n_iter = peers[name].read(res)
        elif name.startswith("clusterlab"):
            cents, reported, n_iter = res.centroids, res.inertia, res.n_iter
        elif name.startswith("faiss"):
            cents, reported, n_iter = res.centroids, float(res.obj[-1]), len(res.obj)
        else:
            cents, reported, n_iter = res.cluster_centers_, float(res.inertia_), int(res.n_iter_)
        cents = np.asarray(to_numpy(cents), dtype=np.float32)
        if name in peers and skipped is not None and not np.isfinite(cents).all():
            skipped[name] = f"{name} returned centroids that are not finite"
            continue
        rows.append(
            {
                "engine": name,
                "version": version,
                "device": where,
                "seconds": timing.median,
                "times": timing.times,
                "first": timing.first,
                "inertia": same_yardstick(x_eval, cents),
                "reported_inertia": float(reported),
                "n_iter": int(n_iter),
                "centroids": cents,
                "precision": labels[name][0],
                "note": labels[name][1],
                "n": n,
                "d": d,
                "k": k,
                "niter": niter,
            }
        )
    if rows:
        fastest = min(r["seconds"] for r in rows)
        for r in rows:
            r["ratio"] = r["seconds"] / fastest
    return rows


def engine_precision(backend, x, precision) -> tuple:
    """The precision clusterlab's ``backend`` runs at for ``precision``, and a note.

    ``(precision, "")`` when the engine offers it (or ``precision`` is ``"highest"``, the
    default, which every engine offers); ``("highest", why)`` for an engine that computes
    in IEEE arithmetic only (NumPy, KeOps), so that a benchmark asked for ``"high"``
    still times that engine, at the precision its row then shows. Callers pass
    ``precision=`` to clusterlab only when the answer is not ``"highest"``.
    """
    if precision == "highest":
        return "highest", ""
    from clusterlab.engines import get_engine

    try:
        get_engine(backend, x, precision)
    except TypeError:  # a clusterlab whose engines know no precision: let kmeans decide
        return precision, ""
    except ValueError as exc:
        if "precision" not in str(exc):
            raise
        return "highest", (f"backend={backend!r} offers only precision='highest' (IEEE): "
                           f"not like-for-like with precision={precision!r}")
    return precision, ""


def same_yardstick(x_eval, centroids) -> float:
    """The k-means objective of ``centroids`` on ``x_eval``, the same way for every row.

    Each point's squared distance to its nearest centroid, by :func:`clusterlab.assign`
    in float64 (at its default precision), summed. ``x_eval`` is the float64 data
    (NumPy, or a torch tensor on the device it lives on); ``centroids`` any (k, d)
    array, rounded to float32 first, as every library returns them.
    """
    import clusterlab as cl

    c_eval = np.asarray(to_numpy(centroids), dtype=np.float32).astype(np.float64)
    if is_torch(x_eval):
        import torch

        c_eval = torch.as_tensor(c_eval, device=x_eval.device)
    dist, _ = cl.assign(x_eval, c_eval)
    return float(dist.sum())


def _check_rows(rows) -> list:
    if isinstance(rows, dict) or not isinstance(rows, (list, tuple)):
        raise TypeError(
            f"rows must be the list of dicts run_comparison returns, got {type(rows).__name__}"
        )
    if not rows:
        raise ValueError("rows is empty: nothing to show")
    need = ("engine", "seconds")
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or any(key not in r for key in need):
            raise ValueError(f"rows[{i}] must be a dict with keys {need}")
    return list(rows)


def format_table(rows) -> str:
    """A markdown table of :func:`run_comparison`'s rows.

    Parameters
    ----------
    rows : list of dict
        As returned by :func:`run_comparison`.

    Returns
    -------
    str
        Columns: engine, version, device, median time, × the fastest, inertia (computed
        the same way for all), the library's own reported objective, iterations.
    """
    from clusterlab.device import format_seconds

    rows = _check_rows(rows)
    lines = [
        "| engine | version | runs on | median time | × fastest | inertia (same yardstick) "
        "| objective it reports | iterations |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    fastest = min(r["seconds"] for r in rows)
    for r in rows:
        ratio = r.get("ratio", r["seconds"] / fastest)
        lines.append(
            f"| {r['engine']} | {r.get('version', '')} | {r.get('device', '')} "
            f"| {format_seconds(r['seconds'])} | {ratio:.2f}× "
            f"| {r.get('inertia', float('nan')):.7g} | {r.get('reported_inertia', float('nan')):.7g} "
            f"| {r.get('n_iter', '')} |"
        )
    return "\n".join(lines)


def plot_comparison(rows, *, baseline=None, ax=None, title=None):
    """Bars of :func:`run_comparison`'s median times, with speed ratios.

    Parameters
    ----------
    rows : list of dict
        As returned by :func:`run_comparison`.
    baseline : str, optional
        The engine the ratios refer to; by default the fastest.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on.
    title : str, optional
        Axes title; by default the problem size.

    Returns
    -------
    matplotlib.axes.Axes
    """
    from clusterlab.plotting import plot_timings

    rows = _check_rows(rows)
    names = [r["engine"] for r in rows]
    if baseline is None:
        baseline = names[int(np.argmin([r["seconds"] for r in rows]))]
    if title is None and all(key in rows[0] for key in ("n", "d", "k", "niter")):
        r = rows[0]
        title = f"k-means, N={r['n']:,}, D={r['d']}, K={r['k']}, {r['niter']} iterations"
    return plot_timings(names, [r["seconds"] for r in rows], baseline=baseline, ax=ax, title=title)


# --------------------------------------------------------------------------------------
# Cluster-based retrieval (the IVF idea)
# --------------------------------------------------------------------------------------


def _exact_neighbors(x, queries, k_neighbors, budget=DISTANCE_BUDGET):
    """Indices (m, k_neighbors) of each query's nearest rows of ``x``, nearest first.

    Float64, centred on the data mean; queries are processed in blocks so that one
    (rows, n) distance block stays within ``budget`` bytes.
    """
    n = x.shape[0]
    m = queries.shape[0]
    mean = x.mean(0)
    xc = x - mean
    qc = queries - mean
    x_sq = np.einsum("ij,ij->i", xc, xc)  # (n,)
    rows = max(1, min(m, budget // (8 * n)))
    out = np.empty((m, k_neighbors), dtype=np.int64)
    for start in range(0, m, rows):
        q = qc[start : start + rows]  # (b, d)
        dist = x_sq[None, :] - 2.0 * (q @ xc.T)  # (b, n); + ||q||^2 does not change the order
        if k_neighbors < n:
            part = np.argpartition(dist, k_neighbors - 1, axis=1)[:, :k_neighbors]  # (b, kn)
        else:
            part = np.broadcast_to(np.arange(n), (len(q), n))
        order = np.argsort(np.take_along_axis(dist, part, axis=1), axis=1, kind="stable")
        out[start : start + rows] = np.take_along_axis(part, order, axis=1)
    return out


def ivf_recall(x, queries, centroids, *, nprobe_values=None, k_neighbors=10):
    """Recall of cluster-based (IVF) search against exact search, for several ``nprobe``.

    The idea behind faiss's ``IndexIVFFlat``: k-means centroids split the database into
    ``K`` lists (each point goes to the list of its nearest centroid). A query is compared
    with the ``K`` centroids, and only the points in its ``nprobe`` nearest lists are
    scanned, exactly, for its ``k_neighbors`` nearest neighbours. A true neighbour is
    missed only when it lives in a list that was not probed.

    Parameters
    ----------
    x : array_like, shape (n, d)
        The database.
    queries : array_like, shape (m, d)
        The query vectors.
    centroids : array_like, shape (K, d)
        The coarse quantizer (e.g. k-means centroids of ``x``).
    nprobe_values : sequence of int, optional
        Numbers of lists to probe, each in ``[1, K]``; by default 1, 2, 4, ... and ``K``.
    k_neighbors : int, default 10
        Neighbours per query (recall@``k_neighbors``), ``1 <= k_neighbors <= n``.

    Returns
    -------
    list of dict
        One dict per ``nprobe`` (in the order given): ``nprobe``, ``recall`` (fraction of
        the exact ``k_neighbors`` nearest neighbours found, averaged over queries),
        ``scanned`` (mean fraction of the database scanned per query) and ``candidates``
        (mean number of points scanned per query).

    Notes
    -----
    The exact neighbours come from a brute-force float64 search in blocks of queries
    (no (m, n) matrix above :data:`DISTANCE_BUDGET` bytes). An IVF search returns the
    ``k_neighbors`` nearest *scanned* points; every true neighbour in a scanned list is
    among them (anything closer to the query is also closer in the whole database), so
    the recall is the fraction of true neighbours whose list is among the ``nprobe``
    nearest to the query — computed here for all queries and all ``nprobe`` at once.
    Recall is therefore non-decreasing in ``nprobe`` and equals 1 for ``nprobe = K``.
    """
    from clusterlab.kmeans import assign

    x = np.asarray(_host_array(x), dtype=np.float64)
    queries = np.asarray(_host_array(queries, "queries"), dtype=np.float64)
    n, d = x.shape
    if queries.shape[1] != d:
        raise ValueError(f"queries must have {d} columns like x, got shape {tuple(queries.shape)}")
    c = np.asarray(to_numpy(check_centroids(centroids, x, name="centroids")), dtype=np.float64)
    n_lists = c.shape[0]
    k_neighbors = check_int(k_neighbors, "k_neighbors", low=1, high=n)
    if nprobe_values is None:
        nprobe_values = sorted({min(2**i, n_lists) for i in range(int(math.log2(n_lists)) + 2)})
    if isinstance(nprobe_values, (str, bytes)) or isinstance(nprobe_values, numbers.Number):
        raise TypeError(f"nprobe_values must be a sequence of ints, got {nprobe_values!r}")
    nprobe_values = [check_int(p, "nprobe_values", low=1, high=n_lists) for p in nprobe_values]
    if not nprobe_values:
        raise ValueError("nprobe_values is empty; give at least one number of lists to probe")

    _, labels = assign(x, c, backend="numpy")  # (n,) the list of every database point
    labels = np.asarray(labels)
    sizes = np.bincount(labels, minlength=n_lists)  # (K,)
    truth = _exact_neighbors(x, queries, k_neighbors)  # (m, kn)

    # Rank of every list for every query: rank[i, j] = position of list j among query
    # i's lists sorted by distance to their centroid (0 = nearest).
    mean = c.mean(0)
    qc, cc = queries - mean, c - mean
    dq = (cc * cc).sum(1)[None, :] - 2.0 * (qc @ cc.T)  # (m, K)
    order = np.argsort(dq, axis=1, kind="stable")  # (m, K)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(n_lists)[None, :], axis=1)
    truth_rank = np.take_along_axis(rank, labels[truth], axis=1)  # (m, kn)
    scanned_counts = np.cumsum(sizes[order], axis=1)  # (m, K): points in the p nearest lists

    out = []
    for p in nprobe_values:
        cand = float(scanned_counts[:, p - 1].mean())
        out.append(
            {
                "nprobe": p,
                "recall": float((truth_rank < p).mean()),
                "scanned": cand / n,
                "candidates": cand,
            }
        )
    return out
