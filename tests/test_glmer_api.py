"""glmer()'s options and messages (the fit itself is tested in tests/fit/test_glmm.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import pymlm as ml
from pymlm.errors import OptionError

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def test_lmer_with_family_points_to_glmer():
    with pytest.raises(OptionError, match=r"pymlm\.glmer"):
        ml.lmer(CBPP, ml.datasets.load("cbpp"), family="binomial")


@pytest.mark.parametrize(("kw", "match"), [
    ({"family": "binomal"}, "family must be one of"),
    ({"family": "gaussian"}, "lmer"),
    ({"nAGQ": 26}, "nAGQ must be an integer from 0 to 25"),
    ({"nAGQ": 1.5}, "nAGQ must be"),
    ({"se": "sandwich"}, "se must be 'hessian' or 'RX'"),
    ({"optimizer": "newton"}, "optimizer must be one of"),
    ({"start": [1.0]}, "start must be a dict"),
])
def test_bad_options(kw, match):
    with pytest.raises(OptionError, match=match):
        ml.glmer(CBPP, ml.datasets.load("cbpp"), **kw)


def test_agq_refused_for_several_grouping_factors():
    df = ml.datasets.load("cbpp")
    with pytest.raises(OptionError, match="single grouping factor with at most 3 coefficients"):
        ml.glmer("cbind(incidence, size - incidence) ~ 1 + (1 | herd) + (1 | period)", df, nAGQ=5)


def test_agq_refused_for_more_than_three_coefficients():
    import numpy as np
    import pandas as pd

    df = pd.read_csv(Path(__file__).parent / "reference" / "glmer_sim_bin.csv")
    rng = np.random.default_rng(0)
    df = df.assign(x2=rng.normal(size=len(df)), x3=rng.normal(size=len(df)), g=df["g"].astype(str))
    with pytest.raises(OptionError, match="nAGQ = 5"):
        ml.glmer("y ~ x + (1 + x + x2 + x3 | g)", df, nAGQ=5)


@pytest.mark.slow
def test_glmer_nb_through_the_api():
    m = ml.glmer_nb("TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD)", ml.datasets.load("grouseticks"))
    assert m.fit.family_name == "Negative Binomial(3.3075)"
    assert m.fit.nb_theta == pytest.approx(3.3075, abs=2e-3)


def test_glmer_nb_refuses_other_families():
    with pytest.raises(OptionError, match="negative binomial"):
        ml.glmer_nb("TICKS ~ YEAR + (1 | BROOD)", ml.datasets.load("grouseticks"), family="binomial")
    with pytest.raises(OptionError, match="nAGQ"):
        ml.glmer_nb("TICKS ~ YEAR + (1 | BROOD)", ml.datasets.load("grouseticks"), nAGQ=5)
