"""Checks of what the plot functions are given."""

from __future__ import annotations

import numbers

import numpy as np

from ..errors import OptionError, option_error

__all__ = ["as_gam", "as_lmer", "check_group", "check_level", "check_terms", "ppoints"]


def as_lmer(obj, what: str):
    """``obj`` if it is a fitted linear mixed model (an :class:`~pymlm.LmerResult`)."""
    if not (
        hasattr(obj, "get_ranef") and hasattr(obj, "design") and hasattr(obj.design, "re_terms")
    ):
        raise OptionError(f"{what} needs a model fitted by pymlm.lmer(); got {type(obj).__name__}")
    return obj


def as_gam(obj, what: str):
    """``obj`` if it is a fitted GAM (a :class:`~pymlm.GamResult`)."""
    if not (hasattr(obj, "fit_") and hasattr(obj, "design") and hasattr(obj.design, "terms")):
        raise OptionError(
            f"{what} needs a model fitted by pymlm.gam() or pymlm.bam(); got {type(obj).__name__}"
        )
    return obj


def check_group(m, group, what: str) -> str:
    """The grouping factor to draw: ``group``, or the model's first one (as MixedModelsMakie)."""
    groups = list(dict.fromkeys(t.group for t in m.design.re_terms))
    if group is None:
        return groups[0]
    if group not in groups:
        raise option_error(f"group (of {what})", groups, group)
    return group


def check_level(level, name: str = "level") -> float:
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < float(level) < 1:
        raise OptionError(f"{name} must be a number in (0, 1), such as 0.95; got {level!r}")
    return float(level)


def check_terms(requested, available: list[str], what: str = "term") -> list[str]:
    """``requested`` (a name or a list of names) checked against ``available``; None: all."""
    if requested is None:
        return list(available)
    if isinstance(requested, str):
        requested = [requested]
    requested = list(requested)
    missing = [r for r in requested if r not in available]
    if missing:
        raise OptionError(f"no {what}(s) {missing} to draw; choose among {available}")
    return requested


def ppoints(n: int) -> np.ndarray:
    """R's ``ppoints(n)``: ``(i - a) / (n + 1 - 2a)``, a = 3/8 for n <= 10, else 1/2."""
    a = 0.375 if n <= 10 else 0.5
    return (np.arange(1, n + 1) - a) / (n + 1 - 2 * a)
