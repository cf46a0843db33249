"""The paper's estimators over per-site sums: EM, Fisher scoring, two-step least squares.

One random-effects term with p_k coefficients per group; per group j the
site has A_j = Z_j'WZ_j, Z_j'WX_j, Z_j'Wy_j (its cross-products), and the
totals [X y]'W[X y] add over sites. Write Sigma for the random effects'
covariance, s2 for sigma^2, r_j = Z_j'W(y_j - X_j beta) and e = y - X beta.

EM (Afshartous & Michailidis 3.1.1; Laird & Ware 1982), ML. At (beta, Sigma,
s2), with C_j = (A_j + s2 Sigma^{-1})^{-1} and b_j = C_j r_j (the conditional
means), the sites send S1 = sum (b_j b_j' + s2 C_j), S2 = sum (b_j'A_j b_j -
2 b_j'r_j + s2 tr(A_j C_j)), S3 = sum Z_j'WX_j ' b_j; then Sigma = S1 / J,
s2 = (e'We + S2) / n, beta = (X'WX)^{-1}(X'Wy - S3).

Fisher scoring (3.1.2), ML. With V_j = Z_j Sigma Z_j' + s2 W_j^{-1} and
G_j = Sigma (s2 I + A_j Sigma)^{-1} (= (A_j + s2 Sigma^{-1})^{-1}, no inverse
of Sigma needed), Woodbury gives Z'V^{-1}Z = P_j = (A_j - A_j G_j A_j) / s2,
Z'V^{-1}e = (r_j - A_j G_j r_j) / s2 and X'V^{-1}X = (X'WX - sum Z_x'G Z_x) / s2.
The score in an element of Sigma (direction E) is 1/2 [r~'E r~ - tr(P E)]
summed over groups, in s2 1/2 [e'V^{-1}W^{-1}V^{-1}e - tr(V^{-1}W^{-1})]; the
expected information 1/2 tr(V^{-1} dV_k V^{-1} dV_l) needs sum P_j (x) P_j,
sum Q_j (Q_j = Z'V^{-1}W^{-1}V^{-1}Z) and scalar traces. Each round sends
these sums at the current (Sigma, s2) and the GLS sums for beta; beta is the
GLS estimate at the previous variance parameters, so the fixed point is the
ML estimate.

Two-step least squares (the paper's Table 1): per group the OLS of y on the
term's columns, b_j = A_j^{-1} Z_j'Wy_j; sigma^2 = sum RSS_j / sum (n_j -
p_k); the unweighted fixed effects are the mean of the b_j; the unbiased
level-2 dispersion tau = S_b - sigma^2 mean_j A_j^{-1} (S_b the sample
covariance of the b_j); the weighted one-step fixed effects are
(sum W_j)^{-1} sum W_j b_j with W_j = (tau + sigma^2 A_j^{-1})^{-1} (a second
round).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import OptionError
from ._sums import FederationError

__all__ = ["SITE_SUMS", "TwoStepFit", "fit_em", "fit_fisher", "two_step_fit"]


def _blocks(cp):
    if cp.n_terms != 1:
        raise OptionError(
            f"this estimator needs one random-effects term; the model has {cp.n_terms}"
        )
    p = cp.p
    return cp.zz_diag[0], cp.zxy[0][:, :, :p], cp.zxy[0][:, :, p]


def totals_sums(site, params):
    cp = site._cp
    r, c = np.tril_indices(cp.p + 1)
    return cp.xyxy[r, c]


def em_sums(site, params):
    beta, Sig, s2 = params
    A, Zx, Zy = _blocks(site._cp)
    pk = A.shape[1]
    C = np.linalg.inv(A + s2 * np.linalg.inv(Sig))
    r = Zy - Zx @ beta
    b = np.einsum("jab,jb->ja", C, r)
    S1 = np.einsum("ja,jb->ab", b, b) + s2 * C.sum(0)
    S2 = float(
        np.sum(
            np.einsum("ja,jab,jb->j", b, A, b)
            - 2.0 * np.einsum("ja,ja->j", b, r)
            + s2 * np.einsum("jab,jba->j", A, C)
        )
    )
    S3 = np.einsum("jax,ja->x", Zx, b)
    return np.concatenate([S1.reshape(pk * pk), [S2], S3, [A.shape[0]]])


def fisher_sums(site, params):
    beta, Sig, s2 = params
    A, Zx, Zy = _blocks(site._cp)
    pk = A.shape[1]
    G = Sig @ np.linalg.inv(s2 * np.eye(pk) + A @ Sig)
    GA = G @ A
    AGA = A @ GA
    P = (A - AGA) / s2
    r = Zy - Zx @ beta
    Gr = np.einsum("jab,jb->ja", G, r)
    Zr = (r - np.einsum("jab,jb->ja", A, Gr)) / s2
    Q = (A - 2.0 * AGA + AGA @ GA) / s2**2
    AGr = np.einsum("jab,jb->ja", A, Gr)
    out = [
        np.einsum("jax,jab,jby->xy", Zx, G, Zx).ravel(),
        np.einsum("jax,jab,jb->x", Zx, G, Zy),
        np.einsum("ja,jb->ab", Zr, Zr).ravel(),
        P.sum(0).ravel(),
        np.einsum("jab,jcd->abcd", P, P).ravel(),
        Q.sum(0).ravel(),
        [
            np.einsum("jaa->", GA),
            np.einsum("jab,jba->", GA, GA),
            np.einsum("ja,ja->", r, Gr),
            np.einsum("ja,ja->", Gr, AGr),
            A.shape[0],
        ],
    ]
    return np.concatenate([np.asarray(o, dtype=float).ravel() for o in out])


def two_step_sums(site, params):
    """Round 1 (params None): J, sum b, sum bb', sum A^{-1}, sum RSS, sum (n_j - p_k);
    round 2 (params (tau, sigma2)): sum W, sum W b."""
    design = site._design
    A, _, Zy = _blocks(site._cp)
    pk = A.shape[1]
    t = design.re_terms[0]
    w = np.ones(design.n) if design.weights is None else design.weights
    y = design.y if design.offset is None else design.y - design.offset
    n_j = np.bincount(t.codes, minlength=t.nlevels)
    if np.any(n_j <= pk):
        raise FederationError(
            f"site {site.name!r}: a group of {t.group!r} has at most {pk} rows, too few for "
            "its within-group regression; drop such groups for the two-step estimators"
        )
    Ainv = np.linalg.inv(A)
    b = np.einsum("jab,jb->ja", Ainv, Zy)
    if params is not None:
        tau, s2 = params
        W = np.linalg.inv(tau + s2 * Ainv)
        return np.concatenate([W.sum(0).ravel(), np.einsum("jab,jb->a", W, b)])
    yy_j = np.bincount(t.codes, weights=w * y * y, minlength=t.nlevels)
    rss = float(np.sum(yy_j - np.einsum("ja,ja->j", b, Zy)))
    return np.concatenate(
        [
            [t.nlevels],
            b.sum(0),
            np.einsum("ja,jb->ab", b, b).ravel(),
            Ainv.sum(0).ravel(),
            [rss, float(np.sum(n_j - pk))],
        ]
    )


def shrinkage_estimates(site, fixef, tau, sigma2) -> pd.DataFrame:
    """The site's empirical Bayes per-group coefficients (the two-step fit's last message, which
    stays at the site): b*_j = beta + tau (tau + sigma^2 A_j^{-1})^{-1} (b_j - beta)."""
    design = site._design
    A, _, Zy = _blocks(site._cp)
    t = design.re_terms[0]
    Ainv = np.linalg.inv(A)
    b = np.einsum("jab,jb->ja", Ainv, Zy)
    shrink = np.einsum("ab,jbc->jac", tau, np.linalg.inv(tau + sigma2 * Ainv))
    est = fixef + np.einsum("jab,jb->ja", shrink, b - fixef)
    return pd.DataFrame(est, index=pd.Index(list(t.levels), name=t.group), columns=list(t.cnms))


SITE_SUMS = {"totals": totals_sums, "em": em_sums, "fisher": fisher_sums, "two-step": two_step_sums}


def _ask(co, kind, params):
    size = 16 + sum(8 * np.size(v) for v in (params or ()))
    total, _ = co._sum_round(
        kind, lambda site, parts, r, a: site.sums(kind, params, parts, r, a), size
    )
    return total


def _totals(co):
    p1 = co.p + 1
    r, c = np.tril_indices(p1)
    t = _ask(co, "totals", None)
    M = np.zeros((p1, p1))
    M[r, c] = t
    M[c, r] = t
    return M


def _start(co, M):
    p = co.p
    beta = np.linalg.solve(M[:p, :p], M[:p, p])
    s2 = float(M[p, p] - M[:p, p] @ beta) / co.n
    pk = co.tmap.dims[0][0]
    return beta, np.eye(pk) * s2, s2


def _changed(old, new, tol):
    return any(
        np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.maximum(np.abs(np.asarray(b)), 1e-8))
        > tol
        for a, b in zip(old, new)
    )


def fit_em(co, tol: float = 1e-10, max_iter: int | None = None):
    """EM over per-site sums (module header); returns (beta, Sigma, s2, iterations, converged)."""
    M = _totals(co)
    p = co.p
    XX, Xy, yy = M[:p, :p], M[:p, p], M[p, p]
    beta, Sig, s2 = _start(co, M)
    pk = Sig.shape[0]
    max_iter = max_iter or co.max_rounds
    for it in range(1, max_iter + 1):
        s = _ask(co, "em", (beta, Sig, s2))
        S1, S2, S3, J = s[: pk * pk].reshape(pk, pk), s[pk * pk], s[pk * pk + 1 : -1], s[-1]
        rr = yy - 2.0 * beta @ Xy + beta @ XX @ beta
        new = (np.linalg.solve(XX, Xy - S3), 0.5 * (S1 + S1.T) / J, (rr + S2) / co.n)
        done = not _changed((beta, Sig, s2), new, tol)
        beta, Sig, s2 = new
        if done:
            return beta, Sig, s2, it, True
    return beta, Sig, s2, max_iter, False


def fit_fisher(co, tol: float = 1e-10, max_iter: int | None = None):
    """Fisher scoring over per-site sums (module header); returns (beta, Sigma, s2, iterations,
    converged, X'V^{-1}X)."""
    M = _totals(co)
    p = co.p
    XX, Xy, yy = M[:p, :p], M[:p, p], M[p, p]
    beta, Sig, s2 = _start(co, M)
    pk = Sig.shape[0]
    rows, cols = np.tril_indices(pk)
    basis = []
    for a, b in zip(rows, cols):
        E = np.zeros((pk, pk))
        E[a, b] = E[b, a] = 1.0
        basis.append(E)
    max_iter = max_iter or co.max_rounds
    XVX = None
    for it in range(1, max_iter + 1):
        s = _ask(co, "fisher", (beta, Sig, s2))
        sizes = [p * p, p, pk * pk, pk * pk, pk**4, pk * pk, 5]
        parts = np.split(s, np.cumsum(sizes)[:-1])
        xgx, xgy = parts[0].reshape(p, p), parts[1]
        ZrZr, SP, SPP, SQ = (
            parts[2].reshape(pk, pk),
            parts[3].reshape(pk, pk),
            parts[4].reshape(pk, pk, pk, pk),
            parts[5].reshape(pk, pk),
        )
        trGA, trGAGA, rGr, rGAGr, _ = parts[6]
        XVX = (XX - xgx) / s2
        beta_new = np.linalg.solve(XX - xgx, Xy - xgy)
        rr = yy - 2.0 * beta @ Xy + beta @ XX @ beta
        k = len(basis)
        score = np.empty(k + 1)
        info = np.empty((k + 1, k + 1))
        for i, E in enumerate(basis):
            score[i] = 0.5 * (np.sum(E * ZrZr) - np.sum(E * SP))
            for j, F in enumerate(basis):
                info[i, j] = 0.5 * float(
                    np.einsum("abcd,bc,da->", SPP, E, F)
                )  # sum_j tr(P_j E P_j F)
            info[i, k] = info[k, i] = 0.5 * np.sum(E * SQ)
        score[k] = 0.5 * ((rr - 2.0 * rGr + rGAGr) / s2**2 - (co.n - trGA) / s2)
        info[k, k] = 0.5 * (co.n - 2.0 * trGA + trGAGA) / s2**2
        step = np.linalg.solve(info, score)
        psi = np.append(Sig[rows, cols], s2)
        t = 1.0
        while True:
            cand = psi + t * step
            S = np.zeros((pk, pk))
            S[rows, cols] = cand[:k]
            S[cols, rows] = cand[:k]
            if cand[k] > 0 and np.linalg.eigvalsh(S).min() > 0:
                break
            t *= 0.5
            if t < 1e-8:
                raise FederationError(
                    "Fisher scoring left the parameter space (a variance estimate is 0); "
                    "use method='pls', which handles the boundary"
                )
        new = (beta_new, S, float(cand[k]))
        done = not _changed((beta, Sig, s2), new, tol)
        beta, Sig, s2 = new
        if done:
            return beta, Sig, s2, it, True, XVX
    return beta, Sig, s2, max_iter, False, XVX


@dataclass(frozen=True, eq=False)
class TwoStepFit:
    """The two-step least-squares estimates.

    Attributes
    ----------
    fixef, fixef_se : pandas.Series
    tau : pandas.DataFrame
        The unbiased level-2 dispersion estimate (may be indefinite).
    sigma2 : float
        The pooled within-group residual variance.
    weighted : bool

    Each site then holds its groups' empirical Bayes coefficients
    (``site.shrinkage``: beta + tau (tau + sigma^2 A_j^{-1})^{-1} (b_j - beta), tau
    made positive semi-definite); the coordinator never sees them.
    ngroups : int
    rounds : int
    bytes_per_site : dict
    sites_used : list
    transcript : list
    """

    fixef: pd.Series
    fixef_se: pd.Series
    tau: pd.DataFrame
    sigma2: float
    weighted: bool
    ngroups: int
    rounds: int
    bytes_per_site: dict
    sites_used: list
    transcript: list = field(repr=False)


def two_step_fit(co, weighted: bool) -> TwoStepFit:
    pk = co.tmap.dims[0][0]
    group, cnms = co.terms[0]
    if list(cnms) != list(co.X_names):
        extra = sorted(set(co.X_names) ^ set(cnms))
        raise OptionError(
            f"the two-step estimators regress within groups on the columns of ({' + '.join(cnms)} | "
            f"{group}); the fixed effects must be those columns (they differ in {extra})"
        )
    s = _ask(co, "two-step", None)
    J = s[0]
    sb, sbb = s[1 : 1 + pk], s[1 + pk : 1 + pk + pk * pk].reshape(pk, pk)
    sAinv = s[1 + pk + pk * pk : 1 + pk + 2 * pk * pk].reshape(pk, pk)
    rss, df = s[-2], s[-1]
    sigma2 = rss / df
    bbar = sb / J
    Sb = (sbb - J * np.outer(bbar, bbar)) / (J - 1)
    tau = Sb - sigma2 * sAinv / J
    if weighted:
        vals, vecs = np.linalg.eigh(0.5 * (tau + tau.T))
        tau_psd = (vecs * np.maximum(vals, 0.0)) @ vecs.T
        w = _ask(co, "two-step", (tau_psd, sigma2))
        SW, SWb = w[: pk * pk].reshape(pk, pk), w[pk * pk :]
        fixef = np.linalg.solve(SW, SWb)
        se = np.sqrt(np.diag(np.linalg.inv(SW)))
    else:
        vals, vecs = np.linalg.eigh(0.5 * (tau + tau.T))
        tau_psd = (vecs * np.maximum(vals, 0.0)) @ vecs.T
        fixef = bbar
        se = np.sqrt(np.diag(Sb) / J)
    # the shrinkage estimates go back to the sites (each keeps its own groups'); nothing returns
    rid = co._next_round()
    for name in co.participants:
        co._record_request(rid, "shrinkage", name, 16 + 8 * (pk + pk * pk + 1))
        co._sites[name].shrink(fixef, tau_psd, float(sigma2))
    names = list(cnms)
    return TwoStepFit(
        pd.Series(fixef, index=names),
        pd.Series(se, index=names),
        pd.DataFrame(tau, index=names, columns=names),
        float(sigma2),
        bool(weighted),
        int(J),
        co.rounds,
        co.bytes_per_site(),
        co.participants,
        list(co.transcript),
    )
