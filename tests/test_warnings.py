"""Every pymlm warning points at the caller's line, whatever the entry point.

Each case triggers a real warning through a public entry point and checks
that the warning's file is this test file (the line that called pymlm), not
a module inside the package.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import pymlm as ml
from pymlm.errors import (
    MissingDataWarning,
    PymlmWarning,
    RankDeficiencyWarning,
    SingularFitWarning,
    warn,
)


@pytest.fixture(scope="module")
def dyestuff2():
    return ml.datasets.load("Dyestuff2")


@pytest.fixture(scope="module")
def singular(dyestuff2):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        return ml.lmer("Yield ~ 1 + (1 | Batch)", dyestuff2)


def _caught(category, call):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        call()
    hits = [w for w in record if issubclass(w.category, category)]
    assert hits, f"no {category.__name__} raised"
    return hits


def _with_na_rows():
    df = ml.datasets.load("sleepstudy").copy()
    df.loc[[3, 40], "Reaction"] = np.nan
    return df


def _rank_deficient():
    df = ml.datasets.load("sleepstudy").copy()
    df["Days2"] = 2 * df["Days"]
    return df


ENTRY_POINTS = {
    "lmer singular": (SingularFitWarning, lambda d: ml.lmer("Yield ~ 1 + (1 | Batch)", d["dyestuff2"])),
    "lmer missing rows": (MissingDataWarning,
                          lambda d: ml.lmer("Reaction ~ Days + (1 | Subject)", _with_na_rows())),
    "lmer rank deficient": (RankDeficiencyWarning,
                            lambda d: ml.lmer("Reaction ~ Days + Days2 + (1 | Subject)", _rank_deficient())),
    "gam rank deficient": (RankDeficiencyWarning,
                           lambda d: ml.gam("Reaction ~ Days + Days2 + s(Subject, bs='re')", _rank_deficient())),
    "bam missing rows": (MissingDataWarning,
                         lambda d: ml.bam("Reaction ~ Days + s(Subject, bs='re')", _with_na_rows())),
    "confint profile": (SingularFitWarning, lambda d: d["singular"].confint("profile")),
    "confint default": (SingularFitWarning, lambda d: d["singular"].confint()),
    "profile": (SingularFitWarning, lambda d: d["singular"].profile().confint()),
    "summary ci": (SingularFitWarning, lambda d: d["singular"].summary(ci="profile")),
    "update": (SingularFitWarning, lambda d: d["singular"].update(REML=False)),
}


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_warning_points_at_the_callers_line(name, dyestuff2, singular):
    category, call = ENTRY_POINTS[name]
    hits = _caught(category, lambda: call({"dyestuff2": dyestuff2, "singular": singular}))
    for w in hits:
        assert w.filename == __file__, f"{name}: {category.__name__} attributed to {w.filename}:{w.lineno}"


def test_helper_skips_every_package_frame():
    # called from here, the helper has no package frame to skip
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        warn("plain", PymlmWarning)
    assert record[0].filename == __file__ and record[0].category is PymlmWarning


def test_constructing_a_result_raises_no_warning(singular):
    from pymlm.results.lmer import LmerResult

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = LmerResult(singular.design, singular.fit, data=None, options=singular.options)
    assert again.is_singular and any(c is SingularFitWarning for _, c in again.fit_warnings())


def test_dataframe_is_untouched():
    df = _with_na_rows()
    before = df.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        ml.lmer("Reaction ~ Days + (1 | Subject)", df)
    pd.testing.assert_frame_equal(df, before)
