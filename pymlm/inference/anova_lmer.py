"""F tests of the fixed-effect terms of one linear mixed model (lmerTest's ``anova``).

Each term gets a hypothesis matrix L (rows: linear functions of beta) and
the multi-degree-of-freedom test of L beta = 0. With V = vcov(beta) and the
eigen-decomposition L V L' = P D P' of rank q,

    F = (1/q) sum_m (p_m'L beta)^2 / d_m,

a sum of q independent squared t statistics. Satterthwaite: each direction
has its own df nu_m = 2 d_m^2 / (g_m' A g_m) (g_m the gradient of
p_m'L V L'p_m in the variance parameters, A their covariance), and the
denominator df of F matches the mean of F: with E = sum nu_m / (nu_m - 2),
nu = 2E / (E - q) (2 if any nu_m <= 2). Kenward-Roger: the Wald statistic
with the adjusted covariance, scaled and referred to F(q, nu) as in
pbkrtest's ``KRmodcomp``.

The hypothesis matrices follow lmerTest (3.1-3):

- Type I: rows of the transposed unit lower factor of the Doolittle
  decomposition of X'X (sequential sums of squares).
- Type II: a term not contained in another is tested marginally (its own
  coefficients); a contained term by the Type I hypothesis with the columns
  reordered as [unrelated, term, terms containing it].
- Type III: the estimable functions of the full-rank-deficient indicator
  design rdX mapped to the coefficients, L = (X^+ rdX)', and orthogonalized,
  higher-order terms first, against the terms that contain them (SAS's
  "Type III" hypotheses). Containment as in SAS: F1 is contained in F2 when
  F2 has all variables of F1 and more, and both have the same numeric
  variables.

The Sum Sq column is F q sigma^2 and Mean Sq is F sigma^2, as lmerTest prints.

References
----------
Kuznetsova, A., Brockhoff, P. B. and Christensen, R. H. B. (2017). lmerTest
package: tests in linear mixed effects models. J. Stat. Softw. 82(13).
SAS Institute. The four types of estimable functions. SAS/STAT User's Guide.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import OptionError

__all__ = ["containment", "contrasts_type1", "contrasts_type2", "contrasts_type3", "fstat_ddf",
           "ftest_kenward_roger", "ftest_satterthwaite", "marginal_contrasts", "term_columns"]

ANOVA_COLUMNS = ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]


# --------------------------------------------------------------------------- terms


def term_columns(spec) -> dict:
    """Term label -> positions of its columns in the fitted X (kept columns), in term order."""
    assign = np.asarray(spec.assign)[np.asarray(spec.keep)]
    return {t.label: np.flatnonzero(assign == i) for i, t in enumerate(spec.terms, start=1)}


def containment(spec) -> dict:
    """Term label -> labels of the terms that contain it (SAS's definition, lmerTest's ``containment``)."""
    vars_ = [set(t.variables) for t in spec.terms]
    nums = [{v for v in t.variables if spec.variables[v].kind != "factor"} for t in spec.terms]
    out = {}
    for i, t in enumerate(spec.terms):
        out[t.label] = [u.label for j, u in enumerate(spec.terms)
                        if vars_[i] <= vars_[j] and vars_[j] - vars_[i] and nums[i] == nums[j]]
    return out


def doolittle_lower(A: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Unit lower-triangular factor of the Doolittle decomposition A = L U without pivoting,
    entries below ``eps`` (absolute) zeroed and a column zeroed where U's pivot is below ``eps``."""
    n = A.shape[0]
    L = np.eye(n)
    U = np.zeros((n, n))
    for i in range(n):   # p steps of vector operations on a p x p matrix
        U[i, :] = A[i, :] - L[i, :i] @ U[:i, :]
        if i + 1 < n:
            col = A[i + 1:, i] - L[i + 1:, :i] @ U[:i, i]
            L[i + 1:, i] = 0.0 if abs(U[i, i]) < eps else col / U[i, i]
    L[np.abs(L) < eps] = 0.0
    return L


def _dense_crossprod(X) -> np.ndarray:
    XtX = X.T @ X
    return np.asarray(XtX.toarray() if hasattr(XtX, "toarray") else XtX, dtype=float)


def contrasts_type1(spec, XtX: np.ndarray) -> dict:
    """Type I hypothesis matrices, ``{term: (k, p)}``."""
    p = XtX.shape[0]
    Lt = doolittle_lower(XtX).T if p > 1 else np.ones((1, 1))
    return {lab: Lt[cols] for lab, cols in term_columns(spec).items()}


def marginal_contrasts(spec, p: int) -> dict:
    """Each term's own coefficients, ``{term: (k, p)}``."""
    eye = np.eye(p)
    return {lab: eye[cols] for lab, cols in term_columns(spec).items()}


def contrasts_type2(spec, XtX: np.ndarray) -> dict:
    """Type II hypothesis matrices (lmerTest's ``get_contrasts_type2_unfolded``), ``{term: (k, p)}``."""
    p = XtX.shape[0]
    cols = term_columns(spec)
    if p <= 1 or len(cols) <= 1:
        return contrasts_type1(spec, XtX)
    contained = containment(spec)
    marg = marginal_contrasts(spec, p)
    out = {}
    for lab, own in cols.items():
        if not contained[lab]:
            out[lab] = marg[lab]
            continue
        related = np.concatenate([own] + [cols[c] for c in contained[lab]])
        order = np.concatenate([np.setdiff1d(np.arange(p), related), related])
        Lc = doolittle_lower(XtX[np.ix_(order, order)]).T
        rows = np.isin(order, own)
        back = np.empty(p, dtype=int)
        back[order] = np.arange(p)
        out[lab] = Lc[rows][:, back]
    return out


def zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest absolute entry."""
    x = np.asarray(x, dtype=float)
    mx = np.max(np.abs(x)) if x.size else 0.0
    d = max(0, digits - int(np.ceil(np.log10(mx)))) if mx > 0 else digits
    return np.round(x, d)


def _indicator_spec(spec, label):
    """A spec that builds one term with every factor coded by indicators of all its levels."""
    t = next(t for t in spec.terms if t.label == label)
    coding = tuple("indicators" if spec.variables[v].kind == "factor" else "numeric" for v in t.variables)
    return replace(spec, intercept=False, terms=(replace(t, coding=coding),), keep=None)


def _treatment_spec(spec):
    """``spec`` with ordered factors coded by treatment contrasts (the coding Type III is derived in)."""
    variables = tuple(replace(v, ordered=False) if getattr(v, "ordered", False) else v for v in spec.variables)
    return replace(spec, variables=variables)


def contrasts_type3(spec, X, frame) -> dict:
    """Type III hypothesis matrices (lmerTest's ``get_contrasts_type3``), ``{term: (k, p)}``.

    Parameters
    ----------
    spec : FixedSpec
        The fixed-effects specification of the fit.
    X : ndarray (n, p) or sparse
        The fitted model matrix.
    frame : pandas.DataFrame
        The data X was built from (the rows of the fit), to rebuild the
        indicator design.
    """
    from ..design._fixed import model_matrix_columns

    cols = term_columns(spec)
    p = X.shape[1]
    if p <= 1 or len(cols) <= 1:
        return contrasts_type1(spec, _dense_crossprod(X))
    tspec = _treatment_spec(spec)
    Xt, tnames = model_matrix_columns(tspec, frame)
    Xt = Xt[:, spec.keep]
    tnames = [tnames[i] for i in spec.keep]
    # rdX: intercept, then each term with all factor levels; rows of L named after its columns
    blocks, rd_names = [], []
    if spec.intercept:
        blocks.append(np.ones((Xt.shape[0], 1)))
        rd_names.append("(Intercept)")
    for t in spec.terms:
        B, bn = model_matrix_columns(_indicator_spec(spec, t.label), frame)
        blocks.append(np.asarray(B.toarray() if hasattr(B, "toarray") else B, dtype=float))
        rd_names.extend(bn)
    rdX = np.hstack(blocks)
    XtX = _dense_crossprod(Xt)
    L = zapsmall(np.linalg.solve(XtX, np.asarray(Xt.T @ rdX, dtype=float)).T)   # (r, p), X^+ rdX transposed
    contained = containment(spec)
    order_terms = sorted(range(len(spec.terms)), key=lambda i: -len(spec.terms[i].variables))
    for i in order_terms:
        lab = spec.terms[i].label
        if contained[lab]:
            Xc = L[:, np.concatenate([cols[c] for c in contained[lab]])]
            Y = L[:, cols[lab]]
            coef = np.linalg.lstsq(Xc, Y, rcond=None)[0]
            L[:, cols[lab]] = zapsmall(Y - Xc @ coef)
    pos = {nm: k for k, nm in enumerate(rd_names)}
    L = L[[pos[nm] for nm in tnames]]
    M = None
    if tspec.variables != spec.variables:
        # the hypotheses are derived in treatment coding; map them to the fitted coding
        Xd = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=float)
        M = zapsmall(np.linalg.solve(XtX, np.asarray(Xt.T @ Xd, dtype=float)))
    out = {}
    for lab, c in cols.items():
        Lk = L[:, c].T
        Lk = Lk[np.sum(np.abs(Lk), axis=1) > 1e-8]
        out[lab] = Lk if M is None else Lk @ M
    return out


# --------------------------------------------------------------------------- F tests


def fstat_ddf(nu, tol: float = 1e-8) -> float:
    """Denominator df of an F statistic that is the mean of squared t statistics with df ``nu``."""
    nu = np.asarray(nu, dtype=float)
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(np.mean(nu))
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2)))
    return 2 * E / (E - nu.size)


def _row(F, ndf, ddf, sigma, scale=1.0):
    ms = F * sigma ** 2
    Fv = F * scale
    return [ms * ndf, ms, float(ndf), ddf, Fv, float(stats.f.sf(Fv, ndf, ddf))]


def ftest_satterthwaite(parts, beta, L, sigma, eps: float = np.sqrt(np.finfo(float).eps)) -> list:
    """One row of the table (Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F)) for L beta = 0
    (lmerTest's ``contestMD``, Satterthwaite)."""
    from .satterthwaite import contrast_df

    L = np.atleast_2d(L)
    if L.shape[0] == 0:
        return [np.nan] * 6
    VL = L @ parts.vcov @ L.T
    d, P = np.linalg.eigh(0.5 * (VL + VL.T))
    d, P = d[::-1], P[:, ::-1]
    pos = d > max(eps * d[0], 0.0)
    q = int(pos.sum())
    if q == 0:
        return [np.nan] * 6
    PtL = P[:, :q].T @ L
    t2 = (PtL @ beta) ** 2 / d[:q]
    nu = contrast_df(parts, PtL)
    return _row(float(np.sum(t2)) / q, q, fstat_ddf(nu), sigma)


def ftest_kenward_roger(kr, beta, L, sigma) -> list:
    """One row of the table for L beta = 0 by Kenward-Roger (pbkrtest's ``KRmodcomp``)."""
    L = np.atleast_2d(L)
    if L.shape[0] == 0:
        return [np.nan] * 6
    Phi, PhiA = kr.vcov, kr.vcov_adjusted
    q = int(np.linalg.matrix_rank(L))
    Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
    k = kr.W.shape[0]
    u = np.einsum("ab,bc,rcd,de->rae", Theta, Phi, kr.P, Phi)   # Theta Phi P_r Phi
    tr = np.einsum("raa->r", u)
    tr2 = np.einsum("rab,sba->rs", u, u)
    e = 2.0 - np.eye(k)
    iu = np.triu_indices(k)
    A1 = float(np.sum((e * kr.W * np.outer(tr, tr))[iu]))
    A2 = float(np.sum((e * kr.W * tr2)[iu]))
    B = (A1 + 6 * A2) / (2 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    den = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
    V0 = 1 + c1 * B
    V0 = 0.0 if abs(V0) < 1e-10 else V0
    V1, V2 = 1 - c2 * B, 1 - c3 * B
    ratio = 1.0 if abs(1 - A2 / q) < 1e-14 and abs(V1) < 1e-14 else (1 - A2 / q) / V1
    rho = ratio ** 2 * V0 / V2 / q
    df2 = 4 + (q + 2) / (q * rho - 1)
    scale = 1.0 if abs(df2 - 4) < 1e-2 else df2 * (1 - A2 / q) / (df2 - 2)   # nu / (E* (nu - 2))
    Lb = L @ beta
    wald = float(Lb @ np.linalg.solve(L @ PhiA @ L.T, Lb))
    return _row(wald / q, q, df2, sigma, scale)


def anova_table(hypotheses: dict, test) -> pd.DataFrame:
    """The table of ``test(L)`` rows for each term's hypothesis matrix."""
    rows = [test(L) for L in hypotheses.values()]
    return pd.DataFrame(rows, index=list(hypotheses), columns=ANOVA_COLUMNS)


TYPES = {"1": "1", "i": "1", "2": "2", "ii": "2", "3": "3", "iii": "3"}


def check_type(type) -> str:
    key = str(type).strip().lower()
    if key not in TYPES:
        raise OptionError(f"type must be one of 1, 2, 3 (or 'I', 'II', 'III'); got {type!r}")
    return TYPES[key]
