"""Fitted-model objects: estimates, tables, predictions, printed summaries."""

from .glmer import GlmerResult, GlmerSummary
from .lmer import LmerResult, LmerSummary

__all__ = ["GlmerResult", "GlmerSummary", "LmerResult", "LmerSummary"]
