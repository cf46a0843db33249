"""Data sets split into sites for the federated tests."""

import numpy as np
import pandas as pd

import pymlm as ml
import pymlm.federated as fed


def sleepstudy_sites(order=(0, 1, 2)):
    """sleepstudy's 18 subjects over 3 sites of 6."""
    df = ml.datasets.load("sleepstudy")
    subjects = sorted(df.Subject.astype(str).unique())
    parts = [df[df.Subject.astype(str).isin(subjects[i::3])] for i in range(3)]
    return df, [fed.LocalSite(parts[i], name="ABC"[i]) for i in order]


def longitudinal(n_subjects=1000, visits=6, seed=14):
    """Random intercepts and slopes in time, a three-arm treatment and a covariate."""
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(n_subjects), visits)
    time = np.tile(np.arange(visits, dtype=float), n_subjects)
    arm = np.array(["ctrl", "high", "low"])[rng.integers(0, 3, n_subjects)][subj]
    age = np.round(rng.normal(50, 10, n_subjects), 1)[subj]
    b = rng.multivariate_normal([0, 0], [[4.0, 0.3], [0.3, 0.5]], n_subjects)
    effect = pd.Series({"ctrl": 0.0, "low": 0.8, "high": 1.5})[arm].to_numpy()
    y = (
        10
        + 0.5 * time
        + effect
        + 0.05 * age
        + b[subj, 0]
        + b[subj, 1] * time
        + rng.normal(0, 1.5, subj.size)
    )
    return pd.DataFrame(
        {"y": y, "time": time, "arm": arm, "age": age, "subject": [f"s{i:04d}" for i in subj]}
    )


def longitudinal_sites(df, n_sites=5, order=None):
    """Subjects split into contiguous blocks, one per site; the last site has no 'high' arm."""
    ids = df.subject.str[1:].astype(int)
    block = ids * n_sites // (ids.max() + 1)
    parts = [df[block == k] for k in range(n_sites)]
    last = parts[-1]
    parts[-1] = last[last.arm != "high"]
    order = range(n_sites) if order is None else order
    return pd.concat(parts), [fed.LocalSite(parts[k], name=f"site{k}") for k in order]
