"""GlmerResult: a fitted generalized linear mixed model, with lme4's accessors and printed layout."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from .._validation import as_frame, check_seed
from ..design import Design
from ..errors import DataError, OptionError
from . import _format as _fmt
from ._mixed import (
    MixedResult,
    add_random_draws,
    corr_lines,
    newdata_eta,
    r_formula,
    random_part,
    ranef_frames,
    term_templates,
    terms_for,
    title_lines,
    update_formula,
    varcorr_frame,
    vc_parts,
    warning_lines,
)

__all__ = ["GlmerResult", "GlmerSummary"]

# families whose dispersion is estimated (lme4's useSc): a Residual row in
# VarCorr, t rather than z in the fixed-effects table, one more parameter
_DISPERSION_FAMILIES = ("Gamma", "inverse.gaussian", "gaussian")

_RESIDUAL_TYPES = ("deviance", "pearson", "response", "working")


class GlmerResult(MixedResult):
    """A generalized linear mixed model fitted by :func:`pymlm.glmer`.

    The accessors follow lme4's names (``fixef``, ``ranef``, ``VarCorr`` as
    ``varcorr``, ``theta``...), pandas in and out. The response is held as
    the family sees it: for a binomial model the proportion of successes,
    with the number of trials (times any user weights) as prior weights.

    Parameters
    ----------
    design : Design
    fit : pymlm.fit.glmm.GlmmFit
    data : DataFrame, optional
        The data, kept for :meth:`update`.
    data_name : str, optional
        Shown after ``Data:`` in the summary.
    options : dict
        What :func:`pymlm.glmer` was given (``family``, ``nAGQ``, ``weights``...),
        reused by :meth:`refit` and :meth:`update`.
    refit_design, refit_formula : callable
        The API's fit functions (results never import the API):
        ``refit_design(design, data=, data_name=, **options)`` and
        ``refit_formula(formula, data, data_name=, **options)``.

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...              ml.datasets.load("cbpp"), family="binomial", data_name="cbpp")
    >>> m.fixef.round(2).to_dict()
    {'(Intercept)': -1.4, 'period2': -0.99, 'period3': -1.13, 'period4': -1.58}
    >>> round(m.loglik, 2), m.n_params, m.df_resid
    (-92.03, 5, 51)
    >>> print(m.show().splitlines()[2])
     Family: binomial  ( logit )
    """

    _api_function = "pymlm.glmer()"

    def __init__(self, design: Design, fit, *, data=None, data_name: str | None = None,
                 options: dict | None = None, refit_design=None, refit_formula=None):
        super().__init__(design, fit, fit.tmap, data=data, data_name=data_name, options=options,
                         refit_design=refit_design, refit_formula=refit_formula)

    # ------------------------------------------------------------------ basics
    @property
    def reml(self) -> bool:
        """Always False: GLMMs are fitted by maximum likelihood (lets :func:`pymlm.anova` compare them)."""
        return False

    @property
    def family(self):
        """The statsmodels family (with its link) the model was fitted with."""
        return self.fit.family

    @property
    def family_name(self) -> str:
        """R's name of the family: ``binomial``, ``poisson``, ``Gamma``, ``Negative Binomial(3.3075)``..."""
        return self.fit.family_name

    @property
    def link_name(self) -> str:
        return self.fit.link_name

    @property
    def nAGQ(self) -> int:
        return int(self.fit.nAGQ)

    @property
    def has_dispersion(self) -> bool:
        """Whether the family's dispersion is estimated (Gamma, inverse Gaussian)."""
        return self.family_name in _DISPERSION_FAMILIES

    @property
    def sigma(self) -> float:
        """lme4's ``sigma(m)``: the square root of the dispersion (1 for binomial, Poisson, negative binomial)."""
        return float(np.sqrt(self.fit.dispersion)) if self.has_dispersion else 1.0

    @property
    def nb_theta(self) -> float | None:
        """The negative binomial shape (``getME(m, "glmer.nb.theta")``), None for other families."""
        return self.fit.nb_theta

    @property
    def _vcov(self) -> np.ndarray:
        return np.asarray(self.fit.vcov, dtype=float)

    @property
    def n_params(self) -> int:
        """lme4's ``df`` of the log-likelihood: fixed effects, theta, and the dispersion
        (Gamma, inverse Gaussian) or the negative binomial shape where estimated."""
        extra = int(self.has_dispersion) + int(self.nb_theta is not None)
        return len(self.fit.beta) + len(self.fit.theta) + extra

    # ---------------------------------------------------------- likelihoods
    @property
    def loglik(self) -> float:
        """The log-likelihood on the absolute scale (all constants), for every nAGQ.

        For nAGQ = 0 and 1 it is lme4's ``logLik(m)``; for nAGQ > 1 lme4
        omits the saturated model's log-likelihood, see :attr:`loglik_lme4`.
        """
        return -0.5 * float(self.fit.minus2loglik)

    @property
    def loglik_lme4(self) -> float:
        """lme4's ``logLik(m)``: :attr:`loglik` for nAGQ <= 1; for nAGQ > 1
        lme4's value, which leaves out the log-likelihood of the saturated
        model (mu = y): ``loglik = loglik_lme4 + sum_i log p(y_i | mu_i = y_i)``
        (binomial, Poisson), so that it cannot be compared with a Laplace fit."""
        return -0.5 * float(self.fit.objective_lme4)

    @property
    def deviance(self) -> float:
        """-2 log-likelihood (absolute scale): the ``deviance`` of lme4's
        summary table and of :func:`pymlm.anova`. lme4's ``deviance(m)`` of a
        GLMM is :attr:`conditional_deviance`."""
        return float(self.fit.minus2loglik)

    @property
    def conditional_deviance(self) -> float:
        """lme4's ``deviance(m)`` for a GLMM: the sum of squared deviance
        residuals at the conditional modes (no random-effect penalty)."""
        return float(np.sum(self.residuals("deviance") ** 2))

    # -------------------------------------------------------- random effects
    @cached_property
    def _b(self) -> list[np.ndarray]:
        """Per lme4 term, its ``(l_k, p_k)`` conditional modes on the original scale."""
        b = np.asarray(self.fit.b, dtype=float)
        out, start = [], 0
        for t in self.design.re_terms:
            out.append(b[start:start + t.q].reshape(t.nlevels, t.p))
            start += t.q
        return out

    @property
    def varcorr(self) -> pd.DataFrame:
        """Variance components as lme4's ``as.data.frame(VarCorr(m))``.

        Columns ``grp``, ``var1``, ``var2``, ``vcov`` (variance or covariance)
        and ``sdcor`` (standard deviation or correlation); a ``Residual`` row
        only for families with an estimated dispersion (its variance is the
        dispersion; the components are then scaled by it, as lme4).
        """
        return varcorr_frame(self.design.re_terms, self.tmap, self.fit.theta, self.sigma,
                             residual=self.has_dispersion)

    def get_ranef(self, cond_var: bool = False) -> dict:
        """Conditional modes, and with ``cond_var=True`` their conditional variances.

        Returns
        -------
        dict
            group -> DataFrame of modes; with ``cond_var``, group -> (DataFrame,
            ndarray (l, p, p)) where the array holds lme4's ``condVar`` blocks
            (levels first): the inverse of the Hessian of the penalized
            deviance in b at the modes, given theta and beta.
        """
        blocks = [np.asarray(v, dtype=float) for v in self.fit.cond_var] if cond_var else None
        return ranef_frames(self.design.re_terms, self._b, blocks)

    # ---------------------------------------------------------- predictions
    @property
    def _y(self) -> np.ndarray:
        return np.asarray(self.fit.y, dtype=float)

    @property
    def _mu(self) -> np.ndarray:
        return np.asarray(self.fit.mu, dtype=float)

    @property
    def _prior_weights(self) -> np.ndarray:
        return np.asarray(self.fit.prior_weights, dtype=float)

    @property
    def fitted(self) -> np.ndarray:
        """Fitted means on the response scale (proportions for a binomial model), lme4's ``fitted(m)``."""
        return self._mu.copy()

    def residuals(self, type: str = "deviance", scaled: bool = False) -> np.ndarray:
        """Residuals, as lme4's ``residuals(m, type)``.

        Parameters
        ----------
        type : {"deviance", "pearson", "response", "working"}
            ``"deviance"`` (the default, as lme4 for GLMMs): sign(y - mu)
            sqrt(w d(y, mu)) with d the family's unit deviance; ``"pearson"``:
            (y - mu) sqrt(w / V(mu)); ``"response"``: y - mu; ``"working"``:
            (y - mu) g'(mu), the residual of the working response. w are the
            prior weights (binomial: the numbers of trials).
        scaled : bool
            Divide by :attr:`sigma` (lme4's ``scaled=TRUE``).

        Returns
        -------
        ndarray (n,)

        Examples
        --------
        >>> import pymlm as ml
        >>> m = ml.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", ml.datasets.load("cbpp"))
        >>> m.residuals("pearson")[:3].round(1).tolist()
        [-1.3, 1.1, 2.9]
        """
        if type not in _RESIDUAL_TYPES:
            raise OptionError(f"type must be one of {list(_RESIDUAL_TYPES)}; got {type!r}")
        y, mu, w = self._y, self._mu, self._prior_weights
        fam = self.family
        if type == "response":
            r = y - mu
        elif type == "working":
            r = (y - mu) * fam.link.deriv(mu)
        elif type == "pearson":
            r = (y - mu) * np.sqrt(w / fam.variance(mu))
        else:
            r = np.asarray(fam.resid_dev(y, mu, var_weights=w), dtype=float)
        return r / self.sigma if scaled else r

    def _eta_fitted_rows(self, idx) -> np.ndarray:
        """The linear predictor on the fitted rows with the random terms ``idx`` only."""
        d = self.design
        if len(idx) == len(d.re_terms):
            return np.asarray(self.fit.eta, dtype=float).copy()
        eta = np.asarray(d.X @ self.fit.beta).ravel() + np.asarray(self.fit.offset, dtype=float)
        terms = [d.re_terms[k] for k in idx]
        return eta + random_part(self._b, idx, [t.codes for t in terms], [t.X for t in terms], d.n)

    def predict(self, newdata=None, type: str = "link", re_form=None, allow_new_levels: bool = False) -> np.ndarray:
        """Predictions on the link or the response scale (lme4's ``predict``).

        Parameters
        ----------
        newdata : DataFrame, optional
            Default: the fitted rows.
        type : {"link", "response"}
            The linear predictor (the default, as lme4) or the mean.
        re_form : None, "~0" / NA or str
            Random effects to include: all (``None``), none (``"~0"``,
            ``"NA"``, NaN), or those of a formula such as ``"~(1 | herd)"``.
        allow_new_levels : bool
            Levels not seen in fitting predict at the population value (their
            random effects are 0); otherwise they raise an error naming them.

        Returns
        -------
        ndarray (n,)

        Raises
        ------
        DataError
            New levels without ``allow_new_levels``; a column is missing.
        OptionError
            An unknown ``type``.

        Examples
        --------
        >>> import pandas as pd
        >>> import pymlm as ml
        >>> m = ml.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", ml.datasets.load("cbpp"))
        >>> nd = pd.DataFrame({"period": ["1", "4"], "herd": ["1", "new"]})
        >>> m.predict(nd, type="response", allow_new_levels=True).round(2).tolist()
        [0.31, 0.05]
        """
        if type not in ("link", "response"):
            raise OptionError(f"type must be 'link' or 'response'; got {type!r}")
        idx = terms_for(self.design.re_terms, re_form)
        if newdata is None:
            eta = self._eta_fitted_rows(idx)
        else:
            nd = as_frame(newdata, "newdata")
            eta = newdata_eta(self.design, np.asarray(self.fit.beta, dtype=float), self._b, nd, idx,
                              allow_new_levels)
            off = self.options.get("offset")
            if isinstance(off, str):
                if off not in nd.columns:
                    raise DataError(f"newdata has no column {off!r} (the offset of the fit)")
                eta = eta + nd[off].to_numpy(dtype=float)
        return self.family.link.inverse(eta) if type == "response" else eta

    def simulate(self, nsim: int = 1, seed=None) -> pd.DataFrame:
        """Simulate responses from the fitted model (lme4's ``simulate``).

        Random effects are drawn from N(0, sigma^2 T_k T_k') per level, the
        means from the inverse link, and the responses from the family:
        binomial proportions of the prior weights' numbers of trials, Poisson
        and negative binomial counts, Gamma and inverse Gaussian values with
        the fitted dispersion. The same seed gives the same draws.

        Returns
        -------
        DataFrame (n, nsim), columns ``sim_1``..., on the scale of the fitted
        response (binomial: proportions).
        """
        if isinstance(nsim, bool) or not isinstance(nsim, (int, np.integer)) or nsim < 1:
            raise OptionError(f"nsim must be a positive integer; got {nsim!r}")
        rng = np.random.default_rng(check_seed(seed))
        d = self.design
        base = np.asarray(d.X @ self.fit.beta).ravel() + np.asarray(self.fit.offset, dtype=float)
        eta = add_random_draws(np.repeat(base[:, None], nsim, axis=1), d.re_terms,
                               term_templates(self.tmap, self.fit.theta, d.re_terms), self.sigma, rng)
        mu = self.family.link.inverse(eta)
        from ..inference._glmm import draw_response

        Y = draw_response(self.family_name, mu, self._prior_weights[:, None], self.fit.dispersion, self.nb_theta, rng)
        return pd.DataFrame(Y, columns=[f"sim_{i + 1}" for i in range(nsim)])

    # -------------------------------------------------------------- refits
    def refit(self, newresp) -> GlmerResult:
        """The same model fitted to a new response (lme4's ``refit``).

        ``newresp`` has the shape of the design's response: one value per
        row, or for a ``cbind(successes, failures)`` response a two-column
        array (or one proportion per row, with the fit's numbers of trials).
        """
        fit_design = self._api("refit", self._refit_design)
        y_old = np.asarray(self.design.y, dtype=float)
        y = np.asarray(newresp, dtype=float)
        if y_old.ndim == 2 and y.ndim == 1:
            trials = y_old.sum(axis=1)
            y = np.column_stack([y * trials, (1.0 - y) * trials])
        if y.shape != y_old.shape:
            raise DataError(f"newresp has shape {y.shape}; the model's response has shape {y_old.shape}")
        if not np.isfinite(y).all():
            raise DataError("newresp contains NaN or infinite values")
        design = replace(self.design, y=y)
        # the design carries the prior weights; a negative binomial fit estimates its shape again
        opts = {k: v for k, v in self.options.items() if k != "weights"}
        if self.nb_theta is not None:
            opts.setdefault("nb", True)
        return fit_design(design, data=self._data, data_name=self.data_name, **opts)

    def update(self, formula: str | None = None, data=None, **kwargs) -> GlmerResult:
        """Refit with a changed formula, data or options (lme4's ``update``).

        A ``.`` in the new formula stands for the old side: ``". ~ . + x"``;
        keywords (``nAGQ=``, ``family=``...) replace the fit's options.
        """
        glmer = self._api("update", self._refit_formula)
        new_formula = self.formula if formula is None else update_formula(self.formula, formula)
        if data is None:
            if self._data is None:
                raise DataError("this fit does not keep its data; pass data= to update()")
            data = self._data
        opts = dict(self.options)
        if not isinstance(opts.get("family"), str):  # the fitted family (statsmodels, with its link)
            opts["family"] = self.family
        opts.update(kwargs)
        return glmer(new_formula, data, data_name=self.data_name, **opts)

    # ------------------------------------------------------------ inference
    @cached_property
    def problem(self):
        """The fit-level view of this model used by the interval methods
        (:class:`pymlm.inference.GlmmInference`)."""
        from ..fit.glmm import problem_from_design
        from ..inference import GlmmInference

        fam = self.fit.glm_family if self.fit.glm_family is not None else self.family
        rows, _ = problem_from_design(self.design, fam)
        return GlmmInference(rows, self.fit, list(self.design.X_names))

    def confint(self, parm=None, level: float = 0.95, method: str = "Wald", seed=None, n_jobs: int = 1,
                progress: bool = True, **options) -> pd.DataFrame:
        """Confidence intervals, as lme4's ``confint`` of a ``glmer`` fit.

        Parameters
        ----------
        parm : None, str or list of str
            Rows to return (lme4's ``parm``): parameter names (``.sig01``...,
            fixed effects), ``"theta_"`` (the random-effect parameters) or
            ``"beta_"`` (the fixed effects); default all. A profile is
            computed for these rows only. A method name here (``"profile"``)
            is taken as ``method``, so that ``m.confint("profile")`` reads
            as :meth:`LmerResult.confint <pymlm.results.lmer.LmerResult.confint>`.
        level : float
            Confidence level in (0, 1).
        method : {"Wald", "profile", "boot", "blb", "split"}
            Case-insensitive. ``"Wald"`` (the default here: it costs
            nothing): beta -/+ z se from the fit's covariance (the exact
            Hessian of the objective unless the fit used ``se="RX"``), NaN
            for the variance parameters as lme4. ``"profile"``: the signed
            root deviance of the Laplace / AGQ objective, each parameter
            fixed on a grid and the others re-optimized, inverted by a spline
            (lme4's ``profile.merMod``). ``"boot"``: parametric bootstrap,
            refits warm-started at the estimates and conditional modes
            (``nsim``, default 500; ``type``). ``"blb"``: bag of little
            bootstraps over the clusters of the single grouping factor
            (``n_subsets``, ``n_boots``, ``subset_exponent``...).
            ``"split"``: split-sample estimates over a random partition of
            the groups (``n_splits``; ``mode="independent"`` only).
        seed : int, optional
            Seed of the resampling methods; results do not depend on ``n_jobs``.
        n_jobs : int
            Worker processes of the resampling methods and of the profile.
        progress : bool
            A progress bar on long runs.
        **options
            Options of the method.

        Returns
        -------
        DataFrame
            Indexed by lme4's names (``.sig01``..., ``.sigma`` for a family
            with a dispersion, the fixed effects); columns such as ``"2.5 %"``,
            ``"97.5 %"``. ``attrs`` hold the method, settings, seed, seconds
            and, for resampling methods, the replicate table.

        Raises
        ------
        OptionError
            Unknown method, option or parameter name; a bad level.

        Examples
        --------
        >>> import pymlm as ml
        >>> m = ml.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", ml.datasets.load("cbpp"))
        >>> m.confint().round(2).loc["period2"].tolist()
        [-1.59, -0.39]
        """
        from ..inference import METHODS, confint
        from ..inference.profile import select_params

        pr = self.problem
        if isinstance(parm, str) and parm.lower() in METHODS and parm not in pr.param_names:
            # m.confint("profile"), as LmerResult.confint takes the method first
            parm, method = None, parm
        rows = None if parm is None else select_params(pr, parm, "parm")
        if isinstance(method, str) and method.lower() == "profile" and rows is not None:
            options.setdefault("which", [pr.param_names[i] for i in rows])
        out = confint(pr, method=method, level=level, seed=seed, n_jobs=n_jobs, progress=progress, **options)
        if rows is not None:
            attrs = dict(out.attrs)
            out = out.iloc[rows]
            out.attrs.update(attrs)
        return out

    def profile(self, n_jobs: int = 1, progress: bool = False, **options):
        """The likelihood profile of each parameter (lme4's ``profile()`` of a glmer fit).

        Options as :func:`pymlm.inference.profile.profile` (``which``,
        ``alphamax``, ``maxpts``, ``delta``...). The profile is of the fit's
        objective (Laplace, or AGQ with the fit's nAGQ).

        Returns
        -------
        pymlm.inference.profile.LmmProfile
            ``traces`` per parameter; ``.confint(level)`` the intervals.
        """
        from ..inference.profile import profile

        return profile(self.problem, n_jobs=n_jobs, progress=progress, **options)

    # -------------------------------------------------------------- status
    @property
    def is_singular(self) -> bool:
        """A diagonal element of theta on its bound of 0 (lme4's ``isSingular``)."""
        return bool(self.fit.singular)

    # ------------------------------------------------------------- summary
    def coef_table(self) -> pd.DataFrame:
        """The fixed-effects table: Estimate, Std. Error, z value (t value when
        the dispersion is estimated, as lme4) and Pr(>|z|) from the normal distribution."""
        est = self.fixef
        se = self.fixef_se
        z = est / se
        stat = "t value" if self.has_dispersion else "z value"
        return pd.DataFrame({"Estimate": est, "Std. Error": se, stat: z,
                             "Pr(>|z|)": 2.0 * stats.norm.sf(np.abs(z))})

    def summary(self, correlation: bool | None = None) -> GlmerSummary:
        """lme4's ``summary()``: tables as DataFrames, printable.

        Parameters
        ----------
        correlation : bool, optional
            Print the correlation of the fixed effects; by default only when
            there are at most 12 fixed effects, as lme4.
        """
        if correlation is not None and not isinstance(correlation, (bool, np.bool_)):
            raise OptionError(f"correlation must be None, True or False; got {correlation!r}")
        return GlmerSummary(self, correlation=correlation)

    def show(self) -> str:
        """lme4's ``print(m)``: the short form (title, family, criteria to 4
        decimals, random-effect standard deviations, the fixed effects)."""
        return "\n".join(GlmerSummary(self).brief_lines())

    def __str__(self) -> str:
        return str(self.summary())

    def __repr__(self) -> str:
        return (f"<GlmerResult {self.family_name}({self.link_name}) nAGQ={self.nAGQ}: {self.formula!r}, "
                f"n={self.nobs}, logLik {self.loglik:.4f}>")


@dataclass
class GlmerSummary:
    """lme4's summary of a generalized linear mixed model.

    ``str()`` gives lme4's ``print(summary(m))`` line by line: the method
    (Laplace or adaptive Gauss-Hermite quadrature), the family and link, AIC,
    BIC, log-likelihood, deviance (-2 log-likelihood) and residual df, the
    scaled Pearson residuals, the random effects, the fixed effects with
    Wald z tests, and their correlation. The log-likelihood is on the
    absolute scale for every nAGQ (lme4's nAGQ > 1 value leaves out the
    saturated model's, see :attr:`GlmerResult.loglik_lme4`).

    Attributes
    ----------
    fixed : DataFrame
        Estimate, Std. Error, z value (t value), Pr(>|z|).
    random : DataFrame
        Groups, Name, Variance, Std.Dev., Corr.
    correlation : bool or None
    """

    model: GlmerResult
    correlation: bool | None = None
    fixed: pd.DataFrame = field(init=False)
    random: pd.DataFrame = field(init=False)

    def __post_init__(self):
        self.fixed = self.model.coef_table()
        self.random = self._random_table()

    def _random_table(self) -> pd.DataFrame:
        m = self.model
        rows = []
        vc = m.varcorr
        for (name, sd, C), t in zip(vc_parts(m.design.re_terms, vc), m.design.re_terms):
            for i in range(t.p):
                rows.append((name if i == 0 else "", t.cnms[i], sd[i] ** 2, sd[i], [float(C[i, j]) for j in range(i)]))
        if m.has_dispersion:
            rows.append(("Residual", "", m.sigma ** 2, m.sigma, []))
        return pd.DataFrame(rows, columns=["Groups", "Name", "Variance", "Std.Dev.", "Corr"])

    # ------------------------------------------------------------- printing
    def _head_lines(self) -> list[str]:
        """Title, family, formula, data (lme4's ``.prt.methTit``, ``.prt.family``, ``.prt.call``)."""
        m = self.model
        how = ("Laplace Approximation" if m.nAGQ == 1 else
               f"Adaptive Gauss-Hermite Quadrature, nAGQ = {m.nAGQ}")
        out = title_lines(f"Generalized linear mixed model fit by maximum likelihood ({how})", "glmerMod")
        out += _fmt.cat_fill([" Family:", m.family_name, f" ( {m.link_name} )"])
        out += _fmt.cat_fill(["Formula:"] + _fmt.deparse_lines(r_formula(m.design)))
        if m.data_name:
            out += _fmt.cat_fill(["   Data:", str(m.data_name)])
        for label, key in (("Weights:", "weights"), (" Offset:", "offset")):
            if isinstance(m.options.get(key), str):
                out += _fmt.cat_fill([label, m.options[key]])
        return out

    def _aic_lines(self, digits: int) -> list[str]:
        m = self.model
        t4 = _fmt.round_r([m.aic, m.bic, m.loglik, m.deviance, m.df_resid], digits)
        vals = _fmt.format_real(t4)
        vals[4] = _fmt.format_number(t4[4])
        return _fmt.print_named(vals, ["AIC", "BIC", "logLik", "deviance", "df.resid"])

    def _random_lines(self, comp: str | None = None) -> list[str]:
        """lme4's ``formatVC`` table, both columns or only ``comp`` (``"Std.Dev."``)."""
        m = self.model
        terms = m.design.re_terms
        groups, sds, corrs = (list(x) for x in zip(*vc_parts(terms, m.varcorr)))
        cols, cells = _fmt.format_vc(groups, [list(t.cnms) for t in terms], sds, corrs,
                                     m.sigma if m.has_dispersion else None, digits=4)
        if comp is not None:
            drop = cols.index("Variance" if comp == "Std.Dev." else "Std.Dev.")
            cols = cols[:drop] + cols[drop + 1:]
            cells = [row[:drop] + row[drop + 1:] for row in cells]
        return ["Random effects:"] + _fmt.print_matrix(cells, [""] * len(cells), cols)

    def _groups_lines(self) -> list[str]:
        m = self.model
        groups = "; ".join(f"{g}, {n}" for g, n in m.ngroups.items())
        return _fmt.cat_fill([f"Number of obs: {m.nobs}, groups: ", groups])

    def lines(self) -> list[str]:
        """The printed summary, one string per line (lme4's ``print(summary(m))``)."""
        m = self.model
        out = self._head_lines() + [""]
        out += self._aic_lines(1) + [""]
        q = np.quantile(m.residuals(type="pearson", scaled=True), [0, 0.25, 0.5, 0.75, 1.0])
        out.append("Scaled residuals: ")
        out += _fmt.print_named(_fmt.format_real(_fmt.zapsmall(q, 5), 4), ["Min", "1Q", "Median", "3Q", "Max"])
        out.append("")
        out += self._random_lines()
        out += self._groups_lines()
        f = self.fixed
        if len(f):
            out += ["", "Fixed effects:"]
            out += _fmt.print_coefmat(f.to_numpy(dtype=float), list(f.index), list(f.columns), digits=4)
            out += corr_lines(m._vcov, m.design.X_names, self.correlation)
        out += warning_lines(m.design, m.fit.opt, m.messages)
        if m.n_dropped:
            s = "s" if m.n_dropped != 1 else ""
            out.append(f"({m.n_dropped} observation{s} deleted due to missingness)")
        return out

    def brief_lines(self) -> list[str]:
        """lme4's ``print(m)``, one string per line."""
        m = self.model
        out = self._head_lines()
        out += self._aic_lines(4)
        out += self._random_lines("Std.Dev.")
        out += self._groups_lines()
        fe = m.fixef
        if len(fe):
            out.append("Fixed Effects:")
            out += _fmt.print_named_gap(_fmt.format_real(fe.to_numpy(), 4), list(fe.index), gap=2)
        else:
            out.append("No fixed effect coefficients")
        out += warning_lines(m.design, m.fit.opt, m.messages, brief=True)
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    __repr__ = __str__
