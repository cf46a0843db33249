"""A small parser for R model formulas.

R's formula language is R's expression grammar with a few operators read
differently (``+ - * / : ^ |``). This module turns a formula string into a
tree of :class:`Node` objects that remember where in the string they came
from, so that errors can mark the offending part, and renders sub-trees back
as R source text (for names, as R's ``deparse`` writes them) or as Python
source (for formulaic and for evaluating responses and offsets).
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field

from ..errors import FormulaError

__all__ = ["Node", "deparse", "names_in", "parse_expression", "to_python"]

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?L?)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')
  | (?P<backtick>`[^`]*`)
  | (?P<name>[A-Za-z_.][A-Za-z0-9_.]*)
  | (?P<op>%[^%]*%|\|\||&&|\*\*|<=|>=|==|!=|[~+\-*/:^|&!<>(),=\[\]$])
    """,
    re.VERBOSE,
)

# Binary operators: (left binding power, right binding power). R's precedence,
# highest first: ^ (right assoc.), unary minus, :, %any%, * /, + -, comparison,
# !, & &&, | ||, ~.
_BINARY = {
    "~": (10, 11),
    "|": (20, 21),
    "||": (20, 21),
    "&": (30, 31),
    "&&": (30, 31),
    "==": (50, 51),
    "!=": (50, 51),
    "<": (50, 51),
    "<=": (50, 51),
    ">": (50, 51),
    ">=": (50, 51),
    "+": (60, 61),
    "-": (60, 61),
    "*": (70, 71),
    "/": (70, 71),
    "%%": (80, 81),  # any %op%
    ":": (90, 91),
    "^": (111, 110),  # right associative
}
_UNARY_MINUS_BP = 100
_NOT_BP = 40


@dataclass(frozen=True)
class Node:
    """One node of a parsed formula.

    ``kind`` is one of ``"name"``, ``"number"``, ``"string"``, ``"binary"``,
    ``"unary"``, ``"call"``, ``"paren"``; ``value`` holds the name, literal
    text or operator; ``args`` the children (for calls: positional and
    keyword arguments, keywords in ``keywords`` at the same index);
    ``span`` the ``(start, end)`` offsets in the source string.
    """

    kind: str
    value: str
    args: tuple[Node, ...] = ()
    keywords: tuple[str | None, ...] = ()
    span: tuple[int, int] = (0, 0)
    source: str = field(default="", compare=False, repr=False)

    @property
    def text(self) -> str:
        """The source text this node was parsed from."""
        return self.source[self.span[0]: self.span[1]]

    def is_op(self, *ops: str) -> bool:
        return self.kind == "binary" and self.value in ops


@dataclass
class _Tok:
    kind: str
    text: str
    start: int
    end: int


def _tokenize(source: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:
            raise FormulaError(
                f"unexpected character {source[pos]!r} in the formula", source, (pos, pos + 1)
            )
        kind = m.lastgroup
        text = m.group()
        if kind == "op" and text == "**":
            text = "^"
        if kind != "ws":
            toks.append(_Tok(kind, text, m.start(), m.end()))
        pos = m.end()
    toks.append(_Tok("end", "", len(source), len(source)))
    return toks


class _Parser:
    def __init__(self, source: str):
        self.source = source
        self.toks = _tokenize(source)
        self.i = 0
        self.open_parens: list[int] = []

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def node(self, kind, value, start, end, args=(), keywords=()) -> Node:
        return Node(kind, value, tuple(args), tuple(keywords), (start, end), self.source)

    def error(self, message: str, start: int, end: int) -> FormulaError:
        return FormulaError(message, self.source, (start, end))

    def expect_close(self, opener: _Tok) -> _Tok:
        tok = self.peek()
        if tok.kind == "op" and tok.text == ")":
            return self.take()
        if tok.kind == "end":
            raise self.error(
                "unbalanced parentheses: this '(' is never closed; add the missing ')'",
                opener.start, opener.end,
            )
        raise self.error(f"expected ')' but found {tok.text!r}", tok.start, tok.end)

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise FormulaError("the formula is empty; write it as 'response ~ terms'")
        node = self.expr(0)
        tok = self.peek()
        if tok.kind != "end":
            if tok.text == ")":
                raise self.error(
                    "unbalanced parentheses: this ')' has no matching '('; remove it or add a '('",
                    tok.start, tok.end,
                )
            raise self.error(f"unexpected {tok.text!r}", tok.start, tok.end)
        return node

    def expr(self, min_bp: int) -> Node:
        left = self.prefix()
        while True:
            tok = self.peek()
            if tok.kind != "op":
                if tok.kind == "end":
                    break
                raise self.error(
                    f"unexpected {tok.text!r}: an operator (such as '+') is missing before it",
                    tok.start, tok.end,
                )
            op = "%%" if tok.text.startswith("%") else tok.text
            if op not in _BINARY:
                break
            lbp, rbp = _BINARY[op]
            if lbp < min_bp:
                break
            self.take()
            if self.peek().kind == "end" or (self.peek().kind == "op" and self.peek().text == ")"):
                raise self.error(f"the operator {tok.text!r} has nothing on its right", tok.start, tok.end)
            right = self.expr(rbp)
            left = self.node("binary", tok.text, left.span[0], right.span[1], (left, right))
        return left

    def prefix(self) -> Node:
        tok = self.take()
        if tok.kind == "number":
            return self.node("number", tok.text.rstrip("L"), tok.start, tok.end)
        if tok.kind == "string":
            return self.node("string", tok.text[1:-1], tok.start, tok.end)
        if tok.kind in ("name", "backtick"):
            name = tok.text[1:-1] if tok.kind == "backtick" else tok.text
            nxt = self.peek()
            if tok.kind == "name" and nxt.kind == "op" and nxt.text == "(":
                return self.call(name, tok)
            return self.node("name", name, tok.start, tok.end)
        if tok.kind == "op":
            if tok.text == "(":
                inner = self.expr(0)
                close = self.expect_close(tok)
                return self.node("paren", "()", tok.start, close.end, (inner,))
            if tok.text in ("-", "+"):
                operand = self.expr(_UNARY_MINUS_BP)
                return self.node("unary", tok.text, tok.start, operand.span[1], (operand,))
            if tok.text == "!":
                operand = self.expr(_NOT_BP)
                return self.node("unary", "!", tok.start, operand.span[1], (operand,))
            if tok.text == "~":  # one-sided formula
                operand = self.expr(_BINARY["~"][1])
                return self.node("unary", "~", tok.start, operand.span[1], (operand,))
            if tok.text == ")":
                raise self.error(
                    "unbalanced parentheses: this ')' has no matching '(' (or an empty pair '()')",
                    tok.start, tok.end,
                )
            if tok.text in ("|", "||"):
                raise self.error(
                    f"'{tok.text}' needs a left-hand side, as in (1 {tok.text} group)", tok.start, tok.end
                )
        if tok.kind == "end":
            raise self.error("the formula ends too early", max(0, tok.start - 1), tok.start)
        raise self.error(f"unexpected {tok.text!r}", tok.start, tok.end)

    def call(self, name: str, name_tok: _Tok) -> Node:
        opener = self.take()  # "("
        args: list[Node] = []
        keywords: list[str | None] = []
        if self.peek().kind == "op" and self.peek().text == ")":
            close = self.take()
            return self.node("call", name, name_tok.start, close.end)
        while True:
            kw = None
            tok, nxt = self.peek(), self.toks[self.i + 1]
            if tok.kind in ("name", "backtick") and nxt.kind == "op" and nxt.text == "=":
                kw = tok.text.strip("`")
                self.i += 2
            if self.peek().kind == "end":
                raise self.error(
                    f"unbalanced parentheses: the '(' of {name}() is never closed",
                    opener.start, opener.end,
                )
            args.append(self.expr(0))
            keywords.append(kw)
            tok = self.peek()
            if tok.kind == "op" and tok.text == ",":
                self.take()
                continue
            close = self.expect_close(opener)
            return self.node("call", name, name_tok.start, close.end, args, keywords)


def parse_expression(source: str) -> Node:
    """Parse an R expression or formula into a :class:`Node` tree.

    Parameters
    ----------
    source : str
        R source, e.g. ``"y ~ x + (1 | g)"``.

    Returns
    -------
    Node

    Raises
    ------
    FormulaError
        Unbalanced parentheses, an unknown character or a dangling operator;
        the message marks the place in the formula.

    Examples
    --------
    >>> parse_expression("y ~ x").value
    '~'
    """
    return _Parser(source).parse()


def _needs_parens(child: Node, parent_op: str, right: bool) -> bool:
    if child.kind != "binary":
        return False
    c_op = "%%" if child.value.startswith("%") else child.value
    p_op = "%%" if parent_op.startswith("%") else parent_op
    c_l, _ = _BINARY[c_op]
    p_l, _ = _BINARY[p_op]
    if c_l != p_l:
        return c_l < p_l
    return right if p_op != "^" else not right


def deparse(node: Node) -> str:
    """Render a node as R's ``deparse`` would: spaces around ``+ - * ~ |``,
    ``%in%`` and comparisons, none around ``^ : /`` and ``%% %/%``, ``", "``
    between arguments (so names such as ``exp(x/10)`` match R's).

    Examples
    --------
    >>> deparse(parse_expression("log(x+1)"))
    'log(x + 1)'
    >>> deparse(parse_expression("I(x ^ 2)"))
    'I(x^2)'
    """
    k = node.kind
    if k == "name":
        return node.value if _is_r_name(node.value) else f"`{node.value}`"
    if k == "number":
        return node.value
    if k == "string":
        return '"' + node.value.replace('"', '\\"') + '"'
    if k == "paren":
        return "(" + deparse(node.args[0]) + ")"
    if k == "unary":
        inner = deparse(node.args[0])
        return f"{node.value}{inner}" if node.value != "~" else f"~{inner}"
    if k == "call":
        parts = []
        for arg, kw in zip(node.args, node.keywords):
            parts.append(f"{kw} = {deparse(arg)}" if kw else deparse(arg))
        return f"{node.value}({', '.join(parts)})"
    left, right = node.args
    ls, rs = deparse(left), deparse(right)
    if _needs_parens(left, node.value, False):
        ls = f"({ls})"
    if _needs_parens(right, node.value, True):
        rs = f"({rs})"
    if node.value in ("^", ":", "/", "%%", "%/%"):
        return f"{ls}{node.value}{rs}"
    return f"{ls} {node.value} {rs}"


def _is_r_name(name: str) -> bool:
    return re.fullmatch(r"(?:[A-Za-z]|\.(?![0-9]))[A-Za-z0-9_.]*|\.", name) is not None


def _is_py_name(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


# R functions that are spelled differently in the Python evaluation context.
PY_FUNCTION_NAMES = {
    "factor": "C",
    "as.factor": "C",
    "as.numeric": "as_numeric",
    "as.integer": "as_integer",
    "log10": "log10",
    "log2": "log2",
    "log1p": "log1p",
    "expm1": "expm1",
}

_PY_BINARY = {"^": "**", "&": "&", "&&": "&", "|": "|", "||": "|", "!=": "!=", "==": "=="}


def to_python(node: Node, name_fmt=None, call_names=None) -> str:
    """Render an R expression node as Python source.

    Parameters
    ----------
    node : Node
    name_fmt : callable, optional
        ``name -> str`` for variable references; default: the name itself, or
        in backticks when it is not a Python identifier (formulaic's quoting).
    call_names : dict, optional
        R function name -> Python name; default :data:`PY_FUNCTION_NAMES`.

    Examples
    --------
    >>> to_python(parse_expression("I(x^2)"))
    'I(x ** 2)'
    """
    call_names = PY_FUNCTION_NAMES if call_names is None else call_names
    if name_fmt is None:
        def name_fmt(name):
            return name if _is_py_name(name) else f"`{name}`"

    def rec(n: Node) -> str:
        k = n.kind
        if k == "name":
            if n.value in ("TRUE", "T"):
                return "True"
            if n.value in ("FALSE", "F"):
                return "False"
            if n.value == "pi":
                return "3.141592653589793"
            return name_fmt(n.value)
        if k == "number":
            return n.value
        if k == "string":
            return repr(n.value)
        if k == "paren":
            return "(" + rec(n.args[0]) + ")"
        if k == "unary":
            op = {"!": "~"}.get(n.value, n.value)
            return f"{op}{rec(n.args[0])}" if op != "~" else f"~({rec(n.args[0])})"
        if k == "call":
            fname = call_names.get(n.value, n.value)
            if not _is_py_name(fname):
                raise FormulaError(
                    f"the function {n.value}() is not available in formulas; "
                    "compute the column beforehand",
                    n.source, n.span,
                )
            parts = []
            for arg, kw in zip(n.args, n.keywords):
                parts.append(f"{kw}={rec(arg)}" if kw else rec(arg))
            return f"{fname}({', '.join(parts)})"
        op = _PY_BINARY.get(n.value, n.value)
        if op.startswith("%"):
            raise FormulaError(
                f"the operator {n.value} cannot be evaluated here", n.source, n.span
            )
        return f"({rec(n.args[0])} {op} {rec(n.args[1])})" if op in ("&", "|") else \
            f"{rec(n.args[0])} {op} {rec(n.args[1])}"

    return rec(node)


def names_in(node: Node) -> list[Node]:
    """Every ``name`` node below ``node`` that is not a function name or keyword.

    Examples
    --------
    >>> [n.value for n in names_in(parse_expression("log(x + y) ~ z"))]
    ['x', 'y', 'z']
    """
    out: list[Node] = []

    def rec(n: Node):
        if n.kind == "name":
            out.append(n)
        for a in n.args:
            rec(a)

    rec(node)
    return out
