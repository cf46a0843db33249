"""R's rules for printing numbers and tables, in one place.

The printed summaries of lme4, lmerTest and mgcv are built from a handful
of R functions; this module implements each one's documented behaviour so
that pymlm's summaries read as R's, character for character:

- :func:`format_real` is R's ``format()`` of a numeric vector (the C
  routine ``formatReal``): one common number of decimals (or one common
  scientific layout) for the whole vector, the fewest significant digits,
  at most ``digits``, that show every element to ``digits`` significant
  digits; fixed notation unless it is wider than scientific notation.
- :func:`format_pval` is ``format.pval``, :func:`format_c` is ``formatC``
  (C's ``%g``), :func:`signif` / :func:`round_r` / :func:`zapsmall` are R's
  ``signif``, ``round`` (R >= 4.0.0: the closer of the two candidates, ties
  to even) and ``zapsmall``.
- :func:`print_coefmat` is ``printCoefmat`` (estimate and standard-error
  columns rounded and formatted together, test statistics rounded to
  ``dig.tst``, p-values by ``format.pval``, significance stars and their
  legend); :func:`format_vc` is lme4's ``formatVC`` for the random-effects
  table.
- :func:`print_matrix`, :func:`print_named`, :func:`cat_fill`,
  :func:`strwrap` and :func:`deparse_lines` are R's printing of a character
  matrix and of a named vector, ``cat(..., fill = TRUE)``, ``strwrap`` and
  ``deparse`` of a formula (line breaks after an operator once a line is
  past 60 characters), at R's default console width of 80.

Missing values are ``None`` (or ``pandas.NA``) for R's ``NA``; a float NaN
is R's ``NaN``. Functions that print pymlm tables, where NaN means
"missing", say so with ``na=`` arguments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "WIDTH",
    "SIGNIF_LEGEND",
    "format_real",
    "format_number",
    "format_pval",
    "format_c",
    "signif",
    "round_r",
    "zapsmall",
    "signif_stars",
    "print_coefmat",
    "format_vc",
    "print_matrix",
    "print_named",
    "print_named_gap",
    "cat_fill",
    "strwrap",
    "abbreviate",
    "deparse_lines",
]

WIDTH = 80
"""R's default ``getOption("width")``: the console width printing wraps at."""

DEPARSE_CUTOFF = 60
"""R's ``deparse(width.cutoff = 60)``: a line is broken once it is longer than this."""

EPS = float(np.finfo(float).eps)

SIGNIF_LEGEND = ("0 \u2018***\u2019 0.001 \u2018**\u2019 0.01 \u2018*\u2019 0.05 \u2018.\u2019 0.1 "
                 "\u2018 \u2019 1")
"""``printCoefmat``'s legend line as R prints it in a UTF-8 session (``sQuote`` quotes)."""

_KP_MAX = 22


# ----------------------------------------------------------------- numbers
def _split_na(x) -> tuple[np.ndarray, np.ndarray]:
    """Values as floats and a mask of R's NA (None / pandas.NA); NaN stays NaN."""
    seq = list(x) if not isinstance(x, np.ndarray) else x.ravel().tolist()
    na = np.array([v is None or (type(v).__name__ == "NAType") for v in seq], dtype=bool)
    vals = np.array([np.nan if m else float(v) for v, m in zip(seq, na)], dtype=float)
    return vals, na


def _sci_parts(r: float, digits: int) -> tuple[int, int, bool]:
    """For |x| = r > 0 rounded to ``digits`` significant digits: the power of
    ten, the significant digits left after dropping trailing zeros, and
    whether fixed notation needs one digit less on the left than scientific
    notation suggests (``9996`` at 3 digits is ``1.00e+04`` but ``9996``)."""
    mant, exp = f"{r:.{digits - 1}e}".split("e")
    kpower = int(exp)
    nsig = len(mant.replace(".", "").rstrip("0")) or 1
    rgt = min(max(digits - kpower, 0), _KP_MAX)
    widens = 0 < kpower <= _KP_MAX and r < 10.0 ** kpower - 0.5 / 10.0 ** rgt
    return kpower, nsig, widens


def _layout(vals: np.ndarray, digits: int, nsmall: int = 0):
    """(width, decimals, exponent digits) of R's formatReal; exponent 0 means fixed."""
    fin = vals[np.isfinite(vals)]
    if fin.size == 0:
        return 0, 0, 0
    neg = False
    rgt = mxl = mxsl = mxns = mxe = -(10 ** 9)
    mne = 10 ** 9
    for v in fin:
        if v == 0:
            kpower, nsig, widens, neg_i = 0, 1, False, False
        else:
            kpower, nsig, widens = _sci_parts(abs(float(v)), digits)
            neg_i = v < 0
        left = kpower + 1 - (1 if widens else 0)
        sleft = int(neg_i) + (1 if left <= 0 else left)
        right = nsig - left
        neg = neg or neg_i
        rgt, mxl, mxsl, mxns = max(rgt, right), max(mxl, left), max(mxsl, sleft), max(mxns, nsig)
        mxe, mne = max(mxe, kpower), min(mne, kpower)
    if mxl < 0:
        mxsl = 1 + int(neg)
    rgt = max(rgt, 0)
    w_fixed = mxsl + rgt + (rgt != 0)
    e = 2 if (mxe >= 100 or mne <= -99) else 1
    d = mxns - 1
    w_sci = int(neg) + (d > 0) + d + 4 + e
    if w_fixed <= w_sci:
        if nsmall > rgt:
            rgt = nsmall
            w_fixed = mxsl + rgt + (rgt != 0)
        return w_fixed, rgt, 0
    return w_sci, d, e


def format_real(x, digits: int = 7, nsmall: int = 0, width: int = 0, na: str = "NA",
                nan_as_na: bool = False) -> list[str]:
    """R's ``format(x, digits=, nsmall=)`` of a numeric vector.

    Every element gets the same layout: fixed notation with the common
    number of decimals that shows each element to ``digits`` significant
    digits (the fewest digits that represent it, at most ``digits``), or
    scientific notation when that is narrower; all strings are right-
    justified to one width.

    Parameters
    ----------
    x : sequence of float (None for NA)
    digits : int
        Significant digits (R's ``digits``, 7 by default as ``print``).
    nsmall : int
        At least this many decimals in fixed notation.
    width : int
        Minimum width.
    na : str
        How NA is shown.
    nan_as_na : bool
        Show a float NaN as ``na`` (pymlm's missing value) rather than ``NaN``.

    Examples
    --------
    >>> format_real([612.1002, 35.0717, 654.94], digits=4)
    ['612.10', ' 35.07', '654.94']
    >>> format_real([1e-10, 1], digits=3)
    ['1e-10', '1e+00']
    """
    vals, is_na = _split_na(x)
    if nan_as_na:
        is_na = is_na | np.isnan(vals)
    vals = np.where(vals == 0, 0.0, vals)  # R prints -0 as 0
    w, d, e = _layout(np.where(is_na, np.nan, vals), digits, nsmall)
    if is_na.any():
        w = max(w, len(na))
    nan = np.isnan(vals) & ~is_na
    if nan.any():
        w = max(w, 3)
    if np.any(vals == np.inf):
        w = max(w, 3)
    if np.any(vals == -np.inf):
        w = max(w, 4)
    w = max(w, width)
    out = []
    for v, m in zip(vals, is_na):
        if m:
            s = na
        elif np.isnan(v):
            s = "NaN"
        elif np.isinf(v):
            s = "Inf" if v > 0 else "-Inf"
        elif e:
            s = f"{v:.{d}e}"
        else:
            s = f"{v:.{d}f}"
        out.append(s.rjust(w))
    return out


def format_number(x: float, digits: int = 7) -> str:
    """One number as R's ``cat()`` or ``paste()`` shows it (``format`` of a length-one vector)."""
    return format_real([x], digits)[0]


def format_pval(pv, digits: int = 5, eps: float = EPS, na_form: str = "NA") -> list[str]:
    """R's ``format.pval``: p-values below ``eps`` as ``< eps``, the others by
    :func:`format_real`, fixed-notation ones (exponent >= -3, or -4 when
    ``digits > 1``) formatted together and scientific ones together.

    Examples
    --------
    >>> format_pval([3.26e-06, 1e-20], digits=3)
    ['3.26e-06', '< 2e-16']
    >>> format_pval([0.21, 1e-20], digits=3)
    ['0.21', '<2e-16']
    """
    vals, is_na = _split_na(pv)
    is_na = is_na | np.isnan(vals)
    out = [na_form if m else "" for m in is_na]
    idx = np.flatnonzero(~is_na)
    v = vals[idx]
    is0 = v < eps
    rr: list[str] = []
    if np.any(~is0):
        keep = idx[~is0]
        pk = vals[keep]
        expo = np.floor(np.log10(np.where(pk > 0, pk, 1e-50)))
        fixp = (expo >= -3) | ((expo == -4) & (digits > 1))
        for mask in (fixp, ~fixp):
            if mask.any():
                for i, s in zip(keep[mask], format_real(pk[mask], digits)):
                    out[i] = s
        rr = [out[i] for i in keep]
    if np.any(is0):
        dig = max(1, digits - 2)
        if rr:
            nc = max(len(s) for s in rr)
            if dig > 1 and dig + 6 > nc:
                dig = max(1, nc - 7)
            sep = "" if (dig == 1 and nc <= 6) else " "
        else:
            sep = "" if dig == 1 else " "
        text = "<" + sep + format_real([eps], dig)[0]
        for i in idx[is0]:
            out[i] = text
    return out


def format_c(x: float, digits: int | None = None, width: int | None = None, flag: str = "") -> str:
    """R's ``formatC(x, digits=, width=, flag=)`` for a number: C's ``%g``,
    width ``digits + 1`` by default; ``flag="-"`` left-justifies.

    Examples
    --------
    >>> format_c(42800.0, digits=5)
    ' 42800'
    >>> format_c(4.0801, digits=5, width=8, flag="-")
    '4.0801  '
    """
    if digits is None and width is None:
        width = 1
    if digits is None:
        digits = 4
    if width is None:
        width = digits + 1
    elif width == 0:
        width = digits
    if not np.isfinite(x):
        s = "NA" if np.isnan(x) else ("Inf" if x > 0 else "-Inf")
        return s.ljust(width) if "-" in flag else s.rjust(width)
    fmt = "%" + flag + "*.*g"
    return fmt % (width, digits, x)


def _pow_di(x: float, n: int) -> float:
    """x^n by repeated squaring in double arithmetic, as R's ``R_pow_di``
    (10^23 and up differ in the last bit from the correctly rounded power)."""
    xn = 1.0
    neg = n < 0
    n = abs(n)
    while True:
        if n & 1:
            xn *= x
        n >>= 1
        if not n:
            break
        x *= x
    return 1.0 / xn if neg else xn


def signif(x, digits: int = 6) -> np.ndarray:
    """R's ``signif``: x * 10^e rounded to an integer (ties to even) and
    scaled back, in double arithmetic, with e = digits - 1 - floor(log10|x|).

    Examples
    --------
    >>> signif([123456.0, 0.15, -0.012345], 1).tolist()
    [100000.0, 0.2, -0.01]
    """
    x = np.asarray(x, dtype=float)
    dig = int(min(max(round(digits), 1), 22))
    out = x.copy()
    ok = np.isfinite(x) & (x != 0)
    a = np.abs(x[ok])
    sgn = np.sign(x[ok])
    l10 = np.log10(a)
    e10 = (dig - 1 - np.floor(l10)).astype(int)
    res = np.empty_like(a)
    for i, (ai, ei, li) in enumerate(zip(a, e10, l10)):
        if abs(li) >= 306:  # extreme magnitudes: correctly rounded decimal
            res[i] = float(f"{ai:.{dig - 1}e}")
        elif ei > 0:
            p10 = 1.0
            if ei > 308:
                p10, ei = _pow_di(10.0, ei - 308), 308
            pw = _pow_di(10.0, int(ei))
            res[i] = np.rint((ai * pw) * p10) / pw / p10
        else:
            pw = _pow_di(10.0, int(-ei))
            res[i] = np.rint(ai / pw) * pw
    out[ok] = sgn * res
    return out


def round_r(x, digits: float = 0) -> np.ndarray:
    """R's ``round(x, digits)`` (R >= 4.0.0): of the two neighbours of x
    with ``digits`` decimals, the one closer to x in double arithmetic; on
    a tie the one with an even last digit. A non-integer ``digits`` is
    rounded; x with more than 15 significant digits at that precision is
    returned as is.

    Examples
    --------
    >>> round_r([0.15, 2.675, 0.125, -1.005], 2).tolist()
    [0.15, 2.67, 0.12, -1.0]
    """
    x = np.asarray(x, dtype=float)
    dig = int(math.floor(digits + 0.5))
    out = x.copy()
    ok = np.isfinite(x) & (x != 0)
    if not ok.any():
        return out
    a = np.abs(x[ok])
    sgn = np.sign(x[ok])
    if dig == 0:
        out[ok] = sgn * np.rint(a)
        return out
    p10 = _pow_di(10.0, abs(dig))
    x10 = a * p10 if dig > 0 else a / p10
    i10 = np.floor(x10)
    if dig > 0:
        xd, xu = i10 / p10, np.ceil(x10) / p10
    else:
        xd, xu = i10 * p10, np.ceil(x10) * p10
    du, dd = xu - a, a - xd
    up = (du < dd) | ((du == dd) & (np.fmod(i10, 2.0) == 1))
    res = np.where(up, xu, xd)
    # more digits asked for than a double holds: x is already that precise
    keep = (dig + np.floor(np.log10(a)) + 1) > 15
    out[ok] = sgn * np.where(keep, a, res)
    return out


def zapsmall(x, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest |x|.

    Examples
    --------
    >>> zapsmall([1.0, 1e-20], 7).tolist()
    [1.0, 0.0]
    """
    x = np.asarray(x, dtype=float)
    fin = x[~np.isnan(x)]
    if fin.size == 0:
        return x
    mx = float(np.max(np.abs(fin)))
    return round_r(x, max(0.0, digits - math.log10(mx)) if mx > 0 else digits)


def signif_stars(p: float) -> str:
    """``symnum``'s significance code: *** for p <= 0.001, ** <= 0.01, * <= 0.05, . <= 0.1."""
    if p is None or not np.isfinite(p):
        return ""
    for cut, star in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p <= cut:
            return star
    return " "


# ----------------------------------------------------------------- printing
def print_matrix(cells: Sequence[Sequence[str]], rownames: Sequence[str], colnames: Sequence[str],
                 right: bool = False, width: int = WIDTH) -> list[str]:
    """R's ``print()`` of a character matrix with ``quote = FALSE``.

    Row names left-justified; each column one space after the previous one,
    as wide as its widest entry or label, entries and labels left-justified
    (``right=False``, R's default) or right-justified; columns that do not
    fit within ``width`` continue in a new block with the row names repeated.
    """
    nr, nc = len(rownames), len(colnames)
    rlab = max((len(r) for r in rownames), default=0)
    widths = [max([len(colnames[j])] + [len(cells[i][j]) for i in range(nr)]) for j in range(nc)]

    def just(s, w):
        return s.rjust(w) if right else s.ljust(w)

    lines = []
    jmin = 0
    while jmin < nc:
        total = rlab
        jmax = jmin
        while True:
            total += widths[jmax] + 1
            jmax += 1
            if not (jmax < nc and total + widths[jmax] + 1 < width):
                break
        cols = range(jmin, jmax)
        lines.append(" " * rlab + "".join(" " + just(colnames[j], widths[j]) for j in cols))
        for i in range(nr):
            cells_i = "".join(" " + just(cells[i][j], widths[j]) for j in cols)
            lines.append(rownames[i].ljust(rlab) + cells_i)
        jmin = jmax
    return lines


def print_named(values: Sequence[str], names: Sequence[str], width: int = WIDTH) -> list[str]:
    """R's ``print()`` of a named vector whose elements are already formatted:
    names over values, all right-justified to one common width, each
    followed by a space, as many per line as fit in ``width``."""
    w = max([len(v) for v in values] + [len(n) for n in names])
    per_line = max(1, width // (w + 1))
    lines = []
    for s in range(0, len(values), per_line):
        lines.append("".join(n.rjust(w) + " " for n in names[s:s + per_line]))
        lines.append("".join(v.rjust(w) + " " for v in values[s:s + per_line]))
    return lines


def cat_fill(items: Sequence[str], sep: str = " ", width: int = WIDTH) -> list[str]:
    """R's ``cat(..., sep=, fill = TRUE)``: items joined by ``sep``; an item
    that would reach ``width`` starts a new line (the separator stays at the
    end of the previous one)."""
    lines: list[str] = []
    cur = ""
    for k, item in enumerate(items):
        if k > 0:
            cur += sep
            if len(cur) + len(item) >= width:
                lines.append(cur)
                cur = ""
        cur += item
    if cur:
        lines.append(cur)
    return lines


def strwrap(text: str, width: int, indent: int = 0, exdent: int = 0) -> list[str]:
    """R's ``strwrap`` for one paragraph: words filled greedily into lines
    shorter than ``width``; later lines indented by ``exdent`` spaces."""
    words = text.split()
    lines: list[str] = []
    cur = " " * indent
    started = False
    for w in words:
        if started and len(cur) + 1 + len(w) >= width:
            lines.append(cur)
            cur = " " * exdent + w
        else:
            cur = cur + (" " if started else "") + w
        started = True
    lines.append(cur)
    return lines


def abbreviate(name: str, minlength: int = 4) -> str:
    """R's ``abbreviate(name, minlength)`` for one name (``use.classes = TRUE``).

    From the right, and never at the first character of a word: first
    lower-case vowels ending a word, then lower-case vowels, then lower-case
    letters ending a word, then lower-case letters are dropped until the
    name has ``minlength`` characters; then any character but a word's
    first; spaces between words go last.

    Examples
    --------
    >>> abbreviate("(Intercept)", 6)
    '(Intr)'
    >>> abbreviate("Days", 6)
    'Days'
    """
    s = list(name.strip())
    if len(s) <= minlength:
        return "".join(s)

    def n_space():
        return sum(1 for c in s if c.isspace())

    def done():
        return len(s) - n_space() <= minlength

    def first_of_word(i):
        return i == 0 or s[i - 1].isspace()

    def last_of_word(i):
        return not first_of_word(i) and (i + 1 == len(s) or s[i + 1].isspace())

    passes = (
        lambda i: s[i] in "aeiou" and last_of_word(i),
        lambda i: s[i] in "aeiou" and not first_of_word(i),
        lambda i: s[i].islower() and last_of_word(i),
        lambda i: s[i].islower() and not first_of_word(i),
        lambda i: not first_of_word(i) and not s[i].isspace(),
    )
    for drop in passes:
        if done():
            break
        i = len(s) - 1
        while i > 0 and not done():
            if i < len(s) and drop(i):
                del s[i]
            i -= 1
    if len(s) > minlength:
        s = [c for i, c in enumerate(s) if i == 0 or not c.isspace()]
    return "".join(s)


def abbreviate_all(names: Sequence[str], minlength: int = 4) -> list[str]:
    """``abbreviate`` of a vector: names whose abbreviations collide are
    abbreviated again with ``minlength`` one longer, until all differ."""
    out = [abbreviate(n, minlength) for n in names]
    m = minlength
    while len(set(out)) < len(out) and m < max(len(n) for n in names):
        m += 1
        seen: dict[str, int] = {}
        for a in out:
            seen[a] = seen.get(a, 0) + 1
        dup = {a for a, k in seen.items() if k > 1}
        out = [abbreviate(n, m) if a in dup else a for n, a in zip(names, out)]
    return out


# ------------------------------------------------------------ coefficient tables
def print_coefmat(x, rownames: Sequence[str], colnames: Sequence[str], digits: int = 4,
                  signif_stars_: bool = True, dig_tst: int | None = None, cs_ind=None, tst_ind=None,
                  has_pvalue: bool | None = None, eps_pvalue: float = EPS,
                  na_print: str = "NA", zap_ind=()) -> list[str]:
    """R's ``printCoefmat``: the lines of a coefficient table.

    Parameters
    ----------
    x : array (n, nc)
        The table; NaN is missing (printed as ``na_print``).
    rownames, colnames : sequence of str
    digits : int
        Significant digits (lme4 and mgcv print with 4).
    signif_stars_ : bool
        Add significance stars and their legend when a p-value is below 0.1.
    dig_tst : int
        Decimals of the test statistics (default ``max(1, min(5, digits - 1))``).
    cs_ind, tst_ind : sequence of int, optional
        0-based columns of estimates and standard errors (rounded to
        ``max(1, digits - digmin)`` decimals, digmin from the range of their
        magnitudes, and formatted together) and of test statistics; by
        default all columns but the last one or two, and the one before the
        p-values.
    has_pvalue : bool, optional
        Whether the last column holds p-values (default: its name starts
        with ``Pr(`` or ``p-v``).
    eps_pvalue : float
        p-values below it are printed as ``< eps``.
    na_print : str
        How missing cells are shown.
    zap_ind : sequence of int
        Columns passed through :func:`zapsmall` first (``print.anova``).

    Returns
    -------
    list of str
    """
    xm = np.array(x, dtype=float)
    n, nc = xm.shape
    for j in zap_ind:
        xm[:, j] = zapsmall(xm[:, j], digits)
    if has_pvalue is None:
        has_pvalue = nc >= 4 and colnames[-1][:3] in ("Pr(", "p-v")
    if dig_tst is None:
        dig_tst = max(1, min(5, digits - 1))
    k = nc - int(has_pvalue) - (1 if tst_ind is None else len(tst_ind))
    cs = list(range(k)) if cs_ind is None else list(cs_ind)
    tst = [k] if tst_ind is None else list(tst_ind)
    cf = [[""] * nc for _ in range(n)]
    ina = np.isnan(xm)

    def put(cols, strings):
        it = iter(strings)
        for j in cols:  # R's matrices are column-major
            for i in range(n):
                cf[i][j] = next(it)

    if cs:
        coef_se = xm[:, cs]
        acs = np.abs(coef_se)
        fin = np.isfinite(acs)
        if fin.any():
            nz = acs[fin & (acs != 0)]
            digmin = 1 + (np.floor(np.log10([nz.min(), nz.max()])) if nz.size else np.zeros(1))
            dec = max(1, int(np.max(digits - digmin)))
            put(cs, format_real(round_r(coef_se.T.ravel(), dec), digits, nan_as_na=True))
    if tst:
        put(tst, format_real(round_r(xm[:, tst].T.ravel(), dig_tst), digits, nan_as_na=True))
    pcol = nc - 1 if has_pvalue else None
    for j in range(nc):
        if j not in cs and j not in tst and j != pcol:
            put([j], format_real(xm[:, j], digits, nan_as_na=True))
    ok = ~ina
    ok[:, tst] = False
    check = [(i, j) for j in range(nc) for i in range(n) if ok[i, j] and j != pcol]
    zero_mismatch = []
    for i, j in check:
        try:
            shown = float(cf[i][j])
        except ValueError:
            continue
        if (xm[i, j] == 0) != (shown == 0):
            zero_mismatch.append((i, j))
    if zero_mismatch:
        again = format_real([xm[i, j] for i, j in zero_mismatch], max(1, digits - 1))
        for (i, j), s in zip(zero_mismatch, again):
            cf[i][j] = s
    for i in range(n):
        for j in range(nc):
            if ina[i, j]:
                cf[i][j] = na_print
    cols = list(colnames)
    stars = False
    if has_pvalue:
        okp = ~ina[:, pcol]
        if okp.any():
            pv = xm[:, pcol]
            for i, s in zip(np.flatnonzero(okp), format_pval(pv[okp], dig_tst, eps_pvalue)):
                cf[i][pcol] = s
            stars = signif_stars_ and bool(np.any(pv[okp] < 0.1))
            if stars:
                codes = [signif_stars(p) if np.isfinite(p) else "" for p in pv]
                w = max(len(c) for c in codes)
                for i in range(n):
                    cf[i].append(codes[i].ljust(w))
                cols.append("")
    lines = print_matrix(cf, list(rownames), cols, right=True)
    if stars:
        lines += ["---", "Signif. codes:  " + SIGNIF_LEGEND]
    return lines


def format_vc(groups: Sequence[str], names: Sequence[Sequence[str]], sds: Sequence[Sequence[float]],
              corrs: Sequence[np.ndarray | None], residual_sd: float | None, digits: int = 4,
              extra: dict | None = None, corr_cells=None) -> tuple[list[str], list[list[str]]]:
    """lme4's ``formatVC``: the random-effects table as column names and cells.

    Parameters
    ----------
    groups : sequence of str
        The name of each term's grouping factor (``Subject``, ``Subject.1``).
    names : sequence of sequence of str
        Column names within each term.
    sds : sequence of sequence of float
        Standard deviations within each term.
    corrs : sequence of (p, p) arrays or None
        Correlation matrix of each term.
    residual_sd : float or None
        sigma, for a ``Residual`` row.
    digits : int
        Variances and standard deviations are each formatted together with
        ``digits`` significant digits; correlations with ``max(2, digits - 2)``
        decimals.
    extra : dict, optional
        Further columns after ``Std.Dev.`` (name -> formatted cells, one per row).
    corr_cells : callable, optional
        ``(term index, formatted lower-triangle matrix) -> matrix``, to
        decorate the correlation cells.

    Returns
    -------
    colnames, cells
        Print with :func:`print_matrix` (row names all empty).
    """
    rows_g, rows_n, all_sd = [], [], []
    for g, nm, sd in zip(groups, names, sds):
        for i, (c, s) in enumerate(zip(nm, sd)):
            rows_g.append(g if i == 0 else "")
            rows_n.append(c)
            all_sd.append(float(s))
    if residual_sd is not None:
        rows_g.append("Residual")
        rows_n.append("")
        all_sd.append(float(residual_sd))
    sd_arr = np.array(all_sd)
    var_s = format_real(sd_arr ** 2, digits)
    sd_s = format_real(sd_arr, digits)
    colnames = ["Groups", "Name", "Variance", "Std.Dev."]
    cells = [[g, n_, v, s] for g, n_, v, s in zip(rows_g, rows_n, var_s, sd_s)]
    if extra:
        for name, col in extra.items():
            colnames.append(name)
            for row, c in zip(cells, col):
                row.append(c)
    lens = [len(nm) for nm in names]
    if any(p > 1 for p in lens):
        maxlen = max(lens)
        dig = max(2, digits - 2)
        block = []
        for t, (p, C) in enumerate(zip(lens, corrs)):
            C = np.eye(p) if C is None else np.asarray(C, dtype=float)
            txt = format_real(round_r(C.T.ravel(), dig), nsmall=dig)
            m = [[txt[j * p + i] if i > j else "" for j in range(p)] for i in range(p)]
            if corr_cells is not None:
                m = corr_cells(t, m)
            for row in m:
                block.append((row + [""] * (maxlen - p))[: maxlen - 1])
        block += [[""] * (maxlen - 1)] * (len(cells) - len(block))
        colnames += ["Corr"] + [""] * (maxlen - 2)
        for row, c in zip(cells, block):
            row.extend(c)
    return colnames, cells


# ----------------------------------------------------------------- deparse
def _deparse_number(text: str) -> str:
    if text.endswith("L"):
        return text
    try:
        return format_number(float(text), 15)
    except ValueError:
        return text


def deparse_lines(node, cutoff: int = DEPARSE_CUTOFF) -> list[str]:
    """R's ``deparse()`` of a parsed formula (a :class:`pymlm.formula.Node`),
    with R's line breaks: after a binary operator with spaces (``+``, ``~``,
    ``*``, ``|``...) or a call's ``", "``, once the line is longer than
    ``cutoff``; continuation lines indented by 4 spaces per level.

    Examples
    --------
    >>> from pymlm.formula import parse_expression
    >>> deparse_lines(parse_expression("y~x+(1|g)"))
    ['y ~ x + (1 | g)']
    """
    from ..formula._ast import _is_r_name, _needs_parens

    lines: list[str] = []
    state = {"cur": "", "indent": 0, "start": True}

    def put(s):
        if state["start"]:
            state["start"] = False
            state["cur"] = "".join("    " if i < 4 else "  " for i in range(state["indent"]))
        state["cur"] += s

    def linebreak(flag):
        if len(state["cur"]) > cutoff:
            if not flag:
                state["indent"] += 1
            lines.append(state["cur"])
            state["cur"] = ""
            state["start"] = True
            return True
        return flag

    def walk(n):
        k = n.kind
        if k == "name":
            put(n.value if _is_r_name(n.value) else f"`{n.value}`")
        elif k == "number":
            put(_deparse_number(n.value))
        elif k == "string":
            put('"' + n.value.replace("\\", "\\\\").replace('"', '\\"') + '"')
        elif k == "paren":
            put("(")
            walk(n.args[0])
            put(")")
        elif k == "unary":
            put(n.value)
            walk(n.args[0])
        elif k == "call":
            put(n.value + "(")
            broke = False
            for i, (arg, kw) in enumerate(zip(n.args, n.keywords)):
                if kw:
                    put(f"{kw} = ")
                walk(arg)
                if i + 1 < len(n.args):
                    put(", ")
                    broke = linebreak(broke)
            if broke:
                state["indent"] -= 1
            put(")")
        else:
            left, rightn = n.args
            op = n.value
            lp = _needs_parens(left, op, False)
            rp = _needs_parens(rightn, op, True)
            if lp:
                put("(")
            walk(left)
            if lp:
                put(")")
            if op in ("^", ":", "/", "%%", "%/%"):
                put(op)
                broke = False
            else:
                put(f" {op} ")
                broke = linebreak(False)
            if rp:
                put("(")
            walk(rightn)
            if rp:
                put(")")
            if broke:
                state["indent"] -= 1

    walk(node)
    if state["cur"] or not lines:
        lines.append(state["cur"])
    return lines


def print_named_gap(values: Sequence[str], names: Sequence[str], gap: int = 2, width: int = WIDTH) -> list[str]:
    """R's ``print(x, print.gap = gap, quote = FALSE)`` of a named character
    vector (lme4's short listing of the fixed effects): names over values,
    right-justified to one common width, each followed by ``gap`` spaces, as
    many per line as fit in ``width``."""
    w = max([len(v) for v in values] + [len(n) for n in names])
    per_line = max(1, width // (w + gap))
    pad = " " * gap
    lines = []
    for s in range(0, len(values), per_line):
        lines.append("".join(n.rjust(w) + pad for n in names[s:s + per_line]))
        lines.append("".join(v.rjust(w) + pad for v in values[s:s + per_line]))
    return lines
