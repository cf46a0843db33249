"""The theta map: everything about theta's layout, in one place.

theta holds, term after fitted term, the elements of each p_k x p_k
lower-triangular template T_k at the positions ``positions[k] = (rows, cols)``
(lme4's order: the column-major lower triangle; a term merged from several
lme4 terms on one grouping factor fills a block-diagonal pattern). From it:

- ``slices[k]``: term k's part of theta; ``is_diag``: the elements on a
  diagonal of their T_k (bounded below by 0; ``lower``);
- ``templates(theta)``: the T_k; ``pack(dT)``: per-term p_k x p_k matrices
  (e.g. gradients in T_k) read back at theta's positions;
- ``lambda_index``: where theta sits in the dense q x q Lambda_theta =
  blockdiag_k(I_{l_k} (x) T_k), ``dense_lambda(theta)`` and its derivatives
  ``dense_dlambda()``;
- ``sdcor(theta, sigma)``: lme4's standard deviations and correlations
  (``.sig01``...), ``theta_from_sdcor`` back with its Jacobian;
  ``covariances(theta, sigma)``: the elements of Sigma_k = sigma^2 T_k T_k'
  at theta's positions, and ``sdcor_from_covariances`` from them.

The covariance of term k's random effects is Sigma_k = sigma^2 T_k T_k'.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.linalg as sla

__all__ = ["ThetaMap", "column_major_positions"]


def column_major_positions(p: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the lower triangle of a p x p matrix in column-major order (lme4's)."""
    rows, cols = np.tril_indices(p)
    order = np.lexsort((rows, cols))
    return rows[order], cols[order]


@dataclass(frozen=True, eq=False)
class ThetaMap:
    """theta's bookkeeping for one model.

    Attributes
    ----------
    dims : tuple of (p_k, l_k)
        Coefficients per level and number of levels of each fitted term.
    positions : tuple of (ndarray, ndarray)
        Per fitted term, the (row, col) of T_k that each of its theta elements fills.
    names : tuple of str
        lme4's names of the theta elements (``Subject.(Intercept)``...), or empty.
    where : tuple of (int, int)
        Per lme4 term: (fitted term, first column in it); one entry per fitted
        term when no terms were merged.

    Examples
    --------
    >>> tm = ThetaMap.default(((2, 18),))
    >>> tm.n_theta, tm.lower.tolist()
    (3, [0.0, -inf, 0.0])
    >>> tm.templates(np.array([1.0, 0.5, 2.0]))[0].tolist()
    [[1.0, 0.0], [0.5, 2.0]]
    """

    dims: tuple
    positions: tuple
    names: tuple = ()
    where: tuple = ()

    @classmethod
    def default(cls, dims, names=()) -> ThetaMap:
        """Column-major lower triangles of full templates (lme4's layout without merged terms)."""
        dims = tuple((int(p), int(l)) for p, l in dims)
        return cls(dims, tuple(column_major_positions(p) for p, _ in dims), tuple(names),
                   tuple((k, 0) for k in range(len(dims))))

    @classmethod
    def of(cls, dims, positions=None, names=(), where=()) -> ThetaMap:
        """A map from dims and optional positions (default: full lower triangles)."""
        if positions is None:
            return cls.default(dims, names)
        dims = tuple((int(p), int(l)) for p, l in dims)
        positions = tuple((np.asarray(r, dtype=np.intp), np.asarray(c, dtype=np.intp)) for r, c in positions)
        where = tuple(where) or tuple((k, 0) for k in range(len(dims)))
        return cls(dims, positions, tuple(names), where)

    def with_levels(self, dims) -> ThetaMap:
        """The same templates on terms with other numbers of levels (a subset, a resample)."""
        if tuple(tuple(d) for d in dims) == self.dims:
            return self
        return ThetaMap(tuple((int(p), int(l)) for p, l in dims), self.positions, self.names, self.where)

    # ---------------------------------------------------------------- layout
    @property
    def n_terms(self) -> int:
        return len(self.dims)

    @cached_property
    def slices(self) -> tuple[slice, ...]:
        out, start = [], 0
        for rows, _ in self.positions:
            out.append(slice(start, start + len(rows)))
            start += len(rows)
        return tuple(out)

    @property
    def n_theta(self) -> int:
        return self.slices[-1].stop if self.slices else 0

    @cached_property
    def is_diag(self) -> np.ndarray:
        """Which theta elements sit on a diagonal of their T_k."""
        if not self.positions:
            return np.zeros(0, bool)
        return np.concatenate([r == c for r, c in self.positions])

    @property
    def lower(self) -> np.ndarray:
        """Lower bounds: 0 on the diagonals, -inf off them."""
        return np.where(self.is_diag, 0.0, -np.inf)

    @property
    def start(self) -> np.ndarray:
        """lme4's start: 1 on the diagonals, 0 off them."""
        return np.where(self.is_diag, 1.0, 0.0)

    # ---------------------------------------------------------------- templates
    def template(self, k: int, theta) -> np.ndarray:
        """T_k, ``(p_k, p_k)``."""
        p = self.dims[k][0]
        rows, cols = self.positions[k]
        T = np.zeros((p, p))
        T[rows, cols] = np.asarray(theta, dtype=float)[self.slices[k]]
        return T

    def templates(self, theta) -> list[np.ndarray]:
        """The lower-triangular template T_k of every term."""
        theta = np.asarray(theta, dtype=float)
        return [self.template(k, theta) for k in range(self.n_terms)]

    def pack(self, per_term) -> np.ndarray:
        """Per-term ``(..., p_k, p_k)`` matrices read at theta's positions, ``(..., n_theta)``.

        Leading axes (e.g. the three pieces of a gradient) are kept.
        """
        if len(per_term) == 1 and self.n_terms == 1:
            rows, cols = self.positions[0]
            return np.asarray(per_term[0], dtype=float)[..., rows, cols]
        lead = np.shape(per_term[0])[:-2] if len(per_term) else ()
        out = np.zeros(lead + (self.n_theta,))
        for s, (rows, cols), M in zip(self.slices, self.positions, per_term):
            out[..., s] = np.asarray(M)[..., rows, cols]
        return out

    @cached_property
    def lambda_index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(t_idx, rows, cols)``: Lambda[rows[i], cols[i]] = theta[t_idx[i]] in the dense q x q Lambda."""
        idx, rows, cols = [], [], []
        start = 0
        for (p, l), s, (r, c) in zip(self.dims, self.slices, self.positions):
            base = start + np.arange(l) * p
            for j, (rr, cc) in enumerate(zip(r, c)):
                idx.append(np.full(l, s.start + j))
                rows.append(base + rr)
                cols.append(base + cc)
            start += p * l
        if not idx:
            return np.zeros(0, int), np.zeros(0, int), np.zeros(0, int)
        return np.concatenate(idx), np.concatenate(rows), np.concatenate(cols)

    @cached_property
    def lambda_starts(self) -> np.ndarray:
        """Where each theta element's run of positions starts in :attr:`lambda_index`
        (its positions are consecutive, in theta's order), for ``np.add.reduceat``."""
        counts = np.zeros(self.n_theta, dtype=np.intp)
        for (_, l), s in zip(self.dims, self.slices):
            counts[s] = l
        return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp) if self.n_theta else counts

    @cached_property
    def q(self) -> int:
        return int(sum(p * l for p, l in self.dims))

    def dense_lambda(self, theta) -> np.ndarray:
        """Lambda_theta as a dense ``(q, q)`` array."""
        t_idx, rows, cols = self.lambda_index
        q = self.q
        L = np.zeros((q, q))
        L[rows, cols] = np.asarray(theta, dtype=float)[t_idx]
        return L

    def dense_dlambda(self) -> np.ndarray:
        """d Lambda_theta / d theta_i for every theta element, ``(n_theta, q, q)`` (0/1 entries)."""
        t_idx, rows, cols = self.lambda_index
        out = np.zeros((self.n_theta, self.q, self.q))
        out[t_idx, rows, cols] = 1.0
        return out

    # ---------------------------------------------------------------- sds and correlations
    def sdcor(self, theta, sigma: float, undefined: float = np.nan) -> np.ndarray:
        """Random-effect sds and correlations in theta's order (lme4's ``.sigNN``).

        A correlation with an sd of 0 is ``undefined`` (lme4 prints NaN in
        ``confint`` tables and uses 0 in profiles).
        """
        return self.sdcor_from_covariances(self.covariances(theta, sigma), undefined)

    def covariances(self, theta, sigma: float) -> np.ndarray:
        """The elements of Sigma_k = sigma^2 T_k T_k' at theta's positions, ``(n_theta,)``."""
        out = np.zeros(self.n_theta)
        for k, (s, (rows, cols)) in enumerate(zip(self.slices, self.positions)):
            T = self.template(k, theta)
            out[s] = (sigma ** 2 * (T @ T.T))[rows, cols]
        return out

    @cached_property
    def diagonal_of(self) -> tuple[np.ndarray, np.ndarray]:
        """Per theta element (i, j): the theta indices of the diagonal elements (i, i) and (j, j)."""
        di, dj = np.zeros(self.n_theta, int), np.zeros(self.n_theta, int)
        for s, (rows, cols) in zip(self.slices, self.positions):
            diag = {int(i): s.start + t for t, (i, j) in enumerate(zip(rows, cols)) if i == j}
            di[s] = [diag[int(i)] for i in rows]
            dj[s] = [diag[int(j)] for j in cols]
        return di, dj

    def sdcor_from_covariances(self, v, undefined: float = np.nan) -> np.ndarray:
        """sds (on the diagonal) and correlations (off it) from :meth:`covariances`."""
        v = np.asarray(v, dtype=float)
        di, dj = self.diagonal_of
        sd = np.sqrt(np.maximum(v, 0.0))
        den = sd[di] * sd[dj]
        with np.errstate(invalid="ignore", divide="ignore"):
            cor = np.where(den > 0, v / np.where(den > 0, den, 1.0), undefined)
        return np.where(self.is_diag, sd, cor)

    def theta_from_sdcor(self, sdcor, sigma: float, jacobian: bool = False):
        """theta at (sdcor, sigma); with ``jacobian``, also d theta / d (sdcor, sigma).

        The Jacobian is ``(n_theta, n_theta + 1)``, sigma last.

        Notes
        -----
        Per term T = diag(sd) chol(R) / sigma: chol(diag(sd) R diag(sd)) =
        diag(sd) chol(R), so an sd of 0 only zeroes its row, and
        d theta / d sd_i = chol(R)[i, :] / sigma exactly. For a correlation
        (i, j), d chol(R) = L Phi(L^{-1} dR L^{-T}), Phi the lower triangle
        with half the diagonal, and L^{-1} dR L^{-T} = a b' + b a' with a, b
        columns i, j of L^{-1}.
        """
        sdcor = np.asarray(sdcor, dtype=float)
        out = np.zeros(self.n_theta)
        J = np.zeros((self.n_theta, self.n_theta + 1)) if jacobian else None
        for (p, _), s, (rows, cols), (diag, off, same_row, half) in zip(self.dims, self.slices, self.positions,
                                                                         self._sdcor_layout):
            vals = sdcor[s]
            start = s.start
            if p == 1:                         # a scalar term: theta = sd / sigma
                out[start] = vals[0] / sigma
                if jacobian:
                    J[start, start] = 1.0 / sigma
                    J[start, -1] = -out[start] / sigma
                continue
            sd = np.zeros(p)
            R = np.eye(p)
            sd[rows[diag]] = vals[diag]
            R[rows[off], cols[off]] = vals[off]
            R[cols[off], rows[off]] = vals[off]
            Lr = _chol_correlation(R)
            T = sd[:, None] * Lr / sigma
            out[s] = T[rows, cols]
            if not jacobian:
                continue
            Js = J[s]
            Js[:, -1] = -out[s] / sigma
            # an sd: the positions in its row, chol(R)[i, col] / sigma
            Js[:, start + np.flatnonzero(diag)] = np.where(same_row, Lr[rows, cols][:, None] / sigma, 0.0)
            if off.any():                      # the correlations at once, (n_cor, p, p)
                Li = sla.lapack.dtrtri(Lr, lower=1)[0]
                ab = Li[:, rows[off]].T[:, :, None] * Li[:, cols[off]].T[:, None, :]
                Phi = (ab + ab.transpose(0, 2, 1)) * half
                dT = sd[:, None] * (Lr @ Phi) / sigma
                Js[:, start + np.flatnonzero(off)] = dT[:, rows, cols].T
        return (out, J) if jacobian else out

    @cached_property
    def _sdcor_layout(self) -> tuple:
        """Per term: its diagonal and off-diagonal elements, which positions share the row of
        each diagonal element, and the lower-triangle-with-half-diagonal weights of d chol(R)."""
        out = []
        for (p, _), (rows, cols) in zip(self.dims, self.positions):
            diag = rows == cols
            half = np.tril(np.ones((p, p))) - 0.5 * np.eye(p)
            out.append((diag, ~diag, rows[:, None] == rows[diag][None, :], half))
        return tuple(out)


def _chol_correlation(R: np.ndarray) -> np.ndarray:
    L, info = sla.lapack.dpotrf(R, lower=1, clean=1)
    if info != 0:
        # |cor| = 1 (a bound) or an indefinite set of correlations: the
        # nearest factor, as lme4's safe_chol falls back to a pivoted one
        L, info = sla.lapack.dpotrf(R + 1e-10 * np.eye(R.shape[0]), lower=1, clean=1)
        if info != 0:
            raise np.linalg.LinAlgError("correlations do not form a correlation matrix")
    return L
