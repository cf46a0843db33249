"""Likelihood-ratio tests between nested mixed models (lme4's ``anova``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import DataError, OptionError
from ._format import fmt_p, signif_stars, table

__all__ = ["anova", "AnovaResult"]


@dataclass
class AnovaResult:
    """The likelihood-ratio table; ``.table`` is a DataFrame, ``print()`` shows lme4's layout."""

    table: pd.DataFrame
    formulas: list[str]
    refitted: bool

    def __str__(self) -> str:
        lines = []
        if self.refitted:
            lines.append("refitting model(s) with ML (instead of REML)")
        lines.append("Models:")
        for name, f in zip(self.table.index, self.formulas):
            lines.append(f"{name}: {f}")
        t = self.table
        rows = []
        for name, r in t.iterrows():
            chisq = "" if np.isnan(r["Chisq"]) else f"{r['Chisq']:.4f}"
            df = "" if np.isnan(r["Df"]) else f"{int(r['Df'])}"
            p = "" if np.isnan(r["Pr(>Chisq)"]) else fmt_p(r["Pr(>Chisq)"])
            stars = "" if np.isnan(r["Pr(>Chisq)"]) else signif_stars(r["Pr(>Chisq)"])
            rows.append([name, f"{int(r['npar'])}", f"{r['AIC']:.1f}", f"{r['BIC']:.1f}", f"{r['logLik']:.2f}",
                         f"{r['deviance']:.1f}", chisq, df, p, stars])
        lines.append(table(rows, ["", "npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)", ""],
                           colalign=["left"] + ["right"] * 8 + ["left"]))
        lines.append("---")
        lines.append("Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1")
        return "\n".join(lines)

    __repr__ = __str__


def anova(*models, names=None, refit: bool = True) -> AnovaResult:
    """Likelihood-ratio tests of nested linear mixed models.

    Models are sorted by number of parameters; each is compared with the
    previous one: Chisq = difference in deviance, Df = difference in
    parameters. REML fits are refitted by ML first (lme4 does the same and
    says so), since REML likelihoods of models with different fixed effects
    are not comparable.

    Parameters
    ----------
    *models : LmerResult
        Two or more fits to the same observations.
    names : list of str, optional
        Row labels; default ``m0``, ``m1``, ...
    refit : bool
        Refit REML fits by ML (default True).

    Returns
    -------
    AnovaResult

    Raises
    ------
    OptionError
        Fewer than two models.
    DataError
        The models were fitted to different numbers of observations or responses.

    Examples
    --------
    >>> import pymlm as ml
    >>> df = ml.datasets.load("sleepstudy")
    >>> m0 = ml.lmer("Reaction ~ 1 + (Days | Subject)", df)
    >>> m1 = ml.lmer("Reaction ~ Days + (Days | Subject)", df)
    >>> round(float(anova(m0, m1).table["Chisq"].iloc[1]), 2)
    23.54
    """
    if len(models) < 2:
        raise OptionError("anova needs at least two models to compare")
    names = list(names) if names is not None else [f"m{i}" for i in range(len(models))]
    if len(names) != len(models):
        raise OptionError(f"names has {len(names)} entries for {len(models)} models")
    n0 = models[0].nobs
    y0 = models[0].design.y
    for m in models[1:]:
        if m.nobs != n0 or not np.allclose(m.design.y, y0):
            raise DataError("all models must be fitted to the same observations (same rows and response)")
    refitted = refit and any(m.reml for m in models)
    fits = [m.update(REML=False) if (refitted and m.reml) else m for m in models]
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
    return AnovaResult(tab, [models[i].formula for i in order], refitted)
