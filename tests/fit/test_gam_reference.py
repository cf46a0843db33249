"""gam() and bam() against mgcv 1.8-41.

- gamsim_re (20000 rows, four cr smooths and a 200-level random intercept;
  tests/reference/gam_reference.R): gam REML and bam(discrete = TRUE) are held
  to the precision of the optimizers, bam(discrete = FALSE) to mgcv's own
  spread (mgcv builds that fit's knots on a random subsample of 10000 rows;
  pymlm uses every row, as gam does).
- small cases (tests/reference/smooth_reference.R): every basis, factor ``by``
  variables, random slopes, binomial and Poisson gam fits (Laplace REML), and
  binomial / Poisson / Gamma bam fits (performance iteration).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from _smooth_data import with_newdata

import pymlm as ml

REF = Path(__file__).resolve().parents[1] / "reference"
BIG = json.loads((REF / "gam_gamsim_re.json").read_text())
SMALL = json.loads((REF / "gam_small_fits.json").read_text())
FORMULA = 'y ~ s(x0, bs = "cr") + s(x1, bs = "cr") + s(x2, bs = "cr") + s(x3, bs = "cr") + s(g, bs = "re")'


@pytest.fixture(scope="module")
def gamsim():
    return ml.datasets.load("gamsim_re")


@pytest.fixture(scope="module")
def fits(gamsim):
    return {
        "gam": ml.gam(FORMULA, gamsim),
        "bam": ml.bam(FORMULA, gamsim, discrete=False),
        "bam_discrete": ml.bam(FORMULA, gamsim, discrete=True),
    }


# (coefficients, edf, fitted / sd(y), scale relative, F relative, score absolute)
TOL = {
    "gam": (1e-3, 5e-4, 1e-5, 1e-6, 1e-3, 1e-3),
    "bam_discrete": (1e-5, 2e-5, 1e-7, 1e-7, 1e-5, 1e-6),
}


@pytest.mark.parametrize("name", ["gam", "bam_discrete"])
def test_gamsim_matches_mgcv(name, fits, gamsim):
    m, r = fits[name], BIG["fits"][name]
    t_coef, t_edf, t_fit, t_scale, t_f, t_score = TOL[name]
    coef = m.coef
    ref_coef = pd.Series(r["coefficients_all"])
    assert list(coef.index) == list(ref_coef.index)
    np.testing.assert_allclose(coef.to_numpy(), ref_coef.to_numpy(), atol=t_coef)
    for k, v in r["edf"].items():
        assert m.edf[k] == pytest.approx(v, abs=t_edf)
    sd = float(np.std(gamsim["y"]))
    np.testing.assert_allclose(m.fitted[:20], r["fitted_head"], atol=t_fit * sd)
    assert m.scale == pytest.approx(r["scale"], rel=t_scale)
    assert m.reml_score == pytest.approx(r["score"], abs=t_score)
    assert m.r_sq == pytest.approx(r["r_sq"], abs=1e-6)
    assert m.dev_expl == pytest.approx(r["dev_expl"], abs=1e-6)
    st = m.s_table
    for row in r["s_table"]:
        assert st.loc[row["term"], "Ref.df"] == pytest.approx(row["Ref.df"], rel=t_f)
        assert st.loc[row["term"], "F"] == pytest.approx(row["F"], rel=t_f)
        assert st.loc[row["term"], "p-value"] == pytest.approx(row["p-value"], abs=1e-4)
    for j, knots in enumerate(r["knots"]):
        np.testing.assert_allclose(m.design.terms[j].smooth.basis.knots, knots, rtol=1e-13)


def test_gam_smoothing_parameters_match_mgcv(fits):
    m, r = fits["gam"], BIG["fits"]["gam"]
    for k, v in r["sp"].items():
        # s(x2)'s REML surface is flat around its optimum: its sp is looser
        assert np.log(m.sp[k]) == pytest.approx(np.log(v), abs=0.02 if k == "s(x2)" else 1e-3)


def test_nondiscrete_bam_within_mgcvs_spread(fits, gamsim):
    m, r = fits["bam"], BIG["fits"]["bam"]
    sd = float(np.std(gamsim["y"]))
    np.testing.assert_allclose(m.fitted[:20], r["fitted_head"], atol=5e-3 * sd)
    for k, v in r["edf"].items():
        assert m.edf[k] == pytest.approx(v, abs=0.05)
    assert m.scale == pytest.approx(r["scale"], rel=1e-3)
    # with every row for the knots, bam(discrete = FALSE) is gam
    np.testing.assert_allclose(m.coef, fits["gam"].coef, atol=1e-7)


FAMILIES = {"gaussian": "gaussian", "binomial": "binomial", "poisson": "poisson",
            "Gamma_log": sm.families.Gamma(sm.families.links.Log())}


@pytest.fixture(scope="module")
def small_data():
    return with_newdata(SMALL["newdata"])


# cases whose basis is reproduced exactly: fitted values to the optimizer's precision
EXACT = ["cr_ps", "tp2", "by_fac", "tp_re", "slope_re", "binomial_gam", "binomial_cbind_gam", "poisson_gam",
         "binomial_bam", "binomial_cbind_bam", "poisson_bam", "gamma_bam"]


# s(z) is a straight line in these fits: its smoothing parameter heads to infinity on a flat
# criterion, where mgcv's outer Newton stops earlier than pymlm (whose score is lower)
FLAT = {"binomial_gam", "binomial_cbind_gam", "poisson_gam"}


@pytest.mark.parametrize("case", sorted(SMALL["fits"]))
def test_small_cases_match_mgcv(case, small_data):
    d, nd = small_data
    r = SMALL["fits"][case]
    fam = FAMILIES[r["family"]]
    if r["engine"] == "gam":
        m = ml.gam(r["formula"], d, family=fam)
    else:
        m = ml.bam(r["formula"], d, family=fam, discrete=False)
    sd = float(np.std(m.design.y))
    exact = case in EXACT
    # te: mgcv stops early on a flat direction (its score is 5e-5 higher); fs: the split of the
    # null-space penalties depends on an arbitrary basis of that space
    tol_fit = (5e-4 if case in FLAT else 1e-5) if exact else 5e-3
    tol_edf = (5e-3 if case in FLAT else 1e-3) if exact else 1e-2
    np.testing.assert_allclose(m.fitted, r["fitted"], atol=tol_fit * sd)
    for k, v in r["edf"].items():
        assert m.edf[k] == pytest.approx(v, abs=tol_edf)
    assert m.scale == pytest.approx(r["scale"], rel=1e-5 if exact else 1e-4)
    if r["engine"] == "gam":
        assert m.reml_score == pytest.approx(r["score"], abs=(1e-3 if case in FLAT else 1e-4) if exact else 1e-2)
        assert m.reml_score <= r["score"] + 1e-6  # pymlm's optimum is at least as good
    st = m.s_table
    stat = "F" if "F" in st.columns else "Chi.sq"
    for row in r["s_table"]:
        assert stat in row
        rel = 1e-3 if exact and case not in FLAT else 2e-2
        assert st.loc[row["term"], "Ref.df"] == pytest.approx(row["Ref.df"], rel=rel)
        assert st.loc[row["term"], stat] == pytest.approx(row[stat], rel=rel)
        p_ref = row["p-value"]
        assert st.loc[row["term"], "p-value"] == pytest.approx(p_ref, abs=max(1e-4, 0.05 * p_ref))
    if exact:
        flat = case in FLAT
        np.testing.assert_allclose(m.predict(nd), r["predict_link"], atol=1e-3 if flat else 1e-4 * sd)
        fit, se = m.predict(nd, se_fit=True)
        np.testing.assert_allclose(se, r["predict_link_se"], rtol=2e-2 if flat else 1e-3)
        np.testing.assert_allclose(m.predict(nd, type="response"), r["predict_response"],
                                   rtol=1e-3 if flat else 1e-4, atol=1e-7)
    if case in ("cr_ps", "by_fac", "slope_re", "binomial_gam", "poisson_gam"):
        # same basis and constraint as mgcv's gam (bam's non-discrete fits use another
        # constraint parametrization, and tp bases another rotation): same coefficients
        np.testing.assert_allclose(m.coef, list(r["coefficients_all"].values()), atol=1e-4)
        flat = case in FLAT
        np.testing.assert_allclose(np.sqrt(np.diag(m.vcov)), r["se_diag"], rtol=2e-2 if flat else 2e-3,
                                   atol=5e-4 if flat else 0)
    ptab = m.p_table
    for row in r["p_table"] or []:
        assert ptab.loc[row["term"], "Estimate"] == pytest.approx(row["Estimate"], abs=row["Std. Error"] * (1e-3 if exact else 0.5))
