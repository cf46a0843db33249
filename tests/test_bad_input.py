"""Bad input gets pymlm's own error or warning, naming the term, column or option.

What lme4 and mgcv do with the same inputs is in
tests/reference/bad_input_lme4.json, written by
tests/reference/make_bad_input_reference.R (R 4.2.2, lme4 1.1-31, mgcv
1.8-41): whether R refuses, fits silently or warns, and the figures that
pymlm's fits are compared with. The messages checked are pymlm's own.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pymlm as ml
from pymlm.cli import main
from pymlm.errors import DataError, FormulaError, OptionError, PymlmWarning

REFERENCE = json.loads((Path(__file__).parent / "reference" / "bad_input_lme4.json").read_text())
R = REFERENCE["cases"]


@pytest.fixture(scope="module")
def sleep():
    return ml.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def fit(sleep):
    return ml.lmer("Reaction ~ Days + (1 | Subject)", sleep)


def carets(exc) -> tuple[int, int]:
    """The (start, end) the message marks under the formula."""
    line = str(exc.value).splitlines()[-1][4:]
    start = line.index("^")
    return start, start + line.count("^")


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PymlmWarning)
        return fn(*args, **kwargs)


# ------------------------------------------------------------------ formulas


@pytest.mark.parametrize("entry", ["lmer", "lformula", "gam", "bam"])
@pytest.mark.parametrize("formula, shown", [(42, "int 42"), (None, "NoneType None"),
                                            (["y ~ x"], r"list \['y ~ x'\]; fit one formula at a time")])
def test_a_formula_must_be_a_string(entry, formula, shown, sleep):
    with pytest.raises(FormulaError, match=rf"^the formula must be a string such as 'y ~ x \+ \(1 \| g\)'; "
                                           rf"got {shown}$"):
        getattr(ml, entry)(formula, sleep)


@pytest.mark.parametrize("entry", ["lmer", "lformula"])
def test_a_smooth_in_lmer_is_refused(entry, sleep):
    assert not R["smooth_in_lmer"]["fits"]  # lme4 stops too (on an invalid type)
    with pytest.raises(FormulaError, match=r"^the smooth term s\(Days\) cannot be fitted by lmer\(\): use gam\(\) "
                                           r"or bam\(\) for smooths .* written as bars, e\.g\. \(1 \| g\) rather "
                                           r"than s\(g, bs = \"re\"\)") as info:
        getattr(ml, entry)("Reaction ~ s(Days) + (1 | Subject)", sleep)
    assert carets(info) == (11, 18)


def test_two_tildes_are_marked_at_the_second(sleep):
    assert not R["two_tildes"]["fits"]  # lme4: "object is not a matrix"
    with pytest.raises(FormulaError, match=r"^the formula has more than one '~'") as info:
        ml.lmer("Reaction ~ Days ~ x + (1 | Subject)", sleep)
    assert carets(info) == (16, 17)
    with pytest.raises(FormulaError, match=r"more than one '~'") as info:
        ml.parse_formula("~ x ~ z")
    assert carets(info) == (4, 5)


@pytest.mark.parametrize("entry", ["lmer", "gam"])
def test_a_formula_without_tilde_is_told_what_a_formula_is(entry, sleep):
    with pytest.raises(FormulaError, match=r"^the formula has no '~': a model formula is written "
                                           r"'response ~ terms', e\.g\. 'y ~ x \+ \(1 \| g\)'"):
        getattr(ml, entry)("this is not a formula", sleep)


# ----------------------------------------------------------------- the data


def test_datetime_covariates_are_refused_with_a_conversion(sleep):
    df = sleep.assign(when=pd.Timestamp("2020-01-01") + pd.to_timedelta(sleep["Days"], unit="D"))
    for fn in (ml.lmer, ml.gam):
        with pytest.raises(DataError, match=r"^column 'when' in term when holds dates or times \(dtype "
                                            r"datetime64\[.*\]\); .* convert it to numbers first, e\.g\. "
                                            r"\(df\['when'\] - df\['when'\]\.min\(\)\) / pd\.Timedelta\(days=1\) "
                                            r"for days since the first date, or use it as a grouping factor"):
            fn("Reaction ~ when + (1 | Subject)", df)
    # lme4 computes with the seconds since 1970 (and warns about the scale);
    # converted as the message says, the slope is lme4's in days
    r = R["datetime_covariate"]
    assert r["fits"] and any("different scales" in w for w in r["warnings"])
    df["when_days"] = (df["when"] - df["when"].min()) / pd.Timedelta(days=1)
    m = ml.lmer("Reaction ~ when_days + (1 | Subject)", df)
    assert m.fixef["when_days"] == pytest.approx(r["value"]["fixef"]["when"] * 86400, rel=1e-6)
    assert m.fixef["when_days"] == pytest.approx(R["days_covariate"]["value"]["fixef"]["Days"], rel=1e-8)
    # as a grouping factor a date is a level like any other
    d = ml.lformula("Reaction ~ Days + (1 | when)", df)
    assert d.ngroups == {"when": 10}
    # timedeltas too
    with pytest.raises(DataError, match=r"column 'lag' in term lag holds dates or times \(dtype timedelta64.*"
                                        r"df\['lag'\] / pd\.Timedelta\(days=1\) for a number of days"):
        ml.lformula("Reaction ~ lag + (1 | Subject)", df.assign(lag=pd.to_timedelta(df["Days"], unit="D")))


def test_object_columns_mixing_numbers_and_strings_are_refused(sleep):
    df = sleep.copy()
    df["mix"] = df["Days"].astype(object)
    df.loc[3, "mix"] = "5"
    df.loc[5, "mix"] = "7.0"
    message = (r"^column 'mix' in term mix mixes numbers with strings \(178 numbers, 2 strings; e\.g\. '5', "
               r"'7\.0'\), so its values have no single meaning .* pd\.to_numeric\(df\['mix'\]\) for numbers, "
               r"or df\['mix'\]\.astype\(str\) for a factor")
    for fn in (ml.lmer, ml.gam):
        with pytest.raises(DataError, match=message):
            fn("Reaction ~ mix + (1 | Subject)", df)
    with pytest.raises(DataError, match=r"column 'mix' in term \(1 \| mix\) mixes numbers with strings"):
        ml.lformula("Reaction ~ Days + (1 | mix)", df)
    # numbers stored as objects: numbers or a factor? not guessed where values are used...
    df["obj"] = df["Days"].astype(object)
    with pytest.raises(DataError, match=r"^column 'obj' in term obj holds numbers stored as Python objects "
                                        r"\(dtype object\); .* pd\.to_numeric\(df\['obj'\]\)"):
        ml.lformula("Reaction ~ obj + (1 | Subject)", df)
    # ...but fine as a grouping factor or inside factor()
    assert ml.lformula("Reaction ~ Days + (1 | obj)", df).ngroups == {"obj": 10}
    assert len(ml.lformula("Reaction ~ factor(obj) + (1 | Subject)", df).X_names) == 10


def test_infinite_values_name_the_column_and_count(sleep):
    assert not R["infinite_response"]["fits"] and not R["infinite_weight"]["fits"]  # lme4 stops too
    df = sleep.copy()
    df.loc[0, "Reaction"] = -np.inf
    for fn in (ml.lmer, ml.gam, ml.bam):
        with pytest.raises(DataError, match=r"^column 'Reaction' in the response Reaction has 1 infinite value "
                                            r"\(-Inf\); a missing value \(NaN\) is dropped with its row") as info:
            fn("Reaction ~ Days + (1 | Subject)", df)
        assert carets(info) == (0, 8)
    df = sleep.assign(w=1.0)
    df.loc[[0, 7], "w"] = np.inf
    with pytest.raises(DataError, match=r"^weights column 'w' has 2 infinite values; weights must be finite "
                                        r"and non-negative"):
        ml.lmer("Reaction ~ Days + (1 | Subject)", df, weights="w")
    with pytest.raises(DataError, match=r"^weights has 2 infinite values"):
        ml.gam("Reaction ~ Days", sleep, weights=df["w"].to_numpy())
    with pytest.raises(DataError, match=r"^offset has 1 infinite value; offset must be finite"):
        ml.lformula("Reaction ~ Days + (1 | Subject)", sleep, offset=np.r_[np.inf, np.zeros(179)])
    # NaN is still missing: dropped and counted
    df = sleep.copy()
    df.loc[0, "Reaction"] = np.nan
    with pytest.warns(ml.MissingDataWarning, match=r"1 of 180 rows dropped"):
        assert ml.lformula("Reaction ~ Days + (1 | Subject)", df).n == 179


def test_a_dict_of_unequal_columns_names_them():
    with pytest.raises(DataError, match=r"^the columns of data have different lengths \('y' has 3, 'x' has 2, "
                                        r"'g' has 3\); every column needs one value per row$"):
        ml.lmer("y ~ x + (1 | g)", {"y": [1, 2, 3], "x": [1, 2], "g": [1, 1, 2]})
    with pytest.raises(DataError, match=r"^data is a dict of single values \('y', 'x'\)"):
        ml.gam("y ~ x", {"y": 1.0, "x": 2.0})


def test_a_constant_response_is_refused(sleep):
    assert R["constant_response"]["fits"] and R["constant_response"]["value"]["sigma"] == 0  # lme4: sigma 0
    with pytest.raises(DataError, match=r"^the response 'Reaction' is constant \(every value is 3\): a linear "
                                        r"mixed model needs a response that varies") as info:
        ml.lmer("Reaction ~ Days + (1 | Subject)", sleep.assign(Reaction=3.0))
    assert carets(info) == (0, 8)
    with pytest.raises(DataError, match=r"^the response minus the offset 'Reaction' is constant"):
        ml.lmer("Reaction ~ Days + (1 | Subject)", sleep, offset=sleep["Reaction"].to_numpy() - 1)


# ------------------------------------------------- over-parametrized terms


@pytest.mark.parametrize("entry", ["lmer", "lformula", "gam"])
def test_the_same_bar_twice_is_refused(entry, sleep):
    r = R["duplicate_bar"]  # lme4 fits it: two thetas for one intercept, an indefinite Hessian
    assert r["fits"] and r["value"]["theta_names"] == ["Subject.(Intercept)"] * 2
    assert any("degenerate" in w for w in r["warnings"])
    with pytest.raises(FormulaError, match=r"^the random-effects term \(1 \| Subject\) is given twice: the "
                                           r"variances of the repeated columns cannot be told apart \(the model "
                                           r"is over-parametrized\); keep one") as info:
        getattr(ml, entry)("Reaction ~ Days + (1 | Subject) + (1 | Subject)", sleep)
    assert carets(info) == (34, 47)


def test_a_column_in_two_terms_of_one_factor_is_refused(sleep):
    with pytest.raises(FormulaError, match=r"^the intercept of grouping factor 'Subject' is in two random-effects "
                                           r"terms, \(Days \| Subject\) and \(1 \| Subject\)"):
        ml.lmer("Reaction ~ Days + (Days | Subject) + (1 | Subject)", sleep)
    with pytest.raises(FormulaError, match=r"^Days of grouping factor 'Subject' is in two random-effects terms, "
                                           r"\(Days \|\| Subject\) and \(0 \+ Days \| Subject\)"):
        ml.lformula("Reaction ~ Days + (Days || Subject) + (0 + Days | Subject)", sleep)
    # different columns of one factor, and one column of two factors, are fine
    assert ml.lformula("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", sleep).theta.size == 2
    d = ml.lformula("Reaction ~ Days + (1 | Subject) + (1 | Days)", sleep)
    assert d.ngroups == {"Subject": 18, "Days": 10}


def test_double_bar_with_a_factor_warns(sleep):
    df = sleep.assign(f=(sleep["Days"] % 3).astype(str))
    r = R["double_bar_factor"]  # lme4 fits it silently; its terms are (1 | g) and (0 + f | g), f correlated
    assert r["fits"] and not r["warnings"]
    message = (r"^in \(f \|\| Subject\), f gives 3 columns \(f0, f1, f2\) because f is a factor: '\|\|' makes the "
               r"terms of its left side uncorrelated, not the columns of one term, so their random effects stay "
               r"correlated in \(0 \+ f \| Subject\), and together they add up to the intercept of "
               r"\(1 \| Subject\), so the model is over-parametrized, as in lme4\. For independent effects per "
               r"level write \(1 \| Subject\) \+ \(1 \| Subject:f\); for correlated ones \(0 \+ f \| Subject\)$")
    with pytest.warns(PymlmWarning, match=message):
        d = ml.lformula("Reaction ~ f + (f || Subject)", df)
    assert d.theta_names == r["value"]["theta_names"]
    with pytest.warns(PymlmWarning, match=message):
        ml.gam("Reaction ~ f + (f || Subject)", df)
    with pytest.warns(PymlmWarning, match=r"^in \(0 \+ f \|\| Subject\), f gives 3 columns .* stay correlated in "
                                          r"\(0 \+ f \| Subject\), as in lme4\."):
        ml.lformula("Reaction ~ f + (0 + f || Subject)", df)
    with warnings.catch_warnings():  # a numeric left side: nothing to say
        warnings.simplefilter("error")
        ml.lformula("Reaction ~ Days + (Days || Subject)", df)


@pytest.mark.parametrize("entry", ["gam", "bam"])
def test_a_one_level_random_effect_smooth_is_refused(entry, sleep):
    assert not R["re_smooth_one_level"]["fits"]  # mgcv stops too (on contrasts)
    with pytest.raises(DataError, match=r"^s\(one\): factor 'one' has 1 level; a random effect needs at least 2\. "
                                        r"Drop the term or check the data\.$"):
        getattr(ml, entry)("Reaction ~ Days + s(one, bs = 're')", sleep.assign(one="a"))


def test_lme4_level_checks(sleep):
    """lme4's checkNlevels and checkZdims, on by default, refuse the same inputs."""
    assert R["one_level"]["error"] == "grouping factors must have > 1 sampled level"
    with pytest.raises(FormulaError, match=r"^grouping factor 'one' has 1 level; \(1 \| one\) needs at least 2"):
        ml.lmer("Reaction ~ Days + (1 | one)", sleep.assign(one="a"))
    assert "must be < number of observations (problems: obs)" in R["levels_equal_rows"]["error"]
    with pytest.raises(FormulaError, match=r"^grouping factor 'obs' has 180 levels for 180 observations"):
        ml.lmer("Reaction ~ Days + (1 | obs)", sleep.assign(obs=np.arange(180)))
    assert R["too_many_re"]["error"].startswith(
        "number of observations (=36) <= number of random effects (=36) for term (Days | Subject)")
    with pytest.raises(FormulaError, match=r"^number of observations \(36\) <= number of random effects \(36\) "
                                           r"for term \(1 \+ Days \| Subject\)"):
        ml.lmer("Reaction ~ Days + (Days | Subject)", sleep[sleep["Days"] < 2])


# ------------------------------------------------------ numerical failures


def test_a_badly_scaled_random_slope_says_rescale(sleep):
    r = R["scaled_slope_1e12"]  # lme4 warns about the scale, then stops
    assert not r["fits"] and r["warnings"] == ["Some predictor variables are on very different scales: "
                                               "consider rescaling"]
    df = sleep.assign(x12=sleep["Days"] * 1e12)
    for kwargs in ({}, {"check_conv": False}, {"optimizer": "bobyqa"}):
        with pytest.warns(PymlmWarning, match=r"^the fixed-effect columns are on very different scales: x12 "
                                              r"\(sd 2\.88e\+12\); consider rescaling them"), \
                pytest.raises(DataError, match=r"^the fit broke down numerically: covariates on extreme scales "
                                               r"make the problem ill-conditioned: x12 \(sd 2\.88e\+12\), x12 of "
                                               r"\(1 \+ x12 \| Subject\) \(sd 2\.88e\+12\)\. Rescale them"):
            ml.lmer("Reaction ~ x12 + (x12 | Subject)", df, **kwargs)


def test_a_badly_scaled_fixed_effect_warns_and_fits_as_lme4(sleep):
    r = R["scaled_fixed_1e12"]
    assert r["fits"] and r["warnings"] == ["Some predictor variables are on very different scales: "
                                           "consider rescaling"]
    with pytest.warns(PymlmWarning, match=r"very different scales: x12 \(sd 2\.88e\+12\)"):
        m = ml.lmer("Reaction ~ x12 + (1 | Subject)", sleep.assign(x12=sleep["Days"] * 1e12))
    assert m.reml_criterion == pytest.approx(r["value"]["reml_criterion"], abs=1e-6)
    assert m.theta[0] == pytest.approx(r["value"]["theta"], rel=1e-4)
    assert m.fixef["x12"] == pytest.approx(r["value"]["fixef"]["x12"], rel=1e-6)
    assert m.sigma == pytest.approx(r["value"]["sigma"], rel=1e-5)
    with warnings.catch_warnings():  # well-scaled columns: no warning
        warnings.simplefilter("error")
        ml.lformula("Reaction ~ Days + (Days | Subject)", sleep)


# --------------------------------------------------------------- options


@pytest.mark.parametrize("method", ["wald", "profile", "boot", "blb", "split"])
@pytest.mark.parametrize("n_jobs", [0, -2, 1.5, True, "2"])
def test_n_jobs_is_checked_by_every_interval_method(fit, method, n_jobs):
    with pytest.raises(OptionError, match=r"^n_jobs must be an integer >= 1 \(the number of processes\) or -1 "
                                          r"\(one per CPU\); got "):
        fit.confint(method, n_jobs=n_jobs, progress=False)


@pytest.mark.parametrize("method", ["wald", "boot", "blb", "split"])
@pytest.mark.parametrize("seed", ["abc", -1, 1.5, True, [1, 2]])
def test_seeds_are_checked_by_every_interval_method(fit, method, seed):
    with pytest.raises(OptionError, match=r"^seed must be None, a non-negative integer, a numpy SeedSequence or a "
                                          r"numpy Generator; got "):
        fit.confint(method, seed=seed, progress=False)


def test_other_entry_points_check_seed_n_jobs_and_bools(fit, sleep):
    with pytest.raises(OptionError, match=r"^n_jobs must be an integer >= 1"):
        fit.profile(n_jobs=0)
    with pytest.raises(OptionError, match=r"^n_jobs must be an integer >= 1"):
        fit.summary(ci="wald", n_jobs=0)
    with pytest.raises(OptionError, match=r"^seed must be None, a non-negative integer"):
        fit.summary(ci="boot", seed="abc")
    with pytest.raises(OptionError, match=r"^seed must be None, a non-negative integer"):
        fit.simulate(seed=-1)
    with pytest.raises(OptionError, match=r"^check_conv must be True or False; got 'no'$"):
        ml.lmer("Reaction ~ Days + (1 | Subject)", sleep, check_conv="no")
    with pytest.raises(OptionError, match=r"^progress must be True or False; got 'no'$"):
        fit.confint("wald", progress="no")


def test_accepted_seeds_reproduce(fit):
    a = fit.confint("boot", nsim=20, seed=np.random.SeedSequence(5), progress=False)
    b = fit.confint("boot", nsim=20, seed=np.random.SeedSequence(5), progress=False)
    c = fit.confint("boot", nsim=20, seed=np.int64(5), progress=False)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
    np.testing.assert_array_equal(a.to_numpy(), c.to_numpy())
    g1 = fit.confint("boot", nsim=20, seed=np.random.default_rng(3), progress=False)
    g2 = fit.confint("boot", nsim=20, seed=np.random.default_rng(3), progress=False)
    np.testing.assert_array_equal(g1.to_numpy(), g2.to_numpy())
    assert fit.simulate(seed=np.random.default_rng(1)).shape == (180, 1)
    assert fit.confint("wald", n_jobs=-1, progress=False).shape == (4, 2)


# ------------------------------------------------------ new data, the CLI


def test_predict_names_the_missing_column_and_term(sleep):
    g = ml.gam("Reaction ~ s(Days, k = 5) + (1 | Subject)", sleep)
    with pytest.raises(DataError, match=r"^column 'Days' in term s\(Days, k = 5\) is not in the new data; "
                                        r"did you mean 'days'\?") as info:
        g.predict(pd.DataFrame({"days": [1.0], "Subject": ["308"]}))
    assert carets(info) == (13, 17)
    with pytest.raises(DataError, match=r"^column 'Subject' in term \(1 \| Subject\) is not in the new data; "
                                        r"the new data has columns \['Days'\]"):
        g.predict(pd.DataFrame({"Days": [1.0]}))
    # the response is not needed
    assert g.predict(sleep.drop(columns="Reaction").iloc[:3]).shape == (3,)


@pytest.mark.parametrize("content, message", [
    ("", r"the file '.*bad\.csv' is empty; it needs a header line with the column names"),
    ("\n\n", r"the file '.*bad\.csv' has no columns \(only blank lines\?\)"),
    ("y,x,g\n", r"the file '.*bad\.csv' has a header \(y, x, g\) but no rows of data"),
])
def test_cli_on_an_empty_csv(tmp_path, capsys, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert main(["fit", "y ~ x + (1 | g)", "--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pymlm: DataError: ") and "Traceback" not in err
    assert re.search(message, err)


def test_cli_formula_errors_exit_2(capsys):
    assert main(["fit", "Reaction ~ Days ~ x + (1 | Subject)", "--data", "sleepstudy"]) == 2
    assert "FormulaError: the formula has more than one '~'" in capsys.readouterr().err


def test_check_n_jobs_minus_one_is_every_cpu():
    from pymlm._validation import check_n_jobs

    assert check_n_jobs(-1) == (os.cpu_count() or 1)
