"""Satterthwaite and Kenward-Roger df and p-values against lmerTest 3.1-3 / pbkrtest 0.5.2
(tests/reference/inference_reference.json, made by tests/reference/make_inference_reference.R)."""

import json
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import pymlm as ml
from pymlm.errors import OptionError, SingularFitWarning
from pymlm.fit.lmm import fit_from_theta
from pymlm.inference import kenward_roger as kr
from pymlm.inference import satterthwaite as sat

REF = json.loads((Path(__file__).parents[1] / "reference" / "inference_reference.json").read_text())


def _sleep():
    d = ml.datasets.load("sleepstudy")
    d["Days2"] = d["Days"] ** 2
    return d


def _unbalanced():
    d = _sleep()
    keep = np.ones(len(d), bool)
    keep[::5] = False            # R: rows 1, 6, 11, ... dropped
    return d[keep].reset_index(drop=True)


CASES = {
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", _sleep, True),
    "sleepstudy_ml": ("Reaction ~ Days + (Days | Subject)", _sleep, False),
    "penicillin": ("diameter ~ 1 + (1 | plate) + (1 | sample)", lambda: ml.datasets.load("Penicillin"), True),
    "pastes": ("strength ~ 1 + (1 | batch/cask)", lambda: ml.datasets.load("Pastes"), True),
    "dyestuff2": ("Yield ~ 1 + (1 | Batch)", lambda: ml.datasets.load("Dyestuff2"), True),
    "sleepstudy_unbalanced": ("Reaction ~ Days + Days2 + (Days | Subject)", _unbalanced, True),
    "sleepstudy_uncorr": ("Reaction ~ Days + (Days || Subject)", _sleep, True),
}
REML_CASES = [c for c, v in CASES.items() if v[2]]


@pytest.fixture(scope="module")
def models():
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        for case, (formula, data, reml) in CASES.items():
            out[case] = ml.lmer(formula, data(), REML=reml)
    return out


def _at_lme4_optimum(m, case):
    """The problem evaluated at lme4's theta (lmerTest's df depend on where the optimizer stopped)."""
    pr = m.problem
    theta = np.atleast_1d(np.asarray(REF[case]["theta"], dtype=float))
    fit = fit_from_theta(pr.fit.evaluator, theta, pr.fit.opt)
    assert fit.sigma == pytest.approx(REF[case]["sigma"], rel=1e-9)
    return replace(pr, fit=fit)


@pytest.mark.parametrize("case", list(CASES))
def test_satterthwaite_equals_lmertest_at_the_same_estimates(models, case):
    m = models[case]
    parts = sat.satterthwaite_parts(_at_lme4_optimum(m, case))
    df = sat.contrast_df(parts, np.eye(len(m.fixef)))
    tab = sat.ddf_table(m.fixef, parts.vcov, df)
    ref = REF[case]["satterthwaite"]
    np.testing.assert_allclose(df, np.atleast_1d(ref["df"]), rtol=1e-6)
    np.testing.assert_allclose(tab["Std. Error"], np.atleast_1d(ref["se"]), rtol=1e-8)
    np.testing.assert_allclose(tab["Pr(>|t|)"], np.atleast_1d(ref["p"]), rtol=1e-5)


@pytest.mark.parametrize("case", REML_CASES)
def test_kenward_roger_equals_pbkrtest_at_the_same_estimates(models, case):
    m = models[case]
    k = kr.kenward_roger(_at_lme4_optimum(m, case))
    df = kr.contrast_df(k, np.eye(len(m.fixef)))
    tab = sat.ddf_table(m.fixef, k.vcov_adjusted, df)
    ref = REF[case]["kenward_roger"]
    np.testing.assert_allclose(df, np.atleast_1d(ref["df"]), rtol=1e-8)
    np.testing.assert_allclose(tab["Std. Error"], np.atleast_1d(ref["se"]), rtol=1e-8)
    np.testing.assert_allclose(tab["Pr(>|t|)"], np.atleast_1d(ref["p"]), rtol=1e-8)


def _check_table(tab, ref):
    """At each package's own estimates: lme4 stops with a gradient of about 1e-4 (pymlm's optimum
    has a lower criterion and a gradient 10-100 times smaller), theta about 3e-5 apart; the df
    move by up to 1e-4 relative, and the p-values by d log p / d df times that (at the same
    estimates the agreement is 1e-6, tests above)."""
    np.testing.assert_allclose(tab["df"], np.atleast_1d(ref["df"]), rtol=2e-4)
    p, p_ref = tab["Pr(>|t|)"].to_numpy(), np.atleast_1d(ref["p"])
    moderate = p_ref > 1e-10
    np.testing.assert_allclose(p[moderate], p_ref[moderate], rtol=2e-3)
    # tiny p-values magnify the df difference: d log p / d df is about 2 at p = 1e-18
    np.testing.assert_allclose(np.log(p[~moderate]), np.log(p_ref[~moderate]), rtol=1e-4)


@pytest.mark.parametrize("case", list(CASES))
def test_coef_table_with_satterthwaite_matches_lmertest(models, case):
    tab = models[case].coef_table(ddf="Satterthwaite")
    assert list(tab.columns) == ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
    assert list(tab.index) == list(np.atleast_1d(REF[case]["satterthwaite"]["term"]))
    _check_table(tab, REF[case]["satterthwaite"])


@pytest.mark.parametrize("case", REML_CASES)
def test_coef_table_with_kenward_roger_matches_lmertest(models, case):
    tab = models[case].coef_table(ddf="Kenward-Roger")
    _check_table(tab, REF[case]["kenward_roger"])
    np.testing.assert_allclose(tab["Std. Error"], np.atleast_1d(REF[case]["kenward_roger"]["se"]), rtol=1e-4)


def test_balanced_designs_give_the_textbook_df(models):
    """sleepstudy is balanced: 18 subjects, so both effects have 17 df (REML) by Kenward-Roger."""
    np.testing.assert_allclose(models["sleepstudy"].coef_table(ddf="Kenward-Roger")["df"], 17.0, rtol=1e-8)
    np.testing.assert_allclose(models["pastes"].coef_table(ddf="satterthwaite")["df"], 9.0, rtol=1e-6)


def test_jacobian_of_vcov_matches_finite_differences(models):
    m = models["sleepstudy_unbalanced"]
    parts = sat.satterthwaite_parts(m.problem)
    from pymlm.fit.deviance import DenseEvaluator

    pr = m.problem
    dev = DenseEvaluator(pr.cp, pr.reml, pr.tmap)
    phi = np.concatenate([pr.fit.theta, [pr.fit.sigma]])

    def vcov(ph):
        return ph[-1] ** 2 * dev.at(ph[:-1]).vcov_unscaled

    h = 1e-5 * np.maximum(np.abs(phi), 1.0)
    fd = np.array([(vcov(phi + h[i] * e) - vcov(phi - h[i] * e)) / (2 * h[i])
                   for i, e in enumerate(np.eye(phi.size))])
    np.testing.assert_allclose(parts.jacobian, fd, rtol=1e-5, atol=1e-7 * np.abs(fd).max())
    # the Hessian is symmetric positive definite at a proper optimum, A = 2 H^{-1}
    assert np.all(np.linalg.eigvalsh(parts.hessian) > 0)
    np.testing.assert_allclose(parts.vcov_varpar @ parts.hessian, 2 * np.eye(phi.size), atol=1e-8)


def test_ddf_errors_are_named(models):
    m = models["sleepstudy"]
    with pytest.raises(OptionError,
                       match="ddf must be one of None, 'Satterthwaite', 'Kenward-Roger'; got 'Satter'"):
        m.coef_table(ddf="Satter")
    with pytest.raises(OptionError, match="Kenward-Roger method is defined for REML fits"):
        models["sleepstudy_ml"].coef_table(ddf="Kenward-Roger")
    assert list(m.coef_table(ddf="none").columns) == ["Estimate", "Std. Error", "t value"]
