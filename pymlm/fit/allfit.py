"""lme4's ``allFit``: refit a linear mixed model with every optimizer of the driver.

The refits reuse the fit's cross-products and theta map, and call
:func:`pymlm.fit.lmm.fit_lmm` exactly as ``lmer(..., optimizer=name)`` does,
so each row of the table is the fit that optimizer gives alone. Agreement
of the rows (criteria equal to a few units in the 7th digit, estimates to
the optimizers' tolerance) says the optimum is not an artefact of one
optimizer; a row that differs points at a flat or multimodal criterion.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from .._validation import check_choice
from ..errors import OptionError
from ._optimize import OPTIMIZERS
from .lmm import fit_lmm

__all__ = ["allFit", "fit_each"]


def fit_each(cp, tmap, reml: bool, optimizers=OPTIMIZERS, theta0="auto", check_conv: bool = True,
             **options) -> list[tuple]:
    """Fit with each optimizer in turn.

    Parameters
    ----------
    cp : CrossProducts
    tmap : ThetaMap
    reml : bool
    optimizers : sequence of str
        Names from :data:`pymlm.fit._optimize.OPTIMIZERS`.
    theta0, check_conv, **options
        As :func:`pymlm.fit.lmm.fit_lmm`.

    Returns
    -------
    list of (name, LmmFit or Exception, seconds)
        A failure is kept as its exception, not raised.
    """
    out = []
    for name in optimizers:
        t0 = time.perf_counter()
        try:
            with np.errstate(all="ignore"):
                fit = fit_lmm(cp, tmap, theta0=theta0, reml=reml, optimizer=name, check_conv=check_conv, **options)
        except (np.linalg.LinAlgError, FloatingPointError, ValueError, ArithmeticError) as exc:
            fit = exc
        out.append((name, fit, time.perf_counter() - t0))
    return out


def allFit(m, optimizers=None) -> pd.DataFrame:
    """Refit an lmer model with every optimizer and tabulate the results (lme4's ``allFit``).

    Parameters
    ----------
    m : LmerResult
    optimizers : sequence of str, optional
        Default: all of ``"lbfgsb", "bobyqa", "nelder-mead", "powell", "cobyqa"``.

    Returns
    -------
    DataFrame
        One row per optimizer: the criterion (``REML criterion`` or
        ``deviance``), ``loglik``, theta (lme4's names), ``sigma``, the fixed
        effects, ``seconds``, ``feval`` (criterion evaluations),
        ``converged`` and lme4's convergence ``messages``; a failed refit is
        a row of NaN with its error in ``messages``.

    Raises
    ------
    OptionError
        An optimizer the driver does not know.

    Examples
    --------
    >>> import pymlm as ml
    >>> m = ml.lmer("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    >>> tab = ml.allFit(m)
    >>> list(tab.index)
    ['lbfgsb', 'bobyqa', 'nelder-mead', 'powell', 'cobyqa']
    >>> bool((tab["REML criterion"] - m.reml_criterion).abs().max() < 1e-4)
    True
    """
    if not all(hasattr(m, a) for a in ("crossprod", "tmap", "reml", "options", "fit")):
        raise OptionError(f"allFit takes a linear mixed model fitted by pymlm.lmer(); got {type(m).__name__}")
    names = list(OPTIMIZERS if optimizers is None else
                 ([optimizers] if isinstance(optimizers, str) else optimizers))
    names = [check_choice("optimizer", o, OPTIMIZERS) for o in names]
    opts = m.options
    start = opts.get("start", "auto")
    runs = fit_each(m.crossprod, m.tmap, m.reml, names, theta0=start,
                    check_conv=opts.get("check_conv", True), **(opts.get("optimizer_options") or {}))
    crit = "REML criterion" if m.reml else "deviance"
    theta_names = list(m.theta_names)
    fixef_names = list(m.design.X_names)
    rows = []
    for name, fit, seconds in runs:
        row = {crit: np.nan, "loglik": np.nan}
        if isinstance(fit, Exception):
            row.update({k: np.nan for k in theta_names + ["sigma"] + fixef_names})
            row.update(seconds=seconds, feval=0, converged=False, messages=f"{type(fit).__name__}: {fit}")
        else:
            row[crit] = fit.deviance
            row["loglik"] = -0.5 * fit.deviance
            row.update(dict(zip(theta_names, fit.theta)))
            row["sigma"] = fit.sigma
            row.update(dict(zip(fixef_names, fit.beta)))
            row.update(seconds=seconds, feval=fit.opt.nfev, converged=fit.opt.converged,
                       messages="; ".join(fit.opt.messages))
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index(names, name="optimizer"))
