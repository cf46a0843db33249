"""Smooth bases against mgcv's smoothCon (tests/reference/smooth_bases.json).

cr, ps, re, te and by-variable terms are compared entry by entry (same
knots, same Householder constraint, same penalty scaling). tp and fs bases
are built from eigenvectors whose signs mgcv leaves to LAPACK, so they are
compared through what a fit sees: the penalized smoother
``X (X'X + sum_j lambda_j S_j)^{-1} X'`` with the penalties on their
unscaled level (each lambda_j multiplied by its own scale factor). mgcv's fs
reference goes through tests/reference/fs_null_basis.R (the null-space basis
fixed as pymlm fixes it), so its columns are compared too: null-space columns
exactly, range-space columns up to sign.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from _smooth_data import with_newdata

from pymlm.errors import DataError, FormulaError
from pymlm.formula import parse_formula
from pymlm.smooth import (
    CubicRegressionSpline,
    Factor,
    as_covariate,
    construct_smooth,
    parse_smooth,
    sum_to_zero_basis,
)

REF = Path(__file__).resolve().parents[1] / "reference"
BASES = json.loads((REF / "smooth_bases.json").read_text())

FORMS = {
    "cr": 's(x, bs = "cr", k = 8)',
    "cr_default": 's(x, bs = "cr")',
    "ps": 's(x, bs = "ps", k = 9)',
    "ps_m": 's(z, bs = "ps", k = 8, m = c(3, 1))',
    "tp": 's(x, bs = "tp", k = 7)',
    "tp2": "s(x, z, k = 15)",
    "re": 's(g, bs = "re")',
    "re_slope": 's(x, g, bs = "re")',
    "fs": 's(x, fac, bs = "fs", k = 5)',
    "te": "te(x, z)",
    "te_ps_cr": 'te(x, z, bs = c("ps", "cr"), k = c(6, 4))',
    "by_num": 's(x, by = z, bs = "cr", k = 6)',
    "by_fac": 's(x, by = fac, bs = "cr", k = 6)',
}
EXACT = ["cr", "cr_default", "ps", "ps_m", "re", "re_slope", "te", "te_ps_cr", "by_num", "by_fac"]
INVARIANT = ["tp", "tp2", "fs"]


@pytest.fixture(scope="module")
def data():
    return with_newdata(BASES["newdata"])


def spec_of(text):
    return parse_smooth(parse_formula("y ~ " + text).smooths[0].node)


def build(name, d):
    spec = spec_of(FORMS[name])
    cols = [as_covariate(d[t]) for t in spec.terms]
    by = as_covariate(d[spec.by]) if spec.by else None
    return spec, cols, by, construct_smooth(spec, cols, by)


def dense(X):
    return X.toarray() if sp.issparse(X) else np.asarray(X)


@pytest.mark.parametrize("name", EXACT)
def test_basis_equals_mgcv(name, data):
    d, nd = data
    spec, cols, by, terms = build(name, d)
    ref = BASES["bases"][name]["smooths"]
    assert [t.label for t in terms] == [r["label"] for r in ref]
    ncols = [as_covariate(nd[t]) for t in spec.terms]
    nby = as_covariate(nd[spec.by]) if spec.by else None
    for t, r in zip(terms, ref):
        np.testing.assert_allclose(dense(t.matrix(cols, by)), np.array(r["X"]), atol=1e-10)
        assert len(t.S) == len(r["S"])
        for S, Sr in zip(t.S, r["S"]):
            np.testing.assert_allclose(S, np.array(Sr), atol=1e-9 * max(1.0, np.abs(Sr).max()))
        np.testing.assert_allclose(t.S_scale, np.atleast_1d(r["S_scale"]), rtol=1e-10)
        assert list(np.atleast_1d(t.rank)) == list(np.atleast_1d(r["rank"]))
        assert t.null_space_dim == r["null_space_dim"]
        np.testing.assert_allclose(dense(t.matrix(ncols, nby)), np.array(r["predict"]), atol=1e-10)


def test_cr_knots_are_mgcvs(data):
    d, _ = data
    _, _, _, (t,) = build("cr_default", d)
    np.testing.assert_allclose(t.basis.knots, BASES["bases"]["cr_default"]["smooths"][0]["knots"], rtol=1e-14)


def _smoother(X, S, lam, y):
    A = X.T @ X + sum(l * s for l, s in zip(lam, S))
    return X @ np.linalg.solve(A, X.T @ y)


@pytest.mark.parametrize("name", INVARIANT)
def test_eigen_bases_give_mgcvs_smoother(name, data):
    d, nd = data
    spec, cols, by, (t,) = build(name, d)
    r = BASES["bases"][name]["smooths"][0]
    X, Xr = dense(t.matrix(cols, by)), np.array(r["X"])
    assert X.shape == Xr.shape
    y = np.sin(np.arange(X.shape[0]) * 0.37) + d["x"].to_numpy()
    S, Sr = t.S, [np.array(s) for s in r["S"]]
    scale, scale_r = np.atleast_1d(t.S_scale), np.atleast_1d(r["S_scale"])
    for base in (0.05, 1.0, 20.0):
        lam = base * (1 + np.arange(len(S)))
        ours = _smoother(X, S, lam * scale, y)
        theirs = _smoother(Xr, Sr, lam * scale_r, y)
        np.testing.assert_allclose(ours, theirs, atol=1e-8 * np.std(y))
    # the same function space on new data
    ncols = [as_covariate(nd[c]) for c in spec.terms]
    P, Pr = dense(t.matrix(ncols)), np.array(r["predict"])
    coef = np.linalg.lstsq(Xr, X, rcond=None)[0]
    np.testing.assert_allclose(Pr @ coef, P, atol=1e-7)


def test_fs_columns_are_mgcvs_with_the_fixed_null_space(data):
    """Per level: range columns equal mgcv's up to sign, null-space columns (1, x) exactly."""
    d, nd = data
    spec, cols, _, (t,) = build("fs", d)
    r = BASES["bases"]["fs"]["smooths"][0]
    kb, rank = t.basis.kb, t.basis.base.k - t.basis.base.M
    for X, Xr in ((dense(t.matrix(cols)), np.array(r["X"])),
                  (dense(t.matrix([as_covariate(nd[c]) for c in spec.terms])), np.array(r["predict"]))):
        for j in range(X.shape[1]):
            if j % kb >= rank:
                np.testing.assert_allclose(X[:, j], Xr[:, j], atol=1e-9)
            else:
                sign = np.sign(X[:, j] @ Xr[:, j]) or 1.0
                np.testing.assert_allclose(X[:, j], sign * Xr[:, j], atol=1e-7)
    for S, Sr in zip(t.S, r["S"]):
        np.testing.assert_allclose(S, np.array(Sr), atol=1e-9 * max(1.0, np.abs(Sr).max()))


@pytest.mark.parametrize("name", sorted(FORMS))
def test_new_data_basis_equals_training_basis(name, data):
    """Evaluating the stored basis on the training rows reproduces the construction matrix."""
    d, _ = data
    spec = spec_of(FORMS[name])
    cols = [as_covariate(d[t]) for t in spec.terms]
    by = as_covariate(d[spec.by]) if spec.by else None
    raw_terms = construct_smooth(spec, cols, by)
    # rebuild the columns from a copy of the data, as new data would arrive
    d2 = d.copy()
    cols2 = [as_covariate(d2[t]) for t in spec.terms]
    by2 = as_covariate(d2[spec.by]) if spec.by else None
    for t in raw_terms:
        X_train = dense(t.matrix(cols, by))
        X_new = dense(t.matrix(cols2, by2))
        np.testing.assert_array_equal(X_new, X_train)
        # rows in another order give the same rows
        perm = np.random.default_rng(0).permutation(len(d))
        cols_p = [c.take(perm) if isinstance(c, Factor) else c[perm] for c in cols2]
        by_p = None if by2 is None else (by2.take(perm) if isinstance(by2, Factor) else by2[perm])
        np.testing.assert_allclose(dense(t.matrix(cols_p, by_p)), X_train[perm], atol=1e-13)


def test_constraint_is_absorbed(data):
    d, _ = data
    for name in ("cr", "ps", "te", "tp"):
        spec, cols, by, (t,) = build(name, d)
        X = dense(t.matrix(cols, by))
        assert X.shape[1] == t.n_raw - 1
        np.testing.assert_allclose(X.sum(axis=0), 0.0, atol=1e-9 * len(d))


def test_random_effect_unseen_level_gives_zero_row(data):
    d, _ = data
    spec, cols, by, (t,) = build("re", d)
    new = Factor(np.array([0, -1, 3]), cols[0].levels)
    X = dense(t.matrix([new]))
    assert X[1].sum() == 0.0 and X[0, 0] == 1.0 and X[2, 3] == 1.0


def test_sum_to_zero_basis_is_orthonormal_and_annihilates():
    rng = np.random.default_rng(3)
    for k in (3, 7, 12):
        c = rng.normal(size=k)
        Z = sum_to_zero_basis(c)
        np.testing.assert_allclose(c @ Z, 0.0, atol=1e-12)
        np.testing.assert_allclose(Z.T @ Z, np.eye(k - 1), atol=1e-12)
    # LINPACK's sign convention: the reflection maps c to -sign(c_1) ||c|| e_1
    c = np.array([-0.5, 0.2, 0.3])
    v = c / -np.linalg.norm(c)
    v[0] += 1
    H = np.eye(3) - np.outer(v, v) / v[0]
    np.testing.assert_allclose(sum_to_zero_basis(c), H[:, 1:])


def test_cr_basis_interpolates_and_extrapolates_linearly():
    x = np.linspace(0, 1, 40)
    b = CubicRegressionSpline(k=6)
    raw = b.construct([x])
    assert raw.ncol == 6 and raw.rank == [4]
    knots = b.knots
    # the basis is parametrized by values at the knots
    np.testing.assert_allclose(b.predict([knots]), np.eye(6), atol=1e-12)
    # beyond the knots each column continues on a straight line
    out = b.predict([np.array([1.5, 2.0, 2.5])])
    np.testing.assert_allclose(out[1] - out[0], out[2] - out[1], atol=1e-12)
    np.testing.assert_allclose(b.predict([x]).sum(axis=1), 1.0, atol=1e-12)


def test_k_larger_than_distinct_values_is_a_clear_error():
    spec = spec_of('s(x, bs = "cr", k = 12)')
    x = np.repeat(np.arange(5.0), 4)
    with pytest.raises(DataError, match=r"s\(x\): x has 5 distinct values, fewer than k = 12.*at most 5"):
        construct_smooth(spec, [x])
    for text in ('s(x, bs = "ps", k = 12)', 's(x, bs = "tp", k = 12)'):
        with pytest.raises(DataError, match="fewer than k = 12"):
            construct_smooth(spec_of(text), [x])


def test_factor_where_numbers_are_needed_is_a_clear_error():
    g = Factor(np.array([0, 1, 0, 1]), ("a", "b"))
    with pytest.raises(DataError, match=r"g is a factor.*bs = \"re\""):
        construct_smooth(spec_of('s(g, bs = "cr")'), [g])
    with pytest.raises(DataError, match="exactly one factor"):
        construct_smooth(spec_of('s(x, z, bs = "fs")'), [np.arange(4.0), np.arange(4.0)])


def test_unknown_basis_is_a_formula_error():
    with pytest.raises(FormulaError, match=r"unknown basis 'ad' in s\(\).*'cr', 'tp', 'ps', 're', 'fs', 'cc'"):
        spec_of('s(x, bs = "ad")')
    with pytest.raises(FormulaError, match="unknown basis 're' as a te\\(\\) margin"):
        spec_of('te(x, z, bs = "re")')
