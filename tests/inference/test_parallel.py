"""Replicates are reproducible whatever n_jobs is."""

import numpy as np
import pytest

from pymlm.errors import OptionError
from pymlm.inference._parallel import run_replicates


def _draw(payload, rng, i):
    return float(rng.standard_normal() * payload + i)


def test_same_results_for_any_number_of_processes():
    a = run_replicates(_draw, 2.0, 13, seed=5, n_jobs=1, progress=False)
    b = run_replicates(_draw, 2.0, 13, seed=5, n_jobs=2, progress=False, batch=3)
    c = run_replicates(_draw, 2.0, 13, seed=6, n_jobs=1, progress=False)
    assert a == b
    assert a != c


def test_bad_counts_are_named():
    with pytest.raises(OptionError, match="n_jobs must be an integer >= 1"):
        run_replicates(_draw, 1.0, 3, n_jobs=0, progress=False)
    with pytest.raises(OptionError, match="number of replicates must be an integer >= 1"):
        run_replicates(_draw, 1.0, 0, progress=False)
    assert np.isfinite(run_replicates(_draw, 1.0, 1, progress=False)[0])
