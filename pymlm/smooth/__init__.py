"""Smooth terms: mgcv's bases, penalties and identifiability constraints.

``parse_smooth`` reads an ``s()`` / ``te()`` / ``ti()`` call from the formula;
``construct_smooth`` builds the basis on data (mgcv's ``smoothCon``) and
returns :class:`SmoothTerm` objects that evaluate the same basis on new data.

Bases: ``"cr"`` cubic regression spline, ``"cc"`` cyclic cubic regression
spline, ``"tp"`` thin plate regression spline, ``"cs"`` and ``"ts"`` their
shrinkage versions (the null space penalized too), ``"ps"`` P-spline,
``"re"`` simple random effect, ``"fs"`` factor-smooth interaction,
``te()`` tensor products of 1-D margins and ``ti()`` tensor interactions
(the margins' main effects excluded).
"""

from ._basis import Factor, RawBasis, as_covariate
from ._construct import SmoothTerm, construct_smooth, sum_to_zero_basis
from ._cr import CubicRegressionSpline, CyclicCubicSpline
from ._fs import FactorSmooth
from ._ps import PSpline
from ._re import RandomEffect
from ._shrink import ShrinkageSmooth
from ._spec import BASES, MARGIN_BASES, SmoothSpec, parse_smooth
from ._tensor import TensorProduct, row_kron
from ._tp import ThinPlateSpline

__all__ = [
    "BASES",
    "MARGIN_BASES",
    "CubicRegressionSpline",
    "CyclicCubicSpline",
    "Factor",
    "FactorSmooth",
    "PSpline",
    "RandomEffect",
    "RawBasis",
    "ShrinkageSmooth",
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
