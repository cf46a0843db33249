"""The pieces LmerResult and GlmerResult share: lme4's VarCorr frame, the
random-effect frames, predictions from the conditional modes, ``update``'s
formula arithmetic, and the parts of lme4's printed summaries that do not
depend on the family (title, random-effects table, correlation of the fixed
effects)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..design import Design
from ..errors import DataError, FormulaError, OptionError
from ..formula import parse_formula
from . import _format as _fmt

__all__ = [
    "COR_MAX",
    "MixedResult",
    "add_random_draws",
    "coef_frames",
    "corr_lines",
    "drop_subtracted",
    "labels",
    "newdata_eta",
    "r_formula",
    "random_part",
    "ranef_frames",
    "term_templates",
    "terms_for",
    "title_lines",
    "update_formula",
    "varcorr_frame",
    "varcorr_group_names",
    "vc_parts",
    "warning_lines",
]

COR_MAX = 12  # lme4's option lme4.summary.cor.max


# ------------------------------------------------------------ the results
class MixedResult:
    """The accessors every mixed-model result has, from its design and fit.

    Subclasses set ``_vcov`` (covariance of beta), ``loglik``, ``n_params``,
    ``is_singular``, ``_b`` (per lme4 term its ``(l_k, p_k)`` modes) and
    ``get_ranef``; the API's fit functions are injected (results never
    import the API).
    """

    _api_function = "the API"

    def __init__(self, design: Design, fit, tmap, *, data=None, data_name: str | None = None,
                 options: dict | None = None, refit_design=None, refit_formula=None):
        self.design = design
        self.fit = fit
        # theta's map: the fitted (merged) terms and where each lme4 term sits in them
        self.tmap = tmap
        self._data = data
        self.data_name = data_name
        self.options = dict(options or {})
        self._refit_design = refit_design
        self._refit_formula = refit_formula

    @property
    def formula(self) -> str:
        return self.design.formula

    @property
    def nobs(self) -> int:
        return self.design.n

    @property
    def ngroups(self) -> dict[str, int]:
        """Levels per grouping factor, lme4's names."""
        return self.design.ngroups

    @property
    def n_dropped(self) -> int:
        """Rows dropped for missing values."""
        return self.design.n_dropped

    @property
    def theta(self) -> np.ndarray:
        """Relative covariance parameters, lme4's order (``getME(m, "theta")``)."""
        return np.array(self.fit.theta, dtype=float)

    @property
    def theta_names(self) -> list[str]:
        return self.design.theta_names

    @property
    def fixef(self) -> pd.Series:
        """Fixed-effect estimates, named as lme4 names them."""
        return pd.Series(np.asarray(self.fit.beta, dtype=float), index=self.design.X_names, name="Estimate")

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed effects."""
        names = self.design.X_names
        return pd.DataFrame(self._vcov, index=names, columns=names)

    @property
    def fixef_se(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self._vcov)), index=self.design.X_names, name="Std. Error")

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.n_params

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + np.log(self.nobs) * self.n_params

    @property
    def df_resid(self) -> int:
        return int(self.nobs - self.n_params)

    @property
    def ranef(self) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects, one DataFrame per grouping factor.

        Rows are the levels in R's order; terms on the same factor share a frame.
        """
        return self.get_ranef()

    @property
    def coef(self) -> dict[str, pd.DataFrame]:
        """Fixed plus random effects per level, one DataFrame per grouping factor (lme4's ``coef``)."""
        return coef_frames(self.fixef, self.ranef)

    @property
    def converged(self) -> bool:
        return self.fit.opt.converged

    @property
    def messages(self) -> list[str]:
        """Convergence and data messages, as lme4 prints them under the summary."""
        out = list(self.fit.opt.messages)
        if self.is_singular and not any(m.startswith("boundary") for m in out):
            out.insert(0, "boundary (singular) fit: see is_singular")
        return out

    def fit_warnings(self) -> list[tuple[str, type]]:
        """The (message, warning class) pairs the fit reports: singular fit, non-convergence."""
        from ..errors import ConvergenceWarning, SingularFitWarning

        out = []
        for msg in self.messages:
            if msg.startswith("boundary"):
                out.append((msg, SingularFitWarning))
            elif msg.startswith("Model"):
                out.append((msg, ConvergenceWarning))
        return out

    def _api(self, what: str, function):
        if function is None:
            raise OptionError(f"{what}() needs the fit function of the API: this result was built "
                              f"without one; build it with {self._api_function}")
        return function


def add_random_draws(eta: np.ndarray, terms, Ts, sigma: float, rng) -> np.ndarray:
    """Add to ``eta`` (n, nsim) random effects drawn from N(0, sigma^2 T_k T_k') per level of each term."""
    nsim = eta.shape[1]
    for t, T in zip(terms, Ts):
        B = sigma * rng.standard_normal((nsim, t.nlevels, t.p)) @ T.T
        for c in range(t.p):
            eta += t.X[:, c][:, None] * B[:, t.codes, c].T
    return eta


def term_templates(tmap, theta, terms) -> list[np.ndarray]:
    """T_k of every lme4 term (its block of the fitted term's template)."""
    Ts = tmap.templates(theta)
    return [Ts[g][off:off + t.p, off:off + t.p] for (g, off), t in zip(tmap.where, terms)]


# ---------------------------------------------------------------- VarCorr
def varcorr_group_names(terms) -> list[str]:
    """lme4's VarCorr names: a grouping factor's second term is ``g.1``, then ``g.2``..."""
    seen: dict[str, int] = {}
    out = []
    for t in terms:
        k = seen.get(t.group, 0)
        out.append(t.group if k == 0 else f"{t.group}.{k}")
        seen[t.group] = k + 1
    return out


def varcorr_frame(terms, tmap, theta, sigma: float, residual: bool = True) -> pd.DataFrame:
    """lme4's ``as.data.frame(VarCorr(m))`` from theta and the scale sigma.

    Per lme4 term its variances, then its covariances column by column
    (theta's order), with Sigma_k = sigma^2 T_k T_k'; a ``Residual`` row
    (variance sigma^2) when ``residual``.
    """
    rows = []
    vcov = tmap.covariances(theta, sigma)
    sdcor = tmap.sdcor_from_covariances(vcov)
    for name, t, (g, off) in zip(varcorr_group_names(terms), terms, tmap.where):
        start = tmap.slices[g].start
        r, c = tmap.positions[g][0] - off, tmap.positions[g][1] - off
        mine = np.flatnonzero((r >= 0) & (r < t.p) & (c >= 0) & (c < t.p))
        for e in sorted(mine, key=lambda e: (r[e] != c[e], 0 if r[e] != c[e] else r[e])):
            i, j = int(r[e]), int(c[e])
            rows.append((name, t.cnms[j], None if i == j else t.cnms[i], vcov[start + e], sdcor[start + e]))
    if residual:
        rows.append(("Residual", None, None, sigma ** 2, sigma))
    return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])


def vc_parts(terms, vc: pd.DataFrame):
    """Per lme4 term, (VarCorr group name, standard deviations, correlation matrix) from a VarCorr frame."""
    out = []
    for name, t in zip(varcorr_group_names(terms), terms):
        sub = vc[vc.grp == name]
        sd = sub[sub.var2.isna()].sdcor.to_numpy(dtype=float)
        C = np.eye(t.p)
        for r in sub[sub.var2.notna()].itertuples():
            i, j = t.cnms.index(r.var2), t.cnms.index(r.var1)
            C[i, j] = C[j, i] = r.sdcor
        out.append((name, sd, C))
    return out


# ---------------------------------------------------------- random effects
def ranef_frames(terms, b: list[np.ndarray], blocks: list[np.ndarray] | None = None) -> dict:
    """Conditional modes per grouping factor (terms on one factor share a frame).

    ``b[k]`` is term k's ``(l_k, p_k)`` modes; with ``blocks`` (per term the
    ``(l_k, p_k, p_k)`` conditional covariances) each value is a pair
    (DataFrame, ndarray (l, p, p)) as lme4's ``postVar``.
    """
    out: dict = {}
    for k, t in enumerate(terms):
        df = pd.DataFrame(b[k], index=pd.Index(t.levels, name=t.group), columns=list(t.cnms))
        if t.group in out:
            prev = out[t.group][0] if blocks is not None else out[t.group]
            df = pd.concat([prev, df], axis=1)
            if blocks is not None:
                pv_prev = out[t.group][1]
                pv = np.zeros((t.nlevels, df.shape[1], df.shape[1]))
                a = pv_prev.shape[1]
                pv[:, :a, :a] = pv_prev
                pv[:, a:, a:] = blocks[k]
                out[t.group] = (df, pv)
                continue
        out[t.group] = (df, blocks[k]) if blocks is not None else df
    return out


def coef_frames(fe: pd.Series, ranef: dict) -> dict[str, pd.DataFrame]:
    """lme4's ``coef``: fixed plus random effects per level, one frame per grouping factor."""
    out = {}
    for group, re_ in ranef.items():
        df = pd.DataFrame(np.tile(fe.to_numpy(), (len(re_), 1)), index=re_.index, columns=fe.index)
        for c in re_.columns:
            if c in df.columns:
                df[c] = df[c] + re_[c].to_numpy()
            else:
                df[c] = re_[c].to_numpy()
        out[group] = df
    return out


def random_part(b: list[np.ndarray], terms_idx, codes_list, Xs, n: int) -> np.ndarray:
    """sum_k X_k[i] . b_k[codes_k[i]] over the chosen terms; rows with a code < 0 (a new level) get 0."""
    eta = np.zeros(n)
    for k, codes, Xk in zip(terms_idx, codes_list, Xs):
        bk = b[k]
        ok = codes >= 0
        if ok.all():
            eta += np.einsum("ij,ij->i", Xk, bk[codes])
        else:
            eta[ok] += np.einsum("ij,ij->i", Xk[ok], bk[codes[ok]])
    return eta


def terms_for(terms, re_form) -> list[int]:
    """The random terms a ``re_form`` keeps: all (None), none (``"~0"``, ``NA``, NaN, False) or a formula's."""
    if re_form is None:
        return list(range(len(terms)))
    if re_form is False or (isinstance(re_form, float) and np.isnan(re_form)):
        return []
    if not isinstance(re_form, str):
        raise OptionError(f"re_form must be None, '~0' or a formula string; got {re_form!r}")
    text = re_form.strip()
    if text in ("~0", "~ 0", "NA", "~-1", "~ -1"):
        return []
    parsed = parse_formula(text if "~" in text else "~" + text)
    if parsed.fixed_terms and any(n.kind != "number" for _, n in parsed.fixed_terms):
        raise FormulaError("re_form may contain random-effects terms only, e.g. '~(1 | Subject)'", re_form)
    chosen = []
    for bar in parsed.bars:
        hits = [k for k, t in enumerate(terms) if t.group == bar.group_name or
                sorted(t.group.split(":")) == sorted(bar.group_name.split(":"))]
        if not hits:
            raise FormulaError(
                f"re_form names the grouping factor {bar.group_name!r}, which the model does not have "
                f"(it has {sorted({t.group for t in terms})})", re_form)
        chosen.extend(h for h in hits if h not in chosen)
    return sorted(chosen)


def newdata_eta(design: Design, beta: np.ndarray, b: list[np.ndarray], nd: pd.DataFrame, idx,
                allow_new_levels: bool) -> np.ndarray:
    """X beta + offset + the chosen terms' Z b on new rows (the linear predictor).

    Raises
    ------
    DataError
        A grouping factor has levels not seen in fitting and ``allow_new_levels`` is False.
    """
    X = design.fixed_matrix(nd)
    eta = np.asarray(X @ beta).ravel()
    if design.parsed.offsets:
        from ..design import evaluate
        from ..formula import deparse

        for node in design.parsed.offsets:
            try:
                eta = eta + np.asarray(evaluate(node, nd), dtype=float)
            except KeyError as exc:
                raise DataError(f"newdata has no column {exc.args[0]!r}, which the model's "
                                f"offset({deparse(node)}) needs") from None
    codes_list, Xs = [], []
    for k in idx:
        t = design.re_terms[k]
        codes = t.codes_for(nd)
        new = codes < 0
        if new.any() and not allow_new_levels:
            shown = pd.unique(pd.Series(labels(nd, t.factors)[new]))[:5]
            raise DataError(
                f"new levels in grouping factor {t.group!r}: {list(shown)}; "
                "use allow_new_levels=True to predict them at the population level (random effects 0)"
            )
        codes_list.append(codes)
        Xs.append(t.model_matrix(nd))
    return eta + random_part(b, idx, codes_list, Xs, len(nd))


def labels(frame: pd.DataFrame, factors) -> np.ndarray:
    """The level label of each row of a grouping factor made of ``factors`` (``a:b``)."""
    parts = [frame[f].astype(str).to_numpy(dtype=object) for f in factors]
    out = parts[0]
    for p in parts[1:]:
        out = out + ":" + p
    return out


# ----------------------------------------------------------------- update
def update_formula(old: str, new: str) -> str:
    """R's ``update.formula`` for the common cases: a lone ``.`` stands for the
    old side (``". ~ . + x"``, ``". ~ . - Days"``); subtracted terms are removed.
    """
    if "~" not in new:
        raise FormulaError(f"the new formula needs a '~': {new!r}")
    o_lhs, o_rhs = (part.strip() for part in old.split("~", 1))
    n_lhs, n_rhs = (part.strip() for part in new.split("~", 1))
    lone_dot = re.compile(r"(?<![\w.])\.(?![\w.])")
    lhs = o_lhs if n_lhs in ("", ".") else lone_dot.sub(o_lhs, n_lhs)
    rhs = lone_dot.sub(lambda _: o_rhs, n_rhs)
    return drop_subtracted(f"{lhs} ~ {rhs}")


def drop_subtracted(formula: str) -> str:
    """Remove the terms a formula subtracts (``+ Days ... - Days``), bars included."""
    from ..formula import deparse, parse_expression
    from ..formula._parsed import _flatten_plus

    lhs, rhs = formula.split("~", 1)
    terms: list = []
    _flatten_plus(parse_expression(rhs), "+", terms)

    def key(node):
        while node.kind == "paren" and node.args[0].kind == "paren":
            node = node.args[0]
        return deparse(node).replace(" ", "")

    removed = {key(n) for sgn, n in terms if sgn == "-" and n.kind != "number"}
    if not removed:
        return formula
    kept = [(sgn, n) for sgn, n in terms if not (sgn == "+" and key(n) in removed) and not
            (sgn == "-" and n.kind != "number")]
    text = " ".join(("- " if sgn == "-" else "+ ") + deparse(n) for sgn, n in kept).lstrip("+ ").strip()
    return f"{lhs.strip()} ~ {text or '1'}"


# ---------------------------------------------------------------- printing
def r_formula(design) -> object:
    """The formula as lme4 keeps it in the call: ``(x || g)`` expanded to
    ``((1 | g) + (0 + x | g))`` (lme4's ``expandDoubleVerts``), the rest as written."""
    from dataclasses import replace as _replace

    from ..formula import Node

    parsed = design.parsed
    pieces: dict = {}
    for b in parsed.bars:  # per bar as written, its pieces' left-hand sides in order
        pieces.setdefault(b.node, {}).setdefault(b.lhs_text, b.lhs)

    def inner_of(node):
        while node.kind == "paren":
            node = node.args[0]
        return node

    def expand(node):
        if node.kind == "paren" and node in pieces and inner_of(node).is_op("||"):
            rhs = inner_of(node).args[1]
            terms = []
            for lhs in pieces[node].values():
                left = Node("number", "1") if lhs is None else lhs
                terms.append(Node("paren", "()", (Node("binary", "|", (left, rhs)),)))
            acc = terms[0]
            for t in terms[1:]:
                acc = Node("binary", "+", (acc, t))
            return Node("paren", "()", (acc,))
        if not node.args:
            return node
        return _replace(node, args=tuple(expand(a) for a in node.args))

    return expand(parsed.root)


def title_lines(title: str, cls: str) -> list[str]:
    """lme4's ``.prt.methTit``: the title and the class tag, wrapped at the console width.

    On one line the tag is quoted (``['glmerMod']``); a title too long for
    one line is wrapped by ``strwrap`` and ends with `` [glmerMod]``.
    """
    if len(title) + 5 + len(cls) > _fmt.WIDTH:
        parts = _fmt.strwrap(title, _fmt.WIDTH - 2, exdent=2)
        return _fmt.cat_fill(parts + [" [", cls, "]"], sep="")
    return [f"{title} ['{cls}']"]


def corr_lines(V: np.ndarray, names, show: bool | None) -> list[str]:
    """lme4's correlation of the fixed effects from their covariance ``V``, or its note when p > 12."""
    p = V.shape[0]
    if show is None:
        show = p <= COR_MAX
        if not show:
            return ["", f"Correlation matrix not shown by default, as p = {p} > {COR_MAX}.",
                    "Use print(x, correlation=TRUE)  or",
                    "    vcov(x)        if you need it", ""]
    if not show or p < 2:
        return []
    sd = np.sqrt(np.diag(V))
    C = V / np.outer(sd, sd)
    names = list(names)
    txt = _fmt.format_real(_fmt.round_r(C.T.ravel(), 3), nsmall=3)
    cells = [[txt[j * p + i] if i > j else "" for j in range(p - 1)] for i in range(1, p)]
    rows = _fmt.abbreviate_all(names, 11)[1:]
    cols = _fmt.abbreviate_all(names, 6)[: p - 1]
    return ["", "Correlation of Fixed Effects:"] + _fmt.print_matrix(cells, rows, cols)


_OPTIMIZER_NAMES = {"lbfgsb": "L-BFGS-B", "bobyqa": "COBYQA", "cobyqa": "COBYQA",
                    "nelder-mead": "Nelder-Mead", "powell": "Powell"}


def warning_lines(design, opt, messages, brief: bool = False) -> list[str]:
    """lme4's fit warnings and its optimizer line (``.prt.warn``), pymlm's optimizer named.

    ``brief``: as lme4's short print of a fit, the optimizer line counts the
    messages instead of listing them."""
    out = []
    dropped = design.dropped_columns
    if dropped:
        k = len(dropped)
        out += ["fit warnings:", ("fixed-effect model matrix is rank deficient so dropping "
                                  f"{k} {'column / coefficient' if k == 1 else 'columns / coefficients'}")]
    msgs = list(messages)
    code = 0 if opt.success else max(1, abs(int(getattr(opt, "status", 1) or 1)))
    if code or msgs:
        name = _OPTIMIZER_NAMES.get(opt.method, opt.method)
        state = "(OK)" if code == 0 else f"({opt.message})"
        line = f"optimizer ({name}) convergence code: {code} {state}"
        if brief:
            out.append(f"{line} ; 0 optimizer warnings; {len(msgs)} lme4 warnings ")
        else:
            out.append(line)
            out += msgs + [""]  # cat(sep = "\n") ends with a newline, then lme4 adds one
    return out
