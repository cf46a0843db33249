"""lme4's glmer fits of tests/reference/glmer_reference.json, for the result tests.

``reference_result(case)`` rebuilds lme4's optimum as a GlmerResult without
fitting: pymlm's design of the case's formula and data, and a fit record
holding lme4's theta, beta, u, b, conditional variances, eta, mu, response,
prior weights, dispersion, covariance of beta and log-likelihood. Every
accessor and printed line of that result must then reproduce lme4's to
rounding, whatever pymlm's own optimizer does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

import pymlm as ml
from pymlm.design import build_design
from pymlm.fit._optimize import OptResult
from pymlm.linalg import ThetaMap
from pymlm.results.glmer import GlmerResult

REF_DIR = Path(__file__).resolve().parents[1] / "reference"
REF = json.loads((REF_DIR / "glmer_reference.json").read_text())
CASES = REF["cases"]
FIT_CASES = sorted(k for k, v in CASES.items() if "fixef" in v and "family" in v)

# R's level orders of the simulated sets' factors (sorted labels, but sim_bin's numeric g)
_LEVELS = {"glmer_sim_bin": {"g": [str(i) for i in range(1, 201)]}}


def load_data(name: str) -> pd.DataFrame:
    """A case's data: a bundled data set or a glmer_*.csv beside the reference JSON."""
    if not name.startswith("glmer_"):
        return ml.datasets.load(name)
    df = pd.read_csv(REF_DIR / f"{name}.csv")
    for col in df.columns:
        if df[col].dtype == object or col in _LEVELS.get(name, {}):
            levels = _LEVELS.get(name, {}).get(col) or sorted(df[col].astype(str).unique())
            df[col] = pd.Categorical(df[col].astype(str), categories=levels)
    return df


def data_name(case: str) -> str:
    """The name lme4's call gave the data (what R prints after ``Data:``)."""
    return re.search(r"data = (\w+)", CASES[case]["call"]).group(1)


def sm_family(c: dict):
    """The statsmodels family of a case."""
    link = {"logit": sm.families.links.Logit(), "log": sm.families.links.Log()}[c["link"]]
    fam = c["family"]
    if fam == "binomial":
        return sm.families.Binomial(link=link)
    if fam == "poisson":
        return sm.families.Poisson(link=link)
    if fam == "Gamma":
        return sm.families.Gamma(link=link)
    if fam == "inverse.gaussian":
        return sm.families.InverseGaussian(link=link)
    if fam.startswith("Negative Binomial"):
        return sm.families.NegativeBinomial(link=link, alpha=1.0 / c["nb_theta"])
    raise ValueError(fam)


def saturated_m2ll(c: dict) -> float:
    """-2 log-likelihood of the saturated model (mu = y) of a binomial or Poisson case."""
    f = c["full"]
    y, w = np.asarray(f["y"]), np.asarray(f["prior_weights"])
    if c["family"] == "binomial":
        return float(-2 * stats.binom.logpmf(np.rint(y * w), w, y).sum())
    if c["family"] == "poisson":
        return float(-2 * stats.poisson.logpmf(y, y).sum())
    raise ValueError(c["family"])


@dataclass(frozen=True)
class ReferenceFit:
    """lme4's optimum in the fields of pymlm.fit.glmm.GlmmFit."""

    family: object
    family_name: str
    link_name: str
    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray
    b: np.ndarray
    cond_var: tuple
    eta: np.ndarray
    mu: np.ndarray
    offset: np.ndarray
    prior_weights: np.ndarray
    y: np.ndarray
    dispersion: float
    nAGQ: int
    minus2loglik: float
    deviance_lme4: float
    objective_lme4: float
    vcov: np.ndarray
    hessian: object
    singular: bool
    opt: OptResult
    tmap: ThetaMap
    nb_theta: float | None


def design_of(case: str):
    c = CASES[case]
    return build_design(c["formula"], load_data(c["data"]), weights=c.get("weights"), check="glmer",
                        require_numeric_response=False)


def reference_result(case: str, **kwargs) -> GlmerResult:
    """lme4's fit of ``case`` as a GlmerResult (no refit functions)."""
    c = CASES[case]
    design = design_of(case)
    f = c["full"]
    terms = design.re_terms
    cond_var = tuple(np.asarray(f["condVar"][t.group], dtype=float).reshape(t.nlevels, t.p, t.p)
                     for t in terms)
    m2ll = -2 * c["logLik"]
    fit = ReferenceFit(
        family=sm_family(c), family_name=c["family"], link_name=c["link"],
        theta=np.atleast_1d(np.asarray(c["theta"], dtype=float)), beta=np.asarray(list(c["fixef"].values())),
        u=np.asarray(f["u"]), b=np.asarray(f["b"]), cond_var=cond_var,
        eta=np.asarray(f["eta"]), mu=np.asarray(f["mu"]), offset=np.asarray(f["offset"]),
        prior_weights=np.asarray(f["prior_weights"]), y=np.asarray(f["y"]),
        dispersion=c["sigma"] ** 2 if c["family"] in ("Gamma", "inverse.gaussian") else 1.0,
        nAGQ=c["nAGQ"], minus2loglik=m2ll + (saturated_m2ll(c) if c["nAGQ"] > 1 else 0.0),
        deviance_lme4=c["deviance"], objective_lme4=m2ll, vcov=np.asarray(c["vcov"], dtype=float).reshape(len(c["fixef"]), -1),
        hessian=None, singular=bool(c["is_singular"]),
        opt=OptResult(x=np.atleast_1d(c["theta"]), fun=m2ll, nfev=0, method="bobyqa", success=True),
        tmap=ThetaMap.default([(t.p, t.nlevels) for t in terms], design.theta_names),
        nb_theta=c.get("nb_theta"),
    )
    opts = {"family": c["family"], "nAGQ": c["nAGQ"]}
    if c.get("weights"):
        opts["weights"] = c["weights"]
    return GlmerResult(design, fit, data=load_data(c["data"]), data_name=data_name(case), options=opts, **kwargs)
