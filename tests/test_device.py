"""Tests of clusterlab.device: device choice, names, synchronisation, timing."""

from __future__ import annotations

import dataclasses
import statistics
import time

import pytest
import torch

import clusterlab.device as cdev
from clusterlab.device import (
    Timing,
    default_device,
    device_name,
    format_seconds,
    synchronize,
    timeit,
)

HAS_CUDA = torch.cuda.is_available()


@pytest.fixture(autouse=True)
def _no_device_env(monkeypatch):
    """Tests choose the device themselves, whatever the caller's environment says."""
    monkeypatch.delenv("CLUSTERLAB_DEVICE", raising=False)


# --------------------------------------------------------------------------- devices


def test_default_device_matches_cuda_availability():
    dev = default_device()
    assert isinstance(dev, torch.device)
    assert dev.type == ("cuda" if HAS_CUDA else "cpu")
    assert default_device("auto") == dev


def test_default_device_prefer_cpu_forces_cpu():
    assert default_device("cpu") == torch.device("cpu")


def test_default_device_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == torch.device("cpu")
    with pytest.raises(RuntimeError, match="cuda"):
        default_device("cuda")


def test_default_device_reads_environment(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("CLUSTERLAB_DEVICE", "cpu")
    assert default_device() == torch.device("cpu")
    assert default_device("cuda").type == "cuda"  # an explicit prefer wins
    monkeypatch.setenv("CLUSTERLAB_DEVICE", "")
    assert default_device().type == "cuda"
    monkeypatch.setenv("CLUSTERLAB_DEVICE", "tpu")
    with pytest.raises(ValueError, match="CLUSTERLAB_DEVICE.*'tpu'"):
        default_device()


def test_default_device_with_cuda_reported(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device().type == "cuda"
    assert default_device("cuda").type == "cuda"
    assert default_device("cpu").type == "cpu"


@pytest.mark.parametrize(
    ("prefer", "exc"), [("gpu", ValueError), ("tpu", ValueError), (1, TypeError)]
)
def test_default_device_bad_prefer(prefer, exc):
    with pytest.raises(exc, match=f"prefer.*{prefer!r}"):
        default_device(prefer)


def test_device_name_cpu(monkeypatch):
    monkeypatch.setattr(cdev, "_cpu_model", lambda: "Test CPU 9000")
    name = device_name("cpu")
    assert name == f"CPU: Test CPU 9000, {torch.get_num_threads()} threads"
    assert device_name(torch.device("cpu")) == name


def test_device_name_cpu_real():
    name = device_name("cpu")
    assert name.startswith("CPU: ") and name.endswith(" threads")
    assert len(name) > len("CPU: ,  threads")


def test_device_name_default_matches_default_device():
    expected = device_name(default_device())
    assert device_name() == expected


def test_device_name_bad_device():
    with pytest.raises(ValueError, match="'banana'"):
        device_name("banana")
    with pytest.raises(TypeError, match="device.*3.5"):
        device_name(3.5)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_device_name_and_synchronize_cuda():
    name = device_name("cuda")
    assert name == torch.cuda.get_device_name(0)
    assert not name.startswith("CPU")
    x = torch.randn(1000, 1000, device="cuda")
    t = timeit(lambda: x @ x, repeat=3, device="cuda")
    assert t.median > 0 and len(t.times) == 3
    synchronize(torch.device("cuda"))


def test_synchronize_cpu_and_none_are_noops(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: calls.append(a))
    synchronize("cpu")
    synchronize(torch.device("cpu"))
    if not HAS_CUDA:
        synchronize(None)
    assert calls == []


def test_synchronize_cuda_calls_torch(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: calls.append(a))
    synchronize("cuda:0")
    assert calls == [(torch.device("cuda:0"),)]


def test_synchronize_bad_device():
    with pytest.raises(ValueError, match="'nope'"):
        synchronize("nope")


# --------------------------------------------------------------------------- format_seconds


@pytest.mark.parametrize(
    ("s", "text"),
    [
        (850e-9, "850 ns"),
        (12.3e-6, "12.3 µs"),
        (4.56e-3, "4.56 ms"),
        (1.23, "1.23 s"),
        (0.0, "0 s"),
        (0.5e-9, "0.5 ns"),
        (999.96e-6, "1.00 ms"),  # rounding carries into the next unit
        (42.0, "42.0 s"),
        (3600.0, "3600 s"),
    ],
)
def test_format_seconds(s, text):
    assert format_seconds(s) == text


def test_format_seconds_bad():
    with pytest.raises(ValueError, match="-1"):
        format_seconds(-1.0)
    with pytest.raises(ValueError, match="nan"):
        format_seconds(float("nan"))
    with pytest.raises(TypeError, match="'1 s'"):
        format_seconds("1 s")


# --------------------------------------------------------------------------- timeit


class SleepyFn:
    """Callable that sleeps the next duration of a list each call, counting calls."""

    def __init__(self, durations):
        self.durations = list(durations)
        self.calls = 0

    def __call__(self):
        time.sleep(self.durations[self.calls])
        self.calls += 1


def test_timeit_calls_and_median():
    # one warm-up of 60 ms, then three timed calls of 1, 40 and 15 ms: the gaps are
    # wide so that sleep overshoot on a busy machine cannot reorder them
    fn = SleepyFn([0.060, 0.001, 0.040, 0.015])
    t = timeit(fn, repeat=3, warmup=1)
    assert fn.calls == 4
    assert isinstance(t, Timing)
    assert t.repeat == 3 and len(t.times) == 3
    assert t.median == statistics.median(t.times)
    assert t.first >= 0.060
    assert t.times[0] >= 0.001 and t.times[1] >= 0.040 and t.times[2] >= 0.015
    # the median is the 15 ms call: not the warm-up, not the slow one, not the fast one
    assert t.median == t.times[2]
    assert 0.015 <= t.median < 0.040


def test_timeit_without_warmup_first_is_first_timed_call():
    fn = SleepyFn([0.004, 0.001])
    t = timeit(fn, repeat=2, warmup=0)
    assert fn.calls == 2
    assert t.first == t.times[0]
    assert t.first >= 0.004


def test_timeit_warmup_count():
    fn = SleepyFn([0.0] * 10)
    timeit(fn, repeat=4, warmup=3)
    assert fn.calls == 7


def test_timeit_synchronizes_around_each_call(monkeypatch):
    seen = []
    monkeypatch.setattr(cdev, "synchronize", lambda device=None: seen.append(device))
    timeit(lambda: None, repeat=2, warmup=1, device="cpu")
    assert len(seen) == 2 * 3  # before and after each of the 3 calls


def test_timing_is_frozen_and_str():
    t = Timing(median=0.0123, times=(0.0120, 0.0123, 0.0127), first=0.5, repeat=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.median = 1.0
    s = str(t)
    assert s.startswith("12.3 ms ± ")
    assert s.endswith(" ms (median of 3)")
    assert "0.29" in s  # population std of the times, in ms
    assert t.min == 0.0120


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"repeat": 0}, ValueError, "repeat.*0"),
        ({"warmup": -1}, ValueError, "warmup.*-1"),
        ({"repeat": 2.0}, TypeError, "repeat.*2.0"),
        ({"device": "nope"}, ValueError, "'nope'"),
    ],
)
def test_timeit_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        timeit(lambda: None, **kwargs)


def test_timeit_fn_not_callable():
    with pytest.raises(TypeError, match="fn.*42"):
        timeit(42)


def test_timeit_interleaved_times_every_engine_in_each_round():
    from clusterlab.device import timeit_interleaved

    order = []
    fns = {name: (lambda name=name: order.append(name)) for name in "abc"}
    fns["c"] = (fns["c"], "cpu")  # (fn, device) form
    out = timeit_interleaved(fns, repeat=3, warmup=1)
    assert list(out) == ["a", "b", "c"]
    assert order[:3] == ["a", "b", "c"]  # warm-up
    # three rounds, each engine once per round, the order rotated
    assert order[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    for t in out.values():
        assert len(t.times) == 3 and t.repeat == 3 and t.first >= 0
    with pytest.raises(TypeError, match="must be callable"):
        timeit_interleaved({"a": 3})
    with pytest.raises(TypeError, match="non-empty dict"):
        timeit_interleaved({})
    with pytest.raises(ValueError, match="repeat must be >= 1"):
        timeit_interleaved({"a": lambda: None}, repeat=0)
