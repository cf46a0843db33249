"""Formula strings -> :class:`ParsedFormula` (response, fixed terms, random bars, smooths).

The parser knows lme4's random-effects syntax (``(x | g)``, ``(x || g)``,
``g1/g2``, ``g1:g2``) and mgcv's smooth calls (``s()``, ``te()``); the fixed
part is handed to formulaic by :mod:`pymlm.design`.
"""

from ._ast import Node, deparse, names_in, parse_expression, to_python
from ._parsed import BarTerm, ParsedFormula, SmoothCall, parse_formula

__all__ = [
    "BarTerm",
    "Node",
    "ParsedFormula",
    "SmoothCall",
    "deparse",
    "names_in",
    "parse_expression",
    "parse_formula",
    "to_python",
]
