"""clusterlab.distributed: k-means over gloo process groups on 127.0.0.1, against cl.kmeans.

Starting processes is the expensive part (a fresh interpreter and torch per rank), so each
group is started once per module: a 2-process group with uneven shards and a 3-process group
whose shards are a handful of points, nothing and the rest. Every scenario runs in both, and
each test compares one scenario's results with ``cl.kmeans`` on the concatenated data in the
test process. Every spawn is bounded in time (``run_local``'s timeout), and a failure in a
child comes back as an exception with the child's traceback.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():  # pragma: no cover
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

import clusterlab as cl  # noqa: E402
import clusterlab.distributed as cld  # noqa: E402
from clusterlab.engines.torch_engine import TorchEngine  # noqa: E402

TIMEOUT = 120  # seconds per spawned group
N, D, K = 3000, 5, 7
SHARDS = {2: [0, 700, N], 3: [0, 4, 4, N]}  # rank 1 of the 3-process group holds nothing


# --------------------------------------------------------------------------- data


def blobs(seed=0, n=N, d=D, k=K):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-10, 10, (k, d))
    return (centres[rng.integers(k, size=n)] + rng.standard_normal((n, d))).astype(np.float32)


def weights_of(seed=1, n=N):
    w = np.random.default_rng(seed).uniform(0.0, 3.0, n).astype(np.float32)
    w[:4] = 0.0  # the 3-process group's rank 0 holds only zero weights
    return w


def far_init(x):
    """Initial centroids of which three are far from every point: three empty clusters."""
    c0 = x[:K].copy()
    c0[2:5] = x.max(0) + np.array([[100.0], [200.0], [300.0]], dtype=np.float32)
    return c0


def scenarios(x):
    """name -> (kmeans keyword arguments): what every group runs, and the reference takes."""
    w = weights_of()
    return {
        "array": {"init": x[:K]},
        "random": {"init": "random", "seed": 3},
        "plusplus": {"init": "k-means++", "seed": 3},
        "parallel": {"init": "k-means||", "seed": 3, "n_init": 2},
        "weighted": {"init": x[10:10 + K], "weights": w},
        "weighted_random": {"init": "random", "seed": 5, "weights": w},
        "cosine": {"init": x[:K], "metric": "cosine"},
        "empty": {"init": far_init(x)},
        "max_iter_0": {"init": x[:K], "max_iter": 0},
        "tol_0": {"init": x[:K], "max_iter": 4, "tol": 0.0},
        "huge": {"init": x[:K] * np.float32(1e25), "scale": 1e25},
    }


# --------------------------------------------------------------------------- the ranks


def _shard(a, bounds, rank):
    return None if a is None else a[bounds[rank]:bounds[rank + 1]]


def _result(res):
    as_np = (lambda a: a.numpy()) if isinstance(res.centroids, torch.Tensor) else np.asarray
    return {"centroids": as_np(res.centroids), "labels": as_np(res.labels),
            "inertia": res.inertia, "n_iter": res.n_iter, "history": res.history,
            "torch": isinstance(res.centroids, torch.Tensor)}


def _error(fn):
    try:
        fn()
    except Exception as exc:  # the test process checks the type and message
        return (type(exc).__name__, str(exc))
    return None


def group_worker(rank, world, bounds):
    """Every scenario on this rank's shard, then the prediction step, mean shift, errors."""
    x = blobs()
    xl = _shard(x, bounds, rank)
    out = {"n_local": len(xl), "backend": dist.get_backend()}
    for name, kw in scenarios(x).items():
        kw = dict(kw)
        scale = kw.pop("scale", 1.0)
        if "weights" in kw:
            kw["weights"] = _shard(kw["weights"], bounds, rank)
        xs = xl * np.float32(scale)
        out[name] = _result(cld.kmeans(xs, K, **kw))
    # torch tensors in, torch tensors out
    out["tensor"] = _result(cld.kmeans(torch.from_numpy(xl), K, init=torch.from_numpy(x[:K])))
    # prediction: no collective, so an empty shard is fine
    dist_, lab = cld.assign(xl, out["array"]["centroids"])
    out["assign"] = (np.asarray(dist_), np.asarray(lab))
    # one mean-shift step of this rank's first points over every rank's data
    y = xl[:50]
    out["shift_gauss"] = cld.meanshift_step(y, xl, 2.0)
    out["shift_flat"] = cld.meanshift_step(torch.from_numpy(y), torch.from_numpy(xl), 3.0,
                                           kernel="flat", chunk_size=7).numpy()
    # bad input on one rank is reported on every rank (no rank is left waiting)
    bad = xl.copy()
    if rank == world - 1:
        bad[0, 0] = np.nan
    errors = {
        "nan_on_last_rank": lambda: cld.kmeans(bad, K),
        "d_differs": lambda: cld.kmeans(xl[:, : D - (rank == 0)], K),
        "d_differs_init": lambda: cld.kmeans(xl[:, : D - (rank == 0)], K, init=x[:K]),
        "dtype_differs": lambda: cld.kmeans(xl.astype(np.float64) if rank == 0 else xl, K),
        "k_too_large": lambda: cld.kmeans(xl, N + 1),
        "k_differs": lambda: cld.kmeans(xl, K + rank),
        "zero_weights": lambda: cld.kmeans(xl, K, weights=np.zeros(len(xl))),
        "bad_metric": lambda: cld.kmeans(xl, K, metric="manhattan"),
        "shift_d_differs": lambda: cld.meanshift_step(xl[:, : D - rank], xl[:, : D - rank], 1.0),
    }
    out["errors"] = {name: _error(fn) for name, fn in errors.items()}
    # the group still works after all those errors: nothing is out of step
    out["after_errors"] = _result(cld.kmeans(xl, K, init=x[:K]))
    return out


@pytest.fixture(scope="module", params=[2, 3], ids=["2-procs", "3-procs"])
def group(request):
    """(world, bounds, per-rank results) of one group run, started once per module."""
    world = request.param
    bounds = SHARDS[world]
    start = time.perf_counter()
    out = cld.run_local(group_worker, world, bounds, timeout=TIMEOUT)
    print(f"{world} processes: {time.perf_counter() - start:.1f} s")
    return world, bounds, out


@pytest.fixture(scope="module")
def x():
    return blobs()


# --------------------------------------------------------------------------- helpers


def reference(x, name):
    kw = dict(scenarios(x)[name])
    scale = kw.pop("scale", 1.0)
    if isinstance(kw.get("init"), str) and kw["init"] == "k-means||":
        kw["init"] = "k-means++"
    return cl.kmeans(x * np.float32(scale), K, **kw)


def same_everywhere(out, name):
    """Centroids, inertia, n_iter and history are identical (bit for bit) on every rank."""
    first = out[0][name]
    for r, o in enumerate(out[1:], 1):
        res = o[name]
        assert np.array_equal(res["centroids"], first["centroids"]), f"rank {r}'s centroids"
        assert res["inertia"] == first["inertia"], f"rank {r}'s inertia"
        assert res["n_iter"] == first["n_iter"]
        assert [h["obj"] for h in res["history"]] == [h["obj"] for h in first["history"]]
    return first


def labels_of(out, name):
    return np.concatenate([o[name]["labels"] for o in out])


def assert_matches(out, ref, name):
    res = same_everywhere(out, name)
    c, rc = res["centroids"], np.asarray(ref.centroids)
    assert res["n_iter"] == ref.n_iter
    scale = np.abs(rc).max()
    assert np.abs(c - rc).max() <= 1e-4 * scale, np.abs(c - rc).max() / scale
    assert np.array_equal(labels_of(out, name), np.asarray(ref.labels))
    assert res["inertia"] == pytest.approx(ref.inertia, rel=1e-5)
    assert len(res["history"]) == len(ref.history)
    for h, rh in zip(res["history"], ref.history, strict=True):
        assert h["obj"] == pytest.approx(rh["obj"], rel=1e-5)
        assert h["n_split"] == rh["n_split"]
        assert h["imbalance"] == pytest.approx(rh["imbalance"], rel=1e-5)
        assert h["comm"] >= 0.0


# --------------------------------------------------------------------------- equality


def test_shards_as_given(group):
    world, bounds, out = group
    assert [o["n_local"] for o in out] == np.diff(bounds).tolist()
    assert all(o["backend"] == "gloo" for o in out)


@pytest.mark.parametrize("name", ["array", "random", "plusplus", "weighted", "weighted_random",
                                  "cosine", "tol_0", "huge"])
def test_equals_single_process(group, x, name):
    _, _, out = group
    assert_matches(out, reference(x, name), name)


def test_empty_clusters_repaired_globally(group, x):
    # three centroids far from every point: three clusters empty in the first iteration,
    # each takes one of the globally farthest points, which may live on any rank
    _, _, out = group
    ref = reference(x, "empty")
    assert ref.history[0]["n_split"] == 3  # the scenario does what it says
    assert_matches(out, ref, "empty")


def test_max_iter_0_returns_the_initial_centroids(group, x):
    _, _, out = group
    res = same_everywhere(out, "max_iter_0")
    assert res["n_iter"] == 0 and res["history"] == []
    np.testing.assert_allclose(res["centroids"], x[:K], rtol=1e-6, atol=1e-5)
    assert res["inertia"] == pytest.approx(reference(x, "max_iter_0").inertia, rel=1e-6)


def test_tol_0_runs_max_iter(group):
    _, _, out = group
    assert same_everywhere(out, "tol_0")["n_iter"] == 4


def test_torch_in_torch_out(group, x):
    _, _, out = group
    res = same_everywhere(out, "tensor")
    assert res["torch"]
    ref = cl.kmeans(x, K, init=x[:K])
    assert np.array_equal(labels_of(out, "tensor"), ref.labels)


def test_kmeans_parallel_is_good_and_independent_of_the_sharding(group, x):
    _, _, out = group
    res = same_everywhere(out, "parallel")
    best = cl.kmeans(x, K, n_init=2, seed=3)  # exact k-means++ on one process
    assert res["inertia"] <= best.inertia * 1.01
    # the draws are indexed by global position: the 2- and 3-process runs agree
    ref = group_parallel_results.setdefault("inertia", res["inertia"])
    assert res["inertia"] == pytest.approx(ref, rel=1e-5)


group_parallel_results: dict = {}


def test_group_still_in_step_after_errors(group, x):
    _, _, out = group
    assert_matches(out, cl.kmeans(x, K, init=x[:K]), "after_errors")


# --------------------------------------------------------------------------- assign, mean shift


def test_assign_is_the_local_prediction(group, x):
    _, bounds, out = group
    c = out[0]["array"]["centroids"]
    d_ref, l_ref = cl.assign(x, c)
    assert np.array_equal(np.concatenate([o["assign"][1] for o in out]), l_ref)
    np.testing.assert_allclose(np.concatenate([o["assign"][0] for o in out]), d_ref,
                               rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("kernel,h,key", [("gaussian", 2.0, "shift_gauss"), ("flat", 3.0, "shift_flat")])
def test_meanshift_step_over_all_shards(group, x, kernel, h, key):
    _, bounds, out = group
    eng = TorchEngine()
    xt = torch.from_numpy(x)
    for r, o in enumerate(out):
        y = x[bounds[r]:bounds[r + 1]][:50]
        want = eng.shift(torch.from_numpy(y), xt, h, kernel=kernel).numpy()
        assert o[key].shape == y.shape
        np.testing.assert_allclose(o[key], want, rtol=1e-4, atol=1e-4)
        assert not np.allclose(o[key], y) or len(y) == 0  # the points did move


# --------------------------------------------------------------------------- errors


def errors_of(group, name):
    world, _, out = group
    errs = [o["errors"][name] for o in out]
    assert all(e is not None for e in errs), f"{name}: some ranks did not raise: {errs}"
    assert len({e for e in errs}) == 1, f"{name}: ranks raised differently: {errs}"
    return errs[0]


def test_bad_input_on_one_rank_is_reported_on_every_rank(group):
    world = group[0]
    kind, msg = errors_of(group, "nan_on_last_rank")
    assert kind == "ValueError" and "NaN" in msg and f"rank {world - 1}" in msg


@pytest.mark.parametrize("name,kind,words", [
    ("d_differs", "ValueError", ["number of features", "rank 0: 4", "rank 1: 5"]),
    ("d_differs_init", "ValueError", ["number of features", "rank 0: 4", "rank 1: 5"]),
    ("dtype_differs", "ValueError", ["dtype", "float64", "float32"]),
    ("k_too_large", "ValueError", [f"k={N + 1}", f"N={N}"]),
    ("k_differs", "ValueError", ["k differs across ranks"]),
    ("zero_weights", "ValueError", ["weights are all zero"]),
    ("bad_metric", "ValueError", ["metric", "manhattan"]),
    ("shift_d_differs", "ValueError", ["number of features"]),
])
def test_clear_errors(group, name, kind, words):
    got_kind, msg = errors_of(group, name)
    assert got_kind == kind
    for w in words:
        assert w in msg, (w, msg)


def test_no_process_group_is_a_clear_error():
    assert not dist.is_initialized()
    x = blobs(n=20)
    with pytest.raises(RuntimeError, match="init_process_group"):
        cld.kmeans(x, 2)
    with pytest.raises(RuntimeError, match="init_process_group"):
        cld.meanshift_step(x, x, 1.0)


def test_assign_of_an_empty_shard():
    d, lab = cld.assign(np.zeros((0, 3), np.float32), np.ones((2, 3), np.float32))
    assert d.shape == (0,) and lab.shape == (0,) and lab.dtype == np.int64
    d, lab = cld.assign(torch.zeros(0, 3), torch.ones(2, 3))
    assert isinstance(lab, torch.Tensor) and lab.shape == (0,)
    with pytest.raises(ValueError, match="centroids"):
        cld.assign(np.zeros((0, 3)), np.ones((2, 4)))


# --------------------------------------------------------------------------- pieces, no group


def test_uniforms_do_not_depend_on_the_sharding():
    whole = cld._uniforms([7, 1], 0, 101)
    for cuts in ([0, 1, 101], [0, 4, 9, 50, 101], [0, 0, 101]):
        parts = [cld._uniforms([7, 1], a, b - a) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
        assert np.array_equal(np.concatenate(parts), whole)


def test_owners_skip_empty_ranks_and_clamp():
    r, local = cld._owners(np.array([2.0, 0.0, 3.0]), np.array([0.0, 1.9, 2.0, 4.5, 5.0, 9.0]),
                           [2, 0, 3])
    assert r.tolist() == [0, 0, 2, 2, 2, 2]
    np.testing.assert_allclose(local, [0.0, 1.9, 0.0, 2.5, 3.0, 7.0])


def child_that_fails(rank, world):
    if rank == 1:
        raise ValueError("boom on rank 1")
    return rank


def child_that_hangs(rank, world):
    time.sleep(60)


def test_run_local_reports_a_failing_child():
    with pytest.raises(RuntimeError, match="boom on rank 1"):
        cld.run_local(child_that_fails, 2, timeout=TIMEOUT)


def test_run_local_kills_a_run_past_its_timeout():
    with pytest.raises(TimeoutError, match="took more than"):
        cld.run_local(child_that_hangs, 1, timeout=3)


# --------------------------------------------------------------------------- self-check


def good_update(sums, counts, c, all_reduce):
    all_reduce(sums)
    all_reduce(counts)
    alive = counts > 0
    return torch.where(alive[:, None], sums / counts.clamp_min(1)[:, None], c)


def packed_update(sums, counts, c, all_reduce):
    buf = torch.cat([sums, counts[:, None]], 1)
    all_reduce(buf)
    sums, counts = buf[:, :-1], buf[:, -1]
    return torch.where((counts > 0)[:, None], sums / counts.clamp_min(1)[:, None], c)


def local_update(sums, counts, c, all_reduce):
    return torch.where((counts > 0)[:, None], sums / counts.clamp_min(1)[:, None], c)


def conditional_update(sums, counts, c, all_reduce):
    if counts.sum() > 0:  # a rank without points skips the collective: the others wait
        all_reduce(sums)
        all_reduce(counts)
    return torch.where((counts > 0)[:, None], sums / counts.clamp_min(1)[:, None], c)


def stub_update(sums, counts, c, all_reduce):
    raise NotImplementedError


def test_check_allreduce_update_passes_a_right_solution(capsys):
    assert cld.check_allreduce_update(good_update)
    assert cld.check_allreduce_update(packed_update)
    out = capsys.readouterr().out
    assert out.count("✓") == 4 and "1 all-reduce per rank" in out


def test_check_allreduce_update_fails_a_solution_without_the_allreduce(capsys):
    assert not cld.check_allreduce_update(local_update)
    assert "local means" in capsys.readouterr().out


def test_check_allreduce_update_reports_a_deadlock(capsys, monkeypatch):
    monkeypatch.setattr(cld._FakeGroup, "__init__", _short_timeout)
    assert not cld.check_allreduce_update(conditional_update)
    assert "deadlock" in capsys.readouterr().out


def test_check_allreduce_update_on_a_stub(capsys):
    assert not cld.check_allreduce_update(stub_update)
    assert "not written yet" in capsys.readouterr().out
    assert not cld.check_allreduce_update("not a function")


_init = cld._FakeGroup.__init__


def _short_timeout(self, world, timeout=5.0):
    _init(self, world, timeout=0.5)


# --------------------------------------------------------------------------- scaling


def test_bench_scaling_small():
    rows = cld.bench_scaling(n=4000, d=4, k=8, procs=(1, 2), iters=3, repeat=2, cores=2)
    assert [r["procs"] for r in rows] == [1, 2]
    assert [r["threads"] for r in rows] == [2, 1]  # the cores are divided among the processes
    for r in rows:
        assert r["backend"] == "gloo"
        assert r["time_per_iter"] > 0 and 0.0 <= r["comm_share"] <= 1.0
        assert r["spread"][0] <= r["time_per_iter"] <= r["spread"][1]
        assert sum(r["n_local"]) == 4000 and len(r["n_local"]) == r["procs"]
    assert rows[0]["speedup"] == 1.0
    # the same data, the same start, the same iterations: the same clustering
    assert rows[1]["inertia"] == pytest.approx(rows[0]["inertia"], rel=1e-5)
    with pytest.raises(ValueError, match="procs"):
        cld.bench_scaling(n=3, d=2, k=2, procs=(4,))
    with pytest.raises(ValueError, match="procs is empty"):
        cld.bench_scaling(n=3, d=2, k=2, procs=())


# --------------------------------------------------------------------------- the torchrun script


def test_torchrun_script_matches_the_single_process_result():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "kmeans_torchrun.py"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(script), "--points", "3000", "--dims", "4", "--clusters", "5", "--uneven",
           "--device", "cpu"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "rank 0:       273 points" in run.stdout and "rank 1:     2,727 points" in run.stdout
    assert "equal to the single-process result: yes" in run.stdout
