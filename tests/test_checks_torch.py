"""Notebook 03's self-checks test the technique: a vectorised update, a chunked
assignment, a memory count done by hand. Each passes any right solution, and fails one
that skips the technique and one that is wrong, with a message saying what is missing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import clusterlab as cl
from clusterlab import checks as ck

# --- check_torch_update ------------------------------------------------------------------


def update_index_add(x, labels, k):
    sums = torch.zeros(k, x.shape[1], dtype=x.dtype).index_add_(0, labels, x)
    return sums / torch.bincount(labels, minlength=k).clamp_min(1)[:, None]


def update_scatter_add(x, labels, k):
    sums = torch.zeros(k, x.shape[1], dtype=x.dtype)
    sums.scatter_add_(0, labels[:, None].expand_as(x), x)
    counts = torch.zeros(k, dtype=x.dtype).scatter_add_(0, labels, torch.ones_like(x[:, 0]))
    return sums / counts.clamp_min(1)[:, None]


def update_one_hot(x, labels, k):
    member = F.one_hot(labels, k).to(x.dtype)  # (n, k)
    return member.T @ x / member.sum(0).clamp_min(1)[:, None]


def update_bincount_columns(x, labels, k):
    # a loop over the d columns is fine: it does not grow with n or k
    sums = torch.stack([torch.bincount(labels, weights=col, minlength=k) for col in x.T], 1)
    return sums / torch.bincount(labels, minlength=k).clamp_min(1)[:, None]


def update_loop_points(x, labels, k):
    sums, counts = torch.zeros(k, x.shape[1], dtype=x.dtype), torch.zeros(k, dtype=x.dtype)
    for i in range(len(x)):
        sums[labels[i]] += x[i]
        counts[labels[i]] += 1
    return sums / counts.clamp_min(1)[:, None]


def update_loop_python_lists(x, labels, k):
    # no torch operation per point at all: only the Python lines give it away
    sums, counts = [[0.0] * x.shape[1] for _ in range(k)], [0] * k
    for row, j in zip(x.tolist(), labels.tolist(), strict=True):
        counts[j] += 1
        sums[j] = [s + v for s, v in zip(sums[j], row, strict=True)]
    return torch.tensor(
        [[s / max(c, 1) for s in row] for row, c in zip(sums, counts, strict=True)], dtype=x.dtype
    )


def update_loop_clusters(x, labels, k):
    return torch.stack([x[labels == j].mean(0) if (labels == j).any() else x[0] for j in range(k)])


def update_wrong(x, labels, k):
    sums = torch.zeros(k, x.shape[1], dtype=x.dtype).index_add_(0, labels, x)
    return sums / len(x)  # divides by n, not by the cluster sizes


@pytest.mark.parametrize(
    "fn", [update_index_add, update_scatter_add, update_one_hot, update_bincount_columns]
)
def test_torch_update_passes_any_vectorised_solution(fn, capsys):
    assert ck.check_torch_update(fn) is True
    out = capsys.readouterr().out
    assert "✗" not in out and "no Python loop over points or clusters" in out


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (
            update_loop_points,
            "a Python loop over the points: the torch operations it runs grow with n",
        ),
        (
            update_loop_python_lists,
            "a Python loop over the points: the Python steps it runs grow with n",
        ),
        (
            update_loop_clusters,
            "a Python loop over the clusters: the torch operations it runs grow with k",
        ),
    ],
)
def test_torch_update_fails_a_loop_with_right_numbers(fn, message, capsys):
    assert ck.check_torch_update(fn) is False
    out = capsys.readouterr().out
    assert "✓ check_torch_update — 300 points, k=5" in out  # the numbers are right
    assert message in out and "index_add_" in out


def test_torch_update_fails_wrong_means(capsys):
    assert ck.check_torch_update(update_wrong) is False
    assert "centroids of non-empty clusters differs" in capsys.readouterr().out


def test_torch_update_fails_nan_for_an_empty_cluster(capsys):
    def no_guard(x, labels, k):
        sums = torch.zeros(k, x.shape[1], dtype=x.dtype).index_add_(0, labels, x)
        return sums / torch.bincount(labels, minlength=k)[:, None]

    assert ck.check_torch_update(no_guard) is False
    assert "NaN or inf (it has no points" in capsys.readouterr().out


# --- check_chunked_assign ----------------------------------------------------------------


def chunked_cdist(x, c, chunk_size):
    return torch.cat([torch.cdist(b, c).argmin(1) for b in torch.split(x, chunk_size)])


def chunked_matmul(x, c, chunk_size):
    labels = torch.empty(len(x), dtype=torch.int64)
    c_sq = (c * c).sum(1)
    for s in range(0, len(x), chunk_size):
        labels[s : s + chunk_size] = torch.addmm(c_sq, x[s : s + chunk_size], c.T, alpha=-2).argmin(
            1
        )
    return labels


def chunked_broadcast(x, c, chunk_size):
    # a (chunk_size, k, d) tensor per chunk is still chunked
    return torch.cat(
        [((b[:, None] - c[None]) ** 2).sum(2).argmin(1) for b in torch.split(x, chunk_size)]
    )


def unchunked_cdist(x, c, chunk_size):
    return torch.cdist(x, c).argmin(1)


def unchunked_broadcast(x, c, chunk_size):
    return ((x[:, None] - c[None]) ** 2).sum(2).argmin(1)


def chunked_wrong(x, c, chunk_size):
    return torch.cat([torch.cdist(b, c).argmax(1) for b in torch.split(x, chunk_size)])


@pytest.mark.parametrize("fn", [chunked_cdist, chunked_matmul, chunked_broadcast])
def test_chunked_assign_passes_any_chunked_solution(fn, capsys):
    assert ck.check_chunked_assign(fn) is True
    assert "✗" not in capsys.readouterr().out


@pytest.mark.parametrize("fn", [unchunked_cdist, unchunked_broadcast])
def test_chunked_assign_fails_the_whole_block(fn, capsys):
    assert ck.check_chunked_assign(fn) is False
    out = capsys.readouterr().out
    assert "the whole (n, k) = (1000, 13) block was materialised" in out
    assert "chunk_size=1 asks for blocks of 1 x 13" in out
    # one chunk holding every row may be the whole block
    assert "✓ check_chunked_assign — n=1000, chunk_size=5000" in out


def test_chunked_assign_fails_wrong_labels(capsys):
    assert ck.check_chunked_assign(chunked_wrong) is False
    assert "labels differ" in capsys.readouterr().out


# --- check_memory_plan -------------------------------------------------------------------


def plan(n, k, d, budget):
    return 4 * n * k * d, 4 * n * k, budget // (4 * k)


def test_memory_plan_passes_counting(capsys):
    assert ck.check_memory_plan(plan) is True
    assert "✗" not in capsys.readouterr().out


def test_memory_plan_fails_the_package_doing_the_count(capsys):
    def borrowed(n, k, d, budget):
        m = cl.ladder.memory_bytes(n, k, d)
        return m["broadcast"], m["distances"], budget // (4 * k)

    assert ck.check_memory_plan(borrowed) is False
    out = capsys.readouterr().out
    assert "it calls clusterlab's own code (" in out and "clusterlab.ladder" in out


def test_memory_plan_fails_one_answer_for_every_question(capsys):
    def memorised(n, k, d, budget):
        return 32_768_000_000, 512_000_000, 4096  # right for the notebook's question only

    assert ck.check_memory_plan(memorised) is False
    assert "broadcast_bytes = 32768000000, expected 72,000" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (lambda n, k, d, b: (n * k * d, n * k, b // k), "each float32 takes 4 bytes"),
        (lambda n, k, d, b: (4 * n * k * d, 4 * n * k, b // k), "rows * k numbers of 4 bytes"),
        (
            lambda n, k, d, b: (4 * n * k * d, 4 * n * k, b // (4 * k * d)),
            "d is already summed away",
        ),
    ],
)
def test_memory_plan_fails_wrong_counts_with_a_hint(fn, hint, capsys):
    assert ck.check_memory_plan(fn) is False
    assert hint in capsys.readouterr().out


def test_watch_restores_the_tracer_after_an_error():
    import sys

    def boom(x, labels, k):
        raise ValueError("learner's bug")

    before = sys.gettrace()
    assert ck.check_torch_update(boom) is False
    assert sys.gettrace() is before


# --- check_spherical_update --------------------------------------------------------------


def spherical_index_add(x, labels, k):
    sums = torch.zeros(k, x.shape[1], dtype=x.dtype).index_add_(0, labels, x)
    return sums / sums.norm(dim=1, keepdim=True).clamp_min(1e-12)


def spherical_one_hot(x, labels, k):
    means = update_one_hot(x, labels, k)  # the mean has the sum's direction
    return F.normalize(means, dim=1)


def spherical_loop_clusters(x, labels, k):
    return torch.stack([F.normalize(x[labels == j].sum(0), dim=0) for j in range(k)])


@pytest.mark.parametrize("fn", [spherical_index_add, spherical_one_hot])
def test_spherical_update_passes_any_vectorised_solution(fn, capsys):
    assert ck.check_spherical_update(fn) is True
    assert "✗" not in capsys.readouterr().out


def test_spherical_update_fails_a_loop_over_clusters(capsys):
    assert ck.check_spherical_update(spherical_loop_clusters) is False
    out = capsys.readouterr().out
    assert "✓ check_spherical_update — 300 unit rows, k=5" in out
    assert "a Python loop over the clusters" in out


def test_spherical_update_fails_a_plain_mean(capsys):
    assert ck.check_spherical_update(update_index_add) is False
    assert "not 1: a spherical centroid is its cluster's mean direction" in capsys.readouterr().out
