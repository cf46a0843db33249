"""Optimizer driver for the profiled deviance, and lme4's convergence checks.

The driver is apart from the objective: any bounded scipy method can be used.
After the optimum, :func:`check_convergence` repeats lme4's ``checkConv``:
a finite-difference gradient and Hessian at the optimum; the scaled gradient
(Hessian-Cholesky-solved, as lme4) must be below 0.002 in every interior
component, the Hessian must be positive definite; parameters on the
boundary mark a singular fit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import optimize

from .._validation import check_choice

__all__ = ["OPTIMIZERS", "OptResult", "bound_restart", "check_convergence", "fd_gradient_hessian",
           "minimize_theta"]

OPTIMIZERS = ("lbfgsb", "bobyqa", "nelder-mead", "powell", "cobyqa")


@dataclass(frozen=True)
class OptResult:
    """What the optimizer and the convergence checks report.

    Attributes
    ----------
    x : ndarray
        The optimum.
    fun : float
    nfev : int
        Objective evaluations by the optimizer.
    method : str
    success : bool
        The optimizer's own verdict.
    messages : tuple of str
        lme4-style convergence messages (empty when all checks pass).
    gradient, hessian : ndarray or None
        Finite-difference derivatives at the optimum (from the checks).
    seconds : float
    status : int
        The optimizer's status code (scipy's ``status``; 0 when it reports none).
    """

    x: np.ndarray
    fun: float
    nfev: int
    method: str
    success: bool
    message: str = ""
    messages: tuple[str, ...] = ()
    gradient: np.ndarray | None = None
    hessian: np.ndarray | None = None
    seconds: float = 0.0
    boundary: tuple[int, ...] = field(default_factory=tuple)
    status: int = 0

    @property
    def converged(self) -> bool:
        return self.success and not any(m.startswith("Model failed") for m in self.messages)


class _Counted:
    def __init__(self, fun):
        self.fun = fun
        self.n = 0
        self.best_x = None
        self.best_f = np.inf

    def __call__(self, x):
        self.n += 1
        f = self.fun(x)
        if f < self.best_f:
            self.best_f, self.best_x = f, np.array(x, dtype=float)
        return f


def minimize_theta(fun, x0: np.ndarray, lower: np.ndarray, method: str = "lbfgsb",
                   maxfev: int | None = None, tol: float = 1e-10) -> OptResult:
    """Minimize ``fun`` over theta subject to ``theta >= lower``.

    Parameters
    ----------
    fun : callable
        theta -> deviance (``inf`` where undefined).
    x0, lower : ndarray (k,)
    method : {"lbfgsb", "bobyqa", "nelder-mead", "powell", "cobyqa"}
        ``"lbfgsb"``: L-BFGS-B with central finite-difference gradients,
        polished by a bounded derivative-free pass when the gradient is
        unreliable; ``"bobyqa"``: scipy's COBYQA (Powell's successor of
        BOBYQA, lme4's default); the others are scipy's bounded methods.
    maxfev : int, optional
    tol : float
        Convergence tolerance on the objective.

    Returns
    -------
    OptResult
    """
    method = check_choice("optimizer", method, OPTIMIZERS)
    k = x0.size
    maxfev = maxfev or max(1000, 200 * k * k)
    counted = _Counted(fun)
    t0 = time.perf_counter()
    bounds = optimize.Bounds(lower, np.full(k, np.inf))
    if k == 0:
        f = counted(x0)
        return OptResult(x0, f, 1, method, True, "no parameters", seconds=time.perf_counter() - t0)
    if method == "lbfgsb":
        vg = _value_and_grad(fun, lower)
        calls = [0]

        def fg(x):
            calls[0] += 1
            f, g = vg(x)
            if f < counted.best_f:
                counted.best_f, counted.best_x = f, np.array(x, dtype=float)
            return f, g

        res = optimize.minimize(
            fg, x0, method="L-BFGS-B", jac=True, bounds=bounds,
            options=dict(maxfun=maxfev, ftol=tol, gtol=1e-6, maxcor=20),
        )
        counted.n += calls[0]
    elif method in ("bobyqa", "cobyqa"):
        res = optimize.minimize(
            counted, x0, method="COBYQA", bounds=bounds,
            options=dict(maxfev=maxfev, initial_tr_radius=0.2, final_tr_radius=1e-8),
        )
    elif method == "nelder-mead":
        res = optimize.minimize(
            counted, x0, method="Nelder-Mead", bounds=bounds,
            options=dict(maxfev=maxfev, xatol=1e-9, fatol=tol, adaptive=True),
        )
    else:
        res = optimize.minimize(
            counted, x0, method="Powell", bounds=bounds, options=dict(maxfev=maxfev, xtol=1e-9, ftol=tol)
        )
    x = np.maximum(np.asarray(res.x, dtype=float), lower)
    f = float(fun(x))
    if counted.best_x is not None and counted.best_f < f:
        x, f = counted.best_x, counted.best_f
    # L-BFGS-B's status 2 (no progress in the line search) happens at an optimum
    # flat to machine precision; the gradient check below is the judge there.
    ok = bool(res.success) or (method == "lbfgsb" and res.status == 2)
    return OptResult(x, f, counted.n, method, ok,
                     str(getattr(res, "message", "")), seconds=time.perf_counter() - t0,
                     status=int(getattr(res, "status", 0) or 0))


def bound_restart(fun, x: np.ndarray, lower: np.ndarray, start: np.ndarray, floor: float = 0.1,
                  steps: int = 12):
    """A point inside that beats a minimum found with theta on a bound, or None.

    A diagonal element of a template T enters Sigma only through squares
    (for a 2 x 2 term, Sigma_22 = sigma^2 (theta_2^2 + theta_3^2)), so the
    profiled criterion is flat to first order in it at 0: a gradient method
    that reaches the bound there sees a zero gradient and stops, even when
    the criterion falls inwards and the optimum is inside (L-BFGS-B's first
    step, of length 1, also jumps over an optimum close to 0). The elements
    on their bound are moved inwards together to t = s, s/2, ..., s/2^(steps-1)
    (s: their start value, at least ``floor``); the best of those points is
    returned when it is lower than ``fun(x)``, for the caller to minimize
    again from (with a derivative-free method) and keep the better optimum.

    Parameters
    ----------
    fun : callable
        theta -> criterion.
    x, lower, start : ndarray (k,)
        The optimum found, the bounds, the start of that search.
    floor : float
    steps : int

    Returns
    -------
    ndarray (k,) or None
        None when no element of ``x`` is within 1e-6 of a finite bound or
        no point probed is lower.
    """
    x = np.asarray(x, dtype=float)
    lower = np.asarray(lower, dtype=float)
    at_bound = np.isfinite(lower) & (x - lower < 1e-6)
    if not at_bound.any():
        return None
    scale = np.maximum(np.abs(np.asarray(start, dtype=float)[at_bound] - lower[at_bound]), floor)
    best_x, best_f = None, float(fun(x))
    for j in range(steps):
        probe = x.copy()
        probe[at_bound] = lower[at_bound] + scale * 0.5 ** j
        f = float(fun(probe))
        if f < best_f - 1e-12 * max(1.0, abs(best_f)):
            best_x, best_f = probe, f
    return best_x


def _value_and_grad(fun, lower):
    """``theta -> (value, gradient)``: analytic where the objective offers it,
    else (or where it declines) forward differences, one-sided at the bounds."""
    analytic = getattr(fun, "value_and_grad", None)

    def vg(x):
        x = np.asarray(x, dtype=float)
        if analytic is not None:
            f, g = analytic(x)
            if g is not None or not np.isfinite(f):
                return f, (g if g is not None else np.zeros_like(x))
        else:
            f = fun(x)
        h = 1e-7 * np.maximum(1.0, np.abs(x))
        g = np.empty_like(x)
        for i in range(x.size):
            e = np.zeros_like(x)
            e[i] = h[i]
            g[i] = (fun(x + e) - f) / h[i]
        return f, g

    return vg


def fd_gradient_hessian(fun, x: np.ndarray, lower: np.ndarray, delta: float = 1e-4):
    """Central finite-difference gradient and Hessian (lme4's ``deriv12``).

    Where ``x - delta`` falls below a bound, one-sided differences are used.
    """
    k = x.size
    f0 = fun(x)
    step = np.full(k, delta)
    grad = np.zeros(k)
    hess = np.zeros((k, k))
    fp = np.zeros(k)
    fm = np.zeros(k)
    onesided = x - step < lower
    for i in range(k):
        e = np.zeros(k)
        e[i] = step[i]
        fp[i] = fun(x + e)
        if onesided[i]:
            f2 = fun(x + 2 * e)
            grad[i] = (-3 * f0 + 4 * fp[i] - f2) / (2 * step[i])
            hess[i, i] = (f2 - 2 * fp[i] + f0) / step[i] ** 2
            fm[i] = np.nan
        else:
            fm[i] = fun(x - e)
            grad[i] = (fp[i] - fm[i]) / (2 * step[i])
            hess[i, i] = (fp[i] - 2 * f0 + fm[i]) / step[i] ** 2
    for i in range(k):
        for j in range(i):
            ei = np.zeros(k)
            ej = np.zeros(k)
            ei[i] = step[i]
            ej[j] = step[j]
            if onesided[i] or onesided[j]:
                fij = fun(x + ei + ej)
                hess[i, j] = hess[j, i] = (fij - fp[i] - fp[j] + f0) / (step[i] * step[j])
            else:
                fpp = fun(x + ei + ej)
                fmm = fun(x - ei - ej)
                hess[i, j] = hess[j, i] = (fpp - fp[i] - fp[j] + 2 * f0 - fm[i] - fm[j] + fmm) / (2 * step[i] * step[j])
    return grad, hess


def _hessian_from_gradients(vg, x, interior, delta=1e-4):
    """Exact gradient at x and a Hessian from forward differences of exact gradients."""
    _, g0 = vg(x)
    if g0 is None:
        return None, None
    k = interior.size
    hess = np.empty((k, k))
    for a, i in enumerate(interior):
        step = np.zeros_like(x)
        step[i] = delta
        _, gi = vg(x + step)
        if gi is None:
            return None, None
        hess[:, a] = (gi[interior] - g0[interior]) / delta
    return g0[interior], 0.5 * (hess + hess.T)


def check_convergence(fun, opt: OptResult, lower: np.ndarray, tol_grad: float = 2e-3,
                      tol_sing: float = 1e-4) -> OptResult:
    """lme4's post-fit checks: boundary, scaled gradient, Hessian definiteness.

    Returns
    -------
    OptResult
        ``opt`` with ``messages``, ``gradient``, ``hessian`` and ``boundary`` filled in.
    """
    x = opt.x
    lower = np.asarray(lower, dtype=float)
    boundary = tuple(int(i) for i in np.flatnonzero(np.isfinite(lower) & (x - lower < tol_sing)))
    messages: list[str] = []
    if not opt.success:
        messages.append(f"Model failed to converge: the optimizer ({opt.method}) stopped after {opt.nfev} "
                        f"evaluations: {opt.message}")
    if boundary:
        messages.append("boundary (singular) fit: see is_singular")
    interior = np.array([i for i in range(x.size) if i not in boundary], dtype=int)
    grad = hess = None
    if interior.size:
        analytic = getattr(fun, "value_and_grad", None)
        grad = None
        if analytic is not None:
            grad, hess = _hessian_from_gradients(analytic, x, interior)
        if grad is None:
            def sub(z):
                full = x.copy()
                full[interior] = z
                return fun(full)

            grad, hess = fd_gradient_hessian(sub, x[interior], lower[interior])
        try:
            R = np.linalg.cholesky(hess)
            scgrad = np.linalg.solve(R, grad)
            mingrad = np.minimum(np.abs(scgrad), np.abs(grad))
            worst = int(np.argmax(mingrad))
            if mingrad[worst] > tol_grad:
                messages.append(
                    f"Model failed to converge with max|grad| = {mingrad[worst]:.6g} "
                    f"(tol = {tol_grad:g}, component {int(interior[worst]) + 1})"
                )
        except np.linalg.LinAlgError:
            ev = np.linalg.eigvalsh(hess)
            neg = int(np.sum(ev < 0))
            if neg:
                messages.append(f"Model failed to converge: degenerate  Hessian with {neg} negative eigenvalues")
            else:
                messages.append("unable to evaluate scaled gradient")
        else:
            ev = np.linalg.eigvalsh(hess)
            if ev.max() > 0 and ev.min() / ev.max() < 1e-6 and not boundary:
                messages.append("Model is nearly unidentifiable: very large eigenvalue ratio - Rescale variables?")
    return replace(opt, messages=tuple(messages), gradient=grad, hessian=hess, boundary=boundary)
