"""The restricted likelihood of a GAM: value, analytic derivatives, optimizers."""

import numpy as np
import pytest

from pymlm.crossprod import CrossStats
from pymlm.design._gam_penalty import CorrelatedPenalty, LinearPenalty
from pymlm.fit._gam_reml import evaluate, fellner_schall, newton, reparametrize


def problem(seed=0, n=400, correlated=False):
    """A parametric column pair, a 6-column smooth-like block with one penalty, a
    5-column block with two penalties and a random-effects block."""
    rng = np.random.default_rng(seed)
    Xp = np.column_stack([np.ones(n), rng.normal(size=n)])
    X1 = rng.normal(size=(n, 6))
    X2 = rng.normal(size=(n, 5))
    g = rng.integers(0, 8, n)
    q = 2 if correlated else 1
    Z = np.zeros((n, 8 * q))
    Z[np.arange(n), g] = 1.0
    if correlated:
        Z[np.arange(n), 8 + g] = rng.normal(size=n)
    X = np.hstack([Xp, X1, X2, Z])
    y = X @ rng.normal(size=X.shape[1]) * 0.3 + rng.normal(size=n)
    D = np.diff(np.eye(6), n=2, axis=0)
    S1 = D.T @ D
    A = rng.normal(size=(5, 3))
    B = rng.normal(size=(5, 2))
    pens = [LinearPenalty(2, [S1], 2), LinearPenalty(8, [A @ A.T, B @ B.T], 0)]
    pens.append(CorrelatedPenalty(13, 2, 8) if correlated else LinearPenalty(13, [np.eye(8)], 0))
    stats = CrossStats(X.T @ X, X.T @ y, float(y @ y), n)
    return X, y, stats, pens


def dense_score(rho, X, y, pens, phi=None):
    p = X.shape[1]
    S = np.zeros((p, p))
    at = 0
    for b in pens:
        S[b.cols, b.cols] += b.matrix(rho[at:at + b.n_par])
        at += b.n_par
    A = X.T @ X + S
    beta = np.linalg.solve(A, X.T @ y)
    Dp = float(np.sum((y - X @ beta) ** 2) + beta @ S @ beta)
    ev = np.linalg.eigvalsh(S)
    Mp = 4  # two parametric columns and the 2-dimensional null space of the first block
    ldS = np.sum(np.log(ev[ev > ev.max() * 1e-9]))
    n = X.shape[0]
    if phi is None:
        phi = Dp / (n - Mp)
    return Dp / (2 * phi) + (n - Mp) / 2 * np.log(2 * np.pi * phi) + np.linalg.slogdet(A)[1] / 2 - ldS / 2


@pytest.mark.parametrize("correlated", [False, True])
@pytest.mark.parametrize("phi", [None, 0.7])
def test_score_matches_the_dense_formula(correlated, phi):
    X, y, stats, pens = problem(1, correlated=correlated)
    rho = np.array([0.3, -0.5, 1.2, 0.2, 0.1, -0.4, 0.3][: sum(b.n_par for b in pens)])
    ev = evaluate(rho, stats, pens, phi)
    assert ev.score == pytest.approx(dense_score(rho, X, y, pens, phi), rel=1e-10)


@pytest.mark.parametrize("correlated", [False, True])
@pytest.mark.parametrize("phi", [None, 0.7])
def test_gradient_and_hessian_match_finite_differences(correlated, phi):
    _, _, stats, pens = problem(2, correlated=correlated)
    m = sum(b.n_par for b in pens)
    rho = np.linspace(-0.8, 1.1, m)
    ev = evaluate(rho, stats, pens, phi)
    h = 1e-5
    g_fd = np.zeros(m)
    H_fd = np.zeros((m, m))
    for i in range(m):
        e = np.zeros(m)
        e[i] = h
        up, dn = evaluate(rho + e, stats, pens, phi), evaluate(rho - e, stats, pens, phi)
        g_fd[i] = (up.score - dn.score) / (2 * h)
        H_fd[:, i] = (up.grad - dn.grad) / (2 * h)
    np.testing.assert_allclose(ev.grad, g_fd, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ev.hess, H_fd, rtol=1e-4, atol=1e-5)


def test_newton_and_fellner_schall_reach_the_same_optimum():
    _, _, stats, pens = problem(3)
    T, tp = reparametrize(pens, stats.p)
    ts = CrossStats(T.T @ stats.XtWX @ T, T.T @ stats.XtWz, stats.zWz, stats.n)
    a = newton(ts, tp)
    b = fellner_schall(ts, tp, tol=1e-9, max_iter=5000)
    assert a.converged and b.converged
    assert b.best.score == pytest.approx(a.best.score, abs=1e-6)
    np.testing.assert_allclose(np.abs(a.best.grad), 0, atol=1e-3)
    # Newton needs far fewer evaluations
    assert a.evaluations < b.evaluations


def test_reparametrization_keeps_score_and_diagonalizes():
    X, y, stats, pens = problem(4)
    T, tp = reparametrize(pens, stats.p)
    np.testing.assert_allclose(T.T @ T, np.eye(stats.p), atol=1e-12)
    assert np.allclose(tp[0].S[0], np.diag(np.diag(tp[0].S[0])))
    ts = CrossStats(T.T @ stats.XtWX @ T, T.T @ stats.XtWz, stats.zWz, stats.n)
    rho = np.array([0.5, -1.0, 2.0, 0.0])
    a, b = evaluate(rho, stats, pens), evaluate(rho, ts, tp)
    assert a.score == pytest.approx(b.score, rel=1e-11)
    np.testing.assert_allclose(T @ b.beta, a.beta, atol=1e-10)


def test_infinite_smoothing_parameter_stays_stable():
    """A smooth whose best fit is in its null space (a straight line) drives its
    smoothing parameter up without breaking the solve."""
    from pymlm.formula import parse_formula
    from pymlm.smooth import construct_smooth, parse_smooth

    rng = np.random.default_rng(7)
    n = 300
    x = rng.uniform(size=n)
    spec = parse_smooth(parse_formula('y ~ s(x, bs = "cr")').smooths[0].node)
    (term,) = construct_smooth(spec, [x])
    X = np.column_stack([np.ones(n), term.matrix([x])])
    y = 2 * x + rng.normal(scale=0.1, size=n)
    pens = [LinearPenalty(1, term.S, term.null_space_dim)]
    stats = CrossStats(X.T @ X, X.T @ y, float(y @ y), n)
    T, tp = reparametrize(pens, stats.p)
    ts = CrossStats(T.T @ stats.XtWX @ T, T.T @ stats.XtWz, stats.zWz, stats.n)
    res = newton(ts, tp)
    assert res.converged
    assert res.best.rho[0] > 8  # lambda beyond e^8: the fit is a straight line
    edf = np.einsum("ij,ji->i", res.best.PP, ts.XtWX)[1:].sum()
    assert edf == pytest.approx(1.0, abs=0.01)
    assert np.isfinite(res.best.score)
