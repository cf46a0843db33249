"""ParsedFormula + data -> Design (lmer: y, X with R's names, random terms, Z, theta template)
or GamDesign (gam/bam: parametric columns, smooth and random terms with their penalties)."""

from ._design import Design, build_design
from ._fixed import (
    SPARSE_MAX_DENSITY,
    SPARSE_MIN_COLUMNS,
    FixedSpec,
    TermSpec,
    Variable,
    build_model_matrix,
    contr_poly,
    drop_rank_deficient,
    rebuild_model_matrix,
    use_sparse,
)
from ._frame import ModelFrame, as_categorical, check_new_columns, evaluate, model_frame
from ._gam import GamDesign, GamTerm, build_gam_design
from ._random import ReTerm, build_re_terms, grouping_codes, re_matrix, theta_template, z_matrix

__all__ = [
    "SPARSE_MAX_DENSITY",
    "SPARSE_MIN_COLUMNS",
    "Design",
    "FixedSpec",
    "GamDesign",
    "GamTerm",
    "ModelFrame",
    "ReTerm",
    "TermSpec",
    "Variable",
    "as_categorical",
    "build_design",
    "build_gam_design",
    "build_model_matrix",
    "build_re_terms",
    "check_new_columns",
    "contr_poly",
    "drop_rank_deficient",
    "evaluate",
    "grouping_codes",
    "model_frame",
    "re_matrix",
    "rebuild_model_matrix",
    "theta_template",
    "use_sparse",
    "z_matrix",
]
