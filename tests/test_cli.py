"""The pymlm command."""

import pytest

from pymlm.cli import main


def test_datasets_lists_the_bundled_data(capsys):
    assert main(["datasets"]) == 0
    names = capsys.readouterr().out.split()
    assert "sleepstudy" in names and "InstEval" in names


def test_fit_prints_the_lme4_summary(capsys):
    assert main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", "sleepstudy"]) == 0
    out = capsys.readouterr().out
    assert "Linear mixed model fit by REML" in out
    assert "REML criterion at convergence: 1743.6" in out
    assert "Data: sleepstudy" in out


def test_fit_by_ml(capsys):
    assert main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", "sleepstudy", "--ml"]) == 0
    out = capsys.readouterr().out
    assert "maximum likelihood" in out and "1763.9" in out  # AIC as lme4


def test_fit_a_csv_file(tmp_path, capsys):
    import pymlm as ml

    path = tmp_path / "pen.csv"
    ml.datasets.load("Penicillin").to_csv(path, index=False)
    assert main(["fit", "diameter ~ 1 + (1 | plate) + (1 | sample)", "--data", str(path)]) == 0
    assert "Data: pen" in capsys.readouterr().out


def test_bam_engine(capsys):
    assert main(["fit", "y ~ s(x0, bs = 'cr') + (1 | g)", "--data", "gamsim_re", "--engine", "bam"]) == 0
    out = capsys.readouterr().out
    assert "Approximate significance of smooth terms" in out and "s(x0)" in out


@pytest.mark.parametrize("args, message", [
    (["fit", "Reaction ~ Days + (1 | Subject", "--data", "sleepstudy"], "unbalanced parentheses"),
    (["fit", "Reaction ~ Dayz + (1 | Subject)", "--data", "sleepstudy"], "did you mean 'Days'"),
    (["fit", "y ~ x + (1 | g)", "--data", "nothere.csv"], "no file 'nothere.csv'"),
    (["fit", "y ~ x + (1 | g)", "--data", "sleepstudi"], "did you mean 'sleepstudy'"),
])
def test_errors_exit_2_with_a_message(args, message, capsys):
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_fit_a_parquet_folder_streamed(tmp_path, capsys):
    import pymlm as ml

    df = ml.datasets.load("sleepstudy")
    folder = tmp_path / "sleep"
    folder.mkdir()
    df.iloc[:90].to_parquet(folder / "a.parquet")
    df.iloc[90:].to_parquet(folder / "b.parquet")
    assert main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "REML criterion at convergence: 1743.6" in out and "rows streamed from" in out
    assert main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", str(folder), "--design"]) == 0
    assert "StreamDesign" in capsys.readouterr().out
    one = tmp_path / "sleep.parquet"
    df.to_parquet(one)
    assert main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", str(one), "--stream"]) == 0
    assert "rows streamed from" in capsys.readouterr().out
    assert main(["fit", "Reaction ~ Days + (1 | Subject)", "--data", str(folder), "--engine", "bam"]) == 0


def test_version(capsys):
    import pymlm

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"pymlm {pymlm.__version__}"
