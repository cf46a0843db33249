"""The theta map: templates, Lambda, sds and correlations and back, the Jacobian."""

import numpy as np
import pytest
import scipy.linalg as sla
from _designs import random_designs
from hypothesis import given

from pymlm.fit.terms import TermMerge
from pymlm.linalg import ThetaMap


def _map(d):
    return ThetaMap.default([(X.shape[1], lk) for X, lk in zip(d["Xs"], d["levels"])])


@given(random_designs())
def test_dense_lambda_is_the_kronecker_blocks_of_the_templates(d):
    tm = _map(d)
    Ts = tm.templates(d["theta"])
    want = sla.block_diag(*[np.kron(np.eye(lk), T) for T, (_, lk) in zip(Ts, tm.dims)])
    np.testing.assert_array_equal(tm.dense_lambda(d["theta"]), want)
    np.testing.assert_array_equal(tm.pack(Ts), d["theta"])
    assert tm.lower[tm.is_diag].tolist() == [0.0] * int(tm.is_diag.sum())
    assert np.all(np.isneginf(tm.lower[~tm.is_diag]))


@given(random_designs())
def test_sdcor_and_back(d):
    tm = _map(d)
    sigma = 1.7
    sdcor = tm.sdcor(d["theta"], sigma)
    for k, T in enumerate(tm.templates(d["theta"])):
        S = sigma ** 2 * T @ T.T
        sd = np.sqrt(np.diag(S))
        rows, cols = tm.positions[k]
        want = np.where(rows == cols, sd[rows], S[rows, cols] / (sd[rows] * sd[cols]))
        np.testing.assert_allclose(sdcor[tm.slices[k]], want, rtol=1e-12)
    # theta's diagonal is positive here, so the Cholesky factor gives theta back
    np.testing.assert_allclose(tm.theta_from_sdcor(sdcor, sigma), d["theta"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tm.sdcor_from_covariances(tm.covariances(d["theta"], sigma)), sdcor, rtol=1e-12)


@given(random_designs())
def test_jacobian_of_theta_in_sdcor_and_sigma_equals_finite_differences(d):
    tm = _map(d)
    x = np.concatenate([tm.sdcor(d["theta"], 1.3), [1.3]])
    _, J = tm.theta_from_sdcor(x[:-1], x[-1], jacobian=True)
    h = 1e-6
    fd = np.column_stack([(tm.theta_from_sdcor((x + e)[:-1], (x + e)[-1])
                           - tm.theta_from_sdcor((x - e)[:-1], (x - e)[-1])) / (2 * h) for e in np.eye(x.size) * h])
    np.testing.assert_allclose(J, fd, rtol=1e-5, atol=1e-7)


def test_an_undefined_correlation_is_nan_or_the_value_asked_for():
    tm = ThetaMap.default([(2, 3)])
    theta = np.array([1.0, 0.0, 0.0])       # the second sd is 0
    assert np.isnan(tm.sdcor(theta, 2.0)[1])
    assert tm.sdcor(theta, 2.0, undefined=0.0).tolist() == [2.0, 0.0, 0.0]


def test_merged_terms_fill_a_block_diagonal_template():
    class Term:
        def __init__(self, p):
            self.p, self.nlevels, self.factors, self.codes = p, 4, ("g",), np.arange(4)

    tm = TermMerge.of([Term(1), Term(2)]).theta_map([Term(1), Term(2)], names=("a", "b", "c", "d"))
    assert tm.dims == ((3, 4),) and tm.where == ((0, 0), (0, 1))
    T = tm.template(0, np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(T, [[1, 0, 0], [0, 2, 0], [0, 3, 4]])
    assert tm.is_diag.tolist() == [True, True, False, True]
    with pytest.raises(np.linalg.LinAlgError, match="correlation"):
        ThetaMap.default([(2, 1)]).theta_from_sdcor(np.array([1.0, 3.0, 1.0]), 1.0)
