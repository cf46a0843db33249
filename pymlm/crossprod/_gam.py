"""Cross products ``X'WX``, ``X'Wz`` and linear predictors of a GAM design.

An engine turns a :class:`~pymlm.design.GamDesign` and working weights and
response into :class:`CrossStats`, all the GAM fitter
(:mod:`pymlm.fit._gam_reml`) needs. Three ways, same numbers:

- :class:`DiscreteEngine` (``bam(discrete = TRUE)``): from the compressed
  blocks of :mod:`pymlm.crossprod.discrete`; never forms the n-row matrix.
- :class:`ChunkEngine` (``bam(discrete = FALSE)``): the model matrix is
  evaluated ``chunk_size`` rows at a time and each chunk's contribution is
  added, so memory stays O(chunk_size p). Random-effect and factor-smooth
  columns are kept sparse: a chunk is ``[D | Z]`` with ``D`` dense and ``Z``
  CSR, and ``X'WX`` is assembled from ``D'WD``, ``Z'WD`` and ``Z'WZ``.
- ``ChunkEngine(cache=True)`` (``gam()``): one chunk with every row, built
  once and kept, the exact method for data that fit in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from . import discrete as disc

__all__ = ["ChunkEngine", "CrossStats", "DiscreteEngine"]


@dataclass(frozen=True, eq=False)
class CrossStats:
    """The sufficient statistics of a (working) penalized least squares problem.

    Attributes
    ----------
    XtWX : ndarray (p, p)
    XtWz : ndarray (p,)
    zWz : float
    n : int
        Number of observations.
    blockdiag : tuple (start, n_blocks, block_size) or None
        Coefficients ``start : start + n_blocks * block_size`` whose block of
        ``X'WX`` is block diagonal (a factor smooth, level by level): the
        solve eliminates them block by block (:func:`pymlm.fit._gam_reml._solve`).
    """

    XtWX: np.ndarray
    XtWz: np.ndarray
    zWz: float
    n: int
    blockdiag: tuple | None = None

    @property
    def p(self) -> int:
        return self.XtWz.shape[0]


class DiscreteEngine:
    """Cross products from compressed blocks."""

    def __init__(self, design):
        self.design = design
        self.blocks = design.blocks
        self.p = design.p
        self.n = design.n

    def stats(self, w: np.ndarray | None, z: np.ndarray) -> CrossStats:
        XtWX = disc.xtwx(self.blocks, w, self.p)
        XtWz = disc.xtwy(self.blocks, w, z, self.p)
        zWz = float(np.dot(z * z, w) if w is not None else np.dot(z, z))
        return CrossStats(XtWX, XtWz, zWz, self.n, self.design.blockdiag)

    def eta(self, beta: np.ndarray) -> np.ndarray:
        return disc.xbeta(self.blocks, beta, self.n)


class ChunkEngine:
    """Cross products accumulated over row chunks of the evaluated model matrix.

    Parameters
    ----------
    design : GamDesign
    chunk_size : int
        Rows per chunk.
    cache : bool
        Keep the evaluated chunks (exact ``gam()``: one chunk of all rows).
    """

    def __init__(self, design, chunk_size: int = 10_000, cache: bool = False):
        self.design = design
        self.n = design.n
        self.p = design.p
        self.chunk_size = max(int(chunk_size), 1)
        self.cache = cache
        self._chunks: dict[int, tuple] = {}
        dense_cols = [np.arange(design.pp)]
        sparse_cols = []
        self._dense_terms, self._sparse_terms = [], []
        for t in design.terms:
            sparse_term = t.re is not None or (t.smooth is not None and t.smooth.basis.sparse)
            (sparse_cols if sparse_term else dense_cols).append(np.arange(t.start, t.start + t.ncol))
            (self._sparse_terms if sparse_term else self._dense_terms).append(t)
        self.dcols = np.concatenate(dense_cols) if dense_cols else np.zeros(0, int)
        self.scols = np.concatenate(sparse_cols) if sparse_cols else np.zeros(0, int)

    def _chunk(self, s: int, e: int):
        if self.cache and s in self._chunks:
            return self._chunks[s]
        parts = [self.design.parametric_rows(s, e)] + [np.asarray(t.rows(s, e)) for t in self._dense_terms]
        D = np.hstack(parts) if len(parts) > 1 else np.ascontiguousarray(parts[0])
        Z = None
        if self._sparse_terms:
            Z = sp.hstack([t.rows(s, e) for t in self._sparse_terms], format="csr")
        if self.cache:
            self._chunks[s] = (D, Z)
        return D, Z

    def _ranges(self):
        for s in range(0, self.n, self.chunk_size):
            yield s, min(s + self.chunk_size, self.n)

    def stats(self, w: np.ndarray | None, z: np.ndarray) -> CrossStats:
        pd_, ps = self.dcols.shape[0], self.scols.shape[0]
        DD = np.zeros((pd_, pd_))
        SD = np.zeros((ps, pd_))
        SS = sp.csr_matrix((ps, ps))
        fd = np.zeros(pd_)
        fs = np.zeros(ps)
        zWz = 0.0
        for s, e in self._ranges():
            D, Z = self._chunk(s, e)
            wc = None if w is None else w[s:e]
            zc = z[s:e]
            WD = D if wc is None else D * wc[:, None]
            DD += WD.T @ D
            wz = zc if wc is None else wc * zc
            fd += D.T @ wz
            zWz += float(zc @ wz)
            if Z is not None:
                SD += np.asarray(Z.T @ WD)
                WZ = Z if wc is None else Z.multiply(wc[:, None]).tocsr()
                SS = SS + (Z.T @ WZ).tocsr()
                fs += Z.T @ wz
        XtWX = np.zeros((self.p, self.p))
        XtWX[np.ix_(self.dcols, self.dcols)] = DD
        XtWz = np.zeros(self.p)
        XtWz[self.dcols] = fd
        if ps:
            XtWX[np.ix_(self.scols, self.dcols)] = SD
            XtWX[np.ix_(self.dcols, self.scols)] = SD.T
            XtWX[np.ix_(self.scols, self.scols)] = SS.toarray()
            XtWz[self.scols] = fs
        return CrossStats(XtWX, XtWz, zWz, self.n, self.design.blockdiag)

    def row_quadform(self, M: np.ndarray) -> np.ndarray:
        """``h_i = x_i' M x_i`` for every row (n,), e.g. leverages with ``M = A^{-1}``."""
        order = np.concatenate([self.dcols, self.scols])
        Mo = M[np.ix_(order, order)]
        out = np.empty(self.n)
        for s, e in self._ranges():
            D, Z = self._chunk(s, e)
            X = D if Z is None else np.hstack([D, Z.toarray()])
            out[s:e] = np.einsum("ij,ij->i", X @ Mo, X)
        return out

    def eta(self, beta: np.ndarray) -> np.ndarray:
        out = np.empty(self.n)
        if not self.cache:
            # term by term: bases that can evaluate X beta without forming X do so
            pp = self.design.pp
            for s, e in self._ranges():
                v = self.design.parametric_rows(s, e) @ beta[:pp]
                for t in self.design.terms:
                    v += t.rows_dot(s, e, beta[t.cols])
                out[s:e] = v
            return out
        bd = beta[self.dcols]
        bs = beta[self.scols]
        for s, e in self._ranges():
            D, Z = self._chunk(s, e)
            v = D @ bd
            if Z is not None:
                v = v + Z @ bs
            out[s:e] = v
        return out
