"""Property tests of designs on random data.

- Z holds each term's raw model-matrix row at the columns of the row's level,
  and nothing else, for every bar form;
- Z @ b equals the per-row sum of the random effects computed directly;
- permuting rows permutes the rows of y, X and Z and nothing else;
- relabelling groups permutes Z's columns within each term and changes nothing
  a fit depends on (Z'Z up to that permutation, X, theta, bounds);
- dropping rows with missing values is the same as giving the complete rows;
- sparse and dense X agree; strings and Categoricals give the same design;
- the rank check keeps exactly the independent columns.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pymlm.design import build_design, drop_rank_deficient
from pymlm.errors import FormulaError, MissingDataWarning, PymlmWarning, RankDeficiencyWarning
from pymlm.formula import parse_formula

from ._helpers import dense

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

LHS = ["1", "x", "0 + x", "-1 + x", "x + z", "0 + f", "f", "x * f"]
GROUPS = ["g", "h", "g:h", "g/h"]
label_text = st.text(alphabet="abcXYZ09_", min_size=1, max_size=4)


@st.composite
def labels(draw, k):
    if draw(st.booleans()):
        return draw(st.lists(st.integers(-50, 500), min_size=k, max_size=k, unique=True))
    return draw(st.lists(label_text, min_size=k, max_size=k, unique=True))


@st.composite
def datasets(draw, min_rows=12, max_rows=50):
    n = draw(st.integers(min_rows, max_rows))
    finite = st.floats(-50, 50, allow_nan=False, allow_infinity=False, width=64)

    def codes(k):
        c = draw(arrays(np.int64, n, elements=st.integers(0, k - 1)))
        c[: min(k, n)] = np.arange(min(k, n))  # every level present
        return c

    g_labels = draw(labels(draw(st.integers(2, 6))))
    h_labels = draw(labels(draw(st.integers(2, 4))))
    f_labels = draw(st.lists(label_text, min_size=3, max_size=3, unique=True))
    return pd.DataFrame({
        "y": draw(arrays(np.float64, n, elements=finite)),
        "x": draw(arrays(np.float64, n, elements=finite)),
        "z": draw(arrays(np.float64, n, elements=finite)),
        "g": np.asarray(g_labels, dtype=object)[codes(len(g_labels))],
        "h": np.asarray(h_labels, dtype=object)[codes(len(h_labels))],
        "f": np.asarray(f_labels, dtype=object)[codes(3)],
    }).astype({"g": type(g_labels[0]) if isinstance(g_labels[0], int) else object,
               "h": type(h_labels[0]) if isinstance(h_labels[0], int) else object})


@st.composite
def formulas(draw):
    k = draw(st.integers(1, 3))
    bars = []
    for _ in range(k):
        lhs = draw(st.sampled_from(LHS))
        bar = draw(st.sampled_from(["|", "||"]))
        candidate = f"({lhs} {bar} {draw(st.sampled_from(GROUPS))})"
        try:  # a column twice for one grouping factor ((1 | g) + (x | g)) is refused: skip it
            parse_formula("y ~ " + " + ".join(bars + [candidate]))
        except FormulaError:
            continue
        bars.append(candidate)
    fixed = draw(st.sampled_from(["1", "x", "x + f", "x * z"]))
    return f"y ~ {fixed} + {' + '.join(bars)}"


def design(formula, data, **kwargs):
    # random data often make X rank deficient (x * z with x = z = 0...): not the point here
    # nor the warning that (f || g) keeps the correlations of a factor's columns
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankDeficiencyWarning)
        warnings.filterwarnings("ignore", message=r"in \(.*\|\|", category=PymlmWarning)
        return build_design(formula, data, check="none", **kwargs)


# --- an independent reading of the bars, for the structure check ----------------


def _label_of(values) -> np.ndarray:
    return np.array([str(v) for v in values], dtype=object)


def _sorted_levels(values) -> list[str]:
    uniq = pd.unique(np.asarray(values, dtype=object))
    if all(isinstance(u, (int, np.integer)) for u in uniq):
        return [str(u) for u in sorted(uniq)]
    return sorted(str(u) for u in uniq)


def expected_pieces(lhs: str, bar: str, data: pd.DataFrame) -> list[np.ndarray]:
    """The raw model matrix of each term a bar expands to, built by hand."""
    n = len(data)
    one = np.ones((n, 1))
    x, z = data["x"].to_numpy()[:, None], data["z"].to_numpy()[:, None]
    f = data["f"].to_numpy().astype(str)
    levels = _sorted_levels(f)
    ind = np.column_stack([(f == lv).astype(float) for lv in levels])
    if bar == "|":
        return [{
            "1": one, "x": np.hstack([one, x]), "0 + x": x, "-1 + x": x, "x + z": np.hstack([one, x, z]),
            "0 + f": ind, "f": np.hstack([one, ind[:, 1:]]),
            "x * f": np.hstack([one, x, ind[:, 1:], x * ind[:, 1:]]),
        }[lhs]]
    return {
        "1": [one], "x": [one, x], "0 + x": [x], "-1 + x": [x], "x + z": [one, x, z], "0 + f": [ind],
        "f": [one, ind], "x * f": [one, x, ind, x * ind],
    }[lhs]


def expected_groups(spec: str, data: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
    g, h = _label_of(data["g"]), _label_of(data["h"])
    gh = np.array([f"{a}:{b}" for a, b in zip(g, h)], dtype=object)
    hg = np.array([f"{b}:{a}" for a, b in zip(g, h)], dtype=object)
    return {"g": [("g", g)], "h": [("h", h)], "g:h": [("g:h", gh)], "g/h": [("h:g", hg), ("g", g)]}[spec]


def _offsets(d):
    return np.cumsum([0] + [t.q for t in d.re_terms])


@SETTINGS
@given(datasets(), formulas())
def test_z_rows_hold_the_bar_model_matrix_at_the_row_level(data, formula):
    d = design(formula, data)
    expected = []
    for bar_text in formula.split(" + (")[1:]:
        lhs, rest = bar_text.strip("()").split(" |", 1)
        bar = "||" if rest.startswith("|") else "|"
        spec = rest.lstrip("|").strip(" )")
        for name, labels_ in expected_groups(spec, data):
            for piece in expected_pieces(lhs, bar, data):
                expected.append((name, labels_, piece))
    assert len(expected) == len(d.re_terms)
    Z = d.Z.toarray()
    offs = _offsets(d)
    unmatched = list(range(len(expected)))
    for k, t in enumerate(d.re_terms):
        block = Z[:, offs[k]:offs[k + 1]]
        assert np.array_equal(t.levels[t.codes], _label_of(_level_source(t, data)))
        want = np.zeros_like(block)
        n, p = t.X.shape
        want[np.arange(n)[:, None], t.codes[:, None] * p + np.arange(p)] = t.X
        assert np.array_equal(block, want)  # the row's values at its level's columns, nothing else
        hit = [j for j in unmatched if expected[j][0] == t.group and expected[j][2].shape == t.X.shape
               and np.array_equal(expected[j][2], t.X)
               and np.array_equal(t.levels[t.codes], expected[j][1])]
        assert hit, (t.group, t.cnms)
        unmatched.remove(hit[0])


def _level_source(t, data):
    parts = [_label_of(data[c]) for c in t.factors]
    out = parts[0]
    for p in parts[1:]:
        out = np.array([f"{a}:{b}" for a, b in zip(out, p)], dtype=object)
    return out


@SETTINGS
@given(datasets(), formulas(), st.integers(0, 2**32 - 1))
def test_z_times_b_is_the_sum_of_row_effects(data, formula, seed):
    d = design(formula, data)
    b = np.random.default_rng(seed).normal(size=d.Z.shape[1])
    offs = _offsets(d)
    direct = np.zeros(d.n)
    for k, t in enumerate(d.re_terms):
        B = b[offs[k]:offs[k + 1]].reshape(t.nlevels, t.p)
        direct += (t.X * B[t.codes]).sum(axis=1)
    np.testing.assert_allclose(d.Z @ b, direct, rtol=1e-12, atol=1e-9)


@SETTINGS
@given(datasets(), formulas(), st.randoms(use_true_random=False))
def test_row_order_only_permutes_rows(data, formula, rnd):
    perm = list(range(len(data)))
    rnd.shuffle(perm)
    a = design(formula, data)
    b = design(formula, data.iloc[perm].reset_index(drop=True))
    np.testing.assert_array_equal(b.y, a.y[perm])
    np.testing.assert_array_equal(dense(b.X), dense(a.X)[perm])
    assert (b.Z != a.Z[perm]).nnz == 0
    assert b.X_names == a.X_names and b.cnms == a.cnms
    assert [list(t.levels) for t in b.re_terms] == [list(t.levels) for t in a.re_terms]
    np.testing.assert_array_equal(b.theta, a.theta)
    np.testing.assert_array_equal(b.lower, a.lower)


@SETTINGS
@given(datasets(), formulas(), st.data())
def test_relabelling_groups_permutes_z_columns_within_terms(data, formula, draw):
    old = _sorted_levels(data["g"])
    new = draw.draw(st.lists(label_text, min_size=len(old), max_size=len(old), unique=True))
    mapping = dict(zip(old, new))
    relabelled = data.assign(g=[mapping[str(v)] for v in data["g"]])
    a, b = design(formula, data), design(formula, relabelled)
    assert a.ngroups.keys() == b.ngroups.keys() and list(a.ngroups.values()) == list(b.ngroups.values())
    np.testing.assert_array_equal(dense(a.X), dense(b.X))
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.theta, b.theta)
    np.testing.assert_array_equal(a.lower, b.lower)
    assert a.cnms == b.cnms
    cols = np.empty(a.Z.shape[1], dtype=np.int64)
    offs = _offsets(a)
    for k, (ta, tb) in enumerate(zip(a.re_terms, b.re_terms)):
        g_at = ta.factors.index("g") if "g" in ta.factors else None
        renamed = []
        for level in ta.levels:
            parts = level.split(":")
            if g_at is not None:
                parts[g_at] = mapping[parts[g_at]]
            renamed.append(":".join(parts))
        pos = pd.Index(tb.levels).get_indexer(renamed)
        assert (pos >= 0).all()
        p = ta.p
        cols[offs[k]:offs[k + 1]] = offs[k] + (pos[:, None] * p + np.arange(p)).ravel()
    assert (b.Z[:, cols] != a.Z).nnz == 0
    ZtZ_a, ZtZ_b = (a.Z.T @ a.Z).toarray(), (b.Z.T @ b.Z).toarray()
    np.testing.assert_array_equal(ZtZ_b[np.ix_(cols, cols)], ZtZ_a)


@SETTINGS
@given(datasets(min_rows=16), formulas(), st.data())
def test_missing_rows_are_the_same_as_complete_rows(data, formula, draw):
    n = len(data)
    holes = draw.draw(st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from(["y", "x", "z", "g", "f"])),
                               min_size=1, max_size=4))
    holed = data.copy()
    for row, col in holes:
        holed[col] = holed[col].astype(object) if col in ("g", "f") else holed[col]
        holed.loc[row, col] = None if col in ("g", "f") else np.nan
    used = [c for c in parse_formula(formula).variables() if c in holed.columns]
    complete = holed.dropna(subset=used).reset_index(drop=True)
    assume(len(complete) < n)
    try:
        expected = design(formula, complete)
    except Exception:  # noqa: BLE001 - too few levels left: nothing to compare
        assume(False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = design(formula, holed)
    assert [w.category for w in caught if w.category is not RankDeficiencyWarning] == [MissingDataWarning]
    assert got.n_dropped == n - len(complete)
    assert got.X_names == expected.X_names
    np.testing.assert_array_equal(dense(got.X), dense(expected.X))
    assert (got.Z != expected.Z).nnz == 0
    np.testing.assert_array_equal(got.y, expected.y)


@SETTINGS
@given(datasets(), formulas())
def test_sparse_dense_strings_and_categoricals_agree(data, formula):
    formula = formula.replace("y ~ 1 +", "y ~ x * f +")
    base = design(formula, data, sparse_x=False)
    sparse_x = design(formula, data, sparse_x=True)
    assert sp.isspmatrix_csc(sparse_x.X) and isinstance(base.X, np.ndarray)
    np.testing.assert_array_equal(sparse_x.X.toarray(), base.X)
    cats = data.copy()
    for col in ["g", "h", "f"]:
        cats[col] = pd.Categorical(data[col], categories=pd.unique(data[col]))
        cats[col] = cats[col].cat.reorder_categories(
            sorted(cats[col].cat.categories, key=lambda v: (str(v) if not isinstance(v, (int, np.integer)) else v))
        )
    other = design(formula, cats)
    assert other.X_names == base.X_names
    np.testing.assert_array_equal(dense(other.X), base.X)
    assert (other.Z != base.Z).nnz == 0
    np.testing.assert_array_equal(base.fixed_matrix(data), base.X)
    assert (base.random_matrix(data) != base.Z).nnz == 0


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(2, 6), st.integers(1, 4), st.booleans())
def test_rank_check_keeps_the_independent_columns(seed, k, extra, zero_column):
    rng = np.random.default_rng(seed)
    n = 40
    basis = rng.normal(size=(n, k))
    columns = [basis[:, 0]]
    independent = [0]
    used = 1
    for _ in range(k - 1 + extra):
        if used < k and (rng.random() < 0.6 or len(columns) - used >= extra):
            independent.append(len(columns))
            columns.append(basis[:, used])
            used += 1
        else:  # a combination of the columns so far
            columns.append(np.column_stack(columns) @ rng.normal(size=len(columns)))
    if zero_column:
        columns.insert(1, np.zeros(n))
        independent = [0] + [i + 1 for i in independent[1:]]
    X = np.column_stack(columns)
    assume(used == k)
    assert drop_rank_deficient(X).tolist() == independent
    assert drop_rank_deficient(sp.csc_matrix(X)).tolist() == independent


@pytest.mark.parametrize("chunk", [7, 50, 1000])
def test_rank_check_by_chunks_matches_whole(chunk):
    """The QR by row chunks sees the same column geometry as the whole matrix."""
    from pymlm.design._fixed import _r_factor

    rng = np.random.default_rng(3)
    X = rng.normal(size=(503, 5))
    R = _r_factor(X, chunk)
    assert R.shape == (5, 5)
    np.testing.assert_allclose(R.T @ R, X.T @ X, rtol=1e-12, atol=1e-9)
    Xs = sp.csc_matrix(np.column_stack([X, X[:, 0] + X[:, 1]]))
    assert _r_factor(Xs, chunk).shape == (6, 6)
