"""Tables of tests on one lmer fit: F tests of fixed-effect terms (lmerTest's ``anova``,
``drop1``), likelihood-ratio tests of random-effect terms (``ranova``) and
single-term deletions by likelihood ratio (lme4's ``drop1``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import OptionError
from . import _format as _fmt

__all__ = ["MarginalMeans", "TermTable", "anova_lmer", "check_ddf", "drop1", "emmeans", "fixed_f_table", "ranova"]

_DDF = {"none": None, "lme4": None, "satterthwaite": "Satterthwaite", "kenward-roger": "Kenward-Roger",
        "kenwardroger": "Kenward-Roger", "kr": "Kenward-Roger"}


def check_ddf(ddf):
    """The canonical name of a ``ddf`` option (None, 'Satterthwaite', 'Kenward-Roger')."""
    if ddf is None:
        return None
    if not isinstance(ddf, str) or ddf.lower() not in _DDF:
        raise OptionError(f"ddf must be one of None, 'Satterthwaite', 'Kenward-Roger'; got {ddf!r}")
    return _DDF[ddf.lower()]


_TYPE_NAMES = {"1": "Type I", "2": "Type II", "3": "Type III"}


@dataclass
class TermTable:
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


def fixed_f_table(model, hypotheses: dict, ddf: str, heading: list) -> TermTable:
    """F tests of ``hypotheses`` (term -> L) on an lmer fit with Satterthwaite or Kenward-Roger df."""
    from ..inference import anova_lmer as al

    beta = np.asarray(model.fixef, dtype=float)
    sigma = model.sigma
    if ddf == "Satterthwaite":
        parts = model._satterthwaite
        test = lambda L: al.ftest_satterthwaite(parts, beta, L, sigma)
    else:
        kr = model._kenward_roger
        test = lambda L: al.ftest_kenward_roger(kr, beta, L, sigma)
    tab = al.anova_table(hypotheses, test)
    names = list(model.fixef.index)
    hyp = {k: pd.DataFrame(L, columns=names) for k, L in hypotheses.items()}
    return TermTable(tab, heading, hyp)


def anova_lmer(model, type=3, ddf: str = "Satterthwaite") -> TermTable:
    """:meth:`LmerResult.anova`: the lmerTest table of F tests of the fixed-effect terms."""
    from ..errors import OptionError
    from ..inference import anova_lmer as al

    t = al.check_type(type)
    d = check_ddf(ddf)
    if d is None:
        raise OptionError(f"ddf must be 'Satterthwaite' or 'Kenward-Roger' for F tests; got {ddf!r}")
    spec, X = model.design.fixed_spec, model.design.X
    if X is None:
        model._need_rows("F tests of fixed-effect terms")
    XtX = al._dense_crossprod(X)
    if t == "1":
        hyp = al.contrasts_type1(spec, XtX)
    elif t == "2":
        hyp = al.contrasts_type2(spec, XtX)
    else:
        if len(spec.terms) <= 1 or X.shape[1] <= 1:
            hyp = al.contrasts_type1(spec, XtX)   # lmerTest too: one term, Type III = Type I
        else:
            model._need_rows("Type III tests")
            hyp = al.contrasts_type3(spec, X, _fit_rows(model))
    method = "Satterthwaite's" if d == "Satterthwaite" else "Kenward-Roger's"
    return fixed_f_table(model, hyp, d, [f"{_TYPE_NAMES[t]} Analysis of Variance Table with {method} method"])


def _fit_rows(model) -> pd.DataFrame:
    """The used columns of the rows of the fit, before formula transformations."""
    fr = model.design.frame
    return fr.data if fr.source is None else fr.source.iloc[fr.rows].reset_index(drop=True)


# --------------------------------------------------------------------------- ranova


def _split_plus(text: str) -> list[str]:
    """Top-level ``+`` pieces of a left-hand side such as ``"1 + x + poly(z, 2)"``."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "([" and 1 or 0
        depth -= ch in ")]" and 1 or 0
        if ch == "+" and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return [p for p in out if p]


def reduced_bars(bar) -> list[tuple[str, str | None]]:
    """lmerTest's reductions of one random term: ``(row label, reduced term or None)``.

    ``(1 + x | g)`` gives ``("x in (1 + x | g)", "(1 | g)")``; a term with one
    effect (``(1 | g)``, ``(0 + x | g)``) is removed whole.
    """
    pieces = _split_plus(bar.lhs_text)
    no_int = [p for p in pieces if p in ("0", "-1", "- 1")]
    effects = [p for p in pieces if p not in ("1", "0", "-1", "- 1")]
    has_int = not no_int
    whole = _written(bar)
    if len(effects) + has_int <= 1:
        return [(whole, None)]
    out = []
    for e in effects:
        rest = [p for p in effects if p != e]
        lhs = " + ".join((["1"] if has_int else ["0"]) + rest)
        out.append((f"{e} in {whole}", f"({lhs} | {bar.group_name})"))
    return out


def _written(bar) -> str:
    """A random term as written, in parentheses: ``(Days | Subject)``."""
    from ..formula import deparse

    node = bar.node
    while node.kind == "paren":
        node = node.args[0]
    return f"({deparse(node)})"


def _lm_loglik(model, reml: bool) -> tuple[float, int]:
    """logLik of the linear model with the fixed effects alone (R's ``logLik.lm``) and its npar."""
    d = model.design
    X = d.X.toarray() if hasattr(d.X, "toarray") else np.asarray(d.X, dtype=float)
    y = d.y if d.offset is None else d.y - d.offset
    w = np.ones(len(y)) if d.weights is None else np.asarray(d.weights, dtype=float)
    sw = np.sqrt(w)
    Q, R = np.linalg.qr(X * sw[:, None])
    r = y * sw - Q @ (Q.T @ (y * sw))
    n, p = X.shape
    N = n - p if reml else n
    ll = 0.5 * (np.sum(np.log(w)) - N * (np.log(2 * np.pi) + 1 - np.log(N) + np.log(float(r @ r))))
    if reml:
        ll -= float(np.sum(np.log(np.abs(np.diag(R)))))
    return ll, p + 1


def ranova(model, reduce_terms: bool = True) -> TermTable:
    """:meth:`LmerResult.ranova`: likelihood-ratio tests of the random-effect terms."""
    from ..errors import OptionError

    bars = list(model.design.parsed.bars)
    if not bars:
        raise OptionError("ranova needs a model with at least one random-effects term")
    rows = [("<none>", model.n_params, model.loglik)]
    for bar in bars:
        whole = _written(bar)
        todo = reduced_bars(bar) if reduce_terms else [(whole, None)]
        for label, new in todo:
            if new is None and len(bars) == 1:
                ll, npar = _lm_loglik(model, model.reml)
            else:
                f = f". ~ . - {whole}" + (f" + {new}" if new else "")
                fit = model.update(formula=f)
                if len(fit.design.parsed.bars) != len(bars) - (new is None):
                    raise OptionError(f"ranova could not remove {whole} from the formula (terms written "
                                      "with || or / are not reduced); fit the reduced models and use ml.anova")
                if fit.nobs != model.nobs:
                    raise OptionError("the number of rows in use changed in a reduced model: remove missing values first")
                ll, npar = fit.loglik, fit.n_params
            rows.append((label, npar, ll))
    tab = pd.DataFrame([{"npar": float(k), "logLik": ll, "AIC": -2 * ll + 2 * k} for _, k, ll in rows],
                       index=[r[0] for r in rows])
    full = rows[0]
    lrt = [np.nan] + [2 * (full[2] - ll) for _, _, ll in rows[1:]]
    df = [np.nan] + [float(full[1] - k) for _, k, _ in rows[1:]]
    tab["LRT"] = np.maximum(lrt, 0.0) if len(rows) > 1 else lrt
    tab["Df"] = df
    from scipy import stats

    tab["Pr(>Chisq)"] = [np.nan] + [float(stats.chi2.sf(x, k)) if k > 0 else np.nan
                                    for x, k in zip(tab["LRT"].iloc[1:], df[1:])]
    from . import _format as fmt
    from ._mixed import r_formula

    formula = " ".join(fmt.deparse_lines(r_formula(model.design), cutoff=10 ** 6))
    return TermTable(tab, ["ANOVA-like table for random-effects: Single term deletions", "", "Model:", formula])


# --------------------------------------------------------------------------- drop1


def drop_scope(spec) -> list[str]:
    """Terms that can be dropped alone (R's ``drop.scope``): those no other term contains."""
    vs = [set(t.variables) for t in spec.terms]
    return [t.label for i, t in enumerate(spec.terms)
            if not any(j != i and vs[i] < vs[j] for j in range(len(vs)))]


def drop1(model, test: str | None = None, ddf: str = "Satterthwaite", scope=None) -> TermTable:
    """:func:`pymlm.drop1` for lmer fits."""
    from .._validation import option_error
    from ..errors import OptionError
    from ..inference import anova_lmer as al

    spec = model.design.fixed_spec
    marg = drop_scope(spec)
    if scope is None:
        scope = marg
    else:
        scope = [scope] if isinstance(scope, str) else list(scope)
        bad = [s for s in scope if s not in marg]
        if bad:
            raise OptionError(f"drop1 can drop only terms that no other term contains ({', '.join(marg) or 'none'}); "
                              f"got {', '.join(map(repr, bad))}")
    from . import _format as fmt
    from ._mixed import r_formula

    formula = " ".join(fmt.deparse_lines(r_formula(model.design), cutoff=10 ** 6))
    if test in (None, "F", "user"):
        d = check_ddf(ddf)
        if d is None:
            raise OptionError(f"ddf must be 'Satterthwaite' or 'Kenward-Roger' for F tests; got {ddf!r}")
        hyp = al.marginal_contrasts(spec, len(model.fixef))
        hyp = {k: hyp[k] for k in scope}
        method = "Satterthwaite's" if d == "Satterthwaite" else "Kenward-Roger's"
        return fixed_f_table(model, hyp, d, [f"Single term deletions using {method} method:", "",
                                             "Model:", formula])
    if test != "Chisq":
        raise option_error("test", [None, "F", "Chisq"], test)
    full = model.update(REML=False) if model.reml else model
    rows = [dict(npar=np.nan, AIC=full.aic, LRT=np.nan, **{"Pr(Chi)": np.nan})]
    from scipy import stats

    for term in scope:
        red = model.update(formula=_formula_without(model, term), REML=False)
        k = full.n_params - red.n_params
        lrt = max(2 * (full.loglik - red.loglik), 0.0)
        rows.append(dict(npar=float(k), AIC=red.aic, LRT=lrt, **{"Pr(Chi)": float(stats.chi2.sf(lrt, k))}))
    tab = pd.DataFrame(rows, index=["<none>"] + list(scope))
    return TermTable(tab, ["Single term deletions", "", "Model:", formula])


def _formula_without(model, term: str) -> str:
    """The model's formula with the fixed terms expanded (R's term labels) and ``term`` left out."""
    from ..formula import deparse

    d = model.design
    spec = d.fixed_spec
    lhs = d.formula.split("~", 1)[0].strip()
    fixed = [t.label for t in spec.terms if t.label != term]
    parts = (["1"] if spec.intercept else ["0"]) + fixed
    parts += [f"offset({deparse(o)})" for o in d.parsed.offsets]
    parts += [f"({b.lhs_text} | {b.group_name})" for b in d.parsed.bars]
    return f"{lhs} ~ {' + '.join(parts)}"


# --------------------------------------------------------------------------- marginal means


@dataclass
class MarginalMeans:
    """Estimated marginal means of an lmer fit (:func:`pymlm.emmeans`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per level (combination) of ``specs``: the levels, ``emmean``,
        ``SE``, ``df``, ``lower.CL``, ``upper.CL`` (emmeans' names).
    contrasts : pandas.DataFrame or None
        With ``pairwise=True``: ``estimate``, ``SE``, ``df``, ``t.ratio``,
        ``p.value`` of every difference of two means (no multiplicity adjustment).
    L : pandas.DataFrame
        The linear functions of the fixed effects that give the means.
    notes : list of str
    """

    table: pd.DataFrame
    contrasts: pd.DataFrame | None
    L: pd.DataFrame
    notes: list = field(default_factory=list)

    def __str__(self) -> str:
        parts = [self.table.to_string(index=False)]
        if self.contrasts is not None:
            parts += ["", self.contrasts.to_string(index=False)]
        return "\n".join(parts + [""] + self.notes)

    __repr__ = __str__


def _grid(model, specs):
    """emmeans' reference grid of a fit: every factor combination, covariates at their means."""
    from ..errors import OptionError
    from ..formula import names_in

    spec = model.design.fixed_spec
    rows = _fit_rows(model)
    factors, numeric_cols = {}, []
    for v in spec.variables:
        if v.kind == "factor":
            if v.column is None or v.column not in rows.columns:
                raise OptionError(f"emmeans: the factor {v.label} is not a data column; make it a column first")
            col = rows[v.column]
            by_label = {str(x): x for x in pd.unique(col)}
            factors[v.column] = [by_label.get(lv, lv) for lv in v.levels]
        else:
            numeric_cols += [n.value for n in names_in(v.node) if n.value in rows.columns]
    bad = [s for s in specs if s not in factors]
    if bad:
        raise OptionError(f"emmeans: {', '.join(map(repr, bad))} is not a factor of the fixed effects "
                          f"(factors: {', '.join(factors) or 'none'})")
    names = list(factors)
    mesh = np.meshgrid(*[np.arange(len(factors[f])) for f in names], indexing="ij")
    idx = {f: m.ravel(order="F") for f, m in zip(names, mesh)}   # first factor varies fastest, as emmeans
    grid = pd.DataFrame({f: pd.Series(np.asarray(factors[f], dtype=object)[idx[f]]) for f in names})
    for c in dict.fromkeys(numeric_cols):
        grid[c] = float(np.mean(rows[c].to_numpy(dtype=float)))
    return grid, idx, factors


def emmeans(model, specs, pairwise: bool = False, level: float = 0.95, ddf: str = "Satterthwaite") -> MarginalMeans:
    """:func:`pymlm.emmeans` for lmer fits."""
    from ..design._fixed import rebuild_model_matrix
    from ..errors import OptionError
    from ..inference import emmeans as em

    specs = [specs] if isinstance(specs, str) else list(specs)
    if not specs:
        raise OptionError("emmeans needs at least one factor in specs")
    if not (isinstance(level, float) and 0 < level < 1):
        raise OptionError(f"level must be a number between 0 and 1; got {level!r}")
    d = check_ddf(ddf)
    if d is None:
        raise OptionError(f"ddf must be 'Satterthwaite' or 'Kenward-Roger'; got {ddf!r}")
    model._need_rows("marginal means")
    grid, idx, factors = _grid(model, specs)
    Xg = rebuild_model_matrix(model.design.fixed_spec, grid, "the reference grid")
    Xg = np.asarray(Xg.toarray() if hasattr(Xg, "toarray") else Xg, dtype=float)
    sizes = [len(factors[s]) for s in specs]
    keys = np.zeros(len(grid), dtype=int)
    for s, k in zip(reversed(specs), reversed(sizes)):   # the first spec varies fastest
        keys = keys * k + idx[s]
    W, _ = em.averaging_matrix(keys)
    L = W @ Xg
    beta = np.asarray(model.fixef, dtype=float)
    if d == "Satterthwaite":
        from ..inference.satterthwaite import contrast_df

        parts = model._satterthwaite
        V, dfun = parts.vcov, lambda M: contrast_df(parts, M)
    else:
        from ..inference.kenward_roger import contrast_df as kr_df

        kr = model._kenward_roger
        V, dfun = kr.vcov_adjusted, lambda M: kr_df(kr, M)
    res = em.linear_function_table(L, beta, V, dfun(L), level)
    cells = [np.unravel_index(i, sizes[::-1])[::-1] for i in range(L.shape[0])]
    labels = pd.DataFrame({s: [factors[s][c[j]] for c in cells] for j, s in enumerate(specs)})
    tab = labels.assign(emmean=res["estimate"], SE=res["SE"], df=res["df"],
                        **{"lower.CL": res["lower"], "upper.CL": res["upper"]})
    contrasts = None
    if pairwise:
        C, pairs = em.pairwise_matrix(L.shape[0])
        name = [" ".join(map(str, labels.iloc[i])) for i in range(len(labels))]
        CL = C @ L
        r = em.linear_function_table(CL, beta, V, dfun(CL), None)
        contrasts = pd.DataFrame({"contrast": [f"{name[i]} - {name[j]}" for i, j in pairs], "estimate": r["estimate"],
                                  "SE": r["SE"], "df": r["df"], "t.ratio": r["t"], "p.value": r["p"]})
    avg = [f for f in factors if f not in specs]
    notes = []
    if avg:
        notes.append(f"Results are averaged over the levels of: {', '.join(avg)}")
    notes += [f"Degrees-of-freedom method: {d.lower()}", f"Confidence level used: {level}"]
    return MarginalMeans(tab, contrasts, pd.DataFrame(L, columns=list(model.fixef.index)), notes)
