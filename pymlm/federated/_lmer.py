"""``fed.lmer``: the pooled REML/ML fit of a linear mixed model from sums over sites."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._validation import check_bool, check_formula
from ..errors import ConvergenceWarning, OptionError, PymlmWarning, SingularFitWarning, warn
from ..fit._optimize import check_convergence, escape_bound, minimize_theta
from ..fit.lmm import fit_lmm
from ._coordinator import Coordinator, SitesChanged, SiteSumEvaluator
from ._estimators import TwoStepFit, fit_em, fit_fisher, two_step_fit
from ._sums import TOPOLOGIES, FederationError, FixedPoint

__all__ = ["FederatedFit", "SiteBypassedWarning", "lmer", "two_step"]

METHODS = ("pls", "em", "fisher")


class SiteBypassedWarning(PymlmWarning):
    """A site stopped answering and the fit went on without it (the estimand changed)."""


FAILURE_POLICIES = ("bypass", "retry", "recover")


@dataclass(frozen=True, eq=False)
class FederatedFit:
    """A linear mixed model fitted across sites.

    Attributes
    ----------
    fixef, fixef_se : pandas.Series
        lme4's column names.
    vcov : pandas.DataFrame
        sigma^2 (R_X'R_X)^{-1}.
    theta : ndarray
        lme4's order.
    sigma : float
    varcorr : pandas.DataFrame
        ``grp``, ``var1``, ``var2``, ``vcov``, ``sdcor`` (lme4's ``as.data.frame(VarCorr(m))``).
    reml : bool
    reml_criterion, deviance, loglik : float
        The REML criterion (REML fits; NaN for ML), -2 log-likelihood at the
        optimum of an ML fit (NaN for REML), and the (restricted) log-likelihood.
    nobs : int
    ngroups : dict
    rounds : int
        Rounds of the protocol (each one sum over the sites).
    bytes_per_site : dict
        Bytes each site sent.
    sites_used : list of str
    estimand_changed : bool
        True when a site was bypassed: the fit is of the remaining sites' groups.
    transcript : list of Message
        Every message's round, kind, sender, receiver and size (no payloads).
    converged : bool
    messages : tuple of str
    """

    fixef: pd.Series
    fixef_se: pd.Series
    vcov: pd.DataFrame
    theta: np.ndarray
    sigma: float
    varcorr: pd.DataFrame
    reml: bool
    reml_criterion: float
    deviance: float
    loglik: float
    nobs: int
    ngroups: dict
    rounds: int
    bytes_per_site: dict
    sites_used: list
    estimand_changed: bool
    transcript: list = field(repr=False)
    converged: bool = True
    messages: tuple = ()
    method: str = "pls"

    def __repr__(self) -> str:
        crit = (
            f"REML criterion {self.reml_criterion:.4f}"
            if self.reml
            else f"deviance {self.deviance:.4f}"
        )
        return (
            f"FederatedFit({crit}, {len(self.sites_used)} sites, {self.rounds} rounds, "
            f"fixef {dict(self.fixef.round(4))})"
        )


def _varcorr(tmap, terms, theta, sigma) -> pd.DataFrame:
    vc = tmap.covariances(theta, sigma)
    sdcor = tmap.sdcor_from_covariances(vc)
    rows = []
    for (group, cnms), (g, off) in zip(terms, tmap.where):
        start = tmap.slices[g].start
        r, c = tmap.positions[g][0] - off, tmap.positions[g][1] - off
        mine = np.flatnonzero((r >= 0) & (r < len(cnms)) & (c >= 0) & (c < len(cnms)))
        for e in sorted(mine, key=lambda e: (r[e] != c[e], 0 if r[e] != c[e] else r[e])):
            i, j = int(r[e]), int(c[e])
            rows.append(
                (group, cnms[j], None if i == j else cnms[i], vc[start + e], sdcor[start + e])
            )
    rows.append(("Residual", None, None, sigma**2, sigma))
    return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])


def _check_sites(sites):
    sites = list(sites)
    if not sites:
        raise OptionError("sites must be a non-empty list of sites (fed.LocalSite)")
    names = [getattr(s, "name", None) for s in sites]
    if len(set(names)) != len(names):
        raise OptionError(f"site names must be unique; got {names}")
    return sites


def lmer(
    formula: str,
    sites,
    REML: bool = True,
    method: str = "pls",
    *,
    secure: bool = True,
    topology: str = "ring",
    start=None,
    on_failure: str = "bypass",
    retries: int = 2,
    min_groups: int = 3,
    min_rows: int = 10,
    max_rounds: int | None = None,
    levels: dict | None = None,
    check_conv: bool = True,
    codec: FixedPoint | None = None,
    one_round: bool = False,
    threshold: int | None = None,
    round_log=None,
    structural_zeros=(),
) -> FederatedFit:
    """Fit a linear mixed model to data held at several sites, exactly, from sums only.

    Each site holds whole groups; per evaluation of the profiled criterion
    every site sends the fixed-point encoding of its additive pieces (log|L|^2,
    the downdated [X y] block and their theta derivatives), masked so that
    only their sum is readable; the coordinator optimizes theta with the same
    driver as :func:`pymlm.lmer`. The estimates equal the pooled fit's.

    Parameters
    ----------
    formula : str
        lme4 formula; every grouping factor's levels must each be at one site.
    sites : list of LocalSite
    REML : bool
    method : {"pls", "em", "fisher"}
        ``"pls"``: penalized least squares on the profiled criterion (lme4's
        method); ``"em"``, ``"fisher"``: the EM algorithm and Fisher scoring
        of Afshartous & Michailidis (3.1.1, 3.1.2) over per-site sums, one
        random term, ML only (``REML=False``).
    secure : bool
        Pairwise-masked secure summation (default) or plain sums.
    topology : {"ring", "tree", "star"}
        How the sums travel (results are bitwise identical for every choice).
    start : array-like, optional
        Starting theta; default lme4's (1 on diagonals, 0 off them).
    on_failure : {"bypass", "retry", "recover"}
        A site that stops answering is dropped and the fit restarted from the
        current theta on the survivors (``estimand_changed`` is then True), or
        asked again ``retries`` times before the fit stops with
        :class:`FederationError`. ``"recover"`` (secure sums only): the sites
        hold Shamir shares of each other's keys (Bonawitz et al. 2017), so the
        round a site drops out of is completed from the survivors' masked
        answers without asking them again; the fit then goes on without it,
        as with ``"bypass"``.
    min_groups, min_rows : int
        A site with fewer groups of some grouping factor, or fewer rows, does not
        take part (it refuses in the first round).
    max_rounds : int, optional
        Round budget (default 200; 2000 for ``"em"``, which converges
        linearly); exceeding it stops the fit with :class:`FederationError`.
    levels : dict, optional
        Level sets of fixed-effect factors (``{"treatment": ["a", "b"]}``),
        else the union of what the sites report, in R's order.
    check_conv : bool
        lme4's convergence checks (n_theta + 1 further rounds).
    codec : FixedPoint, optional
        The fixed-point format (default 192 bits, 96 fractional).
    threshold : int, optional
        ``on_failure="recover"``: how many of the other n - 1 sites must
        survive to rebuild a dropped site's key (default: a majority of them).
    structural_zeros : sequence of str, optional
        Numeric columns some sites do not have (different level-1 or
        level-2 variable sets): a site lacking one enters it as 0, the
        paper's expanded matrices, so the fit equals the pooled fit of the
        zero-filled data. A site lacking any other column is refused.
    round_log : str or pathlib.Path, optional
        A file where the coordinator logs each evaluation round's decoded sum.
        If it holds the log of an interrupted fit of the same model and
        sites, those rounds are replayed without asking the sites: the fit
        resumes and gives the uninterrupted fit's bits.
    one_round : bool
        Each site sends its whole cross-products once, per-group blocks
        included (as pda's DLMM): three rounds in all, but the coordinator
        then reads every group's sums. Only when the user asks for it.

    Returns
    -------
    FederatedFit

    Examples
    --------
    >>> import pymlm as ml
    >>> import pymlm.federated as fed
    >>> df = ml.datasets.load("sleepstudy")
    >>> ids = df.Subject.astype(int)
    >>> sites = [fed.LocalSite(df[ids < 335], name="A"), fed.LocalSite(df[(ids >= 335) & (ids < 350)], name="B"),
    ...          fed.LocalSite(df[ids >= 350], name="C")]
    >>> f = fed.lmer("Reaction ~ Days + (Days | Subject)", sites)
    >>> round(f.reml_criterion, 3), f.sites_used
    (1743.628, ['A', 'B', 'C'])
    """
    formula = check_formula(formula)
    REML = check_bool("REML", REML)
    if method not in METHODS:
        raise OptionError(f"method must be 'pls', 'em' or 'fisher'; got {method!r}")
    if method != "pls" and REML:
        raise OptionError(
            f"method={method!r} gives the maximum likelihood fit: pass REML=False, or use method='pls'"
        )
    if topology not in TOPOLOGIES:
        raise OptionError(f"topology must be 'ring', 'tree' or 'star'; got {topology!r}")
    if on_failure not in FAILURE_POLICIES:
        raise OptionError(
            f"on_failure must be 'bypass', 'retry' or 'recover'; got {on_failure!r}"
        )
    secure = check_bool("secure", secure)
    one_round = check_bool("one_round", one_round)
    sites = _check_sites(sites)
    if max_rounds is None:
        max_rounds = 2000 if method == "em" else 200
    co = Coordinator(
        sites,
        formula,
        REML,
        secure=secure,
        topology=topology,
        codec=codec,
        levels=levels,
        min_groups=min_groups,
        min_rows=min_rows,
        max_rounds=max_rounds,
        on_failure=on_failure,
        retries=retries,
        threshold=threshold,
        zero_columns=tuple(structural_zeros),
    )
    co.describe()
    co.setup()
    if round_log is not None:
        co.open_log(round_log)
    if on_failure == "recover":
        if not secure:
            raise OptionError("on_failure='recover' recovers masks; it needs secure=True")
        co.share_keys()
    if co.n <= co.p:
        raise FederationError(
            f"{int(co.n)} observations for {co.p} fixed effects: too few to fit the model"
        )
    if method != "pls":
        return _scoring_result(co, method)
    if one_round:
        cp = co.cross_products()
        with np.errstate(all="ignore"):
            fit = fit_lmm(
                cp,
                co.tmap,
                theta0="auto" if start is None else start,
                reml=REML,
                check_conv=check_conv,
            )
        return _one_round_result(co, fit)
    lower = co.tmap.lower
    theta = co.tmap.start if start is None else np.asarray(start, dtype=float)
    if theta.shape != lower.shape:
        raise OptionError(
            f"start has {theta.size} values; this model has {lower.size} theta parameters"
        )
    changed = False
    while True:
        ev = SiteSumEvaluator(co, REML)
        try:
            opt = minimize_theta(ev, theta, lower, method="lbfgsb")
            opt = escape_bound(ev, opt, lower, theta)
            if check_conv:
                opt = check_convergence(ev, opt, lower)
            point = ev.at(opt.x)
            break
        except SitesChanged as exc:
            warn(
                f"{exc}; the fit goes on without them: the estimates are of the remaining sites' "
                f"groups ({', '.join(co.participants)}), not of the whole federation",
                SiteBypassedWarning,
            )
            # the criterion is now the survivors': set them up again and search from the last theta
            changed = True
            co._cache = None
            co.setup()
            theta = np.maximum(co.last_theta if co.last_theta is not None else theta, lower)
    return _result(co, ev, opt, point, changed)


def _scoring_result(co, method) -> FederatedFit:
    """EM or Fisher scoring (:mod:`pymlm.federated._estimators`), then one pieces round at the
    estimate for the standard errors and the log-likelihood."""
    if co.tmap.n_terms != 1:
        raise OptionError(
            f"method={method!r} needs one random-effects term; the model has {co.tmap.n_terms}"
        )
    out = (fit_em if method == "em" else fit_fisher)(co)
    beta, Sig, s2, iterations, converged = out[:5]
    T = np.linalg.cholesky(Sig / s2)
    rows, cols = co.tmap.positions[0]
    theta = T[rows, cols]
    ev = SiteSumEvaluator(co, False)
    point = ev.at(theta)
    sigma = float(np.sqrt(s2))
    messages = (
        ()
        if converged
        else (f"Model failed to converge: {method} stopped after {iterations} iterations",)
    )
    for m in messages:
        warn(m, ConvergenceWarning)
    return _fit_record(co, beta, theta, sigma, point, False, False, converged, messages, method)


def two_step(
    formula: str,
    sites,
    weighted: bool = False,
    *,
    secure: bool = True,
    topology: str = "ring",
    min_groups: int = 3,
    min_rows: int = 10,
    levels: dict | None = None,
) -> TwoStepFit:
    """The two-step least-squares estimators over sites (Afshartous & Michailidis, Table 1).

    Within each group, the OLS regression of the response on the columns of
    the random term; the fixed effects are the mean of those coefficients
    (``weighted=False``) or their precision-weighted mean with weights
    (tau + sigma^2 (Z_j'Z_j)^{-1})^{-1} (one more round); tau is the unbiased
    level-2 dispersion estimator, sigma2 the pooled within-group variance.
    Only sums of per-group quantities leave the sites.

    Parameters
    ----------
    formula : str
        One random term whose columns are the fixed effects, e.g.
        ``"Reaction ~ Days + (Days | Subject)"``.
    sites : list of LocalSite
    weighted : bool
    secure, topology, min_groups, min_rows, levels
        As :func:`lmer`.

    Returns
    -------
    TwoStepFit
        ``fixef``, ``fixef_se``, ``tau``, ``sigma2``, ``ngroups``, ``rounds``.

    Examples
    --------
    >>> import pymlm as ml
    >>> import pymlm.federated as fed
    >>> df = ml.datasets.load("sleepstudy")
    >>> low = df.Subject.astype(int) < 340
    >>> t = fed.two_step("Reaction ~ Days + (Days | Subject)",
    ...                  [fed.LocalSite(df[low], name="low"), fed.LocalSite(df[~low], name="high")])
    >>> round(float(t.fixef["Days"]), 4), t.ngroups
    (10.4673, 18)
    """
    formula = check_formula(formula)
    weighted = check_bool("weighted", weighted)
    if topology not in TOPOLOGIES:
        raise OptionError(f"topology must be 'ring', 'tree' or 'star'; got {topology!r}")
    co = Coordinator(
        _check_sites(sites),
        formula,
        False,
        secure=check_bool("secure", secure),
        topology=topology,
        levels=levels,
        min_groups=min_groups,
        min_rows=min_rows,
    )
    co.describe()
    co.setup()
    if co.tmap.n_terms != 1:
        raise OptionError(
            f"the two-step estimators need one random-effects term; the model has {co.tmap.n_terms}"
        )
    return two_step_fit(co, weighted)


def _one_round_result(co, fit) -> FederatedFit:
    """The one-round fit: the pooled cross-products' fit (:func:`pymlm.fit.lmm.fit_lmm`)."""
    return _result(co, fit.evaluator, fit.opt, fit.evaluator.at(fit.theta), False)


def _result(co, ev, opt, point, changed) -> FederatedFit:
    for m in opt.messages:
        warn(m, SingularFitWarning if m.startswith("boundary") else ConvergenceWarning)
    return _fit_record(
        co,
        point.beta,
        np.asarray(opt.x, dtype=float),
        point.sigma,
        point,
        ev.reml,
        changed,
        opt.converged,
        tuple(opt.messages),
        "pls",
    )


def _fit_record(
    co, beta, theta, sigma, point, reml, changed, converged, messages, method
) -> FederatedFit:
    """The result record: estimates, the criterion at ``point`` and the protocol's bookkeeping."""
    V = sigma**2 * point.vcov_unscaled
    names = co.X_names
    crit = point.deviance
    return FederatedFit(
        fixef=pd.Series(beta, index=names),
        fixef_se=pd.Series(np.sqrt(np.diag(V)), index=names),
        vcov=pd.DataFrame(V, index=names, columns=names),
        theta=theta,
        sigma=sigma,
        varcorr=_varcorr(co.tmap, co.terms, theta, sigma),
        reml=reml,
        reml_criterion=crit if reml else float("nan"),
        deviance=float("nan") if reml else crit,
        loglik=-0.5 * crit,
        nobs=int(co.n),
        ngroups=dict(co.nlevels),
        rounds=co.rounds,
        bytes_per_site=co.bytes_per_site(),
        sites_used=co.participants,
        estimand_changed=changed,
        transcript=list(co.transcript),
        converged=converged,
        messages=messages,
        method=method,
    )
