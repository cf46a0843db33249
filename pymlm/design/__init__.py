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
from ._frame import (
    ModelFrame,
    as_categorical,
    check_new_columns,
    evaluate,
    model_frame,
    used_columns,
)
from ._gam import GamDesign, GamTerm, build_gam_design
from ._random import ReTerm, build_re_terms, grouping_codes, re_matrix, theta_template, z_matrix
from ._stream import BatchArrays, StreamDesign, batch_arrays, scan_design

__all__ = [
    "SPARSE_MAX_DENSITY",
    "SPARSE_MIN_COLUMNS",
    "BatchArrays",
    "Design",
    "FixedSpec",
    "GamDesign",
    "GamTerm",
    "ModelFrame",
    "ReTerm",
    "StreamDesign",
    "TermSpec",
    "Variable",
    "as_categorical",
    "batch_arrays",
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
    "scan_design",
    "theta_template",
    "use_sparse",
    "used_columns",
    "z_matrix",
]
