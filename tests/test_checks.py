"""The exercise self-checks accept right answers, reject wrong ones, and never raise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clusterlab import checks as ck


def stub(*args):
    raise NotImplementedError


#: Checks that take more than the learner's function: what the notebook passes them.
EXTRA_ARGS = {"check_memory_bound": (25.0,)}  # the device's ridge, flops per byte


@pytest.mark.parametrize("name", ck.__all__)
def test_a_stub_reads_not_written_yet(name, capsys):
    assert getattr(ck, name)(stub, *EXTRA_ARGS.get(name, ())) is False
    assert "not written yet" in capsys.readouterr().out


def test_a_crashing_function_is_reported_not_raised(capsys):
    assert ck.check_assign(lambda x, c: 1 / 0) is False
    assert "raised ZeroDivisionError" in capsys.readouterr().out


def update(x, labels, k):
    out = np.zeros((k, x.shape[1]))
    for j in range(k):
        if (labels == j).any():
            out[j] = x[labels == j].mean(0)
    return out


def plusplus(x, k, rng):
    idx = [int(rng.integers(len(x)))]
    for _ in range(1, k):
        d = ((x[:, None] - x[idx][None]) ** 2).sum(2).min(1)
        idx.append(int(rng.choice(len(x), p=d / d.sum())))
    return x[idx]


def torch_update(x, labels, k):
    sums = torch.zeros(k, x.shape[1], dtype=x.dtype).index_add_(0, labels, x)
    return sums / torch.bincount(labels, minlength=k).clamp_min(1)[:, None]


def step(p, x, h):
    w = np.exp(-((p[:, None] - x[None]) ** 2).sum(2) / (2 * h * h))
    return w @ x / w.sum(1, keepdims=True)


def attention(p, x, h):
    q = torch.cat([p / h, torch.ones(len(p), 1)], 1)
    k = torch.cat([x / h, -(x * x).sum(1, keepdim=True) / (2 * h * h)], 1)
    return F.scaled_dot_product_attention(q[None], k[None], x[None], scale=1.0)[0]


def attention_by_hand(p, x, h):  # check_attention_step refuses scaled_dot_product_attention
    q = torch.cat([p / h, torch.ones(len(p), 1)], 1)
    k = torch.cat([x / h, -(x * x).sum(1, keepdim=True) / (2 * h * h)], 1)
    return torch.softmax(q @ k.T, dim=1) @ x


def merge(points, radius):
    labels = -np.ones(len(points), dtype=int)
    for i in range(len(points)):
        if labels[i] < 0:
            near = (labels < 0) & (np.linalg.norm(points - points[i], axis=1) <= radius)
            labels[near] = labels.max() + 1
    return labels


RIGHT_AND_WRONG = [
    ("check_assign", lambda x, c: ((x[:, None] - c[None]) ** 2).sum(2).argmin(1),
     lambda x, c: ((x[:, None] - c[None]) ** 2).sum(2).argmax(1)),
    ("check_update", update, lambda x, lab, k: np.stack([x[lab == j].mean(0) for j in range(k)])),
    ("check_inertia", lambda x, c, lab: ((x - c[lab]) ** 2).sum(),
     lambda x, c, lab: np.linalg.norm(x - c[lab], axis=1).sum()),
    ("check_kmeans_plusplus", plusplus, lambda x, k, rng: x[rng.choice(len(x), k, replace=False)]),
    ("check_torch_update", torch_update, lambda x, lab, k: torch_update(x, lab, k).numpy()),
    ("check_chunked_assign",
     lambda x, c, s: torch.cat([torch.cdist(x[i:i + s], c).argmin(1) for i in range(0, len(x), s)]),
     lambda x, c, s: torch.cdist(x[:s], c).argmin(1)),
    ("check_gaussian", lambda d, h: np.exp(-0.5 * (d / h) ** 2) / (h * np.sqrt(2 * np.pi)),
     lambda d, h: np.exp(-d / (2 * h * h))),
    ("check_meanshift_step", step, lambda p, x, h: step(p, x, 2 * h)),
    ("check_merge", merge, lambda p, r: np.arange(len(p))),
    ("check_batched_step",
     lambda p, x, h, b: torch.cat([attention(p[i:i + b], x, h) for i in range(0, len(p), b)]),
     lambda p, x, h, b: attention(p[:b], x, h)),
    ("check_attention_step", attention_by_hand, lambda p, x, h: attention_by_hand(p, x, h).numpy()),
]


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize(("name", "right", "wrong"), RIGHT_AND_WRONG, ids=[r[0] for r in RIGHT_AND_WRONG])
def test_right_passes_and_wrong_fails(name, right, wrong, capsys):
    check = getattr(ck, name)
    assert check(right) is True
    out = capsys.readouterr().out
    assert "✓" in out and "✗" not in out
    with np.errstate(all="ignore"):
        assert check(wrong) is False
    assert "✗" in capsys.readouterr().out
