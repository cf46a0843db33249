"""Blocked Cholesky factor of the penalized least squares system.

For relative covariance factor Lambda(theta) the PLS system of Bates et al.
(2015, eq. 18) is factored as

    [ Lambda'Z'WZ Lambda + I   Lambda'Z'WX   Lambda'Z'Wy ]   = L L'
    [ X'WZ Lambda              X'WX          X'Wy        ]
    [ y'WZ Lambda              y'WX          y'Wy        ]

with L lower triangular, in blocks, in the manner of MixedModels.jl:

- random terms come in lme4's order (most levels first). The leading terms
  form a *nested chain*: term k joins it when every earlier term is nested in
  it (each level of the earlier factor lies inside one level of term k).
  Their diagonal blocks of L stay block diagonal (one p_k x p_k block per
  level, factored by vectorized kernels) and the blocks between them stay
  sparse (one block per column level).
- the remaining terms (crossed with the chain) are merged into one dense
  block D (its size is their total number of coefficients, never the
  chain's), whose coupling to the chain is sparse. When the chain is a single
  term, the downdate L_D1 L_D1' is formed from a symbolic product computed
  once (:class:`GramCache`), so each evaluation is one sparse mat-vec.
- the fixed effects and the response form a last dense block of size p + 1.

Nothing here is ever n x n, nor dense of the chain's size.

Notation (``linalg/__init__``): ``T_k`` the p_k x p_k lower-triangular
template of term k, Lambda_k = I_{l_k} (x) T_k; ``Q_k`` the transposed
[X y] rows of L in block k, ``(q_k, p + 1)``; M = Lambda'Z'WZ Lambda + I.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from ..crossprod import CrossProducts
from ._small import chol_lower, lower_inv, sandwich, solve_lower, solve_upper_t
from ._threads import blas_threads
from .theta import ThetaMap

__all__ = [
    "PlsStructure",
    "PlsFactor",
    "GramCache",
    "plan",
    "factorize",
    "blockdiag_csr",
    "zz_matmul",
]

# Dense blocks at least this large are factored with all BLAS threads.
BIG_DENSE = 400

# Largest symbolic product (pairs of non-zeros sharing a column level) cached
# for the chain-to-tail downdate; beyond it scipy's sparse product is used.
GRAM_CACHE_LIMIT = 40_000_000



# Levels per block of the per-level solves of the first term (bounded temporaries).
LEVEL_BLOCK = 1 << 17

def blockdiag_csr(B: np.ndarray) -> sp.csr_matrix:
    """A stack of blocks ``(l, p, p)`` as a block-diagonal CSR matrix ``(l p, l p)``."""
    l, p, _ = B.shape
    if p == 1:
        return sp.diags(B[:, 0, 0]).tocsr()
    indptr = np.arange(0, l * p * p + 1, p)
    lev = np.arange(l * p) // p
    indices = (lev[:, None] * p + np.arange(p)[None, :]).ravel()
    return sp.csr_matrix((np.ascontiguousarray(B).reshape(l * p * p), indices, indptr), shape=(l * p, l * p))


def blockdiag_extract(S, l: int, p: int) -> np.ndarray:
    """The ``(l, p, p)`` diagonal blocks of a square matrix ``(l p, l p)``."""
    out = np.empty((l, p, p))
    if p == 1:
        out[:, 0, 0] = S.diagonal()
        return out
    if sp.issparse(S):
        S = S.tocsr()
    for a in range(p):
        for b in range(p):
            k = b - a
            diag = S.diagonal(k)
            start = a if k >= 0 else b
            out[:, a, b] = diag[start::p][:l]
    return out


def _is_nested(inc) -> bool:
    """Every column level meets exactly one row level."""
    csc = inc.tocsc()
    csc.eliminate_zeros()
    return bool(np.all(np.diff(csc.indptr) == 1))


@dataclass(frozen=True, eq=False)
class GramCache:
    """``A_DD - A diag_lev(C[lev]) A'`` on a fixed lower-triangular pattern.

    ``A`` (q_D, l p) is the fixed sparse coupling of the chain term to the
    dense tail and C varies with theta. The pairs of non-zeros of ``A`` that
    share a column level are enumerated once and folded onto the lower
    triangle: ``K`` (entries x l p^2) maps the flattened blocks C to the
    product's values at the pattern ``(rows, cols)``, and ``base`` holds
    A_DD there, so forming the downdated tail block is one sparse mat-vec
    instead of a sparse-sparse product.

    Attributes
    ----------
    K : scipy.sparse.csc_matrix (entries, l p^2)
        Off-diagonal rows hold half the folded sum (exact for symmetric C).
    rows, cols : ndarray of int
        Lower-triangle positions (rows >= cols) of the pattern.
    base : ndarray (entries,)
        A_DD at the pattern.
    weight : ndarray (entries,)
        2 off the diagonal, 1 on it (for inner products with symmetric matrices).
    """

    K: sp.csc_matrix
    rows: np.ndarray
    cols: np.ndarray
    base: np.ndarray
    weight: np.ndarray
    q_D: int

    @classmethod
    def build(cls, A: sp.spmatrix, A_DD: np.ndarray, l: int, p: int) -> "GramCache | None":
        A = sp.csc_matrix(A)
        A.sum_duplicates()
        qD = A.shape[0]
        counts = np.diff(A.indptr)
        group_counts = counts.reshape(l, p).sum(axis=1).astype(np.int64)
        total = int(np.sum(group_counts ** 2))
        if total > GRAM_CACHE_LIMIT:
            return None
        nz_col = np.repeat(np.arange(A.shape[1]), counts)
        nz_group = nz_col // p
        group_start = np.concatenate([[0], np.cumsum(group_counts)])
        if p == 1:
            # rows are sorted inside a CSC column: pair each non-zero with the
            # ones above it (and itself); no pair repeats, so no duplicates
            pos = np.arange(A.nnz) - np.repeat(group_start[:-1], group_counts)
            reps = pos + 1
        else:
            reps = group_counts[nz_group]
        first = np.repeat(np.arange(A.nnz), reps)
        offs = np.arange(first.size) - np.repeat(np.cumsum(reps) - reps, reps)
        second = group_start[nz_group[first]] + offs
        r1, r2 = A.indices[first].astype(np.int64), A.indices[second].astype(np.int64)
        vals = A.data[first] * A.data[second]
        key = np.maximum(r1, r2) * qD + np.minimum(r1, r2)
        del r1, r2
        dd_r, dd_c = np.nonzero(np.tril(A_DD))
        dd_key = dd_r.astype(np.int64) * qD + dd_c
        diag_key = np.arange(qD, dtype=np.int64) * (qD + 1)
        if qD * qD <= 200_000_000:
            present = np.zeros(qD * qD, dtype=bool)
            present[key] = True
            present[dd_key] = True
            present[diag_key] = True
            uniq = np.flatnonzero(present)
            lookup = np.cumsum(present) - 1
            entry, dd_entry = lookup[key], lookup[dd_key]
            del present, lookup
        else:
            uniq, inv = np.unique(np.concatenate([key, dd_key, diag_key]), return_inverse=True)
            entry, dd_entry = inv[: key.size], inv[key.size: key.size + dd_key.size]
        rows, cols = uniq // qD, uniq % qD
        off = rows != cols
        ncol = l * p * p
        if p == 1:
            # first is sorted, so the column (= level) index is too
            kcol = nz_group[first]
            indptr = np.concatenate([[0], np.cumsum(np.bincount(kcol, minlength=ncol))])
            K = sp.csc_matrix((vals, entry, indptr), shape=(uniq.size, ncol))
        else:
            kcol = nz_group[first].astype(np.int64) * (p * p) + (nz_col[first] % p) * p + nz_col[second] % p
            vals = vals * np.where(off[entry], 0.5, 1.0)
            K = sp.csr_matrix((vals, (entry, kcol)), shape=(uniq.size, ncol)).tocsc()
            K.sum_duplicates()
        base = np.zeros(uniq.size)
        base[dd_entry] = A_DD[dd_r, dd_c]
        weight = np.where(off, 2.0, 1.0)
        return cls(K, rows.astype(np.intp), cols.astype(np.intp), base, weight, qD)

    def downdated(self, C: np.ndarray) -> np.ndarray:
        """``A_DD - A diag(C) A'`` at the pattern, ``(entries,)``, for symmetric blocks C (l, p, p)."""
        return self.base - self.K @ np.ascontiguousarray(C).ravel()

    def inner(self, Phi_at_pattern: np.ndarray) -> np.ndarray:
        """``sum_ij Phi_ij A_(i, lev a) A_(j, lev b)`` for symmetric Phi given at the pattern,
        as ``(l p^2,)``."""
        return self.K.T @ (Phi_at_pattern * self.weight)


@dataclass(frozen=True, eq=False)
class PlsStructure:
    """What stays fixed while theta varies: the block layout and the dense tail's blocks.

    Attributes
    ----------
    cp : CrossProducts
    chain : tuple of int
        Terms with block-diagonal diagonal blocks of L.
    tail : tuple of int
        Terms merged into the dense block D.
    tmap : ThetaMap
        Where theta's elements go in the templates T_k.
    A_DD : ndarray (q_D, q_D) or None
    A_Dm : dict int -> csr (q_D, q_m)
    zxy_D : ndarray (q_D, p + 1) or None
    tail_offsets : tuple of int
        Start of each tail term inside D.
    gram : GramCache or None
        Cached symbolic product for a single chain term coupled to the tail.
    """

    cp: CrossProducts
    chain: tuple[int, ...]
    tail: tuple[int, ...]
    tmap: ThetaMap
    A_DD: np.ndarray | None
    A_Dm: dict
    zxy_D: np.ndarray | None
    tail_offsets: tuple[int, ...]
    gram: GramCache | None

    @property
    def n_theta(self) -> int:
        return self.tmap.n_theta

    @property
    def q_D(self) -> int:
        return 0 if self.A_DD is None else self.A_DD.shape[0]


def plan(cp: CrossProducts, tmap: ThetaMap | None = None) -> PlsStructure:
    """Decide the block structure (nested chain, dense tail) from the cross-products.

    Parameters
    ----------
    cp : CrossProducts
    tmap : ThetaMap, optional
        Where each term's theta elements go in its template; default
        :meth:`ThetaMap.default` (full lower triangles).
    """
    K = cp.n_terms
    chain: list[int] = [0] if K else []
    tail: list[int] = []
    for k in range(1, K):
        if not tail and all(_is_nested(cp.incidence[(k, m)]) for m in range(k)):
            chain.append(k)
        else:
            tail.append(k)
    tmap = ThetaMap.default(cp.dims) if tmap is None else tmap.with_levels(cp.dims)
    A_DD = zxy_D = None
    A_Dm: dict = {}
    offsets = [0]
    gram = None
    if tail:
        sizes = [cp.dims[k][0] * cp.dims[k][1] for k in tail]
        offsets = [int(x) for x in np.concatenate([[0], np.cumsum(sizes)])]
        qD = offsets[-1]
        A_DD = np.zeros((qD, qD))
        for a, j in enumerate(tail):
            sj = slice(offsets[a], offsets[a + 1])
            A_DD[sj, sj] = blockdiag_csr(cp.zz_diag[j]).toarray()
            for b, m in enumerate(tail[:a]):
                sm = slice(offsets[b], offsets[b + 1])
                blk = cp.zz_off[(j, m)].toarray()
                A_DD[sj, sm] = blk
                A_DD[sm, sj] = blk.T
        zxy_D = np.vstack([cp.zxy[j].reshape(-1, cp.p + 1) for j in tail])
        for m in chain:
            A_Dm[m] = sp.vstack([cp.zz_off[(j, m)] for j in tail], format="csr")
        if len(chain) == 1:
            p1, l1 = cp.dims[chain[0]]
            gram = GramCache.build(A_Dm[chain[0]], A_DD, l1, p1)
    return PlsStructure(cp, tuple(chain), tuple(tail), tmap, A_DD, A_Dm, zxy_D, tuple(offsets), gram)


def _lambda(T: np.ndarray, l: int) -> sp.csr_matrix:
    p = T.shape[0]
    if p == 1:
        return sp.identity(l, format="csr") * T[0, 0]
    return blockdiag_csr(np.broadcast_to(T, (l, p, p)))


def _apply_t(T: np.ndarray, X: np.ndarray, l: int, transpose: bool) -> np.ndarray:
    """``(I_l (x) T) X`` or its transpose for X ``(l p, r)``."""
    p = T.shape[0]
    if p == 1:
        return X * T[0, 0]
    Xr = X.reshape(l, p, -1)
    M = T.T if transpose else T
    return np.einsum("ab,lbr->lar", M, Xr).reshape(l * p, -1)


def zz_matmul(cp: CrossProducts, X: dict) -> dict:
    """``Z'WZ X`` for X given per term as ``(q_k, r)`` arrays, from the cross-products."""
    out = {}
    for k, (pk, lk) in enumerate(cp.dims):
        Xk = X[k].reshape(lk, pk, -1)
        out[k] = np.einsum("lab,lbr->lar", cp.zz_diag[k], Xk).reshape(lk * pk, -1)
    for (j, m), blk in cp.zz_off.items():
        out[j] = out[j] + blk @ X[m]
        out[m] = out[m] + blk.T @ X[j]
    return out


@dataclass(frozen=True, eq=False)
class PlsFactor:
    """The blocked factor L at one theta.

    Attributes
    ----------
    Ts : list of ndarray
        T_k per term.
    L_diag : dict int -> ndarray (l_k, p_k, p_k)
        Chain terms' diagonal blocks.
    L_off : dict (j, m) -> csr (q_j, q_m)
        Chain-to-chain blocks.
    L_Dm : dict m -> csr (q_D, q_m)
    L_D : ndarray (q_D, q_D) or None
    Q : dict int -> ndarray (q_k, p + 1)
        [X y] rows of L for chain terms, transposed.
    Q_D : ndarray (q_D, p + 1) or None
    L_XX : ndarray (p + 1, p + 1)
    """

    struct: PlsStructure
    Ts: list
    L_diag: dict
    L_off: dict
    L_Dm: dict
    L_D: np.ndarray | None
    Q: dict
    Q_D: np.ndarray | None
    L_XX: np.ndarray

    @property
    def p(self) -> int:
        return self.struct.cp.p

    @property
    def logdet_L(self) -> float:
        """log |Lambda'Z'WZ Lambda + I| (lme4's ``ldL2``)."""
        total = 0.0
        for L in self.L_diag.values():
            total += 2.0 * float(np.sum(np.log(np.diagonal(L, axis1=1, axis2=2))))
        if self.L_D is not None:
            total += 2.0 * float(np.sum(np.log(np.diag(self.L_D))))
        return total

    @property
    def logdet_RX(self) -> float:
        """log |R_X'R_X| (lme4's ``ldRX2``)."""
        d = np.diag(self.L_XX)[: self.p]
        return 2.0 * float(np.sum(np.log(d)))

    @property
    def pwrss(self) -> float:
        """Penalized weighted residual sum of squares at the conditional modes."""
        return float(self.L_XX[self.p, self.p] ** 2)

    def beta(self) -> np.ndarray:
        """Fixed effects (conditional on theta)."""
        p = self.p
        if p == 0:
            return np.zeros(0)
        return sla.solve_triangular(self.L_XX[:p, :p].T, self.L_XX[p, :p], lower=False)

    def back_substitute(self, rhs: dict) -> dict:
        """Solve ``L_Z' x = rhs`` (rhs and x given per term as ``(q_k, r)`` arrays)."""
        struct = self.struct
        x: dict[int, np.ndarray] = {}
        xD = None
        if self.L_D is not None:
            rD = np.vstack([rhs[j] for j in struct.tail])
            xD = sla.solve_triangular(self.L_D.T, rD, lower=False, check_finite=False)
            for a, j in enumerate(struct.tail):
                x[j] = xD[struct.tail_offsets[a]: struct.tail_offsets[a + 1]]
        for k in reversed(struct.chain):
            r = rhs[k]
            for j in struct.chain:
                if j > k:
                    r = r - self.L_off[(j, k)].T @ x[j]
            if xD is not None:
                r = r - self.L_Dm[k].T @ xD
            pk, lk = struct.cp.dims[k]
            x[k] = solve_upper_t(self.L_diag[k], np.asarray(r).reshape(lk, pk, -1)).reshape(lk * pk, -1)
        return x

    def _q_all(self, k: int) -> np.ndarray:
        if k in self.Q:
            return self.Q[k]
        a = self.struct.tail.index(k)
        return self.Q_D[self.struct.tail_offsets[a]: self.struct.tail_offsets[a + 1]]

    def spherical_u(self, beta: np.ndarray | None = None) -> dict:
        """Spherical random effects u per term, ``(q_k,)`` arrays; b = Lambda u."""
        p = self.p
        beta = self.beta() if beta is None else beta
        rhs = {k: (self._q_all(k)[:, p] - self._q_all(k)[:, :p] @ beta)[:, None]
               for k in range(len(self.Ts))}
        return {k: v.ravel() for k, v in self.back_substitute(rhs).items()}

    def b(self, u: dict | None = None) -> list[np.ndarray]:
        """Random effects b = Lambda u per term, as ``(l_k, p_k)`` arrays."""
        u = self.spherical_u() if u is None else u
        out = []
        for k, (pk, lk) in enumerate(self.struct.cp.dims):
            out.append(u[k].reshape(lk, pk) @ self.Ts[k].T)
        return out

    def sparse_L(self) -> sp.csr_matrix:
        """L_Z (the random-effects part of L) as one sparse lower-triangular
        matrix, in the order chain terms then tail terms."""
        struct = self.struct
        nb = len(struct.chain) + (1 if struct.tail else 0)
        blocks = [[None] * nb for _ in range(nb)]
        for a, k in enumerate(struct.chain):
            blocks[a][a] = blockdiag_csr(self.L_diag[k])
            for b, m in enumerate(struct.chain[:a]):
                blocks[a][b] = self.L_off[(k, m)]
        if struct.tail:
            t = len(struct.chain)
            blocks[t][t] = sp.csr_matrix(self.L_D)
            for b, m in enumerate(struct.chain):
                blocks[t][b] = self.L_Dm[m]
        return sp.bmat(blocks, format="csr")

    def block_traces(self) -> list[np.ndarray]:
        """For every term k, the sum over its levels of the diagonal blocks of M^{-1}.

        Returns
        -------
        list of ndarray (p_k, p_k)
            ``sum_lev (M^{-1})_{kk}[lev]`` where M = Lambda'Z'WZ Lambda + I.
        """
        return self._minv_blocks(per_level=False)

    def minv_diag_blocks(self) -> list[np.ndarray]:
        """For every term k, the diagonal blocks of M^{-1}, ``(l_k, p_k, p_k)``.

        ``sigma^2 T_k M^{-1}[lev] T_k'`` is the conditional variance of the
        random effects of level ``lev`` (lme4's ``condVar``).
        """
        return self._minv_blocks(per_level=True)

    def _minv_blocks(self, per_level: bool) -> list[np.ndarray]:
        """Diagonal blocks of M^{-1}, per level or summed over levels.

        Notes
        -----
        M^{-1} = L_Z^{-T} L_Z^{-1}; its diagonal blocks are Gram blocks of the
        block columns of L_Z^{-1}. For the chain, L_C^{-1} is formed block by
        block (it keeps the nested pattern); for the tail, (L_D L_D')^{-1}
        comes from LAPACK's ``potri``, and the tail rows -L_D^{-1} Psi_k of
        the chain columns contribute Psi_k' (L_D L_D')^{-1} Psi_k.
        """
        struct = self.struct
        cp = struct.cp

        def fold(blocks):  # (l, p, p) -> summed or not
            return blocks if per_level else blocks.sum(axis=0)

        out = [np.zeros((lk, pk, pk)) if per_level else np.zeros((pk, pk)) for pk, lk in cp.dims]
        chain = struct.chain
        inv = {k: lower_inv(self.L_diag[k]) for k in chain}
        inv_sp: dict = {}
        if len(chain) == 1:
            k = chain[0]
            out[k] += fold(np.einsum("lji,ljk->lik", inv[k], inv[k]))
        else:
            inv_sp = {(k, k): blockdiag_csr(inv[k]) for k in chain}
            for a, k in enumerate(chain):
                for b in range(a + 1, len(chain)):
                    j = chain[b]
                    acc = None
                    for m in chain[a:b]:
                        term = self.L_off[(j, m)] @ inv_sp[(m, k)]
                        acc = term if acc is None else acc + term
                    inv_sp[(j, k)] = (-(inv_sp[(j, j)] @ acc)).tocsr()
            for (j, k), blk in inv_sp.items():
                pk, lk = cp.dims[k]
                out[k] += fold(blockdiag_extract(blk.T @ blk, lk, pk))
        if self.L_D is None:
            return out
        with blas_threads(None if struct.q_D >= BIG_DENSE else 1):
            Minv, _ = sla.lapack.dpotri(self.L_D, lower=1)
        # potri fills the lower triangle only
        for a, j in enumerate(struct.tail):
            pj, lj = cp.dims[j]
            s = slice(struct.tail_offsets[a], struct.tail_offsets[a + 1])
            if pj == 1 and not per_level:
                out[j] += np.diagonal(Minv)[s].sum()
            elif pj == 1:
                out[j][:, 0, 0] += np.diagonal(Minv)[s]
            else:
                blk = np.tril(Minv[s, s])
                blk = blk + np.tril(blk, -1).T
                out[j] += fold(blockdiag_extract(blk, lj, pj))
        gram = struct.gram
        if gram is not None:
            k = chain[0]
            pk, lk = cp.dims[k]
            lam_D = self._lambda_D()
            lam_diag = _diag_of(lam_D)
            if lam_diag is not None:
                phi = Minv[gram.rows, gram.cols] * lam_diag[gram.rows] * lam_diag[gram.cols]
            else:
                Msym = np.tril(Minv) + np.tril(Minv, -1).T
                Phi = np.asarray(lam_D @ (lam_D @ Msym).T)
                phi = Phi[gram.rows, gram.cols]
            phiK = gram.inner(phi).reshape(lk, pk, pk)
            # Psi_k = Lambda_D' A_D1 N, N[lev] = T M11[lev]^{-1}: the level's block is
            # N[lev]' phiK[lev] N[lev]
            M11inv = np.einsum("lji,ljk->lik", inv[k], inv[k])
            N = np.einsum("ab,lbc->lac", self.Ts[k], M11inv)
            out[k] += fold(np.einsum("lxa,lxy,lyb->lab", N, phiK, N))
            return out
        Minv = np.tril(Minv) + np.tril(Minv, -1).T
        for a, k in enumerate(chain):
            pk, lk = cp.dims[k]
            Psi = None
            for m in chain[a:]:
                term = self.L_Dm[m] @ (inv_sp[(m, k)] if len(chain) > 1 else blockdiag_csr(inv[k]))
                Psi = term if Psi is None else Psi + term
            Psi = sp.csc_matrix(Psi)
            # per level: Psi_lev' Minv Psi_lev, from Y = Minv Psi, in column chunks
            step = max(pk, (20_000_000 // max(struct.q_D, 1)) // pk * pk)
            for c0 in range(0, lk * pk, step):
                c1 = min(lk * pk, c0 + step)
                P = Psi[:, c0:c1]
                Y = np.asarray(Minv @ P.toarray())
                Pd = P.toarray().reshape(-1, (c1 - c0) // pk, pk)
                Yr = Y.reshape(-1, (c1 - c0) // pk, pk)
                blocks = np.einsum("rla,rlb->lab", Pd, Yr)
                if per_level:
                    out[k][c0 // pk: c1 // pk] += blocks
                else:
                    out[k] += blocks.sum(axis=0)
        return out

    def _lambda_D(self) -> sp.csr_matrix:
        struct = self.struct
        return sp.block_diag([_lambda(self.Ts[j], struct.cp.dims[j][1]) for j in struct.tail], format="csr")


def factorize(struct: PlsStructure, theta: np.ndarray) -> PlsFactor:
    """Factor the PLS system at ``theta``.

    Parameters
    ----------
    struct : PlsStructure
    theta : ndarray (n_theta,)

    Returns
    -------
    PlsFactor

    Raises
    ------
    numpy.linalg.LinAlgError
        The fixed-effects block is not positive definite (collinear X).
    """
    cp = struct.cp
    p1 = cp.p + 1
    Ts = struct.tmap.templates(theta)
    L_diag: dict = {}
    L_off: dict = {}
    L_Dm: dict = {}
    Q: dict = {}
    chain = struct.chain
    tail = struct.tail
    lams: dict = {}
    inv_t: dict = {}
    lam_D = None
    if tail:
        lam_D = sp.block_diag([_lambda(Ts[j], cp.dims[j][1]) for j in tail], format="csr")
    for idx, k in enumerate(chain):
        pk, lk = cp.dims[k]
        T = Ts[k]
        M = sandwich(T, cp.zz_diag[k])
        M[:, np.arange(pk), np.arange(pk)] += 1.0
        for m in chain[:idx]:
            Lkm = L_off[(k, m)]
            M -= blockdiag_extract(Lkm @ Lkm.T, lk, pk)
        Lk = chol_lower(M)
        L_diag[k] = Lk
        if idx == 0:
            # Q_k = L_k^{-1} T' Z_k'[X y] by blocks of levels: the temporaries stay O(block), not
            # several copies of the O(levels x p) blocks
            Qk = np.empty((lk, pk, p1))
            for s in range(0, lk, LEVEL_BLOCK):
                e = s + LEVEL_BLOCK
                Qk[s:e] = solve_lower(Lk[s:e], np.einsum("ba,lbr->lar", T, cp.zxy[k][s:e]))
            Q[k] = Qk.reshape(pk * lk, p1)
        else:
            R = np.einsum("ba,lbr->lar", T, cp.zxy[k]).reshape(lk * pk, p1)
            for m in chain[:idx]:
                R = R - L_off[(k, m)] @ Q[m]
            Q[k] = solve_lower(Lk, R.reshape(lk, pk, p1)).reshape(pk * lk, p1)
        later = chain[idx + 1:]
        if not later and not tail:
            continue
        # L_k^{-T} applied on the right, as a block-diagonal sparse matrix
        inv_t[k] = blockdiag_csr(np.transpose(lower_inv(Lk), (0, 2, 1)))
        lams[k] = _lambda(T, lk)
        right = (lams[k] @ inv_t[k]).tocsr()
        for j in later:
            if j not in lams:
                lams[j] = _lambda(Ts[j], cp.dims[j][1])
            B = lams[j].T @ cp.zz_off[(j, k)] @ right
            for m in chain[:idx]:
                B = B - L_off[(j, m)] @ (L_off[(k, m)].T @ inv_t[k])
            L_off[(j, k)] = sp.csr_matrix(B)
        if tail:
            B = lam_D.T @ struct.A_Dm[k] @ right
            for m in chain[:idx]:
                B = B - L_Dm[m] @ (L_off[(k, m)].T @ inv_t[k])
            L_Dm[k] = sp.csr_matrix(B)
    L_D = Q_D = None
    M_XX = cp.xyxy.copy()
    for k in chain:
        M_XX -= Q[k].T @ Q[k]
    if tail:
        gram = struct.gram
        if gram is not None:
            k = chain[0]
            Li = lower_inv(L_diag[k])
            C = np.einsum("ab,lcb,lcd,ed->lae", Ts[k], Li, Li, Ts[k], optimize=True)
            vals = gram.downdated(C)
            lam_diag = _diag_of(lam_D)
            MD = np.zeros((struct.q_D, struct.q_D))
            if lam_diag is not None:
                MD[gram.rows, gram.cols] = vals * lam_diag[gram.rows] * lam_diag[gram.cols]
            else:
                MD[gram.rows, gram.cols] = vals
                MD[gram.cols, gram.rows] = vals
                MD = np.asarray(lam_D.T @ np.asarray(lam_D.T @ MD).T)
        else:
            MD = np.asarray(lam_D.T @ np.asarray(lam_D.T @ struct.A_DD).T)
            for m in chain:
                Gm = L_Dm[m]
                MD -= (Gm @ Gm.T).toarray()
        MD[np.diag_indices_from(MD)] += 1.0
        RD = np.asarray(lam_D.T @ struct.zxy_D)
        for m in chain:
            RD -= L_Dm[m] @ Q[m]
        with blas_threads(None if struct.q_D >= BIG_DENSE else 1):
            L_D, info = sla.lapack.dpotrf(MD, lower=1, clean=1, overwrite_a=1)
        if info != 0:
            raise np.linalg.LinAlgError("dense block not positive definite")
        Q_D = sla.solve_triangular(L_D, RD, lower=True, check_finite=False)
        M_XX -= Q_D.T @ Q_D
    L_XX = _chol_xx(M_XX)
    return PlsFactor(struct, Ts, L_diag, L_off, L_Dm, L_D, Q, Q_D, L_XX)


def _diag_of(lam: sp.csr_matrix):
    """The diagonal of a sparse matrix when it is diagonal, else None."""
    if lam.nnz == lam.shape[0] and np.array_equal(lam.indices, np.arange(lam.shape[0])):
        return lam.data.copy()
    return None


def _chol_xx(M: np.ndarray) -> np.ndarray:
    """Cholesky of the [X y] block; a perfect fit (zero residual) gets r_yy = 0."""
    try:
        return sla.cholesky(M, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        p = M.shape[0] - 1
        L = np.zeros_like(M)
        if p:
            L[:p, :p] = sla.cholesky(M[:p, :p], lower=True, check_finite=False)
            L[p, :p] = sla.solve_triangular(L[:p, :p], M[:p, p], lower=True)
        L[p, p] = np.sqrt(max(M[p, p] - L[p, :p] @ L[p, :p], 0.0))
        return L
