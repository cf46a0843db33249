r"""Split-sample estimation: fit subsamples, combine, and take intervals from their spread.

Three ways to cut the data (``mode``) with the same model fitted to each
piece. Every combination averages the *natural* parameters

    psi = (the free elements of each Sigma_k = sigma^2 T_k T_k', sigma^2, beta),

that is the random-effect variances and covariances, the residual variance
and the fixed effects, because (REML) estimates of variances and of beta are
close to unbiased while standard deviations and correlations are not: an
average of m nearly unbiased pieces keeps its bias, whereas the average of m
biased pieces keeps theirs too and no longer shrinks it as the sample grows.
The reported lme4 parameters are then functions of the average,
sd = sqrt(var), cor = cov / (sd sd'), sigma = sqrt(sigma^2).

Let psi_m be subsample m's estimate, psi_bar their mean and C an estimate of
Cov(psi_bar). Intervals use, per reported parameter,

- fixed effects: psi_bar +/- t_nu se;
- standard deviations and sigma: the square roots of the variance interval
  var +/- t_nu se (clipped at 0), exact for a monotone transformation;
- correlations: tanh(atanh(rho) +/- t_nu se_z), se_z = se_rho / (1 - rho^2),
  se_rho from the delta method (Fisher's z keeps the interval in (-1, 1)),

with se^2 = g'Cg for the gradient g of the parameter in psi, and nu the
degrees of freedom of that variance (below).

``mode="independent"``: the groups are partitioned at random into M subsets
--------------------------------------------------------------------------
The subsets share nothing, so psi_1..psi_M are independent with a common
distribution and Cov(psi_bar) = Cov(psi_m) / M, estimated by S / M, S the
sample covariance of the psi_m (M - 1 degrees of freedom): the interval is
psi_bar +/- t_{M-1} sd / sqrt(M), a t interval for a mean of M independent
estimates. With nested grouping factors the outermost one is partitioned.

``mode="dependent"``: each group's observations are split into M subsets
-----------------------------------------------------------------------
Every subsample holds every group, so the subsamples share the random
effects b_i. To first order the error of subsample m is

    psi_m - psi = A + E_m,

A = E[psi_m | b] - psi the part driven by the b_i, common to all m, and E_m
the part driven by the residuals of subsample m, whose rows are disjoint
from the others', so the E_m are independent given b. Then

    Cov(psi_bar) = Cov(A) + Cov(E) / M,

and the spread S of the psi_m estimates Cov(E) only: alone it misses the
between-group component. It is valid as it stands for sigma^2, whose
estimate depends on b only at second order (A = 0). The others get A from
the model at the combined estimate:

- random-effect covariances: E[Sigma_m | b] - Sigma is, to first order, the
  sample covariance of the N random effects minus Sigma (the balanced
  one-way case: E[sigma_b^2-hat | b] = (1/N) sum (b_i - b_bar)^2), so Cov(A)
  is the Wishart covariance
  Cov(Sigma_jk, Sigma_lm) = (Sigma_jl Sigma_km + Sigma_jm Sigma_kl) / N;
- fixed effects: beta_m - beta = H_m^{-1} X_m'V_m^{-1}(Z_m b + e_m), so
  A = sum_i K_i b_i with K_i = (1/M) sum_m H_m^{-1} X_im'V_im^{-1} Z_im and
  Cov(A) = sum_i K_i Sigma K_i', computed per group from the subsamples'
  cross-products through X'V^{-1}Z = X'Z (sigma^2 I + Sigma Z'Z)^{-1}.

A and E are uncorrelated (third moments of normal b vanish), so
C = Cov(A) + S / M, and the degrees of freedom of g'Cg follow
Satterthwaite: nu = (g'Cg)^2 / ((g'Sg / M)^2 / (M - 1)), between M - 1
(sigma) and infinity (parameters dominated by the between-group part).

``mode="overlapping"``: pairs of time blocks, combined by composite likelihood
-----------------------------------------------------------------------------
Each group's observations, in their order in the data (sort by time first),
are cut into K consecutive blocks; subsample (k, l), k < l, holds blocks k
and l of every group, and the P = K (K - 1) / 2 pairwise fits each maximize
one term of the pairwise (composite) log-likelihood
cl(psi) = sum_{k<l} l_{kl}(psi) (Lindsay 1988; Varin, Reid & Firth 2011;
Fieuws & Verbeke 2006 fit and average pairs in the same way). Expanding
each pairwise score around its root, psi_s - psi ~ I_s^{-1} U_s, gives the
one-step maximizer of cl as the information-weighted mean

    psi_bar = (sum_s I_s)^{-1} sum_s I_s psi_s,

with I_s pair s's Fisher information evaluated at the plain mean of the
psi_s (so the weights follow the pairs' designs: a pair of late blocks says
little about the intercept variance and gets little weight for it; the
plain mean would let such poorly determined pairs inflate the variance).
Each row enters K - 1 fits and the pairs share the random effects, so
neither their spread nor their own variances apply; groups are the
independent units, and the Godambe (sandwich) variance sums over groups:

    psi_bar - psi ~ sum_i phi_i,   phi_i = (sum_s I_s)^{-1} sum_s U_is,
    C = N / (N - 1) sum_i (phi_i - phi_bar)(phi_i - phi_bar)',

with U_is the score of group i in pair s at psi_s, both U and I in closed
form from per-group cross-products (Notes of :func:`group_scores`);
nu = N - 1. ML scores serve for the REML fits: the REML correction is of
lower order.

GLMMs
-----
A GLMM's subsets (``mode="independent"``, ``variance="spread"`` only) are
fitted by the Laplace / AGQ objective from the full fit's estimates; psi
holds the random-effect covariances (no sigma^2 unless the family has a
dispersion) and beta, and the t interval is the same.

``variance="sandwich"`` with the other modes
--------------------------------------------
The same group-level sandwich applies to any subsamples of one grouping
factor, with the plain mean and phi_i = (1/M) sum_m I_m^{-1} U_im (exact
to first order for psi_bar = mean of psi_m). It makes no model assumption
about the random effects' distribution (the shared part of dependent splits
assumes normal b) and has N - 1 degrees of freedom rather than M - 1, at
the price of one more pass over each subsample's rows.

References
----------
Fieuws, S. and Verbeke, G. (2006). Pairwise fitting of mixed models for the
joint modeling of multivariate longitudinal profiles. Biometrics 62, 424-431.

Lindsay, B. G. (1988). Composite likelihood methods. Contemporary
Mathematics 80, 221-239.

Varin, C., Reid, N. and Firth, D. (2011). An overview of composite
likelihood methods. Statistica Sinica 21, 5-42.

Chen, X. and Xie, M. (2014). A split-and-conquer approach for analysis of
extraordinarily large data. Statistica Sinica 24, 1655-1684.

Satterthwaite, F. E. (1946). An approximate distribution of estimates of
variance components. Biometrics Bulletin 2, 110-114.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from .._validation import check_choice, check_level, check_positive_int
from ..crossprod import CrossProducts, cross_products
from ..errors import OptionError
from ..fit._optimize import minimize_from
from ..fit.deviance import evaluator_for
from ..fit.lmm import fit_from_theta
from ..linalg._threads import blas_threads
from ._parallel import run_replicates
from .blb import check_options, seed_children, slim_problem

__all__ = ["group_scores", "group_stats", "interval", "natural_parameters", "pair_blocks", "partition_groups",
           "split_rows"]

OPTIONS = ("n_splits", "mode", "variance")
MODES = ("independent", "dependent", "overlapping")
VARIANCES = ("spread", "sandwich")
CHUNK = 100_000


# ---------------------------------------------------------------- parameters
def _n_sigma(problem) -> int:
    """1 when the model has a residual scale among its parameters (an LMM; a GLMM with a dispersion)."""
    return problem.n_var - problem.n_sig


def natural_parameters(problem, theta, sigma, beta) -> np.ndarray:
    """psi: the free elements of each term's Sigma_k (theta's order), sigma^2 (where the model has it), beta."""
    s2 = [sigma ** 2] if _n_sigma(problem) else []
    return np.concatenate([problem.tmap.covariances(theta, sigma), s2, np.asarray(beta, dtype=float)])


def _var_index(problem):
    """For every variance-part position: (i, j) in its term, and the positions of its diagonal entries."""
    tmap = problem.tmap
    rows = np.concatenate([r for r, _ in tmap.positions]) if tmap.positions else np.zeros(0, int)
    cols = np.concatenate([c for _, c in tmap.positions]) if tmap.positions else np.zeros(0, int)
    di, dj = tmap.diagonal_of
    return [(int(i), int(j), int(a), int(b)) for i, j, a, b in zip(rows, cols, di, dj)]


def reported(problem, psi: np.ndarray) -> np.ndarray:
    """lme4's parameters (sds, correlations, sigma, beta) from psi."""
    nv = problem.tmap.n_theta
    ns = _n_sigma(problem)
    out = problem.tmap.sdcor_from_covariances(psi[:nv])
    return np.concatenate([out, [np.sqrt(max(psi[nv], 0.0))] if ns else [], psi[nv + ns:]])


def _intervals(problem, psi: np.ndarray, parts, level: float):
    """Intervals of lme4's parameters from psi and Cov(psi) = sum of parts [(C, df), ...].

    Returns lower, upper, estimate and the degrees of freedom of each parameter.
    """
    a = (1.0 - level) / 2.0
    var_info = _var_index(problem)
    nv = len(var_info)
    d = psi.size
    est = reported(problem, psi)
    lower, upper, dfs = np.empty(d), np.empty(d), np.empty(d)
    for k in range(d):
        g = np.zeros(d)
        cor = k < nv and var_info[k][0] != var_info[k][1]
        if cor:
            _, _, di, dj = var_info[k]
            vi, vj = max(psi[di], 1e-300), max(psi[dj], 1e-300)
            rho = psi[k] / np.sqrt(vi * vj)
            g[k] = 1.0 / np.sqrt(vi * vj)
            g[di] += -rho / (2.0 * vi)
            g[dj] += -rho / (2.0 * vj)
        else:
            g[k] = 1.0
        vp = np.array([float(g @ C @ g) for C, _ in parts])
        vp = np.maximum(vp, 0.0)
        v = vp.sum()
        den = sum(x * x / df for x, (_, df) in zip(vp, parts) if np.isfinite(df))
        nu = v * v / den if den > 0 else np.inf
        live = [df for x, (_, df) in zip(vp, parts) if x > 0]
        if len(live) == 1:
            nu = live[0]        # one source of variance: its df exactly (not v^2 / (v^2 / df) rounded)
        dfs[k] = nu
        q = stats.t.ppf(1.0 - a, nu) if np.isfinite(nu) else stats.norm.ppf(1.0 - a)
        se = np.sqrt(v)
        if cor:
            r = np.clip(rho, -1 + 1e-12, 1 - 1e-12)
            z, se_z = np.arctanh(r), se / (1.0 - r * r)
            lower[k], upper[k] = np.tanh(z - q * se_z), np.tanh(z + q * se_z)
        elif k < nv + _n_sigma(problem):   # a variance (random effect or residual): roots of its interval
            lower[k] = np.sqrt(max(psi[k] - q * se, 0.0))
            upper[k] = np.sqrt(max(psi[k] + q * se, 0.0))
        else:
            lower[k], upper[k] = psi[k] - q * se, psi[k] + q * se
    return lower, upper, est, dfs


# ---------------------------------------------------------------- cutting the data
def _within_rank(codes: np.ndarray, key: np.ndarray | None = None):
    """Rank of each row within its group (by ``key``, else by row order) and the group sizes."""
    n = codes.size
    order = np.lexsort((np.arange(n) if key is None else key, codes))
    sizes = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - starts[codes[order]]
    return rank, sizes


def _partition_factor(problem) -> int:
    """The grouping factor whose levels every other factor nests in (fewest levels).

    Raises
    ------
    OptionError
        The grouping factors are crossed: no partition of groups gives independent subsets.
    """
    k0 = int(np.argmin(problem.levels))
    outer = problem.codes[k0]
    for k, codes in enumerate(problem.codes):
        if k == k0:
            continue
        pairs = np.unique(codes.astype(np.int64) * problem.levels[k0] + outer)
        if pairs.size != np.unique(codes).size:
            raise OptionError(
                "split-sample estimation with mode='independent' partitions the groups of a grouping "
                "factor that all others are nested in; this model has crossed grouping factors, "
                "whose groups cannot be split into independent subsets"
            )
    return k0


def partition_groups(n_groups: int, n_splits: int, rng: np.random.Generator) -> np.ndarray:
    """A random partition of the groups into ``n_splits`` subsets whose sizes differ by at most one.

    Returns
    -------
    ndarray of int (n_groups,)
        The subset of each group.
    """
    part = np.empty(n_groups, dtype=np.int64)
    part[rng.permutation(n_groups)] = np.arange(n_groups) % n_splits
    return part


def split_rows(codes: np.ndarray, n_splits: int, rng: np.random.Generator) -> np.ndarray:
    """Each group's rows dealt at random into ``n_splits`` subsets of near-equal size.

    Within a group the rows are put in random order and dealt round-robin
    from a random first subset, so a group of n_i rows gives each subset
    floor(n_i / M) or ceil(n_i / M) of them and the extra rows fall on
    different subsets for different groups.
    """
    n_groups = int(codes.max()) + 1 if codes.size else 0
    rank, _ = _within_rank(codes, rng.random(codes.size))
    offset = rng.integers(0, n_splits, size=n_groups)
    return (rank + offset[codes]) % n_splits


def pair_blocks(codes: np.ndarray, n_blocks: int) -> np.ndarray:
    """Block of each row: each group's rows, in data order, cut into ``n_blocks`` consecutive blocks."""
    rank, sizes = _within_rank(codes)
    return (rank * n_blocks) // sizes[codes]


def _rows_by_label(label: np.ndarray, n: int) -> list[np.ndarray]:
    order = np.argsort(label, kind="stable")
    return np.split(order, np.cumsum(np.bincount(label, minlength=n))[:-1])


# ---------------------------------------------------------------- cross-products of a subsample
def _cp_rows(problem, rows: np.ndarray, compact: bool) -> CrossProducts:
    """Cross-products of a subset of rows; ``compact`` renumbers each factor's levels among those present."""
    codes, levels = [], []
    for c, lk in zip(problem.codes, problem.levels):
        c = c[rows]
        if compact:
            present = np.bincount(c, minlength=lk) > 0
            c = (np.cumsum(present) - 1)[c]
            lk = int(present.sum())
        codes.append(c)
        levels.append(lk)
    w = None if problem.weights is None else problem.weights[rows]
    return cross_products(codes, [x[rows] for x in problem.Xs], levels, problem.X[rows], problem.y[rows], weights=w)


def _drop_empty_levels(cp: CrossProducts) -> CrossProducts:
    """A single-term CrossProducts without the levels that have no rows in it (same fit, less work)."""
    zz = cp.zz_diag[0]
    keep = np.abs(zz).reshape(zz.shape[0], -1).sum(axis=1) > 0
    return CrossProducts(((cp.dims[0][0], int(keep.sum())),), cp.p, cp.n, cp.sum_log_w, (zz[keep],), {}, {},
                         (cp.zxy[0][keep],), cp.xyxy)


def _fit_one_glmm(payload, rng, m):
    glmm, pieces = payload
    x, res, _ = glmm.refit(pieces[m])
    nt = glmm.n_sig
    return x[:nt], glmm.sigma_of(pieces[m], res), x[nt:]


def _fit_one(payload, rng, m):
    slim, cps = payload
    obj = evaluator_for(cps[m], slim.reml, slim.tmap)
    with blas_threads(1):
        f = fit_from_theta(obj, minimize_from(obj, slim.fit.theta, slim.lower).x, None)
    return f.theta, f.sigma, f.beta


# ---------------------------------------------------------------- per-group algebra
def _indicator(codes: np.ndarray, n_groups: int) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(codes.size), (codes, np.arange(codes.size))), shape=(n_groups, codes.size))


def group_stats(problem, rows: np.ndarray, beta=None):
    """Per-group blocks of a single-factor model on a subset of rows (weights folded in as sqrt(w)).

    Returns
    -------
    dict with
        G (N, q, q) Z_i'Z_i; ZX (N, q, p) Z_i'X_i; n (N,) rows with positive weight;
        XX (p, p) X'X; and, when ``beta`` is given, with r = y - X beta:
        Zr (N, q), Xr (N, p), rr (N,).
    """
    N = int(problem.levels[0])
    q = problem.Xs[0].shape[1]
    p = problem.X.shape[1]
    G = np.zeros((N, q, q))
    ZX = np.zeros((N, q, p))
    XX = np.zeros((p, p))
    n = np.zeros(N)
    if beta is not None:
        Zr, Xr, rr = np.zeros((N, q)), np.zeros((N, p)), np.zeros(N)
    for s in range(0, rows.size, CHUNK):
        r_ = rows[s:s + CHUNK]
        codes = problem.codes[0][r_]
        Z = problem.Xs[0][r_]
        X = problem.X[r_]
        X = X.toarray() if sp.issparse(X) else np.asarray(X)
        if problem.weights is not None:
            w = problem.weights[r_]
            n += np.bincount(codes[w > 0], minlength=N)
            sw = np.sqrt(w)[:, None]
            Z, X = Z * sw, X * sw
        else:
            n += np.bincount(codes, minlength=N)
        ind = _indicator(codes, N)
        G += (ind @ np.einsum("ia,ib->iab", Z, Z).reshape(r_.size, -1)).reshape(N, q, q)
        ZX += (ind @ np.einsum("ia,ib->iab", Z, X).reshape(r_.size, -1)).reshape(N, q, p)
        XX += X.T @ X
        if beta is not None:
            res = problem.y[r_] - np.asarray(problem.X[r_] @ beta).ravel()
            if problem.weights is not None:
                res = res * sw[:, 0]
            Zr += ind @ (Z * res[:, None])
            Xr += ind @ (X * res[:, None])
            rr += np.bincount(codes, weights=res * res, minlength=N)
    out = {"G": G, "ZX": ZX, "XX": XX, "n": n}
    if beta is not None:
        out.update(Zr=Zr, Xr=Xr, rr=rr)
    return out


def _sigma_matrix(problem, psi: np.ndarray) -> np.ndarray:
    """The (single) term's Sigma from psi."""
    (rows, cols), = problem.tmap.positions
    q = problem.Xs[0].shape[1]
    S = np.zeros((q, q))
    S[rows, cols] = psi[:len(rows)]
    S[cols, rows] = psi[:len(rows)]
    return S


def _unit_matrices(problem) -> np.ndarray:
    """E_e: d Sigma / d psi_e for each free element (symmetric unit matrices), (n_free, q, q)."""
    (rows, cols), = problem.tmap.positions
    q = problem.Xs[0].shape[1]
    E = np.zeros((len(rows), q, q))
    for e, (i, j) in enumerate(zip(rows, cols)):
        E[e, i, j] = 1.0
        E[e, j, i] = 1.0
    return E


def group_scores(problem, stats_: dict, psi: np.ndarray):
    r"""Per-group ML scores and the summed Fisher information in psi, single grouping factor.

    Parameters
    ----------
    problem : LmmProblem
    stats_ : dict
        :func:`group_stats` of the rows, computed with beta = psi's beta.
    psi : ndarray (d,)
        (free elements of Sigma, sigma^2, beta).

    Returns
    -------
    U : ndarray (N, d)
        Score of each group's marginal log-likelihood.
    info : ndarray (d, d)
        Expected (Fisher) information, summed over groups.

    Notes
    -----
    Group i has y_i ~ N(X_i beta, V_i), V_i = sigma^2 I + Z_i Sigma Z_i'. With
    G = Z'Z, B = (sigma^2 I + Sigma G)^{-1} and Q = B Sigma, the push-through
    identity V^{-1} Z = Z B gives sigma^2 V^{-1} = I - Z Q Z', so with
    r = y - X beta, a = Z'V^{-1}r = B'Z'r, P = Z'V^{-1}Z = B'G, c = Q Z'r:

    - dl/dSigma = (a a' - P) / 2 (free off-diagonal elements count twice);
    - dl/dsigma^2 = (r'V^{-2}r - tr V^{-1}) / 2, r'V^{-2}r =
      (r'r - 2 c'Z'r + c'Gc) / sigma^4, tr V^{-1} = (n_i - tr QG) / sigma^2;
    - dl/dbeta = X'V^{-1}r = (X'r - X'Z c) / sigma^2;

    and the information tr(V^{-1} dV V^{-1} dV') / 2 is tr(E_e P E_f P) / 2
    between covariances, tr(E_e B'GB) / 2 between a covariance and sigma^2,
    (n_i - 2 tr QG + tr QGQG) / (2 sigma^4) for sigma^2, and
    (X'X - sum_i X_i'Z_i Q_i Z_i'X_i) / sigma^2 for beta (zero across
    beta and the variances). All are O(q^3) per group.
    """
    G, ZX, n = stats_["G"], stats_["ZX"], stats_["n"]
    Zr, Xr, rr = stats_["Zr"], stats_["Xr"], stats_["rr"]
    q = G.shape[1]
    nf = len(problem.tmap.positions[0][0])
    S = _sigma_matrix(problem, psi)
    s2 = psi[nf]
    B = np.linalg.inv(s2 * np.eye(q) + np.einsum("ab,ibc->iac", S, G))
    Q = B @ S
    a = np.einsum("iba,ib->ia", B, Zr)
    P = np.einsum("iba,ibc->iac", B, G)
    P = 0.5 * (P + P.transpose(0, 2, 1))
    c = np.einsum("iab,ib->ia", Q, Zr)
    QG = Q @ G
    E = _unit_matrices(problem)
    (rows, cols), = problem.tmap.positions
    half = 0.5 * (np.einsum("ia,ib->iab", a, a) - P)
    U_var = half[:, rows, cols] * np.where(np.asarray(rows) == np.asarray(cols), 1.0, 2.0)
    rVVr = (rr - 2.0 * np.einsum("ia,ia->i", c, Zr) + np.einsum("ia,iab,ib->i", c, G, c)) / s2 ** 2
    trV = (n - np.trace(QG, axis1=1, axis2=2)) / s2
    U_s2 = 0.5 * (rVVr - trV)
    U_beta = (Xr - np.einsum("iqp,iq->ip", ZX, c)) / s2
    U = np.column_stack([U_var, U_s2, U_beta])

    p = ZX.shape[2]
    d = nf + 1 + p
    info = np.zeros((d, d))
    EP = np.einsum("eab,ibc->ieac", E, P)
    info[:nf, :nf] = 0.5 * np.einsum("ieab,ifba->ef", EP, EP)
    R = np.einsum("iba,ibc,icd->iad", B, G, B)
    info[:nf, nf] = info[nf, :nf] = 0.5 * np.einsum("eab,iba->e", E, R)
    info[nf, nf] = 0.5 * float(np.sum(n - 2.0 * np.trace(QG, axis1=1, axis2=2)
                                      + np.einsum("iab,iba->i", QG, QG))) / s2 ** 2
    info[nf + 1:, nf + 1:] = (stats_["XX"] - np.einsum("iqp,iqr,irs->ps", ZX, Q, ZX)) / s2
    return U, info


def _shared_beta_cov(problem, stats_list, psi: np.ndarray) -> np.ndarray:
    """Cov(A) for beta in dependent splits: sum_i K_i Sigma K_i' (module notes)."""
    nf = len(problem.tmap.positions[0][0])
    S = _sigma_matrix(problem, psi)
    s2 = psi[nf]
    K = 0.0
    for st in stats_list:
        G, ZX = st["G"], st["ZX"]
        q = G.shape[1]
        B = np.linalg.inv(s2 * np.eye(q) + np.einsum("ab,ibc->iac", S, G))
        XVZ = np.einsum("iqp,iqr->ipr", ZX, B)                       # X_i'V_i^{-1}Z_i
        H = (st["XX"] - np.einsum("ipq,qr,irs->ps", XVZ, S, ZX)) / s2
        K = K + np.einsum("pk,ikq->ipq", np.linalg.inv(H), XVZ)
    K = K / len(stats_list)
    return np.einsum("ipq,qr,isr->ps", K, S, K)


def _shared_sigma_cov(problem, psi: np.ndarray, n_groups: int) -> np.ndarray:
    """Cov(A) for the free elements of Sigma: the Wishart covariance of a sample covariance of N effects."""
    (rows, cols), = problem.tmap.positions
    S = _sigma_matrix(problem, psi)
    ri, ci = np.asarray(rows), np.asarray(cols)
    return (S[np.ix_(ri, ri)] * S[np.ix_(ci, ci)] + S[np.ix_(ri, ci)] * S[np.ix_(ci, ri)]) / n_groups


def _sandwich(problem, pieces, psis: np.ndarray, weighted: bool):
    """Combined psi and its group-level sandwich covariance (module notes).

    ``weighted``: the one-step composite-likelihood estimator
    (sum_s I_s)^{-1} sum_s I_s psi_s with every I_s evaluated at the plain
    mean (so that the weights depend on the subsamples' designs, not on
    their estimates), and phi_i = (sum_s I_s)^{-1} sum_s U_is; otherwise
    the plain mean and phi_i = (1/P) sum_s I_s^{-1} U_is.
    """
    nf = len(problem.tmap.positions[0][0])
    N = int(problem.levels[0])
    mean = psis.mean(axis=0)
    scores, infos = [], []
    for rows, psi in zip(pieces, psis):
        U, info = group_scores(problem, group_stats(problem, rows, beta=psi[nf + 1:]), psi)
        if weighted:
            info = group_scores(problem, group_stats(problem, rows, beta=mean[nf + 1:]), mean)[1]
        scores.append(U)
        infos.append(info)
    if weighted:
        H = sum(infos)
        psi_bar = np.linalg.solve(H, sum(I @ x for I, x in zip(infos, psis)))
        phi = np.linalg.solve(H, sum(scores).T).T
    else:
        psi_bar = mean
        phi = sum(np.linalg.solve(I, U.T).T for I, U in zip(infos, scores)) / len(pieces)
    phi = phi - phi.mean(axis=0)
    return psi_bar, N / (N - 1) * (phi.T @ phi)


# ---------------------------------------------------------------- interval
def interval(problem, level: float = 0.95, seed=None, n_jobs: int = 1, progress: bool = True,
             n_splits: int = 10, mode: str = "independent", variance: str | None = None,
             **options) -> pd.DataFrame:
    r"""Split-sample intervals: fit subsamples, average, and use their spread.

    Parameters
    ----------
    problem : LmmProblem
    level : float
        Confidence level in (0, 1).
    seed : int, SeedSequence or None
        Seeds the random partition (``"independent"``, ``"dependent"``);
        ``"overlapping"`` is deterministic.
    n_jobs : int
        Processes for the subsample fits.
    progress : bool
        Progress bar over the fits.
    n_splits : int
        M, the number of subsets (default 10; at least 2). With
        ``mode="overlapping"``, K, the number of time blocks per group; the
        K (K - 1) / 2 pairs of blocks are fitted.
    mode : {"independent", "dependent", "overlapping"}
        ``"independent"``: partition the groups; ``"dependent"``: split each
        group's observations; ``"overlapping"``: pairs of consecutive-row
        blocks within groups. See the module notes for each combination.
    variance : {"spread", "sandwich"}, optional
        How Cov(psi_bar) is estimated. ``"spread"`` (the default of the
        independent and dependent modes): from the between-subset spread,
        plus the model-based shared part for dependent splits;
        ``"sandwich"`` (the only choice, and default, for overlapping
        pairs; also valid for the other modes with one grouping factor):
        the group-level sandwich of the module notes, N - 1 degrees of
        freedom.

    Returns
    -------
    DataFrame
        lme4's layout. ``attrs``: ``estimates`` (Series, the combined
        estimates), ``replicates`` (one row per subsample: ``subset``, its
        ``ngroups`` and ``nobs`` (and ``blocks`` for overlapping pairs), and
        every parameter on lme4's scale), ``assignment`` (the subset of each
        group (level code) for ``"independent"``, of each row for
        ``"dependent"``, the block of each row for ``"overlapping"``),
        ``df`` (Series, degrees of freedom
        of each interval), ``vcov`` (DataFrame, the estimated covariance of
        the averaged natural parameters psi), ``settings``.

    Raises
    ------
    OptionError
        An unknown mode or option, n_splits < 2, fewer than 2 groups per
        subset (independent), groups with fewer observations than subsets
        (dependent, overlapping), several grouping factors (dependent,
        overlapping) or crossed ones (independent).

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> ci = m.confint("split", n_splits=2, mode="dependent", seed=1, progress=False)
    >>> ci.attrs["replicates"].shape[0]
    2
    """
    check_options("split", options, OPTIONS)
    level = check_level(level)
    mode = check_choice("mode", mode, MODES)
    M = check_positive_int("n_splits", n_splits, minimum=2)
    if variance is None:
        variance = "sandwich" if mode == "overlapping" else "spread"
    variance = check_choice("variance", variance, VARIANCES)
    if variance == "spread" and mode == "overlapping":
        raise OptionError("variance='spread' does not apply to mode='overlapping': the pairs share rows, so "
                          "their spread is not that of independent estimates; use variance='sandwich'")
    if problem.is_glmm and (mode != "independent" or variance != "spread"):
        raise OptionError(f"split-sample intervals of a GLMM use mode='independent' with variance='spread' "
                          f"(a random partition of the groups); got mode={mode!r}, variance={variance!r}")
    rng = np.random.default_rng(seed_children(seed, 1)[0])
    n_rows = problem.problem.n if problem.is_glmm else problem.y.shape[0]

    if mode == "independent":
        if variance == "sandwich" and not problem.single_factor:
            raise OptionError("variance='sandwich' sums per-group scores and needs every random term on one "
                              "grouping factor; the model has several grouping factors")
        k0 = _partition_factor(problem)
        L = int(problem.levels[k0])
        if L < 2 * M:
            raise OptionError(
                f"n_splits={M} with mode='independent' splits the {L} groups of the grouping factor into "
                f"{M} subsets; each subset needs at least 2 groups, so use n_splits <= {L // 2}"
            )
        part = partition_groups(L, M, rng)
        pieces = _rows_by_label(part[problem.codes[k0]], M)
        labels = None
        assignment = part
    else:
        if not problem.single_factor:
            raise OptionError(
                f"split-sample estimation with mode={mode!r} splits each group's observations and needs "
                "every random term on one grouping factor; the model has several grouping factors"
            )
        codes = problem.codes[0]
        largest = int(np.bincount(codes).max())
        if largest < M:
            raise OptionError(
                f"n_splits={M} with mode={mode!r} splits each group's observations into {M} subsets, but the "
                f"largest group has {largest} observations; use n_splits <= {largest}"
            )
        if mode == "dependent":
            assignment = split_rows(codes, M, rng)
            pieces = _rows_by_label(assignment, M)
            labels = None
        else:
            block = assignment = pair_blocks(codes, M)
            by_block = _rows_by_label(block, M)
            pairs = [(k, l) for k in range(M) for l in range(k + 1, M)]
            pieces = [np.sort(np.concatenate([by_block[k], by_block[l]])) for k, l in pairs]
            labels = [f"{k + 1}+{l + 1}" for k, l in pairs]

    compact = mode == "independent"
    if problem.is_glmm:
        subs = [problem.rows_of(rows) for rows in pieces]
        cps = [_PieceSize(float(pr.n), pr.tmap.dims) for pr in subs]
        fits = run_replicates(_fit_one_glmm, (problem, subs), len(subs), seed=None, n_jobs=n_jobs,
                              progress=progress, desc="split fits", batch=1)
    else:
        cps = [_cp_rows(problem, rows, compact=compact) for rows in pieces]
        if not compact:
            cps = [_drop_empty_levels(cp) for cp in cps]
        fits = run_replicates(_fit_one, (slim_problem(problem), cps), len(cps), seed=None, n_jobs=n_jobs,
                              progress=progress, desc="split fits", batch=1)
    psis = np.stack([natural_parameters(problem, *f) for f in fits])
    n_sub = len(cps)
    if variance == "sandwich":
        psi_bar, C = _sandwich(problem, pieces, psis, weighted=mode == "overlapping")
        N = int(problem.levels[0])
        parts = [(C, N - 1)]
    else:
        psi_bar = psis.mean(axis=0)
        S = np.atleast_2d(np.cov(psis, rowvar=False))
        if mode == "independent":
            parts = [(S / n_sub, n_sub - 1)]
        else:
            N = int(problem.levels[0])
            nf = len(problem.tmap.positions[0][0])
            st = [group_stats(problem, rows) for rows in pieces]
            shared = np.zeros_like(S)
            shared[:nf, :nf] = _shared_sigma_cov(problem, psi_bar, N)
            shared[nf + 1:, nf + 1:] = _shared_beta_cov(problem, st, psi_bar)
            parts = [(shared, np.inf), (S / n_sub, n_sub - 1)]

    lower, upper, est, dfs = _intervals(problem, psi_bar, parts, level)
    from . import interval_frame

    names = problem.param_names
    out = interval_frame(problem, lower, upper, level)
    table = pd.DataFrame(np.stack([reported(problem, x) for x in psis]), columns=names)
    if labels is not None:
        table.insert(0, "blocks", labels)
    table.insert(0, "nobs", [round(cp.n) for cp in cps])
    table.insert(0, "ngroups", [int(cp.dims[k0 if compact else 0][1]) for cp in cps])
    table.insert(0, "subset", np.arange(1, n_sub + 1))
    psi_names = _psi_names(problem)
    out.attrs["estimates"] = pd.Series(est, index=names)
    out.attrs["replicates"] = table
    out.attrs["df"] = pd.Series(dfs, index=names)
    out.attrs["vcov"] = pd.DataFrame(sum(C for C, _ in parts), index=psi_names, columns=psi_names)
    out.attrs["assignment"] = assignment
    out.attrs["settings"] = {"n_splits": M, "mode": mode, "variance": variance, "n_subsamples": n_sub,
                             "n_rows": int(n_rows)}
    return out


def _psi_names(problem) -> list[str]:
    sig = problem.param_names[:problem.n_sig]
    names = [f"var({s})" if i == j else f"cov({s})" for s, (i, j, _, _) in zip(sig, _var_index(problem))]
    return names + ["sigma^2"] * _n_sigma(problem) + list(problem.fixef_names)


@dataclass(frozen=True)
class _PieceSize:
    """The size of a GLMM's subsample, as the replicate table reports it (rows, levels per factor)."""

    n: float
    dims: tuple
