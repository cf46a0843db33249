"""``GamResult``: what ``gam()`` and ``bam()`` return.

Estimates come out as pandas objects with mgcv's names: coefficients
``(Intercept)``, ``s(x0).1`` ... ; ``edf`` and ``sp`` keyed by term label
(``s(x0)``, ``te(x1,x2)``, ``(1 | g)``); ``print(result)`` shows mgcv's
summary layout (parametric coefficients, approximate significance of
smooth terms with edf, Ref.df, F and p-value, adjusted R-squared, deviance
explained, REML score, scale, n).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp
import scipy.stats as st

from .._validation import as_frame, check_choice
from ..errors import DataError, OptionError, warn
from ..inference.gam_tests import term_test
from ..smooth import Factor
from . import _format as _fmt_r

__all__ = ["GamResult", "GamSummary", "GamTermsAnova", "family_loglik"]

_BLOCK_ROWS = 50_000


def _stars(p: float) -> str:
    """The significance code of one p-value, as R's ``symnum`` in ``printCoefmat``."""
    return _fmt_r.signif_stars(p).strip()


def _fmt_p(p: float, digits: int = 3) -> str:
    """One p-value as ``format.pval(p, digits = 3)`` (mgcv's ``printCoefmat`` call)."""
    return _fmt_r.format_pval([p], digits)[0]


def _fmt(v: float, sig: int = 5) -> str:
    """One number as ``formatC(v, digits = sig)`` without padding."""
    return _fmt_r.format_c(v, sig, 0) if np.isfinite(v) else "NA"


@dataclass(frozen=True, eq=False)
class GamSummary:
    """mgcv's ``summary.gam`` tables.

    Attributes
    ----------
    p_table : pandas.DataFrame
        Estimate, Std. Error, t (or z) value, Pr(>|t|) per parametric coefficient.
    s_table : pandas.DataFrame
        edf, Ref.df, F (or Chi.sq), p-value per smooth / random-effects term.
    r_sq, dev_expl, scale, score : float
    score_name : str
        ``"-REML"`` (gam) or ``"fREML"`` (bam).
    n, n_dropped : int
    family, link, formula : str
    """

    p_table: pd.DataFrame
    s_table: pd.DataFrame
    r_sq: float
    dev_expl: float
    scale: float
    score: float
    score_name: str
    n: int
    n_dropped: int
    family: str
    link: str
    formula: str
    rank_note: str = ""

    def _formula_lines(self) -> list[str]:
        from ..errors import FormulaError
        from ..formula import parse_expression

        try:
            return _fmt_r.deparse_lines(parse_expression(self.formula))
        except FormulaError:  # pragma: no cover - the formula was parsed to fit the model
            return [self.formula]

    def lines(self) -> list[str]:
        """The printed summary, one string per line (mgcv's ``print(summary(b))``)."""
        lines = ["", f"Family: {self.family} ", f"Link function: {self.link} ", "", "Formula:"]
        lines += self._formula_lines()
        if len(self.p_table):
            lines += ["", "Parametric coefficients:"]
            p = self.p_table
            lines += _fmt_r.print_coefmat(p.to_numpy(dtype=float), [str(i) for i in p.index],
                                          list(p.columns), digits=4)
        lines.append("")
        if len(self.s_table):
            lines.append("Approximate significance of smooth terms:")
            t = self.s_table
            lines += _fmt_r.print_coefmat(t.to_numpy(dtype=float), [str(i) for i in t.index],
                                          list(t.columns), digits=4, has_pvalue=True, cs_ind=[0])
        lines.append("")
        if self.rank_note:
            lines.append(self.rank_note)
        dev = "Deviance explained = " + _fmt_r.format_c(self.dev_expl * 100, 3, 4) + "%"
        r2 = ""
        if np.isfinite(self.r_sq):
            r2 = "R-sq.(adj) =  " + _fmt_r.format_c(self.r_sq, 3, 5) + "   "
        lines.append(r2 + dev)
        lines.append(f"{self.score_name} = {_fmt_r.format_c(self.score, 5)}  Scale est. = "
                     f"{_fmt_r.format_c(self.scale, 5, 8, '-')}  n = {self.n}")
        if self.n_dropped:
            lines.append(f"({self.n_dropped} rows dropped for missing values)")
        return lines

    def __str__(self) -> str:
        return "\n".join(self.lines()) + "\n"


def family_loglik(family: str, y: np.ndarray, mu: np.ndarray, w: np.ndarray, dev: float) -> float:
    """The log-likelihood ``-aic/2 (+1 for an estimated scale)`` of R's ``family()$aic``.

    Binomial ``y`` are proportions with the totals as weights; Gaussian and
    Gamma use the scale that maximizes the likelihood given ``dev``.
    """
    if family == "gaussian":
        n = y.size
        with np.errstate(divide="ignore"):
            return float(-n / 2 * (np.log(2 * np.pi * dev / n) + 1) + np.sum(np.log(w)) / 2)
    if family == "binomial":
        k = np.round(w * y)
        return float(np.sum(st.binom.logpmf(k, np.round(w), mu)))
    if family == "poisson":
        return float(np.sum(w * st.poisson.logpmf(y, mu)))
    if family == "Gamma":
        disp = dev / np.sum(w)
        return float(np.sum(w * st.gamma.logpdf(y, 1 / disp, scale=mu * disp)))
    raise OptionError(f"loglik is available for gaussian, binomial, poisson and Gamma fits; this fit's family "
                      f"is {family!r}")


@dataclass(frozen=True, eq=False)
class GamTermsAnova:
    """mgcv's single-model ``anova(b)``: a Wald test per parametric term and per smooth term.

    Attributes
    ----------
    p_table : pandas.DataFrame
        Per parametric term (intercept excluded): ``df``, ``F`` (or ``Chi.sq``
        for a known scale), ``p-value``.
    s_table : pandas.DataFrame
        The smooth terms' table of the summary (edf, Ref.df, F or Chi.sq, p-value).
    family, link, formula : str
    """

    p_table: pd.DataFrame
    s_table: pd.DataFrame
    family: str
    link: str
    formula: str

    def lines(self) -> list[str]:
        """The printed tables, one string per line (mgcv's ``print(anova(b))``)."""
        out = ["", f"Family: {self.family} ", f"Link function: {self.link} ", "", "Formula:"]
        out += GamSummary._formula_lines(self)
        if len(self.p_table):
            out += ["", "Parametric Terms:"]
            t = self.p_table
            out += _fmt_r.print_coefmat(t.to_numpy(dtype=float), [str(i) for i in t.index], list(t.columns),
                                        digits=4, signif_stars_=False, has_pvalue=True)
        out.append("")
        if len(self.s_table):
            out.append("Approximate significance of smooth terms:")
            t = self.s_table
            out += _fmt_r.print_coefmat(t.to_numpy(dtype=float), [str(i) for i in t.index], list(t.columns),
                                        digits=4, signif_stars_=False, has_pvalue=True)
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines()) + "\n"

    __repr__ = __str__


def _pinv_rank(V: np.ndarray, tol: float = float(np.sqrt(np.finfo(float).eps))):
    """Pseudo-inverse of a symmetric ``V`` dropping eigenvalues below ``tol`` times the largest, and its rank."""
    ev, U = np.linalg.eigh(V)
    keep = ev > tol * ev.max()
    return (U[:, keep] / ev[keep]) @ U[:, keep].T, int(keep.sum())


class GamResult:
    """A fitted GAM(M) from :func:`pymlm.gam` or :func:`pymlm.bam`.

    Attributes
    ----------
    coef : pandas.Series
        All coefficients, mgcv's names.
    vcov : pandas.DataFrame
        Bayesian posterior covariance of the coefficients (mgcv's ``Vp``).
    edf, sp : pandas.Series
        Effective degrees of freedom per term, smoothing parameters per
        penalty (``"te(x,z)1"``, ``"te(x,z)2"`` for a multi-penalty term).
    scale : float
        Scale (residual variance for Gaussian models; 1 for binomial and
        Poisson).
    reml_score : float
        The minimized criterion (mgcv's ``gcv.ubre``): REML, fREML, ML, GCV
        or UBRE, after the fit's ``method``.
    r_sq, dev_expl : float
    fitted : ndarray
        Fitted values on the response scale.
    nobs, n_dropped : int

    Examples
    --------
    >>> import pymlm as ml
    >>> b = ml.bam('y ~ s(x0, bs = "cr") + s(g, bs = "re")', ml.datasets.load("gamsim_re"))
    >>> b.edf.round(1).to_dict()
    {'s(x0)': 5.5, 's(g)': 169.5}
    """

    def __init__(self, design, fit, engine: str = "gam", discrete: bool = False):
        self.design = design
        self.fit_ = fit
        self.engine = engine
        self.discrete = discrete

    # ----------------------------------------------------------------- estimates
    @cached_property
    def coef(self) -> pd.Series:
        return pd.Series(self.fit_.beta, index=self.design.coef_names, name="coef")

    @cached_property
    def vcov(self) -> pd.DataFrame:
        names = self.design.coef_names
        return pd.DataFrame(self.fit_.Vp, index=names, columns=names)

    @cached_property
    def _edf_coef(self) -> np.ndarray:
        return self.fit_.edf

    @cached_property
    def _edf1_coef(self) -> np.ndarray:
        return self.fit_.edf1

    @cached_property
    def edf(self) -> pd.Series:
        e = self._edf_coef
        return pd.Series({t.label: float(e[t.cols].sum()) for t in self.design.terms}, name="edf", dtype=float)

    @property
    def edf_total(self) -> float:
        """Total effective degrees of freedom, parametric terms included."""
        return float(self._edf_coef.sum())

    @cached_property
    def sp(self) -> pd.Series:
        out: dict[str, float] = {}
        at = 0
        rho = self.fit_.rho
        for t in self.design.terms:
            b = t.penalty
            if b is None:
                continue
            if b.kind == "linear":
                for j in range(b.n_par):
                    out[t.label if b.n_par == 1 else f"{t.label}{j + 1}"] = float(np.exp(rho[at + j]))
            at += b.n_par
        return pd.Series(out, name="sp", dtype=float)

    @property
    def scale(self) -> float:
        return float(self.fit_.scale)

    @property
    def sig2(self) -> float:
        """mgcv's name for :attr:`scale`."""
        return self.scale

    @property
    def reml_score(self) -> float:
        return float(self.fit_.reml_score)

    @property
    def fitted(self) -> np.ndarray:
        return self.fit_.mu

    @property
    def linear_predictors(self) -> np.ndarray:
        return self.fit_.eta

    @property
    def residuals(self) -> np.ndarray:
        """Response residuals ``y - fitted``."""
        return self.design.y - self.fit_.mu

    @property
    def deviance(self) -> float:
        return float(self.fit_.deviance)

    @cached_property
    def loglik(self) -> float:
        """The log-likelihood at the estimates, as mgcv's ``logLik.gam``.

        The family's log-likelihood with the fitted means (not the penalized
        or restricted one): for Gaussian fits the scale is ``deviance / n``,
        for Gamma fits the dispersion is ``deviance / sum(weights)`` (R's
        ``family()$aic``), binomial and Poisson fits have none.

        Raises
        ------
        OptionError
            A family other than Gaussian, binomial, Poisson or Gamma.

        Examples
        --------
        >>> import pymlm as ml
        >>> b = ml.gam('y ~ s(x0, bs = "cr") + s(x2, bs = "cr")', ml.datasets.load("gamsim_re").iloc[:400])
        >>> round(b.loglik, 2), round(b.n_params, 2), round(b.aic, 2)  # mgcv: -963.44 (df=13.27), 1953.42
        (-963.44, 13.27, 1953.42)
        """
        return family_loglik(self.fit_.family_name, self.design.y, self.fit_.mu, self.fit_.prior_weights,
                             self.deviance)

    @cached_property
    def n_params(self) -> float:
        """The degrees of freedom of :attr:`loglik`, as mgcv's ``logLik.gam``.

        ``sum(edf2)`` (the edf corrected for smoothing-parameter uncertainty,
        or the alternative ``sum(edf1)`` when that is smaller), plus one for
        an estimated scale, at most the number of coefficients plus one;
        ``sum(edf)`` plus one when the smoothing parameters were supplied.
        """
        fit = self.fit_
        sc = 1.0 if fit.scale_estimated else 0.0
        e2 = fit.edf2
        df = (float(np.sum(e2)) if e2 is not None else self.edf_total) + sc
        return min(df, fit.beta.size + sc)

    @property
    def aic(self) -> float:
        """``-2 loglik + 2 n_params`` (R's ``AIC`` of a gam fit)."""
        return -2.0 * self.loglik + 2.0 * self.n_params

    @property
    def bic(self) -> float:
        """``-2 loglik + log(n) n_params`` (R's ``BIC`` of a gam fit)."""
        return -2.0 * self.loglik + np.log(self.nobs) * self.n_params

    @property
    def null_deviance(self) -> float:
        return float(self.fit_.null_deviance)

    @property
    def nobs(self) -> int:
        return self.design.n

    @property
    def n_dropped(self) -> int:
        return int(self.design.frame.n_dropped)

    @property
    def converged(self) -> bool:
        return bool(self.fit_.converged)

    @property
    def family(self) -> str:
        return self.fit_.family_name

    @property
    def formula(self) -> str:
        return self.design.formula

    @property
    def residual_df(self) -> float:
        return self.nobs - self.edf_total

    @cached_property
    def r_sq(self) -> float:
        w = self.fit_.prior_weights
        y = self.design.y
        mean_y = np.sum(w * y) / np.sum(w)
        sw = np.sqrt(w)
        n = self.nobs
        num = np.var(sw * (y - self.fit_.mu), ddof=1) * (n - 1)
        den = np.var(sw * (y - mean_y), ddof=1) * self.residual_df
        return float(1 - num / den) if den > 0 else float("nan")

    @property
    def dev_expl(self) -> float:
        nd = self.fit_.null_deviance
        return float((nd - self.fit_.deviance) / nd) if nd > 0 else float("nan")

    # --------------------------------------------------------- random effects
    @staticmethod
    def _re_column(t) -> str:
        """What an ``s(..., bs = "re")`` term's coefficients multiply: numeric covariates or 1."""
        sm = t.smooth
        names = [name for name, c in zip(sm.spec.terms, t.cov) if not isinstance(c, Factor)]
        if sm.by_kind == "numeric":
            names.append(sm.spec.by)
        return ":".join(names) if names else "(Intercept)"

    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """Variance components of the random-effect terms (lme4's layout), with the residual.

        An ``s(g, bs = "re")`` term's variance is mgcv's ``gam.vcomp``:
        ``phi * S.scale / sp``, the smoothing parameter taken back to the
        unscaled identity penalty (mgcv scales the penalty of ``s(g, x, bs =
        "re")`` by ``1 / max(x)^2``). ``grp`` is the term label and ``var1``
        the covariate it multiplies (``"Days"`` for ``s(Subject, Days, bs =
        "re")``, ``"(Intercept)"`` for a random intercept); lme4 bars give
        their grouping factor and column names.

        Returns
        -------
        pandas.DataFrame
            Columns ``grp``, ``var1``, ``var2`` (a covariance row names its
            second variable), ``vcov`` (variance or covariance), ``sdcor``
            (standard deviation or correlation).

        Examples
        --------
        >>> import pymlm as ml
        >>> m = ml.gam("Reaction ~ Days + s(Subject, bs = 're') + s(Subject, Days, bs = 're')",
        ...            ml.datasets.load("sleepstudy"))
        >>> m.varcorr[["grp", "var1"]].values.tolist()
        [['s(Subject)', '(Intercept)'], ['s(Subject,Days)', 'Days'], ['Residual', None]]
        >>> m.varcorr["sdcor"].round(2).tolist()
        [25.05, 5.99, 25.57]
        """
        rows = []
        at = 0
        rho = self.fit_.rho
        phi = self.scale
        for t in self.design.terms:
            b = t.penalty
            if b is None:
                continue
            r = rho[at:at + b.n_par]
            at += b.n_par
            if not t.is_random:
                continue
            if t.re is not None:
                grp, cnms = t.re.group, list(t.re.cnms)
                s_scale = 1.0
            else:
                grp, cnms = t.label, [self._re_column(t)]
                s_scale = float(t.smooth.S_scale[0]) if t.smooth.S_scale else 1.0
            if b.kind == "linear":
                v = phi * s_scale / np.exp(r[0])
                rows.append((grp, cnms[0], None, v, np.sqrt(v)))
            else:
                C = b.covariance(r, phi)
                sd = np.sqrt(np.diag(C))
                for i in range(b.pk):
                    rows.append((grp, cnms[i], None, C[i, i], sd[i]))
                for j in range(b.pk):
                    for i in range(j + 1, b.pk):
                        rows.append((grp, cnms[j], cnms[i], C[i, j], C[i, j] / (sd[i] * sd[j])))
        if self.fit_.family_name == "gaussian" or self.fit_.scale_estimated:
            rows.append(("Residual", None, None, phi, np.sqrt(phi)))
        out = pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])
        for c in ("var1", "var2"):
            out[c] = pd.Series([r[1 if c == "var1" else 2] for r in rows], dtype=object)
        return out

    @cached_property
    def ranef(self) -> dict:
        """Predicted random effects per random-effect term: DataFrame indexed by level.

        lme4 bars give one column per term column; an ``s(g, bs = "re")``
        term with one factor gives one column named as in :attr:`varcorr`
        (``"(Intercept)"``, or the covariate of ``s(g, x, bs = "re")``).
        """
        out = {}
        beta = self.fit_.beta
        for t in self.design.terms:
            if t.re is not None:
                B = beta[t.cols].reshape(t.re.p, t.re.nlevels).T
                out[t.label] = pd.DataFrame(B, index=pd.Index(t.re.levels, name=t.re.group), columns=list(t.re.cnms))
                continue
            if t.smooth is None or not t.smooth.random:
                continue
            factors = [(name, c) for name, c in zip(t.smooth.spec.terms, t.cov)
                       if isinstance(c, Factor)]
            if len(factors) == 1:
                name, fac = factors[0]
                out[t.label] = pd.DataFrame(beta[t.cols][:, None], columns=[self._re_column(t)],
                                            index=pd.Index(fac.levels, name=name))
        return out

    # ----------------------------------------------------------------- summary
    def summary(self) -> GamSummary:
        """mgcv's summary tables (see :class:`GamSummary`)."""
        return self._summary

    @cached_property
    def _summary(self) -> GamSummary:
        fit = self.fit_
        res_df = self.residual_df
        pp = self.design.pp
        beta = fit.beta
        se = np.sqrt(np.maximum(np.diag(fit.Vp), 0.0))
        est = fit.scale_estimated
        tname, pname = ("t value", "Pr(>|t|)") if est else ("z value", "Pr(>|z|)")
        tv = beta[:pp] / se[:pp]
        pv = 2 * (st.t.sf(np.abs(tv), res_df) if est else st.norm.sf(np.abs(tv)))
        p_table = pd.DataFrame({"Estimate": beta[:pp], "Std. Error": se[:pp], tname: tv, pname: pv},
                               index=self.design.p_names)
        rows = {}
        for t in self.design.terms:
            stat, pval, ref_df = term_test(fit, self.design.terms, t, res_df, self._edf1_coef)
            rows[t.label] = (float(self._edf_coef[t.cols].sum()), ref_df, stat / ref_df if est else stat, pval)
        sname = "F" if est else "Chi.sq"
        s_table = pd.DataFrame.from_dict(rows, orient="index", columns=["edf", "Ref.df", sname, "p-value"])
        score_name = {"ML": "-ML", "GCV.Cp": "GCV" if est else "UBRE"}.get(
            fit.method, "-REML" if self.engine == "gam" else "fREML")
        return GamSummary(p_table, s_table, self.r_sq, self.dev_expl, self.scale, self.reml_score, score_name,
                          self.nobs, self.n_dropped, fit.family_name, fit.link_name, self.design.formula)

    def anova(self) -> GamTermsAnova:
        """Wald tests of each parametric and smooth term, as mgcv's single-model ``anova(b)``.

        A parametric term with ``k`` coefficients ``b`` (covariance ``V`` from
        :attr:`vcov`) gets ``Chi.sq = b'V^- b`` on the rank of ``V``; with an
        estimated scale ``F = Chi.sq / df`` on ``(df, n - sum(edf))`` degrees
        of freedom. The smooth terms' tests are those of the summary.
        ``pymlm.anova(b)`` gives the same.

        Returns
        -------
        GamTermsAnova

        Examples
        --------
        >>> import pymlm as ml
        >>> m = ml.gam("Reaction ~ Days + s(Subject, bs = 're') + s(Subject, Days, bs = 're')",
        ...            ml.datasets.load("sleepstudy"), progress=False)
        >>> round(float(m.anova().p_table.loc["Days", "F"]), 2)  # mgcv: 45.05
        45.05
        """
        spec = self.design.fixed_spec
        assign = np.asarray(spec.assign)[np.asarray(spec.keep)]
        beta, V = self.fit_.beta, self.fit_.Vp
        est = self.fit_.scale_estimated
        rows = {}
        for k, term in enumerate(spec.terms, 1):
            ind = np.flatnonzero(assign == k)
            if ind.size == 0:
                continue
            b = beta[ind]
            if ind.size == 1:
                df, chi = 1, float(b[0] ** 2 / V[ind[0], ind[0]])
            else:
                Vi, df = _pinv_rank(V[np.ix_(ind, ind)])
                chi = float(b @ Vi @ b)
            if est:
                rows[term.label] = (df, chi / df, float(st.f.sf(chi / df, df, self.residual_df)))
            else:
                rows[term.label] = (df, chi, float(st.chi2.sf(chi, df)))
        cols = ["df", "F" if est else "Chi.sq", "p-value"]
        p_table = pd.DataFrame.from_dict(rows, orient="index", columns=cols) if rows else pd.DataFrame(columns=cols)
        fit = self.fit_
        return GamTermsAnova(p_table, self.s_table, fit.family_name, fit.link_name, self.design.formula)

    @property
    def s_table(self) -> pd.DataFrame:
        return self._summary.s_table

    @property
    def p_table(self) -> pd.DataFrame:
        return self._summary.p_table

    def __str__(self) -> str:
        return str(self._summary)

    def __repr__(self) -> str:
        return (f"<GamResult {self.engine}{'(discrete)' if self.discrete else ''}: {self.formula!r}, "
                f"n={self.nobs}, edf={self.edf_total:.1f}, scale={self.scale:.5g}>")

    # ----------------------------------------------------------------- predict
    def _new_matrix_blocks(self, newdata: pd.DataFrame):
        Xp = self.design.new_parametric(newdata)
        parts = [Xp]
        for t in self.design.terms:
            M = t.new_matrix(newdata)
            parts.append(M)
        return parts

    def model_matrix(self, newdata=None) -> np.ndarray:
        """The model matrix (mgcv's ``lpmatrix``) on new data, dense (m, p)."""
        newdata = self._newdata(newdata)
        parts = self._new_matrix_blocks(newdata)
        return np.hstack([p.toarray() if sp.issparse(p) else np.asarray(p) for p in parts])

    def _newdata(self, newdata):
        from ..design import check_new_columns

        if newdata is None:
            raise DataError("model_matrix needs newdata (the training rows are not kept as data)")
        frame = as_frame(newdata, "newdata")
        check_new_columns(self.design.parsed, frame.columns)
        if not isinstance(frame.index, pd.RangeIndex):
            frame = frame.reset_index(drop=True)
        return frame

    def _offset(self, frame: pd.DataFrame):
        from ..design import evaluate

        off = None
        for node in self.design.parsed.offsets:
            v = np.asarray(evaluate(node, frame), dtype=float)
            off = v if off is None else off + v
        return off

    def _term_columns(self) -> dict:
        """Coefficient indices (ndarray) of each term by label: parametric terms, then smooths."""
        spec = self.design.fixed_spec
        assign = np.asarray(spec.assign)[np.asarray(spec.keep)]
        out = {}
        for k, term in enumerate(spec.terms, 1):
            ind = np.flatnonzero(assign == k)
            if ind.size:
                out[term.label] = ind
        for t in self.design.terms:
            out[t.label] = np.arange(t.cols.start, t.cols.stop)
        return out

    def _warn_unseen_levels(self, frame: pd.DataFrame) -> None:
        for t in self.design.terms:
            for name, labels in t.unseen_levels(frame).items():
                shown = ", ".join(repr(v) for v in labels[:5]) + (", ..." if len(labels) > 5 else "")
                warn(f"newdata: factor levels {shown} of {name} in {t.label} not in original fit; their "
                     f"contributions to {t.label} are predicted as zero (the population value), as mgcv does")

    def _row_blocks(self, frame):
        """(start, X dense (rows, p)) blocks of the training rows (``frame`` None) or of ``frame``."""
        if frame is None:
            for s in range(0, self.nobs, _BLOCK_ROWS):
                yield s, self._train_rows(s, min(self.nobs, s + _BLOCK_ROWS))
            return
        for s in range(0, len(frame), _BLOCK_ROWS):
            sub = frame.iloc[s:s + _BLOCK_ROWS].reset_index(drop=True)
            parts = self._new_matrix_blocks(sub)
            yield s, np.hstack([p.toarray() if sp.issparse(p) else np.asarray(p) for p in parts])

    def predict(self, newdata=None, type: str = "link", se_fit: bool = False, exclude=None):
        """Predictions, as mgcv's ``predict.gam``.

        Parameters
        ----------
        newdata : pandas.DataFrame, optional
            Default: the fitted rows.
        type : {"link", "response", "terms", "lpmatrix"}
            The linear predictor, the fitted mean, each term's contribution
            (a DataFrame with a column per parametric and smooth term, not
            centred, as mgcv's; the intercept is in ``.attrs["constant"]``), or
            the model matrix ``X`` (m, p) with ``X @ coef`` the linear
            predictor without offsets.
        se_fit : bool
            Also return standard errors (from the Bayesian covariance); per
            term for ``type="terms"``. Not for ``"lpmatrix"``.
        exclude : str or list of str, optional
            Term labels (``"s(x0)"``, ``"YEAR"``) left out: their columns are
            zero in the model matrix and absent from the ``"terms"`` table.

        Returns
        -------
        fit : ndarray (m,), DataFrame (m, terms) or ndarray (m, p)
        se : ndarray (m,) or DataFrame
            Only with ``se_fit=True``, as the tuple ``(fit, se)``.

        Raises
        ------
        DataError
            ``newdata`` lacks a column a term uses (the message names the
            column and the term), has a level of a parametric factor the fit
            never saw, or is not a table of columns.
        OptionError
            A bad ``type``, an ``exclude`` label that is no term of the model.

        Warns
        -----
        PymlmWarning
            ``newdata`` has levels of a smooth's or random effect's factor
            that the fit never saw (mgcv: "factor levels ... not in original
            fit"); their contributions are zero, the population value.

        Notes
        -----
        ``offset()`` terms of the formula are included in ``"link"`` and
        ``"response"`` predictions on new data, the ``offset=`` argument of the
        fit is not.

        Examples
        --------
        >>> import pymlm as ml
        >>> m = ml.gam("Reaction ~ Days + s(Subject, bs = 're')", ml.datasets.load("sleepstudy"),
        ...            progress=False)
        >>> t = m.predict(type="terms")
        >>> list(t.columns), round(t.attrs["constant"], 2)
        (['Days', 's(Subject)'], 251.41)
        >>> bool(abs(t.sum(axis=1) + t.attrs["constant"] - m.fitted).max() < 1e-8)
        True
        """
        type = check_choice("type", type, ["link", "response", "terms", "lpmatrix"])
        if se_fit and type == "lpmatrix":
            raise OptionError("se_fit applies to type 'link', 'response' or 'terms', not 'lpmatrix'")
        columns = self._term_columns()
        excluded = [exclude] if isinstance(exclude, str) else list(exclude or [])
        for label in excluded:
            if label not in columns:
                raise OptionError(f"exclude names no term of the model: {label!r}; the terms are "
                                  f"{', '.join(repr(k) for k in columns)}")
        keep = np.ones(self.fit_.beta.size, dtype=bool)
        for label in excluded:
            keep[columns[label]] = False
        beta = self.fit_.beta
        Vp = self.fit_.Vp
        frame = None if newdata is None else self._newdata(newdata)
        if frame is not None:
            self._warn_unseen_levels(frame)
        m = self.nobs if frame is None else len(frame)
        if type == "lpmatrix":
            X = np.empty((m, beta.size))
            for s, Xb in self._row_blocks(frame):
                X[s:s + Xb.shape[0]] = Xb
            X[:, ~keep] = 0.0
            return X
        if type == "terms":
            labels = [k for k in columns if k not in excluded]
            fit = np.empty((m, len(labels)))
            se = np.empty((m, len(labels))) if se_fit else None
            for s, Xb in self._row_blocks(frame):
                for j, k in enumerate(labels):
                    c = columns[k]
                    Xk = Xb[:, c]
                    fit[s:s + Xb.shape[0], j] = Xk @ beta[c]
                    if se_fit:
                        se[s:s + Xb.shape[0], j] = np.sqrt(np.maximum(
                            np.einsum("ij,jk,ik->i", Xk, Vp[np.ix_(c, c)], Xk), 0))
            names = self.design.coef_names
            const = float(beta[names.index("(Intercept)")]) if "(Intercept)" in names[:self.design.pp] else 0.0
            out = pd.DataFrame(fit, columns=labels)
            out.attrs["constant"] = const
            if se_fit:
                return out, pd.DataFrame(se, columns=labels)
            return out
        link = self.fit_.family.link
        if frame is None and keep.all():
            eta = self.fit_.eta
            se = self._se_rows(lambda s, e: self._train_rows(s, e), self.nobs) if se_fit else None
        else:
            eta = np.empty(m)
            se = np.empty(m) if se_fit else None
            bk = np.where(keep, beta, 0.0)
            for s, Xb in self._row_blocks(frame):
                Xb[:, ~keep] = 0.0
                eta[s:s + Xb.shape[0]] = Xb @ bk
                if se_fit:
                    se[s:s + Xb.shape[0]] = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", Xb, Vp, Xb), 0))
            off = self.design.offset if frame is None else self._offset(frame)
            if off is not None:
                eta = eta + off
        if type == "response":
            fit = link.inverse(eta)
            if se_fit:
                se = np.abs(link.inverse_deriv(eta)) * se
        else:
            fit = eta
        return (fit, se) if se_fit else fit

    def concurvity(self, full: bool = True):
        """Concurvity of the smooth terms (mgcv's ``concurvity``): see
        :func:`pymlm.inference.gam_tests.concurvity`."""
        from ..inference.gam_tests import concurvity

        return concurvity(self, full=full)

    def _train_rows(self, s: int, e: int) -> np.ndarray:
        parts = [self.design.parametric_rows(s, e)]
        for t in self.design.terms:
            M = t.rows(s, e)
            parts.append(M.toarray() if sp.issparse(M) else np.asarray(M))
        return np.hstack(parts)

    def _se_rows(self, getter, n: int) -> np.ndarray:
        out = np.empty(n)
        Vp = self.fit_.Vp
        for s in range(0, n, _BLOCK_ROWS):
            e = min(n, s + _BLOCK_ROWS)
            X = getter(s, e)
            out[s:e] = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", X, Vp, X), 0))
        return out

    # -------------------------------------------------------------------- plot
    @property
    def plot(self):
        """Plots of this fit (matplotlib, :class:`pymlm.plot.GamPlots`).

        ``b.plot()`` draws the smooths (mgcv's ``plot(b)``); ``b.plot.check()``,
        ``b.plot.k_check()``, ``b.plot.vis()``...
        """
        from ..plot import GamPlots

        return GamPlots(self)


class StreamedGamResult(GamResult):
    """A :class:`GamResult` of a ``bam`` whose rows were streamed (a path, a pyarrow Dataset, a polars
    LazyFrame, a Dask DataFrame): the same estimates and tables, with the summaries computed from
    row sums (``design.summary``); what needs the rows (fitted values, residuals) is refused.

    Attributes
    ----------
    workers : tuple of str
        For a Dask DataFrame, the workers that computed the cross-tabulations.
    """

    def _no_rows(self, what: str):
        return DataError(
            f"{what} needs the fitted rows, which were streamed from {self.design.source_name!r} and are not "
            "kept; use predict(newdata) on the rows you need (e.g. a batch read from the source)")

    @property
    def workers(self) -> tuple:
        return tuple(self.design.workers)

    @property
    def fitted(self) -> np.ndarray:
        raise self._no_rows("fitted")

    @property
    def linear_predictors(self) -> np.ndarray:
        raise self._no_rows("linear_predictors")

    @property
    def residuals(self) -> np.ndarray:
        raise self._no_rows("residuals")

    def predict(self, newdata=None, type: str = "link", se_fit: bool = False, exclude=None):
        """As :meth:`GamResult.predict`; ``newdata`` is required (the rows were not kept)."""
        if newdata is None:
            raise self._no_rows("predict() without newdata")
        return super().predict(newdata, type=type, se_fit=se_fit, exclude=exclude)

    @cached_property
    def loglik(self) -> float:
        """The log-likelihood at the estimates, as :attr:`GamResult.loglik`, from row sums: Gaussian
        ``-n/2 (log(2 pi D / n) + 1) + sum(log w) / 2``; other families summed with the fit."""
        s = self.design.summary
        if "loglik" in s:  # computed with the fit (non-Gaussian families)
            if not np.isfinite(s["loglik"]):
                raise OptionError(f"loglik is available for gaussian, binomial, poisson and Gamma fits; this "
                                  f"fit's family is {self.family!r}")
            return float(s["loglik"])
        n = self.nobs
        dev = self.deviance
        with np.errstate(divide="ignore"):
            return float(-n / 2 * (np.log(2 * np.pi * dev / n) + 1) + s["logw"] / 2)

    @cached_property
    def r_sq(self) -> float:
        """mgcv's adjusted R-squared from the row sums: with ``a_i = sqrt(w_i) (y_i - mu_i)`` and
        ``b_i = sqrt(w_i) (y_i - ybar)``, ``1 - (n - 1) var(a) / (residual_df var(b))``."""
        s = self.design.summary
        if "r_sq" in s:  # computed with the fit (non-Gaussian families)
            return float(s["r_sq"])
        n = self.nobs
        beta = self.fit_.beta
        mean_y = s["wy"] / s["w"]
        sum_a = s["swz"] - float(s["sx"] @ beta)
        num = self.deviance - sum_a ** 2 / n
        sum_b2 = s["wyy"] - 2 * mean_y * s["wy"] + mean_y ** 2 * s["w"]
        sum_b = s["swy"] - mean_y * s["sw"]
        den = (sum_b2 - sum_b ** 2 / n) / (n - 1) * self.residual_df
        return float(1 - num / den) if den > 0 else float("nan")
