"""Tables of tests on one lmer fit: F tests of fixed-effect terms (lmerTest's ``anova``,
``drop1``), likelihood-ratio tests of random-effect terms (``ranova``) and
single-term deletions by likelihood ratio (lme4's ``drop1``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import _format as _fmt

__all__ = ["TestTable", "fixed_f_table"]

_TYPE_NAMES = {"1": "Type I", "2": "Type II", "3": "Type III"}


@dataclass
class TestTable:
    """A test table: ``.table`` is a DataFrame; ``print()`` shows R's layout (``print.anova``).

    Attributes
    ----------
    table : pandas.DataFrame
    heading : list of str
        The lines printed above the table.
    hypotheses : dict
        For F tests: term -> hypothesis matrix L (rows: linear functions of the
        fixed effects, columns named as ``fixef``).
    """

    table: pd.DataFrame
    heading: list = field(default_factory=list)
    hypotheses: dict = field(default_factory=dict)

    def __str__(self) -> str:
        t = self.table
        cols = list(t.columns)
        # R's print.anova: the "F value" / "LRT"-like statistic column is the test statistic,
        # every column but the p-value and those named "...Df" is zapped
        has_p = bool(cols) and (cols[-1].startswith("Pr(") or cols[-1].startswith("p-v"))
        last = len(cols) - 1 if has_p else len(cols)
        tst = [j for j, c in enumerate(cols) if c[1:7] == " value"]
        zap = [j for j in range(last) if j not in tst and not c_endswith_df(cols[j])]
        lines = list(self.heading)
        lines += _fmt.print_coefmat(t.to_numpy(dtype=float), [str(i) for i in t.index], cols, digits=5,
                                    cs_ind=(), tst_ind=tst, zap_ind=zap, has_pvalue=has_p, na_print="")
        return "\n".join(lines)

    __repr__ = __str__


def c_endswith_df(name: str) -> bool:
    return name.endswith("Df")


def fixed_f_table(model, hypotheses: dict, ddf: str, heading: list) -> TestTable:
    """F tests of ``hypotheses`` (term -> L) on an lmer fit with Satterthwaite or Kenward-Roger df."""
    from ..inference import anova_lmer as al

    beta = np.asarray(model.fixef, dtype=float)
    sigma = model.sigma
    if ddf == "Satterthwaite":
        parts = model._satterthwaite
        test = lambda L: al.ftest_satterthwaite(parts, beta, L, sigma)  # noqa: E731
    else:
        kr = model._kenward_roger
        test = lambda L: al.ftest_kenward_roger(kr, beta, L, sigma)  # noqa: E731
    tab = al.anova_table(hypotheses, test)
    names = list(model.fixef.index)
    hyp = {k: pd.DataFrame(L, columns=names) for k, L in hypotheses.items()}
    return TestTable(tab, heading, hyp)


def anova_lmer(model, type=3, ddf: str = "Satterthwaite") -> TestTable:
    """:meth:`LmerResult.anova`: the lmerTest table of F tests of the fixed-effect terms."""
    from ..errors import OptionError
    from ..inference import anova_lmer as al
    from .lmer import _check_ddf

    t = al.check_type(type)
    d = _check_ddf(ddf)
    if d is None:
        raise OptionError(f"ddf must be 'Satterthwaite' or 'Kenward-Roger' for F tests; got {ddf!r}")
    spec, X = model.design.fixed_spec, model.design.X
    XtX = al._dense_crossprod(X)
    if t == "1":
        hyp = al.contrasts_type1(spec, XtX)
    elif t == "2":
        hyp = al.contrasts_type2(spec, XtX)
    else:
        model._need_rows("Type III tests")
        hyp = al.contrasts_type3(spec, X, _fit_rows(model))
    method = "Satterthwaite's" if d == "Satterthwaite" else "Kenward-Roger's"
    return fixed_f_table(model, hyp, d, [f"{_TYPE_NAMES[t]} Analysis of Variance Table with {method} method"])


def _fit_rows(model) -> pd.DataFrame:
    """The used columns of the rows of the fit, before formula transformations."""
    fr = model.design.frame
    return fr.data if fr.source is None else fr.source.iloc[fr.rows].reset_index(drop=True)
