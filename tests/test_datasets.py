"""The bundled datasets: names, R's level order, ordered flags, helpful errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import pymlm as ml
from pymlm.errors import DataError

EXPECTED = ["cbpp", "Dyestuff", "Dyestuff2", "gamsim_re", "grouseticks", "InstEval", "Pastes", "Penicillin",
            "sleepstudy"]
SHAPES = {"sleepstudy": (180, 3), "Dyestuff": (30, 2), "Dyestuff2": (30, 2), "Penicillin": (144, 3),
          "Pastes": (60, 4), "InstEval": (73421, 7), "cbpp": (56, 4), "grouseticks": (403, 7),
          "gamsim_re": (20000, 12)}


def test_names_sorted_case_insensitively():
    assert ml.datasets.names() == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_every_dataset_loads_with_its_shape(name):
    df = ml.datasets.load(name)
    assert df.shape == SHAPES[name]
    assert not df.isna().any().any()


def test_case_is_ignored():
    assert ml.datasets.load("SLEEPSTUDY").equals(ml.datasets.load("sleepstudy"))


def test_levels_in_r_order_not_string_order():
    ie = ml.datasets.load("InstEval")
    assert ie["dept"].cat.categories[:4].tolist() == ["15", "5", "10", "12"]
    assert ie["s"].cat.categories[:12].tolist() == [str(i) for i in range(1, 13)]  # numeric, not 1, 10, 11
    assert ie["service"].cat.categories.tolist() == ["0", "1"]
    cbpp = ml.datasets.load("cbpp")
    assert cbpp["herd"].cat.categories.tolist() == [str(i) for i in range(1, 16)]
    gt = ml.datasets.load("grouseticks")
    assert gt["YEAR"].cat.categories.tolist() == ["95", "96", "97"]
    assert ml.datasets.load("sleepstudy")["Subject"].cat.categories[0] == "308"


def test_ordered_flags():
    ie = ml.datasets.load("InstEval")
    assert ie["studage"].cat.ordered and ie["lectage"].cat.ordered
    assert ie["studage"].cat.categories.tolist() == ["2", "4", "6", "8"]
    assert not ie["dept"].cat.ordered and not ml.datasets.load("Pastes")["batch"].cat.ordered


def test_levels_follow_factor_levels_json():
    spec = json.loads((ml.datasets.data_dir() / "factor_levels.json").read_text())
    for name, columns in spec.items():
        df = ml.datasets.load(name)
        for column, info in columns.items():
            assert isinstance(df[column].dtype, pd.CategoricalDtype)
            assert df[column].cat.categories.tolist() == [str(v) for v in info["levels"]]
            assert df[column].cat.ordered is bool(info["ordered"])


def test_numeric_columns_stay_numeric():
    df = ml.datasets.load("sleepstudy")
    assert df["Reaction"].dtype.kind == "f" and df["Days"].dtype.kind in "if"


@pytest.mark.parametrize(
    "name, message",
    [
        ("sleepstudyy", r"no bundled dataset named 'sleepstudyy'; did you mean 'sleepstudy'\? Available: cbpp, "),
        ("penicilin", r"no bundled dataset named 'penicilin'; did you mean 'Penicillin'\?"),
        ("xyz", (r"no bundled dataset named 'xyz'\. Available: cbpp, Dyestuff, Dyestuff2, gamsim_re, grouseticks, "
                 r"InstEval, Pastes, Penicillin, sleepstudy$")),
    ],
)
def test_unknown_name(name, message):
    with pytest.raises(DataError, match=message):
        ml.datasets.load(name)


def test_each_load_is_a_fresh_frame():
    a = ml.datasets.load("Dyestuff")
    a.loc[0, "Yield"] = -1.0
    assert ml.datasets.load("Dyestuff").loc[0, "Yield"] != -1.0
