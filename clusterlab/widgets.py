"""Interactive explorers (notebook 08): k-means and mean shift, driven by sliders.

Two ipywidgets containers, each a thin wrapper around pure functions:

* :func:`kmeans_explorer` — a slider for ``k``, the data set, the initialisation
  (k-means++ or random) and an iteration stepper (slider + play button) that shows the
  centroids moving; live inertia and silhouette; the elbow curve with the current ``k``.
* :func:`meanshift_explorer` — a slider for the bandwidth ``h``, the data set, the
  shifted points and merged centres, the number of clusters found, and where
  :func:`clusterlab.estimate_bandwidth` would put the slider (a label, a dashed circle,
  and a "use estimate" button).

Every number comes from :func:`clusterlab.kmeans` / :func:`clusterlab.meanshift`
(no kernel is re-implemented here) and every picture from
:func:`clusterlab.plotting.plot_kmeans_state`, :func:`~clusterlab.plotting.plot_elbow`
and :func:`~clusterlab.plotting.plot_meanshift_state`.

How a redraw works, and why:

* Sliders use ``continuous_update=False`` (one redraw when the slider is released or a
  key is pressed, not one per pixel dragged) and results are kept in per-explorer LRU
  caches keyed on ``(dataset, k, init, iteration)`` and ``(dataset, bandwidth)``, so
  going back to a setting already seen costs only the drawing.
* The figure is a :class:`matplotlib.figure.Figure` drawn off-screen with the Agg
  canvas (no pyplot, so nothing depends on the kernel's matplotlib backend and no
  figure is left open) and put into an :class:`ipywidgets.Output` as one PNG: the
  Output's ``outputs`` are replaced in a single update, so the picture never flickers
  and the same code works with and without a running kernel (tests).
* Errors inside a callback are not swallowed: the traceback is shown in the Output as
  a stderr block (red in JupyterLab), the status line says what failed, and
  ``explorer.last["error"]`` records it; with ``raise_errors=True`` (tests) it is
  re-raised as well.
* ``explorer.last`` holds the last redraw's state (numbers shown, a redraw counter,
  the error if any, the seconds it took), so the explorers can be tested headless.

ipywidgets is optional: ``import clusterlab`` never imports it, and importing this
module without it raises an ImportError that says what to install.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import html
import io
import math
import time
import traceback

import numpy as np

try:
    import ipywidgets as widgets
except ImportError as err:  # pragma: no cover - exercised in a test with ipywidgets hidden
    raise ImportError(
        "clusterlab.widgets needs ipywidgets: pip install ipywidgets==8.1.9 "
        "(or install the course environment: pip install -e '.[lab]')"
    ) from err

from clusterlab import plotting
from clusterlab._validate import check_choice, check_float, check_int, check_seed
from clusterlab.engines import BACKENDS
from clusterlab.kmeans import INITS, kmeans
from clusterlab.meanshift import estimate_bandwidth, meanshift

__all__ = [
    "DATASETS",
    "DIGITS_POINTS",
    "KMeansExplorer",
    "MeanShiftExplorer",
    "load_dataset",
    "kmeans_explorer",
    "meanshift_explorer",
    "silhouette",
]

#: The data sets both explorers offer (names shown in the dropdown).
DATASETS = ("six blobs", "make_blobs (scaled)", "moons", "digits (2-D PCA)")
#: Points kept of the 1,797 digits (a seeded subset).
DIGITS_POINTS = 1000
#: The most Lloyd iterations the k-means explorer offers: showing iteration ``i`` runs
#: ``0 .. i`` iterations (for the centroids' path), so a redraw costs about ``i**2 / 2``.
KMEANS_MAX_ITER = 100
#: The most mean-shift steps a redraw of the mean-shift explorer runs (n² work each).
MEANSHIFT_MAX_ITER = 1000
#: The largest figure side, in pixels (``figsize * dpi``).
MAX_PIXELS = 10_000


def load_dataset(name: str, seed: int = 0) -> np.ndarray:
    """The points of one of :data:`DATASETS`, as a float32 (n, 2) array (a fresh copy).

    ``"six blobs"``: :func:`clusterlab.data.make_six_blobs` (1,500 points);
    ``"make_blobs (scaled)"``: :func:`clusterlab.data.make_scaled_blobs` (300 points,
    4 blobs, standardised); ``"moons"``: :func:`clusterlab.data.make_moons_data`
    (400 points, two half circles k-means cannot separate); ``"digits (2-D PCA)"``:
    :func:`clusterlab.data.load_digits_2d`, a seeded subset of 1,000 of its 1,797
    points (mean shift costs n² per step: this keeps a redraw well under a second on a
    CPU). Each is built once.
    """
    return _load_dataset(name, seed).copy()


@functools.cache
def _load_dataset(name: str, seed: int) -> np.ndarray:
    from clusterlab import data

    if name == "six blobs":
        x = data.make_six_blobs(seed=seed)[0]
    elif name == "make_blobs (scaled)":
        x = data.make_scaled_blobs(seed=seed)[0]
    elif name == "moons":
        x = data.make_moons_data(seed=seed)[0]
    elif name == "digits (2-D PCA)":
        x = data.load_digits_2d(seed=seed)[0]
        rng = np.random.default_rng(seed)
        x = x[np.sort(rng.choice(len(x), size=DIGITS_POINTS, replace=False))]
    else:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    return np.ascontiguousarray(x, dtype=np.float32)


def silhouette(x, labels, *, max_points=1000, seed=0):
    """scikit-learn's silhouette score, on a seeded subsample of ``max_points`` when larger.

    Returns None when it is undefined (fewer than 2 clusters, or every point alone).
    """
    labels = np.asarray(labels)
    n_labels = np.unique(labels).size
    if not 2 <= n_labels <= len(labels) - 1:
        return None
    from sklearn.metrics import silhouette_score

    sample = max_points if len(labels) > max_points else None
    return float(silhouette_score(x, labels, sample_size=sample, random_state=seed))


def _nice_step(value: float) -> float:
    """The 1-2-5 number at or below ``value`` (a slider step)."""
    exp = math.floor(math.log10(value))
    base = 10.0**exp
    for m in (5.0, 2.0, 1.0):
        if m * base <= value:
            return m * base
    return base  # pragma: no cover


def _snap(value: float, step: float) -> float:
    """``value`` rounded to a multiple of ``step``, without float noise (1.2, not
    1.2000000000000002)."""
    digits = max(0, 1 - math.floor(math.log10(step)))
    return round(round(value / step) * step, digits)


def _fmt(value) -> str:
    """A number with 4 significant digits for the status line ("—" for None)."""
    return "—" if value is None else f"{value:.4g}"


def _int_in(value, name: str, low: int, high: int) -> int:
    """An integer (not a float, str or bool) in ``[low, high]``, or a clear error."""
    value = check_int(value, name)
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return value


def _check_dataset(dataset) -> str:
    if not isinstance(dataset, str) or dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    return dataset


def _check_figure(figsize, dpi, raise_errors):
    """``(figsize, dpi, raise_errors)`` validated: two sizes in inches > 0, an integer
    dpi, at most :data:`MAX_PIXELS` pixels a side, and a bool."""
    if not isinstance(raise_errors, (bool, np.bool_)):
        raise TypeError(f"raise_errors must be True or False, got {raise_errors!r}")
    dpi = _int_in(dpi, "dpi", 1, MAX_PIXELS)
    if isinstance(figsize, (str, bytes)) or not hasattr(figsize, "__len__") or len(figsize) != 2:
        raise TypeError(f"figsize must be (width, height) in inches, got {figsize!r}")
    size = tuple(
        check_float(v, f"figsize[{i}]", positive=True) for i, v in enumerate(figsize)
    )
    if max(size) * dpi > MAX_PIXELS:
        raise ValueError(
            f"figsize={figsize} at dpi={dpi} is {size[0] * dpi:.0f} x {size[1] * dpi:.0f} "
            f"pixels; at most {MAX_PIXELS} a side"
        )
    return size, dpi, bool(raise_errors)


# --------------------------------------------------------------------------- base


class _Explorer(widgets.VBox):
    """Controls, a status line and an Output holding the figure; one redraw method.

    Subclasses implement ``compute(**params)`` (cached, returns a state dict),
    ``_params()`` (the controls' values), ``_draw(fig, state, params)`` and
    ``_summary(state, params)`` (the numbers kept in ``last`` and shown in the status).
    """

    _css_class = "clusterlab-explorer"

    def __init__(self, controls, *, figsize, dpi, raise_errors):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.raise_errors = bool(raise_errors)
        self.dpi = int(dpi)
        self.fig = Figure(figsize=figsize, dpi=self.dpi)
        FigureCanvasAgg(self.fig)
        self.png = b""
        self.status = widgets.HTML(value="")
        height = int(round(figsize[1] * self.dpi)) + 10
        self.out = widgets.Output(layout=widgets.Layout(min_height=f"{height}px"))
        self.out.add_class("clusterlab-figure")
        self.last = {"redraws": 0, "n_errors": 0, "error": None}
        self._hold = 0
        super().__init__(children=[*controls, self.status, self.out])
        self.add_class("clusterlab-explorer")
        self.add_class(self._css_class)

    @contextlib.contextmanager
    def _holding(self):
        """Change several controls with one redraw at the end (none in between)."""
        self._hold += 1
        try:
            yield
        finally:
            self._hold -= 1

    def _on_change(self, change=None):
        if not self._hold:
            self.redraw()

    def redraw(self):
        """Recompute (cached) and redraw for the controls' current values.

        Returns ``self.last``. Errors are shown in the Output and recorded in
        ``last["error"]`` (re-raised too when ``raise_errors`` is True).
        """
        t0 = time.perf_counter()
        params = {}
        try:
            params = self._params()
            state = self.compute(**params)
            self.fig.clear()
            self._draw(self.fig, state, params)
            buf = io.BytesIO()
            self.fig.savefig(buf, format="png", dpi=self.dpi)
            png = buf.getvalue()
            summary = self._summary(state, params)
        except Exception as err:
            self._show_error(err, params, time.perf_counter() - t0)
            if self.raise_errors:
                raise
            return self.last
        seconds = time.perf_counter() - t0
        self.png = png
        self.out.outputs = (
            {
                "output_type": "display_data",
                "data": {
                    "image/png": base64.b64encode(png).decode("ascii"),
                    "text/plain": f"<{type(self).__name__} figure: {summary['title']}>",
                },
                "metadata": {},
            },
        )
        self.last = {
            **params,
            **summary,
            "redraws": self.last["redraws"] + 1,
            "n_errors": self.last["n_errors"],
            "error": None,
            "seconds": seconds,
        }
        self.status.value = self._status_html(self.last) + (
            f" <span style='color:#777'>· redrawn in {seconds:.2f} s</span>"
        )
        return self.last

    def _show_error(self, err, params, seconds):
        tb = traceback.format_exc()
        message = f"{type(err).__name__}: {err}"
        self.last = {
            **params,
            "redraws": self.last["redraws"],
            "n_errors": self.last["n_errors"] + 1,
            "error": message,
            "traceback": tb,
            "seconds": seconds,
        }
        self.out.outputs = (
            {
                "output_type": "stream",
                "name": "stderr",
                "text": f"{type(self).__name__}: the redraw failed\n{tb}",
            },
        )
        self.status.value = (
            "<b style='color:#b00020'>error in the redraw: "
            f"{html.escape(message)}</b> (traceback below)"
        )

    def clear_cache(self):
        """Forget every cached result (the next redraws recompute from scratch)."""
        for name in ("_state", "_run", "_elbow", "_estimate"):
            fn = getattr(self, name, None)
            if hasattr(fn, "cache_clear"):
                fn.cache_clear()

    _owned = ("status", "out")  # attributes holding widgets that close() closes

    def close(self):
        """Close the container and every widget inside it."""
        for name in self._owned:
            w = getattr(self, name, None)  # may be missing if __init__ failed
            for one in w if isinstance(w, list) else [w]:
                if one is not None:
                    one.close()
        super().close()


# --------------------------------------------------------------------------- k-means


class KMeansExplorer(_Explorer):
    """k-means by slider: ``k``, data set, init, and the iteration shown.

    The state shown at iteration ``i`` is ``cl.kmeans(x, k, init=init, max_iter=i,
    tol=0, seed=seed)``: the initial centroids for ``i = 0``, after ``i`` Lloyd updates
    otherwise; the path of each centroid over iterations ``0 .. i`` is drawn. The elbow
    curve (inertia after ``max_iter`` iterations for ``k = 1 .. k_max``) is cached per
    ``(dataset, init)`` and marks the current ``k``.

    Attributes
    ----------
    dataset_dropdown, init_dropdown, k_slider, iter_slider, play : ipywidgets
        The controls (set their ``.value`` from code to drive the explorer).
    out : ipywidgets.Output
        Holds the figure (one PNG), or the traceback after an error.
    fig : matplotlib.figure.Figure
        The figure of the last successful redraw.
    last : dict
        ``dataset, k, init, iteration, inertia, silhouette, n_clusters, converged_at,
        n_points, title, redraws, n_errors, error, seconds``.

    Arguments are checked up front, with an error that names the argument and its
    value: ``k`` an integer in ``[1, k_max]`` (``3.5`` or ``"3"`` are refused, not
    rounded), ``k_max`` in ``[1, n]`` for the data set's ``n`` points, ``max_iter`` in
    ``[0, KMEANS_MAX_ITER]`` (100), ``iteration`` in ``[0, max_iter]``, ``seed`` as in
    :func:`clusterlab.kmeans`, ``backend`` one of ``clusterlab.engines.BACKENDS``,
    ``silhouette_points >= 2``, ``figsize`` two sizes > 0 and ``dpi`` an integer, at most
    ``MAX_PIXELS`` (10,000) pixels a side.
    """

    _css_class = "clusterlab-kmeans"
    _owned = (
        "dataset_dropdown",
        "init_dropdown",
        "k_slider",
        "iter_slider",
        "play",
        "_link",
        "_boxes",
        "status",
        "out",
    )

    def __init__(
        self,
        dataset="six blobs",
        k=6,
        init="k-means++",
        iteration=None,
        *,
        k_max=15,
        max_iter=30,
        seed=0,
        backend="numpy",
        silhouette_points=1000,
        raise_errors=False,
        figsize=(10.5, 4.4),
        dpi=80,
    ):
        _check_dataset(dataset)
        init = check_choice(init, "init", INITS)
        figsize, dpi, raise_errors = _check_figure(figsize, dpi, raise_errors)
        self.seed = check_seed(seed)
        self.backend = check_choice(backend, "backend", BACKENDS)
        n = load_dataset(dataset, self.seed).shape[0]
        self.k_max = _int_in(k_max, "k_max", 1, n)  # the elbow runs k = 1 .. k_max
        self.max_iter = _int_in(max_iter, "max_iter", 0, KMEANS_MAX_ITER)
        self.silhouette_points = check_int(silhouette_points, "silhouette_points", low=2)
        k = _int_in(k, "k", 1, self.k_max)
        iteration = self.max_iter if iteration is None else iteration
        iteration = _int_in(iteration, "iteration", 0, self.max_iter)

        self.dataset_dropdown = widgets.Dropdown(
            options=DATASETS, value=dataset, description="data"
        )
        self.init_dropdown = widgets.Dropdown(
            options=list(INITS),
            value=init,
            description="init",
            layout=widgets.Layout(width="220px"),
        )
        self.k_slider = widgets.IntSlider(
            value=k,
            min=1,
            max=self.k_max,
            step=1,
            description="k",
            continuous_update=False,
        )
        self.k_slider.add_class("clusterlab-k-slider")
        self.iter_slider = widgets.IntSlider(
            value=iteration,
            min=0,
            max=self.max_iter,
            step=1,
            description="iteration",
            continuous_update=False,
        )
        self.iter_slider.add_class("clusterlab-iteration-slider")
        self.play = widgets.Play(
            value=iteration,
            min=0,
            max=self.max_iter,
            step=1,
            interval=600,
            description="play the iterations",
        )
        self._link = widgets.jslink((self.play, "value"), (self.iter_slider, "value"))

        self._run = functools.lru_cache(maxsize=4096)(self._run_uncached)
        self._elbow = functools.lru_cache(maxsize=64)(self._elbow_uncached)
        self._state = functools.lru_cache(maxsize=512)(self._compute)

        controls = [
            widgets.HBox([self.dataset_dropdown, self.init_dropdown]),
            widgets.HBox([self.k_slider, self.iter_slider, self.play]),
        ]
        super().__init__(controls, figsize=figsize, dpi=dpi, raise_errors=raise_errors)
        self._boxes = controls
        for w in (self.dataset_dropdown, self.init_dropdown, self.k_slider, self.iter_slider):
            w.observe(self._on_change, names="value")
        self.redraw()

    # -- pure computations (cached) --

    def _run_uncached(self, dataset, k, init, iteration):
        x = load_dataset(dataset, self.seed)
        return kmeans(
            x, k, init=init, max_iter=iteration, tol=0, seed=self.seed, backend=self.backend
        )

    def _elbow_uncached(self, dataset, init):
        n = load_dataset(dataset, self.seed).shape[0]
        ks = np.arange(1, min(self.k_max, n) + 1)
        inertias = np.array([self._run(dataset, int(k), init, self.max_iter).inertia for k in ks])
        return ks, inertias

    def elbow(self, dataset=None, init=None):
        """``(ks, inertias)``: inertia after ``max_iter`` iterations for ``k = 1 .. k_max``
        (cached per ``(dataset, init)``; the current data set and init by default)."""
        dataset = _check_dataset(self.dataset_dropdown.value if dataset is None else dataset)
        init = check_choice(self.init_dropdown.value if init is None else init, "init", INITS)
        ks, inertias = self._elbow(dataset, init)
        return ks.copy(), inertias.copy()

    def compute(self, dataset, k, init, iteration):
        """The state at ``(dataset, k, init, iteration)``: a dict of arrays and numbers
        (``centroids, labels, trail, inertia, silhouette, n_clusters, converged_at,
        elbow_ks, elbow_inertias``), from an LRU cache keyed on those four values."""
        dataset = _check_dataset(dataset)
        k = check_int(k, "k", low=1)  # k > n is refused by cl.kmeans
        init = check_choice(init, "init", INITS)
        iteration = _int_in(iteration, "iteration", 0, self.max_iter)
        return self._state(dataset, k, init, iteration)

    def _compute(self, dataset, k, init, iteration):
        x = load_dataset(dataset, self.seed)
        res = self._run(dataset, k, init, iteration)
        if iteration:  # the centroids after 0, 1, ..., iteration - 1 updates
            trail = np.stack([self._run(dataset, k, init, j).centroids for j in range(iteration)])
        else:
            trail = np.empty((0, k, x.shape[1]), dtype=x.dtype)
        final = self._run(dataset, k, init, self.max_iter)
        shifts = [row["shift"] for row in final.history]
        converged_at = next((t for t, s in enumerate(shifts) if s == 0), None)
        ks, inertias = self._elbow(dataset, init)
        return {
            "x": x,
            "centroids": res.centroids,
            "labels": res.labels,
            "trail": trail,
            "inertia": float(res.inertia),
            "silhouette": silhouette(
                x, res.labels, max_points=self.silhouette_points, seed=self.seed
            ),
            "n_clusters": int(np.unique(res.labels).size),
            "converged_at": converged_at,
            "elbow_ks": ks,
            "elbow_inertias": inertias,
        }

    # -- the widget side --

    def _params(self):
        return {
            "dataset": self.dataset_dropdown.value,
            "k": int(self.k_slider.value),
            "init": self.init_dropdown.value,
            "iteration": int(self.iter_slider.value),
        }

    def _title(self, params):
        it = params["iteration"]
        when = "initial centroids" if it == 0 else f"after {it} update{'s' * (it != 1)}"
        return f"{params['dataset']}: k = {params['k']}, {params['init']}, {when}"

    def _draw(self, fig, state, params):
        # Fixed margins: tight_layout would draw the whole figure once more.
        ax1, ax2 = fig.subplots(
            1,
            2,
            gridspec_kw={
                "width_ratios": [1.3, 1.0],
                "left": 0.055,
                "right": 0.985,
                "bottom": 0.11,
                "top": 0.93,
                "wspace": 0.22,
            },
        )
        plotting.plot_kmeans_state(
            state["x"],
            state["centroids"],
            state["labels"],
            trail=state["trail"],
            ax=ax1,
            title=self._title(params),
        )
        plotting.plot_elbow(
            state["elbow_ks"], state["elbow_inertias"], k_marked=params["k"], ax=ax2
        )
        ax2.plot(
            [params["k"]],
            [state["inertia"]],
            "o",
            color="tab:red",
            markersize=7,
            label=f"iteration {params['iteration']}",
        )
        ax2.legend()
        ax2.set_title(f"elbow: inertia after {self.max_iter} iterations ({params['init']})", pad=12)
        ax1.title.set_fontsize(10)
        ax2.title.set_fontsize(10)

    def _summary(self, state, params):
        return {
            "inertia": state["inertia"],
            "silhouette": state["silhouette"],
            "n_clusters": state["n_clusters"],
            "converged_at": state["converged_at"],
            "n_points": int(state["x"].shape[0]),
            "title": self._title(params),
        }

    def _status_html(self, last):
        conv = last["converged_at"]
        if conv is None:
            conv_text = f"not converged within {self.max_iter} iterations"
        else:
            conv_text = f"Lloyd converges after {conv} update{'s' * (conv != 1)}"
        sil = last["silhouette"]
        sil_text = "undefined for one cluster" if sil is None else f"{sil:.3f}"
        return (
            f"<b>{html.escape(last['dataset'])}</b> ({last['n_points']:,} points) · "
            f"k = {last['k']} · iteration {last['iteration']} · "
            f"<b>inertia {_fmt(last['inertia'])}</b> · <b>silhouette {sil_text}</b> · "
            f"{conv_text}"
        )


# --------------------------------------------------------------------------- mean shift


class MeanShiftExplorer(_Explorer):
    """Mean shift by slider: the bandwidth ``h`` and the data set.

    Shows ``cl.meanshift(x, h)``: the data coloured by cluster, the shifted points (where
    each point converged), the merged centres, a circle of radius ``h`` and a dashed one
    of radius ``cl.estimate_bandwidth(x)`` around the largest cluster's centre. The
    slider's range follows the data set (from about 0.05 to 1.5 times the estimate);
    changing the data set keeps ``h / estimate``. "use estimate" sets the slider to the
    estimate.

    The run uses ``tol=1e-2`` (a point stops once a step moves it less than 1% of
    ``h``: invisible in the plot) and at most ``max_iter=50`` steps, so that a redraw
    stays under a second on a laptop CPU even for tiny bandwidths, where points crawl.
    Both explorers default to ``backend="numpy"``: at these sizes (at most 1,500
    points) NumPy's single thread is as fast as torch, and it keeps its speed when the
    CPU is busy with something else.

    Attributes
    ----------
    dataset_dropdown, bandwidth_slider, estimate_button : ipywidgets
        The controls.
    estimate_label : ipywidgets.HTML
        Where :func:`clusterlab.estimate_bandwidth` would put the slider.
    out, fig, last
        As in :class:`KMeansExplorer`; ``last`` holds ``dataset, bandwidth, estimate,
        n_clusters, n_iter, sizes, n_points, title, redraws, n_errors, error, seconds``.

    Arguments are checked up front, with an error that names the argument and its
    value: ``bandwidth`` and ``ratio`` finite and > 0 (``bandwidth`` also within the
    slider's range), ``quantile`` in ``(0, 1]``, ``max_iter`` in
    ``[0, MEANSHIFT_MAX_ITER]`` (1,000), ``tol >= 0``, and ``seed``, ``backend``,
    ``figsize``, ``dpi`` as in :class:`KMeansExplorer`.
    """

    _css_class = "clusterlab-meanshift"
    _owned = (
        "dataset_dropdown",
        "bandwidth_slider",
        "estimate_button",
        "estimate_label",
        "_boxes",
        "status",
        "out",
    )

    def __init__(
        self,
        dataset="six blobs",
        bandwidth=None,
        *,
        ratio=0.25,
        quantile=0.3,
        max_iter=50,
        tol=1e-2,
        seed=0,
        backend="numpy",
        raise_errors=False,
        figsize=(6.6, 5.0),
        dpi=80,
    ):
        _check_dataset(dataset)
        figsize, dpi, raise_errors = _check_figure(figsize, dpi, raise_errors)
        if bandwidth is not None:
            bandwidth = check_float(bandwidth, "bandwidth", positive=True)
        ratio = check_float(ratio, "ratio", positive=True)
        self.quantile = check_float(quantile, "quantile", positive=True, high=1.0)
        self.max_iter = _int_in(max_iter, "max_iter", 0, MEANSHIFT_MAX_ITER)
        self.tol = check_float(tol, "tol", nonnegative=True)
        self.seed = check_seed(seed)
        self.backend = check_choice(backend, "backend", BACKENDS)
        self._estimate = functools.cache(self._estimate_uncached)
        self._state = functools.lru_cache(maxsize=512)(self._compute)

        self.dataset_dropdown = widgets.Dropdown(
            options=DATASETS, value=dataset, description="data"
        )
        self.bandwidth_slider = widgets.FloatSlider(
            value=1.0,
            min=0.01,
            max=10.0,
            step=0.01,
            description="bandwidth h",
            continuous_update=False,
            readout_format=".3g",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="420px"),
        )
        self.bandwidth_slider.add_class("clusterlab-bandwidth-slider")
        self.estimate_button = widgets.Button(
            description="use estimate",
            tooltip="set h to cl.estimate_bandwidth(x)",
            icon="crosshairs",
        )
        self.estimate_button.add_class("clusterlab-use-estimate")
        self.estimate_label = widgets.HTML(value="")

        controls = [
            widgets.HBox([self.dataset_dropdown, self.bandwidth_slider, self.estimate_button]),
            self.estimate_label,
        ]
        super().__init__(controls, figsize=figsize, dpi=dpi, raise_errors=raise_errors)
        self._boxes = controls[:1]
        self._configure_slider(dataset, bandwidth=bandwidth, ratio=ratio)
        self.dataset_dropdown.observe(self._on_dataset, names="value")
        self.bandwidth_slider.observe(self._on_change, names="value")
        self.estimate_button.on_click(self._use_estimate)
        self.redraw()

    # -- pure computations (cached) --

    def _estimate_uncached(self, dataset):
        x = load_dataset(dataset, self.seed)
        return float(
            estimate_bandwidth(x, quantile=self.quantile, seed=self.seed, backend=self.backend)
        )

    def estimate(self, dataset=None):
        """``cl.estimate_bandwidth(x, quantile=quantile)`` of a data set (cached)."""
        return self._estimate(
            _check_dataset(self.dataset_dropdown.value if dataset is None else dataset)
        )

    def compute(self, dataset, bandwidth):
        """The mean-shift result at ``(dataset, bandwidth)``: a dict of arrays and numbers
        (``points, centers, labels, n_clusters, n_iter, sizes, estimate``), from an LRU
        cache keyed on those two values."""
        dataset = _check_dataset(dataset)
        return self._state(dataset, check_float(bandwidth, "bandwidth", positive=True))

    def _compute(self, dataset, bandwidth):
        x = load_dataset(dataset, self.seed)
        res = meanshift(
            x,
            bandwidth,
            max_iter=self.max_iter,
            tol=self.tol,
            seed=self.seed,
            backend=self.backend,
        )
        labels = np.asarray(res.labels)
        return {
            "x": x,
            "points": np.asarray(res.points),
            "centers": np.asarray(res.centers),
            "labels": labels,
            "n_clusters": int(np.asarray(res.centers).shape[0]),
            "n_iter": int(res.n_iter),
            "sizes": np.bincount(labels, minlength=np.asarray(res.centers).shape[0]),
            "estimate": self._estimate(dataset),
        }

    # -- the widget side --

    def _configure_slider(self, dataset, *, bandwidth=None, ratio=None):
        """Range and step of the slider for ``dataset``; value ``bandwidth`` or
        ``ratio * estimate``."""
        est = self._estimate(dataset)
        step = _nice_step(est / 100.0)
        lo = max(step, _snap(0.05 * est, step))
        hi = _snap(1.5 * est, step)
        if bandwidth is None:
            value = min(max(_snap(ratio * est, step), lo), hi)
        else:
            value = float(bandwidth)
        if not lo <= value <= hi:
            raise ValueError(
                f"bandwidth must be in [{lo:.4g}, {hi:.4g}] for {dataset!r} "
                f"(estimate {est:.4g}), got {value:.4g}"
            )
        s = self.bandwidth_slider
        with self._holding():
            # Widen first so that no intermediate (min, max, value) is invalid.
            s.min = min(s.min, lo)
            s.max = max(s.max, hi)
            s.step = step
            s.value = value
            s.min = lo
            s.max = hi
        self.estimate_label.value = (
            f"<code>cl.estimate_bandwidth(x, quantile={self.quantile:g})</code> would put the "
            f"slider at <b>h = {est:.3g}</b> (dashed circle); slider range "
            f"{lo:.3g} to {hi:.3g}."
        )

    def _on_dataset(self, change):
        if self._hold:
            return
        old, new = change["old"], change["new"]
        try:
            ratio = self.bandwidth_slider.value / self._estimate(old)
            self._configure_slider(new, ratio=ratio)
        except Exception as err:
            self._show_error(err, {"dataset": new}, 0.0)
            if self.raise_errors:
                raise
            return
        self.redraw()

    def _use_estimate(self, button=None):
        """Set the slider to the estimate (one redraw)."""
        self.bandwidth_slider.value = self.estimate()

    def _params(self):
        return {
            "dataset": self.dataset_dropdown.value,
            "bandwidth": float(self.bandwidth_slider.value),
        }

    def _title(self, params, state):
        m = state["n_clusters"]
        return (
            f"{params['dataset']}: h = {params['bandwidth']:.3g} → "
            f"{m} cluster{'s' * (m != 1)}, {state['n_iter']} steps"
        )

    def _draw(self, fig, state, params):
        ax = fig.subplots(gridspec_kw={"left": 0.09, "right": 0.98, "bottom": 0.07, "top": 0.93})
        plotting.plot_meanshift_state(
            state["x"],
            state["points"],
            state["centers"],
            state["labels"],
            bandwidth=params["bandwidth"],
            estimate=state["estimate"],
            ax=ax,
            title=self._title(params, state),
        )
        ax.title.set_fontsize(10)

    def _summary(self, state, params):
        return {
            "estimate": state["estimate"],
            "n_clusters": state["n_clusters"],
            "n_iter": state["n_iter"],
            "sizes": state["sizes"].tolist(),
            "n_points": int(state["x"].shape[0]),
            "title": self._title(params, state),
        }

    def _status_html(self, last):
        m = last["n_clusters"]
        steps = (
            f"stopped at max_iter = {self.max_iter}"
            if last["n_iter"] >= self.max_iter
            else f"converged in {last['n_iter']} steps"
        )
        ratio = last["bandwidth"] / last["estimate"]
        return (
            f"<b>{html.escape(last['dataset'])}</b> ({last['n_points']:,} points) · "
            f"h = {last['bandwidth']:.3g} ({ratio:.2f} × the estimate) · "
            f"<b>{m} cluster{'s' * (m != 1)} found</b> · {steps}"
        )


# --------------------------------------------------------------------------- factories


def kmeans_explorer(**kwargs) -> KMeansExplorer:
    """Build a :class:`KMeansExplorer` (an ipywidgets VBox); display it to use it.

    Keyword arguments go to :class:`KMeansExplorer` (``dataset``, ``k``, ``init``,
    ``iteration``, ``k_max=15``, ``max_iter=30``, ``seed=0``, ``backend="numpy"``, ...).
    """
    return KMeansExplorer(**kwargs)


def meanshift_explorer(**kwargs) -> MeanShiftExplorer:
    """Build a :class:`MeanShiftExplorer` (an ipywidgets VBox); display it to use it.

    Keyword arguments go to :class:`MeanShiftExplorer` (``dataset``, ``bandwidth``,
    ``ratio=0.25``, ``quantile=0.3``, ``seed=0``, ``backend="numpy"``, ...).
    """
    return MeanShiftExplorer(**kwargs)
