"""Random small mixed-model designs for property tests (codes, term matrices, X, y)."""

import numpy as np
from hypothesis import strategies as st


@st.composite
def random_designs(draw, max_terms=3):
    """A random design: crossed and nested factors, 1-2 coefficients per term."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(30, 90))
    n_terms = draw(st.integers(1, max_terms))
    codes, Xs, levels = [], [], []
    for k in range(n_terms):
        nested = k > 0 and draw(st.booleans())
        if nested:
            # a coarser factor that nests an earlier one
            parent = draw(st.integers(2, max(2, levels[0] // 2)))
            mapping = rng.integers(0, parent, size=levels[0])
            mapping[:parent] = np.arange(parent)
            c = mapping[codes[0]]
            lk = parent
        else:
            lk = draw(st.integers(2, 8))
            c = rng.integers(0, lk, size=n)
            c[:lk] = np.arange(lk)
        _, c = np.unique(c, return_inverse=True)
        lk = int(c.max()) + 1
        pk = draw(st.integers(1, 2))
        Xk = np.ones((n, pk))
        if pk == 2:
            Xk[:, 1] = rng.standard_normal(n)
        codes.append(c.astype(np.int32))
        Xs.append(Xk)
        levels.append(lk)
    p = draw(st.integers(1, 3))
    X = np.column_stack([np.ones(n)] + [rng.standard_normal(n) for _ in range(p - 1)])
    y = rng.standard_normal(n) + X @ rng.standard_normal(p)
    for c, Xk in zip(codes, Xs):
        b = rng.standard_normal((int(c.max()) + 1, Xk.shape[1]))
        y += np.einsum("ij,ij->i", Xk, b[c])
    theta = []
    for Xk in Xs:
        pk = Xk.shape[1]
        for j in range(pk):
            for i in range(j, pk):
                theta.append(rng.uniform(0.2, 1.5) if i == j else rng.uniform(-0.5, 0.5))
    return dict(codes=codes, Xs=Xs, levels=levels, X=X, y=y, theta=np.array(theta), rng=rng)
