"""Smooth terms: mgcv's bases, penalties and identifiability constraints.

``parse_smooth`` reads an ``s()`` / ``te()`` call from the formula;
``construct_smooth`` builds the basis on data (mgcv's ``smoothCon``) and
returns :class:`SmoothTerm` objects that evaluate the same basis on new data.

Bases: ``"cr"`` cubic regression spline, ``"tp"`` thin plate regression
spline, ``"ps"`` P-spline, ``"re"`` simple random effect, ``"fs"``
factor-smooth interaction, and ``te()`` tensor products of 1-D margins.
"""

from ._basis import Factor, RawBasis, as_covariate
from ._construct import SmoothTerm, construct_smooth, sum_to_zero_basis
from ._cr import CubicRegressionSpline
from ._fs import FactorSmooth
from ._ps import PSpline
from ._re import RandomEffect
from ._spec import BASES, MARGIN_BASES, SmoothSpec, parse_smooth
from ._tensor import TensorProduct, row_kron
from ._tp import ThinPlateSpline

__all__ = [
    "BASES",
    "CubicRegressionSpline",
    "Factor",
    "FactorSmooth",
    "MARGIN_BASES",
    "PSpline",
    "RandomEffect",
    "RawBasis",
    "SmoothSpec",
    "SmoothTerm",
    "TensorProduct",
    "ThinPlateSpline",
    "as_covariate",
    "construct_smooth",
    "parse_smooth",
    "row_kron",
    "sum_to_zero_basis",
]
