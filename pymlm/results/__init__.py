"""Fitted-model objects: estimates, tables, predictions, printed summaries."""

from .lmer import LmerResult, LmerSummary

__all__ = ["LmerResult", "LmerSummary"]
