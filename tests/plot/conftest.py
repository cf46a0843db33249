"""Plot tests run under the Agg backend; every test closes the figures it opened."""

import json
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt

REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "plot_reference.json"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="session")
def plot_ref():
    """lme4's and mgcv's values (tests/reference/make_plot_reference.R)."""
    return json.loads(REFERENCE.read_text())
