"""Likelihood-ratio tests between nested mixed models (lme4's ``anova``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import DataError, OptionError
from . import _format as _fmt

__all__ = ["anova", "AnovaResult"]


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
    from .lmer import _r_formula

    formulas = [" ".join(_fmt.deparse_lines(_r_formula(models[i].design), cutoff=10 ** 6))
                for i in order]
    return AnovaResult(tab, formulas, refitted, models[0].data_name)
