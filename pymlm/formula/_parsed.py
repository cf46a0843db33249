"""From a formula string to a :class:`ParsedFormula`.

lme4's rules, as ``findbars``/``nobars``/``expandDoubleVerts`` apply them:

- a random-effects term is a parenthesized ``(lhs | group)`` or
  ``(lhs || group)`` joined to the rest by ``+``;
- ``(x || g)`` is ``(1 | g) + (0 + x | g)``: one uncorrelated term per term
  of the left-hand side (a factor stays one term);
- ``(1 | g1/g2)`` is ``(1 | g2:g1) + (1 | g1)``, in that order, and deeper
  nesting ``g1/g2/g3`` gives ``g3:g2:g1``, ``g2:g1``, ``g1``;
- everything else on the right-hand side is the fixed part, handed to
  formulaic; ``offset(x)`` terms are collected apart, and mgcv smooths
  (``s()``, ``te()``, ``ti()``, ``t2()``) are kept as calls for the smooth
  builders.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .._validation import check_formula
from ..errors import FormulaError
from ._ast import Node, deparse, names_in, parse_expression
from ._terms import expand_terms

__all__ = ["BarTerm", "ParsedFormula", "SmoothCall", "parse_formula"]

SMOOTH_FUNCTIONS = ("s", "te", "ti", "t2")


@dataclass(frozen=True)
class BarTerm:
    """One random-effects term ``(lhs | group)`` after lme4's expansions.

    Attributes
    ----------
    lhs : Node or None
        Left-hand side expression (``None`` for a bare intercept ``1``).
    lhs_text : str
        The left-hand side as R source, e.g. ``"1 + Days"`` or ``"0 + Days"``.
    group_factors : tuple of str
        Columns whose interaction forms the grouping factor, outermost first
        as written (``("cask", "batch")`` for ``cask:batch``).
    group_name : str
        lme4's name of the grouping factor, e.g. ``"cask:batch"``.
    node : Node
        The whole bar term as written (for error messages).
    """

    lhs: Node | None
    lhs_text: str
    group_factors: tuple[str, ...]
    group_name: str
    node: Node

    @property
    def label(self) -> str:
        return f"{self.lhs_text} | {self.group_name}"


@dataclass(frozen=True)
class SmoothCall:
    """An mgcv smooth term such as ``s(x0, bs = "cr", k = 10)``, unparsed."""

    node: Node

    @property
    def function(self) -> str:
        return self.node.value

    @property
    def label(self) -> str:
        return deparse(self.node)


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split the way lme4 and mgcv read it.

    Attributes
    ----------
    formula : str
        The formula as given.
    response : Node or None
        Left-hand side of ``~``.
    fixed_terms : tuple of (sign, Node)
        The fixed-effect terms in order; sign is ``"+"`` or ``"-"``.
    bars : tuple of BarTerm
        Random-effects terms after expanding ``||`` and ``/``, in lme4's
        ``findbars`` order (before sorting by number of levels).
    smooths : tuple of SmoothCall
    offsets : tuple of Node
        Arguments of ``offset()`` terms.
    """

    formula: str
    response: Node | None
    fixed_terms: tuple[tuple[str, Node], ...]
    bars: tuple[BarTerm, ...] = ()
    smooths: tuple[SmoothCall, ...] = ()
    offsets: tuple[Node, ...] = ()
    root: Node | None = field(default=None, compare=False, repr=False)

    @property
    def response_text(self) -> str | None:
        return None if self.response is None else deparse(self.response)

    @property
    def fixed_text(self) -> str:
        """The fixed part as R source: ``"1 + Days"``, ``"0 + f"``..."""
        out = ""
        for sign, node in self.fixed_terms:
            text = deparse(node)
            if not out:
                out = text if sign == "+" else f"-{text}"
            else:
                out += f" {sign} {text}"
        return out or "1"

    def variables(self) -> list[str]:
        """Names referenced anywhere in the formula, in order, without repeats."""
        seen: dict[str, None] = {}
        if self.root is not None:
            for n in names_in(self.root):
                seen.setdefault(n.value, None)
        return list(seen)


def _flatten_plus(node: Node, sign: str, out: list[tuple[str, Node]]):
    """Split a ``+``/``-`` chain into signed terms (parentheses kept)."""
    if node.is_op("+"):
        _flatten_plus(node.args[0], sign, out)
        _flatten_plus(node.args[1], sign, out)
    elif node.is_op("-"):
        _flatten_plus(node.args[0], sign, out)
        _flatten_plus(node.args[1], "-" if sign == "+" else "+", out)
    elif node.kind == "unary" and node.value == "-":
        _flatten_plus(node.args[0], "-" if sign == "+" else "+", out)
    elif node.kind == "unary" and node.value == "+":
        _flatten_plus(node.args[0], sign, out)
    else:
        out.append((sign, node))


def _find_bar(node: Node) -> Node | None:
    if node.is_op("|", "||"):
        return node
    for a in node.args:
        hit = _find_bar(a)
        if hit is not None:
            return hit
    return None


def _has_slash(node: Node) -> bool:
    return node.is_op("/") or any(_has_slash(a) for a in node.args)


def _slash_terms(node: Node, formula: str):
    """lme4's ``slashTerms``: ``a/b/c`` -> ``[[a, b], c]`` (nodes without '/' kept)."""
    if not _has_slash(node):
        return node
    while node.kind == "paren":
        node = node.args[0]
    if not node.is_op("/"):
        raise FormulaError(
            "a nested grouping (a/b) cannot be part of an interaction in a random-effects term; "
            "write it as a/b or as a:b",
            formula, node.span,
        )
    return [_slash_terms(node.args[0], formula), _slash_terms(node.args[1], formula)]


def _make_interaction(x):
    """lme4's ``makeInteraction``: ``[[a, b], c]`` -> ``[c:(b:a), [b:a, a]]``."""
    if not isinstance(x, list):
        return x
    inner = _make_interaction(x[0])
    first = inner[0] if isinstance(inner, list) else inner
    return [Node("binary", ":", (x[1], first)), inner]


def _flatten(x) -> list[Node]:
    if isinstance(x, list):
        return [n for item in x for n in _flatten(item)]
    return [x]


def _check_group_expr(node: Node, formula: str):
    if node.kind == "paren":
        return _check_group_expr(node.args[0], formula)
    if node.kind == "name":
        return
    if node.is_op(":"):
        _check_group_expr(node.args[0], formula)
        _check_group_expr(node.args[1], formula)
        return
    raise FormulaError(
        "the right-hand side of '|' must be a grouping factor, an interaction g1:g2 "
        "or a nesting g1/g2",
        formula, node.span,
    )


def _call_around_bar(node: Node) -> Node | None:
    """The outermost function call that has a bar among its arguments, if any."""
    if node.kind == "call" and _find_bar(node) is not None:
        return node
    for a in node.args:
        hit = _call_around_bar(a)
        if hit is not None:
            return hit
    return None


def _bar_in_parens(node: Node) -> Node | None:
    """The first parenthesized ``(lhs | g)`` inside ``node``, if any."""
    if node.kind == "paren":
        inner = node.args[0]
        while inner.kind == "paren":
            inner = inner.args[0]
        if inner.is_op("|", "||"):
            return node
    for a in node.args:
        hit = _bar_in_parens(a)
        if hit is not None:
            return hit
    return None


def _group_factor_lists(node: Node, formula: str) -> list[tuple[tuple[str, ...], str]]:
    """The grouping factors of a bar's right-hand side, expanded and named as lme4 does.

    Returns ``(columns, name)`` pairs: ``g`` -> ``[((g,), "g")]``;
    ``a:b`` -> ``[((a, b), "a:b")]``; ``a/b`` -> ``[((b, a), "b:a"), ((a,), "a")]``;
    ``a/b/c`` -> ``[((c, b, a), "c:(b:a)"), ((b, a), "b:a"), ((a,), "a")]``.
    The columns are listed in the order their levels nest in R's interaction
    (first slowest), which is the order of appearance in the name.
    """
    out = []
    for expr in _flatten(_make_interaction(_slash_terms(node, formula))):
        _check_group_expr(expr, formula)
        columns = tuple(dict.fromkeys(n.value for n in names_in(expr)))
        while expr.kind == "paren":
            expr = expr.args[0]
        out.append((columns, deparse(expr)))
    return out


def _lhs_terms(lhs: Node) -> list[tuple[str, Node]]:
    terms: list[tuple[str, Node]] = []
    _flatten_plus(lhs, "+", terms)
    return terms


def _intercept_state(terms: list[tuple[str, Node]]) -> tuple[bool, list[Node]]:
    """(has intercept, the non-intercept terms) of a bar's left-hand side."""
    intercept = True
    rest: list[Node] = []
    for sign, node in terms:
        if node.kind == "number" and node.value in ("0", "1"):
            if node.value == "1":
                intercept = sign == "+"
            else:
                intercept = sign == "-"
            continue
        if sign == "-":
            raise FormulaError(
                "only '- 1' or '+ 0' may be subtracted on the left of a random-effects bar",
                node.source, node.span,
            )
        rest.append(node)
    return intercept, rest


def _text(intercept: bool, rest: list[Node]) -> str:
    parts = [deparse(n) for n in rest]
    if not intercept:
        return " + ".join(["0"] + parts)
    return " + ".join(["1"] + parts) if parts else "1"


def _bars_from(term: Node, formula: str) -> list[BarTerm]:
    paren = term
    inner = paren.args[0]
    while inner.kind == "paren":  # ((1 | g)) is still a bar
        inner = inner.args[0]
    if not inner.is_op("|", "||"):
        bar = _find_bar(inner)
        raise FormulaError(
            "a random-effects bar must be the whole content of its parentheses, "
            "as in (1 + x | g)",
            formula, bar.span if bar is not None else paren.span,
        )
    lhs, rhs = inner.args
    if _find_bar(lhs) is not None or _find_bar(rhs) is not None:
        raise FormulaError("a random-effects term has more than one bar", formula, paren.span)
    groups = _group_factor_lists(rhs, formula)
    intercept, rest = _intercept_state(_lhs_terms(lhs))
    if not intercept and not rest:
        raise FormulaError(
            "this random-effects term has no columns (0 with nothing else); add a term or '1'",
            formula, paren.span,
        )
    if inner.value == "||":
        # lme4's expandDoubleVerts: one term per term label of the left-hand side
        # (so x*f gives x, f and x:f), plus the intercept when there is one.
        expanded = expand_terms(_lhs_terms(lhs), formula)
        pieces: list[tuple[bool, list[Node]]] = [(True, [])] if expanded.intercept else []
        pieces.extend(
            (False, [_interaction_node(expanded.variables, term, formula)]) for term in expanded.terms
        )
        lhs_nodes = [None if icpt and not nodes else _zero_plus(nodes[0], formula) for icpt, nodes in pieces]
    else:
        pieces = [(intercept, rest)]
        lhs_nodes = [None if intercept and not rest else lhs]
    # lme4 expands '||' before '/', so the terms run piece by piece, then
    # grouping factor by grouping factor; the order matters for ties when the
    # terms are later sorted by number of levels.
    bars = []
    for (icpt, nodes), sub in zip(pieces, lhs_nodes):
        for factors, name in groups:
            bars.append(BarTerm(sub, _text(icpt, nodes), factors, name, paren))
    return bars


def _interaction_node(variables, term, formula: str) -> Node:
    """``a:b`` built from the formula's own variable nodes (so errors point into it)."""
    node = variables[term[0]]
    for i in term[1:]:
        right = variables[i]
        span = (min(node.span[0], right.span[0]), max(node.span[1], right.span[1]))
        node = Node("binary", ":", (node, right), (), span, formula)
    return node


def _zero_plus(node: Node, formula: str) -> Node:
    """``0 + node``: a term without intercept."""
    zero = Node("number", "0", (), (), (node.span[0], node.span[0]), formula)
    return Node("binary", "+", (zero, node), (), node.span, formula)


def parse_formula(formula: str) -> ParsedFormula:
    """Split an lme4/mgcv formula into response, fixed, random and smooth parts.

    Parameters
    ----------
    formula : str
        e.g. ``"Reaction ~ Days + (Days | Subject)"``.

    Returns
    -------
    ParsedFormula

    Raises
    ------
    FormulaError
        Unbalanced parentheses, a bar outside parentheses, a bar whose
        right-hand side is not a grouping factor, a missing ``~``. The message
        marks the offending part of the formula.

    Examples
    --------
    >>> p = parse_formula("y ~ x + (x || g)")
    >>> [b.label for b in p.bars]
    ['1 | g', '0 + x | g']
    >>> [b.group_name for b in parse_formula("y ~ (1 | batch/cask)").bars]
    ['cask:batch', 'batch']
    """
    formula = check_formula(formula)
    if "~" not in formula and formula.strip():
        # before parsing, so that "this is not a formula" is told what a formula is
        raise FormulaError(
            "the formula has no '~': a model formula is written 'response ~ terms', "
            "e.g. 'y ~ x + (1 | g)'", formula, (0, len(formula))
        )
    root = parse_expression(formula)
    if root.kind == "binary" and root.value == "~":
        response, rhs = root.args
    elif root.kind == "unary" and root.value == "~":
        response, rhs = None, root.args[0]
    else:
        raise FormulaError(
            "the formula has no '~' at its top level; write it as 'response ~ terms'",
            formula, (0, len(formula))
        )
    _check_one_tilde(root, formula)
    if response is not None and _find_bar(response) is not None:
        bar = _find_bar(response)
        raise FormulaError("a random-effects bar cannot be on the left of '~'", formula, bar.span)
    terms: list[tuple[str, Node]] = []
    _flatten_plus(rhs, "+", terms)
    fixed: list[tuple[str, Node]] = []
    bars: list[BarTerm] = []
    smooths: list[SmoothCall] = []
    offsets: list[Node] = []
    for sign, node in terms:
        bar = _find_bar(node)
        if node.kind == "paren" and bar is not None:
            if sign == "-":
                raise FormulaError("a random-effects term cannot be subtracted", formula, node.span)
            bars.extend(_bars_from(node, formula))
            continue
        if bar is not None:
            call = _call_around_bar(node)
            if call is not None:
                raise FormulaError(
                    f"a random-effects term cannot be an argument of {call.value}(); if "
                    f"{call.value!r} is a column, a '+' is missing before its '('",
                    formula, call.span,
                )
            wrapped = _bar_in_parens(node)
            if wrapped is not None:
                raise FormulaError(
                    f"the random-effects term {wrapped.text} must be joined to the rest of the "
                    "formula with '+', not used inside another term",
                    formula, wrapped.span,
                )
            gap = formula[bar.args[0].span[1]: bar.args[1].span[0]]
            at = bar.args[0].span[1] + gap.index(bar.value)
            raise FormulaError(
                f"'{bar.value}' outside parentheses: write random-effects terms as "
                f"(lhs {bar.value} group), e.g. (1 | g)",
                formula, (at, at + len(bar.value)),
            )
        if node.kind == "call" and node.value in SMOOTH_FUNCTIONS:
            smooths.append(SmoothCall(node))
            continue
        if node.kind == "call" and node.value == "offset":
            if len(node.args) != 1:
                raise FormulaError("offset() takes exactly one argument", formula, node.span)
            offsets.append(node.args[0])
            continue
        fixed.append((sign, node))
    _check_bar_overlap(bars, formula)
    return ParsedFormula(formula, response, tuple(fixed), tuple(bars), tuple(smooths), tuple(offsets), root)


def _tilde_positions(node: Node, formula: str, out: list[int]):
    """Offsets of every '~' operator below ``node`` (the formula's own and any nested one)."""
    if node.kind == "unary" and node.value == "~":
        out.append(node.span[0])
    elif node.kind == "binary" and node.value == "~":
        left, right = node.args
        gap = formula[left.span[1]: right.span[0]]
        out.append(left.span[1] + gap.index("~"))
    for a in node.args:
        _tilde_positions(a, formula, out)


def _check_one_tilde(root: Node, formula: str):
    """A formula has exactly one '~'; ``y ~ x ~ z`` is refused at its second one."""
    at: list[int] = []
    _tilde_positions(root, formula, at)
    if len(at) > 1:
        second = sorted(at)[1]
        raise FormulaError(
            "the formula has more than one '~'; a formula has one, between the response and the "
            "terms: 'response ~ terms'. Remove this one (or join the terms with '+')",
            formula, (second, second + 1),
        )


def _bar_columns(bar: BarTerm, formula: str) -> set:
    """A bar's left-side terms, each as a set of variable texts; ``{"1"}`` is the intercept."""
    if bar.lhs is None:
        return {frozenset(["1"])}
    tl = expand_terms(_lhs_terms(bar.lhs), formula)
    out = {frozenset(deparse(tl.variables[i]) for i in term) for term in tl.terms}
    if tl.intercept:
        out.add(frozenset(["1"]))
    return out


def _check_bar_overlap(bars: list[BarTerm], formula: str):
    """Refuse a random-effect column given twice for one grouping factor.

    ``(1 | g) + (1 | g)``, ``(x | g) + (1 | g)`` or ``(x || g) + (1 | g)``
    repeat a column of the same grouping factor in two terms: only the sum
    of the two variances is identifiable, so the fit would be
    over-parametrized (lme4 fits it, with convergence warnings at best).
    """
    seen: dict[str, list[tuple[set, BarTerm]]] = {}
    for bar in bars:
        cols = _bar_columns(bar, formula)
        for other_cols, other in seen.get(bar.group_name, []):
            common = cols & other_cols
            if not common:
                continue
            if other.node.text == bar.node.text:
                what = f"the random-effects term {bar.node.text} is given twice"
                todo = "keep one"
            else:
                parts = sorted("the intercept" if c == frozenset(["1"]) else ":".join(sorted(c))
                               for c in common)
                what = (f"{' and '.join(parts)} of grouping factor {bar.group_name!r} "
                        f"{'is' if len(parts) == 1 else 'are'} in two random-effects terms, "
                        f"{other.node.text} and {bar.node.text}")
                todo = f"put each column of {bar.group_name!r} in one term only"
            raise FormulaError(
                f"{what}: the variances of the repeated columns cannot be told apart (the model is "
                f"over-parametrized); {todo}",
                formula, bar.node.span,
            )
        seen.setdefault(bar.group_name, []).append((cols, bar))
