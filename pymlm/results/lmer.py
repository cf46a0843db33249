"""LmerResult: a fitted linear mixed model, with lme4's accessors and printed layout."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd

from .._validation import as_frame, check_seed
from ..crossprod import CrossProducts
from ..design import Design
from ..errors import DataError, OptionError
from ..fit.lmm import LmmFit, deviance_from_factor
from . import _format as _fmt
from ._mixed import (
    MixedResult,
    corr_lines,
    newdata_eta,
    random_part,
    ranef_frames,
    terms_for,
    title_lines,
    varcorr_frame,
    vc_parts,
    warning_lines,
)
from ._mixed import r_formula as _r_formula
from ._mixed import update_formula as _update_formula
from ._mixed import varcorr_group_names as _varcorr_group_names
from .lmer_tests import check_ddf as _check_ddf

__all__ = ["LmerResult", "LmerSummary"]


class LmerResult(MixedResult):
    """A linear mixed model fitted by :func:`pymlm.lmer`.

    The accessors follow lme4's names (``fixef``, ``ranef``, ``VarCorr`` as
    ``varcorr``, ``sigma``, ``theta``...), pandas in and out.

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> m.fixef.round(3).to_dict()
    {'(Intercept)': 251.405, 'Days': 10.467}
    >>> round(m.sigma, 3)
    25.592
    """

    _api_function = "pymlm.lmer()"

    def __init__(self, design: Design, fit: LmmFit, *, data=None, data_name: str | None = None,
                 options: dict | None = None, refit_design=None, refit_formula=None):
        # the API's fit functions, given by the API (results never import it):
        # refit_design(design, reml, **options) and refit_formula(formula, data, REML, **options)
        super().__init__(design, fit, fit.evaluator.tmap, data=data, data_name=data_name, options=options,
                         refit_design=refit_design, refit_formula=refit_formula)

    # ------------------------------------------------------------------ basics
    @property
    def crossprod(self) -> CrossProducts:
        """The cross-products the fit was computed from."""
        return self.fit.cp

    @property
    def reml(self) -> bool:
        return self.fit.reml

    @property
    def method(self) -> str:
        return "REML" if self.reml else "ML"

    @property
    def sigma(self) -> float:
        """Residual standard deviation."""
        return self.fit.sigma

    @cached_property
    def _vcov(self) -> np.ndarray:
        return self.fit.vcov_beta()

    @property
    def n_params(self) -> int:
        """Number of parameters: fixed effects, theta and the residual sd (lme4's ``df``)."""
        return len(self.fit.beta) + self.fit.theta.size + 1

    # ---------------------------------------------------------- likelihoods
    @property
    def reml_criterion(self) -> float:
        """The REML criterion (-2 REML log-likelihood) at the estimates."""
        if self.reml:
            return self.fit.deviance
        return float(deviance_from_factor(self.fit.factor, self.crossprod, True))

    @property
    def deviance(self) -> float:
        """-2 log-likelihood (ML). For REML fits: the ML deviance at the REML estimates."""
        if not self.reml:
            return self.fit.deviance
        return float(deviance_from_factor(self.fit.factor, self.crossprod, False))

    @property
    def loglik(self) -> float:
        """The log-likelihood lme4 reports: REML log-likelihood for REML fits."""
        return -0.5 * self.fit.deviance

    # -------------------------------------------------------- random effects
    def _split(self, per_fitted, kind):
        """Per design term, the slice of a per-fitted-term quantity."""
        out = []
        for (g, off), t in zip(self.tmap.where, self.design.re_terms):
            a = per_fitted[g]
            s = slice(off, off + t.p)
            out.append(a[:, s] if kind == "b" else a[s, s] if kind == "T" else a[:, s, s])
        return out

    @cached_property
    def _b(self) -> list[np.ndarray]:
        return self._split(self.fit.factor.b(self.fit.u), "b")

    @cached_property
    def _fitted_Ts(self) -> list[np.ndarray]:
        """T_k of every fitted term, from the theta map at the fit's theta."""
        return self.tmap.templates(self.fit.theta)

    @cached_property
    def _Ts(self) -> list[np.ndarray]:
        """T_k of every lme4 term."""
        return self._split(self._fitted_Ts, "T")

    @property
    def varcorr(self) -> pd.DataFrame:
        """Variance components as lme4's ``as.data.frame(VarCorr(m))``.

        Columns ``grp``, ``var1``, ``var2``, ``vcov`` (variance or covariance)
        and ``sdcor`` (standard deviation or correlation).
        """
        return varcorr_frame(self.design.re_terms, self.tmap, self.fit.theta, self.sigma)

    def get_ranef(self, cond_var: bool = False) -> dict:
        """Conditional modes, and with ``cond_var=True`` their conditional variances.

        Returns
        -------
        dict
            group -> DataFrame of modes; with ``cond_var``, group -> (DataFrame,
            ndarray (l, p, p)) where the array holds lme4's ``postVar`` blocks
            (levels first).
        """
        return ranef_frames(self.design.re_terms, self._b, self._cond_var() if cond_var else None)

    def _cond_var(self) -> list[np.ndarray]:
        """sigma^2 T M^{-1}[lev] T' per term and level (given beta, as lme4's condVar)."""
        Minv = self.fit.factor.minv_diag_blocks()
        s2 = self.sigma ** 2
        full = [s2 * np.einsum("ab,lbc,dc->lad", T, B, T) for T, B in zip(self._fitted_Ts, Minv)]
        return self._split(full, "V")

    # ---------------------------------------------------------- predictions
    def _random_part(self, terms_idx, codes_list, Xs, n: int) -> np.ndarray:
        return random_part(self._b, terms_idx, codes_list, Xs, n)

    @property
    def rows_in_memory(self) -> bool:
        """False for a fit streamed from a source that is not in memory (a Parquet folder...)."""
        return bool(getattr(self.design, "rows_in_memory", True))

    def _need_rows(self, what: str):
        """Refuse what needs the training rows when the fit was streamed, saying how to get it."""
        if self.rows_in_memory:
            return
        source = self.design.source.name
        raise DataError(
            f"{what} need{'s' if not what.endswith('s') else ''} the rows of the data, and this fit streamed them "
            f"from {source!r} without keeping them (memory grows with the groups, not the rows). Get "
            "them batch by batch: m.predict(batch) gives the fitted values of a batch of rows (its response "
            "minus them, the residuals), e.g. for each batch of pymlm.sources.as_source(path).batches(columns); or load "
            "the rows and fit in memory (pandas.read_parquet(path)) for fitted values, residuals, "
            "simulate, refit and the resampling intervals ('boot', 'blb', 'split'). Wald and profile "
            "intervals, the summary, fixef, ranef and anova work on the streamed fit")

    @cached_property
    def _fitted(self) -> np.ndarray:
        self._need_rows("the fitted values")
        d = self.design
        eta = np.asarray(d.X @ self.fit.beta).ravel()
        if d.offset is not None:
            eta = eta + d.offset
        idx = list(range(len(d.re_terms)))
        eta += self._random_part(idx, [t.codes for t in d.re_terms], [t.X for t in d.re_terms], d.n)
        return eta

    @property
    def fitted(self) -> np.ndarray:
        """Fitted values X beta + Z b (+ offset)."""
        return self._fitted.copy()

    def residuals(self, type: str = "response", scaled: bool = False) -> np.ndarray:
        """Residuals: ``"response"`` (y - fitted) or ``"pearson"`` (times sqrt(weights)).

        ``scaled=True`` divides by sigma (lme4's ``residuals(m, scaled=TRUE)``).
        """
        if type not in ("response", "pearson"):
            raise OptionError(f"type must be 'response' or 'pearson'; got {type!r}")
        self._need_rows("residuals")
        r = self.design.y - self._fitted
        if type == "pearson" and self.design.weights is not None:
            r = r * np.sqrt(self.design.weights)
        return r / self.sigma if scaled else r

    def _terms_for(self, re_form) -> list[int]:
        return terms_for(self.design.re_terms, re_form)

    def predict(self, newdata=None, re_form=None, allow_new_levels: bool = False, se_fit: bool = False):
        """Predictions on the response scale.

        Parameters
        ----------
        newdata : DataFrame, optional
            Default: the fitted rows.
        re_form : None, "~0" or str
            Random effects to include: all (``None``), none (``"~0"``), or
            those of a formula such as ``"~(1 | Subject)"``.
        allow_new_levels : bool
            Levels not seen in fitting predict at the population value (their
            random effects are 0); otherwise they raise an error naming them.
        se_fit : bool
            Also return standard errors. Population-level predictions
            (``re_form="~0"``): sqrt(x' V_beta x). Conditional ones: the
            root of the prediction-error variance of x'beta_hat + z'b_hat,
            sigma^2 ||L^{-1} (Lambda'z, x)||^2, which joins the conditional
            variance of the random effects, the variance of the fixed effects
            and their covariance (lme4's ``predict(se.fit = TRUE)``, from its
            ``vcov_full``); a level not seen in fitting, predicted at 0, adds
            nothing (lme4 pads it with zeros).

        Returns
        -------
        ndarray (n,)
            Or, with ``se_fit``, a DataFrame with columns ``fit`` and ``se_fit``
            (lme4's ``predict(se.fit = TRUE)`` list as a frame).

        Raises
        ------
        DataError
            New levels without ``allow_new_levels``; a column is missing.

        Examples
        --------
        >>> import pymlm as ml
        >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
        >>> new = ml.datasets.load("sleepstudy").head(2)
        >>> m.predict(new, re_form="~0", se_fit=True).round(3)
               fit  se_fit
        0  251.405   6.825
        1  261.872   6.787
        """
        if se_fit:
            from ._diagnostics import predict_se

            fit = self.predict(newdata, re_form=re_form, allow_new_levels=allow_new_levels)
            se = predict_se(self, newdata, re_form, allow_new_levels)
            return pd.DataFrame({"fit": fit, "se_fit": se})
        d = self.design
        idx = self._terms_for(re_form)
        if newdata is None:
            self._need_rows("predict() without newdata (the fitted rows)")
            eta = np.asarray(d.X @ self.fit.beta).ravel()
            if d.offset is not None:
                eta = eta + d.offset
            terms = [d.re_terms[k] for k in idx]
            return eta + self._random_part(idx, [t.codes for t in terms], [t.X for t in terms], d.n)
        return newdata_eta(d, self.fit.beta, self._b, as_frame(newdata, "newdata"), idx, allow_new_levels)

    def simulate(self, nsim: int = 1, seed=None, use_u: bool = False, newdata=None, re_form=None,
                 allow_new_levels: bool = False) -> pd.DataFrame:
        """Simulate responses from the fitted model (lme4's ``simulate``).

        Random effects are drawn from N(0, sigma^2 T_k T_k') per level and the
        residuals from N(0, sigma^2 / w); the same seed gives the same draws.

        Parameters
        ----------
        nsim : int
        seed : int, SeedSequence or Generator, optional
        use_u : bool
            Condition on the fitted random effects (lme4's ``use.u = TRUE``):
            the mean of the draws is then the fitted values and only the
            residual noise varies.
        newdata : DataFrame, optional
            Simulate at these rows instead of the fitted ones (no weights:
            the residual variance is sigma^2). Without ``use_u`` each
            distinct level in newdata gets its own draw.
        re_form : None, "~0" or str
            The random terms to include (as :meth:`predict`); ``"~0"``:
            residual noise about the population mean.
        allow_new_levels : bool
            With ``use_u``, draw the random effects of levels the fit has
            not seen afresh (else they raise a DataError).

        Returns
        -------
        DataFrame (n, nsim), columns ``sim_1``...
        """
        from ._diagnostics import simulate

        return simulate(self, nsim, seed=seed, use_u=use_u, newdata=newdata, re_form=re_form,
                        allow_new_levels=allow_new_levels)

    def refit(self, newresp) -> LmerResult:
        """The same model fitted to a new response vector (lme4's ``refit``)."""
        fit_design = self._api("refit", self._refit_design)
        self._need_rows("refit()")
        y = np.asarray(newresp, dtype=float).ravel()
        if y.shape[0] != self.design.n:
            raise DataError(f"newresp has {y.shape[0]} values; the model has {self.design.n} observations")
        if not np.isfinite(y).all():
            raise DataError("newresp contains NaN or infinite values")
        design = replace(self.design, y=y)
        return fit_design(design, reml=self.reml, data=self._data, data_name=self.data_name, **self.options)

    def update(self, formula: str | None = None, data=None, REML: bool | None = None, **kwargs) -> LmerResult:
        """Refit with a changed formula, data or REML flag (lme4's ``update``).

        A ``.`` in the new formula stands for the old side: ``". ~ . + x"``.
        """
        lmer = self._api("update", self._refit_formula)
        new_formula = self.formula if formula is None else _update_formula(self.formula, formula)
        if data is None:
            if self._data is None:
                raise DataError("this fit does not keep its data; pass data= to update()")
            data = self._data
        opts = dict(self.options)
        opts.update(kwargs)
        if formula is None and data is self._data and not kwargs and self._refit_design is not None:
            # only REML changes: the same design and cross-products, no pass over the rows
            return self._refit_design(self.design, reml=self.reml if REML is None else bool(REML), data=self._data,
                                      data_name=self.data_name, crossprod=self.crossprod, **self.options)
        return lmer(new_formula, data, REML=self.reml if REML is None else REML,
                    data_name=self.data_name, **opts)

    # ------------------------------------------------------------ inference
    @cached_property
    def problem(self):
        """The fit-level view of this model used by the interval methods
        (:class:`pymlm.inference.LmmProblem`)."""
        from ..inference import LmmProblem

        d = self.design
        codes, Xs, levels = [], [], []
        for g in range(self.tmap.n_terms):
            members = [k for k, (fitted, _) in enumerate(self.tmap.where) if fitted == g]
            t0 = d.re_terms[members[0]]
            codes.append(t0.codes)
            Xs.append(t0.X if len(members) == 1 else np.hstack([d.re_terms[k].X for k in members]))
            levels.append(t0.nlevels)
        y = d.y if d.offset is None else d.y - d.offset
        return LmmProblem(self.crossprod, self.fit, self.reml, self.tmap, list(d.X_names), codes, Xs, levels, d.X, y, d.weights, dict(self.options))

    def confint(self, method: str = "profile", level: float = 0.95, seed=None, n_jobs: int = 1,
                progress: bool = True, **options) -> pd.DataFrame:
        """Confidence intervals, as lme4's ``confint``.

        Parameters
        ----------
        method : {"profile", "wald", "boot", "blb", "split"}
            ``"profile"`` (the default, as lme4's ``confint.merMod``) inverts
            the likelihood-ratio test; ``"wald"`` gives intervals for the fixed
            effects only (NaN for the variance parameters, as lme4).
        level : float
            Confidence level in (0, 1).
        seed : int, optional
            Seed of the resampling methods; results do not depend on ``n_jobs``.
        n_jobs : int
            Parallel processes for resampling methods.
        progress : bool
            Show a progress bar on long runs.
        **options
            Method options (e.g. ``nsim`` for ``"boot"``).

        Returns
        -------
        DataFrame
            Indexed by ``.sig01``..., ``.sigma`` and the fixed effects; columns
            ``"2.5 %"``, ``"97.5 %"`` (from ``level``); ``attrs`` hold the method,
            settings, seed, time and replicate table.
        """
        from ..inference import confint

        if not self.rows_in_memory and isinstance(method, str) and method.lower() == "blb" and self.tmap.n_terms == 1:
            return self._streamed_blb(level=level, seed=seed, n_jobs=n_jobs, progress=progress, **options)
        if (not self.rows_in_memory and isinstance(method, str) and method.lower() == "split"
                and options.get("mode", "independent") == "independent"):
            from ..inference._stream_split import streamed_split_interval

            return streamed_split_interval(self.problem, self.design, level=level, seed=seed, n_jobs=n_jobs,
                                           progress=progress, **options)
        if isinstance(method, str) and method.lower() in ("boot", "split"):
            self._need_rows(f"confint(method={method!r})")
        return confint(self.problem, method=method, level=level, seed=seed, n_jobs=n_jobs,
                       progress=progress, **options)

    def _streamed_blb(self, seed=None, progress: bool = True, **options) -> pd.DataFrame:
        """BLB of a streamed fit: one more pass accumulates the blocks of the clusters its subsets draw.

        The subsets depend only on the seed and the number of clusters, so they
        are drawn first (the same draws as :func:`pymlm.inference.blb.interval`
        makes); the per-cluster cross-products of their s b clusters are summed
        batch by batch as the source is read (no row is kept), and the interval
        is computed from them as for a fit in memory: the same subsets, the same
        blocks to rounding, the same interval.
        """
        import inspect

        import scipy.sparse as sp

        from .._validation import check_bool, check_positive_int, seed_sequence
        from ..crossprod import ClusterCrossProducts, cluster_cross_products
        from ..design import batch_arrays
        from ..inference import blb as _blb
        from ..inference import confint

        root = seed_sequence(seed)   # one root for the draws here and in the interval
        progress = check_bool("progress", progress)
        default = inspect.signature(_blb.interval).parameters["n_subsets"].default
        n_subsets = check_positive_int("n_subsets", options.get("n_subsets", default))
        N = int(self.tmap.dims[0][1])
        b = _blb.subset_size_for(N, options.get("subset_exponent"), options.get("subset_size"))
        subsets, _ = _blb.draws(root, N, n_subsets, 2, b)
        union = np.unique(subsets)
        pos = np.full(N, -1, dtype=np.int64)
        pos[union] = np.arange(union.size)
        d = self.design
        members = list(range(len(d.re_terms)))
        p = len(self.problem.fixef_names)
        p_re = sum(d.re_terms[k].p for k in members)
        # the subsets' clusters' blocks, accumulated batch by batch: no row is kept
        zz, zxy = np.zeros((union.size, p_re, p_re)), np.zeros((union.size, p_re, p + 1))
        xyxy, n, slw = np.zeros((union.size, p + 1, p + 1)), np.zeros(union.size), np.zeros(union.size)
        weighted = False
        for batch in d.batches(progress=progress, desc="BLB clusters"):
            arrays = batch_arrays(d, batch)
            if arrays is None:
                continue
            local = pos[arrays.codes[0]]
            keep = local >= 0
            if not keep.any():
                continue
            present, codes = np.unique(local[keep], return_inverse=True)
            X = arrays.X[keep]
            w = None if arrays.weights is None else arrays.weights[keep]
            weighted |= w is not None
            cb = cluster_cross_products(codes, np.hstack([arrays.Xs[k][keep] for k in members]), present.size,
                                        X.toarray() if sp.issparse(X) else X, arrays.y[keep], w)
            zz[present] += cb.zz
            zxy[present] += cb.zxy
            xyxy[present] += cb.xyxy
            n[present] += cb.n
            slw[present] += cb.sum_log_w
        blocks = ClusterCrossProducts(zz, zxy, xyxy, n, slw)
        problem = replace(self.problem, codes=[np.zeros(0, dtype=np.int64)], Xs=[np.zeros((0, p_re))],
                          X=np.zeros((0, p)), y=np.zeros(0), weights=np.zeros(0) if weighted else None,
                          memo={"cluster_blocks": (union, blocks)})
        # an int or SeedSequence gives the same root again (and is shown as given); None or a
        # Generator only once
        again = check_seed(seed)
        if again is None or isinstance(again, np.random.Generator):
            again = seed_sequence(root)
        return confint(problem, method="blb", seed=again, progress=progress, **options)

    # -------------------------------------------------------------- status
    @property
    def is_singular(self):
        """A diagonal element of theta below ``tol`` (its bound is 0), as lme4's ``isSingular``.

        Reads as a bool at lme4's ``tol = 1e-4`` (``if m.is_singular:``); call
        it for another tolerance: ``m.is_singular(tol=1e-3)``.
        """
        from ._diagnostics import SingularCheck

        lower = np.where(np.isfinite(self.design.lower), 0.0, -np.inf)
        return SingularCheck(self.fit.theta, lower)

    # ---------------------------------------------------- lme4's diagnostic toolkit
    def bootstrap(self, func, nsim: int = 100, seed=None, n_jobs: int = 1, type: str = "parametric",
                  progress: bool = False) -> pd.DataFrame:
        """Parametric bootstrap of any statistic of the refitted model (lme4's ``bootMer``).

        Each replicate draws a response from the fitted model (as
        ``confint(method="boot")``: the same seed gives the same responses),
        refits the model to it (:meth:`refit`) and records ``func`` of the refit.

        Parameters
        ----------
        func : callable
            ``LmerResult -> float, array, Series or dict``, e.g.
            ``lambda r: r.fixef``; a module-level function when ``n_jobs > 1``.
        nsim : int
        seed : int, optional
            Replicates are reproducible from it whatever ``n_jobs``.
        n_jobs : int
            Processes.
        type : {"parametric"}
        progress : bool

        Returns
        -------
        DataFrame (nsim, k)
            One row per replicate (NaN where a refit failed), columns the
            statistic's names (a Series' index, a dict's keys) or ``t1``...;
            ``attrs["t0"]`` is the statistic of this fit (bootMer's ``t0``),
            ``attrs["failed"]`` counts refits that failed and ``attrs["warned"]``
            those that warned (singular or not converged; the warnings are not shown).

        Examples
        --------
        >>> import pymlm as ml
        >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
        >>> b = m.bootstrap(lambda r: r.fixef, nsim=20, seed=1)
        >>> b.shape, list(b.columns)
        ((20, 2), ['(Intercept)', 'Days'])
        """
        from ._diagnostics import bootstrap

        return bootstrap(self, func, nsim=nsim, seed=seed, n_jobs=n_jobs, type=type, progress=progress)

    def hatvalues(self) -> np.ndarray:
        """Diagonal of the hat matrix mapping y to the fitted values (lme4's ``hatvalues``).

        h_i = w_i ||L^{-1} (Lambda'z_i, x_i)||^2 (see :mod:`pymlm.results._diagnostics`).
        """
        from ._diagnostics import hatvalues

        return hatvalues(self)

    def cooks_distance(self) -> np.ndarray:
        """Cook's distance per observation, from the hat values (lme4's ``cooks.distance``):
        ``(r_i / (1 - h_i))^2 h_i / (sigma^2 p)`` with Pearson residuals r."""
        from ._diagnostics import cooks_distance

        return cooks_distance(self)

    def influence(self, groups=None, progress: bool = False):
        """Case-deletion refits (lme4's ``influence.merMod``).

        Parameters
        ----------
        groups : str or list of str, optional
            A column of the data: the model is refitted without each of its
            values in turn (e.g. ``"Subject"``); default: without each row.
        progress : bool

        Returns
        -------
        LmerInfluence
            ``.fixed_effects_deleted``, ``.dfbeta()``, ``.dfbetas()``,
            ``.cooks_distance()``, ``.var_cov_comps_deleted``.

        Examples
        --------
        >>> import pymlm as ml
        >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
        >>> inf = m.influence("Subject")
        >>> inf.cooks_distance().idxmax()
        '309'
        """
        from ._diagnostics import influence

        return influence(self, groups, progress=progress)

    def rePCA(self) -> dict:
        """Principal components of each grouping factor's relative covariance factor (lme4's ``rePCA``).

        Returns
        -------
        dict
            group -> DataFrame with rows ``Standard deviation`` (singular values
            of the block diagonal of its T_k), ``Proportion of Variance``,
            ``Cumulative Proportion`` (``summary(rePCA(m))``); ``attrs["rotation"]``
            the left singular vectors. A proportion near 0 marks a direction the
            data do not support.
        """
        from ._diagnostics import re_pca

        return re_pca(self)

    def format_varcorr(self, comp=("Std.Dev.",), digits: int = 5) -> str:
        """The random-effects table as lme4's ``print(VarCorr(m), comp = comp)``.

        Parameters
        ----------
        comp : str or sequence of {"Variance", "Std.Dev."}
        digits : int
            Significant digits (lme4's default 5).

        Examples
        --------
        >>> import pymlm as ml
        >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
        >>> print(m.format_varcorr(comp=("Variance", "Std.Dev.")))
         Groups   Name        Variance Std.Dev. Corr 
         Subject  (Intercept) 612.091  24.7405       
                  Days         35.072   5.9221  0.066
         Residual             654.941  25.5918       
        """
        from ._diagnostics import varcorr_text

        return varcorr_text(self, comp=comp, digits=digits)

    def profile(self, n_jobs: int = 1, progress: bool = False, **options):
        """Likelihood profiles of the parameters (lme4's ``profile()``).

        As lme4, the profile is of the ML deviance (a REML fit is refitted by
        ML first), on the scale of the random-effect sds and correlations.

        Parameters
        ----------
        n_jobs : int
            Processes; the parameters are profiled in parallel.
        progress : bool
            A progress bar over the parameters.
        **options
            ``which`` (None: all; ``"theta_"``; ``"beta_"``; or a list of
            names such as ``[".sig01", "Days"]``), ``alphamax``, ``maxpts``,
            ``delta``, ``delta_cutoff``, ``maxmult`` (lme4's meanings).

        Returns
        -------
        pymlm.inference.profile.LmmProfile
            ``.traces[name]`` is a DataFrame per parameter (``zeta`` and every
            parameter along the profile); ``.confint(level)`` the intervals.

        Examples
        --------
        >>> import pymlm as ml
        >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
        >>> pr = m.profile(which="beta_")
        >>> pr.confint().round(2)
                      2.5 %  97.5 %
        .sig01          NaN     NaN
        .sig02          NaN     NaN
        .sig03          NaN     NaN
        .sigma          NaN     NaN
        (Intercept)  237.68  265.13
        Days           7.36   13.58
        """
        from ..inference.profile import profile

        return profile(self.problem, n_jobs=n_jobs, progress=progress, **options)

    # ------------------------------------------------------------- summary
    @cached_property
    def _satterthwaite(self):
        from ..inference.satterthwaite import satterthwaite_parts

        return satterthwaite_parts(self.problem)

    @cached_property
    def _kenward_roger(self):
        from ..inference.kenward_roger import kenward_roger

        return kenward_roger(self.problem)

    def coef_table(self, ddf: str | None = None) -> pd.DataFrame:
        """The fixed-effects table: Estimate, Std. Error, t value; with ``ddf`` also df and Pr(>|t|).

        Parameters
        ----------
        ddf : {None, "Satterthwaite", "Kenward-Roger"}
            Denominator degrees of freedom for t tests, as lmerTest:
            Satterthwaite's approximation, or Kenward and Roger's (REML fits;
            the standard errors are then the adjusted ones). ``None`` (or
            ``"none"``, ``"lme4"``): no df, as lme4.

        Returns
        -------
        DataFrame
            Columns ``Estimate``, ``Std. Error``, [``df``], ``t value``, [``Pr(>|t|)``].

        Raises
        ------
        OptionError
            An unknown ``ddf``; Kenward-Roger on an ML or weighted fit.

        Examples
        --------
        >>> import pymlm as ml
        >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
        >>> m.coef_table(ddf="Satterthwaite")["df"].round(2).tolist()
        [17.0, 17.0]
        """
        ddf = _check_ddf(ddf)
        est = self.fixef
        if ddf is None:
            se = self.fixef_se
            return pd.DataFrame({"Estimate": est, "Std. Error": se, "t value": est / se})
        from ..inference import satterthwaite as sat

        eye = np.eye(len(est))
        if ddf == "Satterthwaite":
            parts = self._satterthwaite
            return sat.ddf_table(est, parts.vcov, sat.contrast_df(parts, eye))
        from ..inference.kenward_roger import contrast_df

        kr = self._kenward_roger
        return sat.ddf_table(est, kr.vcov_adjusted, contrast_df(kr, eye))

    def summary(self, ddf: str | None = None, ci: str | None = None, level: float = 0.95, seed=None,
                n_jobs: int = 1, progress: bool = False, correlation: bool | None = None,
                **options) -> LmerSummary:
        """lme4's ``summary()``: tables as DataFrames, printable.

        Parameters
        ----------
        ddf : {None, "Satterthwaite", "Kenward-Roger"}
            Add lmerTest's df and Pr(>|t|) columns (see :meth:`coef_table`).
        ci : {None, "wald", "profile", "boot", "blb", "split"}
            Add confidence intervals (see :meth:`confint`) beside each
            estimate: to the fixed effects and, on the sd/correlation scale,
            to the random effects.
        level : float
            Confidence level of ``ci``.
        correlation : bool, optional
            Print the correlation of the fixed effects (lme4's
            ``print(x, correlation=TRUE)``); by default only when there are
            at most 12 fixed effects, as lme4.
        seed, n_jobs, progress, **options
            Passed to :meth:`confint` (e.g. ``nsim`` for ``"boot"``).

        Examples
        --------
        >>> import pymlm as ml
        >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
        >>> s = m.summary(ddf="Satterthwaite", ci="profile")
        >>> list(s.fixed.columns)
        ['Estimate', 'Std. Error', '2.5 %', '97.5 %', 'df', 't value', 'Pr(>|t|)']
        """
        ddf = _check_ddf(ddf)
        if ci is None:
            if options or seed is not None:
                given = sorted(options) + (["seed"] if seed is not None else [])
                raise OptionError(f"interval options {given} need ci=, e.g. summary(ci='boot', nsim=1000)")
            intervals = None
        else:
            intervals = self.confint(ci, level=level, seed=seed, n_jobs=n_jobs, progress=progress, **options)
        if correlation is not None and not isinstance(correlation, (bool, np.bool_)):
            raise OptionError(f"correlation must be None, True or False; got {correlation!r}")
        return LmerSummary(self, ddf=ddf, intervals=intervals, correlation=correlation)

    def _sig_labels(self) -> list[tuple]:
        """Per ``.sigNN`` (theta order, per lme4 term): (VarCorr group, row name, column name or None)."""
        out = []
        for name, t in zip(_varcorr_group_names(self.design.re_terms), self.design.re_terms):
            rows, cols = np.tril_indices(t.p)
            order = np.lexsort((rows, cols))
            for i, j in zip(rows[order], cols[order]):
                out.append((name, t.cnms[i], None if i == j else t.cnms[j]))
        return out

    @property
    def plot(self):
        """Plots of this fit (matplotlib, :class:`pymlm.plot.LmerPlots`).

        ``m.plot.caterpillar()``, ``m.plot.qq()``, ``m.plot()`` (residuals vs fitted, lme4's
        ``plot(m)``)...
        """
        from ..plot import LmerPlots

        return LmerPlots(self)

    # ------------------------------------------------ tests of terms (lmerTest, lme4)
    def anova(self, type=3, ddf: str = "Satterthwaite"):
        """F tests of the fixed-effect terms, as lmerTest's ``anova(m, type=, ddf=)``.

        Each term's hypothesis matrix follows lmerTest 3.1-3: Type I sequential
        (Doolittle factor of X'X), Type II (each term adjusted for every term
        that does not contain it), Type III (SAS's hypotheses, the same under
        any contrast coding); the multi-df F statistic is the mean of the
        squared t statistics of the eigen-directions of L V L'
        (:mod:`pymlm.inference.anova_lmer`).

        Parameters
        ----------
        type : {3, 2, 1} or {"III", "II", "I"}
        ddf : {"Satterthwaite", "Kenward-Roger"}
            Kenward-Roger needs an unweighted REML fit.

        Returns
        -------
        TermTable
            ``.table`` with Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F) per
            term; ``.hypotheses`` the L matrix of each term; printed as lmerTest.

        Raises
        ------
        OptionError
            An unknown ``type`` or ``ddf``; Kenward-Roger on an ML or weighted fit.
        DataError
            Type III on a fit whose rows were streamed, not kept.

        Examples
        --------
        >>> import pymlm as ml
        >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
        >>> a = m.anova(type=3)
        >>> round(float(a.table.loc["Days", "F value"]), 3), round(float(a.table.loc["Days", "DenDF"]), 2)
        (45.853, 17.0)
        """
        from .lmer_tests import anova_lmer

        return anova_lmer(self, type, ddf)

    def ranova(self, reduce_terms: bool = True):
        """Likelihood-ratio tests of the random-effect terms, as lmerTest's ``ranova``.

        Each random term is reduced in turn, ``(1 + x | g)`` to ``(1 | g)``
        (one row per effect besides the intercept), and a term with a single
        effect such as ``(1 | g)`` removed (with no random term left, the
        linear model is fitted). The reduced models keep the fit's criterion
        (REML or ML), so REML log-likelihoods are compared, as lmerTest does.

        Parameters
        ----------
        reduce_terms : bool
            False: remove each random term whole.

        Returns
        -------
        TermTable
            npar, logLik, AIC, LRT, Df, Pr(>Chisq); the first row ``<none>`` is this fit.

        Raises
        ------
        OptionError
            No random term, or a term written with ``||`` or ``/`` that cannot be reduced.

        Examples
        --------
        >>> import pymlm as ml
        >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
        >>> t = m.ranova().table
        >>> list(t.index), round(float(t["LRT"].iloc[1]), 2)
        (['<none>', 'Days in (Days | Subject)'], 42.84)
        """
        from .lmer_tests import ranova

        return ranova(self, reduce_terms)

    def drop1(self, test: str | None = None, ddf: str = "Satterthwaite", scope=None):
        """Single-term deletions; see :func:`pymlm.drop1`."""
        from .lmer_tests import drop1

        return drop1(self, test=test, ddf=ddf, scope=scope)

    def __str__(self) -> str:
        return str(self.summary())

    def __repr__(self) -> str:
        return (f"<LmerResult {self.method}: {self.formula!r}, n={self.nobs}, "
                f"{'REML criterion' if self.reml else 'deviance'} {self.fit.deviance:.4f}>")




_CI_NAMES = {"wald": "Wald (fixed effects only, as lme4)", "profile": "profile likelihood",
             "boot": "parametric bootstrap", "blb": "bag of little bootstraps", "split": "split-sample"}


@dataclass
class LmerSummary:
    """lme4's summary of a linear mixed model.

    ``str()`` gives lme4's ``print(summary(m))`` line by line (with
    lmerTest's layout when ``ddf`` is set): R's number formats
    (``format``, ``printCoefmat``, ``formatVC``), the formula as lme4
    deparses it, lme4's messages. Lines lme4 prints that pymlm cannot know
    (``Data:`` when no ``data_name`` was given) are left out.

    Attributes
    ----------
    fixed : DataFrame
        Estimate, Std. Error, t value; with ``ddf`` also df and Pr(>|t|)
        (lmerTest's columns); with intervals the two interval columns
        (e.g. ``2.5 %``, ``97.5 %``) after Std. Error.
    random : DataFrame
        Groups, Name, Variance, Std.Dev., Corr; with intervals the interval
        of each Std.Dev. (two columns) and ``Corr CI``, the (lower, upper)
        interval of each correlation, aligned with ``Corr``.
    ddf : str or None
    intervals : DataFrame or None
        The :meth:`LmerResult.confint` table the columns come from.
    correlation : bool or None
        Print the correlation of the fixed effects; ``None`` (lme4's
        default): when there are at most 12 fixed effects.
    """

    model: LmerResult
    ddf: str | None = None
    intervals: pd.DataFrame | None = None
    correlation: bool | None = None
    fixed: pd.DataFrame = field(init=False)
    random: pd.DataFrame = field(init=False)

    def __post_init__(self):
        self.fixed = self._fixed_table()
        self.random = self._random_table()

    @property
    def _ci_cols(self) -> list[str]:
        return [] if self.intervals is None else list(self.intervals.columns[:2])

    def _fixed_table(self) -> pd.DataFrame:
        f = self.model.coef_table(self.ddf)
        if self.intervals is None:
            return f
        lo, hi = self._ci_cols
        names = list(f.index)
        pos = list(f.columns).index("Std. Error") + 1
        f.insert(pos, lo, self.intervals.loc[names, lo].to_numpy())
        f.insert(pos + 1, hi, self.intervals.loc[names, hi].to_numpy())
        return f

    def _ci_by_label(self) -> dict:
        m = self.model
        ci = {}
        if self.intervals is not None:
            lo_c, hi_c = self._ci_cols
            for label, name in zip(m._sig_labels(), self.intervals.index):
                ci[label] = (float(self.intervals.loc[name, lo_c]), float(self.intervals.loc[name, hi_c]))
            ci[("Residual", None, None)] = (float(self.intervals.loc[".sigma", lo_c]),
                                            float(self.intervals.loc[".sigma", hi_c]))
        return ci

    def _random_table(self) -> pd.DataFrame:
        m = self.model
        rows = []
        vc = m.varcorr
        ci = self._ci_by_label()
        for name, t in zip(_varcorr_group_names(m.design.re_terms), m.design.re_terms):
            sub = vc[vc.grp == name]
            var = sub[sub.var2.isna()]
            cov = sub[sub.var2.notna()]
            for i, r in enumerate(var.itertuples()):
                corr, corr_ci = [], []
                for j in range(i):
                    hit = cov[(cov.var1 == t.cnms[j]) & (cov.var2 == t.cnms[i])]
                    corr.append(float(hit.sdcor.iloc[0]) if len(hit) else np.nan)
                    corr_ci.append(ci.get((name, t.cnms[i], t.cnms[j]), (np.nan, np.nan)))
                rows.append((name if i == 0 else "", r.var1, r.vcov, r.sdcor, corr,
                             ci.get((name, t.cnms[i], None), (np.nan, np.nan)), corr_ci))
        resid_ci = ci.get(("Residual", None, None), (np.nan, np.nan))
        rows.append(("Residual", "", m.sigma ** 2, m.sigma, [], resid_ci, []))
        out = pd.DataFrame([r[:5] for r in rows], columns=["Groups", "Name", "Variance", "Std.Dev.", "Corr"])
        if self.intervals is not None:
            lo_c, hi_c = self._ci_cols
            out.insert(4, lo_c, [r[5][0] for r in rows])
            out.insert(5, hi_c, [r[5][1] for r in rows])
            out["Corr CI"] = [r[6] for r in rows]
        return out

    # ------------------------------------------------------------- printing
    def _title_lines(self) -> list[str]:
        m = self.model
        title = "Linear mixed model fit by " + ("REML" if m.reml else "maximum likelihood ")
        cls = "lmerMod"
        if self.ddf is not None:
            title += f". t-tests use {self.ddf}'s method"
            cls = "lmerModLmerTest"
        return title_lines(title, cls)

    def _random_lines(self) -> list[str]:
        m = self.model
        terms = m.design.re_terms
        groups, sds, corrs = (list(x) for x in zip(*vc_parts(terms, m.varcorr)))
        extra = None
        decorate = None
        if self.intervals is not None:
            r = self.random
            lo_c, hi_c = self._ci_cols
            pool = np.concatenate([r["Std.Dev."], r[lo_c], r[hi_c]]).astype(float)
            txt = _fmt.format_real(pool, 4, nan_as_na=True)
            n = len(r)
            extra = {lo_c: txt[n:2 * n], hi_c: txt[2 * n:]}
            ci = self._ci_by_label()

            def decorate(k, cells):
                t = terms[k]
                out = [list(row) for row in cells]
                for i in range(t.p):
                    for j in range(i):
                        a, b = ci.get((groups[k], t.cnms[i], t.cnms[j]), (np.nan, np.nan))
                        if np.isfinite(a) and np.isfinite(b):
                            lo, hi = _fmt.format_real(_fmt.round_r([a, b], 2), nsmall=2)
                            out[i][j] = f"{out[i][j]} ({lo.strip()}, {hi.strip()})"
                return out
        cols, cells = _fmt.format_vc(groups, [list(t.cnms) for t in terms], sds, corrs, m.sigma,
                                     digits=4, extra=extra, corr_cells=decorate)
        return _fmt.print_matrix(cells, [""] * len(cells), cols)

    def _fixed_lines(self) -> list[str]:
        f = self.fixed
        return _fmt.print_coefmat(f.to_numpy(dtype=float), list(f.index), list(f.columns), digits=4)

    def _ci_note(self) -> str:
        ci = self.intervals
        if ci is None:
            return ""
        method = ci.attrs.get("method", "")
        text = f"Confidence intervals: {100 * ci.attrs.get('level', 0.95):g}% {_CI_NAMES.get(method, method)}"
        settings = ci.attrs.get("settings") or {}
        if method == "boot":
            text += f", {settings.get('nsim')} replicates ({settings.get('type', 'perc')})"
            if ci.attrs.get("seed") is not None:
                text += f", seed {ci.attrs['seed']}"
        if method == "profile":
            text += " (ML deviance, as lme4)"
        return text

    def _corr_lines(self) -> list[str]:
        """lme4's correlation of the fixed effects, or its note when p > 12."""
        return corr_lines(self.model._vcov, self.model.design.X_names, self.correlation)

    def _warning_lines(self) -> list[str]:
        m = self.model
        return warning_lines(m.design, m.fit.opt, m.messages)

    def lines(self) -> list[str]:
        """The printed summary, one string per line (lme4's ``print(summary(m))``)."""
        m = self.model
        out = self._title_lines()
        out += _fmt.cat_fill(["Formula:"] + _fmt.deparse_lines(_r_formula(m.design)))
        if m.data_name:
            out += _fmt.cat_fill(["   Data:", str(m.data_name)])
        out.append("")
        if m.reml:
            crit = _fmt.round_r([m.reml_criterion], 1)[0]
            out += _fmt.cat_fill(["REML criterion at convergence:", _fmt.format_number(crit)])
        else:
            t4 = _fmt.round_r([m.aic, m.bic, m.loglik, m.deviance, m.df_resid], 1)
            vals = _fmt.format_real(t4)
            vals[4] = _fmt.format_number(t4[4])
            out += _fmt.print_named(vals, ["AIC", "BIC", "logLik", "deviance", "df.resid"])
        out.append("")
        if m.rows_in_memory:
            q = np.quantile(m.residuals(type="pearson", scaled=True), [0, 0.25, 0.5, 0.75, 1.0])
            out.append("Scaled residuals: ")
            out += _fmt.print_named(_fmt.format_real(_fmt.zapsmall(q, 5), 4),
                                    ["Min", "1Q", "Median", "3Q", "Max"])
        else:
            out.append(f"Scaled residuals: not kept (rows streamed from {m.design.source.name})")
        out.append("")
        out.append("Random effects:")
        out += self._random_lines()
        groups = "; ".join(f"{g}, {n}" for g, n in m.ngroups.items())
        out += _fmt.cat_fill([f"Number of obs: {m.nobs}, groups: ", groups])
        if len(self.fixed):
            out += ["", "Fixed effects:"]
            out += self._fixed_lines()
            note = self._ci_note()
            if note:
                out.append(note)
            out += self._corr_lines()
        out += self._warning_lines()
        if m.n_dropped:
            s = "s" if m.n_dropped != 1 else ""
            out.append(f"({m.n_dropped} observation{s} deleted due to missingness)")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    __repr__ = __str__

