"""The data of the smooth and GAM reference cases (tests/reference/smooth_reference.R)."""

from pathlib import Path

import pandas as pd

CSV = Path(__file__).resolve().parent / "reference" / "smooth_cases_data.csv"


def smooth_cases() -> pd.DataFrame:
    """The training data, with ``fac`` and ``g`` as categoricals."""
    d = pd.read_csv(CSV)
    d["fac"] = pd.Categorical(d["fac"])
    d["g"] = pd.Categorical(d["g"])
    return d


def with_newdata(newdata: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training data and R's new data, the latter's factors on the training levels."""
    d = smooth_cases()
    nd = pd.DataFrame(newdata)
    nd["fac"] = pd.Categorical(nd["fac"], categories=d["fac"].cat.categories)
    nd["g"] = pd.Categorical(nd["g"], categories=d["g"].cat.categories)
    return d, nd
