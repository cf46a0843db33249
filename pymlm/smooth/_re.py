"""Simple random effects as smooths (mgcv's ``bs = "re"``).

``s(g, bs = "re")`` is the model matrix of ``~ g - 1`` (one dummy column per
level) with the identity penalty, so that its coefficients are i.i.d.
``N(0, phi / lambda)``; ``s(x, g, bs = "re")`` is ``~ x:g - 1`` (a random
slope per level). There is no identifiability constraint: the penalty makes
the term identifiable. The model matrix is returned sparse (one non-zero per
row and factor), so a factor with many levels costs O(n), not O(n l).

A level that was not seen when the term was built gets a zero row: it is
predicted at the population value, as mgcv does.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import DataError
from ._basis import Basis, Factor, RawBasis

__all__ = ["RandomEffect"]


class RandomEffect(Basis):
    """The ``"re"`` basis: the columns of ``model.matrix(~ a:b:... - 1)``.

    Factors contribute all their levels (the first factor varying fastest, as
    R orders interaction columns); numeric covariates multiply.

    Examples
    --------
    >>> import numpy as np
    >>> from pymlm.smooth._basis import Factor
    >>> g = Factor(np.array([0, 1, 1, 2]), ("a", "b", "c"))
    >>> b = RandomEffect()
    >>> raw = b.construct([g])
    >>> b.predict([g]).toarray().tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """

    name = "re"
    noterp = True
    random = True
    sparse = True

    def __init__(self, label: str = "", terms=("g",)):
        self.label = label
        self.terms = tuple(terms)

    def construct(self, cols: list) -> RawBasis:
        self.levels = [c.levels if isinstance(c, Factor) else None for c in cols]
        for name, lev in zip(self.terms, self.levels):
            if lev is not None and len(lev) < 2:
                raise DataError(
                    f"{self.label}: factor {name!r} has {len(lev)} level{'' if len(lev) == 1 else 's'};"
                    " a random effect needs at least 2. Drop the term or check the data.")
        k = self.ncol
        if k == 0:
            raise DataError(f"{self.label}: the random effect has no columns")
        return RawBasis(k, [np.eye(k)], [k], 0, constraint="none")

    @property
    def ncol(self) -> int:
        out = 1
        for lev in self.levels:
            if lev is not None:
                out *= len(lev)
        return out

    def structure(self, cols: list):
        """``(codes, multiplier)``: the column of each row (-1: none) and its value.

        Each row of the model matrix has at most one non-zero entry.
        """
        n = len(cols[0])
        codes = np.zeros(n, dtype=np.int64)
        mult = None
        valid = np.ones(n, dtype=bool)
        stride = 1
        for c, lev in zip(cols, self.levels):
            if lev is not None:
                f = c if isinstance(c, Factor) else None
                if f is None:
                    raise DataError(f"{self.label}: expected a factor, got numbers")
                f = f.recode(lev)
                valid &= f.codes >= 0
                codes += np.maximum(f.codes, 0) * stride
                stride *= len(lev)
            else:
                v = np.asarray(c, dtype=float)
                mult = v if mult is None else mult * v
        codes[~valid] = -1
        return codes, mult

    def predict_dot(self, cols: list, coef: np.ndarray) -> np.ndarray:
        codes, mult = self.structure(cols)
        out = np.where(codes >= 0, np.asarray(coef)[np.maximum(codes, 0)], 0.0)
        return out if mult is None else out * mult

    def predict(self, cols: list):
        codes, mult = self.structure(cols)
        n = codes.shape[0]
        valid = codes >= 0
        data = np.ones(n) if mult is None else np.asarray(mult, dtype=float).copy()
        data[~valid] = 0.0
        indptr = np.arange(n + 1, dtype=np.int64)
        return sp.csr_matrix((data, np.maximum(codes, 0), indptr), shape=(n, self.ncol))
