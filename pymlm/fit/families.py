"""GLM families for the mixed-model fitters: statsmodels' family and link objects with R's names.

A family is given as a statsmodels :class:`~statsmodels.genmod.families.Family`
instance (its link inside) or as R's name (``"binomial"``, ``"poisson"``,
``"Gamma"``, ``"inverse.gaussian"``, with R's default links). The mean,
variance and deviance come from statsmodels; what R adds on top, and lme4
uses, is the family's ``aic``: -2 times the log-likelihood with every
constant (binomial log-choose terms, log y! for counts, the Gamma and
inverse-Gaussian densities at the dispersion deviance / sum(weights)), which
:meth:`GlmFamily.minus2loglik` repeats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import statsmodels.genmod.families as smf
from scipy import special

from ..errors import OptionError

__all__ = ["FAMILY_NAMES", "GAM_FAMILY_NAMES", "GlmFamily", "resolve_family"]

FAMILY_NAMES = ("binomial", "poisson", "Gamma", "inverse.gaussian")

_LINK_NAMES = {
    smf.links.Logit: "logit", smf.links.Probit: "probit", smf.links.CLogLog: "cloglog",
    smf.links.Log: "log", smf.links.Identity: "identity", smf.links.InversePower: "inverse",
    smf.links.InverseSquared: "1/mu^2", smf.links.Sqrt: "sqrt", smf.links.Cauchy: "cauchit",
}

_LINKS = {"logit": smf.links.Logit, "probit": smf.links.Probit, "cloglog": smf.links.CLogLog,
          "log": smf.links.Log, "identity": smf.links.Identity, "inverse": smf.links.InversePower,
          "1/mu^2": smf.links.InverseSquared, "sqrt": smf.links.Sqrt, "cauchit": smf.links.Cauchy}

_DEFAULT = {"binomial": (smf.Binomial, "logit"), "poisson": (smf.Poisson, "log"),
            "Gamma": (smf.Gamma, "inverse"), "inverse.gaussian": (smf.InverseGaussian, "1/mu^2")}

# mu is kept this far inside (0, 1) for the binomial, above 0 for the others
EPS_MU = 1e-15


def _link_name(link) -> str:
    for cls, name in _LINK_NAMES.items():
        if type(link) is cls:
            return name
    return type(link).__name__.lower()


@dataclass(frozen=True, eq=False)
class GlmFamily:
    """A GLM family as the GLMM fitter uses it.

    Attributes
    ----------
    family : statsmodels.genmod.families.Family
    name : str
        R's name: ``"binomial"``, ``"poisson"``, ``"Gamma"``, ``"inverse.gaussian"``,
        ``"Negative Binomial(1.234)"``.
    link_name : str
        R's name of the link: ``"logit"``, ``"log"``, ``"inverse"``...
    nb_theta : float or None
        The negative binomial's shape (variance mu + mu^2 / theta).
    """

    family: object
    name: str
    link_name: str
    nb_theta: float | None = None

    @property
    def kind(self) -> str:
        return "negative.binomial" if self.nb_theta is not None else self.name

    @property
    def has_dispersion(self) -> bool:
        """Gamma and inverse Gaussian estimate a dispersion; the others fix it at 1."""
        return self.kind in ("Gamma", "inverse.gaussian")

    @property
    def canonical(self) -> bool:
        return (self.kind, self.link_name) in (("binomial", "logit"), ("poisson", "log"), ("Gamma", "inverse"),
                                               ("inverse.gaussian", "1/mu^2"))

    def linkinv(self, eta: np.ndarray) -> np.ndarray:
        mu = self.family.link.inverse(eta)
        if self.kind == "binomial":
            return np.clip(mu, EPS_MU, 1.0 - EPS_MU)
        return np.maximum(mu, EPS_MU)

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        """d mu / d eta."""
        d = self.family.link.inverse_deriv(eta)
        return np.where(np.abs(d) < 1e-300, 1e-300, d)

    def link(self, mu: np.ndarray) -> np.ndarray:
        return self.family.link(mu)

    def variance(self, mu: np.ndarray) -> np.ndarray:
        return self.family.variance(mu)

    def dev_resid(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """Squared deviance residuals, ``(n,)`` (R's ``family$dev.resids``)."""
        k = self.kind
        if k == "binomial":
            with np.errstate(divide="ignore", invalid="ignore"):
                a = np.where(y > 0, y * np.log(y / mu), 0.0)
                b = np.where(y < 1, (1.0 - y) * np.log((1.0 - y) / (1.0 - mu)), 0.0)
            return 2.0 * wt * (a + b)
        if k == "poisson":
            with np.errstate(divide="ignore", invalid="ignore"):
                a = np.where(y > 0, y * np.log(y / mu), 0.0)
            return 2.0 * wt * (a - (y - mu))
        return wt * self.family._resid_dev(y, mu)

    def minus2loglik(self, y, mu, wt, trials=None, dev: float | None = None) -> float:
        """-2 log-likelihood with every constant (R's ``family$aic`` without its + 2 k).

        Parameters
        ----------
        y, mu, wt : ndarray (n,)
            Response as the family uses it (binomial: proportions), means, prior weights.
        trials : ndarray (n,), optional
            Binomial trials per row (R's ``n``); default the prior weights.
        dev : float, optional
            The summed deviance, for the dispersion of Gamma and inverse Gaussian.
        """
        k = self.kind
        pos = wt > 0
        y, mu, wt = y[pos], mu[pos], wt[pos]
        if k == "binomial":
            m = wt if trials is None else np.asarray(trials, dtype=float)[pos]
            m = m if np.any(m > 1) else wt
            s = np.round(m * y)
            mm = np.round(m)
            ll = (special.gammaln(mm + 1) - special.gammaln(s + 1) - special.gammaln(mm - s + 1)
                  + special.xlogy(s, mu) + special.xlog1py(mm - s, -mu))
            return float(-2.0 * np.sum(np.where(m > 0, wt / m, 0.0) * ll))
        if k == "poisson":
            ll = special.xlogy(y, mu) - mu - special.gammaln(y + 1)
            return float(-2.0 * np.sum(wt * ll))
        if k == "negative.binomial":
            th = self.nb_theta
            ll = (special.gammaln(th + y) - special.gammaln(th) - special.gammaln(y + 1)
                  + th * np.log(th / (th + mu)) + special.xlogy(y, mu / (th + mu)))
            return float(-2.0 * np.sum(wt * ll))
        if dev is None:
            dev = float(np.sum(self.dev_resid(y, mu, wt)))
        nw = float(np.sum(wt))
        disp = dev / nw
        if k == "Gamma":
            shape = 1.0 / disp
            ll = shape * np.log(shape * y / mu) - shape * y / mu - np.log(y) - special.gammaln(shape)
            return float(-2.0 * np.sum(wt * ll) + 2.0)
        # inverse.gaussian, as R's inverse.gaussian()$aic
        return float(nw * (np.log(disp * 2.0 * np.pi) + 1.0) + 3.0 * np.sum(np.log(y) * wt) + 2.0)

    def check_response(self, y: np.ndarray, wt: np.ndarray) -> str | None:
        """Why ``y`` cannot come from this family, or None."""
        k = self.kind
        pos = wt > 0
        yy = y[pos]
        if k == "binomial" and (np.any(yy < 0) or np.any(yy > 1)):
            return "a binomial response must be 0/1, a proportion (with weights) or cbind(successes, failures)"
        if k in ("poisson", "negative.binomial") and np.any(yy < 0):
            return f"a {self.name} response must be non-negative counts"
        if k in ("Gamma", "inverse.gaussian") and np.any(yy <= 0):
            return f"a {self.name} response must be positive"
        return None

    def start_mu(self, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """R's ``mustart``: (w y + 0.5) / (w + 1) for the binomial, y + 0.1 for counts, y else."""
        k = self.kind
        if k == "binomial":
            return (wt * y + 0.5) / (wt + 1.0)
        if k in ("poisson", "negative.binomial"):
            return y + 0.1
        return np.maximum(y, EPS_MU)


# the families gam() takes by name (any statsmodels family object is taken too)
GAM_FAMILY_NAMES = ("gaussian", "binomial", "poisson", "Gamma")
_ANY_FAMILY_NAMES = {"Gaussian": "gaussian", "Binomial": "binomial", "Poisson": "poisson", "Gamma": "Gamma",
                     "InverseGaussian": "inverse.gaussian", "Tweedie": "Tweedie"}


def _resolve_gam_family(family) -> GlmFamily:
    if isinstance(family, str):
        key = {f.lower(): f for f in GAM_FAMILY_NAMES}.get(family.lower())
        if key is None:
            raise OptionError(f"family must be one of {', '.join(repr(f) for f in GAM_FAMILY_NAMES)}; got {family!r}")
        cls = smf.Gaussian if key == "gaussian" else _DEFAULT[key][0]
        fam = cls()
    elif isinstance(family, smf.Family):
        fam = family
    else:
        raise OptionError("family must be a name ('gaussian', 'binomial', 'poisson', 'Gamma') or a statsmodels "
                          f"family such as sm.families.Gamma(sm.families.links.Log()); got {family!r}")
    if isinstance(fam, smf.NegativeBinomial):
        return GlmFamily(fam, "negative.binomial", _link_name(fam.link), 1.0 / float(fam.alpha))
    return GlmFamily(fam, _ANY_FAMILY_NAMES.get(type(fam).__name__, type(fam).__name__.lower()), _link_name(fam.link))


def resolve_family(family, link: str | None = None, *, engine: str = "glmer") -> GlmFamily:
    """A :class:`GlmFamily` from R's name or a statsmodels family instance: the one family resolver.

    Parameters
    ----------
    family : str or statsmodels Family
        ``"binomial"``, ``"poisson"``, ``"Gamma"``, ``"inverse.gaussian"``
        (case-insensitive; ``"gaussian"`` belongs to :func:`pymlm.lmer`), or
        e.g. ``sm.families.Binomial(link=sm.families.links.Probit())``.
    link : str, optional
        R's link name, with a family given by name.
    engine : {"glmer", "gam"}
        ``"gam"``: the names :data:`GAM_FAMILY_NAMES` (``"gaussian"`` included)
        and any statsmodels family object, as :func:`pymlm.gam` takes them.

    Raises
    ------
    OptionError
        An unknown family or link, or (glmer) the Gaussian family.
    """
    if engine == "gam":
        if link is not None:
            raise OptionError("gam() takes the link inside a statsmodels family object; drop the link argument")
        return _resolve_gam_family(family)
    if engine != "glmer":
        raise OptionError(f"engine must be 'glmer' or 'gam'; got {engine!r}")
    if isinstance(family, smf.Family):
        if link is not None:
            raise OptionError("link is given inside a statsmodels family object; drop the link argument")
        if isinstance(family, smf.NegativeBinomial):
            th = 1.0 / float(family.alpha)
            return GlmFamily(family, _nb_name(th), _link_name(family.link), th)
        for name, (cls, _) in _DEFAULT.items():
            if type(family) is cls:
                return GlmFamily(family, name, _link_name(family.link))
        if isinstance(family, smf.Gaussian):
            raise OptionError("the Gaussian family is a linear mixed model: use lmer()")
        raise OptionError(f"family {type(family).__name__} is not supported; use one of {', '.join(FAMILY_NAMES)}")
    if not isinstance(family, str):
        raise OptionError(f"family must be one of {', '.join(repr(f) for f in FAMILY_NAMES)} or a statsmodels "
                          f"family object; got {family!r}")
    key = {f.lower(): f for f in FAMILY_NAMES}.get(family.strip().lower().replace("_", "."))
    if key is None:
        if family.strip().lower() == "gaussian":
            raise OptionError("family='gaussian' is a linear mixed model: use lmer()")
        raise OptionError(f"family must be one of {', '.join(repr(f) for f in FAMILY_NAMES)}; got {family!r}")
    cls, default_link = _DEFAULT[key]
    link = default_link if link is None else link
    if link not in _LINKS:
        raise OptionError(f"link must be one of {', '.join(repr(k) for k in _LINKS)}; got {link!r}")
    return GlmFamily(cls(link=_LINKS[link]()), key, link)


def negative_binomial(theta: float, link: str = "log") -> GlmFamily:
    """The negative binomial family with shape ``theta`` (R's ``MASS::negative.binomial``)."""
    fam = smf.NegativeBinomial(link=_LINKS[link](), alpha=1.0 / float(theta))
    return GlmFamily(fam, _nb_name(theta), link, float(theta))


def _nb_name(theta: float) -> str:
    """R's name: ``paste0("Negative Binomial(", format(round(theta, 4)), ")")``."""
    return f"Negative Binomial({round(float(theta), 4):.7g})"
