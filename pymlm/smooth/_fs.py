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

The null-space basis, chosen by function space
-----------------------------------------------
The null space of the base penalty (``{1, x}`` for a one-dimensional thin
plate or cubic spline) has eigenvalue 0 with multiplicity ``M``, so
eigenvectors give an *arbitrary* orthonormal basis of it, set by rounding
(the BLAS kernel, the row order). Because each null-space column gets its
own penalty, that rotation changes the model itself: mgcv 1.8-41's fits move
with it (tests/reference/fs_fits.json records mgcv's edf over row
orders). pymlm fixes the rotation from the function space alone: the
reference functions ``1``, then the monomials of the centred covariates in
mgcv's polynomial order (``x``, ``x^2``, ...; ``x``, ``z``, ... in two
dimensions) are projected onto the null space and orthonormalized in the
data inner product ``<f, g> = sum_i f(x_i) g(x_i)`` (Gram-Schmidt, each
direction signed to correlate positively with its reference function), then
scaled to unit mean square as mgcv's ``unit.fnorm`` does. So the first
null-space column is the constant and the second the centred linear
function; any rotation of the input null basis gives the same columns.

The range space carries a single identity penalty, so its rotation does not
change the model; its eigenvectors (distinct eigenvalues) are unique up to
sign, and the sign is fixed (:func:`pymlm.smooth._basis.fix_signs`) so that coefficients are
reproducible.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from ..errors import DataError
from ._basis import Basis, Factor, RawBasis, fix_signs, row_chunks
from ._tp import _poly, _poly_powers, tps_null_dim

__all__ = ["FactorSmooth", "natural_parametrization", "null_space_rotation", "reference_powers"]

#: A reference function whose projection keeps less than this fraction of its norm
#: after removing the directions already chosen adds no new direction.
_GS_TOL = 1e-8


def reference_powers(d: int, count: int) -> np.ndarray:
    """Exponents (r, d) of the reference monomials: all of total degree < q, mgcv's order.

    ``q`` is the smallest degree bound giving more than ``count`` monomials
    (the constant included), so that a null space of dimension ``count`` is
    reached even when some monomial lies outside it.
    """
    q = 1
    while tps_null_dim(d, q) <= count:
        q += 1
    return _poly_powers(d, q)


def null_space_rotation(C: np.ndarray) -> np.ndarray:
    """The rotation ``W`` (M, M) that Gram-Schmidt gives on the reference coordinates ``C`` (M, r).

    ``C[:, j]`` holds the coordinates of reference function ``j``'s
    projection in an orthonormal null-space basis ``N``; ``N @ W`` is the
    orthonormalized sequence of those projections, each column with a
    positive inner product with its reference function. Replacing ``N`` by
    ``N @ Q`` (``Q`` orthogonal) replaces ``C`` by ``Q' C`` and ``W`` by
    ``Q' W``: the basis ``N @ W`` does not change. Directions that the
    references do not reach (none for thin plate, cubic and P-spline bases)
    are completed from the remaining columns of the identity.
    """
    M = C.shape[0]
    cand = np.hstack([C, np.eye(M)])
    W = np.zeros((M, M))
    got = 0
    for j in range(cand.shape[1]):
        if got == M:
            break
        c = cand[:, j]
        v = c - W[:, :got] @ (W[:, :got].T @ c)
        v = v - W[:, :got] @ (W[:, :got].T @ v)  # re-orthogonalize once (classical GS twice)
        nv = np.linalg.norm(v)
        if nv > _GS_TOL * max(np.linalg.norm(c), np.finfo(float).tiny):
            W[:, got] = v / nv
            got += 1
    return W


def natural_parametrization(XtX: np.ndarray, n: int, S: np.ndarray, rank: int, XtF: np.ndarray | None = None):
    """mgcv's ``nat.param(X, S, rank, type = 1)`` with unit mean-square columns, from ``X'X``.

    With ``R'R = X'X`` and ``R^{-T} S R^{-1} = U diag(d) U'``, the new basis
    ``X R^{-1} U E^{-1}`` (``E = sqrt(d)`` on the range space, 1 on the null
    space) has an identity penalty on its range space; its columns' mean
    squares are ``diag(P' X'X P) / n``, so only ``X'X`` is needed.

    The range eigenvectors get fixed signs (:func:`fix_signs`). The null
    space's eigenvectors are rotated to the Gram-Schmidt basis of the
    reference functions ``F`` (:func:`null_space_rotation`), given through
    ``X'F``; without ``XtF`` they are left as the eigen solver returns them
    (an arbitrary rotation, as in mgcv).

    Parameters
    ----------
    XtX : ndarray (k, k)
    n : int
        Number of data rows.
    S : ndarray (k, k)
        The base penalty.
    rank : int
        Its rank.
    XtF : ndarray (k, r), optional
        Cross products of the base basis with the reference functions.

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
    vecs[:, :rank] = fix_signs(vecs[:, :rank])
    if rank < k and XtF is not None:
        # coordinates of the references' projections in the orthonormal null basis Rinv U_0
        C = (Rinv @ vecs[:, rank:]).T @ XtF
        vecs[:, rank:] = vecs[:, rank:] @ null_space_rotation(C)
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
        # the reference functions of the null space: monomials of the centred covariates
        x = np.column_stack([np.asarray(c, dtype=float) for c in rest])
        centre = x.mean(axis=0)
        powers = reference_powers(x.shape[1], kb - rank)
        XtX = np.zeros((kb, kb))
        XtF = np.zeros((kb, powers.shape[0]))
        for chunk in row_chunks(rest):
            Xb = np.asarray(self.base.predict(chunk))
            XtX += Xb.T @ Xb
            xc = np.column_stack([np.asarray(c, dtype=float) for c in chunk]) - centre
            XtF += Xb.T @ _poly(xc, powers)
        self.P, D = natural_parametrization(XtX, len(rest[0]), raw.S[0], rank, XtF)
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
