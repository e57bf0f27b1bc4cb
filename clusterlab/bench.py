"""``python -m clusterlab.bench``: k-means and mean shift, every engine, one process.

Fairness rules, for every row of a table:

* the same float32 data and the same initial centroids (k-means++, seeded);
* a fixed number of iterations, early stopping off (``tol=0``; faiss with subsampling
  off; each peer's own stop switched off);
* one warm-up call first (its time, which holds any compile, is reported apart as
  ``first``), then the median of ``--repeat`` calls, the device synchronised around each;
* the k-means objective of every result computed the same way, by clusterlab from the
  returned centroids (:func:`clusterlab.compare.same_yardstick`: float64, all points).

Engines: clusterlab's ``torch``, ``numpy``, ``keops`` and ``triton`` (CUDA only), the
teaching ``loop`` (mean shift), and the peers ``faiss``, ``faiss+labels``, ``sklearn``
and, where installed, ``flash-kmeans`` (Triton, CUDA only), ``fast-pytorch-kmeans`` and
``faiss-gpu`` (a GPU build of faiss). An engine that cannot run here is skipped with a
one-line reason (what to install, or the device it needs), printed and kept in the JSON.

``--precision`` (``highest``, ``high``, ``medium``) is passed to clusterlab (only when
not ``highest``) and chooses flash-kmeans's input: float32 for ``high`` (its products
are TF32, like clusterlab's ``high``), fp16 for ``medium``; with ``highest`` flash-kmeans
still gets float32 and multiplies in TF32, and its row says so (not like-for-like).
Every row has a ``precision`` column; what is not like-for-like is noted under its table.

``--background-load N`` times everything with N busy-loop processes running beside it
(the machine of a shared server or a busy laptop); the JSON and the table say so, and
every run records how busy the CPUs were (this process, the background load, the rest).

It prints a table of medians and ratios (to clusterlab's default engine) with the device
and library versions, and writes JSON and a PNG plot. A run at the default sizes, with
every engine, default iterations, ``--precision highest`` and no background load is a
*course record*: it goes to ``data/benchmarks/``, and the notebooks show the latest one
(:func:`recorded`). Any other run (``--quick``, other sizes, ...) goes to
``data/cache/benchmarks/`` unless ``--out`` says where, and is never shown as the
course's record unless named (``recorded(name=...)``).

Examples
--------
``python -m clusterlab.bench --quick`` (a minute on a laptop CPU)

``python -m clusterlab.bench --kmeans 100000,64,256 --repeat 5 --threads 2``

``python -m clusterlab.bench --kmeans 100000,2,50 --background-load 2`` (two busy processes)

``python -m clusterlab.bench --kmeans 1000000,128,1000 --precision high`` (on a GPU)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import math
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

#: (n, d, k) of the k-means table: the CPU targets, and the GPU reference problems.
KMEANS_CPU = [(100_000, 2, 50), (100_000, 64, 256), (200_000, 128, 1000)]
KMEANS_GPU = [(10_000, 2, 50), (100_000, 64, 256), (1_000_000, 100, 1000)]
KMEANS_QUICK = [(20_000, 2, 50), (20_000, 32, 64)]
#: (n points, bandwidth) of the mean-shift table (six blobs, scaled to n).
MEANSHIFT_CPU = [(1_500, 2.5), (6_000, 2.5)]
MEANSHIFT_GPU = [(1_500, 2.5), (100_002, 2.5)]
MEANSHIFT_QUICK = [(1_500, 2.5)]
#: KeOps on a CPU at high dimension takes minutes per call (notebook 06 shows why).
KEOPS_CPU_MAX_D = 16
#: The NumPy loop rung and scikit-learn's MeanShift only run on sizes they finish.
LOOP_MAX_N = 3_000
SKLEARN_MEANSHIFT_MAX_N = 20_000
KMEANS_ENGINES = ("torch", "numpy", "keops", "triton", "faiss", "faiss+labels", "sklearn",
                  "faiss-gpu", "flash-kmeans", "fast-pytorch-kmeans")
#: "flat" is clusterlab's flat kernel (torch engine) at the radius scikit-learn's row uses.
MEANSHIFT_ENGINES = ("torch", "numpy", "keops", "triton", "loop", "flat", "sklearn")
#: Engines that are other libraries, named as they are (the rest are ``clusterlab-<name>``).
PEER_ENGINES = ("faiss", "faiss+labels", "sklearn", "faiss-gpu", "flash-kmeans",
                "fast-pytorch-kmeans")
#: The optional peers whose absence is a skipped row (see compare.peer_unavailable).
OPTIONAL_PEERS = ("faiss-gpu", "flash-kmeans", "fast-pytorch-kmeans")
PRECISIONS = ("highest", "high", "medium")
#: Where course records go (the notebooks show the latest), and every other run.
RECORD_DIR = "data/benchmarks"
SCRATCH_DIR = "data/cache/benchmarks"
DEFAULT_ITERS, DEFAULT_STEPS = 10, 5


def versions() -> dict:
    """Versions of Python and of every library the benchmark may use."""
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for mod, name in (("torch", "torch"), ("numba", "numba"), ("sklearn", "scikit-learn"),
                      ("faiss", "faiss"), ("pykeops", "pykeops"), ("clusterlab", "clusterlab")):
        try:
            out[name] = __import__(mod).__version__
        except Exception:  # not installed, or fails to import: say so
            out[name] = None
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("triton", "flash-kmeans", "fast-pytorch-kmeans"):  # without importing them
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def _meta(device) -> dict:
    import torch

    from clusterlab.device import device_name

    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "device": device_name(device),
        "device_type": device.type,
        "cpu": device_name("cpu"),
        "torch_threads": torch.get_num_threads(),
        "versions": versions(),
        "command": " ".join(["python -m clusterlab.bench", *sys.argv[1:]]),
    }


# --------------------------------------------------------------------------------------
# k-means
# --------------------------------------------------------------------------------------


def bench_kmeans(n, d, k, *, engines, niter=10, repeat=3, device=None, seed=0,
                 precision="highest", skipped=None):
    """One k-means table: every engine on the same data and initial centroids.

    Returns a list of row dicts (see :func:`clusterlab.compare.run_comparison`) with an
    ``engine`` name such as ``"clusterlab-torch"`` or ``"flash-kmeans"`` and ``ratio`` =
    seconds / seconds of clusterlab's default engine (torch). ``precision`` goes to
    ``run_comparison``. An optional peer that fails on this table is left out and, when
    ``skipped`` is a list, recorded there as ``{"engine", "reason", "table"}``.
    """
    from clusterlab.compare import run_comparison
    from clusterlab.data import make_gaussian_cloud

    x = make_gaussian_cloud(n, d, seed=seed)
    names = [e if e in PEER_ENGINES else f"clusterlab-{e}" for e in engines]
    failed = {}
    # one call: every engine is timed in the same rounds (see timeit_interleaved)
    rows = run_comparison(x, k, niter=niter, seed=seed, repeat=repeat, engines=names, device=device,
                          precision=precision, skipped=failed)
    for name, reason in failed.items():
        if skipped is not None:
            skipped.append({"engine": name, "reason": reason, "table": f"k-means n={n:,} d={d} k={k}"})
    _ratios(rows, "clusterlab-torch")
    for r in rows:
        r.pop("centroids", None)
        r["times"] = list(r["times"])
        if r["reported_inertia"] != r["reported_inertia"]:  # NaN: the library reports none
            r["reported_inertia"] = None
    return rows


def _ratios(rows, baseline):
    if not rows:
        return
    base = next((r["seconds"] for r in rows if r["engine"] == baseline), None)
    if base is None:
        base = min(r["seconds"] for r in rows)
    for r in rows:
        r["ratio"] = r["seconds"] / base


# --------------------------------------------------------------------------------------
# mean shift
# --------------------------------------------------------------------------------------


def bench_meanshift(n, bandwidth, *, engines, niter=5, repeat=3, device=None, seed=0,
                    precision="highest"):
    """One mean-shift table: ``niter`` non-blurring steps (``tol=0``) per engine.

    scikit-learn's ``MeanShift`` uses a flat kernel, so it runs at the flat radius with
    the spread of the Gaussian of bandwidth ``h`` (:func:`flat_radius`, as notebook 04
    teaches: ``2 h`` in 2-D), not at radius ``h``, which would see only each blob's core.
    It stops each seed at its own convergence (``max_iter=niter``), so its row compares
    time *and* the clusters found; the "flat" row is clusterlab's flat kernel at the same
    radius for ``niter`` steps, the same algorithm as scikit-learn's.
    clusterlab's engines get ``precision=`` when it is not ``"highest"``.
    """
    import torch

    import clusterlab as cl
    from clusterlab import ladder
    from clusterlab.compare import engine_precision
    from clusterlab.device import device_name, timeit_interleaved

    per_blob = max(1, n // 6)
    x, _, _ = cl.data.make_six_blobs(per_blob, seed=seed)
    radius = flat_radius(bandwidth, x.shape[1])
    fns, where, results, precs = {}, {}, {}, {}
    for eng in engines:
        if eng == "loop" and len(x) > LOOP_MAX_N:
            continue
        if eng == "sklearn" and len(x) > SKLEARN_MEANSHIFT_MAX_N:
            continue
        if eng in ("torch", "keops", "triton", "flat"):
            xt = torch.as_tensor(x, device=device)
            backend = "torch" if eng == "flat" else eng
            precs[eng] = engine_precision(backend, xt, precision)
            kw = {} if precs[eng][0] == "highest" else {"precision": precs[eng][0]}
            if eng == "flat":
                kw.update(kernel="flat")

            def fn(xt=xt, eng=eng, kw=kw, backend=backend, h=radius if eng == "flat" else bandwidth):
                results[eng] = cl.meanshift(xt, h, max_iter=niter, tol=0, backend=backend, **kw)

            fns[eng], where[eng] = (fn, device), device_name(device)
            continue
        if eng == "numpy":
            precs[eng] = engine_precision("numpy", x, precision)
            kw = {} if precs[eng][0] == "highest" else {"precision": precs[eng][0]}

            def fn(kw=kw):
                results["numpy"] = cl.meanshift(x, bandwidth, max_iter=niter, tol=0, backend="numpy",
                                                **kw)

        elif eng == "loop":

            def fn():
                pts = ladder.meanshift_loop_numpy(x, bandwidth, niter)
                results["loop"] = cl.meanshift(pts, bandwidth, max_iter=0)  # merge only

        else:
            from sklearn.cluster import MeanShift

            def fn():
                results["sklearn"] = MeanShift(bandwidth=radius, max_iter=niter).fit(x)

        fns[eng], where[eng] = (fn, None), device_name("cpu")
    timings = timeit_interleaved(fns, repeat=repeat, warmup=1)  # the same rounds for all
    rows = []
    for eng, timing in timings.items():
        res = results[eng]
        n_clusters = len(res.cluster_centers_) if eng == "sklearn" else len(res.centers)
        flat = eng in ("sklearn", "flat")
        rows.append({
            "engine": {"sklearn": "sklearn-meanshift (flat)", "loop": "numpy-loop",
                       "flat": "clusterlab-torch (flat)"}.get(eng, f"clusterlab-{eng}"),
            "device": where[eng], "n": len(x), "d": 2, "bandwidth": bandwidth, "niter": niter,
            "kernel": "flat" if flat else "gaussian", "flat_radius": radius,
            "seconds": timing.median, "times": list(timing.times), "first": timing.first,
            "n_clusters": int(n_clusters),
            "precision": precs[eng][0] if eng in precs else str(x.dtype),
            "note": precs[eng][1] if eng in precs else "",
        })
    _ratios(rows, "clusterlab-torch")
    return rows


def flat_radius(bandwidth, d):
    """The flat window's radius with the spread of a Gaussian of width ``bandwidth``.

    Points uniform in a ``d``-ball of radius ``r`` have a standard deviation of
    ``r / sqrt(d + 2)`` along each axis, so ``r = bandwidth * sqrt(d + 2)`` (``2 h`` in 2-D).
    """
    return float(bandwidth) * float(np.sqrt(d + 2))


# --------------------------------------------------------------------------------------
# memory (each in its own process, so that the peak resident memory is its own)
# --------------------------------------------------------------------------------------

_PEAK = """
def peak_rss_bytes():
    # VmHWM starts afresh with each exec; ru_maxrss would carry the parent's peak over
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
"""

_MEMORY_KMEANS = _PEAK + """
import json, time, numpy as np, clusterlab as cl
x = cl.data.make_gaussian_cloud(5_000_000, 8, seed=0)
t = time.perf_counter()
res = cl.kmeans(x, 1000, init="random", max_iter={niter}, tol=0, seed=0)
print(json.dumps({{"what": "k-means 5,000,000 x 8, K=1000, {niter} iteration(s)",
  "seconds": time.perf_counter() - t,
  "peak_rss_bytes": peak_rss_bytes()}}))
"""

_MEMORY_MEANSHIFT = _PEAK + """
import json, time, torch, numpy as np, clusterlab as cl
from clusterlab.engines import get_engine
x = cl.data.make_gaussian_cloud(1_000_000, 2, seed=0)
eng = get_engine("auto", torch.as_tensor(x, device="{device}"))
xe = eng.from_input(torch.as_tensor(x, device="{device}"))
q = {queries}
t = time.perf_counter()
y = eng.shift(xe[:q], xe, 0.1)
eng.scalars(y.sum())
print(json.dumps({{"what": f"mean shift step, {{q:,}} of 1,000,000 points in 2-D over all 1,000,000",
  "seconds": time.perf_counter() - t,
  "peak_rss_bytes": peak_rss_bytes()}}))
"""


def bench_memory(device, *, niter=1):
    """Peak resident memory of the two big runs, each in a fresh subprocess."""
    on_gpu = device.type == "cuda"
    rows = []
    for code in (
        _MEMORY_KMEANS.format(niter=niter),
        _MEMORY_MEANSHIFT.format(device=device.type, queries=1_000_000 if on_gpu else 20_000),
    ):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if out.returncode != 0:
            rows.append({"what": "failed", "error": out.stderr[-2000:]})
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


# --------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------


def format_tables(result) -> str:
    """Markdown tables of a benchmark result (what the command prints)."""
    from clusterlab.device import format_seconds

    m = result["meta"]
    lines = [f"device: {m['device']}   cpu: {m['cpu']}   torch threads: {m['torch_threads']}",
             "versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v),
             f"date: {m['date']}" + (f"   precision: {m['precision']}" if "precision" in m else "")]
    lines += _load_lines(m)
    if m.get("course_record") is False:
        lines.append("not a course record: " + ", ".join(m.get("not_course_record_because", [])))
    for sk in result.get("skipped", []):
        lines.append(f"skipped {sk['engine']}" + (f" ({sk['table']})" if sk.get("table") else "")
                     + f": {sk['reason']}")
    lines.append("")
    parts = [
        ("kmeans", "inertia", lambda r: f"{r['inertia']:.6g}",
         lambda r: f"k-means  n={r['n']:,} d={r['d']} k={r['k']}, {r['niter']} iterations, same init"),
        ("meanshift", "clusters", lambda r: str(r["n_clusters"]),
         lambda r: f"mean shift  n={r['n']:,} d=2 h={r['bandwidth']}, {r['niter']} steps"
         + (f"; flat kernels at radius {r['flat_radius']:g} (the Gaussian's spread)"
            if r.get("flat_radius") else "")),
    ]
    for kind, last, cell, title in parts:
        for table in result.get(kind, []):
            if not table:
                continue
            lines.append(title(table[0]) + "; ratio = time / clusterlab-torch")
            lines.append(f"| engine | device | precision | median | first call | ratio | {last} |")
            lines.append("|---|---|---|---|---|---|---|")
            for r in table:
                lines.append(f"| {r['engine']} | {r['device']} | {r.get('precision', '')} | "
                             f"{format_seconds(r['seconds'])} | "
                             f"{format_seconds(r['first'])} | {r['ratio']:.2f} | {cell(r)} |")
            lines += [f"note, {r['engine']}: {r['note']}" for r in table if r.get("note")]
            lines.append("")
    for r in result.get("memory", []):
        if "error" in r:
            lines.append(f"memory run failed: {r['error'][-300:]}")
        else:
            lines.append(f"memory: {r['what']}: {format_seconds(r['seconds'])}, "
                         f"peak RSS {r['peak_rss_bytes'] / 2**30:.2f} GiB")
    return "\n".join(lines)


def _load_lines(meta) -> list:
    """The lines of the table header that say how busy the machine was."""
    out = []
    if meta.get("background_load"):
        out.append(f"background load: {meta['background_load']} busy-loop processes "
                   "(python -c 'while True: pass') during the timings")
    ld = meta.get("load") or {}
    if ld.get("other_busy_cpus") is not None:
        avg = ""
        if ld.get("loadavg_start") and ld.get("loadavg_end"):
            avg = f"; load average {ld['loadavg_start'][0]:.2f} -> {ld['loadavg_end'][0]:.2f}"
        out.append(f"CPUs busy during the run (of {ld['cpus']}): this process {ld['own_busy_cpus']:.2f}, "
                   f"background load {ld['background_busy_cpus']:.2f}, "
                   f"other processes {ld['other_busy_cpus']:.2f}{avg}")
    return out


def plot_result(result, path):
    """One bar chart per table (time and ratio on each bar), saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from clusterlab.plotting import plot_timings

    tables = [("k-means", t) for t in result.get("kmeans", []) if t]
    tables += [("mean shift", t) for t in result.get("meanshift", []) if t]
    if not tables:
        return None
    fig, axes = plt.subplots(len(tables), 1, figsize=(8, 2.2 * len(tables) + 0.6), squeeze=False)
    for ax, (kind, t) in zip(axes[:, 0], tables, strict=True):
        r0 = t[0]
        size = f"n={r0['n']:,} d={r0['d']}" + (f" k={r0['k']}" if "k" in r0 else "")
        names = [r["engine"] for r in t]
        base = "clusterlab-torch" if "clusterlab-torch" in names else None
        plot_timings(names, [r["seconds"] for r in t], baseline=base, ax=ax,
                     title=f"{kind}, {size}")
    fig.suptitle(f"{result['meta']['device']} — {result['meta']['date'][:10]}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def recorded(kind=None, *, folder=None, prefer="cuda", name=None, engines=None):
    """The latest course record in ``data/benchmarks/`` (or the one named), as printable tables.

    A course record is a run at the default sizes with every engine, the default
    iterations, ``--precision highest`` and no background load (the JSON says so in
    ``meta["course_record"]``); smoke runs (``--quick``) and other runs written to the
    same folder are passed over unless named.

    Parameters
    ----------
    kind : {None, "kmeans", "meanshift", "memory"}
        Keep only that part of the record (all parts when None).
    folder : path, optional
        Where the JSON files are (default: the repository's ``data/benchmarks``).
    prefer : {"cuda", "cpu"}
        The device type looked for first; the latest record of the other type is the
        fallback.
    name : str, optional
        The file name (in ``folder``) of the record to show, course record or not;
        ``prefer`` is then not used.
    engines : sequence of str, optional
        Only the rows of these engines (names as in the tables' first column, e.g.
        ``("clusterlab-torch", "faiss")``): what a lesson compares. A table left with fewer
        than two of them (nothing to compare) is left out, and so are the skipped-peer
        lines of other engines.

    Returns
    -------
    str
        The header (device, versions, date, command) and the tables, or a sentence
        saying that nothing is recorded yet.
    """
    folder = Path(folder) if folder is not None else Path(__file__).resolve().parent.parent / "data" / "benchmarks"
    records, passed_over = [], 0
    for path in sorted(folder.glob("*.json")):
        if name is not None and path.name != name:
            continue
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not (isinstance(rec, dict) and "meta" in rec):
            continue
        if name is None and not is_course_record(rec["meta"]):
            passed_over += 1
            continue
        records.append((rec["meta"].get("date", ""), path.name, rec))
    if not records:
        if name is not None:
            return f"no benchmark record {name!r} in {folder}"
        other = f" ({passed_over} other run(s) there: name one with name=...)" if passed_over else ""
        return f"no benchmark recorded in {folder} yet{other}"
    records.sort(key=lambda r: r[0])
    if kind is not None:
        records = [r for r in records if r[2].get(kind)] or records
    same = [r for r in records if r[2]["meta"].get("device_type") == prefer]
    date, fname, rec = (same or records)[-1]
    if kind is not None:
        rec = {"meta": rec["meta"], kind: rec.get(kind, [])}
    if engines is not None:
        rec = _only_engines(rec, engines)
    note = "" if same or name is not None else f"(no {prefer} record yet; showing the latest of any device)\n"
    return f"{note}recorded in data/benchmarks/{fname} by `{rec['meta'].get('command', '')}`\n" + format_tables(rec)


def _only_engines(rec, engines):
    """The record with only the rows of ``engines``, and only the tables that compare two."""
    if isinstance(engines, str) or not all(isinstance(e, str) for e in engines):
        raise TypeError(f"engines must be a sequence of engine names (str), got {engines!r}")
    wanted = set(engines)
    out = dict(rec, skipped=[sk for sk in rec.get("skipped", []) if sk["engine"] in wanted])
    for kind in ("kmeans", "meanshift"):
        if kind in rec:
            tables = [[r for r in table if r["engine"] in wanted] for table in rec[kind]]
            out[kind] = [t for t in tables if len(t) >= min(2, len(wanted))]
    return out


def is_course_record(meta) -> bool:
    """Whether a run is one the course shows: default sizes, every engine, no load, ...

    Read from ``meta["course_record"]``; files written before that key existed are
    judged by their command line.
    """
    if "course_record" in meta:
        return bool(meta["course_record"])
    cmd = meta.get("command", "").split()
    chosen = ("--quick", "--kmeans", "--meanshift", "--engines", "--iters", "--steps",
              "--background-load")
    return not any(c.split("=")[0] in chosen for c in cmd) and meta.get("precision", "highest") == "highest"


def _not_a_record(args, km_sizes, ms_sizes, default_km, default_ms) -> list:
    """Why this run is not a course record, as ``(reason, file-name tag)`` pairs (none: it is)."""
    why = []
    if args.quick:
        why.append(("--quick", "quick"))
    elif list(km_sizes) != list(default_km) or list(ms_sizes) != list(default_ms):
        why.append(("sizes other than the default", "sizes"))
    if args.engines:
        why.append(("--engines", "engines"))
    if args.iters != DEFAULT_ITERS or args.steps != DEFAULT_STEPS:
        why.append(("iterations other than the default", "iters"))
    if args.precision != "highest":
        why.append((f"--precision {args.precision}", args.precision))
    if args.background_load:
        why.append((f"--background-load {args.background_load}", f"load{args.background_load}"))
    if getattr(args, "distributed", 0):
        why.append((f"--distributed {args.distributed}", f"dist{args.distributed}"))
    return why


#: (n, d, k) of the ``--distributed`` scaling table when no --kmeans size is given.
DISTRIBUTED_SIZE = (200_000, 32, 64)


def bench_distributed(size, max_procs, *, iters=10, repeat=3):
    """k-means over 1, 2, 4, ... ``max_procs`` processes (see
    :func:`clusterlab.distributed.bench_scaling`): one dict per process count."""
    from clusterlab import distributed as cld

    procs = sorted({1, max_procs, *(2**i for i in range(1, 12) if 2**i < max_procs)})
    n, d, k = size
    return cld.bench_scaling(int(n), int(d), int(k), procs=procs, iters=iters, repeat=repeat)


def format_distributed(rows, size) -> str:
    """The scaling table: time per iteration, speed-up and communication share by processes."""
    from clusterlab.device import format_seconds

    n, d, k = size
    out = [f"\nk-means over processes  n={n:,} d={d} k={k}, {rows[0]['backend']}",
           "| processes | threads each | time / iteration | speed-up | share in all-reduce |",
           "|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['procs']} | {r['threads']} | {format_seconds(r['time_per_iter'])} | "
                   f"{r['speedup']:.2f} | {r['comm_share']:.0%} |")
    return "\n".join(out)


_BUSY_LOOP = """import os
parent, i = os.getppid(), 0
while True:  # busy, and gone once the benchmark is (checked now and then)
    i += 1
    if i % 4_000_000 == 0 and os.getppid() != parent:
        break
"""


@contextlib.contextmanager
def background_load(n: int):
    """``n`` busy-loop child processes for the duration of the block; yields their pids.

    Each is ``python -c`` with a pure-Python loop (one CPU each, like ``while True:
    pass``) that also ends by itself if the benchmark dies without stopping it.
    """
    procs = []
    try:
        for _ in range(int(n)):
            procs.append(subprocess.Popen([sys.executable, "-c", _BUSY_LOOP], stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if procs:
            time.sleep(0.3)  # started and spinning before the first timing
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]


def _whole(text, what):
    """``text`` as a whole number >= 1 (``100000``, ``100_000`` or ``1e5``), else ValueError."""
    t = text.strip().replace("_", "")
    try:
        return _at_least_one(int(t), what)
    except ValueError:
        pass
    try:
        v = float(t)
    except ValueError:
        raise ValueError(f"{what} must be a whole number, got {text.strip()!r}") from None
    if not (math.isfinite(v) and v.is_integer()):
        raise ValueError(f"{what} must be a whole number, got {text.strip()!r}")
    return _at_least_one(int(v), what)


def _at_least_one(v, what):
    if v < 1:
        raise ValueError(f"{what} must be >= 1, got {v}")
    return v


def _positive(text, what):
    """``text`` as a finite number > 0, else ValueError."""
    try:
        v = float(text.strip().replace("_", ""))
    except ValueError:
        raise ValueError(f"{what} must be a number, got {text.strip()!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{what} must be a finite number > 0, got {text.strip()!r}")
    return v


def _size_type(fields, check=None):
    """An argparse ``type``: ``"N,D,K"`` (or ``"N,H"``) into a tuple, with a clear error.

    ``fields``: (name, parser) per comma-separated field. argparse shows the message
    with the flag: ``argument --meanshift: '100,nan': H (bandwidth) must be ...``.
    """
    names = ",".join(f[0].split()[0] for f in fields)

    def parse(value):
        parts = value.split(",")
        if len(parts) != len(fields):
            raise argparse.ArgumentTypeError(
                f"{value!r}: needs {len(fields)} comma-separated numbers, {names}")
        try:
            size = tuple(conv(p, what) for p, (what, conv) in zip(parts, fields, strict=True))
            if check is not None:
                check(size)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"{value!r}: {err}") from None
        return size

    parse.__name__ = names  # what argparse calls the type in its messages
    return parse


def _k_at_most_n(size):
    if size[2] > size[0]:
        raise ValueError(f"K (clusters) must be <= N (points), got K={size[2]} > N={size[0]}")


_KMEANS_SIZE = _size_type([("N (points)", _whole), ("D (dimensions)", _whole), ("K (clusters)", _whole)],
                          _k_at_most_n)
_MEANSHIFT_SIZE = _size_type([("N (points)", _whole), ("H (bandwidth)", _positive)])


def _takes_precision() -> bool:
    """Whether this clusterlab's ``kmeans`` and ``meanshift`` take ``precision=``."""
    import inspect

    import clusterlab as cl

    return all("precision" in inspect.signature(f).parameters for f in (cl.kmeans, cl.meanshift))


def _triton_unavailable(device) -> str | None:
    """Why clusterlab's ``backend="triton"`` cannot be timed here, in one line; None if it can."""
    import importlib.util

    import torch

    from clusterlab.engines import BACKENDS

    if "triton" not in BACKENDS:
        return "this clusterlab has no backend='triton'"
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (pip install triton; it comes with CUDA builds of torch)"
    if not torch.cuda.is_available():
        return ("clusterlab's Triton engine runs only on CUDA, and torch sees no CUDA device "
                "(on a CPU it runs only in Triton's interpreter, for tests)")
    if device.type != "cuda":
        return f"clusterlab's Triton engine runs only on CUDA; this run's device is {device.type}"
    return None


def _help_text(doc: str) -> str:
    """The module docstring as plain text for ``--help`` (no reST roles or literals)."""
    return re.sub(r":\w+:`~?([^`]+)`", r"\1", doc).replace("``", "")


def main(argv=None) -> int:
    """Run the benchmark from the command line; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m clusterlab.bench", description=_help_text(__doc__.split("\n")[0]),
                                epilog=_help_text(__doc__.split("\n", 1)[1]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kmeans", nargs="*", metavar="N,D,K", type=_KMEANS_SIZE,
                   help="k-means sizes (default by device, none when only --meanshift is given; "
                        "the flag alone: none)")
    p.add_argument("--meanshift", nargs="*", metavar="N,H", type=_MEANSHIFT_SIZE,
                   help="mean-shift sizes and bandwidths (default by device, none when only --kmeans "
                        "is given; the flag alone: none)")
    p.add_argument("--engines", default=None,
                   help=f"comma list from {','.join(sorted(set(KMEANS_ENGINES + MEANSHIFT_ENGINES)))}")
    p.add_argument("--iters", type=int, default=DEFAULT_ITERS, help=f"k-means iterations (default {DEFAULT_ITERS})")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"mean-shift steps (default {DEFAULT_STEPS})")
    p.add_argument("--repeat", type=int, default=3, help="timed calls per engine (default 3)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--precision", default="highest", choices=PRECISIONS,
                   help="clusterlab's precision= (highest: IEEE float32, the default; high: TF32 "
                        "products; medium: bf16/fp16 inputs, float32 sums); also flash-kmeans's "
                        "input: float32 (TF32 products) for highest and high, fp16 for medium")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch/faiss/BLAS")
    p.add_argument("--memory", action="store_true", help="also the 5M k-means / 1M mean-shift peak-RSS runs")
    p.add_argument("--background-load", type=int, default=0, metavar="N",
                   help="time everything with N busy-loop processes running beside (default 0)")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--out", default=None,
                   help=f"folder (or .json file) for the results (default: {RECORD_DIR} for a course "
                        f"record, {SCRATCH_DIR} for any other run)")
    p.add_argument("--no-save", action="store_true", help="print only")
    p.add_argument("--distributed", type=int, default=0, metavar="N",
                   help="k-means over 1, 2, 4, ... N processes (torch.distributed: gloo on CPUs, "
                        "NCCL on GPUs): time per iteration and the share in the all-reduce; "
                        "alone unless --kmeans/--meanshift are given too (size: the first "
                        "--kmeans size, default 200000,32,64)")
    args = p.parse_args(argv)
    for flag, value, low in (("--background-load", args.background_load, 0),
                             ("--distributed", args.distributed, 0), ("--iters", args.iters, 1),
                             ("--steps", args.steps, 1), ("--repeat", args.repeat, 1)):
        if value < low:
            p.error(f"{flag} must be >= {low}, got {value}")
    if args.precision != "highest" and not _takes_precision():
        p.error(f"--precision {args.precision}: this clusterlab's kmeans/meanshift take no "
                "precision= argument yet; use --precision highest")

    if args.threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    os.environ.setdefault("KEOPS_VERBOSE", "0")
    os.environ.setdefault("PYKEOPS_VERBOSE", "0")
    import torch
    from tqdm.auto import tqdm

    from clusterlab.device import default_device

    if args.threads:
        torch.set_num_threads(args.threads)
        try:
            import numba  # the fused CPU kernels' threads

            numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
        except ImportError:
            pass
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(args.threads)
        except ImportError:
            pass
    device = default_device(None if args.device == "auto" else args.device)
    on_gpu = device.type == "cuda"
    default_km = KMEANS_GPU if on_gpu else KMEANS_CPU
    default_ms = MEANSHIFT_GPU if on_gpu else MEANSHIFT_CPU
    km_sizes, ms_sizes = (KMEANS_QUICK, MEANSHIFT_QUICK) if args.quick else (default_km, default_ms)
    if args.kmeans is not None:
        km_sizes = args.kmeans
    if args.meanshift is not None:
        ms_sizes = args.meanshift
    if (args.kmeans is None) != (args.meanshift is None):  # sizes for one algorithm: only its tables
        km_sizes, ms_sizes = (km_sizes, []) if args.meanshift is None else ([], ms_sizes)
    dist_size = (args.kmeans or [DISTRIBUTED_SIZE])[0]
    if args.distributed and args.kmeans is None and args.meanshift is None:
        km_sizes, ms_sizes = [], []  # --distributed alone: only the scaling table
    wanted = set(args.engines.split(",")) if args.engines else None
    known = set(KMEANS_ENGINES + MEANSHIFT_ENGINES)
    if wanted is not None and not wanted <= known:
        p.error(f"--engines: unknown {sorted(wanted - known)}; choose from {sorted(known)}")

    from clusterlab.engines.keops_engine import keops_probe

    has = {"keops": wanted is None or "keops" in wanted}
    if has["keops"]:  # probed in a child process: KeOps's GPU compiler can segfault
        has["keops"], why = keops_probe(device)
        if not has["keops"]:
            print(f"skipping keops: {why}", file=sys.stderr)
    try:
        from clusterlab.compare import import_faiss

        import_faiss()
        has["faiss"] = True
    except ImportError:
        has["faiss"] = False
    has["faiss+labels"] = has["faiss"]
    from clusterlab.compare import peer_unavailable

    skip_reason = {}  # engine -> why it cannot run here: printed and kept in the JSON
    for e in OPTIONAL_PEERS + ("triton",):
        if wanted is None or e in wanted:
            reason = _triton_unavailable(device) if e == "triton" else peer_unavailable(e, device)
            if reason:
                skip_reason[e] = reason

    def pick(pool, d=None):
        out = []
        for e in pool:
            if wanted is not None and e not in wanted:
                continue
            if (e in has and not has[e]) or e in skip_reason:
                continue
            if e == "keops" and not on_gpu and d is not None and d > KEOPS_CPU_MAX_D:
                continue
            out.append(e)
        return out

    result = {"meta": _meta(device), "kmeans": [], "meanshift": [], "memory": [],
              "skipped": [{"engine": e, "reason": r} for e, r in skip_reason.items()]}
    result["meta"]["precision"] = args.precision
    result["meta"]["background_load"] = args.background_load
    why = _not_a_record(args, km_sizes, ms_sizes, default_km, default_ms)
    result["meta"]["course_record"] = not why
    result["meta"]["not_course_record_because"] = [reason for reason, _ in why]
    tasks = [("kmeans", s) for s in km_sizes] + [("meanshift", s) for s in ms_sizes]
    if args.memory:
        tasks.append(("memory", None))
    from clusterlab.device import LoadMeter

    t0 = time.perf_counter()
    with background_load(args.background_load) as pids:
        meter = LoadMeter(pids).start()
        for kind, size in tqdm(tasks, desc="benchmark", unit="table", disable=None):
            if kind == "kmeans":
                n, d, k = size
                result["kmeans"].append(bench_kmeans(n, d, k, engines=pick(KMEANS_ENGINES, d),
                                                     niter=args.iters, repeat=args.repeat, device=device,
                                                     precision=args.precision, skipped=result["skipped"]))
            elif kind == "meanshift":
                n, h = size
                result["meanshift"].append(bench_meanshift(int(n), float(h), engines=pick(MEANSHIFT_ENGINES),
                                                           niter=args.steps, repeat=args.repeat, device=device,
                                                           precision=args.precision))
            else:
                result["memory"] = bench_memory(device)
        if args.distributed:
            result["distributed"] = bench_distributed(dist_size, args.distributed,
                                                      iters=args.iters, repeat=args.repeat)
        result["meta"]["load"] = meter.stop()
    result["meta"]["wall_seconds"] = time.perf_counter() - t0
    result["meta"]["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(format_tables(result))
    if result.get("distributed"):
        print(format_distributed(result["distributed"], dist_size))
    if not args.no_save:
        out = Path(args.out if args.out is not None else (SCRATCH_DIR if why else RECORD_DIR))
        if out.suffix != ".json":
            out.mkdir(parents=True, exist_ok=True)
            tag = "".join(f"_{t}" for _, t in why)
            out = out / f"{result['meta']['date'][:10]}_{_slug(result['meta']['device'])}{tag}.json"
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
        png = plot_result(result, out.with_suffix(".png"))
        print(f"\nwrote {out}" + (f" and {png}" if png else ""))
        if why:
            print(f"(not a course record: {', '.join(r for r, _ in why)}; the notebooks show the "
                  f"latest course record in {RECORD_DIR}/)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
