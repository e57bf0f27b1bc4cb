"""Self-checks for the notebooks' exercises.

Each ``check_*`` runs the learner's function on fresh (seeded) data, compares what it
returns with the package's own kernel, prints one line per case (``✓`` or ``✗`` with
what is wrong) and returns ``True`` when every case passed. A check never raises: an
exception from the learner's code is reported, and ``NotImplementedError`` (the stub
of an exercise) reads "not written yet".
"""

from __future__ import annotations

import numpy as np

from clusterlab._validate import is_torch, to_numpy

__all__ = [
    "check_assign",
    "check_attention_step",
    "check_batched_step",
    "check_chunked_assign",
    "check_fused_assign",
    "check_gaussian",
    "check_inertia",
    "check_kmeans_plusplus",
    "check_meanshift_step",
    "check_memory_bound",
    "check_memory_plan",
    "check_merge",
    "check_spherical_update",
    "check_torch_update",
    "check_update",
]


class _NotWritten(Exception):
    pass


def _run(title, fn, cases):
    """Run ``cases`` = [(label, make_args, judge)], print a line each, return all passed."""
    if not callable(fn):
        print(f"✗ {title}: expected a function, got {type(fn).__name__}")
        return False
    passed = True
    for label, make_args, judge in cases:
        args = make_args()
        try:
            out = fn(*args)
            problem = judge(out, *args)
        except NotImplementedError:
            print(f"✗ {title}: not written yet (the function raises NotImplementedError)")
            return False
        except Exception as exc:  # the learner's code failed: say how, do not crash
            problem = f"raised {type(exc).__name__}: {exc}"
        if problem:
            print(f"✗ {title} — {label}: {problem}")
            passed = False
        else:
            print(f"✓ {title} — {label}")
    return passed


def _shape_problem(out, shape, what="result"):
    got = tuple(getattr(out, "shape", np.shape(out)))
    if got != tuple(shape):
        return f"{what} has shape {got}, expected {tuple(shape)}"
    return None


def _labels_problem(out, expected):
    got = to_numpy(out)
    problem = _shape_problem(got, expected.shape, "labels")
    if problem:
        return problem
    wrong = np.flatnonzero(got != expected)
    if len(wrong):
        i = int(wrong[0])
        return (
            f"labels differ at {len(wrong)} of {len(expected)} points; "
            f"first at point {i}: got {got[i]}, expected {expected[i]}"
        )
    return None


def _close_problem(out, expected, what, rtol=1e-5, atol=1e-6):
    got = to_numpy(out).astype(np.float64)
    problem = _shape_problem(got, expected.shape, what)
    if problem:
        return problem
    if not np.isfinite(got).all():
        return f"{what} contains NaN or inf (first at {np.argwhere(~np.isfinite(got))[0].tolist()})"
    bad = ~np.isclose(got, expected, rtol=rtol, atol=atol)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        return (
            f"{what} differs in {int(bad.sum())} of {bad.size} entries; first at {idx}: "
            f"got {got[idx]:.6g}, expected {expected[idx]:.6g}"
        )
    return None


def _blobs(seed, n=300, k=5, d=2, spread=1.0):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-20, 20, size=(k, d))
    labels = rng.integers(0, k, size=n)
    return centres[labels] + rng.normal(scale=spread, size=(n, d)), labels


def _torch(a, dtype=None):
    import torch

    return torch.as_tensor(np.asarray(a), dtype=dtype or torch.float32)


# --------------------------------------------------------------------------------------
# setup and data (notebooks 00 and 01), and the watch these checks and check_assign use
# --------------------------------------------------------------------------------------

__all__ += [
    "check_bytes_of",
    "check_distance_shares",
    "check_four_datasets",
    "check_largest_n",
    "check_standardise",
]


class _TooManySteps(Exception):
    """Raised inside the watched function once it has run more Python steps than allowed."""


def _traced(fn, *args, max_steps=None, steps=True):
    """Run ``fn(*args)`` and record how it ran, without any clock.

    Returns a dict: ``out`` (the result; None when stopped), ``steps`` (Python ``call``
    and ``line`` events in every frame, so a Python loop over n items costs at least n
    steps), ``stopped`` (True when ``max_steps`` was passed and the run was cut short),
    ``peak`` (the most bytes allocated at once while it ran, NumPy arrays included, as
    :mod:`tracemalloc` sees them) and ``modules`` (the modules whose Python code ran).
    With ``steps=False`` only the memory is watched: no trace function, whose own frames and
    events would add to ``peak`` (``steps`` and ``modules`` stay empty).
    Exceptions from ``fn`` (``NotImplementedError`` included) propagate.
    """
    import sys
    import tracemalloc

    info = {"steps": 0, "modules": set(), "stopped": False}

    def local(frame, event, arg):
        info["steps"] += 1
        if max_steps is not None and info["steps"] > max_steps:
            raise _TooManySteps
        return local

    def on_call(frame, event, arg):
        info["modules"].add(frame.f_globals.get("__name__", ""))
        return local(frame, event, arg)

    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    previous = sys.gettrace()
    if steps:
        sys.settrace(on_call)
    try:
        info["out"] = fn(*args)
    except _TooManySteps:
        info["out"], info["stopped"] = None, True
    finally:
        if steps:
            sys.settrace(previous)
        info["peak"] = max(tracemalloc.get_traced_memory()[1] - before, 0)
        if started:
            tracemalloc.stop()
    return info


def _package_problem(info, what):
    """A message when the watched run used clusterlab's own code (the answer itself)."""
    used = sorted(
        m for m in info["modules"] if m.startswith("clusterlab.") and m != "clusterlab.checks"
    )
    if used:
        return f"it calls clusterlab's own code ({', '.join(used)}): write {what} yourself"
    return None


def _bytes_problem(info, limit, what):
    """A message when the watched run allocated more than ``limit`` bytes at once."""
    if info["peak"] > limit:
        return (
            f"it allocated {info['peak']:,} bytes while it ran (more than {limit:,}): {what}"
        )
    return None


def _python_int_problem(got, want, what):
    if isinstance(got, bool) or not isinstance(got, int):
        return f"returned {type(got).__name__} {got!r}, expected a Python int (wrap it in int())"
    if got != want:
        return f"returned {got:,}, expected {want:,}{what}"
    return None


def check_bytes_of(fn):
    """Check ``fn(shape, dtype) -> int``: the bytes of an array, computed without making it.

    ``dtype`` is a NumPy dtype, a type such as ``np.float32`` or a name such as
    ``"float64"``; the result must be a Python ``int``. The function runs under a
    memory watch: allocating the array (``np.empty(shape, dtype).nbytes``), even lazily,
    fails the check with the bytes it took (more than 4 KiB at once).
    """

    def case(shape, dtype, want):
        return (
            f"bytes_of({shape}, {np.dtype(dtype).name}) = {want:,}",
            lambda: (shape, dtype),
            lambda info, shape, dtype: (
                _python_int_problem(info["out"], want, "")
                or _bytes_problem(
                    info, 4096, "compute the size from the shape and np.dtype(dtype).itemsize, "
                    "without making the array"
                )
            ),
        )

    return _run(
        "check_bytes_of",
        lambda shape, dtype: _traced(fn, shape, dtype),
        [
            case((1_500, 2), np.float32, 12_000),
            case((10,), "float64", 80),
            case((), np.float32, 4),
            case((0, 64), np.float32, 0),
            case((1_000_000, 1_000), np.dtype("float32"), 4_000_000_000),
            case((100_000, 1_000, 64), np.float16, 12_800_000_000),
        ],
    )


def check_largest_n(fn):
    """Check ``fn(row_shape, dtype, budget) -> int``: the most rows that fit in ``budget``.

    The answer is the largest N with ``N * prod(row_shape) * itemsize <= budget`` bytes, a
    Python ``int``. The technique is one integer division: a search that counts N up one
    row at a time (more than 10,000 Python steps), an allocation of more than 4 KiB, or a
    float division (wrong by one for budgets beyond 2**53 bytes) fails the check.
    """

    def case(label, row_shape, dtype, budget, want, hint=""):
        return (
            label,
            lambda: (row_shape, dtype, budget),
            lambda info, *args: (
                (
                    "it counted N up one row at a time (more than 10,000 Python steps): "
                    "divide the budget by the bytes of one row instead"
                )
                if info["stopped"]
                else _python_int_problem(info["out"], want, hint)
                or _bytes_problem(info, 4096, "no array is needed, only arithmetic")
            ),
        )

    def call(row_shape, dtype, budget):
        return _traced(fn, row_shape, dtype, budget, max_steps=10_000)

    float_hint = (
        " (a float division rounds at this size: use the integer division budget // row_bytes)"
    )
    return _run(
        "check_largest_n",
        call,
        [
            case("N × 1,000 float32 in 1 GiB", (1_000,), np.float32, 2**30, 268_435),
            case("N × 1,000 × 64 float32 in 1 GiB", (1_000, 64), np.float32, 2**30, 4_194),
            case("an exact fit: 10 rows of 2 float64 in 160 bytes", (2,), "float64", 160, 10),
            case("not even one row: 3 float32 in 11 bytes", (3,), np.float32, 11, 0),
            case(
                "a budget beyond 2**53 bytes",
                (3,),
                np.int8,
                3 * 2**55 - 1,
                2**55 - 1,
                float_hint,
            ),
        ],
    )


def check_four_datasets(fn):
    """Check ``fn() -> matplotlib Figure``: the four 2-D data sets of notebook 01 on a 2×2 grid.

    The six blobs (1,500 points, 6 blobs), the scaled blobs (300, 4), the moons (400, 2) and
    the digits' 2-D projection (1,797, 10) must each fill one of four axes, with a title,
    coloured by their true labels: the largest scatter of each axes must hold the data
    set's points in as many colours as it has classes.
    """
    from matplotlib.figure import Figure

    expected = {1_500: ("six blobs", 6), 300: ("scaled blobs", 4), 400: ("moons", 2),
                1_797: ("digits (2-D)", 10)}

    def judge(fig):
        if not isinstance(fig, Figure):
            return f"expected a matplotlib Figure (plt.subplots returns it), got {type(fig).__name__}"
        axes = fig.get_axes()
        if len(axes) != 4:
            return f"the figure has {len(axes)} axes, expected 4 (plt.subplots(2, 2))"
        seen = {}
        for i, ax in enumerate(axes):
            sizes = [len(c.get_offsets()) for c in ax.collections]
            if not sizes or max(sizes) == 0:
                return f"axes {i} has no scatter of points"
            points = ax.collections[int(np.argmax(sizes))]
            n = len(points.get_offsets())
            if n not in expected:
                return (
                    f"axes {i} shows {n:,} points; expected one of the data sets "
                    f"({', '.join(f'{name}: {m:,}' for m, (name, _) in expected.items())})"
                )
            name, classes = expected[n]
            if n in seen:
                return f"axes {seen[n]} and {i} both show the {name}"
            seen[n] = i
            points.update_scalarmappable()  # colours given as numbers are mapped at draw time
            colours = np.unique(np.round(np.asarray(points.get_facecolors()), 4), axis=0)
            if len(colours) != classes:
                return (
                    f"axes {i} ({name}) has its points in {len(colours)} colour(s), expected "
                    f"{classes}: colour them by their true labels (labels=...)"
                )
            if not ax.get_title():
                return f"axes {i} ({name}) has no title (title=...)"
        return None

    return _run("check_four_datasets", fn, [("2×2 grid, true labels, titles", tuple, judge)])


def _standardise_reference(x):
    x = np.asarray(x, dtype=np.float64)
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std == 0, 1.0, std)


def check_standardise(fn):
    """Check ``fn(x (n, d)) -> (n, d)``: each column to mean 0 and standard deviation 1.

    As scikit-learn's ``StandardScaler().fit_transform(x)``: the population standard
    deviation (``ddof=0``), a constant column divided by 1 (never NaN), the input left
    unchanged. One case is float32 data 10,000 units from the origin with a spread of 10,
    where the one-pass variance mean(x²) − mean(x)² cancels to noise (subtract the mean
    first). Calling scikit-learn fails the check: the exercise is to write it.
    """
    rng = np.random.default_rng(1)
    const = rng.normal(size=(50, 3))
    const[:, 1] = 7.0
    far = (1e4 + 10.0 * rng.normal(size=(500, 2))).astype(np.float32)
    cases = [
        ("4 blobs, float32", _blobs(5, n=300, k=4)[0].astype(np.float32), 1e-4),
        ("offset 1e4, scale 1e3 (float64)", 1e4 + 1e3 * rng.normal(size=(200, 4)), 1e-6),
        ("a constant column", const, 1e-6),
        ("one feature", rng.uniform(size=(30, 1)), 1e-6),
        ("float32, 10,000 from the origin, spread 10", far, 3e-3),
    ]

    def case(label, x, atol):
        def judge(info, x_in):
            if any(m == "sklearn" or m.startswith("sklearn.") for m in info["modules"]):
                return (
                    "it calls scikit-learn: write it with NumPy (subtract the column means, "
                    "divide by the column standard deviations)"
                )
            if not np.array_equal(x_in, x):
                return "the input was modified: work on a new array (x - mean makes one)"
            got = to_numpy(info["out"])
            problem = _close_problem(got, _standardise_reference(x), "result", rtol=0, atol=atol)
            if problem and np.abs(x).max() > 1e3 and x.dtype == np.float32:
                problem += (
                    " (far from the origin in float32: mean(x²) − mean(x)² cancels; "
                    "subtract the mean first, then square)"
                )
            return problem

        return label, lambda: (x.copy(),), judge

    return _run("check_standardise", lambda x: _traced(fn, x), [case(*c) for c in cases])


def check_distance_shares(fn):
    """Check ``fn(x (n, d)) -> (d,)``: each feature's share of the squared distances.

    Feature j contributes ``(x_ij - x_kj)**2`` to the squared distance between points i and
    k; over all pairs that averages ``2 var(x_j)``, so the shares are ``var_j / sum(var)``
    (they add up to 1). Cases: stretched and standardised data, a constant column (share
    0), float32 data 10,000 units from the origin (the one-pass variance cancels there),
    and 3,000 points under a watch: a table of all n² pairs (more than 64 bytes per
    value of x at once) or a Python loop over the points fails the check.
    """
    rng = np.random.default_rng(2)
    blobs = _blobs(6, n=300, k=4)[0]
    const = rng.normal(size=(80, 3))
    const[:, 2] = -3.0
    far = (1e4 + rng.normal(size=(500, 3)) * np.array([10.0, 1.0, 0.1])).astype(np.float32)
    big = rng.normal(size=(3_000, 2)) * np.array([1.0, 5.0])
    cases = [
        ("4 blobs", blobs),
        ("4 blobs, feature 0 × 50", blobs * np.array([50.0, 1.0])),
        ("a constant column", const),
        ("float32, 10,000 from the origin, scales 10, 1, 0.1", far),
        ("3,000 points", big),
    ]

    def case(label, x):
        def judge(info, x_in):
            n, d = x.shape
            if info["stopped"]:
                return (
                    f"it ran more than {20 * n:,} Python steps for {n:,} points: a Python loop "
                    "over points or pairs; use the variance of each column"
                )
            problem = _bytes_problem(
                info, 64 * x.size + 2**20,
                "a table of all pairs grows like n²; the mean of (a_i − a_k)² over all pairs "
                "is 2·var(a)",
            )
            if problem:
                return problem
            var = np.asarray(x, dtype=np.float64).var(axis=0)
            problem = _close_problem(info["out"], var / var.sum(), "shares", rtol=1e-4, atol=1e-6)
            if problem and np.abs(x).max() > 1e3 and x.dtype == np.float32:
                problem += (
                    " (far from the origin in float32: mean(x²) − mean(x)² cancels; subtract "
                    "the mean first)"
                )
            elif problem:
                total = float(np.sum(to_numpy(info["out"])))
                if not np.isclose(total, 1.0, rtol=1e-4):
                    problem += f" (the shares add up to {total:.6g}, not 1)"
            return problem

        return label, lambda: (x.copy(),), judge

    def call(x):
        return _traced(fn, x, max_steps=20 * x.shape[0])

    return _run("check_distance_shares", call, [case(*c) for c in cases])


# --------------------------------------------------------------------------------------
# k-means (notebooks 02 and 03)
# --------------------------------------------------------------------------------------


def _nearest_problem(out, x, c):
    """A message when ``out`` is not the nearest centroid of each row of ``x`` (float64
    distances; a label within rounding of the nearest one is accepted), else None."""
    got = to_numpy(out)
    n = x.shape[0]
    problem = _shape_problem(got, (n,), "labels")
    if problem:
        return problem
    if got.dtype.kind not in "iu":
        return f"labels should be integers, got dtype {got.dtype} (argmin returns integers)"
    xd, cd = to_numpy(x).astype(np.float64), to_numpy(c).astype(np.float64)
    if n and (got.min() < 0 or got.max() >= len(cd)):
        return f"labels must lie in 0..{len(cd) - 1}, got {got.min()}..{got.max()}"
    d2 = ((xd[:, None, :] - cd[None, :, :]) ** 2).sum(2)  # (n, k) reference, float64
    best = d2.min(1)
    chosen = d2[np.arange(n), got]
    wrong = np.flatnonzero(chosen > best + 1e-3 * (1.0 + best))
    if not len(wrong):
        return None
    i = int(wrong[0])
    message = (
        f"{len(wrong)} of {n} points are not given their nearest centroid; first: point {i}, "
        f"got {got[i]} (squared distance {chosen[i]:.4g}), nearest is {int(d2[i].argmin())} "
        f"({best[i]:.4g})"
    )
    if np.abs(xd).max() > 1e3:
        message += (
            ". This is the precision trap: 10,000 units from the origin in float32, "
            "‖x‖² ≈ 10⁸ and the expanded form ‖x‖² − 2x·c + ‖c‖² loses the distances to "
            "cancellation. Centre first (subtract the centroids' mean from x and c), then expand"
        )
    return message


def check_assign(fn):
    """Check ``fn(x (n, d), c (k, d)) -> labels (n,)``: the nearest centroid of each point,
    without Python loops over the points, and right far from the origin.

    A label is accepted when its float64 squared distance is the smallest up to rounding
    (ties may go either way). Two cases are float32 data 10,000 units from the origin,
    where the expanded form ``||x||^2 - 2 x.c + ||c||^2`` cancels the distances away
    (hundreds of wrong labels) unless the data are centred first; subtracting directly
    (``x[:, None] - c[None]``) or working in float64 passes too. The last case counts
    the Python steps ``fn`` takes on 1,000 and on 11,000 points (no clock): a loop over
    the points (``for``, a comprehension, ``map``, ``np.apply_along_axis``) grows with n
    and fails; so does calling clusterlab's own assignment.
    """
    n_small, n_large = 1_000, 11_000
    allowed = (n_large - n_small) // 4  # a loop over points takes >= 1 step per point

    def case(seed, n, k, d, offset=None):
        def make():
            rng = np.random.default_rng(seed)
            if offset is None:
                return rng.normal(size=(n, d)), rng.normal(size=(k, d))
            x, _ = _blobs(seed, n=n, k=max(k, 2), d=d, spread=3.0)
            c = x[rng.choice(n, size=k, replace=False)] + rng.normal(size=(k, d))
            return (x + offset).astype(np.float32), (c + offset).astype(np.float32)

        return make

    def watch_judge(out, x, c):
        problem = _nearest_problem(out, x, c)
        if problem:
            return problem
        small = _traced(fn, x, c)
        problem = _package_problem(small, "the assignment")
        if problem:
            return problem
        x_large = np.random.default_rng(15).normal(size=(n_large, x.shape[1]))
        large = _traced(fn, x_large, c, max_steps=small["steps"] + allowed)
        problem = _package_problem(large, "the assignment")
        if problem:
            return problem
        if large["stopped"] or large["steps"] - small["steps"] > allowed:
            return (
                f"a Python loop over the points: {small['steps']:,} Python steps for "
                f"{n_small:,} points, over {small['steps'] + allowed:,} for {n_large:,}. "
                "Compute all n × k distances with array operations (broadcasting, or the "
                "matrix product x @ c.T), then argmin over the centroids"
            )
        return _nearest_problem(large["out"], x_large, c)

    def judge(out, x, c):
        return _nearest_problem(out, x, c)

    return _run(
        "check_assign",
        fn,
        [("200 points, k=5, d=2", case(11, 200, 5, 2), judge),
         ("500 points, k=17, d=8", case(12, 500, 17, 8), judge),
         ("k=1", case(13, 50, 1, 3), judge),
         ("float32, 10,000 from the origin, k=7, d=2", case(14, 1000, 7, 2, 1e4), judge),
         ("float32, 10,000 from the origin, k=20, d=3", case(16, 2000, 20, 3, 1e4), judge),
         (f"no Python loop over points ({n_small:,} vs {n_large:,} points)",
          case(17, n_small, 5, 2), watch_judge)],
    )


def _update_reference(x, labels, k):
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, labels, x)
    counts = np.bincount(labels, minlength=k)
    return sums, counts


def _update_judge(out, x, labels, k, unit=False):
    """The centroids ``out`` against the cluster means (``unit``: the normalised sums)."""
    x, labels = to_numpy(x).astype(np.float64), to_numpy(labels)
    sums, counts = _update_reference(x, labels, k)
    got = to_numpy(out).astype(np.float64)
    problem = _shape_problem(got, (k, x.shape[1]), "centroids")
    if problem:
        return problem
    if not np.isfinite(got).all():
        j = int(np.argwhere(~np.isfinite(got))[0][0])
        why = " (it has no points: keep its old position or move it, but no 0/0)" if counts[j] == 0 else ""
        return f"centroid {j} is NaN or inf{why}"
    full = counts > 0
    expected = sums[full] / counts[full, None]
    if unit:
        norms = np.linalg.norm(got[full], axis=1)
        if not np.allclose(norms, 1.0, atol=1e-6):
            return (f"centroid norms run from {norms.min():.4g} to {norms.max():.4g}, not 1: a "
                    "spherical centroid is its cluster's mean direction, the sum divided by its norm")
        expected = sums[full] / np.linalg.norm(sums[full], axis=1, keepdims=True)
    return _close_problem(got[full], expected, "centroids of non-empty clusters")


def _update_case(seed, n, k, empty, as_torch=False):
    """Data, random labels (one cluster emptied if ``empty``) and k, for the update checks."""

    def make():
        x, _ = _blobs(seed, n=n, k=k)
        labels = np.random.default_rng(seed).integers(0, k, size=n)
        if empty:
            labels[labels == k - 1] = 0
        if as_torch:
            import torch

            return _torch(x, torch.float64), torch.as_tensor(labels), k
        return x, labels, k

    return make


def check_update(fn):
    """Check ``fn(x (n, d), labels (n,), k) -> centroids (k, d)``: the mean of each cluster.

    One case has an empty cluster: its centroid may be anything finite, never NaN.
    """
    return _run(
        "check_update",
        fn,
        [("300 points, k=5", _update_case(21, 300, 5, False), _update_judge),
         ("k=4 with an empty cluster", _update_case(22, 100, 4, True), _update_judge)],
    )


def check_inertia(fn):
    """Check ``fn(x (n, d), centroids (k, d), labels (n,)) -> float``: sum of squared distances."""

    def case(seed, n, k):
        def make():
            x, labels = _blobs(seed, n=n, k=k)
            c = np.random.default_rng(seed).normal(size=(k, 2)) * 10
            return x, c, labels

        return make

    def judge(out, x, c, labels):
        expected = float(((x - c[labels]) ** 2).sum())
        try:
            got = float(out)
        except (TypeError, ValueError):
            return f"expected one number, got {type(out).__name__} of shape {np.shape(out)}"
        if not np.isclose(got, expected, rtol=1e-6):
            hint = " (did you take square roots? inertia sums *squared* distances)" if got < expected else ""
            return f"got {got:.6g}, expected {expected:.6g}{hint}"
        return None

    return _run("check_inertia", fn, [("300 points, k=5", case(31, 300, 5), judge),
                                      ("80 points, k=3", case(32, 80, 3), judge)])


def check_kmeans_plusplus(fn, n_runs=20):
    """Check ``fn(x (n, d), k, rng) -> (k, d)``: k-means++ seeding by D^2 sampling.

    On five tight, far-apart blobs D^2 sampling puts one seed in each blob almost
    always; uniform random choice does so in about 4% of runs.
    """

    def make():
        x, labels = _blobs(41, n=500, k=5, spread=0.3)
        return x, labels

    x, labels = make()

    def shape_case():
        return x, 5, np.random.default_rng(0)

    def judge_rows(out, x, k, rng):
        got = to_numpy(out)
        problem = _shape_problem(got, (k, x.shape[1]), "seeds")
        if problem:
            return problem
        rows = {tuple(r) for r in x.tolist()}
        outside = [i for i, r in enumerate(got.tolist()) if tuple(r) not in rows]
        if outside:
            return f"seed {outside[0]} is not a row of x (k-means++ picks data points)"
        if len({tuple(r) for r in got.tolist()}) < k:
            return "two seeds are the same point"
        return None

    def judge_spread(_, x, k, rng):
        hits = 0
        for s in range(n_runs):
            seeds = to_numpy(fn(x, k, np.random.default_rng(100 + s)))
            idx = [np.flatnonzero((x == r).all(1))[0] for r in seeds]
            hits += len(set(labels[idx].tolist())) == k
        if hits < 0.8 * n_runs:
            return (
                f"one seed per blob in only {hits} of {n_runs} runs (D² sampling gets nearly "
                "all); draw each new seed with probability proportional to the squared "
                "distance to its nearest chosen seed"
            )
        return None

    return _run(
        "check_kmeans_plusplus",
        fn,
        [("k seeds, distinct rows of x", shape_case, judge_rows),
         (f"one seed per blob on five far blobs, {n_runs} runs", shape_case, judge_spread)],
    )


def _vectorised_update(title, fn, judge_out, cases):
    """Run an update check: ``cases`` = [(label, make_args)] judged by ``judge_out(out, x,
    labels, k)``, then the technique: ``fn`` runs at n = 64 and 256 points (k = 4) and at
    k = 4 and 16 clusters (n = 256). When the torch operations it dispatches
    (:func:`_torch_watched`) or the Python steps it runs (:func:`_traced`) grow with n, it
    loops in Python over the points; with k, over the clusters. Both fail.
    """
    import torch
    import torch._dynamo  # noqa: F401  (a dispatch mode's first op imports it: not under a trace)

    def call(x, labels, k):
        seen = _torch_watched(fn, x, labels, k)
        seen.steps = _traced(fn, x, labels, k)["steps"]  # a second run, without the mode
        return seen

    def judge(seen, x, labels, k):
        if not is_torch(seen.out):
            return f"expected a torch.Tensor, got {type(seen.out).__name__}"
        return judge_out(seen.out, x, labels, k)

    def sized(n, k):
        gen = torch.Generator().manual_seed(53 + n + k)
        labels = torch.randperm(n, generator=gen) % k  # no empty cluster
        x = torch.randn(n, 3, generator=gen, dtype=torch.float64)
        return x / x.norm(dim=1, keepdim=True), labels, k  # unit rows suit every update

    def judge_loops(seen, x, labels, k):
        problem = judge(seen, x, labels, k)
        if problem:
            return problem
        fewer_points, more_clusters = call(*sized(64, 4)), call(*sized(256, 16))
        for what in ("ops", "steps"):
            words = "torch operations" if what == "ops" else "Python steps"
            a, b, c = (getattr(r, what) for r in (fewer_points, seen, more_clusters))
            if b - a >= 48:  # 192 more points: at least one more per 4 points
                return (f"a Python loop over the points: the {words} it runs grow with n ({a} at "
                        f"n=64, {b} at n=256); one index_add_ (or scatter_add_, a one-hot "
                        "matrix product) adds every point to its cluster in a single call")
            if c - b >= 6:  # 12 more clusters
                return (f"a Python loop over the clusters: the {words} it runs grow with k ({b} "
                        f"at k=4, {c} at k=16); the exercise replaces that loop (section 1) by "
                        "one index_add_ (and one bincount for the counts) for every cluster at once")
        return None

    cases = [(label, make, judge) for label, make in cases]
    cases.append(("no Python loop over points or clusters (n=64 and 256, k=4 and 16)",
                  lambda: sized(256, 4), judge_loops))
    return _run(title, call if callable(fn) else fn, cases)


def check_torch_update(fn):
    """Check ``fn(x tensor (n, d), labels int64 tensor (n,), k) -> (k, d) tensor``: the
    cluster means, vectorised.

    The means must be right (an empty cluster: any finite row), and no Python loop over
    the points or over the clusters may compute them (:func:`_vectorised_update`): the
    exercise replaces section 1's loop over clusters by one scatter for all of them. Any
    vectorised way passes (``index_add_``, ``scatter_add_``, ``scatter_reduce``, a one-hot
    matrix product, ``bincount`` with weights per column).
    """
    return _vectorised_update("check_torch_update", fn, _update_judge, [
        ("300 points, k=5", _update_case(51, 300, 5, False, True)),
        ("k=4 with an empty cluster", _update_case(52, 100, 4, True, True)),
    ])


def check_spherical_update(fn):
    """Check ``fn(x tensor (n, d) of unit rows, labels int64 tensor (n,), k) -> (k, d)``:
    spherical k-means' centroids, vectorised.

    Each centroid of a non-empty cluster must be the normalised sum (or mean) of its
    points — unit norm, so a plain mean fails with the norms it has — an empty cluster
    any finite row, and no Python loop over the points or clusters may compute them
    (:func:`_vectorised_update`).
    """

    def unit_rows(case):
        def make():
            x, labels, k = case()
            return x / x.norm(dim=1, keepdim=True), labels, k

        return make

    def judge(out, x, labels, k):
        return _update_judge(out, x, labels, k, unit=True)

    return _vectorised_update("check_spherical_update", fn, judge, [
        ("300 unit rows, k=5", unit_rows(_update_case(56, 300, 5, False, True))),
        ("k=4 with an empty cluster", unit_rows(_update_case(57, 100, 4, True, True))),
    ])


def check_chunked_assign(fn):
    """Check ``fn(x tensor (n, d), c tensor (k, d), chunk_size) -> labels tensor (n,)``,
    the nearest centroids computed ``chunk_size`` rows at a time.

    The labels must be right for several chunk sizes, and when ``chunk_size < n`` the
    whole (n, k) block must never exist: no torch operation inside ``fn`` may make a
    tensor of n * k numbers or more (watched by :func:`_torch_watched`). Any chunked solution
    passes, whatever it builds per chunk (a (chunk_size, k) block from ``cdist`` or a
    matrix product, or even a (chunk_size, k, d) difference tensor: the cases keep
    ``chunk_size * d`` below n).
    """
    from clusterlab.kmeans import assign

    def case(seed, n, chunk):
        def make():
            rng = np.random.default_rng(seed)
            return _torch(rng.normal(size=(n, 4))), _torch(rng.normal(size=(13, 4))), chunk

        return make

    def call(x, c, chunk):
        return _torch_watched(fn, x, c, chunk)

    def judge(seen, x, c, chunk):
        if not is_torch(seen.out):
            return f"expected a torch.Tensor, got {type(seen.out).__name__}"
        problem = _labels_problem(seen.out, to_numpy(assign(x, c)[1]))
        if problem:
            return problem
        n, k = x.shape[0], c.shape[0]
        if chunk < n and seen.largest >= n * k:
            return (f"the whole (n, k) = ({n}, {k}) block was materialised: a torch operation "
                    f"made a tensor of {seen.largest:,} numbers (n * k = {n * k:,}) although "
                    f"chunk_size={chunk} asks for blocks of {chunk} x {k}; compute the "
                    "distances of at most chunk_size rows at a time")
        return None

    cases = [
        ("n=1000, chunk_size=1", case(60, 1000, 1), judge),
        ("n=1000, chunk_size=7 (the last chunk is short)", case(61, 1000, 7), judge),
        ("n=2000, chunk_size=256", case(62, 2000, 256), judge),
        ("n=1000, chunk_size=5000: one chunk holds every row", case(63, 1000, 5000), judge),
    ]
    return _run("check_chunked_assign", call if callable(fn) else fn, cases)


def check_memory_plan(fn):
    """Check ``fn(n, k, d, budget) -> (broadcast_bytes, distances_bytes, rows)``.

    In float32 (4 bytes a number): the bytes of the (n, k, d) broadcast differences, of
    the (n, k) distance matrix, and how many rows of a (rows, k) block of distances fit
    in ``budget`` bytes. Several shapes, so that numbers worked out for one question do
    not pass; and the counting is the exercise, so a ``fn`` that calls clusterlab's own
    code (``cl.ladder.memory_bytes``, say) fails.
    """

    def call(n, k, d, budget):
        return _traced(fn, n, k, d, budget)

    def judge(info, n, k, d, budget):
        problem = _package_problem(info, "the count (elements times 4 bytes)")
        if problem:
            return problem
        out = info["out"]
        if not isinstance(out, tuple | list) or len(out) != 3:
            return f"expected a tuple (broadcast_bytes, distances_bytes, rows), got {out!r}"
        expected = (4 * n * k * d, 4 * n * k, budget // (4 * k))
        names = ("broadcast_bytes", "distances_bytes", "rows")
        for name, got, want in zip(names, out, expected, strict=True):
            if got == want:
                continue
            if name == "rows":
                hint = (" (a (rows, k) block holds rows * k numbers of 4 bytes; whole rows only)"
                        if got in (budget // k, budget / (4 * k)) else "")
                if got == budget // (4 * k * d):
                    hint = " (a block of distances is (rows, k): d is already summed away)"
            else:
                hint = " (that counts numbers; each float32 takes 4 bytes)" if 4 * got == want else ""
            return f"{name} = {got!r}, expected {want:,}{hint}"
        return None

    cases = [
        (f"N={n:,}, K={k:,}, D={d}, budget {budget:,} bytes", lambda a=(n, k, d, budget): a, judge)
        for n, k, d, budget in ((1_500, 6, 2, 1024), (1_000, 3, 5, 100),
                                (10_000_000, 10_000, 128, 4 * 2**20))
    ]
    return _run("check_memory_plan", call if callable(fn) else fn, cases)


# --------------------------------------------------------------------------------------
# mean shift (notebooks 04 and 05)
# --------------------------------------------------------------------------------------


def check_gaussian(fn):
    """Check ``fn(dist, bandwidth) -> weights``, proportional to exp(-dist^2 / 2h^2)."""

    def case(h):
        def make():
            return np.linspace(0.0, 4.0 * h, 41), h

        return make

    def judge(out, dist, h):
        got = to_numpy(out).astype(np.float64)
        problem = _shape_problem(got, dist.shape, "weights")
        if problem:
            return problem
        ref = np.exp(-(dist**2) / (2 * h * h))
        if (got <= 0).any() or not np.isfinite(got).all():
            return "weights must be positive and finite"
        ratio = got / ref
        if np.ptp(ratio) > 1e-6 * ratio.mean():
            i = int(np.argmax(np.abs(ratio - ratio[0])))
            return (
                f"not proportional to exp(-d²/2h²): at d={dist[i]:.3g} the weight is {got[i]:.4g}, "
                f"expected {ref[i] * ratio[0]:.4g} (is d squared? divided by 2h²?)"
            )
        return None

    return _run("check_gaussian", fn, [("bandwidth 1", case(1.0), judge),
                                       ("bandwidth 2.5", case(2.5), judge)])


def _shift_reference(points, data, h):
    from clusterlab.engines.numpy_engine import NumpyEngine

    return NumpyEngine().shift(to_numpy(points).astype(np.float64), to_numpy(data).astype(np.float64), h)


def _step_case(seed, m, n, h, torch_args=False, extra=()):
    def make():
        data, _ = _blobs(seed, n=n, k=4, spread=2.0)
        points = data[:m] + np.random.default_rng(seed).normal(scale=0.5, size=(m, 2))
        if torch_args:
            return (_torch(points), _torch(data), h, *extra)
        return (points, data, h, *extra)

    return make


def _step_judge(out, points, data, h, *rest):
    return _close_problem(out, _shift_reference(points, data, h), "new points", rtol=1e-4, atol=1e-3)


def check_meanshift_step(fn):
    """Check ``fn(points (m, d), data (n, d), bandwidth) -> new points (m, d)`` (NumPy).

    One non-blurring step: each point moves to the Gaussian-weighted mean of the data.
    """
    return _run(
        "check_meanshift_step",
        fn,
        [("50 points over 200 data, h=2", _step_case(71, 50, 200, 2.0), _step_judge),
         ("the data themselves, h=4", _step_case(72, 150, 150, 4.0), _step_judge)],
    )


def check_merge(fn):
    """Check ``fn(points (n, d), radius) -> labels (n,)``: converged points merged into modes."""

    rng = np.random.default_rng(81)
    modes = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0], [9.0, 9.0]])
    truth = rng.integers(0, 4, size=200)
    points = modes[truth] + rng.normal(scale=0.01, size=(200, 2))

    def judge(out, points, radius):
        got = to_numpy(out)
        problem = _shape_problem(got, truth.shape, "labels")
        if problem:
            return problem
        pairs = set(zip(got.tolist(), truth.tolist(), strict=True))
        n_got = len(set(got.tolist()))
        if n_got != 4 or len(pairs) != 4:
            return f"found {n_got} clusters, expected 4 (points within {radius} of a mode share its label)"
        return None

    return _run("check_merge", fn, [("four modes", lambda: (points.copy(), 1.0), judge)])


def _torch_step_problem(new, points, data, h):
    """What is wrong with ``new`` as one Gaussian step of ``points`` over ``data`` (a tensor)."""
    if not is_torch(new):
        return f"expected a torch.Tensor, got {type(new).__name__}"
    return _step_judge(new, points, data, h)


#: The smallest (m, n) float32 block, in bytes, whose NumPy allocation check_batched_step
#: judges: tracemalloc also counts Python's own objects (about 80 kB while a batched step
#: runs under the torch watch), so only a block well above that is told apart from them.
NUMPY_BLOCK_MIN = 2**21


def check_batched_step(fn):
    """Check ``fn(points tensor (m, d), data tensor (n, d), bandwidth, batch_size)
    -> new points tensor (m, d)``: one Gaussian step, ``batch_size`` points at a time.

    The new points must equal one non-blurring Gaussian step, and when ``batch_size < m``
    the whole (m, n) block must never exist: no torch operation inside ``fn`` may produce
    a tensor of m * n numbers or more (watched with :func:`_largest_tensor`). Any batched
    solution passes, whatever it builds per batch (a (batch_size, n) block, or even a
    (batch_size, n, d) difference tensor: the cases keep ``batch_size * d`` well below m).
    """
    title = "check_batched_step"

    def case(seed, m, n, h, batch):
        def make():
            data, _ = _blobs(seed, n=n, k=4, spread=2.0)
            rng = np.random.default_rng(seed)
            points = data[rng.integers(0, n, size=m)] + rng.normal(scale=0.5, size=(m, 2))
            return _torch(points), _torch(data), h, batch

        return make

    def call(points, data, h, batch):
        # a first, unwatched run: imports and caches (torch's dispatch machinery, the
        # learner's own) allocate once, and would count as the step's memory
        _largest_tensor(fn, points, data, h, batch)
        info = _traced(_largest_tensor, fn, points, data, h, batch, steps=False)  # NumPy's too
        new, largest = info["out"]
        return new, largest, info["peak"]

    def judge(out, points, data, h, batch):
        new, largest, peak = out
        problem = _torch_step_problem(new, points, data, h)
        if problem:
            return problem
        m, n = points.shape[0], data.shape[0]
        if batch >= m:
            return None  # one batch holds every point: the whole block is the batch
        if largest >= m * n:
            return (
                f"a torch operation made a tensor of {largest:,} numbers, as many as the whole "
                f"(m, n) = ({m}, {n}) block or more: the step was not batched; with "
                f"batch_size={batch} build one ({batch}, {n}) block at a time"
            )
        if 4 * m * n >= NUMPY_BLOCK_MIN and peak >= 4 * m * n:  # clear of Python's own noise
            return (
                f"{peak:,} bytes of NumPy arrays were allocated at once, as much as the whole "
                f"(m, n) = ({m}, {n}) block in float32 or more: the step was not batched; with "
                f"batch_size={batch} build one ({batch}, {n}) block at a time"
            )
        return None

    cases = [
        ("batch_size=1, 160 points over 120 data", case(91, 160, 120, 3.0, 1), judge),
        ("batch_size=7 (the last batch is short)", case(92, 160, 120, 3.0, 7), judge),
        ("batch_size=500 >= 160 points: one batch", case(93, 160, 120, 3.0, 500), judge),
        ("batch_size=16, 400 points over 2,000 data", case(94, 400, 2000, 3.0, 16), judge),
    ]
    return _run(title, call if callable(fn) else fn, cases)


def _torch_calls(fn, *args):
    """Run ``fn(*args)``; return its result and, for every torch function it called (methods
    and operators included, as ``TorchFunctionMode`` sees them), ``(name, input shapes,
    output shapes)``."""
    import torch
    from torch.overrides import TorchFunctionMode
    from torch.utils._pytree import tree_leaves

    def shapes(tree):
        return [tuple(t.shape) for t in tree_leaves(tree) if isinstance(t, torch.Tensor)]

    calls = []

    class Record(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            calls.append((getattr(func, "__name__", str(func)), shapes((args, kwargs)), shapes(out)))
            return out

    with Record():
        out = fn(*args)
    return out, calls


def check_attention_step(fn):
    """Check ``fn(points tensor (m, d), data tensor (n, d), bandwidth) -> new points (m, d)``:
    one Gaussian step written as softmax attention by hand.

    The new points must equal one Gaussian step, and the technique is watched (every torch
    function ``fn`` calls, with the shapes it takes and makes): ``scaled_dot_product_attention``
    must not be called, and the (m, n) logits must come from (d + 1)-wide queries and keys
    (``q @ k.T``, ``einsum``, a broadcast product summed over the last axis: any way). A step
    computed from plain distances (``cdist``, ``||y||^2 - 2 y.x + ||x||^2``) fails.
    """

    def call(points, data, h):
        return _torch_calls(fn, points, data, h)

    def judge(out, points, data, h):
        new, calls = out
        problem = _torch_step_problem(new, points, data, h)
        if problem:
            return problem
        if any("scaled_dot_product_attention" in name for name, _, _ in calls):
            return ("it calls scaled_dot_product_attention: build the queries and keys and "
                    "compute softmax(Q K^T) V yourself")
        m, n, d = points.shape[0], data.shape[0], data.shape[1]
        if not any(any(d + 1 in s for s in ins) and any(m in s and n in s for s in outs)
                   for _, ins, outs in calls):
            return (f"the right step, but no ({m}, {n}) logits from queries and keys of width "
                    f"d + 1 = {d + 1}: queries [y/h, 1], keys [x/h, -||x||^2/2h^2], then "
                    "softmax(Q K^T) V")
        return None

    return _run(
        "check_attention_step",
        call if callable(fn) else fn,
        [("100 points over 300 data, h=3", _step_case(95, 100, 300, 3.0, True), judge),
         ("the data themselves, h=1.5", _step_case(96, 200, 200, 1.5, True), judge)],
    )


# --- notebooks 04 and 05: units and fair timing ---------------------------------------------
# check_unit_free_meanshift: clusters that do not depend on the units of the features;
# check_fair_timer: a timer run against a simulated asynchronous device with its own clock,
# so that what the timer measures is exact and never depends on how busy the machine is.

__all__ += ["check_fair_timer", "check_unit_free_meanshift"]


def check_unit_free_meanshift(fn):
    """Check ``fn(x (n, d), quantile) -> labels (n,)``: mean shift whose clusters do not
    depend on the units of the features.

    Four far-apart blobs, given as they are, with every number multiplied by 1,000 (new
    units for all features), and with one feature alone multiplied or divided by 1,000.
    The labels must split the blobs apart in every case (any numbering). A fixed bandwidth
    fails the second case (it must scale with the data: estimate it from them), and a
    bandwidth estimated on the raw features fails the last two (one bandwidth serves
    every direction: standardise each feature first). Any unit-free solution passes
    (standard scores, min-max or robust scaling; the Gaussian or a flat kernel).
    """
    rng = np.random.default_rng(121)
    modes = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    truth = rng.permutation(np.repeat(np.arange(4), 60))
    blobs = modes[truth] + rng.normal(size=(len(truth), 2))
    quantile = 0.2

    def case(scale):
        def make():
            return blobs * np.asarray(scale), quantile

        return make

    def judge_for(what, hint):
        def judge(out, x, q):
            got = to_numpy(out)
            problem = _shape_problem(got, truth.shape, "labels")
            if problem:
                return problem
            if got.dtype.kind not in "iu":
                return f"labels should be integers, got dtype {got.dtype}"
            n_got = len(set(got.tolist()))
            pairs = set(zip(got.tolist(), truth.tolist(), strict=True))
            if n_got == 4 and len(pairs) == 4:
                return None
            plural = "s" if n_got != 1 else ""
            return f"{what} it finds {n_got} cluster{plural}, not the 4 blobs{hint}"

        return judge

    return _run(
        "check_unit_free_meanshift",
        fn,
        [
            ("four blobs, as given", case([1.0, 1.0]),
             judge_for("on the data as given", "")),
            ("every number x 1000 (new units)", case([1000.0, 1000.0]),
             judge_for("with all the data multiplied by 1000",
                       ": the bandwidth must scale with the data, so estimate it from them "
                       "(cl.estimate_bandwidth(x, quantile=quantile))")),
            ("feature 0 x 1000 (one feature in new units)", case([1000.0, 1.0]),
             judge_for("with feature 0 alone multiplied by 1000",
                       ": one bandwidth serves every direction, so standardise each feature "
                       "first (subtract its mean, divide by its standard deviation)")),
            ("feature 1 / 1000", case([1.0, 0.001]),
             judge_for("with feature 1 alone divided by 1000",
                       ": standardise each feature before choosing the bandwidth")),
        ],
    )


class _SimulatedDevice:
    """An asynchronous device with its own clock, for :func:`check_fair_timer`.

    ``work()`` costs the host ``launch`` seconds (plus ``first`` seconds once, on the first
    call: compilation, caches) and queues ``run`` seconds of device work behind whatever is
    queued; ``sync()`` waits until the queue is empty; ``clock()`` reads the time. Only
    these calls move the clock, so a fair timer measures exactly ``launch + run``.
    """

    def __init__(self, run, launch=1e-5, first=0.5):
        self.run, self.launch, self.first = run, launch, first
        self.now = self.busy_until = 0.0
        self.calls = 0

    def clock(self):
        return self.now

    def sync(self):
        self.now = max(self.now, self.busy_until)

    def work(self):
        self.calls += 1
        self.now += self.launch + (self.first if self.calls == 1 else 0.0)
        self.busy_until = max(self.now, self.busy_until) + self.run


def check_fair_timer(fn):
    """Check ``fn(work, sync, clock, repeat) -> durations``: a fair timer.

    ``work()`` runs the code to time (it may return before the device has finished),
    ``sync()`` waits for the device, ``clock()`` reads the time in seconds (in real use
    ``time.perf_counter``). ``fn`` must return ``repeat`` durations in seconds, one per
    timed call, each the time that call's work really took: the first call (which pays a
    one-off cost, like compilation) is not timed, and the clock is read only after
    ``sync()``, both before (so that earlier queued work is not counted) and after (so that
    the work is). The check runs ``fn`` on a simulated device with its own clock, so the
    answer is exact and does not depend on how busy the machine is.
    """

    def case(run, repeat):
        def make():
            dev = _SimulatedDevice(run)
            return dev.work, dev.sync, dev.clock, repeat

        return make

    def judge(out, work, sync, clock, repeat):
        dev = work.__self__
        if is_torch(out) or hasattr(out, "__len__"):
            got = to_numpy(out)
        else:
            return f"expected a list of {repeat} durations, got {type(out).__name__}"
        if got.ndim != 1 or len(got) != repeat:
            return f"expected {repeat} durations (one per timed call), got shape {got.shape}"
        if got.dtype.kind not in "iuf":
            return f"durations should be numbers of seconds, got dtype {got.dtype}"
        want = dev.launch + dev.run
        if dev.calls < repeat + 1:
            return (
                f"work() was called {dev.calls} times for repeat={repeat}: call it once more, "
                "untimed, first (the warm-up pays the one-off costs)"
            )
        if (got >= dev.first).any():
            return (
                f"a duration of {got.max():.3g} s includes the first call's one-off cost "
                f"({dev.first} s, like compilation): warm up with one untimed call"
            )
        if (got < want * (1 - 1e-6)).any():
            return (
                f"a call measured {got.min():.3g} s, but the device needs {want:.3g} s per call: "
                "the clock was read before the device finished (or another clock was used); "
                "call sync() after work() and read clock() after it"
            )
        if (got > want * (1 + 1e-6)).any():
            return (
                f"a call measured {got.max():.3g} s, but the device needs {want:.3g} s per call: "
                "work queued before the clock started was counted; call sync() before "
                "reading the clock at the start"
            )
        return None

    return _run(
        "check_fair_timer",
        fn,
        [("repeat=3, 10 ms of device work per call", case(0.01, 3), judge),
         ("repeat=5, 2 ms per call", case(0.002, 5), judge)],
    )


# --- notebook 06 (KeOps) ---------------------------------------------------------------
# Both checks use float32 data with d = 2, the shape of the notebook's six blobs, so a
# learner's KeOps formula is compiled once (seconds) and then reused from the cache.

__all__ += ["check_keops_assign", "check_keops_meanshift_step"]


def _keops_watch(fn, *args):
    """Run ``fn(*args)``; return its result, the most elements any torch op produced
    (:func:`_largest_tensor`) and the output shapes of the KeOps reductions it ran.

    Every KeOps reduction, whether written with ``LazyTensor`` or with ``pykeops.torch.Genred``,
    goes through ``Genred.__call__``, which is wrapped for the duration of the call.
    """
    shapes = []
    try:
        from clusterlab.engines.keops_engine import import_keops

        import_keops()  # sets the quiet KEOPS_* variables before pykeops is imported
        from pykeops.torch import Genred
    except ImportError:  # no pykeops: no KeOps reduction can run
        out, largest = _largest_tensor(fn, *args)
        return out, largest, shapes
    original = Genred.__call__

    def counted(self, *a, **kw):
        out = original(self, *a, **kw)
        shapes.append(tuple(getattr(out, "shape", ())))
        return out

    Genred.__call__ = counted
    try:
        out, largest = _largest_tensor(fn, *args)
    finally:
        Genred.__call__ = original
    return out, largest, shapes


def check_keops_assign(fn):
    """Check ``fn(x tensor (n, d), c tensor (k, d)) -> labels tensor (n,)`` computed with KeOps.

    A label is accepted when its float64 distance is the smallest up to rounding (ties may go
    either way). One case sits 10,000 units from the origin, where the expansion
    ``||x||^2 - 2 x.c + ||c||^2`` in float32 loses the digits that ``(x - c)^2`` keeps.
    The technique is checked too: at least one KeOps reduction (a ``LazyTensor`` reduction
    or a ``pykeops.torch.Genred``) must produce one row per point, and no torch operation
    inside ``fn`` may make a tensor of n * k numbers or more (the (n, k) matrix, stored).
    """

    def case(seed, n, k, shift=0.0):
        def make():
            x, _ = _blobs(seed, n=n, k=max(k, 2), spread=3.0)
            c = x[np.random.default_rng(seed).choice(n, size=k, replace=False)]
            c = c + np.random.default_rng(seed + 1).normal(size=c.shape)
            return _torch(x + shift), _torch(c + shift)

        return make

    def call(x, c):
        return _keops_watch(fn, x, c)

    def judge(watched, x, c):
        out, largest, reductions = watched
        if not is_torch(out):
            return f"expected a torch.Tensor, got {type(out).__name__}"
        got = to_numpy(out)
        n = x.shape[0]
        if got.shape == (n, 1):
            return "labels have shape (n, 1), expected (n,): KeOps reductions keep a last axis (.view(-1))"
        problem = _shape_problem(got, (n,), "labels")
        if problem:
            return problem
        if not np.issubdtype(got.dtype, np.integer):
            return f"labels should be integers, got {got.dtype} (.long())"
        xd, cd = to_numpy(x).astype(np.float64), to_numpy(c).astype(np.float64)
        if got.min() < 0 or got.max() >= len(cd):
            return f"labels must lie in 0..{len(cd) - 1}, got {got.min()}..{got.max()}"
        d2 = ((xd[:, None, :] - cd[None, :, :]) ** 2).sum(2)  # (n, k) reference, float64
        best = d2.min(1)
        chosen = d2[np.arange(n), got]
        wrong = np.flatnonzero(chosen > best + 1e-3 * (1.0 + best))
        if len(wrong):
            i = int(wrong[0])
            far = np.abs(xd).max() > 1e3
            hint = (
                " (far from the origin: compute (x - c)^2 directly, or centre first)" if far else ""
            )
            return (
                f"{len(wrong)} of {n} points are not given their nearest centroid; first: point {i}, "
                f"got {got[i]} (squared distance {chosen[i]:.4g}), nearest is {int(d2[i].argmin())} "
                f"({best[i]:.4g})" + hint
            )
        k = len(cd)
        if not any(shape[:1] == (n,) for shape in reductions):
            return (
                "right labels, but no KeOps reduction ran: wrap the points and centroids in "
                "LazyTensor(x[:, None, :]) and LazyTensor(c[None, :, :]) and reduce the symbolic "
                "distances with .argmin(dim=1)"
            )
        if k > 1 and largest >= n * k:
            return (
                f"right labels, but a torch operation made a tensor of {largest:,} numbers "
                f"(n * k = {n * k:,}): the (n, k) distance matrix was stored; let the KeOps "
                "reduction compute the distances instead"
            )
        return None

    if not callable(fn):
        return _run("check_keops_assign", fn, [])
    return _run(
        "check_keops_assign",
        call,
        [
            ("1,000 points, k=13, d=2", case(101, 1000, 13), judge),
            ("k=1", case(102, 200, 1), judge),
            ("10,000 units from the origin", case(103, 1000, 7, shift=1e4), judge),
        ],
    )


def check_keops_meanshift_step(fn):
    """Check ``fn(points tensor, data tensor, bandwidth) -> new points tensor`` (e.g. KeOps).

    One Gaussian mean-shift step, compared with the NumPy engine in float64. The technique
    is checked as in :func:`check_keops_assign`: a KeOps reduction (``LazyTensor`` or
    ``Genred``) must produce one row per point, and no torch operation inside ``fn`` may make
    a tensor of m * n numbers or more (the (points, data) kernel matrix, stored).
    """

    def call(points, data, h):
        return _keops_watch(fn, points, data, h)

    def judge(watched, points, data, h):
        out, largest, reductions = watched
        if not is_torch(out):
            return f"expected a torch.Tensor, got {type(out).__name__}"
        problem = _step_judge(out, points, data, h)
        if problem:
            return problem
        m, n = points.shape[0], data.shape[0]
        if not any(shape[:1] == (m,) for shape in reductions):
            return ("right step, but no KeOps reduction ran: wrap the points and data in "
                    "LazyTensor(points[:, None, :]) and LazyTensor(data[None, :, :]) and reduce the "
                    "symbolic kernel, e.g. with .sumsoftmaxweight(x_j, dim=1)")
        if largest >= m * n:
            return (f"right step, but a torch operation made a tensor of {largest:,} numbers "
                    f"(m * n = {m * n:,}): the kernel matrix was stored; let the KeOps reduction "
                    "compute the weights instead")
        return None

    if not callable(fn):
        return _run("check_keops_meanshift_step", fn, [])
    return _run(
        "check_keops_meanshift_step",
        call,
        [
            ("100 points over 300 data, h=3", _step_case(111, 100, 300, 3.0, True), judge),
            ("the data themselves, h=1.5", _step_case(112, 200, 200, 1.5, True), judge),
        ],
    )


# --- end notebook 06 ---------------------------------------------------------------------


# --- notebook 08 (faiss) -----------------------------------------------------------------
# check_ivf_search compares a one-query IVF search with an explicit reference and with
# clusterlab.compare.ivf_recall; check_full_training trains the learner's faiss.Kmeans
# from known centroids and reads off, from obj[0], how many points faiss really used.

__all__ += ["check_full_training", "check_ivf_search"]


def _ivf_case(seed, nprobe, k_neighbors=10, n=2000, d=4, n_lists=16):
    """Database, its lists, centroids, and a query halfway between two centroids."""

    def make():
        from clusterlab.kmeans import assign, kmeans

        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, d))
        c = kmeans(x, n_lists, max_iter=5, seed=seed, backend="numpy").centroids
        labels = np.asarray(assign(x, c, backend="numpy")[1])
        a, b = rng.choice(n_lists, size=2, replace=False)
        query = (c[a] + c[b]) / 2 + rng.normal(scale=0.05, size=d)
        return x, labels, c, query, nprobe, k_neighbors

    return make


def _ivf_judge(out, x, labels, c, query, nprobe, k_neighbors):
    from clusterlab.compare import ivf_recall

    got = to_numpy(out)
    problem = _shape_problem(got, (k_neighbors,), "ids")
    if problem:
        return problem
    if got.dtype.kind not in "iu":
        return f"ids should be integers (row numbers of x), got dtype {got.dtype}"
    if got.min() < 0 or got.max() >= len(x):
        return f"ids must be row numbers in 0..{len(x) - 1}, got {got.min()}..{got.max()}"
    if len(set(got.tolist())) < k_neighbors:
        return "some ids are repeated"
    probed = np.argsort(((c - query) ** 2).sum(1), kind="stable")[:nprobe]
    outside = [int(i) for i in got if labels[i] not in probed]
    if outside:
        i = outside[0]
        return (
            f"point {i} is in list {labels[i]}, which is not among the {nprobe} lists whose "
            f"centroids are nearest to the query ({sorted(probed.tolist())})"
        )
    dist = ((x - query) ** 2).sum(1)
    cand = np.flatnonzero(np.isin(labels, probed))
    best = np.sort(dist[cand])[:k_neighbors]
    if not np.allclose(np.sort(dist[got]), best, rtol=1e-9, atol=1e-12):
        return "not the nearest scanned points: sort the candidates by distance to the query"
    truth = np.argsort(dist, kind="stable")[:k_neighbors]
    recall = len(set(got.tolist()) & set(truth.tolist())) / k_neighbors
    expected = ivf_recall(x, query[None], c, nprobe_values=[nprobe], k_neighbors=k_neighbors)[0]
    if not np.isclose(recall, expected["recall"]):
        return f"recall {recall:.2f}, but ivf_recall finds {expected['recall']:.2f} for this query"
    return None


def check_ivf_search(fn):
    """Check ``fn(x (n, d), labels (n,), centroids (K, d), query (d,), nprobe, k_neighbors)
    -> ids (k_neighbors,)``: the nearest points of the ``nprobe`` lists nearest the query.

    Each query sits halfway between two centroids, so probing too few lists, or searching
    the whole database, gives other neighbours than the IVF search should.
    """
    return _run(
        "check_ivf_search",
        fn,
        [
            ("nprobe=1", _ivf_case(201, 1), _ivf_judge),
            ("nprobe=3", _ivf_case(202, 3), _ivf_judge),
            ("nprobe=16 (every list), k_neighbors=5", _ivf_case(203, 16, 5), _ivf_judge),
        ],
    )


def check_full_training(fn):
    """Check ``fn(d, k, n) -> faiss.Kmeans`` (untrained) that trains on all ``n`` points.

    The check trains the object on ``n`` points from given initial centroids: faiss's
    ``obj[0]`` is the objective of those centroids on the points it trained on, so it
    equals the objective on all ``n`` points only when nothing was subsampled.
    """

    def case(seed, d, k, n):
        def make():
            return d, k, n

        make.seed = seed
        return make

    def judge(km, d, k, n):
        from clusterlab.compare import capture_c_output
        from clusterlab.kmeans import assign

        if not (hasattr(km, "train") and hasattr(km, "cp")):
            return f"expected a faiss.Kmeans object, got {type(km).__name__}"
        rng = np.random.default_rng(d * 1000 + k)
        x = rng.normal(size=(n, d)).astype(np.float32)
        c0 = x[rng.choice(n, size=k, replace=False)]
        with capture_c_output():  # a configuration faiss warns about must not print here
            km.train(x, init_centroids=c0)
        full = float(np.asarray(assign(x.astype(np.float64), c0.astype(np.float64))[0]).sum())
        obj0 = float(km.obj[0])
        if not np.isclose(obj0, full, rtol=1e-3):
            used = obj0 / (full / n)
            return (
                f"faiss trained on about {used:,.0f} of {n:,} points (obj[0] = {obj0:.6g}, "
                f"but the start's objective on all points is {full:.6g}); "
                "look at max_points_per_centroid"
            )
        return None

    return _run(
        "check_full_training",
        fn,
        [
            ("n=30,000 points, k=20, d=8", case(211, 8, 20, 30_000), judge),
            ("n=12,000 points, k=5, d=4", case(212, 4, 5, 12_000), judge),
        ],
    )


# --- end notebook 08 ---------------------------------------------------------------------


# --- notebooks 06, 08, 09 and 10: the remaining exercises ---------------------------------
# Each is a small function, checked on several cases (the edges of faiss's rules, sizes far
# from the notebook's), so that a memorised number or a shortcut gives another answer.

__all__ += [
    "check_allreduce_bytes",
    "check_best_by_ari",
    "check_converged_at",
    "check_elbow",
    "check_faiss_training",
    "check_fusion_bandwidth",
    "check_keops_or_gemm",
]


def check_keops_or_gemm(fn):
    """Check notebook 06's exercise 3: ``fn() -> four answers``, ``"keops"`` or ``"gemm"``
    for each job, in order.
    """
    jobs = [
        ("keops", "D = 3 and N·K = 5·10¹¹ pairs on a GPU: a GEMM writes and re-reads (N, K) "
         "blocks, KeOps keeps each pair in registers (section 7)"),
        ("gemm", "D = 768 on a CPU: BLAS's blocked multiply-adds win at large D (section 7 at "
         "D = 128 already)"),
        ("keops", "N·N = 10¹² pairs in D = 2 with a softmax-weighted sum: one sumsoftmaxweight "
         "reduction, O(N) memory"),
        ("gemm", "30 different D are 30 compiles of seconds each (section 5), more than the "
         "clustering itself"),
    ]

    def judge(answers):
        if isinstance(answers, str) or not hasattr(answers, "__len__") or len(answers) != 4:
            return f"expected a list of 4 answers, 'keops' or 'gemm' each, got {answers!r}"
        wrong = []
        for i, (a, (want, why)) in enumerate(zip(answers, jobs, strict=True), 1):
            if not isinstance(a, str) or a.strip().lower() not in ("keops", "gemm"):
                return f"job {i}: answer 'keops' or 'gemm', got {a!r}"
            if a.strip().lower() != want:
                wrong.append(f"job {i} is {want}: {why}")
        return "; ".join(wrong) or None

    return _run("check_keops_or_gemm", fn, [("four jobs", tuple, judge)])


def check_faiss_training(fn):
    """Check ``fn(n, k) -> (points, warns)`` for ``faiss.Kmeans(d, k)`` with default
    parameters trained on ``n`` points: how many points it clusters, and whether it prints
    its "please provide at least" warning.

    faiss (``Clustering.cpp``) warns when ``n < k * min_points_per_centroid`` (39) and
    subsamples to ``k * max_points_per_centroid`` (256) points when ``n`` is larger; the
    cases sit on both sides of each edge.
    """

    def case(n, k):
        return lambda: (n, k)

    def judge(out, n, k):
        try:
            points, warns = out
        except (TypeError, ValueError):
            return f"expected a pair (points, warns), got {out!r}"
        want_points, want_warns = min(n, 256 * k), n < 39 * k
        problems = []
        if points != want_points:
            rule = (f"more than 256 · k = {256 * k:,} points: faiss trains on a random 256 · k"
                    if n > 256 * k else f"{n:,} ≤ 256 · k = {256 * k:,}: faiss uses every point")
            problems.append(f"points {points!r}, expected {want_points:,} ({rule})")
        if not isinstance(warns, (bool, np.bool_)):
            problems.append(f"warns should be True or False, got {warns!r}")
        elif bool(warns) != want_warns:
            problems.append(f"warns {bool(warns)}, expected {want_warns} (faiss warns when "
                            f"n < 39 · k = {39 * k:,})")
        return "; ".join(problems) or None

    return _run(
        "check_faiss_training",
        fn,
        [(f"n={n:,}, k={k:,}", case(n, k), judge)
         for n, k in ((1_000_000, 1000), (30_000, 1000), (5_120, 20), (5_121, 20), (780, 20),
                      (779, 20))],
    )


def check_allreduce_bytes(fn):
    """Check ``fn(n, d, k) -> (allreduce_bytes, labels_bytes)``: per iteration of sharded
    k-means, the bytes each rank puts into the all-reduce (float32 (k, d) sums and (k,)
    counts), and the bytes that would reach rank 0 if every int64 label were gathered
    there instead.
    """

    def case(n, d, k):
        return lambda: (n, d, k)

    def judge(out, n, d, k):
        try:
            sent, gathered = out
        except (TypeError, ValueError):
            return f"expected a pair (allreduce_bytes, labels_bytes), got {out!r}"
        problems = []
        if sent != (k * d + k) * 4:
            why = " (the counts too: k more numbers)" if sent == k * d * 4 else ""
            why += " (it does not grow with n: labels never travel)" if sent > 8 * k * (d + 1) else ""
            problems.append(f"allreduce_bytes {sent!r}, expected {(k * d + k) * 4:,}: (k, d) sums "
                            f"and (k,) counts, 4 bytes each{why}")
        if gathered != n * 8:
            problems.append(f"labels_bytes {gathered!r}, expected {n * 8:,}: one 8-byte label per point")
        return "; ".join(problems) or None

    return _run(
        "check_allreduce_bytes",
        fn,
        [(f"n={n:,}, d={d}, k={k:,}", case(n, d, k), judge)
         for n, d, k in ((10**9, 128, 1000), (10**6, 2, 10), (5_000, 3, 7))],
    )


def _kneedle(ks, inertias):
    ks, j = np.asarray(ks, dtype=np.float64), np.asarray(inertias, dtype=np.float64)
    k_norm = (ks - ks[0]) / (ks[-1] - ks[0])
    j_norm = (j - j[-1]) / (j[0] - j[-1])
    return int(ks[np.argmax(np.abs(k_norm + j_norm - 1))])


def check_elbow(fn):
    """Check ``fn(ks (m,), inertias (m,)) -> k``: the elbow, the point of the curve farthest
    from the chord joining its first and last points (the kneedle idea).

    Scaling either axis scales every distance to the chord by the same factor, so the answer
    does not depend on the units; one curve bends smoothly, where the largest change of
    slope (the largest second difference) is another k.
    """

    def curve(bend, scale, start=1):
        def make():
            k = np.arange(start, 16)
            j = np.maximum(bend - k, 0) * 4.0 + 10.0 / k + 1.0 if bend else 1.0 / k
            return k, scale * j

        return make

    def judge(out, ks, j):
        if isinstance(out, (bool, np.bool_)) or not isinstance(out, (int, np.integer, float)):
            return f"expected one k, got {type(out).__name__}"
        want = _kneedle(ks, j)
        if out == want:
            return None
        steepest_turn = int(ks[1:-1][np.argmax(np.diff(j, 2))])
        if out == steepest_turn:
            return (f"got k = {out}, the largest change of slope; expected {want}, the point "
                    "farthest from the chord joining the first and last points")
        return (f"got k = {out}, expected {want} (the point farthest from the chord joining the "
                "first and last points of the curve)")

    return _run(
        "check_elbow",
        fn,
        [("a sharp bend at k = 5", curve(5, 1.0), judge),
         ("a smooth curve, inertias in the millions", curve(0, 3e6), judge),
         ("ks from 2, a bend at k = 7", curve(7, 50.0, start=2), judge)],
    )


def check_fusion_bandwidth(fn):
    """Check ``fn(d, variance) -> h``: the bandwidth above which two equal isotropic Gaussian
    blobs (``variance`` per axis) whose centres are ``d`` apart fuse into one mean-shift mode.

    Smoothing a blob of variance v with a Gaussian kernel of width h gives a Gaussian of
    variance h² + v; two equal Gaussians d apart have two peaks while d > 2σ. Blobs already
    that close (d/2 ≤ √v) have one mode at any h: the answer is 0.
    """

    def case(d, v):
        return lambda: (d, v)

    def judge(out, d, v):
        try:
            got = float(out)
        except (TypeError, ValueError):
            return f"expected one number, got {type(out).__name__}"
        want = float(np.sqrt(max((d / 2) ** 2 - v, 0.0)))
        if np.isclose(got, want, rtol=1e-6, atol=1e-9):
            return None
        if np.isclose(got, d / 2):
            return (f"got {got:.4g}, expected {want:.4g}: the blob's own spread adds to the "
                    "kernel's (σ² = h² + variance)")
        if np.isclose(got, np.sqrt((d / 2) ** 2 + v)):
            return f"got {got:.4g}, expected {want:.4g}: the variances add, so h² = σ² − variance"
        if np.isnan(got):
            return "got NaN: when d/2 ≤ √variance the blobs are one mode already — answer 0"
        return (f"got {got:.4g}, expected {want:.4g} for d = {d}, variance = {v} (two peaks while "
                "d > 2σ, σ² = h² + variance)")

    return _run(
        "check_fusion_bandwidth",
        fn,
        [("d = 15.1, variance 5 (the six blobs)", case(15.1, 5.0), judge),
         ("d = 10, variance 1", case(10.0, 1.0), judge),
         ("d = 4, variance 5 (already one mode)", case(4.0, 5.0), judge)],
    )


def _ari_cases():
    """(y_true, {name: labels}) cases where accuracy or purity pick another candidate."""
    rng = np.random.default_rng(301)
    y = np.repeat([0, 1], 200)
    swapped = 1 - y  # a perfect match, with the two names exchanged
    noisy = y.copy()
    flip = rng.choice(len(y), size=60, replace=False)
    noisy[flip] = 1 - noisy[flip]  # 85 % right, names as in y
    split = y * 50 + rng.integers(0, 50, size=len(y))  # 100 tiny pure clusters
    rough = y.copy()
    flip = rng.choice(len(y), size=40, replace=False)
    rough[flip] = 1 - rough[flip]  # 90 % right
    one = np.zeros_like(y)
    return [
        ("names swapped", y, {"h=0.2": noisy, "h=0.4": swapped, "h=0.8": one}),
        ("tiny pure clusters", y, {"h=0.05": split, "h=0.3": rough, "h=1.0": one}),
    ]


def check_best_by_ari(fn):
    """Check ``fn(y_true (n,), candidates {setting: labels (n,)}) -> setting``: the setting
    whose labels match the truth best by the adjusted Rand index.

    The cases are built so that shortcuts pick another setting: the fraction of labels equal
    to the truth (cluster names are arbitrary) and the purity (many tiny clusters are pure).
    """
    from sklearn.metrics import adjusted_rand_score

    def judge(out, y, cands):
        if out not in cands:
            return f"expected one of the settings {sorted(cands)}, got {out!r}"
        score = {name: adjusted_rand_score(y, lab) for name, lab in cands.items()}
        want = max(score, key=score.get)
        if out == want:
            return None
        acc = {name: float((lab == y).mean()) for name, lab in cands.items()}
        if out == max(acc, key=acc.get):
            return (f"got {out!r} (most labels equal to the truth), expected {want!r}: cluster "
                    "names are arbitrary — 0 may be the truth's 1; the ARI compares groupings, "
                    "not names")
        return (f"got {out!r} (ARI {score[out]:.2f}), expected {want!r} (ARI {score[want]:.2f}): "
                "score every setting with adjusted_rand_score(y_true, labels)")

    return _run(
        "check_best_by_ari",
        fn,
        [(name, (lambda y=y, c=c: (y, c)), judge) for name, y, c in _ari_cases()],
    )


def check_converged_at(fn):
    """Check ``fn(res) -> int or None``: for a ``cl.kmeans`` result, the number of updates
    after which the next update moved no centroid (``history[t]["shift"] == 0``), or None
    when every update moved something.
    """
    from clusterlab.data import make_six_blobs
    from clusterlab.kmeans import kmeans

    x, _, _ = make_six_blobs(seed=0)

    def case(init, seed, max_iter):
        def make():
            return (kmeans(x, 6, init=init, max_iter=max_iter, tol=0, seed=seed, backend="numpy"),)

        return make

    def judge(out, res):
        shifts = [row["shift"] for row in res.history]
        want = next((t for t, s in enumerate(shifts) if s == 0), None)
        if out is None and want is None:
            return None
        if out is None or want is None:
            return f"got {out!r}, expected {want!r} (shifts per update: {np.round(shifts, 3).tolist()})"
        if out == want:
            return None
        if out == want + 1:
            return (f"got {out}, expected {want}: history[t] is update t + 1; the count is the "
                    "updates *before* the first that moves nothing")
        return f"got {out!r}, expected {want} (read res.history[t]['shift'])"

    return _run(
        "check_converged_at",
        fn,
        [("random start, seed 0", case("random", 0, 30), judge),
         ("k-means++, seed 1", case("k-means++", 1, 30), judge),
         ("random start, stopped after 2 updates", case("random", 0, 2), judge)],
    )


# --------------------------------------------------------------------------------------
# fused kernels (notebook 07)
# --------------------------------------------------------------------------------------


def _largest_tensor(fn, *args):
    """Run ``fn(*args)``; return its result and the most elements any torch op produced."""
    seen = _torch_watched(fn, *args)
    return seen.out, seen.largest


def _torch_watched(fn, *args):
    """Run ``fn(*args)`` under a ``TorchDispatchMode`` that sees every torch operation.

    Returns a namespace: ``out`` (the result), ``ops`` (the number of torch operations
    dispatched) and ``largest`` (the most elements any of them produced).
    """
    from types import SimpleNamespace

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    seen = SimpleNamespace(out=None, ops=0, largest=0)

    class Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            seen.ops += 1
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    seen.largest = max(seen.largest, t.numel())
            return out

    with Watch():
        seen.out = fn(*args)
    return seen


def check_memory_bound(fn, ridge):
    """Check ``fn(k, d, stored) -> bool``: is that assignment memory-bound under ``ridge``?

    The roofline model of notebook 07: one assignment of a point does ``2 k d`` flops and
    moves ``4 d`` bytes of the point plus, when the (n, k) matrix is ``stored``, ``8 k``
    (each float32 distance written and read back), else ``12`` (a float32 distance and an
    int64 label). It is memory-bound when flops per byte fall below ``ridge`` (the device's
    flops / bandwidth). Cases sit on both sides of the ridge and right next to it, so a rule
    of thumb (small D, small K) that skips the roofline fails.
    """
    try:
        ridge = float(ridge)
    except (TypeError, ValueError):
        print(f"✗ check_memory_bound: ridge must be a number (flops per byte), got {ridge!r}")
        return False
    if not np.isfinite(ridge) or ridge <= 0:
        print(f"✗ check_memory_bound: ridge must be a finite number > 0, got {ridge!r}")
        return False

    def intensity(k, d, stored):
        return 2 * k * d / ((8 * k if stored else 12) + 4 * d)

    def near(stored, above):
        # the smallest (k = 1000) d on the requested side of the ridge, and its neighbour
        ds = [d for d in range(1, 1 << 16) if (intensity(1000, d, stored) >= ridge) == above]
        return (1000, min(ds) if above else max(ds), stored) if ds else (1000, 2, stored)

    grid = [(k, d, s) for k in (10, 1000, 50_000) for d in (2, 64, 512) for s in (True, False)]
    grid += [near(s, a) for s in (True, False) for a in (True, False)]

    def judge(out, *args):
        answers, = out
        wrong = [(k, d, s) for (k, d, s), a in zip(grid, answers, strict=True)
                 if bool(a) != (intensity(k, d, s) < ridge)]
        if wrong:
            k, d, s = wrong[0]
            side = "memory" if intensity(k, d, s) < ridge else "compute"
            return (f"{len(wrong)} of {len(grid)} cases wrong, e.g. K={k}, D={d}, "
                    f"{'stored' if s else 'fused'}: intensity {intensity(k, d, s):.1f} flop/byte "
                    f"against a ridge of {ridge:.1f}, so {side}-bound (compare flops per byte "
                    "with the ridge)")
        return None

    def call():
        return ([fn(k, d, s) for k, d, s in grid],)

    return _run("check_memory_bound", lambda: call(),
                [(f"{len(grid)} (K, D, stored) cases around a ridge of {ridge:.0f} flop/byte",
                  tuple, judge)])


def check_fused_assign(fn, metric="euclidean"):
    """Check ``fn(x (n, d), c (k, d)) -> labels (n,)`` computed without storing (n, k).

    The labels must equal the nearest centroids (``metric="cosine"``: the largest cosine
    of unit rows), and no torch operation inside ``fn`` may produce a tensor of n * k
    numbers or more: the point of the exercise is a kernel that keeps the distances in
    registers. Data are torch float32 tensors on the GPU when there is one (else on the
    CPU, for Triton's interpreter).
    """
    import torch

    dev = "cuda" if torch.cuda.is_available() else "cpu"

    def case(seed, n, k, d):
        def make():
            gen = torch.Generator().manual_seed(seed)
            x, c = torch.randn(n, d, generator=gen), torch.randn(k, d, generator=gen)
            if metric == "cosine":
                x = x / x.norm(dim=1, keepdim=True)
                c = c / c.norm(dim=1, keepdim=True)
            return x.to(dev), c.to(dev)

        return make

    def call(x, c):
        return _largest_tensor(fn, x, c)

    def judge(out, x, c):
        labels, largest = out
        g = x.double() @ c.double().T  # (n, k) reference, outside the learner's function
        ref = g.argmax(1) if metric == "cosine" else ((c.double() ** 2).sum(1) - 2 * g).argmin(1)
        problem = _labels_problem(labels, ref.cpu().numpy())
        if problem:
            return problem
        n, k = x.shape[0], c.shape[0]
        if largest >= n * k:
            return (f"a torch operation made a tensor of {largest:,} numbers (n * k = {n * k:,}): "
                    "the (n, k) matrix was stored; keep the distances in the kernel's registers")
        return None

    return _run(
        f"check_fused_assign ({metric})",
        call,
        [("n=300, k=64, d=4", case(21, 300, 64, 4), judge),
         ("n=333, k=100, d=3 (tiles not full)", case(22, 333, 100, 3), judge)],
    )
