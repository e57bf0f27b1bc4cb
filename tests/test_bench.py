"""The benchmark command runs end to end on tiny sizes and writes honest JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clusterlab import bench
from clusterlab import compare as cmp


def test_bench_command_writes_json_and_plot(tmp_path, capsys):
    out = tmp_path / "run.json"
    status = bench.main([
        "--kmeans", "3000,2,8", "--meanshift", "600,2.5", "--engines", "torch,numpy,sklearn,loop,flat",
        "--iters", "3", "--steps", "2", "--repeat", "2", "--device", "cpu", "--out", str(out),
    ])
    assert status == 0
    printed = capsys.readouterr().out
    assert "k-means  n=3,000 d=2 k=8" in printed and "mean shift  n=600" in printed
    result = json.loads(out.read_text())
    import torch  # the version that ran, whichever it is (the pin is test_environment's)

    assert result["meta"]["versions"]["torch"] == torch.__version__
    (km,) = result["kmeans"]
    assert [r["engine"] for r in km] == ["clusterlab-torch", "clusterlab-numpy", "sklearn"]
    base = km[0]
    assert base["ratio"] == pytest.approx(1.0)
    for r in km:
        assert len(r["times"]) == 2
        assert r["n_iter"] == 3
        # same data, same init, same iterations: the same objective, computed the same way
        assert r["inertia"] == pytest.approx(base["inertia"], rel=1e-4)
    (ms,) = result["meanshift"]
    names = [r["engine"] for r in ms]
    assert names == ["clusterlab-torch", "clusterlab-numpy", "numpy-loop", "clusterlab-torch (flat)",
                     "sklearn-meanshift (flat)"]
    assert len({r["n_clusters"] for r in ms[:3]}) == 1  # the same steps find the same clusters
    # scikit-learn's flat window at the radius with the Gaussian's spread (2 h in 2-D), not h:
    # there it finds the six blobs (at radius h it split them: 11 clusters in the old record)
    flat = {r["engine"]: r for r in ms if r["kernel"] == "flat"}
    assert set(flat) == {"clusterlab-torch (flat)", "sklearn-meanshift (flat)"}
    assert all(r["flat_radius"] == pytest.approx(5.0) for r in ms)
    assert flat["sklearn-meanshift (flat)"]["n_clusters"] == 6
    assert "flat kernels at radius 5" in printed
    assert out.with_suffix(".png").stat().st_size > 1000


@pytest.mark.parametrize(("argv", "says"), [
    (["--kmeans", "1000,2"], "argument --kmeans: '1000,2': needs 3 comma-separated numbers, N,D,K"),
    (["--meanshift", "100,nan"], "argument --meanshift: '100,nan': H (bandwidth) must be a finite number > 0"),
    (["--meanshift", "100,-2.5"], "argument --meanshift: '100,-2.5': H (bandwidth) must be a finite number > 0"),
    (["--meanshift", "1e2.5,2"], "argument --meanshift: '1e2.5,2': N (points) must be a whole number"),
    (["--kmeans", "1000,x,3"], "argument --kmeans: '1000,x,3': D (dimensions) must be a whole number, got 'x'"),
    (["--kmeans", "1000,2.5,3"], "D (dimensions) must be a whole number, got '2.5'"),
    (["--kmeans", "0,2,3"], "N (points) must be >= 1, got 0"),
    (["--kmeans", "1000,2,inf"], "K (clusters) must be a whole number, got 'inf'"),
    (["--kmeans", "10,2,50"], "K (clusters) must be <= N (points), got K=50 > N=10"),
    (["--kmeans", "1000,2,3", "--iters", "0"], "--iters must be >= 1, got 0"),
    (["--kmeans", "1000,2,3", "--background-load", "-1"], "--background-load must be >= 0, got -1"),
])
def test_bad_size_is_refused_naming_the_flag_and_value(capsys, argv, says):
    with pytest.raises(SystemExit) as exc:
        bench.main([*argv, "--no-save"])
    assert exc.value.code == 2  # argparse's usage error, not a traceback
    err = capsys.readouterr().err
    assert says in err and "invalid literal" not in err


def test_sizes_accept_underscores_and_exponents():
    assert bench._KMEANS_SIZE("100_000,2,1e2") == (100_000, 2, 100)
    assert bench._MEANSHIFT_SIZE("1500,2.5") == (1500, 2.5)


def test_unknown_engine_is_refused(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--kmeans", "1000,2,3", "--engines", "torch,fiass", "--no-save"])
    assert "--engines: unknown ['fiass']" in capsys.readouterr().err


def test_faiss_with_labels_times_the_same_output():
    pytest.importorskip("faiss")
    rows = bench.bench_kmeans(3000, 4, 6, engines=["torch", "faiss", "faiss+labels"], niter=3,
                              repeat=1, device="cpu")
    by = {r["engine"]: r for r in rows}
    assert set(by) == {"clusterlab-torch", "faiss", "faiss+labels"}
    # the same training: the same centroids and objective; the labels cost one more pass
    assert by["faiss+labels"]["inertia"] == pytest.approx(by["faiss"]["inertia"], rel=1e-6)
    assert by["faiss+labels"]["n_iter"] == by["faiss"]["n_iter"] == 3


def _tiny_defaults(monkeypatch):
    """The default (course) sizes made tiny, so that a course record takes a second."""
    monkeypatch.setattr(bench, "KMEANS_CPU", [(2000, 2, 4)])
    monkeypatch.setattr(bench, "MEANSHIFT_CPU", [(300, 2.5)])
    monkeypatch.setattr(bench, "KMEANS_QUICK", [(1000, 2, 3)])
    monkeypatch.setattr(bench, "MEANSHIFT_QUICK", [(120, 2.5)])
    monkeypatch.setattr(bench, "KMEANS_ENGINES", ("torch", "numpy"))
    monkeypatch.setattr(bench, "MEANSHIFT_ENGINES", ("torch", "numpy"))


def test_recorded_shows_the_latest_course_record(tmp_path, monkeypatch):
    _tiny_defaults(monkeypatch)
    assert "no benchmark recorded" in bench.recorded(folder=tmp_path)
    fast = ["--repeat", "1", "--device", "cpu"]
    bench.main([*fast, "--out", str(tmp_path / "a.json")])  # default sizes: a course record
    text = bench.recorded("meanshift", folder=tmp_path)
    assert "no cuda record yet" in text and "a.json" in text
    assert "mean shift  n=300" in text and "k-means" not in text.split("date:")[1]
    # a later smoke run, or one at other sizes, in the same folder is passed over ...
    bench.main([*fast, "--quick", "--out", str(tmp_path / "b.json")])
    bench.main([*fast, "--kmeans", "1500,2,3", "--out", str(tmp_path / "c.json")])
    for name, why in (("b.json", "--quick"), ("c.json", "sizes other than the default")):
        meta = json.loads((tmp_path / name).read_text())["meta"]
        assert meta["course_record"] is False and meta["not_course_record_because"] == [why]
        assert not bench.is_course_record(meta)
    assert "a.json" in bench.recorded(folder=tmp_path)
    assert "a.json" in bench.recorded("kmeans", folder=tmp_path, prefer="cpu")
    # ... unless it is named
    named = bench.recorded("kmeans", folder=tmp_path, name="b.json")
    assert "b.json" in named and "k-means  n=1,000 d=2 k=3" in named
    assert "not a course record: --quick" in named
    assert "no benchmark record 'x.json'" in bench.recorded(folder=tmp_path, name="x.json")


def test_a_smoke_run_does_not_replace_the_course_record(tmp_path, monkeypatch, capsys):
    _tiny_defaults(monkeypatch)
    monkeypatch.chdir(tmp_path)  # the default folders are relative to where the command runs
    bench.main(["--quick", "--repeat", "1", "--device", "cpu"])
    assert not (tmp_path / "data" / "benchmarks").exists()
    (smoke,) = (tmp_path / "data" / "cache" / "benchmarks").glob("*.json")
    assert smoke.name.endswith("_quick.json")
    assert "not a course record: --quick" in capsys.readouterr().out
    bench.main(["--repeat", "1", "--device", "cpu"])  # default sizes: the course's folder
    (rec,) = (tmp_path / "data" / "benchmarks").glob("*.json")
    assert json.loads(rec.read_text())["meta"]["course_record"] is True
    assert rec.name in bench.recorded(folder=tmp_path / "data" / "benchmarks")


def test_records_written_before_the_flag_are_judged_by_their_command():
    assert bench.is_course_record({"command": "python -m clusterlab.bench --threads 2 --repeat 5 --memory"})
    assert not bench.is_course_record({"command": "python -m clusterlab.bench --quick"})
    assert not bench.is_course_record({"command": "python -m clusterlab.bench --kmeans 1000,2,3"})
    assert not bench.is_course_record({"command": "python -m clusterlab.bench", "precision": "high"})
    # what the notebooks show from the repository's folder is a course record
    shown = bench.recorded("kmeans", prefer="cpu").split("recorded in data/benchmarks/")[1].split(" ")[0]
    folder = Path(bench.__file__).resolve().parent.parent / "data" / "benchmarks"
    assert bench.is_course_record(json.loads((folder / shown).read_text())["meta"])


def test_background_load_runs_beside_the_timings_and_is_recorded(tmp_path, capsys):
    import os

    with bench.background_load(2) as pids:
        assert len(pids) == 2
        for pid in pids:
            os.kill(pid, 0)  # running
    for pid in pids:  # stopped and reaped
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    out = tmp_path / "load.json"
    assert bench.main(["--kmeans", "3000,2,8", "--meanshift", "--engines", "torch,numpy", "--repeat", "2",
                       "--device", "cpu", "--background-load", "1", "--out", str(out)]) == 0
    meta = json.loads(out.read_text())["meta"]
    assert meta["background_load"] == 1 and meta["course_record"] is False
    assert "--background-load 1" in meta["not_course_record_because"]
    load = meta["load"]
    assert load["cpus"] >= 1
    if load["background_busy_cpus"] is not None:  # Linux: measured from /proc
        assert load["background_busy_cpus"] > 0 and load["own_busy_cpus"] > 0
        assert load["other_busy_cpus"] >= 0
    printed = capsys.readouterr().out
    assert "background load: 1 busy-loop processes" in printed


# --------------------------------------------------------------------------------------
# optional peers, --precision, the one yardstick
# --------------------------------------------------------------------------------------

TINY = ["--kmeans", "2000,2,4", "--meanshift", "300,2.5", "--iters", "2", "--steps", "1",
        "--repeat", "1", "--device", "cpu"]


def _run(tmp_path, argv):
    out = tmp_path / "run.json"
    assert bench.main([*TINY, *argv, "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_peers_are_not_imported_with_the_bench():
    code = ("import sys, clusterlab.bench, clusterlab.compare; "
            "print(sorted(m for m in ('flash_kmeans', 'fast_pytorch_kmeans', 'faiss', 'triton') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("peer", "modules", "install"), [
    ("fast-pytorch-kmeans", ["fast_pytorch_kmeans"], "pip install fast-pytorch-kmeans=="),
    ("flash-kmeans", ["flash_kmeans", "flash_kmeans.kmeans_triton_impl"], "pip install flash-kmeans=="),
])
def test_a_missing_peer_is_skipped_with_what_to_install(tmp_path, capsys, monkeypatch, peer, modules,
                                                        install):
    for mod in modules:  # the import fails, whether the package is installed or not
        monkeypatch.setitem(sys.modules, mod, None)
    result = _run(tmp_path, ["--engines", f"torch,{peer}"])
    (km,) = result["kmeans"]
    assert [r["engine"] for r in km] == ["clusterlab-torch"]
    (skip,) = [s for s in result["skipped"] if s["engine"] == peer]
    assert peer in skip["reason"] and "cannot be imported" in skip["reason"]
    assert install in skip["reason"]
    if peer == "flash-kmeans":  # and on this CPU run it says what device it needs
        assert "runs only on CUDA" in skip["reason"]
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"skipped {peer}:")]
    assert len(printed) == 1 and install in printed[0]


def test_triton_engines_are_skipped_off_cuda(tmp_path, capsys):
    result = _run(tmp_path, ["--engines", "torch,triton"])
    (skip,) = [s for s in result["skipped"] if s["engine"] == "triton"]
    assert "triton" in skip["reason"].lower()
    assert [r["engine"] for r in result["kmeans"][0]] == ["clusterlab-torch"]
    assert [r["engine"] for r in result["meanshift"][0]] == ["clusterlab-torch"]
    assert "skipped triton:" in capsys.readouterr().out


def test_precision_refuses_bad_values(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--kmeans", "1000,2,3", "--precision", "low", "--no-save"])
    err = capsys.readouterr().err
    assert "--precision" in err and "invalid choice: 'low'" in err
    assert "highest" in err and "medium" in err


def test_precision_needs_a_clusterlab_that_takes_it(monkeypatch, capsys):
    monkeypatch.setattr(bench, "_takes_precision", lambda: False)
    with pytest.raises(SystemExit):
        bench.main(["--kmeans", "1000,2,3", "--precision", "high", "--no-save"])
    assert "--precision high" in capsys.readouterr().err


def test_precision_reaches_every_table(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(bench, "_takes_precision", lambda: True)
    monkeypatch.setattr(bench, "bench_kmeans",
                        lambda *a, **kw: seen.append(("kmeans", kw["precision"])) or [])
    monkeypatch.setattr(bench, "bench_meanshift",
                        lambda *a, **kw: seen.append(("meanshift", kw["precision"])) or [])
    result = _run(tmp_path, ["--engines", "torch", "--precision", "medium"])
    assert seen == [("kmeans", "medium"), ("meanshift", "medium")]
    assert result["meta"]["precision"] == "medium"


@pytest.mark.parametrize(("precision", "passed"), [("highest", None), ("high", "high"),
                                                   ("medium", "medium")])
def test_clusterlab_gets_precision_only_when_not_highest(monkeypatch, precision, passed):
    import clusterlab as cl

    real, got = cl.kmeans, []

    def spy(*args, **kwargs):
        got.append(kwargs.pop("precision", None))
        return real(*args, **kwargs)

    monkeypatch.setattr(cl, "kmeans", spy)
    x = cl.data.make_gaussian_cloud(500, 3, seed=1)
    rows = cmp.run_comparison(x, 3, niter=2, repeat=1, engines=["clusterlab-torch"],
                              precision=precision, device="cpu")
    assert got and set(got) == {passed}
    assert rows[0]["precision"] == precision and rows[0]["note"] == ""


def test_an_engine_without_that_precision_runs_at_highest_and_says_so(monkeypatch):
    import clusterlab as cl
    import clusterlab.engines

    real_get, real_kmeans, got = clusterlab.engines.get_engine, cl.kmeans, []

    def get_engine(backend, x, precision="highest"):
        if backend == "numpy" and precision != "highest":
            raise ValueError(f"precision={precision!r} is not available with backend='numpy'")
        return real_get(backend, x)

    def spy(*args, **kwargs):
        got.append(kwargs.pop("precision", None))
        return real_kmeans(*args, **kwargs)

    monkeypatch.setattr(clusterlab.engines, "get_engine", get_engine)
    monkeypatch.setattr(cl, "kmeans", spy)
    assert cmp.engine_precision("torch", np.zeros((2, 2)), "medium") == ("medium", "")
    x = cl.data.make_gaussian_cloud(500, 3, seed=1)
    (row,) = cmp.run_comparison(x, 3, niter=2, repeat=1, engines=["clusterlab-numpy"],
                                precision="high")
    assert got and set(got) == {None}  # run at its default, not refused
    assert row["precision"] == "highest"
    assert "not like-for-like with precision='high'" in row["note"]


def test_flash_kmeans_input_follows_precision():
    assert cmp._flash_input("high")[:2] == ("float32", "tf32")
    assert cmp._flash_input("medium")[:2] == ("float16", "fp16")
    dtype, label, note = cmp._flash_input("highest")  # still float32 in, TF32 products: say so
    assert dtype == "float32" and label.startswith("tf32") and "not like-for-like" in label
    assert "TF32" in note and "not like-for-like" in note


def _fake_peer(centroids, calls, note="fake peer"):
    def adapter(x32, c0, *, niter, seed, device, precision):
        calls.append({"c0": c0.copy(), "niter": niter, "precision": precision})
        return cmp.PeerRun(call=lambda: centroids, read=lambda res: (res, float("nan"), niter),
                           device=None, version="9.9", where="nowhere", precision="float32",
                           note=note)

    return adapter


def test_a_peer_row_gets_clusterlabs_yardstick(tmp_path, capsys, monkeypatch):
    import clusterlab as cl

    x = cl.data.make_gaussian_cloud(2000, 2, seed=0)  # what --kmeans 2000,2,4 clusters
    known = np.array([[0.0, 0.0], [3.0, 1.0], [-2.0, 5.0], [1.0, -4.0]], dtype=np.float32)
    calls, measured = [], []
    monkeypatch.setitem(cmp.PEERS, "fast-pytorch-kmeans", _fake_peer(known, calls))
    monkeypatch.setattr(cmp, "peer_unavailable", lambda name, device=None: None)
    real = cmp.same_yardstick
    monkeypatch.setattr(cmp, "same_yardstick",
                        lambda xe, c: measured.append(np.array(c)) or real(xe, c))
    result = _run(tmp_path, ["--engines", "torch,sklearn,fast-pytorch-kmeans"])
    km = {r["engine"]: r for r in result["kmeans"][0]}
    assert list(km) == ["clusterlab-torch", "sklearn", "fast-pytorch-kmeans"]
    # one function measured every row, the peer's from the centroids it returned
    assert len(measured) == 3 and np.array_equal(measured[2], known)
    dist, _ = cl.assign(x.astype(np.float64), known.astype(np.float64))
    assert km["fast-pytorch-kmeans"]["inertia"] == pytest.approx(float(dist.sum()), rel=1e-12)
    assert km["fast-pytorch-kmeans"]["reported_inertia"] is None  # it reports none: not NaN
    assert km["fast-pytorch-kmeans"]["inertia"] > 1.01 * km["clusterlab-torch"]["inertia"]
    # the same start and the same number of iterations as clusterlab's rows
    (call,) = calls[:1]
    assert np.array_equal(call["c0"], cl.kmeans_plusplus(x, 4, seed=0)) and call["niter"] == 2
    assert "note, fast-pytorch-kmeans: fake peer" in capsys.readouterr().out


def test_a_failing_peer_is_left_out_with_its_reason(monkeypatch):
    import clusterlab as cl

    def broken(x32, c0, **kwargs):
        def call():
            raise RuntimeError("no kernel for d=2\nsecond line")

        return cmp.PeerRun(call, lambda res: res, None, "0", "here", "float32")

    monkeypatch.setitem(cmp.PEERS, "flash-kmeans", broken)
    monkeypatch.setitem(cmp.PEERS, "faiss-gpu",
                        _fake_peer(np.full((4, 2), np.nan, np.float32), []))
    skipped = []
    rows = bench.bench_kmeans(2000, 2, 4, engines=["torch", "flash-kmeans", "faiss-gpu"], niter=2,
                              repeat=2, device="cpu", skipped=skipped)
    assert [r["engine"] for r in rows] == ["clusterlab-torch"]
    assert skipped == [
        {"engine": "flash-kmeans", "reason": "flash-kmeans failed: RuntimeError: no kernel for d=2",
         "table": "k-means n=2,000 d=2 k=4"},
        {"engine": "faiss-gpu", "reason": "faiss-gpu returned centroids that are not finite",
         "table": "k-means n=2,000 d=2 k=4"},
    ]
    x = cl.data.make_gaussian_cloud(500, 2, seed=0)
    with pytest.raises(RuntimeError, match="no kernel"):  # without a skipped dict: it raises
        cmp.run_comparison(x, 4, niter=1, repeat=1, engines=["flash-kmeans"], device="cpu")


def test_quick_still_runs_end_to_end(capsys):
    status = bench.main(["--quick", "--no-save", "--repeat", "1", "--iters", "2", "--steps", "1",
                         "--device", "cpu",
                         "--engines", "torch,numpy,triton,flash-kmeans,fast-pytorch-kmeans,faiss-gpu"])
    assert status == 0
    out = capsys.readouterr().out
    for title in ("k-means  n=20,000 d=2 k=50", "k-means  n=20,000 d=32 k=64", "mean shift  n=1,500"):
        assert title in out
    assert "skipped flash-kmeans:" in out and "skipped triton:" in out
    assert "| engine | device | precision |" in out


def test_distributed_scaling_table_is_measured_and_saved_apart(tmp_path, capsys):
    out = tmp_path / "dist.json"
    argv = ["--distributed", "2", "--kmeans", "3000,4,8", "--meanshift", "--engines", "torch",
            "--iters", "2", "--repeat", "1", "--out", str(out)]
    assert bench.main(argv) == 0
    text = capsys.readouterr().out
    assert "k-means over processes  n=3,000 d=4 k=8, gloo" in text
    rec = json.loads(out.read_text())
    rows = rec["distributed"]
    assert [r["procs"] for r in rows] == [1, 2]
    assert rows[0]["inertia"] == pytest.approx(rows[1]["inertia"], rel=1e-5)  # same clustering
    assert all(r["time_per_iter"] > 0 and 0 <= r["comm_share"] <= 1 for r in rows)
    assert rec["meta"]["course_record"] is False  # not what the course shows
    with pytest.raises(SystemExit):
        bench.main(["--distributed", "-1"])


def test_sizes_for_one_algorithm_run_only_its_tables(tmp_path, monkeypatch):
    _tiny_defaults(monkeypatch)
    fast = ["--repeat", "1", "--device", "cpu", "--engines", "torch"]
    bench.main([*fast, "--kmeans", "1500,2,3", "--out", str(tmp_path / "k.json")])
    bench.main([*fast, "--meanshift", "150,2.5", "--out", str(tmp_path / "m.json")])
    bench.main([*fast, "--kmeans", "1500,2,3", "--meanshift", "150,2.5", "--out", str(tmp_path / "b.json")])
    tables = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in "kmb"}
    assert (len(tables["k"]["kmeans"]), len(tables["k"]["meanshift"])) == (1, 0)
    assert (len(tables["m"]["kmeans"]), len(tables["m"]["meanshift"])) == (0, 1)
    assert (len(tables["b"]["kmeans"]), len(tables["b"]["meanshift"])) == (1, 1)


def test_recorded_engines_keeps_the_rows_a_lesson_compares(tmp_path, monkeypatch):
    _tiny_defaults(monkeypatch)
    bench.main(["--repeat", "1", "--device", "cpu", "--out", str(tmp_path / "a.json")])
    full = bench.recorded("kmeans", folder=tmp_path)
    assert "| clusterlab-numpy |" in full
    text = bench.recorded("kmeans", folder=tmp_path, engines=("clusterlab-torch",))
    assert "| clusterlab-torch |" in text and "| clusterlab-numpy |" not in text
    assert text.splitlines()[:3] == full.splitlines()[:3]  # which record, where and when
    # a table left with one of two wanted engines compares nothing: left out
    none = bench.recorded("kmeans", folder=tmp_path, engines=("clusterlab-torch", "faiss"))
    assert "| engine |" not in none and "recorded in" in none
    both = bench.recorded(folder=tmp_path, engines=("clusterlab-torch", "clusterlab-numpy"))
    assert both.count("| clusterlab-numpy |") == 2  # the k-means and the mean-shift table
    with pytest.raises(TypeError, match="engines must be a sequence"):
        bench.recorded(folder=tmp_path, engines="faiss")
