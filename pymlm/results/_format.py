"""Number formatting and table helpers for R-style printed summaries."""

from __future__ import annotations

import math

import numpy as np
from tabulate import tabulate

__all__ = ["fmt_column", "abbreviate", "table", "signif_stars", "fmt_p"]


def _decimals(x: float, digits: int) -> int:
    if not np.isfinite(x) or x == 0:
        return 0
    return max(0, digits - 1 - int(math.floor(math.log10(abs(x)))))


def fmt_column(values, digits: int = 4, max_decimals: int = 6, shared_with=None) -> list[str]:
    """Format a column as R's ``format(x, digits=)``: enough decimals that every
    entry shows ``digits`` significant digits, the same for the whole column.

    Examples
    --------
    >>> fmt_column([612.1002, 35.0717, 654.94])
    ['612.10', '35.07', '654.94']
    """
    vals = [float(v) for v in values]
    pool = vals + [float(v) for v in (shared_with or [])]
    finite = [v for v in pool if np.isfinite(v)]
    dec = min(max_decimals, max((_decimals(v, digits) for v in finite), default=0))
    out = []
    for v in vals:
        if np.isnan(v):
            out.append("NA")
        elif not np.isfinite(v):
            out.append("Inf" if v > 0 else "-Inf")
        else:
            out.append(f"{v:.{dec}f}")
    return out


def abbreviate(name: str, minlength: int = 6) -> str:
    """R's ``abbreviate()``: drop lower-case vowels, then lower-case letters,
    from the right (never the first character), then truncate.

    Examples
    --------
    >>> abbreviate("(Intercept)")
    '(Intr)'
    >>> abbreviate("Days")
    'Days'
    """
    if len(name) <= minlength:
        return name
    chars = list(name)
    for pool in ("aeiou", "abcdefghijklmnopqrstuvwxyz"):
        i = len(chars) - 1
        while len(chars) > minlength and i > 0:
            if chars[i] in pool and not (i > 0 and chars[i - 1] == " "):
                del chars[i]
            i -= 1
        if len(chars) <= minlength:
            break
    return "".join(chars[:minlength]) if len(chars) > minlength else "".join(chars)


def table(rows, headers, colalign=None) -> str:
    """A plain text table (tabulate's ``plain`` format), indented by one space."""
    text = tabulate(rows, headers=headers, tablefmt="plain", colalign=colalign, disable_numparse=True)
    return "\n".join(" " + line for line in text.splitlines())


def fmt_p(p: float) -> str:
    """p-values as R's ``format.pval``: ``< 2e-16`` below machine precision."""
    if not np.isfinite(p):
        return "NA"
    if p < 2.2e-16:
        return "< 2e-16"
    if p < 1e-4:
        return f"{p:.2e}"
    return f"{p:.4g}"


def signif_stars(p: float) -> str:
    if not np.isfinite(p):
        return ""
    for cut, star in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return star
    return ""
