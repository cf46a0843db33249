"""Fitted-model objects: estimates, tables, predictions, printed summaries."""

from ._diagnostics import LmerInfluence
from .glmer import GlmerResult, GlmerSummary
from .lmer import LmerResult, LmerSummary
from .lmer_tests import MarginalMeans, TermTable

__all__ = ["GlmerResult", "GlmerSummary", "LmerInfluence", "LmerResult", "LmerSummary", "MarginalMeans", "TermTable"]
