"""``pymlm fit ... --engine glmer``: lme4's glmer summary on the command line."""

import json
import re
from pathlib import Path

import pytest

from pymlm.cli import main

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
REF = json.loads((Path(__file__).parent / "reference" / "glmer_reference.json").read_text())["cases"]


def _fixef_row(out: str, name: str) -> list[float]:
    line = next(ln for ln in out.splitlines() if ln.startswith(name + " "))
    return [float(v) for v in line.split()[1:3]]


def _criteria(out: str) -> list[float]:
    lines = out.splitlines()
    at = next(i for i, ln in enumerate(lines) if re.match(r"\s+AIC\s+BIC\s+logLik", ln))
    return [float(v) for v in lines[at + 1].split()]


@pytest.mark.parametrize("nagq, case, title", [
    ([], "cbpp_laplace", "(Laplace\n  Approximation)"),
    (["--nagq", "25"], "cbpp_agq25", "(Adaptive\n  Gauss-Hermite Quadrature, nAGQ = 25)"),
])
def test_glmer_engine_prints_lme4s_summary(nagq, case, title, capsys):
    assert main(["fit", CBPP, "--data", "cbpp", "--engine", "glmer", "--family", "binomial", *nagq]) == 0
    out = capsys.readouterr().out
    ref = REF[case]
    assert title in out
    assert " Family: binomial  ( logit )" in out and "   Data: cbpp" in out
    for name, value in ref["fixef"].items():
        est, se = _fixef_row(out, name)
        # the project's tolerance against lme4 (3e-3 standard errors), plus the printed rounding
        assert est == pytest.approx(value, abs=3e-3 * ref["fixef_se"][name] + 5e-5), name
        assert se == pytest.approx(ref["fixef_se"][name], rel=2e-2), name
    aic, bic, loglik, deviance, df_resid = _criteria(out)
    assert bic == pytest.approx(laplace_bic := REF["cbpp_laplace"]["BIC"], abs=0.1), laplace_bic
    # the log-likelihood is on the absolute scale for every nAGQ: lme4's AIC for the Laplace fit
    laplace = REF["cbpp_laplace"]
    assert aic == pytest.approx(laplace["AIC"], abs=0.1) and df_resid == laplace["df_resid"]
    assert deviance == pytest.approx(-2 * loglik, abs=0.11)


def test_glmer_family_defaults_to_binomial_and_poisson_is_taken(capsys):
    assert main(["fit", CBPP, "--data", "cbpp", "--engine", "glmer"]) == 0
    assert " Family: binomial  ( logit )" in capsys.readouterr().out
    ref = REF["grouseticks_poisson"]
    args = ["fit", ref["formula"], "--data", "grouseticks", "--engine", "glmer", "--family", "poisson"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert " Family: poisson  ( log )" in out
    assert _criteria(out)[0] == pytest.approx(ref["AIC"], abs=0.1)


def test_glmer_nagq_zero_fits_the_first_stage(capsys):
    assert main(["fit", CBPP, "--data", "cbpp", "--engine", "glmer", "--nagq", "0"]) == 0
    out = capsys.readouterr().out
    ref = REF["cbpp_nagq0"]
    est = _fixef_row(out, "period2")[0]
    assert est == pytest.approx(ref["fixef"]["period2"], abs=3e-3 * ref["fixef_se"]["period2"] + 5e-5)


def test_gam_family_still_defaults_to_gaussian(capsys):
    assert main(["fit", "y ~ s(x0, bs = 'cr')", "--data", "gamsim_re", "--engine", "gam"]) == 0
    assert "Family: gaussian" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--nagq", "26"], "nAGQ must be an integer from 0 to 25"),
    (["--family", "binomal"], "binomal"),
])
def test_glmer_bad_options_exit_2_with_a_message(args, message, capsys):
    assert main(["fit", CBPP, "--data", "cbpp", "--engine", "glmer", *args]) == 2
    assert message in capsys.readouterr().err


def test_agq_for_a_vector_term_fits(capsys):
    """Tensor-product quadrature for (1 + x | g): nAGQ^2 points per group."""
    ref = REF["sim_bin_slopes"]
    assert ref["formula"].startswith("y ~ x + (1 + x | g)")
    path = Path(__file__).parent / "reference" / "glmer_sim_bin.csv"
    assert main(["fit", "y ~ x + (1 + x | g)", "--data", str(path), "--engine", "glmer", "--nagq", "3"]) == 0
    assert "nAGQ = 3" in capsys.readouterr().out
