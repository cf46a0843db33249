"""What interval methods need from a fitted LMM, at the fit level.

:class:`LmmProblem` bundles the cross-products, the optimum and the design
arrays of one fit, with lme4's parameter naming for intervals: the standard
deviations and correlations of the random effects (``.sig01``, ``.sig02``...,
in the order of theta: per term, column-major lower triangle, a diagonal
position giving a standard deviation and an off-diagonal one a
correlation), then ``.sigma``, then the fixed effects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..crossprod import CrossProducts, cluster_cross_products, cross_products
from ..errors import OptionError
from ..fit.lmm import LmmFit, fit_lmm
from ..linalg import ThetaMap

__all__ = ["LmmProblem"]


@dataclass(frozen=True, eq=False)
class LmmProblem:
    """A fitted LMM as the inference methods see it.

    Attributes
    ----------
    cp : CrossProducts
        Cross-products of the fitted (merged) terms.
    fit : LmmFit
    reml : bool
    tmap : ThetaMap
        theta's layout, bounds, names and sd/cor map (fitted terms).
    fixef_names : list of str
    codes, Xs, levels : lists
        Per fitted term: level codes (n,), model matrix (n, p_k), number of levels.
    X : ndarray (n, p) or sparse
    y : ndarray (n,)
        Response minus offset.
    weights : ndarray (n,) or None
    options : dict
        The fit's options.
    memo : dict
        Results of costly methods already computed for this fit (profiles),
        keyed by the fit, the cross-products and the options; users get copies.
    """

    cp: CrossProducts
    fit: LmmFit
    reml: bool
    tmap: ThetaMap
    fixef_names: list
    codes: list
    Xs: list
    levels: list
    X: object
    y: np.ndarray
    weights: np.ndarray | None = None
    options: dict = field(default_factory=dict)
    memo: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------ naming
    @cached_property
    def param_names(self) -> list[str]:
        """lme4's confint names: ``.sig01``... ``.sigma`` then the fixed effects."""
        n_sig = self.fit.theta.size
        return [f".sig{i + 1:02d}" for i in range(n_sig)] + [".sigma"] + list(self.fixef_names)

    @property
    def n_sig(self) -> int:
        return self.fit.theta.size

    @property
    def n_var(self) -> int:
        """Variance parameters: the sds and correlations, and sigma."""
        return self.n_sig + 1

    @property
    def fixef_hat(self) -> np.ndarray:
        return np.asarray(self.fit.beta, dtype=float)

    def fixef_vcov(self) -> np.ndarray:
        """Covariance of the fixed-effect estimates, sigma^2 (R_X'R_X)^{-1}."""
        return self.fit.vcov_beta()

    is_glmm = False

    @property
    def lower(self) -> np.ndarray:
        """Lower bounds of theta."""
        return self.tmap.lower

    def sdcor(self, theta, sigma: float) -> np.ndarray:
        """Random-effect sds and correlations in theta's order (lme4's ``.sigNN``)."""
        return self.tmap.sdcor(theta, sigma)

    def estimates(self, fit: LmmFit | None = None) -> np.ndarray:
        """All parameters of a fit in :attr:`param_names` order."""
        f = self.fit if fit is None else fit
        return np.concatenate([self.sdcor(f.theta, f.sigma), [f.sigma], f.beta])

    # ------------------------------------------------------------ refits
    def refit_cp(self, cp: CrossProducts, start=None, check_conv: bool = False) -> LmmFit:
        """Fit the same model to other cross-products (a resample, a subset)."""
        theta0 = self.fit.theta if start is None else start
        return fit_lmm(cp, self.tmap.with_levels(cp.dims), theta0=np.asarray(theta0, dtype=float),
                       reml=self.reml, check_conv=check_conv)

    def crossprod_for(self, y=None, rows=None, freq_weights=None) -> CrossProducts:
        """Cross-products of the design with a new response and/or a subset of rows."""
        yy = self.y if y is None else np.asarray(y, dtype=float)
        sel = slice(None) if rows is None else rows
        w = None if self.weights is None else self.weights[sel]
        X = self.X[sel]
        fw = None if freq_weights is None else np.asarray(freq_weights)
        return cross_products([c[sel] for c in self.codes], [x[sel] for x in self.Xs], self.levels, X, yy[sel],
                              weights=w, freq_weights=fw)

    def refit_y(self, y, start=None) -> LmmFit:
        """Fit the same model to a new response (minus offset), e.g. a parametric bootstrap draw."""
        return self.refit_cp(self.crossprod_for(y=y), start=start)

    def mean_response(self) -> np.ndarray:
        """X beta (no random effects, offset excluded), the mean of simulated responses."""
        return np.asarray(self.X @ self.fit.beta).ravel()

    def simulate(self, rng: np.random.Generator, nsim: int = 1) -> np.ndarray:
        """Responses (minus offset) drawn from the fitted model, ``(n, nsim)``."""
        f = self.fit
        n = self.y.shape[0]
        Y = np.repeat(self.mean_response()[:, None], nsim, axis=1)
        for codes, Xk, lk, T in zip(self.codes, self.Xs, self.levels, self.tmap.templates(f.theta)):
            B = f.sigma * rng.standard_normal((nsim, lk, Xk.shape[1])) @ T.T
            for c in range(Xk.shape[1]):
                Y += Xk[:, c][:, None] * B[:, codes, c].T
        noise = f.sigma * rng.standard_normal((n, nsim))
        if self.weights is not None:
            with np.errstate(divide="ignore"):
                noise = noise / np.sqrt(self.weights)[:, None]
        return Y + noise

    # ------------------------------------------------------------ clusters
    @property
    def single_factor(self) -> bool:
        """All random terms share one grouping factor (independent clusters)."""
        return len(self.codes) == 1

    @cached_property
    def clusters(self):
        """Per-cluster cross-products (:class:`~pymlm.crossprod.ClusterCrossProducts`).

        Raises
        ------
        OptionError
            The model has more than one grouping factor.
        """
        if not self.single_factor:
            raise OptionError(
                "this method resamples independent clusters and needs every random term on one "
                "grouping factor; the model has several (crossed or nested) grouping factors"
            )
        return cluster_cross_products(self.codes[0], self.Xs[0], self.levels[0], self.X, self.y, self.weights)
