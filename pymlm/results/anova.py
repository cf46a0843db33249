"""Likelihood-ratio tests between nested mixed models (lme4's ``anova``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from . import _format as _fmt

__all__ = ["AnovaResult", "GamAnovaResult", "gam_deviance_table", "lrt_table"]


@dataclass
class AnovaResult:
    """The likelihood-ratio table; ``.table`` is a DataFrame, ``print()`` shows lme4's layout."""

    table: pd.DataFrame
    formulas: list[str]
    refitted: bool
    data_name: str | None = None

    def __str__(self) -> str:
        lines = []
        if self.refitted:
            lines.append("refitting model(s) with ML (instead of REML)")
        if self.data_name:
            lines.append(f"Data: {self.data_name}")
        lines.append("Models:")
        for name, f in zip(self.table.index, self.formulas):
            lines.append(f"{name}: {f}")
        # R's print.anova: printCoefmat with no estimate columns, Chisq as the
        # test statistic, the other columns but Df zapped, NA shown as blank
        t = self.table
        cols = list(t.columns)
        tst = [cols.index("Chisq")]
        zap = [j for j, c in enumerate(cols[:-1]) if j not in tst and not c.endswith("Df")]
        lines += _fmt.print_coefmat(t.to_numpy(dtype=float), [str(i) for i in t.index], cols,
                                    digits=5, cs_ind=(), tst_ind=tst, zap_ind=zap, has_pvalue=True,
                                    na_print="")
        return "\n".join(lines)

    __repr__ = __str__


def lrt_table(models, fits, names, refitted: bool) -> AnovaResult:
    """The likelihood-ratio table of ``fits`` (the ML refits of ``models`` where ``refitted``),
    sorted by number of parameters, each row tested against the previous one."""
    rows = []
    for name, m in zip(names, fits):
        rows.append(dict(name=name, npar=m.n_params, AIC=m.aic, BIC=m.bic, logLik=m.loglik, deviance=m.deviance))
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["npar"], i))
    out = []
    prev = None
    for i in order:
        r = dict(rows[i])
        if prev is None:
            r.update(Chisq=np.nan, Df=np.nan, **{"Pr(>Chisq)": np.nan})
        else:
            chisq = max(prev["deviance"] - r["deviance"], 0.0)
            df = r["npar"] - prev["npar"]
            p = stats.chi2.sf(chisq, df) if df > 0 else np.nan
            r.update(Chisq=chisq, Df=float(df), **{"Pr(>Chisq)": p})
        out.append(r)
        prev = r
    tab = pd.DataFrame(out).set_index("name")
    tab.index.name = None
    from .lmer import _r_formula

    formulas = [" ".join(_fmt.deparse_lines(_r_formula(models[i].design), cutoff=10 ** 6))
                for i in order]
    return AnovaResult(tab, formulas, refitted, models[0].data_name)


@dataclass
class GamAnovaResult:
    """mgcv's ``anova(b0, b1, test = "Chisq")``: the analysis of deviance of nested GAMs.

    ``.table`` has R's columns ``Resid. Df``, ``Resid. Dev``,
    ``Df``, ``Deviance`` and ``Pr(>Chi)``; ``print()`` shows R's layout.
    """

    table: pd.DataFrame
    formulas: list[str]

    def __str__(self) -> str:
        lines = ["Analysis of Deviance Table", ""]
        for i, f in enumerate(self.formulas, 1):
            lines.append(f"Model {i}: {f}")
        t = self.table
        # R's print.anova: no estimate or test-statistic columns; the deviances zapped
        has_p = "Pr(>Chi)" in t.columns
        zap = [j for j, c in enumerate(t.columns[:-1] if has_p else t.columns) if not c.endswith("Df")]
        lines += _fmt.print_coefmat(t.to_numpy(dtype=float), [str(i) for i in t.index], list(t.columns),
                                    digits=5, cs_ind=(), tst_ind=(), zap_ind=zap, has_pvalue=has_p,
                                    na_print="")
        return "\n".join(lines)

    __repr__ = __str__


def _anova_residual_df(fit) -> float:
    """mgcv's residual df for comparing fits: ``n - sum(edf1) - (sum(edf2) - sum(edf))``."""
    e2 = fit.edf2
    dfc = 0.0 if e2 is None else float(np.sum(e2) - np.sum(fit.edf))
    return float(fit.eta.size - np.sum(fit.edf1) - dfc)


def gam_deviance_table(models, names) -> GamAnovaResult:
    """The analysis of deviance of GAM fits in the order given (R's ``anova.glmlist``, ``test = "Chisq"``).

    Each row after the first is tested against the one before it:
    ``Deviance`` is the drop in residual deviance, ``Df`` the drop in residual
    degrees of freedom (mgcv's ``n - sum(edf1) - (sum(edf2) - sum(edf))``), and the p-value is ``P(chi2_Df > Deviance / phi)`` with
    ``phi`` the scale of the model with the fewest residual degrees of freedom.
    """
    rdf = np.array([_anova_residual_df(m.fit_) for m in models], dtype=float)
    dev = np.array([m.deviance for m in models], dtype=float)
    phi = models[int(np.argmin(rdf))].scale
    ddf = np.r_[np.nan, -np.diff(rdf)]
    ddev = np.r_[np.nan, -np.diff(dev)]
    with np.errstate(invalid="ignore"):
        p = np.where(np.isfinite(ddf), stats.chi2.sf(np.abs(ddev / phi), np.abs(ddf)), np.nan)
    tab = pd.DataFrame({"Resid. Df": rdf, "Resid. Dev": dev, "Df": ddf, "Deviance": ddev, "Pr(>Chi)": p},
                       index=[str(n) for n in names])
    return GamAnovaResult(tab, [m.formula for m in models])
