"""Factor-smooth (``bs = "fs"``) fits: equal to mgcv with the same null-space basis, and well defined.

mgcv 1.8-41 gives each null-space column of the base smooth its own penalty,
but takes those columns from an eigen decomposition whose eigenvalue 0 is
repeated, so its fit depends on rounding (the row order, the BLAS kernel).
tests/reference/fs_reference.R fits mgcv with the null-space basis pymlm
builds (Gram-Schmidt of 1, x in the data inner product), through mgcv's own fs
constructor and fitting; those fits are compared here. The JSON also records
how far mgcv's unmodified fits move over row orders.

The invariance tests hold the fit fixed under what must not matter: the row
order, the labels and order of the factor levels, and any rotation of the base
basis's null-space columns.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _smooth_data import smooth_cases

import pymlm as ml
from pymlm.smooth import ThinPlateSpline

REF = json.loads((Path(__file__).resolve().parents[1] / "reference" / "fs_fits.json").read_text())
CASES = REF["cases"]


def _with_half(d: pd.DataFrame) -> pd.DataFrame:
    """The two-level factor of the by_level case (see fs_reference.R)."""
    d = d.copy()
    low = d["g"].astype(str).isin([f"g{i:02d}" for i in range(1, 7)])
    d["half"] = pd.Categorical(np.where(low, "lo", "hi"), categories=["hi", "lo"])
    return d


def _gamsim20() -> pd.DataFrame:
    d = ml.datasets.load("gamsim_re")
    d = d[d["g"].astype(str).isin([f"g{i:03d}" for i in range(1, 21)])].reset_index(drop=True)
    d["g"] = pd.Categorical(d["g"].astype(str))
    return d


def _data(case: str) -> pd.DataFrame:
    return _gamsim20() if case == "gamsim20" else _with_half(smooth_cases())


@pytest.fixture(scope="module")
def fits():
    return {case: ml.gam(CASES[case]["formula"], _data(case), progress=False) for case in CASES}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fs_fit_equals_mgcv_with_the_same_null_space(case, fits):
    m, r = fits[case], CASES[case]
    assert len(m.fitted) == r["nobs"]
    assert list(m.edf.index) == list(r["edf"])
    for term, edf in r["edf"].items():
        assert m.edf[term] == pytest.approx(edf, abs=0.05)
    assert m.reml_score == pytest.approx(r["score"], rel=1e-6)
    assert m.scale == pytest.approx(r["scale"], rel=1e-4)
    sd = float(np.std(m.design.y))
    np.testing.assert_allclose(m.fitted, r["fitted"], atol=1e-4 * sd)


def test_the_reversed_rows_give_mgcvs_fixed_fit_where_mgcvs_own_fit_moves():
    """mgcv's own edf moves by more than 1 over row orders; pymlm's reversed-row fit does not."""
    r = CASES["gamsim20"]
    own = [o["edf"]["s(x0,g)"] for o in r["mgcv_own_by_row_order"].values()]
    assert max(own) - min(own) > 1.0  # mgcv 1.8-41 is not well defined here
    d = _gamsim20()
    m = ml.gam(r["formula"], d.iloc[::-1].reset_index(drop=True), progress=False)
    fixed = r["fixed_null_by_row_order"]["reversed"]
    assert m.edf["s(x0,g)"] == pytest.approx(fixed["edf"]["s(x0,g)"], abs=0.05)
    assert m.reml_score == pytest.approx(fixed["score"], rel=1e-6)


def _relabel(d: pd.DataFrame, col: str) -> pd.DataFrame:
    """New labels for the levels of ``col``, in the reverse order of the old ones."""
    d = d.copy()
    old = list(d[col].cat.categories)
    mapping = {lev: f"L{len(old) - i:02d}" for i, lev in enumerate(old)}
    d[col] = pd.Categorical(d[col].astype(str).map(mapping), categories=sorted(mapping.values()))
    return d


def _reorder_levels(d: pd.DataFrame, col: str) -> pd.DataFrame:
    d = d.copy()
    d[col] = d[col].cat.reorder_categories(list(d[col].cat.categories)[::-1])
    return d


INVARIANT_FORMULAS = {
    "fs": 'y ~ s(z) + s(x, fac, bs = "fs", k = 5)',
    "fs_cr": 'y ~ s(z) + s(x, fac, bs = "fs", k = 6, xt = "cr")',
    "tp": 'y ~ fac + s(x, k = 7) + s(z)',
}


def _same_fit(a, b, order=None):
    order = np.arange(len(a.fitted)) if order is None else order
    for term in a.edf.index:
        assert b.edf[term] == pytest.approx(a.edf[term], abs=1e-6)
    assert b.reml_score == pytest.approx(a.reml_score, rel=1e-9)
    sd = float(np.std(a.design.y))
    np.testing.assert_allclose(np.asarray(b.fitted)[np.argsort(order)], a.fitted, atol=1e-7 * sd)


@pytest.mark.parametrize("name", sorted(INVARIANT_FORMULAS))
@pytest.mark.parametrize("change", ["permute_rows", "reverse_rows", "relabel_levels", "reorder_levels"])
def test_row_order_and_level_labels_do_not_change_the_fit(name, change):
    formula = INVARIANT_FORMULAS[name]
    d = smooth_cases()
    base = ml.gam(formula, d, progress=False)
    order = None
    if change == "permute_rows":
        order = np.random.default_rng(7).permutation(len(d))
        d2 = d.iloc[order].reset_index(drop=True)
    elif change == "reverse_rows":
        order = np.arange(len(d))[::-1]
        d2 = d.iloc[order].reset_index(drop=True)
    elif change == "relabel_levels":
        d2 = _relabel(d, "fac")
    else:
        d2 = _reorder_levels(d, "fac")
    other = ml.gam(formula, d2, progress=False)
    if change in ("relabel_levels", "reorder_levels"):
        # the same curves, with other names: compare what does not carry a level name
        assert other.reml_score == pytest.approx(base.reml_score, rel=1e-9)
        assert float(other.edf.sum()) == pytest.approx(float(base.edf.sum()), abs=1e-6)
        sd = float(np.std(base.design.y))
        np.testing.assert_allclose(other.fitted, base.fitted, atol=1e-7 * sd)
    else:
        _same_fit(base, other, order)


def _null_rotation(M: int, kind: str) -> np.ndarray:
    if kind == "rotate":
        a = 1.1
        return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    if kind == "reflect":
        return np.array([[0.0, 1.0], [1.0, 0.0]])
    return np.array([[2.0, 0.7], [-0.3, 0.5]])  # any invertible mixing of the null columns


@pytest.mark.parametrize("kind", ["rotate", "reflect", "mix"])
def test_a_rotated_null_space_basis_gives_the_same_fs_fit(kind, monkeypatch):
    """The base tp basis with its null-space columns (1, x) mixed: the same fs fit."""
    d = smooth_cases()
    formula = 'y ~ s(x, fac, bs = "fs", k = 5)'  # the only tp basis is the fs term's base
    base = ml.gam(formula, d, progress=False)
    original = ThinPlateSpline._evaluate

    def mixed(self, x):
        X = original(self, x)
        A = _null_rotation(self.M, kind)
        X = X.copy()
        X[:, -self.M:] = X[:, -self.M:] @ A
        return X

    monkeypatch.setattr(ThinPlateSpline, "_evaluate", mixed)
    other = ml.gam(formula, d, progress=False)
    _same_fit(base, other)
