"""Factor-smooth interactions (mgcv's ``bs = "fs"``): one smooth curve per factor level.

``s(x, g, bs = "fs")`` gives every level of ``g`` its own copy of a base
smooth of ``x`` (thin plate by default, another basis with ``xt``), with the
same smoothing parameters for all levels. The base basis is first put in its
natural parametrization (mgcv's ``nat.param(type = 1)``): with ``X = QR`` and
``R^{-T} S R^{-1} = U diag(D) U'``, the new basis ``Q U diag(D)^{-1/2}`` has
the identity as penalty on its range space, and the remaining null-space
columns get a penalty each, so that the whole term (null space included) is
penalized and needs no identifiability constraint. Columns are then scaled to
unit mean square, separately on the range and null spaces.

Penalties: ``S_1 = I_l (x) diag(D, 0)`` and, for each null-space column
``j``, ``S_{1+j} = I_l (x) e_j e_j'``. Coefficients are level-major (all of
level 1 first). The model matrix is sparse: a row has the base basis in its
level's columns only.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from ..errors import DataError
from ._basis import Basis, Factor, RawBasis, row_chunks

__all__ = ["FactorSmooth", "natural_parametrization"]


def natural_parametrization(XtX: np.ndarray, n: int, S: np.ndarray, rank: int):
    """mgcv's ``nat.param(X, S, rank, type = 1)`` with unit mean-square columns, from ``X'X``.

    With ``R'R = X'X`` and ``R^{-T} S R^{-1} = U diag(d) U'``, the new basis
    ``X R^{-1} U E^{-1}`` (``E = sqrt(d)`` on the range space, 1 on the null
    space) has an identity penalty on its range space; its columns' mean
    squares are ``diag(P' X'X P) / n``, so only ``X'X`` is needed.

    Returns
    -------
    P : ndarray (k, k)
        The new basis is ``X @ P``.
    D : float
        The penalty on the range space is ``D * I_rank``.
    """
    R = np.linalg.cholesky((XtX + XtX.T) / 2).T
    Rinv = sla.solve_triangular(R, np.eye(R.shape[0]))
    RSR = Rinv.T @ S @ Rinv
    vals, vecs = np.linalg.eigh((RSR + RSR.T) / 2)
    order = np.argsort(-vals, kind="stable")
    vals, vecs = vals[order], vecs[:, order]
    k = XtX.shape[0]
    E = np.ones(k)
    E[:rank] = np.sqrt(vals[:rank])
    P = (Rinv @ vecs) / E
    msq = np.einsum("ij,jk,ki->i", P.T, XtX, P) / n
    scale = 1.0 / np.sqrt(np.mean(msq[:rank]))
    P[:, :rank] *= scale
    D = scale**2
    if rank < k:
        scalef = 1.0 / np.sqrt(np.mean(msq[rank:]))
        P[:, rank:] *= scalef
    return P, D


class FactorSmooth(Basis):
    """The ``"fs"`` basis.

    Parameters
    ----------
    base : Basis
        The (unconstrained) basis of the metric covariate.
    factor_pos : int
        Which of the term's covariates is the factor.
    """

    name = "fs"
    sparse = True

    def __init__(self, base: Basis, factor_pos: int, label: str = ""):
        self.base = base
        self.factor_pos = factor_pos
        self.label = label

    def _split(self, cols):
        fac = cols[self.factor_pos]
        rest = [c for i, c in enumerate(cols) if i != self.factor_pos]
        if not isinstance(fac, Factor):
            raise DataError(f"{self.label}: an 'fs' term needs a factor among its covariates")
        for c in rest:
            if isinstance(c, Factor):
                raise DataError(f"{self.label}: an 'fs' term takes one factor and metric covariates")
        return fac, rest

    def construct(self, cols: list) -> RawBasis:
        fac, rest = self._split(cols)
        self.levels = fac.levels
        raw = self.base.construct(rest)
        if len(raw.S) != 1:
            raise DataError(f"{self.label}: the base basis of an 'fs' term must have one penalty")
        rank = int(raw.rank[0])
        kb = raw.ncol
        XtX = np.zeros((kb, kb))
        for chunk in row_chunks(rest):
            Xb = np.asarray(self.base.predict(chunk))
            XtX += Xb.T @ Xb
        self.P, D = natural_parametrization(XtX, len(rest[0]), raw.S[0], rank)
        self.kb = kb
        nl = len(self.levels)
        null_d = kb - rank
        diag1 = np.concatenate([np.full(rank, D), np.zeros(null_d)])
        S = [np.diag(np.tile(diag1, nl))]
        for j in range(null_d):
            u = np.zeros(kb)
            u[rank + j] = 1.0
            S.append(np.diag(np.tile(u, nl)))
        return RawBasis(kb * nl, S, [rank * nl] + [nl] * null_d, 0, constraint="none")

    def base_matrix(self, cols: list) -> np.ndarray:
        """The reparametrized base basis (n, kb) of the metric covariate(s)."""
        _, rest = self._split(cols)
        return np.asarray(self.base.predict(rest)) @ self.P

    def predict(self, cols: list):
        fac, _ = self._split(cols)
        fac = fac.recode(self.levels)
        Xb = self.base_matrix(cols)
        n, kb = Xb.shape
        valid = fac.codes >= 0
        data = np.where(valid[:, None], Xb, 0.0).ravel()
        indices = (np.maximum(fac.codes, 0)[:, None] * kb + np.arange(kb)).ravel()
        indptr = np.arange(0, n * kb + 1, kb, dtype=np.int64)
        return sp.csr_matrix((data, indices, indptr), shape=(n, kb * len(self.levels)))
