"""clusterlab.compare: fair comparisons with faiss and scikit-learn, IVF recall, C output."""

from __future__ import annotations

import math
import os
import sys

import numpy as np
import pytest

import clusterlab as cl
from clusterlab import checks as ck
from clusterlab import compare as cmp

faiss = pytest.importorskip("faiss")


def blobs(n=3000, d=4, k=5, seed=0, spread=0.5, dtype=np.float64):
    """Well-separated Gaussian blobs around centres in [-20, 20]^d."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-20, 20, size=(k, d))
    x = centres[rng.integers(0, k, size=n)] + rng.normal(scale=spread, size=(n, d))
    return x.astype(dtype)


def full_objective(x, c):
    return float(
        ((x[:, None, :].astype(np.float64) - c[None].astype(np.float64)) ** 2).sum(2).min(1).sum()
    )


# --------------------------------------------------------------------------- same algorithm


def test_same_start_same_centroids_in_all_three():
    x = blobs(n=3000, d=4, k=8, spread=2.0, seed=1)
    c0 = cl.kmeans_plusplus(x, 8, seed=3)
    niter = 6
    ours = cl.kmeans(x, 8, init=c0, max_iter=niter, tol=0, backend="numpy")
    sk = cmp.sklearn_kmeans(x, 8, init=c0, niter=niter)
    km = cmp.faiss_kmeans(x, 8, init=c0, niter=niter)
    assert ours.n_iter == niter and len(km.obj) == niter
    np.testing.assert_allclose(sk.cluster_centers_, ours.centroids, rtol=0, atol=1e-8)
    np.testing.assert_allclose(km.centroids, ours.centroids, rtol=0, atol=1e-3)  # float32
    np.testing.assert_array_equal(km.assign(x)[1], ours.labels)


def test_faiss_early_stop_is_off_unless_asked_for():
    x = blobs(n=3000, d=4, k=8, spread=2.0, seed=1)  # converges in two iterations
    c0 = cl.kmeans_plusplus(x, 8, seed=3)
    assert len(cmp.faiss_kmeans(x, 8, init=c0, niter=6).obj) == 6
    stopped = cmp.faiss_kmeans(x, 8, init=c0, niter=6, early_stop=True)
    assert len(stopped.obj) < 6 and stopped.obj[-1] == stopped.obj[-2]


def test_faiss_obj_predates_the_last_update():
    # faiss records the objective of the assignment made at the start of each iteration.
    x = blobs(n=2000, d=3, k=6, spread=3.0, seed=2)
    c0 = cl.kmeans_plusplus(x, 6, seed=0)
    km = cmp.faiss_kmeans(x, 6, init=c0, niter=4)
    np.testing.assert_allclose(km.obj[0], full_objective(x, c0), rtol=1e-4)
    before_last = cl.kmeans(x, 6, init=c0, max_iter=3, tol=0).inertia
    np.testing.assert_allclose(km.obj[-1], before_last, rtol=1e-4)


def test_run_comparison_same_yardstick_for_every_engine():
    x = blobs(n=4000, d=5, k=6, spread=1.5, seed=4, dtype=np.float32)
    rows = cmp.run_comparison(x, 6, niter=5, seed=1, repeat=1, device="cpu")
    assert [r["engine"] for r in rows] == list(cmp.ENGINES)
    x64 = x.astype(np.float64)
    for r in rows:
        assert r["centroids"].shape == (6, 5) and r["centroids"].dtype == np.float32
        # the inertia is computed from the returned centroids, the same way for all
        assert r["inertia"] == pytest.approx(full_objective(x64, r["centroids"]), rel=1e-6)
        # the reported time is the median of the rounds (one here), not a judged speed
        assert len(r["times"]) == 1 and r["seconds"] == r["times"][0]
    # ratios are times over the fastest row's, whatever the times are
    fastest = min(r["seconds"] for r in rows)
    assert [r["ratio"] for r in rows] == pytest.approx([r["seconds"] / fastest for r in rows])
    inertias = [r["inertia"] for r in rows]
    assert max(inertias) == pytest.approx(min(inertias), rel=1e-5)
    by = {r["engine"]: r for r in rows}
    assert by["clusterlab"]["n_iter"] == by["faiss"]["n_iter"] == 5
    assert by["sklearn"]["n_iter"] <= 5  # scikit-learn stops at a fixed point
    # faiss's own number is the objective one update earlier: never below the yardstick
    assert by["faiss"]["reported_inertia"] >= by["faiss"]["inertia"] * (1 - 1e-6)
    for r in rows[1:]:
        np.testing.assert_allclose(r["centroids"], rows[0]["centroids"], atol=1e-3)


def test_run_comparison_engine_subset_and_table():
    x = blobs(n=1500, d=2, k=4, seed=5)
    rows = cmp.run_comparison(x, 4, niter=3, repeat=2, engines=("sklearn",), backend="numpy")
    assert len(rows) == 1 and rows[0]["engine"] == "sklearn" and len(rows[0]["times"]) == 2
    rows = cmp.run_comparison(
        x, 4, niter=3, repeat=1, engines=["faiss", "clusterlab"], device="cpu"
    )
    assert [r["engine"] for r in rows] == ["faiss", "clusterlab"]
    table = cmp.format_table(rows).splitlines()
    assert len(table) == 2 + len(rows)
    assert table[0].startswith("| engine |") and table[2].startswith("| faiss | 1.")
    assert table[3].startswith("| clusterlab |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = cmp.plot_comparison(rows)
    assert len(ax.patches) == 2 and "N=1,500" in ax.get_title()
    plt.close(ax.figure)


# --------------------------------------------------------------------------- faiss details


def test_subsampling_off_trains_on_every_point():
    n, d, k = 12_000, 4, 10  # 256 * k = 2,560 < n: faiss would subsample
    x = blobs(n=n, d=d, k=k, spread=3.0, seed=6, dtype=np.float32)
    c0 = x[np.random.default_rng(0).choice(n, size=k, replace=False)]
    full = full_objective(x, c0)
    km = cmp.faiss_kmeans(x, k, init=c0, niter=2)
    assert km.cp.max_points_per_centroid == math.ceil(n / k)
    np.testing.assert_allclose(km.obj[0], full, rtol=1e-4)  # obj[0]: the start, on all n points
    sub = cmp.faiss_kmeans(x, k, init=c0, niter=2, subsample=True)
    assert sub.cp.max_points_per_centroid == 256
    np.testing.assert_allclose(sub.obj[0] / full, 256 * k / n, rtol=0.1)  # about 2,560 points


def test_faiss_params_pass_through_and_verbose_is_captured():
    x = blobs(n=5000, d=3, k=5, seed=7, dtype=np.float32)
    with cmp.capture_c_output() as out:
        km = cmp.faiss_kmeans(x, 5, niter=3, nredo=2, verbose=True, subsample=True)
    assert km.cp.nredo == 2 and km.cp.early_stop_threshold == -math.inf
    assert "Sampling a subset of 1280 / 5000 for training" in out.stdout
    assert "Clustering 1280 points" in out.stdout
    with cmp.capture_c_output() as out:
        cmp.faiss_kmeans(x, 5, niter=3, verbose=True)
    assert "Clustering 5000 points" in out.stdout and "Sampling" not in out.stdout


def test_capture_c_output_catches_the_few_points_warning_and_restores_fds():
    before = os.fstat(2).st_ino, os.fstat(1).st_ino
    x = blobs(n=300, d=2, k=3, seed=8, dtype=np.float32)
    with cmp.capture_c_output() as out:
        cmp.faiss_kmeans(x, 20, niter=2)  # 39 * 20 = 780 > 300 points
        os.write(1, b"to fd 1\n")
    assert "please provide at least 780 training points" in out.stderr
    assert "to fd 1" in out.stdout
    assert (os.fstat(2).st_ino, os.fstat(1).st_ino) == before


def test_missing_faiss_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    x = blobs(n=200, d=2, k=2, seed=9)
    with pytest.raises(ImportError, match=r"pip install faiss-cpu==1\.15\.1"):
        cmp.faiss_kmeans(x, 2)
    with pytest.raises(ImportError, match="faiss-cpu"):
        cmp.run_comparison(x, 2, niter=1, repeat=1, engines=("faiss",))
    rows = cmp.run_comparison(x, 2, niter=1, repeat=1, engines=("sklearn",))  # no faiss needed
    assert rows[0]["engine"] == "sklearn"
    assert ck.check_full_training(lambda d, k, n: None) is False


# --------------------------------------------------------------------------- IVF recall


def ivf_search_loop(x, labels, c, q, nprobe, kn):
    """The plain IVF search, one query: scan the nprobe nearest lists exhaustively."""
    lists = np.argsort(((c - q) ** 2).sum(1), kind="stable")[:nprobe]
    cand = np.flatnonzero(np.isin(labels, lists))
    d = ((x[cand] - q) ** 2).sum(1)
    return cand[np.argsort(d, kind="stable")[:kn]]


@pytest.fixture(scope="module")
def ivf_data():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(3000, 6))
    queries = rng.normal(size=(60, 6))
    c = cl.kmeans(x, 20, max_iter=5, seed=0, backend="numpy").centroids
    return x, queries, c


def test_ivf_recall_matches_an_explicit_search(ivf_data):
    x, queries, c = ivf_data
    labels = np.asarray(cl.assign(x, c, backend="numpy")[1])
    d = ((x[:, None] - queries[None]) ** 2).sum(2)  # (n, m), small enough here
    truth = np.argsort(d, axis=0, kind="stable")[:10].T  # (m, 10)
    rows = cmp.ivf_recall(x, queries, c, nprobe_values=[1, 3, 7, 20], k_neighbors=10)
    for row in rows:
        found = [
            len(set(ivf_search_loop(x, labels, c, q, row["nprobe"], 10)) & set(t)) / 10
            for q, t in zip(queries, truth, strict=True)
        ]
        assert row["recall"] == pytest.approx(np.mean(found), abs=1e-12)
    assert rows[0]["recall"] < 1.0  # probing one list of 20 misses neighbours here


def test_ivf_recall_monotone_and_complete(ivf_data):
    x, queries, c = ivf_data
    rows = cmp.ivf_recall(x, queries, c, k_neighbors=5)  # default: 1, 2, 4, ..., K
    assert [r["nprobe"] for r in rows] == [1, 2, 4, 8, 16, 20]
    recalls = [r["recall"] for r in rows]
    scanned = [r["scanned"] for r in rows]
    assert all(a <= b for a, b in zip(recalls, recalls[1:], strict=False))
    assert all(a < b for a, b in zip(scanned, scanned[1:], strict=False))
    assert recalls[-1] == 1.0 and scanned[-1] == 1.0
    assert rows[-1]["candidates"] == len(x)
    assert 0 < scanned[0] < 0.2


def test_exact_neighbors_do_not_depend_on_the_block_size(ivf_data):
    x, queries, _ = ivf_data
    small = cmp._exact_neighbors(x, queries, 7, budget=1)  # one query per block
    large = cmp._exact_neighbors(x, queries, 7, budget=2**30)  # all at once
    d = ((x[:, None] - queries[None]) ** 2).sum(2)
    np.testing.assert_array_equal(small, large)
    np.testing.assert_array_equal(small, np.argsort(d, axis=0, kind="stable")[:7].T)


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda x: cmp.faiss_kmeans(x, 0), "k"),
        (lambda x: cmp.faiss_kmeans(x, 2, niter=0), "niter"),
        (lambda x: cmp.faiss_kmeans(x, 2, init=np.zeros((3, 2))), "init"),
        (lambda x: cmp.faiss_kmeans(x, 2, max_points_per_centroid=10), "max_points_per_centroid"),
        (lambda x: cmp.faiss_kmeans(x, 2, early_stop_threshold=0.1), "early_stop_threshold"),
        (lambda x: cmp.sklearn_kmeans(x, 2, init="best"), "init"),
        (lambda x: cmp.run_comparison(x, 2, repeat=0), "repeat"),
        (lambda x: cmp.run_comparison(x, 500), "k"),
        (lambda x: cmp.run_comparison(x, 2, engines=("faiss", "torch")), "engines"),
        (lambda x: cmp.run_comparison(x, 2, engines=()), "engines"),
        (lambda x: cmp.run_comparison(x, 2, backend="cuda"), "backend"),
        (lambda x: cmp.ivf_recall(x, x[:3], x[:4], nprobe_values=[0]), "nprobe_values"),
        (lambda x: cmp.ivf_recall(x, x[:3], x[:4], nprobe_values=[5]), "nprobe_values"),
        (lambda x: cmp.ivf_recall(x, x[:3], x[:4], k_neighbors=0), "k_neighbors"),
        (lambda x: cmp.ivf_recall(x, x[:3, :1], x[:4]), "queries"),
        (lambda x: cmp.ivf_recall(x, x[:3], x[:4, :1]), "centroids"),
        (lambda x: cmp.ivf_recall(np.full((5, 2), np.nan), x[:3], x[:4]), "x"),
        (lambda x: cmp.format_table([]), "rows"),
    ],
)
def test_bad_arguments_name_the_argument(call, name):
    x = blobs(n=100, d=2, k=2, seed=11)
    with pytest.raises(ValueError, match=name):
        call(x)


def test_bad_types_raise_type_error():
    x = blobs(n=100, d=2, k=2, seed=12)
    with pytest.raises(TypeError, match="nredoo"):
        cmp.faiss_kmeans(x, 2, nredoo=3)
    with pytest.raises(TypeError, match="subsample"):
        cmp.faiss_kmeans(x, 2, subsample="no")
    with pytest.raises(TypeError, match="nprobe_values"):
        cmp.ivf_recall(x, x[:3], x[:4], nprobe_values=2)
    with pytest.raises(TypeError, match="rows"):
        cmp.format_table({"engine": "faiss", "seconds": 1.0})


# --------------------------------------------------------------------------- self-checks


def ivf_search_whole_database(x, labels, c, q, nprobe, kn):
    return np.argsort(((x - q) ** 2).sum(1), kind="stable")[:kn]


def ivf_search_unsorted(x, labels, c, q, nprobe, kn):
    lists = np.argsort(((c - q) ** 2).sum(1))[:nprobe]
    return np.flatnonzero(np.isin(labels, lists))[:kn]


def full_kmeans(d, k, n):
    return faiss.Kmeans(d, k, niter=2, max_points_per_centroid=math.ceil(n / k))


@pytest.mark.parametrize(
    ("check", "right", "wrong"),
    [
        ("check_ivf_search", ivf_search_loop, ivf_search_whole_database),
        ("check_ivf_search", ivf_search_loop, ivf_search_unsorted),
        ("check_full_training", full_kmeans, lambda d, k, n: faiss.Kmeans(d, k, niter=2)),
    ],
)
def test_notebook_07_checks_accept_right_and_reject_wrong(check, right, wrong, capsys):
    fn = getattr(ck, check)
    assert fn(right) is True
    out = capsys.readouterr().out
    assert "✓" in out and "✗" not in out
    assert fn(wrong) is False
    assert "✗" in capsys.readouterr().out


def test_full_training_check_says_how_many_points_faiss_used(capsys):
    assert ck.check_full_training(lambda d, k, n: faiss.Kmeans(d, k, niter=1)) is False
    out = capsys.readouterr().out
    assert "faiss trained on about 5," in out and "of 30,000 points" in out  # 256 * 20 = 5,120


@pytest.mark.parametrize("check", ["check_ivf_search", "check_full_training"])
def test_notebook_07_checks_read_not_written_yet(check, capsys):
    def stub(*args):
        raise NotImplementedError

    assert getattr(ck, check)(stub) is False
    assert "not written yet" in capsys.readouterr().out


# --------------------------------------------------------------------------- float32 range


def test_faiss_on_data_near_1e30_is_refused_not_aborted():
    # faiss used to abort the whole process (faiss::FaissException, "invalid cluster
    # assignment") on such data: run the call in a child process, so that a regression
    # fails this test rather than ending the test run.
    import subprocess

    code = (
        "import numpy as np\n"
        "from clusterlab import compare as cmp\n"
        "x = np.random.default_rng(0).normal(size=(500, 3)) * 1e30\n"
        "try:\n"
        "    cmp.faiss_kmeans(x, 4, niter=5)\n"
        "except ValueError as err:\n"
        "    print('refused:', err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "refused: x is too large for faiss" in out.stdout
    assert "values reach 3.9e+30 in magnitude" in out.stdout
    assert "rescale the data first, e.g. x / 3.9e+30" in out.stdout


def test_faiss_float32_range_bound():
    x = np.random.default_rng(0).normal(size=(500, 3))
    km = cmp.faiss_kmeans(x * 1e17, 4, niter=3)  # inside the bound: a finite objective
    assert np.isfinite(km.obj).all() and np.isfinite(km.centroids).all()
    # the bound is a worst case (every point as far as possible from its centroid)
    with pytest.raises(ValueError, match=r"x is too large for faiss.*objective could reach 7\.37e\+38"):
        cmp.faiss_kmeans(x * 2e17, 4, niter=3)
    with pytest.raises(ValueError, match=r"x is too large for faiss.*values reach 1\.56e\+19"):
        cmp.faiss_kmeans(x * 4e18, 4, niter=3)  # faiss returned obj = inf here
    with pytest.raises(ValueError, match=r"x is too large for faiss.*values reach 3\.9e\+39"):
        cmp.faiss_kmeans(x * 1e39, 4, niter=3)  # float64 data beyond float32 altogether
    with pytest.raises(ValueError, match=r"x and init are too large for faiss.*values reach 1e\+30"):
        cmp.faiss_kmeans(x, 2, init=np.array([[0.0, 0, 0], [1e30, 0, 0]]), niter=3)
    with pytest.raises(ValueError, match=r"the weighted objective could reach"):
        cmp.faiss_kmeans(x, 2, weights=np.full(500, 1e37), niter=3)
    km = cmp.faiss_kmeans(x, 2, weights=np.full(500, 1e30), niter=3)  # large but fine
    assert np.isfinite(km.centroids).all()


def test_faiss_kmeans_niter_is_bounded_and_sparse_input_refused():
    x = blobs(n=100, d=2, k=2, seed=13)
    with pytest.raises(ValueError, match=r"niter must be <= 2\*\*31 - 1 = 2147483647 .*got 2147483648"):
        cmp.faiss_kmeans(x, 2, niter=2**31)
    sp = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match=r"x is a sparse matrix .*x\.toarray\(\)"):
        cmp.faiss_kmeans(sp.csr_matrix(x), 2)
