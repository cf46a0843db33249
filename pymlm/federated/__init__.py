"""Multilevel models fitted across sites that never share rows (Afshartous & Michailidis).

Sites hold whole groups. For a theta, each site computes the additive pieces
of the profiled deviance for its rows (:class:`pymlm.fit.deviance.SitePieces`:
log|L|^2, the downdated [X y] block and their derivatives); only their sum
travels, as fixed-point integers modulo 2^k (exact, so every site order,
schedule and masking gives the same bits), masked pairwise so that the
coordinator reads nothing but the sum. See :mod:`pymlm.federated._sums` for
the encoding and the masks, :mod:`pymlm.federated._coordinator` for the
rounds.

Sites can be in this process (:class:`LocalSite`), in child processes
(:class:`ProcessSite`) or Flower SuperNodes (:mod:`pymlm.federated.flower`:
a ClientApp per site reading its own file, a ServerApp running the same
coordinator). A site that drops out is bypassed, retried, or its masks are
recovered from Shamir shares of its key (``on_failure="recover"``); sites
with different variable sets take part through structural zeros
(``structural_zeros=``); an interrupted fit resumes from the coordinator's
round log (``round_log=``).

Examples
--------
>>> import pymlm as ml
>>> import pymlm.federated as fed
>>> df = ml.datasets.load("sleepstudy")
>>> half = df.Subject.astype(int) % 2 == 0
>>> f = fed.lmer("Reaction ~ Days + (Days | Subject)",
...              [fed.LocalSite(df[half], name="even"), fed.LocalSite(df[~half], name="odd")])
>>> round(float(f.fixef["Days"]), 4), f.rounds < 40
(10.4673, True)
"""

from ._coordinator import Coordinator, SiteSumEvaluator
from ._estimators import TwoStepFit
from ._lmer import FederatedFit, SiteBypassedWarning, lmer, two_step
from ._process import ProcessSite
from ._sites import LocalSite, SiteUnavailable
from ._sums import FederationError, FixedPoint, Message

__all__ = [
    "Coordinator",
    "FederatedFit",
    "FederationError",
    "FixedPoint",
    "LocalSite",
    "Message",
    "ProcessSite",
    "SiteBypassedWarning",
    "SiteSumEvaluator",
    "SiteUnavailable",
    "TwoStepFit",
    "lmer",
    "two_step",
]
