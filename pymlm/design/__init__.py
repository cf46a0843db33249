"""ParsedFormula + data -> Design: y, X (R's names), random terms, Z, theta template."""

from ._design import Design, build_design, lformula
from ._fixed import FixedSpec, build_model_matrix, drop_rank_deficient, rebuild_model_matrix
from ._frame import ModelFrame, as_categorical, evaluate, model_frame
from ._random import ReTerm, build_re_terms, grouping_codes, theta_template, z_matrix

__all__ = [
    "Design",
    "FixedSpec",
    "ModelFrame",
    "ReTerm",
    "as_categorical",
    "build_design",
    "build_model_matrix",
    "build_re_terms",
    "drop_rank_deficient",
    "evaluate",
    "grouping_codes",
    "lformula",
    "model_frame",
    "rebuild_model_matrix",
    "theta_template",
    "z_matrix",
]
