"""GamResult: names, tables, the printed summary, random-effect summaries and plots."""

import json
from pathlib import Path

import numpy as np
import pytest
from _smooth_data import smooth_cases

import pymlm as ml

REF = Path(__file__).resolve().parents[1] / "reference"
SMALL = json.loads((REF / "gam_small_fits.json").read_text())


@pytest.fixture(scope="module")
def d():
    return smooth_cases()


@pytest.fixture(scope="module")
def by_fac(d):
    return ml.gam(SMALL["fits"]["by_fac"]["formula"], d)


def test_names_follow_mgcv(by_fac):
    m = by_fac
    assert list(m.coef.index[:5]) == ["(Intercept)", "facb", "facc", "facd", "s(x):faca.1"]
    assert list(m.edf.index) == ["s(x):faca", "s(x):facb", "s(x):facc", "s(x):facd"]
    assert list(m.sp.index) == list(m.edf.index)
    assert m.vcov.shape == (len(m.coef), len(m.coef))
    np.testing.assert_allclose(m.vcov.to_numpy(), m.vcov.to_numpy().T, atol=1e-14)
    assert m.edf_total == pytest.approx(m.edf.sum() + 4, abs=1e-8)  # 4 parametric columns
    assert m.residual_df == pytest.approx(m.nobs - m.edf_total)


def test_printed_summary_has_mgcvs_layout(by_fac):
    text = str(by_fac)
    r = SMALL["fits"]["by_fac"]
    for line in ("Family: gaussian", "Link function: identity", "Formula:", r["formula"],
                 "Parametric coefficients:", "Approximate significance of smooth terms:",
                 "Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1"):
        assert line in text
    lines = text.splitlines()
    head = next(ln for ln in lines if "Ref.df" in ln).split()
    assert head == ["edf", "Ref.df", "F", "p-value"]
    row = next(ln for ln in lines if ln.startswith("s(x):facb")).split()
    # the same numbers as mgcv's table: edf 3.513, Ref.df 4.158, F 8.984, p 8.80e-07 ***
    assert row[1:4] == ["3.513", "4.158", "8.984"] and row[-1] == "***"
    assert "R-sq.(adj) =  0.369   Deviance explained = 40.3%" in text
    assert "-REML = 406.45  Scale est. = 0.80833   n = 300" in text
    intercept = next(ln for ln in lines if ln.startswith("(Intercept)")).split()
    assert intercept[1:3] == ["0.53029", "0.10567"]  # printCoefmat: estimate and SE share decimals


def test_bam_summary_names_its_score(d):
    m = ml.bam(SMALL["fits"]["binomial_bam"]["formula"], d, family="binomial", discrete=False)
    text = str(m)
    assert "Family: binomial" in text and "Link function: logit" in text
    assert "fREML = " in text and "Scale est. = 1 " in text
    assert "z value" in text and "Chi.sq" in text
    assert repr(m).startswith("<GamResult bam: 'yb ~")


def test_p_table_and_r_squared_match_mgcv(by_fac):
    r = SMALL["fits"]["by_fac"]
    for row in r["p_table"]:
        got = by_fac.p_table.loc[row["term"]]
        assert got["Estimate"] == pytest.approx(row["Estimate"], abs=1e-5)
        assert got["Std. Error"] == pytest.approx(row["Std. Error"], rel=1e-4)
        assert got["Pr(>|t|)"] == pytest.approx(row["Pr(>|t|)"], rel=1e-3)
    assert by_fac.r_sq == pytest.approx(r["r_sq"], abs=1e-7)
    assert by_fac.dev_expl == pytest.approx(r["dev_expl"], abs=1e-7)


def test_random_effect_summaries(d):
    m = ml.bam('y ~ s(x, bs = "cr") + (1 | g)', d)
    vc = m.varcorr
    assert list(vc["grp"]) == ["g", "Residual"]
    assert vc["vcov"][0] == pytest.approx(m.scale / m.sp["(1 | g)"], rel=1e-12)
    assert vc["vcov"][1] == pytest.approx(m.scale)
    np.testing.assert_allclose(vc["sdcor"] ** 2, vc["vcov"], rtol=1e-12)
    re = m.ranef["(1 | g)"]
    assert list(re.index) == list(d["g"].cat.categories) and list(re.columns) == ["(Intercept)"]
    np.testing.assert_allclose(re["(Intercept)"], m.coef.filter(like="(1 | g)"), atol=0)
    # the same term written mgcv's way gives the same fit
    m2 = ml.bam('y ~ s(x, bs = "cr") + s(g, bs = "re")', d)
    np.testing.assert_allclose(m2.fitted, m.fitted, atol=1e-10)
    assert m2.sp["s(g)"] == pytest.approx(m.sp["(1 | g)"], rel=1e-10)
    assert m2.ranef["s(g)"]["(Intercept)"].to_numpy() == pytest.approx(re["(Intercept)"].to_numpy(), abs=1e-10)


def test_plot_draws_every_term(d):
    import matplotlib

    matplotlib.use("Agg")
    m = ml.gam('y ~ s(x, bs = "cr") + te(x, z, k = 4) + s(x, fac, bs = "fs", k = 4) + s(g, bs = "re")', d)
    fig = m.plot()
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    titled = [ax for ax in axes if ax.get_xlabel() or ax.get_title()]
    assert len(titled) == 4
    line_ax = fig.axes[0]
    assert len(line_ax.lines) == 3  # the estimate and the +-2 SE band
    f, hi, lo = (ln.get_ydata() for ln in line_ax.lines)
    np.testing.assert_array_less(lo, f)
    np.testing.assert_array_less(f, hi)
    with pytest.raises(ml.DataError, match=r"no term\(s\) \['s\(w\)'\]"):
        m.plot(terms=["s(w)"])
