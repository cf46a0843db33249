"""pymlm: multilevel models and GAMMs with R's formula language, for big and distributed data.

Examples
--------
>>> import pymlm as ml
>>> df = ml.datasets.load("sleepstudy")
>>> d = ml.lformula("Reaction ~ Days + (Days | Subject)", df)
>>> d.ngroups
{'Subject': 18}
"""

from . import datasets, plot
from ._api import (
    anova,
    bam,
    drop1,
    emmeans,
    gam,
    glmer,
    glmer_nb,
    lformula,
    lmer,
    lmer_devfun,
    ranova,
)
from .design import Design
from .errors import (
    ConvergenceWarning,
    DataError,
    FormulaError,
    MissingDataWarning,
    OptionError,
    PymlmError,
    PymlmWarning,
    RankDeficiencyWarning,
    SingularFitWarning,
)
from .fit.allfit import allFit
from .formula import parse_formula
from .results import LmerResult
from .inference.gam_tests import concurvity
from .results.gam import GamResult

__version__ = "0.1.0.dev0"

__all__ = [
    "ConvergenceWarning",
    "DataError",
    "Design",
    "FormulaError",
    "GamResult",
    "LmerResult",
    "MissingDataWarning",
    "OptionError",
    "PymlmError",
    "PymlmWarning",
    "RankDeficiencyWarning",
    "SingularFitWarning",
    "allFit",
    "anova",
    "bam",
    "datasets",
    "concurvity",
    "drop1",
    "emmeans",
    "gam",
    "glmer",
    "glmer_nb",
    "lformula",
    "lmer",
    "lmer_devfun",
    "parse_formula",
    "plot",
    "ranova",
]
