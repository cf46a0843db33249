"""Comparing a printed summary with R's, line by line.

The rule: every line equals R's line character for character, except that a
number may differ from R's where the two optima differ. Within a line the
text between numbers must be identical and each number must have the same
width and decimals as R's (so the layout is identical); the values may then
differ by ``rel`` relative to R's (1e-4 by default: the precision theta is
held to after optimizing), and by more only in cells listed in ``loose``
(numbers pymlm is known not to reproduce yet; each listed with its own
tolerance, so the test tightens when they are fixed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:e[+-]\d+)?")


@dataclass
class Comparison:
    exact: int = 0
    numeric: list = field(default_factory=list)  # (line, ours, R's) equal up to the tolerance
    bad: list = field(default_factory=list)  # (line number, ours, R's, why)

    @property
    def ok(self) -> bool:
        return not self.bad


def _split(line: str):
    nums = [(m.start(), m.group()) for m in _NUMBER.finditer(line)]
    text = _NUMBER.sub("#", line)
    return text, nums


def _decimals(tok: str) -> tuple[int, int]:
    mant = tok.split("e")[0]
    return len(tok), len(mant.split(".")[1]) if "." in mant else 0


def compare_lines(ours: list[str], ref: list[str], rel: float = 1e-4, loose: dict | None = None,
                  header_of=None) -> Comparison:
    """Compare printed lines; ``loose`` maps a row label to {column name: relative tolerance},
    the column found in the table header ``header_of(line number)`` (a list of column names)."""
    out = Comparison()
    if len(ours) != len(ref):
        out.bad.append((-1, len(ours), len(ref), "number of lines"))
    for k, (a, b) in enumerate(zip(ours, ref)):
        if a == b:
            out.exact += 1
            continue
        ta, na = _split(a)
        tb, nb = _split(b)
        if ta != tb or len(na) != len(nb):
            out.bad.append((k, a, b, "text"))
            continue
        tols = [rel] * len(nb)
        label = b.split(" ")[0]
        if loose and label in loose and header_of is not None:
            header = header_of(k)
            after = [i for i, (pos, _) in enumerate(nb) if pos >= len(label)]
            for col, tol in loose[label].items():
                j = header.index(col)
                tols[after[j]] = tol
        why = None
        for (_, x), (_, y), tol in zip(na, nb, tols):
            if _decimals(x) != _decimals(y):
                why = f"layout of {x} vs {y}"
            elif abs(float(x) - float(y)) > tol * abs(float(y)) + 1e-300:
                why = f"{x} vs {y} beyond {tol:g}"
            if why:
                break
        if why:
            out.bad.append((k, a, b, why))
        else:
            out.numeric.append((k, a, b))
    return out


def table_header(lines: list[str]):
    """``header_of`` for :func:`compare_lines`: the column names of the table a line belongs to."""
    def header_of(k: int) -> list[str]:
        for j in range(k - 1, -1, -1):
            cols = lines[j].split()
            if any(c in cols for c in ("Estimate", "edf")):
                return re.findall(r"Std\. Error|[tz] value|\S+", lines[j])
        raise ValueError(f"line {k} is not in a table")

    return header_of
