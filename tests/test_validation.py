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


def test_formula_bool_seed_and_n_jobs_checks():
    import os

    import numpy as np

    from pymlm._validation import check_bool, check_formula, check_n_jobs, check_seed
    from pymlm.errors import FormulaError

    assert check_formula("y ~ x") == "y ~ x"
    with pytest.raises(FormulaError, match=r"^the formula must be a string such as 'y ~ x \+ \(1 \| g\)'; "
                                           r"got float 1\.5$"):
        check_formula(1.5)
    assert check_bool("REML", np.bool_(False)) is False
    with pytest.raises(OptionError, match=r"^check_conv must be True or False; got 'no'$"):
        check_bool("check_conv", "no")
    with pytest.raises(OptionError, match=r"^check_conv must be True or False; got 1$"):
        check_bool("check_conv", 1)
    ss = np.random.SeedSequence(4)
    assert check_seed(None) is None and check_seed(np.uint8(3)) == 3 and check_seed(ss) is ss
    for bad, shown in [("abc", "'abc'"), (-1, "-1"), (2.0, "2.0"), (False, "False")]:
        with pytest.raises(OptionError, match=rf"^seed must be None, a non-negative integer, a numpy "
                                              rf"SeedSequence or a numpy Generator; got {shown}$"):
            check_seed(bad)
    assert check_n_jobs(3) == 3 and check_n_jobs(np.int32(1)) == 1 and check_n_jobs(-1) == (os.cpu_count() or 1)
    for bad in (0, -2, 2.0, True, None):
        with pytest.raises(OptionError, match=rf"^n_jobs must be an integer >= 1 \(the number of processes\) "
                                              rf"or -1 \(one per CPU\); got {bad!r}$"):
            check_n_jobs(bad)


def test_seed_sequence_leaves_the_callers_seed_alone():
    import numpy as np

    from pymlm._validation import seed_sequence

    ss = np.random.SeedSequence(11)
    first = [c.generate_state(2).tolist() for c in seed_sequence(ss).spawn(3)]
    again = [c.generate_state(2).tolist() for c in seed_sequence(ss).spawn(3)]
    assert first == again and ss.n_children_spawned == 0
    assert [c.generate_state(2).tolist() for c in seed_sequence(11).spawn(3)] == first
    rng = np.random.default_rng(2)
    a = seed_sequence(rng).generate_state(2)
    b = seed_sequence(rng).generate_state(2)
    assert not np.array_equal(a, b)  # a Generator advances, as it should


def test_as_frame_names_unequal_dict_columns():
    with pytest.raises(DataError, match=r"^the columns of newdata have different lengths \('a' has 2, 'b' has 1\); "
                                        r"every column needs one value per row$"):
        as_frame({"a": [1, 2], "b": [3]}, "newdata")
    assert as_frame({"a": [1, 2], "b": 3}).shape == (2, 2)  # a scalar is broadcast, as pandas does
