"""Single-model F tests of fixed-effect terms, ranova and drop1 against lmerTest 3.1-3 / lme4
(tests/reference/lmertest_reference.R)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pymlm as ml
from pymlm.errors import OptionError
from pymlm.inference import anova_lmer as al

REF_DIR = Path(__file__).resolve().parents[1] / "reference"
REF = json.loads((REF_DIR / "lmertest_reference.json").read_text())
FORMULA = "y ~ A * B + x + A:x + (1 + x | g)"


def _num(v):
    return np.array([np.nan if x == "NA" else x for x in v], dtype=float)


@pytest.fixture(scope="module")
def data():
    return pd.read_csv(REF_DIR / "lmertest_data.csv")


@pytest.fixture(scope="module")
def model(data):
    return ml.lmer(FORMULA, data)


def _close(got, want, rtol, cols):
    for c in cols:
        np.testing.assert_allclose(got[c].to_numpy(dtype=float), _num(want[c]), rtol=rtol, err_msg=c)


@pytest.mark.parametrize("ddf", ["Satterthwaite", "Kenward-Roger"])
@pytest.mark.parametrize("type_", [1, 2, 3])
def test_anova_matches_lmertest(model, type_, ddf):
    ref = REF[f"anova_type{type_}_{ddf}"]
    tab = model.anova(type=type_, ddf=ddf).table
    assert list(tab.index) == ref["rows"]
    assert list(tab.columns) == ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
    np.testing.assert_array_equal(tab["NumDF"].to_numpy(), _num(ref["NumDF"]))
    # the fits agree to ~1e-6 in beta and theta; F and DenDF to 1e-4 relative
    _close(tab, ref, 1e-4, ["Sum Sq", "Mean Sq", "DenDF", "F value"])
    _close(tab, ref, 5e-4, ["Pr(>F)"])


def test_types_differ_on_unbalanced_data(model):
    # a check that the three types are different hypotheses here (the data are unbalanced)
    f = {t: model.anova(type=t).table["F value"] for t in (1, 2, 3)}
    assert abs(f[1]["A"] - f[3]["A"]) > 10.0 and abs(f[2]["A"] - f[3]["A"]) > 0.5


def test_anova_prints_as_lmertest(model):
    got = str(model.anova()).splitlines()
    want = REF["anova_print"]
    assert got[0] == want[0] and got[1] == want[1]
    # rows agree but for the last digit of a statistic where the fits differ at 1e-5
    for g, w in zip(got[2:], want[2:]):
        assert g.split()[0] == w.split()[0] and len(g) == len(w)


def test_single_term_model(data):
    ref = REF["m2_anova_type3_Satterthwaite"]
    tab = ml.lmer("y ~ A + x + (1 | g)", data).anova().table
    assert list(tab.index) == ref["rows"]
    _close(tab, ref, 1e-4, ["F value", "DenDF"])


def test_ml_anova_one_model_gives_the_f_table(model):
    a = ml.anova(model)
    np.testing.assert_allclose(a.table["F value"], model.anova().table["F value"])


def test_doolittle_reconstructs():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 5))
    A = X.T @ X
    L = al.doolittle_lower(A)
    U = np.linalg.solve(L, A)
    np.testing.assert_allclose(L @ U, A, rtol=1e-10)
    np.testing.assert_allclose(np.tril(U, -1), 0, atol=1e-9)
    assert np.allclose(np.diag(L), 1)


def test_fstat_ddf():
    assert al.fstat_ddf([7.0]) == 7.0
    assert al.fstat_ddf([5.0, 5.0]) == 5.0
    assert al.fstat_ddf([1.5, 30.0]) == 2.0
    nu = np.array([10.0, 20.0])
    E = np.sum(nu / (nu - 2))
    assert al.fstat_ddf(nu) == pytest.approx(2 * E / (E - 2))


def test_bad_options(model):
    with pytest.raises(OptionError, match="type must be one of"):
        model.anova(type=4)
    with pytest.raises(OptionError, match="ddf must be"):
        model.anova(ddf="lme4")
    ml_fit = ml.lmer(FORMULA, model.design.frame.data, REML=False)
    with pytest.raises(OptionError, match="REML"):
        ml_fit.anova(ddf="Kenward-Roger")


def test_ranova_matches_lmertest(model, data):
    for m, key in ((model, "ranova"), (ml.lmer("y ~ A + x + (1 | g)", data), "m2_ranova")):
        ref = REF[key]
        tab = ml.ranova(m).table
        assert list(tab.index) == ref["rows"]
        np.testing.assert_array_equal(tab["npar"], _num(ref["npar"]))
        _close(tab, ref, 1e-8, ["logLik", "AIC"])
        _close(tab.iloc[1:], {k: v[1:] for k, v in ref.items()}, 1e-5, ["LRT"])


def test_ranova_prints_as_lmertest(model):
    got = str(model.ranova()).splitlines()
    want = REF["ranova_print"]
    assert got[0] == want[0] and got[-4:] == want[-4:]


def test_drop1_chisq_matches_lme4(model):
    for key in ("drop1_chisq", "drop1_chisq_ml"):
        ref = REF[key]
        tab = ml.drop1(model, test="Chisq").table
        assert list(tab.index) == ref["rows"]
        _close(tab, ref, 1e-6, ["AIC"])
        _close(tab.iloc[1:], {k: v[1:] for k, v in ref.items()}, 1e-4, ["LRT", "npar"])
    got = str(ml.drop1(model, test="Chisq")).splitlines()
    assert got[-6:] == REF["drop1_chisq_print"][-6:]


def test_drop1_f_matches_lmertest(model):
    ref = REF["drop1_satterthwaite"]
    tab = ml.drop1(model).table
    assert list(tab.index) == ref["rows"]
    _close(tab, ref, 1e-4, ["F value", "DenDF", "Sum Sq"])


def test_drop1_bad_scope_and_test(model):
    with pytest.raises(OptionError, match="no other term contains"):
        ml.drop1(model, scope="A")
    with pytest.raises(OptionError, match="test"):
        ml.drop1(model, test="LRT")
    with pytest.raises(OptionError, match="lmer fit"):
        ml.ranova("not a model")


@pytest.mark.parametrize("type_", [1, 2, 3])
def test_ordered_factor_matches_lmertest(type_):
    # temperature is ordered (polynomial contrasts): Type III is derived in treatment coding and mapped
    d = pd.read_csv(REF_DIR / "lmertest_cake.csv")
    levels = sorted(d["temperature"].unique())
    d["temperature"] = pd.Categorical(d["temperature"].astype(str), categories=[str(t) for t in levels], ordered=True)
    d["replicate"] = d["replicate"].astype(str)
    m = ml.lmer("angle ~ recipe * temperature + (1 | recipe:replicate)", d)
    assert "temperature.L" in m.fixef.index
    ref = REF[f"cake_type{type_}"]
    tab = m.anova(type=type_).table
    assert list(tab.index) == ref["rows"]
    _close(tab, ref, 1e-4, ["F value", "DenDF", "Sum Sq"])
