"""Linear-algebra kernels for the PLS fitter.

Names follow Bates, Maechler, Bolker & Walker (2015), "Fitting Linear
Mixed-Effects Models Using lme4", J. Stat. Softw. 67(1), written in ASCII:

=============  ==========================================================
name           meaning
=============  ==========================================================
``theta``      relative covariance parameters (lme4's order: per term, the
               column-major lower triangle of its template)
``T_k``        the p_k x p_k lower-triangular template of term k
``lambda_t``   Lambda_theta = blockdiag_k(I_{l_k} (x) T_k), q x q
``L``          lower Cholesky factor of the PLS system (``PlsFactor``)
``u``          spherical random effects; b = Lambda_theta u
``beta``       fixed effects
``pwrss``      penalized weighted residual sum of squares, r^2(theta)
``ldL2``       log|Lambda'Z'WZ Lambda + I| (``PlsFactor.logdet_L``)
``ldRX2``      log|R_X'R_X| (``PlsFactor.logdet_RX``)
``sigma``      residual standard deviation
=============  ==========================================================
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
