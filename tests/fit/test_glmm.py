"""The GLMM engine against lme4 and glmmTMB (tests/reference/glmer_reference.json)."""

from __future__ import annotations

import numpy as np
import pytest
from _glmm_cases import cases, fit_case, frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pymlm.design import build_design
from pymlm.errors import OptionError
from pymlm.fit.families import resolve_family
from pymlm.fit.glmm import (
    GlmmObjective,
    fit_glmm,
    fit_glmm_nb,
    gauss_hermite,
    pirls,
    problem_from_design,
)

FAST = ["cbpp_laplace", "cbpp_agq25", "cbpp_nagq0", "cbpp_proportion_weights", "poisson_offset", "bernoulli_01",
        "bernoulli_factor", "bernoulli_logical", "gamma_log", "sim_bin_slopes"]
SLOW = ["grouseticks_poisson", "crossed_binomial", "nested_poisson"]


def _vec(d):
    return np.array(list(d.values()), dtype=float)


@pytest.fixture(scope="module")
def fits():
    return {}


def _fit(fits, name):
    if name not in fits:
        fits[name] = fit_case(name)
    return fits[name]


@pytest.mark.parametrize("name", FAST + [pytest.param(n, marks=pytest.mark.slow) for n in SLOW])
def test_against_lme4(fits, name):
    fit, _, case = _fit(fits, name)
    se_ref = _vec(case["fixef_se"])
    assert np.all(np.abs(fit.beta - _vec(case["fixef"])) <= 3e-2 * se_ref)
    theta_ref = np.atleast_1d(case["theta"])
    assert np.all(np.abs(fit.theta - theta_ref) <= 2e-3 * np.maximum(1.0, np.abs(theta_ref)))
    if case["nAGQ"] <= 1:
        # a better optimum than lme4's passes; not worse than 1e-3
        assert fit.minus2loglik <= case["minus2loglik"] + 1e-3
        assert fit.objective_lme4 == fit.minus2loglik
    else:
        assert fit.objective_lme4 == pytest.approx(case["minus2loglik"], abs=1e-4)
    # lme4's SEs come from a finite-difference Hessian about 1% off the exact one
    assert np.allclose(np.sqrt(np.diag(fit.vcov)), se_ref, rtol=2e-2)
    if case["family"] in ("Gamma", "inverse.gaussian"):
        assert np.sqrt(fit.dispersion) == pytest.approx(case["sigma"], rel=2e-3)


@pytest.mark.parametrize("name", [n for n in FAST if "glmmTMB" in cases()[n] and cases()[n]["family"] in
                                  ("binomial", "poisson")])
def test_hessian_se_against_glmmTMB(fits, name):
    fit, _, case = _fit(fits, name)
    tmb = case["glmmTMB"]
    assert np.allclose(np.sqrt(np.diag(fit.vcov)), _vec(tmb["fixef_se"]), rtol=2e-4)
    assert np.allclose(fit.beta, _vec(tmb["fixef"]), atol=1e-3 * _vec(tmb["fixef_se"]).max())
    assert -0.5 * fit.minus2loglik == pytest.approx(tmb["logLik"], abs=5e-4)


def test_objective_equals_lme4_devfun(fits):
    """lme4's deviance function at a point away from the optimum: the same function, not only the optimum."""
    _, design, case = _fit(fits, "cbpp_laplace")
    problem, _ = problem_from_design(design, "binomial")
    obj = GlmmObjective(problem, nAGQ=1, stage=2)
    dv = case["devfun"]
    assert obj(np.array(dv["at"])) == pytest.approx(dv["value"], abs=1e-6)
    # at lme4's optimum lme4's reported value carries its looser PIRLS tolerance (5.6e-4 above)
    at_opt = obj(np.array(dv["at_opt"]))
    assert dv["value_at_opt"] - 1e-3 <= at_opt <= dv["value_at_opt"]


def test_deviance_and_modes(fits):
    fit, _, case = _fit(fits, "cbpp_laplace")
    assert fit.deviance_lme4 == pytest.approx(case["deviance"], abs=5e-3)
    head = case["fitted_head"]
    assert np.allclose(fit.mu[:len(head)], head, atol=2e-4)
    herd = case["ranef"]["herd"]
    assert np.allclose(fit.b[:len(herd)], [r["modes"]["(Intercept)"] for r in herd], atol=2e-3)
    assert np.allclose(fit.cond_var[0][:len(herd), 0, 0], [r["condVar"][0][0] for r in herd], rtol=5e-3)
    assert np.allclose(fit.u[:len(case["u_head"])], case["u_head"], atol=3e-3)


def test_rx_standard_errors(fits):
    _, design, _ = _fit(fits, "cbpp_laplace")
    problem, merge = problem_from_design(design, "binomial")
    rx = fit_glmm(problem, se="RX", merge=merge)
    assert rx.se_method == "RX" and rx.hessian is None
    se_rx, se_h = np.sqrt(np.diag(rx.vcov)), np.sqrt(np.diag(_fit(fits, "cbpp_laplace")[0].vcov))
    assert np.allclose(se_rx, se_h, rtol=0.05) and not np.allclose(se_rx, se_h, rtol=1e-4)


# one scalar term, a vector term, an offset, crossed and nested terms (the dense M^{-1} form)
GRADIENT_CASES = ["cbpp_laplace", "sim_bin_slopes", "poisson_offset", "crossed_binomial", "nested_poisson"]


@pytest.fixture(scope="module")
def objectives():
    out = {}
    for name in GRADIENT_CASES:
        case = cases()[name]
        design = build_design(" ".join(case["formula"].split()), frame(case["data"]), case.get("weights"),
                              check="glmer",
                              require_numeric_response=False)
        problem, _ = problem_from_design(design, case["family"])
        x0 = np.concatenate([np.atleast_1d(case["theta"]), _vec(case["fixef"])])
        out[name] = (GlmmObjective(problem, nAGQ=1, stage=2), x0)
    return out


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(GRADIENT_CASES), shift=st.lists(st.floats(-0.3, 0.3), min_size=6, max_size=6))
def test_analytic_gradient_equals_finite_differences(objectives, name, shift):
    """The Laplace gradient (canonical links; one term, crossed and nested terms) against central differences."""
    obj, x0 = objectives[name]
    assert obj.analytic
    x = x0 + np.asarray(shift[:x0.size])
    nt = obj.n_theta
    x[:nt] = np.where(obj.problem.tmap.is_diag, np.abs(x[:nt]) + 0.05, x[:nt])
    f, g = obj.value_and_grad(x)
    h = 1e-4 * np.maximum(np.abs(x), 0.1)
    fd = np.array([(obj(x + hi * e) - obj(x - hi * e)) / (2 * hi) for hi, e in zip(h, np.eye(x.size))])
    assert np.isfinite(f)
    assert np.allclose(g, fd, rtol=1e-5, atol=1e-4)


def test_finite_difference_gradient_of_the_search(fits):
    """The forward-difference gradient (families without the analytic one) against central differences."""
    _, design, _ = _fit(fits, "cbpp_laplace")
    problem, _ = problem_from_design(design, "binomial")
    obj = GlmmObjective(problem, nAGQ=1, stage=2)
    x = np.array([0.7, -1.3, -1.0, -1.2, -1.5])
    _, g = obj.fd_value_and_grad(x)
    _, exact = obj.value_and_grad(x)
    assert np.allclose(g, exact, rtol=1e-4, atol=1e-4)


def test_frequency_weights_equal_repeated_rows():
    """A 0/1 response with integer weights w fits as the data with each row repeated w times."""
    df = frame("glmer_bernoulli")
    rng = np.random.default_rng(3)
    w = rng.integers(1, 4, size=len(df)).astype(float)
    rep = df.loc[np.repeat(np.arange(len(df)), w.astype(int))].reset_index(drop=True)
    d1 = build_design("y ~ x + (1 | g)", df, w, check="glmer")
    d2 = build_design("y ~ x + (1 | g)", rep, check="glmer")
    f1 = fit_glmm(*_problem(d1))
    f2 = fit_glmm(*_problem(d2))
    assert np.allclose(f1.theta, f2.theta, atol=1e-5)
    assert np.allclose(f1.beta, f2.beta, atol=1e-5)
    assert np.allclose(f1.vcov, f2.vcov, rtol=1e-4)


def _problem(design, family="binomial"):
    return (problem_from_design(design, family)[0],)


def test_row_order_does_not_matter():
    df = frame("glmer_bernoulli")
    perm = np.random.default_rng(7).permutation(len(df))
    f1 = fit_glmm(*_problem(build_design("y ~ x + (1 | g)", df, check="glmer")))
    f2 = fit_glmm(*_problem(build_design("y ~ x + (1 | g)", df.iloc[perm].reset_index(drop=True), check="glmer")))
    assert np.allclose(f1.theta, f2.theta, atol=1e-6)
    assert np.allclose(f1.beta, f2.beta, atol=1e-6)
    assert f1.minus2loglik == pytest.approx(f2.minus2loglik, abs=1e-8)


def test_pirls_failure_is_a_flag_not_an_exception():
    """An impossible start (eta = 800 everywhere) ends as ok=False with a message or converges; never raises."""
    df = frame("glmer_bernoulli")
    problem, = _problem(build_design("y ~ x + (1 | g)", df, check="glmer"))
    res = pirls(problem, np.array([1e6]), np.array([800.0, -900.0]))
    assert isinstance(res.ok, bool)
    if not res.ok:
        assert "PIRLS" in res.message


def test_gauss_hermite_rule():
    z, w = gauss_hermite(25)
    assert w.sum() == pytest.approx(1.0)
    assert np.sum(w * z ** 2) == pytest.approx(1.0)
    assert np.sum(w * z ** 4) == pytest.approx(3.0)


def test_agq_with_one_node_is_laplace(fits):
    _, design, _ = _fit(fits, "cbpp_laplace")
    problem, _ = problem_from_design(design, "binomial")
    x = np.array([0.7, -1.4, -1.0, -1.1, -1.6])
    o1, o2 = GlmmObjective(problem, nAGQ=1), GlmmObjective(problem, nAGQ=2)
    _, r1 = o1.evaluate(x)
    # nAGQ = 1 in the quadrature formula: the deviance-scale Laplace (lme4's constant omitted)
    o2.nodes = gauss_hermite(1)
    assert o2(x) == pytest.approx(r1.drsum + r1.ussq + r1.ldL2, abs=1e-9)


def test_agq_needs_one_grouping_factor():
    case = cases()["crossed_binomial"]
    design = build_design(" ".join(case["formula"].split()), frame(case["data"]), check="glmer",
                          require_numeric_response=False)
    problem, _ = problem_from_design(design, case["family"])
    with pytest.raises(OptionError, match="single grouping factor"):
        GlmmObjective(problem, nAGQ=5)


def test_family_names_and_objects():
    import statsmodels.api as sm

    assert resolve_family("binomial").link_name == "logit"
    assert resolve_family("Gamma").link_name == "inverse"
    assert resolve_family(sm.families.Poisson()).name == "poisson"
    assert resolve_family(sm.families.Binomial(link=sm.families.links.Probit())).link_name == "probit"
    with pytest.raises(OptionError, match="lmer"):
        resolve_family("gaussian")
    with pytest.raises(OptionError, match="family must be one of"):
        resolve_family("binomal")


@pytest.mark.slow
def test_glmer_nb_against_lme4():
    case = cases()["glmer_nb_grouseticks"]
    design = build_design(" ".join(case["formula"].split()), frame(case["data"]), check="glmer")
    problem, merge = problem_from_design(design, "poisson")
    fit = fit_glmm_nb(problem, merge=merge)
    assert fit.family_name == case["family"]
    assert fit.nb_theta == pytest.approx(3.3075, abs=2e-3)
    assert fit.theta == pytest.approx(case["theta"], abs=1e-3)
    assert np.all(np.abs(fit.beta - _vec(case["fixef"])) <= 3e-3 * _vec(case["fixef_se"]))
    assert fit.minus2loglik <= case["minus2loglik"] + 1e-3
    assert np.allclose(np.sqrt(np.diag(fit.vcov)), _vec(case["fixef_se"]), rtol=2e-3)


@pytest.mark.slow
def test_results_do_not_depend_on_the_blas_kernel(fits):
    """The same fits with OpenBLAS's Sandybridge kernels in a fresh process agree to 1e-8."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    names = ["cbpp_laplace", "sim_bin_slopes", "crossed_binomial"]
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); from _glmm_cases import fit_case\n"
            "out = {}\n"
            f"for n in {names!r}:\n"
            "    f = fit_case(n)[0]\n"
            "    out[n] = list(f.theta) + list(f.beta) + list(f.vcov.ravel()) + [f.minus2loglik]\n"
            "print(json.dumps(out))")
    env = dict(os.environ, OPENBLAS_CORETYPE="Sandybridge")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    other = json.loads(run.stdout.strip().splitlines()[-1])
    for name in names:
        f = _fit(fits, name)[0]
        here = np.array(list(f.theta) + list(f.beta) + list(f.vcov.ravel()) + [f.minus2loglik])
        assert np.allclose(np.array(other[name]), here, rtol=1e-8, atol=1e-10), name
