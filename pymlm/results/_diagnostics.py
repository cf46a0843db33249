"""lme4's prediction, simulation, bootstrap and diagnostic tools for a fitted lmer.

All the second moments here come from one quantity. At the estimates, the
joint estimation error of the spherical random effects and the fixed effects
has covariance (Henderson's prediction-error variance)

    Var[(u - u_hat, beta - beta_hat)] = sigma^2 (L L')^{-1},

with L the blocked Cholesky factor of the penalized system
``[[Lambda'Z'WZ Lambda + I, Lambda'Z'WX], [X'WZ Lambda, X'WX]]``. For a row
with random-effects part z and fixed part x, let ``a = (Lambda'z, x)``; then

- ``sigma^2 ||L^{-1} a||^2`` is the variance of the error of the conditional
  prediction x'beta_hat + z'b_hat (``se_fit``; with z = 0 it is x'V_beta x,
  the population-level one);
- ``w ||L^{-1} a||^2`` is the diagonal of the hat matrix that maps y to the
  fitted values (lme4's ``hatvalues.merMod``: its ``colSums(CL^2) +
  colSums(CR^2)`` is this norm split in its random and fixed blocks).

The norm is computed for many rows at once by one sparse triangular solve
with L_Z and one dense one with R_X, in bounded chunks of rows.
"""

from __future__ import annotations

import pickle
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve_triangular

from .._validation import as_frame, check_bool, check_choice, check_positive_int, check_seed
from ..errors import DataError, OptionError, PymlmWarning
from . import _format as _fmt
from ._mixed import labels, varcorr_group_names, vc_parts

__all__ = ["LmerInfluence", "SingularCheck", "bootstrap", "cooks_distance", "hatvalues", "influence",
           "pev_norms", "predict_se", "re_pca", "simulate", "varcorr_text"]

_CHUNK = 4096  # rows per triangular solve
_CELLS = 2 ** 22  # at most this many q x rows cells in one solve (32 MiB)


# ------------------------------------------------------------ ||L^{-1} a||^2
def _l_order(factor) -> list[int]:
    """The fitted terms in the order of L_Z's rows: the nested chain, then the dense tail."""
    return list(factor.struct.chain) + list(factor.struct.tail)


def pev_norms(m, X, terms_idx, codes_list, Xs) -> np.ndarray:
    """``||L^{-1} a_i||^2`` per row, ``a_i = (Lambda' z_i, x_i)``.

    Parameters
    ----------
    m : LmerResult
    X : ndarray or sparse (n, p)
        Fixed-effects rows.
    terms_idx : list of int
        lme4 terms whose random effects the rows include.
    codes_list, Xs : lists
        Per chosen term, the level code of each row (``-1``: a level the fit
        has not seen; such rows get no random part) and its model matrix (n, p_k).

    Returns
    -------
    ndarray (n,)

    Notes
    -----
    With one nested-chain term (one grouping factor, or one plus terms
    crossed with it: the common layouts) each row touches one level of the
    chain, so its part of the solve is a p_c x p_c one, and the dense tail D
    enters through G = (L_D L_D')^{-1} and K = L_D^{-T} Q_D, formed once:
    ``||w_D||^2 = r' G r`` and ``Q_D' w_D = K' r`` with r = a_D - L_Dm w_c, a
    sparse vector. Other layouts use one sparse triangular solve with L_Z.
    """
    factor = m.fit.factor
    X = X.tocsr() if sp.issparse(X) else np.asarray(X, dtype=float)
    if len(factor.struct.chain) == 1:
        return _pev_chain(m, X, terms_idx, codes_list, Xs)
    return _pev_general(m, X, terms_idx, codes_list, Xs)


def _term_rows(m, terms_idx, codes_list, Xs, rows, g):
    """Per row, the code and the (p_g,) vector T_g[off]' x_k of fitted term g (summed over its
    chosen lme4 terms); rows of an unseen level get code -1."""
    tmap = m.tmap
    Ts = m._fitted_Ts
    pg = Ts[g].shape[0]
    nr = rows.stop - rows.start
    a = np.zeros((nr, pg))
    code = np.full(nr, -1, dtype=np.int64)
    for k, codes, Xk in zip(terms_idx, codes_list, Xs):
        gk, off = tmap.where[k]
        if gk != g:
            continue
        pk = Xk.shape[1]
        c = np.asarray(codes[rows])
        ok = c >= 0
        a[ok] += Xk[rows][ok] @ Ts[g][off:off + pk, :]
        code[ok] = c[ok]
    return code, a


def _spread(code, a, q):
    """The (nr, q) sparse matrix with row i holding a[i] at columns code[i] * p + (0..p-1)."""
    nr, pg = a.shape
    ok = np.flatnonzero(code >= 0)
    cols = (code[ok, None] * pg + np.arange(pg)).ravel()
    return sp.csr_matrix((a[ok].ravel(), (np.repeat(ok, pg), cols)), shape=(nr, q))


def _pev_chain(m, X, terms_idx, codes_list, Xs) -> np.ndarray:
    from ..linalg._small import lower_inv

    factor = m.fit.factor
    struct = factor.struct
    dims = struct.cp.dims
    n, p = X.shape
    c = struct.chain[0]
    pc, lc = dims[c]
    Linv = lower_inv(factor.L_diag[c])
    Qc = factor.Q[c][:, :p]
    tail = list(struct.tail)
    q_D = struct.q_D if tail else 0
    if tail:
        Minv, _ = sla.lapack.dpotri(factor.L_D, lower=1)
        G = np.tril(Minv) + np.tril(Minv, -1).T
        K = sla.solve_triangular(factor.L_D.T, factor.Q_D[:, :p], lower=False)
        LDm_t = factor.L_Dm[c].T.tocsr()
    R = factor.L_XX[:p, :p]
    out = np.empty(n)
    chunk = max(1, min(_CHUNK, _CELLS // max(q_D, pc * pc, p, 1)))
    for s in range(0, n, chunk):
        rows = slice(s, min(n, s + chunk))
        code, a = _term_rows(m, terms_idx, codes_list, Xs, rows, c)
        ok = code >= 0
        w_c = np.zeros_like(a)
        w_c[ok] = np.einsum("nij,nj->ni", Linv[code[ok]], a[ok])
        total = np.einsum("ij,ij->i", w_c, w_c)
        W_c = _spread(code, w_c, pc * lc)
        qx = np.asarray(W_c @ Qc)
        if tail:
            parts = []
            for a_idx, g in enumerate(tail):
                code_g, a_g = _term_rows(m, terms_idx, codes_list, Xs, rows, g)
                parts.append(_spread(code_g, a_g, dims[g][0] * dims[g][1]))
            r = (sp.hstack(parts, format="csr") - W_c @ LDm_t).tocsr()
            rG = np.asarray(r @ G)
            total += np.asarray(r.multiply(rG).sum(axis=1)).ravel()
            qx += np.asarray(r @ K)
        Xr = X[rows].toarray() if sp.issparse(X) else X[rows]
        if p:
            wx = sla.solve_triangular(R, (Xr - qx).T, lower=True)
            total += np.einsum("ij,ij->j", wx, wx)
        out[rows] = total
    return out


def _pev_general(m, X, terms_idx, codes_list, Xs) -> np.ndarray:
    factor = m.fit.factor
    n, p = X.shape
    order = _l_order(factor)
    dims = factor.struct.cp.dims  # (p_g, l_g) per fitted term
    q = sum(dims[g][0] * dims[g][1] for g in order)
    L_Z = factor.sparse_L().tocsr() if q else None
    Qx = np.vstack([factor._q_all(g)[:, :p] for g in order]) if q else np.zeros((0, p))
    R = factor.L_XX[:p, :p]
    out = np.empty(n)
    chunk = max(1, min(_CHUNK, _CELLS // max(q, 1)))
    for s in range(0, n, chunk):
        rows = slice(s, min(n, s + chunk))
        nr = rows.stop - rows.start
        total = np.zeros(nr)
        wz = np.zeros((q, nr))
        if q and terms_idx:
            A = sp.hstack([_spread(*_term_rows(m, terms_idx, codes_list, Xs, rows, g), dims[g][0] * dims[g][1])
                           for g in order], format="csr").T.toarray()
            if A.any():
                wz = spsolve_triangular(L_Z, A, lower=True)
                total += np.einsum("ij,ij->j", wz, wz)
        Xr = X[rows].toarray() if sp.issparse(X) else X[rows]
        if p:
            wx = sla.solve_triangular(R, Xr.T - Qx.T @ wz, lower=True)
            total += np.einsum("ij,ij->j", wx, wx)
        out[rows] = total
    return out


def _new_rows(m, nd: pd.DataFrame, idx, allow_new_levels: bool):
    """Codes and model matrices of the chosen terms on new rows; the mask of new levels per term."""
    d = m.design
    codes_list, Xs, new = [], [], []
    for k in idx:
        t = d.re_terms[k]
        codes = t.codes_for(nd)
        is_new = codes < 0
        if is_new.any() and not allow_new_levels:
            shown = pd.unique(pd.Series(labels(nd, t.factors)[is_new]))[:5]
            raise DataError(f"new levels in grouping factor {t.group!r}: {list(shown)}; use "
                            "allow_new_levels=True to predict them at the population level")
        codes_list.append(codes)
        Xs.append(t.model_matrix(nd))
        new.append(is_new)
    return codes_list, Xs, new


def predict_se(m, newdata, re_form, allow_new_levels: bool) -> np.ndarray:
    """Standard errors of :meth:`LmerResult.predict` (see the module notes), as lme4's
    ``predict(se.fit = TRUE)``: ``sqrt(diag(A C A'))`` with A = [Z X] of the rows and C the
    joint error covariance of (b, beta).

    A level the fit has not seen (``allow_new_levels``) has no row in C (lme4 pads it
    with zeros): its random effect is predicted as 0 and adds nothing.
    """
    d = m.design
    idx = m._terms_for(re_form)
    if newdata is None:
        m._need_rows("predict(se_fit=True) without newdata")
        terms = [d.re_terms[k] for k in idx]
        codes_list, Xs = [t.codes for t in terms], [t.X for t in terms]
        X = d.X
    else:
        nd = as_frame(newdata, "newdata")
        codes_list, Xs, _ = _new_rows(m, nd, idx, allow_new_levels)
        X = d.fixed_matrix(nd)
    return m.sigma * np.sqrt(pev_norms(m, X, idx, codes_list, Xs))


# ------------------------------------------------------------- simulate
def simulate(m, nsim: int = 1, seed=None, use_u: bool = False, newdata=None, re_form=None,
             allow_new_levels: bool = False) -> pd.DataFrame:
    """Responses drawn from the fitted model (see :meth:`LmerResult.simulate`)."""
    if isinstance(nsim, bool) or not isinstance(nsim, (int, np.integer)) or nsim < 1:
        raise OptionError(f"nsim must be a positive integer; got {nsim!r}")
    use_u = check_bool("use_u", use_u)
    allow_new_levels = check_bool("allow_new_levels", allow_new_levels)
    rng = np.random.default_rng(check_seed(seed))
    d = m.design
    if newdata is None:
        m._need_rows("simulate()")
        n = d.n
        eta = np.asarray(d.X @ m.fit.beta).ravel()
        if d.offset is not None:
            eta = eta + d.offset
        weights = d.weights
        frame = None
    else:
        frame = as_frame(newdata, "newdata")
        n = len(frame)
        eta = m.predict(frame, re_form="~0")
        weights = None
    Y = np.repeat(eta[:, None], nsim, axis=1)
    idx = m._terms_for(re_form)
    sigma = m.sigma
    for k in idx:
        t = d.re_terms[k]
        T = m._Ts[k]
        if frame is None:
            codes, Xk = t.codes, t.X
        else:
            codes, Xk = t.codes_for(frame), t.model_matrix(frame)
        if use_u:
            new = codes < 0
            if new.any() and not allow_new_levels:
                shown = pd.unique(pd.Series(labels(frame, t.factors)[new]))[:5]
                raise DataError(f"new levels in grouping factor {t.group!r}: {list(shown)}; with use_u=True "
                                "pass allow_new_levels=True to draw their random effects afresh")
            b = m._b[k]
            Y[~new] += np.einsum("ij,ij->i", Xk[~new], b[codes[~new]])[:, None]
            if not new.any():
                continue
            # levels the fit has not seen: fresh draws, one per new level
            lab = labels(frame, t.factors)[new]
            fresh, inv = np.unique(lab, return_inverse=True)
            B = sigma * rng.standard_normal((nsim, fresh.size, t.p)) @ T.T
            Y[new] += np.einsum("ic,sic->is", Xk[new], B[:, inv, :])
            continue
        if frame is None:
            lev, nlev = codes, t.nlevels
        else:
            # every distinct level in newdata (seen or not) gets its own draw
            lev, uniq = pd.factorize(pd.Series(labels(frame, t.factors)), sort=True)
            nlev = len(uniq)
        B = sigma * rng.standard_normal((nsim, nlev, t.p)) @ T.T
        Y += np.einsum("ic,sic->is", Xk, B[:, lev, :])
    noise = sigma * rng.standard_normal((n, nsim))
    if weights is not None:
        with np.errstate(divide="ignore"):
            noise = noise / np.sqrt(weights)[:, None]
    Y += noise
    return pd.DataFrame(Y, columns=[f"sim_{i + 1}" for i in range(nsim)])


# ------------------------------------------------------------ bootstrap
class _RefitStatistic:
    """``y -> func(m.refit(y))`` as a flat float array (sent once to each worker)."""

    def __init__(self, m, func, offset, width):
        self.m, self.func, self.offset, self.width = m, func, offset, width

    def __call__(self, y):
        if self.offset is not None:
            y = y + self.offset
        try:
            # a replicate's singular or unconverged refit is counted (the last value), not shown
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always", PymlmWarning)
                value = _flat(self.func(self.m.refit(y)))
        except (np.linalg.LinAlgError, FloatingPointError, ValueError):
            return np.append(np.full(self.width, np.nan), 0.0)
        if value.size != self.width:
            raise OptionError(f"the bootstrap statistic returned {value.size} values on a replicate and "
                              f"{self.width} on the fitted model; it must return the same number each time")
        flagged = any(issubclass(w.category, PymlmWarning) for w in seen)
        return np.append(value, float(flagged))


def _flat(value) -> np.ndarray:
    if isinstance(value, dict):
        value = pd.Series(value)
    if isinstance(value, (pd.Series, pd.DataFrame)):
        value = value.to_numpy()
    return np.atleast_1d(np.asarray(value, dtype=float)).ravel()


def _names(value, width: int) -> list[str]:
    if isinstance(value, pd.Series):
        return [str(i) for i in value.index]
    if isinstance(value, dict):
        return [str(k) for k in value]
    return [f"t{i + 1}" for i in range(width)]


def bootstrap(m, func, nsim: int = 100, seed=None, n_jobs: int = 1, type: str = "parametric",
              progress: bool = False) -> pd.DataFrame:
    """lme4's ``bootMer``: a statistic of the model refitted to parametric bootstrap responses."""
    from ..inference.boot import statistic_replicates

    if not callable(func):
        raise OptionError(f"func must be a callable taking the fitted model, e.g. lambda m: m.fixef; got {func!r}")
    type = check_choice("type", type, ("parametric",))
    nsim = check_positive_int("nsim", nsim)
    m._need_rows("bootstrap()")
    m._api("bootstrap", m._refit_design)
    raw = func(m)
    if isinstance(raw, dict):
        raw = pd.Series(raw)
    t0 = _flat(raw)
    names = _names(raw, t0.size)
    if n_jobs != 1:
        try:
            pickle.dumps(func)
        except Exception:  # noqa: BLE001 - any pickling failure means the same thing here
            raise OptionError("with n_jobs > 1 func must be picklable (a function defined at module level, "
                              "not a lambda or a local function); or use n_jobs=1") from None
    stat = _RefitStatistic(m, func, m.design.offset, t0.size)
    t_start = time.perf_counter()
    reps = statistic_replicates(m.problem, stat, nsim, seed=seed, n_jobs=n_jobs, progress=progress)
    table = np.vstack(reps)
    out = pd.DataFrame(table[:, :-1], columns=names)
    out.attrs.update(t0=pd.Series(t0, index=names), nsim=nsim, seed=seed, type=type,
                     failed=int(np.isnan(out.to_numpy()).any(axis=1).sum()),
                     warned=int(table[:, -1].sum()),
                     seconds=time.perf_counter() - t_start)
    return out


# ------------------------------------------------------------ diagnostics
def hatvalues(m) -> np.ndarray:
    """Diagonal of the hat matrix (lme4's ``hatvalues.merMod``)."""
    m._need_rows("hatvalues()")
    d = m.design
    idx = list(range(len(d.re_terms)))
    h = pev_norms(m, d.X, idx, [t.codes for t in d.re_terms], [t.X for t in d.re_terms])
    return h if d.weights is None else h * d.weights


def cooks_distance(m) -> np.ndarray:
    """Cook's distance of each observation (lme4's ``cooks.distance.merMod``)."""
    h = hatvalues(m)
    p = int(np.linalg.matrix_rank(m.design.X.toarray() if sp.issparse(m.design.X) else m.design.X))
    r = m.residuals(type="pearson")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (r / (1 - h)) ** 2 * h / (m.sigma ** 2 * p)
    out[np.isinf(out)] = np.nan
    return out


def _var_cov_comps(m) -> pd.Series:
    """sigma^2, then per lme4 term the lower triangle of its covariance matrix, column by column
    (the layout of lme4's ``influence.merMod``)."""
    vals, names = [m.sigma ** 2], ["sigma^2"]
    groups = varcorr_group_names(m.design.re_terms)
    sep = ":" if len(groups) > 1 else ""
    for name, t, (_, sd, C) in zip(groups, m.design.re_terms, vc_parts(m.design.re_terms, m.varcorr)):
        V = np.outer(sd, sd) * C
        for j in range(t.p):
            for i in range(j, t.p):
                lab = f"v[{t.cnms[i]}]" if i == j else f"C[{t.cnms[i]},{t.cnms[j]}]"
                vals.append(V[i, j])
                names.append(f"{name if sep else ''}{sep}{lab}")
    return pd.Series(vals, index=names)


@dataclass
class LmerInfluence:
    """Case-deletion diagnostics of an lmer fit (lme4's ``influence.merMod``).

    Attributes
    ----------
    groups : str
        What was deleted: a grouping column's name, or ``"case"`` (one row at a time).
    fixed_effects : Series
        The fit's fixed effects.
    fixed_effects_deleted : DataFrame
        Fixed effects refitted without each deleted unit (rows: the units).
    var_cov_comps, var_cov_comps_deleted : Series, DataFrame
        sigma^2 and the random-effect variances and covariances, the same way.
    vcov : DataFrame
        The fit's covariance of the fixed effects.
    vcov_deleted : list of ndarray
        That covariance in each refit.
    converged : ndarray of bool
    """

    groups: str
    fixed_effects: pd.Series
    fixed_effects_deleted: pd.DataFrame
    var_cov_comps: pd.Series
    var_cov_comps_deleted: pd.DataFrame
    vcov: pd.DataFrame
    vcov_deleted: list = field(repr=False)
    converged: np.ndarray = field(repr=False)

    def dfbeta(self, which: str = "fixed") -> pd.DataFrame:
        """Refitted minus fitted estimates (``which``: ``"fixed"`` or ``"var.cov"``)."""
        which = check_choice("which", which, ("fixed", "var.cov"))
        if which == "fixed":
            return self.fixed_effects_deleted - self.fixed_effects.to_numpy()
        return self.var_cov_comps_deleted - self.var_cov_comps.to_numpy()

    def dfbetas(self) -> pd.DataFrame:
        """dfbeta scaled by each refit's standard errors (lme4's ``dfbetas``)."""
        se = np.sqrt(np.array([np.diag(v) for v in self.vcov_deleted]))
        return self.dfbeta() / se

    def cooks_distance(self) -> pd.Series:
        """Cook's distance of each deleted unit, ``(n - p) / (n p) d' V^{-1} d`` (lme4's)."""
        db = self.dfbeta().to_numpy()
        n, p = db.shape
        Vinv = np.linalg.inv(self.vcov.to_numpy())
        d = (n - p) / (n * p) * np.einsum("ij,jk,ik->i", db, Vinv, db)
        return pd.Series(d, index=self.fixed_effects_deleted.index, name="cooks_distance")

    def __repr__(self) -> str:
        return (f"<LmerInfluence: {len(self.fixed_effects_deleted)} deletions of {self.groups!r}, "
                f"{int(np.sum(~self.converged))} refits not converged>")


def influence(m, groups=None, progress: bool = False) -> LmerInfluence:
    """Refit without each group (or each row) and collect the changes (lme4's ``influence.merMod``)."""
    from .._progress import progress_bar

    if m._data is None:
        raise DataError("influence() refits on subsets of the data and this fit does not keep its data; "
                        "refit with pymlm.lmer(formula, data)")
    data = as_frame(m._data, "data")
    if groups is None:
        keys = np.arange(len(data))
        unique = keys
        index = pd.Index([str(i + 1) for i in keys], name="case")
        label = "case"
    else:
        cols = [groups] if isinstance(groups, str) else list(groups)
        missing = [c for c in cols if c not in data.columns]
        if missing:
            raise DataError(f"influence(groups=...) names column(s) {missing} that the data does not have; "
                            f"it has {list(data.columns)}")
        keys = labels(data, cols)
        unique = pd.unique(pd.Series(keys)).astype(object)
        index = pd.Index([str(u) for u in unique], name=".".join(cols))
        label = ".".join(cols)
    fe0, vc0 = m.fixef, _var_cov_comps(m)
    start = np.asarray(m.fit.theta, dtype=float)
    fes, vcs, vcovs, conv = [], [], [], []
    bar = progress_bar(len(unique), "case deletion", progress)
    try:
        for u in unique:
            keep = keys != u
            sub = data.loc[keep].reset_index(drop=True)
            r = m.update(data=sub, start=start)
            fes.append(r.fixef.reindex(fe0.index).to_numpy())
            vcs.append(_var_cov_comps(r).to_numpy())
            vcovs.append(r.vcov.to_numpy())
            conv.append(bool(r.converged))
            bar.update(1)
    finally:
        bar.close()
    return LmerInfluence(label, fe0, pd.DataFrame(np.vstack(fes), index=index, columns=fe0.index), vc0,
                         pd.DataFrame(np.vstack(vcs), index=index, columns=vc0.index), m.vcov, vcovs,
                         np.array(conv))


# ---------------------------------------------------------------- rePCA
def re_pca(m) -> dict:
    """lme4's ``summary(rePCA(m))``: per grouping factor, the SVD of its relative covariance factor."""
    terms = m.design.re_terms
    out = {}
    for group in dict.fromkeys(t.group for t in terms):
        blocks = [m._Ts[k] for k, t in enumerate(terms) if t.group == group]
        names = [c for t in terms if t.group == group for c in t.cnms]
        T = sla.block_diag(*blocks)
        U, s, _ = np.linalg.svd(T)
        var = s ** 2
        prop = var / var.sum() if var.sum() > 0 else np.full(var.size, np.nan)
        cols = [f"PC{i + 1}" for i in range(s.size)]
        tab = pd.DataFrame([s, prop, np.cumsum(prop)], columns=cols,
                           index=["Standard deviation", "Proportion of Variance", "Cumulative Proportion"])
        tab.attrs["rotation"] = pd.DataFrame(U, index=names, columns=cols)
        out[group] = tab
    return out


class SingularCheck:
    """lme4's ``isSingular``: true as a bool at lme4's tolerance; call it for another.

    ``m.is_singular`` reads as ``isSingular(m)`` (tol 1e-4);
    ``m.is_singular(tol=1e-3)`` as ``isSingular(m, tol = 1e-3)``: a diagonal
    element of theta (one with a lower bound of 0) below ``tol``.
    """

    __slots__ = ("_lower", "_theta")

    def __init__(self, theta, lower):
        self._theta = np.asarray(theta, dtype=float)
        self._lower = np.asarray(lower, dtype=float)

    def __call__(self, tol: float = 1e-4) -> bool:
        if isinstance(tol, bool) or not isinstance(tol, (int, float, np.floating, np.integer)) or not tol >= 0:
            raise OptionError(f"tol must be a number >= 0; got {tol!r}")
        diag = self._lower == 0
        return bool(np.any(self._theta[diag] < tol))

    def __bool__(self) -> bool:
        return self()

    def __eq__(self, other):
        return bool(self) == other

    def __hash__(self):
        return hash(bool(self))

    def __repr__(self) -> str:
        return repr(bool(self))


# ---------------------------------------------------------------- VarCorr
_COMPS = ("Variance", "Std.Dev.")


def varcorr_text(m, comp=("Std.Dev.",), digits: int = 5) -> str:
    """``print(VarCorr(m), comp = comp)``: lme4's table with the chosen columns."""
    if isinstance(comp, str):
        comp = (comp,)
    comp = tuple(comp)
    bad = [c for c in comp if c not in _COMPS]
    if not comp or bad:
        raise OptionError(f"comp must be 'Variance', 'Std.Dev.' or both; got {comp!r}")
    digits = check_positive_int("digits", digits)
    terms = m.design.re_terms
    groups, sds, corrs = (list(x) for x in zip(*vc_parts(terms, m.varcorr)))
    cols, cells = _fmt.format_vc(groups, [list(t.cnms) for t in terms], sds, corrs, m.sigma, digits=digits)
    drop = [cols.index(c) for c in _COMPS if c not in comp]
    cols = [c for i, c in enumerate(cols) if i not in drop]
    cells = [[c for i, c in enumerate(row) if i not in drop] for row in cells]
    return "\n".join(_fmt.print_matrix(cells, [""] * len(cells), cols))
