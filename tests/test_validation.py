"""Shared input checks."""

from __future__ import annotations

import pandas as pd
import pytest

from pymlm._validation import (
    as_frame,
    check_choice,
    check_level,
    check_positive_int,
    unknown_column_error,
)
from pymlm.errors import DataError, OptionError


def test_as_frame_accepts_frames_tables_and_dicts():
    import pyarrow as pa

    df = pd.DataFrame({"a": [1, 2]})
    assert as_frame(df) is df
    assert as_frame(pa.table({"a": [1, 2]})).equals(df)
    assert as_frame({"a": [1, 2]}).equals(df)


def test_as_frame_rejects():
    with pytest.raises(DataError, match=r"data must be a pandas DataFrame, a pyarrow Table or a dict of columns; got str"):
        as_frame("data.csv")
    with pytest.raises(DataError, match=r"data has duplicated column names \['a'\]; rename them"):
        as_frame(pd.DataFrame([[1, 2]], columns=["a", "a"]))


def test_unknown_column_suggestions():
    err = unknown_column_error("subject", "term (1 | subject)", ["Reaction", "Days", "Subject"])
    assert str(err) == "column 'subject' in term (1 | subject) is not in the data; did you mean 'Subject'?"
    err = unknown_column_error("qq", "weights", [f"c{i}" for i in range(20)])
    assert str(err).endswith("the data has columns ['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8', 'c9', "
                             "'c10', 'c11']...")


def test_option_checks():
    assert check_choice("method", "WALD", ["wald", "profile"]) == "wald"
    with pytest.raises(OptionError, match=r"method must be one of 'wald', 'profile'; got 'boot'"):
        check_choice("method", "boot", ["wald", "profile"])
    assert check_level(0.9) == 0.9
    with pytest.raises(OptionError, match=r"level must be a number strictly between 0 and 1, such as 0\.95; got 95"):
        check_level(95)
    assert check_positive_int("nAGQ", 3) == 3
    with pytest.raises(OptionError, match=r"nAGQ must be an integer >= 1; got True"):
        check_positive_int("nAGQ", True)
