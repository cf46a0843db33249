"""The fs natural parametrization depends on the function space only (pymlm/smooth/_fs.py).

The base basis ``X`` with penalty ``S`` and ``X A`` with penalty ``A' S A``
(``A`` invertible) span the same functions with the same penalty, so the
reparametrized columns must be the same functions: the null-space columns
exactly (Gram-Schmidt of the reference functions 1, x, ...), the range-space
columns up to sign (an eigen basis with distinct eigenvalues), the range
penalty ``D`` equal.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pymlm.smooth import CubicRegressionSpline, ThinPlateSpline
from pymlm.smooth._basis import fix_signs
from pymlm.smooth._fs import natural_parametrization, null_space_rotation, reference_powers
from pymlm.smooth._tp import _poly

X_DATA = np.round(np.random.default_rng(3).uniform(size=120), 4)


def _base(kind: str):
    basis = ThinPlateSpline(k=6) if kind == "tp" else CubicRegressionSpline(k=6)
    raw = basis.construct([X_DATA])
    X = np.asarray(basis.predict([X_DATA]))
    return X, raw.S[0], int(raw.rank[0])


def _natural(X, S, rank):
    xc = (X_DATA - X_DATA.mean())[:, None]
    F = _poly(xc, reference_powers(1, X.shape[1] - rank))
    P, D = natural_parametrization(X.T @ X, X.shape[0], S, rank, X.T @ F)
    return X @ P, D


def _mixing(k: int, rank: int, seed: int, null_only: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if null_only:
        A = np.eye(k)
        A[rank:, rank:] = rng.normal(size=(k - rank, k - rank)) + 2 * np.eye(k - rank)
        return A
    return rng.normal(size=(k, k)) + 3 * np.eye(k)


@pytest.mark.parametrize("kind", ["tp", "cr"])
@given(seed=st.integers(0, 10_000), null_only=st.booleans())
def test_any_reparametrization_of_the_base_gives_the_same_columns(kind, seed, null_only):
    X, S, rank = _base(kind)
    Y0, D0 = _natural(X, S, rank)
    A = _mixing(X.shape[1], rank, seed, null_only)
    Y1, D1 = _natural(X @ A, A.T @ S @ A, rank)
    assert D1 == pytest.approx(D0, rel=1e-8)
    np.testing.assert_allclose(Y1[:, rank:], Y0[:, rank:], atol=1e-8)
    signs = np.sign(np.sum(Y1[:, :rank] * Y0[:, :rank], axis=0))
    np.testing.assert_allclose(Y1[:, :rank] * signs, Y0[:, :rank], atol=1e-6)


@pytest.mark.parametrize("kind", ["tp", "cr"])
def test_the_null_columns_are_the_constant_then_the_centred_line(kind):
    X, S, rank = _base(kind)
    Y, _ = _natural(X, S, rank)
    n = X.shape[0]
    np.testing.assert_allclose(Y[:, rank], 1.0, atol=1e-9)  # unit mean square
    line = X_DATA - X_DATA.mean()
    np.testing.assert_allclose(Y[:, rank + 1], line / np.sqrt(np.mean(line**2)), atol=1e-8)
    # orthonormal in the data inner product (times n), as mgcv's unit.fnorm scaling leaves them
    np.testing.assert_allclose(Y[:, rank:].T @ Y[:, rank:] / n, np.eye(X.shape[1] - rank), atol=1e-9)


def test_the_rotation_is_equivariant():
    """N -> N Q (orthogonal Q) changes C to Q'C and W to Q'W: N W is unchanged."""
    rng = np.random.default_rng(5)
    C = rng.normal(size=(2, 3))
    Q, _ = np.linalg.qr(rng.normal(size=(2, 2)))
    np.testing.assert_allclose(null_space_rotation(Q.T @ C), Q.T @ null_space_rotation(C), atol=1e-12)
    W = null_space_rotation(C)
    np.testing.assert_allclose(W.T @ W, np.eye(2), atol=1e-12)
    assert W[:, 0] @ C[:, 0] > 0 and W[:, 1] @ (C[:, 1] - W[:, 0] * (W[:, 0] @ C[:, 1])) > 0


def test_fixed_signs_survive_a_sign_flip_and_ties():
    rng = np.random.default_rng(2)
    V = rng.normal(size=(8, 4))
    flips = np.array([1.0, -1.0, -1.0, 1.0])
    np.testing.assert_array_equal(fix_signs(V * flips), fix_signs(V))
    # an antisymmetric vector: its largest entries tie in magnitude with opposite signs
    v = np.array([[0.5], [-0.2], [0.2], [-0.5]])
    np.testing.assert_array_equal(fix_signs(v), fix_signs(-v))
    assert fix_signs(v)[0, 0] > 0
