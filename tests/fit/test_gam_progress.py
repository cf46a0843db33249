"""gam() and bam() show a progress bar only for long fits, and never with progress=False."""

import pytest

import pymlm as ml
import pymlm._progress as progress
from pymlm.errors import OptionError

FORMULA = "y ~ s(x1) + s(x0, g, bs = 'fs', k = 4)"


@pytest.fixture(scope="module")
def df():
    return ml.datasets.load("gamsim_re").iloc[:2000]


@pytest.mark.parametrize("fitter", [ml.gam, ml.bam])
def test_a_fit_longer_than_the_delay_shows_its_bar(fitter, df, capsys, monkeypatch):
    monkeypatch.setattr(progress, "DELAY_SECONDS", 0.0)
    fitter(FORMULA, df)
    err = capsys.readouterr().err
    name = fitter.__name__
    assert f"{name}: " in err and "iterations" in err


@pytest.mark.parametrize("fitter", [ml.gam, ml.bam])
def test_progress_false_hides_the_bar(fitter, df, capsys, monkeypatch):
    monkeypatch.setattr(progress, "DELAY_SECONDS", 0.0)
    fitter(FORMULA, df, progress=False)
    assert capsys.readouterr().err == ""


def test_a_quick_fit_prints_nothing_by_default(df, capsys):
    ml.gam("y ~ s(x1)", df.iloc[:300])
    assert capsys.readouterr().err == ""


def test_progress_must_be_a_bool(df):
    with pytest.raises(OptionError, match="progress"):
        ml.gam("y ~ s(x1)", df, progress="yes")
