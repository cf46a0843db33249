"""Plots of fitted models and intervals (matplotlib, the ``plot`` extra).

Every plot is two functions: ``name_frame(...)`` computes the tidy
DataFrame that is drawn (no matplotlib needed), ``name(..., ax=None)``
draws it and returns the matplotlib Axes, or the Figure when the plot has
several panels. Fitted models expose them as methods: ``m.plot.caterpillar()``,
``m.plot.qq()``, ``b.plot()`` (the smooths, as mgcv's ``plot(b)``),
``b.plot.check()``...

Linear mixed models (lme4, MixedModelsMakie):

- :func:`caterpillar` -- conditional modes with intervals (``dotplot(ranef)``)
- :func:`ranef_qq` -- normal QQ plot of the modes (``qqmath(ranef)``)
- :func:`residuals_fitted` -- residuals vs fitted (``plot.merMod``)
- :func:`residuals_qq` -- QQ plot of standardized residuals (``qqmath(m)``)
- :func:`shrinkage` -- per-level fits vs conditional estimates (``shrinkageplot``)
- :func:`zeta` -- profile zeta plots (``xyplot(profile(m))``)
- :func:`profile_density` -- densities from the profiles (``densityplot(profile(m))``)
- :func:`boot_density` -- densities of bootstrap replicates, singular refits as a spike
- :func:`intervals` -- forest plot of intervals by method, with the truth

GAMs (mgcv, gratia):

- :func:`smooths` -- each smooth with its band (``plot.gam``)
- :func:`gam_check` -- the four panels of ``gam.check``; :func:`k_check` its table
- :func:`vis` -- prediction surface over two covariates (``vis.gam``)

matplotlib is imported only when something is drawn; a missing matplotlib
raises an ImportError that names ``pip install 'pymlm[plot]'``. Colours
follow the Okabe-Ito palette (:data:`OKABE_ITO`).
"""

from ._accessor import GamPlots, LmerPlots
from ._gam import (
    gam_check,
    gam_check_frame,
    k_check,
    partial_residuals_frame,
    smooths,
    smooths_frame,
    vis,
    vis_frame,
)
from ._intervals import intervals, intervals_frame
from ._lmer import (
    caterpillar,
    caterpillar_frame,
    ranef_qq,
    ranef_qq_frame,
    residuals_fitted,
    residuals_fitted_frame,
    residuals_qq,
    residuals_qq_frame,
    shrinkage,
    shrinkage_frame,
)
from ._profile import (
    boot_density,
    boot_density_frame,
    kde,
    profile_density,
    profile_density_frame,
    zeta,
    zeta_frame,
)
from ._style import OKABE_ITO

__all__ = [
    "OKABE_ITO",
    "GamPlots",
    "LmerPlots",
    "boot_density",
    "boot_density_frame",
    "caterpillar",
    "caterpillar_frame",
    "gam_check",
    "gam_check_frame",
    "intervals",
    "intervals_frame",
    "k_check",
    "kde",
    "partial_residuals_frame",
    "profile_density",
    "profile_density_frame",
    "ranef_qq",
    "ranef_qq_frame",
    "residuals_fitted",
    "residuals_fitted_frame",
    "residuals_qq",
    "residuals_qq_frame",
    "shrinkage",
    "shrinkage_frame",
    "smooths",
    "smooths_frame",
    "vis",
    "vis_frame",
    "zeta",
    "zeta_frame",
]
