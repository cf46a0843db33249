"""Linear-algebra kernels for the PLS fitter.

Names follow Bates, Maechler, Bolker & Walker (2015), "Fitting Linear
Mixed-Effects Models Using lme4", J. Stat. Softw. 67(1), written in ASCII:

=============  ==========================================================
name           meaning
=============  ==========================================================
``n``          number of observations (rows with positive weight)
``p``          number of fixed effects (columns of X); [X y] has p + 1
``k``          index of a random-effects term (a fitted, possibly merged, term)
``p_k``        coefficients per level of term k (``pk`` in code)
``l_k``        levels of term k (``lk`` in code)
``q_k, q``     q_k = p_k l_k random effects of term k; q = sum_k q_k
``theta``      relative covariance parameters (lme4's order: per term, the
               column-major lower triangle of its template); ``n_theta``
               elements, laid out by a ``ThetaMap`` (``tmap``)
``T_k``        the p_k x p_k lower-triangular template of term k
``lambda_t``   Lambda_theta = blockdiag_k(I_{l_k} (x) T_k), q x q
``L``          lower Cholesky factor of the PLS system (``PlsFactor``)
``u``          spherical random effects; b = Lambda_theta u
``beta``       fixed effects
``pwrss``      penalized weighted residual sum of squares, r^2(theta)
``ldL2``       log|Lambda'Z'WZ Lambda + I| (``PlsFactor.logdet_L``)
``ldRX2``      log|R_X'R_X| (``PlsFactor.logdet_RX``)
``sigma``      residual standard deviation
``M``          Lambda'Z'WZ Lambda + I, q x q
``nu``         n - p (REML) or n: the divisor of pwrss in sigma^2
=============  ==========================================================

Every module of the LMM side uses these names; a per-level or per-cluster
count is ``p_k``, never ``p`` or ``q``.
"""

from ._small import chol_lower, lower_inv, sandwich, solve_lower, solve_upper_t
from .cholesky import PlsFactor, PlsStructure, blockdiag_csr, factorize, plan
from .theta import ThetaMap

__all__ = [
    "PlsFactor",
    "PlsStructure",
    "ThetaMap",
    "blockdiag_csr",
    "chol_lower",
    "factorize",
    "lower_inv",
    "plan",
    "sandwich",
    "solve_lower",
    "solve_upper_t",
]
