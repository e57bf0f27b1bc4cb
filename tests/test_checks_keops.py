"""The KeOps exercise checks of notebook 06 accept right answers and reject wrong ones."""

from __future__ import annotations

import pytest
import torch

from clusterlab import checks as ck


def assign_direct(x, c):
    """Nearest centroid from (x - c)^2 computed directly, in float32 (a right answer)."""
    return ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1).argmin(1)


def assign_expanded(x, c):
    """The ||x||^2 - 2 x.c + ||c||^2 expansion in float32, not centred (loses digits far away)."""
    d2 = (x * x).sum(1, keepdim=True) - 2 * x @ c.T + (c * c).sum(1)[None, :]
    return d2.argmin(1)


def step(p, x, h):
    """One Gaussian mean-shift step with a softmax over the data (a right answer)."""
    d2 = ((p[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return torch.softmax(-d2 / (2 * h * h), dim=1) @ x


def test_right_step_without_keops_fails_and_says_why(capsys):
    # The exercise is about KeOps: the right step from a stored torch kernel matrix is not a
    # solution (the KeOps solutions pass: test_keops_solutions_pass).
    assert ck.check_keops_meanshift_step(step) is False
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.startswith("✗") for line in lines)
    assert all("no KeOps reduction ran" in line and "LazyTensor" in line for line in lines)


def assign_chunked(x, c):
    """Right labels from torch, one row at a time: never (n, k), but no KeOps either."""
    return torch.cat([((row[:, None, :] - c[None]) ** 2).sum(-1).argmin(1) for row in x.split(1)])


@pytest.mark.parametrize("torch_only", [assign_direct, assign_chunked])
def test_right_labels_without_keops_fail_and_say_why(torch_only, capsys):
    # The exercise is about KeOps: right labels from torch alone are not a solution.
    assert ck.check_keops_assign(torch_only) is False
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(line.startswith("✗") for line in lines)
    assert all("no KeOps reduction ran" in line and "LazyTensor" in line for line in lines)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda x, c: assign_direct(x, c).numpy(), "expected a torch.Tensor"),
        (lambda x, c: assign_direct(x, c)[:, None], "shape (n, 1)"),
        (lambda x, c: assign_direct(x, c).float(), "should be integers"),
        (lambda x, c: ((x[:, None] - c[None]) ** 2).sum(-1).argmax(1), "not given their nearest"),
    ],
)
def test_wrong_assign_fails_and_says_why(wrong, message, capsys):
    assert ck.check_keops_assign(wrong) is False
    assert message in capsys.readouterr().out


def test_expanded_distances_fail_far_from_the_origin(capsys):
    assert ck.check_keops_assign(assign_expanded) is False
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("✗") and "compute (x - c)^2 directly" in line for line in lines)


@pytest.mark.parametrize(
    "wrong",
    [
        lambda p, x, h: step(p, x, h * 2**-0.5),  # exp(-d^2 / h^2): the 2 forgotten
        lambda p, x, h: x.mean(0).expand_as(p).clone(),  # every point to the mean of the data
        lambda p, x, h: step(p, x, h).numpy(),  # not a tensor
    ],
)
def test_wrong_meanshift_step_fails(wrong, capsys):
    assert ck.check_keops_meanshift_step(wrong) is False
    assert "✗" in capsys.readouterr().out


@pytest.fixture(scope="module")
def LazyTensor(keops_lazytensor):
    return keops_lazytensor


def test_keops_solutions_pass(LazyTensor, capsys):
    # The notebook's solutions; float32, d = 2: the package's formulas, already compiled.
    def keops_assign(x, c):
        x_i, c_j = LazyTensor(x[:, None, :]), LazyTensor(c[None, :, :])
        return ((x_i - c_j) ** 2).sum(-1).argmin(dim=1).view(-1).long()

    def keops_step(p, x, h):
        p_i, x_j = LazyTensor(p[:, None, :]), LazyTensor(x[None, :, :])
        d_ij = ((p_i - x_j) ** 2).sum(-1)
        return (-d_ij / (2.0 * h * h)).sumsoftmaxweight(x_j, dim=1)

    assert ck.check_keops_assign(keops_assign) is True
    assert ck.check_keops_meanshift_step(keops_step) is True
    assert "✗" not in capsys.readouterr().out


def test_keops_assign_written_other_ways_passes(LazyTensor, capsys):
    # Any KeOps solution: a Genred written by hand (a new formula, one compile), the
    # package's KeOps engine, and a LazyTensor formula with the dot product operator.
    from pykeops.torch import Genred

    nearest = Genred("SqDist(X, C)", ["X = Vi(2)", "C = Vj(2)"], reduction_op="ArgMin", axis=1)

    def by_genred(x, c):
        return nearest(x.contiguous(), c.contiguous()).view(-1).long()

    def by_engine(x, c):
        import clusterlab as cl

        return cl.assign(x, c, backend="keops")[1]

    for fn in (by_genred, by_engine):
        assert ck.check_keops_assign(fn) is True
    assert "✗" not in capsys.readouterr().out


def test_keops_beside_a_stored_matrix_fails(LazyTensor, capsys):
    # A KeOps reduction that runs for show, while the labels come from the (n, k) matrix.
    def for_show(x, c):
        x_i, c_j = LazyTensor(x[:, None, :].contiguous()), LazyTensor(c[None, :, :].contiguous())
        ((x_i - c_j) ** 2).sum(-1).argmin(dim=1)
        return assign_direct(x, c)

    assert ck.check_keops_assign(for_show) is False
    lines = capsys.readouterr().out.splitlines()
    failed = [line for line in lines if line.startswith("✗")]
    assert len(failed) == 2 and all("(n, k) distance matrix was stored" in f for f in failed)
    assert any(line.startswith("✓") and "k=1" in line for line in lines)  # k = 1: nothing to store


def test_keops_expanded_formula_fails_far_from_the_origin(LazyTensor, capsys):
    # KeOps, but the expansion ||x||^2 - 2 x.c + ||c||^2 in float32 (a new formula).
    def expanded(x, c):
        x_i, c_j = LazyTensor(x[:, None, :].contiguous()), LazyTensor(c[None, :, :].contiguous())
        d_ij = (x_i * x_i).sum(-1) - 2 * (x_i | c_j) + (c_j * c_j).sum(-1)
        return d_ij.argmin(dim=1).view(-1).long()

    assert ck.check_keops_assign(expanded) is False
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("✓") and "k=13" in line for line in lines)
    assert any(line.startswith("✗") and "compute (x - c)^2 directly" in line for line in lines)


def test_keops_meanshift_beside_a_stored_matrix_fails(LazyTensor, capsys):
    # A KeOps reduction for show (the notebook's formula, compiled), the step from torch's matrix.
    def for_show(p, x, h):
        p_i, x_j = LazyTensor(p[:, None, :]), LazyTensor(x[None, :, :])
        (-((p_i - x_j) ** 2).sum(-1) / (2.0 * h * h)).sumsoftmaxweight(x_j, dim=1)
        return step(p, x, h)

    assert ck.check_keops_meanshift_step(for_show) is False
    failed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("✗")]
    assert len(failed) == 2 and all("kernel matrix was stored" in f for f in failed)
