"""Random terms as the fitter sees them: same-factor terms merged, cross-products of a design."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..crossprod import cross_products
from ..design import Design
from ..errors import DataError
from ..linalg import ThetaMap

__all__ = ["TermMerge", "design_crossprod"]


@dataclass(frozen=True)
class TermMerge:
    """Adjacent random terms on one grouping factor, fitted as one block.

    ``(x || g)`` and ``(1 | g) + (0 + x | g)`` are two lme4 terms on the same
    factor; fitted as one term with a block-diagonal template they share the
    per-level kernels (MixedModels.jl does the same), and theta keeps lme4's
    order.

    Attributes
    ----------
    groups : tuple of tuple of int
        Design-term indices of each fitted term.
    where : tuple of (int, int)
        For each design term: (fitted term, first column in it).
    layout : tuple of (ndarray, ndarray)
        Per fitted term, the template positions of its theta elements.
    """

    groups: tuple
    where: tuple
    layout: tuple

    @classmethod
    def of(cls, terms) -> "TermMerge":
        groups: list[list[int]] = []
        for k, t in enumerate(terms):
            if groups and _same_factor(terms[groups[-1][-1]], t):
                groups[-1].append(k)
            else:
                groups.append([k])
        where, layout = [None] * len(terms), []
        for g, members in enumerate(groups):
            rows, cols, off = [], [], 0
            for k in members:
                p = terms[k].p
                r, c = np.tril_indices(p)
                order = np.lexsort((r, c))
                rows.append(r[order] + off)
                cols.append(c[order] + off)
                where[k] = (g, off)
                off += p
            layout.append((np.concatenate(rows), np.concatenate(cols)))
        return cls(tuple(tuple(g) for g in groups), tuple(where), tuple(layout))

    def theta_map(self, terms, names=()) -> ThetaMap:
        """The :class:`~pymlm.linalg.ThetaMap` of the fitted (merged) terms."""
        dims = [(sum(terms[k].p for k in g), terms[g[0]].nlevels) for g in self.groups]
        return ThetaMap.of(dims, self.layout, names, self.where)


def _same_factor(a, b) -> bool:
    return a.factors == b.factors and a.nlevels == b.nlevels and (
        a.codes is b.codes or np.array_equal(a.codes, b.codes))


def design_crossprod(design: Design, chunk_size: int = 500_000, freq_weights=None, y=None,
                     merge: TermMerge | None = None):
    """The cross-products of a design (response minus offset), terms merged per ``merge``."""
    yy = design.y if y is None else y
    if yy.ndim != 1:
        raise DataError(f"lmer needs a single numeric response; {design.y_name!r} has {yy.shape[1]} columns")
    if design.offset is not None:
        yy = yy - design.offset
    terms = design.re_terms
    merge = TermMerge.of(terms) if merge is None else merge
    codes, Xs, levels = [], [], []
    for members in merge.groups:
        t0 = terms[members[0]]
        codes.append(t0.codes)
        Xs.append(t0.X if len(members) == 1 else np.hstack([terms[k].X for k in members]))
        levels.append(t0.nlevels)
    return cross_products(codes, Xs, levels, design.X, yy, weights=design.weights,
                          freq_weights=freq_weights, chunk_size=chunk_size)
