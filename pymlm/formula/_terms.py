"""R's expansion of a model formula's right-hand side into terms.

R (``terms.formula``, after Chambers and Hastie 1992, *Statistical Models in
S*, ch. 2) reads the operators of a formula as operations on sets of
*terms*, each term a set of *variables*:

- ``a + b``: the union of the terms, first occurrence kept;
- ``a:b``: every term of ``a`` joined with every term of ``b``;
- ``a * b``: ``a + b + a:b``;
- ``a / b``: ``a + (b %in% a)``, each term of ``b`` joined with all the
  variables of ``a``;
- ``a %in% b``: each term of ``a`` joined with all the variables of ``b``;
- ``(a + b)^k``: all interactions up to order ``k``;
- ``a - b``: the terms of ``a`` that are not terms of ``b``; ``- 1`` and
  ``+ 0`` remove the intercept, ``+ 1`` and ``- 0`` put it back.

Variables are numbered in the order they first appear in the formula; within
a term they are listed in that order (so ``x:f`` is labelled ``"f:x"`` when
``f`` appears first), and terms are sorted by their number of variables,
keeping the order of appearance among terms of equal size.

Whether a factor enters a term through contrasts or through one indicator per
level is R's heuristic (``TermCode`` in R's ``src/library/stats/src/model.c``):
the factor is coded by contrasts when the term without that factor is empty or
contained in a term that comes earlier; otherwise by indicators.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FormulaError
from ._ast import Node, deparse

__all__ = ["TermList", "expand_terms", "term_label"]


@dataclass(frozen=True)
class TermList:
    """The expanded right-hand side of a formula.

    Attributes
    ----------
    intercept : bool
        Whether the model has an intercept.
    variables : tuple of Node
        Distinct variables (names or calls such as ``log(z)``, ``I(x^2)``) in
        order of first appearance.
    terms : tuple of tuple of int
        Each term as the sorted indices of its variables; terms sorted by
        order (number of variables), stably.
    """

    intercept: bool
    variables: tuple[Node, ...]
    terms: tuple[tuple[int, ...], ...]

    @property
    def labels(self) -> list[str]:
        """R's ``term.labels``, e.g. ``["x", "f", "x:f"]``."""
        return [term_label(self.variables, t) for t in self.terms]

    def contrast_coded(self, term_index: int, variable: int) -> bool:
        """R's ``TermCode``: does ``variable`` enter term ``term_index`` through contrasts?

        ``True``: through contrasts (code 1 in R's ``factors`` attribute);
        ``False``: through one indicator per level (code 2). The adjustment for
        models without an intercept is made by the caller, which knows which
        variables are factors.
        """
        rest = set(self.terms[term_index]) - {variable}
        if not rest:
            return True
        return any(rest <= set(t) for t in self.terms[:term_index])


def term_label(variables, term) -> str:
    """``"a:b"`` from variable nodes and a term's variable indices."""
    return ":".join(deparse(variables[i]) for i in term)


class _Encoder:
    """Turns formula nodes into lists of terms (bit masks over variables)."""

    def __init__(self, formula: str | None):
        self.formula = formula
        self.keys: dict[str, int] = {}
        self.variables: list[Node] = []
        self.intercept = True

    def error(self, message: str, node: Node) -> FormulaError:
        return FormulaError(message, node.source or self.formula, node.span if node.source else None)

    def variable(self, node: Node) -> int:
        key = deparse(node)
        if key not in self.keys:
            self.keys[key] = len(self.variables)
            self.variables.append(node)
        return 1 << self.keys[key]

    def encode(self, node: Node, parity: bool = True) -> list[int]:
        k = node.kind
        if k == "paren":
            return self.encode(node.args[0], parity)
        if k == "number":
            if node.value in ("0", "1"):
                # '+ 1' / '- 0' ask for the intercept, '+ 0' / '- 1' remove it.
                self.intercept = (node.value == "1") == parity
                return []
            raise self.error(
                f"the number {node.value} cannot be a term of a formula; use 1 or 0 for the "
                "intercept, or wrap arithmetic in I()",
                node,
            )
        if k == "name":
            if node.value == ".":
                raise self.error("'.' (all other columns) is not supported; list the columns", node)
            return [self.variable(node)]
        if k == "string":
            raise self.error("a string cannot be a term of a formula", node)
        if k == "call":
            return [self.variable(node)]
        if k == "unary":
            if node.value == "+":
                return self.encode(node.args[0], parity)
            if node.value == "-":
                self.encode(node.args[0], not parity)
                return []
            raise self.error(f"'{node.value}' cannot start a term; wrap it in I()", node)
        op = node.value
        left, right = node.args
        if op == "+":
            return _unique(self.encode(left, parity) + self.encode(right, parity))
        if op == "-":
            lhs = self.encode(left, parity)
            drop = set(self.encode(right, not parity))
            return [t for t in lhs if t not in drop]
        if op == ":":
            lhs, rhs = self.encode(left, parity), self.encode(right, parity)
            return _unique([a | b for a in lhs for b in rhs])
        if op == "*":
            lhs, rhs = self.encode(left, parity), self.encode(right, parity)
            if not lhs:  # as R (CrossTerms): an empty left side empties the product, 1*x is 1
                return []
            return _unique(lhs + rhs + [a | b for a in lhs for b in rhs])
        if op == "%in%":
            lhs, rhs = self.encode(left, parity), self.encode(right, parity)
            every = _union(rhs)
            return _unique([a | every for a in lhs])
        if op == "/":
            lhs, rhs = self.encode(left, parity), self.encode(right, parity)
            if not lhs:  # as R (NestTerms): 1/x is 1
                return []
            every = _union(lhs)
            return _unique(lhs + [b | every for b in rhs])
        if op == "^":
            base = self.encode(left, parity)
            power = _power(right)
            if power is None:
                raise self.error(
                    "the power of a formula term must be a positive whole number, as in "
                    "(a + b)^2; for arithmetic write I(x^2)",
                    node,
                )
            out = base
            for _ in range(power - 1):
                out = _unique([a | b for a in base for b in out])
            return out
        raise self.error(
            f"'{op}' is not a formula operator; wrap arithmetic in I(), e.g. I({deparse(node)})", node
        )


def _unique(terms: list[int]) -> list[int]:
    seen: dict[int, None] = {}
    for t in terms:
        if t:
            seen.setdefault(t, None)
    return list(seen)


def _union(terms: list[int]) -> int:
    out = 0
    for t in terms:
        out |= t
    return out


def _power(node: Node) -> int | None:
    while node.kind == "paren":
        node = node.args[0]
    if node.kind != "number":
        return None
    try:
        value = float(node.value)
    except ValueError:
        return None
    return int(value) if value >= 1 and value.is_integer() else None


def _bits(mask: int) -> tuple[int, ...]:
    return tuple(i for i in range(mask.bit_length()) if mask >> i & 1)


def expand_terms(signed_terms, formula: str | None = None) -> TermList:
    """Expand signed top-level terms into R's term list.

    Parameters
    ----------
    signed_terms : sequence of (str, Node)
        ``("+" | "-", node)`` pairs, as :attr:`ParsedFormula.fixed_terms`.
    formula : str, optional
        For error messages.

    Returns
    -------
    TermList

    Raises
    ------
    FormulaError
        An operator that is not a formula operator outside ``I()``, a bad
        power, a number other than 0 or 1 as a term.

    Examples
    --------
    >>> from pymlm.formula import parse_formula
    >>> expand_terms(parse_formula("y ~ (x + f + z)^2").fixed_terms).labels
    ['x', 'f', 'z', 'x:f', 'x:z', 'f:z']
    >>> expand_terms(parse_formula("y ~ x:f + f").fixed_terms).labels
    ['f', 'x:f']
    """
    enc = _Encoder(formula)
    masks: list[int] = []
    for sign, node in signed_terms:
        if sign == "+":
            masks = _unique(masks + enc.encode(node, True))
        else:
            drop = set(enc.encode(node, False))
            masks = [m for m in masks if m not in drop]
    # R sorts by order (number of variables), stable among equals.
    masks.sort(key=lambda m: m.bit_count())
    return TermList(enc.intercept, tuple(enc.variables), tuple(_bits(m) for m in masks))
