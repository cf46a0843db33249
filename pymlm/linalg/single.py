"""The pieces of the profiled deviance and their gradients for one random-effects term.

A single term (``(1 + x | g)``, the longitudinal workhorse) makes M block
diagonal: per level, with ``A = Z'WZ[lev]`` (p_k x p_k) and the template T,

    M = T'AT + I = L L',   Minv = M^{-1},   W = T Minv T'   (all p_k x p_k per level)

and everything the deviance needs is a weighted Gram of the per-level
cross-products ``Z_b = Z'W[X y]`` (one ``(l_k, p + 1)`` array per coefficient b):

    [X y]'W[X y] - sum_lev Q'Q = XyXy - sum_{b,d} Z_b' diag(W_bd) Z_d.

The gradient (the closed forms of :mod:`pymlm.fit.deviance`)
reduces the same way to per-level p_k x p_k coefficients times a few passes over
the ``Z_b``: with r_b = Z_b y-part - Z_b X-part beta, E = Minv T',
G = I - A T E and h_cd = z_c S^{-1} z_d' (X parts, S = R_X'R_X):

    u = E r,   r_Z = r - A T u,   dr2/dT_ab = -2 sum_lev r_Z,a u_b,
    dlog|R_X'R_X|/dT_ab = -2 sum_lev sum_cd G_ac E_bd h_cd.

Every operation on data-sized arrays is a BLAS call or one vectorized pass;
p_k x p_k algebra is done on (l_k,) vectors, so millions of levels cost the same
number of Python steps as ten.
"""

from __future__ import annotations

import numpy as np

from ._small import tri_inv
from ._threads import blas_threads

__all__ = ["SingleTerm"]

# Gram products with at least this many (levels x columns) use all BLAS threads.
BIG_GEMM = 2_000_000
# Levels per block of the products whose temporaries would otherwise be O(levels x p).
LEVEL_BLOCK = 1 << 17


def _chol(M, pk):
    """Per-level Cholesky of ``M[a][c]`` ((l_k,) vectors), as nested lists."""
    L = [[None] * pk for _ in range(pk)]
    for j in range(pk):
        s = M[j][j]
        for m in range(j):
            s = s - L[j][m] * L[j][m]
        if np.any(s <= 0):
            raise np.linalg.LinAlgError("matrix not positive definite")
        L[j][j] = np.sqrt(s)
        for i in range(j + 1, pk):
            t = M[i][j]
            for m in range(j):
                t = t - L[i][m] * L[j][m]
            L[i][j] = t / L[j][j]
    return L


def _lower_inv(L, pk, lk):
    """Per-level inverse of a lower-triangular L, nested lists (zeros as None)."""
    Li = [[None] * pk for _ in range(pk)]
    for j in range(pk):
        Li[j][j] = 1.0 / L[j][j]
        for i in range(j + 1, pk):
            acc = np.zeros(lk)
            for m in range(j, i):
                if Li[m][j] is not None:
                    acc = acc - L[i][m] * Li[m][j]
            Li[i][j] = acc / L[i][i]
    return Li


def _mm(A, B, pk, lk, At=False):
    """Per-level product A @ B (or A' @ B) of p_k x p_k nested lists; None is zero."""
    out = [[None] * pk for _ in range(pk)]
    for i in range(pk):
        for j in range(pk):
            acc = None
            for m in range(pk):
                a = A[m][i] if At else A[i][m]
                b = B[m][j]
                if a is None or b is None:
                    continue
                term = a * b
                acc = term if acc is None else acc + term
            out[i][j] = acc
    return out


def _const(T, pk):
    """A constant p_k x p_k matrix as nested lists of scalars (None for zeros)."""
    return [[(float(T[i, j]) if T[i, j] != 0.0 else None) for j in range(pk)] for i in range(pk)]


def _z(x, lk):
    return np.zeros(lk) if x is None else (x if np.ndim(x) else np.full(lk, x))


class SingleTerm:
    """Deviance pieces of a model with one random-effects term (the kernel of
    :class:`pymlm.fit.deviance.OneTermEvaluator`).

    Parameters
    ----------
    zz_diag : ndarray (l_k, p_k, p_k)
        Z'WZ per level.
    zxy : ndarray (l_k, p_k, p + 1)
        Z'W[X y] per level.
    xyxy : ndarray (p + 1, p + 1)
    """

    def __init__(self, zz_diag, zxy, xyxy):
        lk, pk, _ = zz_diag.shape
        self.lk, self.pk = lk, pk
        self.p = p = zxy.shape[2] - 1
        self.A = [[np.ascontiguousarray(zz_diag[:, a, c]) for c in range(pk)] for a in range(pk)]
        self.Zxy = [np.ascontiguousarray(zxy[:, a, :]) for a in range(pk)]
        self.Zx = [z[:, :p] for z in self.Zxy]
        self.zy = [z[:, p] for z in self.Zxy]
        self.xyxy = xyxy

    def _gram(self, W):
        """sum_{b,d} Z_b' diag(W_bd) Z_d, ((p + 1) x (p + 1)): one scaled copy and one GEMM per pair."""
        pk, p, lk = self.pk, self.p, self.lk
        out = np.zeros((p + 1, p + 1))
        with blas_threads(None if lk * p >= BIG_GEMM else 1):
            for b in range(pk):
                for d in range(b, pk):
                    w = W[b][d]
                    if w is None:
                        continue
                    # by blocks of levels: the scaled copy stays O(LEVEL_BLOCK), not O(levels)
                    for s in range(0, lk, LEVEL_BLOCK):
                        e = s + LEVEL_BLOCK
                        G = self.Zxy[b][s:e].T @ (self.Zxy[d][s:e] * w[s:e, None])
                        out += G if b == d else G + G.T
        return out

    def __call__(self, T: np.ndarray, grad: bool = False, rx: bool = True):
        """The pieces at template ``T`` (p_k x p_k lower triangular), and their derivatives in T when asked.

        Returns
        -------
        logdet_L : float
            log|T'AT + I| summed over levels.
        L_XX : ndarray (p + 1, p + 1)
            Lower Cholesky factor of the downdated [X y] block.
        dT : ndarray (3, p_k, p_k) or None
            d logdet_L, d log|R_X'R_X| (only with ``rx``; NaN otherwise) and
            d pwrss in T; ``None`` when not asked or when T is singular.

        Raises
        ------
        numpy.linalg.LinAlgError
            The [X y] block is not positive definite.
        """
        pk, p, lk = self.pk, self.p, self.lk
        A = self.A
        Tc = _const(T, pk)
        AT = _mm(A, Tc, pk, lk)
        M = _mm(Tc, AT, pk, lk, At=True)
        for a in range(pk):
            M[a][a] = _z(M[a][a], lk) + 1.0
        M = [[_z(M[i][j], lk) for j in range(pk)] for i in range(pk)]
        L = _chol(M, pk)
        Li = _lower_inv(L, pk, lk)
        Minv = _mm(Li, Li, pk, lk, At=True)
        E = _mm(Minv, [[Tc[j][i] for j in range(pk)] for i in range(pk)], pk, lk)     # Minv T'
        W = _mm(Tc, E, pk, lk)                                                       # T Minv T'
        MXX = self.xyxy - self._gram(W)
        Lxx = np.linalg.cholesky(MXX)
        logdet_L = 2.0 * float(sum(np.sum(np.log(L[a][a])) for a in range(pk)))
        if not grad or np.min(np.abs(np.diag(T))) < 1e-10:
            return logdet_L, Lxx, None
        Lx_inv = tri_inv(Lxx[:p, :p])
        beta = Lx_inv.T @ Lxx[p, :p]
        r = [self.zy[b] - self.Zx[b] @ beta for b in range(pk)]
        u = [sum(_z(E[a][b], lk) * r[b] for b in range(pk)) for a in range(pk)]
        minv_sum = np.array([[float(np.sum(_z(Minv[a][c], lk))) for c in range(pk)] for a in range(pk)])
        bvec = [sum(T[a, c] * u[c] for c in range(pk) if T[a, c] != 0.0) + np.zeros(lk) for a in range(pk)]
        rZ = [r[a] - sum(A[a][c] * bvec[c] for c in range(pk)) for a in range(pk)]
        out = np.full((3, pk, pk), np.nan)
        out[0] = 2.0 * ((lk * np.eye(pk) - minv_sum) @ np.linalg.inv(T)).T
        out[2] = -2.0 * np.array([[float(rZ[a] @ u[b]) for b in range(pk)] for a in range(pk)])
        if rx and not p:
            out[1] = 0.0
        if rx and p:
            Sinv = Lx_inv.T @ Lx_inv
            ATE = _mm(AT, E, pk, lk)
            G = [[(1.0 if a == c else 0.0) - _z(ATE[a][c], lk) for c in range(pk)] for a in range(pk)]
            h = [[None] * pk for _ in range(pk)]
            for c in range(pk):
                for d in range(c, pk):
                    h[c][d] = h[d][c] = np.empty(lk)
            for s in range(0, lk, LEVEL_BLOCK):  # h_cd = z_c S^-1 z_d' by blocks of levels
                e = s + LEVEL_BLOCK
                with blas_threads(None if lk * p >= BIG_GEMM else 1):
                    H = [self.Zx[c][s:e] @ Sinv for c in range(pk)]
                for c in range(pk):
                    for d in range(c, pk):
                        h[c][d][s:e] = np.einsum("ij,ij->i", H[c], self.Zx[d][s:e])
            g_rx = np.empty((pk, pk))
            for a in range(pk):
                for b in range(pk):
                    acc = 0.0
                    for c in range(pk):
                        for d in range(pk):
                            if E[b][d] is None:
                                continue
                            acc += float(np.sum(G[a][c] * _z(E[b][d], lk) * h[c][d]))
                    g_rx[a, b] = acc
            out[1] = -2.0 * g_rx
        return logdet_L, Lxx, out
