"""Penalty parametrizations of GAM terms: ``S(rho)`` on a block of coefficients.

A penalty block acts on the contiguous coefficients ``start:start+size`` and
gives, for its parameters ``rho``, the matrix ``S(rho)``, its first and
second derivatives, and ``log|S(rho)|_+`` (the log pseudo-determinant) with
its derivatives, which is all the restricted likelihood needs.

- :class:`LinearPenalty`: mgcv's ``S = sum_j exp(rho_j) S_j`` (smooths,
  independent random effects).
- :class:`CorrelatedPenalty`: a random-effects term with ``p_k`` correlated
  coefficients per level (``l_k`` levels), ``b_j ~ N(0, phi P^{-1})``,
  written as ``S = P (x) I_{l_k}`` on coefficients ordered column by column
  (all levels of the first column, then the second...). ``P = L L'`` with
  ``L`` lower triangular, ``L_ii = exp(rho)`` and free off-diagonal entries,
  so ``rho`` is unconstrained and ``log|S| = 2 l_k sum_i rho_ii``. Counts
  are named as in :mod:`pymlm.linalg`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CorrelatedPenalty", "LinearPenalty"]


class LinearPenalty:
    """``S(rho) = sum_j exp(rho_j) S_j`` on ``size`` coefficients.

    Parameters
    ----------
    start : int
        First coefficient of the block.
    S : list of ndarray (size, size)
    null_dim : int
        Dimension of the null space of ``sum_j S_j``.
    """

    kind = "linear"

    def __init__(self, start: int, S: list, null_dim: int):
        self.start = int(start)
        self.S = [np.asarray(s, dtype=float) for s in S]
        self.size = self.S[0].shape[0]
        self.n_par = len(self.S)
        self.null_dim = int(null_dim)
        self.rank = self.size - self.null_dim
        self.identity = self.n_par == 1 and np.array_equal(self.S[0], np.eye(self.size))
        # all penalties diagonal (factor smooths, random effects): S(rho), its derivatives and
        # log|S|_+ are then sums over the diagonal, with no eigen decomposition
        self.diagonal = all(np.count_nonzero(s - np.diag(np.diag(s))) == 0 for s in self.S)
        self.diags = [np.diag(s).copy() for s in self.S] if self.diagonal else None
        if self.identity:
            self._ldet0 = 0.0
        elif self.diagonal:
            # the range: the rank largest entries of the normalized summed penalty
            total = sum(d / np.linalg.norm(d) for d in self.diags)
            self._range = np.sort(np.argsort(-total, kind="stable")[: self.rank])
            if self.n_par == 1:
                top = self.diags[0][self._range]
                self._ldet0 = float(np.sum(np.log(np.maximum(top, np.finfo(float).tiny))))
        elif self.n_par == 1:
            ev = np.linalg.eigvalsh(self.S[0])
            top = ev[-self.rank:] if self.rank > 0 else ev[:0]
            self._ldet0 = float(np.sum(np.log(np.maximum(top, np.finfo(float).tiny))))
        else:
            total = sum(s / np.linalg.norm(s) for s in self.S)
            vals, vecs = np.linalg.eigh(total)
            self._U = vecs[:, vals.argsort()[::-1][: self.rank]]
            self._St = [self._U.T @ s @ self._U for s in self.S]

    @property
    def cols(self) -> slice:
        return slice(self.start, self.start + self.size)

    def matrix(self, rho: np.ndarray) -> np.ndarray:
        lam = np.exp(rho)
        out = lam[0] * self.S[0]
        for l, s in zip(lam[1:], self.S[1:]):
            out = out + l * s
        return out

    def d1(self, rho: np.ndarray) -> list:
        """``dS/drho_j`` for each parameter."""
        return [np.exp(r) * s for r, s in zip(rho, self.S)]

    def d2(self, rho: np.ndarray, i: int, j: int):
        """``d2S/drho_i drho_j`` (None when zero)."""
        return np.exp(rho[i]) * self.S[i] if i == j else None

    def d1_diag(self, rho: np.ndarray) -> list:
        """The diagonals of ``dS/drho_j`` (only for a diagonal block)."""
        return [np.exp(r) * s for r, s in zip(rho, self.diags)]

    def logdet(self, rho: np.ndarray):
        """``log|S|_+`` with its gradient and Hessian in ``rho``."""
        m = self.n_par
        if m == 1:
            return self.rank * rho[0] + self._ldet0, np.array([float(self.rank)]), np.zeros((1, 1))
        lam = np.exp(rho)
        if self.diagonal:
            # log|S|_+ = sum_i log m_i over the range, m_i = sum_j lam_j s_ij
            ls = np.array([l * s[self._range] for l, s in zip(lam, self.diags)])  # (m, r)
            mi = np.maximum(ls.sum(axis=0), np.finfo(float).tiny)
            q = ls / mi
            grad = q.sum(axis=1)
            hess = np.diag(grad) - q @ q.T
            return float(np.sum(np.log(mi))), grad, hess
        M = sum(l * s for l, s in zip(lam, self._St))
        vals, vecs = np.linalg.eigh((M + M.T) / 2)
        vals = np.maximum(vals, np.finfo(float).tiny)
        Minv = (vecs / vals) @ vecs.T
        MS = [l * (Minv @ s) for l, s in zip(lam, self._St)]
        grad = np.array([np.trace(a) for a in MS])
        hess = np.diag(grad.copy())
        for i in range(m):
            for j in range(i, m):
                v = np.sum(MS[i] * MS[j].T)
                hess[i, j] -= v
                if i != j:
                    hess[j, i] -= v
        return float(np.sum(np.log(vals))), grad, hess

    def initial(self, xtx_diag: np.ndarray) -> np.ndarray:
        """Rough starting log smoothing parameters (mgcv's ``initial.sp``)."""
        out = np.zeros(self.n_par)
        for j, s in enumerate(self.S):
            mas = np.max(np.abs(s))
            thresh = np.finfo(float).eps ** 0.8 * mas
            ind = (np.mean(np.abs(s), axis=1) > thresh) & (np.mean(np.abs(s), axis=0) > thresh) & (
                np.abs(np.diag(s)) > thresh)
            if not ind.any():
                continue
            xx = xtx_diag[ind]
            ss = np.diag(s)[ind]
            out[j] = np.log(max(np.mean(xx), 1e-300) / max(np.mean(ss), 1e-300))
        return out


class CorrelatedPenalty:
    """Correlated random effects: ``S(rho) = P(rho) (x) I_{l_k}`` with ``P = L L'``.

    Parameters
    ----------
    start : int
    pk : int
        Coefficients per level (``p_k``).
    lk : int
        Levels (``l_k``).

    Notes
    -----
    The parameters are the lower triangle of ``L`` in column-major order
    (lme4's order for theta): ``(0,0), (1,0), ..., (1,1), ...``; diagonal
    entries are on the log scale.
    """

    kind = "correlated"
    identity = False

    def __init__(self, start: int, pk: int, lk: int):
        self.start = int(start)
        self.pk = int(pk)
        self.lk = int(lk)
        self.size = self.pk * self.lk
        self.pairs = [(i, j) for j in range(self.pk) for i in range(j, self.pk)]
        self.n_par = len(self.pairs)
        self.null_dim = 0
        self.rank = self.size
        self._I = np.eye(self.lk)

    @property
    def cols(self) -> slice:
        return slice(self.start, self.start + self.size)

    def L(self, rho: np.ndarray) -> np.ndarray:
        L = np.zeros((self.pk, self.pk))
        for r, (i, j) in zip(rho, self.pairs):
            L[i, j] = np.exp(r) if i == j else r
        return L

    def P(self, rho: np.ndarray) -> np.ndarray:
        """The precision factor ``P = L L'`` (p_k, p_k) relative to the scale."""
        L = self.L(rho)
        return L @ L.T

    def _dL(self, rho):
        out = []
        for r, (i, j) in zip(rho, self.pairs):
            E = np.zeros((self.pk, self.pk))
            E[i, j] = np.exp(r) if i == j else 1.0
            out.append(E)
        return out

    def _dP(self, rho):
        L = self.L(rho)
        return [d @ L.T + L @ d.T for d in self._dL(rho)]

    def matrix(self, rho: np.ndarray) -> np.ndarray:
        return np.kron(self.P(rho), self._I)

    def d1(self, rho: np.ndarray) -> list:
        return [np.kron(d, self._I) for d in self._dP(rho)]

    def d2(self, rho: np.ndarray, a: int, b: int):
        dL = self._dL(rho)
        L = self.L(rho)
        M = dL[a] @ dL[b].T + dL[b] @ dL[a].T
        if a == b and self.pairs[a][0] == self.pairs[a][1]:
            M = M + dL[a] @ L.T + L @ dL[a].T
        if not M.any():
            return None
        return np.kron(M, self._I)

    def logdet(self, rho: np.ndarray):
        grad = np.array([2.0 * self.lk if i == j else 0.0 for (i, j) in self.pairs])
        val = sum(2.0 * self.lk * r for r, (i, j) in zip(rho, self.pairs) if i == j)
        return float(val), grad, np.zeros((self.n_par, self.n_par))

    def initial(self, xtx_diag: np.ndarray) -> np.ndarray:
        lam = max(np.mean(xtx_diag), 1e-300)
        return np.array([0.5 * np.log(lam) if i == j else 0.0 for (i, j) in self.pairs])

    def covariance(self, rho: np.ndarray, scale: float) -> np.ndarray:
        """The random-effects covariance ``phi P^{-1}`` (p_k, p_k)."""
        return scale * np.linalg.inv(self.P(rho))
