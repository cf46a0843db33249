"""lmer against lme4 on the public reference fits (tests/reference/lme4_fits.json)."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import pymlm as ml

REF = json.loads((Path(__file__).parents[1] / "reference" / "lme4_fits.json").read_text())["cases"]
FAST = [c for c in REF if REF[c]["nobs"] < 10_000]


def _fit(case):
    ref = REF[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ml.SingularFitWarning)
        return ml.lmer(ref["formula"], ml.datasets.load(ref["dataset"]), REML=ref["REML"]), ref


def _check(m, ref):
    se = ref["fixef_se"]
    for name, want in ref["fixef"].items():
        assert abs(m.fixef[name] - want) <= 1e-3 * se[name], name
        assert m.fixef_se[name] == pytest.approx(se[name], rel=1e-3), name
    np.testing.assert_allclose(m.theta, np.atleast_1d(ref["theta"]), atol=1e-3)
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-4)
    if ref["REML"]:
        assert m.reml_criterion == pytest.approx(ref["REMLcrit"], abs=1e-3)
        assert m.deviance == pytest.approx(ref["deviance"], abs=2e-3)
    else:
        assert -2 * m.loglik == pytest.approx(-2 * ref["logLik"], abs=1e-3)
        assert m.deviance == pytest.approx(ref["deviance"], abs=1e-3)
    assert m.loglik == pytest.approx(ref["logLik"], abs=1e-3)
    assert m.aic == pytest.approx(ref["AIC"], abs=2e-3)
    assert m.bic == pytest.approx(ref["BIC"], abs=2e-3)
    assert m.nobs == ref["nobs"]
    assert {k: int(v) for k, v in m.ngroups.items()} == {k: int(v) for k, v in ref["ngroups"].items()}
    assert m.is_singular == ref["is_singular"]
    sd_y = 1.0
    np.testing.assert_allclose(m.fitted[:10], ref["fitted_head"], atol=1e-3 * max(sd_y, m.sigma))


@pytest.mark.parametrize("case", FAST)
def test_matches_lme4(case):
    m, ref = _fit(case)
    _check(m, ref)


@pytest.mark.parametrize("case", FAST)
def test_varcorr_and_ranef_match_lme4(case):
    m, ref = _fit(case)
    vc = m.varcorr
    assert len(vc) == len(ref["varcorr"])
    for got, want in zip(vc.itertuples(), ref["varcorr"]):
        assert got.grp == want["grp"]
        assert got.sdcor == pytest.approx(want["sdcor"], rel=2e-3, abs=2e-3)
    for group, rows in ref["ranef_head"].items():
        re = m.ranef[group]
        for row in rows:
            for col, want in row.items():
                if col == "level":
                    continue
                assert re.loc[row["level"], col] == pytest.approx(want, rel=2e-3, abs=2e-3 * m.sigma)


@pytest.mark.slow
def test_insteval_matches_lme4():
    m, ref = _fit("insteval_crossed_ml")
    _check(m, ref)
