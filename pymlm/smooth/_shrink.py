"""Shrinkage smoothers (mgcv's ``bs = "cs"`` and ``"ts"``).

A shrinkage smoother is its base basis (``"cr"`` or ``"tp"``) with the zero
eigenvalues of the penalty replaced by small positive ones, so that the
penalty's null space (the straight line) is penalized too and a large
smoothing parameter shrinks the whole term to zero. With the penalty's
eigenvalues ``d_1 >= ... >= d_k``, mgcv's choices (shrinkage factor 0.1)
are: for ``"cs"`` ``d_{k-1} = 0.1 d_{k-2}`` and ``d_k = 0.1 d_{k-1}``; for
``"ts"`` every null-space eigenvalue becomes ``0.1 d_{k-M}`` (``M`` the
null-space dimension). The change is made to the unconstrained penalty,
before the sum-to-zero constraint is absorbed.

For ``"cs"`` the result depends on which null-space direction gets ``0.1``
and which ``0.01``: an eigen solver returns an arbitrary rotation of the two
null vectors; mgcv's (LAPACK's ``dsyevr``) returns the one with a zero first
entry last, and pymlm takes that one explicitly, which gives mgcv's matrix.
For ``"ts"`` the result depends on the scaling of the thin plate basis'
polynomial columns, which is not mgcv's (the two bases agree up to a linear
change of coefficients, which the unpenalized null space did not feel):
``"ts"`` fits agree with mgcv's closely (the same shrunk terms, edf within
about 0.01) but not to rounding.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ._basis import Basis, RawBasis

__all__ = ["ShrinkageSmooth", "shrink_penalty"]


def shrink_penalty(S: np.ndarray, null_dim: int, kind: str, factor: float = 0.1) -> np.ndarray:
    """The shrinkage version of a penalty with a ``null_dim``-dimensional null space.

    Parameters
    ----------
    S : ndarray (k, k)
    null_dim : int
    kind : {"cs", "ts"}
        mgcv's geometric (``"cs"``: each null eigenvalue a tenth of the one
        before) or flat (``"ts"``) replacement.
    factor : float
    """
    vals, vecs = np.linalg.eigh((S + S.T) / 2)
    order = np.argsort(-vals, kind="stable")
    vals, vecs = vals[order].copy(), vecs[:, order]
    k = vals.shape[0]
    r = k - null_dim
    if null_dim == 2 and kind == "cs":
        # the rotation within the null space is arbitrary in an eigen solver; mgcv's (LAPACK's
        # dsyevr after Householder tridiagonalization) returns last the null vector whose first
        # entry is zero, which gets the smaller value: take that one, and its complement
        N = vecs[:, r:]
        a = N[0]
        norm_a = np.linalg.norm(a)
        if norm_a > 0:
            last = N @ np.array([-a[1], a[0]]) / norm_a
            first = N @ (a / norm_a)
            vecs = np.column_stack([vecs[:, :r], first, last])
    if kind == "cs":
        for i in range(r, k):
            vals[i] = vals[i - 1] * factor
    else:
        vals[r:] = vals[r - 1] * factor
    out = (vecs * vals) @ vecs.T
    return (out + out.T) / 2


class ShrinkageSmooth(Basis):
    """A ``"cr"`` or ``"tp"`` basis with a full-rank (shrinkage) penalty: ``"cs"`` / ``"ts"``.

    Parameters
    ----------
    base : Basis
        The cubic regression (for ``"cs"``) or thin plate (``"ts"``) basis.
    name : {"cs", "ts"}

    Examples
    --------
    >>> import numpy as np
    >>> from pymlm.smooth._cr import CubicRegressionSpline
    >>> b = ShrinkageSmooth(CubicRegressionSpline(k=6, label="s(x)"), "cs")
    >>> raw = b.construct([np.linspace(0, 1, 30)])
    >>> raw.rank, raw.null_space_dim
    ([6], 0)
    """

    def __init__(self, base: Basis, name: str):
        self.base = base
        self.name = name
        self.noterp = base.noterp
        self.no_rescale = base.no_rescale
        self.random = base.random
        self.sparse = base.sparse

    def __getattr__(self, item):
        if item == "base":
            raise AttributeError(item)
        return getattr(self.base, item)

    def construct(self, cols: list) -> RawBasis:
        raw = self.base.construct(cols)
        S = [shrink_penalty(raw.S[0], raw.null_space_dim, self.name)]
        return replace(raw, S=S, rank=[raw.ncol], null_space_dim=0)

    def predict(self, cols: list):
        return self.base.predict(cols)

    def predict_dot(self, cols: list, coef: np.ndarray) -> np.ndarray:
        return self.base.predict_dot(cols, coef)
