"""Mean-shift self-checks (notebooks 04 and 05) and the mean-shift animation.

Each check passes a right solution, fails one that gets the numbers while skipping the
technique the exercise is about (with a message saying what is missing), and fails a
wrong one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import clusterlab as cl
from clusterlab import checks as ck

# --------------------------------------------------------------------------- batched step


def batched(points, data, h, b):
    x_sq = (data * data).sum(1)
    out = torch.empty_like(points)
    for s in range(0, len(points), b):
        y = points[s : s + b]
        d2 = torch.addmm(x_sq[None, :], y, data.T, alpha=-2.0) + (y * y).sum(1, keepdim=True)
        out[s : s + b] = torch.softmax(-d2 / (2 * h * h), dim=1) @ data
    return out


def batched_broadcast(points, data, h, b):
    # Another way: a (b, n, d) difference tensor per batch, torch.cat of the batches.
    parts = []
    for s in range(0, len(points), b):
        d2 = ((points[s : s + b, None, :] - data[None]) ** 2).sum(-1)
        parts.append(torch.softmax(-d2 / (2 * h * h), dim=1) @ data)
    return torch.cat(parts)


def unbatched(points, data, h, b):
    # The right numbers, but the whole (m, n) block at once whatever b is.
    return torch.softmax(-torch.cdist(points, data) ** 2 / (2 * h * h), dim=1) @ data


def batched_wrong(points, data, h, b):
    return batched(points, data, 2 * h, b)


def test_batched_step_passes_batched_solutions(capsys):
    assert ck.check_batched_step(batched) is True
    assert ck.check_batched_step(batched_broadcast) is True
    out = capsys.readouterr().out
    assert "✗" not in out and out.count("✓") == 8


def test_batched_step_fails_an_unbatched_solution(capsys):
    assert ck.check_batched_step(unbatched) is False
    out = capsys.readouterr().out
    assert "not batched" in out and "(m, n) = (160, 120)" in out
    # one batch that holds every point may build the whole block
    assert "✓ check_batched_step — batch_size=500 >= 160 points: one batch" in out


def unbatched_numpy(points, data, h, b):
    # The whole (m, n) block built in NumPy (float64), the result handed back as a tensor.
    p, x = points.numpy().astype(np.float64), data.numpy().astype(np.float64)
    d2 = ((p[:, None, :] - x[None, :, :]) ** 2).sum(-1)  # (m, n)
    w = np.exp(-(d2 - d2.min(1, keepdims=True)) / (2 * h * h))
    return torch.from_numpy((w @ x) / w.sum(1, keepdims=True)).to(points.dtype)


def batched_numpy(points, data, h, b):
    x = data.numpy().astype(np.float64)
    out = []
    for s in range(0, len(points), b):
        p = points[s : s + b].numpy().astype(np.float64)
        d2 = ((p[:, None, :] - x[None, :, :]) ** 2).sum(-1)  # (b, n)
        w = np.exp(-(d2 - d2.min(1, keepdims=True)) / (2 * h * h))
        out.append((w @ x) / w.sum(1, keepdims=True))
    return torch.from_numpy(np.concatenate(out)).to(points.dtype)


def test_batched_step_watches_numpy_blocks_too(capsys):
    assert ck.check_batched_step(batched_numpy) is True
    assert "✗" not in capsys.readouterr().out
    assert ck.check_batched_step(unbatched_numpy) is False
    out = capsys.readouterr().out
    assert "bytes of NumPy arrays" in out and "not batched" in out
    assert "✓ check_batched_step — batch_size=500 >= 160 points: one batch" in out


def test_batched_step_fails_wrong_numbers_and_types(capsys):
    assert ck.check_batched_step(batched_wrong) is False
    assert "new points differs" in capsys.readouterr().out
    assert ck.check_batched_step(lambda p, x, h, b: batched(p, x, h, b).numpy()) is False
    assert "expected a torch.Tensor" in capsys.readouterr().out


# --------------------------------------------------------------------------- attention


def keys_and_queries(p, x, h):
    q = torch.cat([p / h, torch.ones(len(p), 1)], 1)  # (m, d+1)
    k = torch.cat([x / h, -(x * x).sum(1, keepdim=True) / (2 * h * h)], 1)  # (n, d+1)
    return q, k


def attention_matmul(p, x, h):
    q, k = keys_and_queries(p, x, h)
    return torch.softmax(q @ k.T, dim=1) @ x


def attention_broadcast(p, x, h):
    q, k = keys_and_queries(p, x, h)
    return torch.softmax((q[:, None, :] * k[None]).sum(-1), dim=1) @ x


def attention_sdpa(p, x, h):
    q, k = keys_and_queries(p, x, h)
    return torch.nn.functional.scaled_dot_product_attention(q[None], k[None], x[None], scale=1.0)[0]


def gaussian_from_distances(p, x, h):
    return torch.softmax(-torch.cdist(p, x) ** 2 / (2 * h * h), dim=1) @ x


def test_attention_step_passes_attention_written_any_way(capsys):
    assert ck.check_attention_step(attention_matmul) is True
    assert ck.check_attention_step(attention_broadcast) is True
    assert "✗" not in capsys.readouterr().out


def test_attention_step_fails_what_skips_the_technique(capsys):
    assert ck.check_attention_step(attention_sdpa) is False
    assert "it calls scaled_dot_product_attention" in capsys.readouterr().out
    assert ck.check_attention_step(gaussian_from_distances) is False
    assert "no (100, 300) logits from queries and keys of width" in capsys.readouterr().out
    assert ck.check_attention_step(lambda p, x, h: attention_matmul(p, x, 2 * h)) is False
    assert "new points differs" in capsys.readouterr().out


# --------------------------------------------------------------------------- fair timer


def timer(*, warm_up=True, sync_before=True, sync_after=True):
    """A timer that follows the rules, or skips the one switched off."""

    def run(work, sync, clock, repeat):
        if warm_up:
            work()
        times = []
        for _ in range(repeat):
            if sync_before:
                sync()
            t0 = clock()
            work()
            if sync_after:
                sync()
            times.append(clock() - t0)
        return times

    return run


fair = timer()


def fair_other_way(work, sync, clock, repeat):
    # Waits after the warm-up and after every call instead of before each start.
    work()
    sync()
    times = np.empty(repeat)
    for i in range(repeat):
        t0 = clock()
        work()
        sync()
        times[i] = clock() - t0
    return times


def first_call_timed(work, sync, clock, repeat):
    times = timer(warm_up=False)(work, sync, clock, repeat)
    work()  # an extra call, but after the timed ones
    return times


def test_fair_timer_passes_fair_timers(capsys):
    assert ck.check_fair_timer(fair) is True
    assert ck.check_fair_timer(fair_other_way) is True
    assert "✗" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("timer", "message"),
    [
        (timer(warm_up=False), "call it once more, untimed, first"),
        (first_call_timed, "includes the first call's one-off cost"),
        (timer(sync_after=False), "the clock was read before the device finished"),
        (timer(sync_before=False), "work queued before the clock started was counted"),
    ],
)
def test_fair_timer_fails_a_timer_that_breaks_a_rule(timer, message, capsys):
    assert ck.check_fair_timer(timer) is False
    assert message in capsys.readouterr().out


def test_fair_timer_fails_wrong_results(capsys):
    assert ck.check_fair_timer(lambda w, s, c, r: float(np.median(fair(w, s, c, r)))) is False
    assert "expected a list of 3 durations" in capsys.readouterr().out
    assert ck.check_fair_timer(lambda w, s, c, r: fair(w, s, c, r)[:-1]) is False
    assert "expected 3 durations" in capsys.readouterr().out


def test_simulated_device_is_exact():
    dev = ck._SimulatedDevice(0.01, launch=1e-5, first=0.5)
    assert fair(dev.work, dev.sync, dev.clock, 4) == pytest.approx([0.01001] * 4, rel=1e-12)
    assert dev.calls == 5


# --------------------------------------------------------------------------- units


def standardised(x, quantile):
    z = (x - x.mean(0)) / x.std(0)
    return cl.meanshift(z, cl.estimate_bandwidth(z, quantile=quantile), backend="numpy").labels


def min_max(x, quantile):
    z = (x - x.min(0)) / np.ptp(x, 0)
    return cl.meanshift(z, cl.estimate_bandwidth(z, quantile=quantile), backend="numpy").labels


def raw_estimate(x, quantile):
    h = cl.estimate_bandwidth(x, quantile=quantile)
    return cl.meanshift(x, h, backend="numpy").labels


def fixed_bandwidth(x, quantile):
    return cl.meanshift(x, 1.0, backend="numpy").labels


def test_unit_free_meanshift_passes_unit_free_solutions(capsys):
    assert ck.check_unit_free_meanshift(standardised) is True
    assert ck.check_unit_free_meanshift(min_max) is True
    assert "✗" not in capsys.readouterr().out


def test_unit_free_meanshift_fails_what_depends_on_units(capsys):
    assert ck.check_unit_free_meanshift(raw_estimate) is False
    out = capsys.readouterr().out
    assert "✓ check_unit_free_meanshift — every number x 1000" in out
    assert "standardise each feature" in out
    assert ck.check_unit_free_meanshift(fixed_bandwidth) is False
    assert "the bandwidth must scale with the data" in capsys.readouterr().out


def test_unit_free_meanshift_fails_wrong_labels(capsys):
    assert ck.check_unit_free_meanshift(lambda x, q: np.zeros(len(x), dtype=int)) is False
    assert "finds 1 cluster, not the 4 blobs" in capsys.readouterr().out
    assert ck.check_unit_free_meanshift(lambda x, q: np.zeros(len(x))) is False
    assert "should be integers" in capsys.readouterr().out


# --------------------------------------------------------------------------- animation


@pytest.fixture(scope="module")
def run():
    x, _, _ = cl.data.make_six_blobs(20, seed=0)
    traj = [x] + [cl.meanshift(x, 2.5, max_iter=s, tol=0, backend="numpy").points for s in (1, 2, 3)]
    res = cl.meanshift(x, 2.5, backend="numpy")
    return x, traj, res


def test_animate_meanshift_moves_the_points_frame_by_frame(run):
    from matplotlib.animation import FuncAnimation

    x, traj, res = run
    anim = cl.plotting.animate_meanshift(x, traj, res.labels, res.centers, trails=5)
    assert isinstance(anim, FuncAnimation)
    fig = anim._fig
    ax = fig.axes[0]
    moving = ax.collections[1]
    for i in (3, 0, 2):
        anim._func(i)
        np.testing.assert_allclose(moving.get_offsets(), traj[i][:, :2])
        assert ax.get_title().startswith(f"step {i}")
        assert all(len(line.get_xdata()) == i + 1 for line in ax.lines)
    assert len(ax.lines) == 5
    np.testing.assert_allclose(ax.collections[2].get_offsets(), res.centers[:, :2])
    html = anim.to_jshtml()
    assert html.count("data:image/png;base64") == len(traj)


def test_animate_meanshift_defaults_and_subsets(run):
    x, traj, res = run
    anim = cl.plotting.animate_meanshift(
        x, np.stack(traj), centers=res.centers, titles=list("abcd"), max_points=50, trails=0
    )
    ax = anim._fig.axes[0]
    anim._func(1)
    assert ax.get_title() == "b" and len(ax.collections[1].get_offsets()) == 50
    assert not ax.lines
    # without labels, each point takes the colour of its nearest centre at the last frame
    colours = ax.collections[1].get_facecolors()
    assert len({tuple(c) for c in colours.round(6).tolist()}) == len(res.centers)
    assert anim.to_jshtml().count("data:image/png;base64") == 4


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"trajectory": np.zeros((0, 120, 2))}, ValueError, "trajectory must have shape"),
        ({"trajectory": np.zeros((3, 119, 2))}, ValueError, "trajectory must have shape"),
        ({"trajectory": [np.zeros((120, 2)), np.zeros((120, 3))]}, ValueError, "one shape"),
        ({"trajectory": np.full((2, 120, 2), np.nan)}, ValueError, "finite"),
        ({"labels": np.zeros(7, dtype=int)}, ValueError, "one entry per point"),
        ({"labels": np.full(120, 9)}, ValueError, "labels must index the"),
        ({"centers": np.zeros((3, 3))}, ValueError, "centers must have shape"),
        ({"titles": ["a"]}, ValueError, "titles must be a sequence of 4"),
        ({"interval": 0}, ValueError, "interval"),
        ({"dpi": 400, "figsize": (10, 10)}, ValueError, "pixels"),
        ({"figsize": "big"}, TypeError, "figsize"),
        ({"trails": -1}, ValueError, "trails"),
        ({"max_points": 2.5}, TypeError, "max_points"),
    ],
)
def test_animate_meanshift_refuses_bad_arguments(run, kwargs, error, message):
    x, traj, res = run
    args = {"trajectory": traj, "labels": res.labels, "centers": res.centers}
    args.update(kwargs)
    with pytest.raises(error, match=message):
        cl.plotting.animate_meanshift(x, **args)
