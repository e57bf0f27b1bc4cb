"""The self-checks of the exercises of notebooks 06, 08, 09 and 10 (quizzes and explorations):
each passes a right answer, fails a wrong one, and names the rule a shortcut misses."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from clusterlab import checks as ck


def lines(capsys):
    return capsys.readouterr().out.splitlines()


# --- notebooks 06, 08 and 10 -----------------------------------------------------------


def test_keops_or_gemm(capsys):
    assert ck.check_keops_or_gemm(lambda: ["keops", "GEMM", "KeOps ", "gemm"]) is True
    assert capsys.readouterr().out.startswith("✓")
    assert ck.check_keops_or_gemm(lambda: ["keops", "keops", "keops", "gemm"]) is False
    out = capsys.readouterr().out
    assert out.startswith("✗") and "job 2 is gemm: D = 768" in out and "job 1" not in out


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (["keops"] * 3, "expected a list of 4 answers"),
        ("keops", "expected a list of 4 answers"),
        (["keops", "faiss", "keops", "gemm"], "job 2: answer 'keops' or 'gemm', got 'faiss'"),
    ],
)
def test_keops_or_gemm_malformed(answers, message, capsys):
    assert ck.check_keops_or_gemm(lambda: answers) is False
    assert message in capsys.readouterr().out


def faiss_rule(n, k):
    return min(n, 256 * k), n < 39 * k


def test_faiss_training(capsys):
    assert ck.check_faiss_training(faiss_rule) is True
    assert ck.check_faiss_training(lambda n, k: (256 * k, n < 39 * k)) is False  # always 256·k
    out = capsys.readouterr().out
    assert "faiss uses every point" in out
    assert ck.check_faiss_training(lambda n, k: (min(n, 256 * k), n <= 39 * k)) is False  # edge
    lines_ = capsys.readouterr().out.splitlines()
    failed = [line for line in lines_ if line.startswith("✗")]
    assert len(failed) == 1 and "n=780" in failed[0] and "n < 39 · k" in failed[0]
    assert ck.check_faiss_training(lambda n, k: (min(n, 256 * k), 1)) is False
    assert "True or False" in capsys.readouterr().out


def test_faiss_training_agrees_with_faiss(capsys):
    # The rule the check uses is faiss's: subsample above 256·k, warn below 39·k.
    faiss = pytest.importorskip("faiss")
    from clusterlab.compare import capture_c_output

    rng = np.random.default_rng(0)
    for n, k in ((1025, 4), (1024, 4), (155, 4), (156, 4)):
        x = rng.normal(size=(n, 2)).astype(np.float32)
        with capture_c_output() as out:
            faiss.Kmeans(2, k, niter=1, verbose=True).train(x)
        sampled = f"Sampling a subset of {256 * k} / {n}" in out.stdout
        assert sampled == (n > 256 * k)
        assert ("please provide at least" in out.stderr) == faiss_rule(n, k)[1]


def test_allreduce_bytes(capsys):
    assert ck.check_allreduce_bytes(lambda n, d, k: ((k * d + k) * 4, n * 8)) is True
    assert ck.check_allreduce_bytes(lambda n, d, k: (k * d * 4, n * 8)) is False
    assert "the counts too" in capsys.readouterr().out
    assert ck.check_allreduce_bytes(lambda n, d, k: ((k * d + k) * 4 * n, n * 8)) is False
    assert "does not grow with n" in capsys.readouterr().out
    assert ck.check_allreduce_bytes(lambda n, d, k: ((k * d + k) * 4, n * 4)) is False
    assert "one 8-byte label per point" in capsys.readouterr().out


# --- notebook 09 ---------------------------------------------------------------------------


def chord(ks, inertias):
    # the farthest point from the chord, in raw units (the same k as normalised)
    p = np.stack([np.asarray(ks, float), np.asarray(inertias, float)], 1)
    u = (p[-1] - p[0]) / np.linalg.norm(p[-1] - p[0])
    rel = p - p[0]
    return int(ks[np.argmax(np.abs(rel[:, 0] * u[1] - rel[:, 1] * u[0]))])


def kneedle(ks, inertias):
    k_norm = (ks - ks[0]) / (ks[-1] - ks[0])
    j_norm = (inertias - inertias[-1]) / (inertias[0] - inertias[-1])
    return int(ks[np.argmax(np.abs(k_norm + j_norm - 1))])


@pytest.mark.parametrize("right", [chord, kneedle])
def test_elbow_right(right, capsys):
    assert ck.check_elbow(right) is True


def test_elbow_steepest_turn_fails(capsys):
    def steepest_turn(ks, j):
        return int(ks[1:-1][np.argmax(np.diff(j, 2))])

    assert ck.check_elbow(steepest_turn) is False
    out = lines(capsys)
    assert out[0].startswith("✓")  # a sharp bend: every definition agrees
    assert "largest change of slope" in out[1]
    assert ck.check_elbow(lambda ks, j: "4") is False
    assert "expected one k" in capsys.readouterr().out


def test_fusion_bandwidth(capsys):
    assert ck.check_fusion_bandwidth(lambda d, v: np.sqrt(max(d * d / 4 - v, 0))) is True
    assert ck.check_fusion_bandwidth(lambda d, v: d / 2) is False
    assert "own spread" in capsys.readouterr().out
    with np.errstate(invalid="ignore"):  # NaN at d = 4
        assert ck.check_fusion_bandwidth(lambda d, v: np.sqrt(d * d / 4 - v)) is False
    assert "answer 0" in capsys.readouterr().out


def test_best_by_ari(capsys):
    def by_ari(y, cands):
        return max(cands, key=lambda name: adjusted_rand_score(y, cands[name]))

    def by_accuracy(y, cands):
        return max(cands, key=lambda name: (cands[name] == y).mean())

    def by_purity(y, cands):
        def purity(lab):
            return sum(np.bincount(y[lab == c]).max() for c in np.unique(lab)) / len(y)

        return max(cands, key=lambda name: purity(cands[name]))

    assert ck.check_best_by_ari(by_ari) is True
    assert ck.check_best_by_ari(by_accuracy) is False
    assert "names are arbitrary" in capsys.readouterr().out
    assert ck.check_best_by_ari(by_purity) is False
    assert "adjusted_rand_score" in capsys.readouterr().out


def test_converged_at(capsys):
    def right(res):
        return next((t for t, row in enumerate(res.history) if row["shift"] == 0), None)

    def one_late(res):
        t = right(res)
        return None if t is None else t + 1

    assert ck.check_converged_at(right) is True
    assert ck.check_converged_at(one_late) is False
    assert "history[t] is update t + 1" in capsys.readouterr().out
    assert ck.check_converged_at(lambda res: res.n_iter) is False


def test_stubs_read_not_written_yet(capsys):
    def stub(*args):
        raise NotImplementedError

    checks = (
        ck.check_elbow,
        ck.check_fusion_bandwidth,
        ck.check_best_by_ari,
        ck.check_converged_at,
        ck.check_keops_or_gemm,
        ck.check_faiss_training,
        ck.check_allreduce_bytes,
    )
    for check in checks:
        assert check(stub) is False
    out = lines(capsys)
    assert len(out) == len(checks) and all("not written yet" in line for line in out)
