"""cl.device.transfer_seconds: one copy of a tensor to a device, timed fairly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import clusterlab as cl
from clusterlab.device import Transfer, transfer_seconds


def test_host_copy_is_timed_and_described():
    x = torch.arange(3 * 2**16, dtype=torch.float32).reshape(-1, 3)
    t = transfer_seconds(x, "cpu", repeat=3)
    assert isinstance(t, Transfer)
    assert t.nbytes == x.numel() * 4 and (t.source, t.target) == ("cpu", "cpu")
    assert t.pinned is False  # no CUDA device takes part: pinning is ignored
    assert len(t.timing.times) == 3 and t.timing.median > 0 and t.bandwidth > 0
    text = str(t)
    assert "0.75 MiB cpu -> cpu" in text and "GB/s" in text and "median of 3" in text


def test_pinned_is_ignored_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert (
        transfer_seconds(torch.ones(10), torch.device("cpu"), pinned=True, repeat=1).pinned is False
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((np.ones(3), "cpu"), {}, TypeError, "x must be a torch.Tensor, got ndarray"),
        ((torch.ones(3), 3), {}, TypeError, "device must be a str"),
        ((torch.ones(3), "cpu"), {"pinned": 1}, TypeError, "pinned must be a bool"),
        ((torch.ones(3), "cpu"), {"repeat": 0}, ValueError, "repeat must be >= 1"),
    ],
)
def test_bad_input_is_refused(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        transfer_seconds(*args, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(ValueError, match="CUDA is not available"):
        transfer_seconds(torch.ones(3), "cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("pinned", [False, True])
def test_host_to_gpu_and_back(pinned):
    x = torch.randn(2**20)
    there = transfer_seconds(x, "cuda", pinned=pinned, repeat=3)
    assert there.target.startswith("cuda") and there.pinned is pinned and there.bandwidth > 0
    back = transfer_seconds(x.cuda(), "cpu", pinned=pinned, repeat=3)
    assert back.source.startswith("cuda") and back.target == "cpu"


def test_exported():
    assert cl.device.transfer_seconds is transfer_seconds
    assert "transfer_seconds" in cl.device.__all__ and "Transfer" in cl.device.__all__
