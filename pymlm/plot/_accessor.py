"""``m.plot``: the plots of a fitted model, as methods.

``LmerResult.plot`` and ``GamResult.plot`` return these small objects; each
method calls the function of :mod:`pymlm.plot` of the same name on the fit.
Both are callable as R's ``plot(m)``: residuals against fitted values for an
LMM (lme4's ``plot.merMod``), the smooths for a GAM (mgcv's ``plot.gam``).
"""

from __future__ import annotations

from . import _gam, _intervals, _lmer, _profile

__all__ = ["GamPlots", "LmerPlots"]


class LmerPlots:
    """Plots of a linear mixed model: ``m.plot.caterpillar()``, ``m.plot.qq()``...

    ``m.plot()`` draws the residuals against the fitted values, as lme4's
    ``plot(m)``. Every method returns a matplotlib Axes or Figure; its
    ``*_frame`` twin returns the DataFrame drawn.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> fig = m.plot.ranef()
    >>> [a.get_title() for a in fig.axes]
    ['(Intercept)', 'Days']
    """

    def __init__(self, model):
        self._m = model

    def __repr__(self) -> str:
        return (
            f"<plots of {self._m!r}: caterpillar (ranef), ranef_qq, residuals, qq, shrinkage, "
            "zeta, "
            "profile_density, boot_density, intervals>"
        )

    def __call__(self, **kwargs):
        """Residuals against fitted values (lme4's plot(m), :func:`pymlm.plot.residuals_fitted`)."""
        return _lmer.residuals_fitted(self._m, **kwargs)

    # random effects
    def caterpillar(self, group=None, **kwargs):
        """Conditional modes with intervals (:func:`pymlm.plot.caterpillar`)."""
        return _lmer.caterpillar(self._m, group, **kwargs)

    ranef = caterpillar

    def caterpillar_frame(self, group=None, **kwargs):
        """The data of :meth:`caterpillar` (:func:`pymlm.plot.caterpillar_frame`)."""
        return _lmer.caterpillar_frame(self._m, group, **kwargs)

    def ranef_qq(self, group=None, **kwargs):
        """Normal QQ plot of the conditional modes (:func:`pymlm.plot.ranef_qq`)."""
        return _lmer.ranef_qq(self._m, group, **kwargs)

    def ranef_qq_frame(self, group=None, **kwargs):
        """The data of :meth:`ranef_qq`."""
        return _lmer.ranef_qq_frame(self._m, group, **kwargs)

    def shrinkage(self, group=None, **kwargs):
        """Per-level fits against conditional estimates (:func:`pymlm.plot.shrinkage`)."""
        return _lmer.shrinkage(self._m, group, **kwargs)

    def shrinkage_frame(self, group=None):
        """The data of :meth:`shrinkage`."""
        return _lmer.shrinkage_frame(self._m, group)

    # residuals
    def residuals(self, **kwargs):
        """Residuals against fitted values (:func:`pymlm.plot.residuals_fitted`)."""
        return _lmer.residuals_fitted(self._m, **kwargs)

    def residuals_frame(self, **kwargs):
        """The data of :meth:`residuals`."""
        return _lmer.residuals_fitted_frame(self._m, **kwargs)

    def qq(self, **kwargs):
        """Normal QQ plot of the standardized residuals (:func:`pymlm.plot.residuals_qq`)."""
        return _lmer.residuals_qq(self._m, **kwargs)

    def qq_frame(self):
        """The data of :meth:`qq`."""
        return _lmer.residuals_qq_frame(self._m)

    # profiles and bootstrap
    def zeta(self, which=None, profile=None, **kwargs):
        """Profile zeta plots (:func:`pymlm.plot.zeta`) of ``profile``, or of the model."""
        return _profile.zeta(self._m if profile is None else profile, which, **kwargs)

    def zeta_frame(self, which=None, profile=None, **kwargs):
        """The data of :meth:`zeta`."""
        return _profile.zeta_frame(self._m if profile is None else profile, which, **kwargs)

    def profile_density(self, which=None, profile=None, **kwargs):
        """Densities from the profiles (:func:`pymlm.plot.profile_density`)."""
        return _profile.profile_density(self._m if profile is None else profile, which, **kwargs)

    def profile_density_frame(self, which=None, profile=None, **kwargs):
        """The data of :meth:`profile_density`."""
        return _profile.profile_density_frame(
            self._m if profile is None else profile, which, **kwargs
        )

    def _boot(self, ci, nsim, seed):
        if ci is None:
            ci = self._m.confint("boot", nsim=nsim, seed=seed, progress=False)
        return ci

    def boot_density(self, ci=None, nsim: int = 500, seed=None, **kwargs):
        """Densities of bootstrap replicates (:func:`pymlm.plot.boot_density`).

        Without ``ci``, runs ``m.confint("boot", nsim=nsim, seed=seed)`` first.
        """
        return _profile.boot_density(self._boot(ci, nsim, seed), self._m, **kwargs)

    def boot_density_frame(self, ci=None, nsim: int = 500, seed=None, **kwargs):
        """The data of :meth:`boot_density`."""
        return _profile.boot_density_frame(self._boot(ci, nsim, seed), self._m, **kwargs)

    # intervals
    def intervals(self, cis, truth=None, estimates=None, **kwargs):
        """Forest plot of intervals by method (:func:`pymlm.plot.intervals`).

        ``estimates`` defaults to the model's: sds, correlations, sigma and
        fixed effects in the intervals' naming.
        """
        return _intervals.intervals(cis, truth, self._estimates(estimates), **kwargs)

    def intervals_frame(self, cis, truth=None, estimates=None):
        """The data of :meth:`intervals`."""
        return _intervals.intervals_frame(cis, truth, self._estimates(estimates))

    def _estimates(self, estimates):
        if estimates is not None:
            return estimates
        import pandas as pd

        pr = self._m.problem
        return pd.Series(pr.estimates(), index=pr.param_names)


class GamPlots:
    """Plots of a GAM: ``b.plot()`` (the smooths, mgcv's ``plot(b)``), ``b.plot.check()``...

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pymlm as ml
    >>> b = ml.gam("y ~ s(x0, bs = 'cr')", ml.datasets.load("gamsim_re").head(400))
    >>> ax = b.plot(residuals=True)
    >>> ax.get_xlabel()
    'x0'
    """

    def __init__(self, model):
        self._b = model

    def __repr__(self) -> str:
        return f"<plots of {self._b!r}: smooths (calling it), check, k_check, vis>"

    def __call__(self, terms=None, **kwargs):
        """Each smooth with its +-2 SE band (mgcv's ``plot.gam``; :func:`pymlm.plot.smooths`)."""
        return _gam.smooths(self._b, terms, **kwargs)

    def smooths(self, terms=None, **kwargs):
        """Each smooth with its +-2 SE band (:func:`pymlm.plot.smooths`)."""
        return _gam.smooths(self._b, terms, **kwargs)

    def smooths_frame(self, terms=None, **kwargs):
        """The data of :meth:`smooths`."""
        return _gam.smooths_frame(self._b, terms, **kwargs)

    def partial_residuals_frame(self, terms=None):
        """Partial residuals of the 1-D smooths (:func:`pymlm.plot.partial_residuals_frame`)."""
        return _gam.partial_residuals_frame(self._b, terms)

    def check(self, **kwargs):
        """mgcv's ``gam.check`` panels (:func:`pymlm.plot.gam_check`)."""
        return _gam.gam_check(self._b, **kwargs)

    gam_check = check

    def check_frame(self, **kwargs):
        """The data of :meth:`check`."""
        return _gam.gam_check_frame(self._b, **kwargs)

    def k_check(self, **kwargs):
        """mgcv's basis dimension table (:func:`pymlm.plot.k_check`)."""
        return _gam.k_check(self._b, **kwargs)

    def vis(self, view=None, **kwargs):
        """Prediction surface over two covariates (mgcv's ``vis.gam``; :func:`pymlm.plot.vis`)."""
        return _gam.vis(self._b, view, **kwargs)

    def vis_frame(self, view=None, **kwargs):
        """The data of :meth:`vis`."""
        return _gam.vis_frame(self._b, view, **kwargs)
