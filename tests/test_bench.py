"""The benchmark command runs end to end on tiny sizes and writes honest JSON."""

from __future__ import annotations

import json

import pytest

from clusterlab import bench


def test_bench_command_writes_json_and_plot(tmp_path, capsys):
    out = tmp_path / "run.json"
    status = bench.main([
        "--kmeans", "3000,2,8", "--meanshift", "600,2.5", "--engines", "torch,numpy,sklearn,loop",
        "--iters", "3", "--steps", "2", "--repeat", "2", "--device", "cpu", "--out", str(out),
    ])
    assert status == 0
    printed = capsys.readouterr().out
    assert "k-means  n=3,000 d=2 k=8" in printed and "mean shift  n=600" in printed
    result = json.loads(out.read_text())
    assert result["meta"]["versions"]["torch"].startswith("2.13")
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
    assert names == ["clusterlab-torch", "clusterlab-numpy", "numpy-loop", "sklearn-meanshift (flat)"]
    assert len({r["n_clusters"] for r in ms[:3]}) == 1  # the same steps find the same clusters
    assert out.with_suffix(".png").stat().st_size > 1000


def test_bad_size_is_refused():
    with pytest.raises(SystemExit, match="needs 3 comma-separated numbers"):
        bench.main(["--kmeans", "1000,2", "--no-save"])


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


def test_recorded_shows_the_latest_record(tmp_path):
    assert "no benchmark recorded" in bench.recorded(folder=tmp_path)
    bench.main(["--kmeans", "2000,2,4", "--meanshift", "300,2.5", "--engines", "torch,numpy",
                "--iters", "2", "--steps", "1", "--repeat", "1", "--device", "cpu",
                "--out", str(tmp_path / "a.json")])
    text = bench.recorded("meanshift", folder=tmp_path)
    assert "no cuda record yet" in text and "a.json" in text
    assert "mean shift  n=300" in text and "k-means" not in text.split("date:")[1]
