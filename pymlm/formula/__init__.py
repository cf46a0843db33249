"""Formula strings -> :class:`ParsedFormula` (response, fixed terms, random bars, smooths).

The parser knows lme4's random-effects syntax (``(x | g)``, ``(x || g)``,
``g1/g2``, ``g1:g2``) and mgcv's smooth calls (``s()``, ``te()``);
:func:`expand_terms` expands the fixed part into terms by R's rules
(``*``, ``/``, ``%in%``, ``^``, ``-``) for :mod:`pymlm.design`.
"""

from ._ast import Node, deparse, names_in, parse_expression, to_python
from ._parsed import BarTerm, ParsedFormula, SmoothCall, parse_formula
from ._terms import TermList, expand_terms, term_label

__all__ = [
    "BarTerm",
    "Node",
    "ParsedFormula",
    "SmoothCall",
    "TermList",
    "deparse",
    "expand_terms",
    "names_in",
    "parse_expression",
    "parse_formula",
    "term_label",
    "to_python",
]
