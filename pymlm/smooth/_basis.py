"""What every basis constructor returns, and the covariate containers they read.

A basis is built once on the construction data (``construct``), keeps the
state it needs (knots, eigenvectors, factor levels) and evaluates its raw
model matrix on any data (``predict``). Identifiability constraints, penalty
scaling and ``by`` variables are applied on top, in :mod:`._construct`,
exactly as mgcv's ``smoothCon`` does for every basis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "ROW_CHUNK",
    "Basis",
    "Factor",
    "RawBasis",
    "as_covariate",
    "fix_signs",
    "r_seq",
    "row_chunks",
    "sum_to_zero_basis",
]

#: Rows evaluated at a time when a basis passes over the construction data,
#: so that building a term never holds an n-row model matrix.
ROW_CHUNK = 50_000


@dataclass(frozen=True)
class Factor:
    """A factor covariate: integer codes into ``levels`` (-1 for unseen levels).

    Attributes
    ----------
    codes : ndarray of int, shape (n,)
    levels : tuple of str
    """

    codes: np.ndarray
    levels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.codes)

    def recode(self, levels: tuple[str, ...]) -> Factor:
        """The same values coded against another level set (-1 where absent)."""
        if tuple(levels) == tuple(self.levels):
            return self
        index = pd.Index(levels)
        mapping = index.get_indexer(pd.Index(self.levels))
        codes = np.where(self.codes >= 0, mapping[np.maximum(self.codes, 0)], -1)
        return Factor(codes.astype(np.int64), tuple(levels))

    def take(self, rows) -> Factor:
        return Factor(self.codes[rows], self.levels)


def as_covariate(values, name: str = ""):
    """A data column as a float array, or a :class:`Factor` for categorical data."""
    if isinstance(values, Factor):
        return values
    if isinstance(values, pd.Series):
        values = values.array if isinstance(values.dtype, pd.CategoricalDtype) else values.to_numpy()
    if isinstance(values, pd.Categorical):
        return Factor(np.asarray(values.codes, dtype=np.int64), tuple(str(c) for c in values.categories))
    arr = np.asarray(values)
    if arr.dtype.kind in "OSUb" and arr.dtype.kind != "b":
        cat = pd.Categorical(arr.astype(str))
        return Factor(np.asarray(cat.codes, dtype=np.int64), tuple(str(c) for c in cat.categories))
    return np.asarray(arr, dtype=float)


@dataclass(frozen=True, eq=False)
class RawBasis:
    """The raw basis of a term, before constraints and scaling.

    Attributes
    ----------
    ncol : int
        Number of basis functions k.
    S : list of ndarray, each (k, k)
        Penalty matrices.
    rank : list of int
        Rank of each penalty.
    null_space_dim : int
        Dimension of the null space of the summed penalty.
    constraint : {"sum", "none"}
        ``"sum"``: mgcv's default sum-to-zero constraint ``1'X beta = 0``;
        ``"none"``: the term is identifiable as it is (random effects,
        factor-smooth interactions).
    """

    ncol: int
    S: list
    rank: list
    null_space_dim: int
    constraint: str = "sum"


class Basis:
    """Base class of basis constructors.

    Subclasses set ``name`` and implement :meth:`construct` and
    :meth:`predict`. Flags follow mgcv: ``noterp`` (already parametrized by
    function values, so ``te()`` does not re-parametrize the margin),
    ``no_rescale`` (penalty not rescaled by smoothCon), ``random`` (a random
    effect: tested with mgcv's random-effect test in the summary).
    """

    name = "?"
    noterp = False
    no_rescale = False
    random = False
    sparse = False

    def construct(self, cols: list) -> RawBasis:  # pragma: no cover - interface
        raise NotImplementedError

    def predict(self, cols: list):  # pragma: no cover - interface
        raise NotImplementedError

    def predict_dot(self, cols: list, coef: np.ndarray) -> np.ndarray:
        """``predict(cols) @ coef`` (bases may do this without forming the matrix)."""
        return np.asarray(self.predict(cols) @ coef).ravel()


def row_chunks(cols: list, size: int = ROW_CHUNK):
    """Yield the covariates ``cols`` (arrays or Factors of equal length) ``size`` rows at a time."""
    n = len(cols[0])
    for s in range(0, n, size):
        sl = slice(s, min(s + size, n))
        yield [c.take(sl) if isinstance(c, Factor) else c[sl] for c in cols]


def r_seq(start: float, stop: float, n: int) -> np.ndarray:
    """R's ``seq(start, stop, length.out = n)``, bit for bit.

    R computes the interior points as ``start + i * by`` and sets the last to
    ``stop`` exactly; ``numpy.linspace`` rounds differently in the last bit.
    """
    if n == 1:
        return np.array([float(start)])
    by = (stop - start) / (n - 1)
    out = start + np.arange(n, dtype=float) * by
    out[-1] = stop
    return out



#: Below this size dense algebra runs on one BLAS thread: threads cost more
#: than they save on small matrices, and far more when the cores are busy
#: (OpenBLAS threads spin while they wait).
SINGLE_THREAD_MAX = 1000


def blas_threads_for(size: int):
    """A context manager limiting BLAS to one thread for problems of at most
    :data:`SINGLE_THREAD_MAX` (a no-op without threadpoolctl).

    Each call inspects the loaded BLAS libraries afresh (about a millisecond):
    no controller is kept between calls.
    """
    import contextlib

    if size > SINGLE_THREAD_MAX:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional dependency
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def fix_signs(V: np.ndarray) -> np.ndarray:
    """Columns of ``V`` (k, m) with their signs fixed: the first clearly nonzero entry is positive.

    "Clearly nonzero" is at least a tenth of the column's largest magnitude.
    Taking the largest entry itself would flip with rounding whenever two
    entries tie in magnitude with opposite signs, as the antisymmetric
    eigenvectors of a symmetric knot layout do.

    Examples
    --------
    >>> fix_signs(np.array([[0.5, -0.6], [-1.0, 0.8]]))
    array([[ 0.5,  0.6],
           [-1. , -0.8]])
    """
    V = np.array(V, dtype=float, copy=True)
    if V.size == 0:
        return V
    mag = np.abs(V)
    first = np.argmax(mag >= 0.1 * mag.max(axis=0, keepdims=True), axis=0)
    s = np.sign(V[first, np.arange(V.shape[1])])
    s[s == 0] = 1.0
    return V * s


def sum_to_zero_basis(c: np.ndarray) -> np.ndarray:
    """``Z`` (k, k-1): orthonormal basis of ``{b : c'b = 0}`` from one Householder reflection.

    LINPACK's ``dqrdc2`` convention: ``s = sign(c_1) ||c||``,
    ``v = c / s + e_1``, ``H = I - v v' / v_1``; ``Z`` is ``H`` without its
    first column.

    Examples
    --------
    >>> Z = sum_to_zero_basis(np.array([0.25, 0.25, 0.5]))
    >>> Z.shape, bool(np.allclose(np.array([0.25, 0.25, 0.5]) @ Z, 0))
    ((3, 2), True)
    """
    c = np.asarray(c, dtype=float).ravel()
    k = c.shape[0]
    norm = np.linalg.norm(c)
    if norm == 0:
        return np.eye(k)[:, 1:]
    s = norm if c[0] >= 0 else -norm
    v = c / s
    v[0] += 1.0
    H = np.eye(k) - np.outer(v, v) / v[0]
    return H[:, 1:]
