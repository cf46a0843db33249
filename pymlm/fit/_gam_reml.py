"""Penalized least squares and the restricted likelihood of a GAM, from cross products.

For working weights ``W``, response ``z``, model matrix ``X`` (n x p) and
penalty ``S(rho)`` (block diagonal, see :mod:`pymlm.design._gam_penalty`), everything
below needs only ``X'WX``, ``X'Wz``, ``z'Wz`` and ``n``:

    A = X'WX + S,        beta = A^{-1} X'Wz,
    D_p = ||W^{1/2}(z - X beta)||^2 + beta'S beta = z'Wz - beta'X'Wz,

and the negative log restricted likelihood (Wood 2011, eq. 4; mgcv's
``REML`` / ``fREML`` score) is

    V(rho, phi) = D_p / (2 phi) + (n - M_p)/2 log(2 pi phi)
                  + log|A| / 2 - log|S|_+ / 2,

with ``M_p`` the dimension of the penalty null space. With an unknown scale,
``phi`` is profiled out: ``phi = D_p / (n - M_p)``. With ``S_k = dS/drho_k``,
``dbeta/drho_k = -A^{-1} S_k beta`` and

    dD_p/drho_k = beta'S_k beta,
    d2D_p/drho_k drho_l = beta'S_kl beta - 2 beta'S_k A^{-1} S_l beta,
    dlog|A|/drho_k = tr(A^{-1} S_k),
    d2log|A|/drho_k drho_l = tr(A^{-1} S_kl) - tr(A^{-1} S_k A^{-1} S_l),

which give the exact gradient and Hessian used by the Newton optimizer
(:func:`newton`), as mgcv's ``fast.REML.fit`` does. The generalized
Fellner-Schall update (Wood & Fasiolo 2017, :func:`fellner_schall`) is the
alternative for penalties linear in the smoothing parameters; it needs no
Hessian. Newton is the default: on the test problems it needed 3-13
iterations where Fellner-Schall needed 5-161 (a tensor product with two
penalties was the slow case, and stopped short of the optimum), and its
evaluations cost little more since the Hessian re-uses ``A^{-1}``.

References
----------
Wood, S. N. (2011). Fast stable restricted maximum likelihood and marginal
likelihood estimation of semiparametric generalized linear models. JRSS B
73(1), 3-36.
Wood, S. N. & Fasiolo, M. (2017). A generalized Fellner-Schall method for
smoothing parameter optimization with application to Tweedie location,
scale and shape models. Biometrics 73(4), 1071-1081.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import lapack

from ..crossprod._gam import CrossStats
from ..design._gam_penalty import LinearPenalty

__all__ = [
    "CrossStats",
    "RemlEval",
    "evaluate",
    "fellner_schall",
    "initial_rho",
    "newton",
    "null_dim",
    "reparametrize",
]

_LOG2PI = float(np.log(2 * np.pi))


@dataclass(frozen=True, eq=False)
class RemlEval:
    """The restricted likelihood and its pieces at one ``rho``.

    Attributes
    ----------
    score : float
        ``V(rho, phi)`` (smaller is better).
    grad, hess : ndarray
        Derivatives of the score in ``rho`` (``phi`` profiled when estimated).
    beta : ndarray (p,)
    PP : ndarray (p, p)
        ``A^{-1}``.
    Dp : float
        Penalized residual sum of squares.
    phi : float
        The scale used (profiled estimate or the fixed value).
    ldetA, ldetS : float
    rank : int
        Numerical rank of ``A`` (p unless the model is not identifiable).
    rho : ndarray
    Q : ndarray (p, p) or None
        For the marginal likelihood (``ml=True``): ``Y (Y'AY)^{-1} Y'`` with
        ``Y`` an orthonormal basis of the penalty range, which takes the place
        of ``A^{-1}`` in the derivatives of ``log|Y'AY|``; None for REML.
    """

    score: float
    grad: np.ndarray
    hess: np.ndarray
    beta: np.ndarray
    PP: np.ndarray
    Dp: float
    phi: float
    ldetA: float
    ldetS: float
    rank: int
    rho: np.ndarray = field(default_factory=lambda: np.zeros(0))
    Q: np.ndarray | None = None

    @property
    def PT(self) -> np.ndarray:
        """The matrix of the log-determinant traces: ``A^{-1}`` (REML) or ``Q`` (ML)."""
        return self.PP if self.Q is None else self.Q


def range_basis(penalties, p: int) -> np.ndarray:
    """``Y`` (p, r): an orthonormal basis of the range of the total penalty, block by block.

    The marginal likelihood (mgcv's ``method = "ML"``) treats the coefficients
    of the penalty null space as fixed effects; its log-determinant is that of
    ``Y'(X'WX + S)Y`` rather than of ``X'WX + S``.
    """
    cols = []
    for b in penalties:
        U = getattr(b, "_range_basis", None)
        if U is None:
            if b.kind != "linear" or b.identity or b.rank == b.size:
                U = np.eye(b.size)
            elif b.diagonal:
                U = np.eye(b.size)[:, b._range]
            else:
                total = sum(s / np.linalg.norm(s) for s in b.S)
                vals, vecs = np.linalg.eigh((total + total.T) / 2)
                U = vecs[:, np.argsort(-vals, kind="stable")[: b.rank]]
            b._range_basis = U
        Y = np.zeros((p, U.shape[1]))
        Y[b.cols, :] = U
        cols.append(Y)
    return np.hstack(cols) if cols else np.zeros((p, 0))


def null_dim(p: int, penalties) -> int:
    """``M_p``: coefficients not penalized by any block."""
    return p - sum(b.rank for b in penalties)


#: Smallest block-diagonal segment that :func:`_solve` eliminates block by block.
BLOCK_MIN = 200


def _block_inverse(As: np.ndarray, blockdiag: tuple):
    """``As^{-1}`` and ``log|As|`` by eliminating a block-diagonal segment first.

    With ``B`` the segment (``n_b`` blocks ``B_i`` of size ``q``), ``D`` the
    other coefficients and ``C = A_DD - A_DB B^{-1} A_BD`` (the Schur
    complement), ``log|A| = sum_i log|B_i| + log|C|`` and

        A^{-1} = [B^{-1} + G C^{-1} G',  -G C^{-1};  -C^{-1} G',  C^{-1}],   G = B^{-1} A_BD.

    The ``B_i`` are factored and inverted together (batched LAPACK calls),
    so the cost is ``O(n_b q^3 + n_b q p_D^2 + p_D^3)`` plus forming the
    dense inverse, instead of ``O(p^3)``.

    Returns
    -------
    (PPs, logdet, min_pivot) or None when the segment is not block diagonal
    or a factor fails (then the dense path decides).
    """
    start, nb, q = blockdiag
    p = As.shape[0]
    size = nb * q
    seg = np.arange(start, start + size)
    rest = np.setdiff1d(np.arange(p), seg)
    Abb = As[start:start + size, start:start + size].reshape(nb, q, nb, q)
    ar = np.arange(nb)
    blocks = Abb[ar, :, ar, :].copy()  # (nb, q, q)
    off = Abb.copy()
    off[ar, :, ar, :] = 0.0
    if np.any(off):
        return None
    try:
        Lb = np.linalg.cholesky(blocks)
    except np.linalg.LinAlgError:
        return None
    piv_b = np.diagonal(Lb, axis1=1, axis2=2)
    Binv = np.linalg.inv(blocks)
    Binv = (Binv + np.swapaxes(Binv, 1, 2)) / 2
    Abd = As[np.ix_(seg, rest)].reshape(nb, q, rest.size)
    G = np.matmul(Binv, Abd)  # (nb, q, pD)
    C = As[np.ix_(rest, rest)] - np.einsum("bij,bik->jk", Abd, G)
    piv_c = np.ones(0)
    if rest.size:
        R, info = lapack.dpotrf((C + C.T) / 2, lower=0, clean=1)
        if info != 0:
            return None
        piv_c = np.diag(R)
        Cinv, info = lapack.dpotri(R, lower=0)
        if info != 0:
            return None
        Cinv = np.triu(Cinv) + np.triu(Cinv, 1).T
    else:
        Cinv = np.zeros((0, 0))
    Gf = G.reshape(size, rest.size)
    GC = Gf @ Cinv
    PPs = np.empty((p, p))
    bb = GC @ Gf.T
    bb.reshape(nb, q, nb, q)[ar, :, ar, :] += Binv
    PPs[start:start + size, start:start + size] = bb
    PPs[np.ix_(seg, rest)] = -GC
    PPs[np.ix_(rest, seg)] = -GC.T
    PPs[np.ix_(rest, rest)] = Cinv
    ldet = 2.0 * float(np.sum(np.log(piv_b))) + 2.0 * float(np.sum(np.log(piv_c)))
    min_piv = float(min(piv_b.min(), piv_c.min() if piv_c.size else np.inf))
    return PPs, ldet, min_piv


def _solve(A: np.ndarray, f: np.ndarray, blockdiag: tuple | None = None):
    """Solve ``A beta = f`` for symmetric positive (semi)definite A.

    Diagonal scaling, then Cholesky (with a block-diagonal segment of at
    least :data:`BLOCK_MIN` coefficients eliminated block by block first,
    :func:`_block_inverse`); if that fails, an eigen decomposition that drops
    directions with eigenvalues below ``p * eps`` of the largest (a
    rank-deficient model: those coefficients are set by the minimum-norm
    solution).

    Returns
    -------
    beta, PP (= A^{-1} or its pseudo-inverse), logdet(A) (over the kept
    directions), rank
    """
    p = A.shape[0]
    d = np.sqrt(np.abs(np.diag(A)))
    d[d == 0] = 1.0
    As = A / d[:, None] / d[None, :]
    if blockdiag is not None and blockdiag[1] * blockdiag[2] >= BLOCK_MIN:
        out = _block_inverse(As, blockdiag)
        # a condition number beyond ~1e13 (unit diagonal after scaling) is treated as singular
        if out is not None and out[2] ** 2 >= 1e-13:
            PPs, ldet, _ = out
            PP = PPs / d[:, None] / d[None, :]
            return PP @ f, PP, ldet + 2.0 * float(np.sum(np.log(d))), p
    try:
        # LAPACK's Cholesky and Cholesky inverse (dpotrf, dpotri)
        R, info = lapack.dpotrf(As, lower=0, clean=1)
        # a condition number beyond ~1e13 (unit diagonal after scaling) is treated as singular
        if info != 0 or np.min(np.abs(np.diag(R))) ** 2 < 1e-13:
            raise np.linalg.LinAlgError("not positive definite")
        ldet = 2.0 * float(np.sum(np.log(np.diag(R)))) + 2.0 * float(np.sum(np.log(d)))
        PPs, info = lapack.dpotri(R, lower=0)
        if info != 0:
            raise np.linalg.LinAlgError("inverse failed")
        PPs = np.triu(PPs) + np.triu(PPs, 1).T
        rank = p
    except (np.linalg.LinAlgError, ValueError):
        vals, vecs = np.linalg.eigh((As + As.T) / 2)
        keep = vals > max(vals.max(), 0.0) * p * np.finfo(float).eps * 10
        rank = int(keep.sum())
        V = vecs[:, keep]
        PPs = (V / vals[keep]) @ V.T
        ldet = float(np.sum(np.log(vals[keep]))) + 2.0 * float(np.sum(np.log(d)))
    PP = PPs / d[:, None] / d[None, :]
    beta = PP @ f
    return beta, PP, ldet, rank


def _split(rho: np.ndarray, penalties):
    out, at = [], 0
    for b in penalties:
        out.append(rho[at:at + b.n_par])
        at += b.n_par
    return out


def penalty_matrix(rho: np.ndarray, penalties, p: int) -> np.ndarray:
    """The total penalty ``S(rho)`` (p, p)."""
    S = np.zeros((p, p))
    for b, r in zip(penalties, _split(rho, penalties)):
        S[b.cols, b.cols] += b.matrix(r)
    return S


def evaluate(rho, stats: CrossStats, penalties, phi: float | None = None, hessian: bool = True,
             ml: bool = False) -> RemlEval:
    """The REML (or ML) score, gradient and Hessian at ``rho``.

    Parameters
    ----------
    rho : ndarray
        All penalty parameters, block after block.
    stats : CrossStats
    penalties : list of penalty blocks
    phi : float or None
        Known scale (binomial, Poisson: 1); None to profile it out.
    hessian : bool
        Also compute the Hessian (O(m^2) traces).
    ml : bool
        The marginal likelihood instead (mgcv's ``method = "ML"``): the
        null-space coefficients are fixed effects, so ``log|A|`` becomes
        ``log|Y'AY|`` (:func:`range_basis`), ``M_p`` drops out of the score
        and the profiled scale is ``D_p / n``.

    Returns
    -------
    RemlEval
    """
    rho = np.asarray(rho, dtype=float)
    p = stats.p
    n = stats.n
    parts = _split(rho, penalties)
    A = stats.XtWX.copy()
    for b, r in zip(penalties, parts):
        if getattr(b, "diagonal", False):
            sub = A[b.cols, b.cols]
            sub[np.diag_indices(b.size)] += sum(v for v in b.d1_diag(r))
        else:
            A[b.cols, b.cols] += b.matrix(r)
    beta, PP, ldetA, rank = _solve(A, stats.XtWz, stats.blockdiag)
    Dp = float(stats.zWz - beta @ stats.XtWz)
    Dp = max(Dp, 1e-12 * max(stats.zWz, 1e-300))
    Mp = 0 if ml else null_dim(p, penalties)
    Q = None
    if ml:
        Y = range_basis(penalties, p)
        _, Ar_inv, ldetA, _ = _solve(Y.T @ A @ Y, np.zeros(Y.shape[1]))
        Q = Y @ Ar_inv @ Y.T
    PT = PP if Q is None else Q
    profiled = phi is None
    if profiled:
        phi_used = Dp / (n - Mp)
    else:
        phi_used = float(phi)
    ldetS = 0.0
    m = int(sum(b.n_par for b in penalties))
    gS = np.zeros(m)
    hS = np.zeros((m, m))
    dS_list, blocks = [], []
    at = 0
    for b, r in zip(penalties, parts):
        v, g, h = b.logdet(r)
        ldetS += v
        gS[at:at + b.n_par] = g
        hS[at:at + b.n_par, at:at + b.n_par] = h
        # diagonal blocks (factor smooths, random effects) carry their derivatives as vectors
        d1 = b.d1_diag(r) if getattr(b, "diagonal", False) else b.d1(r)
        for j, Sj in enumerate(d1):
            dS_list.append(Sj)
            blocks.append((b, at, j, r))
        at += b.n_par
    dPP = np.diag(PT)
    score = Dp / (2 * phi_used) + (n - Mp) / 2 * (_LOG2PI + np.log(phi_used)) + ldetA / 2 - ldetS / 2
    grad = np.zeros(m)
    bSb = np.zeros(m)
    Sb = []
    PS = []
    for k, (Sk, (b, at, j, r)) in enumerate(zip(dS_list, blocks)):
        cols = b.cols
        bj = beta[cols]
        diag = Sk.ndim == 1
        Skb = Sk * bj if diag else Sk @ bj
        Sb.append(Skb)
        bSb[k] = bj @ Skb
        trk = float(dPP[cols] @ Sk) if diag else float(np.sum(PT[cols, cols] * Sk))
        grad[k] = (trk - gS[k] + bSb[k] / phi_used) / 2
        if hessian:
            # diagonal S_k: the rows of PP S_k are formed only where a pair needs them
            PS.append(None if diag else PT[:, cols] @ Sk)
    hess = np.zeros((m, m))
    squares = {}  # PP[bk, bl]**2, once per pair of diagonal blocks
    if hessian:
        for k in range(m):
            bk, atk, jk, rk = blocks[k]
            for l in range(k, m):
                bl, atl, jl, rl = blocks[l]
                # tr(PP_kl S_l PP_lk S_k); with both S diagonal, s_k' (PP_kl o PP_kl) s_l
                if PS[k] is None and PS[l] is None:
                    key = (id(bk), id(bl))
                    if key not in squares:
                        squares[key] = PT[bk.cols, bl.cols] ** 2
                    tr2 = float(dS_list[k] @ squares[key] @ dS_list[l])
                else:
                    PSk = PT[bl.cols, bk.cols] * dS_list[k] if PS[k] is None else PS[k][bl.cols, :]
                    PSl = PT[bk.cols, bl.cols] * dS_list[l] if PS[l] is None else PS[l][bk.cols, :]
                    tr2 = float(np.sum(PSk * PSl.T))
                bSPSb = float(Sb[k] @ (PP[bk.cols, bl.cols] @ Sb[l]))
                tr1 = 0.0
                bS2b = 0.0
                if bk is bl and getattr(bk, "diagonal", False):
                    if jk == jl:  # d2S/drho_j^2 = dS/drho_j for a linear penalty
                        s2 = dS_list[k]
                        tr1 = float(dPP[bk.cols] @ s2)
                        bS2b = float(beta[bk.cols] @ (s2 * beta[bk.cols]))
                elif bk is bl:
                    S2 = bk.d2(rk, jk, jl)
                    if S2 is not None:
                        tr1 = float(np.sum(PT[bk.cols, bk.cols] * S2))
                        bS2b = float(beta[bk.cols] @ S2 @ beta[bk.cols])
                d2D = bS2b - 2.0 * bSPSb
                h = (tr1 - tr2 - hS[k, l]) / 2
                if profiled:
                    c = (n - Mp) / 2
                    h += c * (d2D / Dp - bSb[k] * bSb[l] / Dp**2)
                else:
                    h += d2D / (2 * phi_used)
                hess[k, l] = hess[l, k] = h
    return RemlEval(float(score), grad, hess, beta, PP, Dp, float(phi_used), float(ldetA), float(ldetS),
                    rank, rho.copy(), Q)


def initial_rho(stats: CrossStats, penalties) -> np.ndarray:
    """Starting values as mgcv's ``initial.sp``: each penalty comparable to X'WX, then
    all scaled by powers of 10 until the average 'shrinkage' is about 0.4."""
    xx = np.diag(stats.XtWX)
    rho = []
    for b in penalties:
        rho.extend(b.initial(xx[b.cols]).tolist())
    rho = np.asarray(rho, dtype=float)
    if rho.size == 0:
        return rho
    ldss = np.zeros(stats.p)
    parts = _split(rho, penalties)
    for b, r in zip(penalties, parts):
        ldss[b.cols] += np.diag(b.matrix(r))
    ind = (ldss > 0) & (xx > 0)
    if not ind.any():
        return rho
    shift = 0.0
    ratio = lambda s: np.mean(xx[ind] / (xx[ind] + ldss[ind] * 10.0**s))
    for _ in range(60):
        if ratio(shift) > 0.4:
            shift += 1
        else:
            break
    for _ in range(60):
        if ratio(shift) < 0.4:
            shift -= 1
        else:
            break
    lin = np.concatenate([[b.kind == "linear"] * b.n_par for b in penalties]).astype(bool)
    diag_corr = np.concatenate([
        [(i == j) for (i, j) in b.pairs] if b.kind == "correlated" else [False] * b.n_par
        for b in penalties]).astype(bool)
    rho = rho.copy()
    rho[lin] += shift * np.log(10.0)
    rho[diag_corr] += 0.5 * shift * np.log(10.0)
    return rho


@dataclass(frozen=True, eq=False)
class NewtonResult:
    """Outcome of the smoothing-parameter optimization."""

    best: RemlEval
    iterations: int
    converged: bool
    message: str
    evaluations: int


def newton(stats: CrossStats, penalties, rho0=None, phi: float | None = None, tol: float | None = None,
           max_iter: int = 200, max_step: float = 5.0, on_step=None, ml: bool = False) -> NewtonResult:
    """Minimize the REML score by Newton's method on ``rho`` (mgcv's ``fast.REML.fit``).

    The Hessian is made positive definite by taking absolute eigenvalues with
    a floor; steps longer than ``max_step`` are shortened; a step that does
    not decrease the score is halved. Parameters whose gradient and Hessian
    are both negligible (a smooth that became a straight line, a variance at
    zero) are left out of the step. Converged when every gradient entry and
    the last change of the score are below ``tol * (|score| + D_p / n)``.
    ``on_step``, if given, is called after every iteration (a progress bar);
    ``ml`` selects the marginal likelihood (:func:`evaluate`).
    """
    tol = np.sqrt(np.finfo(float).eps) if tol is None else tol
    rho = initial_rho(stats, penalties) if rho0 is None else np.asarray(rho0, dtype=float).copy()
    best = evaluate(rho, stats, penalties, phi, ml=ml)
    nev = 1
    if rho.size == 0:
        return NewtonResult(best, 0, True, "no smoothing parameters", nev)
    scale = abs(best.score) + best.Dp / stats.n
    uconv = (np.abs(best.grad) > scale * tol * 0.1) | (np.abs(np.diag(best.hess)) > scale * tol * 0.1)
    if not uconv.any():
        uconv[:] = True
    message = "full convergence"
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        if on_step is not None:
            on_step()
        if not (np.all(np.isfinite(best.hess)) and np.all(np.isfinite(best.grad))):
            message = "the REML derivatives are not finite: the model is not identifiable at these smoothing parameters"
            break
        H = best.hess[np.ix_(uconv, uconv)]
        g = best.grad[uconv]
        vals, vecs = np.linalg.eigh(H)
        vals = np.abs(vals)
        floor = max(vals.max(), 0.0) * np.sqrt(np.finfo(float).eps)
        vals = np.maximum(vals, floor if floor > 0 else 1.0)
        st = -vecs @ ((vecs.T @ g) / vals)
        ms = np.max(np.abs(st))
        if ms > max_step:
            st *= max_step / ms
        step = np.zeros_like(rho)
        step[uconv] = st
        trial = evaluate(rho + step, stats, penalties, phi, ml=ml)
        nev += 1
        halvings = 0
        failed = False
        while not (trial.score <= best.score and np.all(np.isfinite(trial.grad))):
            if halvings >= 25 or not np.any(rho + step != rho):
                failed = True
                break
            step /= 2
            halvings += 1
            trial = evaluate(rho + step, stats, penalties, phi, ml=ml)
            nev += 1
        if failed:
            # no decrease along the Newton direction: accept convergence when the
            # gradient is already negligible, else report it
            if np.all(np.abs(best.grad) <= scale * tol * 10):
                converged = True
            else:
                message = "step failed: the score could not be decreased along the Newton direction"
            break
        change = abs(best.score - trial.score)
        rho = rho + step
        best = trial
        scale = abs(best.score) + best.Dp / stats.n
        small_grad = np.all(np.abs(best.grad) <= scale * tol)
        uconv = (np.abs(best.grad) > scale * tol * 0.1) | (np.abs(np.diag(best.hess)) > scale * tol * 0.1)
        if not uconv.any():
            uconv[:] = True
        if small_grad and change <= scale * tol:
            converged = True
            break
    else:
        message = f"no convergence in {max_iter} iterations"
    return NewtonResult(best, it, converged, message if not converged else "full convergence", nev)


def fellner_schall(stats: CrossStats, penalties, rho0=None, phi: float | None = None, tol: float = 1e-7,
                   max_iter: int = 500, on_step=None, ml: bool = False) -> NewtonResult:
    """Minimize the REML score with the generalized Fellner-Schall update.

    For ``S = sum_j lambda_j S_j`` the fixed point of

        lambda_j <- lambda_j (tr(S^- S_j) - tr(A^{-1} S_j)) / (beta'S_j beta / phi)

    is the REML optimum (Wood & Fasiolo 2017); with ``rho = log lambda`` the
    numerator is ``dlog|S|_+/drho_j - tr(A^{-1} dS/drho_j)`` and the
    denominator ``beta' dS/drho_j beta / phi``. Only linear penalties.
    """
    if any(b.kind != "linear" for b in penalties):
        raise ValueError("the Fellner-Schall update needs penalties linear in the smoothing parameters")
    rho = initial_rho(stats, penalties) if rho0 is None else np.asarray(rho0, dtype=float).copy()
    best = evaluate(rho, stats, penalties, phi, hessian=False, ml=ml)
    nev = 1
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        if on_step is not None:
            on_step()
        # grad_k = (tr_k - dldS_k + bSb_k/phi) / 2: recover the pieces
        new = rho.copy()
        at = 0
        PP, beta = best.PT, best.beta
        for b, r in zip(penalties, _split(rho, penalties)):
            _, gS, _ = b.logdet(r)
            for j, Sj in enumerate(b.d1(r)):
                bj = beta[b.cols]
                num = gS[j] - float(np.sum(PP[b.cols, b.cols] * Sj))
                den = float(bj @ Sj @ bj) / best.phi
                if num > 0 and den > 0:
                    new[at + j] = r[j] + np.clip(np.log(num / den), -5.0, 5.0)
                else:
                    new[at + j] = r[j] + 5.0
            at += b.n_par
        trial = evaluate(new, stats, penalties, phi, hessian=False, ml=ml)
        nev += 1
        change = np.max(np.abs(new - rho))
        rho = new
        best = trial
        if change < tol * 10 or abs(np.max(np.abs(best.grad))) < tol * (abs(best.score) + best.Dp / stats.n):
            converged = True
            break
    best = evaluate(rho, stats, penalties, phi, hessian=True, ml=ml)
    return NewtonResult(best, it, converged, "full convergence" if converged else "no convergence", nev + 1)


def reparametrize(penalties, p: int):
    """An orthogonal change of coefficients that makes single penalties diagonal.

    For a block with one penalty ``S = U diag(d) U'`` the coefficients
    ``gamma = U' beta`` have the diagonal penalty ``diag(d)``, so a smoothing
    parameter going to infinity (a smooth becoming a straight line) cannot
    spoil ``X'WX + S``: the penalized directions are separate from the null
    space and diagonal scaling equilibrates them (mgcv's
    ``Sl.initial.repara``). Multi-penalty blocks are rotated to the eigen
    vectors of their normalized summed penalty (range space first), which at
    least separates the common null space. Determinants are unchanged.

    Returns
    -------
    T : ndarray (p, p)
        Orthogonal; ``beta = T gamma``.
    new : list
        The penalty blocks in the ``gamma`` coordinates.
    """
    T = np.eye(p)
    new = []
    for b in penalties:
        if b.kind != "linear" or b.identity or b.diagonal:
            # a diagonal block already has its null space apart and is equilibrated by the
            # diagonal scaling; keeping it also keeps a factor smooth's level-major blocks
            new.append(b)
            continue
        if b.n_par == 1:
            vals, vecs = np.linalg.eigh((b.S[0] + b.S[0].T) / 2)
            order = np.argsort(-vals, kind="stable")
            vals, U = vals[order], vecs[:, order]
            D = np.zeros(b.size)
            D[: b.rank] = vals[: b.rank]
            S_new = [np.diag(D)]
        else:
            total = sum(s / np.linalg.norm(s) for s in b.S)
            vals, vecs = np.linalg.eigh((total + total.T) / 2)
            U = vecs[:, np.argsort(-vals, kind="stable")]
            S_new = [U.T @ s @ U for s in b.S]
            S_new = [(s + s.T) / 2 for s in S_new]
        T[b.cols, b.cols] = U
        new.append(LinearPenalty(b.start, S_new, b.null_dim))
    return T, new
