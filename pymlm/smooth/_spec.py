"""mgcv smooth calls (``s()``, ``te()``) read into a :class:`SmoothSpec`.

The parser keeps a smooth call as a :class:`~pymlm.formula.Node`; this
module reads its arguments the way mgcv's ``s()`` and ``te()`` do: the
positional arguments are the covariates, ``bs``, ``k``, ``m``, ``by``, ``fx``
and ``xt`` are options. Only literal option values are accepted (numbers,
strings, ``c(...)``, ``TRUE``/``FALSE``, ``list(bs = ...)`` for ``xt``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FormulaError
from ..formula import Node, deparse

__all__ = ["BASES", "MARGIN_BASES", "SmoothSpec", "parse_smooth"]

#: Bases of ``s()``: cubic regression spline, thin plate regression spline,
#: P-spline, random effect, factor-smooth interaction, cyclic cubic spline,
#: and the shrinkage versions of cr and tp.
BASES = ("cr", "tp", "ps", "re", "fs", "cc", "cs", "ts")
#: Bases allowed as ``te()`` margins.
MARGIN_BASES = ("cr", "tp", "ps", "cc", "cs", "ts")

_S_OPTIONS = ("k", "bs", "m", "by", "fx", "xt")
_UNSUPPORTED = {
    "id": "linked smoothing parameters (id =) are not supported; drop the argument",
    "sp": "fixed smoothing parameters inside a term are not supported; pass sp= to the fitter",
    "pc": "point constraints (pc =) are not supported; drop the argument",
    "d": "multi-dimensional te() margins (d =) are not supported; use te() of 1-D margins",
    "np": None,  # accepted and ignored: mgcv's default np = TRUE is what pymlm does
}


@dataclass(frozen=True)
class SmoothSpec:
    """One smooth term as written in the formula.

    Attributes
    ----------
    function : {"s", "te", "ti"}
    terms : tuple of str
        The covariates as R source (``"x0"``, ``"log(z)"``).
    term_nodes : tuple of Node
        Their parse trees (evaluated on the data).
    bs : tuple of str
        Basis per margin (one entry for ``s()``).
    k : tuple of int
        Basis dimension per margin; ``-1`` means the basis default.
    m : tuple
        Penalty order per margin (``None`` for the default); P-splines take a
        pair ``(spline order - 2, difference order)``.
    by : str or None
        The ``by`` variable as R source.
    by_node : Node or None
    fx : bool
        Unpenalized (fixed degrees of freedom) term.
    xt : str or None
        Base basis of an ``"fs"`` term (mgcv's ``xt``).
    node : Node
        The whole call, for error messages.
    """

    function: str
    terms: tuple[str, ...]
    term_nodes: tuple[Node, ...]
    bs: tuple[str, ...]
    k: tuple[int, ...]
    m: tuple
    by: str | None
    by_node: Node | None
    fx: bool
    xt: str | None
    node: Node

    @property
    def dim(self) -> int:
        """Number of covariates."""
        return len(self.terms)

    @property
    def label(self) -> str:
        """mgcv's label before any ``by`` suffix: ``"s(x0)"``, ``"te(x1,x2)"``."""
        return f"{self.function}({','.join(self.terms)})"

    def error(self, message: str, node: Node | None = None) -> FormulaError:
        """A FormulaError that marks ``node`` (default: the whole call)."""
        where = node if node is not None else self.node
        return FormulaError(message, self.node.source, where.span)


def _literal(node: Node, spec_text: str):
    """The value of a literal R expression: number, string, logical, c(), list()."""
    k = node.kind
    if k == "number":
        v = float(node.value)
        return int(v) if v.is_integer() else v
    if k == "string":
        return node.value
    if k == "name" and node.value in ("TRUE", "T"):
        return True
    if k == "name" and node.value in ("FALSE", "F"):
        return False
    if k == "name" and node.value in ("NA", "NULL"):
        return None
    if k == "unary" and node.value == "-" and node.args[0].kind == "number":
        return -_literal(node.args[0], spec_text)
    if k == "paren":
        return _literal(node.args[0], spec_text)
    if k == "call" and node.value == "c":
        return [_literal(a, spec_text) for a in node.args]
    if k == "call" and node.value == "list":
        return {kw: _literal(a, spec_text) for a, kw in zip(node.args, node.keywords)}
    raise FormulaError(
        f"the option {node.text!r} of {spec_text} must be a literal value "
        "(a number, a string, TRUE/FALSE or c(...))",
        node.source, node.span,
    )


def _as_tuple(value, n: int, what: str, spec_text: str, node: Node) -> tuple:
    if not isinstance(value, list):
        return (value,) * n
    if len(value) == 1:
        return (value[0],) * n
    if len(value) != n:
        raise FormulaError(
            f"{what} of {spec_text} has {len(value)} values for {n} margins; give one value or one per margin",
            node.source, node.span,
        )
    return tuple(value)


def parse_smooth(node: Node) -> SmoothSpec:
    """Read an ``s()`` or ``te()`` call.

    Parameters
    ----------
    node : Node
        A ``call`` node whose function is ``s`` or ``te`` (``ti`` and ``t2``
        are recognized and rejected with a message).

    Returns
    -------
    SmoothSpec

    Raises
    ------
    FormulaError
        An unknown basis, an unknown or unsupported option, a non-literal
        option value, no covariate, or a repeated covariate; the message
        marks the offending part of the formula.

    Examples
    --------
    >>> from pymlm.formula import parse_formula
    >>> spec = parse_smooth(parse_formula('y ~ s(x0, bs = "cr", k = 8)').smooths[0].node)
    >>> spec.label, spec.bs, spec.k
    ('s(x0)', ('cr',), (8,))
    """
    fn = node.value
    text = deparse(node)
    if fn == "t2":
        raise FormulaError(
            "t2() tensor products are not supported; use te() (full tensor product with "
            "a sum-to-zero constraint) or ti() (interaction only)",
            node.source, node.span,
        )
    if fn not in ("s", "te", "ti"):
        raise FormulaError(f"{fn}() is not a smooth; use s(), te() or ti()", node.source, node.span)
    covariates: list[Node] = []
    opts: dict[str, Node] = {}
    for arg, kw in zip(node.args, node.keywords):
        if kw is None:
            if opts:
                raise FormulaError(
                    f"in {text}, covariates must come before the named options", node.source, arg.span
                )
            covariates.append(arg)
            continue
        if kw in _UNSUPPORTED:
            msg = _UNSUPPORTED[kw]
            if msg is None:
                continue
            raise FormulaError(f"{text}: {msg}", node.source, arg.span)
        if kw not in _S_OPTIONS:
            raise FormulaError(
                f"unknown option {kw!r} in {text}; {fn}() takes {', '.join(_S_OPTIONS)}",
                node.source, arg.span,
            )
        opts[kw] = arg
    if not covariates:
        raise FormulaError(f"{text} has no covariate; write e.g. {fn}(x)", node.source, node.span)
    terms = tuple(deparse(c) for c in covariates)
    if len(set(terms)) != len(terms):
        raise FormulaError(f"{text} repeats a covariate; each may appear once", node.source, node.span)
    n_marg = len(terms) if fn in ("te", "ti") else 1

    bs_node = opts.get("bs")
    default_bs = "cr" if fn in ("te", "ti") else "tp"
    bs_val = _literal(bs_node, text) if bs_node is not None else default_bs
    bs = _as_tuple(bs_val, n_marg, "bs", text, bs_node or node)
    allowed = MARGIN_BASES if fn in ("te", "ti") else BASES
    for b in bs:
        if not isinstance(b, str) or b not in allowed:
            where = f"as a {fn}() margin" if fn in ("te", "ti") else "in s()"
            raise FormulaError(
                f"unknown basis {b!r} {where}: {text}; use one of "
                + ", ".join(repr(a) for a in allowed),
                node.source, (bs_node or node).span,
            )

    k_node = opts.get("k")
    k_val = _literal(k_node, text) if k_node is not None else -1
    k_raw = _as_tuple(k_val, n_marg, "k", text, k_node or node)
    k = []
    for v in k_raw:
        if v is None:
            v = -1
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (v != -1 and (v != int(v) or v < 1)):
            raise FormulaError(
                f"k in {text} must be a positive whole number (the basis dimension); got {v!r}",
                node.source, (k_node or node).span,
            )
        k.append(int(v))

    m_node = opts.get("m")
    if m_node is None:
        m = (None,) * n_marg
    else:
        m_val = _literal(m_node, text)
        if fn == "s":
            m = (tuple(m_val) if isinstance(m_val, list) else m_val,)
        else:
            m = _as_tuple(m_val, n_marg, "m", text, m_node)

    by = by_node = None
    if "by" in opts:
        by_node = opts["by"]
        if by_node.kind == "name" and by_node.value in ("NA", "NULL"):
            by_node = None
        else:
            by = deparse(by_node)

    fx = False
    if "fx" in opts:
        fx_val = _literal(opts["fx"], text)
        if isinstance(fx_val, list):
            fx_val = all(bool(v) for v in fx_val)
        if not isinstance(fx_val, bool):
            raise FormulaError(f"fx in {text} must be TRUE or FALSE", node.source, opts["fx"].span)
        fx = fx_val

    xt = None
    if "xt" in opts:
        xt_val = _literal(opts["xt"], text)
        if isinstance(xt_val, dict):
            xt_val = xt_val.get("bs")
        if bs[0] != "fs" or xt_val not in MARGIN_BASES:
            raise FormulaError(
                f"xt in {text} is only used to name the base basis of an 'fs' term, "
                f"one of {', '.join(repr(a) for a in MARGIN_BASES)}",
                node.source, opts["xt"].span,
            )
        xt = xt_val

    if fn == "s" and bs[0] in ("cr", "ps", "cc", "cs") and len(terms) > 1:
        raise FormulaError(
            f"the {bs[0]!r} basis is one-dimensional but {text} has {len(terms)} covariates; "
            "use bs = \"tp\" or te()",
            node.source, node.span,
        )
    if fn in ("te", "ti") and len(terms) < 2:
        raise FormulaError(f"{text} has one covariate; use s() for a 1-D smooth", node.source, node.span)
    return SmoothSpec(fn, terms, tuple(covariates), tuple(bs), tuple(k), tuple(m), by, by_node, fx, xt, node)
