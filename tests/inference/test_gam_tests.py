"""Tests of smooth and random-effect terms and GAM variance components against mgcv 1.8-41
(tests/reference/gam_summary_reference.json, made by tests/reference/gam_summary_reference.R).

- psum_chisq: Davies' algorithm, value for value with mgcv's psum.chisq;
- smooth_test / random_effect_test on mgcv's own matrices (testStat / reTest inputs);
- summary tables of fitted models (re terms with and without a covariate, factor ``by``
  smooths, cr / tp / ps / te smooths, fixed-df smooths, Gaussian, binomial and Poisson,
  gam and bam): F or Chi.sq, p-value, edf, Ref.df;
- varcorr against gam.vcomp.

Every case is one where pymlm's fit agrees with mgcv's (checked first), so the
statistics are what is compared.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import pymlm as ml
from pymlm.errors import OptionError
from pymlm.inference.gam_tests import davies, liu_tail, psum_chisq, random_effect_test, smooth_test

REF_FILE = Path(__file__).parents[1] / "reference" / "gam_summary_reference.json"
REF = json.loads(REF_FILE.read_text())
CASES = REF["cases"]

# the derived columns of the R script, in Python
DERIVED = {
    "log(TICKS + 1)": lambda d: np.log(d["TICKS"] + 1.0),
    "as.numeric(y > 8)": lambda d: (d["y"] > 8).astype(float),
}


def _data(case):
    d = ml.datasets.load(case["data"])
    if case.get("rows"):
        d = d.iloc[: case["rows"]].reset_index(drop=True)
    for name, expr in (case.get("derived") or {}).items():
        d[name] = DERIVED[expr](d)
    return d


_FITS = {}


def _fit(name):
    if name not in _FITS:
        c = CASES[name]
        d = _data(c)
        if c["engine"] == "gam":
            _FITS[name] = ml.gam(c["formula"], d, family=c["family"])
        else:
            _FITS[name] = ml.bam(c["formula"], d, family=c["family"], discrete=c["discrete"])
    return _FITS[name]


def _log_close(p, p_ref, tol=0.02):
    """p-values within ``tol`` on the log scale; mgcv's exact 0 (beyond Davies' range) must be 0."""
    if p_ref == 0:
        return p == 0
    return p > 0 and abs(np.log(p / p_ref)) <= tol


def _root(M):
    """B with B'B = M (eigenvalues at rounding level set to zero)."""
    vals, vecs = np.linalg.eigh((M + M.T) / 2)
    vals = np.where(vals > vals[-1] * M.shape[0] * np.finfo(float).eps, vals, 0.0)
    return np.sqrt(vals)[:, None] * vecs.T


# ------------------------------------------------------------------ psum_chisq
@pytest.mark.parametrize("i", range(len(REF["psum_chisq"])))
def test_psum_chisq_is_mgcvs_davies(i):
    r = REF["psum_chisq"][i]
    p = psum_chisq(r["q"], np.atleast_1d(r["lb"]), np.atleast_1d(r["df"]))
    assert p == pytest.approx(r["p"], rel=1e-8, abs=1e-13)


def test_psum_chisq_falls_back_to_liu_and_checks_its_input():
    lam = np.array([2.0, 1.0, 0.5, 0.1])
    # too few evaluations allowed: Davies stops (fault 4) and mgcv uses Liu et al.
    cdf, fault = davies(10.0, lam, lim=3)
    assert fault == 4 and np.isnan(cdf)
    assert psum_chisq(10.0, lam, lim=3) == pytest.approx(liu_tail(10.0, lam), rel=1e-12)
    assert psum_chisq(10.0, lam) != pytest.approx(liu_tail(10.0, lam), rel=1e-3)
    with pytest.raises(OptionError, match="df must be whole numbers >= 1"):
        psum_chisq(1.0, [1.0, 2.0], [1, 0])
    with pytest.raises(OptionError, match="at least one weight"):
        psum_chisq(1.0, [0.0, 0.0])


# ------------------------------------------------------- kernels on mgcv's matrices
KERNELS = [(name, j) for name, c in CASES.items() for j in range(len(c.get("kernel_inputs") or []))]


@pytest.mark.parametrize("name,j", KERNELS, ids=[f"{n}-{j}" for n, j in KERNELS])
def test_statistics_on_mgcvs_matrices(name, j):
    k = CASES[name]["kernel_inputs"][j]
    b = np.asarray(k["b"], dtype=float)
    if k["test"] == "testStat":
        XtX, V = np.asarray(k["XtX"]), np.asarray(k["V"])
        stat, p, rank = smooth_test(b, XtX, V, k["rank_in"], k["res_df"])
    else:
        Rm = np.atleast_2d(np.asarray(k["Rm"], dtype=float))
        B = _root(np.atleast_2d(np.asarray(k["Ve"], dtype=float)))
        stat, p, rank = random_effect_test(b, Rm, B, k["scale"], k["scale_estimated"],
                                           k["df_residual"])
    assert stat == pytest.approx(k["stat"], rel=1e-7)
    assert rank == pytest.approx(k["rank"], rel=1e-12)
    assert _log_close(p, k["pval"], 1e-4), (p, k["pval"])


# ------------------------------------------------------------------ summaries
# pymlm's tp basis is mgcv's up to a linear map of its coefficients; that can swap the two
# blends of a fractional-rank statistic, of which F reports one (the p-value averages both)
TP_TERMS = {("gamsim_smooths_gam", "s(x2)")}


@pytest.mark.parametrize("name", list(CASES))
def test_summary_table_matches_mgcv(name):
    c = CASES[name]
    m = _fit(name)
    # the fit first: a failure here is the fit's, not the statistics'
    np.testing.assert_allclose(m.fitted[:10], c["fitted_head"], atol=1e-4 * np.std(m.design.y))
    assert m.scale == pytest.approx(c["scale"], rel=1e-5)
    assert m.residual_df == pytest.approx(c["residual_df"], rel=1e-5)
    st = m.s_table
    stat = "F" if c["scale_estimated"] else "Chi.sq"
    assert list(st.columns) == ["edf", "Ref.df", stat, "p-value"]
    assert list(st.index) == [row["term"] for row in c["s_table"]]
    for row in c["s_table"]:
        got = st.loc[row["term"]]
        assert got["edf"] == pytest.approx(row["edf"], rel=1e-3)
        assert got["Ref.df"] == pytest.approx(row["Ref.df"], rel=1e-3)
        rel = 2e-3 if (name, row["term"]) in TP_TERMS else 1e-3
        assert got[stat] == pytest.approx(row[stat], rel=rel)
        assert _log_close(got["p-value"], row["p-value"]), (row, got["p-value"])


# ------------------------------------------------------------ variance components
VCOMP = [name for name, c in CASES.items() if 'bs = "re"' in c["formula"]]


@pytest.mark.parametrize("name", VCOMP)
def test_varcorr_is_gam_vcomp(name):
    c = CASES[name]
    m = _fit(name)
    vc = m.varcorr.set_index("grp")
    ref = c["vcomp_sd"]
    for term in m.edf.index:
        t = next(u for u in m.design.terms if u.label == term)
        if not t.is_random:
            assert term not in vc.index
            continue
        assert vc.loc[term, "sdcor"] == pytest.approx(ref[term], rel=1e-3)
        assert vc.loc[term, "vcov"] == pytest.approx(ref[term] ** 2, rel=2e-3)
    if c["scale_estimated"]:
        assert vc.loc["Residual", "sdcor"] == pytest.approx(ref["scale"], rel=1e-3)
    else:
        assert "Residual" not in vc.index


def test_random_slope_is_on_the_covariates_scale_and_named_after_it():
    """s(Subject, Days, bs = "re") is (0 + Days | Subject): mgcv scales its penalty by
    1/max(Days)^2, and the variance component undoes that (gam.vcomp, and lmer's
    (Days || Subject))."""
    m = _fit("sleep_re_gam")
    vc = m.varcorr
    assert vc["var1"].tolist() == ["(Intercept)", "Days", None]
    s_scale = CASES["sleep_re_gam"]["S_scale"][1]
    assert m.design.terms[1].smooth.S_scale[0] == pytest.approx(s_scale, rel=1e-12)
    lm = ml.lmer("Reaction ~ Days + (Days || Subject)", ml.datasets.load("sleepstudy"))
    lvc = lm.varcorr
    sd_days = float(lvc.loc[(lvc["var1"] == "Days") & lvc["var2"].isna(), "sdcor"].iloc[0])
    sd_int = float(lvc.loc[(lvc["var1"] == "(Intercept)") & lvc["var2"].isna(), "sdcor"].iloc[0])
    assert vc["sdcor"][1] == pytest.approx(sd_days, rel=1e-4)
    assert vc["sdcor"][0] == pytest.approx(sd_int, rel=1e-4)
    # the predicted slopes are lmer's conditional modes, in a column named after the covariate
    re = m.ranef["s(Subject,Days)"]
    assert list(re.columns) == ["Days"] and re.index.name == "Subject"
    lre = [v for k, v in lm.ranef.items() if "Days" in v.columns][0]
    slopes = re["Days"].to_numpy()
    np.testing.assert_allclose(slopes, lre.loc[re.index, "Days"].to_numpy(), atol=1e-3)
    np.testing.assert_allclose(slopes, m.coef.filter(like="s(Subject,Days)").to_numpy(), atol=0)
