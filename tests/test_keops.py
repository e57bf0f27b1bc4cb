"""The KeOps engine agrees with the NumPy engine (CPU here; CUDA where there is one).

Every formula is compiled once per dimension and dtype (g++ on a CPU, ~6-8 s each) and
cached in KEOPS_CACHE_FOLDER, so the tests share one data shape: float32, d = 2.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import clusterlab as cl
from clusterlab.engines import keops_engine as ke
from tests._helpers import same_partition, six_blobs


@pytest.fixture(scope="module")
def keops_ok(keops_lazytensor):
    return keops_lazytensor


@pytest.fixture(scope="module")
def blobs():
    x, y, centers = six_blobs(seed=0, dtype=np.float32)
    return x, y, centers


def test_missing_pykeops_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pykeops", None)
    monkeypatch.setitem(sys.modules, "pykeops.torch", None)
    with pytest.raises(ImportError, match=r"pip install pykeops==2.3"):
        cl.kmeans(np.zeros((10, 2)), 2, backend="keops")


def test_auto_never_picks_keops(blobs):
    from clusterlab.engines import get_engine

    assert get_engine("auto", blobs[0]).name == "torch"


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_kmeans_agrees_with_numpy(keops_ok, blobs, metric):
    x, y, _ = blobs
    a = cl.kmeans(x, 6, seed=0, metric=metric, backend="keops")
    b = cl.kmeans(x, 6, seed=0, metric=metric, backend="numpy")
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.inertia == pytest.approx(b.inertia, rel=1e-4)
    np.testing.assert_allclose(a.centroids, b.centroids, rtol=1e-4, atol=1e-4)
    if metric == "euclidean":
        assert same_partition(a.labels, y)
    else:
        np.testing.assert_allclose(np.linalg.norm(a.centroids, axis=1), 1.0, atol=1e-5)


def test_assign_agrees_with_numpy(keops_ok, blobs):
    x, _, centers = blobs
    c = centers.astype(np.float32)
    d1, l1 = cl.assign(x, c, backend="keops")
    d2, l2 = cl.assign(x, c, backend="numpy")
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_allclose(d1, d2, rtol=1e-4, atol=1e-3)


def test_assign_keeps_digits_far_from_the_origin(keops_ok, blobs):
    x, _, centers = blobs
    far = (x.astype(np.float64) + 1e4).astype(np.float32)
    _, near_labels = cl.assign(x, centers.astype(np.float32), backend="keops")
    _, far_labels = cl.assign(far, (centers + 1e4).astype(np.float32), backend="keops")
    assert (near_labels != far_labels).mean() < 0.01


@pytest.mark.parametrize("kernel", ["gaussian", "flat"])
def test_meanshift_finds_the_same_centres(keops_ok, blobs, kernel):
    x, _, _ = blobs
    a = cl.meanshift(x, 3.0, kernel=kernel, backend="keops")
    b = cl.meanshift(x, 3.0, kernel=kernel, backend="numpy")
    assert a.centers.shape == b.centers.shape
    np.testing.assert_allclose(a.centers, b.centers, atol=1e-2)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_torch_in_torch_out(keops_ok, blobs):
    t = torch.from_numpy(blobs[0])
    res = cl.kmeans(t, 6, seed=0, backend="keops")
    assert isinstance(res.centroids, torch.Tensor) and res.labels.dtype == torch.int64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_agrees_with_cpu(keops_ok, blobs):
    ok, why = ke.keops_probe("cuda")  # in a child: KeOps's GPU compiler can segfault
    if not ok:
        pytest.skip(why)
    x, _, _ = blobs
    g = cl.kmeans(torch.from_numpy(x).cuda(), 6, seed=0, backend="keops")
    c = cl.kmeans(x, 6, seed=0, backend="numpy")
    np.testing.assert_array_equal(g.labels.cpu().numpy(), c.labels)
    ms = cl.meanshift(torch.from_numpy(x).cuda(), 3.0, backend="keops")
    assert ms.centers.is_cuda and len(ms.centers) == 6


# --- The probe: whether KeOps works on a device, learnt in a child process ---------------

SEGFAULT = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"


@pytest.fixture
def fresh_probe(monkeypatch, tmp_path):
    """No verdict cached in this process, and an empty folder for the on-disk ones."""
    monkeypatch.setattr(ke, "_PROBED", {})
    monkeypatch.setenv("KEOPS_CACHE_FOLDER", str(tmp_path))
    return tmp_path


@pytest.fixture
def fake_child(monkeypatch):
    """Replace the child process by a stub; ``calls`` counts how often it was started."""

    class Child:
        calls = 0
        returncode = 0
        stdout = ke._PROBE_OK
        stderr = ""
        raises = None

        @classmethod
        def run(cls, args, **kwargs):
            cls.calls += 1
            if cls.raises is not None:
                raise cls.raises
            return subprocess.CompletedProcess(args, cls.returncode, cls.stdout, cls.stderr)

    monkeypatch.setattr(ke.subprocess, "run", Child.run)
    monkeypatch.setattr(ke, "_pykeops_version", lambda: "2.3")
    return Child


def test_probe_reports_a_crash_by_its_signal(fresh_probe):
    ok, why = ke.keops_probe("cpu", _code=SEGFAULT)
    assert not ok
    assert why == "KeOps crashed a test process on cpu (SIGSEGV)"


def test_probe_names_the_known_gpu_issue(fresh_probe):
    ok, why = ke.keops_probe("cuda:0", _code=SEGFAULT)  # no GPU needed: the child crashes first
    assert not ok
    assert "on cuda:0 (SIGSEGV)" in why and "#330/#398" in why


def test_probe_reports_a_timeout(fresh_probe, monkeypatch):
    monkeypatch.setenv("CLUSTERLAB_KEOPS_PROBE_TIMEOUT", "0.5")
    ok, why = ke.keops_probe("cpu", _code="import time; time.sleep(60)")
    assert not ok
    assert "did not finish within 0.5 s" in why and "CLUSTERLAB_KEOPS_PROBE_TIMEOUT" in why


def test_probe_says_how_to_install_pykeops(fresh_probe):
    hide = "import sys\nsys.modules['pykeops'] = sys.modules['pykeops.torch'] = None\n"
    ok, why = ke.keops_probe("cpu", _code=hide + ke._PROBE_CODE)
    assert not ok
    assert "pykeops cannot be imported" in why and "pip install pykeops==2.3" in why


def test_probe_without_pykeops_starts_no_child(fresh_probe, fake_child, monkeypatch):
    monkeypatch.setattr(ke, "_pykeops_version", lambda: None)
    ok, why = ke.keops_probe("cpu")
    assert not ok and "pip install pykeops==2.3" in why
    assert fake_child.calls == 0


def test_probe_reports_the_last_error_line(fresh_probe):
    ok, why = ke.keops_probe("cpu", _code="import sys; sys.exit('no compiler, say')")
    assert not ok
    assert why == "KeOps failed a test formula on cpu (exit 1): no compiler, say"


def test_probe_runs_once_per_process_and_once_per_machine(fresh_probe, fake_child, monkeypatch):
    assert ke.keops_probe("cpu") == (True, "KeOps works on cpu")
    assert ke.keops_available("cpu") and ke.keops_available()
    assert fake_child.calls == 1
    monkeypatch.setattr(ke, "_PROBED", {})  # a new Python process: the verdict is on disk
    assert ke.keops_probe("cpu") == (True, "KeOps works on cpu")
    assert fake_child.calls == 1
    assert len(list(fresh_probe.glob("clusterlab-probe-*.json"))) == 1
    assert ke.keops_probe("cpu", refresh=True)[0]
    assert fake_child.calls == 2


def test_a_crash_is_remembered_on_disk(fresh_probe, fake_child, monkeypatch):
    fake_child.returncode, fake_child.stdout = -11, ""
    assert ke.keops_probe("cpu") == (False, "KeOps crashed a test process on cpu (SIGSEGV)")
    monkeypatch.setattr(ke, "_PROBED", {})
    assert ke.keops_probe("cpu")[1].endswith("(SIGSEGV)")
    assert fake_child.calls == 1


def test_a_timeout_is_not_remembered_on_disk(fresh_probe, fake_child, monkeypatch):
    fake_child.raises = subprocess.TimeoutExpired("python", 1.0)
    assert not ke.keops_probe("cpu")[0]
    assert ke.keops_probe("cpu")[0] is False and fake_child.calls == 1  # cached in-process
    monkeypatch.setattr(ke, "_PROBED", {})
    fake_child.raises = None
    assert ke.keops_probe("cpu")[0]  # a new process tries again
    assert fake_child.calls == 2


def test_a_corrupt_disk_cache_is_ignored(fresh_probe, fake_child, monkeypatch):
    ke.keops_probe("cpu")
    for f in fresh_probe.glob("clusterlab-probe-*.json"):
        f.write_text("{not json")
    monkeypatch.setattr(ke, "_PROBED", {})
    assert ke.keops_probe("cpu")[0]
    assert fake_child.calls == 2


def test_engine_on_a_gpu_where_keops_crashes_raises(monkeypatch):
    pytest.importorskip("pykeops")
    reason = "KeOps crashed a test process on cuda:0 (SIGSEGV)"
    monkeypatch.setattr(ke, "keops_probe", lambda device: (False, reason))
    with pytest.raises(RuntimeError, match=r"cannot run on cuda:0: .*SIGSEGV.*backend='torch'"):
        ke.KeopsEngine("cuda:0")


def test_the_real_probe_works_on_this_cpu(keops_ok, monkeypatch):
    # keops_ok: pykeops compiled a formula in this process, so the child must manage too.
    monkeypatch.setattr(ke, "_PROBED", {})
    ok, why = ke.keops_probe("cpu", refresh=True)
    assert ok, why
