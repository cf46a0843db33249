"""Tensor product smooths (mgcv's ``te()``).

Each margin ``i`` is an unconstrained 1-D basis ``X_i`` (n x d_i) with penalty
``S_i``. Margins that are not already parametrized by function values (``tp``
and ``ps``; ``cr`` is) are re-parametrized so that their coefficients are
values at ``d_i`` evenly spaced points (mgcv's ``np = TRUE``):
``X_i <- X_i P_i``, ``S_i <- P_i' S_i P_i`` with ``P_i`` the inverse of the
margin's basis at those points. Each ``S_i`` is then divided by its largest
eigenvalue. The tensor basis is the row-wise Kronecker product

    X[r, :] = X_1[r, :] (x) X_2[r, :] (x) ... (x) X_m[r, :]

(the last margin varying fastest) with one penalty per margin,
``S_i = I_{d_1} (x) ... (x) S_i (x) ... (x) I_{d_m}``, each of rank
``prod(d) * rank_i / d_i``.

A tensor interaction (mgcv's ``ti()``) first absorbs each margin's own
sum-to-zero constraint (``X_i <- X_i Z_i``, ``S_i <- Z_i' S_i Z_i``, ``d_i - 1``
columns), so that the product excludes the main effects and the lower order
interactions; the product then needs no further constraint.
"""

from __future__ import annotations

import numpy as np

from ._basis import Basis, RawBasis, r_seq, sum_to_zero_basis

__all__ = ["TensorProduct", "row_kron"]


def row_kron(mats: list[np.ndarray]) -> np.ndarray:
    """Row-wise Kronecker product of matrices with the same number of rows."""
    out = np.asarray(mats[0])
    for M in mats[1:]:
        M = np.asarray(M)
        out = (out[:, :, None] * M[:, None, :]).reshape(out.shape[0], -1)
    return out


class TensorProduct(Basis):
    """mgcv's ``te()`` basis from 1-D margins.

    Parameters
    ----------
    margins : list of Basis
        One 1-D basis per covariate.
    fx : bool
        Unpenalized term (no penalties).
    interaction : bool
        mgcv's ``ti()``: margins constrained to sum to zero before the product.

    Examples
    --------
    >>> import numpy as np
    >>> from pymlm.smooth._cr import CubicRegressionSpline
    >>> rng = np.random.default_rng(1)
    >>> te = TensorProduct([CubicRegressionSpline(5), CubicRegressionSpline(4)])
    >>> raw = te.construct([rng.uniform(size=40), rng.uniform(size=40)])
    >>> raw.ncol, len(raw.S), raw.rank, raw.null_space_dim
    (20, 2, [12, 10], 4)
    """

    name = "te"

    def __init__(self, margins: list[Basis], label: str = "", fx: bool = False, interaction: bool = False):
        self.margins = margins
        self.label = label
        self.fx = fx
        self.interaction = interaction
        self.name = "ti" if interaction else "te"
        self.Z = [None] * len(margins)

    def construct(self, cols: list) -> RawBasis:
        Sm, d, r, nr = [], [], [], []
        self.XP = []
        self.Z = []
        for basis, x in zip(self.margins, cols):
            raw = basis.construct([x])
            S = raw.S[0]
            P = None
            dim = raw.ncol
            rank, nd = int(raw.rank[0]), raw.null_space_dim
            Z = None
            if self.interaction:
                Z = sum_to_zero_basis(np.asarray(basis.predict([x])).mean(axis=0))
                S = Z.T @ S @ Z
                dim -= 1
                rank, nd = min(rank, dim), max(0, nd - 1)
            self.Z.append(Z)
            if not basis.noterp:
                pts = r_seq(float(np.min(x)), float(np.max(x)), dim)
                Xpts = np.asarray(basis.predict([pts]))
                u, sv, vt = np.linalg.svd(Xpts if Z is None else Xpts @ Z)
                if sv[-1] / sv[0] < np.finfo(float).eps ** 0.66:
                    P = None
                else:
                    P = vt.T @ (u.T / sv[:, None])
                    S = P.T @ S @ P
            self.XP.append(P)
            S = S / np.linalg.eigvalsh((S + S.T) / 2)[-1]
            Sm.append(S)
            d.append(dim)
            r.append(rank)
            nr.append(nd)
        total = int(np.prod(d))
        pens = []
        ranks = []
        for i in range(len(Sm)):
            M = np.ones((1, 1))
            for j in range(len(Sm)):
                M = np.kron(M, Sm[j] if i == j else np.eye(d[j]))
            pens.append((M + M.T) / 2)
            ranks.append(total * r[i] // d[i])
        if self.fx:
            pens, ranks = [], []
        return RawBasis(total, pens, ranks, int(np.prod(nr)), "none" if self.interaction else "sum")

    def predict(self, cols: list) -> np.ndarray:
        mats = []
        for basis, x, P, Z in zip(self.margins, cols, self.XP, self.Z):
            X = np.asarray(basis.predict([x]))
            if Z is not None:
                X = X @ Z
            mats.append(X if P is None else X @ P)
        return row_kron(mats)

