"""Likelihood-ratio tests between nested mixed models (lme4's ``anova``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from . import _format as _fmt

__all__ = ["AnovaResult", "lrt_table"]


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
