"""The optimizer driver for the profiled deviance: every theta search goes through here.

- :func:`minimize_theta`: the fitter's search (any bounded scipy method, the
  analytic gradient with L-BFGS-B);
- :func:`minimize_from`: a warm-started search with restarts off spurious
  boundary stops (BLB and split-sample subset fits);
- :func:`refit`: a warm-started quasi-Newton refit from an inverse Hessian
  (:func:`minimize_qn`), else L-BFGS-B (bootstrap replicates, profiles);
- :func:`minimize_box`: a box-constrained search in other coordinates (the
  profile's inner search over sds, correlations and sigma);
- :func:`check_convergence`: lme4's post-fit checks.

The driver is apart from the objective (an evaluator of :mod:`pymlm.fit.deviance`,
or any callable). After the optimum, :func:`check_convergence` repeats lme4's ``checkConv``:
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
from .deviance import BOUNDARY_STEP, BOUNDARY_TOL

__all__ = [
    "OPTIMIZERS",
    "OptResult",
    "bound_restart",
    "check_convergence",
    "escape_bound",
    "fd_gradient_hessian",
    "gradient_hessian",
    "lbfgsb",
    "lift_start",
    "minimize_1d",
    "minimize_box",
    "minimize_from",
    "minimize_qn",
    "minimize_theta",
    "positive_inverse",
    "refit",
]

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


def lbfgsb(fg, x0, lower, upper=None, ftol: float = 1e-10, gtol: float = 1e-6, **limits):
    """scipy's L-BFGS-B on the box ``lower <= x <= upper`` with an analytic ``fg: x -> (value, gradient)``.

    The one place the driver calls it (memory 20 corrections); ``limits`` are
    ``maxfun`` and/or ``maxiter``. Returns scipy's ``OptimizeResult``.
    """
    lower = np.asarray(lower, dtype=float)
    upper = np.full(lower.size, np.inf) if upper is None else np.asarray(upper, dtype=float)
    return optimize.minimize(fg, x0, method="L-BFGS-B", jac=True, bounds=optimize.Bounds(lower, upper),
                             options=dict(ftol=ftol, gtol=gtol, maxcor=20, **limits))


def minimize_box(fg, x0, lower, upper, ftol: float = 1e-13, gtol: float = 1e-8, maxiter: int = 1000) -> np.ndarray:
    """Minimize ``fg: x -> (value, gradient)`` on the box ``lower <= x <= upper`` (L-BFGS-B).

    For searches over other coordinates than theta (the profile's inner
    search over sds, correlations and sigma, scaled by the caller).

    Returns
    -------
    ndarray
        The optimum, inside the box.
    """
    res = lbfgsb(fg, x0, lower, upper, ftol=ftol, gtol=gtol, maxiter=maxiter)
    return np.clip(res.x, lower, upper)


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

        res = lbfgsb(fg, x0, lower, ftol=tol, gtol=1e-6, maxfun=maxfev)
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
    x, lower, start : ndarray (n_theta,)
        The optimum found, the bounds, the start of that search.
    floor : float
    steps : int

    Returns
    -------
    ndarray (n_theta,) or None
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


def escape_bound(fun, opt: OptResult, lower: np.ndarray, start: np.ndarray) -> OptResult:
    """``opt``, or a better optimum searched (Nelder-Mead) from :func:`bound_restart`'s point."""
    x0 = bound_restart(fun, opt.x, lower, start)
    if x0 is None:
        return opt
    again = minimize_theta(fun, x0, lower, method="nelder-mead")
    if again.fun < opt.fun:
        return replace(again, nfev=opt.nfev + again.nfev, seconds=opt.seconds + again.seconds)
    return opt


def _inside_boundary(analytic, lower):
    """The search's rule on the boundary: ``theta -> (value, gradient)`` with the gradient
    taken ``BOUNDARY_STEP`` inside for elements on their bound.

    A diagonal element of T_k enters the criterion only through squares and
    products, so at 0 its exact derivative is often 0 (a stationary point of
    an even function); just inside, the gradient shows whether the optimum
    lies inside (a negative curvature along the element), and the search can
    leave the bound.
    """
    if analytic is None:
        return None
    near = lower + BOUNDARY_TOL          # -inf where there is no bound

    def vg(x):
        f, g = analytic(x)
        on = x < near
        if on.any() and np.isfinite(f):
            inside = np.array(x, dtype=float)
            inside[on] = lower[on] + BOUNDARY_STEP
            g = analytic(inside)[1]
        return f, g

    return vg


def _value_and_grad(fun, lower):
    """``theta -> (value, gradient)``: analytic where the objective offers it (with the
    boundary rule of :func:`_inside_boundary`), else (or where it declines) forward
    differences, one-sided at the bounds."""
    analytic = _inside_boundary(getattr(fun, "value_and_grad", None), np.asarray(lower, dtype=float))

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
                      tol_sing: float = 1e-4, derivatives=None) -> OptResult:
    """lme4's post-fit checks: boundary, scaled gradient, Hessian definiteness.

    ``derivatives``, optional: ``(gradient, hessian)`` at ``opt.x`` over all
    parameters, when the caller has them (the GLMM fitter's Hessian for its
    standard errors); otherwise they are computed here.

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
        analytic = _inside_boundary(getattr(fun, "value_and_grad", None), lower)
        grad = None
        if derivatives is not None:
            grad = np.asarray(derivatives[0], dtype=float)[interior]
            hess = np.asarray(derivatives[1], dtype=float)[np.ix_(interior, interior)]
        elif analytic is not None:
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


# ---------------------------------------------------------------- warm-started refits
# diagonal elements of theta start at least this far from their bound of 0
START_LIFT = 1e-2


def lift_start(theta0, lower) -> np.ndarray:
    """A start off the boundary: a diagonal element at 0 starts at ``START_LIFT``.

    For a scalar term the criterion is even in theta_k, so theta_k = 0 is
    always a stationary point; started there, a gradient method would stay
    even where 0 is a maximum along theta_k (a fixed effect far from its
    estimate can make a variance worth having again).
    """
    lower = np.asarray(lower, dtype=float)
    theta0 = np.maximum(np.asarray(theta0, dtype=float), lower)
    on_bound = np.isfinite(lower) & (theta0 < lower + START_LIFT)
    return np.where(on_bound, lower + START_LIFT, theta0)


def positive_inverse(H: np.ndarray, floor: float = 1e-8) -> np.ndarray:
    """Inverse of a symmetric matrix with its eigenvalues floored at ``floor`` times the largest."""
    vals, vecs = np.linalg.eigh(0.5 * (H + H.T))
    top = max(float(np.max(np.abs(vals))), 1e-12)
    vals = np.maximum(vals, floor * top)
    return (vecs / vals) @ vecs.T


def minimize_qn(fg, x0, lower, hess_inv, tol: float = 1e-10, maxit: int = 100):
    """Projected quasi-Newton (BFGS) minimization subject to ``x >= lower``.

    Variables on their bound whose gradient points outwards are held
    there; the step on the others is -H g with H the BFGS inverse Hessian,
    started from ``hess_inv``; a backtracking line search on the projected
    path (Armijo). Stops when the Newton decrement g'Hg of the free
    variables is below ``tol * max(1, |f|)``.

    Parameters
    ----------
    fg : callable
        x -> (f, gradient); (inf, None) where undefined.
    x0, lower : ndarray (k,)
    hess_inv : ndarray (k, k)
        Positive definite start of the inverse Hessian.

    Returns
    -------
    x : ndarray
    converged : bool
    """
    x = np.maximum(np.asarray(x0, dtype=float), lower)
    f, g = fg(x)
    if g is None or not np.isfinite(f):
        return x, False
    H = np.array(hess_inv, dtype=float)

    def direction(H, g, held):
        if not held.any():
            return -(H @ g)
        free = ~held
        d = np.zeros_like(g)
        d[free] = -(H[np.ix_(free, free)] @ g[free])
        return d

    for _ in range(maxit):
        held = (x <= lower) & (g > 0)
        d = direction(H, g, held)
        slope = float(g @ d)
        if not slope < 0:
            H = np.array(hess_inv, dtype=float)
            d = direction(H, g, held)
            slope = float(g @ d)
            if not slope < 0:
                return x, bool(np.max(np.abs(g[~held]), initial=0.0) < 1e-8)
        if -slope <= tol * max(1.0, abs(f)):
            return x, True
        t = 1.0
        while True:
            xn = np.maximum(x + t * d, lower)
            fn, gn = fg(xn)
            if gn is not None and np.isfinite(fn) and fn <= f + 1e-4 * float(g @ (xn - x)):
                break
            t *= 0.5
            if t < 1e-10:
                # no decrease left to find within rounding: converged if the
                # predicted decrease is negligible
                return x, -slope <= 1e-8 * max(1.0, abs(f))
        s_ = xn - x
        y_ = gn - g
        sy = float(s_ @ y_)
        if sy > 1e-12 * np.sqrt(float(s_ @ s_) * float(y_ @ y_)):
            rho = 1.0 / sy
            Hy = H @ y_
            sH = s_[:, None] * Hy[None, :]
            H = H - rho * (sH + sH.T) + (rho * rho * float(y_ @ Hy) + rho) * (s_[:, None] * s_[None, :])
        x, f, g = xn, fn, gn
    return x, False


def refit(evaluator, theta0, tol: float = 1e-10, hess_inv=None):
    """Minimize an evaluator's criterion from a warm start, with its analytic gradient.

    Parameters
    ----------
    evaluator : pymlm.fit.deviance.Evaluator
    theta0 : ndarray (n_theta,)
        Start (a diagonal element on its bound is lifted, see :func:`lift_start`).
    tol : float
        Relative tolerance on the criterion.
    hess_inv : ndarray (n_theta, n_theta), optional
        An approximate inverse Hessian (e.g. at the estimates of the
        original data, for bootstrap refits): the projected quasi-Newton
        method :func:`minimize_qn` started from it converges in a few steps.
        Without it, or when it fails, L-BFGS-B.

    Returns
    -------
    theta : ndarray
    point : pymlm.fit.deviance.DeviancePoint
    converged : bool
    """
    lower = evaluator.lower
    theta0 = lift_start(theta0, lower)
    if evaluator.n_theta == 0:
        return theta0, evaluator.at(theta0), True
    if hess_inv is not None:
        theta, ok = minimize_qn(evaluator.value_and_grad, theta0, lower, hess_inv, tol=tol)
        if ok:
            return _escaped(evaluator, theta, theta0, True)

    def fg_safe(th):
        f, g = evaluator.value_and_grad(th)
        return (1e300, np.zeros_like(th)) if g is None else (f, g)

    res = lbfgsb(fg_safe, theta0, lower, ftol=tol, gtol=1e-6, maxfun=2000)
    theta = np.maximum(np.asarray(res.x, dtype=float), lower)
    g = fg_safe(theta)[1]
    projected = np.where((theta <= lower) & (g > 0), 0.0, g)
    ok = bool(res.success) or float(np.max(np.abs(projected), initial=0.0)) < 1e-4
    return _escaped(evaluator, theta, theta0, ok)


def _escaped(evaluator, theta, theta0, ok):
    """``refit``'s result after :func:`bound_restart`: a better optimum inside replaces one on a bound."""
    def value(th):
        return evaluator.value_and_grad(th)[0]

    x0 = bound_restart(value, theta, evaluator.lower, theta0)
    if x0 is not None:
        again = minimize_theta(value, x0, evaluator.lower, method="nelder-mead")
        if again.fun < value(theta):
            theta, ok = again.x, bool(again.success)
    return theta, evaluator.at(theta), ok


def gradient_hessian(evaluator, theta, h: float = 1e-5) -> np.ndarray:
    """Hessian of an evaluator's criterion by central differences of its analytic gradient."""
    theta = np.asarray(theta, dtype=float)
    k = theta.size
    H = np.zeros((k, k))
    steps = h * np.maximum(np.abs(theta), 1e-2)
    for i in range(k):     # n_theta gradient pairs
        e = np.zeros(k)
        e[i] = steps[i]
        H[:, i] = (evaluator.at(theta + e, grad=True).grad - evaluator.at(theta - e, grad=True).grad) / (2 * steps[i])
    return 0.5 * (H + H.T)


def minimize_from(objective, start, lower) -> OptResult:
    """Minimize a profiled deviance from a warm start, escaping spurious boundary stops.

    When the optimum found has a diagonal element of theta on its bound and
    the deviance falls inwards, the search is restarted from inside
    (:func:`bound_restart`) and the better optimum is kept.
    """
    start = np.asarray(start, dtype=float)
    lower = np.asarray(lower, dtype=float)
    return escape_bound(objective, minimize_theta(objective, start, lower), lower, start)


def minimize_1d(fun, lo: float, hi: float, xatol: float = 1e-5) -> tuple[float, float, int]:
    """Minimize a function of one variable on [lo, hi] (Brent's bounded method).

    For outer searches over one parameter whose every evaluation is a fit
    (the negative binomial's shape in ``glmer_nb``).

    Returns
    -------
    x, f : float
    nfev : int
    """
    res = optimize.minimize_scalar(fun, bounds=(lo, hi), method="bounded", options={"xatol": xatol})
    return float(res.x), float(res.fun), int(res.nfev)
