"""bam() and lmer() agree on linear mixed models.

A random intercept is a penalized term whose smoothing parameter is
phi / sigma_g^2, and the REML criterion of the penalized fit is lme4's REML
criterion, so the two fitters must give the same variance components,
fixed effects and criterion.
"""

import numpy as np
import pytest

import pymlm as ml


def _vc(varcorr, grp, var1=None):
    rows = varcorr[(varcorr["grp"] == grp)]
    if var1 is not None:
        rows = rows[(rows["var1"] == var1) & rows["var2"].isna()]
    return float(rows["vcov"].iloc[0])


@pytest.mark.parametrize("discrete", [True, False])
def test_random_intercept_variance_equals_lmer(discrete):
    df = ml.datasets.load("gamsim_re")
    b = ml.bam("y ~ 1 + (1 | g)", df, discrete=discrete)
    m = ml.lmer("y ~ 1 + (1 | g)", df, REML=True)
    assert _vc(b.varcorr, "g") == pytest.approx(_vc(m.varcorr, "g"), rel=1e-5)
    assert b.scale == pytest.approx(m.sigma**2, rel=1e-6)
    assert b.coef["(Intercept)"] == pytest.approx(m.fixef["(Intercept)"], abs=1e-6)
    assert 2 * b.reml_score == pytest.approx(m.reml_criterion, abs=1e-4)


def test_correlated_slopes_equal_lmer():
    df = ml.datasets.load("sleepstudy")
    b = ml.bam("Reaction ~ Days + (Days | Subject)", df)
    m = ml.lmer("Reaction ~ Days + (Days | Subject)", df, REML=True)
    for var1 in ("(Intercept)", "Days"):
        assert _vc(b.varcorr, "Subject", var1) == pytest.approx(_vc(m.varcorr, "Subject", var1), rel=1e-4)
    cov_b = b.varcorr.dropna(subset=["var2"])
    cov_m = m.varcorr.dropna(subset=["var2"])
    assert float(cov_b["sdcor"].iloc[0]) == pytest.approx(float(cov_m["sdcor"].iloc[0]), abs=1e-4)
    np.testing.assert_allclose(b.coef[["(Intercept)", "Days"]], m.fixef[["(Intercept)", "Days"]], atol=1e-6)
    assert 2 * b.reml_score == pytest.approx(m.reml_criterion, abs=1e-4)
    # the random effects are the conditional modes
    re_b = b.ranef["(1 + Days | Subject)"]
    re_m = m.ranef["Subject"]
    np.testing.assert_allclose(re_b.to_numpy(), re_m.to_numpy(), atol=1e-3)
