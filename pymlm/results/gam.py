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
from ..errors import DataError
from ..fit._gam_tests import random_effect_test, smooth_test
from ..smooth import Factor
from . import _format as _fmt_r

__all__ = ["GamResult", "GamSummary"]

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


@dataclass
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
        The minimized REML / fREML criterion (mgcv's ``gcv.ubre``).
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
    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """Variance components of the random-effect terms (lme4's layout), with the residual."""
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
            else:
                grp, cnms = t.label, ["(Intercept)"]
            if b.kind == "linear":
                v = phi / np.exp(r[0])
                rows.append((grp, cnms[0], None, v, np.sqrt(v)))
            else:
                C = b.covariance(r, phi)
                sd = np.sqrt(np.diag(C))
                for i in range(b.q):
                    rows.append((grp, cnms[i], None, C[i, i], sd[i]))
                for j in range(b.q):
                    for i in range(j + 1, b.q):
                        rows.append((grp, cnms[j], cnms[i], C[i, j], C[i, j] / (sd[i] * sd[j])))
        if self.fit_.family_name == "gaussian" or self.fit_.scale_estimated:
            rows.append(("Residual", None, None, phi, np.sqrt(phi)))
        out = pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])
        for c in ("var1", "var2"):
            out[c] = pd.Series([r[1 if c == "var1" else 2] for r in rows], dtype=object)
        return out

    @cached_property
    def ranef(self) -> dict:
        """Predicted random effects per random-effect term: DataFrame indexed by level."""
        out = {}
        beta = self.fit_.beta
        for t in self.design.terms:
            if t.re is not None:
                q, l = t.re.p, t.re.nlevels
                B = beta[t.cols].reshape(q, l).T
                out[t.label] = pd.DataFrame(B, index=pd.Index(t.re.levels, name=t.re.group), columns=list(t.re.cnms))
            elif t.smooth is not None and t.smooth.random and len(t.cov) == 1 and isinstance(t.cov[0], Factor):
                out[t.label] = pd.DataFrame(beta[t.cols][:, None], index=pd.Index(t.cov[0].levels,
                                            name=t.smooth.spec.terms[0]), columns=["(Intercept)"])
        return out

    # ----------------------------------------------------------------- summary
    def _test_term(self, t, res_df: float):
        fit = self.fit_
        beta = fit.beta
        cols = t.cols
        Vp = fit.Vp
        penalized = t.penalty is not None
        if penalized and t.null_space_dim == 0:
            return self._re_test(t, res_df)
        edf1 = float(self._edf1_coef[cols].sum())
        rank = min(t.ncol, edf1)
        stat, pval, ref_df = smooth_test(beta[cols], fit.XtWX[cols, cols], Vp[cols, cols], rank,
                                         res_df if fit.scale_estimated else -1.0)
        return stat, pval, ref_df

    def _re_test(self, t, res_df: float):
        fit = self.fit_
        XX = fit.XtWX
        p = XX.shape[0]
        terms = self.design.terms
        others = [u for u in terms if u is not t and u.is_random and u.penalty is not None]
        rho = fit.rho
        pen_of = {}
        at = 0
        for u in terms:
            if u.penalty is not None:
                pen_of[id(u)] = u.penalty.matrix(rho[at:at + u.penalty.n_par])
                at += u.penalty.n_par
        if not others:
            PPmm = fit.PP[t.cols, t.cols]
            M = np.linalg.inv((PPmm + PPmm.T) / 2)
            Ve = fit.Ve
        else:
            rmask = np.zeros(p, bool)
            for u in others:
                rmask[u.cols] = True
            S2 = np.zeros((p, p))
            S1 = np.zeros((p, p))
            for u in terms:
                if u.penalty is None:
                    continue
                tgt = S2 if (u in others) else S1
                tgt[u.cols, u.cols] += pen_of[id(u)]
            S2r = S2[np.ix_(rmask, rmask)]
            vals, vecs = np.linalg.eigh((S2r + S2r.T) / 2)
            keep = vals > vals.max() * np.finfo(float).eps ** 0.8
            S2inv = (vecs[:, keep] / vals[keep]) @ vecs[:, keep].T
            nr = ~rmask
            G = XX[np.ix_(nr, nr)] + XX[np.ix_(nr, rmask)] @ S2inv @ XX[np.ix_(rmask, nr)] + S1[np.ix_(nr, nr)]
            Ginv = np.linalg.pinv((G + G.T) / 2)
            idx = np.flatnonzero(nr)
            loc = np.searchsorted(idx, np.arange(t.start, t.start + t.ncol))
            Gmm = Ginv[np.ix_(loc, loc)]
            M = np.linalg.inv((Gmm + Gmm.T) / 2)
            H = XX + XX[:, rmask] @ S2inv @ XX[rmask, :]
            Ve = fit.Vp @ H @ fit.Vp / fit.scale
        try:
            Rm = np.linalg.cholesky((M + M.T) / 2).T
        except np.linalg.LinAlgError:
            vals, vecs = np.linalg.eigh((M + M.T) / 2)
            Rm = (vecs * np.sqrt(np.maximum(vals, 0))) @ vecs.T
        Ve = (Ve + Ve.T) / 2
        return random_effect_test(fit.beta[t.cols], Rm, Ve[t.cols, t.cols], fit.scale, fit.scale_estimated, res_df)

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
            stat, pval, ref_df = self._test_term(t, res_df)
            rows[t.label] = (float(self._edf_coef[t.cols].sum()), ref_df, stat / ref_df if est else stat, pval)
        sname = "F" if est else "Chi.sq"
        s_table = pd.DataFrame.from_dict(rows, orient="index", columns=["edf", "Ref.df", sname, "p-value"])
        score_name = "-REML" if self.engine == "gam" else "fREML"
        return GamSummary(p_table, s_table, self.r_sq, self.dev_expl, self.scale, self.reml_score, score_name,
                          self.nobs, self.n_dropped, fit.family_name, fit.link_name, self.design.formula)

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
        if newdata is None:
            raise DataError("model_matrix needs newdata (the training rows are not kept as data)")
        frame = as_frame(newdata, "newdata")
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

    def predict(self, newdata=None, type: str = "link", se_fit: bool = False):
        """Predictions, as mgcv's ``predict.gam``.

        Parameters
        ----------
        newdata : pandas.DataFrame, optional
            Default: the fitted rows.
        type : {"link", "response"}
        se_fit : bool
            Also return standard errors (from the Bayesian covariance).

        Returns
        -------
        fit : ndarray (m,)
        se : ndarray (m,)
            Only with ``se_fit=True``, as the tuple ``(fit, se)``.

        Notes
        -----
        A random-effect level not seen in fitting is predicted at zero (the
        population value), as mgcv does; ``offset()`` terms of the formula are
        included, the ``offset=`` argument of the fit is not.
        """
        type = check_choice("type", type, ["link", "response"])
        link = self.fit_.family.link
        beta = self.fit_.beta
        if newdata is None:
            eta = self.fit_.eta
            se = None
            if se_fit:
                se = self._se_rows(lambda s, e: self._train_rows(s, e), self.nobs)
        else:
            frame = self._newdata(newdata)
            m = len(frame)
            eta = np.empty(m)
            se = np.empty(m) if se_fit else None
            off = self._offset(frame)
            for s in range(0, m, _BLOCK_ROWS):
                sub = frame.iloc[s:s + _BLOCK_ROWS].reset_index(drop=True)
                parts = self._new_matrix_blocks(sub)
                X = np.hstack([p.toarray() if sp.issparse(p) else np.asarray(p) for p in parts])
                eta[s:s + len(sub)] = X @ beta
                if se_fit:
                    se[s:s + len(sub)] = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", X, self.fit_.Vp, X), 0))
            if off is not None:
                eta = eta + off
        if type == "response":
            fit = link.inverse(eta)
            if se_fit:
                se = np.abs(link.inverse_deriv(eta)) * se
        else:
            fit = eta
        return (fit, se) if se_fit else fit

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
    def plot(self, terms=None, n_points: int = 100, ncols: int = 2):
        """Draw each smooth with a +-2 standard error band (matplotlib).

        One-dimensional smooths are drawn against their covariate,
        two-dimensional ones as filled contours, random effects as a normal
        QQ-plot of the predicted effects, factor-smooth interactions as one
        curve per level.

        Parameters
        ----------
        terms : list of str, optional
            Labels of the terms to draw (default: all).
        n_points : int
            Grid size per covariate.
        ncols : int
            Panels per row.

        Returns
        -------
        matplotlib.figure.Figure
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("plotting needs matplotlib: pip install 'pymlm[plot]'") from exc
        chosen = [t for t in self.design.terms if terms is None or t.label in terms]
        if terms is not None:
            missing = set(terms) - {t.label for t in chosen}
            if missing:
                raise DataError(f"no term(s) {sorted(missing)} in the model; terms are {list(self.edf.index)}")
        k = max(len(chosen), 1)
        nc = min(ncols, k)
        nr = int(np.ceil(k / nc))
        fig, axes = plt.subplots(nr, nc, figsize=(4.5 * nc, 3.6 * nr), squeeze=False)
        for ax, t in zip(axes.ravel(), chosen):
            self._plot_term(ax, t, n_points)
        for ax in axes.ravel()[len(chosen):]:
            ax.set_visible(False)
        fig.tight_layout()
        return fig

    def _term_curve(self, t, cols, by=None):
        X = t.smooth.matrix(cols, by)
        X = X.toarray() if sp.issparse(X) else np.asarray(X)
        b = self.fit_.beta[t.cols]
        V = self.fit_.Vp[t.cols, t.cols]
        return X @ b, np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", X, V, X), 0))

    def _plot_term(self, ax, t, n_points):
        ylab = f"{t.label} ({self.edf[t.label]:.2f})"
        if t.is_random:
            b = np.sort(self.fit_.beta[t.cols])
            q = st.norm.ppf((np.arange(1, b.size + 1) - 0.5) / b.size)
            ax.plot(q, b, "o", ms=3)
            ax.set_xlabel("Gaussian quantiles")
            ax.set_ylabel("effects")
            ax.set_title(t.label)
            return
        sm = t.smooth
        numeric = [c for c in t.cov if not isinstance(c, Factor)]
        by = None
        if sm.by_kind == "numeric":
            by = np.ones(n_points)
        elif sm.by_kind == "factor":
            by = Factor(np.full(n_points, sm.by_levels.index(sm.by_level)), sm.by_levels)
        if len(t.cov) == 1 and numeric:
            x = np.linspace(np.min(numeric[0]), np.max(numeric[0]), n_points)
            f, se = self._term_curve(t, [x], by)
            ax.plot(x, f, "k-")
            ax.plot(x, f + 2 * se, "k--", lw=0.8)
            ax.plot(x, f - 2 * se, "k--", lw=0.8)
            ax.set_xlabel(sm.spec.terms[0])
            ax.set_ylabel(ylab)
            return
        if len(t.cov) == 2 and len(numeric) == 2:
            m = int(np.sqrt(n_points * 10)) if n_points < 50 else 50
            gx = np.linspace(np.min(numeric[0]), np.max(numeric[0]), m)
            gz = np.linspace(np.min(numeric[1]), np.max(numeric[1]), m)
            XX, ZZ = np.meshgrid(gx, gz)
            byg = None if by is None else (np.ones(m * m) if sm.by_kind == "numeric" else
                                           Factor(np.full(m * m, by.codes[0]), by.levels))
            f, _ = self._term_curve(t, [XX.ravel(), ZZ.ravel()], byg)
            cs = ax.contourf(XX, ZZ, f.reshape(m, m), levels=12, cmap="viridis")
            ax.figure.colorbar(cs, ax=ax)
            ax.set_xlabel(sm.spec.terms[0])
            ax.set_ylabel(sm.spec.terms[1])
            ax.set_title(ylab)
            return
        if len(numeric) == 1 and len(t.cov) == 2:  # factor smooth: one curve per level
            fac = next(c for c in t.cov if isinstance(c, Factor))
            x = np.linspace(np.min(numeric[0]), np.max(numeric[0]), n_points)
            pos = [i for i, c in enumerate(t.cov) if isinstance(c, Factor)][0]
            for j, lev in enumerate(fac.levels):
                cols = [None, None]
                cols[pos] = Factor(np.full(n_points, j), fac.levels)
                cols[1 - pos] = x
                f, _ = self._term_curve(t, cols)
                ax.plot(x, f, lw=0.8)
            ax.set_xlabel(sm.spec.terms[1 - pos])
            ax.set_ylabel(ylab)
            return
        ax.text(0.5, 0.5, f"{t.label}: no plot for this term", ha="center", va="center", transform=ax.transAxes)
