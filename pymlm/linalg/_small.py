"""Batched kernels for stacks of small matrices, vectorized over the stack.

A random-effects term with ``p`` coefficients per level contributes ``l``
blocks of size ``p x p`` (``l`` = number of levels, up to millions; ``p``
small). numpy's stacked LAPACK calls pay a per-matrix overhead that
dominates for tiny blocks, so these kernels loop over the ``p`` rows and
columns and vectorize over the ``l`` levels instead.

Shapes: ``M`` is ``(l, p, p)``; right-hand sides ``B`` are ``(l, p, r)``.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

__all__ = [
    "chol_lower",
    "solve_lower",
    "solve_upper_t",
    "lower_inv",
    "sandwich",
    "tri_inv",
]


def chol_lower(M: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of a stack of symmetric positive definite matrices.

    Parameters
    ----------
    M : ndarray (l, p, p)

    Returns
    -------
    L : ndarray (l, p, p)
        ``L[i] @ L[i].T == M[i]``, zeros above the diagonal.

    Raises
    ------
    numpy.linalg.LinAlgError
        A matrix of the stack is not positive definite.
    """
    l, p, _ = M.shape
    if p == 1:
        d = M[:, 0, 0]
        if np.any(d <= 0):
            raise np.linalg.LinAlgError("matrix not positive definite")
        return np.sqrt(d).reshape(l, 1, 1)
    if p == 2:
        a, c, d = M[:, 0, 0], M[:, 1, 0], M[:, 1, 1]
        if np.any(a <= 0):
            raise np.linalg.LinAlgError("matrix not positive definite")
        l00 = np.sqrt(a)
        l10 = c / l00
        s = d - l10 * l10
        if np.any(s <= 0):
            raise np.linalg.LinAlgError("matrix not positive definite")
        L = np.zeros_like(M)
        L[:, 0, 0] = l00
        L[:, 1, 0] = l10
        L[:, 1, 1] = np.sqrt(s)
        return L
    L = np.zeros_like(M)
    for j in range(p):
        s = M[:, j, j] - np.einsum("lk,lk->l", L[:, j, :j], L[:, j, :j])
        if np.any(s <= 0):
            raise np.linalg.LinAlgError("matrix not positive definite")
        d = np.sqrt(s)
        L[:, j, j] = d
        if j + 1 < p:
            L[:, j + 1:, j] = (M[:, j + 1:, j] - np.einsum("lik,lk->li", L[:, j + 1:, :j], L[:, j, :j])) / d[:, None]
    return L


def _substitute(L: np.ndarray, B: np.ndarray, transpose: bool) -> np.ndarray:
    """Forward substitution with ``L[i]`` or, with ``transpose``, back substitution with ``L[i].T``."""
    p = L.shape[1]
    if p == 1:
        return B / L[:, :, :1]
    X = np.empty(np.broadcast_shapes(B.shape, (L.shape[0], p, B.shape[2])))
    first, second = (1, 0) if transpose else (0, 1)
    if p == 2:
        X[:, first, :] = B[:, first, :] / L[:, first, first, None]
        X[:, second, :] = (B[:, second, :] - L[:, 1, 0, None] * X[:, first, :]) / L[:, second, second, None]
        return X
    for i in (range(p - 1, -1, -1) if transpose else range(p)):
        done = slice(i + 1, p) if transpose else slice(0, i)
        acc = B[:, i, :]
        if done.start < done.stop:
            coef = L[:, done, i] if transpose else L[:, i, done]
            acc = acc - np.einsum("lk,lkr->lr", coef, X[:, done, :])
        X[:, i, :] = acc / L[:, i, i][:, None]
    return X


def solve_lower(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Solve ``L[i] X[i] = B[i]`` for lower-triangular ``L`` (forward substitution).

    Parameters
    ----------
    L : ndarray (l, p, p)
    B : ndarray (l, p, r)

    Returns
    -------
    X : ndarray (l, p, r)
    """
    return _substitute(L, B, transpose=False)


def solve_upper_t(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Solve ``L[i].T X[i] = B[i]`` for lower-triangular ``L`` (back substitution).

    Parameters
    ----------
    L : ndarray (l, p, p)
    B : ndarray (l, p, r)

    Returns
    -------
    X : ndarray (l, p, r)
    """
    return _substitute(L, B, transpose=True)


def lower_inv(L: np.ndarray) -> np.ndarray:
    """Inverses of a stack of lower-triangular matrices, ``(l, p, p)``."""
    l, p, _ = L.shape
    eye = np.broadcast_to(np.eye(p), (l, p, p))
    return solve_lower(L, eye)


def sandwich(T: np.ndarray, A: np.ndarray) -> np.ndarray:
    """``T.T @ A[i] @ T`` for every block of a stack ``A`` (l, p, p)."""
    p = T.shape[0]
    if p == 1:
        return A * (T[0, 0] ** 2)
    return np.einsum("ba,lbc,cd->lad", T, A, T, optimize=True)


def tri_inv(L: np.ndarray) -> np.ndarray:
    """Inverse of a small lower-triangular matrix (LAPACK trtri)."""
    if L.shape[0] == 0:
        return L
    inv, info = sla.lapack.dtrtri(L, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError("singular fixed-effects block")
    return inv
