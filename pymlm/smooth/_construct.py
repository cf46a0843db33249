"""From a :class:`SmoothSpec` and data to identifiable, penalized smooth terms.

This is mgcv's ``smoothCon`` step, the same for every basis:

1. build the raw basis ``X`` (n x k) and penalties ``S_j``;
2. rescale each penalty so that it is comparable with ``X'X``:
   ``S_j <- S_j * ||X||_inf^2 / ||S_j||_1`` (mgcv's ``scale.penalty``; the
   smoothing parameters are reported on this scale);
3. absorb the sum-to-zero constraint ``C beta = 0`` with ``C = 1'X / n``:
   a Householder reflection ``H = I - v v' / v_1`` with ``H C' = -s e_1``
   (LINPACK's convention, so that coefficients match mgcv's) gives
   ``Z = H[:, 1:]``, and the term uses ``X Z`` (k - 1 columns) and
   ``Z' S_j Z``. The constraint is skipped for random effects and
   factor-smooth interactions (identifiable through their penalty) and for a
   non-constant numeric ``by`` variable;
4. a numeric ``by`` variable multiplies the rows; a factor ``by`` variable
   makes one copy of the term per level, each zero outside its level.

The basis and ``Z`` are kept, so new data get exactly the training basis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..errors import DataError
from ._basis import Basis, Factor, row_chunks, sum_to_zero_basis
from ._cr import CubicRegressionSpline, CyclicCubicSpline
from ._fs import FactorSmooth
from ._ps import PSpline
from ._re import RandomEffect
from ._shrink import ShrinkageSmooth
from ._spec import SmoothSpec
from ._tensor import TensorProduct
from ._tp import ThinPlateSpline

__all__ = ["SmoothTerm", "construct_smooth", "make_basis", "sum_to_zero_basis"]


def _constraint_basis(C: np.ndarray) -> np.ndarray:
    if C.shape[0] == 1:
        return sum_to_zero_basis(C[0])
    Q, _ = np.linalg.qr(C.T, mode="complete")
    return Q[:, C.shape[0]:]


def make_basis(spec: SmoothSpec, is_factor: list[bool], knots: dict | None = None) -> Basis:
    """The basis constructor for a smooth term.

    ``knots`` maps covariate names to knot locations (mgcv's ``knots``
    argument), used by the ``"cr"``, ``"cs"`` and ``"cc"`` bases.
    """
    knots = knots or {}
    label = spec.label
    if spec.function in ("te", "ti"):
        # te() margins default to 5 basis functions each (mgcv's k = 5^d for 1-D margins)
        margins = [_one_d(bs, 5 if k < 0 else k, m, label, term, knots.get(term))
                   for bs, k, m, term in zip(spec.bs, spec.k, spec.m, spec.terms)]
        if any(is_factor):
            raise DataError(f"{label}: te() margins must be numeric; {spec.terms[is_factor.index(True)]} is a factor")
        return TensorProduct(margins, label, spec.fx, interaction=spec.function == "ti")
    bs = spec.bs[0]
    if bs == "re":
        return RandomEffect(label, spec.terms)
    if bs == "fs":
        if sum(is_factor) != 1:
            raise DataError(
                f"{label}: an 'fs' term needs exactly one factor among its covariates "
                f"({', '.join(spec.terms)}); convert the grouping column to a categorical"
            )
        pos = is_factor.index(True)
        metric = [t for i, t in enumerate(spec.terms) if i != pos]
        base_bs = spec.xt or "tp"
        if base_bs in ("cr", "ps") and len(metric) > 1:
            raise DataError(f"{label}: the {base_bs!r} base basis is one-dimensional")
        k = spec.k[0]
        if base_bs == "tp":
            base = ThinPlateSpline(k, spec.m[0], label, metric)
        else:
            base = _one_d(base_bs, k, spec.m[0], label, metric[0])
        return FactorSmooth(base, pos, label)
    for term, isf in zip(spec.terms, is_factor):
        if isf:
            raise DataError(
                f"{label}: {term} is a factor; a {bs!r} smooth needs numeric covariates. "
                "Use bs = \"re\" for a random effect or bs = \"fs\" for a smooth per level"
            )
    if bs == "tp":
        return ThinPlateSpline(spec.k[0], spec.m[0], label, spec.terms)
    if bs == "ts":
        return ShrinkageSmooth(ThinPlateSpline(spec.k[0], spec.m[0], label, spec.terms), "ts")
    return _one_d(bs, spec.k[0], spec.m[0], label, spec.terms[0], knots.get(spec.terms[0]))


def _one_d(bs: str, k: int, m, label: str, term: str, knots=None) -> Basis:
    if bs == "cr":
        return CubicRegressionSpline(k, label, knots=knots, term=term)
    if bs == "cs":
        return ShrinkageSmooth(CubicRegressionSpline(k, label, knots=knots, term=term), "cs")
    if bs == "cc":
        return CyclicCubicSpline(k, label, knots=knots, term=term)
    if bs == "ts":
        return ShrinkageSmooth(ThinPlateSpline(k, m, label, (term,)), "ts")
    if bs == "ps":
        return PSpline(k, m, label, term=term)
    if bs == "tp":
        return ThinPlateSpline(k, m, label, (term,))
    raise DataError(f"{label}: {bs!r} is not a one-dimensional basis")


@dataclass(frozen=True, eq=False)
class SmoothTerm:
    """One identifiable smooth term, ready for a model matrix.

    Attributes
    ----------
    label : str
        mgcv's label: ``"s(x0)"``, ``"te(x1,x2)"``, ``"s(x):z"``,
        ``"s(x):fb"`` (factor ``by`` with level ``b``).
    spec : SmoothSpec
    basis : Basis
        The fitted raw basis (knots and other state).
    Z : ndarray (k, k - 1) or None
        Constraint null-space basis; ``None`` when unconstrained.
    S : list of ndarray
        Penalties on the term's coefficients (scaled, constrained).
    S_scale : list of float
        The penalty scale factors (mgcv's ``S.scale``).
    rank : list of int
    null_space_dim : int
    by_kind : {None, "numeric", "factor"}
    by_level : str or None
        The level of a factor ``by`` copy.
    by_levels : tuple of str
        All levels of a factor ``by`` variable.
    n_raw : int
        Columns of the raw basis (before the constraint).
    """

    label: str
    spec: SmoothSpec
    basis: Basis
    Z: np.ndarray | None
    S: list
    S_scale: list
    rank: list
    null_space_dim: int
    by_kind: str | None = None
    by_level: str | None = None
    by_levels: tuple = field(default_factory=tuple)
    n_raw: int = 0

    @property
    def ncol(self) -> int:
        """Number of coefficients."""
        if self.Z is not None:
            return self.Z.shape[1]
        return self.n_raw

    @property
    def random(self) -> bool:
        """A simple random effect (``bs = "re"``)."""
        return bool(self.basis.random)

    @property
    def fixed(self) -> bool:
        """Unpenalized term (``fx = TRUE``)."""
        return not self.S

    @property
    def n_penalties(self) -> int:
        return len(self.S)

    @property
    def covariates(self) -> tuple[str, ...]:
        return self.spec.terms

    def by_multiplier(self, by) -> np.ndarray | None:
        """The row multiplier from the ``by`` variable's values (None: no ``by``)."""
        if self.by_kind is None:
            return None
        if self.by_kind == "numeric":
            if isinstance(by, Factor):
                raise DataError(f"{self.label}: the by variable {self.spec.by} must be numeric here")
            return np.asarray(by, dtype=float)
        if not isinstance(by, Factor):
            raise DataError(f"{self.label}: the by variable {self.spec.by} must be a factor here")
        by = by.recode(self.by_levels)
        return (by.codes == self.by_levels.index(self.by_level)).astype(float)

    def dot(self, cols: list, coef: np.ndarray, by=None) -> np.ndarray:
        """``matrix(cols, by) @ coef`` (n,), without forming the matrix when the basis can."""
        raw = coef if self.Z is None else self.Z @ coef
        out = self.basis.predict_dot(cols, raw)
        mult = self.by_multiplier(by)
        return out if mult is None else out * mult

    def unconstrained(self, cols: list):
        """The raw basis on ``cols`` (before constraint and ``by``)."""
        return self.basis.predict(cols)

    def matrix(self, cols: list, by=None):
        """The term's model matrix on data.

        Parameters
        ----------
        cols : list
            The covariates (float arrays or :class:`Factor`), in the order of
            ``spec.terms``.
        by : ndarray or Factor, optional
            The ``by`` variable on the same rows.

        Returns
        -------
        ndarray (n, ncol) or scipy.sparse.csr_matrix
        """
        X = self.basis.predict(cols)
        if self.Z is not None:
            X = (X @ self.Z) if not sp.issparse(X) else np.asarray(X @ self.Z)
        mult = self.by_multiplier(by)
        if mult is not None:
            X = X.multiply(mult[:, None]).tocsr() if sp.issparse(X) else X * mult[:, None]
        return X


def construct_smooth(spec: SmoothSpec, cols: list, by=None, knots: dict | None = None) -> list[SmoothTerm]:
    """mgcv's ``smoothCon(..., absorb.cons = TRUE, scale.penalty = TRUE)``.

    Parameters
    ----------
    spec : SmoothSpec
    cols : list
        The term's covariates on the construction data (float arrays or
        :class:`Factor`), in ``spec.terms`` order. mgcv builds ``bam``'s
        discretized terms on the distinct discretized values; pass those here
        for the same knots and constraint.
    by : ndarray or Factor, optional
        The ``by`` variable on the data; a numeric ``by`` that is not
        constant removes the sum-to-zero constraint, a factor gives one term
        per level.
    knots : dict, optional
        Knot locations by covariate name (mgcv's ``knots``): ``"cr"`` and
        ``"cs"`` take ``k`` knots, ``"cc"`` ``k`` knots with both ends or just
        the two ends of the period.

    Returns
    -------
    list of SmoothTerm
        One term, or one per level of a factor ``by`` variable.

    Raises
    ------
    DataError
        k larger than the number of distinct values, a factor where numbers
        are needed (or the reverse), a basis that cannot serve the term.

    Examples
    --------
    >>> import numpy as np
    >>> from pymlm.formula import parse_formula
    >>> from pymlm.smooth import parse_smooth
    >>> spec = parse_smooth(parse_formula('y ~ s(x, bs = "cr", k = 6)').smooths[0].node)
    >>> (term,) = construct_smooth(spec, [np.linspace(0, 1, 50)])
    >>> term.label, term.ncol, term.null_space_dim
    ('s(x)', 5, 1)
    """
    is_factor = [isinstance(c, Factor) for c in cols]
    basis = make_basis(spec, is_factor, knots)
    raw = basis.construct(cols)
    k = raw.ncol
    S = [] if spec.fx else [np.asarray(s, dtype=float) for s in raw.S]
    rank = [] if spec.fx else list(raw.rank)
    S_scale = [1.0] * len(S)
    # one pass over the data, a block of rows at a time: column means (the constraint)
    # and the largest absolute row sum (the penalty scale), never the n-row matrix
    n = len(cols[0])
    colsum = np.zeros(k)
    max_row = 0.0
    for chunk in row_chunks(cols):
        Xc = basis.predict(chunk)
        if sp.issparse(Xc):
            colsum += np.asarray(Xc.sum(axis=0)).ravel()
            max_row = max(max_row, float(np.max(np.asarray(abs(Xc).sum(axis=1)))))
        else:
            colsum += Xc.sum(axis=0)
            max_row = max(max_row, float(np.max(np.sum(np.abs(Xc), axis=1))))
    if S and not basis.no_rescale:
        maXX = max_row**2
        for j, Sj in enumerate(S):
            maS = float(np.max(np.sum(np.abs(Sj), axis=0))) / maXX
            S[j] = Sj / maS
            S_scale[j] = maS
    by_kind = None
    by_levels: tuple = ()
    constrain = raw.constraint == "sum"
    if spec.by is not None:
        if by is None:
            raise DataError(f"{spec.label}: the by variable {spec.by} has no values")
        if isinstance(by, Factor):
            by_kind = "factor"
            by_levels = tuple(by.levels)
        else:
            by_kind = "numeric"
            b = np.asarray(by, dtype=float)
            if b.shape[0] > 1 and np.std(b, ddof=1) > abs(np.mean(b)) * np.finfo(float).eps * 1000:
                constrain = False
    Z = None
    nsd = raw.null_space_dim
    if constrain:
        C = (colsum / n).reshape(1, -1)
        Z = _constraint_basis(C)
        S = [Z.T @ Sj @ Z for Sj in S]
        S = [(Sj + Sj.T) / 2 for Sj in S]
        rank = [min(r, k - 1) for r in rank]
        nsd = max(0, nsd - 1)
    out = []
    if by_kind == "factor":
        for level in by_levels:
            out.append(SmoothTerm(f"{spec.label}:{spec.by}{level}", spec, basis, Z, S, S_scale, rank, nsd,
                                  "factor", level, by_levels, k))
    else:
        label = spec.label if by_kind is None else f"{spec.label}:{spec.by}"
        out.append(SmoothTerm(label, spec, basis, Z, S, S_scale, rank, nsd, by_kind, None, (), k))
    return out
